"""Safety contrasts among the treated (issue 13): per-participant flags, arms and contrast rows, small-cell
suppression. Reference values: R 4.x ``fisher.test`` and ``prop.test(correct = FALSE)`` (Wilson)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from respine_nb import config, stats, tables

C = config.CONTRAST


@pytest.fixture
def data():
    adsl = pd.DataFrame(
        {
            "USUBJID": ["A1", "A2", "A3", "A4", "A5", "A6", "S1", "S2", "S3", "S4"],
            "ARM": ["BM-MSC"] * 6 + ["Sham"] * 4,
            "SAFFL": ["Y"] * 5 + ["N"] + ["Y"] * 4,
        }
    )
    # id, serious, related, treatment-emergent
    events = [
        ("A1", "N", "N", "Y"),
        ("A1", "N", "N", "Y"),  # a second event: the participant counts once
        ("A2", "Y", "Y", "Y"),
        ("A3", "Y", "N", "Y"),
        ("A4", "N", "Y", "Y"),
        ("A5", "Y", "Y", "N"),  # not treatment-emergent: ignored
        ("A6", "Y", "Y", "Y"),  # not treated: outside the safety population
        ("S1", "N", "N", "Y"),
    ]
    adae = pd.DataFrame(events, columns=["USUBJID", "AESER", "AEREL", "TRTEMFL"])
    adae = adae.assign(ARM=adae["USUBJID"].str[0].map({"A": "BM-MSC", "S": "Sham"}), AEDECOD=["Back pain"] * 4 + ["Headache"] * 4)
    return adsl, adae


def row(df, category, group):
    r = df[(df["category"] == category) & (df["group"] == group)]
    assert len(r) == 1
    return r.iloc[0]


def test_flags_one_row_per_treated_participant(data):
    flags = stats.ae_flags(*data)
    assert list(flags["USUBJID"]) == ["A1", "A2", "A3", "A4", "A5", "S1", "S2", "S3", "S4"]
    assert list(flags["any_ae"]) == [True, True, True, True, False, True, False, False, False]
    assert list(flags["sae"]) == [False, True, True, False, False, False, False, False, False]
    assert list(flags["related_sae"]) == [False, True, False, False, False, False, False, False, False]


def test_contrasts_equal_r(data):
    out = stats.ae_contrasts(*data)
    assert list(out["category"].unique()) == ["any_ae", "sae", "related_sae"]
    assert list(out["group"][:3]) == [*config.ARMS, C]
    a = row(out, "any_ae", "BM-MSC")
    assert (int(a["events"]), int(a["n"])) == (4, 5)
    # R: prop.test(4, 5, correct = FALSE)$conf.int
    assert a["ci_low"] == pytest.approx(0.375534629762525, abs=1e-9)
    assert a["ci_high"] == pytest.approx(0.963775891367570, abs=1e-9)
    # R: fisher.test(matrix(c(4, 1, 1, 3), 2, byrow = TRUE))$p.value
    c = row(out, "any_ae", C)
    assert c["estimate"] == pytest.approx(4 / 5 - 1 / 4)
    assert c["p_value"] == pytest.approx(0.206349206349207, abs=1e-12)
    assert int(c["n"]) == 9
    # R: fisher.test(matrix(c(2, 3, 0, 4), 2, byrow = TRUE))$p.value
    assert row(out, "sae", C)["p_value"] == pytest.approx(0.444444444444445, abs=1e-12)
    # R: fisher.test(matrix(c(1, 4, 0, 4), 2, byrow = TRUE))$p.value
    assert row(out, "related_sae", C)["p_value"] == pytest.approx(1.0)
    assert int(row(out, "related_sae", "Sham")["events"]) == 0
    assert out["method"].str.contains("treated participants").all()


def test_no_adverse_event_at_all(data):
    adsl, adae = data
    out = stats.ae_contrasts(adsl, adae.iloc[:0])
    assert (out.loc[out["group"] != C, "events"] == 0).all()
    assert (out.loc[out["group"] == C, "p_value"] == 1).all()


def test_suppression_hides_small_arms_and_their_contrast(data):
    out = stats.suppress_with_contrast(stats.ae_contrasts(*data), 3, by="category")
    # any_ae: 4 and 1 -> Sham suppressed, so is the contrast
    assert np.isnan(row(out, "any_ae", "Sham")["estimate"]) and not np.isnan(row(out, "any_ae", "BM-MSC")["estimate"])
    assert np.isnan(row(out, "any_ae", C)["estimate"]) and np.isnan(row(out, "any_ae", C)["p_value"])
    assert "suppressed" in row(out, "any_ae", C)["method"]
    # sae: 2 and 0 -> the 2 is suppressed (0 is shown)
    assert np.isnan(row(out, "sae", "BM-MSC")["estimate"]) and row(out, "sae", "Sham")["estimate"] == 0
    assert np.isnan(row(out, "sae", C)["p_value"])
    # min_cell 0 keeps everything
    assert stats.suppress_with_contrast(stats.ae_contrasts(*data), 0, by="category").equals(stats.ae_contrasts(*data))


def test_safety_events_feed_the_publication_table(data):
    adsl, adae = data
    ev = stats.safety_events(adsl, adae)
    assert set(ev["USUBJID"]) == {"A1", "A2", "A3", "A4", "S1"}  # A5's event is not emergent, A6 not treated
    n = stats.arm_counts(adsl, "SAFFL")
    pub = tables.safety_publication(ev, dict(zip(n["group"], n["n"])), 0, "USUBJID", "ARM", "AEDECOD", "serious")
    first = pub.frame.iloc[0]
    assert (first["BM-MSC (N = 5), n (%)"], first["Sham (N = 4), n (%)"]) == ("4 (80.0 %)", "1 (25.0 %)")
    small = tables.safety_publication(ev, dict(zip(n["group"], n["n"])), 3, "USUBJID", "ARM", "AEDECOD", "serious")
    assert small.frame.iloc[0]["Sham (N = 4), n (%)"] == "<3"


def _results_rows() -> pd.DataFrame:
    from respine_nb import results

    arms = pd.DataFrame({"group": list(config.ARMS), "estimate": [0.75, 0.5], "n": [40, 40]})
    contrast = pd.DataFrame({"group": [C], "estimate": [0.25], "ci_low": [0.05], "ci_high": [0.43], "p_value": [0.03], "n": [80]})
    parts = [
        results.rows(arms, "primary.responders", visit_month=6, method="proportion"),
        results.rows(contrast, "primary.risk_difference", visit_month=6, method="difference; Newcombe CI"),
        results.rows(arms.assign(estimate=[0.1, 0.05]), "safety.sae", method="proportion"),
        results.rows(contrast.assign(estimate=0.05, ci_low=-0.1, ci_high=0.2, p_value=0.68), "safety.sae", method="d"),
    ]
    return pd.concat(parts, ignore_index=True)


def test_table2_reads_the_run_visit():
    from respine_nb import results

    t = results.table2(_results_rows(), visit_month=6, min_cell=5)
    f = t.frame.set_index("Endpoint")
    assert list(f.index) == ["Responders (primary, evaluable)", "Any serious adverse event"]
    assert f.loc["Responders (primary, evaluable)", "Month"] == "6"
    assert f.loc["Responders (primary, evaluable)", "BM-MSC, n/N (%)"] == "30/40 (75.0 %)"
    assert f.loc["Any serious adverse event", "Sham, n/N (%)"] == "<5/40"  # 2 of 40
    assert f.loc["Responders (primary, evaluable)", "p"] == "0.03"
    # at the default visit (12) these month-6 rows are not Table 2's
    assert "Responders (primary, evaluable)" not in set(results.table2(_results_rows()).frame["Endpoint"])


def test_write_table2_same_bytes_twice(tmp_path):
    from respine_nb import results

    derived = tmp_path / "derived"
    derived.mkdir()
    (derived / "results.csv").write_text(results.to_csv_text(_results_rows()))
    files = results.write_table2(derived, tmp_path / "figures", visit_month=6)
    assert sorted(p.name for p in files) == ["table2.docx", "table2.html"]
    first = {p.name: p.read_bytes() for p in files}
    results.write_table2(derived, tmp_path / "figures", visit_month=6)
    assert {p.name: p.read_bytes() for p in files} == first
    assert "30/40 (75.0 %)" in first["table2.html"].decode()


def test_sentences_never_print_a_small_count(data):
    out = stats.suppress_with_contrast(stats.ae_contrasts(*data), 3, by="category").set_index("category")
    any_ae = tables.contrast_text(out.loc["any_ae"], 3)
    assert any_ae == "4/5 (80.0 %) BM-MSC vs <3/4 sham, difference not shown (counts below 3)"
    assert tables.contrast_text(stats.ae_contrasts(*data).set_index("category").loc["sae"]) == (
        "2/5 (40.0 %) BM-MSC vs 0/4 (0.0 %) sham, difference 40.0 [-16.5, 76.9] percentage points (p = 0.44)"
    )
    assert [tables.small_count_text(x, 5) for x in (0, 1, 4, 5, np.nan)] == ["0", "<5", "<5", "5", "\u2014"]
    assert tables.small_count_text(2) == "2"


def test_sentence_without_data():
    empty = stats.new_sensitisation(
        pd.DataFrame(columns=["USUBJID", "ARM", "PARAMCD", "AVISITN", "AVAL"]).astype({"AVISITN": int, "AVAL": float}), 6
    )
    assert tables.contrast_text(empty) == "\u2014 BM-MSC vs \u2014 sham, difference not estimable"
