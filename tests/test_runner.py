"""The runner end to end: runs elsewhere write only under OUT; failures are contained; the
default run is reproducible byte for byte (in a clone, so the working tree is never touched)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from respine_nb import config, results

EXE = str(Path(sys.executable).parent / "respine-nb")


def tree_hash(*folders: Path) -> dict:
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts:
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run(*args, env=None, cwd=None):
    e = dict(os.environ)
    e.pop(config.OUT_ENV, None)
    e.update(env or {})
    return subprocess.run([EXE, "run", *args], capture_output=True, text=True, env=e, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A clone of the committed project, with the committed notebooks and data."""
    dst = tmp_path_factory.mktemp("clone") / "repo"
    subprocess.run(["git", "clone", "-q", str(config.ROOT), str(dst)], check=True)
    return dst


def test_run_elsewhere_writes_only_under_out(small_dataset_dir, tmp_path):
    protected = (config.NOTEBOOKS_DIR, config.ROOT / "data", config.FIGURES_DIR, small_dataset_dir)
    before = tree_hash(*protected)
    out = tmp_path / "out"
    proc = run("--data", str(small_dataset_dir), "--out", str(out), "--only", "01_cohort", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert tree_hash(*protected) == before
    # not a terminal: plain progress lines on stderr, and the closing lines name every output
    assert "01_cohort  running" in proc.stderr and re.search(r"01_cohort  done +\d+\.\d s", proc.stderr)
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    assert "kernel factory" not in proc.stderr  # the kernels were forked from it (on Linux)
    resolved = out.resolve()
    for expected in (
        "Where to look:",
        f"{resolved}/notebooks/",
        f"{resolved}/figures/",
        f"{resolved}/derived/results.csv",
        f"{resolved}/derived/ard.csv",
        f"respine-nb report --out {resolved}",
    ):
        assert expected in proc.stdout, expected
    assert (out / "notebooks" / "01_cohort.ipynb").is_file()
    assert (out / "derived" / "results.csv").is_file()
    for name in ("adsl", "adeff", "admri", "adtte", "adae"):
        assert (out / "derived" / f"{name}.parquet").is_file() and (out / "derived" / f"{name}.csv").is_file()
    assert (out / "figures" / "01_cohort-consort.png").is_file()
    assert not [p for p in out.rglob(".respine-run-*")], "temporary folder left behind"
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["inputs_sha256"]) >= {"subjects.csv", "outcomes.csv"}
    assert manifest["notebooks"]["01_cohort"]["ok"] is True
    assert manifest["versions"]["pandas"].startswith("2.")
    assert manifest["started"] <= manifest["finished"]
    rows = results.read(out / "derived" / "results.csv")
    rand = rows[rows["analysis_id"] == "cohort.randomized"].set_index("group")["n"]
    assert rand.to_dict() == {"BM-MSC": 20, "Sham": 20}
    nb = nbformat.read(out / "notebooks" / "01_cohort.ipynb", as_version=4)
    assert "papermill" not in nb.metadata
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error" or o.get("name") == "stderr"
    ]
    assert not errors


def test_invalid_data_stops_before_anything_is_written(dataset_copy, tmp_path):
    (dataset_copy / "mri.csv").unlink()
    out = tmp_path / "out"
    proc = run("--data", str(dataset_copy), "--out", str(out))
    assert proc.returncode == 2
    assert "required table 'mri' is missing" in proc.stdout
    assert not out.exists()


def test_out_required_and_protected(small_dataset_dir, tmp_path):
    assert run("--data", str(small_dataset_dir)).returncode == 2
    assert run("--data", str(small_dataset_dir), "--out", str(config.FIGURES_DIR / "x")).returncode == 2
    assert run("--out", str(tmp_path / "o"), "-p", "no_such_parameter", "1").returncode == 2
    assert run("--out", str(tmp_path / "o"), "--only", "99_nothing").returncode == 2


def test_failing_notebook_is_contained(clone, tmp_path):
    project = tmp_path / "proj"
    shutil.copytree(clone, project, ignore=shutil.ignore_patterns(".git"))
    bad = nbformat.v4.new_notebook()
    bad.cells = [
        nbformat.v4.new_code_cell("data_dir = None\nout_dir = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('boom')"),
    ]
    nbformat.write(bad, project / "notebooks" / "00_fail.ipynb")
    committed = (project / "notebooks" / "00_fail.ipynb").read_bytes()
    out = tmp_path / "out"
    proc = run("--out", str(out), "--only", "00_fail", "01_cohort", env={"RESPINE_NB_ROOT": str(project)})
    assert proc.returncode == 1
    assert "FAILED 00_fail" in proc.stderr and "ValueError: boom" in proc.stderr
    assert "`raise ValueError('boom')`" in proc.stderr  # names the cell
    assert (out / "failed" / "00_fail.ipynb").is_file()
    assert (out / "notebooks" / "01_cohort.ipynb").is_file()  # the other notebook still finished
    assert not (out / "notebooks" / "00_fail.ipynb").exists()
    assert (project / "notebooks" / "00_fail.ipynb").read_bytes() == committed


def test_default_run_twice_leaves_git_clean(clone):
    env = {"RESPINE_NB_ROOT": str(clone)}
    for _ in range(2):
        proc = run(env=env, cwd=clone)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        status = subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], capture_output=True, text=True).stdout
        assert status == "", f"the default run changed committed files:\n{status}"


def test_notebook_runs_standalone_with_plain_papermill_from_any_directory(tmp_path):
    """Paths resolve through respine_nb.config, not the working directory."""
    import papermill as pm

    out = tmp_path / "out"
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    pm.execute_notebook(
        str(config.NOTEBOOKS_DIR / "01_cohort.ipynb"),
        str(tmp_path / "executed.ipynb"),
        parameters={"out_dir": str(out)},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(elsewhere),
    )
    assert (out / "figures" / "01_cohort-consort.png").is_file()
    assert (out / "derived" / "results" / "01_cohort.csv").is_file()
    assert not any(elsewhere.iterdir())  # nothing written into the working directory


def test_command_line_skips_jsonschemas_slow_iri_checker():
    """The command line (here: a run's parameter listing, which imports the runner, nbformat and
    jsonschema) does not build rfc3987-syntax's parsers (1 s); notebooks are still validated
    against nbformat's schema."""
    code = (
        "import sys, contextlib, io\n"
        "from respine_nb import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert cli.main(['run', '--list-parameters', '02_primary_endpoint']) == 0\n"
        "import nbformat\n"
        "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1')])\n"
        "nbformat.validate(nb)\n"
        "nb.cells[0]['execution_count'] = 'one'\n"
        "try:\n"
        "    nbformat.validate(nb)\n"
        "except nbformat.ValidationError:\n"
        "    print('invalid notebook refused')\n"
        "print('jsonschema' in sys.modules, 'lark' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["invalid notebook refused", "True False"], out.stdout + out.stderr
    assert out.stderr == ""
