"""ADaM-lite derivations on hand-made tables; inputs never mutated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from respine_nb import derive


def make_tables(outcome_rows, subjects_extra=None):
    ids = sorted({r[0] for r in outcome_rows} | set((subjects_extra or {}).keys()))
    subjects = pd.DataFrame(
        {
            "subject_id": pd.array(ids, dtype="string"),
            "site": pd.array(["Nantes"] * len(ids), dtype="string"),
            "arm": pd.array(["BM-MSC" if i % 2 == 0 else "Sham" for i in range(len(ids))], dtype="string"),
            "randomization_date": pd.to_datetime(["2020-01-01"] * len(ids)),
            "treated": pd.array([True] * len(ids), dtype="boolean"),
            "age": pd.array([40] * len(ids), dtype="Int64"),
            "sex": pd.array(["F"] * len(ids), dtype="string"),
            "bmi": pd.array([25.0] * len(ids), dtype="Float64"),
            "symptom_duration_months": pd.array([24.0] * len(ids), dtype="Float64"),
            "disc_level": pd.array(["L4-L5"] * len(ids), dtype="string"),
            "pfirrmann_grade": pd.array([5] * len(ids), dtype="Int64"),
            "discontinuation_month": pd.array([(subjects_extra or {}).get(i) for i in ids], dtype="Float64"),
            "discontinuation_reason": pd.array(
                ["moved away" if (subjects_extra or {}).get(i) is not None else None for i in ids], dtype="string"
            ),
        }
    )
    o = pd.DataFrame(outcome_rows, columns=["subject_id", "visit_month", "vas_pain", "odi"])
    outcomes = pd.DataFrame(
        {
            "subject_id": pd.array(o["subject_id"], dtype="string"),
            "visit_month": pd.array(o["visit_month"], dtype="Int64"),
            "vas_pain": pd.array(o["vas_pain"], dtype="Float64"),
            "odi": pd.array(o["odi"], dtype="Float64"),
            "sf36_pcs": pd.array([30.0] * len(o), dtype="Float64"),
            "sf36_mcs": pd.array([40.0] * len(o), dtype="Float64"),
        }
    )
    mri = pd.DataFrame(
        {
            "subject_id": pd.array(ids, dtype="string"),
            "visit_month": pd.array([0] * len(ids), dtype="Int64"),
            "t2_np_ms": pd.array([60.0] * len(ids), dtype="Float64"),
            "pfirrmann_grade": pd.array([5] * len(ids), dtype="Int64"),
            "disc_height_mm": pd.array([9.0] * len(ids), dtype="Float64"),
        }
    )
    ae = pd.DataFrame(
        {
            "subject_id": pd.array([], dtype="string"),
            "term": pd.array([], dtype="string"),
            "onset_day": pd.array([], dtype="Int64"),
            "serious": pd.array([], dtype="boolean"),
            "related": pd.array([], dtype="boolean"),
            "severity": pd.array([], dtype="string"),
        }
    )
    return {"subjects": subjects, "outcomes": outcomes, "mri": mri, "adverse_events": ae}


ROWS = [
    # A: responder first at month 3 (VAS 80 -> 55 = 25 mm, 31 %)
    ("A", 0, 80, 40),
    ("A", 1, 70, 38),
    ("A", 3, 55, 38),
    ("A", 6, 50, 30),
    ("A", 12, 50, 30),
    # B: never responds; last evaluable visit 12 (24 missing)
    ("B", 0, 60, 40),
    ("B", 1, 58, 39),
    ("B", 12, 55, 35),
    # C: month 1 not evaluable (ODI missing, VAS not met), responder at 6 via ODI: interval (0, 6]
    ("C", 0, 70, 50),
    ("C", 1, 65, None),
    ("C", 6, 68, 38),
    # D: discontinued at month 2: no post-baseline row: left out of adtte
    ("D", 0, 70, 50),
    # E: misses month 12: not evaluable (missed visit)
    ("E", 0, 70, 50),
    ("E", 1, 70, 50),
    ("E", 24, 70, 50),
]


@pytest.fixture
def tables():
    return make_tables(ROWS, {"D": 2.0})


def test_responders_and_reasons(tables):
    r = derive.responders(tables, 12).set_index("subject_id")
    assert r.loc["A", "responder"] is True or bool(r.loc["A", "responder"]) is True
    assert bool(r.loc["B", "responder"]) is False
    assert r.loc["C", "reason"] == "missed visit"
    assert r.loc["D", "reason"] == "discontinued"
    assert r.loc["E", "reason"] == "missed visit"
    assert r["evaluable"].tolist() == [True, True, False, False, False]


def test_adtte_events_censoring_and_intervals(tables):
    tte = derive.adtte(tables).set_index("subject_id")
    assert sorted(tte.index) == ["A", "B", "C", "E"]  # D never evaluable after baseline
    assert tte.loc["A", ["time", "event", "left", "right"]].tolist() == [3.0, True, 1.0, 3.0]
    assert tte.loc["B", ["time", "event", "left"]].tolist() == [12.0, False, 12.0] and np.isinf(tte.loc["B", "right"])
    assert tte.loc["C", ["time", "event", "left", "right"]].tolist() == [6.0, True, 0.0, 6.0]
    assert tte.loc["E", ["time", "event"]].tolist() == [24.0, False]


def test_adeff_grid_and_flags(tables):
    eff = derive.adeff(tables)
    assert len(eff) == 5 * 6 * 4  # every participant x scheduled visit x measure
    a3 = eff[(eff["subject_id"] == "A") & (eff["visit_month"] == 3) & (eff["measure"] == "vas_pain")].iloc[0]
    assert a3["change"] == -25 and a3["pct_change"] == pytest.approx(-31.25) and bool(a3["mcid"]) is True
    assert bool(a3["responder"]) is True
    status = eff[(eff["subject_id"] == "D") & (eff["measure"] == "odi")].set_index("visit_month")["visit_status"]
    assert status.loc[0] == "observed" and status.loc[1] == "missed" and status.loc[3] == "discontinued"


def test_adsl_flags(tables):
    adsl = derive.adsl(tables).set_index("subject_id")
    assert adsl["randfl"].all() and adsl["saffl"].all()
    assert adsl["complfl"].tolist() == [True, True, True, False, True]
    assert adsl.loc["A", "base_vas_pain"] == 80 and adsl.loc["A", "base_t2_np_ms"] == 60


def test_thresholds_pass_through(tables):
    strict = derive.responders(tables, 3, vas_abs_mm=30).set_index("subject_id")
    assert bool(strict.loc["A", "responder"]) is False
    with pytest.raises(TypeError):
        derive.responders(tables, 3, vas_mm=30)


def test_no_input_mutated(default_tables):
    before = {k: v.copy(deep=True) for k, v in default_tables.items()}
    derive.derive_all(default_tables)
    for k, v in default_tables.items():
        pd.testing.assert_frame_equal(v, before[k])


def test_subgroup_levels_with_a_missing_baseline_vas():
    # was: "boolean value of NA is ambiguous" as soon as one baseline VAS was missing
    adsl = pd.DataFrame(
        {
            "subject_id": ["a", "b", "c", "d"],
            "sex": ["F", "M", "F", "M"],
            "age": [30, 45, 50, 39],
            "pfirrmann_grade": pd.array([4, 6, pd.NA, 3], dtype="Int64"),
            "disc_level": ["L4-L5", "L5-S1", "L2-L3", "L4-L5"],
            "base_vas_pain": pd.array([60.0, pd.NA, 70.0, 80.0], dtype="Float64"),
        }
    )
    before = adsl.copy()
    got = derive.subgroup_levels(adsl)
    assert list(got["vas_group"]) == ["<= 70 mm", None, "<= 70 mm", "> 70 mm"]
    assert list(got["grade_group"]) == ["4-5", "6-8", None, "1-3"]
    assert list(got["age_group"]) == ["< 40", ">= 40", ">= 40", "< 40"]
    pd.testing.assert_frame_equal(adsl, before)


def test_treated_population_and_its_deprecated_alias(tables):
    resp = derive.responders(tables, 12).assign(treated=lambda d: [True] * (len(d) - 1) + [False])
    treated = derive.population(resp, "treated")
    assert len(treated) == len(resp) - 1 and treated["treated"].all()
    pd.testing.assert_frame_equal(derive.population(resp, "per_protocol"), treated)
    assert "treated" in derive.POPULATIONS and "per_protocol" not in derive.POPULATIONS
    assert derive.POPULATION_LABELS["treated"] == "Treated (as randomised, received the procedure)"
    with pytest.raises(ValueError, match="population"):
        derive.population(resp, "pp")
