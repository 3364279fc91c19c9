"""Intercurrent-event strategies of the primary estimand (issue 12): ADICE, the composite and the
hypothetical views, on small hand data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from respine_nb import config, derive, io, stats, synthetic

ARMS = config.ARMS


def _adsl(ids, arms):
    return pd.DataFrame({"USUBJID": ids, "SITEID": "S1", "ARM": arms})


def _ice(rows):
    return pd.DataFrame(rows, columns=["USUBJID", "ICETYPE", "ICEMON"]).assign(STUDYID=derive.STUDYID, SITEID="S1", ARM=ARMS[0])[
        derive.ADICE_COLUMNS
    ]


def test_adice_from_the_raw_table_and_without_it():
    adsl = _adsl(["A", "B", "C"], [ARMS[0], ARMS[1], ARMS[0]])
    raw = pd.DataFrame(
        {
            "subject_id": ["B", "A", "A", "Z"],  # Z is not randomised here: left out
            "event": ["spine_surgery", "rescue_medication", "other_spinal_injection", "spine_surgery"],
            "month": pd.array([14.5, 3.0, 2.5, 1.0], dtype="Float64"),
        }
    )
    out = derive.adice({"intercurrent_events": raw}, adsl)
    assert list(out.columns) == derive.ADICE_COLUMNS
    assert out[["USUBJID", "ICETYPE", "ICEMON"]].values.tolist() == [
        ["A", "other_spinal_injection", 2.5],
        ["A", "rescue_medication", 3.0],
        ["B", "spine_surgery", 14.5],
    ]
    assert out["ARM"].tolist() == [ARMS[0], ARMS[0], ARMS[1]]
    empty = derive.adice({}, adsl)
    assert list(empty.columns) == derive.ADICE_COLUMNS and empty.empty
    assert derive.strategy_note(empty, 12) == "; no intercurrent event recorded"


def _resp():
    # P1 responder, P2 non-responder, P3 not evaluable, P4 responder, P5 responder
    return pd.DataFrame(
        {
            "USUBJID": ["P1", "P2", "P3", "P4", "P5"],
            "ARM": [ARMS[0], ARMS[0], ARMS[0], ARMS[1], ARMS[1]],
            "AVAL": [1.0, 0.0, np.nan, 1.0, 1.0],
            "AVALC": ["Y", "N", None, "Y", "Y"],
            "EVALFL": ["Y", "Y", "N", "Y", "Y"],
            "NEREAS": [None, None, "missed visit", None, None],
        }
    )


def test_composite_sets_non_responders_at_or_before_the_visit_only():
    ice = _ice(
        [
            ("P1", "other_spinal_injection", 12.0),  # at the visit: counts
            ("P3", "spine_surgery", 6.5),  # not evaluable: becomes an evaluable non-responder
            ("P4", "rescue_medication", 2.0),  # rescue: treatment policy, unchanged
            ("P5", "spine_surgery", 12.5),  # after the visit: unchanged
        ]
    )
    out = derive.composite_responders(_resp(), ice, 12)
    assert out["AVAL"].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert out["AVALC"].tolist() == ["N", "N", "N", "Y", "Y"]
    assert out["EVALFL"].tolist() == ["Y", "Y", "Y", "Y", "Y"]
    assert out["NEREAS"].isna().all()
    assert out["ICEFL"].tolist() == ["Y", "N", "Y", "N", "N"]
    assert derive.strategy_note(ice, 12) == ""
    assert derive.strategy_note(ice, 6) == "; no spine surgery or other spinal injection recorded by month 6"
    # at month 6 only P3's surgery (6.5) is later: nothing changes
    assert derive.composite_responders(_resp(), ice, 6)["AVAL"].equals(_resp()["AVAL"])
    # no event: the responder view itself
    same = derive.composite_responders(_resp(), _ice([]), 12)
    pd.testing.assert_frame_equal(same.drop(columns="ICEFL"), _resp())


def _wide():
    d = {"subject_id": ["P1", "P2", "P3"], "arm": [ARMS[0], ARMS[0], ARMS[1]], "site": "S1", "treated": True}
    for v in config.VISITS:
        for m in ("vas", "odi", "pcs"):
            d[f"{m}_{v}"] = [10.0 + v, 20.0 + v, 30.0 + v]
    return pd.DataFrame(d)


def test_hypothetical_removes_values_at_and_after_the_first_event():
    ice = _ice([("P1", "spine_surgery", 6.0), ("P1", "other_spinal_injection", 2.5), ("P2", "rescue_medication", 1.0)])
    out = derive.hypothetical_wide(_wide(), ice)
    p1 = out.iloc[0]
    for v in config.VISITS:  # first event at 2.5: months 3, 6, 12, 24 removed, baseline and month 1 kept
        for m in ("vas", "odi", "pcs"):
            assert np.isnan(p1[f"{m}_{v}"]) == (v >= 3), (m, v)
    pd.testing.assert_frame_equal(out.iloc[1:], _wide().iloc[1:])  # rescue medication: unchanged
    pd.testing.assert_frame_equal(derive.hypothetical_wide(_wide(), _ice([])), _wide())


def test_strategy_events_counts_participants():
    ice = _ice([("P1", "spine_surgery", 6.0), ("P1", "other_spinal_injection", 2.5), ("P2", "other_spinal_injection", 13.0)])
    t = derive.strategy_events(ice, 12).set_index("event")
    assert t.loc["other spinal injection", ARMS[0]] == 2
    assert t.loc["surgery or injection by month 12", ARMS[0]] == 1
    assert t[ARMS[1]].sum() == 0


def test_strategies_on_a_generated_cohort_run_through_derive_all(tmp_path):
    tables = synthetic.generate(11, 20, 20)
    io.write_dataset(tables, tmp_path)
    ad = derive.derive_all(io.load_dataset(tmp_path).tables)
    assert set(ad) == set(derive.DATASETS) and list(ad["adice"].columns) == derive.ADICE_COLUMNS
    resp = derive.responders(ad["adsl"], ad["adeff"], 12)
    comp = derive.composite_responders(resp, ad["adice"], 12)
    hit = comp["ICEFL"] == "Y"
    assert (comp.loc[hit, "AVAL"] == 0).all() and comp.loc[~hit, "AVAL"].equals(resp.loc[~hit, "AVAL"])
    wide = derive.wide_outcomes(ad["adeff"])
    hyp = derive.hypothetical_wide(wide, ad["adice"])
    assert hyp.isna().sum().sum() >= wide.isna().sum().sum()
    row = stats.mi_risk_difference(hyp, 12, m=3, seed=1)
    assert len(row) == 1 and row["n"].iloc[0] == len(wide)


def test_auxiliary_columns_are_the_sf36_summaries():
    w = _wide().rename(columns=lambda c: c.replace("pcs_", "mcs_") if c.endswith("_24") else c)
    aux = derive.auxiliary_columns(w)
    assert aux == [f"pcs_{v}" for v in config.VISITS if v != 24] + ["mcs_24"]
    assert derive.auxiliary_columns(w[["subject_id", "vas_0"]]) == []


def _delta_rows(estimates, p_values):
    return pd.DataFrame({"delta": [0, 5, 10, 15, 20], "estimate": estimates, "p_value": p_values})


def test_delta_text_says_where_the_conclusion_changes():
    from respine_nb import tables

    vanish = tables.delta_text(_delta_rows([0.2, 0.15, 0.1, 0.05, 0.0], [0.001, 0.02, 0.08, 0.3, 1.0]))
    assert "vanishes from D = 10 mm" in vanish and "p = 0.08" in vanish
    becomes = tables.delta_text(_delta_rows([0.0, -0.05, -0.1, -0.15, -0.2], [1.0, 0.4, 0.1, 0.03, 0.01]))
    assert "becomes significant in favour of sham from D = 15 mm" in becomes
    none = tables.delta_text(_delta_rows([0.0, -0.01, -0.02, -0.03, -0.04], [0.9, 0.8, 0.7, 0.6, 0.5]))
    assert (
        none.startswith("In the delta-adjusted imputation, no penalty D from 0 to 20 mm changes")
        and "+0.0 to -4.0 percentage points" in none
    )
    flat = tables.delta_text(_delta_rows([0.125] * 5, [0.53] * 5))
    assert "the difference stays at +12.5 percentage points" in flat
    nan = tables.delta_text(_delta_rows([np.nan] * 5, [np.nan] * 5))
    assert "not estimable" in nan


def test_mc_error_text_compares_with_the_se():
    from respine_nb import tables

    small = tables.mc_error_text({"m": 50, "se": 0.089, "mc_error": 0.0036})
    assert "is 4 % of its standard error" in small and "small (below 10 %)" in small
    large = tables.mc_error_text({"m": 5, "se": 0.1, "mc_error": 0.02})
    assert "not small" in large and "about m = 20 imputations" in large
    assert "not estimable" in tables.mc_error_text({"m": 5, "se": np.nan, "mc_error": np.nan})
    assert "no Monte Carlo error" in tables.mc_error_text({"m": 5, "se": 0.2, "mc_error": 0.0})


def test_contrasts_table_keeps_unrounded_p_and_the_method():
    from respine_nb import tables

    p1 = pd.DataFrame(
        {
            "analysis": ["responders", "risk_difference"],
            "group": [ARMS[0], config.CONTRAST],
            "estimate": [0.74, 0.0463],
            "ci_low": [0.6, -0.129],
            "ci_high": [0.84, 0.218],
            "p_value": [np.nan, 0.7747],
            "n": [50, 99],
            "method": ["Wilson", "Newcombe; Yates"],
        }
    )
    arms = p1.drop(columns="analysis").assign(method=["Wilson", "Newcombe; Fisher"])
    mi = pd.DataFrame(
        {"group": [config.CONTRAST], "estimate": [np.nan], "p_value": [np.nan], "n": [114], "method": ["MI; not estimable: x"]}
    )
    t = tables.contrasts_table({"Primary": p1, "Composite": arms, "MI": mi}, "t").frame
    assert list(t.columns) == ["Analysis", "Estimate", "95 % CI", "p", "n", "Method"]
    assert t["p"].tolist() == ["0.77", "0.77", tables.DASH]
    assert t["Method"].tolist() == ["Newcombe; Yates", "Newcombe; Fisher", "MI; not estimable: x"]
    assert t["Estimate"].tolist()[:2] == ["0.046", "0.046"] and t["n"].tolist() == ["99", "99", "114"]
