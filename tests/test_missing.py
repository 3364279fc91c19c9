"""Multiple imputation: Barnard-Rubin pooling against R, Monte Carlo error, delta-adjusted (MNAR) imputation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respine_nb import derive, stats, synthetic

Q = [0.12, 0.08, 0.15, 0.10, 0.09]
U = [0.0040, 0.0042, 0.0038, 0.0041, 0.0039]


def test_rubin_barnard_rubin_df_equals_r_formula():
    # R (mice:::barnard.rubin written out; CRAN's mice is not installable here):
    #   m <- 5; w <- mean(u); b <- var(q); t <- w + (1 + 1/m) * b; lambda <- max((1 + 1/m) * b / t, 1e-4)
    #   dfold <- (m - 1) / lambda^2; dfobs <- (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lambda)
    #   df <- dfold * dfobs / (dfold + dfobs)   # dfcom = 112
    got = stats.pooled_inference(Q, U, dfcom=112)
    assert got["estimate"] == pytest.approx(0.108, rel=1e-12)
    assert got["se"] == pytest.approx(0.0701712191714, rel=1e-10)
    assert got["df"] == pytest.approx(50.0276364786, rel=1e-10)
    assert got["df_rubin"] == pytest.approx(113.593148554, rel=1e-10)
    assert got["fmi"] == pytest.approx(0.187652315191, rel=1e-10)
    # R: qbar + c(-1, 1) * qt(.975, df) * sqrt(t); 2 * pt(-abs(qbar / sqrt(t)), df)
    assert got["ci_low"] == pytest.approx(-0.0329411125642, rel=1e-9)
    assert got["ci_high"] == pytest.approx(0.248941112564, rel=1e-9)
    assert got["p_value"] == pytest.approx(0.130083439699, rel=1e-9)
    assert stats.rubin(Q, U)["df"] == pytest.approx(113.593148554, rel=1e-10)  # dfcom = inf: Rubin 1987


def test_rubin_no_between_variance_is_the_complete_data_analysis():
    assert stats.rubin([0.1, 0.1], [0.01, 0.01], dfcom=50)["df"] == 50
    assert stats.rubin([0.1, 0.1], [0.01, 0.01])["df"] == np.inf


def test_mc_error_jackknife_equals_sqrt_b_over_m():
    # R: jk <- sapply(1:m, function(i) mean(q[-i])); sqrt((m - 1) / m * sum((jk - mean(jk))^2)); sqrt(var(q) / m)
    mc = stats.mc_error(Q, U, dfcom=112).set_index("statistic")
    assert mc.loc["estimate", "mc_error"] == pytest.approx(0.012409673646, rel=1e-10)
    assert list(mc.index) == ["estimate", "se", "ci_low", "ci_high", "p_value", "df"]
    assert (mc["mc_error"] >= 0).all() and (mc["m"] == 5).all()


@pytest.fixture(scope="module")
def wide(default_tables):
    """The reference cohort (tests/data/cohort_v1), one row per participant."""
    return derive.wide_outcomes(derive.adeff(default_tables))


def test_mi_default_cohort_barnard_rubin(wide):
    before = wide.copy()
    got = stats.mi_risk_difference(wide, m=20, seed=7).iloc[0]
    pd.testing.assert_frame_equal(wide, before)
    assert "Barnard-Rubin" in got["method"] and "separately in each arm" in got["method"]
    assert 60 < got["df"] < 112 < got["df_rubin"]
    assert got["mc_error"] < 0.1 * got["se"]
    assert got["n"] == 114 and np.isfinite(got["p_value"])


def test_delta_zero_is_mar_and_rows_non_increasing(wide):
    mar = stats.mi_risk_difference(wide, m=10, seed=3)
    delta = stats.mi_delta_risk_difference(wide, deltas=(0, 5, 10, 15, 20), m=10, seed=3)
    assert list(delta["delta"]) == [0, 5, 10, 15, 20]
    assert delta["estimate"].iloc[0] == mar["estimate"].iloc[0]
    assert delta["se"].iloc[0] == mar["se"].iloc[0]
    assert (np.diff(delta["estimate"]) <= 1e-12).all()
    assert (delta["estimate_sham"] == delta["estimate_sham"].iloc[0]).all()


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n_msc=st.integers(8, 40), n_sham=st.integers(8, 40))
def test_delta_estimates_non_increasing_on_generated_cohorts(seed, n_msc, n_sham):
    w = derive.wide_outcomes(derive.adeff(synthetic.generate(seed, n_msc, n_sham, exact=False)))
    out = stats.mi_delta_risk_difference(w, m=5, seed=seed)
    assert len(out) == 5
    est = out["estimate"].to_numpy()
    if np.isnan(est).any():  # not estimable: every row says why
        assert out["method"].str.contains("not estimable").all()
    else:
        assert (np.diff(est) <= 1e-12).all()


def test_not_estimable_when_nobody_reached_the_visit(wide):
    w = wide.assign(vas_12=np.nan)
    out = stats.mi_delta_risk_difference(w, m=3)
    assert out["estimate"].isna().all() and out["method"].str.contains("not estimable: fewer than 2 observed").all()
    one_arm = stats.mi_risk_difference(wide[wide["arm"] == "Sham"], m=3).iloc[0]
    assert "no participant in BM-MSC" in one_arm["method"]
