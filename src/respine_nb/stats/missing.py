"""Missing data: multiple imputation (MICE with predictive mean matching) and Rubin's rules."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import threadpoolctl
from scipy import stats as sps

from .. import config, endpoints
from .binary import arms_without, not_estimable, not_estimable_row, z_quantile

__all__ = [
    "MEASURE_PREFIXES",
    "rubin",
    "pooled_inference",
    "mc_error",
    "mi_delta_risk_difference",
    "mice_pmm",
    "mi_risk_difference",
]


def rubin(estimates, variances, dfcom: float = np.inf) -> dict:
    """Pool m estimates with Rubin's rules; degrees of freedom of Barnard and Rubin (1999).

    Parameters
    ----------
    estimates, variances : array-like of float
        The m per-imputation estimates and their squared standard errors.
    dfcom : float
        Degrees of freedom of the complete-data analysis (e.g. n - 2 for a difference of two
        proportions, n - 3 for an ANCOVA with arm and baseline). ``inf`` gives Rubin's (1987) df.

    Returns
    -------
    dict
        ``estimate`` (mean), ``se`` (sqrt of total variance T = W + (1 + 1/m) B), ``df``,
        ``df_rubin``, ``within``, ``between``, ``fmi`` (lambda = (1 + 1/m) B / T), ``m``.
        ``df_rubin`` = (m - 1) / lambda^2; ``df`` = Barnard-Rubin
        ``1 / (1 / df_rubin + 1 / df_obs)`` with ``df_obs = (dfcom + 1) / (dfcom + 3) dfcom (1 - lambda)``,
        lambda floored at 1e-4 as R ``mice::pool``. When B = 0 (nothing was imputed), ``df`` =
        ``dfcom``: the pooled analysis is then the complete-data analysis.
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    m = len(q)
    qbar, w = q.mean(), u.mean()
    b = q.var(ddof=1) if m > 1 else 0.0
    t = w + (1 + 1 / m) * b
    lam = (1 + 1 / m) * b / t if t > 0 else 0.0
    df_rubin = np.inf if b == 0 else (m - 1) / lam**2
    if b == 0:
        df = float(dfcom)
    elif np.isinf(dfcom):
        df = df_rubin
    else:
        lam_f = max(lam, 1e-4)
        df_old = (m - 1) / lam_f**2
        df_obs = (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lam_f)
        df = df_old * df_obs / (df_old + df_obs)
    return {"estimate": qbar, "se": np.sqrt(t), "df": df, "df_rubin": df_rubin, "within": w, "between": b, "fmi": lam, "m": m}


def pooled_inference(estimates, variances, dfcom: float = np.inf, level: float = config.CI_LEVEL) -> dict:
    """Rubin's rules (:func:`rubin`) with the t interval and two-sided p on the Barnard-Rubin df.

    Parameters
    ----------
    estimates, variances : array-like of float
        Per-imputation estimates and variances.
    dfcom : float
        Complete-data degrees of freedom.
    level : float
        Confidence level.

    Returns
    -------
    dict
        The keys of :func:`rubin` plus ``ci_low``, ``ci_high``, ``p_value`` (normal when df is
        infinite; NaN when the total variance is 0).
    """
    pooled = rubin(estimates, variances, dfcom)
    df, se, est = pooled["df"], pooled["se"], pooled["estimate"]
    q = sps.t.ppf(0.5 + level / 2, df) if np.isfinite(df) else z_quantile(level)
    stat = est / se if se > 0 else np.nan
    p = (2 * sps.t.sf(abs(stat), df) if np.isfinite(df) else 2 * float(sps.norm.sf(abs(stat)))) if se > 0 else np.nan
    return {**pooled, "ci_low": est - q * se, "ci_high": est + q * se, "p_value": float(p)}


def mc_error(estimates, variances, dfcom: float = np.inf, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Monte Carlo error of the pooled results: jackknife over the m imputations (White, Royston and Wood 2011).

    For each pooled quantity, the jackknife standard error
    ``sqrt((m - 1) / m * sum((theta_(-i) - mean theta_(-i))^2))`` of its value recomputed without
    imputation i. For the pooled estimate this equals ``sqrt(B / m)``. The rule of thumb: the
    Monte Carlo error of the estimate below 10 % of its standard error.

    Parameters
    ----------
    estimates, variances : array-like of float
        Per-imputation estimates and variances (m >= 3).
    dfcom : float
        Complete-data degrees of freedom.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per quantity (``statistic`` = estimate, se, ci_low, ci_high, p_value, df):
        ``statistic``, ``value`` (pooled over all m), ``mc_error``, ``m``.
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    m = len(q)
    keys = ("estimate", "se", "ci_low", "ci_high", "p_value", "df")
    full = pooled_inference(q, u, dfcom, level)
    if m < 3:
        errs = dict.fromkeys(keys, np.nan)
    else:
        loo = [pooled_inference(np.delete(q, i), np.delete(u, i), dfcom, level) for i in range(m)]
        errs = {k: _jackknife_se(np.array([r[k] for r in loo], dtype=float)) for k in keys}
    return pd.DataFrame(
        {"statistic": list(keys), "value": [float(full[k]) for k in keys], "mc_error": [errs[k] for k in keys], "m": m}
    )


def _jackknife_se(v: np.ndarray) -> float:
    """The jackknife standard error of a quantity from its m leave-one-out values (NaN unless all finite)."""
    m = len(v)
    return float(np.sqrt((m - 1) / m * ((v - v.mean()) ** 2).sum())) if np.isfinite(v).all() else np.nan


def _mc_error_estimate(estimates) -> float:
    """``mc_error(estimates, variances)``'s value for the pooled estimate, which depends on the
    estimates alone (the leave-one-out pooled estimate is their mean without one): without the
    other quantities' t quantiles and p-values, m times cheaper."""
    q = np.asarray(estimates, dtype=float)
    m = len(q)
    return _jackknife_se(np.array([np.delete(q, i).mean() for i in range(m)])) if m >= 3 else np.nan


def mice_pmm(data: pd.DataFrame, m: int, seed: int, n_cycles: int = 10, donors: int = 5, fixed=()) -> list:
    """Multiple imputation by chained equations with predictive mean matching (van Buuren's FCS).

    Each incomplete numeric column is imputed in turn from all other columns: an OLS fit on
    the observed rows (small ridge, 1e-5, as R ``mice``), a draw of the coefficients and
    residual variance from their posterior, then each missing value is taken from one of the
    ``donors`` observed rows whose predicted value is closest (type-1 matching, as R ``mice``
    ``pmm``). ``n_cycles`` sweeps per imputed dataset, ``m`` independent chains.

    Written here in numpy because statsmodels' ``MICEData`` took 9.5 s for 50 imputations of
    114 participants; this takes well under a second. The chains run side by side as stacked
    arrays; the matching does not compare every missing value with every observed row once
    there are many (:func:`_donor`), so the time grows about as n log n with the participants.

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
    with _one_blas_thread():
        X = _mice_chains(data, m, seed, n_cycles, donors, fixed)
    return [pd.DataFrame(X[c], columns=data.columns, index=data.index) for c in range(m)]


_GRAM_ROWS = 1000  # participants (of one imputation model) above which _mice_chains keeps the cross-products


def _mice_chains(data: pd.DataFrame, m: int, seed, n_cycles: int = 10, donors: int = 5, fixed=()) -> np.ndarray:
    """:func:`mice_pmm` as one array: the ``m`` completed copies of ``data`` stacked (chain, row, column).

    Up to ``_GRAM_ROWS`` rows (a trial's size), each model is fitted on a fresh copy of its
    design (:func:`_sweeps_fresh`), which keeps the imputations of earlier versions bit for bit.
    Above, copying the design at every step cost most of the time (1.1 s per imputation at
    11,400 participants): the cross-products of every column are kept up to date instead
    (:func:`_sweeps_gram`), the same models up to rounding (a donor could differ only where
    two observed rows are within that rounding of a missing value's prediction: on every
    cohort tried, the imputations are those of the fresh copies to the bit).
    """
    rng = np.random.default_rng(seed)
    cols = list(data.columns)
    X0 = data.to_numpy(dtype=float)
    miss = np.isnan(X0)
    targets = [j for j, c in enumerate(cols) if miss[:, j].any() and c not in fixed]
    if any((~miss[:, j]).sum() < 2 for j in targets):
        raise ValueError("a column to impute has fewer than 2 observed values")
    # the m chains run side by side as one stack of arrays (chain, row, column): each step below
    # is the same for every chain, with the chain's own random draws. D is the design of every
    # model, the intercept then every column; X, the completed data, is a view of it. Above
    # _GRAM_ROWS, the design is held column by column (chain, 1 + column, row) from the start:
    # one copy of it in memory, not two.
    by_column = len(X0) > _GRAM_ROWS
    if by_column:
        D = np.empty((m, X0.shape[1] + 1, len(X0)))
        D[:, 0, :] = 1.0
        D[:, 1:, :] = X0.T
        X = np.swapaxes(D[:, 1:, :], 1, 2)
    else:
        D = np.concatenate([np.ones((m, len(X0), 1)), np.repeat(X0[None], m, axis=0)], axis=2)
        X = D[:, :, 1:]
    for j in targets:  # start from random draws of the observed values
        X[:, miss[:, j], j] = rng.choice(X0[~miss[:, j], j], size=(m, int(miss[:, j].sum())))
    if by_column:
        return np.swapaxes(_sweeps_gram(D, X0, miss, targets, n_cycles, donors, rng), 1, 2)[:, :, 1:]
    return _sweeps_fresh(D, X0, miss, targets, n_cycles, donors, rng)[:, :, 1:]


def _sweeps_fresh(D, X0, miss, targets, n_cycles, donors, rng):
    """The ``n_cycles`` sweeps of :func:`_mice_chains` over the ``targets`` (columns of ``X0``),
    each model fitted on a copy of its design: ``D`` (chain, row, 1 + column), completed in place."""
    X = D[:, :, 1:]
    for _cycle in range(n_cycles):
        for j in targets:
            mj = miss[:, j]
            # (the products below round differently with another memory layout of A and Ao: the
            # layouts of these two lines keep the imputations of earlier versions bit for bit)
            A = np.delete(D, j + 1, axis=2)  # the intercept and every column but j
            Ao, yo = A[:, ~mj], X0[~mj, j]
            AoT = np.swapaxes(Ao, 1, 2)
            inv = _ridge_inverse(AoT @ Ao)
            beta = (inv @ (AoT @ yo)[:, :, None])[:, :, 0]
            yhat_obs = (Ao @ beta[:, :, None])[:, :, 0]
            beta_star = _draw_coefficients(beta, inv, yo[None] - yhat_obs, max(len(yo) - A.shape[2], 1), rng)
            yhat_mis = (A[:, mj] @ beta_star[:, :, None])[:, :, 0]
            X[:, mj, j] = _pmm(yhat_obs, yo, yhat_mis, donors, rng)
    return D


def _sweeps_gram(DT, X0, miss, targets, n_cycles, donors, rng):
    """:func:`_sweeps_fresh` without a copy of the design per model, on the design held column by
    column, ``DT`` (chain, 1 + column, row, C-contiguous), completed in place and returned.

    The design is held column by column (chain, 1 + column, row), with the cross-products of
    all its columns over all rows (chain, 1 + column, 1 + column). The cross-products of the
    model for column j (over the rows where j is observed) are those less the cross-products
    of the rows where j is missing, the only rows copied; the predictions are products of the
    whole design with the coefficients (0 for column j itself). Once column j is imputed, its
    row and column of the cross-products change by the imputed rows' new products less their
    old ones; all the cross-products are computed afresh at the start of each cycle, so that
    the rounding of these updates does not add up.
    """
    m, p, _ = DT.shape
    for _cycle in range(n_cycles):
        gram = DT @ np.swapaxes(DT, 1, 2)  # afresh each cycle: the updates below round
        for j in targets:
            c = j + 1  # column of j in the design
            rows_mis, rows_obs = np.flatnonzero(miss[:, j]), np.flatnonzero(~miss[:, j])
            keep = np.delete(np.arange(p), c)  # the intercept and every column but j
            D_mis = np.compress(miss[:, j], DT, axis=2)  # the same copy as np.take(DT, rows_mis), 30% faster
            gram_mis = D_mis @ np.swapaxes(D_mis, 1, 2)
            g = gram - gram_mis  # over the rows where j is observed
            inv = _ridge_inverse(g[:, keep[:, None], keep])
            beta = (inv @ g[:, keep, c][:, :, None])[:, :, 0]
            yo = X0[rows_obs, j]
            coef = np.zeros((m, 1, p))
            coef[:, 0, keep] = beta
            yhat_obs = (coef @ DT)[:, 0, rows_obs]
            beta_star = _draw_coefficients(beta, inv, yo[None] - yhat_obs, max(len(yo) - len(keep), 1), rng)
            coef[:, 0, keep] = beta_star
            yhat_mis = (coef @ D_mis)[:, 0]
            D_mis[:, c, :] = DT[:, c, rows_mis] = _pmm(yhat_obs, yo, yhat_mis, donors, rng)
            gram[:, :, c] += (D_mis @ D_mis[:, c, :, None])[:, :, 0] - gram_mis[:, :, c]  # the imputed rows' change
            gram[:, c, :] = gram[:, :, c]
    return DT


def _ridge_inverse(xtx):
    """The inverse of each cross-product matrix (chain, k, k) with 1e-5 times its diagonal added
    (as R ``mice``'s ridge; ``xtx`` is changed)."""
    diagonal = np.arange(xtx.shape[1])
    diag = np.maximum(np.diagonal(xtx, axis1=1, axis2=2), 1e-12)
    xtx[:, diagonal, diagonal] += 1e-5 * diag
    return np.linalg.inv(xtx)


def _draw_coefficients(beta, inv, resid, dof, rng):
    """A draw of each chain's coefficients from their posterior: the residual variance
    sum(resid^2) / chi-square(dof), then beta + sigma chol(inv) z."""
    sigma = np.sqrt((resid * resid).sum(axis=1) / rng.chisquare(dof, size=len(beta)))
    chol = np.linalg.cholesky((inv + np.swapaxes(inv, 1, 2)) / 2)
    return beta + sigma[:, None] * (chol @ rng.standard_normal(beta.shape)[:, :, None])[:, :, 0]


def _pmm(yhat_obs, y_obs, yhat_mis, donors, rng):
    """Type-1 predictive mean matching for a stack of chains: each missing value of chain c takes
    the observed value of one of the ``donors`` rows whose predicted value (chain c's fit) is
    closest to its own prediction, chosen at random (ties broken by row order)."""
    k = min(donors, yhat_obs.shape[1])
    pick = rng.integers(0, k, size=yhat_mis.shape)  # (the search below draws nothing: drawn first, the same draws)
    return y_obs[_donor(yhat_obs, yhat_mis, k, pick)]


def _donor(yhat_obs, yhat_mis, k, pick):
    """The observed row of each missing row's donor (chain, missing row): its ``pick``-th (0-based)
    of the k nearest, ``_nearest(yhat_obs, yhat_mis, k)[c, i, pick[c, i]]``.

    Above ``_NEAREST_SCAN_SIZE`` distances, with finite distances, the observed and missing
    predictions are sorted together (:func:`_donor_sorted`): no search of each chain's missing
    values among its observed ones, the missing values read the observed rows in order, and
    only the drawn one of the k nearest is kept. The matching of one ``_impute`` at 11,400
    participants (m = 50, 400 models, serial) took 11.9 s of CPU with :func:`_nearest_merge`,
    10.3 s so (the same rows). Otherwise, every one of the k nearest (:func:`_nearest`).

    The chains are matched a few at a time (``_DONOR_BLOCK`` predictions): each chain's rows
    are its own, and the dozen arrays of a block stay in the processor's cache, where those of
    all 50 chains at 11,400 participants (2.3 MB each) did not: one ``_impute`` there took
    14.6 instead of 17.1 s serially, about 1 s of CPU less in its two arm threads.
    """
    m, n = yhat_obs.shape
    if m * yhat_mis.shape[1] * n > _NEAREST_SCAN_SIZE:
        size = max(1, _DONOR_BLOCK // (n + yhat_mis.shape[1]))
        if m > size:
            blocks = range(0, m, size)
            return np.concatenate([_donor(yhat_obs[c : c + size], yhat_mis[c : c + size], k, pick[c : c + size]) for c in blocks])
        with np.errstate(over="ignore", invalid="ignore"):  # (inf - inf, an overflow: not finite, said below)
            spread = max(yhat_obs.max(), yhat_mis.max()) - min(yhat_obs.min(), yhat_mis.min())
        if np.isfinite(spread):  # no NaN, no infinite prediction or distance
            donor = _donor_sorted(yhat_obs, yhat_mis, k, pick)
            if donor is not None:
                return donor
    return np.take_along_axis(_nearest(yhat_obs, yhat_mis, k), pick[:, :, None], axis=2)[:, :, 0]


_DONOR_BLOCK = 2**16  # predictions (chains x observed and missing rows) that _donor matches at once

_INT64_LOW = np.int64(2**63 - 1)


def _donor_sorted(yhat_obs, yhat_mis, k, pick):
    """:func:`_donor` for finite distances, by one sort of each chain's observed and missing
    predictions together (None when two predictions too close to tell apart by that sort).

    The sort is that of integers: each prediction's bits, as an integer of the same order as
    the numbers, with its column (observed, then missing) in the lowest bits, so that it says
    which row each sorted number is (:func:`_sorted_keys`). Sorted so, two predictions whose
    integers differ only in those bits (relative difference below about 2**-36, up to 65,536
    rows) may come out of order: the sorted numbers are checked, and without order the caller
    ranks them as :func:`_nearest` does.
    Each missing value then comes after the observed rows predicted below it, before those
    predicted above, and after those predicted equal or not (either side gives the same
    distances). Its k nearest are the first k of the observed rows going down and going up from
    there, merged as :func:`_nearest_merge`, which also says when that is not the stable sort's
    answer (then :func:`_nearest_full`). The missing values, taken in the sorted order, read
    the sorted observed rows in order.
    """
    m, n_obs = yhat_obs.shape
    n_mis = yhat_mis.shape[1]
    both = np.concatenate([yhat_obs, yhat_mis], axis=1)
    n = both.shape[1]
    bits = max((n - 1).bit_length(), _DIGIT)  # (the lowest 16 bits at least: see _sorted_keys)
    key = both.view(np.int64)
    key = key ^ ((key >> 63) & _INT64_LOW)  # (negative numbers: every bit but the sign flipped)
    key &= np.int64(-(1 << bits))
    key |= np.arange(n)
    key = _sorted_keys(key, bits)
    at = key & np.int64((1 << bits) - 1)  # the column of each sorted prediction
    value = np.take_along_axis(both, at, axis=1)
    if not (value[:, 1:] >= value[:, :-1]).all():
        return None
    observed = at < n_obs
    width = k + 1
    ranked = np.empty((m, n_obs + 2 * width))  # each chain's sorted observed predictions between
    ranked[:, :width], ranked[:, -width:] = -np.inf, np.inf  # width infinitely far rows (an ended side)
    ranked[:, width:-width] = value[observed].reshape(m, n_obs)
    rows = np.zeros(ranked.shape, dtype=np.intp)
    rows[:, width:-width] = at[observed].reshape(m, n_obs)
    where = np.nonzero(~observed)  # each missing value, in the sorted order
    y = value[where].reshape(m, n_mis)
    which = at[where].reshape(m, n_mis) - n_obs
    place = where[1].reshape(m, n_mis) - np.arange(n_mis)  # the observed rows sorted before it
    # the width observed rows below and above each missing value: columns width - 1, ..., 0 going
    # down, width, ..., 2 width - 1 going up
    flat = (np.arange(m)[:, None] * ranked.shape[1] + place)[:, :, None] + np.arange(2 * width)
    dist = np.abs(ranked.take(flat) - y[:, :, None])
    same = (dist[:, :, 1:] == dist[:, :, :-1]) & (dist[:, :, 1:] < np.inf)
    same[:, :, width - 1] = False  # (one row below, one above: merged by row order)
    unsure = same.any(axis=2)
    dist, rows = dist.ravel(), rows.take(flat).ravel()
    at_lo = np.arange(m * n_mis) * (2 * width) + width - 1  # the next candidate of each side
    at_hi = at_lo + 1
    q = np.take_along_axis(pick, which, axis=1).ravel()
    donor = np.empty(m * n_mis, dtype=np.intp)
    for i in range(k):
        dl, dh, rl, rh = dist.take(at_lo), dist.take(at_hi), rows.take(at_lo), rows.take(at_hi)
        low = (dl < dh) | ((dl == dh) & (rl < rh))
        np.copyto(donor, np.where(low, rl, rh), where=q == i)
        at_lo -= low
        at_hi += ~low
    donor = donor.reshape(m, n_mis)
    if unsure.any():
        c, s = np.nonzero(unsure)
        donor[c, s] = _nearest_full(yhat_obs, yhat_mis, k, (c, which[c, s]))[np.arange(len(c)), q.reshape(m, n_mis)[c, s]]
    out = np.empty((m, n_mis), dtype=np.intp)
    np.put_along_axis(out, which, donor, axis=1)
    return out


_DIGIT = 16  # bits of the digits of _sorted_keys' radix sort (NumPy's stable sort of 16-bit integers)


def _sorted_keys(key, bits):
    """``np.sort(key, axis=1)`` for the keys of :func:`_donor_sorted` (chain, column): int64
    whose lowest ``bits`` bits are the column, 0, 1, ... in each row (all distinct, in order).

    With the columns in the lowest 16 bits, by three stable passes over the higher 16-bit
    digits, lowest first (a radix sort: NumPy sorts 16-bit integers so, in linear time), the
    columns' order being that of the input; otherwise (above 65,536 columns) by ``np.sort``.
    NumPy's introsort of 64-bit integers (its SIMD sorts are not used on every processor: not
    on the AMD EPYC of our CI) took 1.6 times as long on a block at 11,400 participants.
    """
    if bits != _DIGIT:
        return np.sort(key, axis=1)
    m, n = key.shape
    first = np.arange(m)[:, None] * n  # the flat index of each row's first key
    unsigned = key.view(np.uint64) ^ np.uint64(1 << 63)  # the same order, as unsigned digits
    for shift in range(_DIGIT, 64, _DIGIT):
        order = np.argsort((unsigned >> np.uint64(shift)).astype(np.uint16), axis=1, kind="stable")
        order += first
        unsigned = unsigned.take(order)
    return (unsigned ^ np.uint64(1 << 63)).view(np.int64)


_NEAREST_SCAN_SIZE = 2**17  # distances (chains x missing x observed rows) up to which _nearest computes them all


def _nearest(yhat_obs, yhat_mis, k):
    """The ``k`` observed rows nearest to each missing row (chain, missing row, k), nearest first,
    ties broken by row order: the first k of a stable argsort of ``|yhat_obs[c] - yhat_mis[c, i]|``.

    Sorting every row of these distances (n_obs log n_obs per missing value) is what the
    matching cost most; two ways give the same rows faster. Up to ``_NEAREST_SCAN_SIZE``
    distances (a trial's size), each of the k nearest is found by one pass over the distances
    (:func:`_nearest_scan`). Above, where computing them all is itself too much (the sort took
    16 s per imputed column at 11,400 participants and m = 50), the observed predictions are
    sorted once and the nearest on either side of each missing value merged
    (:func:`_nearest_merge`). Without finite predictions, every row is ranked
    (:func:`_nearest_full`).
    """
    m, n = yhat_obs.shape
    if m * yhat_mis.shape[1] * n <= _NEAREST_SCAN_SIZE:
        return _nearest_scan(yhat_obs, yhat_mis, k)
    if not (np.isfinite(yhat_obs).all() and np.isfinite(yhat_mis).all()):  # the merge's ordering needs numbers
        return _nearest_full(yhat_obs, yhat_mis, k, np.s_[:])
    return _nearest_merge(yhat_obs, yhat_mis, k)


def _nearest_scan(yhat_obs, yhat_mis, k):
    """:func:`_nearest` by k passes over all the distances: each takes the nearest row not yet
    taken, the first one of equal distances (``argmin``), so in row order as the stable sort."""
    dist = np.abs(yhat_obs[:, None, :] - yhat_mis[:, :, None])  # chain, missing row, observed row
    if not np.isfinite(dist).all():  # a taken row is marked infinitely far
        return _nearest_full(yhat_obs, yhat_mis, k, np.s_[:])
    nearest = np.empty(dist.shape[:2] + (k,), dtype=np.intp)
    for i in range(k):
        nearest[:, :, i] = dist.argmin(axis=2)
        np.put_along_axis(dist, nearest[:, :, i : i + 1], np.inf, axis=2)
    return nearest


def _nearest_merge(yhat_obs, yhat_mis, k):
    """:func:`_nearest` for finite predictions, by merging the observed rows below and above.

    Each chain's observed predictions are sorted once. A missing value's distances grow on
    either side of its place in that order: going down from the rows predicted strictly below
    it, and up from the others. Its k nearest are the first k of these two increasing lists
    merged, equal distances on both sides in row order. This is the stable sort's answer unless
    one side has two equal distances among its first k + 1 (equal predictions, or a rounding):
    those missing values are ranked against every observed row (:func:`_nearest_full`), as
    every one is when some distances overflow.
    """
    m, n = yhat_obs.shape
    if not np.isfinite(max(yhat_obs.max(), yhat_mis.max()) - min(yhat_obs.min(), yhat_mis.min())):  # some distances overflow
        return _nearest_full(yhat_obs, yhat_mis, k, np.s_[:])
    order = np.argsort(yhat_obs, axis=1)  # the order of equal predictions never matters (see above)
    width = min(k + 1, n)
    # each chain's sorted predictions between width infinitely far rows on either side (an ended side)
    ranked = np.full((m, n + 2 * width), np.inf)
    ranked[:, :width] = -np.inf
    ranked[:, width:-width] = np.take_along_axis(yhat_obs, order, axis=1)
    place = np.stack([np.searchsorted(ranked[c, width:-width], yhat_mis[c], side="left") for c in range(m)])
    order = np.pad(order, ((0, 0), (width, width)))
    start = (np.arange(m)[:, None] * ranked.shape[1] + width + place)[:, :, None]  # place in ranked.ravel()
    steps = np.arange(width)
    unsure = np.zeros(yhat_mis.shape, dtype=bool)
    sides = []  # below then above: (distance, row) of each missing value's first k + 1, nearest first
    for flat in (start - 1 - steps, start + steps):
        dist = np.abs(ranked.take(flat) - yhat_mis[:, :, None])
        unsure |= ((dist[:, :, 1:] == dist[:, :, :-1]) & (dist[:, :, 1:] < np.inf)).any(axis=2)
        sides.append((dist.ravel(), order.take(flat).ravel()))
    (d_lo, r_lo), (d_hi, r_hi) = sides
    at_lo = np.arange(unsure.size) * width  # the next candidate of each side, in the flat arrays
    at_hi = at_lo.copy()
    nearest = np.empty((unsure.size, k), dtype=np.intp)
    for i in range(k):
        dl, dh, rl, rh = d_lo.take(at_lo), d_hi.take(at_hi), r_lo.take(at_lo), r_hi.take(at_hi)
        low = (dl < dh) | ((dl == dh) & (rl < rh))
        nearest[:, i] = np.where(low, rl, rh)
        at_lo += low
        at_hi += ~low
    nearest = nearest.reshape(yhat_mis.shape + (k,))
    if unsure.any():
        nearest[unsure] = _nearest_full(yhat_obs, yhat_mis, k, np.nonzero(unsure))
    return nearest


def _nearest_full(yhat_obs, yhat_mis, k, where):
    """:func:`_nearest` by ranking every observed row, for the (chain, missing row) pairs ``where``."""
    chain = np.broadcast_to(np.arange(len(yhat_obs))[:, None], yhat_mis.shape)[where]
    dist = np.abs(yhat_obs[chain] - yhat_mis[where][..., None])
    return np.argsort(dist, axis=-1, kind="stable")[..., :k]


MEASURE_PREFIXES = ("vas", "odi")  # the wide frame's VAS and ODI columns: vas_<v>, odi_<v>


def _impute(wide: pd.DataFrame, visit_month: int, m: int, seed: int, auxiliary, arm: str, site: str):
    """Completed copies of the VAS/ODI (and auxiliary) columns, imputed separately within each arm.

    Returns (completed, columns, missing, reason): the m completed copies stacked as one array
    (imputation, participant in the order of ``wide``, column), the names of its columns, the
    boolean missing mask of the same columns (a DataFrame), and why the imputation cannot run
    ("" when it can).
    """
    visits = [v for v in config.VISITS if f"vas_{v}" in wide and f"odi_{v}" in wide]
    needed = [f"{k}_{v}" for v in visits if v <= visit_month for k in MEASURE_PREFIXES]
    extra = [f"{k}_{v}" for v in visits if v > visit_month for k in MEASURE_PREFIXES] + list(auxiliary)
    cols = needed + extra
    num = wide[cols].astype(float).reset_index(drop=True)
    missing = num.isna()
    arms = wide[arm].to_numpy()
    n_arm = {a: int((arms == a).sum()) for a in config.ARMS}
    reason = arms_without(n_arm, "participant")
    if not reason:
        few = [f"{c} in {a}" for a in config.ARMS for c in needed if num.loc[arms == a, c].notna().sum() < 2]
        if few:
            reason = f"fewer than 2 observed values of {', '.join(few)}"
            if any(f"_{visit_month} in" in f for f in few):
                reason += f" (month {visit_month} reached by fewer than 2 participants of an arm)"
    if reason:
        return np.empty((0, len(num), len(cols))), cols, missing, reason
    sites = pd.get_dummies(wide[site].astype(str), prefix="site", drop_first=True, dtype=float).reset_index(drop=True)
    completed = np.repeat(num.to_numpy(dtype=float)[None], m, axis=0)
    models = []  # (rows, imputed columns, data, seed) of each arm with something to impute
    for seq, a in zip(np.random.SeedSequence(seed).spawn(len(config.ARMS)), config.ARMS, strict=True):
        rows = np.flatnonzero(arms == a)
        part = num.iloc[rows]
        use = needed + [c for c in extra if part[c].notna().sum() >= 2]  # an auxiliary nobody in the arm has is left out
        fixed = [c for c in sites.columns if sites[c].iloc[rows].nunique() > 1]
        if part[use].isna().any().any():
            models.append((rows, use, pd.concat([part[use], sites.iloc[rows][fixed]], axis=1), seq, fixed))
    for (rows, use, *_), chains in zip(models, _chains_by_arm(models, m), strict=True):
        completed[:, rows[:, None], [cols.index(c) for c in use]] = chains[:, :, : len(use)]  # columns: use, then the sites
    scaled = len(cols) - len(auxiliary)  # VAS and ODI (every column but the auxiliaries) are on 0-100 scales
    np.clip(completed[:, :, :scaled], 0.0, 100.0, out=completed[:, :, :scaled])
    return completed, cols, missing, ""


def _chains_by_arm(models, m: int) -> list:
    """:func:`_mice_chains` of each arm's model, in order. Large models (above ``_GRAM_ROWS``
    rows) run in one thread per arm: NumPy releases the GIL in their products, solves and sorts,
    so that two arms take about the time of one on two cores; each arm draws from its own seed,
    so the imputations are the same, to the bit, in whatever order the threads run."""
    with _one_blas_thread():
        if len(models) > 1 and max(len(rows) for rows, *_ in models) > _GRAM_ROWS:
            with ThreadPoolExecutor(max_workers=len(models)) as pool:
                return list(pool.map(lambda model: _mice_chains(model[2], m, model[3], fixed=model[4]), models))
        return [_mice_chains(data, m, seq, fixed=fixed) for _, _, data, seq, fixed in models]


_BLAS_LIMIT = {"lock": threading.Lock(), "users": 0, "limit": None}  # _one_blas_thread's shared state


@contextlib.contextmanager
def _one_blas_thread():
    """A context in which BLAS (NumPy's and SciPy's OpenBLAS or MKL) runs on one thread, as in the
    runner's kernels (:data:`respine_nb.kernels.SINGLE_THREAD_ENV`).

    The imputation's products are of small matrices (one model's columns, one chain's missing
    rows), which a multithreaded OpenBLAS splits at a loss: in an ordinary kernel of a 2-core
    machine (JupyterLab, a script), one ``_impute`` at 11,400 participants took 36 s serially
    instead of 16 s, and 70-120 s instead of 10 s in its two arm threads. The limit is the
    process's (threadpoolctl): callers that overlap (imputations in several threads of a user's
    program) share one, set by the first to enter and lifted by the last to leave, so that the
    process's own setting is always the one restored.
    """
    state = _BLAS_LIMIT
    with state["lock"]:
        if state["users"] == 0:
            state["limit"] = threadpoolctl.threadpool_limits(limits=1, user_api="blas")
            state["limit"].__enter__()
        state["users"] += 1
    try:
        yield
    finally:
        with state["lock"]:
            state["users"] -= 1
            if state["users"] == 0:
                limit, state["limit"] = state["limit"], None
                limit.__exit__(None, None, None)


def _mi_method(m: int, auxiliary) -> str:
    aux = f", {', '.join(auxiliary)}" if len(auxiliary) else ""
    return (
        f"MICE with predictive mean matching, imputed separately in each arm (m = {m}; site, VAS and ODI at every visit{aux} "
        "as predictors); responder rule per completed dataset; Rubin's rules with Wald variance and Barnard-Rubin df "
        "(complete-data df n - 2)"
    )


def mi_delta_risk_difference(
    wide: pd.DataFrame,
    visit_month: int = config.PRIMARY_VISIT,
    deltas=(0, 5, 10, 15, 20),
    m: int = 50,
    seed: int = 2024,
    level: float = config.CI_LEVEL,
    auxiliary=(),
    arm: str = "arm",
    site: str = "site",
    **thresholds,
) -> pd.DataFrame:
    """``primary.mi_delta_D.risk_difference``: delta-adjusted multiple imputation (MNAR tipping point).

    The imputations of :func:`mi_risk_difference` (same ``m``, ``seed``: the same completed
    datasets for every D); then, for each D, the imputed month-``visit_month`` VAS of every BM-MSC
    participant is made worse by D mm and the imputed ODI by D / 2 points (capped at 100), the
    responder rule applied and the risk difference pooled as in :func:`mi_risk_difference`.
    Observed values and the Sham arm are untouched, and the baseline is never shifted (a worse
    baseline would make the improvement larger), so the estimate is non-increasing in D and
    D = 0 is the MAR analysis.

    Parameters
    ----------
    wide, visit_month
        As :func:`mi_risk_difference`.
    deltas : sequence of float
        The shifts D (mm of VAS).
    m, seed, level, auxiliary, arm, site, **thresholds
        As :func:`mi_risk_difference`.

    Returns
    -------
    pandas.DataFrame
        One row per D, in the order of ``deltas``: ``delta``, and the columns of
        :func:`mi_risk_difference`.
    """
    method = _mi_method(m, auxiliary)
    completed, cols, missing, reason = _impute(wide, visit_month, m, seed, auxiliary, arm, site)
    n = len(wide)
    if reason:
        nan = (
            "estimate",
            "ci_low",
            "ci_high",
            "p_value",
            "se",
            "df",
            "df_rubin",
            "fmi",
            "mc_error",
            "estimate_msc",
            "estimate_sham",
        )
        return pd.concat(
            [not_estimable_row(f"{method}; delta {d:g}", reason, n, nan, m=m).assign(delta=d) for d in deltas], ignore_index=True
        )
    msc = (wide[arm] == config.ARMS[0]).to_numpy()
    n1, n2 = msc.sum(), (~msc).sum()
    vas_c, odi_c = f"vas_{visit_month}", f"odi_{visit_month}"
    shift_vas = (msc & missing[vas_c].to_numpy()).astype(float)
    shift_odi = (msc & missing[odi_c].to_numpy()).astype(float)
    rows = []
    for delta in deltas:
        # every imputed dataset at once: each value below is an (imputation, participant) array
        values = {c: completed[:, :, cols.index(c)] for c in ("vas_0", "odi_0", vas_c, odi_c)}
        values[vas_c] = np.minimum(values[vas_c] + delta * shift_vas, 100.0)
        values[odi_c] = np.minimum(values[odi_c] + delta / 2 * shift_odi, 100.0)
        r = endpoints.is_responder(values["vas_0"], values[vas_c], values["odi_0"], values[odi_c], **thresholds)
        p1s, p2s = r[:, msc].mean(axis=1), r[:, ~msc].mean(axis=1)  # responder proportions per imputation
        est, var = p1s - p2s, p1s * (1 - p1s) / n1 + p2s * (1 - p2s) / n2  # difference and its Wald variance
        pooled = pooled_inference(est, var, dfcom=n - 2, level=level)
        text = method + ("" if delta == 0 else f"; imputed BM-MSC VAS + {delta:g} mm, ODI + {delta / 2:g} points")
        rows.append(
            {
                "delta": delta,
                "group": config.CONTRAST,
                "estimate": pooled["estimate"],
                "ci_low": pooled["ci_low"],
                "ci_high": pooled["ci_high"],
                "p_value": pooled["p_value"],
                "se": pooled["se"],
                "df": pooled["df"],
                "df_rubin": pooled["df_rubin"],
                "fmi": pooled["fmi"],
                "mc_error": _mc_error_estimate(est),
                "n": n,
                "m": m,
                "estimate_msc": float(np.mean(p1s)),
                "estimate_sham": float(np.mean(p2s)),
                "method": text
                if np.isfinite(pooled["p_value"])
                else not_estimable(text, "no variance (every or no participant responded in every imputation)"),
            }
        )
    return pd.DataFrame(rows)


def mi_risk_difference(
    wide: pd.DataFrame,
    visit_month: int = config.PRIMARY_VISIT,
    m: int = 50,
    seed: int = 2024,
    level: float = config.CI_LEVEL,
    auxiliary=(),
    arm: str = "arm",
    site: str = "site",
    **thresholds,
) -> pd.DataFrame:
    """``primary.mi.risk_difference``: responder risk difference under multiple imputation (MAR).

    Missing VAS and ODI values are imputed by chained equations with predictive mean matching
    (:func:`mice_pmm`) separately in each arm (so every association may differ by arm: arm by
    visit and more), with site, VAS and ODI at every visit (later visits included, as auxiliaries)
    and the ``auxiliary`` columns as predictors; the responder rule is applied to each completed
    dataset (all m at once, as arrays: :func:`respine_nb.endpoints.is_responder`); the difference
    of proportions (Wald variance per imputation) is pooled over all randomised participants with
    Rubin's rules and the Barnard-Rubin (1999) df, complete-data df n - 2 (:func:`rubin`). The
    Monte Carlo error of the estimate (:func:`mc_error`) is returned.

    Parameters
    ----------
    wide : DataFrame
        One row per randomised participant: ``arm``, ``site``, and ``vas_<v>`` / ``odi_<v>``
        for each visit v (:func:`respine_nb.derive.wide_outcomes`), plus the ``auxiliary`` columns.
    visit_month : int
        The responder visit.
    m : int
        Number of imputations.
    seed : int
        Seed of the imputations.
    level : float
        Confidence level.
    auxiliary : sequence of str
        Extra numeric columns of ``wide`` used as predictors (and imputed where missing), e.g.
        the SF-36 summaries at every visit, ``pcs_0, mcs_0, pcs_1, ...``
        (:func:`respine_nb.derive.auxiliary_columns` of
        ``derive.wide_outcomes(adeff, ("VAS", "ODI", "PCS", "MCS"))``).
    arm, site : str
        Column names.
    **thresholds
        The responder rule's thresholds (see :mod:`respine_nb.endpoints`).

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``estimate``, ``ci_low``, ``ci_high``, ``p_value`` (t on the
        Barnard-Rubin df), ``se``, ``df``, ``df_rubin`` (Rubin 1987, for comparison), ``fmi``,
        ``mc_error`` (Monte Carlo SE of the estimate, jackknife = sqrt(B / m)), ``n``, ``m``,
        ``estimate_msc`` / ``estimate_sham`` (pooled responder proportions), ``method``. NaN
        with the reason in ``method`` when an arm is empty or a VAS/ODI column up to the visit
        has fewer than 2 observed values in an arm (e.g. nobody reached the visit).
    """
    out = mi_delta_risk_difference(wide, visit_month, (0,), m, seed, level, auxiliary, arm, site, **thresholds)
    out["method"] = out["method"].str.replace("; delta 0", "", regex=False)
    return out.drop(columns="delta")
