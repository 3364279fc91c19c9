"""Covariate-adjusted primary analyses (ICH E9(R1), FDA 2023 guidance on covariate adjustment) and Holm's adjustment.

``primary.cmh``: Mantel-Haenszel common odds ratio over the site strata (the randomisation's
strata), as R ``mantelhaen.test``. ``primary.adjusted.risk_difference``: the standardised risk
difference by g-computation from a logistic model with site strata and the baseline scores, with
the delta-method standard error of Ge et al. (2011). ``holm``: Holm-adjusted p-values for the
descriptive secondary tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin as pg
import statsmodels.formula.api as smf
import statsmodels.genmod.api as sm  # GLM families only: statsmodels.api would also import its graphics and time series
from scipy import stats as sps
from statsmodels.stats.contingency_tables import StratifiedTable

from .. import config
from .binary import arms_without, is_separated, not_estimable_row, site_strata, z_quantile

__all__ = ["cmh", "fit_adjusted_logistic", "adjusted_risk_difference", "holm"]


def _binary(values: pd.Series) -> np.ndarray:
    return values.astype("boolean").astype(float).to_numpy()


def cmh(
    df: pd.DataFrame, outcome: str = "AVAL", arm: str = "ARM", strata: str = "SITEID", level: float = config.CI_LEVEL
) -> pd.DataFrame:
    """``primary.cmh``: Mantel-Haenszel common odds ratio (BM-MSC vs Sham) over site strata.

    The participants with a non-missing ``outcome`` (the evaluable) are analysed; their sites
    become strata as RESULTS_CONTRACT.md defines (:func:`respine_nb.stats.site_strata`: sites with
    fewer than 5 of them pooled into ``pooled small sites``, a stratum with fewer than 2 dropped).
    Same numbers as R ``mantelhaen.test(table(arm, responder, stratum))`` (default ``correct =
    TRUE``): the MH estimate, its CI from the Robins-Breslow-Greenland variance of the log odds
    ratio, and the CMH chi-square p with continuity correction (0.5, applied only when
    ``|sum(a - E a)| >= 0.5``, as R).

    Parameters
    ----------
    df : DataFrame
        One row per participant (e.g. ``derive.responders`` output).
    outcome : str
        Binary outcome column (True/1 = responder; missing = not evaluable, excluded).
    arm : str
        Arm column (``config.ARMS``).
    strata : str
        Site column, turned into site strata among the analysed participants.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row: ``group`` (the contrast), ``visit_month`` (NaN: the caller's visit), ``estimate``
        (MH odds ratio), ``ci_low``, ``ci_high``, ``p_value``, ``statistic`` (CMH chi-square),
        ``n`` (participants in the strata used), ``n_strata``, ``method``. NaN with the reason in
        ``method`` when an arm is empty, no stratum holds both arms, or the odds ratio is 0 or
        infinite.
    """
    method = "Mantel-Haenszel common odds ratio over site strata (RBG CI); CMH chi-square test with continuity correction"
    d = df.loc[df[outcome].notna() & df[arm].isin(config.ARMS), [outcome, arm, strata]]
    d = d.assign(_stratum=site_strata(d[strata])).dropna(subset=["_stratum"])
    nan = ("estimate", "ci_low", "ci_high", "p_value", "statistic")
    n_arm = {a: int((d[arm] == a).sum()) for a in config.ARMS}
    reason = arms_without(n_arm)
    tables = []
    for _, g in sorted(d.groupby("_stratum", sort=False), key=lambda kv: str(kv[0])):
        y, msc = _binary(g[outcome]) == 1, (g[arm] == config.ARMS[0]).to_numpy()
        tables.append([[(y & msc).sum(), (~y & msc).sum()], [(y & ~msc).sum(), (~y & ~msc).sum()]])
    both = [t for t in tables if min(sum(t[0]), sum(t[1])) > 0]
    if not reason and not both:
        reason = "no site stratum holds both arms"
    if not reason:
        t = np.asarray(tables, dtype=float)
        a, b, c, dd = t[:, 0, 0], t[:, 0, 1], t[:, 1, 0], t[:, 1, 1]
        n = t.sum(axis=(1, 2))
        if (a * dd / n).sum() == 0 or (b * c / n).sum() == 0:
            reason = "the odds ratio is 0 or infinite (no discordant pairs on one side)"
    if reason:
        return not_estimable_row(method, reason, len(d), nan, visit_month=np.nan, n_strata=len(tables))
    st = StratifiedTable(np.transpose(t, (1, 2, 0)))
    est = float(st.oddsratio_pooled)
    se = float(st.logodds_pooled_se)
    z = z_quantile(level)
    # CMH statistic as R: continuity correction only when |sum(a - E a)| >= 0.5
    row1, col1 = t[:, 0, :].sum(axis=1), t[:, :, 0].sum(axis=1)
    row2, col2 = t[:, 1, :].sum(axis=1), t[:, :, 1].sum(axis=1)
    delta = (a - row1 * col1 / n).sum()
    var = (row1 * row2 * col1 * col2 / (n**2 * (n - 1))).sum()
    yates = 0.5 if abs(delta) >= 0.5 else 0.0
    stat = (abs(delta) - yates) ** 2 / var if var > 0 else np.nan
    p = float(sps.chi2.sf(stat, 1)) if var > 0 else np.nan
    return pd.DataFrame(
        [
            {
                "group": config.CONTRAST,
                "visit_month": np.nan,
                "estimate": est,
                "ci_low": float(np.exp(np.log(est) - z * se)),
                "ci_high": float(np.exp(np.log(est) + z * se)),
                "p_value": p,
                "statistic": stat,
                "n": len(d),
                "n_strata": len(tables),
                "method": method,
            }
        ]
    )


def fit_adjusted_logistic(
    df: pd.DataFrame,
    outcome: str = "AVAL",
    arm: str = "ARM",
    strata: str = "SITEID",
    covariates=("BVAS", "BODI"),
):
    """The logistic model behind :func:`adjusted_risk_difference`, fitted.

    Parameters
    ----------
    df : DataFrame
        One row per participant.
    outcome, arm, strata : str
        Column names (outcome binary, missing = not analysed; strata = site column).
    covariates : sequence of str
        Numeric baseline covariates (rows with any missing are dropped).

    Returns
    -------
    tuple
        ``(fit, frame, reason)``: the statsmodels GLM results (None when not estimable), the
        analysed frame (columns ``y``, ``msc``, ``stratum``, the covariates and ``determined``:
        the outcome of the participants of a stratum where everyone had the same outcome, who
        are left out of the fit, NaN for the others) and the reason it cannot be estimated
        (``""`` when it can).
    """
    d = df.loc[df[outcome].notna() & df[arm].isin(config.ARMS), [outcome, arm, strata, *covariates]].dropna()
    stratum = site_strata(d[strata])
    keep = stratum.notna().to_numpy()
    frame = pd.DataFrame(
        {
            "y": _binary(d[outcome])[keep],
            "msc": (d[arm] == config.ARMS[0]).to_numpy(dtype=float)[keep],
            "stratum": stratum[keep].astype(str).to_numpy(),
            **{f"x{i}": d[c].astype(float).to_numpy()[keep] for i, c in enumerate(covariates)},
        }
    )
    reason = arms_without(
        {a: int(((frame["msc"] == 1) if a == config.ARMS[0] else (frame["msc"] == 0)).sum()) for a in config.ARMS}
    )
    if not reason and frame["y"].nunique() < 2:
        reason = "every participant responded" if frame["y"].all() else "no participant responded"
    if reason:
        return None, frame, reason
    # A stratum where everyone has the same outcome separates the data: its coefficient is at
    # infinity and its fitted probabilities are that outcome whatever the arm. It is set aside
    # (``determined``) and the model fitted on the other strata, which is the limit of the
    # maximum-likelihood fit (R's glm approaches it with a warning).
    if frame["stratum"].nunique() > 1:
        constant = frame.groupby("stratum")["y"].transform("nunique") == 1
        frame["determined"] = np.where(constant, frame["y"], np.nan)
    else:
        frame["determined"] = np.nan
    fitted = frame[frame["determined"].isna()]
    reason = arms_without(
        {a: int(((fitted["msc"] == 1) if a == config.ARMS[0] else (fitted["msc"] == 0)).sum()) for a in config.ARMS},
        "participant in a site stratum with both outcomes",
    )
    if reason:
        return None, frame, reason
    terms = ["msc"] + (["C(stratum)"] if fitted["stratum"].nunique() > 1 else []) + [f"x{i}" for i in range(len(covariates))]
    model = smf.glm("y ~ " + " + ".join(terms), data=fitted, family=sm.families.Binomial())
    if np.linalg.matrix_rank(model.exog) < model.exog.shape[1]:
        return None, frame, "arm confounded with the covariates"
    if is_separated(fitted["y"].to_numpy(), model.exog):
        return None, frame, "perfect separation"
    return model.fit(tol=1e-12, maxiter=200), frame, ""


def adjusted_risk_difference(
    df: pd.DataFrame,
    outcome: str = "AVAL",
    arm: str = "ARM",
    strata: str = "SITEID",
    covariates=("BVAS", "BODI"),
    level: float = config.CI_LEVEL,
) -> pd.DataFrame:
    """``primary.adjusted.risk_difference``: standardised risk difference by g-computation.

    Logistic regression ``y ~ arm + site stratum + baseline VAS + baseline ODI`` on the
    participants with the outcome and both baselines (site strata among them, see
    :func:`respine_nb.stats.site_strata`); the estimate is the mean predicted probability with
    everyone set to BM-MSC minus the mean with everyone set to Sham; its variance
    ``g' V g`` (delta method, Ge et al. 2011) with ``V`` the model's covariance and
    ``g = mean(p1 (1 - p1) x1) - mean(p0 (1 - p0) x0)``; Wald CI and two-sided normal p.

    Parameters
    ----------
    df : DataFrame
        One row per participant (e.g. ``derive.responders`` output: ``responder``, ``arm``,
        ``SITEID``, ``BVAS``, ``BODI``).
    outcome, arm, strata : str
        Column names.
    covariates : sequence of str
        Numeric baseline covariates.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``visit_month`` (NaN), ``estimate``, ``ci_low``, ``ci_high``,
        ``p_value``, ``se``, ``estimate_msc``, ``estimate_sham`` (standardised proportions),
        ``n``, ``method``. NaN with the reason in ``method`` when the model cannot be fitted
        (an arm empty, no variation of the outcome, separation, arm confounded).
    """
    method = (
        "standardised risk difference (g-computation) from logistic regression on arm, site strata, "
        + ", ".join(covariates)
        + "; delta-method SE (Ge et al. 2011); Wald CI"
    )
    fit, frame, reason = fit_adjusted_logistic(df, outcome, arm, strata, covariates)
    if reason:
        nan = ("estimate", "ci_low", "ci_high", "p_value", "se", "estimate_msc", "estimate_sham")
        return not_estimable_row(method, reason, len(frame), nan, visit_month=np.nan)
    j = fit.model.exog_names.index("msc")  # arm enters as one numeric column, no interaction
    X1, X0 = fit.model.exog.copy(), fit.model.exog.copy()
    X1[:, j], X0[:, j] = 1.0, 0.0
    b = fit.params.to_numpy()
    p1, p0 = 1 / (1 + np.exp(-X1 @ b)), 1 / (1 + np.exp(-X0 @ b))
    determined = frame["determined"].dropna().to_numpy(dtype=float)  # same probability in both arms
    n_all = len(p1) + len(determined)
    est = (p1.sum() - p0.sum()) / n_all
    g = ((p1 * (1 - p1)) @ X1 - (p0 * (1 - p0)) @ X0) / n_all
    if len(determined):
        k = frame.loc[frame["determined"].notna(), "stratum"].nunique()
        method += (
            f"; {k} site stratum(s) where every participant had the same outcome ({len(determined)} participants) "
            "enter with that outcome as fitted probability in both arms (the limit of the maximum-likelihood fit)"
        )
    p1_mean, p0_mean = (p1.sum() + determined.sum()) / n_all, (p0.sum() + determined.sum()) / n_all
    se = float(np.sqrt(g @ fit.cov_params().to_numpy() @ g))
    z = z_quantile(level)
    return pd.DataFrame(
        [
            {
                "group": config.CONTRAST,
                "visit_month": np.nan,
                "estimate": float(est),
                "ci_low": float(est - z * se),
                "ci_high": float(est + z * se),
                "p_value": float(2 * sps.norm.sf(abs(est / se))) if se > 0 else np.nan,
                "se": se,
                "estimate_msc": float(p1_mean),
                "estimate_sham": float(p0_mean),
                "n": len(frame),
                "method": method,
            }
        ]
    )


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values (pingouin ``multicomp(method="holm")``), as R ``p.adjust(p, "holm")``.

    (statsmodels' ``multipletests(method="holm")`` gives the same numbers, but runs a full garbage
    collection at each call: 0.2 s in a notebook's kernel, three times in notebook 03.)

    Parameters
    ----------
    p_values : array-like of float
        Raw p-values; NaN stays NaN and does not count in the family (as R's default ``n``).

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, same order and length.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = pg.multicomp(p[ok], method="holm")[1]
    return out
