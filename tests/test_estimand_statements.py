"""The estimand statements (ICH E9(R1)) follow the run's parameters and name registered results."""

from __future__ import annotations

import re

import pytest

from respine_nb import config, estimands, results

NOTEBOOKS = ("02_primary_endpoint", "03_secondary_endpoints", "04_mri_t2", "05_time_to_response")


def expand(analysis_id: str) -> list[str]:
    ids = [analysis_id]
    if "<measure>" in analysis_id:
        ids = [analysis_id.replace("<measure>", m) for m in ("vas_pain", "odi")]
    if "_D." in analysis_id:
        ids = [analysis_id.replace("_D.", f"_{d}.") for d in (0, 5, 10, 15, 20)]
    return ids


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_estimand_has_five_attributes_and_registered_results(notebook):
    table = estimands.table(notebook)
    assert list(table.columns) == estimands.COLUMNS
    assert len(table) >= 1 and (table["role"] == "primary").sum() <= 1
    assert table.notna().all().all() and (table.map(lambda s: bool(str(s).strip()))).all().all()
    registered = set(results.registry()["analysis_id"])
    for analysis_id in table["analysis_id"]:
        for one in expand(analysis_id):
            assert one in registered, one
    text = estimands.markdown(table)
    assert text.count("- Treatment:") == len(table) and "nan" not in text


def test_primary_estimand_follows_visit_rule_population_and_strategy():
    default = estimands.table("02_primary_endpoint").iloc[0]
    assert "month 12" in default["variable"] and ">= 20 mm" in default["variable"]
    assert default["analysis_id"] == "primary.risk_difference"
    assert "treatment policy" in default["intercurrent_events"].split("; ")[0]
    t = estimands.table("02_primary_endpoint", dict(visit_month=6, vas_abs_mm=15, odi_rule="absolute", ice_strategy="composite"))
    head = t.iloc[0]
    assert "month 6" in head["variable"] and "month 12" not in " ".join(map(str, head))
    assert ">= 15 mm" in head["variable"] and f">= {config.ODI_ABS:g} points" in head["variable"]
    assert head["analysis_id"] == "primary.composite.risk_difference" and "non-responder" in head["intercurrent_events"]
    # the two other strategies become supplementary estimands, each once
    others = t[t["estimand"].str.contains("strategy")]
    assert sorted(re.sub(r".*: (.*) strategy", r"\1", e) for e in others["estimand"]) == ["hypothetical", "treatment policy"]
    nri = estimands.table("02_primary_endpoint", dict(population="nri")).iloc[0]
    assert nri["analysis_id"] == "primary.nri.risk_difference" and "as randomised" in nri["population"]


def test_multiplicity_statements():
    assert "co-primary" in estimands.multiplicity("02_primary_endpoint")
    assert "this notebook" in estimands.multiplicity("04_mri_t2")
    assert "Holm" in estimands.multiplicity("03_secondary_endpoints")
    assert estimands.multiplicity("01_cohort") == ""
