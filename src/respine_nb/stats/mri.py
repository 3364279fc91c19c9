"""MRI: T2 by Pfirrmann grade, change from baseline, ANCOVA, grade shifts, structure vs symptoms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin as pg
import statsmodels.formula.api as smf

from .. import config, mmrm
from .binary import POOLED_SITES as _POOLED
from .binary import SMALL_SITE as _SMALL
from .binary import (
    arms_without,
    not_estimable,
    not_estimable_row,
    proportions,
    relabel_method,
    site_strata,
)
from .continuous import mean_ci

__all__ = [
    "images_by_visit",
    "t2_by_grade",
    "t2_grade_correlation",
    "change_summary",
    "ancova",
    "change_by_visit",
    "grade_shift",
    "grade_worsening",
    "correlation",
    "structure_vs_symptoms",
    "t2_mmrm",
]


def images_by_visit(admri: pd.DataFrame, paramcd: str = "T2NP") -> pd.DataFrame:
    """Participants with a value of one MRI parameter, per imaging visit and arm.

    Parameters
    ----------
    admri : DataFrame
        The MRI dataset.
    paramcd : str
        ``T2NP`` (default), ``PFIRR`` or ``DISCHT``.

    Returns
    -------
    pandas.DataFrame
        Index ``visit_month``; one count column per arm (config order).
    """
    d = admri[(admri["PARAMCD"] == paramcd) & admri["AVAL"].notna()]
    t = pd.crosstab(d["AVISITN"].astype(int), d["ARM"].astype(str))
    return t.reindex(columns=list(config.ARMS), fill_value=0).rename_axis(index="visit_month", columns=None)


def t2_by_grade(grades: pd.DataFrame) -> pd.DataFrame:
    """T2 of the nucleus pulposus by modified Pfirrmann grade at one visit (mean, t CI).

    The rank correlation over all grades is :func:`t2_grade_correlation`.

    Parameters
    ----------
    grades : DataFrame
        The MRI parameters side by side at one visit (:func:`respine_nb.derive.mri_by_visit`:
        ``T2NP``, ``PFIRR``).

    Returns
    -------
    pandas.DataFrame
        One row per grade: ``grade``, ``n``, ``mean``, ``sd``, ``ci_low``, ``ci_high``.
    """
    d = _t2_grades(grades)
    rows = [{"grade": int(g), **mean_ci(x["T2NP"])} for g, x in d.groupby("PFIRR", sort=True)]
    return pd.DataFrame(rows, columns=["grade", "n", "mean", "sd", "ci_low", "ci_high"])


def t2_grade_correlation(grades: pd.DataFrame) -> pd.DataFrame:
    """Spearman rank correlation between modified Pfirrmann grade and T2 at one visit (pingouin).

    Parameters
    ----------
    grades : DataFrame
        The MRI parameters side by side at one visit (:func:`respine_nb.derive.mri_by_visit`:
        ``AVISITN``, ``T2NP``, ``PFIRR``).

    Returns
    -------
    pandas.DataFrame
        One row: ``group`` (``all``), ``visit_month``, ``estimate`` (Spearman's rho), ``p_value``,
        ``n``, ``method``; NaN with the reason in ``method`` with fewer than 3 participants, one
        grade or one T2 value.
    """
    d = _t2_grades(grades)
    visit_month = grades["AVISITN"].iloc[0] if len(grades) else np.nan
    method = "Spearman rank correlation, grade vs T2 (pingouin)"
    reason = (
        "fewer than 3 participants"
        if len(d) < 3
        else "a single grade"
        if d["PFIRR"].nunique() < 2
        else "a single T2 value"
        if d["T2NP"].nunique() < 2
        else ""
    )
    rho = p = np.nan
    if not reason:
        c = pg.corr(d["PFIRR"].astype(float), d["T2NP"].astype(float), method="spearman")
        rho, p = float(c["r"].iloc[0]), float(c["p_val"].iloc[0])
    return pd.DataFrame(
        [
            {
                "group": "all",
                "visit_month": visit_month,
                "estimate": rho,
                "p_value": p,
                "n": len(d),
                "method": not_estimable(method, reason) if reason else method,
            }
        ]
    )


def _t2_grades(grades: pd.DataFrame) -> pd.DataFrame:
    """The participants with both a T2 value and a grade."""
    return grades.dropna(subset=["T2NP", "PFIRR"])


def change_summary(pairs: pd.DataFrame, level: float = config.CI_LEVEL, test: bool = True) -> pd.DataFrame:
    """Within-arm change from baseline: mean with t CI and the paired t test (pingouin).

    Parameters
    ----------
    pairs : DataFrame
        The change view of one visit (:func:`respine_nb.derive.paired_visit`: ``ARM``, ``BASE``,
        ``AVAL``, ``CHG``).
    level : float
        Confidence level.
    test : bool
        False: a description only, without the paired t test (no ``p_value`` column; ``method``
        "mean change, t CI"): a within-arm p invites reading a change within one arm as an effect.

    Returns
    -------
    pandas.DataFrame
        One row per arm: ``group``, ``n``, ``mean_baseline``, ``mean_value``, ``estimate``
        (mean change), ``sd``, ``ci_low``, ``ci_high``, ``p_value`` (paired t), ``method``
        (with the reason when fewer than 2 participants, or no variation, leave a number empty).
    """
    rows = []
    for arm in config.ARMS:
        d = pairs[pairs["ARM"] == arm]
        s = mean_ci(d["CHG"], level)
        method = "mean change, t CI; paired t test" if test else "mean change, t CI"
        if len(d) < 2:
            method = not_estimable(method, f"fewer than 2 participants with both visits in {arm}")
            p = np.nan
        elif not test:
            p = np.nan
        elif not s["sd"] > 0:
            method += "; p not estimable: no variation in the change"
            p = np.nan
        else:
            p = float(pg.ttest(d["AVAL"], d["BASE"], paired=True)["p_val"].iloc[0])
        rows.append(
            {
                "group": arm,
                "n": s["n"],
                "mean_baseline": d["BASE"].mean() if len(d) else np.nan,
                "mean_value": d["AVAL"].mean() if len(d) else np.nan,
                "estimate": s["mean"],
                "sd": s["sd"],
                "ci_low": s["ci_low"],
                "ci_high": s["ci_high"],
                "p_value": p,
                "method": method,
            }
        )
    out = pd.DataFrame(rows)
    return out if test else out.drop(columns="p_value")


def ancova(pairs: pd.DataFrame, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Between-arm ANCOVA ``change ~ arm + baseline`` (OLS): the arm coefficient.

    Parameters
    ----------
    pairs : DataFrame
        The change view of one visit (:func:`respine_nb.derive.paired_visit`: ``ARM``, ``BASE``, ``CHG``).

    Returns
    -------
    pandas.DataFrame
        One row: ``group`` (contrast), ``estimate``, ``se``, ``df``, ``ci_low``, ``ci_high``,
        ``p_value``, ``n``, ``method``; NaN with the reason in ``method`` when an arm is empty,
        fewer than 4 participants, or no residual variation.
    """
    method = "ANCOVA (OLS): change ~ arm + baseline"
    frame = pd.DataFrame(
        {
            "change": pairs["CHG"].to_numpy(dtype=float),
            "msc": (pairs["ARM"] == config.ARMS[0]).to_numpy(dtype=float),
            "baseline": pairs["BASE"].to_numpy(dtype=float),
        }
    )
    n_msc = int(frame["msc"].sum())
    reason = arms_without({config.ARMS[0]: n_msc, config.ARMS[1]: len(frame) - n_msc}, "participant with both visits") or (
        "fewer than 4 participants with both visits" if len(frame) < 4 else ""
    )
    if not reason:
        model = smf.ols("change ~ msc + baseline", data=frame)
        if np.linalg.matrix_rank(model.exog) < model.exog.shape[1]:
            reason = "arm confounded with baseline"
        else:
            fit = model.fit()
            y = frame["change"].to_numpy()
            if not fit.ssr > 1e-12 * max(1.0, float(y @ y)):
                reason = "the model fits exactly (no residual variation)"
    if reason:
        return not_estimable_row(method, reason, len(pairs), ("estimate", "se", "df", "ci_low", "ci_high", "p_value"))
    lo, hi = fit.conf_int(alpha=1 - level).loc["msc"]
    return pd.DataFrame(
        [
            {
                "group": config.CONTRAST,
                "estimate": float(fit.params["msc"]),
                "se": float(fit.bse["msc"]),
                "df": float(fit.df_resid),
                "ci_low": float(lo),
                "ci_high": float(hi),
                "p_value": float(fit.pvalues["msc"]),
                "n": len(pairs),
                "method": method,
            }
        ]
    )


def change_by_visit(pairs: pd.DataFrame, skip=(), level: float = config.CI_LEVEL, test: bool = True) -> pd.DataFrame:
    """:func:`change_summary` and :func:`ancova` at every visit of ``pairs`` with both arms.

    Parameters
    ----------
    pairs : DataFrame
        The change view over visits (:func:`respine_nb.derive.paired_visit` without a visit).
    skip : sequence of int
        Visits left out (e.g. the primary visit, reported on its own).
    level : float
        Confidence level.
    test : bool
        As :func:`change_summary` (False: the arms' rows without a paired t p; the ANCOVA keeps its p).

    Returns
    -------
    pandas.DataFrame
        Columns ``visit_month``, ``group``, ``n``, ``estimate``, ``ci_low``, ``ci_high``, ``p_value``,
        ``method``: per visit, one row per arm (change) and one for the contrast (ANCOVA); no row
        when no other visit has both arms.
    """
    cols = ["visit_month", "group", "n", "estimate", "ci_low", "ci_high", "p_value", "method"]
    parts = []
    for v in sorted(int(v) for v in pairs["AVISITN"].unique()):
        p = pairs[pairs["AVISITN"] == v]
        if v in skip or p["ARM"].nunique() < 2:
            continue
        parts.append(pd.concat([change_summary(p, level, test), ancova(p, level)], ignore_index=True).assign(visit_month=v))
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def grade_shift(admri: pd.DataFrame, visit_month: int) -> pd.DataFrame:
    """Modified Pfirrmann grade at baseline against ``visit_month``, per arm (long counts).

    Parameters
    ----------
    admri : DataFrame
        The MRI dataset (its ``PFIRR`` records: AVAL, BASE).
    visit_month : int
        The visit.

    Returns
    -------
    pandas.DataFrame
        Columns ``group``, ``base_grade``, ``grade``, ``n`` (only non-zero cells), sorted.
    """
    d = _grades(admri, visit_month)
    out = (
        d.groupby(["ARM", "BASE", "AVAL"])
        .size()
        .rename("n")
        .reset_index()
        .rename(columns={"ARM": "group", "BASE": "base_grade", "AVAL": "grade"})
    )
    out["base_grade"] = out["base_grade"].astype(int)
    out["grade"] = out["grade"].astype(int)
    return out.sort_values(["group", "base_grade", "grade"], kind="mergesort").reset_index(drop=True)


def grade_worsening(admri: pd.DataFrame, visit_month: int) -> pd.DataFrame:
    """Proportion whose modified Pfirrmann grade worsened (rose) by ``visit_month``, per arm; Wilson CI.

    Parameters
    ----------
    admri : DataFrame
        The MRI dataset (its ``PFIRR`` records: AVAL, BASE).
    visit_month : int
        The visit.

    Returns
    -------
    pandas.DataFrame
        Columns of :func:`proportions`.
    """
    d = _grades(admri, visit_month)
    d = d.assign(worse=(d["AVAL"] > d["BASE"]).to_numpy(dtype=bool))
    out = proportions(d, outcome="worse")
    out["method"] = [relabel_method(m, "proportion with a higher grade than at baseline; Wilson CI") for m in out["method"]]
    return out


def _grades(admri: pd.DataFrame, visit_month: int) -> pd.DataFrame:
    """The PFIRR records of ``visit_month`` with a grade and a baseline grade."""
    return admri[(admri["PARAMCD"] == "PFIRR") & (admri["AVISITN"] == visit_month)].dropna(subset=["AVAL", "BASE"])


def correlation(x, y, method: str = "pearson", level: float = config.CI_LEVEL) -> dict:
    """Correlation with its CI (pingouin; Fisher z interval as R ``cor.test``).

    Returns
    -------
    dict
        ``n``, ``estimate`` (r), ``ci_low``, ``ci_high``, ``p_value``; when not estimable (fewer
        than 4 pairs, a constant variable) NaN and a ``reason``.
    """
    d = pd.DataFrame(
        {
            "x": pd.to_numeric(pd.Series(x), errors="coerce").astype(float).to_numpy(),
            "y": pd.to_numeric(pd.Series(y), errors="coerce").astype(float).to_numpy(),
        }
    ).dropna()
    n = len(d)
    if n < 4 or d["x"].nunique() < 2 or d["y"].nunique() < 2:
        return {
            "n": n,
            "estimate": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "p_value": np.nan,
            "reason": "fewer than 4 participants" if n < 4 else "no variation",
        }
    c = pg.corr(d["x"], d["y"], method=method)
    r = float(c["r"].iloc[0])
    lo, hi = pg.compute_esci(stat=r, nx=n, ny=n, eftype="r", confidence=level, decimals=12)
    return {"n": n, "estimate": r, "ci_low": float(lo), "ci_high": float(hi), "p_value": float(c["p_val"].iloc[0])}


def structure_vs_symptoms(pairs: pd.DataFrame, adeff: pd.DataFrame, visit_month: int, measures=("VAS", "ODI")) -> pd.DataFrame:
    """Pearson correlation of T2 change with the change in each symptom measure at the same visit,
    per arm and pooled.

    Parameters
    ----------
    pairs : DataFrame
        The T2 change view at ``visit_month`` (:func:`respine_nb.derive.paired_visit`).
    adeff : DataFrame
        The efficacy dataset (CHG of the measures).
    visit_month : int
        The visit.
    measures : sequence of str
        PARAMCD of the symptom measures.

    Returns
    -------
    pandas.DataFrame
        Columns ``measure`` (PARAMCD), ``group`` (arm or ``all``), ``n``, ``estimate`` (r), ``ci_low``,
        ``ci_high``, ``p_value``, ``method``.
    """
    rows = []
    for m in measures:
        ch = adeff[(adeff["PARAMCD"] == m) & (adeff["AVISITN"] == visit_month)].set_index("USUBJID")["CHG"]
        d = pairs.assign(symptom=pairs["USUBJID"].map(ch).astype(float))
        for group in (*config.ARMS, "all"):
            dd = d if group == "all" else d[d["ARM"] == group]
            c = correlation(dd["CHG"], dd["symptom"])
            method = "Pearson r, Fisher z CI (pingouin)"
            reason = c.pop("reason", "")
            rows.append({"measure": m, "group": group, **c, "method": not_estimable(method, reason) if reason else method})
    return pd.DataFrame(rows)


def t2_mmrm(admri: pd.DataFrame, visits=None, paramcd: str = "T2NP", level: float = config.CI_LEVEL) -> pd.DataFrame:
    """MMRM of the change in T2 over every post-baseline MRI visit, with site stratum (``mri.t2.mmrm``).

    ``change ~ C(visit) * arm + C(visit) * baseline + site stratum``, unstructured covariance
    within a participant, REML, Satterthwaite degrees of freedom (:func:`respine_nb.mmrm.fit_mmrm`);
    the contrast at each visit is the difference of LS means BM-MSC minus Sham. Site strata as
    RESULTS_CONTRACT.md defines them (sites with fewer than 5 participants in the model pooled; a
    stratum of one participant dropped); MRI scanners differ between sites, hence the stratum.
    Visits where an arm has fewer than two participants observed are left out and reported empty.

    Parameters
    ----------
    admri : pandas.DataFrame
        The MRI dataset (ADMRI): ``USUBJID``, ``ARM``, ``SITEID``, ``PARAMCD``, ``AVISITN``,
        ``BASE``, ``CHG``; the post-baseline records of ``paramcd`` with a baseline and a change
        enter the model.
    visits : sequence of int, optional
        The visits reported (default: the post-baseline visits of ``config.MRI_VISITS``).
    paramcd : str
        The MRI parameter (T2 of the nucleus pulposus by default).
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per visit: ``group`` (the contrast), ``visit_month``, ``estimate``, ``ci_low``,
        ``ci_high``, ``p_value``, ``df``, ``n`` (participants in the model, the same at every
        visit), ``method``.
    """
    visits = sorted(int(v) for v in (visits if visits is not None else [v for v in config.MRI_VISITS if v > 0]))
    d = admri[(admri["PARAMCD"] == paramcd) & admri["AVISITN"].isin(visits) & admri["BASE"].notna() & admri["CHG"].notna()]
    d = d[["USUBJID", "ARM", "SITEID", "AVISITN", "BASE", "CHG"]].astype({"AVISITN": int, "BASE": float, "CHG": float})
    kept, reasons = mmrm.modelled_visits(d, visits, visit="AVISITN", arm="ARM")
    d = d[d["AVISITN"].isin(kept)]
    strata = site_strata(d.drop_duplicates("USUBJID").set_index("USUBJID")["SITEID"])
    d = d.assign(STRATUM=d["USUBJID"].map(strata)).dropna(subset=["STRATUM"])
    n = int(d["USUBJID"].nunique())
    n_strata = int(d["STRATUM"].nunique())
    method = mmrm.METHOD + ("; site stratum" if n_strata > 1 else "; one site stratum")
    if _POOLED in set(d["STRATUM"]):
        method += f" (sites with fewer than {_SMALL} participants pooled)"
    columns = ["group", "visit_month", "estimate", "ci_low", "ci_high", "p_value", "df", "n", "method"]
    rows = {}
    if kept:
        formula = "CHG ~ C(AVISITN) * ARM + C(AVISITN) * BASE" + (" + C(STRATUM)" if n_strata > 1 else "")
        try:
            fit = mmrm.fit_mmrm(formula, d, "USUBJID", "AVISITN", visits=kept)
            diffs = mmrm.ls_mean_differences(fit, "ARM", by="AVISITN", reference=config.ARMS[1], level=level)
            for r in diffs.itertuples(index=False):
                rows[int(r.AVISITN)] = dict(
                    estimate=r.estimate, ci_low=r.ci_low, ci_high=r.ci_high, p_value=r.p_value, df=r.df, method=method
                )
        except (mmrm.MMRMConvergenceError, mmrm.MMRMRankError, np.linalg.LinAlgError, ValueError) as exc:
            reasons.update({v: f"the model could not be fitted ({exc})" for v in kept})
    out = []
    for v in visits:
        r = rows.get(v) or dict(method=not_estimable(method, reasons.get(v, f"no participant observed at month {v}")))
        out.append({"group": config.CONTRAST, "visit_month": v, **r, "n": n})
    return pd.DataFrame(out, columns=columns)
