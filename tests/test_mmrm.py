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
    (1, "Sham"): (-6.3912220860, 1.6706082810),
    (1, "BM-MSC"): (-8.6432606726, 1.6706082810),
    (3, "Sham"): (-9.5614944993, 2.1726693294),
    (3, "BM-MSC"): (-11.9337017834, 2.1731147890),
    (6, "Sham"): (-12.5249121557, 2.5275967869),
    (6, "BM-MSC"): (-13.0314943696, 2.5287775095),
    (12, "Sham"): (-12.5413766380, 2.4847900289),
    (12, "BM-MSC"): (-14.2405020158, 2.4770963678),
    (24, "Sham"): (-12.2118372052, 2.4220281452),
    (24, "BM-MSC"): (-12.6060318402, 2.4262655008),
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
    d = mmrm.analysis_set(eff, "VAS")
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
        mmrm.fit(mmrm.analysis_set(eff, "ODI"), max_iter=1)
    real_fit = mmrm.fit
    monkeypatch.setattr(mmrm, "fit", lambda d, **kw: real_fit(d, max_iter=1))
    with pytest.raises(mmrm.MMRMConvergenceError):
        mmrm.mmrm(eff, "ODI", fallback=False)
    out, fit = mmrm.mmrm(eff, "ODI", return_fit=True)
    assert out["method"].str.startswith("random-intercept").all() and fit is None
    assert set(out["term"]) == {"lsmean", "difference"} and len(out) == 15


def test_needs_both_arms():
    d = pd.read_csv(DATA)
    with pytest.raises(ValueError, match="both arms"):
        mmrm.fit(d[d["arm"] == "Sham"])


def test_speed_at_114_participants(default_tables):
    eff = derive.adeff(default_tables)
    t0 = time.perf_counter()
    out, fit = mmrm.mmrm(eff, "VAS", return_fit=True)
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
    out = mmrm.mmrm(derive.adeff(synthetic.generate(5, 30, 30)), "VAS")
    diff = out[out["term"] == "difference"]
    d = mmrm.analysis_set(derive.adeff(synthetic.generate(5, 30, 30)), "VAS")
    assert (diff["n"] == d["subject_id"].nunique()).all()
    assert (diff["n_visit"] <= diff["n"]).all() and diff["n_visit"].nunique() > 1


def test_a_visit_nobody_reached_gives_empty_rows_with_the_reason():
    t = synthetic.generate(6, 20, 20)
    t = {**t, "outcomes": t["outcomes"][t["outcomes"]["visit_month"] != 24]}
    out = mmrm.mmrm(derive.adeff(t), "ODI")
    assert list(out["visit_month"].unique()) == list(config.POST_BASELINE_VISITS) and len(out) == 15
    m24 = out[out["visit_month"] == 24]
    assert m24["estimate"].isna().all() and m24["method"].str.endswith("not estimable: no participant observed at month 24").all()
    assert out.loc[out["visit_month"] < 24, "estimate"].notna().all()


def test_one_arm_or_almost_nobody_is_not_an_error():
    t = synthetic.generate(7, 10, 10)
    eff = derive.adeff(t)
    one_arm = mmrm.mmrm(eff[eff["ARM"] == "Sham"], "VAS")
    assert len(one_arm) == 15 and one_arm["estimate"].isna().all()
    assert one_arm["method"].str.contains("fewer than 2 participants observed at month 1 in BM-MSC").any()
    nobody = mmrm.mmrm(eff.assign(AVAL=np.nan, CHG=np.nan), "VAS")
    assert len(nobody) == 15 and nobody["estimate"].isna().all() and (nobody["n"] == 0).all()


def test_fallback_that_fails_too_is_written_empty(monkeypatch):
    t = synthetic.generate(4, 25, 25)
    eff = derive.adeff(t)
    d = mmrm.analysis_set(eff, "ODI")
    out = mmrm.random_intercept(d.assign(baseline=0.0, change=0.0), reason="forced")
    assert out["estimate"].isna().all() and out["method"].str.contains("not estimable").all()


# --- The general tool: formula / design matrix, against SAS PROC MIXED and R nlme::gls ---------------

FEV = config.ROOT / "tests" / "data" / "fev_data.csv"  # openpharma/mmrm fev_data (tests/data/fev_data.md)
FEV_FORMULA = 'FEV1 ~ ARMCD * AVISIT + RACE + C(SEX, Treatment("Male"))'  # SAS: SEX(ref = 'Male')

# SAS PROC MIXED output, from openpharma/mmrm design/SAS/sas_log_reml.txt (commit ec290b2695b2;
# the SAS code is in design/SAS/sas.R):
#   PROC MIXED DATA = ana.dat cl method=reml;
#     CLASS RACE(ref = 'Asian') AVISIT(ref = 'VIS1') SEX(ref = 'Male') ARMCD(ref = 'PBO') USUBJID;
#     MODEL FEV1 = ARMCD AVISIT ARMCD*AVISIT RACE SEX / ddfm=satterthwaite solution chisq;
#     REPEATED AVISIT / subject=USUBJID type=un r rcorr;
#     LSMEANS AVISIT*ARMCD / pdiff=all cl alpha=0.05 slice=AVISIT;
# Numbers are kept as printed (strings): a value is compared to 1e-4 relative plus half a unit of
# its last printed digit; SAS prints degrees of freedom rounded to integers.
SAS_M2RLL = 3386.44987722  # -2 Res Log Like, last line of the iteration history (537 observations used)
SAS_UN = {  # UN(i, j) with SAS's visit order VIS2, VIS3, VIS4, VIS1 (the reference level last)
    ("VIS2", "VIS2"): "26.5692",
    ("VIS3", "VIS2"): "2.7851",
    ("VIS3", "VIS3"): "14.8970",
    ("VIS4", "VIS2"): "7.4790",
    ("VIS4", "VIS3"): "0.9017",
    ("VIS4", "VIS4"): "95.5528",
    ("VIS1", "VIS2"): "14.3982",
    ("VIS1", "VIS3"): "4.9744",
    ("VIS1", "VIS4"): "13.3731",
    ("VIS1", "VIS1"): "40.5509",
}
SAS_SOLUTION = {  # Solution for Fixed Effects: estimate, standard error, df
    "Intercept": ("30.7774", "0.8865", 219),
    "ARMCD[T.TRT]": ("3.7745", "1.0741", 146),
    "AVISIT[T.VIS2]": ("4.8396", "0.8016", 144),
    "AVISIT[T.VIS3]": ("10.3422", "0.8227", 156),
    "AVISIT[T.VIS4]": ("15.0537", "1.3129", 138),
    "ARMCD[T.TRT]:AVISIT[T.VIS2]": ("-0.04231", "1.1292", 139),
    "ARMCD[T.TRT]:AVISIT[T.VIS3]": ("-0.6939", "1.1876", 158),
    "ARMCD[T.TRT]:AVISIT[T.VIS4]": ("0.6240", "1.8510", 130),
    "RACE[T.Black or African American]": ("1.5305", "0.6244", 169),
    "RACE[T.White]": ("5.6436", "0.6656", 157),
    'C(SEX, Treatment("Male"))[T.Female]': ("0.3262", "0.5319", 166),
}
SAS_LSMEANS = {  # Least Squares Means AVISIT*ARMCD: estimate, standard error, df
    ("VIS1", "PBO"): ("33.3318", "0.7554", 148),
    ("VIS1", "TRT"): ("37.1063", "0.7626", 143),
    ("VIS2", "PBO"): ("38.1715", "0.6117", 147),
    ("VIS2", "TRT"): ("41.9037", "0.6023", 144),
    ("VIS3", "PBO"): ("43.6740", "0.4617", 130),
    ("VIS3", "TRT"): ("46.7546", "0.5086", 130),
    ("VIS4", "PBO"): ("48.3855", "1.1886", 134),
    ("VIS4", "TRT"): ("52.7841", "1.1877", 133),
}
SAS_DIFFS = {  # Differences of Least Squares Means, TRT - PBO at the same visit
    "VIS1": ("3.7745", "1.0741", 146),
    "VIS2": ("3.7322", "0.8588", 145),
    "VIS3": ("3.0806", "0.6896", 131),
    "VIS4": ("4.3985", "1.6805", 133),
}
# Satterthwaite df: SAS prints them rounded to integers, so agreeing within 0.5 means rounding to
# SAS's integer; 0.02 more is allowed for where SAS stopped (see test_fev_sas_at_sas_covariance):
# the LS mean TRT at VIS2 has df 143.485 here (143.496 at SAS's covariance), SAS prints 144.
DF_TOL = 0.52


def _printed_tol(printed: str, rel: float = 1e-4) -> float:
    """1e-4 relative plus half a unit of the last digit SAS printed."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return rel * abs(float(printed)) + 0.5 * 10.0**-decimals


def _check_against_sas(f, estimate_tol=None):
    """Assert every SAS LS mean, difference and fixed effect (estimate, SE, df); return the largest
    relative differences and the largest df difference."""
    worst = {"estimate": 0.0, "se": 0.0, "df": 0.0}

    def check(what, est, se, df, sas):
        s_est, s_se, s_df = sas
        tol = _printed_tol(s_est) if estimate_tol is None else estimate_tol(s_est, s_se)
        assert abs(est - float(s_est)) <= tol, (what, "estimate", est, s_est)
        assert abs(se - float(s_se)) <= _printed_tol(s_se), (what, "se", se, s_se)
        assert abs(df - s_df) <= DF_TOL, (what, "df", df, s_df)
        worst["estimate"] = max(worst["estimate"], abs(est / float(s_est) - 1))
        worst["se"] = max(worst["se"], abs(se / float(s_se) - 1))
        worst["df"] = max(worst["df"], abs(df - s_df))

    ls = mmrm.ls_means(f, "ARMCD", by="AVISIT").set_index(["AVISIT", "ARMCD"])
    for key, sas in SAS_LSMEANS.items():
        check(key, *ls.loc[key, ["estimate", "se", "df"]], sas)
    diff = mmrm.ls_mean_differences(f, "ARMCD", by="AVISIT", reference="PBO").set_index("AVISIT")
    assert (diff["contrast"] == "TRT - PBO").all()
    for key, sas in SAS_DIFFS.items():
        check(key, *diff.loc[key, ["estimate", "se", "df"]], sas)
    coef = mmrm.coefficients(f).set_index("term")
    assert set(coef.index) == set(SAS_SOLUTION)
    for key, sas in SAS_SOLUTION.items():
        check(key, *coef.loc[key, ["estimate", "se", "df"]], sas)
    return worst


@pytest.fixture(scope="module")
def fev():
    return pd.read_csv(FEV)


@pytest.fixture(scope="module")
def fev_fit(fev):
    return mmrm.fit_mmrm(FEV_FORMULA, fev, subject="USUBJID", visit="AVISIT")


def test_fev_sas_proc_mixed(fev_fit):
    """Our REML optimum against the SAS listing (openpharma/mmrm design/SAS/sas_log_reml.txt).

    SAS stopped 6e-6 short of the REML maximum (-2 Res Log Like 3386.44987722; ours, at
    |gradient| < 1e-9, is 3386.44987116; R nlme::gls with tolerance 1e-12 gives 3386.44987138).
    That moves the fixed effects by up to 3e-4 of their SE, which for coefficients near zero
    (ARMCD*AVISIT VIS2: -0.04231) is far more than 1e-4 relative: coefficient estimates are
    compared within 5e-4 SE; every LS mean, LS-mean difference and every SE within 1e-4 relative
    (plus SAS's printing); at SAS's own covariance everything matches (next test)."""
    f = fev_fit
    assert f.n_obs == 537 and f.n_subjects == 197  # SAS: 537 observations used (800 read)
    assert -2 * f.loglik <= SAS_M2RLL and -2 * f.loglik == pytest.approx(SAS_M2RLL, rel=1e-8)
    sd = np.sqrt(np.diag(f.sigma))
    for (a, b), printed in SAS_UN.items():
        ia, ib = f.visits.index(a), f.visits.index(b)
        assert abs(f.sigma[ia, ib] - float(printed)) <= 1e-4 * sd[ia] * sd[ib], (a, b)
    worst = _check_against_sas(f, estimate_tol=lambda est, se: 5e-4 * float(se) + _printed_tol(est))
    assert worst["df"] <= DF_TOL


def test_fev_sas_at_sas_covariance(fev_fit):
    """With the covariance held at SAS's printed estimate (SAS PARMS / NOITER), the REML
    criterion is SAS's to 1e-9 and every printed estimate and SE is matched to 1e-4 relative
    (plus half a unit of the last printed digit): same likelihood, same GLS, same LS means."""
    sas = pd.DataFrame(0.0, index=fev_fit.visits, columns=fev_fit.visits)
    for (a, b), printed in SAS_UN.items():
        sas.loc[a, b] = sas.loc[b, a] = float(printed)
    g = fev_fit.with_covariance(sas)
    assert -2 * g.loglik == pytest.approx(SAS_M2RLL, rel=1e-9)
    _check_against_sas(g)
    assert mmrm.coefficients(fev_fit)["estimate"].iloc[0] == pytest.approx(30.777407, rel=1e-7)  # unchanged


def test_design_matrix_route_equals_formula_route(fev, fev_fit):
    import patsy

    d = fev.dropna(subset=["FEV1"])
    y, X = patsy.dmatrices(FEV_FORMULA, d, return_type="dataframe")
    g = mmrm.fit_mmrm_design(y.iloc[:, 0], X, subject=d["USUBJID"], visit=d["AVISIT"])
    assert g.names == fev_fit.names and g.visits == fev_fit.visits
    assert g.loglik == pytest.approx(fev_fit.loglik, rel=1e-12)
    a, b = mmrm.coefficients(g), mmrm.coefficients(fev_fit)
    for col in ("estimate", "se", "df"):
        assert np.allclose(a[col], b[col], rtol=1e-9, atol=0), col
    c = mmrm.contrasts(g, pd.DataFrame({"ARMCD[T.TRT]": [1.0], "ARMCD[T.TRT]:AVISIT[T.VIS2]": [1.0]}, index=["VIS2"]))
    assert c["estimate"].iloc[0] == pytest.approx(3.7322, abs=_printed_tol("3.7322"))  # SAS: TRT - PBO at VIS2
    with pytest.raises(ValueError, match="formula"):
        mmrm.ls_means(g, "ARMCD")


def test_formula_fit_equals_the_projects_fixed_design_fit(small_fit):
    """The formula route (treatment coding) and the cell-means design of ``fit`` are the same model."""
    d = pd.read_csv(DATA)
    f = mmrm.fit_mmrm(
        'change ~ C(visit_month) * C(arm, Treatment("Sham")) + C(visit_month) * baseline',
        d,
        subject="subject_id",
        visit="visit_month",
    )
    assert f.loglik == pytest.approx(small_fit.loglik, rel=1e-10)
    assert np.allclose(f.sigma, small_fit.sigma, rtol=1e-7)
    old = mmrm.lsmeans(small_fit)
    new = mmrm.ls_means(f, "arm", by="visit_month", covariates="subjects")  # fit's LS means: mean baseline of participants
    for arm in config.ARMS:
        o = old[(old["term"] == "lsmean") & (old["group"] == arm)].set_index("visit_month")
        n = new[new["arm"] == arm].set_index("visit_month")
        for col in ("estimate", "se", "ci_low", "ci_high"):
            assert np.allclose(n[col], o[col], rtol=1e-7), col
        assert np.allclose(n["df"], o["df"], rtol=1e-5)
        assert (n["n_obs"] == o["n_visit"]).all()
    o = old[old["term"] == "difference"].set_index("visit_month")
    n = mmrm.ls_mean_differences(f, "arm", by="visit_month", reference="Sham").set_index("visit_month")
    for col in ("estimate", "se", "p_value"):
        assert np.allclose(n[col], o[col], rtol=1e-6), col
    assert np.allclose(n["df"], o["df"], rtol=1e-5)
    # the LS means at the observations' mean baseline (SAS, emmeans) differ: dropout is not random in baseline
    obs = mmrm.ls_means(f, "arm", by="visit_month")
    assert not np.allclose(obs["estimate"], new["estimate"], rtol=1e-6)
    assert np.allclose(obs["se"], new["se"], rtol=0.05)


# R 4.2.2, nlme 3.1-162 (no emmeans: LS means by hand from the model matrix):
#   d <- read.csv("tests/data/mmrm_odi_small.csv")
#   d$site <- paste0("S", as.integer(sub("SYN-", "", d$subject_id)) %% 3)
#   d$visit <- factor(d$visit_month); d$k <- as.integer(d$visit)
#   d$arm <- factor(d$arm, levels = c("Sham", "BM-MSC")); d$site <- factor(d$site)
#   fit <- gls(change ~ visit * arm + visit * baseline + site, data = d, correlation = corSymm(form = ~ k | subject_id),
#              weights = varIdent(form = ~ 1 | visit), method = "REML",
#              control = glsControl(tolerance = 1e-12, msTol = 1e-12, maxIter = 1000, msMaxIter = 1000))
#   b <- coef(fit); V <- vcov(fit); bm <- mean(d$baseline[!duplicated(d$subject_id)])
#   grid <- expand.grid(visit = levels(d$visit), arm = levels(d$arm), site = levels(d$site), baseline = bm)
#   X <- model.matrix(~ visit * arm + visit * baseline + site, grid)
#   L <- colMeans(X[grid$visit == v & grid$arm == a, ]); sum(L * b); sqrt(t(L) %*% V %*% L)  # each visit, arm
R_SITE_LOGLIK = -823.90296179584
R_SITE_COEF = {"site[T.S1]": (-2.93908256371, 2.55110420238), "site[T.S2]": (0.13397913619, 2.64604847487)}
R_SITE_LSMEAN = {  # (visit, arm): (estimate, SE); sites weighted equally, baseline at the participants' mean
    (1, "Sham"): (-6.4568572065, 1.6835640338),
    (1, "BM-MSC"): (-8.6144880904, 1.6852564641),
    (3, "Sham"): (-9.6236250023, 2.2022695983),
    (3, "BM-MSC"): (-11.8926210591, 2.2039114348),
    (6, "Sham"): (-12.6011619940, 2.5549943219),
    (6, "BM-MSC"): (-12.9881536111, 2.5570506763),
    (12, "Sham"): (-12.6136260566, 2.5126200528),
    (12, "BM-MSC"): (-14.1866625836, 2.5065045169),
    (24, "Sham"): (-12.2822880677, 2.4625331213),
    (24, "BM-MSC"): (-12.5776106559, 2.4677085515),
}
R_SITE_DIFF = {
    1: (-2.1576308839, 2.3893165928),
    3: (-2.2689960567, 3.1227253461),
    6: (-0.3869916171, 3.6235936104),
    12: (-1.5730365270, 3.5568998760),
    24: (-0.2953225883, 3.4934376405),
}


def _with_site(d):
    return d.assign(site="S" + (d["subject_id"].str.replace("SYN-", "").astype(int) % 3).astype(str))


def test_a_site_covariate_changes_estimates_as_gls_does():
    d = _with_site(pd.read_csv(DATA))
    f = mmrm.fit_mmrm(
        'change ~ C(visit_month) * C(arm, Treatment("Sham")) + C(visit_month) * baseline + site',
        d,
        subject="subject_id",
        visit="visit_month",
    )
    assert f.loglik >= R_SITE_LOGLIK and f.loglik == pytest.approx(R_SITE_LOGLIK, rel=1e-9)
    coef = mmrm.coefficients(f).set_index("term")
    # nlme stops short of the REML maximum (its logLik is 2.3e-8 below ours, at |gradient| < 1e-9):
    # estimates then differ by up to 1.0e-5 of their SE and SEs by up to 5.8e-6 relative
    for term, (est, se) in R_SITE_COEF.items():
        assert coef.loc[term, "estimate"] == pytest.approx(est, abs=1e-4 * se)
        assert coef.loc[term, "se"] == pytest.approx(se, rel=2e-5)
    ls = mmrm.ls_means(f, "arm", by="visit_month", covariates="subjects").set_index(["visit_month", "arm"])
    for key, (est, se) in R_SITE_LSMEAN.items():
        assert ls.loc[key, "estimate"] == pytest.approx(est, abs=1e-4 * se)
        assert ls.loc[key, "se"] == pytest.approx(se, rel=2e-5)
    diff = mmrm.ls_mean_differences(f, "arm", by="visit_month", reference="Sham").set_index("visit_month")
    no_site = mmrm.lsmeans(mmrm.fit(d)).query("term == 'difference'").set_index("visit_month")
    for visit, (est, se) in R_SITE_DIFF.items():
        assert diff.loc[visit, "estimate"] == pytest.approx(est, abs=1e-4 * se)
        assert diff.loc[visit, "se"] == pytest.approx(se, rel=2e-5)
        assert abs(diff.loc[visit, "estimate"] - no_site.loc[visit, "estimate"]) > 0.05  # site matters here
    assert (diff["df"].between(50, 56)).all()


def test_proportional_weights_average_with_the_observed_frequencies(fev, fev_fit):
    """weights="proportional" (emmeans): the other factors' combinations weighted by their observed
    frequencies among the observations in the model; "equal" (SAS, emmeans default): equally."""
    d = fev.dropna(subset=["FEV1"])
    b = mmrm.coefficients(fev_fit).set_index("term")["estimate"]
    sex = 'C(SEX, Treatment("Male"))[T.Female]'
    freq = d.groupby(["RACE", "SEX"]).size() / len(d)
    race_eff = {"Asian": 0.0, "Black or African American": b["RACE[T.Black or African American]"], "White": b["RACE[T.White]"]}
    adjust_prop = sum(w * (race_eff[r] + (b[sex] if s == "Female" else 0.0)) for (r, s), w in freq.items())
    adjust_equal = np.mean(list(race_eff.values())) + b[sex] / 2
    base = b["Intercept"] + b["ARMCD[T.TRT]"] + b["AVISIT[T.VIS3]"] + b["ARMCD[T.TRT]:AVISIT[T.VIS3]"]
    prop = mmrm.ls_means(fev_fit, "ARMCD", by="AVISIT", weights="proportional").set_index(["AVISIT", "ARMCD"])
    equal = mmrm.ls_means(fev_fit, "ARMCD", by="AVISIT").set_index(["AVISIT", "ARMCD"])
    assert prop.loc[("VIS3", "TRT"), "estimate"] == pytest.approx(base + adjust_prop, rel=1e-12)
    assert equal.loc[("VIS3", "TRT"), "estimate"] == pytest.approx(base + adjust_equal, rel=1e-12)
    at = mmrm.ls_means(fev_fit, "ARMCD", by="AVISIT", at={"RACE": "White"}).set_index(["AVISIT", "ARMCD"])
    assert at.loc[("VIS3", "TRT"), "estimate"] == pytest.approx(base + b["RACE[T.White]"] + b[sex] / 2, rel=1e-12)
    race = mmrm.ls_means(fev_fit, "RACE")  # averaged over arms, visits and sex
    assert list(race["RACE"]) == ["Asian", "Black or African American", "White"]
    assert race["estimate"].diff().iloc[1:].to_numpy() == pytest.approx(
        [b["RACE[T.Black or African American]"], b["RACE[T.White]"] - b["RACE[T.Black or African American]"]]
    )


def test_row_order_and_index_do_not_matter(fev, fev_fit):
    shuffled = fev.sample(frac=1.0, random_state=3)
    shuffled.index = np.arange(len(fev))[::-1] * 7  # an unrelated index
    g = mmrm.fit_mmrm(FEV_FORMULA, shuffled, subject="USUBJID", visit="AVISIT")
    assert g.loglik == fev_fit.loglik
    for fun in (mmrm.coefficients, lambda f: mmrm.ls_mean_differences(f, "ARMCD", by="AVISIT")):
        a, b = fun(g), fun(fev_fit)
        for col in ("estimate", "se", "df", "p_value"):
            assert np.allclose(a[col], b[col], rtol=1e-12, atol=0), col


def test_inputs_are_not_modified(fev):
    before = fev.copy(deep=True)
    d = fev.dropna(subset=["FEV1"]).set_index("USUBJID", drop=False)
    d_before = d.copy(deep=True)
    f = mmrm.fit_mmrm(FEV_FORMULA, d, subject="USUBJID", visit="AVISIT")
    mmrm.ls_means(f, "ARMCD", by="AVISIT", weights="proportional")
    mmrm.ls_mean_differences(f, "ARMCD", by="AVISIT")
    X = pd.get_dummies(d[["ARMCD", "AVISIT"]], drop_first=True, dtype=float).assign(const=1.0)
    X_before = X.copy(deep=True)
    mmrm.fit_mmrm_design(d["FEV1"], X, subject=d["USUBJID"], visit=d["AVISIT"])
    pd.testing.assert_frame_equal(fev, before)
    pd.testing.assert_frame_equal(d, d_before)
    pd.testing.assert_frame_equal(X, X_before)


def test_argument_errors_are_value_errors(fev, fev_fit):
    d = fev.dropna(subset=["FEV1"])
    with pytest.raises(ValueError, match="not in data"):
        mmrm.fit_mmrm(FEV_FORMULA, d, subject="id", visit="AVISIT")
    with pytest.raises(ValueError, match="more than one observation"):
        mmrm.fit_mmrm(FEV_FORMULA, pd.concat([d, d.iloc[:1]]), subject="USUBJID", visit="AVISIT")
    with pytest.raises(mmrm.MMRMRankError, match="rank"):
        mmrm.fit_mmrm("FEV1 ~ ARMCD + AVISIT + I(2 * FEV1_BL) + FEV1_BL", d, subject="USUBJID", visit="AVISIT")
    with pytest.raises(ValueError, match="formula"):
        mmrm.fit_mmrm("FEV1 ~ nonexistent", d, subject="USUBJID", visit="AVISIT")
    with pytest.raises(ValueError, match="no observation at visit"):
        mmrm.fit_mmrm(FEV_FORMULA, d, subject="USUBJID", visit="AVISIT", visits=["VIS1", "VIS2", "VIS5"])
    with pytest.raises(ValueError, match="not a categorical variable"):
        mmrm.ls_means(fev_fit, "FEV1_BL")
    with pytest.raises(ValueError, match="weights"):
        mmrm.ls_means(fev_fit, "ARMCD", weights="cells")
    with pytest.raises(ValueError, match="reference"):
        mmrm.ls_mean_differences(fev_fit, "ARMCD", by="AVISIT", reference="XYZ")
    with pytest.raises(ValueError, match="coefficients"):
        mmrm.contrasts(fev_fit, np.ones(3))
    with pytest.raises(ValueError, match="same number of rows"):
        mmrm.fit_mmrm_design(np.ones(5), np.ones((4, 1)), subject=np.arange(5), visit=np.zeros(5))


def test_per_participant_path_equals_cross_product_path(monkeypatch, fev_fit):
    """Above MAX_CROSS_PRODUCTS the likelihood works on the participants' arrays: same fit."""
    monkeypatch.setattr(mmrm, "MAX_CROSS_PRODUCTS", 0)
    g = mmrm.fit_mmrm(FEV_FORMULA, pd.read_csv(FEV), subject="USUBJID", visit="AVISIT")
    assert g._data.XX is None and fev_fit._data.XX is not None
    assert g.loglik == pytest.approx(fev_fit.loglik, rel=1e-12)
    a, b = mmrm.ls_mean_differences(g, "ARMCD", by="AVISIT"), mmrm.ls_mean_differences(fev_fit, "ARMCD", by="AVISIT")
    for col in ("estimate", "se", "df"):
        assert np.allclose(a[col], b[col], rtol=1e-8, atol=0), col


def _large_trial(n: int, seed: int = 1) -> pd.DataFrame:
    """n participants, 5 visits, 10 sites, monotone dropout plus intermittent missing values."""
    rng = np.random.default_rng(seed)
    visits = np.array(config.POST_BASELINE_VISITS)
    arm = np.where(np.arange(n) % 2 == 0, config.ARMS[0], config.ARMS[1])
    base = rng.normal(60, 15, n)
    e = rng.standard_normal((n, 5)) @ (np.linalg.cholesky(0.5 * np.eye(5) + 0.5) * 12).T
    change = -10 - 0.3 * (base[:, None] - 60) - 5 * (arm == config.ARMS[0])[:, None] * np.log1p(visits) / 3 + e
    last = rng.choice(5, n, p=[0.05, 0.05, 0.1, 0.1, 0.7])
    keep = (np.arange(5)[None, :] <= last[:, None]) & (rng.random((n, 5)) > 0.05)
    keep[:, 0] |= ~keep.any(axis=1)
    i, j = np.nonzero(keep)
    return pd.DataFrame(
        {
            "subject_id": [f"P{k:05d}" for k in i],
            "arm": arm[i],
            "visit_month": visits[j],
            "baseline": base[i],
            "change": change[i, j],
            "site": rng.integers(1, 11, n)[i],
        }
    )


def test_speed_of_the_formula_route():
    """Targets: 114 participants < 0.2 s, 11,400 < 5 s per fit (measured about 0.05 s and 1.5 s,
    site included, on the development machine); asserted with room for a loaded machine."""
    formula = "change ~ C(visit_month) * arm + C(visit_month) * baseline + C(site)"
    for n, limit in ((114, 0.5), (11_400, 10.0)):
        d = _large_trial(n)
        t0 = time.perf_counter()
        f = mmrm.fit_mmrm(formula, d, subject="subject_id", visit="visit_month")
        out = mmrm.ls_mean_differences(f, "arm", by="visit_month", reference="Sham")
        assert time.perf_counter() - t0 < limit, n
        assert f.n_subjects == n and len(out) == 5 and out["df"].gt(0.5 * n - 20).all()


def test_a_rank_deficient_model_is_reported_not_raised():
    """The same baseline for everybody makes baseline x visit collinear with the visit: fit raises
    MMRMRankError (a ValueError), mmrm() writes empty rows that say why."""
    eff = derive.adeff(synthetic.generate(4, 25, 25)).assign(BASE=50.0)
    with pytest.raises(mmrm.MMRMRankError, match="rank 10 < 15"):
        mmrm.fit(mmrm.analysis_set(eff, "ODI"))
    out = mmrm.mmrm(eff, "ODI")
    assert len(out) == 15 and out["estimate"].isna().all() and out["method"].str.contains("rank 10 < 15").all()


def test_n_is_the_same_at_a_visit_left_out_of_the_model():
    """A participant seen only at a visit that cannot be modelled is not in the model: the
    empty rows of that visit carry the model's n, as every other row (RESULTS_CONTRACT.md v2)."""
    t = synthetic.generate(9, 20, 20)
    o, s = t["outcomes"], t["subjects"]
    at24 = set(o.loc[(o["visit_month"] == 24) & o["vas_pain"].notna(), "subject_id"])
    lone = sorted(set(s.loc[s["arm"] == "Sham", "subject_id"]) & at24)[0]
    keep = (o["visit_month"] == 0) | ((o["visit_month"] < 24) & (o["subject_id"] != lone))
    keep |= (o["visit_month"] == 24) & (o["subject_id"] == lone)
    out = mmrm.mmrm(derive.adeff({**t, "outcomes": o[keep]}), "VAS")
    diff = out[out["term"] == "difference"].set_index("visit_month")
    assert diff.loc[24, "estimate"] != diff.loc[24, "estimate"]  # NaN: month 24 not modelled
    assert diff["n"].nunique() == 1 and lone not in set(
        mmrm.analysis_set(derive.adeff({**t, "outcomes": o[keep & (o["visit_month"] < 24)]}), "VAS")["subject_id"]
    )
    assert (out.loc[out["term"] == "lsmean"].groupby("group")["n"].nunique() == 1).all()
