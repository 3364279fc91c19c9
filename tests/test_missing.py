"""Multiple imputation: Barnard-Rubin pooling against R, Monte Carlo error, delta-adjusted (MNAR) imputation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respine_nb import derive, stats, synthetic
from respine_nb.stats import missing

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


def test_mi_results_are_those_of_the_per_dataset_implementation(default_tables):
    # Values of the implementation that applied the responder rule to each completed dataset in
    # pandas and ranked every donor with a full sort (before the stacked arrays): the same
    # imputations, the same numbers. rel=1e-12 leaves room for BLAS rounding only; a different
    # donor anywhere would move them by far more.
    wide = derive.wide_outcomes(derive.adeff(default_tables))
    out = stats.mi_delta_risk_difference(wide, deltas=(0, 10), m=10, seed=3)
    expected = {
        "estimate": [0.05073891625615762, 0.02487684729064037],
        "se": [0.08798186682660435, 0.08858806635182351],
        "df": [99.84552354270559, 102.50750344084527],
        "mc_error": [0.006378232469437373, 0.00571492857301563],
        "estimate_msc": [0.7293103448275862, 0.7034482758620689],
        "estimate_sham": [0.6785714285714286, 0.6785714285714286],
    }
    for column, values in expected.items():
        assert out[column].tolist() == pytest.approx(values, rel=1e-12), column
    wide = derive.wide_outcomes(derive.adeff(default_tables), ("VAS", "ODI", "PCS", "MCS"))
    aux = derive.auxiliary_columns(wide)
    got = stats.mi_risk_difference(wide, visit_month=6, m=8, seed=11, auxiliary=aux, odi_rule="absolute").iloc[0]
    assert [got["estimate"], got["se"], got["df"], got["mc_error"]] == pytest.approx(
        [0.0638084975369458, 0.08933750918321647, 100.87838552774615, 0.006633954124939885], rel=1e-12
    )


def test_mc_error_of_the_estimate_alone_is_that_of_mc_error():
    rng = np.random.default_rng(4)
    for m in (2, 3, 5, 50):
        q, u = rng.normal(0.1, 0.05, m), rng.uniform(0.003, 0.005, m)
        full = stats.mc_error(q, u, dfcom=100).set_index("statistic").loc["estimate", "mc_error"]
        assert missing._mc_error_estimate(q) == full or (np.isnan(full) and np.isnan(missing._mc_error_estimate(q)))


def _nearest_by_sorting(yhat_obs, yhat_mis, k):
    """The definition: the first k of a stable sort of every distance."""
    dist = np.abs(yhat_obs[:, None, :] - yhat_mis[:, :, None])
    return np.argsort(dist, axis=2, kind="stable")[:, :, :k]


@pytest.mark.parametrize("kind", ["continuous", "ties", "symmetric ties", "overflow", "not finite"])
def test_nearest_donors_are_those_of_a_stable_sort(kind, monkeypatch):
    rng = np.random.default_rng(["continuous", "ties", "symmetric ties", "overflow", "not finite"].index(kind))
    for _ in range(300):
        m, n, n_mis = rng.integers(1, 6), rng.integers(1, 40), rng.integers(1, 15)
        k = int(min(rng.integers(1, 8), n))
        if kind == "ties":  # many equal predictions: the window may cut a tie
            yo, ym = rng.integers(0, 6, (m, n)).astype(float), rng.integers(0, 6, (m, n_mis)).astype(float)
        elif kind == "symmetric ties":  # equal distances on both sides of a missing value
            yo, ym = rng.integers(0, 12, (m, n)) / 2.0, rng.integers(0, 24, (m, n_mis)) / 4.0
        elif kind == "overflow":  # finite predictions whose distances overflow to inf
            yo, ym = rng.uniform(-1, 1, (m, n)) * 1.7e308, rng.uniform(-1, 1, (m, n_mis)) * 1.7e308
        else:
            yo, ym = rng.standard_normal((m, n)), rng.standard_normal((m, n_mis))
            if kind == "not finite":
                yo[0, 0], ym[-1, -1] = np.inf, np.nan
        with np.errstate(over="ignore", invalid="ignore"):
            expected = _nearest_by_sorting(yo, ym, k)
            for scan_size in (0, 2**17):  # the merge, and the scan over every distance
                monkeypatch.setattr(missing, "_NEAREST_SCAN_SIZE", scan_size)
                np.testing.assert_array_equal(missing._nearest(yo, ym, k), expected)
            if kind != "not finite":
                np.testing.assert_array_equal(missing._nearest_merge(yo, ym, k), expected)


@pytest.mark.parametrize("n_msc, n_sham, seed", [(58, 56, 5), (400, 380, 6)])
def test_cross_product_path_imputes_as_the_fresh_design_path(n_msc, n_sham, seed, monkeypatch):
    # Above _GRAM_ROWS rows the models' cross-products are kept up to date instead of copying
    # each design: the same models to rounding, so the same donors, so the same imputations.
    wide = derive.wide_outcomes(derive.adeff(synthetic.generate(seed, n_msc, n_sham, exact=False)), ("VAS", "ODI", "PCS", "MCS"))
    aux = derive.auxiliary_columns(wide)
    completed = {}
    for rows in (10**9, 0):  # the fresh design for every model, then the cross-products
        monkeypatch.setattr(missing, "_GRAM_ROWS", rows)
        completed[rows] = missing._impute(wide, 12, 8, seed, aux, "arm", "site")[0]
    assert completed[0].shape == (8, n_msc + n_sham, 24) and not np.isnan(completed[0]).any()
    np.testing.assert_array_equal(completed[0], completed[10**9])


def test_large_arms_impute_in_threads_with_the_same_result(monkeypatch):
    # Above _GRAM_ROWS rows each arm's chains run in a thread of their own (NumPy releases the
    # GIL): each arm draws from its own seed, so the imputations are those of one arm after the
    # other, to the bit.
    import threading

    wide = derive.wide_outcomes(derive.adeff(synthetic.generate(5, 60, 60, exact=False)), ("VAS", "ODI", "PCS", "MCS"))
    aux = derive.auxiliary_columns(wide)
    monkeypatch.setattr(missing, "_GRAM_ROWS", 0)
    again = missing._impute(wide, 12, 6, 3, aux, "arm", "site")[0]
    ran_in, chains = [], missing._mice_chains
    monkeypatch.setattr(missing, "_mice_chains", lambda *a, **k: ran_in.append(threading.get_ident()) or chains(*a, **k))
    threaded = missing._impute(wide, 12, 6, 3, aux, "arm", "site")[0]
    assert len(ran_in) == 2 and threading.get_ident() not in ran_in  # both arms, in worker threads
    monkeypatch.setattr(missing, "_chains_by_arm", lambda models, m: [chains(d, m, s, fixed=f) for _, _, d, s, f in models])
    np.testing.assert_array_equal(missing._impute(wide, 12, 6, 3, aux, "arm", "site")[0], threaded)
    np.testing.assert_array_equal(again, threaded)  # and the same every time


DONOR_KINDS = ["continuous", "ties", "symmetric ties", "near ties", "signed zeros", "overflow", "not finite"]


@pytest.mark.parametrize("kind", DONOR_KINDS)
def test_drawn_donor_is_that_of_a_stable_sort(kind, monkeypatch):
    # _donor finds only the drawn one of the k nearest (above _NEAREST_SCAN_SIZE by one sort of
    # the observed and missing predictions together): the same row as the definition's.
    rng = np.random.default_rng(10 + DONOR_KINDS.index(kind))
    sorted_answers = 0
    for _ in range(300):
        m, n, n_mis = rng.integers(1, 6), rng.integers(1, 40), rng.integers(1, 15)
        k = int(min(rng.integers(1, 8), n))
        if kind == "ties":
            yo, ym = rng.integers(0, 6, (m, n)).astype(float), rng.integers(0, 6, (m, n_mis)).astype(float)
        elif kind == "symmetric ties":
            yo, ym = rng.integers(0, 12, (m, n)) / 2.0, rng.integers(0, 24, (m, n_mis)) / 4.0
        elif kind == "near ties":  # predictions a few ulps apart: the integer sort may not order them
            ulps = 2.0 ** rng.choice([-50, -30])  # (apart by 2**-30: ordered by the sort's 36 bits of mantissa)
            yo = 1.0 + rng.integers(0, 4, (m, n)) * ulps + rng.integers(0, 3, (m, n))
            ym = 1.0 + rng.integers(0, 4, (m, n_mis)) * ulps + rng.integers(0, 3, (m, n_mis))
        elif kind == "signed zeros":
            yo = rng.choice([-0.0, 0.0, -1.0, 1.0, -2.5], (m, n))
            ym = rng.choice([-0.0, 0.0, -1.5, 0.5], (m, n_mis))
        elif kind == "overflow":
            yo, ym = rng.uniform(-1, 1, (m, n)) * 1.7e308, rng.uniform(-1, 1, (m, n_mis)) * 1.7e308
        else:
            yo, ym = rng.standard_normal((m, n)), rng.standard_normal((m, n_mis))
            if kind == "not finite":
                yo[0, 0], ym[-1, -1] = np.inf, np.nan
        pick = rng.integers(0, k, (m, n_mis))
        with np.errstate(over="ignore", invalid="ignore"):
            expected = np.take_along_axis(_nearest_by_sorting(yo, ym, k), pick[:, :, None], axis=2)[:, :, 0]
            for scan_size, block in ((0, 2**16), (0, 1), (0, 2 * (n + n_mis)), (2**17, 2**16)):
                # the sorted predictions (all chains at once, one chain at a time, two at a time),
                # and the scan over every distance
                monkeypatch.setattr(missing, "_NEAREST_SCAN_SIZE", scan_size)
                monkeypatch.setattr(missing, "_DONOR_BLOCK", block)
                np.testing.assert_array_equal(missing._donor(yo, ym, k, pick), expected)
            if kind not in ("overflow", "not finite"):
                got = missing._donor_sorted(yo, ym, k, pick)
                if got is not None:
                    np.testing.assert_array_equal(got, expected)
                    sorted_answers += 1
                elif kind != "near ties":
                    raise AssertionError("only predictions a few ulps apart can be out of the integers' order")
    if kind == "near ties":  # both: sorted, and out of order (then ranked as _nearest)
        assert 0 < sorted_answers < 300
    elif kind not in ("overflow", "not finite"):
        assert sorted_answers == 300


def test_donors_are_matched_a_block_of_chains_at_a_time(monkeypatch):
    # Above _NEAREST_SCAN_SIZE the chains are sorted a few at a time (_DONOR_BLOCK predictions),
    # so that a block's arrays stay in cache: the same donors as all chains at once.
    rng = np.random.default_rng(3)
    yo, ym = rng.standard_normal((50, 5344)), rng.standard_normal((50, 456))
    pick = rng.integers(0, 5, ym.shape)
    seen, sorted_ = [], missing._donor_sorted
    monkeypatch.setattr(missing, "_donor_sorted", lambda o, mi, k, p: seen.append(o.shape[0]) or sorted_(o, mi, k, p))
    blocked = missing._donor(yo, ym, 5, pick)
    assert seen == [11, 11, 11, 11, 6]  # 2**16 // (5344 + 456) = 11 chains per block
    seen.clear()
    monkeypatch.setattr(missing, "_DONOR_BLOCK", 2**30)
    np.testing.assert_array_equal(missing._donor(yo, ym, 5, pick), blocked)
    assert seen == [50]


def test_imputation_runs_blas_on_one_thread(monkeypatch):
    # A multithreaded OpenBLAS splits the imputation's small products at a loss (one _impute at
    # 11,400 participants: 70-120 s instead of 10 s in an ordinary 2-core kernel): the chains run
    # inside one threadpoolctl limit of one BLAS thread, entered once around the arms' threads.
    import contextlib
    import threading

    import threadpoolctl

    entered, inside = [], []
    real = threadpoolctl.threadpool_limits

    @contextlib.contextmanager
    def spy(limits=None, user_api=None):
        entered.append((limits, user_api, threading.get_ident()))
        with real(limits=limits, user_api=user_api):
            yield

    def blas_threads():
        return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}

    chains = missing._mice_chains
    monkeypatch.setattr(threadpoolctl, "threadpool_limits", spy)
    monkeypatch.setattr(missing, "_mice_chains", lambda *a, **k: inside.append((len(entered), blas_threads())) or chains(*a, **k))
    monkeypatch.setattr(missing, "_GRAM_ROWS", 0)  # the arms in threads
    wide = derive.wide_outcomes(derive.adeff(synthetic.generate(5, 60, 60, exact=False)), ("VAS", "ODI", "PCS", "MCS"))
    before = blas_threads()
    missing._impute(wide, 12, 4, 3, derive.auxiliary_columns(wide), "arm", "site")
    missing.mice_pmm(wide[["vas_0", "vas_12", "odi_12"]], m=2, seed=1)
    assert entered == [(1, "blas", threading.get_ident())] * 2  # once per call, in the caller's thread
    assert inside == [(1, {1}), (1, {1}), (2, {1})]  # both arms, then mice_pmm: one BLAS thread
    assert blas_threads() == before


@pytest.mark.parametrize("n", [1, 2, 300, 5800, 2**16])
def test_radix_sorted_keys_are_those_of_np_sort(n):
    # _sorted_keys sorts _donor_sorted's keys (the column in the lowest 16 bits) by three stable
    # radix passes over the higher digits: np.sort's answer, negative keys and equal digits included.
    rng = np.random.default_rng(n)
    values = np.concatenate(
        [
            rng.choice([-1e300, -2.5, -0.0, 0.0, 1e-300, 3.0, 7.25], (3, n)),
            rng.standard_normal((3, n)) * 10.0 ** rng.integers(-300, 300, (3, n)),
        ]
    )
    key = values.view(np.int64)
    key = key ^ ((key >> 63) & missing._INT64_LOW)
    key &= np.int64(-(1 << 16))
    key |= np.arange(n)
    np.testing.assert_array_equal(missing._sorted_keys(key, 16), np.sort(key, axis=1))
    np.testing.assert_array_equal(missing._sorted_keys(key, 17), np.sort(key, axis=1))  # (np.sort itself)


def test_overlapping_imputations_share_one_blas_limit(monkeypatch):
    # The BLAS limit is the process's: two overlapping callers (imputations in two threads of a
    # user's program) share one, lifted by the last to leave. Lifted by the first, the second ran
    # with the process's threads; restored by the second, it stayed at one thread for good.
    import contextlib
    import threading

    import threadpoolctl

    events = []

    @contextlib.contextmanager
    def spy(limits=None, user_api=None):
        events.append(f"limit {limits}")
        yield
        events.append("lifted")

    monkeypatch.setattr(threadpoolctl, "threadpool_limits", spy)
    second_in, first_out = threading.Event(), threading.Event()

    def second():
        with missing._one_blas_thread():
            second_in.set()
            first_out.wait(10)
        events.append("second out")

    with missing._one_blas_thread():
        thread = threading.Thread(target=second)
        thread.start()
        assert second_in.wait(10)
    events.append("first out")
    first_out.set()
    thread.join(10)
    assert events == ["limit 1", "first out", "lifted", "second out"]
    assert missing._BLAS_LIMIT["users"] == 0 and missing._BLAS_LIMIT["limit"] is None
