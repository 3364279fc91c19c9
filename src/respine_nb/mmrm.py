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
  value taken from OLS residuals, then polished by Newton steps until the gradient is below
  1e-9, so that every processor reaches the same optimum to far more than the 7 significant
  digits results are stored with;
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
        BFGS iterations before the Newton polish (path-dependent: never print it).
    n_subjects, n_obs : int
    n_by_arm : dict
        Participants in the model per arm.
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
    n_by_arm: dict = field(default_factory=dict)

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
            f"REML did not converge (|gradient| = {grad_norm:.2g}; {res.message})")
    theta, nll = _newton_polish(res.x, data)
    sigma = _sigma(theta, data.v)
    if np.linalg.cond(sigma) > 1e12:
        raise MMRMConvergenceError("fitted covariance is singular (condition number > 1e12)")
    beta, C, _, _ = _gls(data, sigma)
    subj = df.drop_duplicates("subject_id")
    fitted = MMRMFit(
        visits=visits, beta=beta, cov_beta=C, sigma=sigma, loglik=-float(nll), converged=True,
        iterations=int(res.nit), n_subjects=int(subj.shape[0]), n_obs=int(len(df)),
        n_by_arm_visit={(a, int(v)): int(n) for (a, v), n in counts.items()},
        baseline_mean=float(subj["baseline"].mean()), theta=theta, _data=data,
        n_by_arm={a: int(n) for a, n in subj.groupby("arm").size().items()})
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
        (theta, -REML log-likelihood at theta).
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
    return theta, nll


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
            rows.append({"term": "lsmean", "group": arm, "visit_month": visit, **r, "n": n_arm[arm],
                         "n_visit": f.n_by_arm_visit.get((arm, visit), 0)})
        c = np.zeros(3 * v)
        c[v + j] = 1.0
        r = f.contrast(c, level)
        rows.append({"term": "difference", "group": config.CONTRAST, "visit_month": visit, **r,
                     "n": f.n_subjects, "n_visit": sum(f.n_by_arm_visit.get((a, visit), 0) for a in config.ARMS)})
    return pd.DataFrame(rows)


METHOD = "MMRM, unstructured covariance, REML; Satterthwaite df"
FALLBACK_METHOD = ("random-intercept linear mixed model (statsmodels MixedLM, REML), fallback: "
                   "the unstructured MMRM did not converge; residual df")


MIN_PER_ARM_VISIT = 2  # a visit enters the model when each arm has at least this many values there


def modelled_visits(data: pd.DataFrame, visits=config.POST_BASELINE_VISITS) -> tuple[list, dict]:
    """Which visits an MMRM can estimate on ``data`` (:func:`analysis_set`), and why not the others.

    A visit is modelled when each arm has at least :data:`MIN_PER_ARM_VISIT` participants observed
    there (an arm effect and a variance need them).

    Returns
    -------
    tuple
        (sorted list of the modelled visits, dict visit -> reason for each visit left out).
    """
    counts = data.groupby(["visit_month", "arm"]).size()
    kept, reasons = [], {}
    for visit in sorted(int(v) for v in visits):
        short = [arm for arm in config.ARMS if int(counts.get((visit, arm), 0)) < MIN_PER_ARM_VISIT]
        if not short:
            kept.append(visit)
        elif all(int(counts.get((visit, arm), 0)) == 0 for arm in config.ARMS):
            reasons[visit] = f"no participant observed at month {visit}"
        else:
            reasons[visit] = (f"fewer than {MIN_PER_ARM_VISIT} participants observed at month {visit} in "
                              + " and ".join(short))
    return kept, reasons


def _empty_rows(visits, reasons: dict, n_arm: dict) -> pd.DataFrame:
    rows = []
    for visit in visits:
        for arm in config.ARMS:
            rows.append({"term": "lsmean", "group": arm, "visit_month": visit, "n": n_arm.get(arm, 0), "n_visit": 0,
                         "method": f"{METHOD}; not estimable: {reasons[visit]}"})
        rows.append({"term": "difference", "group": config.CONTRAST, "visit_month": visit,
                     "n": sum(n_arm.values()), "n_visit": 0, "method": f"{METHOD}; not estimable: {reasons[visit]}"})
    cols = ["term", "group", "visit_month", "estimate", "se", "df", "ci_low", "ci_high", "p_value", "n", "n_visit", "method"]
    return pd.DataFrame(rows, columns=cols)


def mmrm(adeff: pd.DataFrame, measure: str, fallback: bool = True, level: float = config.CI_LEVEL,
         return_fit: bool = False, visits=config.POST_BASELINE_VISITS):
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
        ``vas_pain``, ``odi``, ``sf36_pcs`` or ``sf36_mcs``.
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
    n_arm = {arm: int(data.loc[data["arm"] == arm, "subject_id"].nunique()) for arm in config.ARMS}
    kept, reasons = modelled_visits(data, visits)
    data = data[data["visit_month"].isin(kept)]
    f = None
    if not kept:
        out = _empty_rows([], reasons, n_arm)
    else:
        try:
            f = fit(data, visits=kept)
            out = lsmeans(f, level)
            out["method"] = METHOD
        except (MMRMConvergenceError, np.linalg.LinAlgError) as exc:
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
            failure = "the random-intercept model did not converge either" if any(
                issubclass(w.category, ConvergenceWarning) for w in caught) or not res.converged else ""
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
    q = sps.t.ppf(0.5 + level / 2, dfree)
    base_mean = float(d.drop_duplicates("subject_id")["baseline"].mean())

    def row(term, group, visit, c, n, n_visit):
        est, se = float(c @ beta), float(np.sqrt(c @ cov @ c))
        return {"term": term, "group": group, "visit_month": visit, "estimate": est, "se": se, "df": dfree,
                "ci_low": est - q * se, "ci_high": est + q * se, "p_value": float(2 * sps.t.sf(abs(est / se), dfree)),
                "n": n, "n_visit": n_visit, "method": method}

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
