"""What would the next trial need? Operating characteristics of RESPINE-like trials, by simulation.

Two endpoints, simulated many times per design (participants per arm, effect, dropout):

- the **primary responder analysis**: evaluable counts per arm drawn from binomials (each randomised
  participant is evaluable with probability ``1 - dropout``), responders from binomials, then the
  Pearson chi-square with Yates' correction exactly as R ``chisq.test`` computes it (two-sided 0.05),
  the risk difference and its Newcombe hybrid score interval: all array arithmetic over trials;
- the **continuous VAS endpoint**: VAS at months 0, 1, 3, 6 and 12 drawn from a multivariate normal
  calibrated to a dataset (:func:`calibrate`: the visit means and the covariance between visits,
  pooled over arms after removing the arm means), BM-MSC improved by ``vas_effect_mm`` at month 12
  (a share of it at earlier visits, as in the generator), monotone dropout between months 6 and 12
  with a probability ``expit(logit(dropout) + z)``, z the standardised month-6 value (MAR: the
  dropout depends on what was observed) or month-12 value (MNAR). Analysed by ANCOVA of the change
  at month 12 on arm and baseline among the completers (closed-form OLS over trials at once, from
  each arm's sums; only the visits it needs are drawn) and,
  optionally, for fewer trials, by the full MMRM (:mod:`respine_nb.mmrm`, REML, Satterthwaite).

The simulation runs as tasks on a ``dask.distributed`` client (:func:`engine`): any existing
cluster named by its scheduler address (argument, or the ``RESPINE_NB_SCHEDULER`` environment
variable), else a LocalCluster of threads on this machine when the costly MMRM fits are asked
for; the array-arithmetic analyses alone run the same tasks on threads in this process, without
starting (or importing) ``distributed`` (:func:`uses_dask`). Each task simulates a batch of
trials with its own generator, ``numpy.random.SeedSequence(seed, spawn_key=(scenario, batch))``:
the numbers do not depend on the number of workers, nor on the order in which tasks finish.
The exact power of the responder analysis (:func:`exact_power`, enumeration of the two binomials)
and the sample size for a target power (:func:`sample_size`) need no simulation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import numpy as np
import pandas as pd
from scipy import special as sps_special
from scipy import stats as sps

from . import config

SCHEDULER_ENV = "RESPINE_NB_SCHEDULER"
VISITS = (0, 1, 3, 6, 12)  # visits of the continuous simulation (month 12: the primary visit)
TRAJECTORY = {1: 0.55, 3: 0.80, 6: 0.95, 12: 1.0}  # share of the month-12 effect reached (as synthetic.TRAJECTORY)
MECHANISMS = ("MAR", "MNAR")
ANALYSES = ("responder", "ancova", "mmrm")
ALPHA = 0.05
# Calibration of the VAS trajectories on the committed synthetic cohort (seed 20240615): what
# :func:`calibrate` returns on it, rounded; used when a dataset has too few complete participants.
DEFAULT_CALIBRATION = {
    "mean": (66.9, 56.7, 45.4, 45.1, 41.7),
    "sd": (14.0, 20.0, 22.6, 25.1, 25.2),
    "corr": (
        (1.0, 0.6, 0.39, 0.52, 0.4),
        (0.6, 1.0, 0.73, 0.79, 0.78),
        (0.39, 0.73, 1.0, 0.86, 0.89),
        (0.52, 0.79, 0.86, 1.0, 0.9),
        (0.4, 0.78, 0.89, 0.9, 1.0),
    ),
    "n": 0,
}
MIN_CALIBRATION_N = 20  # complete participants needed to calibrate on a dataset


# --------------------------------------------------------------------------- the responder test


def _yates_stat(x1, n1, x2, n2):
    """Yates-corrected chi-square statistic of 2x2 tables and whether it is defined (no zero margin)."""
    x1, n1, x2, n2 = (np.asarray(a, dtype=float) for a in (x1, n1, x2, n2))
    n = n1 + n2
    r = x1 + x2
    with np.errstate(divide="ignore", invalid="ignore"):
        e11 = n1 * r / n
        d = np.abs(x1 - e11)
        d = d - np.minimum(0.5, d)
        inv = 1 / e11 + 1 / (n1 * (n - r) / n) + 1 / (n2 * r / n) + 1 / (n2 * (n - r) / n)
        stat = d * d * inv
    ok = (n1 > 0) & (n2 > 0) & (r > 0) & (r < n)
    return np.where(ok, stat, 0.0), ok


def yates_p(x1, n1, x2, n2) -> np.ndarray:
    """Two-sided p of Pearson's chi-square test with Yates' continuity correction on 2x2 tables,
    as R ``chisq.test(correct = TRUE)`` computes it (the correction is ``min(0.5, |O - E|)``).

    Parameters
    ----------
    x1, n1, x2, n2 : array-like of int
        Responders and evaluable participants per arm (broadcast together).

    Returns
    -------
    numpy.ndarray
        The p-values; NaN where a margin is zero (R returns NaN there too).
    """
    stat, ok = _yates_stat(x1, n1, x2, n2)
    return np.where(ok, sps_special.erfc(np.sqrt(stat / 2)), np.nan)  # chi-square(1) survival function


def _wilson(x, n, z):
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        centre = (x + z * z / 2) / (n + z * z)
        half = z * np.sqrt(n * p * (1 - p) + z * z / 4) / (n + z * z)
    return p, centre - half, centre + half


def wilson_interval(successes, trials, level: float = config.CI_LEVEL) -> tuple:
    """Wilson score interval of a proportion (R ``prop.test(correct = FALSE)$conf.int``), vectorised.

    Parameters
    ----------
    successes, trials : array-like
    level : float

    Returns
    -------
    tuple of numpy.ndarray
        ``(proportion, low, high)``.
    """
    z = sps.norm.ppf(0.5 + level / 2)
    return _wilson(np.asarray(successes, dtype=float), np.asarray(trials, dtype=float), z)


def _newcombe(x1, n1, x2, n2, z):
    p1, l1, u1 = _wilson(x1, n1, z)
    p2, l2, u2 = _wilson(x2, n2, z)
    d = p1 - p2
    return d, d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def exact_power(p1: float, p2: float, n1: int, n2: int, alpha: float = ALPHA) -> float:
    """Exact power of the Yates chi-square test (two-sided ``alpha``) for two independent binomials:
    the sum over every pair of responder counts of its probability where the test rejects.

    Parameters
    ----------
    p1, p2 : float
        Responder proportions (BM-MSC, Sham).
    n1, n2 : int
        Evaluable participants per arm.
    alpha : float

    Returns
    -------
    float
        The rejection probability (the type I error when ``p1 == p2``); NaN when an arm is empty.
    """
    if n1 < 1 or n2 < 1:
        return float("nan")
    x1, x2 = _support(n1, p1), _support(n2, p2)
    stat, ok = _yates_stat(x1[:, None], n1, x2[None, :], n2)
    reject = ok & (stat > sps.chi2.isf(alpha, 1))  # p < alpha; a zero margin (NaN p) never rejects
    return float(sps.binom.pmf(x1, n1, p1) @ reject.astype(float) @ sps.binom.pmf(x2, n2, p2))


def _support(n: int, p: float) -> np.ndarray:
    """Counts 0..n, or those within 10 SD of the mean when n is large (the rest weighs < 1e-20)."""
    half = 10 * np.sqrt(n * p * (1 - p)) + 10
    return np.arange(max(0, int(n * p - half)), min(n, int(n * p + half)) + 1)


def sample_size(p1: float, p2: float, power: float = 0.8, alpha: float = ALPHA, n_max: int = 100000) -> int | None:
    """Smallest number of evaluable participants per arm (equal arms) whose exact power
    (:func:`exact_power`) reaches ``power``, found by bisection between half and three times the
    normal approximation (a discrete test's power is not quite monotone in n: this is the n where it
    crosses the target, within a participant or two).

    Parameters
    ----------
    p1, p2 : float
        Responder proportions (BM-MSC, Sham).
    power : float
    alpha : float
    n_max : int
        The largest n searched.

    Returns
    -------
    int or None
        None when the proportions are equal, outside (0, 1), or ``n_max`` per arm is not enough.
    """
    if not (0 < p1 < 1 and 0 < p2 < 1) or p1 == p2:
        return None
    z = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)
    approx = z * z * (p1 * (1 - p1) + p2 * (1 - p2)) / (p1 - p2) ** 2  # normal approximation, no correction
    lo, hi = max(2, int(approx / 2)), min(n_max, int(3 * approx) + 20)
    if exact_power(p1, p2, hi, hi, alpha) < power:
        return None
    while hi - lo > 1:  # power(lo) < target <= power(hi), up to the wobble of a discrete test
        mid = (lo + hi) // 2
        if exact_power(p1, p2, mid, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------- calibration


def calibrate(wide: pd.DataFrame) -> dict:
    """Means, SDs and correlations of VAS at months 0, 1, 3, 6, 12 in a dataset, for the
    simulation of the continuous endpoint.

    Participants with VAS at all five visits; the covariance is pooled over arms (each arm's
    means removed), the means are those of the Sham arm (the control of the next trial).

    Parameters
    ----------
    wide : pandas.DataFrame
        The wide view of ADEFF (:func:`respine_nb.derive.wide_outcomes`): ``arm`` and ``vas_<v>``
        for every visit, one row per randomised participant.

    Returns
    -------
    dict
        ``mean``, ``sd`` (tuples, one per visit), ``corr`` (tuple of tuples) and ``n`` (participants
        used); :data:`DEFAULT_CALIBRATION` when fewer than :data:`MIN_CALIBRATION_N` are complete
        or the Sham arm has fewer than 2 (then ``n`` is 0).
    """
    complete = wide.reindex(columns=[f"vas_{v}" for v in VISITS]).astype(float).dropna()
    arm = wide.loc[complete.index, "arm"]
    wide = complete
    sham = wide[arm == config.ARMS[1]]
    if len(wide) < MIN_CALIBRATION_N or len(sham) < 2:
        return dict(DEFAULT_CALIBRATION)
    resid = (wide - wide.groupby(arm.to_numpy()).transform("mean")).to_numpy(dtype=float)
    cov = resid.T @ resid / (len(wide) - arm.nunique())
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    return {
        "mean": tuple(float(round(m, 1)) for m in sham.mean()),
        "sd": tuple(float(round(s, 1)) for s in sd),
        "corr": tuple(tuple(float(round(c, 2)) for c in row) for row in corr),
        "n": int(len(wide)),
    }


# --------------------------------------------------------------------------- one batch of trials


def _responder_batch(rng, n_trials, n, p1, p2, dropout, z):
    """Risk difference, its Newcombe CI and the Yates p of ``n_trials`` trials (arrays)."""
    n1 = rng.binomial(n, 1 - dropout, size=n_trials) if dropout > 0 else np.full(n_trials, n)
    n2 = rng.binomial(n, 1 - dropout, size=n_trials) if dropout > 0 else np.full(n_trials, n)
    x1, x2 = rng.binomial(n1, p1), rng.binomial(n2, p2)
    est, low, high = _newcombe(x1.astype(float), n1.astype(float), x2.astype(float), n2.astype(float), z)
    return est, low, high, yates_p(x1, n1, x2, n2)


def _vas_trials(rng, n_trials, n, effect_mm, dropout, mechanism, calibration, visits=VISITS):
    """VAS of ``n_trials`` trials at ``visits`` (a subset of :data:`VISITS` holding 0, 12 and, for
    MAR, 6), all trials of the batch as one array: shape (trials, visits, 2n), each visit's values
    contiguous; arm (2n,), BM-MSC first; completers (trials, 2n)."""
    idx = [VISITS.index(v) for v in visits]
    mean = np.asarray(calibration["mean"], dtype=float)[idx]
    sd = np.asarray(calibration["sd"], dtype=float)[idx]
    cov = np.asarray(calibration["corr"], dtype=float)[np.ix_(idx, idx)] * np.outer(sd, sd)
    y = np.linalg.cholesky(cov) @ rng.standard_normal((n_trials, len(idx), 2 * n))
    arm = np.r_[np.ones(n), np.zeros(n)]
    shift = np.array([TRAJECTORY.get(v, 0.0) for v in visits]) * effect_mm
    y += mean[:, None]  # the Sham means; BM-MSC: less pain by effect_mm at month 12 (a share of it before)
    y[:, :, :n] -= shift[:, None]
    col = list(visits).index(6 if mechanism == "MAR" else 12)
    if dropout > 0:
        zsc = (y[:, col] - mean[col]) / sd[col]
        p_stay = 1 / (1 + np.exp(np.log(dropout / (1 - dropout)) + zsc))  # 1 - expit(logit(dropout) + z)
        complete = rng.random(zsc.shape) < p_stay
    else:
        complete = np.ones((n_trials, 2 * n), dtype=bool)
    return y, arm, complete


def _ancova_batch(y, n, complete, level):
    """OLS of change at month 12 on (1, arm, baseline) among completers, every trial at once, from
    each arm's sums (the first ``n`` participants are BM-MSC): no design matrix is built."""
    w = complete.astype(float)
    base = y[:, 0] - 50.0  # centred on the middle of the scale: the sums of squares stay well conditioned
    change = y[:, -1] - y[:, 0]
    wb, wc = w * base, w * change
    arms = (slice(0, n), slice(n, None))
    s0, sb, sbb, sc, sbc, scc = (
        np.stack([a[:, g].sum(axis=1) for g in arms]) for a in (w, wb, wb * base, wc, wc * base, wc * change)
    )  # each (2 arms, trials)
    tot = [v.sum(axis=0) for v in (s0, sb, sbb, sc, sbc, scc)]
    xtx = np.stack(
        [np.stack([tot[0], s0[0], tot[1]], -1), np.stack([s0[0], s0[0], sb[0]], -1), np.stack([tot[1], sb[0], tot[2]], -1)], 1
    )
    xty = np.stack([tot[3], sc[0], tot[4]], -1)
    nobs = tot[0]
    ok = (nobs > 3) & (s0[0] > 0) & (s0[1] > 0)
    xtx[~ok] = np.eye(3)
    inv = np.linalg.inv(xtx)
    beta = np.einsum("tjk,tk->tj", inv, xty)
    rss = np.maximum(tot[5] - np.einsum("tj,tj->t", beta, xty), 0.0)
    df = np.maximum(nobs - 3, 1)
    se = np.sqrt(rss / df * inv[:, 1, 1])
    t = sps.t.ppf(0.5 + level / 2, df)
    est = np.where(ok, beta[:, 1], np.nan)
    se = np.where(ok, se, np.nan)
    with np.errstate(invalid="ignore"):
        return est, est - t * se, est + t * se, 2 * sps.t.sf(np.abs(est / se), df)


def _mmrm_one(y, arm, complete, level):
    """The MMRM of change at months 1, 3, 6, 12 (unstructured, REML) of one trial: arm effect at 12."""
    from . import mmrm

    post = list(VISITS[1:])
    n = len(arm)
    subj = np.repeat(np.arange(n), len(post))
    visit = np.tile(post, n)
    keep = np.ones((n, len(post)), dtype=bool)
    keep[:, -1] = complete
    keep = keep.ravel()
    change = (y[:, 1:] - y[:, :1]).ravel()
    onehot = (visit[:, None] == np.array(post)[None, :]).astype(float)
    X = np.hstack([onehot, onehot * np.repeat(arm, len(post))[:, None], onehot * np.repeat(y[:, 0], len(post))[:, None]])
    try:
        fit = mmrm.fit_mmrm_design(change[keep], X[keep], subj[keep], visit[keep], visits=post)
    except (ValueError, np.linalg.LinAlgError, mmrm.MMRMConvergenceError):
        return np.nan, np.nan, np.nan, np.nan
    L = np.zeros(X.shape[1])
    L[len(post) + len(post) - 1] = 1.0
    row = mmrm.contrasts(fit, L, level=level).iloc[0]
    return row["estimate"], row["ci_low"], row["ci_high"], row["p_value"]


def run_task(task: dict) -> pd.DataFrame:
    """Simulate and analyse one batch of trials (a Dask task; pure, seeded by ``task``).

    Parameters
    ----------
    task : dict
        ``analysis`` (one of :data:`ANALYSES`), ``scenario`` and ``batch`` (indices: the seed is
        ``SeedSequence(seed, spawn_key=(scenario, batch))``), ``seed``, ``n_trials``, ``n_per_arm``,
        ``truth`` (the true difference), ``p1``/``p2`` (responder) or ``effect_mm`` (continuous),
        ``dropout``, ``mechanism``, ``calibration``, ``level``.

    Returns
    -------
    pandas.DataFrame
        One row per trial: ``scenario``, ``batch``, ``trial``, ``estimate``, ``ci_low``, ``ci_high``, ``p_value``.
    """
    rng = np.random.default_rng(np.random.SeedSequence(task["seed"], spawn_key=(task["scenario"], task["batch"])))
    k, n, level = task["n_trials"], task["n_per_arm"], task["level"]
    if task["analysis"] == "responder":
        z = sps.norm.ppf(0.5 + level / 2)
        cols = _responder_batch(rng, k, n, task["p1"], task["p2"], task["dropout"], z)
    else:
        ancova = task["analysis"] == "ancova"
        visits = ((0, 6, 12) if task["mechanism"] == "MAR" else (0, 12)) if ancova else VISITS
        args = (task["effect_mm"], task["dropout"], task["mechanism"], task["calibration"], visits)
        y, arm, complete = _vas_trials(rng, k, n, *args)
        if ancova:
            cols = _ancova_batch(y, n, complete, level)
        else:
            cols = tuple(np.array(c) for c in zip(*(_mmrm_one(y[i].T, arm, complete[i], level) for i in range(k))))
    out = dict(zip(("estimate", "ci_low", "ci_high", "p_value"), cols))
    return pd.DataFrame({"scenario": task["scenario"], "batch": task["batch"], "trial": np.arange(k), **out})


# --------------------------------------------------------------------------- the engine


@contextlib.contextmanager
def engine(scheduler_address: str | None = None, n_workers: int | None = None):
    """A ``dask.distributed`` client: on the cluster at ``scheduler_address`` (or the
    ``RESPINE_NB_SCHEDULER`` environment variable), else on a LocalCluster of threads on this
    machine (no dashboard, logs at ERROR), closed on exit.

    Parameters
    ----------
    scheduler_address : str, optional
        e.g. ``tcp://10.0.0.5:8786``.
    n_workers : int, optional
        Workers of the LocalCluster (default: the machine's cores).

    Returns
    -------
    contextlib.AbstractContextManager
        Yields a ``distributed.Client``.
    """
    from distributed import Client, LocalCluster

    address = scheduler_address or os.environ.get(SCHEDULER_ENV) or None
    for name in ("distributed", "tornado"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if address:
        with Client(address, set_as_default=False) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=n_workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=False,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


def _interactive() -> bool:
    """Whether to show progress: ``RESPINE_NB_PROGRESS=1`` (or ``0``), else only on a terminal.

    A kernel (JupyterLab, papermill, nbval) cannot tell a person from a batch run, and stored
    notebooks must not hold changing output, so notebooks show progress only when asked to.
    """
    if os.environ.get("RESPINE_NB_PROGRESS") in ("0", "1"):
        return os.environ["RESPINE_NB_PROGRESS"] == "1"
    return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())


def _gather(client, tasks: list, progress: bool | None) -> list:
    futures = client.map(run_task, tasks, pure=False)
    if progress if progress is not None else _interactive():
        from distributed import as_completed
        from tqdm import tqdm

        for _ in tqdm(as_completed(futures), total=len(futures), desc="simulated batches", file=sys.stderr, leave=False):
            pass
    return client.gather(futures)  # in task order, whatever the order of completion


def _run_in_process(tasks: list, progress: bool | None, n_workers: int | None = None) -> list:
    """The same tasks on a pool of threads in this process (NumPy releases the GIL in the
    generators and the array arithmetic): no cluster to start, ``distributed`` not imported."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n_workers or os.cpu_count() or 1) as pool:
        parts = pool.map(run_task, tasks)  # results in task order
        if progress if progress is not None else _interactive():
            from tqdm import tqdm

            parts = tqdm(parts, total=len(tasks), desc="simulated batches", file=sys.stderr, leave=False)
        return list(parts)


def uses_dask(analyses, scheduler_address: str | None = None) -> bool:
    """Whether :func:`sweep` runs on a Dask client when none is given: with a scheduler address
    (argument or ``RESPINE_NB_SCHEDULER``), or when the costly MMRM fits are among the analyses;
    otherwise the array-arithmetic analyses run on threads in this process.

    Parameters
    ----------
    analyses : sequence of str
    scheduler_address : str, optional

    Returns
    -------
    bool
    """
    return bool(scheduler_address or os.environ.get(SCHEDULER_ENV)) or "mmrm" in analyses


# --------------------------------------------------------------------------- the sweep


def sweep(
    n_per_arm,
    *,
    p_responder=(config.PUBLISHED["responders_pct"]["BM-MSC"] / 100, config.PUBLISHED["responders_pct"]["Sham"] / 100),
    vas_effect_mm: float = 10.0,
    dropout: float = 0.1,
    mechanism: str = "MAR",
    analyses=None,
    n_trials: int = 1000,
    n_trials_vas: int | None = None,
    n_trials_mmrm: int = 0,
    seed: int = 2024,
    calibration: dict | None = None,
    batch_size: int = 2500,
    client=None,
    scheduler_address: str | None = None,
    progress: bool | None = None,
    level: float = config.CI_LEVEL,
) -> pd.DataFrame:
    """Operating characteristics of trials of each size, under the alternative and under the null.

    Parameters
    ----------
    n_per_arm : int or sequence of int
        Participants randomised per arm.
    p_responder : (float, float)
        Responder proportions (BM-MSC, Sham) among the evaluable under the alternative; under the
        null both arms respond at the Sham proportion. With ``analyses`` left to its default, a NaN
        (an arm without evaluable participants) skips the responder analysis.
    vas_effect_mm : float
        Under the alternative, BM-MSC's extra VAS improvement at month 12 (mm); 0 under the null.
    dropout : float in [0, 1)
        Probability of not being evaluable at month 12 (the responder analysis: completely at
        random; the continuous analyses: its average, driven by ``mechanism``).
    mechanism : {"MAR", "MNAR"}
        Dropout driven by the month-6 (MAR) or month-12 (MNAR) VAS value.
    analyses : sequence of str, optional
        Among :data:`ANALYSES` (default: responder and ANCOVA, and the MMRM when ``n_trials_mmrm > 0``).
    n_trials : int
        Simulated trials per design and hypothesis of the responder analysis (array arithmetic).
    n_trials_vas : int, optional
        The same for the ANCOVA, which simulates every participant (default: ``n_trials``).
    n_trials_mmrm : int
        The same for the MMRM, fit one by one (0: not simulated).
    seed : int
        Master seed.
    calibration : dict, optional
        :func:`calibrate`'s result (default :data:`DEFAULT_CALIBRATION`).
    batch_size : int
        Trials per task.
    client : distributed.Client, optional
        Run on it; otherwise, when :func:`uses_dask`, :func:`engine` (``scheduler_address``) opens
        one for the call, else the tasks run on threads in this process (the same numbers).
    scheduler_address : str, optional
    progress : bool, optional
        Show a progress bar on stderr (default: on a terminal, or with ``RESPINE_NB_PROGRESS=1``).
    level : float
        Level of the trials' intervals (coverage) and of the Monte Carlo intervals.

    Returns
    -------
    pandas.DataFrame
        One row per analysis, hypothesis (``alternative``, ``null``) and n per arm, sorted so:
        ``analysis``, ``hypothesis``, ``n_per_arm``, ``truth`` (the true difference: risk
        difference, or VAS change difference in mm, BM-MSC minus Sham; negative = less pain),
        ``n_trials``, ``n_estimated`` (trials with an estimate), ``rejected``, ``rejection_rate``
        (power under the alternative, type I error under the null) with its Wilson interval
        ``mc_low``/``mc_high``, ``mean_estimate``, ``bias``, ``coverage`` (share of estimated
        trials whose interval holds the truth), ``dropout``, ``mechanism``, ``method``.
    """
    p1, p2 = (float(p) for p in p_responder)
    if analyses is None:
        analyses = ANALYSES if n_trials_mmrm > 0 else ("responder", "ancova")
        if not (0 <= p1 <= 1 and 0 <= p2 <= 1):  # NaN: an arm without evaluable participants
            analyses = tuple(a for a in analyses if a != "responder")
    unknown = sorted(set(analyses) - set(ANALYSES))
    if unknown or mechanism not in MECHANISMS or not 0 <= dropout < 1:
        raise ValueError(
            f"analyses in {ANALYSES}, mechanism in {MECHANISMS}, dropout in [0, 1): got {unknown}, {mechanism}, {dropout}"
        )
    if "responder" in analyses and not (0 <= p1 <= 1 and 0 <= p2 <= 1):
        raise ValueError(f"responder proportions in [0, 1]: got {p1}, {p2}")
    calibration = calibration or DEFAULT_CALIBRATION
    sizes = sorted({int(n) for n in np.atleast_1d(n_per_arm)})
    designs, tasks = [], []
    for analysis in ANALYSES:  # fixed order: scenario indices (the seeds) do not depend on `analyses`
        for hypothesis in ("alternative", "null"):
            for n in sizes:
                scenario = len(designs)
                designs.append((analysis, hypothesis, n))
                if analysis not in analyses:
                    continue
                if analysis == "responder":
                    q1 = p1 if hypothesis == "alternative" else p2
                    spec = dict(p1=q1, p2=p2, truth=q1 - p2)
                else:
                    effect = vas_effect_mm if hypothesis == "alternative" else 0.0
                    spec = dict(effect_mm=effect, truth=-effect)
                total = {"responder": n_trials, "ancova": n_trials_vas or n_trials, "mmrm": n_trials_mmrm}[analysis]
                # a VAS task holds every participant of its trials: < ~40 MB; a responder task, counts only
                size = {"responder": batch_size, "ancova": max(1, min(batch_size, 500_000 // n)), "mmrm": 10}[analysis]
                for batch, start in enumerate(range(0, total, size)):
                    tasks.append(
                        dict(analysis=analysis, scenario=scenario, batch=batch, seed=seed, n_trials=min(size, total - start),
                             n_per_arm=n, dropout=dropout, mechanism=mechanism, calibration=calibration, level=level, **spec)
                    )  # fmt: skip
    if not tasks:
        return pd.DataFrame()
    if client is not None:
        parts = _gather(client, tasks, progress)
    elif uses_dask(analyses, scheduler_address):
        with engine(scheduler_address) as own:
            parts = _gather(own, tasks, progress)
    else:
        parts = _run_in_process(tasks, progress)
    trials = pd.concat(parts, ignore_index=True).sort_values(["scenario", "batch", "trial"], kind="mergesort")
    truth = {t["scenario"]: t["truth"] for t in tasks}
    out = []
    for scenario, sims in trials.groupby("scenario", sort=True):
        analysis, hypothesis, n = designs[scenario]
        out.append(_summary(sims, analysis, hypothesis, n, truth[scenario], level) | dict(dropout=dropout, mechanism=mechanism))
    return pd.DataFrame(out).sort_values(["analysis", "hypothesis", "n_per_arm"], kind="mergesort").reset_index(drop=True)


METHODS = {
    "responder": "Yates chi-square, two-sided 0.05, among the evaluable; Newcombe hybrid score CI",
    "ancova": "ANCOVA of VAS change at month 12 on arm and baseline, completers; t test",
    "mmrm": "MMRM of VAS change at months 1-12, unstructured, REML, Satterthwaite df",
}


def _summary(sims: pd.DataFrame, analysis, hypothesis, n, truth, level) -> dict:
    est = sims["estimate"].to_numpy(dtype=float)
    fitted = ~np.isnan(est)
    rejected = int((sims["p_value"].to_numpy(dtype=float) < ALPHA).sum())  # NaN p: not rejected
    rate, lo, hi = wilson_interval(rejected, len(sims), level)
    covered = (sims["ci_low"] <= truth) & (truth <= sims["ci_high"])
    mean = float(est[fitted].mean()) if fitted.any() else float("nan")
    return dict(
        analysis=analysis, hypothesis=hypothesis, n_per_arm=n, truth=truth, n_trials=len(sims),
        n_estimated=int(fitted.sum()), rejected=rejected, rejection_rate=float(rate), mc_low=float(lo), mc_high=float(hi),
        mean_estimate=mean, bias=mean - truth, coverage=float(covered[fitted].mean()) if fitted.any() else float("nan"),
        method=METHODS[analysis],
    )  # fmt: skip


# --------------------------------------------------------------------------- the contract's rows


def observed_counts(resp: pd.DataFrame) -> pd.DataFrame:
    """Randomised, evaluable and responders per arm, from the derived responder data.

    Parameters
    ----------
    resp : pandas.DataFrame
        The responder view (:func:`respine_nb.derive.responders`): one row per randomised
        participant with ``ARM`` and ``AVAL`` (1 responder, 0 not, empty when not evaluable).

    Returns
    -------
    pandas.DataFrame
        Index: the arms (BM-MSC, Sham, even when empty); columns ``randomised``, ``evaluable``,
        ``responders``, ``proportion`` (NaN with no evaluable participant).
    """
    arm = resp["ARM"].astype(str)
    aval = pd.to_numeric(resp["AVAL"], errors="coerce")
    out = pd.DataFrame(
        {
            "randomised": arm.value_counts(),
            "evaluable": arm[aval.notna()].value_counts(),
            "responders": arm[aval == 1].value_counts(),
        }
    ).reindex(list(config.ARMS))
    out = out.fillna(0).astype(int)
    out["proportion"] = out["responders"] / out["evaluable"].where(out["evaluable"] > 0)
    return out.rename_axis("group")


PRIMARY_STREAM = 10_000  # spawn key of the primary power's draws (apart from the sweep's scenarios)


def primary_design(counts: pd.DataFrame, n_trials: int, seed: int, power: float = 0.8) -> pd.DataFrame:
    """The results contract's design rows for the primary analysis at the observed data: simulated
    and exact power at the observed evaluable n and proportions, and the participants per arm for
    ``power`` (evaluable, and randomised at the observed evaluable fraction).

    Parameters
    ----------
    counts : pandas.DataFrame
        :func:`observed_counts`.
    n_trials : int
        Simulated trials for the simulated power (array arithmetic, no task needed).
    seed : int
    power : float
        Target power of the sample size.

    Returns
    -------
    pandas.DataFrame
        Rows ``power``, ``power_exact``, ``sample_size``, ``sample_size_randomised`` (column
        ``analysis``) with ``group`` (the contrast), ``estimate``, ``ci_low``, ``ci_high``, ``n``,
        ``method`` (ending "not estimable: <reason>" where the data do not allow it).
    """
    ev, pr = counts["evaluable"], counts["proportion"]
    (n1, n2), (p1, p2) = (int(ev[a]) for a in config.ARMS), (float(pr[a]) for a in config.ARMS)
    method = {
        "power": f"simulation ({n_trials} trials), Yates chi-square two-sided {ALPHA:g}; Wilson CI",
        "power_exact": f"enumeration of two binomials, Yates chi-square two-sided {ALPHA:g}",
        "sample_size": f"smallest n per arm with exact power >= {power:.0%}, equal arms, evaluable",
        "sample_size_randomised": "sample_size divided by the observed evaluable fraction, rounded up",
    }
    rows = {k: dict(analysis=k, estimate=np.nan, ci_low=np.nan, ci_high=np.nan, n=np.nan) for k in method}
    reason = ""
    if min(n1, n2) < 1:
        reason = "an arm has no evaluable participant"
    else:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(PRIMARY_STREAM,)))
        x1, x2 = rng.binomial(n1, p1, n_trials), rng.binomial(n2, p2, n_trials)  # the observed (unequal) arms
        rejected = int((yates_p(x1, n1, x2, n2) < ALPHA).sum())
        rate, lo, hi = wilson_interval(rejected, n_trials)
        rows["power"].update(estimate=float(rate), ci_low=float(lo), ci_high=float(hi), n=n_trials)
        rows["power_exact"].update(estimate=exact_power(p1, p2, n1, n2), n=n1 + n2)
        need = sample_size(p1, p2, power)
        if need is None:
            reason = "the observed proportions are equal, 0 or 1, or need more than 100000 per arm"
        else:
            fraction = (n1 + n2) / int(counts["randomised"].sum())
            rows["sample_size"].update(estimate=need, n=n1 + n2)
            rows["sample_size_randomised"].update(estimate=int(np.ceil(need / fraction)), n=int(counts["randomised"].sum()))
    out = pd.DataFrame(list(rows.values()))
    out["group"] = config.CONTRAST
    out["method"] = [
        m + (f"; not estimable: {reason}" if reason and pd.isna(e) else "") for m, e in zip(method.values(), out["estimate"])
    ]
    return out


def pooled_type1(oc: pd.DataFrame, analysis: str, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Type I error of one analysis pooled over the sizes of a sweep (rejections over trials under
    the null), with its Wilson interval.

    Parameters
    ----------
    oc : pandas.DataFrame
        :func:`sweep`'s result.
    analysis : str
    level : float

    Returns
    -------
    pandas.DataFrame
        One row: ``group`` (the contrast), ``estimate``, ``ci_low``, ``ci_high``, ``n`` (trials),
        ``method`` ("not estimable" when the sweep did not run that analysis).
    """
    null = oc[(oc["analysis"] == analysis) & (oc["hypothesis"] == "null")] if len(oc) else oc
    sizes = ", ".join(str(n) for n in null["n_per_arm"]) if len(null) else ""
    method = f"simulated type I error, {METHODS[analysis]}; pooled over n per arm {sizes}; Wilson CI"
    if not len(null):
        return pd.DataFrame({"group": [config.CONTRAST], "method": [f"{METHODS[analysis]}; not estimable: not simulated"]})
    rate, lo, hi = wilson_interval(int(null["rejected"].sum()), int(null["n_trials"].sum()), level)
    return pd.DataFrame(
        {"group": [config.CONTRAST], "estimate": [float(rate)], "ci_low": [float(lo)], "ci_high": [float(hi)],
         "n": [int(null["n_trials"].sum())], "method": [method]}
    )  # fmt: skip


def grid_sample_size(oc: pd.DataFrame, analysis: str, power: float = 0.8) -> pd.DataFrame:
    """The smallest n per arm of a sweep's grid whose simulated power reaches ``power``.

    Parameters
    ----------
    oc : pandas.DataFrame
        :func:`sweep`'s result.
    analysis : str
    power : float

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``estimate`` (n per arm; empty with the reason when no size of the
        grid reaches it), ``n`` (trials at that size), ``method``.
    """
    alt = oc[(oc["analysis"] == analysis) & (oc["hypothesis"] == "alternative")] if len(oc) else oc
    reached = alt[alt["rejection_rate"] >= power]
    method = f"smallest n per arm of the grid with simulated power >= {power:.0%}, {METHODS[analysis]}"
    if not len(reached):
        why = "not simulated" if not len(alt) else f"no n per arm up to {int(alt['n_per_arm'].max())} reaches it"
        return pd.DataFrame({"group": [config.CONTRAST], "method": [f"{method}; not estimable: {why}"]})
    first = reached.sort_values("n_per_arm").iloc[0]
    return pd.DataFrame(
        {"group": [config.CONTRAST], "estimate": [int(first["n_per_arm"])], "n": [int(first["n_trials"])], "method": [method]}
    )


# --------------------------------------------------------------------------- the notebook's narrative calls


def parse_grid(text: str) -> list:
    """The sizes of a comma-separated grid (``"50,100,200"``), sorted, duplicates dropped.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of int
    """
    return sorted({int(v) for v in str(text).split(",") if v.strip()})


def percent_responders(counts: pd.DataFrame) -> dict:
    """Responders per arm in whole percent (the way the abstract reports them).

    Parameters
    ----------
    counts : pandas.DataFrame
        :func:`observed_counts`.

    Returns
    -------
    dict
        Arm -> int (None where the arm has no evaluable participant).
    """
    return {arm: None if pd.isna(p) else round(p * 100) for arm, p in counts["proportion"].items()}


def observed_proportions(counts: pd.DataFrame) -> tuple:
    """Responder proportions (BM-MSC, Sham) observed among the evaluable: the alternative of the sweep.

    Parameters
    ----------
    counts : pandas.DataFrame
        :func:`observed_counts`.

    Returns
    -------
    tuple of float
        NaN for an arm without evaluable participants (:func:`sweep` then skips the responder analysis).
    """
    return tuple(float(counts.loc[arm, "proportion"]) for arm in config.ARMS)


def calibration_text(calibration: dict) -> str:
    """One sentence saying on what the VAS trajectories were calibrated.

    Parameters
    ----------
    calibration : dict
        :func:`calibrate`'s result.

    Returns
    -------
    str
        Markdown.
    """
    source = (
        f"this dataset's {calibration['n']} participants with VAS at every visit"
        if calibration["n"]
        else f"the committed synthetic cohort (fewer than {MIN_CALIBRATION_N} participants here have VAS at every visit)"
    )
    return (
        f"VAS trajectories calibrated on {source}: sham baseline mean {calibration['mean'][0]:.1f} mm, "
        f"SD {calibration['sd'][0]:.1f} mm; month-12 SD {calibration['sd'][-1]:.1f} mm."
    )


ANALYSIS_LABELS = {
    "responder": "Responder (Yates chi-square)",
    "ancova": "VAS change (ANCOVA)",
    "mmrm": "VAS change (MMRM)",
}
OC_LABELS = {
    "analysis": "Analysis",
    "n_per_arm": "Randomised per arm",
    "truth": "True difference",
    "rejection_rate": "Rejection rate",
    "ci": "Monte Carlo 95 % CI",
    "bias": "Bias",
    "coverage": "CI coverage",
    "n_trials": "Trials",
}


def oc_table(oc: pd.DataFrame, hypothesis: str) -> pd.DataFrame:
    """The operating characteristics of a sweep under one hypothesis, for display
    (``tables.results_table(..., labels=OC_LABELS)``).

    Parameters
    ----------
    oc : pandas.DataFrame
        :func:`sweep`'s result.
    hypothesis : {"alternative", "null"}

    Returns
    -------
    pandas.DataFrame
        ``analysis`` (label), ``n_per_arm``, ``truth``, ``rejection_rate`` (power or type I error),
        ``ci_low``/``ci_high`` (its Monte Carlo interval), ``bias``, ``coverage``, ``n_trials``.
    """
    cols = ["analysis", "n_per_arm", "truth", "rejection_rate", "ci_low", "ci_high", "bias", "coverage", "n_trials"]
    if not len(oc):
        return pd.DataFrame(columns=cols)
    part = oc[oc["hypothesis"] == hypothesis].rename(columns={"mc_low": "ci_low", "mc_high": "ci_high"})
    return part.assign(analysis=part["analysis"].map(ANALYSIS_LABELS))[cols].reset_index(drop=True)


PRIMARY_LABELS = {
    "power": "Power at the observed evaluable n, simulated",
    "power_exact": "Power at the observed evaluable n, exact",
    "sample_size": "Evaluable per arm for 80 % power (exact)",
    "sample_size_randomised": "Randomised per arm for 80 % power",
}


def primary_table(primary: pd.DataFrame) -> pd.DataFrame:
    """:func:`primary_design`'s rows for display: a label per quantity, the estimate, its interval,
    n and the method.

    Parameters
    ----------
    primary : pandas.DataFrame

    Returns
    -------
    pandas.DataFrame
        ``quantity``, ``estimate``, ``ci_low``, ``ci_high``, ``n``, ``method``.
    """
    return primary.assign(quantity=primary["analysis"].map(PRIMARY_LABELS))[
        ["quantity", "estimate", "ci_low", "ci_high", "n", "method"]
    ].reset_index(drop=True)


def _grid_text(oc: pd.DataFrame, analysis: str, label: str) -> str:
    """``"<label> reaches 80 % with <n> randomised per arm"`` (or: more than the grid, not simulated)."""
    row = grid_sample_size(oc, analysis).iloc[0]
    if pd.notna(row.get("estimate", np.nan)):
        return f"{label} reaches 80 % with {int(row['estimate'])} randomised per arm"
    alt = oc[(oc["analysis"] == analysis) & (oc["hypothesis"] == "alternative")] if len(oc) else oc
    if len(alt):
        return f"{label} does not reach 80 % with up to {int(alt['n_per_arm'].max())} per arm"
    return f"{label} was not simulated"


def interpretation(counts: pd.DataFrame, primary: pd.DataFrame, oc: pd.DataFrame, vas_effect_mm: float, visit_month: int) -> str:
    """The notebook's answer in a paragraph: the power RESPINE had, the participants 80 % power needs
    with the responder endpoint (exact) and on the grid for each analysis, and the VAS comparison.
    True on any dataset: a number that cannot be estimated is said to be so.

    Parameters
    ----------
    counts : pandas.DataFrame
        :func:`observed_counts`.
    primary : pandas.DataFrame
        :func:`primary_design`.
    oc : pandas.DataFrame
        :func:`sweep`.
    vas_effect_mm : float
    visit_month : int

    Returns
    -------
    str
        Markdown.
    """
    from .tables import num_text

    prop = counts["proportion"]
    need = primary.set_index("analysis")["estimate"]
    grid = [
        _grid_text(oc, "responder", "the responder test"),
        _grid_text(oc, "ancova", f"the ANCOVA of VAS change at month 12 (a true effect of {vas_effect_mm:g} mm)"),
    ]
    if len(oc) and (oc["analysis"] == "mmrm").any():
        grid.append(_grid_text(oc, "mmrm", "the MMRM"))
    if prop.isna().any():
        text = (
            f"At month {visit_month} an arm has no evaluable participant: the primary test's power and the "
            f"participants it needs are not estimable here. On the simulated grid {', '.join(grid[:-1])} and {grid[-1]}."
        )
        return text + " The VAS analyses do not depend on the observed responder proportions."
    text = (
        f"At the proportions observed at month {visit_month} ({num_text(prop[config.ARMS[0]], '.0%')} vs "
        f"{num_text(prop[config.ARMS[1]], '.0%')}), the primary test had {num_text(need['power_exact'], '.0%')} "
        "power with this trial's evaluable numbers; "
        + (
            f"80 % power needs {num_text(need['sample_size'], '.0f')} evaluable participants per arm "
            f"({num_text(need['sample_size_randomised'], '.0f')} randomised). "
            if pd.notna(need["sample_size"])
            else "the participants needed for 80 % power are not estimable here (see the table above). "
        )
        + f"On the simulated grid {', '.join(grid[:-1])} and {grid[-1]}."
    )
    return text + (
        " The responder endpoint dichotomises a continuous change and so spends information; the VAS analyses "
        "keep it. The VAS curve comes from `n_trials_vas` simulated trials per design: raise it to 10,000 "
        "(and run on a Dask cluster through `scheduler_address`) when planning a real study."
    )


RESULT_IDS = {
    "power": "design.power.primary",
    "power_exact": "design.power.primary_exact",
    "sample_size": "design.sample_size.primary",
    "sample_size_randomised": "design.sample_size.primary_randomised",
}


def contract_rows(primary: pd.DataFrame, oc: pd.DataFrame, visit_month: int) -> pd.DataFrame:
    """Every ``design.*`` row of the results contract: the primary analysis' power and sample size
    (:func:`primary_design`), the simulated type I error of the responder and ANCOVA analyses pooled
    over the grid, and the grid's n per arm for 80 % ANCOVA power; empty with the reason where not
    estimable.

    Parameters
    ----------
    primary : pandas.DataFrame
        :func:`primary_design`.
    oc : pandas.DataFrame
        :func:`sweep`.
    visit_month : int

    Returns
    -------
    pandas.DataFrame
        Contract rows (:func:`respine_nb.results.rows`), in a fixed order.
    """
    from .results import rows

    parts = [
        rows(primary[primary["analysis"] == key], analysis_id, visit_month=visit_month) for key, analysis_id in RESULT_IDS.items()
    ]
    parts += [
        rows(pooled_type1(oc, "responder"), "design.type1.responder", visit_month=visit_month),
        rows(pooled_type1(oc, "ancova"), "design.type1.vas_ancova", visit_month=visit_month),
        rows(grid_sample_size(oc, "ancova"), "design.sample_size.vas_ancova", visit_month=visit_month),
    ]
    return pd.concat(parts, ignore_index=True)
