"""Secondary and MRI statistics against R reference values (computed once; R not needed here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from respine_nb import config, derive, stats, tables

# The reference files keep the names their R scripts read; the tests give them the ADaM names.
PAIRED = (
    pd.read_csv(config.ROOT / "tests" / "data" / "paired_small.csv")
    .rename(columns={"subject_id": "USUBJID", "arm": "ARM", "baseline": "BASE", "value": "AVAL"})
    .assign(CHG=lambda d: d["AVAL"] - d["BASE"])
)
ANOVA = pd.read_csv(config.ROOT / "tests" / "data" / "anova_small.csv").rename(
    columns={"subject_id": "USUBJID", "arm": "ARM", "visit_month": "AVISITN", "change": "CHG"}
)


def test_change_summary_against_t_test():
    got = stats.change_summary(PAIRED).set_index("group")
    # R: t.test(x$change); t.test(x$value, x$baseline, paired = TRUE)$p.value   (x: one arm)
    assert got.loc["BM-MSC", "estimate"] == pytest.approx(-2.36666666667, rel=1e-9)
    assert got.loc["BM-MSC", "ci_low"] == pytest.approx(-5.31553546672, rel=1e-9)
    assert got.loc["BM-MSC", "ci_high"] == pytest.approx(0.582202133389, rel=1e-9)
    assert got.loc["BM-MSC", "p_value"] == pytest.approx(0.105021096989, rel=1e-6)
    assert got.loc["Sham", "ci_low"] == pytest.approx(-3.15096467413, rel=1e-9)
    assert got.loc["Sham", "p_value"] == pytest.approx(0.106181166443, rel=1e-6)


def test_ancova_against_lm():
    got = stats.ancova(PAIRED).iloc[0]
    # R: f <- lm(change ~ msc + baseline, d); summary(f)$coefficients[2, ]; confint(f)[2, ]
    assert got["estimate"] == pytest.approx(-0.631391149997, rel=1e-9)
    assert got["se"] == pytest.approx(1.53418447369, rel=1e-9)
    assert got["p_value"] == pytest.approx(0.684840512969, rel=1e-9)
    assert got["ci_low"] == pytest.approx(-3.82190242186, rel=1e-9)
    assert got["ci_high"] == pytest.approx(2.55912012186, rel=1e-9)


def test_correlation_against_cor_test():
    got = stats.correlation(PAIRED["CHG"], PAIRED["symptom"])
    # R: cor.test(d$change, d$symptom)
    assert got["estimate"] == pytest.approx(-0.353803483034, rel=1e-9)
    assert got["ci_low"] == pytest.approx(-0.662627851316, rel=1e-6)
    assert got["ci_high"] == pytest.approx(0.057849721897, rel=1e-6)
    assert got["p_value"] == pytest.approx(0.0898648414023, rel=1e-6)
    assert np.isnan(stats.correlation([1, 2], [2, 1])["estimate"])


def test_mixed_anova_against_aov():
    eff = ANOVA.assign(PARAMCD="VAS")
    got = stats.mixed_anova_completers(eff, "VAS").set_index("Source")
    # R: summary(aov(change ~ arm * visit + Error(subject_id / visit), data = a))
    assert got.loc["arm", "F"] == pytest.approx(3.76072, rel=1e-5)
    assert got.loc["visit_month", "F"] == pytest.approx(44.53846, rel=1e-5)
    assert got.loc["Interaction", "F"] == pytest.approx(2.04008, rel=1e-5)
    assert got.loc["Interaction", "p_unc"] == pytest.approx(0.14478, rel=1e-4)


def test_mean_ci_edge_cases():
    assert stats.mean_ci([])["n"] == 0 and np.isnan(stats.mean_ci([5.0])["ci_low"])
    # R: t.test(c(1, 2, 3, 4))$conf.int -> 0.445739743239 4.554260256761
    got = stats.mean_ci([1, 2, 3, 4, None])
    assert got["n"] == 4 and got["ci_low"] == pytest.approx(0.445739743239) and got["ci_high"] == pytest.approx(4.554260256761)


def test_mcid_and_responders_by_visit(default_tables):
    eff = derive.adeff(default_tables)
    mc = stats.mcid_proportions(eff)
    assert set(mc["measure"]) == {"VAS", "ODI"} and len(mc) == 2 * 2 * 5
    row = mc[(mc["measure"] == "VAS") & (mc["group"] == "Sham") & (mc["visit_month"] == 12)].iloc[0]
    d = eff[(eff["PARAMCD"] == "VAS") & (eff["AVISITN"] == 12) & (eff["ARM"] == "Sham")]
    ok = d["BASE"].notna() & d["AVAL"].notna()
    assert row["n"] == ok.sum() and row["events"] == ((d["BASE"] - d["AVAL"])[ok] >= 15).sum()
    rv = stats.responders_by_visit(eff).set_index(["visit_month", "group"])
    assert rv.loc[(12, "BM-MSC"), "events"] == 39 and rv.loc[(12, "BM-MSC"), "n"] == 53


def test_grade_tables(default_tables):
    mri = derive.admri(default_tables)
    raw = default_tables["mri"]
    assert len(mri[mri["PARAMCD"] == "PFIRR"]) == len(raw) and mri["PARAMCD"].unique().tolist() == ["T2NP", "PFIRR", "DISCHT"]
    shift = stats.grade_shift(mri, 12)
    worse = stats.grade_worsening(mri, 12).set_index("group")
    for arm in config.ARMS:
        s = shift[shift["group"] == arm]
        assert s["n"].sum() == worse.loc[arm, "n"]
        assert s.loc[s["grade"] > s["base_grade"], "n"].sum() == worse.loc[arm, "events"]


def test_formatting():
    assert tables.fmt_ci(-1.6, -3.2, -0.001) == "-1.6 [-3.2, 0.0]"  # never "-0.0"
    assert tables.fmt_ci(0.736, 0.604, 0.836, digits=0, percent=True) == "74% [60, 84]"
    assert tables.fmt_p(0.7729) == "0.77" and tables.fmt_p(0.0042) == "0.004" and tables.fmt_p(1e-5) == "<0.001"
    assert tables.fmt_p(float("nan")) == ""


def test_change_by_visit_is_change_summary_and_ancova_per_visit(default_tables):
    mri = derive.admri(default_tables)
    every = stats.change_by_visit(derive.paired_visit(mri))
    assert sorted(every["visit_month"].unique()) == [6, 12, 24]
    at12 = every[every["visit_month"] == 12].reset_index(drop=True)
    pairs = derive.paired_visit(mri, 12)
    one = pd.concat([stats.change_summary(pairs), stats.ancova(pairs)], ignore_index=True)
    assert at12["estimate"].tolist() == one["estimate"].tolist() and at12["group"].tolist() == one["group"].tolist()
    assert 12 not in set(stats.change_by_visit(derive.paired_visit(mri), skip=(12,))["visit_month"])
    counts = stats.images_by_visit(mri)
    assert (
        list(counts.columns) == list(config.ARMS)
        and counts.loc[0].sum() == mri[(mri["PARAMCD"] == "T2NP") & (mri["AVISITN"] == 0)]["AVAL"].notna().sum()
    )
