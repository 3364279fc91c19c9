"""Reference-based multiple imputation (Carpenter, Roger and Kenward 2013), as R ``rbmi`` with ``method_approxbayes``.

The post-baseline values of one measure follow a multivariate normal model: mean
``a_v + g_v * BM-MSC + b_v * baseline`` at each visit v (arm by visit, baseline by visit), one
unstructured covariance shared by the arms, fitted by maximum likelihood (EM) on a bootstrap sample
of participants drawn within each arm (approximate Bayesian bootstrap, one per imputation).
Missing values are then drawn from their conditional normal distribution given the participant's
observed values, with the participant's mean profile set by the strategy:

- ``mar``: the own arm's mean at every visit;
- ``j2r`` (jump to reference): a BM-MSC participant's mean is BM-MSC's up to the last observed
  visit and Sham's afterwards (intermittent gaps before it are imputed under MAR, as rbmi);
- ``cr`` (copy reference): a BM-MSC participant's mean is Sham's at every visit.

Sham participants are imputed under MAR in every strategy. Each completed dataset is analysed by
ANCOVA of the change at the visit on arm and baseline; Rubin's rules with Barnard-Rubin df
(complete-data df n - 3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import config
from .binary import arms_without, not_estimable_row
from .missing import mc_error, pooled_inference

__all__ = ["STRATEGIES", "fit_mvn_em", "mi_reference_based", "reference_based_by_measure"]

STRATEGIES = {"mar": "missing at random", "j2r": "jump to reference", "cr": "copy reference"}


def _incomplete_patterns(obs: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The missingness patterns with a missing value: ``(rows, o)`` in order of first occurrence in ``obs``.

    ``rows`` (ascending) are the rows of ``obs`` with the pattern, ``o`` the boolean observed columns.
    """
    codes = obs.astype(np.int64) @ (1 << np.arange(obs.shape[1], dtype=np.int64))  # one integer per pattern
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    pats = [(np.flatnonzero(inverse == u), obs[first[u]]) for u in np.argsort(first)]
    return [(rows, o) for rows, o in pats if not o.all()]


def _flat(rows, cols, k: int) -> np.ndarray:
    """Positions of the block ``rows`` x ``cols`` of a C-ordered matrix with ``k`` columns, flattened (for ``take``)."""
    return np.asarray(rows)[..., :, None] * k + np.asarray(cols)[..., None, :]


class _Blocks:
    """The K x K covariance blocks of the incomplete missingness patterns, gathered to solve as stacks.

    The patterns with the same number of observed values (at least one) form a stack: ``np.linalg.solve``
    and ``np.matmul`` on a stack make the same LAPACK/BLAS call for each pattern as for one pattern
    alone, so the numbers are those of a pattern-by-pattern loop, with a few calls in place of many.
    """

    def __init__(self, patterns: list[np.ndarray], k: int):
        cols = np.arange(k)
        self.n = len(patterns)
        self.stacks = []
        for n_obs in sorted({int(o.sum()) for o in patterns} - {0}):
            members = [i for i, o in enumerate(patterns) if o.sum() == n_obs]
            oi = np.array([cols[patterns[i]] for i in members])  # patterns x observed columns
            mi = np.array([cols[~patterns[i]] for i in members])  # patterns x missing columns
            self.stacks.append((members, _flat(oi, oi, k), _flat(oi, mi, k), _flat(mi, mi, k)))
        self.mm = [_flat(np.flatnonzero(~o), np.flatnonzero(~o), k) for o in patterns]
        self.unobserved = [i for i, o in enumerate(patterns) if not o.any()]

    def conditionals(self, S: np.ndarray) -> tuple[list, list]:
        """Per pattern: ``S_oo^-1 S_om`` (the transpose of the regression ``S_mo S_oo^-1`` of the missing on
        the observed values, None when nothing is observed) and the covariance of the missing values given
        the observed ones, ``S_mm - S_mo S_oo^-1 S_om``."""
        coef_t, cond = [None] * self.n, [None] * self.n
        for i in self.unobserved:  # nothing observed: the marginal covariance
            cond[i] = S.take(self.mm[i])
        for members, oo, om, mm in self.stacks:
            S_om = S.take(om)
            sol = np.linalg.solve(S.take(oo), S_om)
            conds = S.take(mm) - np.matmul(sol.transpose(0, 2, 1), S_om)
            for j, i in enumerate(members):
                coef_t[i], cond[i] = sol[j], conds[j]
        return coef_t, cond


def fit_mvn_em(Y: np.ndarray, X: np.ndarray, tol: float = 1e-10, max_iter: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Maximum likelihood multivariate regression with missing outcomes (EM algorithm).

    Parameters
    ----------
    Y : numpy.ndarray
        n x K outcomes, NaN = missing (any pattern).
    X : numpy.ndarray
        n x p covariates (complete), the same for every column of Y.
    tol : float
        Convergence on the largest change of any parameter.
    max_iter : int
        Iteration limit.

    Returns
    -------
    tuple of numpy.ndarray
        ``(B, Sigma)``: p x K coefficients (mean of row i = X[i] @ B) and the K x K covariance.
    """
    n, k = Y.shape
    obs = ~np.isnan(Y)
    # The rows are handled by missingness pattern (few patterns, many rows): the conditional means
    # of the missing values of all rows of a pattern are one matrix product. The positions of each
    # pattern's observed and missing values do not change between iterations and are taken once.
    # The patterns keep the order of their first row, the order in which C has always been summed.
    patterns = _incomplete_patterns(obs)
    blocks = _Blocks([o for _, o in patterns], k)
    where = [(len(rows), _flat(rows, np.flatnonzero(o), k), _flat(rows, np.flatnonzero(~o), k)) for rows, o in patterns]
    xtx_inv = np.linalg.pinv(X.T @ X)
    proj = xtx_inv @ X.T  # least squares: B = proj @ Y
    B = np.zeros((X.shape[1], k))
    for j in range(k):
        o = obs[:, j]
        B[:, j] = np.linalg.lstsq(X[o], Y[o, j], rcond=None)[0]
    S = np.diag([np.nanvar(Y[:, j] - X @ B[:, j]) + 1e-8 for j in range(k)])
    for _ in range(max_iter):
        mu = X @ B
        resid = Y - mu  # NaN where Y is missing, never read there
        Yhat = np.where(obs, Y, mu)  # the missing values: their mean, plus the regression on the observed ones below
        C = np.zeros(k * k)  # the conditional covariances of the missing values, summed over the rows (flattened)
        coef_t, cond = blocks.conditionals(S)
        for (n_rows, o_at, mis_at), ct, cc, mm in zip(where, coef_t, cond, blocks.mm):
            if ct is not None:
                Yhat.reshape(-1)[mis_at] += resid.take(o_at) @ ct  # through a view: the flat positions
            C[mm] += n_rows * cc
        B_new = proj @ Yhat
        R = Yhat - X @ B_new
        S_new = (R.T @ R + C.reshape(k, k)) / n
        change = max(np.abs(B_new - B).max(), np.abs(S_new - S).max())
        B, S = B_new, S_new
        if change < tol:
            break
    return B, (S + S.T) / 2


def _reference_mean(obs: np.ndarray, msc: np.ndarray, strategy: str) -> np.ndarray:
    """n x K, True where a participant's mean under ``strategy`` is the reference (Sham) arm's."""
    n, k = obs.shape
    if strategy == "mar":
        return np.zeros((n, k), dtype=bool)
    if strategy == "cr":
        return np.repeat(msc[:, None], k, axis=1)
    last = np.where(obs.any(axis=1), k - 1 - np.argmax(obs[:, ::-1], axis=1), -1)  # last observed visit, -1 if none
    return msc[:, None] & (np.arange(k) > last[:, None])


class _Completion:
    """Completed copies of Y: missing values drawn from their conditional normal, one copy per strategy.

    The strategies differ only in the mean profile: the standard normal deviates, the regressions
    on the observed values and the conditional covariances are shared. The rows are handled by
    missingness pattern; ``np.matmul`` on a stack of rows makes for each row the matrix-vector
    product a row-by-row loop would make.
    """

    def __init__(self, Y: np.ndarray, X: np.ndarray, Xref: np.ndarray, msc: np.ndarray, strategies):
        self.Y, self.X, self.Xref = Y, X, Xref
        obs = ~np.isnan(Y)
        self.missing = ~obs
        k = Y.shape[1]
        patterns = _incomplete_patterns(obs)
        self.blocks = _Blocks([o for _, o in patterns], k)
        self.where = [(_flat(rows, np.flatnonzero(o), k), _flat(rows, np.flatnonzero(~o), k)) for rows, o in patterns]
        self.ref = [_reference_mean(obs, msc, s) for s in strategies]

    def draw(self, B: np.ndarray, S: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """One completed copy of Y per strategy, given the fitted ``B`` and ``S``."""
        # the deviates in the order of a loop over the incomplete rows, each drawing its missing values
        z = np.zeros(self.Y.shape)
        z[self.missing] = rng.standard_normal(int(self.missing.sum()))
        coef_t, cond = self.blocks.conditionals(S)
        noise = []
        for (_, mis_at), cc in zip(self.where, cond):
            chol = np.linalg.cholesky((cc + cc.T) / 2 + 1e-12 * np.eye(len(cc)))
            noise.append(np.matmul(chol, z.take(mis_at)[:, :, None])[:, :, 0])
        mu_own, mu_ref = self.X @ B, self.Xref @ B
        out = []
        for ref in self.ref:
            mu = np.where(ref, mu_ref, mu_own)
            resid = self.Y - mu  # NaN where Y is missing, never read there
            completed = self.Y.copy()
            for (o_at, mis_at), ct, e in zip(self.where, coef_t, noise):
                m_cond = mu.take(mis_at)
                if ct is not None:
                    m_cond = m_cond + np.matmul(ct.T, resid.take(o_at)[:, :, None])[:, :, 0]
                completed.reshape(-1)[mis_at] = m_cond + e  # through a view: the flat positions
            out.append(completed)
        return out


def _ancova(change: np.ndarray, msc: np.ndarray, base: np.ndarray) -> tuple[float, float]:
    A = np.column_stack([np.ones(len(change)), msc, base])
    inv = np.linalg.inv(A.T @ A)
    beta = inv @ A.T @ change
    resid = change - A @ beta
    s2 = resid @ resid / (len(change) - 3)
    return float(beta[1]), float(s2 * inv[1, 1])


def _analyses(wide, measure, visit_month, strategies, m, seed, arm, level) -> list[pd.DataFrame]:
    """:func:`mi_reference_based` for several strategies at once: the row of each, in order.

    With the same seed every strategy draws the same random numbers (the bootstrap samples, then
    as many standard normal deviates as there are missing values), so the bootstrap samples and
    their fits are those of each strategy alone: they are made once and shared.
    """
    for strategy in strategies:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}")
    methods = [
        f"reference-based multiple imputation, {STRATEGIES[s]} (Carpenter, Roger and Kenward 2013; m = {m}; "
        "multivariate normal, arm by visit and baseline by visit, unstructured covariance, approximate Bayesian "
        "bootstrap); ANCOVA of change on arm and baseline; Rubin's rules, Barnard-Rubin df"
        for s in strategies
    ]
    visits = [v for v in config.POST_BASELINE_VISITS if v <= visit_month and f"{measure}_{v}" in wide]
    d = wide[wide[f"{measure}_0"].notna() & wide[arm].isin(config.ARMS)]
    msc = (d[arm] == config.ARMS[0]).to_numpy()
    nan = ("estimate", "ci_low", "ci_high", "p_value", "se", "df", "fmi", "mc_error")
    reason = arms_without({a: int((d[arm] == a).sum()) for a in config.ARMS}, "participant with a baseline value")
    if not reason and visit_month not in visits:
        reason = f"no {measure}_{visit_month} column"
    Y = d[[f"{measure}_{v}" for v in visits]].to_numpy(dtype=float)
    if not reason:
        few = [
            f"month {v} in {a}"
            for j, v in enumerate(visits)
            for a, sel in zip(config.ARMS, (msc, ~msc))
            if (~np.isnan(Y[sel, j])).sum() < 2
        ]
        reason = f"fewer than 2 observed values at {', '.join(few)}" if few else ""
    if reason:
        return [
            not_estimable_row(method, reason, len(d), nan, visit_month=visit_month, m=m, strategy=s)
            for s, method in zip(strategies, methods)
        ]
    base = d[f"{measure}_0"].to_numpy(dtype=float)
    X = np.column_stack([np.ones(len(d)), msc.astype(float), base])
    Xref = X.copy()
    Xref[:, 1] = 0.0
    rng = np.random.default_rng(seed)
    arms_ix = [np.flatnonzero(msc), np.flatnonzero(~msc)]
    completion = _Completion(Y, X, Xref, msc, strategies) if np.isnan(Y).any() else None
    est = [[] for _ in strategies]
    var = [[] for _ in strategies]
    for _ in range(m):
        if completion is not None:
            for _try in range(100):  # a bootstrap sample needs 2 observed values per visit and arm
                ix = np.concatenate([rng.choice(a, size=len(a), replace=True) for a in arms_ix])
                ok = all((~np.isnan(Y[ix][sel[ix]])).sum(axis=0).min() >= 2 for sel in (msc, ~msc))
                if ok:
                    break
            B, S = fit_mvn_em(Y[ix], X[ix])
            completed = completion.draw(B, S, rng)
        else:
            completed = [Y] * len(strategies)
        for j, c in enumerate(completed):
            e, v = _ancova(c[:, -1] - base, msc.astype(float), base)
            est[j].append(e)
            var[j].append(v)
    rows = []
    for s, method, e, v in zip(strategies, methods, est, var):
        pooled = pooled_inference(e, v, dfcom=len(d) - 3, level=level)
        mc = mc_error(e, v, dfcom=len(d) - 3, level=level).set_index("statistic")["mc_error"]
        row = {
            "group": config.CONTRAST,
            "visit_month": visit_month,
            "estimate": pooled["estimate"],
            "ci_low": pooled["ci_low"],
            "ci_high": pooled["ci_high"],
            "p_value": pooled["p_value"],
            "se": pooled["se"],
            "df": pooled["df"],
            "fmi": pooled["fmi"],
            "mc_error": float(mc["estimate"]),
            "n": len(d),
            "m": m,
            "strategy": s,
            "method": method,
        }
        rows.append(pd.DataFrame([row]))
    return rows


def mi_reference_based(
    wide: pd.DataFrame,
    measure: str = "vas",
    visit_month: int = config.PRIMARY_VISIT,
    strategy: str = "j2r",
    m: int = 100,
    seed: int = 2024,
    arm: str = "arm",
    level: float = config.CI_LEVEL,
) -> pd.DataFrame:
    """``secondary.mmrm_j2r.vas_pain`` / ``.odi``: reference-based multiple imputation of the change at a visit.

    See the module docstring for the model (arm by visit and baseline by visit means, shared
    unstructured covariance, approximate Bayesian bootstrap within arm, EM fit) and the
    strategies. The analysed participants are those with a baseline value; the visits are the
    post-baseline visits up to ``visit_month``.

    Parameters
    ----------
    wide : DataFrame
        One row per randomised participant: ``arm`` and ``<measure>_<v>`` for v = 0 and the
        post-baseline visits (the frame of ``stats.wide_outcomes``).
    measure : str
        Column prefix: ``"vas"`` or ``"odi"`` (``"pcs"``, ``"mcs"`` work the same way).
    visit_month : int
        The visit of the change analysed.
    strategy : str
        ``"j2r"`` (default), ``"cr"`` or ``"mar"`` (see :data:`STRATEGIES`).
    m, seed : int
        Imputations and the seed of the bootstrap and the draws.
    arm : str
        Arm column.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row: ``group``, ``visit_month``, ``estimate`` (BM-MSC minus Sham adjusted mean
        change), ``ci_low``, ``ci_high``, ``p_value``, ``se``, ``df`` (Barnard-Rubin), ``fmi``,
        ``mc_error`` (jackknife Monte Carlo SE of the estimate), ``n``, ``m``, ``strategy``,
        ``method``. NaN with the reason in ``method`` when an arm has nobody with a baseline or
        a visit has fewer than 2 observed values in an arm.
    """
    return _analyses(wide, measure, visit_month, (strategy,), m, seed, arm, level)[0]


def reference_based_by_measure(
    wide: pd.DataFrame,
    measures: dict | None = None,
    visit_month: int = config.PRIMARY_VISIT,
    strategies=("mar", "j2r", "cr"),
    m: int = 100,
    seed: int = 2024,
    level: float = config.CI_LEVEL,
) -> pd.DataFrame:
    """:func:`mi_reference_based` for several measures and strategies, stacked (same seed for each).

    The strategies of one measure share the bootstrap samples and their fits: with the same seed,
    separate calls draw the same ones, so the rows are those of separate calls.

    Parameters
    ----------
    wide : DataFrame
        As :func:`mi_reference_based` (``arm`` and ``<prefix>_<v>`` columns).
    measures : dict, optional
        PARAMCD -> column prefix (default ``{"VAS": "vas", "ODI": "odi"}``).
    visit_month : int
        The visit of the change analysed.
    strategies : sequence of str
        Keys of :data:`STRATEGIES`, in the order of the rows.
    m, seed : int
        Imputations and seed of each analysis.
    level : float
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        ``measure`` (PARAMCD), then the columns of :func:`mi_reference_based` (``strategy`` among them),
        one row per measure and strategy.
    """
    measures = dict(measures or {"VAS": "vas", "ODI": "odi"})
    parts = [
        row.assign(measure=code)
        for code, prefix in measures.items()
        for row in _analyses(wide, prefix, visit_month, tuple(strategies), m, seed, "arm", level)
    ]
    out = pd.concat(parts, ignore_index=True)
    return out[["measure", *[c for c in out.columns if c != "measure"]]]
