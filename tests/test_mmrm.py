"""The MMRM against R nlme::gls (+ emmeans), and against a closed form on complete data."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from respine_nb import config, derive, mmrm, synthetic

DATA = config.ROOT / "tests" / "data" / "mmrm_odi_small.csv"  # 58 participants, ODI change, visits 1-24

# R 4.2 (nlme 3.1, emmeans 1.8):
#   d <- read.csv("tests/data/mmrm_odi_small.csv"); d$visit <- factor(d$visit_month); d$k <- as.integer(d$visit)
#   d$arm <- factor(d$arm, levels = c("Sham", "BM-MSC"))
#   fit <- gls(change ~ visit * arm + visit * baseline, data = d, correlation = corSymm(form = ~ k | subject_id),
#              weights = varIdent(form = ~ 1 | visit), method = "REML",
#              control = glsControl(tolerance = 1e-10, msTol = 1e-10, maxIter = 1000, msMaxIter = 1000))
#   bm <- mean(d$baseline[!duplicated(d$subject_id)])
#   em <- emmeans(fit, ~ arm | visit, at = list(baseline = bm), mode = "satterthwaite")
#   summary(em); summary(contrast(em, method = "revpairwise"), infer = TRUE); logLik(fit)
R_LOGLIK = -828.4103402190
R_LSMEAN = {  # (visit, arm): (emmean, SE)
    (1, "Sham"): (-6.3912220860, 1.6706082810), (1, "BM-MSC"): (-8.6432606726, 1.6706082810),
    (3, "Sham"): (-9.5614944993, 2.1726693294), (3, "BM-MSC"): (-11.9337017834, 2.1731147890),
    (6, "Sham"): (-12.5249121557, 2.5275967869), (6, "BM-MSC"): (-13.0314943696, 2.5287775095),
    (12, "Sham"): (-12.5413766380, 2.4847900289), (12, "BM-MSC"): (-14.2405020158, 2.4770963678),
    (24, "Sham"): (-12.2118372052, 2.4220281452), (24, "BM-MSC"): (-12.6060318402, 2.4262655008),
}
R_DIFF = {  # visit: (estimate, SE, emmeans appx-Satterthwaite df, p)
    1: (-2.2520385866, 2.3665740401, 54.356606, 0.3455108008),
    3: (-2.3722072840, 3.0778603097, 55.131804, 0.4441559482),
    6: (-0.5065822139, 3.5814963494, 55.417473, 0.8880319),
    12: (-1.6991253777, 3.5141629627, 55.461639, 0.6306386779),
    24: (-0.3941946350, 3.4334104559, 55.226028, 0.9090110386),
}


@pytest.fixture(scope="module")
def small_fit():
    return mmrm.fit(pd.read_csv(DATA))


def test_loglik_matches_gls(small_fit):
    assert small_fit.loglik == pytest.approx(R_LOGLIK, rel=1e-8)


def test_lsmeans_and_differences_match_gls(small_fit):
    ls = mmrm.lsmeans(small_fit).set_index(["term", "group", "visit_month"]).sort_index()
    for (visit, arm), (est, se) in R_LSMEAN.items():
        row = ls.loc[("lsmean", arm, visit)]
        assert row["estimate"] == pytest.approx(est, rel=1e-4) and row["se"] == pytest.approx(se, rel=1e-4)
    for visit, (est, se, df, p) in R_DIFF.items():
        row = ls.loc[("difference", config.CONTRAST, visit)]
        assert row["estimate"] == pytest.approx(est, rel=1e-4) and row["se"] == pytest.approx(se, rel=1e-4)
        # emmeans has no analytic Satterthwaite for gls and says it uses an approximation
        # ("appx-satterthwaite"); ours differentiates the REML information directly. They agree
        # to about 1 %, and the p-values to 1e-3; the exact case is test_complete_data_closed_form.
        assert row["df"] == pytest.approx(df, rel=0.02)
        assert row["p_value"] == pytest.approx(p, abs=1e-3)


def test_complete_data_closed_form():
    """With every visit observed and the same regressors at each visit, GLS equals OLS visit by
    visit (Zellner), the REML covariance is the OLS residual cross-product over n - 3, and the
    Satterthwaite df of a visit's arm effect is exactly n - 3."""
    t = synthetic.generate(21, 40, 40)
    eff = derive.adeff(t)
    d = mmrm.analysis_set(eff, "vas_pain")
    full = d.groupby("subject_id")["visit_month"].transform("size") == 5
    d = d[full].reset_index(drop=True)
    n = d["subject_id"].nunique()
    f = mmrm.fit(d)
    ls = mmrm.lsmeans(f)
    diff = ls[ls["term"] == "difference"].set_index("visit_month")
    resid = []
    for visit in config.POST_BASELINE_VISITS:
        g = d[d["visit_month"] == visit].sort_values("subject_id")
        X = np.column_stack([np.ones(len(g)), (g["arm"] == "BM-MSC").astype(float), g["baseline"]])
        beta, rss = np.linalg.lstsq(X, g["change"].to_numpy(), rcond=None)[:2]
        se = np.sqrt(rss[0] / (n - 3) * np.linalg.inv(X.T @ X)[1, 1])
        row = diff.loc[visit]
        assert row["estimate"] == pytest.approx(beta[1], rel=1e-6)
        assert row["se"] == pytest.approx(se, rel=1e-5)
        assert row["df"] == pytest.approx(n - 3, rel=1e-4)
        resid.append(g["change"].to_numpy() - X @ beta)
    R = np.column_stack(resid)
    assert np.allclose(f.sigma, R.T @ R / (n - 3), rtol=1e-5)


def test_non_convergence_is_loud_and_fallback_is_labelled(monkeypatch):
    t = synthetic.generate(4, 25, 25)
    eff = derive.adeff(t)
    with pytest.raises(mmrm.MMRMConvergenceError, match="did not converge"):
        mmrm.fit(mmrm.analysis_set(eff, "odi"), max_iter=1)
    real_fit = mmrm.fit
    monkeypatch.setattr(mmrm, "fit", lambda d, **kw: real_fit(d, max_iter=1))
    with pytest.raises(mmrm.MMRMConvergenceError):
        mmrm.mmrm(eff, "odi", fallback=False)
    out, fit = mmrm.mmrm(eff, "odi", return_fit=True)
    assert out["method"].str.startswith("random-intercept").all() and fit is None
    assert set(out["term"]) == {"lsmean", "difference"} and len(out) == 15


def test_needs_both_arms():
    d = pd.read_csv(DATA)
    with pytest.raises(ValueError, match="both arms"):
        mmrm.fit(d[d["arm"] == "Sham"])


def test_speed_at_114_participants(default_tables):
    eff = derive.adeff(default_tables)
    t0 = time.perf_counter()
    out, fit = mmrm.mmrm(eff, "vas_pain", return_fit=True)
    assert time.perf_counter() - t0 < 1.0
    assert out["method"].iloc[0] == mmrm.METHOD
    assert fit.converged and fit.n_subjects >= 110
    assert np.allclose(np.diag(fit.correlation), 1.0)


def test_optimum_does_not_depend_on_the_optimiser_path():
    """Two BFGS paths (different stopping tolerances) end, after the Newton polish, at the same
    optimum to far below the 7 significant digits results are stored with: what makes the
    results the same on another processor, whose arithmetic changes BFGS's path."""
    d = pd.read_csv(DATA)
    a, b = mmrm.fit(d, gtol=1e-6), mmrm.fit(d, gtol=1e-4)
    assert np.max(np.abs(mmrm._reml_and_grad(a.theta, a._data)[1])) < 1e-8
    la, lb = mmrm.lsmeans(a), mmrm.lsmeans(b)
    for col in ("estimate", "se", "ci_low", "ci_high"):
        assert np.allclose(la[col], lb[col], rtol=1e-10, atol=0), col
    # Satterthwaite df come from numerical derivatives (five-point, rounding noise ~2e-9
    # relative, 3e-8 with the two-point difference used before); p-values follow them
    for col in ("df", "p_value"):
        assert np.allclose(la[col], lb[col], rtol=1e-8, atol=0), col


def test_n_is_participants_in_the_model_at_every_visit():
    out = mmrm.mmrm(derive.adeff(synthetic.generate(5, 30, 30)), "vas_pain")
    diff = out[out["term"] == "difference"]
    d = mmrm.analysis_set(derive.adeff(synthetic.generate(5, 30, 30)), "vas_pain")
    assert (diff["n"] == d["subject_id"].nunique()).all()
    assert (diff["n_visit"] <= diff["n"]).all() and diff["n_visit"].nunique() > 1


def test_a_visit_nobody_reached_gives_empty_rows_with_the_reason():
    t = synthetic.generate(6, 20, 20)
    t = {**t, "outcomes": t["outcomes"][t["outcomes"]["visit_month"] != 24]}
    out = mmrm.mmrm(derive.adeff(t), "odi")
    assert list(out["visit_month"].unique()) == list(config.POST_BASELINE_VISITS) and len(out) == 15
    m24 = out[out["visit_month"] == 24]
    assert m24["estimate"].isna().all() and m24["method"].str.endswith("not estimable: no participant observed at month 24").all()
    assert out.loc[out["visit_month"] < 24, "estimate"].notna().all()


def test_one_arm_or_almost_nobody_is_not_an_error():
    t = synthetic.generate(7, 10, 10)
    eff = derive.adeff(t)
    one_arm = mmrm.mmrm(eff[eff["arm"] == "Sham"], "vas_pain")
    assert len(one_arm) == 15 and one_arm["estimate"].isna().all()
    assert one_arm["method"].str.contains("fewer than 2 participants observed at month 1 in BM-MSC").any()
    nobody = mmrm.mmrm(eff.assign(value=np.nan, change=np.nan), "vas_pain")
    assert len(nobody) == 15 and nobody["estimate"].isna().all() and (nobody["n"] == 0).all()


def test_fallback_that_fails_too_is_written_empty(monkeypatch):
    t = synthetic.generate(4, 25, 25)
    eff = derive.adeff(t)
    d = mmrm.analysis_set(eff, "odi")
    out = mmrm.random_intercept(d.assign(baseline=0.0, change=0.0), reason="forced")
    assert out["estimate"].isna().all() and out["method"].str.contains("not estimable").all()
