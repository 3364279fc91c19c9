"""Helpers of notebooks 03, 04 and 05 (issues 12 and 13): secondary.mean, the MCID and responder
contrasts per visit, the reference-based rows by measure, Table 3 with Holm p, the within-arm change
without a test, Session.save_publication, and the estimand statements as Markdown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from respine_nb import config, derive, estimands, session, stats, tables

MSC, SHAM = config.ARMS


def binary_records(paramcd, visit, x1, n1, x2, n2, missing=0):
    """ADEFF-like records of a binary parameter at one visit (``missing`` extra not-evaluable rows per arm)."""
    arm = [MSC] * (n1 + missing) + [SHAM] * (n2 + missing)
    aval = [1.0] * x1 + [0.0] * (n1 - x1) + [np.nan] * missing + [1.0] * x2 + [0.0] * (n2 - x2) + [np.nan] * missing
    return pd.DataFrame({"PARAMCD": paramcd, "AVISITN": visit, "ARM": arm, "AVAL": aval})


def test_means_by_measure_is_t_test_per_measure_arm_and_visit():
    eff = pd.DataFrame(
        {
            "PARAMCD": ["VAS"] * 7 + ["ODI"] * 2,
            "AVISITN": [0] * 5 + [12, 12, 0, 0],
            "ARM": [MSC] * 5 + [SHAM, SHAM, MSC, SHAM],
            "AVAL": [1, 2, 3, 4, 10, np.nan, 7, 30, 40],
        }
    )
    before = eff.copy()
    got = stats.means_by_measure(eff)
    pd.testing.assert_frame_equal(eff, before)  # the input is not modified
    assert list(got.columns) == ["measure", "visit_month", "group", "estimate", "sd", "ci_low", "ci_high", "n", "method"]
    # PCS and MCS have no record: no row; each measure gets each arm at each visit it has
    assert list(zip(got["measure"], got["visit_month"], got["group"])) == [
        ("VAS", 0, MSC),
        ("VAS", 0, SHAM),
        ("VAS", 12, MSC),
        ("VAS", 12, SHAM),
        ("ODI", 0, MSC),
        ("ODI", 0, SHAM),
    ]
    r = got.iloc[0]
    # R: t.test(c(1, 2, 3, 4, 10))$conf.int
    assert r["estimate"] == 4 and r["n"] == 5
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((-0.389945165425, 8.389945165425), rel=1e-9)
    no_value = got.iloc[2]  # BM-MSC at month 12: no record
    assert no_value["n"] == 0 and np.isnan(no_value["estimate"]) and "not estimable" in no_value["method"]
    one = got.iloc[3]  # Sham at month 12: one observed value (the NaN left out)
    assert one["n"] == 1 and one["estimate"] == 7 and np.isnan(one["ci_low"])


def test_compare_by_visit_writes_every_visit_and_equals_r():
    eff = pd.concat(
        [
            binary_records("RESP", 1, 7, 10, 2, 10, missing=2),
            binary_records("RESP", 3, 4, 6, 1, 6),
            binary_records("X", 6, 1, 1, 1, 1),
        ]
    )
    got = stats.compare_by_visit(eff, "RESP", label="responder")
    assert list(got.columns) == ["visit_month", "group", "events", "n", "estimate", "ci_low", "ci_high", "p_value", "method"]
    assert list(got["visit_month"]) == [v for v in config.POST_BASELINE_VISITS for _ in range(3)]
    c = got[got["group"] == config.CONTRAST].set_index("visit_month")
    # R: fisher.test(matrix(c(7, 3, 2, 8), 2, byrow = TRUE))$p.value; fisher.test(matrix(c(4, 2, 1, 5), 2, byrow = TRUE))$p.value
    assert c.loc[1, "p_value"] == pytest.approx(0.0697785186949, rel=1e-9)
    assert c.loc[3, "p_value"] == pytest.approx(0.242424242424, rel=1e-9)
    assert c.loc[1, "n"] == 20 and c.loc[1, "estimate"] == pytest.approx(0.5)  # the not-evaluable rows left out
    # a visit without records of the parameter (another parameter there does not count): empty, with the reason
    assert c.loc[[6, 12, 24], "estimate"].isna().all() and c.loc[[6, 12, 24], "method"].str.contains("not estimable").all()
    assert got["method"].str.startswith("responder; ").all()
    arms = got[(got["visit_month"] == 1) & (got["group"] != config.CONTRAST)]
    pd.testing.assert_frame_equal(
        arms.drop(columns=["visit_month", "method"]).reset_index(drop=True),
        stats.compare_proportions(eff[(eff["PARAMCD"] == "RESP") & (eff["AVISITN"] == 1)])
        .iloc[:2]
        .drop(columns="method")
        .reset_index(drop=True),
    )


def test_mcid_by_visit_names_the_measure_and_the_threshold():
    eff = pd.concat([binary_records("MCIDVAS", 12, 7, 10, 2, 10), binary_records("MCIDODI", 12, 4, 6, 1, 6)])
    got = stats.mcid_by_visit(eff)
    assert list(got["measure"].unique()) == ["VAS", "ODI"] and len(got) == 2 * 3 * len(config.POST_BASELINE_VISITS)
    at = got[(got["visit_month"] == 12) & (got["group"] == config.CONTRAST)].set_index("measure")
    assert at.loc["VAS", "p_value"] == pytest.approx(0.0697785186949, rel=1e-9)
    assert at.loc["ODI", "p_value"] == pytest.approx(0.242424242424, rel=1e-9)
    assert got[got["measure"] == "VAS"]["method"].str.startswith("MCID (Ostelo 2008): improvement >= 15;").all()
    assert got[got["measure"] == "ODI"]["method"].str.startswith("MCID (Ostelo 2008): improvement >= 10;").all()


def _wide(seed=3, n=30):
    rng = np.random.default_rng(seed)
    arm = np.array([MSC] * n + [SHAM] * n)
    base = rng.normal(60, 10, 2 * n)
    wide = pd.DataFrame({"arm": arm, "vas_0": base, "odi_0": base / 2})
    for k, v in enumerate(config.POST_BASELINE_VISITS):
        wide[f"vas_{v}"] = base - 3 * (k + 1) + rng.normal(0, 5, 2 * n)
        wide[f"odi_{v}"] = base / 2 - 2 * (k + 1) + rng.normal(0, 4, 2 * n)
    wide.loc[rng.choice(n, 6, replace=False), ["vas_12", "vas_24", "odi_12", "odi_24"]] = np.nan  # BM-MSC dropouts
    return wide


def test_reference_based_by_measure_stacks_the_single_analyses():
    wide = _wide()
    got = stats.reference_based_by_measure(wide, visit_month=12, strategies=("mar", "j2r"), m=5, seed=7)
    assert list(zip(got["measure"], got["strategy"])) == [("VAS", "mar"), ("VAS", "j2r"), ("ODI", "mar"), ("ODI", "j2r")]
    assert got.columns[0] == "measure"
    one = stats.mi_reference_based(wide, "odi", 12, "j2r", m=5, seed=7)
    row = got.iloc[3]
    for col in ("estimate", "ci_low", "ci_high", "p_value", "n"):
        assert row[col] == pytest.approx(one[col].iloc[0])


def test_table3_secondary_shows_holm_beside_raw_and_names_the_family():
    means = pd.DataFrame(
        {
            "measure": ["VAS"] * 4,
            "visit_month": [0, 0, 12, 12],
            "group": [MSC, SHAM, MSC, SHAM],
            "estimate": [65.0, 66.0, 44.6, 46.9],
            "sd": [11.3, 11.6, 18.8, np.nan],
            "n": [58, 56, 53, 1],
        }
    )
    rows = pd.DataFrame(
        {
            "analysis_id": ["secondary.mmrm.vas_pain", "secondary.mmrm.odi"],
            "group": config.CONTRAST,
            "visit_month": [12, 12],
            "estimate": [-2.1, -1.0],
            "ci_low": [-9.1, -6.1],
            "ci_high": [4.8, 4.1],
            "p_value": [0.01, 0.04],
        }
    )
    # R: p.adjust(c(0.01, 0.04), "holm") is 0.02, 0.04
    pub = tables.table3_secondary(means, rows.assign(p_holm=stats.holm(rows["p_value"])))
    f = pub.frame
    # the ODI contrast has its row even without means (a dash per arm)
    assert "p (Holm)" in f.columns and list(f["Month"]) == ["0", "12", "12"]
    assert f.loc[1, "p"] == "0.01" and f.loc[1, "p (Holm)"] == "0.02" and f.loc[2, "p (Holm)"] == "0.04"
    assert f.loc[1, "LS-mean difference [95 % CI]"] == "-2.1 [-9.1, 4.8]"
    assert f.loc[1, "Sham: n"] == "1" and f.loc[0, "BM-MSC: mean (SD)"] == "65.0 (11.3)"
    assert not f.apply(lambda s: s.str.contains("nan|NaN")).any().any()
    assert any("2 MMRM contrasts" in note for note in pub.notes)
    assert "p (Holm)" not in tables.table3_secondary(means, rows).frame.columns  # no Holm column given: none shown


def test_holm_equals_r():
    # R: p.adjust(c(0.01, 0.04, 0.03, NA, 0.5), "holm")
    got = stats.holm([0.01, 0.04, 0.03, np.nan, 0.5])
    assert np.isnan(got[3])
    assert got[[0, 1, 2, 4]] == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_change_summary_without_test_has_no_within_arm_p():
    pairs = pd.DataFrame({"ARM": [MSC] * 3 + [SHAM] * 3, "BASE": [60.0] * 6, "AVAL": [58, 57, 55, 61, 59, 60.0]})
    pairs["CHG"] = pairs["AVAL"] - pairs["BASE"]
    tested = stats.change_summary(pairs)
    described = stats.change_summary(pairs, test=False)
    assert "p_value" in tested and "p_value" not in described
    assert not described["method"].str.contains("paired").any()
    pd.testing.assert_frame_equal(described.drop(columns="method"), tested.drop(columns=["p_value", "method"]))
    by_visit = stats.change_by_visit(pairs.assign(AVISITN=6), test=False)
    assert by_visit.loc[by_visit["group"] != config.CONTRAST, "p_value"].isna().all()


def test_save_publication_writes_html_and_docx_under_the_notebook_name(tmp_path):
    nb = session.Session(
        name="03_secondary_endpoints",
        data=None,
        root=tmp_path,
        derived_dir=tmp_path / "derived",
        figures_dir=tmp_path / "figures",
        is_default_data=False,
        synthetic=False,
    )
    pub = tables.results_table(pd.DataFrame({"group": [MSC], "n": [3.0]}), "A table")
    nb.save_publication(pub, "table3")
    names = sorted(p.name for p in nb.written)
    assert names == ["03_secondary_endpoints-table3.docx", "03_secondary_endpoints-table3.html"]
    assert all((tmp_path / "figures" / n).is_file() for n in names)
    first = (tmp_path / "figures" / names[0]).read_bytes()
    nb.save_publication(pub, "table3")
    assert (tmp_path / "figures" / names[0]).read_bytes() == first  # reproducible bytes


def test_results_table_keeps_arm_names_as_labels():
    f = tables.results_table(pd.DataFrame({"visit_month": [0], MSC: [57], SHAM: [54]})).frame
    assert list(f.columns) == ["Month", MSC, SHAM] and list(f.iloc[0]) == ["0", "57", "54"]


@pytest.mark.parametrize("notebook", sorted(estimands.BUILDERS))
@pytest.mark.parametrize("values", [{}, {"population": "treated"}, {"population": "nri", "ice_strategy": "hypothetical"}])
def test_estimand_markdown_keeps_each_event_whole(notebook, values):
    # markdown() splits the events at "; ": an event's own text must not contain one
    text = estimands.markdown(estimands.table(notebook, values))
    bullets = [line for line in text.splitlines() if line.startswith("  - ")]
    assert bullets and all(b.count("(") == b.count(")") for b in bullets), bullets


def test_wide_outcomes_feed_the_reference_based_rows():
    eff = pd.DataFrame(
        {
            "USUBJID": ["a", "a", "b", "b"],
            "ARM": [MSC, MSC, SHAM, SHAM],
            "SITEID": ["s"] * 4,
            "TRTFL": ["Y"] * 4,
            "PARAMCD": ["VAS"] * 4,
            "AVISITN": [0, 12, 0, 12],
            "AVAL": [60.0, 40.0, 62.0, np.nan],
        }
    )
    got = stats.reference_based_by_measure(derive.wide_outcomes(eff, ("VAS",)), {"VAS": "vas"}, 12, ("j2r",), m=2, seed=1)
    assert len(got) == 1 and np.isnan(got["estimate"].iloc[0]) and "not estimable" in got["method"].iloc[0]


def _means_by_arm_before(df, value, by, per):
    """means_by_arm as it was (every column carried through each visit's and arm's selection)."""
    rows, method = [], "mean; t CI"
    for level_value in sorted(df[per].dropna().unique()):
        d = df[df[per] == level_value]
        for arm in config.ARMS:
            s = stats.mean_ci(d.loc[d[by] == arm, value], config.CI_LEVEL)
            why = (
                stats.not_estimable(method, f"no observed value in {arm}")
                if s["n"] == 0
                else method + "; CI not estimable: one observed value"
                if s["n"] == 1
                else method
            )
            row = {"group": arm, "estimate": s["mean"], "sd": s["sd"], "ci_low": s["ci_low"], "ci_high": s["ci_high"]}
            rows.append({per: level_value} | row | {"n": s["n"], "method": why})
    return pd.DataFrame(rows, columns=[per, "group", "estimate", "sd", "ci_low", "ci_high", "n", "method"])


def _means_by_measure_before(adeff, measures=config.MEASURE_PARAMS):
    """means_by_measure as it was (every column of ADEFF carried through each selection)."""
    parts = [
        _means_by_arm_before(adeff[adeff["PARAMCD"] == m], "AVAL", "ARM", "AVISITN").assign(measure=m)
        for m in measures
        if (adeff["PARAMCD"] == m).any()
    ]
    out = pd.concat(parts, ignore_index=True).rename(columns={"AVISITN": "visit_month"})
    out["visit_month"] = out["visit_month"].astype(int)
    return out[["measure", "visit_month", "group", "estimate", "sd", "ci_low", "ci_high", "n", "method"]]


def test_means_by_measure_same_as_before_on_awkward_records(default_tables):
    # the reference cohort, plus records without a value, a visit one arm never reached, a single
    # value, a measure absent, extra columns; the same table to the bit
    eff = derive.derive_all(default_tables, 12)["adeff"]
    odd = pd.DataFrame(
        {
            "PARAMCD": ["PCS"] * 4 + ["MCS"],
            "AVISITN": [24, 24, 24, 3, 6],
            "ARM": [MSC, MSC, MSC, SHAM, MSC],
            "AVAL": [np.nan, 41.5, 38.0, 50.0, np.nan],
            "USUBJID": ["x1", "x2", "x3", "x4", "x5"],
        }
    )
    eff = pd.concat([eff, odd], ignore_index=True)
    for measures in (config.MEASURE_PARAMS, ("VAS", "nothing", "PCS")):
        got = stats.means_by_measure(eff, measures)
        pd.testing.assert_frame_equal(got, _means_by_measure_before(eff, measures), check_exact=True)


def _compare_by_visit_before(adeff, paramcd, visits=config.POST_BASELINE_VISITS, label=""):
    """compare_by_visit as it was: every ADEFF column carried through each visit's selection."""
    d = adeff[adeff["PARAMCD"] == paramcd]
    parts = [stats.compare_proportions(d[d["AVISITN"] == v]).assign(visit_month=int(v)) for v in visits]
    out = pd.concat(parts, ignore_index=True)[
        ["visit_month", "group", "events", "n", "estimate", "ci_low", "ci_high", "p_value", "method"]
    ]
    if label:
        out["method"] = [f"{label}; {m}" for m in out["method"]]
    return out


def test_compare_by_visit_same_as_before(default_tables):
    # the reference cohort plus an arm without anyone at month 24, a visit nobody reached and extra columns
    eff = derive.derive_all(default_tables, 12)["adeff"]
    eff = eff[~((eff["ARM"] == SHAM) & (eff["AVISITN"] == 24))]
    for paramcd, visits in (("RESP", config.POST_BASELINE_VISITS), ("MCIDVAS", (1, 6, 36)), ("MCIDODI", ())):
        if not visits:
            assert stats.compare_by_visit(eff, paramcd, visits).empty
            continue
        got = stats.compare_by_visit(eff, paramcd, visits, label="x")
        pd.testing.assert_frame_equal(got, _compare_by_visit_before(eff, paramcd, visits, "x"), check_exact=True)
