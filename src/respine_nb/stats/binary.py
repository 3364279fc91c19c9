"""Binary outcomes: proportions, their intervals and tests, and the primary responder analysis.

Also the small helpers every topic module shares (the "not estimable" method text, the normal
quantile of a confidence level): they live here, public, because proportions are the base the
other analyses build on.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
import statsmodels.genmod.api as sm  # GLM families only: statsmodels.api would also import its graphics and time series
from scipy import stats as sps
from scipy.optimize import linprog
from scipy.stats.contingency import odds_ratio
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from .. import config

__all__ = [
    "NOT_ESTIMABLE",
    "not_estimable",
    "not_estimable_row",
    "arms_without",
    "Z95",
    "z_quantile",
    "wilson_ci",
    "relabel_method",
    "METHOD_NAMES",
    "covariate_text",
    "truth",
    "proportions",
    "compare_by_visit",
    "mcid_by_visit",
    "counts",
    "yates_chisq",
    "newcombe_ci",
    "risk_difference_values",
    "risk_difference",
    "fisher_exact",
    "SMALL_SITE",
    "POOLED_SITES",
    "site_strata",
    "is_separated",
    "logistic_or",
    "PRIMARY_ANALYSES",
    "primary_analysis",
    "responder_composition",
    "not_evaluable",
    "mcid_proportions",
    "responders_by_visit",
    "compare_proportions",
]


NOT_ESTIMABLE = "not estimable"


def not_estimable(method: str, reason: str) -> str:
    """The ``method`` text of a row whose number cannot be estimated.

    Parameters
    ----------
    method, reason : str
        The method's text and why the number cannot be estimated.

    Returns
    -------
    str
        ``"<method>; not estimable: <reason>"``.
    """
    return f"{method}; {NOT_ESTIMABLE}: {reason}"


def not_estimable_row(
    method: str, reason: str, n: int, columns=("estimate", "ci_low", "ci_high", "p_value"), group: str = config.CONTRAST, **values
) -> pd.DataFrame:
    """One row of an analysis whose number cannot be estimated: ``columns`` empty, the reason in ``method``.

    Parameters
    ----------
    method, reason : str
        As :func:`not_estimable`.
    n : int
        Participants the row is about.
    columns : sequence of str
        The columns left empty (NaN), in order.
    group : str
        The row's group (default: the contrast).
    **values
        Other columns with their values (override ``columns``).

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``columns``, ``n``, ``values``, ``method``.
    """
    row = {"group": group, **dict.fromkeys(columns, np.nan), "n": n, **values, "method": not_estimable(method, reason)}
    return pd.DataFrame([row])


def arms_without(counts_by_arm: dict, what: str = "evaluable participant") -> str:
    """Reason naming the arms with a zero count.

    Parameters
    ----------
    counts_by_arm : dict
        Arm -> count (a missing arm counts 0).
    what : str
        What is counted, singular.

    Returns
    -------
    str
        e.g. ``"no evaluable participant in Sham"``, or ``""`` when every arm has some.
    """
    empty = [arm for arm in config.ARMS if counts_by_arm.get(arm, 0) == 0]
    return f"no {what} in {' or '.join(empty)}" if empty else ""


Z95 = 1.959963984540054  # qnorm(0.975)


def z_quantile(level: float) -> float:
    """The normal quantile of a two-sided interval at ``level`` (1.96 at 0.95, exactly R ``qnorm(0.975)``).

    Parameters
    ----------
    level : float
        Confidence level, between 0 and 1.

    Returns
    -------
    float
    """
    return Z95 if level == 0.95 else float(sps.norm.ppf(0.5 + level / 2))


def wilson_ci(x: int, n: int, level: float = config.CI_LEVEL) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (as R ``prop.test(x, n, correct = FALSE)``).

    A small numeric helper (statsmodels ``proportion_confint(method="wilson")``), not an
    analysis: it returns a tuple, not a DataFrame.

    Parameters
    ----------
    x, n : int
        Events and trials.
    level : float
        Confidence level.

    Returns
    -------
    tuple of float
        (low, high); (nan, nan) when n = 0. At x = 0 the lower bound is exactly 0, at x = n the
        upper bound exactly 1, as in R (the formula leaves a rounding error of about 1e-17).
    """
    if n == 0:
        return float("nan"), float("nan")
    lo, hi = proportion_confint(x, n, alpha=1 - level, method="wilson")
    return (0.0 if x == 0 else max(0.0, float(lo))), (1.0 if x == n else min(1.0, float(hi)))


def relabel_method(method: str, new: str) -> str:
    """Replace the method text of :func:`proportions`, keeping a "not estimable" reason.

    Parameters
    ----------
    method : str
        A ``method`` value of :func:`proportions`.
    new : str
        The text that replaces ``proportion; Wilson score CI``.

    Returns
    -------
    str
    """
    return method.replace("proportion; Wilson score CI", new, 1)


# How an analysis variable is named in a ``method`` text (the words results.csv has always used).
METHOD_NAMES = {"SITEID": "site", "BVAS": "base_vas", "BODI": "base_odi"}


def covariate_text(covariates) -> str:
    """The adjustment variables as a ``method`` text names them (:data:`METHOD_NAMES`), comma-separated.

    Parameters
    ----------
    covariates : sequence of str
        Analysis-dataset variables (e.g. ``SITEID``, ``BVAS``).

    Returns
    -------
    str
    """
    return ", ".join(METHOD_NAMES.get(c, c) for c in covariates)


def truth(values) -> pd.Series:
    """An outcome column as booleans, missing values dropped: True/False, 1/0 (ADaM AVAL) or
    ``"Y"``/``"N"`` (ADaM flags; anything else but ``"Y"`` is False).

    Parameters
    ----------
    values : pandas.Series

    Returns
    -------
    pandas.Series of bool
        Same index as the non-missing values.
    """
    s = values.dropna()
    if s.dtype == object and len(s) and isinstance(s.iloc[0], str):
        return s == "Y"
    return s.astype(bool)


def proportions(df: pd.DataFrame, outcome: str = "AVAL", by: str = "ARM", level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Proportion with ``outcome`` True per arm, with Wilson score CI; missing outcomes excluded.

    Parameters
    ----------
    df : DataFrame
        One row per participant (or sample): ``by`` and ``outcome`` (1/0, bool or ``"Y"``/``"N"``;
        see :func:`truth`).

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
        y = truth(df.loc[df[by] == arm, outcome])
        x, n = int(y.sum()), int(len(y))
        lo, hi = wilson_ci(x, n, level)
        rows.append(
            (
                arm,
                x,
                n,
                x / n if n else np.nan,
                lo,
                hi,
                method if n else not_estimable(method, f"no evaluable participant in {arm}"),
            )
        )
    return pd.DataFrame(rows, columns=["group", "events", "n", "estimate", "ci_low", "ci_high", "method"])


def counts(df: pd.DataFrame, outcome: str = "AVAL", by: str = "ARM") -> tuple[int, int, int, int]:
    """Events and non-missing participants per arm (a numeric helper, not an analysis).

    Parameters
    ----------
    df : DataFrame
        One row per participant.
    outcome, by : str
        The outcome column (1/0, bool or ``"Y"``/``"N"``; missing values left out) and the arm column.

    Returns
    -------
    tuple of int
        (x1, n1, x2, n2): BM-MSC then sham.
    """
    out = []
    for arm in config.ARMS:
        y = truth(df.loc[df[by] == arm, outcome])
        out += [int(y.sum()), int(len(y))]
    return tuple(out)


def yates_chisq(table) -> tuple[float, float]:
    """Pearson chi-square of a 2x2 table with Yates' correction, exactly as R ``chisq.test``.

    scipy ``chi2_contingency(correction=True)``, which like R moves each observed count
    ``min(0.5, |O - E|)`` towards its expected count. A small numeric helper, not an analysis.

    Parameters
    ----------
    table : array-like, 2 x 2
        Counts.

    Returns
    -------
    tuple of float
        (statistic, p-value); (nan, nan) when a margin is zero.
    """
    o = np.asarray(table, dtype=float)
    if (o.sum(axis=0) == 0).any() or (o.sum(axis=1) == 0).any():
        return float("nan"), float("nan")
    res = sps.chi2_contingency(o, correction=True)
    return float(res.statistic), float(res.pvalue)


def newcombe_ci(x1: int, n1: int, x2: int, n2: int, level: float = config.CI_LEVEL) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) for p1 - p2, from the two Wilson intervals.

    statsmodels ``confint_proportions_2indep(method="newcomb")``; a small numeric helper, not an
    analysis.

    Parameters
    ----------
    x1, n1 : int
        Events and participants, first group (BM-MSC).
    x2, n2 : int
        Events and participants, second group (sham); ``n1`` and ``n2`` must be positive.
    level : float
        Confidence level.

    Returns
    -------
    tuple of float
        (low, high) of p1 - p2.
    """
    if min(n1, n2) <= 0:
        raise ValueError(f"newcombe_ci needs participants in both groups, not n1 = {n1}, n2 = {n2}")
    lo, hi = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff", alpha=1 - level)
    return float(lo), float(hi)


def risk_difference_values(x1, n1, x2, n2, level=config.CI_LEVEL):
    """The numbers of :func:`risk_difference` as plain floats (used in grids of thousands of cells).

    Parameters
    ----------
    x1, n1, x2, n2 : int
        Events and participants, BM-MSC then sham.
    level : float
        Confidence level.

    Returns
    -------
    tuple of float
        (difference, Newcombe low, high, Yates statistic, p); all NaN when an arm is empty.
    """
    if min(n1, n2) == 0:
        return (np.nan,) * 5
    lo, hi = newcombe_ci(x1, n1, x2, n2, level)
    stat, p = yates_chisq([[x1, n1 - x1], [x2, n2 - x2]])
    return x1 / n1 - x2 / n2, lo, hi, stat, p


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
    est, lo, hi, stat, p = risk_difference_values(x1, n1, x2, n2, level)
    method = "Newcombe hybrid score CI; Yates chi-square"
    if min(n1, n2) == 0:
        method = not_estimable(method, arms_without({config.ARMS[0]: n1, config.ARMS[1]: n2}))
    elif np.isnan(p):
        method += "; p not estimable: " + ("every participant responded" if x1 + x2 == n1 + n2 else "no participant responded")
    return pd.DataFrame(
        [
            {
                "group": config.CONTRAST,
                "estimate": est,
                "ci_low": lo,
                "ci_high": hi,
                "p_value": p,
                "statistic": stat,
                "n": n1 + n2,
                "method": method,
            }
        ]
    )


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
    method = "Fisher exact; conditional MLE odds ratio, exact CI"
    if min(n1, n2) == 0 or x1 + x2 in (0, n1 + n2):
        reason = (
            arms_without({config.ARMS[0]: n1, config.ARMS[1]: n2})
            if min(n1, n2) == 0
            else "every participant responded"
            if x1 + x2
            else "no participant responded"
        )
        return not_estimable_row(
            method, reason, n1 + n2, ("estimate", "ci_low", "ci_high"), p_value=1.0 if min(n1, n2) else np.nan
        )
    estimate, low, high, p = _fisher(int(x1), int(n1), int(x2), int(n2), float(level))
    return pd.DataFrame(
        [
            {
                "group": config.CONTRAST,
                "estimate": estimate,
                "ci_low": low,
                "ci_high": high,
                "p_value": p,
                "n": n1 + n2,
                "method": method,
            }
        ]
    )


@functools.lru_cache(maxsize=64)
def _fisher(x1: int, n1: int, x2: int, n2: int, level: float) -> tuple:
    """(conditional MLE odds ratio, CI low, CI high, two-sided p) of :func:`fisher_exact`, computed
    once per table and level: notebook 02 tests the same table twice (headline and treatment-policy
    rows), and SciPy's exact CI takes 0.5 s at 11,400 participants."""
    table = np.array([[x1, n1 - x1], [x2, n2 - x2]])
    p = float(sps.fisher_exact(table, alternative="two-sided").pvalue)
    res = odds_ratio(table, kind="conditional")
    ci = res.confidence_interval(confidence_level=level)
    return float(res.statistic), float(ci.low), float(ci.high), p


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


def is_separated(y: np.ndarray, X: np.ndarray) -> bool:
    """Quasi-complete separation check: a linear program finds a direction that separates y.

    Parameters
    ----------
    y : numpy.ndarray
        Binary outcome (0/1).
    X : numpy.ndarray
        Design matrix (with the intercept).

    Returns
    -------
    bool
        True when the maximum likelihood estimate does not exist (separation).
    """
    s = np.where(y > 0.5, 1.0, -1.0)
    A = -(s[:, None] * X)  # s_i x_i b >= 0 for all i, and sum s_i x_i b >= 1 (bounded b)
    res = linprog(
        np.zeros(X.shape[1]),
        A_ub=np.vstack([A, -(s[:, None] * X).sum(axis=0)]),
        b_ub=np.concatenate([np.zeros(len(y)), [-1.0]]),
        bounds=[(-1e3, 1e3)] * X.shape[1],
        method="highs",
    )
    return bool(res.status == 0)


def logistic_or(
    df: pd.DataFrame, outcome: str = "AVAL", covariates=(), by: str = "ARM", level: float = config.CI_LEVEL
) -> pd.DataFrame:
    """Odds ratio BM-MSC vs sham from a logistic regression (statsmodels GLM, binomial), Wald CI and p.

    Parameters
    ----------
    df : DataFrame
        One row per participant (the responder view, :func:`respine_nb.derive.responders`);
        rows with a missing outcome or covariate are dropped.
    outcome : str
        The 1/0 (or boolean) outcome column.
    covariates : sequence of str
        Adjustment terms (categorical columns enter as ``C(col)``; ``SITEID`` as site strata,
        see :func:`site_strata`); ``method`` names them as :func:`covariate_text` does.

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``estimate`` (OR), ``ci_low``, ``ci_high``, ``p_value``,
        ``log_or``, ``se``, ``n``, ``method``. Estimates are NaN with the reason in
        ``method`` when the model cannot be estimated (e.g. separation).
    """
    cols = [outcome, by, *covariates]
    d = df[cols].dropna(subset=[outcome, by])
    if "SITEID" in covariates:  # strata among the participants analysed
        d = d.assign(SITEID=site_strata(d["SITEID"]))
    d = d.dropna()
    frame = pd.DataFrame(
        {"y": d[outcome].astype(bool).astype(float).to_numpy(), "msc": (d[by] == config.ARMS[0]).astype(float).to_numpy()}
    )
    terms = ["msc"]
    for c in covariates:  # numeric columns enter as they are, anything else as a factor
        numeric = d[c].dtype.kind in "if" and not isinstance(d[c].dtype, pd.CategoricalDtype)
        frame[c] = d[c].astype(float).to_numpy() if numeric else d[c].astype(str).to_numpy()
        terms.append(f'Q("{c}")' if numeric else f'C(Q("{c}"))')
    y = frame["y"].to_numpy()
    method = "logistic regression (binomial GLM); Wald CI" + (
        f"; adjusted for {covariate_text(covariates)}" if covariates else ""
    )
    empty = {
        "group": config.CONTRAST,
        "estimate": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p_value": np.nan,
        "log_or": np.nan,
        "se": np.nan,
        "n": len(d),
    }
    if frame["msc"].nunique() < 2:
        arms = set(d[by])
        return pd.DataFrame([{**empty, "method": not_estimable(method, arms_without({a: int(a in arms) for a in config.ARMS}))}])
    if len(np.unique(y)) < 2:
        reason = "every participant responded" if y.all() else "no participant responded"
        return pd.DataFrame([{**empty, "method": not_estimable(method, reason)}])
    model = smf.glm("y ~ " + " + ".join(terms), data=frame, family=sm.families.Binomial())
    if np.linalg.matrix_rank(model.exog) < model.exog.shape[1]:
        return pd.DataFrame([{**empty, "method": not_estimable(method, "arm confounded with the covariates")}])
    if is_separated(y, model.exog):
        return pd.DataFrame([{**empty, "method": not_estimable(method, "perfect separation")}])
    fit = model.fit()
    b, se = float(fit.params["msc"]), float(fit.bse["msc"])
    z = z_quantile(level)
    return pd.DataFrame(
        [
            {
                "group": config.CONTRAST,
                "estimate": np.exp(b),
                "ci_low": np.exp(b - z * se),
                "ci_high": np.exp(b + z * se),
                "p_value": float(fit.pvalues["msc"]),
                "log_or": b,
                "se": se,
                "n": len(d),
                "method": method,
            }
        ]
    )


PRIMARY_ANALYSES = ("responders", "risk_difference", "fisher", "odds_ratio")  # the rows of primary_analysis


def primary_analysis(resp: pd.DataFrame, level: float = config.CI_LEVEL, analyses=PRIMARY_ANALYSES) -> pd.DataFrame:
    """P1: responder proportions per arm and every between-arm comparison of them.

    Parameters
    ----------
    resp : DataFrame
        The responder view (:func:`respine_nb.derive.responders`, or a population of it): one row
        per participant with ``ARM`` and ``AVAL`` (1 responder, 0 not, missing = not evaluable,
        excluded).
    level : float
        Confidence level.
    analyses : sequence of str
        Which of :data:`PRIMARY_ANALYSES` to compute, e.g. only ``("responders",
        "risk_difference")`` for a sensitivity population whose exact test and odds ratio are
        not reported (the exact confidence interval alone takes 0.5 s at 11,400 participants).

    Returns
    -------
    pandas.DataFrame
        Rows ``analysis`` = ``responders`` (one per arm), ``risk_difference``, ``fisher``,
        ``odds_ratio`` (those asked for, in this order); columns ``analysis``, ``group``,
        ``events``, ``n``, ``estimate``, ``ci_low``, ``ci_high``, ``p_value``, ``method``.
    """
    analyses = (analyses,) if isinstance(analyses, str) else tuple(analyses)
    unknown = sorted(set(analyses) - set(PRIMARY_ANALYSES))
    if unknown or not analyses:
        raise ValueError(f"unknown analyses {unknown or 'none asked for'}: choose among {list(PRIMARY_ANALYSES)}")
    x1, n1, x2, n2 = counts(resp)
    compute = {
        "responders": lambda: proportions(resp, level=level),
        "risk_difference": lambda: risk_difference(x1, n1, x2, n2, level),
        "fisher": lambda: fisher_exact(x1, n1, x2, n2, level),
        "odds_ratio": lambda: logistic_or(resp, level=level),
    }
    parts = [compute[a]().assign(analysis=a) for a in PRIMARY_ANALYSES if a in analyses]
    cols = ["analysis", "group", "events", "n", "estimate", "ci_low", "ci_high", "p_value", "method"]
    return pd.concat(parts, ignore_index=True).reindex(columns=cols)


def responder_composition(resp: pd.DataFrame) -> pd.DataFrame:
    """Which criterion made each responder: VAS only, ODI only, or both, per arm.

    Parameters
    ----------
    resp : DataFrame
        The responder view: ``ARM``, ``AVAL``, ``CRIT1FL`` (VAS criterion), ``CRIT2FL`` (ODI criterion).

    Returns
    -------
    pandas.DataFrame
        Columns ``group``, ``component`` (``VAS only``, ``ODI only``, ``both``), ``count``,
        ``n_evaluable``, ``proportion`` (of the evaluable).
    """
    rows = []
    for arm in config.ARMS:
        d = resp[(resp["ARM"] == arm) & resp["AVAL"].notna()]
        v = (d["CRIT1FL"] == "Y").to_numpy()
        o = (d["CRIT2FL"] == "Y").to_numpy()
        for name, mask in (("VAS only", v & ~o), ("ODI only", ~v & o), ("both", v & o)):
            rows.append((arm, name, int(mask.sum()), len(d), mask.sum() / len(d) if len(d) else np.nan))
    return pd.DataFrame(rows, columns=["group", "component", "count", "n_evaluable", "proportion"])


def not_evaluable(resp: pd.DataFrame) -> pd.DataFrame:
    """Who could not be assessed, and why, by arm.

    Parameters
    ----------
    resp : DataFrame
        The responder view: ``ARM``, ``EVALFL``, ``NEREAS``.

    Returns
    -------
    pandas.DataFrame
        Columns ``reason`` and one count column per arm plus ``total``; a last row ``all``.
    """
    d = resp[resp["EVALFL"] != "Y"]
    t = (
        pd.crosstab(d["NEREAS"].astype(str), d["ARM"].astype(str))
        .reindex(columns=list(config.ARMS), fill_value=0)
        .astype(int)
        .sort_index()
        .rename_axis(index="reason", columns=None)
    )
    t.loc["all"] = t.sum()
    t["total"] = t.sum(axis=1)
    return t.reset_index().rename_axis(columns=None)


def mcid_proportions(adeff: pd.DataFrame, measures=tuple(config.MCID_PARAMS)) -> pd.DataFrame:
    """Proportion reaching the MCID (Ostelo 2008) per measure, arm and post-baseline visit,
    among those observed at baseline and at the visit; Wilson CI.

    Parameters
    ----------
    adeff : DataFrame
        The efficacy dataset (its ``MCIDVAS``, ``MCIDODI`` records).
    measures : sequence of str
        PARAMCD of the measures (``VAS``, ``ODI``).

    Returns
    -------
    pandas.DataFrame
        Columns ``measure`` (the measure's PARAMCD), ``group``, ``visit_month``, ``events``, ``n``,
        ``estimate``, ``ci_low``, ``ci_high``, ``method``.
    """
    rows = []
    for m in measures:
        d = adeff[(adeff["PARAMCD"] == config.MCID_PARAMS[m]) & (adeff["AVISITN"] > 0)]
        for v in config.POST_BASELINE_VISITS:
            p = proportions(d[d["AVISITN"] == v])
            p.insert(0, "visit_month", v)
            p.insert(0, "measure", m)
            rows.append(p)
    out = pd.concat(rows, ignore_index=True)
    out["method"] = [
        relabel_method(old, f"MCID (Ostelo 2008): improvement >= {config.MCID[config.MEASURE_OF[m]]:g}; Wilson CI")
        for m, old in zip(out["measure"], out["method"])
    ]
    return out


def responders_by_visit(adeff: pd.DataFrame) -> pd.DataFrame:
    """Responder proportion (primary definition) at every post-baseline visit, among the evaluable.

    Parameters
    ----------
    adeff : DataFrame
        The efficacy dataset (its ``RESP`` records).

    Returns
    -------
    pandas.DataFrame
        Columns ``visit_month``, ``group``, ``events``, ``n``, ``estimate``, ``ci_low``, ``ci_high``,
        ``method`` (with the reason where nobody was evaluable, e.g. a visit nobody reached).
    """
    d = adeff[(adeff["PARAMCD"] == "RESP") & (adeff["AVISITN"] > 0)]
    rows = [proportions(d[d["AVISITN"] == v]).assign(visit_month=v) for v in config.POST_BASELINE_VISITS]
    out = pd.concat(rows, ignore_index=True)
    out["method"] = [relabel_method(m, "proportion of evaluable; Wilson score CI") for m in out["method"]]
    return out[["visit_month", "group", "events", "n", "estimate", "ci_low", "ci_high", "method"]]


def compare_proportions(
    df: pd.DataFrame, outcome: str = "AVAL", by: str = "ARM", per: str | None = None, level: float = config.CI_LEVEL
) -> pd.DataFrame:
    """Each arm's proportion and the contrast BM-MSC minus Sham, as RESULTS_CONTRACT.md v2 compares
    two proportions: Wilson CI per arm; Newcombe hybrid score CI and two-sided Fisher exact p for the
    difference (R ``fisher.test``); ``n`` of the contrast is both denominators added.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per participant (and per ``per`` value); ``outcome`` is boolean or 0/1, missing
        values are left out.
    outcome, by : str
        The outcome and arm columns.
    per : str, optional
        A column (e.g. ``AVISITN``) to compare within each of its values, sorted.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        Columns ``group`` (each arm, then the contrast), ``events`` (empty for the contrast),
        ``n``, ``estimate``, ``ci_low``, ``ci_high``, ``p_value`` (the contrast's only),
        ``method``; preceded by ``per`` when given. A contrast with an arm without participants
        is empty with the reason in ``method``; when everyone or no one has the outcome,
        Fisher's p is 1 (as R) and the difference 0.
    """
    if per is not None:
        parts = [
            compare_proportions(d, outcome, by, None, level).assign(**{per: value}) for value, d in df.groupby(per, sort=True)
        ]
        columns = [per, "group", "events", "n", "estimate", "ci_low", "ci_high", "p_value", "method"]
        return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
    arms = proportions(df, outcome, by, level)
    x1, n1, x2, n2 = counts(df, outcome, by)
    est, lo, hi, _, _ = risk_difference_values(x1, n1, x2, n2, level)
    method = "difference of proportions; Newcombe hybrid score CI; Fisher exact p"
    if min(n1, n2) == 0:
        contrast = not_estimable_row(method, arms_without({config.ARMS[0]: n1, config.ARMS[1]: n2}), n1 + n2)
    else:
        p = float(sps.fisher_exact(np.array([[x1, n1 - x1], [x2, n2 - x2]]), alternative="two-sided").pvalue)
        contrast = pd.DataFrame(
            [
                {
                    "group": config.CONTRAST,
                    "estimate": est,
                    "ci_low": lo,
                    "ci_high": hi,
                    "p_value": p,
                    "n": n1 + n2,
                    "method": method,
                }
            ]
        )
    out = pd.concat([arms.assign(p_value=np.nan), contrast], ignore_index=True)
    out["events"] = out["events"].astype("Int64")
    return out[["group", "events", "n", "estimate", "ci_low", "ci_high", "p_value", "method"]]


def compare_by_visit(
    adeff: pd.DataFrame,
    paramcd: str = "RESP",
    visits=config.POST_BASELINE_VISITS,
    label: str = "",
    level: float = config.CI_LEVEL,
) -> pd.DataFrame:
    """:func:`compare_proportions` of a binary ADEFF parameter at each visit: each arm and the contrast.

    Every visit in ``visits`` gets its three rows, even one nobody reached (then empty, with the
    reason in ``method``).

    Parameters
    ----------
    adeff : pandas.DataFrame
        The efficacy dataset (``PARAMCD``, ``AVISITN``, ``ARM``, ``AVAL`` 1/0, missing = not evaluable).
    paramcd : str
        The binary parameter (``RESP``, ``MCIDVAS``, ``MCIDODI``).
    visits : sequence of int
        The visits compared (default the post-baseline visits).
    label : str
        Text put before every ``method`` (what the outcome is).
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        Columns ``visit_month``, ``group`` (each arm, then the contrast), ``events``, ``n``,
        ``estimate``, ``ci_low``, ``ci_high``, ``p_value`` (the contrast's: Fisher exact), ``method``.
    """
    d = adeff.loc[adeff["PARAMCD"] == paramcd, ["AVISITN", "ARM", "AVAL"]]  # only the columns read: copied per visit
    parts = [compare_proportions(d[d["AVISITN"] == v], level=level).assign(visit_month=int(v)) for v in visits]
    columns = ["visit_month", "group", "events", "n", "estimate", "ci_low", "ci_high", "p_value", "method"]
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)[columns]
    if label:
        out["method"] = [f"{label}; {m}" for m in out["method"]]
    return out


def mcid_by_visit(
    adeff: pd.DataFrame, measures=tuple(config.MCID_PARAMS), visits=config.POST_BASELINE_VISITS, level: float = config.CI_LEVEL
) -> pd.DataFrame:
    """``secondary.mcid.<measure>`` (v2): the MCID proportions (Ostelo 2008) per arm and their
    contrast at each visit (:func:`compare_by_visit` on ``MCIDVAS`` / ``MCIDODI``).

    Parameters
    ----------
    adeff : pandas.DataFrame
        The efficacy dataset.
    measures : sequence of str
        PARAMCD of the measures (``VAS``, ``ODI``).
    visits : sequence of int
        The visits compared.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        ``measure`` (the measure's PARAMCD), then the columns of :func:`compare_by_visit`.
    """
    parts = [
        compare_by_visit(
            adeff,
            config.MCID_PARAMS[m],
            visits,
            f"MCID (Ostelo 2008): improvement >= {config.MCID[config.MEASURE_OF[m]]:g}",
            level,
        ).assign(measure=m)
        for m in measures
    ]
    columns = ["measure", "visit_month", "group", "events", "n", "estimate", "ci_low", "ci_high", "p_value", "method"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
