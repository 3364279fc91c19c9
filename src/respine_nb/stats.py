"""One function per analysis, each returning a tidy DataFrame.

Functions take analysis datasets (from :mod:`respine_nb.derive`) or plain arrays,
never read or write files, never mutate their input, and document their output
columns. Where a column of the results contract applies, it carries the
contract's name: ``group``, ``visit_month``, ``estimate``, ``ci_low``, ``ci_high``,
``p_value``, ``n``, ``method``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import config

NOT_ESTIMABLE = "not estimable"


def not_estimable(method: str, reason: str) -> str:
    """The ``method`` text of a row whose number cannot be estimated: ``"<method>; not estimable: <reason>"``."""
    return f"{method}; {NOT_ESTIMABLE}: {reason}"


def _arms_without(counts_by_arm: dict, what: str = "evaluable participant") -> str:
    """Reason naming the arms with a zero count (``"no evaluable participant in Sham"``), or ``""``."""
    empty = [arm for arm in config.ARMS if counts_by_arm.get(arm, 0) == 0]
    return f"no {what} in {' or '.join(empty)}" if empty else ""


# --------------------------------------------------------------------------- cohort


def consort_flow(adsl: pd.DataFrame, screening: pd.DataFrame | None = None,
                 visit_month: int = config.PRIMARY_VISIT) -> pd.DataFrame:
    """Counts of the CONSORT 2010 flow diagram.

    Parameters
    ----------
    adsl : DataFrame
        Subject-level dataset (``arm``, ``treated``, ``discontinuation_month``,
        ``discontinuation_reason``, ``evalfl``, ``not_evaluable_reason``).
    screening : DataFrame, optional
        The screening log; without it the flow starts at randomisation.
    visit_month : int
        The visit of the primary analysis (``evalfl`` refers to it).

    Returns
    -------
    pandas.DataFrame
        Columns ``stage`` (screened, excluded, randomized, allocated, treated,
        not_treated, discontinued, analysed, not_evaluable), ``group`` (an arm or
        ``all``), ``reason`` (empty for totals), ``n``. Reasons are sorted by
        decreasing count, then alphabetically.
    """
    rows = []

    def add(stage, group, n, reason=""):
        rows.append((stage, group, reason, int(n)))

    def reasons(stage, group, series):
        counts = series.value_counts()
        for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))):
            add(stage, group, n, str(reason))

    if screening is not None and len(screening):
        add("screened", "all", len(screening))
        excl = screening.loc[screening["outcome"] == "excluded", "exclusion_reason"]
        add("excluded", "all", len(excl))
        reasons("excluded", "all", excl)
    add("randomized", "all", len(adsl))
    for arm in config.ARMS:
        a = adsl[adsl["arm"] == arm]
        treated = a["treated"].astype(bool)
        add("allocated", arm, len(a))
        add("treated", arm, treated.sum())
        add("not_treated", arm, (~treated).sum())
        disc = a["discontinuation_month"].notna()
        add("discontinued", arm, disc.sum())
        reasons("discontinued", arm, a.loc[disc, "discontinuation_reason"])
        ev = a["evalfl"].astype(bool)
        add("analysed", arm, ev.sum())
        add("not_evaluable", arm, (~ev).sum())
        reasons("not_evaluable", arm, a.loc[~ev, "not_evaluable_reason"])
    out = pd.DataFrame(rows, columns=["stage", "group", "reason", "n"])
    out.attrs["visit_month"] = visit_month
    return out


def follow_up_completeness(adeff: pd.DataFrame) -> pd.DataFrame:
    """Share of randomised participants with an outcome assessment (VAS or ODI) per arm and visit.

    Returns
    -------
    pandas.DataFrame
        Columns ``arm``, ``visit_month``, ``n_randomized``, ``n_observed``,
        ``n_discontinued`` (left the study before the visit), ``proportion``
        (n_observed / n_randomized). Sorted by arm (config order), visit.
    """
    d = adeff[adeff["measure"].isin(["vas_pain", "odi"])]
    per = (d.assign(has=d["value"].notna().to_numpy(dtype=bool))
           .groupby(["arm", "visit_month", "subject_id"], sort=True)
           .agg(has=("has", "any"), status=("visit_status", "first")).reset_index())
    out = (per.groupby(["arm", "visit_month"], sort=True)
           .agg(n_randomized=("subject_id", "size"), n_observed=("has", "sum"),
                n_discontinued=("status", lambda s: int((s == "discontinued").sum())))
           .reset_index())
    out["proportion"] = out["n_observed"] / out["n_randomized"]
    out["arm"] = pd.Categorical(out["arm"], categories=list(config.ARMS), ordered=True)
    out = out.sort_values(["arm", "visit_month"]).reset_index(drop=True)
    out["arm"] = out["arm"].astype(str)
    return out


def arm_counts(adsl: pd.DataFrame, flag: str | None = None) -> pd.DataFrame:
    """Participants per arm, all randomised or those with ``flag`` True.

    Returns
    -------
    pandas.DataFrame
        Columns ``group`` (arm), ``n``, ``estimate`` (= n).
    """
    d = adsl if flag is None else adsl[adsl[flag].astype(bool)]
    n = d.groupby("arm").size().reindex(list(config.ARMS), fill_value=0)
    return pd.DataFrame({"group": list(config.ARMS), "n": n.to_numpy(), "estimate": n.to_numpy().astype(float)})


# --------------------------------------------------------------------------- proportions

Z95 = 1.959963984540054  # qnorm(0.975)


def _z(level: float) -> float:
    from scipy.stats import norm

    return Z95 if level == 0.95 else float(norm.ppf(0.5 + level / 2))


def wilson_ci(x: int, n: int, level: float = config.CI_LEVEL) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (as R ``prop.test(x, n, correct = FALSE)``).

    Returns
    -------
    tuple of float
        (low, high); (nan, nan) when n = 0.
    """
    if n == 0:
        return float("nan"), float("nan")
    z = _z(level)
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at x = 0 (x = n) the bound is exactly 0 (1), as in R; the formula leaves a rounding error
    return (0.0 if x == 0 else max(0.0, centre - half)), (1.0 if x == n else min(1.0, centre + half))


def _relabel(method: str, new: str) -> str:
    """Replace the method text of :func:`proportions`, keeping a "not estimable" reason."""
    return method.replace("proportion; Wilson score CI", new, 1)


def proportions(df: pd.DataFrame, outcome: str = "responder", by: str = "arm",
                level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Proportion with ``outcome`` True per arm, with Wilson score CI; missing outcomes excluded.

    Returns
    -------
    pandas.DataFrame
        One row per arm (config order): ``group``, ``events``, ``n``, ``estimate``,
        ``ci_low``, ``ci_high``, ``method`` (estimate NaN and the reason in ``method`` when an
        arm has no participant with a known outcome).
    """
    rows = []
    method = "proportion; Wilson score CI"
    for arm in config.ARMS:
        y = df.loc[df[by] == arm, outcome].dropna().astype(bool)
        x, n = int(y.sum()), int(len(y))
        lo, hi = wilson_ci(x, n, level)
        rows.append((arm, x, n, x / n if n else np.nan, lo, hi,
                     method if n else not_estimable(method, f"no evaluable participant in {arm}")))
    return pd.DataFrame(rows, columns=["group", "events", "n", "estimate", "ci_low", "ci_high", "method"])


def yates_chisq(table) -> tuple[float, float]:
    """Pearson chi-square of a 2x2 table with Yates' correction, exactly as R ``chisq.test``.

    R subtracts ``min(0.5, |O - E|)`` from each ``|O - E|``.

    Returns
    -------
    tuple of float
        (statistic, p-value); (nan, nan) when a margin is zero.
    """
    from scipy.stats import chi2

    o = np.asarray(table, dtype=float)
    e = np.outer(o.sum(axis=1), o.sum(axis=0)) / o.sum()
    if (e == 0).any():
        return float("nan"), float("nan")
    dev = np.abs(o - e)
    stat = float((((dev - np.minimum(0.5, dev)) ** 2) / e).sum())
    return stat, float(chi2.sf(stat, 1))


def newcombe_ci(x1: int, n1: int, x2: int, n2: int, level: float = config.CI_LEVEL) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) for p1 - p2, from the two Wilson intervals."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_ci(x1, n1, level)
    l2, u2 = wilson_ci(x2, n2, level)
    d = p1 - p2
    return d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def risk_difference(x1: int, n1: int, x2: int, n2: int, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Difference of proportions BM-MSC minus sham, Newcombe hybrid score CI, Yates chi-square p.

    Parameters
    ----------
    x1, n1 : int
        Events and participants, BM-MSC.
    x2, n2 : int
        Events and participants, sham.

    Returns
    -------
    pandas.DataFrame
        One row: ``group`` (the contrast), ``estimate``, ``ci_low``, ``ci_high``,
        ``p_value`` (R ``chisq.test`` default), ``statistic`` (Yates chi-square), ``n``, ``method``.
        NaN with the reason in ``method`` when an arm has no participant (estimate, CI, p) or
        when everyone or no one responded (p only).
    """
    est, lo, hi, stat, p = _rd(x1, n1, x2, n2, level)
    method = "Newcombe hybrid score CI; Yates chi-square"
    if min(n1, n2) == 0:
        method = not_estimable(method, _arms_without({config.ARMS[0]: n1, config.ARMS[1]: n2}))
    elif np.isnan(p):
        method += "; p not estimable: " + ("every participant responded" if x1 + x2 == n1 + n2 else "no participant responded")
    return pd.DataFrame([{
        "group": config.CONTRAST, "estimate": est, "ci_low": lo, "ci_high": hi, "p_value": p,
        "statistic": stat, "n": n1 + n2, "method": method,
    }])


def _rd(x1, n1, x2, n2, level=config.CI_LEVEL):
    """(difference, Newcombe low, high, Yates statistic, p) as plain floats (used in grids)."""
    if min(n1, n2) == 0:
        return (np.nan,) * 5
    lo, hi = newcombe_ci(x1, n1, x2, n2, level)
    stat, p = yates_chisq([[x1, n1 - x1], [x2, n2 - x2]])
    return x1 / n1 - x2 / n2, lo, hi, stat, p


def fisher_exact(x1: int, n1: int, x2: int, n2: int, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Fisher's exact test with the conditional MLE odds ratio and its exact CI (R ``fisher.test``).

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``estimate`` (conditional MLE OR), ``ci_low``, ``ci_high``,
        ``p_value`` (two-sided), ``n``, ``method``. With an empty arm, or when everyone or
        no one has the event, the odds ratio is NaN with the reason in ``method`` (p is 1 in
        the latter case, as R ``fisher.test``, NaN with an empty arm).
    """
    from scipy.stats import fisher_exact as _fisher
    from scipy.stats.contingency import odds_ratio

    method = "Fisher exact; conditional MLE odds ratio, exact CI"
    if min(n1, n2) == 0 or x1 + x2 in (0, n1 + n2):
        reason = (_arms_without({config.ARMS[0]: n1, config.ARMS[1]: n2}) if min(n1, n2) == 0
                  else "every participant responded" if x1 + x2 else "no participant responded")
        return pd.DataFrame([{"group": config.CONTRAST, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                              "p_value": 1.0 if min(n1, n2) else np.nan, "n": n1 + n2,
                              "method": not_estimable(method, reason)}])
    table = np.array([[x1, n1 - x1], [x2, n2 - x2]])
    p = float(_fisher(table, alternative="two-sided").pvalue)
    res = odds_ratio(table, kind="conditional")
    ci = res.confidence_interval(confidence_level=level)
    return pd.DataFrame([{
        "group": config.CONTRAST, "estimate": float(res.statistic), "ci_low": float(ci.low),
        "ci_high": float(ci.high), "p_value": p, "n": n1 + n2, "method": method,
    }])


def counts(df: pd.DataFrame, outcome: str = "responder", by: str = "arm") -> tuple[int, int, int, int]:
    """(x1, n1, x2, n2): events and non-missing participants, BM-MSC then sham."""
    out = []
    for arm in config.ARMS:
        y = df.loc[df[by] == arm, outcome].dropna().astype(bool)
        out += [int(y.sum()), int(len(y))]
    return tuple(out)


def logistic_or(df: pd.DataFrame, outcome: str = "responder", covariates=(), by: str = "arm",
                level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Odds ratio BM-MSC vs sham from a logistic regression (statsmodels GLM, binomial), Wald CI and p.

    Parameters
    ----------
    df : DataFrame
        One row per participant; rows with a missing outcome or covariate are dropped.
    covariates : sequence of str
        Adjustment terms (categorical columns enter as ``C(col)``; ``site`` as site strata,
        see :func:`site_strata`).

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``estimate`` (OR), ``ci_low``, ``ci_high``, ``p_value``,
        ``log_or``, ``se``, ``n``, ``method``. Estimates are NaN with the reason in
        ``method`` when the model cannot be estimated (e.g. separation).
    """
    import statsmodels.api as sm

    cols = [outcome, by, *covariates]
    d = df[cols].dropna(subset=[outcome, by])
    if "site" in covariates:  # strata among the participants analysed
        d = d.assign(site=site_strata(d["site"]))
    d = d.dropna()
    y = d[outcome].astype(bool).astype(float).to_numpy()
    X = pd.DataFrame({"const": 1.0, "msc": (d[by] == config.ARMS[0]).astype(float).to_numpy()}, index=d.index)
    for c in covariates:
        if d[c].dtype.kind in "if" and not isinstance(d[c].dtype, pd.CategoricalDtype):
            X[c] = d[c].astype(float)
        else:
            dummies = pd.get_dummies(d[c].astype(str), prefix=c, drop_first=True, dtype=float)
            X = X.join(dummies)
    method = "logistic regression (binomial GLM); Wald CI" + (f"; adjusted for {', '.join(covariates)}" if covariates else "")
    empty = {"group": config.CONTRAST, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan,
             "log_or": np.nan, "se": np.nan, "n": len(d)}
    if X["msc"].nunique() < 2:
        arms = set(d[by])
        return pd.DataFrame([{**empty, "method": not_estimable(method, _arms_without({a: int(a in arms) for a in config.ARMS}))}])
    if len(np.unique(y)) < 2:
        reason = "every participant responded" if y.all() else "no participant responded"
        return pd.DataFrame([{**empty, "method": not_estimable(method, reason)}])
    if np.linalg.matrix_rank(X.to_numpy()) < X.shape[1]:
        return pd.DataFrame([{**empty, "method": not_estimable(method, "arm confounded with the covariates")}])
    if _separated(y, X.to_numpy()):
        return pd.DataFrame([{**empty, "method": not_estimable(method, "perfect separation")}])
    fit = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    b, se = float(fit.params["msc"]), float(fit.bse["msc"])
    z = _z(level)
    return pd.DataFrame([{
        "group": config.CONTRAST, "estimate": np.exp(b), "ci_low": np.exp(b - z * se), "ci_high": np.exp(b + z * se),
        "p_value": float(fit.pvalues["msc"]), "log_or": b, "se": se, "n": len(d), "method": method,
    }])


SMALL_SITE = 5  # sites with fewer participants than this are pooled into one stratum (RESULTS_CONTRACT.md)
POOLED_SITES = "pooled small sites"


def site_strata(site: pd.Series, min_size: int = SMALL_SITE) -> pd.Series:
    """Site strata (RESULTS_CONTRACT.md): sites with fewer than ``min_size`` participants pooled into
    ``pooled small sites``; a stratum with fewer than 2 participants is dropped (missing).

    Returns
    -------
    pandas.Series of object
        Same index as ``site``; None for a participant whose stratum is dropped.
    """
    s = site.astype(str)
    strata = s.where(s.map(s.value_counts()) >= min_size, POOLED_SITES)
    return strata.where(strata.map(strata.value_counts()) >= 2, None).astype(object)


def _separated(y: np.ndarray, X: np.ndarray) -> bool:
    """Quasi-complete separation check: a linear program finds a direction that separates y."""
    from scipy.optimize import linprog

    s = np.where(y > 0.5, 1.0, -1.0)
    A = -(s[:, None] * X)  # s_i x_i b >= 0 for all i, and sum s_i x_i b >= 1 (bounded b)
    res = linprog(np.zeros(X.shape[1]), A_ub=np.vstack([A, -(s[:, None] * X).sum(axis=0)]),
                  b_ub=np.concatenate([np.zeros(len(y)), [-1.0]]), bounds=[(-1e3, 1e3)] * X.shape[1],
                  method="highs")
    return bool(res.status == 0)


def primary_analysis(resp: pd.DataFrame, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """P1: responder proportions per arm and every between-arm comparison of them.

    Parameters
    ----------
    resp : DataFrame
        One row per participant with ``arm`` and nullable boolean ``responder``
        (missing = not evaluable, excluded).

    Returns
    -------
    pandas.DataFrame
        Rows ``analysis`` = ``responders`` (one per arm), ``risk_difference``, ``fisher``,
        ``odds_ratio``; columns ``analysis``, ``group``, ``events``, ``n``, ``estimate``,
        ``ci_low``, ``ci_high``, ``p_value``, ``method``.
    """
    x1, n1, x2, n2 = counts(resp)
    parts = [
        proportions(resp, level=level).assign(analysis="responders"),
        risk_difference(x1, n1, x2, n2, level).assign(analysis="risk_difference"),
        fisher_exact(x1, n1, x2, n2, level).assign(analysis="fisher"),
        logistic_or(resp, level=level).assign(analysis="odds_ratio"),
    ]
    cols = ["analysis", "group", "events", "n", "estimate", "ci_low", "ci_high", "p_value", "method"]
    return pd.concat(parts, ignore_index=True).reindex(columns=cols)


def responder_composition(resp: pd.DataFrame) -> pd.DataFrame:
    """Which criterion made each responder: VAS only, ODI only, or both, per arm.

    Returns
    -------
    pandas.DataFrame
        Columns ``group``, ``component`` (``VAS only``, ``ODI only``, ``both``), ``count``,
        ``n_evaluable``, ``proportion`` (of the evaluable).
    """
    rows = []
    for arm in config.ARMS:
        d = resp[(resp["arm"] == arm) & resp["responder"].notna()]
        v = d["vas_met"].fillna(False).astype(bool)
        o = d["odi_met"].fillna(False).astype(bool)
        for name, mask in (("VAS only", v & ~o), ("ODI only", ~v & o), ("both", v & o)):
            rows.append((arm, name, int(mask.sum()), len(d), mask.sum() / len(d) if len(d) else np.nan))
    return pd.DataFrame(rows, columns=["group", "component", "count", "n_evaluable", "proportion"])


def not_evaluable(resp: pd.DataFrame) -> pd.DataFrame:
    """Who could not be assessed, and why, by arm.

    Returns
    -------
    pandas.DataFrame
        Columns ``reason`` and one count column per arm plus ``total``; a last row ``all``.
    """
    d = resp[~resp["evaluable"].astype(bool)]
    t = (pd.crosstab(d["reason"].astype(str), d["arm"].astype(str)).reindex(columns=list(config.ARMS), fill_value=0)
         .astype(int).sort_index().rename_axis(index="reason", columns=None))
    t.loc["all"] = t.sum()
    t["total"] = t.sum(axis=1)
    return t.reset_index().rename_axis(columns=None)


# --------------------------------------------------------------------------- multiple imputation


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
    return {"estimate": qbar, "se": np.sqrt(t), "df": df, "within": w, "between": b,
            "fmi": (1 + 1 / m) * b / t if t > 0 else 0.0}


def mice_pmm(data: pd.DataFrame, m: int, seed: int, n_cycles: int = 10, donors: int = 5,
             fixed=()) -> list:
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


def mi_risk_difference(wide: pd.DataFrame, visit_month: int = config.PRIMARY_VISIT, m: int = 50,
                       seed: int = 2024, level: float = config.CI_LEVEL, **thresholds) -> pd.DataFrame:
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
    from scipy.stats import t as tdist

    from . import endpoints

    visits = [v for v in config.VISITS if v <= visit_month]
    cols = [f"{k}_{v}" for v in visits for k in ("vas", "odi")]
    num = wide[cols].astype(float).copy()
    num["msc"] = (wide["arm"] == config.ARMS[0]).astype(float).to_numpy()
    sites = pd.get_dummies(wide["site"].astype(str), prefix="site", drop_first=True, dtype=float)
    num = pd.concat([num.reset_index(drop=True), sites.reset_index(drop=True)], axis=1)
    fixed = ["msc", *sites.columns]
    method = (f"MICE with predictive mean matching (m = {m}; arm, site, baseline and earlier visits as "
              "predictors); responder rule per completed dataset; Rubin's rules, Wald variance")
    n_arm = {arm: int((wide["arm"] == arm).sum()) for arm in config.ARMS}
    few = [c for c in cols if num[c].notna().sum() < 2]
    reason = (_arms_without(n_arm, "participant") or
              (f"fewer than 2 observed values of {', '.join(few)}"
               + (f" (no participant reached month {visit_month})" if any(c.endswith(f"_{visit_month}") for c in few)
                  else "") if few else ""))
    if reason:
        return pd.DataFrame([{"group": config.CONTRAST, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                              "p_value": np.nan, "se": np.nan, "df": np.nan, "fmi": np.nan, "n": len(num), "m": m,
                              "estimate_msc": np.nan, "estimate_sham": np.nan, "method": not_estimable(method, reason)}])
    bounds = {c: (0.0, 100.0) for c in cols}
    completed = mice_pmm(num, m=m, seed=seed, fixed=fixed) if num[cols].isna().any().any() else [num] * m
    est, var, p1s, p2s = [], [], [], []
    msc = num["msc"].to_numpy() == 1
    for d in completed:
        for c, (lo, hi) in bounds.items():
            d[c] = d[c].clip(lo, hi)
        rs = endpoints.responder_status(d[f"vas_0"], d[f"vas_{visit_month}"], d[f"odi_0"],
                                        d[f"odi_{visit_month}"], **thresholds)
        r = rs["responder"].fillna(False).to_numpy(dtype=bool)
        p1, p2 = r[msc].mean(), r[~msc].mean()
        n1, n2 = msc.sum(), (~msc).sum()
        est.append(p1 - p2)
        var.append(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
        p1s.append(p1)
        p2s.append(p2)
    pooled = rubin(est, var)
    q = tdist.ppf(0.5 + level / 2, pooled["df"]) if np.isfinite(pooled["df"]) else _z(level)
    stat = pooled["estimate"] / pooled["se"] if pooled["se"] > 0 else np.nan
    p = 2 * tdist.sf(abs(stat), pooled["df"]) if np.isfinite(pooled["df"]) else 2 * _norm_sf(abs(stat))
    return pd.DataFrame([{
        "group": config.CONTRAST, "estimate": pooled["estimate"], "ci_low": pooled["estimate"] - q * pooled["se"],
        "ci_high": pooled["estimate"] + q * pooled["se"], "p_value": p, "se": pooled["se"], "df": pooled["df"],
        "fmi": pooled["fmi"], "n": len(num), "m": m, "estimate_msc": float(np.mean(p1s)),
        "estimate_sham": float(np.mean(p2s)),
        "method": method if np.isfinite(p) else not_estimable(method, "no variance (every or no participant responded "
                                                                        "in every imputation)"),
    }])


def _norm_sf(x):
    from scipy.stats import norm

    return float(norm.sf(x))


def wide_outcomes(tables, measures=("vas_pain", "odi")) -> pd.DataFrame:
    """One row per randomised participant: ``subject_id``, ``arm``, ``site``, ``treated`` and
    ``vas_<v>`` / ``odi_<v>`` (float, NaN when missing) for every scheduled visit.

    Returns
    -------
    pandas.DataFrame
        Sorted by subject_id.
    """
    subjects, outcomes = tables["subjects"], tables["outcomes"]
    short = {"vas_pain": "vas", "odi": "odi", "sf36_pcs": "pcs", "sf36_mcs": "mcs"}
    base = subjects[["subject_id", "arm", "site", "treated"]].sort_values("subject_id", kind="mergesort")
    long = outcomes[["subject_id", "visit_month", *measures]]
    wide = base.reset_index(drop=True)
    for v in config.VISITS:
        at = long[long["visit_month"] == v].set_index("subject_id")
        for mname in measures:
            wide[f"{short[mname]}_{v}"] = wide["subject_id"].map(at[mname]).astype("Float64").astype(float)
    return wide


# --------------------------------------------------------------------------- sensitivity grids


TIPPING_MAX_STEPS = 31  # at most this many counts per arm: 0..k when k <= 30, else evenly spaced


def _tipping_counts(k: int, max_steps: int = TIPPING_MAX_STEPS) -> np.ndarray:
    """0..k, or ``max_steps`` evenly spaced distinct integers from 0 to k (both included) when k is larger."""
    if k + 1 <= max_steps:
        return np.arange(k + 1)
    return np.unique(np.floor(np.linspace(0, k, max_steps) + 0.5).astype(int))


def tipping_point(resp: pd.DataFrame, alpha: float = 0.05, max_steps: int = TIPPING_MAX_STEPS) -> pd.DataFrame:
    """Tipping-point analysis over the number of non-evaluable participants assumed to respond.

    Each arm's k non-evaluable participants (missing ``responder``) are added to its
    denominator, j of them as responders, for every combination of j in 0..k (BM-MSC) and
    0..k (sham); the difference over all randomised and its Yates chi-square p follow. When an
    arm has more than ``max_steps - 1`` non-evaluable participants, an evenly spaced set of
    ``max_steps`` distinct counts from 0 to k stands for 0..k (said in ``method``).

    Returns
    -------
    pandas.DataFrame
        One row per scenario: ``responders_msc``, ``responders_sham`` (non-evaluable assumed to
        respond), ``not_evaluable_msc``, ``not_evaluable_sham`` (each arm's k), ``events_msc``,
        ``n_msc``, ``events_sham``, ``n_sham`` (after adding them), ``estimate`` (difference),
        ``ci_low``, ``ci_high`` (Newcombe), ``p_value``, ``significant`` (p < alpha),
        ``method``. Sorted by the two counts.
    """
    x1, n1, x2, n2 = counts(resp)
    k1 = int(((resp["arm"] == config.ARMS[0]) & resp["responder"].isna()).sum())
    k2 = int(((resp["arm"] == config.ARMS[1]) & resp["responder"].isna()).sum())
    j1s, j2s = _tipping_counts(k1, max_steps), _tipping_counts(k2, max_steps)
    method = "non-evaluable counted as responders j of k, every combination; Newcombe CI; Yates chi-square"
    spaced = [f"{arm} (k = {k})" for arm, k, js in ((config.ARMS[0], k1, j1s), (config.ARMS[1], k2, j2s)) if len(js) < k + 1]
    if spaced:
        method += f"; {max_steps} evenly spaced counts from 0 to k for {' and '.join(spaced)}"
    rows = []
    for j1 in j1s:
        for j2 in j2s:
            a, na, b, nb = x1 + int(j1), n1 + k1, x2 + int(j2), n2 + k2
            est, lo, hi, _, p = _rd(a, na, b, nb)
            m = method
            if min(na, nb) == 0:
                m = not_estimable(method, _arms_without({config.ARMS[0]: na, config.ARMS[1]: nb}, "participant"))
            elif np.isnan(p):
                m += "; p not estimable: " + ("every participant responded" if a + b == na + nb else "no participant responded")
            rows.append((int(j1), int(j2), k1, k2, a, na, b, nb, est, lo, hi, p, m))
    out = pd.DataFrame(rows, columns=["responders_msc", "responders_sham", "not_evaluable_msc", "not_evaluable_sham",
                                      "events_msc", "n_msc", "events_sham", "n_sham", "estimate", "ci_low", "ci_high",
                                      "p_value", "method"])
    out["significant"] = (out["p_value"] < alpha).to_numpy(dtype=bool)
    return out[[*out.columns[:-2], "significant", "method"]]


# Threshold grids of the sensitivity analysis: each includes the default of config.py.
VAS_ABS_GRID = (10, 15, 20, 25, 30, 35, 40)  # mm
VAS_REL_GRID = (0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40)
ODI_REL_GRID = (0.10, 0.20, 0.30, 0.40)  # fraction of baseline (relative rule)
ODI_ABS_GRID = (10, 15, 20, 25, 30)  # points (absolute rule)


def threshold_grid(wide: pd.DataFrame, visit_month: int = config.PRIMARY_VISIT,
                   vas_abs=VAS_ABS_GRID, vas_rel=VAS_REL_GRID, odi_thresholds=None,
                   odi_rule: str = "relative") -> pd.DataFrame:
    """Responder risk difference over a grid of thresholds (evaluable participants at each point).

    Parameters
    ----------
    wide : DataFrame
        :func:`wide_outcomes`.
    vas_abs, vas_rel : sequence of float
        VAS thresholds: absolute (mm) and relative (fraction of baseline).
    odi_thresholds : sequence of float, optional
        ODI thresholds in the unit of ``odi_rule``: fractions of baseline (``relative``, default
        :data:`ODI_REL_GRID`) or points (``absolute``, default :data:`ODI_ABS_GRID`).
    odi_rule : str
        ``relative`` or ``absolute`` (see :func:`respine_nb.endpoints.odi_criterion`).

    Returns
    -------
    pandas.DataFrame
        Columns ``vas_abs_mm``, ``vas_rel``, ``odi_rule``, ``odi_threshold`` (fraction or
        points), ``estimate_msc``, ``estimate_sham``, ``estimate`` (difference), ``ci_low``,
        ``ci_high`` (Newcombe), ``p_value`` (Yates), ``n``, ``method`` (with the reason when
        not estimable, e.g. nobody evaluable in an arm at the visit).
    """
    from . import endpoints

    if odi_rule not in config.ODI_RULES:
        raise ValueError(f"odi_rule must be one of {config.ODI_RULES}, not {odi_rule!r}")
    if odi_thresholds is None:
        odi_thresholds = ODI_REL_GRID if odi_rule == "relative" else ODI_ABS_GRID
    msc = (wide["arm"] == config.ARMS[0]).to_numpy()
    vas = {(a, r): endpoints.vas_criterion(wide["vas_0"], wide[f"vas_{visit_month}"], abs_mm=a, rel=r)
           for a in vas_abs for r in vas_rel}
    method = f"responder rule at each threshold (ODI {odi_rule}); Newcombe CI; Yates chi-square"
    rows = []
    for o in odi_thresholds:
        om = endpoints.odi_criterion(wide["odi_0"], wide[f"odi_{visit_month}"], rule=odi_rule,
                                     **({"rel": o} if odi_rule == "relative" else {"abs_points": o}))
        for a in vas_abs:
            for r in vas_rel:
                resp = endpoints.responder(vas[(a, r)], om).to_numpy(dtype=float, na_value=np.nan)
                ok = ~np.isnan(resp)
                x1, n1 = int(resp[ok & msc].sum()), int((ok & msc).sum())
                x2, n2 = int(resp[ok & ~msc].sum()), int((ok & ~msc).sum())
                est, lo, hi, _, p = _rd(x1, n1, x2, n2)
                m = method
                if min(n1, n2) == 0:
                    m = not_estimable(method, _arms_without({config.ARMS[0]: n1, config.ARMS[1]: n2}))
                elif np.isnan(p):
                    m += "; p not estimable: " + ("every participant responded" if x1 + x2 == n1 + n2
                                                  else "no participant responded")
                rows.append((a, r, odi_rule, o, x1 / n1 if n1 else np.nan, x2 / n2 if n2 else np.nan, est, lo, hi, p,
                             n1 + n2, m))
    return pd.DataFrame(rows, columns=["vas_abs_mm", "vas_rel", "odi_rule", "odi_threshold", "estimate_msc",
                                       "estimate_sham", "estimate", "ci_low", "ci_high", "p_value", "n", "method"])


def subgroups(resp: pd.DataFrame, factors: dict, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Risk difference by subgroup, with a treatment-by-subgroup interaction test.

    Parameters
    ----------
    resp : DataFrame
        One row per participant: ``arm``, ``responder`` (missing rows are dropped) and the
        factor columns.
    factors : dict
        Subgroup label -> column holding the (categorical) level of each participant.

    Returns
    -------
    pandas.DataFrame
        Columns ``subgroup``, ``level``, ``events_msc``, ``n_msc``, ``events_sham``,
        ``n_sham``, ``estimate``, ``ci_low``, ``ci_high`` (Newcombe), ``p_interaction``
        (likelihood-ratio test of arm x subgroup in a logistic regression; same value on
        every level of a subgroup).
    """
    d = resp[resp["responder"].notna()]
    rows = []
    for label, col in factors.items():
        levels = sorted(d[col].dropna().astype(str).unique())
        p_int = interaction_p(d, col)
        for lev in levels:
            sub = d[d[col].astype(str) == lev]
            x1, n1, x2, n2 = counts(sub)
            if min(n1, n2) == 0:
                est = lo = hi = np.nan
            else:
                est = x1 / n1 - x2 / n2
                lo, hi = newcombe_ci(x1, n1, x2, n2, level)
            rows.append((label, lev, x1, n1, x2, n2, est, lo, hi, p_int))
    return pd.DataFrame(rows, columns=["subgroup", "level", "events_msc", "n_msc", "events_sham", "n_sham",
                                       "estimate", "ci_low", "ci_high", "p_interaction"])


def interaction_p(d: pd.DataFrame, col: str, outcome: str = "responder") -> float:
    """Likelihood-ratio p of the arm x ``col`` interaction in a logistic regression.

    NaN when either model cannot be fitted (separation, a level with one arm only).
    """
    import statsmodels.api as sm
    from scipy.stats import chi2

    dd = d[[outcome, "arm", col]].dropna()
    y = dd[outcome].astype(bool).astype(float).to_numpy()
    msc = (dd["arm"] == config.ARMS[0]).astype(float).to_numpy()
    lev = pd.get_dummies(dd[col].astype(str), drop_first=True, dtype=float).to_numpy()
    X0 = np.column_stack([np.ones(len(dd)), msc, lev])
    X1 = np.column_stack([X0, lev * msc[:, None]])
    if lev.shape[1] == 0 or np.linalg.matrix_rank(X1) < X1.shape[1] or _separated(y, X1):
        return float("nan")
    ll0 = sm.GLM(y, X0, family=sm.families.Binomial()).fit().llf
    ll1 = sm.GLM(y, X1, family=sm.families.Binomial()).fit().llf
    return float(chi2.sf(2 * (ll1 - ll0), X1.shape[1] - X0.shape[1]))


# --------------------------------------------------------------------------- secondary endpoints


def mean_ci(values, level: float = config.CI_LEVEL) -> dict:
    """Mean, SD and t-based CI of the non-missing values (as R ``t.test(x)$conf.int``).

    Returns
    -------
    dict
        ``n``, ``mean``, ``sd``, ``ci_low``, ``ci_high`` (NaN where undefined).
    """
    from scipy.stats import t as tdist

    x = pd.to_numeric(pd.Series(values), errors="coerce").astype(float).dropna().to_numpy()
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": np.nan, "sd": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    m = float(x.mean())
    if n < 2:
        return {"n": 1, "mean": m, "sd": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    sd = float(x.std(ddof=1))
    half = float(tdist.ppf(0.5 + level / 2, n - 1)) * sd / np.sqrt(n)
    return {"n": n, "mean": m, "sd": sd, "ci_low": m - half, "ci_high": m + half}


def trajectories(adeff: pd.DataFrame, measures=config.MEASURES, column: str = "value") -> pd.DataFrame:
    """Mean (95 % t CI) of ``column`` by measure, arm and visit, among those observed.

    Returns
    -------
    pandas.DataFrame
        Columns ``measure``, ``group``, ``visit_month``, ``n``, ``mean``, ``sd``, ``ci_low``, ``ci_high``.
    """
    rows = []
    for m in measures:
        d = adeff[adeff["measure"] == m]
        for arm in config.ARMS:
            for v in config.VISITS:
                s = d.loc[(d["arm"] == arm) & (d["visit_month"] == v), column]
                rows.append({"measure": m, "group": arm, "visit_month": v, **mean_ci(s)})
    return pd.DataFrame(rows)


def mcid_proportions(adeff: pd.DataFrame, measures=tuple(config.MCID)) -> pd.DataFrame:
    """Proportion reaching the MCID (Ostelo 2008) per measure, arm and post-baseline visit,
    among those observed at baseline and at the visit; Wilson CI.

    Returns
    -------
    pandas.DataFrame
        Columns ``measure``, ``group``, ``visit_month``, ``events``, ``n``, ``estimate``,
        ``ci_low``, ``ci_high``, ``method``.
    """
    rows = []
    for m in measures:
        d = adeff[(adeff["measure"] == m) & (adeff["visit_month"] > 0)]
        for v in config.POST_BASELINE_VISITS:
            p = proportions(d[d["visit_month"] == v], outcome="mcid")
            p.insert(0, "visit_month", v)
            p.insert(0, "measure", m)
            rows.append(p)
    out = pd.concat(rows, ignore_index=True)
    out["method"] = [_relabel(old, f"MCID (Ostelo 2008): improvement >= {config.MCID[m]:g}; Wilson CI")
                     for m, old in zip(out["measure"], out["method"])]
    return out


def responders_by_visit(adeff: pd.DataFrame) -> pd.DataFrame:
    """Responder proportion (primary definition) at every post-baseline visit, among the evaluable.

    Returns
    -------
    pandas.DataFrame
        Columns ``visit_month``, ``group``, ``events``, ``n``, ``estimate``, ``ci_low``, ``ci_high``,
        ``method`` (with the reason where nobody was evaluable, e.g. a visit nobody reached).
    """
    d = adeff[(adeff["measure"] == "vas_pain") & (adeff["visit_month"] > 0)]
    rows = [proportions(d[d["visit_month"] == v]).assign(visit_month=v) for v in config.POST_BASELINE_VISITS]
    out = pd.concat(rows, ignore_index=True)
    out["method"] = [_relabel(m, "proportion of evaluable; Wilson score CI") for m in out["method"]]
    return out[["visit_month", "group", "events", "n", "estimate", "ci_low", "ci_high", "method"]]


def mixed_anova_completers(adeff: pd.DataFrame, measure: str) -> pd.DataFrame:
    """Cross-check: mixed ANOVA (arm between, visit within) of the change, completers only (pingouin).

    Completers: participants with a change at every post-baseline visit present in the data.

    Returns
    -------
    pandas.DataFrame
        pingouin's table (``Source``, ``SS``, ``DF1``, ``DF2``, ``MS``, ``F``, ``p_unc``,
        ``np2``, ``eps``) plus ``n_completers`` and ``method``; the three rows with NaN and the
        reason in ``method`` when the ANOVA cannot be computed (fewer than 2 visits, fewer
        than 2 completers in an arm, no variation).
    """
    import pingouin as pg

    d = adeff[(adeff["measure"] == measure) & (adeff["visit_month"] > 0)][["subject_id", "arm", "visit_month", "change"]]
    d = d.dropna(subset=["change"])
    full = d.groupby("subject_id")["visit_month"].transform("size") == d["visit_month"].nunique()
    d = d[full].assign(change=lambda x: x["change"].astype(float), arm=lambda x: x["arm"].astype(str),
                       subject_id=lambda x: x["subject_id"].astype(str))
    method = "mixed ANOVA of the change (arm between, visit within), completers (pingouin)"
    per_arm = d.groupby("arm")["subject_id"].nunique().reindex(list(config.ARMS), fill_value=0)
    reason = ("fewer than 2 post-baseline visits" if d["visit_month"].nunique() < 2 else
              _arms_without(per_arm.to_dict(), "completer") or
              ("fewer than 2 completers in an arm" if per_arm.min() < 2 else "") or
              ("no variation in the change" if d["change"].nunique() < 2 else ""))
    if reason:
        out = pd.DataFrame({"Source": ["arm", "visit_month", "Interaction"]})
        for c in ("SS", "DF1", "DF2", "MS", "F", "p_unc", "np2", "eps"):
            out[c] = np.nan
        out["n_completers"] = d["subject_id"].nunique()
        out["method"] = not_estimable(method, reason)
        return out
    out = pg.mixed_anova(data=d, dv="change", within="visit_month", between="arm", subject="subject_id")
    out["n_completers"] = d["subject_id"].nunique()
    out["method"] = method
    return out


# --------------------------------------------------------------------------- MRI


def t2_by_grade(admri: pd.DataFrame, visit_month: int = 0) -> pd.DataFrame:
    """T2 of the nucleus pulposus by modified Pfirrmann grade at one visit, and the rank correlation.

    Returns
    -------
    pandas.DataFrame
        One row per grade: ``grade``, ``n``, ``mean``, ``sd``, ``ci_low``, ``ci_high``;
        ``attrs["spearman"]`` holds Spearman's rho, its p and n over all grades (NaN with fewer
        than 3 participants, one grade or one T2 value).
    """
    import pingouin as pg

    d = admri[(admri["visit_month"] == visit_month)].dropna(subset=["t2_np_ms", "pfirrmann_grade"])
    rows = [{"grade": int(g), **mean_ci(x["t2_np_ms"])} for g, x in d.groupby("pfirrmann_grade", sort=True)]
    out = pd.DataFrame(rows)
    if len(d) >= 3 and d["pfirrmann_grade"].nunique() > 1 and d["t2_np_ms"].nunique() > 1:
        c = pg.corr(d["pfirrmann_grade"].astype(float), d["t2_np_ms"].astype(float), method="spearman")
        out.attrs["spearman"] = {"rho": float(c["r"].iloc[0]), "p_value": float(c["p_val"].iloc[0]), "n": len(d)}
    else:
        out.attrs["spearman"] = {"rho": np.nan, "p_value": np.nan, "n": len(d)}
    return out


def paired_visit(admri: pd.DataFrame, visit_month: int, column: str = "t2_np_ms") -> pd.DataFrame:
    """Participants with ``column`` at baseline and at ``visit_month``: one row each.

    Returns
    -------
    pandas.DataFrame
        Columns ``subject_id``, ``arm``, ``baseline``, ``value``, ``change``.
    """
    base = "base_" + column
    d = admri[(admri["visit_month"] == visit_month)].dropna(subset=[column, base])
    return pd.DataFrame({"subject_id": d["subject_id"].astype(str).to_numpy(), "arm": d["arm"].astype(str).to_numpy(),
                         "baseline": d[base].astype(float).to_numpy(), "value": d[column].astype(float).to_numpy(),
                         "change": (d[column] - d[base]).astype(float).to_numpy()})


def change_summary(pairs: pd.DataFrame, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Within-arm change from baseline: mean with t CI and the paired t test (pingouin).

    Parameters
    ----------
    pairs : DataFrame
        :func:`paired_visit` output.

    Returns
    -------
    pandas.DataFrame
        One row per arm: ``group``, ``n``, ``mean_baseline``, ``mean_value``, ``estimate``
        (mean change), ``sd``, ``ci_low``, ``ci_high``, ``p_value`` (paired t), ``method``
        (with the reason when fewer than 2 participants, or no variation, leave a number empty).
    """
    import pingouin as pg

    rows = []
    for arm in config.ARMS:
        d = pairs[pairs["arm"] == arm]
        s = mean_ci(d["change"], level)
        method = "mean change, t CI; paired t test"
        if len(d) < 2:
            method = not_estimable(method, f"fewer than 2 participants with both visits in {arm}")
            p = np.nan
        elif not s["sd"] > 0:
            method += "; p not estimable: no variation in the change"
            p = np.nan
        else:
            p = float(pg.ttest(d["value"], d["baseline"], paired=True)["p_val"].iloc[0])
        rows.append({"group": arm, "n": s["n"], "mean_baseline": d["baseline"].mean() if len(d) else np.nan,
                     "mean_value": d["value"].mean() if len(d) else np.nan,
                     "estimate": s["mean"], "sd": s["sd"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
                     "p_value": p, "method": method})
    return pd.DataFrame(rows)


def ancova(pairs: pd.DataFrame, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Between-arm ANCOVA ``change ~ arm + baseline`` (OLS): the arm coefficient.

    Returns
    -------
    pandas.DataFrame
        One row: ``group`` (contrast), ``estimate``, ``se``, ``df``, ``ci_low``, ``ci_high``,
        ``p_value``, ``n``, ``method``; NaN with the reason in ``method`` when an arm is empty,
        fewer than 4 participants, or no residual variation.
    """
    import statsmodels.api as sm

    method = "ANCOVA (OLS): change ~ arm + baseline"
    msc = (pairs["arm"] == config.ARMS[0]).to_numpy(dtype=float)
    X = np.column_stack([np.ones(len(pairs)), msc, pairs["baseline"].to_numpy(dtype=float)])
    y = pairs["change"].to_numpy(dtype=float)
    n_arm = {config.ARMS[0]: int(msc.sum()), config.ARMS[1]: int(len(msc) - msc.sum())}
    reason = (_arms_without(n_arm, "participant with both visits") or
              ("fewer than 4 participants with both visits" if len(pairs) < 4 else "") or
              ("arm confounded with baseline" if np.linalg.matrix_rank(X) < 3 else ""))
    if not reason:
        fit = sm.OLS(y, X).fit()
        if not fit.ssr > 1e-12 * max(1.0, float(y @ y)):
            reason = "the model fits exactly (no residual variation)"
    if reason:
        return pd.DataFrame([{"group": config.CONTRAST, "estimate": np.nan, "se": np.nan, "df": np.nan,
                              "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n": len(pairs),
                              "method": not_estimable(method, reason)}])
    lo, hi = fit.conf_int(alpha=1 - level)[1]
    return pd.DataFrame([{"group": config.CONTRAST, "estimate": float(fit.params[1]), "se": float(fit.bse[1]),
                          "df": float(fit.df_resid), "ci_low": float(lo), "ci_high": float(hi),
                          "p_value": float(fit.pvalues[1]), "n": len(pairs), "method": method}])


def grade_shift(admri: pd.DataFrame, visit_month: int) -> pd.DataFrame:
    """Modified Pfirrmann grade at baseline against ``visit_month``, per arm (long counts).

    Returns
    -------
    pandas.DataFrame
        Columns ``group``, ``base_grade``, ``grade``, ``n`` (only non-zero cells), sorted.
    """
    d = admri[admri["visit_month"] == visit_month].dropna(subset=["pfirrmann_grade", "base_pfirrmann_grade"])
    out = (d.groupby(["arm", "base_pfirrmann_grade", "pfirrmann_grade"]).size().rename("n").reset_index()
           .rename(columns={"arm": "group", "base_pfirrmann_grade": "base_grade", "pfirrmann_grade": "grade"}))
    out["base_grade"] = out["base_grade"].astype(int)
    out["grade"] = out["grade"].astype(int)
    return out.sort_values(["group", "base_grade", "grade"], kind="mergesort").reset_index(drop=True)


def grade_worsening(admri: pd.DataFrame, visit_month: int) -> pd.DataFrame:
    """Proportion whose modified Pfirrmann grade worsened (rose) by ``visit_month``, per arm; Wilson CI.

    Returns
    -------
    pandas.DataFrame
        Columns of :func:`proportions`.
    """
    d = admri[admri["visit_month"] == visit_month].dropna(subset=["pfirrmann_grade", "base_pfirrmann_grade"])
    d = d.assign(worse=(d["pfirrmann_grade"] > d["base_pfirrmann_grade"]).to_numpy(dtype=bool))
    out = proportions(d, outcome="worse")
    out["method"] = [_relabel(m, "proportion with a higher grade than at baseline; Wilson CI") for m in out["method"]]
    return out


def correlation(x, y, method: str = "pearson", level: float = config.CI_LEVEL) -> dict:
    """Correlation with its CI (pingouin; Fisher z interval as R ``cor.test``).

    Returns
    -------
    dict
        ``n``, ``estimate`` (r), ``ci_low``, ``ci_high``, ``p_value``; when not estimable (fewer
        than 4 pairs, a constant variable) NaN and a ``reason``.
    """
    import pingouin as pg

    d = pd.DataFrame({"x": pd.to_numeric(pd.Series(x), errors="coerce").astype(float).to_numpy(),
                      "y": pd.to_numeric(pd.Series(y), errors="coerce").astype(float).to_numpy()}).dropna()
    n = len(d)
    if n < 4 or d["x"].nunique() < 2 or d["y"].nunique() < 2:
        return {"n": n, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan,
                "reason": "fewer than 4 participants" if n < 4 else "no variation"}
    c = pg.corr(d["x"], d["y"], method=method)
    r = float(c["r"].iloc[0])
    lo, hi = pg.compute_esci(stat=r, nx=n, ny=n, eftype="r", confidence=level, decimals=12)
    return {"n": n, "estimate": r, "ci_low": float(lo), "ci_high": float(hi), "p_value": float(c["p_val"].iloc[0])}


def structure_vs_symptoms(pairs: pd.DataFrame, adeff: pd.DataFrame, visit_month: int,
                          measures=("vas_pain", "odi")) -> pd.DataFrame:
    """Pearson correlation of T2 change with the change in each symptom measure at the same visit,
    per arm and pooled.

    Returns
    -------
    pandas.DataFrame
        Columns ``measure``, ``group`` (arm or ``all``), ``n``, ``estimate`` (r), ``ci_low``,
        ``ci_high``, ``p_value``, ``method``.
    """
    rows = []
    for m in measures:
        ch = adeff[(adeff["measure"] == m) & (adeff["visit_month"] == visit_month)].set_index("subject_id")["change"]
        d = pairs.assign(symptom=pairs["subject_id"].map(ch).astype(float))
        for group in (*config.ARMS, "all"):
            dd = d if group == "all" else d[d["arm"] == group]
            c = correlation(dd["change"], dd["symptom"])
            method = "Pearson r, Fisher z CI (pingouin)"
            reason = c.pop("reason", "")
            rows.append({"measure": m, "group": group, **c,
                         "method": not_estimable(method, reason) if reason else method})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- time to response


def _km_median(times: np.ndarray, surv: np.ndarray) -> float:
    """Median as R ``survfit``: the first time S(t) < 0.5; where S(t) = 0.5 on a step, the midpoint
    between that time and the next event time."""
    eps = 1e-10
    below = np.flatnonzero(surv < 0.5 - eps)
    at = np.flatnonzero(np.abs(surv - 0.5) <= eps)
    if len(at):
        k = at[0]
        return float((times[k] + times[k + 1]) / 2) if k + 1 < len(times) else float("nan")
    return float(times[below[0]]) if len(below) else float("nan")


def km_summary(adtte: pd.DataFrame, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Kaplan-Meier median time to first response per arm (lifelines), with its CI.

    Returns
    -------
    pandas.DataFrame
        One row per arm: ``group``, ``n``, ``events``, ``estimate`` (median, months; NaN if
        not reached), ``ci_low``, ``ci_high`` (from the log-log pointwise band, lifelines'
        default, as R ``survfit(conf.type = "log-log")``), ``method`` (``not estimable: median
        not reached``, or no participant in the arm).
    """
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times

    rows = []
    method = "Kaplan-Meier median (lifelines); log-log CI"
    for arm in config.ARMS:
        d = adtte[adtte["arm"] == arm]
        if d.empty:
            rows.append({"group": arm, "n": 0, "events": 0, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                         "method": not_estimable(method, f"no participant evaluable after baseline in {arm}")})
            continue
        kmf = KaplanMeierFitter(alpha=1 - level).fit(d["time"].astype(float), d["event"].astype(bool), label=arm)
        sf = kmf.survival_function_
        med = _km_median(sf.index.to_numpy(dtype=float), sf[arm].to_numpy(dtype=float))
        ci = median_survival_times(kmf.confidence_interval_)
        lo, hi = (float(ci.iloc[0, 0]), float(ci.iloc[0, 1])) if len(ci) else (np.nan, np.nan)
        rows.append({"group": arm, "n": len(d), "events": int(d["event"].sum()), "estimate": med,
                     "ci_low": lo if np.isfinite(lo) else np.nan, "ci_high": hi if np.isfinite(hi) else np.nan,
                     "method": method if np.isfinite(med) else not_estimable(method, "median not reached")})
    return pd.DataFrame(rows)


def logrank(adtte: pd.DataFrame) -> pd.DataFrame:
    """Log-rank test BM-MSC vs sham (lifelines; as R ``survdiff``).

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``statistic`` (chi-square, 1 df), ``p_value``, ``n``, ``method``
        (NaN and the reason when an arm is empty or there is no event).
    """
    from lifelines.statistics import logrank_test

    a, b = adtte[adtte["arm"] == config.ARMS[0]], adtte[adtte["arm"] == config.ARMS[1]]
    method = "log-rank test"
    reason = (_arms_without({config.ARMS[0]: len(a), config.ARMS[1]: len(b)}, "participant evaluable after baseline")
              or ("no event in either arm" if not adtte["event"].astype(bool).any() else ""))
    if reason:
        return pd.DataFrame([{"group": config.CONTRAST, "statistic": np.nan, "p_value": np.nan, "n": len(adtte),
                              "method": not_estimable(method, reason)}])
    r = logrank_test(a["time"].astype(float), b["time"].astype(float), a["event"].astype(bool), b["event"].astype(bool))
    return pd.DataFrame([{"group": config.CONTRAST, "statistic": float(r.test_statistic), "p_value": float(r.p_value),
                          "n": len(adtte), "method": "log-rank test"}])


def _cox_frame(adtte: pd.DataFrame, covariates) -> pd.DataFrame:
    d = pd.DataFrame({"time": adtte["time"].astype(float).to_numpy(), "event": adtte["event"].astype(int).to_numpy(),
                      "msc": (adtte["arm"] == config.ARMS[0]).astype(float).to_numpy()})
    for c in covariates:
        d[c] = pd.to_numeric(adtte[c], errors="coerce").astype(float).to_numpy()
    return d.dropna()


def _fit_quietly(fit_fn):
    """Run a lifelines fit; (fitted model, None) or (None, reason) when it fails or warns that it did
    not converge (lifelines' ConvergenceWarning/ConvergenceError, a singular or degenerate model)."""
    import warnings

    from lifelines.exceptions import ConvergenceError, ConvergenceWarning, StatisticalWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        warnings.simplefilter("always", StatisticalWarning)
        warnings.simplefilter("always", RuntimeWarning)
        try:
            fitted = fit_fn()
        except (ConvergenceError, np.linalg.LinAlgError, ValueError, ZeroDivisionError) as exc:
            return None, f"the model did not converge ({type(exc).__name__})"
    bad = [w for w in caught if issubclass(w.category, (ConvergenceWarning, StatisticalWarning, RuntimeWarning))]
    if bad:
        return None, "the model did not converge"
    for w in caught:  # anything else is not ours to hide
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return fitted, None


def _event_reason(frame: pd.DataFrame, what: str = "participant evaluable after baseline") -> str:
    n = {arm: int(((frame["msc"] == 1) if arm == config.ARMS[0] else (frame["msc"] == 0)).sum()) for arm in config.ARMS}
    ev = {arm: int(frame.loc[(frame["msc"] == 1) if arm == config.ARMS[0] else (frame["msc"] == 0), "event"].sum())
          for arm in config.ARMS}
    if not sum(ev.values()) and min(n.values()):
        return "no event in either arm"
    return _arms_without(n, what) or _arms_without(ev, "event")


def cox(adtte: pd.DataFrame, covariates=(), level: float = config.CI_LEVEL):
    """Cox proportional hazards model, Efron ties (lifelines; as R ``coxph`` default).

    Returns
    -------
    tuple
        (one-row DataFrame: ``group``, ``estimate`` (hazard ratio BM-MSC vs sham), ``ci_low``,
        ``ci_high`` (Wald, exp(coef -/+ z se) at ``level``, as R ``confint``), ``p_value``
        (Wald), ``coef``, ``se``, ``n``, ``events``, ``method``; the fitted ``CoxPHFitter``, or
        None when not estimable (an arm empty or without event, a model that does not
        converge: NaN and the reason in ``method``); the model frame).
    """
    from lifelines import CoxPHFitter

    d = _cox_frame(adtte, covariates)
    adj = f"; adjusted for {', '.join(covariates)}" if covariates else ""
    method = f"Cox PH, Efron ties; Wald CI and p{adj}"
    reason = _event_reason(d)
    if not reason and any(d[c].nunique() < 2 for c in covariates):
        reason = "a covariate does not vary"
    fit = None
    if not reason:
        # precision 1e-10: lifelines' default (1e-7) stops about 1e-4 short of R's coefficient
        fit, reason = _fit_quietly(lambda: CoxPHFitter(alpha=1 - level).fit(d, "time", "event",
                                                                            fit_options={"precision": 1e-10}))
    if not reason:
        s = fit.summary.loc["msc"]
        b, se, z = float(s["coef"]), float(s["se(coef)"]), _z(level)
        if not abs(b) + z * se < 700:  # exp would overflow: a degenerate fit (too few events)
            reason = "the model did not converge (infinite confidence bound)"
    if reason:
        row = {"estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "coef": np.nan,
               "se": np.nan, "method": not_estimable(method, reason)}
    else:
        row = {"estimate": float(np.exp(b)), "ci_low": float(np.exp(b - z * se)), "ci_high": float(np.exp(b + z * se)),
               "p_value": float(s["p"]), "coef": b, "se": se, "method": method}
    out = pd.DataFrame([{"group": config.CONTRAST, **row, "n": len(d), "events": int(d["event"].sum())}])
    return out[["group", "estimate", "ci_low", "ci_high", "p_value", "coef", "se", "n", "events", "method"]], fit, d


def ph_test(fit, frame: pd.DataFrame) -> pd.DataFrame:
    """Schoenfeld-residual test of proportional hazards (lifelines, KM time transform).

    Returns
    -------
    pandas.DataFrame
        One row per covariate: ``covariate``, ``statistic``, ``p_value``, ``method``; with
        ``fit`` None (the Cox model was not estimable) one row for ``msc`` with NaN.
    """
    from lifelines.statistics import proportional_hazard_test

    method = "Schoenfeld residual test, KM time scale"
    if fit is None:
        return pd.DataFrame({"covariate": ["msc"], "statistic": [np.nan], "p_value": [np.nan],
                             "method": [not_estimable(method, "no Cox model")]})
    r = proportional_hazard_test(fit, frame, time_transform="km").summary
    return pd.DataFrame({"covariate": list(r.index), "statistic": r["test_statistic"].to_numpy(),
                         "p_value": r["p"].to_numpy(), "method": method})


def turnbull_npmle(left, right, tol: float = 1e-12, max_iter: int = 100_000) -> pd.DataFrame:
    """Turnbull's NPMLE for interval-censored times in (left, right] (right = inf: censored),
    by the self-consistency (EM) algorithm, as R ``survfit(Surv(left, right, type = "interval2"))``.

    Written here because lifelines' experimental ``KaplanMeierFitter.fit_interval_censoring``
    (0.30) disagrees with R on the simplest case: for (0, 1], (0, 1], (1, 3], (3, inf) it reports
    S(1) = 1 and S(3) = 0.333, where the NPMLE (and R) give 0.5 and 0.25.

    Returns
    -------
    pandas.DataFrame
        One row per Turnbull (innermost) interval: ``lower``, ``upper`` (the mass lies in
        (lower, upper]), ``mass``, ``survival`` (S after the interval); no row without data.
    """
    left = np.asarray(left, dtype=float)
    right = np.asarray(right, dtype=float)
    if not len(left):
        return pd.DataFrame({"lower": [], "upper": [], "mass": [], "survival": []}, dtype=float)
    # innermost intervals: a left endpoint immediately followed by a right endpoint; at equal
    # values a right endpoint (closed) sorts before a left endpoint (open)
    ends = sorted([(v, 1) for v in set(left)] + [(v, 0) for v in set(right)])
    inner = [(a, b) for (a, ka), (b, kb) in zip(ends, ends[1:]) if ka == 1 and kb == 0 and a < b]
    lo = np.array([a for a, _ in inner])
    hi = np.array([b for _, b in inner])
    alpha = (lo[None, :] >= left[:, None]) & (hi[None, :] <= right[:, None])
    p = np.full(len(inner), 1.0 / len(inner))
    for _ in range(max_iter):
        denom = alpha @ p
        new = (alpha * p / denom[:, None]).mean(axis=0)
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    return pd.DataFrame({"lower": lo, "upper": hi, "mass": p, "survival": 1 - np.cumsum(p)})


def turnbull(adtte: pd.DataFrame) -> pd.DataFrame:
    """Turnbull NPMLE of the cumulative proportion responding per arm, respecting that a response
    is only seen at a visit (true time in (left, right]); see :func:`turnbull_npmle`.

    Returns
    -------
    pandas.DataFrame
        Columns ``group``, ``lower``, ``upper``, ``mass``, ``survival``, ``cumulative`` (1 - S
        after the interval; the NPMLE does not say where inside the interval the mass lies,
        and has no standard CI). An arm without participants has no row.
    """
    rows = []
    for arm in config.ARMS:
        d = adtte[adtte["arm"] == arm]
        t = turnbull_npmle(d["left"], d["right"])
        rows.append(t.assign(group=arm, cumulative=1 - t["survival"]))
    out = pd.concat(rows, ignore_index=True).astype({"group": object})
    return out[["group", "lower", "upper", "mass", "survival", "cumulative"]]


def weibull_interval(adtte: pd.DataFrame, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Parametric interval-censored comparison: Weibull accelerated failure time model
    (lifelines ``WeibullAFTFitter.fit_interval_censoring``); time ratio BM-MSC vs sham.

    A time ratio below 1 means BM-MSC participants responded sooner.

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``estimate`` (time ratio), ``ci_low``, ``ci_high`` (exp(coef -/+ z se)
        at ``level``), ``p_value``, ``n``, ``method``; NaN with the reason in ``method`` when an
        arm is empty or has no event, or the fit does not converge.
    """
    from lifelines import WeibullAFTFitter

    d = pd.DataFrame({"lower": adtte["left"].astype(float).to_numpy(), "upper": adtte["right"].astype(float).to_numpy(),
                      "msc": (adtte["arm"] == config.ARMS[0]).astype(float).to_numpy()})
    method = "Weibull AFT, interval-censored (lifelines); time ratio, Wald CI"
    reason = _event_reason(d.assign(event=np.isfinite(d["upper"]).astype(int)))
    if not reason:
        fit, reason = _fit_quietly(lambda: WeibullAFTFitter(alpha=1 - level).fit_interval_censoring(d, "lower", "upper"))
    if reason:
        return pd.DataFrame([{"group": config.CONTRAST, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                              "p_value": np.nan, "n": len(d), "method": not_estimable(method, reason)}])
    s = fit.summary.loc[("lambda_", "msc")]
    b, se, z = float(s["coef"]), float(s["se(coef)"]), _z(level)
    if not abs(b) + z * se < 700:  # exp would overflow: a degenerate fit (too few events)
        return pd.DataFrame([{"group": config.CONTRAST, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                              "p_value": np.nan, "n": len(d),
                              "method": not_estimable(method, "the model did not converge (infinite confidence bound)")}])
    return pd.DataFrame([{"group": config.CONTRAST, "estimate": float(np.exp(b)), "ci_low": float(np.exp(b - z * se)),
                          "ci_high": float(np.exp(b + z * se)), "p_value": float(s["p"]), "n": len(d),
                          "method": method}])


def status_by_visit(adeff: pd.DataFrame) -> pd.DataFrame:
    """Responder status of every participant at every post-baseline visit.

    Returns
    -------
    pandas.DataFrame
        Columns ``subject_id``, ``arm``, ``visit_month``, ``status`` (``responder``,
        ``non-responder``, ``not evaluable``, ``discontinued``), sorted.
    """
    d = adeff[(adeff["measure"] == "vas_pain") & (adeff["visit_month"] > 0)]
    status = np.select([d["responder"].fillna(False).to_numpy(dtype=bool),
                        (d["responder"] == False).fillna(False).to_numpy(dtype=bool),  # noqa: E712
                        (d["visit_status"] == "discontinued").to_numpy()],
                       ["responder", "non-responder", "discontinued"], default="not evaluable")
    return (pd.DataFrame({"subject_id": d["subject_id"].to_numpy(), "arm": d["arm"].to_numpy(),
                          "visit_month": d["visit_month"].to_numpy(), "status": status})
            .sort_values(["arm", "subject_id", "visit_month"], kind="mergesort").reset_index(drop=True))


def durability(status: pd.DataFrame, from_visit: int = 12, to_visit: int = 24) -> pd.DataFrame:
    """Among responders at ``from_visit``, the proportion still responding at ``to_visit`` (among
    those evaluable then), per arm; Wilson CI.

    Returns
    -------
    pandas.DataFrame
        Columns of :func:`proportions` plus ``responders_at_start`` and ``not_evaluable_later``;
        NaN with the reason in ``method`` (e.g. ``no participant reached month 24``) where no
        one can be counted.
    """
    w = status.pivot(index=["subject_id", "arm"], columns="visit_month", values="status").reset_index()
    for v in (from_visit, to_visit):
        if v not in w.columns:
            w[v] = "not evaluable"
    start = w[w[from_visit] == "responder"]
    later = start[start[to_visit].isin(["responder", "non-responder"])]
    out = proportions(later.assign(still=(later[to_visit] == "responder").to_numpy()), outcome="still")
    out["responders_at_start"] = [int((start["arm"] == a).sum()) for a in config.ARMS]
    out["not_evaluable_later"] = out["responders_at_start"] - out["n"]
    method = f"month-{from_visit} responders still responding at month {to_visit}; Wilson CI"
    reached = status.loc[status["visit_month"] == to_visit, "status"].isin(["responder", "non-responder"]).any()
    out["method"] = [method if n else not_estimable(
        method, f"no month-{from_visit} responder in {arm}" if not start_n else
        f"no participant reached month {to_visit}" if not reached else
        f"no month-{from_visit} responder in {arm} evaluable at month {to_visit}")
        for arm, n, start_n in zip(out["group"], out["n"], out["responders_at_start"])]
    return out


# --------------------------------------------------------------------------- safety and immunology

AE_CATEGORIES = {
    "any_ae": ("any adverse event", lambda ae: np.ones(len(ae), dtype=bool)),
    "sae": ("any serious adverse event", lambda ae: ae["serious"].fillna(False).to_numpy(dtype=bool)),
    "related_ae": ("any related adverse event", lambda ae: ae["related"].fillna(False).to_numpy(dtype=bool)),
    "related_sae": ("any related serious adverse event",
                    lambda ae: (ae["serious"].fillna(False) & ae["related"].fillna(False)).to_numpy(dtype=bool)),
}


def ae_overview(adsl: pd.DataFrame, adae: pd.DataFrame) -> pd.DataFrame:
    """Participants of the safety population (treated) with at least one event of each kind, per arm.

    Returns
    -------
    pandas.DataFrame
        One row per kind and arm: ``category`` (any_ae, sae, related_ae, related_sae),
        ``label``, ``group``, ``events`` (participants with >= 1 such event), ``n`` (treated),
        ``estimate`` (proportion), ``ci_low``, ``ci_high`` (Wilson), ``n_events`` (events),
        ``method``.
    """
    safety = adsl[adsl["saffl"].astype(bool)]
    ae = adae[adae["saffl"].astype(bool)] if len(adae) else adae
    rows = []
    for key, (label, select) in AE_CATEGORIES.items():
        hit = ae[select(ae)] if len(ae) else ae
        for arm in config.ARMS:
            ids = set(safety.loc[safety["arm"] == arm, "subject_id"])
            who = set(hit.loc[hit["arm"] == arm, "subject_id"]) & ids if len(hit) else set()
            n, x = len(ids), len(who)
            lo, hi = wilson_ci(x, n)
            method = "participants with >= 1 event / treated; Wilson CI"
            rows.append({"category": key, "label": label, "group": arm, "events": x, "n": n,
                         "estimate": x / n if n else np.nan, "ci_low": lo, "ci_high": hi,
                         "n_events": int((hit["arm"] == arm).sum()) if len(hit) else 0,
                         "method": method if n else not_estimable(method, f"no treated participant in {arm}")})
    return pd.DataFrame(rows)


def ae_by_term(adae: pd.DataFrame) -> pd.DataFrame:
    """Events by preferred term and arm: participants, events and events by severity.

    Returns
    -------
    pandas.DataFrame
        Columns ``term``, ``group``, ``participants``, ``events``, ``mild``, ``moderate``,
        ``severe``, ``serious``, ``related``; sorted by total participants (descending), term.
    """
    cols = ["term", "group", "participants", "events", *config.SEVERITIES, "serious", "related"]
    ae = adae[adae["saffl"].astype(bool)] if len(adae) else adae
    if not len(ae):
        return pd.DataFrame(columns=cols)
    rows = []
    for (term, arm), g in ae.groupby(["term", "arm"], sort=True):
        sev = g["severity"].value_counts()
        rows.append({"term": term, "group": arm, "participants": g["subject_id"].nunique(), "events": len(g),
                     **{s: int(sev.get(s, 0)) for s in config.SEVERITIES},
                     "serious": int(g["serious"].sum()), "related": int(g["related"].sum())})
    out = pd.DataFrame(rows, columns=cols)
    total = out.groupby("term")["participants"].transform("sum")
    return (out.assign(_t=-total).sort_values(["_t", "term", "group"], kind="mergesort").drop(columns="_t")
            .reset_index(drop=True))


def anti_hla_by_visit(immunology: pd.DataFrame, subjects: pd.DataFrame) -> pd.DataFrame:
    """Anti-HLA positivity by arm and visit: class I, class II, and either, among those tested.

    Returns
    -------
    pandas.DataFrame
        Columns ``marker`` (class_i, class_ii, any), ``group``, ``visit_month``, ``events``,
        ``n`` (samples with a result), ``estimate``, ``ci_low``, ``ci_high`` (Wilson).
    """
    imm = immunology.merge(subjects[["subject_id", "arm"]], on="subject_id", how="left")
    c1, c2 = imm["anti_hla_class_i"], imm["anti_hla_class_ii"]
    either = (c1.fillna(False) | c2.fillna(False)).astype("boolean")
    either[c1.isna() & c2.isna()] = pd.NA
    either[(c1.isna() | c2.isna()) & ~(c1.fillna(False) | c2.fillna(False))] = pd.NA  # negative needs both
    imm = imm.assign(class_i=c1, class_ii=c2, any=either)
    rows = []
    for marker in ("class_i", "class_ii", "any"):
        for v in sorted(imm["visit_month"].unique()):
            p = proportions(imm[imm["visit_month"] == v], outcome=marker)
            rows.append(p.assign(marker=marker, visit_month=int(v)))
    out = pd.concat(rows, ignore_index=True)
    return out[["marker", "group", "visit_month", "events", "n", "estimate", "ci_low", "ci_high"]]


def _wide_any(immunology: pd.DataFrame) -> pd.DataFrame:
    imm = immunology.assign(pos=(immunology["anti_hla_class_i"].fillna(False)
                                 | immunology["anti_hla_class_ii"].fillna(False)).to_numpy(dtype=bool),
                            tested=(immunology["anti_hla_class_i"].notna() | immunology["anti_hla_class_ii"].notna()).to_numpy())
    return imm


def new_sensitisation(immunology: pd.DataFrame, subjects: pd.DataFrame, by_visit: int = 6) -> pd.DataFrame:
    """New anti-HLA sensitisation: negative for both classes at baseline, positive for either at
    some visit after baseline up to ``by_visit``; among participants negative at baseline with at
    least one later result.

    Returns
    -------
    pandas.DataFrame
        Columns of :func:`proportions` (``events`` = newly sensitised).
    """
    imm = _wide_any(immunology)
    base = imm[(imm["visit_month"] == 0)]
    neg0 = set(base.loc[~base["pos"] & base["anti_hla_class_i"].notna() & base["anti_hla_class_ii"].notna(), "subject_id"])
    later = imm[(imm["visit_month"] > 0) & (imm["visit_month"] <= by_visit) & imm["tested"] & imm["subject_id"].isin(neg0)]
    per = later.groupby("subject_id")["pos"].any().rename("new").reset_index()
    per = per.merge(subjects[["subject_id", "arm"]], on="subject_id")
    out = proportions(per, outcome="new")
    out["method"] = [_relabel(m, f"negative at baseline, positive (class I or II) by month {by_visit}; Wilson CI")
                     for m in out["method"]]
    return out


def dsa_by_visit(immunology: pd.DataFrame, subjects: pd.DataFrame) -> pd.DataFrame:
    """Donor-specific antibodies among BM-MSC participants tested, by visit; Wilson CI.

    Returns
    -------
    pandas.DataFrame
        Columns ``visit_month``, ``events``, ``n``, ``estimate``, ``ci_low``, ``ci_high``.
    """
    imm = immunology.merge(subjects[["subject_id", "arm"]], on="subject_id")
    imm = imm[(imm["arm"] == config.ARMS[0]) & imm["dsa"].notna()]
    rows = []
    for v in sorted(imm["visit_month"].unique()):
        y = imm.loc[imm["visit_month"] == v, "dsa"].astype(bool)
        lo, hi = wilson_ci(int(y.sum()), len(y))
        rows.append({"visit_month": int(v), "events": int(y.sum()), "n": len(y), "estimate": y.mean(),
                     "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["visit_month", "events", "n", "estimate", "ci_low", "ci_high"])


def sensitisation_and_response(immunology: pd.DataFrame, resp: pd.DataFrame, visit_month: int = 6) -> pd.DataFrame:
    """Month-12 responder proportion by anti-HLA status (either class) at ``visit_month``, in
    BM-MSC participants tested then and evaluable at month 12; Fisher's exact test.

    Returns
    -------
    pandas.DataFrame
        One row per status (``anti-HLA positive``, ``anti-HLA negative``): ``status``,
        ``events`` (responders), ``n``, ``estimate``, ``ci_low``, ``ci_high``, and on both rows
        ``fisher_or`` (conditional odds ratio, positive vs negative) and ``fisher_p``.
    """
    imm = _wide_any(immunology)
    at = imm[(imm["visit_month"] == visit_month) & imm["tested"]][["subject_id", "pos"]]
    d = resp[(resp["arm"] == config.ARMS[0]) & resp["responder"].notna()].merge(at, on="subject_id")
    rows = []
    for status, mask in (("anti-HLA positive", d["pos"]), ("anti-HLA negative", ~d["pos"])):
        y = d.loc[mask, "responder"].astype(bool)
        lo, hi = wilson_ci(int(y.sum()), len(y))
        rows.append({"status": status, "events": int(y.sum()), "n": len(y), "estimate": y.mean() if len(y) else np.nan,
                     "ci_low": lo, "ci_high": hi})
    out = pd.DataFrame(rows)
    x1, n1, x2, n2 = (int(v) for v in (out["events"][0], out["n"][0], out["events"][1], out["n"][1]))
    f = fisher_exact(x1, n1, x2, n2).iloc[0] if min(n1, n2) > 0 else {"estimate": np.nan, "p_value": np.nan}
    out["fisher_or"], out["fisher_p"] = float(f["estimate"]), float(f["p_value"])
    return out
