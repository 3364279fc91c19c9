"""Sensitivity grids of the primary analysis: tipping point, responder thresholds, subgroups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
import statsmodels.genmod.api as sm  # GLM families only: statsmodels.api would also import its graphics and time series
from scipy import stats as sps

from .. import config, endpoints
from .binary import arms_without, counts, is_separated, newcombe_ci, not_estimable, risk_difference_values

__all__ = [
    "TIPPING_MAX_STEPS",
    "tipping_point",
    "VAS_ABS_GRID",
    "VAS_REL_GRID",
    "ODI_REL_GRID",
    "ODI_ABS_GRID",
    "threshold_grid",
    "subgroups",
    "subgroup_interactions",
    "interaction_p",
]


TIPPING_MAX_STEPS = 31  # at most this many counts per arm: 0..k when k <= 30, else evenly spaced


def _tipping_counts(k: int, max_steps: int = TIPPING_MAX_STEPS) -> np.ndarray:
    """0..k, or ``max_steps`` evenly spaced distinct integers from 0 to k (both included) when k is larger."""
    if k + 1 <= max_steps:
        return np.arange(k + 1)
    return np.unique(np.floor(np.linspace(0, k, max_steps) + 0.5).astype(int))


def tipping_point(resp: pd.DataFrame, alpha: float = 0.05, max_steps: int = TIPPING_MAX_STEPS) -> pd.DataFrame:
    """Tipping-point analysis over the number of non-evaluable participants assumed to respond.

    Each arm's k non-evaluable participants (missing ``AVAL`` in the responder view,
    :func:`respine_nb.derive.responders`) are added to its
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
    k1 = int(((resp["ARM"] == config.ARMS[0]) & resp["AVAL"].isna()).sum())
    k2 = int(((resp["ARM"] == config.ARMS[1]) & resp["AVAL"].isna()).sum())
    j1s, j2s = _tipping_counts(k1, max_steps), _tipping_counts(k2, max_steps)
    method = "non-evaluable counted as responders j of k, every combination; Newcombe CI; Yates chi-square"
    spaced = [f"{arm} (k = {k})" for arm, k, js in ((config.ARMS[0], k1, j1s), (config.ARMS[1], k2, j2s)) if len(js) < k + 1]
    if spaced:
        method += f"; {max_steps} evenly spaced counts from 0 to k for {' and '.join(spaced)}"
    rows = []
    for j1 in j1s:
        for j2 in j2s:
            a, na, b, nb = x1 + int(j1), n1 + k1, x2 + int(j2), n2 + k2
            est, lo, hi, _, p = risk_difference_values(a, na, b, nb)
            m = method
            if min(na, nb) == 0:
                m = not_estimable(method, arms_without({config.ARMS[0]: na, config.ARMS[1]: nb}, "participant"))
            elif np.isnan(p):
                m += "; p not estimable: " + ("every participant responded" if a + b == na + nb else "no participant responded")
            rows.append((int(j1), int(j2), k1, k2, a, na, b, nb, est, lo, hi, p, m))
    out = pd.DataFrame(
        rows,
        columns=[
            "responders_msc",
            "responders_sham",
            "not_evaluable_msc",
            "not_evaluable_sham",
            "events_msc",
            "n_msc",
            "events_sham",
            "n_sham",
            "estimate",
            "ci_low",
            "ci_high",
            "p_value",
            "method",
        ],
    )
    out["significant"] = (out["p_value"] < alpha).to_numpy(dtype=bool)
    return out[[*out.columns[:-2], "significant", "method"]]


# Threshold grids of the sensitivity analysis: each includes the default of config.py.
VAS_ABS_GRID = (10, 15, 20, 25, 30, 35, 40)  # mm


VAS_REL_GRID = (0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40)


ODI_REL_GRID = (0.10, 0.20, 0.30, 0.40)  # fraction of baseline (relative rule)


ODI_ABS_GRID = (10, 15, 20, 25, 30)  # points (absolute rule)


def threshold_grid(
    wide: pd.DataFrame,
    visit_month: int = config.PRIMARY_VISIT,
    vas_abs=VAS_ABS_GRID,
    vas_rel=VAS_REL_GRID,
    odi_thresholds=None,
    odi_rule: str = "relative",
) -> pd.DataFrame:
    """Responder risk difference over a grid of thresholds (evaluable participants at each point).

    Parameters
    ----------
    wide : DataFrame
        The wide view of ADEFF (:func:`respine_nb.derive.wide_outcomes`).
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
    if odi_rule not in config.ODI_RULES:
        raise ValueError(f"odi_rule must be one of {config.ODI_RULES}, not {odi_rule!r}")
    if odi_thresholds is None:
        odi_thresholds = ODI_REL_GRID if odi_rule == "relative" else ODI_ABS_GRID
    msc = (wide["arm"] == config.ARMS[0]).to_numpy()
    base_vas, vas, base_odi, odi = (
        wide[c].to_numpy(dtype=float, na_value=np.nan) for c in ("vas_0", f"vas_{visit_month}", "odi_0", f"odi_{visit_month}")
    )
    # the rule of endpoints.responder on arrays: a responder where either criterion is met, a
    # non-responder where both are known and neither is met, not evaluable otherwise
    both_known = ~np.isnan(base_vas) & ~np.isnan(vas) & ~np.isnan(base_odi) & ~np.isnan(odi)
    vas_met = {(a, r): endpoints.meets_vas(base_vas, vas, abs_mm=a, rel=r) for a in vas_abs for r in vas_rel}
    method = f"responder rule at each threshold (ODI {odi_rule}); Newcombe CI; Yates chi-square"
    compared = {}  # the comparison of each distinct set of counts, computed once (many cells share theirs)
    rows = []
    for o in odi_thresholds:
        odi_met = endpoints.meets_odi(
            base_odi, odi, rule=odi_rule, **({"rel": o} if odi_rule == "relative" else {"abs_points": o})
        )
        for a in vas_abs:
            for r in vas_rel:
                met = vas_met[(a, r)] | odi_met
                ok = met | both_known
                x1, n1 = int((met & msc).sum()), int((ok & msc).sum())
                x2, n2 = int((met & ~msc).sum()), int((ok & ~msc).sum())
                if (x1, n1, x2, n2) not in compared:
                    compared[x1, n1, x2, n2] = risk_difference_values(x1, n1, x2, n2)
                est, lo, hi, _, p = compared[x1, n1, x2, n2]
                m = method
                if min(n1, n2) == 0:
                    m = not_estimable(method, arms_without({config.ARMS[0]: n1, config.ARMS[1]: n2}))
                elif np.isnan(p):
                    m += "; p not estimable: " + (
                        "every participant responded" if x1 + x2 == n1 + n2 else "no participant responded"
                    )
                rows.append((a, r, odi_rule, o, x1 / n1 if n1 else np.nan, x2 / n2 if n2 else np.nan, est, lo, hi, p, n1 + n2, m))
    return pd.DataFrame(
        rows,
        columns=[
            "vas_abs_mm",
            "vas_rel",
            "odi_rule",
            "odi_threshold",
            "estimate_msc",
            "estimate_sham",
            "estimate",
            "ci_low",
            "ci_high",
            "p_value",
            "n",
            "method",
        ],
    )


def subgroups(resp: pd.DataFrame, factors: dict, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Risk difference by subgroup, with a treatment-by-subgroup interaction test.

    Parameters
    ----------
    resp : DataFrame
        The responder view (:func:`respine_nb.derive.responders`): ``ARM``, ``AVAL`` (missing rows
        are dropped) and the factor columns (ADSL's subgroup variables).
    factors : dict
        Subgroup label -> column holding the (categorical) level of each participant
        (:data:`respine_nb.derive.SUBGROUPS`).

    Returns
    -------
    pandas.DataFrame
        Columns ``subgroup``, ``factor`` (the column), ``level``, ``events_msc``, ``n_msc``, ``events_sham``,
        ``n_sham``, ``estimate``, ``ci_low``, ``ci_high`` (Newcombe), ``p_interaction``
        (likelihood-ratio test of arm x subgroup in a logistic regression; same value on
        every level of a subgroup).
    """
    d = resp[resp["AVAL"].notna()]
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
            rows.append((label, col, lev, x1, n1, x2, n2, est, lo, hi, p_int))
    return pd.DataFrame(
        rows,
        columns=[
            "subgroup",
            "factor",
            "level",
            "events_msc",
            "n_msc",
            "events_sham",
            "n_sham",
            "estimate",
            "ci_low",
            "ci_high",
            "p_interaction",
        ],
    )


def subgroup_interactions(resp: pd.DataFrame, sub: pd.DataFrame, factors: dict) -> pd.DataFrame:
    """The treatment-by-subgroup interaction test of each factor, as result rows.

    Parameters
    ----------
    resp : DataFrame
        The responder view the subgroups were computed on (its evaluable participants are ``n``).
    sub : DataFrame
        :func:`subgroups` of ``resp``.
    factors : dict
        The subgroup label -> column mapping given to :func:`subgroups`.

    Returns
    -------
    pandas.DataFrame
        One row per factor, in the order of ``factors``: ``subgroup`` (label), ``factor``
        (column), ``group`` (the contrast), ``p_value`` (LR test), ``n`` (evaluable
        participants), ``method`` (with the reason when the test cannot be computed).
    """
    p = sub.groupby("subgroup")["p_interaction"].first().reindex(list(factors))
    n = int(resp["AVAL"].notna().sum())
    return pd.DataFrame(
        {
            "subgroup": list(factors),
            "factor": list(factors.values()),
            "group": config.CONTRAST,
            "p_value": p.to_numpy(dtype=float),
            "n": n,
            "method": [
                f"LR test of arm x {label} (logistic)"
                + ("" if pd.notna(p[label]) else "; not estimable: too few evaluable participants")
                for label in factors
            ],
        }
    )


def interaction_p(d: pd.DataFrame, col: str, outcome: str = "AVAL") -> float:
    """Likelihood-ratio p of the arm x ``col`` interaction in a logistic regression.

    A numeric helper of :func:`subgroups`: ``y ~ msc + level`` against ``y ~ msc + level +
    msc:level``, ``level`` a categorical (treatment coding, as ``C(level)``; binomial GLM,
    statsmodels formula API).

    Parameters
    ----------
    d : DataFrame
        One row per participant: ``ARM``, ``outcome`` and ``col``; rows with a missing value are dropped.
    col : str
        The subgroup column (read as categorical).
    outcome : str
        The 1/0 (or boolean) outcome column.

    Returns
    -------
    float
        The p-value; NaN when either model cannot be fitted (a single level, separation, a level
        with one arm only).
    """
    dd = d[[outcome, "ARM", col]].dropna()
    frame = pd.DataFrame(
        {
            "y": dd[outcome].astype(bool).astype(float).to_numpy(),
            "msc": (dd["ARM"] == config.ARMS[0]).astype(float).to_numpy(),
            # categorical, its levels sorted as patsy sorts text: the same design, without patsy's
            # check of every cell for a missing value (0.3 s of the five tests at 11,400 participants).
            # The formulas name the column bare: patsy takes a pandas Categorical's codes as they are,
            # but C(level) would wrap it and send it through that cell-by-cell check again.
            "level": pd.Categorical(dd[col].astype(str).to_numpy()),
        }
    )
    if frame["level"].nunique() < 2:
        return float("nan")
    family = sm.families.Binomial()
    main = smf.glm("y ~ msc + level", data=frame, family=family)
    full = smf.glm("y ~ msc + level + msc:level", data=frame, family=family)
    X1 = full.exog
    if np.linalg.matrix_rank(X1) < X1.shape[1] or is_separated(frame["y"].to_numpy(), X1):
        return float("nan")
    lr = 2 * (full.fit().llf - main.fit().llf)
    return float(sps.chi2.sf(lr, X1.shape[1] - main.exog.shape[1]))
