"""Reference-based multiple imputation (Carpenter, Roger and Kenward 2013), as R ``rbmi`` with ``method_approxbayes``.

The post-baseline values of one measure follow a multivariate normal model: mean
``a_v + g_v * BM-MSC + b_v * baseline`` at each visit v (arm by visit, baseline by visit), one
unstructured covariance shared by the arms, fitted by maximum likelihood (EM) on a bootstrap sample
of participants drawn within each arm (approximate Bayesian bootstrap, one per imputation).
Missing values are then drawn from their conditional normal distribution given the participant's
observed values, with the participant's mean profile set by the strategy:

- ``mar``: the own arm's mean at every visit;
- ``j2r`` (jump to reference): a BM-MSC participant's mean is BM-MSC's up to the last observed
  visit and Sham's afterwards (intermittent gaps before it are imputed under MAR, as rbmi);
- ``cr`` (copy reference): a BM-MSC participant's mean is Sham's at every visit.

Sham participants are imputed under MAR in every strategy. Each completed dataset is analysed by
ANCOVA of the change at the visit on arm and baseline; Rubin's rules with Barnard-Rubin df
(complete-data df n - 3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import config
from .binary import arms_without, not_estimable_row
from .missing import mc_error, pooled_inference

__all__ = ["STRATEGIES", "fit_mvn_em", "mi_reference_based", "reference_based_by_measure"]

STRATEGIES = {"mar": "missing at random", "j2r": "jump to reference", "cr": "copy reference"}


def fit_mvn_em(Y: np.ndarray, X: np.ndarray, tol: float = 1e-10, max_iter: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Maximum likelihood multivariate regression with missing outcomes (EM algorithm).

    Parameters
    ----------
    Y : numpy.ndarray
        n x K outcomes, NaN = missing (any pattern).
    X : numpy.ndarray
        n x p covariates (complete), the same for every column of Y.
    tol : float
        Convergence on the largest change of any parameter.
    max_iter : int
        Iteration limit.

    Returns
    -------
    tuple of numpy.ndarray
        ``(B, Sigma)``: p x K coefficients (mean of row i = X[i] @ B) and the K x K covariance.
    """
    n, k = Y.shape
    obs = ~np.isnan(Y)
    patterns = {}
    for i, row in enumerate(obs):
        patterns.setdefault(row.tobytes(), []).append(i)
    groups = [(np.array(ix), obs[ix[0]]) for ix in patterns.values()]
    xtx_inv = np.linalg.pinv(X.T @ X)
    B = np.zeros((X.shape[1], k))
    for j in range(k):
        o = obs[:, j]
        B[:, j] = np.linalg.lstsq(X[o], Y[o, j], rcond=None)[0]
    S = np.diag([np.nanvar(Y[:, j] - X @ B[:, j]) + 1e-8 for j in range(k)])
    for _ in range(max_iter):
        Yhat = np.where(obs, Y, 0.0)
        C = np.zeros((k, k))
        mu = X @ B
        for ix, o in groups:
            mis = ~o
            if not mis.any():
                continue
            if o.any():
                coef = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, mis)]).T  # S_mo S_oo^-1
                Yhat[np.ix_(ix, mis)] = mu[np.ix_(ix, mis)] + (Y[np.ix_(ix, o)] - mu[np.ix_(ix, o)]) @ coef.T
                cond = S[np.ix_(mis, mis)] - coef @ S[np.ix_(o, mis)]
            else:
                Yhat[np.ix_(ix, mis)] = mu[np.ix_(ix, mis)]
                cond = S[np.ix_(mis, mis)]
            C[np.ix_(mis, mis)] += len(ix) * cond
        B_new = xtx_inv @ X.T @ Yhat
        R = Yhat - X @ B_new
        S_new = (R.T @ R + C) / n
        change = max(np.abs(B_new - B).max(), np.abs(S_new - S).max())
        B, S = B_new, S_new
        if change < tol:
            break
    return B, (S + S.T) / 2


def _draw(Y, X, Xref, B, S, strategy, msc, rng):
    """One completed copy of Y: missing values drawn from their conditional normal under the strategy."""
    out = Y.copy()
    mu_own, mu_ref = X @ B, Xref @ B
    for i in np.flatnonzero(np.isnan(Y).any(axis=1)):
        o = ~np.isnan(Y[i])
        mis = ~o
        mu = mu_own[i].copy()
        if msc[i] and strategy == "cr":
            mu = mu_ref[i].copy()
        elif msc[i] and strategy == "j2r":
            last = np.flatnonzero(o).max() if o.any() else -1
            mu[last + 1 :] = mu_ref[i, last + 1 :]
        if o.any():
            coef = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, mis)]).T
            m_cond = mu[mis] + coef @ (Y[i, o] - mu[o])
            c_cond = S[np.ix_(mis, mis)] - coef @ S[np.ix_(o, mis)]
        else:
            m_cond, c_cond = mu[mis], S[np.ix_(mis, mis)]
        chol = np.linalg.cholesky((c_cond + c_cond.T) / 2 + 1e-12 * np.eye(mis.sum()))
        out[i, mis] = m_cond + chol @ rng.standard_normal(mis.sum())
    return out


def _ancova(change: np.ndarray, msc: np.ndarray, base: np.ndarray) -> tuple[float, float]:
    A = np.column_stack([np.ones(len(change)), msc, base])
    inv = np.linalg.inv(A.T @ A)
    beta = inv @ A.T @ change
    resid = change - A @ beta
    s2 = resid @ resid / (len(change) - 3)
    return float(beta[1]), float(s2 * inv[1, 1])


def mi_reference_based(
    wide: pd.DataFrame,
    measure: str = "vas",
    visit_month: int = config.PRIMARY_VISIT,
    strategy: str = "j2r",
    m: int = 100,
    seed: int = 2024,
    arm: str = "arm",
    level: float = config.CI_LEVEL,
) -> pd.DataFrame:
    """``secondary.mmrm_j2r.vas_pain`` / ``.odi``: reference-based multiple imputation of the change at a visit.

    See the module docstring for the model (arm by visit and baseline by visit means, shared
    unstructured covariance, approximate Bayesian bootstrap within arm, EM fit) and the
    strategies. The analysed participants are those with a baseline value; the visits are the
    post-baseline visits up to ``visit_month``.

    Parameters
    ----------
    wide : DataFrame
        One row per randomised participant: ``arm`` and ``<measure>_<v>`` for v = 0 and the
        post-baseline visits (the frame of ``stats.wide_outcomes``).
    measure : str
        Column prefix: ``"vas"`` or ``"odi"`` (``"pcs"``, ``"mcs"`` work the same way).
    visit_month : int
        The visit of the change analysed.
    strategy : str
        ``"j2r"`` (default), ``"cr"`` or ``"mar"`` (see :data:`STRATEGIES`).
    m, seed : int
        Imputations and the seed of the bootstrap and the draws.
    arm : str
        Arm column.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``visit_month``, ``estimate`` (BM-MSC minus Sham adjusted mean
        change), ``ci_low``, ``ci_high``, ``p_value``, ``se``, ``df`` (Barnard-Rubin), ``fmi``,
        ``mc_error`` (jackknife Monte Carlo SE of the estimate), ``n``, ``m``, ``strategy``,
        ``method``. NaN with the reason in ``method`` when an arm has nobody with a baseline or
        a visit has fewer than 2 observed values in an arm.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}")
    method = (
        f"reference-based multiple imputation, {STRATEGIES[strategy]} (Carpenter, Roger and Kenward 2013; m = {m}; "
        "multivariate normal, arm by visit and baseline by visit, unstructured covariance, approximate Bayesian "
        "bootstrap); ANCOVA of change on arm and baseline; Rubin's rules, Barnard-Rubin df"
    )
    visits = [v for v in config.POST_BASELINE_VISITS if v <= visit_month and f"{measure}_{v}" in wide]
    d = wide[wide[f"{measure}_0"].notna() & wide[arm].isin(config.ARMS)]
    msc = (d[arm] == config.ARMS[0]).to_numpy()
    extra = {"visit_month": visit_month, "m": m, "strategy": strategy}
    nan = ("estimate", "ci_low", "ci_high", "p_value", "se", "df", "fmi", "mc_error")
    reason = arms_without({a: int((d[arm] == a).sum()) for a in config.ARMS}, "participant with a baseline value")
    if not reason and visit_month not in visits:
        reason = f"no {measure}_{visit_month} column"
    Y = d[[f"{measure}_{v}" for v in visits]].to_numpy(dtype=float)
    if not reason:
        few = [
            f"month {v} in {a}"
            for j, v in enumerate(visits)
            for a, sel in zip(config.ARMS, (msc, ~msc))
            if (~np.isnan(Y[sel, j])).sum() < 2
        ]
        reason = f"fewer than 2 observed values at {', '.join(few)}" if few else ""
    if reason:
        return not_estimable_row(method, reason, len(d), nan, **extra)
    base = d[f"{measure}_0"].to_numpy(dtype=float)
    X = np.column_stack([np.ones(len(d)), msc.astype(float), base])
    Xref = X.copy()
    Xref[:, 1] = 0.0
    rng = np.random.default_rng(seed)
    arms_ix = [np.flatnonzero(msc), np.flatnonzero(~msc)]
    est, var = [], []
    for _ in range(m):
        if np.isnan(Y).any():
            for _try in range(100):  # a bootstrap sample needs 2 observed values per visit and arm
                ix = np.concatenate([rng.choice(a, size=len(a), replace=True) for a in arms_ix])
                ok = all((~np.isnan(Y[ix][sel[ix]])).sum(axis=0).min() >= 2 for sel in (msc, ~msc))
                if ok:
                    break
            B, S = fit_mvn_em(Y[ix], X[ix])
            completed = _draw(Y, X, Xref, B, S, strategy, msc, rng)
        else:
            completed = Y
        e, v = _ancova(completed[:, -1] - base, msc.astype(float), base)
        est.append(e)
        var.append(v)
    pooled = pooled_inference(est, var, dfcom=len(d) - 3, level=level)
    mc = mc_error(est, var, dfcom=len(d) - 3, level=level).set_index("statistic")["mc_error"]
    return pd.DataFrame(
        [
            {
                "group": config.CONTRAST,
                "visit_month": visit_month,
                "estimate": pooled["estimate"],
                "ci_low": pooled["ci_low"],
                "ci_high": pooled["ci_high"],
                "p_value": pooled["p_value"],
                "se": pooled["se"],
                "df": pooled["df"],
                "fmi": pooled["fmi"],
                "mc_error": float(mc["estimate"]),
                "n": len(d),
                "m": m,
                "strategy": strategy,
                "method": method,
            }
        ]
    )


def reference_based_by_measure(
    wide: pd.DataFrame,
    measures: dict | None = None,
    visit_month: int = config.PRIMARY_VISIT,
    strategies=("mar", "j2r", "cr"),
    m: int = 100,
    seed: int = 2024,
    level: float = config.CI_LEVEL,
) -> pd.DataFrame:
    """:func:`mi_reference_based` for several measures and strategies, stacked (same seed for each).

    Parameters
    ----------
    wide : DataFrame
        As :func:`mi_reference_based` (``arm`` and ``<prefix>_<v>`` columns).
    measures : dict, optional
        PARAMCD -> column prefix (default ``{"VAS": "vas", "ODI": "odi"}``).
    visit_month : int
        The visit of the change analysed.
    strategies : sequence of str
        Keys of :data:`STRATEGIES`, in the order of the rows.
    m, seed : int
        Imputations and seed of each analysis.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        ``measure`` (PARAMCD), then the columns of :func:`mi_reference_based` (``strategy`` among them),
        one row per measure and strategy.
    """
    measures = dict(measures or {"VAS": "vas", "ODI": "odi"})
    parts = [
        mi_reference_based(wide, prefix, visit_month, s, m=m, seed=seed, level=level).assign(measure=code)
        for code, prefix in measures.items()
        for s in strategies
    ]
    out = pd.concat(parts, ignore_index=True)
    return out[["measure", *[c for c in out.columns if c != "measure"]]]
