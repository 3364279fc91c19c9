"""A mixed model for repeated measures (MMRM) with an unstructured covariance, fitted by REML.

statsmodels' MixedLM cannot fit an unstructured *residual* covariance, and no maintained Python
package does, so this module is the project's one piece of hand-written estimation. It is checked
against published SAS PROC MIXED output (``type=un``, ``ddfm=satterthwaite``) for the FEV data of
the R package openpharma/mmrm, and against R ``nlme::gls(..., correlation = corSymm(form = ~ k |
id), weights = varIdent(form = ~ 1 | visit), method = "REML")`` (tests/test_mmrm.py).

Two layers:

- the general tool: :func:`fit_mmrm` (a formula and a data frame) or :func:`fit_mmrm_design` (a
  response vector and a design matrix), each with a subject and a visit column, the covariance
  unstructured over the visits; then :func:`coefficients`, :func:`contrasts` (any linear
  combination, Satterthwaite df), :func:`ls_means` and :func:`ls_mean_differences`
  (emmeans / SAS ``LSMEANS``-style), each returning a tidy DataFrame;
- the project's analysis (RESULTS_CONTRACT.md): ``change ~ C(visit) * arm + C(visit) * baseline``
  in its cell-means form ``change ~ 0 + C(visit) + C(visit):arm + C(visit):baseline``,
  :func:`fit` / :func:`lsmeans` / :func:`mmrm`, thin wrappers of the general tool.

Model: ``y_i = X_i beta + e_i``, ``e_i ~ N(0, Sigma_i)``, where ``Sigma_i`` is the sub-matrix of
an unstructured ``Sigma`` (visits x visits) for the visits participant ``i`` was observed at
(missing at random).

Estimation:
- ``Sigma = L L'`` with ``L`` lower triangular, log-diagonal (so ``Sigma`` stays positive definite);
- participants are grouped by missingness pattern and padded to all visits (zeros where not
  observed), so a likelihood evaluation is a few array operations whatever the number of
  participants or patterns;
- fixed effects by generalised least squares given ``Sigma``; the REML log-likelihood is
  maximised over the Cholesky parameters by BFGS with the analytic gradient, from a starting
  value taken from OLS residuals, then polished by Newton steps until the gradient is below
  1e-9, so that every processor reaches the same optimum to far more than the 7 significant
  digits results are stored with;
- standard errors are model-based, ``(X' V^-1 X)^-1`` (as nlme and SAS without ``empirical``);
  degrees of freedom for each contrast by Satterthwaite's approximation, with the covariance of
  the variance parameters from the numerical Hessian of the REML log-likelihood (five-point
  differences of the analytic gradient).

Failure to converge raises :class:`MMRMConvergenceError`; :func:`mmrm` can then fall back to a
random-intercept model (statsmodels MixedLM), and says so in ``method``.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps

from . import config

__all__ = [
    "MMRMConvergenceError",
    "MMRMRankError",
    "MMRMFit",
    "fit_mmrm",
    "fit_mmrm_design",
    "coefficients",
    "contrasts",
    "ls_means",
    "ls_mean_differences",
    "analysis_set",
    "fit",
    "lsmeans",
    "modelled_visits",
    "mmrm",
    "random_intercept",
    "METHOD",
    "FALLBACK_METHOD",
    "MIN_PER_ARM_VISIT",
    "t_inference",
]


def t_inference(est: float, se: float, df: float, level: float = config.CI_LEVEL) -> dict:
    """t-based inference for one estimate: ``estimate``, ``se``, ``df``, ``ci_low``, ``ci_high``,
    ``p_value`` (two-sided), as a dict."""
    q = sps.t.ppf(0.5 + level / 2, df)
    return {
        "estimate": est,
        "se": se,
        "df": df,
        "ci_low": est - q * se,
        "ci_high": est + q * se,
        "p_value": float(2 * sps.t.sf(abs(est / se), df)),
    }


class MMRMConvergenceError(RuntimeError):
    """The REML optimisation did not converge (message says how far it got)."""


@dataclass
class MMRMFit:
    """A fitted MMRM.

    Attributes
    ----------
    visits : list
        The visits, in the order of the rows and columns of ``sigma``.
    beta : ndarray
        Fixed effects, in the order of ``names``.
    cov_beta : ndarray
        Model-based covariance of ``beta``, ``(X' V^-1 X)^-1``.
    sigma : ndarray
        Fitted unstructured covariance (visits x visits).
    loglik : float
        REML log-likelihood (as R ``logLik(gls)``; SAS prints ``-2 Res Log Likelihood``).
    converged : bool
    iterations : int
        BFGS iterations before the Newton polish (path-dependent: never print it).
    n_subjects, n_obs : int
        Participants and observations in the model.
    theta : ndarray
        Cholesky parameters at the optimum.
    names : list of str
        Names of the fixed effects (the design matrix's columns).
    formula : str or None
        The formula, for a fit by :func:`fit_mmrm`.
    n_by_arm_visit, n_by_arm, baseline_mean
        Set by :func:`fit` (the project's model) only: participants per arm and visit, per arm,
        and the mean baseline over participants (where :func:`lsmeans` evaluates).
    """

    visits: list
    beta: np.ndarray
    cov_beta: np.ndarray
    sigma: np.ndarray
    loglik: float
    converged: bool
    iterations: int
    n_subjects: int
    n_obs: int
    theta: np.ndarray
    names: list = field(default_factory=list)
    formula: str | None = None
    n_by_arm_visit: dict = field(default_factory=dict)
    baseline_mean: float = float("nan")
    n_by_arm: dict = field(default_factory=dict)
    _data: object = field(repr=False, default=None)
    _terms: object = field(repr=False, default=None)  # (patsy DesignInfo, model rows) of a formula fit

    @property
    def correlation(self) -> pd.DataFrame:
        d = np.sqrt(np.diag(self.sigma))
        return pd.DataFrame(self.sigma / np.outer(d, d), index=self.visits, columns=self.visits)

    @property
    def covariance(self) -> pd.DataFrame:
        return pd.DataFrame(self.sigma, index=self.visits, columns=self.visits)

    def contrast(self, c: np.ndarray, level: float = config.CI_LEVEL, df_method: str = "satterthwaite") -> dict:
        """Estimate, SE, df, CI and p of the linear combination ``c' beta``."""
        c = np.asarray(c, dtype=float)
        est = float(c @ self.beta)
        var = float(c @ self.cov_beta @ c)
        se = np.sqrt(var)
        df = self._satterthwaite(c) if df_method == "satterthwaite" else float(self.n_obs - len(self.beta))
        return t_inference(est, se, df, level)

    def with_covariance(self, sigma) -> MMRMFit:
        """The same model with the covariance held at ``sigma`` (SAS ``PARMS ... / NOITER``).

        Fixed effects, their covariance, the REML log-likelihood and the Satterthwaite df are
        evaluated at ``sigma`` instead of at the REML optimum: to reproduce another program's
        output at its own estimate of the covariance, or for a sensitivity analysis.

        Parameters
        ----------
        sigma : array-like or DataFrame (visits x visits)
            Positive definite, rows and columns in the order of ``visits`` (a DataFrame is
            reordered by its labels).

        Returns
        -------
        MMRMFit
            A new fit (this one is unchanged), with ``converged`` False and ``iterations`` 0:
            nothing was optimised.
        """
        if isinstance(sigma, pd.DataFrame):
            sigma = sigma.loc[self.visits, self.visits]
        sigma = np.asarray(sigma, dtype=float)
        v = len(self.visits)
        if sigma.shape != (v, v) or not np.allclose(sigma, sigma.T):
            raise ValueError(f"sigma must be a symmetric {v} x {v} matrix")
        try:
            L = np.linalg.cholesky(sigma)
        except np.linalg.LinAlgError as exc:
            raise ValueError("sigma must be positive definite") from exc
        L[np.diag_indices(v)] = np.log(np.diag(L))
        theta = L[_tril_index(v)]
        beta, C = _gls(self._data, _sigma(theta, v))[:2]
        return replace(
            self,
            beta=beta,
            cov_beta=C,
            sigma=_sigma(theta, v),
            theta=theta,
            loglik=-_reml_and_grad(theta, self._data)[0],
            converged=False,
            iterations=0,
        )

    def _satterthwaite(self, c: np.ndarray) -> float:
        """Satterthwaite df: 2 (c'Cc)^2 / (g' A g), g = d(c'Cc)/d(theta), A = cov(theta-hat)."""
        grad = np.array([c @ dC @ c for dC in self._dcov_beta()])
        denom = float(grad @ self._cov_theta() @ grad)
        return float(2 * (c @ self.cov_beta @ c) ** 2 / denom) if denom > 0 else np.inf

    def _dcov_beta(self) -> list:
        """Derivatives of cov(beta) with respect to each variance parameter (cached)."""
        if getattr(self, "_dcov_cache", None) is None:
            data = self._data
            cov = lambda t: _gls(data, _sigma(t, data.v))[1]  # noqa: E731
            self._dcov_cache = [_derivative(cov, self.theta, e) for e in np.eye(len(self.theta))]
        return self._dcov_cache

    def _cov_theta(self) -> np.ndarray:
        if getattr(self, "_cov_theta_cache", None) is None:
            data = self._data
            grad = lambda t: _reml_and_grad(t, data)[1]  # noqa: E731  (gradient of -loglik)
            H = np.column_stack([_derivative(grad, self.theta, e) for e in np.eye(len(self.theta))])
            self._cov_theta_cache = np.linalg.pinv((H + H.T) / 2)
        return self._cov_theta_cache


def _derivative(f, x: np.ndarray, direction: np.ndarray, h: float = 1e-3):
    """Five-point central difference of ``f`` at ``x`` along ``direction``.

    Truncation error O(h^4) and rounding error O(eps / h): with h = 1e-3 both are far below the
    7 significant digits results are stored with, where a two-point difference with a small step
    would let the processor's rounding reach the 8th digit of a Satterthwaite df.
    """
    f1, f2 = f(x + h * direction), f(x + 2 * h * direction)
    b1, b2 = f(x - h * direction), f(x - 2 * h * direction)
    return (8 * (f1 - b1) - (f2 - b2)) / (12 * h)


#: Largest number of elements of the per-pattern cross-products ``sum_i X_ia X_ib'`` (n_patterns x v x v
#: x p x p) kept to make a likelihood evaluation independent of the number of participants; above it
#: (many visits and fixed effects) evaluations work on the participants' arrays directly.
MAX_CROSS_PRODUCTS = 8_000_000


@dataclass
class _Data:
    """Participants padded to all visits and grouped by missingness pattern.

    ``y`` (n, v) and ``X`` (n, v, p) hold zeros at the visits a participant was not observed at.
    Participants are ordered by pattern (patterns sorted by their tuple of visit indices), then by
    subject; pattern ``k`` (visits ``mask[k]``) holds rows ``starts[k]:starts[k] + counts[k]``.
    ``XX[k, a, b]`` = sum over the pattern's participants of ``X_ia X_ib'`` and ``Xy[k, a, b]`` of
    ``X_ia y_ib`` (None when larger than :data:`MAX_CROSS_PRODUCTS`).
    """

    v: int  # number of visits
    p: int  # number of fixed effects
    y: np.ndarray
    X: np.ndarray
    mask: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    n_obs: int
    XX: np.ndarray | None = None
    Xy: np.ndarray | None = None

    @property
    def pattern(self) -> np.ndarray:
        """Pattern index of each participant (row)."""
        return np.repeat(np.arange(len(self.counts)), self.counts)

    @property
    def patterns(self) -> list:
        """(visit indices, y (n_k x s), X (n_k x s x p)) per pattern, unpadded."""
        out = []
        for m, a, n in zip(self.mask, self.starts, self.counts):
            idx = np.flatnonzero(m)
            out.append((idx, self.y[a : a + n][:, idx], self.X[a : a + n][:, idx, :]))
        return out


def _build_data(
    y: np.ndarray, X: np.ndarray, subject_code: np.ndarray, visit_index: np.ndarray, v: int, max_cross_products: int | None = None
) -> _Data:
    """Pad observations (one row each) to participants x visits and group them by pattern.

    ``subject_code`` are integers 0..n-1 in the subjects' sorted order, so that the arrays (and the
    floating-point sums over them) do not depend on the order of the input rows.
    """
    n_sub = int(subject_code.max()) + 1
    p = X.shape[1]
    flat = subject_code.astype(np.int64) * v + visit_index.astype(np.int64)
    if np.unique(flat).size < flat.size:
        raise ValueError("a subject has more than one observation at the same visit")
    observed = np.zeros(n_sub * v, dtype=bool)
    observed[flat] = True
    observed = observed.reshape(n_sub, v)
    Y = np.zeros(n_sub * v)
    Y[flat] = y
    Xp = np.zeros((n_sub * v, p))
    Xp[flat] = X
    uniq, inverse = np.unique(observed, axis=0, return_inverse=True)
    keys = [tuple(np.flatnonzero(row)) for row in uniq]
    rank = np.empty(len(keys), dtype=np.int64)
    rank[sorted(range(len(keys)), key=lambda k: keys[k])] = np.arange(len(keys))
    pattern = rank[inverse.reshape(-1)]
    order = np.lexsort((np.arange(n_sub), pattern))
    counts = np.bincount(pattern, minlength=len(keys))
    mask = np.zeros((len(keys), v), dtype=bool)
    mask[rank] = uniq
    data = _Data(
        v=v,
        p=p,
        y=Y.reshape(n_sub, v)[order],
        X=Xp.reshape(n_sub, v, p)[order],
        mask=mask,
        starts=np.concatenate([[0], np.cumsum(counts)[:-1]]),
        counts=counts,
        n_obs=int(flat.size),
    )
    limit = MAX_CROSS_PRODUCTS if max_cross_products is None else max_cross_products
    if len(keys) * v * v * p * p <= limit:
        XX = np.empty((len(keys), v, v, p, p))
        Xy = np.empty((len(keys), v, v, p))
        for k, (start, n) in enumerate(zip(data.starts, counts)):
            Xk, yk = data.X[start : start + n], data.y[start : start + n]
            XX[k] = np.tensordot(Xk, Xk, axes=([0], [0])).transpose(0, 2, 1, 3)  # (a, b, p, q)
            Xy[k] = np.tensordot(Xk, yk, axes=([0], [0])).transpose(0, 2, 1)  # (a, b, p)
        data.XX, data.Xy = XX, Xy
    return data


def _tril_index(v):
    return np.tril_indices(v)


def _sigma(theta: np.ndarray, v: int) -> np.ndarray:
    L = np.zeros((v, v))
    L[_tril_index(v)] = theta
    L[np.diag_indices(v)] = np.exp(np.diag(L))
    return L @ L.T


def _pattern_matrices(data: _Data, sigma: np.ndarray):
    """Per pattern: Sigma of the observed visits padded with the identity, and its inverse padded
    with zeros (n_patterns x v x v each)."""
    m = data.mask.astype(float)
    outer = m[:, :, None] * m[:, None, :]
    padded = sigma[None, :, :] * outer + np.eye(data.v)[None, :, :] * (1.0 - m)[:, None, :]
    return padded, np.linalg.inv(padded) * outer


def _gls(data: _Data, sigma: np.ndarray):
    """GLS fixed effects given Sigma.

    Returns
    -------
    tuple
        (beta, cov_beta, inverse Sigma per pattern (padded with zeros), X' V^-1 X, Sigma per
        pattern (padded with the identity)).
    """
    padded, W = _pattern_matrices(data, sigma)
    p = data.p
    if data.XX is not None:  # from the per-pattern cross-products: cost independent of n
        Wf = W.reshape(-1)
        XtWX = (Wf @ data.XX.reshape(Wf.size, p * p)).reshape(p, p)
        XtWy = Wf @ data.Xy.reshape(Wf.size, p)
    else:
        WX = np.matmul(W[data.pattern], data.X)  # (n, v, p)
        Xf, WXf = data.X.reshape(-1, p), WX.reshape(-1, p)
        XtWX = Xf.T @ WXf
        XtWy = WXf.T @ data.y.reshape(-1)
    C = np.linalg.inv(XtWX)
    return C @ XtWy, C, W, XtWX, padded


def _reml_and_grad(theta: np.ndarray, data: _Data):
    """-REML log-likelihood and its gradient with respect to the Cholesky parameters."""
    v, p = data.v, data.p
    sigma = _sigma(theta, v)
    try:
        beta, C, W, XtWX, padded = _gls(data, sigma)
    except np.linalg.LinAlgError:
        return np.inf, np.zeros_like(theta)
    _, logdet = np.linalg.slogdet(padded)  # log det of each pattern's Sigma (identity padding adds 0)
    R = data.y - data.X @ beta  # (n, v), zeros where not observed
    RR = np.add.reduceat(R[:, :, None] * R[:, None, :], data.starts, axis=0)  # sum_i r_i r_i' per pattern
    if data.XX is not None:  # sum_i X_i C X_i' per pattern
        M = (data.XX.reshape(-1, p * p) @ C.reshape(-1)).reshape(-1, v, v)
    else:
        M = np.add.reduceat(np.matmul(data.X @ C, data.X.transpose(0, 2, 1)), data.starts, axis=0)
    nll = 0.5 * (data.n_obs - p) * np.log(2 * np.pi)
    nll += 0.5 * (float(data.counts @ logdet) + float(np.sum(W * RR)))
    # d(-loglik)/d(Sigma), as a full symmetric matrix derivative
    G = 0.5 * np.sum(data.counts[:, None, None] * W - W @ (RR + M) @ W, axis=0)
    sign, logdet_xtwx = np.linalg.slogdet(XtWX)
    nll += 0.5 * logdet_xtwx
    # chain rule: Sigma = L L' -> d/dL = 2 G L (G symmetric); log-diagonal -> times L_jj
    L = np.zeros((v, v))
    L[_tril_index(v)] = theta
    L[np.diag_indices(v)] = np.exp(np.diag(L))
    dL = 2 * G @ L
    dL[np.diag_indices(v)] *= np.diag(L)
    return float(nll), dL[_tril_index(v)]


def _start(data: _Data) -> np.ndarray:
    """Cholesky parameters of a starting Sigma from OLS residuals (pairwise covariances)."""
    v = data.v
    obs = np.zeros(data.y.shape, dtype=bool)
    for m, a, n in zip(data.mask, data.starts, data.counts):
        obs[a : a + n] = m
    Xf = data.X.reshape(-1, data.p)  # rows of unobserved visits are zero: they add nothing
    beta = np.linalg.solve(Xf.T @ Xf, Xf.T @ data.y.reshape(-1))
    R = (data.y - data.X @ beta) * obs
    N = obs.astype(float).T @ obs.astype(float)
    S = (R.T @ R) / np.maximum(N, 1)
    d = np.sqrt(np.clip(np.diag(S), 1e-6, None))
    corr = np.clip(S / np.outer(d, d), -0.95, 0.95)
    np.fill_diagonal(corr, 1.0)
    w, U = np.linalg.eigh(corr)
    corr = U @ np.diag(np.clip(w, 0.05, None)) @ U.T
    Sig = corr * np.outer(d, d)
    L = np.linalg.cholesky(Sig)
    L[np.diag_indices(v)] = np.log(np.diag(L))
    return L[_tril_index(v)]


class MMRMRankError(ValueError):
    """The design matrix is not of full column rank (a fixed effect is not estimable)."""


POLISHED_GTOL = 1e-4  # largest REML gradient component accepted after the Newton polish (it reaches ~1e-12 here)


def _optimise(data: _Data, max_iter: int, gtol: float):
    """REML fit of the Cholesky parameters: BFGS, then the Newton polish.

    Returns
    -------
    tuple
        (theta, -REML log-likelihood, BFGS iterations).
    """
    theta0 = _start(data)
    res = optimize.minimize(
        _reml_and_grad, theta0, args=(data,), jac=True, method="BFGS", options={"maxiter": max_iter, "gtol": gtol}
    )
    grad_norm = float(np.max(np.abs(res.jac))) if res.jac is not None and len(res.jac) else np.inf
    # BFGS may stop on "precision loss" at the optimum: judge convergence by the gradient itself
    if not np.isfinite(res.fun) or grad_norm > 1e-3:
        raise MMRMConvergenceError(f"REML did not converge (|gradient| = {grad_norm:.2g}; {res.message})")
    theta, nll, gmax = _newton_polish(res.x, data)
    if gmax > POLISHED_GTOL:  # the polish stalled: the optimum would depend on BFGS's path (and the machine)
        raise MMRMConvergenceError(f"REML did not converge (|gradient| = {gmax:.2g} after the Newton polish)")
    if np.linalg.cond(_sigma(theta, data.v)) > 1e12:
        raise MMRMConvergenceError("fitted covariance is singular (condition number > 1e12)")
    return theta, nll, int(res.nit)


def _visit_levels(values, visits) -> list:
    """The visits modelled: ``visits`` as given, or the distinct values sorted."""
    if visits is None:
        try:
            return sorted(pd.unique(pd.Series(values)))
        except TypeError as exc:
            raise ValueError("visit values cannot be sorted: pass visits=[...] in order") from exc
    levels = list(visits)
    if not levels or len(set(levels)) < len(levels):
        raise ValueError("visits must be a non-empty list of distinct values")
    return levels


def _fit_arrays(y, X, subject, visit, visits: list, names: list, max_iter: int, gtol: float) -> MMRMFit:
    """Check the arrays, fit, and return the :class:`MMRMFit` (the core of every entry point)."""
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    subject, visit = np.asarray(subject), np.asarray(visit)
    if y.ndim != 1 or X.ndim != 2 or not (len(y) == len(X) == len(subject) == len(visit)):
        raise ValueError("y (n), X (n x p), subject (n) and visit (n) must have the same number of rows")
    if len(names) != X.shape[1]:
        raise ValueError(f"{X.shape[1]} design columns but {len(names)} names")
    if not (np.isfinite(y).all() and np.isfinite(X).all()):
        raise ValueError("y and X must be finite (drop the rows with missing values first)")
    if pd.isna(subject).any() or pd.isna(visit).any():
        raise ValueError("subject and visit must not be missing")
    visit_index = pd.Index(visits).get_indexer(visit)
    if (visit_index < 0).any():
        raise ValueError(f"visit values not in visits: {sorted(set(visit[visit_index < 0].tolist()), key=str)}")
    n_at = np.bincount(visit_index, minlength=len(visits))
    if (n_at == 0).any():
        raise ValueError(f"no observation at visit {visits[int(np.argmin(n_at))]!r}")
    p = X.shape[1]
    # rank as numpy's matrix_rank(X), from the R of X's QR decomposition (the same singular values)
    sv = np.linalg.svd(np.linalg.qr(X, mode="r"), compute_uv=False) if len(X) else np.zeros(1)
    rank = int(np.sum(sv > sv.max() * max(X.shape) * np.finfo(float).eps)) if sv.max() > 0 else 0
    if rank < p:
        raise MMRMRankError(
            f"the design matrix has rank {rank} < {p} columns: a fixed effect is not "
            "estimable (a level never observed, or a covariate collinear with others)"
        )
    if len(y) <= p:
        raise ValueError(f"{len(y)} observations for {p} fixed effects: REML needs more")
    try:
        codes, uniques = pd.factorize(subject, sort=True)
    except TypeError:  # mixed types: order by their text
        codes, uniques = pd.factorize(pd.Series(subject).astype(str).to_numpy(), sort=True)
    data = _build_data(y, X, codes, visit_index, len(visits))
    theta, nll, nit = _optimise(data, max_iter, gtol)
    sigma = _sigma(theta, data.v)
    beta, C = _gls(data, sigma)[:2]
    return MMRMFit(
        visits=list(visits),
        beta=beta,
        cov_beta=C,
        sigma=sigma,
        loglik=-float(nll),
        converged=True,
        iterations=nit,
        n_subjects=int(len(uniques)),
        n_obs=int(len(y)),
        theta=theta,
        names=list(names),
        _data=data,
    )


def fit_mmrm(
    formula: str, data: pd.DataFrame, subject: str, visit: str, visits=None, max_iter: int = 500, gtol: float = 1e-6
) -> MMRMFit:
    """Fit an MMRM with an unstructured covariance over visits, from a formula, by REML.

    Parameters
    ----------
    formula : str
        A patsy formula, e.g. ``"change ~ C(visit_month) * arm + C(visit_month) * baseline + C(site)"``
        (treatment coding; ``C(x, Treatment("ref"))`` chooses the reference level). Names in the
        formula are looked up in ``data``, then in the caller's namespace (``np`` is available).
    data : DataFrame
        One row per observation. Rows with a missing value in a variable of the formula are
        dropped (as SAS and R do); ``data`` is not modified.
    subject : str
        Column identifying the participant (the unit whose residuals are correlated).
    visit : str
        Column identifying the visit: the covariance is unstructured over its values.
    visits : list, optional
        The visits modelled, in the order of the covariance matrix; rows at other visits are
        dropped. Default: the visits observed, sorted.
    max_iter, gtol : int, float
        BFGS settings (the optimum is then polished to |gradient| < 1e-9 by Newton steps).

    Returns
    -------
    MMRMFit
        ``beta`` in the order of ``names`` (the design matrix's column names); use
        :func:`coefficients`, :func:`contrasts`, :func:`ls_means`, :func:`ls_mean_differences`.

    Raises
    ------
    ValueError
        On a bad argument, a formula patsy cannot evaluate, a subject observed twice at one visit,
        a visit without observations, or a rank-deficient design (:class:`MMRMRankError`).
    MMRMConvergenceError
        When REML does not converge.
    """
    import patsy

    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError("formula must be a string 'response ~ terms'")
    if not isinstance(data, pd.DataFrame):
        raise ValueError("data must be a pandas DataFrame")
    for col in (subject, visit):
        if col not in data.columns:
            raise ValueError(f"column {col!r} not in data")
    d = data.reset_index(drop=True)  # a new frame: the caller's is never modified
    if d[subject].isna().any() or d[visit].isna().any():
        raise ValueError("subject and visit must not be missing")
    if visits is not None:
        visits = _visit_levels(None, visits)
        d = d[d[visit].isin(visits)]
    env = patsy.EvalEnvironment.capture(1).with_outer_namespace({"np": np})
    try:
        yd, Xd = patsy.dmatrices(formula, d, eval_env=env, NA_action="drop", return_type="dataframe")
    except patsy.PatsyError as exc:
        raise ValueError(f"formula {formula!r}: {exc}") from exc
    if yd.shape[1] != 1:
        raise ValueError("the response must be one numeric column")
    rows = d.loc[Xd.index]
    visits = _visit_levels(rows[visit], visits)
    f = _fit_arrays(
        yd.iloc[:, 0].to_numpy(dtype=float),
        Xd.to_numpy(dtype=float),
        rows[subject].to_numpy(),
        rows[visit].to_numpy(),
        visits,
        list(Xd.columns),
        max_iter,
        gtol,
    )
    f.formula = formula
    used = sorted(set(_variables(Xd.design_info, rows.columns)) | {subject, visit}, key=list(rows.columns).index)
    f._terms = (Xd.design_info, rows[used].reset_index(drop=True), subject)
    return f


def fit_mmrm_design(y, X, subject, visit, visits=None, names=None, max_iter: int = 500, gtol: float = 1e-6) -> MMRMFit:
    """Fit an MMRM with an unstructured covariance over visits, from a design matrix, by REML.

    Parameters
    ----------
    y : array-like, shape (n,)
        The response, one value per observation (no missing values).
    X : array-like or DataFrame, shape (n, p)
        The fixed-effects design matrix, of full column rank (include the intercept yourself).
    subject, visit : array-like, shape (n,)
        Participant and visit of each observation (at most one observation per participant
        and visit).
    visits : list, optional
        The order of the visits in the covariance matrix (default: the values sorted); every
        value of ``visit`` must be in it.
    names : list of str, optional
        Names of the columns of ``X`` (default: the DataFrame's columns, else ``x0``, ``x1``, ...).
    max_iter, gtol : int, float
        BFGS settings (then a Newton polish to |gradient| < 1e-9).

    Returns
    -------
    MMRMFit
        For estimates use :func:`coefficients` and :func:`contrasts` (LS means need the factor
        structure of a formula: :func:`fit_mmrm`).

    Raises
    ------
    ValueError
        On mismatched lengths, missing values, a subject observed twice at one visit, a visit
        without observations, or a rank-deficient ``X`` (:class:`MMRMRankError`).
    MMRMConvergenceError
        When REML does not converge.
    """
    if names is None:
        names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else [f"x{j}" for j in range(np.shape(X)[1])]
    visit = np.asarray(visit)
    return _fit_arrays(y, X, subject, visit, _visit_levels(visit, visits), list(names), max_iter, gtol)


def _table(fit: MMRMFit, L: np.ndarray, level: float) -> pd.DataFrame:
    """Estimate, se, df, t_value, ci_low, ci_high, p_value for each row of ``L``."""
    rows = []
    for c in L:
        r = fit.contrast(c, level)
        rows.append(
            {
                "estimate": r["estimate"],
                "se": r["se"],
                "df": r["df"],
                "t_value": r["estimate"] / r["se"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "p_value": r["p_value"],
            }
        )
    return pd.DataFrame(rows, columns=["estimate", "se", "df", "t_value", "ci_low", "ci_high", "p_value"])


def coefficients(fit: MMRMFit, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """The fixed effects with model-based SEs and Satterthwaite df (SAS "Solution for Fixed Effects").

    Parameters
    ----------
    fit : MMRMFit
    level : float
        Confidence level of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per fixed effect: ``term``, ``estimate``, ``se``, ``df`` (Satterthwaite),
        ``t_value``, ``ci_low``, ``ci_high``, ``p_value`` (two-sided, t on ``df``).
    """
    out = _table(fit, np.eye(len(fit.beta)), level)
    out.insert(0, "term", fit.names)
    return out


def contrasts(fit: MMRMFit, L, labels=None, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """Linear combinations ``L beta`` with model-based SEs and Satterthwaite df.

    Parameters
    ----------
    fit : MMRMFit
    L : array-like (p,) or (k, p), or DataFrame
        One contrast per row, in the order of ``fit.names``; a DataFrame's columns are matched to
        ``fit.names`` by name (absent names count as 0) and its index gives the labels.
    labels : list of str, optional
        One label per contrast (default: the DataFrame's index, else ``c1``, ``c2``, ...).
    level : float
        Confidence level of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per contrast: ``contrast`` (the label), ``estimate``, ``se``, ``df``
        (Satterthwaite), ``t_value``, ``ci_low``, ``ci_high``, ``p_value``.
    """
    if isinstance(L, pd.DataFrame):
        unknown = [c for c in L.columns if c not in fit.names]
        if unknown:
            raise ValueError(f"contrast columns not among the fixed effects: {unknown}")
        labels = list(L.index) if labels is None else labels
        L = L.reindex(columns=fit.names, fill_value=0.0).to_numpy(dtype=float)
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.ndim != 2 or L.shape[1] != len(fit.beta):
        raise ValueError(f"each contrast needs {len(fit.beta)} coefficients")
    labels = [f"c{i + 1}" for i in range(len(L))] if labels is None else list(labels)
    if len(labels) != len(L):
        raise ValueError("one label per contrast")
    out = _table(fit, L, level)
    out.insert(0, "contrast", labels)
    return out


def _code_variables(code: str) -> list:
    """Names a patsy factor's code refers to (``C(visit, Treatment(3))`` -> visit, C, Treatment; ``Q("a b")``)."""
    names = []
    for node in ast.walk(ast.parse(code, mode="eval")):
        if isinstance(node, ast.Name):
            names.append(node.id)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "Q"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.append(node.args[0].value)
    return names


def _variables(design_info, columns) -> dict:
    """Data columns a formula uses: name -> categories (tuple) for a categorical factor, None for numeric."""
    out = {}
    for factor, info in design_info.factor_infos.items():
        used = [n for n in _code_variables(factor.code) if n in columns]
        if info.type == "categorical":
            if len(used) != 1:
                raise ValueError(f"LS means need each categorical factor to be one column, not {factor.code!r}")
            levels = tuple(info.categories)
            if used[0] in out and out[used[0]] != levels:
                raise ValueError(f"{used[0]!r} enters the model both as a factor and otherwise")
            out[used[0]] = levels
        else:
            for name in used:
                if out.get(name) is not None:
                    raise ValueError(f"{name!r} enters the model both as a factor and as a number")
                out[name] = None
    return out


def _key(combo: tuple):
    """A groupby index key: the tuple for several columns, the value for one."""
    return combo if len(combo) > 1 else combo[0]


def _ls_mean_matrix(fit: MMRMFit, keys: list, weights: str, covariates: str, at) -> tuple:
    """Rows of L (one per combination of ``keys``' levels) and the grid of those combinations."""
    if fit._terms is None:
        raise ValueError("LS means need a model fitted from a formula (fit_mmrm); use contrasts() otherwise")
    if weights not in ("equal", "proportional"):
        raise ValueError("weights must be 'equal' or 'proportional'")
    if covariates not in ("observations", "subjects"):
        raise ValueError("covariates must be 'observations' or 'subjects'")
    import patsy

    design_info, frame, subject = fit._terms
    variables = _variables(design_info, frame.columns)
    factors = {k: v for k, v in variables.items() if v is not None}
    at = dict(at or {})
    for k in keys:
        if k not in factors:
            raise ValueError(f"{k!r} is not a categorical variable of the model (those are {sorted(factors)})")
    for k, value in at.items():
        if k not in variables or k in keys:
            raise ValueError(f"at: {k!r} is not a variable of the model other than the LS-means factors")
        if k in factors and value not in factors[k]:
            raise ValueError(f"at: {value!r} is not a level of {k!r}")
    values = {}
    for name, levels in variables.items():
        if name in at:
            values[name] = [at[name]]
        elif levels is not None:
            values[name] = list(levels)
        elif covariates == "observations":
            values[name] = [float(frame[name].mean())]
        else:
            values[name] = [float(frame.groupby(subject, sort=True)[name].mean().mean())]
    averaged = [name for name in variables if name not in keys]
    key_grid = list(itertools.product(*(values[k] for k in keys)))
    avg_grid = list(itertools.product(*(values[a] for a in averaged)))
    if weights == "equal":
        w = np.full(len(avg_grid), 1.0 / len(avg_grid))
    else:
        avg_factors = [a for a in averaged if a in factors and a not in at]
        pos = [averaged.index(a) for a in avg_factors]
        freq = frame.groupby(avg_factors, sort=False).size() if avg_factors else None
        w = np.array([1.0 if freq is None else float(freq.get(_key(tuple(combo[i] for i in pos)), 0)) for combo in avg_grid])
        w = w / w.sum()
    grid = pd.DataFrame([dict(zip(keys + averaged, kc + ac)) for kc in key_grid for ac in avg_grid], columns=keys + averaged)
    D = np.asarray(patsy.build_design_matrices([design_info], grid, NA_action="raise")[0])
    L = np.einsum("kap,a->kp", D.reshape(len(key_grid), len(avg_grid), -1), w)
    cells = pd.DataFrame(key_grid, columns=keys)
    n_obs = frame.groupby(keys, sort=False).size()
    cells["n_obs"] = [int(n_obs.get(_key(kc), 0)) for kc in key_grid]
    return L, cells


def _as_list(x) -> list:
    return [] if x is None else [x] if isinstance(x, str) else list(x)


def ls_means(
    fit: MMRMFit,
    specs,
    by=None,
    weights: str = "equal",
    covariates: str = "observations",
    at: dict | None = None,
    level: float = config.CI_LEVEL,
) -> pd.DataFrame:
    """Least-squares means (estimated marginal means), as SAS ``LSMEANS`` and R ``emmeans``.

    Each LS mean is the model's prediction on a reference grid: numeric covariates at their mean
    (over the observations in the model, as SAS and emmeans; or over participants), the
    categorical variables not in ``specs``/``by`` averaged over their levels with equal weights
    (SAS and emmeans default) or with the observed proportions of their combinations among the
    observations in the model (emmeans ``weights = "proportional"``).

    Parameters
    ----------
    fit : MMRMFit
        From :func:`fit_mmrm` (a formula).
    specs : str or list of str
        Categorical variable(s) (data columns) whose levels get an LS mean each, e.g. ``"arm"``.
    by : str or list of str, optional
        Categorical variable(s) to condition on, e.g. the visit column.
    weights : {"equal", "proportional"}
        How the other categorical variables are averaged.
    covariates : {"observations", "subjects"}
        Numeric covariates at their mean over observations, or over participants (the mean of
        each participant's mean: for a baseline value, the mean baseline of the participants).
    at : dict, optional
        Fixed values of other variables (a number for a covariate, a level for a factor).
    level : float
        Confidence level of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per combination of levels (``by`` slowest, then ``specs``, in the model's level
        order): the ``by`` and ``specs`` columns, ``estimate``, ``se``, ``df`` (Satterthwaite),
        ``t_value``, ``ci_low``, ``ci_high``, ``p_value`` (against 0) and ``n_obs`` (observations
        in the model at that combination).
    """
    keys = _as_list(by) + _as_list(specs)
    if not _as_list(specs):
        raise ValueError("specs: name at least one categorical variable")
    L, cells = _ls_mean_matrix(fit, keys, weights, covariates, at)
    return pd.concat([cells[keys], _table(fit, L, level), cells[["n_obs"]]], axis=1)


def ls_mean_differences(
    fit: MMRMFit,
    specs: str,
    by=None,
    reference=None,
    weights: str = "equal",
    covariates: str = "observations",
    at: dict | None = None,
    level: float = config.CI_LEVEL,
) -> pd.DataFrame:
    """Differences of LS means between each level of ``specs`` and a reference level, within ``by``.

    For an arm contrast per visit: ``ls_mean_differences(fit, "arm", by="visit", reference="Sham")``
    (SAS ``LSMEANS arm*visit / diff slice=visit`` restricted to the same visit).

    Parameters
    ----------
    fit : MMRMFit
        From :func:`fit_mmrm`.
    specs : str
        The categorical variable compared (e.g. the arm).
    by : str or list of str, optional
        Variables within whose levels the comparison is made (e.g. the visit).
    reference : optional
        The level subtracted (default: the first level in the model's order).
    weights, covariates, at, level
        As in :func:`ls_means` (they cancel in the difference unless a covariate interacts).

    Returns
    -------
    pandas.DataFrame
        One row per ``by`` combination and non-reference level: the ``by`` columns,
        ``contrast`` (``"<level> - <reference>"``), ``level``, ``reference``, ``estimate``,
        ``se``, ``df`` (Satterthwaite), ``t_value``, ``ci_low``, ``ci_high``, ``p_value``.
    """
    if not isinstance(specs, str):
        raise ValueError("specs: one categorical variable")
    by = _as_list(by)
    L, cells = _ls_mean_matrix(fit, by + [specs], weights, covariates, at)
    levels = list(dict.fromkeys(cells[specs]))
    reference = levels[0] if reference is None else reference
    if reference not in levels:
        raise ValueError(f"reference {reference!r} is not a level of {specs!r} ({levels})")
    rows, Ld = [], []
    n_levels = len(levels)
    for start in range(0, len(cells), n_levels):  # cells: by slowest, specs fastest
        block = cells.iloc[start : start + n_levels]
        ref = L[start + levels.index(reference)]
        for i, lev in enumerate(levels):
            if lev == reference:
                continue
            rows.append(
                {**{b: block[b].iloc[0] for b in by}, "contrast": f"{lev} - {reference}", "level": lev, "reference": reference}
            )
            Ld.append(L[start + i] - ref)
    head = pd.DataFrame(rows, columns=by + ["contrast", "level", "reference"])
    return pd.concat([head, _table(fit, np.array(Ld).reshape(-1, len(fit.beta)), level)], axis=1)


def analysis_set(adeff: pd.DataFrame, measure: str, visits=config.POST_BASELINE_VISITS) -> pd.DataFrame:
    """Long data for one measure: participants with a baseline and >= 1 post-baseline value.

    Parameters
    ----------
    adeff : DataFrame
        The efficacy dataset (:func:`respine_nb.derive.adeff`: USUBJID, ARM, PARAMCD, AVISITN, BASE, CHG).
    measure : str
        PARAMCD of the measure (``VAS``, ``ODI``, ``PCS``, ``MCS``).
    visits : sequence of int
        The post-baseline visits kept.

    Returns
    -------
    pandas.DataFrame
        Columns ``subject_id``, ``arm``, ``visit_month``, ``baseline``, ``change`` (floats; the
        model's own names), one row per observed post-baseline value, sorted by subject_id and visit.
    """
    d = adeff[(adeff["PARAMCD"] == measure) & adeff["AVISITN"].isin(list(visits))]
    d = d[d["BASE"].notna() & d["CHG"].notna()]
    out = pd.DataFrame(
        {
            "subject_id": d["USUBJID"].astype(str).to_numpy(),
            "arm": d["ARM"].astype(str).to_numpy(),
            "visit_month": d["AVISITN"].astype(int).to_numpy(),
            "baseline": d["BASE"].astype(float).to_numpy(),
            "change": d["CHG"].astype(float).to_numpy(),
        }
    )
    return out.sort_values(["subject_id", "visit_month"], kind="mergesort").reset_index(drop=True)


def fit(df: pd.DataFrame, visits=None, max_iter: int = 500, gtol: float = 1e-6) -> MMRMFit:
    """Fit the project's MMRM (``change ~ C(visit) * arm + C(visit) * baseline``) by REML.

    A thin wrapper of :func:`fit_mmrm_design` with the cell-means design
    ``change ~ 0 + C(visit) + C(visit):arm + C(visit):baseline`` (the same model).

    Parameters
    ----------
    df : DataFrame
        ``subject_id``, ``arm``, ``visit_month``, ``baseline``, ``change`` (see :func:`analysis_set`).
    visits : list of int, optional
        The visits modelled (default: those present, sorted).

    Returns
    -------
    MMRMFit
        ``beta`` ordered: visit intercepts, arm (BM-MSC) x visit, baseline x visit.

    Raises
    ------
    ValueError
        Without both arms at every visit.
    MMRMConvergenceError
        When BFGS ends with a gradient above 1e-3, or the fitted covariance is singular.
    """
    visits = sorted(int(v) for v in (visits or df["visit_month"].unique()))
    df = df[df["visit_month"].isin(visits)]
    arms = set(df["arm"])
    if arms != set(config.ARMS):
        raise ValueError(f"MMRM needs both arms, got {sorted(arms)}")
    counts = df.groupby(["arm", "visit_month"]).size()
    if len(counts) < 2 * len(visits):
        raise ValueError("MMRM needs observations in both arms at every visit")
    month = df["visit_month"].astype(int).to_numpy()
    at_visit = (month[:, None] == np.array(visits)[None, :]).astype(float)
    treated = (df["arm"] == config.ARMS[0]).to_numpy(dtype=float)[:, None]
    X = np.hstack([at_visit, at_visit * treated, at_visit * df["baseline"].to_numpy(dtype=float)[:, None]])
    names = (
        [f"C(visit)[{m}]" for m in visits]
        + [f"C(visit)[{m}]:arm[{config.ARMS[0]}]" for m in visits]
        + [f"C(visit)[{m}]:baseline" for m in visits]
    )
    fitted = _fit_arrays(df["change"].to_numpy(dtype=float), X, df["subject_id"].to_numpy(), month, visits, names, max_iter, gtol)
    subj = df.drop_duplicates("subject_id")
    fitted.n_by_arm_visit = {(a, int(v)): int(n) for (a, v), n in counts.items()}
    fitted.baseline_mean = float(subj["baseline"].mean())
    fitted.n_by_arm = {a: int(n) for a, n in subj.groupby("arm").size().items()}
    return fitted


def _hessian(theta: np.ndarray, data: _Data, h: float = 1e-5) -> np.ndarray:
    """Symmetrised central-difference Hessian of -REML from the analytic gradient."""
    k = len(theta)
    H = np.zeros((k, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = h
        H[:, j] = (_reml_and_grad(theta + e, data)[1] - _reml_and_grad(theta - e, data)[1]) / (2 * h)
    return (H + H.T) / 2


def _newton_polish(theta: np.ndarray, data: _Data, tol: float = 1e-9, max_steps: int = 10):
    """Newton steps from BFGS's optimum until the gradient is below ``tol``.

    BFGS stops where its path happens to reach ``gtol``, and that path depends on the last bits
    of the processor's arithmetic; a few Newton steps take every machine to the same optimum,
    far below the 7 significant digits results are stored with (RESULTS_CONTRACT.md, Precision).
    The Hessian is computed once, at BFGS's optimum (near the optimum that is enough).

    Returns
    -------
    tuple
        (theta, -REML log-likelihood at theta, largest absolute gradient component at theta).
    """
    nll, grad = _reml_and_grad(theta, data)
    hess = _hessian(theta, data)
    for _ in range(max_steps):
        if np.max(np.abs(grad)) < tol:
            break
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        cand = theta - step
        c_nll, c_grad = _reml_and_grad(cand, data)
        if not np.isfinite(c_nll) or c_nll > nll + 1e-9 * abs(nll):
            break
        theta, nll, grad = cand, c_nll, c_grad
    return theta, nll, float(np.max(np.abs(grad))) if len(grad) else 0.0


def lsmeans(f: MMRMFit, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """LS-mean change per arm and visit (at the participants' mean baseline) and the arm difference.

    Returns
    -------
    pandas.DataFrame
        Columns ``term`` (``lsmean`` or ``difference``), ``group`` (arm, or the contrast),
        ``visit_month``, ``estimate``, ``se``, ``df`` (Satterthwaite), ``ci_low``, ``ci_high``,
        ``p_value``, ``n`` (participants in the model: of the arm for an LS mean, of both arms for
        the difference; the same at every visit, RESULTS_CONTRACT.md) and ``n_visit`` (participants
        observed at that visit).
    """
    v = len(f.visits)
    n_arm = {arm: f.n_by_arm.get(arm, 0) for arm in config.ARMS}
    rows = []
    for j, visit in enumerate(f.visits):
        for arm in config.ARMS:
            c = np.zeros(3 * v)
            c[j], c[v + j], c[2 * v + j] = 1.0, float(arm == config.ARMS[0]), f.baseline_mean
            r = f.contrast(c, level)
            rows.append(
                {
                    "term": "lsmean",
                    "group": arm,
                    "visit_month": visit,
                    **r,
                    "n": n_arm[arm],
                    "n_visit": f.n_by_arm_visit.get((arm, visit), 0),
                }
            )
        c = np.zeros(3 * v)
        c[v + j] = 1.0
        r = f.contrast(c, level)
        rows.append(
            {
                "term": "difference",
                "group": config.CONTRAST,
                "visit_month": visit,
                **r,
                "n": f.n_subjects,
                "n_visit": sum(f.n_by_arm_visit.get((a, visit), 0) for a in config.ARMS),
            }
        )
    return pd.DataFrame(rows)


METHOD = "MMRM, unstructured covariance, REML; Satterthwaite df"
FALLBACK_METHOD = (
    "random-intercept linear mixed model (statsmodels MixedLM, REML), fallback: "
    "the unstructured MMRM did not converge; residual df"
)


MIN_PER_ARM_VISIT = 2  # a visit enters the model when each arm has at least this many values there


def modelled_visits(
    data: pd.DataFrame, visits=config.POST_BASELINE_VISITS, visit: str = "visit_month", arm: str = "arm"
) -> tuple[list, dict]:
    """Which visits an MMRM can estimate on ``data`` (:func:`analysis_set`), and why not the others.

    A visit is modelled when each arm has at least :data:`MIN_PER_ARM_VISIT` participants observed
    there (an arm effect and a variance need them). ``visit`` and ``arm`` name the columns (e.g.
    ``AVISITN`` and ``ARM`` in an ADaM dataset).

    Returns
    -------
    tuple
        (sorted list of the modelled visits, dict visit -> reason for each visit left out).
    """
    counts = data.groupby([visit, arm]).size()
    kept, reasons = [], {}
    for visit in sorted(int(v) for v in visits):
        short = [arm for arm in config.ARMS if int(counts.get((visit, arm), 0)) < MIN_PER_ARM_VISIT]
        if not short:
            kept.append(visit)
        elif all(int(counts.get((visit, arm), 0)) == 0 for arm in config.ARMS):
            reasons[visit] = f"no participant observed at month {visit}"
        else:
            reasons[visit] = f"fewer than {MIN_PER_ARM_VISIT} participants observed at month {visit} in " + " and ".join(short)
    return kept, reasons


def _empty_rows(visits, reasons: dict, n_arm: dict) -> pd.DataFrame:
    rows = []
    for visit in visits:
        for arm in config.ARMS:
            rows.append(
                {
                    "term": "lsmean",
                    "group": arm,
                    "visit_month": visit,
                    "n": n_arm.get(arm, 0),
                    "n_visit": 0,
                    "method": f"{METHOD}; not estimable: {reasons[visit]}",
                }
            )
        rows.append(
            {
                "term": "difference",
                "group": config.CONTRAST,
                "visit_month": visit,
                "n": sum(n_arm.values()),
                "n_visit": 0,
                "method": f"{METHOD}; not estimable: {reasons[visit]}",
            }
        )
    cols = ["term", "group", "visit_month", "estimate", "se", "df", "ci_low", "ci_high", "p_value", "n", "n_visit", "method"]
    return pd.DataFrame(rows, columns=cols)


def mmrm(
    adeff: pd.DataFrame,
    measure: str,
    fallback: bool = True,
    level: float = config.CI_LEVEL,
    return_fit: bool = False,
    visits=config.POST_BASELINE_VISITS,
):
    """MMRM of the change from baseline in ``measure`` (one function, one tidy table).

    Never raises on a valid dataset: visits where an arm has fewer than
    :data:`MIN_PER_ARM_VISIT` participants observed are left out of the model and their rows
    written empty with the reason in ``method``; a model that cannot be fitted at all gives empty
    rows at every visit, with the reason.

    Parameters
    ----------
    adeff : DataFrame
        The efficacy dataset (:func:`respine_nb.derive.adeff`).
    measure : str
        PARAMCD of the measure: ``VAS``, ``ODI``, ``PCS`` or ``MCS``.
    fallback : bool
        When the unstructured model does not converge, fit a random-intercept model instead
        (and say so in ``method``) rather than raise.
    level : float
        Confidence level of the intervals.
    return_fit : bool
        Also return the :class:`MMRMFit` (None for the fallback, or when nothing was fitted).
    visits : sequence of int
        The post-baseline visits reported (one row per arm and contrast at each).

    Returns
    -------
    pandas.DataFrame
        Columns ``measure``, then those of :func:`lsmeans`, then ``method``; one block of three
        rows (two LS means, one difference) per visit of ``visits``, sorted by visit.
        With ``return_fit``, the tuple (table, fit).
    """
    visits = sorted(int(v) for v in visits)
    data = analysis_set(adeff, measure, visits)
    kept, reasons = modelled_visits(data, visits)
    data = data[data["visit_month"].isin(kept)]
    # participants in the model (a value at a modelled visit): the n of every row, whatever its visit
    n_arm = {arm: int(data.loc[data["arm"] == arm, "subject_id"].nunique()) for arm in config.ARMS}
    f = None
    if not kept:
        out = _empty_rows([], reasons, n_arm)
    else:
        try:
            f = fit(data, visits=kept)
            out = lsmeans(f, level)
            out["method"] = METHOD
        except (MMRMConvergenceError, MMRMRankError, np.linalg.LinAlgError) as exc:
            if not fallback:
                raise
            f = None
            out = random_intercept(data, level, reason=str(exc))
    missing = [v for v in visits if v not in kept]
    if missing:
        out = pd.concat([out, _empty_rows(missing, reasons, n_arm)], ignore_index=True)
    order = out["term"].map({"lsmean": 0, "difference": 1}) * 2 + (out["group"] == config.ARMS[1])
    out = out.assign(_o=order).sort_values(["visit_month", "_o"], kind="mergesort")
    out = out.drop(columns="_o").reset_index(drop=True)
    out.insert(0, "measure", measure)
    return (out, f) if return_fit else out


def mmrm_by_measure(adeff: pd.DataFrame, measures=config.MEASURE_PARAMS, **kw) -> tuple[pd.DataFrame, dict]:
    """:func:`mmrm` of every measure: one table, and the fitted models.

    Parameters
    ----------
    adeff : DataFrame
        The efficacy dataset.
    measures : sequence of str
        PARAMCD of the measures (default ``VAS``, ``ODI``, ``PCS``, ``MCS``).
    **kw
        Passed to :func:`mmrm` (``fallback``, ``level``, ``visits``).

    Returns
    -------
    tuple
        (table, fits): the tables of :func:`mmrm` stacked in the order of ``measures``, and
        PARAMCD -> :class:`MMRMFit` (None where the fallback was used or nothing was fitted).
    """
    fitted = {m: mmrm(adeff, m, return_fit=True, **kw) for m in measures}
    table = pd.concat([t for t, _ in fitted.values()], ignore_index=True)
    return table, {m: f for m, (_, f) in fitted.items()}


def random_intercept(df: pd.DataFrame, level: float = config.CI_LEVEL, reason: str = "") -> pd.DataFrame:
    """The documented fallback: ``change ~ C(visit) * arm + C(visit) * baseline`` with a random
    intercept per participant (statsmodels MixedLM, REML); residual df.

    statsmodels' convergence warnings are caught one by one and reported in ``method`` (a
    fallback that did not converge either is not a result: its rows are written empty).

    Parameters
    ----------
    df : DataFrame
        :func:`analysis_set` rows of the modelled visits.
    level : float
        Confidence level.
    reason : str
        Why the unstructured model was not used (goes into ``method``).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`lsmeans`, plus ``method``.
    """
    import warnings

    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    method = f"{FALLBACK_METHOD}" + (f" ({reason})" if reason else "")
    d = df.assign(msc=(df["arm"] == config.ARMS[0]).astype(float), visit=df["visit_month"].astype(str))
    visits = sorted(int(v) for v in d["visit_month"].unique())
    n_arm = {arm: int(d.loc[d["arm"] == arm, "subject_id"].nunique()) for arm in config.ARMS}
    model = smf.mixedlm("change ~ 0 + C(visit) + C(visit):msc + C(visit):baseline", d, groups=d["subject_id"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            res = model.fit(reml=True)
            failure = (
                "the random-intercept model did not converge either"
                if any(issubclass(w.category, ConvergenceWarning) for w in caught) or not res.converged
                else ""
            )
        except (np.linalg.LinAlgError, ValueError) as exc:
            res, failure = None, f"the random-intercept model failed too ({type(exc).__name__})"
    for w in caught:  # anything else is not ours to hide: show it as it would have been shown
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if failure:
        empty = _empty_rows(visits, {v: failure for v in visits}, n_arm)
        empty["method"] = f"{method}; not estimable: {failure}"
        return empty
    names = list(res.fe_params.index)
    cov = res.cov_params().loc[names, names].to_numpy()
    beta = res.fe_params.to_numpy()
    dfree = float(len(d) - len(beta))
    base_mean = float(d.drop_duplicates("subject_id")["baseline"].mean())

    def row(term, group, visit, c, n, n_visit):
        est, se = float(c @ beta), float(np.sqrt(c @ cov @ c))
        return {
            "term": term,
            "group": group,
            "visit_month": visit,
            **t_inference(est, se, dfree, level),
            "n": n,
            "n_visit": n_visit,
            "method": method,
        }

    rows = []
    for visit in visits:
        key = f"C(visit)[{visit}]"
        i0, im, ib = names.index(key), names.index(f"{key}:msc"), names.index(f"{key}:baseline")
        at_visit = d["visit_month"] == visit
        for arm in config.ARMS:
            c = np.zeros(len(beta))
            c[i0], c[im], c[ib] = 1.0, float(arm == config.ARMS[0]), base_mean
            rows.append(row("lsmean", arm, visit, c, n_arm[arm], int((at_visit & (d["arm"] == arm)).sum())))
        c = np.zeros(len(beta))
        c[im] = 1.0
        rows.append(row("difference", config.CONTRAST, visit, c, sum(n_arm.values()), int(at_visit.sum())))
    return pd.DataFrame(rows)
