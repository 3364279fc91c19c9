"""Reference-based multiple imputation: the properties that must hold (no R package available here: rbmi is on CRAN only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from respine_nb import stats


def _cohort(seed: int = 1, n: int = 60, effect: float = -20.0) -> pd.DataFrame:
    """Two arms, VAS at 0, 1, 3, 6, 12 with a correlated profile; BM-MSC improves by ``effect`` more."""
    rng = np.random.default_rng(seed)
    arm = np.array(["BM-MSC"] * n + ["Sham"] * n)
    base = rng.normal(65, 10, 2 * n)
    subject = rng.normal(0, 8, 2 * n)
    out = {"subject_id": [f"S{i:03d}" for i in range(2 * n)], "arm": arm, "site": "A", "vas_0": base}
    for k, v in enumerate((1, 3, 6, 12)):
        gain = (k + 1) / 4 * (-10 + effect * (arm == "BM-MSC"))
        out[f"vas_{v}"] = base + gain + subject + rng.normal(0, 6, 2 * n)
    return pd.DataFrame(out)


def _drop(df: pd.DataFrame, who, after: int = 3) -> pd.DataFrame:
    df = df.copy()
    for v in (1, 3, 6, 12):
        if v > after:
            df.loc[who, f"vas_{v}"] = np.nan
    return df


def test_no_missing_data_equals_complete_data_ancova():
    df = _cohort()
    got = stats.mi_reference_based(df, "vas", 12, "j2r", m=5).iloc[0]
    fit = smf.ols("ch ~ msc + vas_0", data=df.assign(ch=df["vas_12"] - df["vas_0"], msc=(df["arm"] == "BM-MSC") * 1.0)).fit()
    assert got["estimate"] == pytest.approx(fit.params["msc"], rel=1e-12)
    assert got["se"] == pytest.approx(fit.bse["msc"], rel=1e-12)
    assert got["p_value"] == pytest.approx(fit.pvalues["msc"], rel=1e-10)
    assert got["df"] == fit.df_resid and got["n"] == len(df)


def test_missing_only_in_reference_arm_j2r_equals_mar():
    df = _cohort()
    sham = df.index[(df["arm"] == "Sham").to_numpy()][:15]
    miss = _drop(df, sham)
    j2r = stats.mi_reference_based(miss, "vas", 12, "j2r", m=20, seed=4).iloc[0]
    mar = stats.mi_reference_based(miss, "vas", 12, "mar", m=20, seed=4).iloc[0]
    cr = stats.mi_reference_based(miss, "vas", 12, "cr", m=20, seed=4).iloc[0]
    for col in ("estimate", "se", "df", "p_value"):
        assert j2r[col] == mar[col] == cr[col]


def test_strategies_order_when_treated_participants_leave():
    # A benefit (negative change) in BM-MSC: J2R removes it after dropout, CR keeps the part carried by
    # the observed values through the correlation, MAR keeps it all: MAR < CR < J2R.
    df = _cohort(seed=2, n=80)
    msc = df.index[(df["arm"] == "BM-MSC").to_numpy()][:30]
    miss = _drop(df, msc, after=3)
    est = {s: stats.mi_reference_based(miss, "vas", 12, s, m=40, seed=5).iloc[0]["estimate"] for s in ("mar", "cr", "j2r")}
    assert est["mar"] < est["cr"] < est["j2r"] < 0


def test_not_estimable_and_input_untouched():
    df = _cohort()
    before = df.copy()
    stats.mi_reference_based(_drop(df, df.index[:5]), "vas", 12, m=3)
    pd.testing.assert_frame_equal(df, before)
    nobody = stats.mi_reference_based(df.assign(vas_12=np.nan), "vas", 12, m=3).iloc[0]
    assert np.isnan(nobody["estimate"]) and "not estimable: fewer than 2 observed values at month 12" in nobody["method"]
    sham_only = stats.mi_reference_based(df[df["arm"] == "Sham"], "vas", 12, m=3).iloc[0]
    assert "not estimable" in sham_only["method"]
    with pytest.raises(ValueError):
        stats.mi_reference_based(df, strategy="nonsense")
