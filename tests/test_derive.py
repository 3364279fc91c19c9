"""ADaM-lite derivations on hand-made tables; inputs never mutated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from respine_nb import config, derive


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


def resp_at(tables, visit, **rule):
    """The responder view at ``visit`` (ADSL with the ADEFF RESP record), indexed by USUBJID."""
    ad = derive.derive_all(tables, visit, **rule)
    return derive.responders(ad["adsl"], ad["adeff"], visit).set_index("USUBJID")


def test_responders_and_reasons(tables):
    r = resp_at(tables, 12)
    assert r.loc["A", "AVAL"] == 1 and r.loc["A", "AVALC"] == "Y"
    assert r.loc["B", "AVAL"] == 0 and r.loc["B", "AVALC"] == "N"
    assert r.loc["C", "NEREAS"] == "missed visit"
    assert r.loc["D", "NEREAS"] == "discontinued"
    assert r.loc["E", "NEREAS"] == "missed visit"
    assert r["EVALFL"].tolist() == ["Y", "Y", "N", "N", "N"]
    assert r["AVAL"].isna().tolist() == [False, False, True, True, True]


def test_adsl_primary_visit_status_is_the_resp_record(tables):
    ad = derive.derive_all(tables, 12)
    adsl = ad["adsl"].set_index("USUBJID")
    assert (adsl["EVALVIS"] == 12).all()
    assert adsl["RESPFL"].tolist() == ["Y", "N", None, None, None]
    assert adsl["EVALFL"].tolist() == ["Y", "Y", "N", "N", "N"]
    assert adsl["NEREAS"].tolist() == [None, None, "missed visit", "discontinued", "missed visit"]


def test_adtte_events_censoring_and_intervals(tables):
    ad = derive.derive_all(tables)
    tte = ad["adtte"].set_index("USUBJID")
    assert sorted(tte.index) == ["A", "B", "C", "E"]  # D never evaluable after baseline
    assert (tte["PARAMCD"] == "TTRESP").all()
    assert tte.loc["A", ["AVAL", "CNSR", "INTLO", "INTHI"]].tolist() == [3.0, 0, 1.0, 3.0]
    assert tte.loc["B", ["AVAL", "CNSR", "INTLO"]].tolist() == [12.0, 1, 12.0] and np.isinf(tte.loc["B", "INTHI"])
    assert tte.loc["C", ["AVAL", "CNSR", "INTLO", "INTHI"]].tolist() == [6.0, 0, 0.0, 6.0]
    assert tte.loc["E", ["AVAL", "CNSR"]].tolist() == [24.0, 1]
    assert tte.loc["A", "BVAS"] == 80 and tte.loc["A", "BODI"] == 40


def test_adeff_grid_and_flags(tables):
    eff = derive.adeff(tables)
    measures = eff[eff["PARAMCD"].isin(["VAS", "ODI", "PCS", "MCS"])]
    assert len(measures) == 5 * 6 * 4  # every participant x scheduled visit x measure
    assert len(eff[eff["PARAMCD"] == "RESP"]) == 5 * 5  # every participant x post-baseline visit
    assert len(eff[eff["PARAMCD"].isin(["MCIDVAS", "MCIDODI"])]) == 5 * 5 * 2

    def at(sid, visit, code):
        return eff[(eff["USUBJID"] == sid) & (eff["AVISITN"] == visit) & (eff["PARAMCD"] == code)].iloc[0]

    a3 = at("A", 3, "VAS")
    assert a3["CHG"] == -25 and a3["PCHG"] == pytest.approx(-31.25) and a3["BASE"] == 80 and a3["AVAL"] == 55
    assert at("A", 3, "MCIDVAS")["AVAL"] == 1 and at("A", 3, "MCIDVAS")["AVALC"] == "Y"
    r = at("A", 3, "RESP")
    assert r["AVAL"] == 1 and r["CRIT1FL"] == "Y" and r["CRIT2FL"] == "N"
    assert (
        r["CRIT1"] == "VAS improved by >= 20 mm and >= 20 % of baseline" and r["CRIT2"] == "ODI improved by >= 20 % of baseline"
    )
    c1 = at("C", 1, "RESP")  # ODI missing, VAS not met: undecided
    assert np.isnan(c1["AVAL"]) and c1["CRIT1FL"] == "N" and c1["CRIT2FL"] is None and c1["NEREAS"] == "component missing"
    assert at("A", 0, "VAS")["ABLFL"] == "Y" and at("A", 1, "VAS")["ABLFL"] is None
    status = eff[(eff["USUBJID"] == "D") & (eff["PARAMCD"] == "ODI")].set_index("AVISITN")["VISSTAT"]
    assert status.loc[0] == "observed" and status.loc[1] == "missed" and status.loc[3] == "discontinued"


def test_absolute_rule_in_the_criteria(tables):
    eff = derive.adeff(tables, odi_rule="absolute")
    resp = eff[eff["PARAMCD"] == "RESP"]
    assert (resp["CRIT2"] == "ODI improved by >= 20 points").all()
    # C at month 6: ODI 50 -> 38 is 24 % (relative met) but 12 points (absolute not met); VAS 70 -> 68 not met
    c6 = resp[(resp["USUBJID"] == "C") & (resp["AVISITN"] == 6)].iloc[0]
    assert c6["CRIT2FL"] == "N" and c6["AVAL"] == 0


def test_adsl_flags(tables):
    adsl = derive.adsl(tables).set_index("USUBJID")
    assert (adsl["RANDFL"] == "Y").all() and (adsl["SAFFL"] == "Y").all() and (adsl["NRIFL"] == "Y").all()
    assert adsl["COMPLFL"].tolist() == ["Y", "Y", "Y", "N", "Y"]
    assert adsl.loc["A", "BVAS"] == 80 and adsl.loc["A", "BT2"] == 60
    assert adsl.loc["D", "DCSMON"] == 2 and adsl.loc["D", "DCSREAS"] == "moved away"
    assert list(derive.adsl(tables).columns) == derive.ADSL_COLUMNS


def test_thresholds_pass_through(tables):
    strict = resp_at(tables, 3, vas_abs_mm=30)
    assert strict.loc["A", "AVAL"] == 0
    with pytest.raises(TypeError):
        derive.adeff(tables, vas_mm=30)
    with pytest.raises(TypeError):
        derive.adsl(tables, 3, vas_mm=30)


def test_no_input_mutated(default_tables):
    before = {k: v.copy(deep=True) for k, v in default_tables.items()}
    ad = derive.derive_all(default_tables)
    views = {k: v.copy(deep=True) for k, v in ad.items()}
    derive.responders(ad["adsl"], ad["adeff"], 12)
    derive.wide_outcomes(ad["adeff"])
    derive.status_by_visit(ad["adeff"])
    derive.paired_visit(ad["admri"], 12)
    derive.mri_by_visit(ad["admri"], 0)
    for k, v in default_tables.items():
        pd.testing.assert_frame_equal(v, before[k])
    for k, v in ad.items():
        pd.testing.assert_frame_equal(v, views[k])


def test_texts_are_shared_whatever_the_input(default_tables):
    # every text cell of the input its own object (as a cell-by-cell reader gives them): each
    # derived text column still holds one object per distinct value
    def own_objects(df):
        out = df.copy()
        for c in out.columns:
            if out[c].dtype == object or str(out[c].dtype) == "string":
                values = [("." + v)[1:] if isinstance(v, str) else v for v in out[c].to_numpy(dtype=object)]
                out[c] = pd.array(values, dtype=out[c].dtype)
        return out

    unshared = {k: own_objects(v) for k, v in default_tables.items()}
    ad = derive.derive_all(unshared)
    for name, df in ad.items():
        pd.testing.assert_frame_equal(df, derive.derive_all(default_tables)[name])
        for c in df.select_dtypes(include=object).columns:
            texts = [v for v in df[c] if isinstance(v, str)]
            assert len({id(v) for v in texts}) == len(set(texts)), (name, c)


def test_subgroup_levels_with_a_missing_baseline_vas(tables):
    # was: "boolean value of NA is ambiguous" as soon as one baseline VAS was missing
    subjects = tables["subjects"].assign(
        age=pd.array([30, 45, 50, 39, 41], dtype="Int64"),
        pfirrmann_grade=pd.array([4, 6, pd.NA, 3, 5], dtype="Int64"),
        disc_level=pd.array(["L4-L5", "L5-S1", "L2-L3", "L4-L5", "L5-S1"], dtype="string"),
    )
    o = tables["outcomes"]
    base = {"A": 60.0, "B": pd.NA, "C": 70.0, "D": 80.0, "E": 70.0}
    vas = [base[s] if v == 0 else x for s, v, x in zip(o["subject_id"], o["visit_month"], o["vas_pain"])]
    t = {**tables, "subjects": subjects, "outcomes": o.assign(vas_pain=pd.array(vas, dtype="Float64"))}
    before = {k: v.copy(deep=True) for k, v in t.items()}
    got = derive.adsl(t)
    assert list(got["BVASGR1"]) == ["<= 70 mm", None, "<= 70 mm", "> 70 mm", "<= 70 mm"]
    assert list(got["PFIRRGR1"]) == ["4-5", "6-8", None, "1-3", "4-5"]
    assert list(got["AGEGR1"]) == ["< 40", ">= 40", ">= 40", "< 40", ">= 40"]
    assert list(got["DISCLGR1"]) == ["L4-L5", "L5-S1", "L1-L4", "L4-L5", "L5-S1"]
    for k, v in t.items():
        pd.testing.assert_frame_equal(v, before[k])


def test_treated_population_and_its_deprecated_alias(tables):
    ad = derive.derive_all(tables)
    resp = derive.responders(ad["adsl"], ad["adeff"], 12).assign(TRTFL=["Y"] * 4 + ["N"])
    treated = derive.population(resp, "treated")
    assert len(treated) == len(resp) - 1 and (treated["TRTFL"] == "Y").all()
    pd.testing.assert_frame_equal(derive.population(resp, "per_protocol"), treated)
    nri = derive.population(resp, "nri")
    assert nri["AVAL"].tolist() == [1, 0, 0, 0, 0] and nri["AVALC"].tolist() == ["Y", "N", "N", "N", "N"]
    assert "treated" in derive.POPULATIONS and "per_protocol" not in derive.POPULATIONS
    assert derive.POPULATION_LABELS["treated"] == "Treated (as randomised, received the procedure)"
    with pytest.raises(ValueError, match="population"):
        derive.population(resp, "pp")


def test_views_keep_the_shapes_the_analyses_read(default_tables):
    ad = derive.derive_all(default_tables)
    wide = derive.wide_outcomes(ad["adeff"])
    assert list(wide.columns[:4]) == ["subject_id", "arm", "site", "treated"] and len(wide) == 114
    assert [c for c in wide.columns[4:]] == [f"{m}_{v}" for v in (0, 1, 3, 6, 12, 24) for m in ("vas", "odi")]
    raw = default_tables["outcomes"]
    got = wide.set_index("subject_id").loc["SYN-001", "vas_12"]
    assert got == raw[(raw["subject_id"] == "SYN-001") & (raw["visit_month"] == 12)]["vas_pain"].iloc[0]
    st = derive.status_by_visit(ad["adeff"])
    assert len(st) == 114 * 5 and set(st["STATUS"]) <= set(derive.STATUSES)
    pairs = derive.paired_visit(ad["admri"], 12)
    assert (pairs["CHG"] == pairs["AVAL"] - pairs["BASE"]).all() and (pairs["AVISITN"] == 12).all()
    grades = derive.mri_by_visit(ad["admri"], 0)
    assert list(grades.columns) == ["USUBJID", "ARM", "AVISITN", "T2NP", "PFIRR", "DISCHT"]


def test_adis_either_class_and_adds(default_tables):
    ad = derive.derive_all(default_tables)
    imm = default_tables["immunology"]
    adis = ad["adis"]
    assert len(adis) == 4 * len(imm) and set(adis["PARAMCD"]) == {"HLA1", "HLA2", "HLAANY", "DSA"}
    w = adis.pivot_table(index=["USUBJID", "AVISITN"], columns="PARAMCD", values="AVAL", aggfunc="first", dropna=False)
    either = w["HLAANY"]
    assert (either[(w["HLA1"] == 1) | (w["HLA2"] == 1)] == 1).all()
    assert (either[(w["HLA1"] == 0) & (w["HLA2"] == 0)] == 0).all()
    assert len(ad["adds"]) == len(default_tables["screening"])
    assert (ad["adds"]["DSDECOD"] == "randomized").sum() == 114
    no_optional = {k: v for k, v in default_tables.items() if k not in ("immunology", "screening")}
    ad2 = derive.derive_all(no_optional)
    assert ad2["adis"].empty and list(ad2["adis"].columns) == derive.ADIS_COLUMNS
    assert ad2["adds"].empty and list(ad2["adds"].columns) == derive.ADDS_COLUMNS


def _wide_outcomes_before(adeff, measures=("VAS", "ODI")):
    """wide_outcomes as it was: each measure and visit selected all the ADEFF columns."""
    subj = adeff[["USUBJID", "ARM", "SITEID", "TRTFL"]].drop_duplicates("USUBJID").sort_values("USUBJID", kind="mergesort")
    wide = pd.DataFrame(
        {
            "subject_id": subj["USUBJID"].to_numpy(),
            "arm": subj["ARM"].to_numpy(),
            "site": subj["SITEID"].to_numpy(),
            "treated": (subj["TRTFL"] == "Y").to_numpy(),
        }
    )
    is_code = {code: (adeff["PARAMCD"] == code).to_numpy(dtype=bool, na_value=False) for code in measures}
    visit = adeff["AVISITN"].to_numpy(dtype=float, na_value=np.nan)
    for v in config.VISITS:
        for code in measures:
            at = adeff[is_code[code] & (visit == v)].set_index("USUBJID")["AVAL"]
            wide[f"{derive.WIDE_NAMES[code]}_{v}"] = wide["subject_id"].map(at).astype(float)
    return wide


@pytest.mark.parametrize("nullable", [False, True])
def test_wide_outcomes_same_as_before(default_tables, nullable):
    # the reference cohort with a record of no code or visit, a visit missing for one participant
    # and a missing value; with nullable columns too: the same frame to the bit
    eff = derive.derive_all(default_tables)["adeff"]
    eff = eff[~((eff["USUBJID"] == "SYN-002") & (eff["AVISITN"] == 6))].copy()
    eff.loc[eff.index[5], "AVAL"] = np.nan
    eff.loc[eff.index[7], "PARAMCD"] = None
    if nullable:
        eff = eff.astype({"PARAMCD": "string", "AVISITN": "Int64"})
        eff.loc[eff.index[9], "AVISITN"] = pd.NA
    for measures in (("VAS", "ODI"), ("VAS", "ODI", "PCS", "MCS"), ("ODI",)):
        pd.testing.assert_frame_equal(derive.wide_outcomes(eff, measures), _wide_outcomes_before(eff, measures), check_exact=True)
