"""Time-to-response statistics against R survival 3.x (values computed once; R not needed here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from respine_nb import config, derive, stats

# adtte of a 30 + 30 synthetic cohort; the file keeps the names its R script reads, the tests give
# them the ADaM names (CNSR = 1 - event)
_RAW = pd.read_csv(config.ROOT / "tests" / "data" / "tte_small.csv")
TTE = pd.DataFrame(
    {
        "USUBJID": _RAW["subject_id"],
        "ARM": _RAW["arm"],
        "AVAL": _RAW["time"].astype(float),
        "CNSR": 1 - _RAW["event"].astype(bool).astype(int),
        "INTLO": _RAW["left"].astype(float),
        "INTHI": _RAW["right"].astype(float),
        "BVAS": _RAW["base_vas"],
        "BODI": _RAW["base_odi"],
    }
)

# R: d <- read.csv("tests/data/tte_small.csv"); d$event <- as.logical(d$event); d$msc <- as.numeric(d$arm == "BM-MSC")


def test_km_median_and_ci():
    got = stats.km_summary(TTE).set_index("group")
    # R: quantile(survfit(Surv(time, event) ~ 1, data = x, conf.type = "log-log"), 0.5)   (x: one arm)
    assert got.loc["BM-MSC", ["estimate", "ci_low", "ci_high"]].tolist() == [1.0, 1.0, 3.0]
    assert got.loc["Sham", ["estimate", "ci_low", "ci_high"]].tolist() == [3.0, 1.0, 3.0]


def test_km_median_rule_on_a_flat_half():
    # R: quantile(survfit(Surv(c(1, 2, 3, 4), c(1, 1, 0, 1)) ~ 1), 0.5)$quantile -> 2.5? no: S = .75, .5 at 2,
    #    then flat 0.5 until 4: R returns (2 + 4) / 2 = 3
    times = np.array([1.0, 2.0, 3.0, 4.0])
    surv = np.array([0.75, 0.5, 0.5, 0.0])
    assert stats.km_median(times[[0, 1, 3]], surv[[0, 1, 3]]) == 3.0
    assert np.isnan(stats.km_median(np.array([1.0, 2.0]), np.array([0.9, 0.8])))  # not reached


def test_logrank_against_survdiff():
    got = stats.logrank(TTE).iloc[0]
    # R: survdiff(Surv(time, event) ~ arm, data = d)$chisq; 1 - pchisq(chisq, 1)
    assert got["statistic"] == pytest.approx(0.0024987268, rel=1e-6)
    assert got["p_value"] == pytest.approx(0.9601325357, rel=1e-8)


def test_cox_against_coxph():
    row = stats.cox(TTE)
    fit, frame = stats.fit_cox(TTE)
    r = row.iloc[0]
    # R: summary(coxph(Surv(time, event) ~ msc, data = d))   (Efron ties, the default)
    assert r["coef"] == pytest.approx(0.0326042977, rel=1e-6)
    assert r["se"] == pytest.approx(0.2824050107, rel=1e-6)
    assert r["p_value"] == pytest.approx(0.9080866556, rel=1e-6)
    assert r["estimate"] == pytest.approx(1.0331416418, rel=1e-7)
    assert r["ci_low"] == pytest.approx(0.5939861050, rel=1e-6) and r["ci_high"] == pytest.approx(1.7969808438, rel=1e-6)
    adj = stats.cox(TTE, ["BVAS", "BODI"]).iloc[0]
    assert adj["method"].endswith("; adjusted for base_vas, base_odi")  # as results.csv has always said
    # R: summary(coxph(Surv(time, event) ~ msc + base_vas + base_odi, data = d))$coefficients[1, ]
    assert adj["coef"] == pytest.approx(-0.0168319442, rel=1e-5)
    assert adj["se"] == pytest.approx(0.2863177631, rel=1e-6)
    # R: cox.zph(coxph(...), transform = "km") gives chisq 2.98, p 0.084 (the score test of
    # survival >= 3.0); lifelines' Schoenfeld test is the older weighted-residual form: same
    # verdict, not the same number.
    ph = stats.ph_test(fit, frame).iloc[0]
    assert ph["p_value"] == pytest.approx(0.084, abs=0.02)


def test_turnbull_against_survfit_interval2():
    got = stats.turnbull(TTE)
    # R: summary(survfit(Surv(left, right, type = "interval2") ~ 1, data = x))$surv   (right = NA when inf)
    msc = got[(got["group"] == "BM-MSC") & np.isfinite(got["upper"])]["survival"].to_numpy()
    sham = got[(got["group"] == "Sham") & np.isfinite(got["upper"])]["survival"].to_numpy()
    assert msc == pytest.approx([0.3793103448, 0.2758620690, 0.2413793103, 0.1724137931, 0.1149425287], abs=1e-8)
    # R's EM stops at its own tolerance: 0.2902323141 where the exact maximum (direct maximisation
    # of the likelihood over the simplex, and our EM run to 1e-12) is 0.2902298851.
    assert sham == pytest.approx([0.5517241379, 0.2902323141, 0.1034482759], abs=5e-6)
    assert sham[1] == pytest.approx(0.2902298851, abs=1e-9)
    toy = stats.turnbull_npmle([0, 0, 1, 3], [1, 1, 3, np.inf])
    # R: summary(survfit(Surv(c(0, 0, 1, 3), c(1, 1, 3, NA), type = "interval2") ~ 1))$surv -> 0.50 0.25
    assert toy["survival"].tolist()[:2] == pytest.approx([0.5, 0.25], abs=1e-10)


def test_weibull_interval_against_survreg():
    got = stats.weibull_interval(TTE).iloc[0]
    # R: survreg(Surv(ifelse(left == 0, NA, left), right, type = "interval2") ~ msc, d, dist = "weibull")
    #    coef -0.0107270129, se 0.8015392272, p 0.9893222163. lifelines stops 6e-5 short on the
    #    coefficient (under 1e-4 of its SE): the tolerance below says so.
    assert np.log(got["estimate"]) == pytest.approx(-0.0107270129, abs=2e-4)
    assert got["p_value"] == pytest.approx(0.9893222163, abs=1e-3)


def test_durability_and_status(default_tables):
    eff = derive.adeff(default_tables)
    st = derive.status_by_visit(eff)
    assert set(st["STATUS"]) <= {"responder", "non-responder", "not evaluable", "discontinued"}
    assert len(st) == 114 * 5
    dur = stats.durability(st).set_index("group")
    assert dur.loc["BM-MSC", "responders_at_start"] == 39 and dur.loc["Sham", "responders_at_start"] == 31
    assert (dur["n"] + dur["not_evaluable_later"] == dur["responders_at_start"]).all()


def test_cox_ci_at_another_level():
    # was: at a level other than 0.95 the bounds were exponentiated twice
    r = stats.cox(TTE, level=0.90).iloc[0]
    # R: exp(confint(coxph(Surv(time, event) ~ msc, data = d), level = 0.90))
    assert r["ci_low"] == pytest.approx(0.6492674132, rel=1e-6) and r["ci_high"] == pytest.approx(1.6439784754, rel=1e-6)
    assert r["estimate"] == pytest.approx(1.0331416418, rel=1e-7)


def test_weibull_interval_at_another_level():
    # was: KeyError 'coef lower 95%' at any level other than 0.95
    got = stats.weibull_interval(TTE, level=0.90).iloc[0]
    # R: exp(confint(survreg(Surv(ifelse(left == 0, NA, left), right, type = "interval2") ~ msc, d,
    #                        dist = "weibull"), level = 0.90))["msc", ]   (right = NA when inf)
    #    0.2647043548 3.6976137980; lifelines stops 6e-5 short on the coefficient (see above)
    assert got["ci_low"] == pytest.approx(0.2647043548, rel=5e-4)
    assert got["ci_high"] == pytest.approx(3.6976137980, rel=5e-4)


def test_survival_not_estimable_without_events():
    none = TTE.assign(CNSR=1, INTHI=np.inf, INTLO=TTE["AVAL"])
    for row in (stats.cox(none), stats.logrank(none), stats.weibull_interval(none)):
        assert np.isnan(row["estimate"].iloc[0] if "estimate" in row else row["p_value"].iloc[0])
        assert row["method"].iloc[0].endswith("not estimable: no event in either arm")
    fit, frame = stats.fit_cox(none)
    assert fit is None
    ph = stats.ph_test(fit, frame)
    assert np.isnan(ph["p_value"].iloc[0]) and "not estimable" in ph["method"].iloc[0]
    km = stats.km_summary(none)
    assert km["estimate"].isna().all() and km["method"].str.endswith("not estimable: median not reached").all()


def test_survival_with_an_empty_arm():
    msc = TTE[TTE["ARM"] == "BM-MSC"]
    assert stats.cox(msc)["method"].iloc[0].endswith("not estimable: no participant evaluable after baseline in Sham")
    assert stats.logrank(msc)["method"].iloc[0].endswith("no participant evaluable after baseline in Sham")
    km = stats.km_summary(msc).set_index("group")
    assert km.loc["Sham", "n"] == 0 and np.isnan(km.loc["Sham", "estimate"])
    assert set(stats.turnbull(msc)["group"]) == {"BM-MSC"}
    shamless = msc.assign(CNSR=1)  # no event in one arm only: the hazard ratio would be 0 or infinite
    assert "not estimable: no event in" in stats.cox(pd.concat([shamless, TTE[TTE["ARM"] == "Sham"]]))["method"].iloc[0]


def test_durability_when_month_24_not_reached():
    status = pd.DataFrame(
        {
            "USUBJID": ["a", "b", "c"],
            "ARM": ["BM-MSC", "Sham", "BM-MSC"],
            "AVISITN": [12, 12, 12],
            "STATUS": ["responder", "responder", "non-responder"],
        }
    )
    d = stats.durability(status)
    assert d["estimate"].isna().all() and d["method"].str.endswith("not estimable: no participant reached month 24").all()
    assert (d["method"].str.startswith("responders at month 12 still responding at month 24; Wilson CI")).all()


def test_durability_without_a_later_visit():
    status = pd.DataFrame({"USUBJID": ["a"], "ARM": ["BM-MSC"], "AVISITN": [24], "STATUS": ["responder"]})
    d = stats.durability(status, from_visit=24, to_visit=24)
    assert d["group"].tolist() == list(config.ARMS) and d[["estimate", "n", "events"]].isna().all().all()
    assert (
        d["method"] == "responders at month 24 still responding at month 24; Wilson CI; not estimable: no visit after month 24"
    ).all()
