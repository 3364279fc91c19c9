"""CONSORT flow split at the primary visit (issue 13): stats.consort_flow on hand data."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from respine_nb import plots, stats

matplotlib.use("Agg")

NA = np.nan
# id, arm, DCSMON, DCSREAS, EVALFL
SUBJECTS = [
    ("A1", "BM-MSC", NA, None, "Y"),
    ("A2", "BM-MSC", 6.0, "moved away", "N"),
    ("A3", "BM-MSC", 18.0, "lack of efficacy", "Y"),
    ("S1", "Sham", 12.0, "withdrew consent", "N"),
    ("S2", "Sham", NA, None, "Y"),
    ("S3", "Sham", 24.0, "lack of efficacy", "Y"),
]
# VAS values: id -> visits with a value (S1 has no baseline; S2 missed month 24)
VAS = {"A1": [0, 24], "A2": [0], "A3": [0, 12], "S1": [3], "S2": [0, 3, 12], "S3": [0, 12, 24]}


@pytest.fixture
def data():
    adsl = pd.DataFrame(SUBJECTS, columns=["USUBJID", "ARM", "DCSMON", "DCSREAS", "EVALFL"])
    adsl = adsl.assign(TRTFL="Y", NEREAS=np.where(adsl["EVALFL"] == "N", "discontinued", None))
    arm = dict(zip(adsl["USUBJID"], adsl["ARM"]))
    adeff = pd.DataFrame(
        [(s, arm[s], "VAS", v, 50.0) for s, visits in VAS.items() for v in visits]
        + [("S2", "Sham", "VAS", 24, NA)],  # a month-24 record without a value
        columns=["USUBJID", "ARM", "PARAMCD", "AVISITN", "AVAL"],
    )
    admri = pd.DataFrame(
        [
            ("A1", "BM-MSC", "T2NP", 12, 80.0, 90.0),
            ("A3", "BM-MSC", "T2NP", 12, NA, 85.0),
            ("S2", "Sham", "T2NP", 12, 70.0, 75.0),
        ],
        columns=["USUBJID", "ARM", "PARAMCD", "AVISITN", "AVAL", "BASE"],
    )
    adtte = pd.DataFrame({"USUBJID": ["A1", "A3", "S2", "S3"], "ARM": ["BM-MSC", "BM-MSC", "Sham", "Sham"], "AVAL": 3.0})
    return adsl, adeff, admri, adtte


def total(flow, stage, group):
    hit = flow[(flow["stage"] == stage) & (flow["group"] == group) & (flow["reason"] == "")]
    assert len(hit) == 1, (stage, group)
    return int(hit["n"].iloc[0])


def reasons(flow, stage, group):
    hit = flow[(flow["stage"] == stage) & (flow["group"] == group) & (flow["reason"] != "")]
    return dict(zip(hit["reason"], hit["n"].astype(int)))


def test_split_at_the_primary_visit(data):
    adsl, adeff, admri, adtte = data
    flow = stats.consort_flow(adsl, None, 12, adeff=adeff, admri=admri, adtte=adtte)
    assert set(plots.CONSORT_SPLIT_STAGES) <= set(flow["stage"])
    # S1 left at month 12 (at the visit: before), S3 at month 24 (at the last visit: between)
    assert [total(flow, "discontinued_before", a) for a in ("BM-MSC", "Sham")] == [1, 1]
    assert [total(flow, "discontinued_between", a) for a in ("BM-MSC", "Sham")] == [1, 1]
    assert reasons(flow, "discontinued_before", "Sham") == {"withdrew consent": 1}
    assert reasons(flow, "discontinued_between", "BM-MSC") == {"lack of efficacy": 1}
    # month 24: A1 seen; S2 stayed but has no month-24 value
    assert [total(flow, "followed_up_last", a) for a in ("BM-MSC", "Sham")] == [1, 0]
    # today's stages are still there
    assert total(flow, "discontinued", "BM-MSC") == 2 and total(flow, "analysed", "Sham") == 2
    ends = {a: reasons(flow, "analysed_endpoint", a) for a in ("BM-MSC", "Sham")}
    assert ends["BM-MSC"] == {"responders, month 12": 2, "VAS MMRM, all visits": 2, "T2 change, month 12": 1,
                              "time to first response": 2}  # fmt: skip
    assert ends["Sham"] == {"responders, month 12": 2, "VAS MMRM, all visits": 2, "T2 change, month 12": 1,
                            "time to first response": 2}  # fmt: skip
    assert (flow["visit_month"] == 12).all()


def test_split_follows_the_run_visit(data):
    adsl, adeff, _, _ = data
    flow = stats.consort_flow(adsl, None, 6, adeff=adeff)
    assert [total(flow, "discontinued_before", a) for a in ("BM-MSC", "Sham")] == [1, 0]
    assert [total(flow, "discontinued_between", a) for a in ("BM-MSC", "Sham")] == [1, 2]
    assert set(reasons(flow, "analysed_endpoint", "Sham")) == {"responders, month 6", "VAS MMRM, all visits"}


def test_nobody_reached_month_24(data):
    adsl, adeff, _, _ = data
    flow = stats.consort_flow(adsl, None, 12, adeff=adeff[adeff["AVISITN"] < 24])
    assert [total(flow, "followed_up_last", a) for a in ("BM-MSC", "Sham")] == [0, 0]
    # without ADEFF, everyone who did not leave by month 24 counts
    flow = stats.consort_flow(adsl)
    assert [total(flow, "followed_up_last", a) for a in ("BM-MSC", "Sham")] == [1, 1]
    assert set(reasons(flow, "analysed_endpoint", "BM-MSC")) == {"responders, month 12"}


def test_figure_draws_the_split(data):
    adsl, adeff, admri, adtte = data
    fig = plots.consort(stats.consort_flow(adsl, None, 12, adeff=adeff, admri=admri, adtte=adtte))
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "Discontinued between month 12 and 24" in text and "Followed up to month 24" in text
    assert "T2 change, month 12" in text


def test_discontinued_rows(data):
    adsl = data[0]
    d = stats.discontinued(adsl, (12, 24))
    got = {(int(v), g): (int(e), int(n)) for v, g, e, n in d[["visit_month", "group", "estimate", "n"]].itertuples(index=False)}
    assert got == {(12, "BM-MSC"): (1, 3), (12, "Sham"): (1, 3), (24, "BM-MSC"): (2, 3), (24, "Sham"): (2, 3)}


def test_save_publication_writes_html_and_docx_and_lists_them(tmp_path):
    from respine_nb import session, tables

    nb = session.Session(
        name="01_cohort",
        data=None,
        root=tmp_path,
        derived_dir=tmp_path / "derived",
        figures_dir=tmp_path / "figures",
        is_default_data=False,
        synthetic=False,
    )
    pub = tables.results_table(pd.DataFrame({"group": ["BM-MSC", "Sham"], "n": [3.0, 3.0]}), "Counts")
    nb.save_publication(pub, "counts")
    assert sorted(nb._logical(p) for p in nb.written) == ["figures/01_cohort-counts.docx", "figures/01_cohort-counts.html"]
    first = (tmp_path / "figures" / "01_cohort-counts.docx").read_bytes()
    nb.save_publication(pub, "counts")
    assert (tmp_path / "figures" / "01_cohort-counts.docx").read_bytes() == first


def test_consort_table_names_every_stage_in_words():
    from respine_nb import stats as st

    flow = pd.DataFrame({"stage": list(st.STAGE_LABELS), "group": "all", "reason": "", "n": 1, "visit_month": 12})
    out = st.consort_table(flow)
    assert list(out.columns) == ["stage", "group", "reason", "n"]
    assert not any("_" in s for s in out["stage"]) and out["stage"].iloc[0] == "Assessed for eligibility"
