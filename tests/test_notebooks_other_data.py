"""Every notebook runs warning-free on other datasets: a small trial, and one without the
optional tables and without any adverse event (what an author's export may look like)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd

from respine_nb import config, io, results, synthetic

EXE = str(Path(sys.executable).parent / "respine-nb")


def run_all(data: Path, out: Path, *params):
    env = {k: v for k, v in os.environ.items() if k != config.OUT_ENV}
    proc = subprocess.run(
        [EXE, "run", "--data", str(data), "--out", str(out), *params], capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for nb_path in sorted((out / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        for cell in nb.cells:
            for o in cell.get("outputs", []):
                assert o.output_type != "error", f"{nb_path.name}: error output"
                assert o.get("name") != "stderr", f"{nb_path.name}: stderr output (a warning?):\n{o.get('text')}"
    return results.read(out / "derived" / "results.csv")


def test_all_notebooks_on_a_different_trial(tmp_path):
    data = tmp_path / "trial"
    io.write_dataset(synthetic.generate(7, 45, 40, exact=False), data)
    rows = run_all(data, tmp_path / "out", "-p", "n_imputations", "5")
    got = set(rows["analysis_id"])
    for needed in (
        "cohort.randomized",
        "primary.risk_difference",
        "primary.mi.risk_difference",
        "secondary.mmrm.vas_pain",
        "mri.t2.ancova",
        "ttr.cox_hr",
        "safety.sae",
        "immunology.anti_hla",
    ):
        assert needed in got, needed
    assert len(sorted((tmp_path / "out" / "notebooks").glob("*.ipynb"))) == len(list(config.NOTEBOOKS_DIR.glob("*.ipynb")))


def test_without_optional_tables_and_without_adverse_events(tmp_path):
    tables = synthetic.generate(8, 30, 30)
    tables = {k: v for k, v in tables.items() if k not in ("immunology", "screening")}
    tables["adverse_events"] = tables["adverse_events"].iloc[0:0]
    data = tmp_path / "bare"
    io.write_dataset(tables, data)
    assert (data / "adverse_events.csv").read_text().strip().count("\n") == 0  # header only
    rows = run_all(data, tmp_path / "out", "--only", "01_cohort", "06_safety_immunology", "-p", "min_cell", "5")
    safety = rows[rows["analysis_id"] == "safety.any_ae"].set_index("group")
    assert (safety["estimate"] == 0).all() and (safety["n"] > 0).all()
    # the contract's row is written all the same: empty, with the reason
    imm = rows[rows["analysis_id"].str.startswith("immunology")]
    assert set(imm["analysis_id"]) == {"immunology.anti_hla", "immunology.new_sensitisation"} and imm["estimate"].isna().all()
    assert imm["method"].str.contains("not estimable: no immunology table in these data").all(), imm["method"].tolist()
    nb = nbformat.read(tmp_path / "out" / "notebooks" / "06_safety_immunology.ipynb", as_version=4)
    text = "".join(str(o.get("data", {}).get("text/markdown", "")) for c in nb.cells for o in c.get("outputs", []))
    assert "immunology table is absent" in text


def test_parameter_variants(tmp_path):
    """Parameters a student or an author changes: another visit, population, rule, suppression."""
    run_all(
        config.SYNTHETIC_DIR,
        tmp_path / "a",
        "--only",
        "02_primary_endpoint",
        "05_time_to_response",
        "-p",
        "odi_rule",
        "absolute",
        "-p",
        "population",
        "nri",
        "-p",
        "vas_abs_mm",
        "15",
        "-p",
        "n_imputations",
        "5",
    )
    rows = run_all(
        config.SYNTHETIC_DIR,
        tmp_path / "b",
        "--only",
        "02_primary_endpoint",
        "04_mri_t2",
        "06_safety_immunology",
        "-p",
        "population",
        "treated",
        "-p",
        "min_cell",
        "5",
        "-p",
        "visit_month",
        "6",
        "-p",
        "immunology_visit",
        "3",
        "-p",
        "n_imputations",
        "5",
    )
    assert set(rows.loc[rows["analysis_id"] == "primary.responders", "visit_month"]) == {6}
    sae = rows[rows["analysis_id"] == "safety.related_sae"]
    assert (sae["estimate"] == 0).all()  # zero is not a small cell: it stays
    dsa = rows[rows["analysis_id"] == "immunology.dsa"].set_index("visit_month")
    assert dsa.loc[1, "method"].endswith("suppressed: fewer than 5") and pd.isna(dsa.loc[1, "estimate"])
