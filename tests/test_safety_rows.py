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
