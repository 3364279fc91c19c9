"""Contrasts the results contract v2 adds: two proportions (Newcombe + Fisher), means by arm, discontinuations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from respine_nb import config, derive, stats

MSC, SHAM = config.ARMS


def participants(x1, n1, x2, n2, **extra):
    return pd.DataFrame(
        {"ARM": [MSC] * n1 + [SHAM] * n2, "AVAL": [1] * x1 + [0] * (n1 - x1) + [1] * x2 + [0] * (n2 - x2), **extra}
    )


def test_compare_proportions_equals_r():
    got = stats.compare_proportions(participants(39, 53, 31, 45)).set_index("group")
    assert list(got.index) == [MSC, SHAM, config.CONTRAST]
    assert got.loc[MSC, "events"] == 39 and got.loc[SHAM, "n"] == 45 and pd.isna(got.loc[MSC, "p_value"])
    c = got.loc[config.CONTRAST]
    # R: fisher.test(matrix(c(39, 14, 31, 14), 2, byrow = TRUE))$p.value
    assert c["p_value"] == pytest.approx(0.6578170629, rel=1e-9)
    assert c["estimate"] == pytest.approx(39 / 53 - 31 / 45) and c["n"] == 98
    # Newcombe hybrid score interval, the same one primary.risk_difference uses (checked against R there)
    assert (c["ci_low"], c["ci_high"]) == pytest.approx(stats.newcombe_ci(39, 53, 31, 45))
    assert "Fisher" in c["method"] and "Newcombe" in c["method"]


def test_compare_proportions_edges_and_per():
    # R: fisher.test(matrix(c(3, 0, 0, 4), 2, byrow = TRUE))$p.value
    perfect = stats.compare_proportions(participants(3, 3, 0, 4)).iloc[-1]
    assert perfect["p_value"] == pytest.approx(0.02857142857, rel=1e-9) and perfect["estimate"] == 1.0
    # R: fisher.test(matrix(c(5, 0, 4, 0), 2, byrow = TRUE))$p.value is 1
    assert stats.compare_proportions(participants(5, 5, 4, 4)).iloc[-1]["p_value"] == 1.0
    empty = stats.compare_proportions(participants(2, 4, 0, 0)).iloc[-1]
    assert np.isnan(empty["estimate"]) and "not estimable" in empty["method"] and empty["n"] == 4
    both = pd.concat([participants(39, 53, 31, 45, AVISITN=12), participants(3, 3, 0, 4, AVISITN=3)])
    per = stats.compare_proportions(both, per="AVISITN")
    assert list(per["AVISITN"]) == [3, 3, 3, 12, 12, 12] and list(per.columns)[0] == "AVISITN"
    assert per.iloc[-1]["p_value"] == pytest.approx(0.6578170629, rel=1e-9)


def test_means_by_arm_equals_r_t_test():
    x = [62, 55, 71, 48, 80, 66, 59]
    df = pd.DataFrame({"ARM": [MSC] * 7 + [SHAM] * 2, "AVAL": x + [40, np.nan], "AVISITN": 12})
    got = stats.means_by_arm(df, per="AVISITN").set_index("group")
    # R: x <- c(62, 55, 71, 48, 80, 66, 59); c(mean(x), sd(x), t.test(x)$conf.int)
    assert got.loc[MSC, ["estimate", "sd", "ci_low", "ci_high"]].to_numpy(float) == pytest.approx(
        [63.0, 10.55146119, 53.24152598, 72.75847402], rel=1e-8
    )
    assert got.loc[MSC, "n"] == 7 and got.loc[SHAM, "n"] == 1 and np.isnan(got.loc[SHAM, "ci_low"])
    assert "one observed value" in got.loc[SHAM, "method"]


def test_discontinued_counts_at_or_before_each_visit():
    adsl = pd.DataFrame({"ARM": [MSC, MSC, MSC, SHAM, SHAM], "DCSMON": [3, 12, np.nan, 18, np.nan]})
    got = stats.discontinued(adsl)
    assert got.to_dict("list") == {
        "visit_month": [12, 12, 24, 24],
        "group": [MSC, SHAM, MSC, SHAM],
        "estimate": [2.0, 0.0, 2.0, 1.0],
        "n": [3, 2, 3, 2],
    }


def test_new_sensitisation_v2_definition():
    T, F, NA = True, False, None
    # (subject, arm, month-0 class I, II, month-6 class I, II)
    people = [
        ("a", MSC, F, F, T, F),  # new: positive class I
        ("b", MSC, F, F, F, T),  # new: positive class II
        ("c", MSC, F, F, F, F),  # negative
        ("d", MSC, T, F, T, F),  # positive at baseline: left out
        ("e", MSC, F, F, F, NA),  # month-6 status unknown (negative needs both): left out
        ("f", MSC, F, NA, T, T),  # baseline status unknown: left out
        ("g", SHAM, F, F, F, F),
        ("h", SHAM, F, F, F, F),
        ("i", SHAM, F, F, NA, T),  # positive (class II) with class I missing
    ]
    imm = pd.DataFrame(
        [(s, 0, a, b) for s, _, a, b, _, _ in people] + [(s, 6, c, d) for s, _, _, _, c, d in people] + [("c", 3, T, T)],
        columns=["subject_id", "visit_month", "anti_hla_class_i", "anti_hla_class_ii"],
    ).astype({"anti_hla_class_i": "boolean", "anti_hla_class_ii": "boolean"})
    imm["dsa"] = pd.array([None] * len(imm), dtype="boolean")
    adsl = pd.DataFrame({"USUBJID": [p[0] for p in people], "ARM": [p[1] for p in people]})
    got = stats.new_sensitisation(derive.adis({"immunology": imm}, adsl), 6).set_index("group")
    assert got.loc[MSC, ["events", "n"]].tolist() == [2, 3] and got.loc[SHAM, ["events", "n"]].tolist() == [1, 3]
    # R: fisher.test(matrix(c(2, 1, 1, 2), 2, byrow = TRUE))$p.value
    assert got.loc[config.CONTRAST, "p_value"] == pytest.approx(1.0)
    assert got.loc[config.CONTRAST, "estimate"] == pytest.approx(1 / 3)
    assert "month 6" in got.loc[MSC, "method"] and "Fisher" in got.loc[config.CONTRAST, "method"]


def test_t2_mmrm_with_site_stratum_equals_nlme_gls():
    """tests/data/t2_mmrm.csv: the T2 changes of the first synthetic cohort (rounded to 0.1 ms)."""
    raw = pd.read_csv(config.ROOT / "tests" / "data" / "t2_mmrm.csv")
    data = raw.rename(
        columns={
            "subject_id": "USUBJID",
            "arm": "ARM",
            "site": "SITEID",
            "visit_month": "AVISITN",
            "baseline": "BASE",
            "change": "CHG",
        }
    ).assign(PARAMCD="T2NP")
    got = stats.t2_mmrm(data).set_index("visit_month")
    # R (nlme 3.1): d$stratum as stats.site_strata (sites < 5 participants pooled); d$arm with levels Sham, BM-MSC;
    # f <- gls(change ~ visit * arm + visit * baseline + stratum, data = d, method = "REML",
    #          correlation = corSymm(form = ~ k | subject_id), weights = varIdent(form = ~ 1 | visit))
    # estimate and SE of the arm effect at each visit from coef(f) and vcov(f)
    ref = {6: (0.4607125019, 0.9879728818), 12: (0.3708160195, 1.2392947477), 24: (-2.6917333389, 1.7064152963)}
    for visit, (est, se) in ref.items():
        row = got.loc[visit]
        assert row["estimate"] == pytest.approx(est, rel=1e-4)
        half = (row["ci_high"] - row["ci_low"]) / 2
        from scipy import stats as sps

        assert half / sps.t.ppf(0.975, row["df"]) == pytest.approx(se, rel=1e-4)
        assert row["n"] == 107 and "site stratum" in row["method"]
    # a visit nobody reached is reported empty with the reason
    short = stats.t2_mmrm(data[data["AVISITN"] != 24]).set_index("visit_month")
    assert np.isnan(short.loc[24, "estimate"]) and "not estimable" in short.loc[24, "method"]
    assert short.loc[12, "estimate"] == pytest.approx(got.loc[12, "estimate"], abs=2)
