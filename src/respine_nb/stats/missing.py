"""Missing data: multiple imputation (MICE with predictive mean matching) and Rubin's rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from .. import config, endpoints
from .binary import arms_without, not_estimable, not_estimable_row, z_quantile

__all__ = [
    "rubin",
    "mice_pmm",
    "mi_risk_difference",
]


def rubin(estimates, variances) -> dict:
    """Pool m estimates with Rubin's rules (1987).

    Returns
    -------
    dict
        ``estimate`` (mean), ``se`` (sqrt of total variance T = W + (1 + 1/m) B), ``df``
        (Rubin's (m - 1)(1 + W / ((1 + 1/m) B))^2; inf when B = 0), ``within``, ``between``,
        ``fmi`` (fraction of missing information, (1 + 1/m) B / T).
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    m = len(q)
    qbar, w = q.mean(), u.mean()
    b = q.var(ddof=1) if m > 1 else 0.0
    t = w + (1 + 1 / m) * b
    df = np.inf if b == 0 else (m - 1) * (1 + w / ((1 + 1 / m) * b)) ** 2
    return {"estimate": qbar, "se": np.sqrt(t), "df": df, "within": w, "between": b, "fmi": (1 + 1 / m) * b / t if t > 0 else 0.0}


def mice_pmm(data: pd.DataFrame, m: int, seed: int, n_cycles: int = 10, donors: int = 5, fixed=()) -> list:
    """Multiple imputation by chained equations with predictive mean matching (van Buuren's FCS).

    Each incomplete numeric column is imputed in turn from all other columns: an OLS fit on
    the observed rows (small ridge, 1e-5, as R ``mice``), a draw of the coefficients and
    residual variance from their posterior, then each missing value is taken from one of the
    ``donors`` observed rows whose predicted value is closest (type-1 matching, as R ``mice``
    ``pmm``). ``n_cycles`` sweeps per imputed dataset, ``m`` independent chains.

    Written here (about 40 lines of numpy) because statsmodels' ``MICEData`` took 9.5 s for
    50 imputations of 114 participants; this takes well under a second and scales linearly.

    Parameters
    ----------
    data : DataFrame
        Numeric columns only (encode categories as indicators first); NaN = missing.
    m : int
        Number of imputed datasets.
    seed : int
        Seed of the random draws (same seed, same imputations).
    fixed : sequence of str
        Complete columns used only as predictors.

    Returns
    -------
    list of pandas.DataFrame
        ``m`` completed copies of ``data``.
    """
    rng = np.random.default_rng(seed)
    cols = list(data.columns)
    X0 = data.to_numpy(dtype=float)
    miss = np.isnan(X0)
    targets = [j for j, c in enumerate(cols) if miss[:, j].any() and c not in fixed]
    if any((~miss[:, j]).sum() < 2 for j in targets):
        raise ValueError("a column to impute has fewer than 2 observed values")
    out = []
    for _ in range(m):
        X = X0.copy()
        for j in targets:  # start from random draws of the observed values
            obs = X0[~miss[:, j], j]
            X[miss[:, j], j] = rng.choice(obs, size=miss[:, j].sum())
        for _cycle in range(n_cycles):
            for j in targets:
                mj = miss[:, j]
                A = np.column_stack([np.ones(len(X)), np.delete(X, j, axis=1)])
                Ao, yo = A[~mj], X[~mj, j]
                xtx = Ao.T @ Ao
                xtx += np.eye(len(xtx)) * 1e-5 * np.maximum(np.diag(xtx), 1e-12)
                inv = np.linalg.inv(xtx)
                beta = inv @ Ao.T @ yo
                resid = yo - Ao @ beta
                dof = max(len(yo) - A.shape[1], 1)
                sigma = np.sqrt(resid @ resid / rng.chisquare(dof))
                chol = np.linalg.cholesky((inv + inv.T) / 2)
                beta_star = beta + sigma * chol @ rng.standard_normal(len(beta))
                yhat_obs = Ao @ beta
                yhat_mis = A[mj] @ beta_star
                X[mj, j] = _pmm(yhat_obs, yo, yhat_mis, donors, rng)
        out.append(pd.DataFrame(X, columns=cols, index=data.index))
    return out


def _pmm(yhat_obs, y_obs, yhat_mis, donors, rng):
    order = np.argsort(yhat_obs, kind="mergesort")
    sorted_hat, sorted_y = yhat_obs[order], y_obs[order]
    k = min(donors, len(sorted_hat))
    pos = np.searchsorted(sorted_hat, yhat_mis)
    window = pos[:, None] + np.arange(-k, k)[None, :]
    window = np.clip(window, 0, len(sorted_hat) - 1)
    dist = np.abs(sorted_hat[window] - yhat_mis[:, None])
    dist += (np.diff(window, axis=1, prepend=-1) == 0) * 1e300  # clipped duplicates never win
    nearest = np.argsort(dist, axis=1, kind="mergesort")[:, :k]
    pick = nearest[np.arange(len(yhat_mis)), rng.integers(0, k, len(yhat_mis))]
    return sorted_y[window[np.arange(len(yhat_mis)), pick]]


def mi_risk_difference(
    wide: pd.DataFrame,
    visit_month: int = config.PRIMARY_VISIT,
    m: int = 50,
    seed: int = 2024,
    level: float = config.CI_LEVEL,
    **thresholds,
) -> pd.DataFrame:
    """Responder risk difference under multiple imputation of missing VAS and ODI values.

    Missing VAS and ODI values (all visits up to ``visit_month``) are imputed by chained
    equations with predictive mean matching (:func:`mice_pmm`), with arm, site, baseline
    values and earlier visits as predictors; the responder rule is applied to each completed
    dataset; the difference of proportions (Wald variance per imputation) is pooled with
    Rubin's rules over all randomised participants.

    Parameters
    ----------
    wide : DataFrame
        One row per randomised participant: ``arm``, ``site``, and ``vas_<v>`` / ``odi_<v>``
        for each visit v (see :func:`wide_outcomes`).
    m : int
        Number of imputations.
    **thresholds
        The responder rule's thresholds (see :mod:`respine_nb.endpoints`).

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``estimate``, ``ci_low``, ``ci_high``, ``p_value`` (t test on
        Rubin's df), ``se``, ``df``, ``fmi``, ``n``, ``m``, ``method``; and per-arm pooled
        responder proportions in ``estimate_msc`` / ``estimate_sham``. NaN with the reason in
        ``method`` when an arm is empty or a VAS/ODI column up to the visit has fewer than 2
        observed values (e.g. nobody reached the visit).
    """

    visits = [v for v in config.VISITS if v <= visit_month]
    cols = [f"{k}_{v}" for v in visits for k in ("vas", "odi")]
    num = wide[cols].astype(float).copy()
    num["msc"] = (wide["arm"] == config.ARMS[0]).astype(float).to_numpy()
    sites = pd.get_dummies(wide["site"].astype(str), prefix="site", drop_first=True, dtype=float)
    num = pd.concat([num.reset_index(drop=True), sites.reset_index(drop=True)], axis=1)
    fixed = ["msc", *sites.columns]
    method = (
        f"MICE with predictive mean matching (m = {m}; arm, site, baseline and earlier visits as "
        "predictors); responder rule per completed dataset; Rubin's rules, Wald variance"
    )
    n_arm = {arm: int((wide["arm"] == arm).sum()) for arm in config.ARMS}
    few = [c for c in cols if num[c].notna().sum() < 2]
    reason = arms_without(n_arm, "participant") or (
        f"fewer than 2 observed values of {', '.join(few)}"
        + (f" (no participant reached month {visit_month})" if any(c.endswith(f"_{visit_month}") for c in few) else "")
        if few
        else ""
    )
    if reason:
        nan = ("estimate", "ci_low", "ci_high", "p_value", "se", "df", "fmi")
        return not_estimable_row(method, reason, len(num), nan, m=m, estimate_msc=np.nan, estimate_sham=np.nan)
    bounds = {c: (0.0, 100.0) for c in cols}
    completed = mice_pmm(num, m=m, seed=seed, fixed=fixed) if num[cols].isna().any().any() else [num] * m
    est, var, p1s, p2s = [], [], [], []
    msc = num["msc"].to_numpy() == 1
    for d in completed:
        for c, (lo, hi) in bounds.items():
            d[c] = d[c].clip(lo, hi)
        rs = endpoints.responder_status(d["vas_0"], d[f"vas_{visit_month}"], d["odi_0"], d[f"odi_{visit_month}"], **thresholds)
        r = rs["responder"].fillna(False).to_numpy(dtype=bool)
        p1, p2 = r[msc].mean(), r[~msc].mean()
        n1, n2 = msc.sum(), (~msc).sum()
        est.append(p1 - p2)
        var.append(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
        p1s.append(p1)
        p2s.append(p2)
    pooled = rubin(est, var)
    q = sps.t.ppf(0.5 + level / 2, pooled["df"]) if np.isfinite(pooled["df"]) else z_quantile(level)
    stat = pooled["estimate"] / pooled["se"] if pooled["se"] > 0 else np.nan
    p = 2 * sps.t.sf(abs(stat), pooled["df"]) if np.isfinite(pooled["df"]) else 2 * float(sps.norm.sf(abs(stat)))
    return pd.DataFrame(
        [
            {
                "group": config.CONTRAST,
                "estimate": pooled["estimate"],
                "ci_low": pooled["estimate"] - q * pooled["se"],
                "ci_high": pooled["estimate"] + q * pooled["se"],
                "p_value": p,
                "se": pooled["se"],
                "df": pooled["df"],
                "fmi": pooled["fmi"],
                "n": len(num),
                "m": m,
                "estimate_msc": float(np.mean(p1s)),
                "estimate_sham": float(np.mean(p2s)),
                "method": method
                if np.isfinite(p)
                else not_estimable(method, "no variance (every or no participant responded in every imputation)"),
            }
        ]
    )
