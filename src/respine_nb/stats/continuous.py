"""Continuous endpoints: means with t intervals, trajectories by visit, the completers' mixed ANOVA."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin as pg
from scipy import stats as sps

from .. import config
from .binary import arms_without, not_estimable

__all__ = [
    "mean_ci",
    "trajectories",
    "mixed_anova_completers",
    "means_by_arm",
    "means_by_measure",
]


def mean_ci(values, level: float = config.CI_LEVEL) -> dict:
    """Mean, SD and t-based CI of the non-missing values (as R ``t.test(x)$conf.int``).

    Returns
    -------
    dict
        ``n``, ``mean``, ``sd``, ``ci_low``, ``ci_high`` (NaN where undefined).
    """
    x = pd.to_numeric(pd.Series(values), errors="coerce").astype(float).dropna().to_numpy()
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": np.nan, "sd": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    m = float(x.mean())
    if n < 2:
        return {"n": 1, "mean": m, "sd": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * sd / np.sqrt(n)
    return {"n": n, "mean": m, "sd": sd, "ci_low": m - half, "ci_high": m + half}


def trajectories(adeff: pd.DataFrame, measures=config.MEASURE_PARAMS, column: str = "AVAL") -> pd.DataFrame:
    """Mean (95 % t CI) of ``column`` by measure, arm and visit, among those observed.

    Parameters
    ----------
    adeff : DataFrame
        The efficacy dataset.
    measures : sequence of str
        PARAMCD of the measures (default ``VAS``, ``ODI``, ``PCS``, ``MCS``).
    column : str
        ``AVAL`` (default), ``CHG`` or ``PCHG``.

    Returns
    -------
    pandas.DataFrame
        Columns ``measure`` (PARAMCD), ``group``, ``visit_month``, ``n``, ``mean``, ``sd``, ``ci_low``, ``ci_high``.
    """
    rows = []
    for m in measures:
        d = adeff[adeff["PARAMCD"] == m]
        for arm in config.ARMS:
            for v in config.VISITS:
                s = d.loc[(d["ARM"] == arm) & (d["AVISITN"] == v), column]
                rows.append({"measure": m, "group": arm, "visit_month": v, **mean_ci(s)})
    return pd.DataFrame(rows)


def mixed_anova_completers(adeff: pd.DataFrame, measure) -> pd.DataFrame:
    """Cross-check: mixed ANOVA (arm between, visit within) of the change, completers only (pingouin).

    Completers: participants with a change at every post-baseline visit present in the data.

    Parameters
    ----------
    adeff : DataFrame
        The efficacy dataset.
    measure : str or sequence of str
        PARAMCD of the measure (``VAS``, ...), or several: one ANOVA each, stacked.

    Returns
    -------
    pandas.DataFrame
        ``measure`` (PARAMCD), then pingouin's table (``Source``, ``SS``, ``DF1``, ``DF2``, ``MS``,
        ``F``, ``p_unc``, ``np2``, ``eps``) plus ``n_completers`` and ``method``; the three rows
        with NaN and the reason in ``method`` when the ANOVA cannot be computed (fewer than 2
        visits, fewer than 2 completers in an arm, no variation).
    """
    if not isinstance(measure, str):
        return pd.concat([mixed_anova_completers(adeff, m) for m in measure], ignore_index=True)
    d = adeff[(adeff["PARAMCD"] == measure) & (adeff["AVISITN"] > 0)][["USUBJID", "ARM", "AVISITN", "CHG"]]
    d = d.rename(columns={"ARM": "arm", "AVISITN": "visit_month", "CHG": "change"})  # pingouin's Source names
    d = d.dropna(subset=["change"])
    full = d.groupby("USUBJID")["visit_month"].transform("size") == d["visit_month"].nunique()
    d = d[full].assign(
        change=lambda x: x["change"].astype(float),
        arm=lambda x: x["arm"].astype(str),
        USUBJID=lambda x: x["USUBJID"].astype(str),
    )
    method = "mixed ANOVA of the change (arm between, visit within), completers (pingouin)"
    per_arm = d.groupby("arm")["USUBJID"].nunique().reindex(list(config.ARMS), fill_value=0)
    reason = (
        "fewer than 2 post-baseline visits"
        if d["visit_month"].nunique() < 2
        else arms_without(per_arm.to_dict(), "completer")
        or ("fewer than 2 completers in an arm" if per_arm.min() < 2 else "")
        or ("no variation in the change" if d["change"].nunique() < 2 else "")
    )
    if reason:
        out = pd.DataFrame({"Source": ["arm", "visit_month", "Interaction"]})
        for c in ("SS", "DF1", "DF2", "MS", "F", "p_unc", "np2", "eps"):
            out[c] = np.nan
        out["n_completers"] = d["USUBJID"].nunique()
        out["method"] = not_estimable(method, reason)
        out.insert(0, "measure", measure)
        return out
    out = pg.mixed_anova(data=d, dv="change", within="visit_month", between="arm", subject="USUBJID")
    out["n_completers"] = d["USUBJID"].nunique()
    out["method"] = method
    out.insert(0, "measure", measure)
    return out


def means_by_arm(
    df: pd.DataFrame, value: str = "AVAL", by: str = "ARM", per: str | None = None, level: float = config.CI_LEVEL
) -> pd.DataFrame:
    """Mean of the observed values per arm with its t interval (R ``t.test(x)``), n = observed.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of observations; missing values of ``value`` are left out.
    value, by : str
        The value and arm columns.
    per : str, optional
        A column (e.g. ``AVISITN``) within whose values (sorted) the means are taken.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        Columns (``per``,) ``group``, ``estimate`` (mean), ``sd``, ``ci_low``, ``ci_high``, ``n``,
        ``method``; an arm with fewer than two values has no interval (and no mean without any),
        with the reason in ``method``.
    """
    keys = [per] if per is not None else []
    df = df[[*keys, by, value]]  # only the columns read: the rows of each visit and arm are copied
    levels = sorted(df[per].dropna().unique()) if per is not None else [None]
    rows = []
    method = "mean; t CI"
    for level_value in levels:
        d = df if per is None else df[df[per] == level_value]
        for arm in config.ARMS:
            s = mean_ci(d.loc[d[by] == arm, value], level)
            why = (
                not_estimable(method, f"no observed value in {arm}")
                if s["n"] == 0
                else method + "; CI not estimable: one observed value"
                if s["n"] == 1
                else method
            )
            row = {"group": arm, "estimate": s["mean"], "sd": s["sd"], "ci_low": s["ci_low"], "ci_high": s["ci_high"]}
            rows.append(({per: level_value} if per is not None else {}) | row | {"n": s["n"], "method": why})
    return pd.DataFrame(rows, columns=keys + ["group", "estimate", "sd", "ci_low", "ci_high", "n", "method"])


def means_by_measure(
    adeff: pd.DataFrame, measures=config.MEASURE_PARAMS, value: str = "AVAL", level: float = config.CI_LEVEL
) -> pd.DataFrame:
    """``secondary.mean.<measure>``: :func:`means_by_arm` of each measure at every visit present.

    Parameters
    ----------
    adeff : pandas.DataFrame
        The efficacy dataset (``PARAMCD``, ``AVISITN``, ``ARM`` and ``value``).
    measures : sequence of str
        PARAMCD of the measures (default ``VAS``, ``ODI``, ``PCS``, ``MCS``).
    value : str
        ``AVAL`` (default), ``CHG`` or ``PCHG``.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        Columns ``measure`` (PARAMCD), ``visit_month``, ``group``, ``estimate`` (mean), ``sd``,
        ``ci_low``, ``ci_high`` (t interval, R ``t.test``), ``n`` (observed), ``method``; one row per
        arm at each visit of the measure present in ``adeff`` (a measure without any record: no row).
    """
    columns = ["measure", "visit_month", "group", "estimate", "sd", "ci_low", "ci_high", "n", "method"]
    d = adeff[["PARAMCD", "AVISITN", "ARM", value]]  # only the columns read, before selecting rows
    selected = ((m, d[d["PARAMCD"] == m]) for m in measures)
    parts = [means_by_arm(rows, value, "ARM", "AVISITN", level).assign(measure=m) for m, rows in selected if len(rows)]
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True).rename(columns={"AVISITN": "visit_month"})
    out["visit_month"] = out["visit_month"].astype(int)
    return out[columns]
