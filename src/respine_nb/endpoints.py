"""Responder and MCID rules as small pure functions.

The criterion functions take baseline and follow-up values (scalars, arrays or
Series) and return pandas nullable booleans: ``True`` / ``False`` when the rule
can be decided, ``<NA>`` when a value needed to decide is missing. Thresholds are
arguments with defaults from :mod:`respine_nb.config`; nothing is mutated.

Improvement is ``baseline - value`` (lower VAS and ODI are better).
A tolerance of 1e-9 makes "exactly 20 mm / exactly 20 %" count as met whatever
the floating-point rounding of ``0.2 * baseline``.

The rules themselves are written once, on float arrays of any shape with NaN for a
missing value (:func:`meets_vas`, :func:`meets_odi`, :func:`is_responder`): the analyses
that apply them many times (every imputed dataset of a multiple imputation, every
cell of a threshold grid) call these directly; the Series functions wrap them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import config

EPS = 1e-9


def _as_float(x) -> pd.Series:
    return (
        pd.Series(pd.array(np.atleast_1d(np.asarray(x, dtype=object)), dtype="Float64"))
        if not isinstance(x, pd.Series)
        else x.astype("Float64").reset_index(drop=True)
    )


def _values(x) -> np.ndarray:
    """Values as a float array, NaN where missing (None, NaN or ``<NA>``); a Series by position."""
    return _as_float(x).to_numpy(dtype=float, na_value=np.nan)


def _decide(met: np.ndarray, known: np.ndarray) -> pd.Series:
    out = pd.array(met, dtype="boolean")
    out[~known] = pd.NA
    return pd.Series(out)


def _check_rule(rule: str) -> None:
    if rule not in config.ODI_RULES:
        raise ValueError(f"odi rule must be one of {config.ODI_RULES}, not {rule!r}")


def meets_vas(baseline, value, abs_mm: float = config.VAS_ABS_MM, rel: float = config.VAS_REL) -> np.ndarray:
    """The VAS criterion on float arrays: where it is met (see :func:`vas_criterion`).

    Parameters
    ----------
    baseline, value : numpy.ndarray of float
        VAS (mm) at month 0 and at the visit, any broadcastable shapes; NaN = missing.
    abs_mm, rel : float
        As :func:`vas_criterion`.

    Returns
    -------
    numpy.ndarray of bool
        True where the criterion is met; False where it is not or cannot be decided (NaN).
    """
    imp = baseline - value
    return (imp >= abs_mm - EPS) & (imp >= rel * baseline - EPS) & (imp > 0)


def meets_odi(
    baseline, value, rule: str = "relative", rel: float = config.ODI_REL, abs_points: float = config.ODI_ABS
) -> np.ndarray:
    """The ODI criterion on float arrays: where it is met (see :func:`odi_criterion`).

    Parameters
    ----------
    baseline, value : numpy.ndarray of float
        ODI at month 0 and at the visit, any broadcastable shapes; NaN = missing.
    rule, rel, abs_points
        As :func:`odi_criterion`.

    Returns
    -------
    numpy.ndarray of bool
        True where the criterion is met; False where it is not or cannot be decided (NaN).
    """
    _check_rule(rule)
    imp = baseline - value
    threshold = rel * baseline if rule == "relative" else abs_points
    return (imp >= threshold - EPS) & (imp > 0)


def is_responder(
    base_vas,
    vas,
    base_odi,
    odi,
    *,
    vas_abs_mm: float = config.VAS_ABS_MM,
    vas_rel: float = config.VAS_REL,
    odi_rel: float = config.ODI_REL,
    odi_rule: str = "relative",
    odi_abs: float = config.ODI_ABS,
) -> np.ndarray:
    """The responder rule on float arrays: where a participant is known to respond.

    ``responder_status(...)["responder"].fillna(False)`` for arrays of any (broadcastable)
    shape, e.g. participants of every imputed dataset stacked (imputation, participant).

    Parameters
    ----------
    base_vas, vas, base_odi, odi : numpy.ndarray of float
        Baseline and visit values; NaN = missing.
    vas_abs_mm, vas_rel, odi_rel, odi_rule, odi_abs
        As :func:`responder_status`.

    Returns
    -------
    numpy.ndarray of bool
        True where either criterion is met; False where neither is (or the status is not known).
    """
    return meets_vas(base_vas, vas, vas_abs_mm, vas_rel) | meets_odi(base_odi, odi, odi_rule, odi_rel, odi_abs)


def vas_criterion(baseline, value, abs_mm: float = config.VAS_ABS_MM, rel: float = config.VAS_REL) -> pd.Series:
    """VAS criterion: improvement >= ``abs_mm`` mm AND >= ``rel`` x baseline.

    Parameters
    ----------
    baseline, value : array-like of float
        VAS (mm) at month 0 and at the visit; missing allowed.
    abs_mm : float
        Absolute threshold in mm (default 20).
    rel : float
        Relative threshold as a fraction of baseline (default 0.20).

    Returns
    -------
    pandas.Series of boolean (nullable)
        ``<NA>`` where either value is missing.
    """
    b, v = _values(baseline), _values(value)
    return _decide(meets_vas(b, v, abs_mm, rel), ~np.isnan(b) & ~np.isnan(v))


def odi_criterion(
    baseline, value, rule: str = "relative", rel: float = config.ODI_REL, abs_points: float = config.ODI_ABS
) -> pd.Series:
    """ODI criterion: improvement >= ``rel`` x baseline (``rule="relative"``) or >= ``abs_points``.

    A baseline of 0 cannot improve: the criterion is not met (the ``imp > 0`` guard).

    Returns
    -------
    pandas.Series of boolean (nullable)
        ``<NA>`` where either value is missing.
    """
    _check_rule(rule)
    b, v = _values(baseline), _values(value)
    return _decide(meets_odi(b, v, rule, rel, abs_points), ~np.isnan(b) & ~np.isnan(v))


def responder(vas_met, odi_met) -> pd.Series:
    """Responder: either criterion met (Kleene OR).

    ``True`` if either criterion is ``True``; ``False`` if both are ``False``;
    ``<NA>`` (not evaluable) otherwise.

    Returns
    -------
    pandas.Series of boolean (nullable)
    """
    a = pd.Series(pd.array(np.asarray(vas_met, dtype=object), dtype="boolean"))
    b = pd.Series(pd.array(np.asarray(odi_met, dtype=object), dtype="boolean"))
    return a | b


def responder_status(
    base_vas,
    vas,
    base_odi,
    odi,
    *,
    vas_abs_mm: float = config.VAS_ABS_MM,
    vas_rel: float = config.VAS_REL,
    odi_rel: float = config.ODI_REL,
    odi_rule: str = "relative",
    odi_abs: float = config.ODI_ABS,
) -> pd.DataFrame:
    """The primary-endpoint rule, component by component.

    Returns
    -------
    pandas.DataFrame
        Columns ``vas_met``, ``odi_met``, ``responder`` (nullable booleans), one row per input.
    """
    vas_met = vas_criterion(base_vas, vas, vas_abs_mm, vas_rel)
    odi_met = odi_criterion(base_odi, odi, odi_rule, odi_rel, odi_abs)
    return pd.DataFrame({"vas_met": vas_met, "odi_met": odi_met, "responder": responder(vas_met, odi_met)})


def mcid(measure: str, baseline, value, threshold: float | None = None) -> pd.Series:
    """Minimal clinically important improvement (Ostelo 2008): VAS >= 15 mm, ODI >= 10 points.

    Returns
    -------
    pandas.Series of boolean (nullable)
        ``<NA>`` where either value is missing.
    """
    if threshold is None:
        threshold = config.MCID[measure]
    b, v = _values(baseline), _values(value)
    return _decide(b - v >= threshold - EPS, ~np.isnan(b) & ~np.isnan(v))
