"""Interrupting a run (SIGTERM, SIGINT) leaves nothing half-written and the repository untouched."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from respine_nb import config

EXE = str(Path(sys.executable).parent / "respine-nb")


def tree_hash(*folders):
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for f in folders
        for p in sorted(Path(f).rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def _foreground_signals():
    """In the child: SIGINT as in a foreground terminal job. A harness that starts the tests in the
    background (a non-interactive shell's `cmd &`) passes SIGINT on as ignored, and a run started so
    ignores Ctrl-C by design; the test is about a run the user can interrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args, env_extra=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != config.OUT_ENV}
    env.update(env_extra or {})
    return subprocess.Popen(
        [EXE, "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        preexec_fn=_foreground_signals,
    )


def wait_for(predicate, timeout=120.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def assert_complete(folder: Path):
    """No temp file, no run folder, and every file whole (parseable, with its end marker)."""
    leftovers = [p for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".respine-run-")]
    assert not leftovers, leftovers
    for p in folder.rglob("*"):
        if not p.is_file():
            continue
        if p.suffix == ".ipynb":
            nbformat.read(p, as_version=4)
        elif p.suffix == ".png":
            assert p.read_bytes()[-8:-4] == b"IEND", p
        elif p.suffix == ".pdf":
            assert b"%%EOF" in p.read_bytes()[-64:], p
        elif p.suffix == ".parquet":
            pd.read_parquet(p)
        elif p.suffix == ".csv":
            pd.read_csv(p)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_run_elsewhere(sig, tmp_path, small_dataset_dir):
    protected = (config.NOTEBOOKS_DIR, config.ROOT / "data", config.FIGURES_DIR, small_dataset_dir)
    before = tree_hash(*protected)
    out = tmp_path / "out"
    proc = start(["--data", str(small_dataset_dir), "--out", str(out), "--jobs", "2"])
    # wait until notebooks are executing (the run's private temp folder exists), then a little more
    assert wait_for(lambda: any(out.glob(".respine-run-*"))), proc.communicate()
    time.sleep(2.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert_complete(out)
    assert tree_hash(*protected) == before


def test_interrupted_default_run_leaves_the_clone_clean(tmp_path):
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(config.ROOT), str(clone)], check=True)
    proc = start([], {"RESPINE_NB_ROOT": str(clone)}, cwd=clone)
    assert wait_for(lambda: any((clone / "runs").glob(".respine-run-*"))), proc.communicate()
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    status = subprocess.run(
        ["git", "-C", str(clone), "status", "--porcelain", "--untracked-files=all"], capture_output=True, text=True
    ).stdout
    assert status == "", status
    for folder in (clone / "notebooks", clone / "data", clone / "figures"):
        assert_complete(folder)
