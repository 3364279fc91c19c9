"""respine_nb.design: the Yates test and exact power against R, simulated power and type I error
within Monte Carlo error, the same numbers on 1 or 2 workers, and a sweep on a separate Dask cluster."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from respine_nb import derive, design

BIN = Path(sys.executable).parent
P_MSC, P_SHAM = 39 / 53, 31 / 45  # the published 74 % vs 69 %


def test_yates_p_matches_chisq_test():
    # R: chisq.test(matrix(c(39, 14, 31, 14), 2))$p.value  -> 0.7729968
    # R: chisq.test(matrix(c(3, 7, 9, 1), 2))$p.value      -> 0.022478873
    p = design.yates_p([39, 3], [53, 10], [31, 9], [45, 10])
    np.testing.assert_allclose(p, [0.7729968, 0.022478873], rtol=1e-6)
    assert np.isnan(design.yates_p(0, 10, 0, 10))  # a zero margin: R gives NaN


@pytest.mark.parametrize(
    "p1, p2, n1, n2, expected",
    [
        # R: sum over x1, x2 of dbinom(x1, n1, p1) * dbinom(x2, n2, p2) *
        #    (chisq.test(matrix(c(x1, n1 - x1, x2, n2 - x2), 2), correct = TRUE)$p.value < 0.05), NaN p not counted
        (P_MSC, P_SHAM, 53, 45, 0.0492568458),
        (0.74, 0.69, 50, 50, 0.0570307583),
        (0.69, 0.69, 50, 50, 0.0305413699),
        (0.69, 0.69, 100, 100, 0.0347620778),
        (0.45, 0.69, 40, 40, 0.5135225144),
        # R: the same sum with chisq.test's Yates statistic written as outer() arithmetic over the
        #    binomials' support (dbinom > 1e-16), checked equal to the loop above at n = 53/45
        (P_MSC, P_SHAM, 1497, 1497, 0.7996648812),
        (P_MSC, P_SHAM, 1498, 1498, 0.8000143968),
    ],
)
def test_exact_power_matches_r(p1, p2, n1, n2, expected):
    assert design.exact_power(p1, p2, n1, n2) == pytest.approx(expected, rel=1e-6)


def test_sample_size_at_the_published_proportions():
    # from the R values above: power 0.79966 at 1497 per arm, 0.80001 at 1498
    assert design.sample_size(P_MSC, P_SHAM) == 1498
    assert design.sample_size(0.5, 0.5) is None


def _mc_band(rate, n_trials, z=4.0):
    return z * np.sqrt(rate * (1 - rate) / n_trials)


def test_simulated_power_agrees_with_exact_power():
    oc = design.sweep([50, 200], p_responder=(0.45, 0.69), analyses=("responder",), dropout=0.0, n_trials=20000, seed=7,
                      client=None, progress=False)  # fmt: skip
    for row in oc.itertuples():
        q1 = 0.45 if row.hypothesis == "alternative" else 0.69
        exact = design.exact_power(q1, 0.69, row.n_per_arm, row.n_per_arm)
        assert abs(row.rejection_rate - exact) < _mc_band(exact, row.n_trials), (row, exact)


def test_type_one_error_of_each_analysis():
    """Yates: conservative (below 5 %, within MC error of its exact size); ANCOVA: within MC error of 5 %."""
    oc = design.sweep([50, 150], analyses=("responder", "ancova"), n_trials=8000, seed=11, progress=False)
    null = oc[oc["hypothesis"] == "null"]
    for row in null.itertuples():
        if row.analysis == "responder":
            n_eval = round(row.n_per_arm * 0.9)  # dropout 0.1: about this many evaluable
            assert row.rejection_rate <= 0.05 + _mc_band(0.05, row.n_trials)
            assert abs(row.rejection_rate - design.exact_power(P_SHAM, P_SHAM, n_eval, n_eval)) < 0.01
        else:
            assert abs(row.rejection_rate - 0.05) < _mc_band(0.05, row.n_trials)
            assert abs(row.coverage - 0.95) < _mc_band(0.05, row.n_trials)


def test_same_numbers_on_one_and_two_workers():
    kw = dict(analyses=("responder", "ancova"), n_trials=600, batch_size=100, seed=3, progress=False)
    with design.engine(n_workers=1) as one:
        a = design.sweep([30, 60], client=one, **kw)
    with design.engine(n_workers=2) as two:
        b = design.sweep([30, 60], client=two, **kw)
    pd.testing.assert_frame_equal(a, b)


def test_mmrm_runs_as_tasks():
    oc = design.sweep([40], analyses=("mmrm",), n_trials_mmrm=4, seed=5, progress=False)
    assert set(oc["analysis"]) == {"mmrm"} and (oc["n_estimated"] == 4).all()


def test_primary_design_on_the_reference_cohort_and_an_empty_arm(default_tables):
    d = derive.derive_all(default_tables)  # tests/data/cohort_v1: 39/53 vs 31/45
    counts = design.observed_counts(derive.responders(d["adsl"], d["adeff"], 12))
    out = design.primary_design(counts, 2000, 1).set_index("analysis")
    assert out.loc["sample_size", "estimate"] == 1498
    assert out.loc["power_exact", "estimate"] == pytest.approx(0.0492568458, rel=1e-6)
    empty = counts.copy()
    empty.loc["Sham", ["evaluable", "responders"]] = 0
    empty["proportion"] = empty["responders"] / empty["evaluable"].where(empty["evaluable"] > 0)
    out = design.primary_design(empty, 100, 1)
    assert out["estimate"].isna().all() and out["method"].str.contains("not estimable").all()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sweep_on_a_separate_scheduler_and_worker(tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(tmp_path / "dask.log", "w")
    scheduler = subprocess.Popen(
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
        stdout=log, stderr=log,
    )  # fmt: skip
    worker = None
    try:
        worker = subprocess.Popen(
            [str(BIN / "dask"), "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
             "--host", "127.0.0.1"], stdout=log, stderr=log,
        )  # fmt: skip
        from distributed import Client

        deadline = time.time() + 60
        with Client(address, timeout=30, set_as_default=False) as client:
            while not client.scheduler_info()["workers"] and time.time() < deadline:
                time.sleep(0.2)
            kw = dict(analyses=("responder", "ancova"), n_trials=400, batch_size=100, seed=9, progress=False)
            remote = design.sweep([40], client=client, **kw)
        local = design.sweep([40], **kw)
        pd.testing.assert_frame_equal(remote, local)
        remote_by_address = design.sweep([40], scheduler_address=address, **kw)
        pd.testing.assert_frame_equal(remote_by_address, local)
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
        log.close()


def test_in_process_and_dask_give_the_same_numbers():
    kw = dict(analyses=("responder", "ancova"), n_trials=300, batch_size=100, seed=4, progress=False)
    assert not design.uses_dask(kw["analyses"])
    local = design.sweep([30, 60], **kw)
    with design.engine(n_workers=2) as client:
        pd.testing.assert_frame_equal(local, design.sweep([30, 60], client=client, **kw))


def test_ancova_by_per_arm_sums_matches_least_squares():
    rng = np.random.default_rng(2)
    y, arm, complete = design._vas_trials(rng, 3, 25, 10.0, 0.3, "MAR", design.DEFAULT_CALIBRATION, (0, 6, 12))
    est, low, high, p = design._ancova_batch(y, 25, complete, 0.95)
    for t in range(3):
        keep = complete[t]
        X = np.column_stack([np.ones(keep.sum()), arm[keep], y[t, 0, keep]])
        beta = np.linalg.lstsq(X, y[t, -1, keep] - y[t, 0, keep], rcond=None)[0]
        assert est[t] == pytest.approx(beta[1], rel=1e-9)


def test_contract_rows_without_an_evaluable_arm(default_tables):
    d = derive.derive_all(default_tables)
    counts = design.observed_counts(derive.responders(d["adsl"], d["adeff"], 12))
    counts.loc["Sham", ["evaluable", "responders"]] = 0
    counts["proportion"] = counts["responders"] / counts["evaluable"].where(counts["evaluable"] > 0)
    oc = design.sweep([30], p_responder=design.observed_proportions(counts), n_trials=200, seed=1, progress=False)
    assert set(oc["analysis"]) == {"ancova"}  # the responder analysis needs both arms' proportions
    out = design.contract_rows(design.primary_design(counts, 100, 1), oc, 12)
    assert list(out["analysis_id"]) == list(design.RESULT_IDS.values()) + [
        "design.type1.responder", "design.type1.vas_ancova", "design.sample_size.vas_ancova"
    ]  # fmt: skip
    responder = out[out["analysis_id"].str.contains("primary|responder")]
    assert responder["estimate"].isna().all() and responder["method"].str.contains("not estimable").all()
    text = design.interpretation(counts, design.primary_design(counts, 100, 1), oc, 10.0, 12)
    assert "not estimable" in text and "nan" not in text.lower()
