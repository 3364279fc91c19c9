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


def _gaps(seed: int = 3) -> pd.DataFrame:
    """Dropouts in BM-MSC after month 3, and intermittent gaps in both arms (every kind of pattern)."""
    df = _cohort(seed=2, n=80)
    out = _drop(df, df.index[(df["arm"] == "BM-MSC").to_numpy()][:30], after=3)
    rng = np.random.default_rng(seed)
    for v in (1, 3, 6, 12):
        out.loc[rng.random(len(out)) < 0.15, f"vas_{v}"] = np.nan
    return out


def test_strategies_analysed_together_equal_separate_calls():
    # reference_based_by_measure fits each bootstrap sample once for all strategies: the rows must be
    # those of separate calls, to the last bit
    df = _gaps()
    together = stats.reference_based_by_measure(df, {"VAS": "vas"}, 12, ("cr", "mar", "j2r"), m=8, seed=11)
    for i, s in enumerate(("cr", "mar", "j2r")):
        alone = stats.mi_reference_based(df, "vas", 12, s, m=8, seed=11)
        pd.testing.assert_frame_equal(together.drop(columns="measure").iloc[[i]].reset_index(drop=True), alone, check_exact=True)


def _em_row_by_row(Y, X, tol=1e-10, max_iter=2000):
    """The EM written row by row, as in the textbook: the reference for the pattern-wise fit_mvn_em."""
    n, k = Y.shape
    obs = ~np.isnan(Y)
    B = np.column_stack([np.linalg.lstsq(X[obs[:, j]], Y[obs[:, j], j], rcond=None)[0] for j in range(k)])
    S = np.diag([np.nanvar(Y[:, j] - X @ B[:, j]) + 1e-8 for j in range(k)])
    for _ in range(max_iter):
        mu = X @ B
        Yhat, C = np.where(obs, Y, 0.0), np.zeros((k, k))
        for i in range(n):
            o, mis = obs[i], ~obs[i]
            if not mis.any():
                continue
            coef = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, mis)]).T if o.any() else np.zeros((mis.sum(), 0))
            Yhat[i, mis] = mu[i, mis] + coef @ (Y[i, o] - mu[i, o])
            C[np.ix_(mis, mis)] += S[np.ix_(mis, mis)] - coef @ S[np.ix_(o, mis)]
        B_new = np.linalg.lstsq(X, Yhat, rcond=None)[0]
        R = Yhat - X @ B_new
        S_new = (R.T @ R + C) / n
        change = max(np.abs(B_new - B).max(), np.abs(S_new - S).max())
        B, S = B_new, S_new
        if change < tol:
            break
    return B, (S + S.T) / 2


def test_em_by_pattern_equals_the_row_by_row_em():
    df = _gaps()
    Y = df[["vas_1", "vas_3", "vas_6", "vas_12"]].to_numpy()
    Y[:3] = np.nan  # nothing observed
    X = np.column_stack([np.ones(len(df)), (df["arm"] == "BM-MSC").to_numpy(float), df["vas_0"].to_numpy()])
    B, S = stats.fit_mvn_em(Y, X)
    B_ref, S_ref = _em_row_by_row(Y, X)
    np.testing.assert_allclose(B, B_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(S, S_ref, rtol=1e-9, atol=1e-9)
