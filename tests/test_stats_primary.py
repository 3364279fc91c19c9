"""Primary-endpoint statistics against reference values computed once in R 4.x (no R needed here).

Tables are BM-MSC (responders, non-responders) over sham (responders, non-responders).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from respine_nb import config, derive, stats

TOL = 1e-6  # closed-form values


def frame(x1, f1, x2, f2):
    """A responder view: ARM and AVAL (1 responder, 0 not)."""
    return pd.DataFrame(
        {
            "ARM": ["BM-MSC"] * (x1 + f1) + ["Sham"] * (x2 + f2),
            "AVAL": [1.0] * x1 + [0.0] * f1 + [1.0] * x2 + [0.0] * f2,
        }
    )


def derived(tables, visit=12, **rule):
    """The analysis datasets and the responder view at ``visit``."""
    ad = derive.derive_all(tables, visit, **rule)
    return ad, derive.responders(ad["adsl"], ad["adeff"], visit)


def test_outcome_columns_of_any_adam_kind():
    # AVAL 1/0, booleans and "Y"/"N" flags count the same ("N" is not True)
    d = pd.DataFrame({"ARM": ["BM-MSC", "BM-MSC", "Sham", "Sham"], "AVAL": [1.0, np.nan, 0.0, 1.0]})
    d = d.assign(flag=["Y", None, "N", "Y"], b=pd.array([True, pd.NA, False, True], dtype="boolean"))
    assert stats.counts(d) == stats.counts(d, "flag") == stats.counts(d, "b") == (1, 1, 1, 2)


# ---------------------------------------------------------------- Wilson and Newcombe (hand formulas in R)


@pytest.mark.parametrize(
    "x,n,lo,hi",
    [
        # R: prop.test(39, 53, correct = FALSE)$conf.int
        (39, 53, 0.604193355894, 0.835626460815),
        # R: prop.test(31, 45, correct = FALSE)$conf.int
        (31, 45, 0.543351944226, 0.804713007363),
        # R: prop.test(5, 20, correct = FALSE)$conf.int
        (5, 20, 0.111861701408, 0.468700877619),
        # R: prop.test(3, 3, correct = FALSE)$conf.int
        (3, 3, 0.438502968245, 1.0),
    ],
)
def test_wilson(x, n, lo, hi):
    got = stats.wilson_ci(x, n)
    assert got[0] == pytest.approx(lo, abs=TOL) and got[1] == pytest.approx(hi, abs=TOL)


@pytest.mark.parametrize(
    "t,lo,hi",
    [
        # R: w1 <- prop.test(x1, n1, correct = FALSE)$conf.int; w2 <- ... (x2, n2)
        #    d - sqrt((p1 - w1[1])^2 + (w2[2] - p2)^2); d + sqrt((w1[2] - p1)^2 + (p2 - w2[1])^2)
        ((39, 14, 31, 14), -0.128392191693, 0.223415637035),
        ((37, 13, 34, 15), -0.129042048842, 0.218236141918),
        ((5, 15, 12, 8), -0.577844820544, -0.0444226289659),
        ((3, 0, 1, 4), 0.0961180729692, 0.963775891368),
        ((20, 2, 10, 10), 0.134609127396, 0.620245928315),
    ],
)
def test_newcombe(t, lo, hi):
    x1, f1, x2, f2 = t
    rd = stats.risk_difference(x1, x1 + f1, x2, x2 + f2).iloc[0]
    assert rd["estimate"] == pytest.approx(x1 / (x1 + f1) - x2 / (x2 + f2), abs=1e-12)
    assert rd["ci_low"] == pytest.approx(lo, abs=TOL) and rd["ci_high"] == pytest.approx(hi, abs=TOL)


# ---------------------------------------------------------------- chisq.test (Yates)


@pytest.mark.parametrize(
    "t,stat,p",
    [
        # R: chisq.test(matrix(c(39, 14, 31, 14), 2, byrow = TRUE))   (the published 0.77)
        ((39, 14, 31, 14), 0.0832075471698, 0.772996800192),
        # R: chisq.test(matrix(c(37, 13, 34, 15), 2, byrow = TRUE))
        ((37, 13, 34, 15), 0.0819596661602, 0.774659090194),
        # R: chisq.test(matrix(c(5, 15, 12, 8), 2, byrow = TRUE))
        ((5, 15, 12, 8), 3.68286445013, 0.0549743287217),
        # R: chisq.test(matrix(c(3, 0, 1, 4), 2, byrow = TRUE))   (|O - E| < 0.5 nowhere; small cells)
        ((3, 0, 1, 4), 2.13333333333, 0.144127034816),
        # R: chisq.test(matrix(c(20, 2, 10, 10), 2, byrow = TRUE))
        ((20, 2, 10, 10), 6.70329545455, 0.00962348824511),
    ],
)
def test_yates_chisq(t, stat, p):
    x1, f1, x2, f2 = t
    got_stat, got_p = stats.yates_chisq([[x1, f1], [x2, f2]])
    assert got_stat == pytest.approx(stat, rel=1e-9) and got_p == pytest.approx(p, rel=1e-9)


def test_yates_correction_capped_at_half():
    # R: chisq.test(matrix(c(10, 10, 10, 11), 2, byrow = TRUE))$statistic  -> 0 (|O - E| < 0.5 everywhere)
    assert stats.yates_chisq([[10, 10], [10, 11]])[0] == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- fisher.test


@pytest.mark.parametrize(
    "t,p,est,lo,hi",
    [
        # R: fisher.test(matrix(c(39, 14, 31, 14), 2, byrow = TRUE))
        ((39, 14, 31, 14), 0.657817062945, 1.25509583775, 0.475476033142, 3.32080082967),
        # R: fisher.test(matrix(c(5, 15, 12, 8), 2, byrow = TRUE))
        ((5, 15, 12, 8), 0.0535509925944, 0.231531672679, 0.0455646877512, 1.01863279217),
        # R: fisher.test(matrix(c(20, 2, 10, 10), 2, byrow = TRUE))
        ((20, 2, 10, 10), 0.00553937099964, 9.42174407041, 1.58104133218, 104.613797607),
    ],
)
def test_fisher_against_fisher_test(t, p, est, lo, hi):
    x1, f1, x2, f2 = t
    got = stats.fisher_exact(x1, x1 + f1, x2, x2 + f2).iloc[0]
    assert got["p_value"] == pytest.approx(p, rel=1e-9)
    # fisher.test finds the MLE and the limits with uniroot at its default tolerance (~1.2e-4),
    # so its printed values are themselves only accurate to about 3e-4 relative.
    assert got["estimate"] == pytest.approx(est, rel=1e-3)
    assert got["ci_low"] == pytest.approx(lo, rel=1e-3) and got["ci_high"] == pytest.approx(hi, rel=1e-3)


def test_fisher_computes_a_table_once(monkeypatch):
    """The exact CI (0.5 s at 11,400 participants) is computed once per table and level; another
    level or table is computed anew, and the rows are the same."""
    from respine_nb.stats import binary

    binary._fisher.cache_clear()
    calls = []
    odds_ratio = binary.odds_ratio
    monkeypatch.setattr(binary, "odds_ratio", lambda *a, **k: calls.append(a) or odds_ratio(*a, **k))
    first = stats.fisher_exact(39, 53, 31, 45)
    pd.testing.assert_frame_equal(stats.fisher_exact(np.int64(39), 53, 31, 45), first)
    assert len(calls) == 1
    stats.fisher_exact(39, 53, 31, 45, level=0.9)
    stats.fisher_exact(38, 53, 31, 45)
    assert len(calls) == 3


@pytest.mark.parametrize(
    "t,est,lo,hi",
    [
        # R: fisher.test's own 2x2 algorithm (mnhyper / pnhyper) with uniroot(tol = 1e-13):
        #    the script is in the comment of tests/test_stats_primary.py::test_fisher_precise
        ((39, 14, 31, 14), 1.25510605576, 0.475483122355, 3.32079521729),
        ((20, 2, 10, 10), 9.42269246915, 1.58108808378, 104.58372563),
        ((5, 15, 12, 8), 0.231504099771, 0.0455600884009, 1.01861301502),
    ],
)
def test_fisher_precise(t, est, lo, hi):
    # R (abridged): m <- sum(x[, 1]); n <- sum(x[, 2]); k <- sum(x[1, ]); support <- max(0, k - n):min(k, m)
    #   dnhyper(ncp) <- normalised exp(dhyper(support, m, n, k, log = TRUE) + log(ncp) * support)
    #   MLE: uniroot(mnhyper(t) - x, tol = 1e-13); limits: uniroot(pnhyper(x, t[, upper]) - 0.025, tol = 1e-13)
    x1, f1, x2, f2 = t
    got = stats.fisher_exact(x1, x1 + f1, x2, x2 + f2).iloc[0]
    assert got["estimate"] == pytest.approx(est, rel=1e-8)
    assert got["ci_low"] == pytest.approx(lo, rel=1e-8) and got["ci_high"] == pytest.approx(hi, rel=1e-8)


# ---------------------------------------------------------------- glm(binomial)


@pytest.mark.parametrize(
    "t,logor,se,p,lo,hi",
    [
        # R: g <- glm(y ~ arm, family = binomial); summary(g)$coefficients[2, ]; exp(confint.default(g)[2, ])
        ((39, 14, 31, 14), 0.229574441642, 0.448058027851, 0.608387476, 0.522775502846, 3.02754493682),
        ((37, 13, 34, 15), 0.227658231667, 0.447245211284, 0.61073589494, 0.522606611552, 3.01693899043),
        ((5, 15, 12, 8), -1.50407739677, 0.689202102669, 0.0290840123677, 0.0575622276663, 0.85790140604),
        ((20, 2, 10, 10), 2.30258509299, 0.866025377162, 0.00784203540537, 1.83163048221, 54.5961649858),
    ],
)
def test_logistic_or(t, logor, se, p, lo, hi):
    got = stats.logistic_or(frame(*t)).iloc[0]
    assert got["log_or"] == pytest.approx(logor, rel=1e-6) and got["se"] == pytest.approx(se, rel=1e-6)
    assert got["p_value"] == pytest.approx(p, rel=1e-6)
    assert got["ci_low"] == pytest.approx(lo, rel=1e-6) and got["ci_high"] == pytest.approx(hi, rel=1e-6)


def test_logistic_separation_is_reported_not_faked():
    # R: glm gives logOR 20.95 with SE 6208.8 for matrix(c(3, 0, 1, 4)): an artefact of separation
    got = stats.logistic_or(frame(3, 0, 1, 4)).iloc[0]
    assert np.isnan(got["estimate"]) and "separation" in got["method"]


def test_primary_analysis_reproduces_the_paper():
    res = stats.primary_analysis(frame(39, 14, 31, 14)).set_index(["analysis", "group"])
    assert round(res.loc[("responders", "BM-MSC"), "estimate"] * 100) == 74
    assert round(res.loc[("responders", "Sham"), "estimate"] * 100) == 69
    assert round(res.loc[("risk_difference", "BM-MSC vs Sham"), "p_value"], 2) == 0.77


def test_primary_analysis_computes_only_the_analyses_asked_for(monkeypatch):
    # Notebook 02's sensitivity populations report responders and the risk difference only: their
    # exact test (0.5 s at 11,400 participants) and odds ratio are not computed, the rows asked for
    # are those of the whole analysis.
    from respine_nb.stats import binary

    resp = frame(39, 14, 31, 14)
    full = stats.primary_analysis(resp)
    called = []
    monkeypatch.setattr(binary, "fisher_exact", lambda *a, **k: called.append("fisher"))
    monkeypatch.setattr(binary, "logistic_or", lambda *a, **k: called.append("odds_ratio"))
    part = stats.primary_analysis(resp, analyses=("risk_difference", "responders"))
    assert called == []
    pd.testing.assert_frame_equal(part, full[full["analysis"].isin(["responders", "risk_difference"])].reset_index(drop=True))
    for wrong in (("fisher", "chisq"), ()):
        with pytest.raises(ValueError, match="unknown analyses"):
            stats.primary_analysis(resp, analyses=wrong)
    one = full[full["analysis"] == "risk_difference"].reset_index(drop=True)
    pd.testing.assert_frame_equal(stats.primary_analysis(resp, analyses="risk_difference"), one)  # a name alone
    pd.testing.assert_frame_equal(stats.primary_analysis(resp, analyses=(a for a in ["risk_difference"])), one)  # any iterable


# ---------------------------------------------------------------- Rubin's rules and MI


def test_rubin_hand_formula():
    q, u = [0.10, 0.14, 0.12], [0.004, 0.005, 0.006]
    got = stats.rubin(q, u)
    w, b = 0.005, np.var(q, ddof=1)  # b = 0.0004
    t = w + (1 + 1 / 3) * b
    assert got["estimate"] == pytest.approx(0.12) and got["se"] == pytest.approx(np.sqrt(t))
    assert got["df"] == pytest.approx(2 * (1 + w / ((4 / 3) * b)) ** 2)
    assert stats.rubin([0.1, 0.1], [0.01, 0.01])["df"] == np.inf


def test_mice_pmm_imputes_plausibly_and_reproducibly():
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(50, 10, n)
    y = 10 + 0.8 * x + rng.normal(0, 4, n)
    df = pd.DataFrame({"x": x, "y": y})
    miss = rng.random(n) < 0.3
    df.loc[miss, "y"] = np.nan
    a = stats.mice_pmm(df, m=5, seed=3)
    b = stats.mice_pmm(df, m=5, seed=3)
    assert all(np.array_equal(u.to_numpy(), v.to_numpy()) for u, v in zip(a, b))
    observed = set(np.round(df["y"].dropna(), 9))
    for d in a:
        assert not d.isna().any().any()
        assert set(np.round(d.loc[miss, "y"], 9)) <= observed  # PMM: only observed values are donated
        slope = np.polyfit(d["x"], d["y"], 1)[0]
        assert slope == pytest.approx(0.8, abs=0.08)  # the relation is preserved (MCAR)
    assert not np.array_equal(a[0]["y"].to_numpy(), a[1]["y"].to_numpy())  # imputations differ


def test_mi_without_missing_equals_complete_case(default_tables):
    ad, resp = derived(default_tables)
    wide = derive.wide_outcomes(ad["adeff"])
    keep = wide[["vas_0", "odi_0", "vas_12", "odi_12"]].notna().all(axis=1)
    complete = wide[keep].fillna(50.0)  # nothing left to impute
    got = stats.mi_risk_difference(complete, m=3, seed=1).iloc[0]
    resp = resp[resp["USUBJID"].isin(complete["subject_id"])]
    x1, n1, x2, n2 = stats.counts(resp)
    assert got["estimate"] == pytest.approx(x1 / n1 - x2 / n2) and got["df"] == len(complete) - 2  # complete-data df


def test_mi_on_default_data(default_tables):
    got = stats.mi_risk_difference(derive.wide_outcomes(derive.adeff(default_tables)), m=10, seed=5).iloc[0]
    assert got["n"] == 114 and -0.2 < got["estimate"] < 0.3 and got["ci_low"] < got["estimate"] < got["ci_high"]
    assert "m = 10" in got["method"] and "Rubin" in got["method"]


# ---------------------------------------------------------------- grids and subgroups


def test_tipping_point_corners(default_tables):
    _, resp = derived(default_tables)
    tp = stats.tipping_point(resp).set_index(["responders_msc", "responders_sham"])
    nri = stats.primary_analysis(derive.population(resp, "nri")).set_index("analysis").loc["risk_difference"]
    assert tp.loc[(0, 0), "estimate"] == pytest.approx(nri["estimate"])
    assert tp.loc[(0, 0), "p_value"] == pytest.approx(nri["p_value"])
    # all non-evaluable responders: (39 + 5) / 58 vs (31 + 11) / 56
    assert tp.loc[(5, 11), "estimate"] == pytest.approx(44 / 58 - 42 / 56)


def test_tipping_point_enumerates_every_count_once(default_tables):
    # was: 11 x 11 proportions rounded half-even to counts, 66 distinct scenarios among "121"
    _, resp = derived(default_tables)
    tp = stats.tipping_point(resp)
    assert len(tp) == 6 * 12 and not tp.duplicated(["responders_msc", "responders_sham"]).any()
    assert set(tp["responders_msc"]) == set(range(6)) and set(tp["responders_sham"]) == set(range(12))
    assert (tp["not_evaluable_msc"] == 5).all() and (tp["not_evaluable_sham"] == 11).all()
    assert (tp["n_msc"] == 58).all() and (tp["events_msc"] == 39 + tp["responders_msc"]).all()
    assert not tp["method"].str.contains("evenly spaced").any()


def test_tipping_point_spaces_large_counts_evenly():
    resp = frame(300, 100, 200, 200)
    resp = pd.concat(
        [resp, pd.DataFrame({"ARM": ["BM-MSC"] * 900 + ["Sham"] * 40, "AVAL": [np.nan] * 940})],
        ignore_index=True,
    )
    tp = stats.tipping_point(resp)
    msc, sham = sorted(set(tp["responders_msc"])), sorted(set(tp["responders_sham"]))
    assert len(msc) == 31 and msc[0] == 0 and msc[-1] == 900 and len(sham) == 31 and sham[-1] == 40
    assert (
        len(tp) == 31 * 31
        and "31 evenly spaced counts from 0 to k for BM-MSC (k = 900) and Sham (k = 40)" in tp["method"].iloc[0]
    )


def test_tipping_point_without_non_evaluable_is_one_scenario():
    tp = stats.tipping_point(frame(10, 5, 8, 7))
    assert len(tp) == 1 and tp["estimate"].iloc[0] == pytest.approx(10 / 15 - 8 / 15)


def test_threshold_grid_contains_the_primary_analysis(default_tables):
    grid = stats.threshold_grid(derive.wide_outcomes(derive.adeff(default_tables)))
    row = grid[(grid["vas_abs_mm"] == 20) & np.isclose(grid["vas_rel"], 0.2) & np.isclose(grid["odi_threshold"], 0.2)].iloc[0]
    assert row["estimate"] == pytest.approx(39 / 53 - 31 / 45) and row["p_value"] == pytest.approx(0.772996800192)
    assert (grid["odi_rule"] == "relative").all()


def test_threshold_grid_absolute_rule_uses_points(default_tables):
    # was: odi_rel ignored under the absolute rule, four identical panels labelled 10-40 %
    wide = derive.wide_outcomes(derive.adeff(default_tables))
    grid = stats.threshold_grid(wide, odi_rule="absolute")
    assert sorted(grid["odi_threshold"].unique()) == list(stats.ODI_ABS_GRID) and config.ODI_ABS in stats.ODI_ABS_GRID
    by_odi = grid.groupby("odi_threshold")["estimate"].apply(tuple)
    assert by_odi.nunique() == len(by_odi)  # every ODI threshold gives its own panel
    at20 = grid[(grid["vas_abs_mm"] == 20) & np.isclose(grid["vas_rel"], 0.2) & (grid["odi_threshold"] == 20)].iloc[0]
    _, resp = derived(default_tables, odi_rule="absolute")
    x1, n1, x2, n2 = stats.counts(resp)
    assert at20["estimate"] == pytest.approx(x1 / n1 - x2 / n2)
    with pytest.raises(ValueError, match="odi_rule"):
        stats.threshold_grid(wide, odi_rule="points")


def test_not_estimable_rows_say_why():
    empty_sham = frame(5, 3, 0, 0)
    p1 = stats.primary_analysis(empty_sham).set_index(["analysis", "group"])
    sham = p1.loc[("responders", "Sham")]
    assert (
        np.isnan(sham["estimate"])
        and sham["method"] == "proportion; Wilson score CI; not estimable: no evaluable participant in Sham"
    )
    for a in ("risk_difference", "fisher", "odds_ratio"):
        row = p1.xs(a, level="analysis").iloc[0]
        assert np.isnan(row["estimate"]) and row["method"].endswith("not estimable: no evaluable participant in Sham"), a
    everyone = stats.primary_analysis(frame(8, 0, 8, 0)).set_index("analysis")
    assert everyone.loc["risk_difference", "estimate"] == 0 and np.isnan(everyone.loc["risk_difference", "p_value"])
    assert everyone.loc["risk_difference", "method"].endswith("p not estimable: every participant responded")
    # R: fisher.test(matrix(c(8, 0, 8, 0), 2))$p.value -> 1 (the odds ratio is undefined)
    assert everyone.loc["fisher", "p_value"] == 1 and np.isnan(everyone.loc["fisher", "estimate"])
    assert everyone.loc["odds_ratio", "method"].endswith("not estimable: every participant responded")


def test_site_adjusted_or_pools_small_sites():
    # was: a site with one participant made the site-adjusted odds ratio "not estimable (separation)"
    two = pd.Series(["A"] * 28 + ["tiny", "small"] + ["B"] * 30)
    assert list(stats.site_strata(two).unique()) == ["A", "pooled small sites", "B"]
    d = frame(20, 10, 15, 15).assign(SITEID=["A", "B"] * 14 + ["tiny"] + ["A", "B"] * 15 + ["B"])
    assert list(stats.site_strata(d["SITEID"]).unique()) == ["A", "B", None]  # a stratum of one: dropped
    got = stats.logistic_or(d, covariates=["SITEID"]).iloc[0]
    ref = stats.logistic_or(d.drop(index=28), covariates=["SITEID"]).iloc[0]
    assert np.isfinite(got["estimate"]) and got["estimate"] == pytest.approx(ref["estimate"]) and got["n"] == 59
    assert got["method"].endswith("; adjusted for site")  # the method names the variable as results.csv always has


def test_interaction_p_against_r():
    # R: d <- data.frame(y = c(rep(1, 15), rep(0, 5), rep(1, 8), rep(0, 12), rep(1, 10), rep(0, 10), rep(1, 11), rep(0, 9)),
    #                    arm = rep(c(1, 0, 1, 0), each = 20), g = rep(c("a", "a", "b", "b"), each = 20))
    #    anova(glm(y ~ arm + g, binomial, d), glm(y ~ arm * g, binomial, d), test = "LRT")$`Pr(>Chi)`[2]
    y = [True] * 15 + [False] * 5 + [True] * 8 + [False] * 12 + [True] * 10 + [False] * 10 + [True] * 11 + [False] * 9
    arm = ["BM-MSC"] * 20 + ["Sham"] * 20 + ["BM-MSC"] * 20 + ["Sham"] * 20
    g = ["a"] * 40 + ["b"] * 40
    d = pd.DataFrame({"AVAL": np.array(y, dtype=float), "ARM": arm, "g": g})
    assert stats.interaction_p(d, "g") == pytest.approx(R_INTERACTION_P, rel=1e-6)


R_INTERACTION_P = 0.0650124971168


def _interaction_p_with_c(d, col, outcome="AVAL"):
    """interaction_p as it was written before: the level wrapped in C() in the formulas."""
    import statsmodels.formula.api as smf
    import statsmodels.genmod.api as sm
    from scipy import stats as sps

    dd = d[[outcome, "ARM", col]].dropna()
    frame = pd.DataFrame(
        {
            "y": dd[outcome].astype(bool).astype(float).to_numpy(),
            "msc": (dd["ARM"] == config.ARMS[0]).astype(float).to_numpy(),
            "level": pd.Categorical(dd[col].astype(str).to_numpy()),
        }
    )
    if frame["level"].nunique() < 2:
        return float("nan")
    main = smf.glm("y ~ msc + C(level)", data=frame, family=sm.families.Binomial())
    full = smf.glm("y ~ msc + C(level) + msc:C(level)", data=frame, family=sm.families.Binomial())
    X1 = full.exog
    if np.linalg.matrix_rank(X1) < X1.shape[1] or stats.is_separated(frame["y"].to_numpy(), X1):
        return float("nan")
    lr = 2 * (full.fit().llf - main.fit().llf)
    return float(sps.chi2.sf(lr, X1.shape[1] - main.exog.shape[1]))


@pytest.mark.parametrize(
    "levels",
    [
        ["10", "9", "b", "B", "a"],  # text sorts unlike numbers, capitals before small letters
        [3, 1, 2],  # numbers, read as text
        ["x", None, "y"],  # a missing level: those rows dropped
        ["only"],  # one level: NaN
        ["p", "q"],  # two levels
    ],
)
def test_interaction_p_same_bits_as_with_c(levels):
    # the bare categorical column gives the design C(level) gave: the p-value to the bit
    rng = np.random.default_rng(7)
    n = 300
    d = pd.DataFrame(
        {
            "AVAL": rng.integers(0, 2, n).astype(float),
            "ARM": rng.choice(list(config.ARMS), n),
            "g": [levels[i % len(levels)] for i in range(n)],
        }
    )
    d.loc[::17, "AVAL"] = np.nan
    got, ref = stats.interaction_p(d, "g"), _interaction_p_with_c(d, "g")
    assert (np.isnan(got) and np.isnan(ref)) or got == ref


def test_interaction_p_skips_patsys_cell_by_cell_check(monkeypatch):
    # patsy checks every cell of a categorical for a missing value unless it gets a pandas
    # Categorical as it is (C() would wrap it): 0.1 s of notebook 02 at 11,400 participants
    import patsy.missing

    def per_cell(self, value):
        raise AssertionError("patsy read the level column cell by cell")

    monkeypatch.setattr(patsy.missing.NAAction, "is_categorical_NA", per_cell)
    rng = np.random.default_rng(3)
    d = pd.DataFrame(
        {"AVAL": rng.integers(0, 2, 60).astype(float), "ARM": rng.choice(list(config.ARMS), 60), "g": ["a", "b", "c"] * 20}
    )
    assert 0 <= stats.interaction_p(d, "g") <= 1
