"""Named extreme datasets run through the whole collection (issue 10, point 1b).

Each scenario composes the shapes of tests/scenarios.py into the kind of export an author
may bring. The validator accepts it, so `respine-nb run` must execute every notebook to the
end without an error or a warning, and write every row of RESULTS_CONTRACT.md: estimated
where the data allow, empty with the reason in `method` where they do not.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import scenarios as sc

from respine_nb import config, io, results, synthetic

EXE = str(Path(sys.executable).parent / "respine-nb")

# RESULTS_CONTRACT.md v1 (and v2 where built): (analysis_id, groups, visits); None = no visit
ARMS, CONTRAST = list(config.ARMS), [config.CONTRAST]
PB = list(config.POST_BASELINE_VISITS)
REQUIRED = [
    ("cohort.randomized", ARMS, [None]),
    ("cohort.evaluable", ARMS, [12]),
    ("primary.responders", ARMS, [12]),
    ("primary.risk_difference", CONTRAST, [12]),
    ("primary.fisher", CONTRAST, [12]),
    ("primary.odds_ratio", CONTRAST, [12]),
    ("primary.nri.responders", ARMS, [12]),
    ("primary.nri.risk_difference", CONTRAST, [12]),
    ("primary.mi.risk_difference", CONTRAST, [12]),
    *[(f"secondary.mmrm.{m}", CONTRAST, PB) for m in config.MEASURES],
    *[(f"secondary.mcid.{m}", ARMS, PB) for m in config.MCID],
    ("mri.t2.change", ARMS, [12]),
    ("mri.t2.ancova", CONTRAST, [12]),
    ("ttr.km_median", ARMS, [None]),
    ("ttr.logrank", CONTRAST, [None]),
    ("ttr.cox_hr", CONTRAST, [None]),
    ("safety.any_ae", ARMS, [None]),
    ("safety.sae", ARMS, [None]),
    ("safety.related_sae", ARMS, [None]),
    ("immunology.anti_hla", ARMS, [6]),
]

SCENARIOS = {
    # an interim export: month 24 not reached, MRI at 0 and 12 only, dropouts between visits,
    # no optional table, real-world site names and identifiers, a missing baseline, no follow-up
    "interim_export": (
        "no_month24",
        "mri_0_12_only",
        "discontinued_off_visit",
        "no_optional_tables",
        "accented_sites",
        "odd_identifiers",
        "no_baseline",
        "no_follow_up",
    ),
    # a pilot: 8 per arm at one site, no serious adverse event, nobody sensitised
    "tiny_pilot": ("eight_per_arm", "one_site", "no_sae", "nobody_sensitised"),
    # strongly unbalanced arms, single-participant sites, no adverse event at all
    "unbalanced": ("unbalanced_arms", "single_participant_sites", "no_ae"),
    # the primary visit reached by nobody
    "no_primary_visit": ("no_month12",),
}


def run_collection(data: Path, out: Path, *params) -> pd.DataFrame:
    env = {k: v for k, v in os.environ.items() if k != config.OUT_ENV}
    proc = subprocess.run(
        [EXE, "run", "--data", str(data), "--out", str(out), *params], capture_output=True, text=True, env=env, timeout=1200
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # stderr carries the run's progress lines; a warning or a traceback there is a defect
    assert not re.search(r"Warning|Traceback|Error", proc.stderr), proc.stderr
    for nb_path in sorted((out / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        for cell in nb.cells:
            for o in cell.get("outputs", []):
                assert o.output_type != "error", f"{nb_path.name}: {o.get('ename')}: {o.get('evalue')}"
                assert o.get("name") != "stderr", f"{nb_path.name}: stderr output:\n{o.get('text')}"
    return results.read(out / "derived" / "results.csv")


def missing_rows(rows: pd.DataFrame) -> list:
    have = {
        (a, g, None if pd.isna(v) else int(v))
        for a, g, v in rows[["analysis_id", "group", "visit_month"]].itertuples(index=False)
    }
    return [(a, g, v) for a, groups, visits in REQUIRED for g in groups for v in visits if (a, g, v) not in have]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_runs_every_notebook_and_writes_every_row(name, tmp_path):
    tables = sc.apply(synthetic.generate(31, 40, 38), SCENARIOS[name])
    data = tmp_path / name
    io.write_dataset(tables, data)
    io.load_dataset(data)  # the validator accepts it: the premise of the test
    rows = run_collection(data, tmp_path / "out", "-p", "n_imputations", "5")
    assert missing_rows(rows) == []
    empty = rows[rows["estimate"].isna() & rows["p_value"].isna()]
    # an empty row always says why (counts such as ttr.km_median "not reached" say so too)
    assert empty["method"].str.contains("not estimable|not reached").all(), empty.loc[
        ~empty["method"].str.contains("not estimable|not reached"), ["analysis_id", "group", "visit_month", "method"]
    ]
