"""A mixed model for repeated measures (MMRM) with an unstructured covariance, fitted by REML.

statsmodels' MixedLM cannot fit an unstructured *residual* covariance, and no Python package
does, so this module is the project's one piece of hand-written estimation. It is checked
against R ``nlme::gls(..., correlation = corSymm(form = ~ k | id), weights = varIdent(form =
~ 1 | visit), method = "REML")`` and emmeans' Satterthwaite degrees of freedom (tests/).

Model (RESULTS_CONTRACT.md): ``change ~ C(visit) * arm + C(visit) * baseline``, written in the
equivalent cell-means form ``change ~ 0 + C(visit) + C(visit):arm + C(visit):baseline``, with
residuals of one participant ``~ N(0, Sigma)``, ``Sigma`` unstructured over the visits.

Estimation:
- ``Sigma = L L'`` with ``L`` lower triangular, log-diagonal (so ``Sigma`` stays positive definite);
- each participant contributes the sub-matrix of ``Sigma`` of the visits observed (missing at
  random); participants are grouped by missingness pattern so a likelihood evaluation is a few
  matrix products, whatever the number of participants;
- fixed effects by generalised least squares given ``Sigma``; the REML log-likelihood is
  maximised over the Cholesky parameters by BFGS with the analytic gradient, from a starting
  value taken from OLS residuals (about 30 iterations here);
- standard errors are model-based, ``(X' V^-1 X)^-1`` (as nlme); degrees of freedom for each
  contrast by Satterthwaite's approximation, with the covariance of the variance parameters
  from the numerical Hessian of the REML log-likelihood.

Failure to converge raises :class:`MMRMConvergenceError`; :func:`mmrm` can then fall back to a
random-intercept model (statsmodels MixedLM), and says so in ``method``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps

from . import config


class MMRMConvergenceError(RuntimeError):
    """The REML optimisation did not converge (message says how far it got)."""


@dataclass
class MMRMFit:
    """A fitted MMRM.

    Attributes
    ----------
    visits : list of int
    beta : ndarray
        Fixed effects, ordered: visit intercepts, arm x visit, baseline x visit.
    cov_beta : ndarray
        Model-based covariance of ``beta``.
    sigma : ndarray
        Fitted unstructured covariance (visits x visits).
    loglik : float
        REML log-likelihood (as R ``logLik(gls)``).
    converged : bool
    iterations : int
    n_subjects, n_obs : int
    baseline_mean : float
        Mean baseline over participants, where LS-means are evaluated.
    theta : ndarray
        Cholesky parameters at the optimum.
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
    n_by_arm_visit: dict
    baseline_mean: float
    theta: np.ndarray
    _data: object = field(repr=False, default=None)

    @property
    def correlation(self) -> pd.DataFrame:
        d = np.sqrt(np.diag(self.sigma))
        return pd.DataFrame(self.sigma / np.outer(d, d), index=self.visits, columns=self.visits)

    @property
    def covariance(self) -> pd.DataFrame:
        return pd.DataFrame(self.sigma, index=self.visits, columns=self.visits)

    def contrast(self, c: np.ndarray, level: float = config.CI_LEVEL, df_method: str = "satterthwaite") -> dict:
        """Estimate, SE, df, CI and p of the linear combination ``c' beta``."""
        est = float(c @ self.beta)
        var = float(c @ self.cov_beta @ c)
        se = np.sqrt(var)
        df = self._satterthwaite(c) if df_method == "satterthwaite" else float(self.n_obs - len(self.beta))
        q = sps.t.ppf(0.5 + level / 2, df)
        return {"estimate": est, "se": se, "df": df, "ci_low": est - q * se, "ci_high": est + q * se,
                "p_value": float(2 * sps.t.sf(abs(est / se), df))}

    def _satterthwaite(self, c: np.ndarray) -> float:
        """Satterthwaite df: 2 (c'Cc)^2 / (g' A g), g = d(c'Cc)/d(theta), A = cov(theta-hat)."""
        grad = np.array([c @ dC @ c for dC in self._dcov_beta()])
        denom = float(grad @ self._cov_theta() @ grad)
        return float(2 * (c @ self.cov_beta @ c) ** 2 / denom) if denom > 0 else np.inf

    def _dcov_beta(self) -> list:
        """Central differences of cov(beta) with respect to each variance parameter (cached)."""
        if getattr(self, "_dcov_cache", None) is None:
            h, data = 1e-5, self._data
            cov = lambda t: _gls(data, _sigma(t, data.v))[1]  # noqa: E731
            self._dcov_cache = [(cov(self.theta + h * e) - cov(self.theta - h * e)) / (2 * h)
                                for e in np.eye(len(self.theta))]
        return self._dcov_cache

    def _cov_theta(self) -> np.ndarray:
        if getattr(self, "_cov_theta_cache", None) is None:
            data = self._data
            g = lambda t: _reml_and_grad(t, data)[1]  # noqa: E731  (gradient of -loglik)
            k, h = len(self.theta), 1e-5
            H = np.zeros((k, k))
            for j in range(k):
                e = np.zeros(k)
                e[j] = h
                H[:, j] = (g(self.theta + e) - g(self.theta - e)) / (2 * h)
            H = (H + H.T) / 2
            self._cov_theta_cache = np.linalg.pinv(H)
        return self._cov_theta_cache


@dataclass
class _Data:
    v: int  # number of visits
    patterns: list  # (visit index array, y (n x s), X (n x s x p))
    p: int


def _design(df: pd.DataFrame, visits: list):
    """Per-participant arrays in the cell-means parametrisation."""
    v = len(visits)
    vidx = {vis: i for i, vis in enumerate(visits)}
    p = 3 * v
    groups = {}
    for sid, g in df.groupby("subject_id", sort=True):
        g = g.sort_values("visit_month")
        idx = tuple(vidx[int(x)] for x in g["visit_month"])
        msc = float(g["arm"].iloc[0] == config.ARMS[0])
        base = float(g["baseline"].iloc[0])
        X = np.zeros((len(idx), p))
        for row, j in enumerate(idx):
            X[row, j] = 1.0
            X[row, v + j] = msc
            X[row, 2 * v + j] = base
        groups.setdefault(idx, []).append((g["change"].to_numpy(dtype=float), X))
    patterns = [(np.array(idx), np.stack([y for y, _ in items]), np.stack([x for _, x in items]))
                for idx, items in sorted(groups.items())]
    return _Data(v=v, patterns=patterns, p=p)


def _tril_index(v):
    return np.tril_indices(v)


def _sigma(theta: np.ndarray, v: int) -> np.ndarray:
    L = np.zeros((v, v))
    L[_tril_index(v)] = theta
    L[np.diag_indices(v)] = np.exp(np.diag(L))
    return L @ L.T


def _gls(data: _Data, sigma: np.ndarray):
    """GLS fixed effects given Sigma: (beta, cov_beta, per-pattern inverses, X' V^-1 X)."""
    XtWX = np.zeros((data.p, data.p))
    XtWy = np.zeros(data.p)
    inv = []
    for idx, Y, X in data.patterns:
        W = np.linalg.inv(sigma[np.ix_(idx, idx)])
        inv.append(W)
        WX = np.matmul(W, X)  # (n, s, p)
        Xf, WXf = X.reshape(-1, data.p), WX.reshape(-1, data.p)
        XtWX += Xf.T @ WXf
        XtWy += WXf.T @ Y.reshape(-1)
    C = np.linalg.inv(XtWX)
    return C @ XtWy, C, inv, XtWX


def _reml_and_grad(theta: np.ndarray, data: _Data):
    """-REML log-likelihood and its gradient with respect to the Cholesky parameters."""
    v = data.v
    sigma = _sigma(theta, v)
    try:
        beta, C, inv, XtWX = _gls(data, sigma)
    except np.linalg.LinAlgError:
        return np.inf, np.zeros_like(theta)
    n_obs = sum(Y.size for _, Y, _ in data.patterns)
    nll = 0.5 * (n_obs - data.p) * np.log(2 * np.pi)
    G = np.zeros((v, v))  # d(-loglik)/d(Sigma), as a full symmetric matrix derivative
    for (idx, Y, X), W in zip(data.patterns, inv):
        n, s = Y.shape
        R = Y - X @ beta  # (n, s)
        sign, logdet = np.linalg.slogdet(sigma[np.ix_(idx, idx)])
        WR = R @ W  # rows are W r_i (W symmetric)
        nll += 0.5 * (n * logdet + float(np.sum(WR * R)))
        XC = X @ C  # (n, s, p)
        M = XC.transpose(1, 0, 2).reshape(s, -1) @ X.transpose(1, 0, 2).reshape(s, -1).T  # sum_i X_i C X_i'
        G[np.ix_(idx, idx)] += 0.5 * (n * W - WR.T @ WR - W @ M @ W)
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
    Xall = np.concatenate([X.reshape(-1, data.p) for _, _, X in data.patterns])
    yall = np.concatenate([Y.reshape(-1) for _, Y, _ in data.patterns])
    beta = np.linalg.lstsq(Xall, yall, rcond=None)[0]
    S = np.zeros((v, v))
    N = np.zeros((v, v))
    for idx, Y, X in data.patterns:
        R = Y - X @ beta
        S[np.ix_(idx, idx)] += R.T @ R
        N[np.ix_(idx, idx)] += len(R)
    S = S / np.maximum(N, 1)
    d = np.sqrt(np.clip(np.diag(S), 1e-6, None))
    corr = np.clip(S / np.outer(d, d), -0.95, 0.95)
    np.fill_diagonal(corr, 1.0)
    w, U = np.linalg.eigh(corr)
    corr = U @ np.diag(np.clip(w, 0.05, None)) @ U.T
    Sig = corr * np.outer(d, d)
    L = np.linalg.cholesky(Sig)
    L[np.diag_indices(v)] = np.log(np.diag(L))
    return L[_tril_index(v)]


def analysis_set(adeff: pd.DataFrame, measure: str, visits=config.POST_BASELINE_VISITS) -> pd.DataFrame:
    """Long data for one measure: participants with a baseline and >= 1 post-baseline value.

    Returns
    -------
    pandas.DataFrame
        Columns ``subject_id``, ``arm``, ``visit_month``, ``baseline``, ``change`` (floats),
        one row per observed post-baseline value, sorted by subject_id and visit.
    """
    d = adeff[(adeff["measure"] == measure) & adeff["visit_month"].isin(list(visits))]
    d = d[d["baseline"].notna() & d["change"].notna()]
    out = pd.DataFrame({
        "subject_id": d["subject_id"].astype(str).to_numpy(), "arm": d["arm"].astype(str).to_numpy(),
        "visit_month": d["visit_month"].astype(int).to_numpy(), "baseline": d["baseline"].astype(float).to_numpy(),
        "change": d["change"].astype(float).to_numpy()})
    return out.sort_values(["subject_id", "visit_month"], kind="mergesort").reset_index(drop=True)


def fit(df: pd.DataFrame, visits=None, max_iter: int = 500, gtol: float = 1e-6) -> MMRMFit:
    """Fit the unstructured-covariance MMRM by REML.

    Parameters
    ----------
    df : DataFrame
        ``subject_id``, ``arm``, ``visit_month``, ``baseline``, ``change`` (see :func:`analysis_set`).
    visits : list of int, optional
        The visits modelled (default: those present, sorted).

    Returns
    -------
    MMRMFit

    Raises
    ------
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
    data = _design(df, visits)
    theta0 = _start(data)
    res = optimize.minimize(_reml_and_grad, theta0, args=(data,), jac=True, method="BFGS",
                            options={"maxiter": max_iter, "gtol": gtol})
    grad_norm = float(np.max(np.abs(res.jac))) if res.jac is not None and len(res.jac) else np.inf
    # BFGS may stop on "precision loss" at the optimum: judge convergence by the gradient itself
    if not np.isfinite(res.fun) or grad_norm > 1e-3:
        raise MMRMConvergenceError(
            f"REML did not converge after {res.nit} iterations (|gradient| = {grad_norm:.2g}; {res.message})")
    sigma = _sigma(res.x, data.v)
    if np.linalg.cond(sigma) > 1e12:
        raise MMRMConvergenceError("fitted covariance is singular (condition number > 1e12)")
    beta, C, _, _ = _gls(data, sigma)
    subj = df.drop_duplicates("subject_id")
    return MMRMFit(
        visits=visits, beta=beta, cov_beta=C, sigma=sigma, loglik=-float(res.fun), converged=True,
        iterations=int(res.nit), n_subjects=int(subj.shape[0]), n_obs=int(len(df)),
        n_by_arm_visit={(a, int(v)): int(n) for (a, v), n in counts.items()},
        baseline_mean=float(subj["baseline"].mean()), theta=res.x, _data=data)


def lsmeans(f: MMRMFit, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """LS-mean change per arm and visit (at the participants' mean baseline) and the arm difference.

    Returns
    -------
    pandas.DataFrame
        Columns ``term`` (``lsmean`` or ``difference``), ``group`` (arm, or the contrast),
        ``visit_month``, ``estimate``, ``se``, ``df`` (Satterthwaite), ``ci_low``, ``ci_high``,
        ``p_value``, ``n`` (participants observed at the visit: per arm, or both).
    """
    v = len(f.visits)
    rows = []
    for j, visit in enumerate(f.visits):
        for arm in config.ARMS:
            c = np.zeros(3 * v)
            c[j], c[v + j], c[2 * v + j] = 1.0, float(arm == config.ARMS[0]), f.baseline_mean
            r = f.contrast(c, level)
            rows.append({"term": "lsmean", "group": arm, "visit_month": visit, **r,
                         "n": f.n_by_arm_visit.get((arm, visit), 0)})
        c = np.zeros(3 * v)
        c[v + j] = 1.0
        r = f.contrast(c, level)
        rows.append({"term": "difference", "group": config.CONTRAST, "visit_month": visit, **r,
                     "n": sum(f.n_by_arm_visit.get((a, visit), 0) for a in config.ARMS)})
    return pd.DataFrame(rows)


METHOD = "MMRM, unstructured covariance, REML; Satterthwaite df"
FALLBACK_METHOD = ("random-intercept linear mixed model (statsmodels MixedLM, REML), fallback: "
                   "the unstructured MMRM did not converge; residual df")


def mmrm(adeff: pd.DataFrame, measure: str, fallback: bool = True, level: float = config.CI_LEVEL,
         return_fit: bool = False):
    """MMRM of the change from baseline in ``measure`` (one function, one tidy table).

    Parameters
    ----------
    adeff : DataFrame
        The efficacy dataset (:func:`respine_nb.derive.adeff`).
    measure : str
        ``vas_pain``, ``odi``, ``sf36_pcs`` or ``sf36_mcs``.
    fallback : bool
        When the unstructured model does not converge, fit a random-intercept model instead
        (and say so in ``method``) rather than raise.

    return_fit : bool
        Also return the :class:`MMRMFit` (None for the fallback).

    Returns
    -------
    pandas.DataFrame
        :func:`lsmeans` columns plus ``measure`` and ``method``; with ``return_fit``, the
        tuple (table, fit).
    """
    data = analysis_set(adeff, measure)
    try:
        f = fit(data)
        out = lsmeans(f, level)
        out["method"] = METHOD
    except MMRMConvergenceError as exc:
        if not fallback:
            raise
        f = None
        out = random_intercept(data, level)
        out["method"] = f"{FALLBACK_METHOD} ({exc})"
    out.insert(0, "measure", measure)
    return (out, f) if return_fit else out


def random_intercept(df: pd.DataFrame, level: float = config.CI_LEVEL) -> pd.DataFrame:
    """The documented fallback: ``change ~ C(visit) * arm + C(visit) * baseline`` with a random
    intercept per participant (statsmodels MixedLM, REML); residual df.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`lsmeans`.
    """
    import statsmodels.formula.api as smf

    d = df.assign(msc=(df["arm"] == config.ARMS[0]).astype(float), visit=df["visit_month"].astype(str))
    model = smf.mixedlm("change ~ 0 + C(visit) + C(visit):msc + C(visit):baseline", d, groups=d["subject_id"])
    res = model.fit(reml=True)
    names = list(res.fe_params.index)
    cov = res.cov_params().loc[names, names].to_numpy()
    beta = res.fe_params.to_numpy()
    dfree = float(len(d) - len(beta))
    q = sps.t.ppf(0.5 + level / 2, dfree)
    base_mean = float(d.drop_duplicates("subject_id")["baseline"].mean())
    rows = []
    for visit in sorted(d["visit_month"].unique()):
        key = f"C(visit)[{visit}]"
        i0 = names.index(key)
        im = names.index(f"{key}:msc")
        ib = names.index(f"{key}:baseline")
        for arm in config.ARMS:
            c = np.zeros(len(beta))
            c[i0], c[im], c[ib] = 1.0, float(arm == config.ARMS[0]), base_mean
            est, se = float(c @ beta), float(np.sqrt(c @ cov @ c))
            rows.append({"term": "lsmean", "group": arm, "visit_month": int(visit), "estimate": est, "se": se,
                         "df": dfree, "ci_low": est - q * se, "ci_high": est + q * se,
                         "p_value": float(2 * sps.t.sf(abs(est / se), dfree)),
                         "n": int(((d["visit_month"] == visit) & (d["arm"] == arm)).sum())})
        c = np.zeros(len(beta))
        c[im] = 1.0
        est, se = float(c @ beta), float(np.sqrt(c @ cov @ c))
        rows.append({"term": "difference", "group": config.CONTRAST, "visit_month": int(visit), "estimate": est,
                     "se": se, "df": dfree, "ci_low": est - q * se, "ci_high": est + q * se,
                     "p_value": float(2 * sps.t.sf(abs(est / se), dfree)), "n": int((d["visit_month"] == visit).sum())})
    return pd.DataFrame(rows)
