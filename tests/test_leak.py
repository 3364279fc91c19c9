"""Real patient data never leaks: run the whole collection and the report on a dataset whose
identifiers and dates are distinctive tokens, then scan every output for them (notebooks, HTML
report, text of the figures, tables, results.csv, manifest), and for any input row rendered whole."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from respine_nb import config, io, synthetic

EXE = str(Path(sys.executable).parent / "respine-nb")


@pytest.fixture(scope="module")
def leaky(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("leak")
    tables = synthetic.generate(5, 24, 24)
    rng = np.random.default_rng(0)
    ids = {sid: f"QZLEAK{rng.integers(10**6, 10**7)}X" for sid in tables["subjects"]["subject_id"]}
    for name in ("subjects", "outcomes", "mri", "adverse_events", "immunology", "intercurrent_events"):
        if name not in tables:
            continue
        tables[name] = tables[name].assign(subject_id=tables[name]["subject_id"].map(ids))
    days = rng.permutation(len(tables["subjects"]))
    tables["subjects"]["randomization_date"] = (pd.Timestamp("1987-01-01") + pd.to_timedelta(days * 3, unit="D")).strftime(
        "%Y-%m-%d"
    )
    tables["screening"]["screening_id"] = [f"SCRLEAK{i:05d}Y" for i in range(len(tables["screening"]))]
    data = tmp / "data"
    io.write_dataset(tables, data)
    out = tmp / "out"
    env = {k: v for k, v in os.environ.items() if k != config.OUT_ENV}
    proc = subprocess.run(
        [EXE, "run", "--data", str(data), "--out", str(out), "-p", "n_imputations", "5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run([EXE, "report", "--out", str(out)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    tokens = set(ids.values()) | set(tables["subjects"]["randomization_date"]) | set(tables["screening"]["screening_id"])
    return out, tables, tokens


def output_texts(out: Path):
    """(file, text) of everything a reader of the run's outputs can see (not the derived ADaM
    datasets, which are individual-level by design and stay in the git-ignored run folder)."""
    from pypdf import PdfReader

    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if not p.is_file():
            continue
        if rel.parts[0] == "derived" and rel.name != "results.csv" and rel.parts[:2] != ("derived", "results"):
            continue  # adsl, adeff, ...: analysis datasets, individual rows by design
        if p.suffix in (".ipynb", ".html", ".csv", ".json", ".md", ".txt"):
            yield p, p.read_text(encoding="utf-8", errors="replace")
        elif p.suffix == ".pdf":
            yield p, "\n".join(page.extract_text() or "" for page in PdfReader(p).pages)


def test_no_identifier_or_date_in_any_output(leaky):
    out, _, tokens = leaky
    pattern = re.compile("|".join(["QZLEAK\\d+X", "SCRLEAK\\d+Y", "1987-\\d\\d-\\d\\d"]))
    scanned = 0
    for path, text in output_texts(out):
        scanned += 1
        hit = pattern.search(text)
        assert hit is None, f"{path.relative_to(out)} shows {hit.group(0)!r}"
    assert scanned >= 30  # notebooks, report pages, figures, tables, results


def test_no_input_row_rendered_whole(leaky):
    """No line of a notebook output, and no row of an HTML table, holds a participant's age, BMI and
    symptom duration together (the visible fingerprint of a subjects row)."""
    out, tables, _ = leaky
    s = tables["subjects"]
    prints = [(str(int(a)), f"{b:g}", f"{d:g}") for a, b, d in zip(s["age"], s["bmi"], s["symptom_duration_months"])]
    for nb_path in sorted((out / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        for cell in nb.cells:
            for o in cell.get("outputs", []):
                text = o.get("text", "") + "".join(str(v) for k, v in o.get("data", {}).items() if k.startswith("text/"))
                rows = re.split(r"\n|</tr>", html.unescape(text))
                for row in rows:
                    cells = set(re.findall(r"[-\d.]+", re.sub(r"<[^>]+>", " ", row)))
                    for fp in prints:
                        assert not set(fp) <= cells, f"{nb_path.name}: a subjects row appears: {row[:120]}"


def test_results_are_aggregates(leaky):
    out, tables, _ = leaky
    rows = pd.read_csv(out / "derived" / "results.csv")
    assert (rows["n"].dropna() >= 1).all()
    assert set(rows["group"]) <= {"BM-MSC", "Sham", "BM-MSC vs Sham", "all"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert "QZLEAK" not in json.dumps(manifest)
