"""Publication tables: formatted (no NaN, integer counts, readable labels), Word and HTML, reproducible bytes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from docx import Document
from scenarios import apply

from respine_nb import config, derive, stats, tables

ARMS = list(config.ARMS)
CON = config.CONTRAST


def fake_results(sham_events: int = 0, estimable: bool = True) -> pd.DataFrame:
    """Results rows as the notebooks write them (RESULTS_CONTRACT v2 columns)."""
    rows = []

    def add(aid, group, visit, est, lo=np.nan, hi=np.nan, p=np.nan, n=np.nan, method="m"):
        rows.append(
            dict(
                analysis_id=aid,
                group=group,
                visit_month=visit,
                estimate=est,
                ci_low=lo,
                ci_high=hi,
                p_value=p,
                n=n,
                method=method,
            )
        )

    add("primary.responders", "BM-MSC", 12, 39 / 53, 0.6, 0.84, n=53)
    add("primary.responders", "Sham", 12, sham_events / 45, 0.0, 0.08, n=45)
    if estimable:
        add("primary.risk_difference", CON, 12, 0.047, -0.128, 0.223, 0.77, 98, "Newcombe; Yates")
    else:
        add("primary.risk_difference", CON, 12, np.nan, n=98, method="not estimable: no evaluable participant")
    add("safety.any_ae", "BM-MSC", np.nan, 0.0, 0.0, 0.06, n=57)
    add("safety.any_ae", "Sham", np.nan, np.nan, n=0, method="not estimable: no treated participant")
    for m in config.MEASURES:
        for v in config.POST_BASELINE_VISITS:
            est = np.nan if (v == 24 and not estimable) else 1.5
            add(f"secondary.mmrm.{m}", CON, v, est, est - 3, est + 3, 0.0004 if v == 1 else 0.5, 110, "MMRM")
    return pd.DataFrame(rows)


def all_text(pub: tables.PubTable) -> str:
    return " | ".join([*pub.frame.columns.astype(str), *pub.frame.astype(str).to_numpy().ravel(), pub.title, *pub.notes])


def check_clean(pub: tables.PubTable, tmp_path, name: str):
    """No NaN anywhere, no float counts, no index column; HTML and DOCX written reproducibly."""
    text = all_text(pub)
    assert not re.search(r"\bnan\b", text, re.I) and "None" not in text
    assert not any(str(c).startswith("Unnamed") or str(c) in ("index", "0") for c in pub.frame.columns)
    first = tables.write_table(pub, name, tmp_path / "a")
    again = tables.write_table(pub, name, tmp_path / "b")
    for p, q in zip(first, again):
        assert p.read_bytes() == q.read_bytes(), p.name
    html = first[0].read_text()
    assert not re.search(r"\bnan\b", html, re.I)
    assert f'id="{pub.table_id}"' in html and str(tmp_path) not in html
    doc = Document(str(first[1]))
    t = doc.tables[0]
    body = [c for c in pub.frame.columns if c != pub.group]
    groups = pub.frame[pub.group].nunique() if pub.group else 0
    assert len(t.columns) == len(body)
    assert len(t.rows) == (2 if pub.spanners else 1) + len(pub.frame) + groups
    assert doc.core_properties.created.year == 2000
    return html


@pytest.fixture(scope="module")
def default_inputs(default_tables):
    d = derive.derive_all(default_tables)
    return d["adsl"], d["adeff"], d["adae"]


def test_table1_on_default_data(default_inputs, tmp_path):
    adsl = default_inputs[0]
    pub = tables.table1_publication(tables.table1(adsl))
    check_clean(pub, tmp_path, "table1")
    assert list(pub.frame.columns) == ["Characteristic", "Overall", "BM-MSC (N = 58)", "Sham (N = 56)", "SMD", "Missing"]
    assert "Age, years, mean (SD)" in pub.frame["Characteristic"].tolist()


def test_table1_on_a_tiny_arm(default_tables, tmp_path):
    # one Sham participant: SD and SMD cannot be computed; tableone prints "nan", the table a dash
    adsl = derive.adsl(default_tables)
    one = pd.concat([adsl[adsl["ARM"] == "BM-MSC"].head(6), adsl[adsl["ARM"] == "Sham"].head(1)])
    pub = tables.table1_publication(tables.table1(one))
    check_clean(pub, tmp_path, "table1")


def test_table2_layout_and_formats(tmp_path):
    pub = tables.table2_publication(fake_results(sham_events=31))
    check_clean(pub, tmp_path, "table2")
    r = pub.frame.iloc[0]
    assert r["BM-MSC, n/N (%)"] == "39/53 (73.6 %)" and r["Sham, n/N (%)"] == "31/45 (68.9 %)"
    assert r["Difference, % points [95 % CI]"] == "4.7 [-12.8, 22.3]" and r["p"] == "0.77" and r["Month"] == "12"
    assert pub.frame["Endpoint"].tolist() == ["Responders (primary, evaluable)", "Any adverse event"]


def test_table2_arm_without_events_and_not_estimable_rows(tmp_path):
    pub = tables.table2_publication(fake_results(sham_events=0, estimable=False), min_cell=5)
    check_clean(pub, tmp_path, "table2")
    r = pub.frame.iloc[0]
    assert r["Sham, n/N (%)"] == "0/45 (0.0 %)" and r["Difference, % points [95 % CI]"] == "not estimable" and r["p"] == "—"
    ae = pub.frame.iloc[1]
    assert ae["BM-MSC, n/N (%)"] == "0/57 (0.0 %)" and ae["Sham, n/N (%)"] == "not estimable" and ae["Month"] == "—"
    small = tables.table2_publication(fake_results(sham_events=3), min_cell=5)
    assert small.frame.iloc[0]["Sham, n/N (%)"] == "<5/45"


def test_table2_renders_with_its_fixed_id():
    pub = tables.table2_publication(fake_results(31))
    assert pub.gt.as_raw_html().count('id="table2"') == 1 and pub._repr_html_() == pub.gt.as_raw_html()


def test_table3_on_default_data(default_inputs, tmp_path):
    eff = default_inputs[1]
    res = fake_results().assign(p_holm=lambda d: np.where(d["analysis_id"].str.startswith("secondary.mmrm"), 0.9, np.nan))
    pub = tables.table3_publication(stats.trajectories(eff), res)
    html = check_clean(pub, tmp_path, "table3")
    f = pub.frame
    assert len(f) == len(config.MEASURES) * len(config.VISITS)
    assert "p (Holm)" in f.columns and "MMRM, BM-MSC minus sham" in html
    v1 = f[(f["Measure"] == "Low back pain VAS (mm)") & (f["Month"] == "1")].iloc[0]
    assert v1["LS-mean difference [95 % CI]"] == "1.5 [-1.5, 4.5]" and v1["p"] == "<0.001" and v1["p (Holm)"] == "0.90"
    assert all(re.fullmatch(r"\d+", x) for x in f["BM-MSC: n"])
    assert re.fullmatch(r"\d+\.\d \(\d+\.\d\)", v1["BM-MSC: mean (SD)"])


def test_table3_not_estimable_and_missing_visit(default_tables, tmp_path):
    eff = derive.adeff(apply(default_tables, ["no_month24"]))
    res = fake_results(estimable=False)
    pub = tables.table3_publication(stats.trajectories(eff), res, p_adjusted=None)
    check_clean(pub, tmp_path, "table3")
    m24 = pub.frame[pub.frame["Month"] == "24"]
    assert (m24["LS-mean difference [95 % CI]"] == "not estimable").all() and (m24["BM-MSC: mean (SD)"] == "—").all()
    assert "p (Holm)" not in pub.frame.columns


def test_safety_table_default_and_min_cell(default_inputs, tmp_path):
    adsl, _, adae = default_inputs
    treated = adsl[adsl["SAFFL"] == "Y"].groupby("ARM").size()
    ev = adae[adae["SAFFL"] == "Y"]
    names = dict(subject="USUBJID", arm="ARM", term="AEDECOD", serious="AESER")
    pub = tables.safety_publication(ev, treated, **names)  # AESER as ADaM's Y/N flag
    check_clean(pub, tmp_path, "safety")
    first = pub.frame.iloc[0]
    n_any = ev[ev["ARM"] == "BM-MSC"]["USUBJID"].nunique()
    assert first["Term"] == "Any adverse event" and first[f"BM-MSC (N = {treated['BM-MSC']}), n (%)"].startswith(f"{n_any} (")
    sup = tables.safety_publication(ev.assign(AESER=ev["AESER"] == "Y"), treated, min_cell=5, **names)
    cells = sup.frame.iloc[:, 2:].to_numpy().ravel()
    assert "<5" in cells and not any(re.fullmatch(r"[1-4] \(.*", c) for c in cells)


def test_safety_table_with_no_events(default_tables, tmp_path):
    t = apply(default_tables, ["no_ae"])
    d = derive.derive_all(t)
    adsl, adae = d["adsl"], d["adae"]
    names = dict(subject="USUBJID", arm="ARM", term="AEDECOD", serious="AESER")
    pub = tables.safety_publication(adae, adsl[adsl["SAFFL"] == "Y"].groupby("ARM").size(), **names)
    check_clean(pub, tmp_path, "safety")
    assert pub.frame.iloc[0, 2].startswith("0 (0.0 %)") and len(pub.frame) == 2
    pub = tables.safety_publication(adae, {"BM-MSC": 3}, **names)  # an arm with nobody treated
    assert pub.frame.iloc[0, 3] == "—"


def test_results_table_formats_any_frame(tmp_path):
    res = fake_results()
    pub = tables.results_table(res, "All results")
    check_clean(pub, tmp_path, "results")
    f = pub.frame
    assert {"Analysis", "Group", "Month", "Estimate", "95 % CI", "p", "n", "Method"} == set(f.columns)
    assert not any(x.endswith(".0") for x in f["n"]) and "<0.001" in f["p"].tolist()
    assert f["Month"].iloc[0] == "12" and f["Month"].iloc[3] == "—"


def test_inputs_are_not_modified(default_inputs):
    res = fake_results()
    before = res.copy()
    tables.table2_publication(res)
    tables.results_table(res)
    pd.testing.assert_frame_equal(res, before)


def test_round10_is_per_value_formatting_bit_for_bit():
    from respine_nb.tables import _round10

    rng = np.random.default_rng(4)
    x = np.concatenate(
        [rng.normal(50, 20, 500), rng.normal(50, 20, 20).round(1), [-0.0, 0.0, np.nan, np.inf, -np.inf, 5e-324, 1e300]]
    )
    x = np.concatenate([x, x[::-1]])  # repeated values
    ref = np.array([float(f"{v:.10g}") for v in x])
    assert _round10(x).view(np.int64).tolist() == ref.view(np.int64).tolist()
