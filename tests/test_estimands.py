"""Covariate-adjusted primary analyses and Holm's adjustment against R (reference values computed once, stored)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from respine_nb import config, derive, stats


@pytest.fixture(scope="module")
def resp(default_tables):
    """The responder view of the reference cohort (tests/data/cohort_v1) at month 12."""
    d = derive.derive_all(default_tables)
    return derive.responders(d["adsl"], d["adeff"], 12)


def _hand() -> pd.DataFrame:
    """20 participants; sites C (3), D (2) and E (1) have fewer than 5 and are pooled (6 participants)."""
    site = ["A"] * 8 + ["B"] * 6 + ["C"] * 3 + ["D"] * 2 + ["E"]
    arm = ["BM-MSC"] * 4 + ["Sham"] * 4 + ["BM-MSC"] * 3 + ["Sham"] * 3 + ["BM-MSC", "Sham", "Sham", "BM-MSC", "Sham", "BM-MSC"]
    y = [1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1]
    return pd.DataFrame({"SITEID": site, "ARM": arm, "AVAL": pd.array([bool(v) for v in y], dtype="boolean")})


def test_cmh_equals_r_on_committed_synthetic(resp):
    # R: r <- evaluable rows of derive.responders(); stratum = site (no site < 5 here)
    #    mantelhaen.test(table(factor(arm, c("BM-MSC","Sham")), factor(y, c(1, 0)), stratum))
    got = stats.cmh(resp).iloc[0]
    assert got["estimate"] == pytest.approx(1.419384882, rel=1e-8)
    assert got["ci_low"] == pytest.approx(0.5847937218, rel=1e-8)
    assert got["ci_high"] == pytest.approx(3.445066814, rel=1e-8)
    assert got["p_value"] == pytest.approx(0.575299331, rel=1e-8)
    assert got["statistic"] == pytest.approx(0.3138958283, rel=1e-8)
    assert got["n"] == 98 and got["n_strata"] == 8


def test_cmh_equals_r_on_hand_data_with_pooled_sites():
    # R: h$stratum <- ifelse(site %in% c("C","D","E"), "pooled small sites", site)
    #    mantelhaen.test(table(factor(arm, c("BM-MSC","Sham")), factor(y, c(1, 0)), stratum))
    got = stats.cmh(_hand()).iloc[0]
    assert got["estimate"] == pytest.approx(9.571428571, rel=1e-8)
    assert got["ci_low"] == pytest.approx(1.134788324, rel=1e-8)
    assert got["ci_high"] == pytest.approx(80.73069043, rel=1e-8)
    assert got["p_value"] == pytest.approx(0.09344101649, rel=1e-8)
    assert got["statistic"] == pytest.approx(2.814070352, rel=1e-8)
    assert got["n_strata"] == 3 and got["n"] == 20


def test_cmh_not_estimable_rows():
    h = _hand()
    one_arm = stats.cmh(h[h["ARM"] == "BM-MSC"]).iloc[0]
    assert np.isnan(one_arm["estimate"]) and "not estimable: no evaluable participant in Sham" in one_arm["method"]
    everyone = stats.cmh(h.assign(AVAL=pd.array([True] * len(h), dtype="boolean"))).iloc[0]
    assert np.isnan(everyone["estimate"]) and "not estimable" in everyone["method"]
    # a lone small site: its pooled stratum has 1 participant and is dropped
    lone = stats.cmh(h[h["SITEID"].isin(["A", "B", "E"])]).iloc[0]
    assert lone["n"] == 14 and lone["n_strata"] == 2


def test_adjusted_risk_difference_equals_r_glm_and_delta_method(resp):
    # R: f <- glm(y ~ msc + factor(stratum) + base_vas + base_odi, binomial, data = evaluable with both baselines,
    #            control = glm.control(epsilon = 1e-14, maxit = 100))  # R's default 1e-8 stops 1e-5 (relative) short in the SE
    #    X1/X0 = model.matrix(f) with msc set to 1/0; p1 <- plogis(X1 %*% coef(f)); p0 likewise
    #    est <- mean(p1) - mean(p0)
    #    g <- colMeans(p1 * (1 - p1) * X1) - colMeans(p0 * (1 - p0) * X0); se <- sqrt(t(g) %*% vcov(f) %*% g)
    #    est +- qnorm(.975) * se; 2 * pnorm(-abs(est / se))
    got = stats.adjusted_risk_difference(resp).iloc[0]
    assert got["estimate"] == pytest.approx(0.07506670941, rel=1e-6)
    assert got["se"] == pytest.approx(0.09284321, rel=1e-6)
    assert got["ci_low"] == pytest.approx(-0.1069026384, rel=1e-6)
    assert got["ci_high"] == pytest.approx(0.2570360572, rel=1e-6)
    assert got["p_value"] == pytest.approx(0.4187843729, rel=1e-6)
    assert got["estimate_msc"] == pytest.approx(0.7474908644, rel=1e-6)
    assert got["estimate_sham"] == pytest.approx(0.672424155, rel=1e-6)
    assert got["n"] == 98


def test_adjusted_risk_difference_not_estimable_and_input_untouched(resp):
    before = resp.copy()
    stats.adjusted_risk_difference(resp)
    pd.testing.assert_frame_equal(resp, before)
    sham = stats.adjusted_risk_difference(resp[resp["ARM"] == "Sham"]).iloc[0]
    assert np.isnan(sham["estimate"]) and "not estimable" in sham["method"]


def test_holm_equals_r_p_adjust():
    # R: p.adjust(c(0.01, 0.04, NA, 0.03, 0.5), "holm")
    np.testing.assert_allclose(stats.holm([0.01, 0.04, np.nan, 0.03, 0.5]), [0.04, 0.09, np.nan, 0.09, 0.5], rtol=1e-12)
    # R: p.adjust(c(0.002, 0.02, 0.011, 0.2, 0.049, 0.7), "holm")
    np.testing.assert_allclose(
        stats.holm([0.002, 0.02, 0.011, 0.2, 0.049, 0.7]), [0.012, 0.08, 0.055, 0.4, 0.147, 0.7], rtol=1e-12
    )
    assert stats.holm([]).shape == (0,)


def test_adjusted_risk_difference_with_strata_where_everyone_has_the_same_outcome():
    """The evaluable participants of the generator-v2 cohort: Barcelona 8/8 responders, the pooled small
    sites 0/4; the logistic MLE is at infinity for those strata, whose fitted probabilities are their outcome
    in both arms: they are set aside and contribute no difference (the limit of the fit)."""
    d = pd.read_csv(config.ROOT / "tests" / "data" / "adjusted_separation.csv")
    got = stats.adjusted_risk_difference(d).iloc[0]
    # R: d$stratum as stats.site_strata; f <- glm(AVAL ~ msc + stratum + BVAS + BODI, binomial, data = d,
    #    control = glm.control(epsilon = 1e-14, maxit = 200))  # warns: fitted probabilities 0 or 1
    #    then the g-computation and delta method as above: est 0.0283657690, se 0.0819448727 (R stops short of
    #    the limit, hence the SE's looser tolerance), p 0.7292249331, standardised BM-MSC proportion 0.7316792056
    assert got["estimate"] == pytest.approx(0.0283657690, rel=1e-6)
    assert got["estimate_msc"] == pytest.approx(0.7316792056, rel=1e-6)
    assert got["se"] == pytest.approx(0.0819448727, rel=1e-3)
    assert got["p_value"] == pytest.approx(0.7292249331, rel=1e-3)
    assert got["n"] == 99 and "2 site stratum(s) where every participant had the same outcome" in got["method"]


def test_holm_runs_no_garbage_collection(monkeypatch):
    """statsmodels' Holm runs a full gc.collect() per call (0.2 s in a kernel); stats.holm does not."""
    import gc

    monkeypatch.setattr(gc, "collect", lambda *a: pytest.fail("gc.collect() called"))
    # R: p.adjust(c(0.02, 0.01, 0.5), "holm")
    np.testing.assert_allclose(stats.holm([0.02, 0.01, 0.5]), [0.04, 0.03, 0.5], rtol=1e-12)
