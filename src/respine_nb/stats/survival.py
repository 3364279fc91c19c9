"""Time to first response: Kaplan-Meier, log-rank, Cox, Turnbull NPMLE, Weibull AFT, durability."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter, WeibullAFTFitter
from lifelines.exceptions import ConvergenceError, ConvergenceWarning, StatisticalWarning
from lifelines.statistics import logrank_test, proportional_hazard_test
from lifelines.utils import median_survival_times

from .. import config
from .binary import arms_without, covariate_text, not_estimable, not_estimable_row, proportions, z_quantile

__all__ = [
    "km_median",
    "km_summary",
    "logrank",
    "cox",
    "fit_cox",
    "ph_test",
    "turnbull_npmle",
    "turnbull",
    "weibull_interval",
    "durability",
]


def km_median(times: np.ndarray, surv: np.ndarray) -> float:
    """Median as R ``survfit``: the first time S(t) < 0.5; where S(t) = 0.5 on a step, the midpoint
    between that time and the next event time.

    Parameters
    ----------
    times, surv : numpy.ndarray
        The Kaplan-Meier step function: event times and S(t) after each.

    Returns
    -------
    float
        The median; NaN when not reached.
    """
    eps = 1e-10
    below = np.flatnonzero(surv < 0.5 - eps)
    at = np.flatnonzero(np.abs(surv - 0.5) <= eps)
    if len(at):
        k = at[0]
        return float((times[k] + times[k + 1]) / 2) if k + 1 < len(times) else float("nan")
    return float(times[below[0]]) if len(below) else float("nan")


def km_summary(adtte: pd.DataFrame, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Kaplan-Meier median time to first response per arm (lifelines), with its CI.

    Parameters
    ----------
    adtte : DataFrame
        The time-to-event dataset (``ARM``, ``AVAL`` in months, ``CNSR`` 1 censored / 0 event).
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per arm: ``group``, ``n``, ``events``, ``estimate`` (median, months; NaN if
        not reached), ``ci_low``, ``ci_high`` (from the log-log pointwise band, lifelines'
        default, as R ``survfit(conf.type = "log-log")``), ``method`` (``not estimable: median
        not reached``, or no participant in the arm).
    """
    rows = []
    method = "Kaplan-Meier median (lifelines); log-log CI"
    for arm in config.ARMS:
        d = adtte[adtte["ARM"] == arm]
        if d.empty:
            rows.append(
                {
                    "group": arm,
                    "n": 0,
                    "events": 0,
                    "estimate": np.nan,
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "method": not_estimable(method, f"no participant evaluable after baseline in {arm}"),
                }
            )
            continue
        kmf = KaplanMeierFitter(alpha=1 - level).fit(d["AVAL"].astype(float), _event(d), label=arm)
        sf = kmf.survival_function_
        med = km_median(sf.index.to_numpy(dtype=float), sf[arm].to_numpy(dtype=float))
        ci = median_survival_times(kmf.confidence_interval_)
        lo, hi = (float(ci.iloc[0, 0]), float(ci.iloc[0, 1])) if len(ci) else (np.nan, np.nan)
        rows.append(
            {
                "group": arm,
                "n": len(d),
                "events": int(_event(d).sum()),
                "estimate": med,
                "ci_low": lo if np.isfinite(lo) else np.nan,
                "ci_high": hi if np.isfinite(hi) else np.nan,
                "method": method if np.isfinite(med) else not_estimable(method, "median not reached"),
            }
        )
    return pd.DataFrame(rows)


def logrank(adtte: pd.DataFrame) -> pd.DataFrame:
    """Log-rank test BM-MSC vs sham (lifelines; as R ``survdiff``).

    Parameters
    ----------
    adtte : DataFrame
        The time-to-event dataset (``ARM``, ``AVAL``, ``CNSR``).

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``statistic`` (chi-square, 1 df), ``p_value``, ``n``, ``method``
        (NaN and the reason when an arm is empty or there is no event).
    """
    a, b = adtte[adtte["ARM"] == config.ARMS[0]], adtte[adtte["ARM"] == config.ARMS[1]]
    method = "log-rank test"
    reason = arms_without({config.ARMS[0]: len(a), config.ARMS[1]: len(b)}, "participant evaluable after baseline") or (
        "no event in either arm" if not _event(adtte).any() else ""
    )
    if reason:
        return pd.DataFrame(
            [
                {
                    "group": config.CONTRAST,
                    "statistic": np.nan,
                    "p_value": np.nan,
                    "n": len(adtte),
                    "method": not_estimable(method, reason),
                }
            ]
        )
    r = logrank_test(a["AVAL"].astype(float), b["AVAL"].astype(float), _event(a), _event(b))
    return pd.DataFrame(
        [
            {
                "group": config.CONTRAST,
                "statistic": float(r.test_statistic),
                "p_value": float(r.p_value),
                "n": len(adtte),
                "method": "log-rank test",
            }
        ]
    )


def _event(adtte: pd.DataFrame) -> np.ndarray:
    """True for an event (CNSR 0), False for a censored time."""
    return (pd.to_numeric(adtte["CNSR"]).to_numpy(dtype=float) == 0) if len(adtte) else np.zeros(0, dtype=bool)


def _cox_frame(adtte: pd.DataFrame, covariates) -> pd.DataFrame:
    d = pd.DataFrame(
        {
            "time": adtte["AVAL"].astype(float).to_numpy(),
            "event": _event(adtte).astype(int),
            "msc": (adtte["ARM"] == config.ARMS[0]).astype(float).to_numpy(),
        }
    )
    for c in covariates:
        d[c] = pd.to_numeric(adtte[c], errors="coerce").astype(float).to_numpy()
    return d.dropna()


def _fit_quietly(fit_fn):
    """Run a lifelines fit; (fitted model, None) or (None, reason) when it fails or warns that it did
    not converge (lifelines' ConvergenceWarning/ConvergenceError, a singular or degenerate model)."""

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
    ev = {
        arm: int(frame.loc[(frame["msc"] == 1) if arm == config.ARMS[0] else (frame["msc"] == 0), "event"].sum())
        for arm in config.ARMS
    }
    if not sum(ev.values()) and min(n.values()):
        return "no event in either arm"
    return arms_without(n, what) or arms_without(ev, "event")


def fit_cox(adtte: pd.DataFrame, covariates=(), level: float = config.CI_LEVEL):
    """Fit the Cox proportional hazards model of :func:`cox` and return the fitted model.

    Parameters
    ----------
    adtte : DataFrame
        Time-to-event dataset (``AVAL``, ``CNSR``, ``ARM`` and the covariates).
    covariates : sequence of str
        Numeric adjustment columns (e.g. ``BVAS``, ``BODI``).
    level : float
        Confidence level of the fitter's intervals.

    Returns
    -------
    tuple
        (``lifelines.CoxPHFitter`` or None, model frame): the fitter is None when the model is
        not estimable (an arm empty or without event, a covariate that does not vary, a fit that
        does not converge; :func:`cox` gives the reason). The model frame (``time``, ``event``,
        ``msc`` and the covariates, complete rows) is what the model was fitted on, the input of
        :func:`ph_test`.
    """
    fit, frame, _ = _fit_cox(adtte, covariates, level)
    return fit, frame


def _fit_cox(adtte: pd.DataFrame, covariates, level: float):
    """(fitted CoxPHFitter or None, model frame, reason it is None or "")."""
    d = _cox_frame(adtte, covariates)
    reason = _event_reason(d)
    if not reason and any(d[c].nunique() < 2 for c in covariates):
        reason = "a covariate does not vary"
    fit = None
    if not reason:
        # precision 1e-10: lifelines' default (1e-7) stops about 1e-4 short of R's coefficient
        fit, reason = _fit_quietly(lambda: CoxPHFitter(alpha=1 - level).fit(d, "time", "event", fit_options={"precision": 1e-10}))
    return fit, d, reason or ""


def cox(adtte: pd.DataFrame, covariates=(), level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Cox proportional hazards model, Efron ties (lifelines; as R ``coxph`` default): the hazard ratio.

    The fitted model itself comes from :func:`fit_cox`.

    Parameters
    ----------
    adtte : DataFrame
        Time-to-event dataset (``AVAL``, ``CNSR``, ``ARM`` and the covariates).
    covariates : sequence of str
        Numeric adjustment columns (e.g. ``BVAS``, ``BODI``; ``method`` names them as
        :func:`respine_nb.stats.covariate_text` does).
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``estimate`` (hazard ratio BM-MSC vs sham), ``ci_low``, ``ci_high``
        (Wald, exp(coef -/+ z se) at ``level``, as R ``confint``), ``p_value`` (Wald), ``coef``,
        ``se``, ``n``, ``events``, ``method``; NaN with the reason in ``method`` when not
        estimable (an arm empty or without event, a model that does not converge).
    """
    fit, d, reason = _fit_cox(adtte, covariates, level)
    adj = f"; adjusted for {covariate_text(covariates)}" if covariates else ""
    method = f"Cox PH, Efron ties; Wald CI and p{adj}"
    if not reason:
        s = fit.summary.loc["msc"]
        b, se, z = float(s["coef"]), float(s["se(coef)"]), z_quantile(level)
        if not abs(b) + z * se < 700:  # exp would overflow: a degenerate fit (too few events)
            reason = "the model did not converge (infinite confidence bound)"
    if reason:
        row = {
            "estimate": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "p_value": np.nan,
            "coef": np.nan,
            "se": np.nan,
            "method": not_estimable(method, reason),
        }
    else:
        row = {
            "estimate": float(np.exp(b)),
            "ci_low": float(np.exp(b - z * se)),
            "ci_high": float(np.exp(b + z * se)),
            "p_value": float(s["p"]),
            "coef": b,
            "se": se,
            "method": method,
        }
    out = pd.DataFrame([{"group": config.CONTRAST, **row, "n": len(d), "events": int(d["event"].sum())}])
    return out[["group", "estimate", "ci_low", "ci_high", "p_value", "coef", "se", "n", "events", "method"]]


def ph_test(fit, frame: pd.DataFrame) -> pd.DataFrame:
    """Schoenfeld-residual test of proportional hazards (lifelines, KM time transform).

    Parameters
    ----------
    fit : lifelines.CoxPHFitter or None
        The fitted model of :func:`fit_cox`.
    frame : DataFrame
        Its model frame (the second item :func:`fit_cox` returns).

    Returns
    -------
    pandas.DataFrame
        One row per covariate: ``covariate``, ``group`` (the contrast for the arm term ``msc``,
        else the covariate), ``statistic`` (chi-square), ``estimate`` (the same statistic, the
        number the results contract records), ``p_value``, ``n`` (rows of the model frame),
        ``method``; with ``fit`` None (the Cox model was not estimable) one row for ``msc`` with NaN.
    """
    method = "Schoenfeld residual test, KM time scale"
    if fit is None:
        covariates, stat, p, method = ["msc"], [np.nan], [np.nan], not_estimable(method, "no Cox model")
    else:
        r = proportional_hazard_test(fit, frame, time_transform="km").summary
        covariates, stat, p = list(r.index), r["test_statistic"].to_numpy(), r["p"].to_numpy()
    return pd.DataFrame(
        {
            "covariate": covariates,
            "group": [config.CONTRAST if c == "msc" else c for c in covariates],
            "statistic": stat,
            "estimate": stat,
            "p_value": p,
            "n": len(frame),
            "method": method,
        }
    )


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
    is only seen at a visit (true time in (INTLO, INTHI] of ADTTE); see :func:`turnbull_npmle`.

    Parameters
    ----------
    adtte : DataFrame
        The time-to-event dataset (``ARM``, ``INTLO``, ``INTHI``).

    Returns
    -------
    pandas.DataFrame
        Columns ``group``, ``lower``, ``upper``, ``mass``, ``survival``, ``cumulative`` (1 - S
        after the interval; the NPMLE does not say where inside the interval the mass lies,
        and has no standard CI). An arm without participants has no row.
    """
    rows = []
    for arm in config.ARMS:
        d = adtte[adtte["ARM"] == arm]
        t = turnbull_npmle(d["INTLO"], d["INTHI"])
        rows.append(t.assign(group=arm, cumulative=1 - t["survival"]))
    out = pd.concat(rows, ignore_index=True).astype({"group": object})
    return out[["group", "lower", "upper", "mass", "survival", "cumulative"]]


def weibull_interval(adtte: pd.DataFrame, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Parametric interval-censored comparison: Weibull accelerated failure time model
    (lifelines ``WeibullAFTFitter.fit_interval_censoring``); time ratio BM-MSC vs sham.

    A time ratio below 1 means BM-MSC participants responded sooner.

    Parameters
    ----------
    adtte : DataFrame
        The time-to-event dataset (``ARM``, ``INTLO``, ``INTHI``).
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``estimate`` (time ratio), ``ci_low``, ``ci_high`` (exp(coef -/+ z se)
        at ``level``), ``p_value``, ``n``, ``method``; NaN with the reason in ``method`` when an
        arm is empty or has no event, or the fit does not converge.
    """
    d = pd.DataFrame(
        {
            "lower": adtte["INTLO"].astype(float).to_numpy(),
            "upper": adtte["INTHI"].astype(float).to_numpy(),
            "msc": (adtte["ARM"] == config.ARMS[0]).astype(float).to_numpy(),
        }
    )
    method = "Weibull AFT, interval-censored (lifelines); time ratio, Wald CI"
    reason = _event_reason(d.assign(event=np.isfinite(d["upper"]).astype(int)))
    if not reason:
        fit, reason = _fit_quietly(lambda: WeibullAFTFitter(alpha=1 - level).fit_interval_censoring(d, "lower", "upper"))
    if reason:
        return not_estimable_row(method, reason, len(d))
    s = fit.summary.loc[("lambda_", "msc")]
    b, se, z = float(s["coef"]), float(s["se(coef)"]), z_quantile(level)
    if not abs(b) + z * se < 700:  # exp would overflow: a degenerate fit (too few events)
        return not_estimable_row(method, "the model did not converge (infinite confidence bound)", len(d))
    return pd.DataFrame(
        [
            {
                "group": config.CONTRAST,
                "estimate": float(np.exp(b)),
                "ci_low": float(np.exp(b - z * se)),
                "ci_high": float(np.exp(b + z * se)),
                "p_value": float(s["p"]),
                "n": len(d),
                "method": method,
            }
        ]
    )


def durability(status: pd.DataFrame, from_visit: int = 12, to_visit: int = 24) -> pd.DataFrame:
    """Among responders at ``from_visit``, the proportion still responding at ``to_visit`` (among
    those evaluable then), per arm; Wilson CI.

    Parameters
    ----------
    status : DataFrame
        The durability view (:func:`respine_nb.derive.status_by_visit`: ``USUBJID``, ``ARM``,
        ``AVISITN``, ``STATUS``).
    from_visit, to_visit : int
        The visits.

    Returns
    -------
    pandas.DataFrame
        Columns of :func:`proportions` plus ``responders_at_start`` and ``not_evaluable_later``;
        NaN with the reason in ``method`` (e.g. ``no participant reached month 24``) where no
        one can be counted; when ``to_visit`` is not after ``from_visit``, every number empty and
        the reason ``no visit after month <from_visit>``.
    """
    method = f"responders at month {from_visit} still responding at month {to_visit}; Wilson CI"
    if to_visit <= from_visit:
        cols = ["group", "events", "n", "estimate", "ci_low", "ci_high", "responders_at_start", "not_evaluable_later"]
        out = pd.DataFrame({c: [np.nan] * len(config.ARMS) for c in cols}).assign(group=list(config.ARMS))
        return out.assign(method=not_estimable(method, f"no visit after month {from_visit}"))
    w = status.pivot(index=["USUBJID", "ARM"], columns="AVISITN", values="STATUS").reset_index()
    for v in (from_visit, to_visit):
        if v not in w.columns:
            w[v] = "not evaluable"
    start = w[w[from_visit] == "responder"]
    later = start[start[to_visit].isin(["responder", "non-responder"])]
    out = proportions(later.assign(still=(later[to_visit] == "responder").to_numpy()), outcome="still")
    out["responders_at_start"] = [int((start["ARM"] == a).sum()) for a in config.ARMS]
    out["not_evaluable_later"] = out["responders_at_start"] - out["n"]
    reached = status.loc[status["AVISITN"] == to_visit, "STATUS"].isin(["responder", "non-responder"]).any()
    out["method"] = [
        method
        if n
        else not_estimable(
            method,
            f"no month-{from_visit} responder in {arm}"
            if not start_n
            else f"no participant reached month {to_visit}"
            if not reached
            else f"no month-{from_visit} responder in {arm} evaluable at month {to_visit}",
        )
        for arm, n, start_n in zip(out["group"], out["n"], out["responders_at_start"])
    ]
    return out
