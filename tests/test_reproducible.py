"""The same bytes on any machine (issue 10, RESULTS_CONTRACT.md "Precision").

Another processor computes the same analyses with different last bits (BLAS kernels, the
order of floating-point sums), so that an optimiser takes another path and a p-value
differs in its 10th digit. We cannot borrow another processor in a test, but we can make
the same kind of noise: every measured value perturbed by a relative 1e-12, and the
kernels run with another number of BLAS threads. The stored outputs (results.csv, the text
of every notebook output, and the figures) must not change.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd

from respine_nb import config, io

EXE = str(Path(sys.executable).parent / "respine-nb")
PERTURBED = {  # table -> the measured values, perturbed
    "subjects": ("bmi", "symptom_duration_months"),
    "outcomes": ("vas_pain", "odi", "sf36_pcs", "sf36_mcs"),
    "mri": ("t2_np_ms", "disc_height_mm"),
}


def perturbed_copy(dst: Path, rel: float = 1e-12) -> Path:
    """A copy of the committed synthetic cohort with every measured value times (1 +- rel),
    moved towards the middle of its column's range, and a manifest holding the copy's own checksums (so the
    notebooks treat it as the synthetic cohort it is, up to the noise)."""
    shutil.copytree(config.SYNTHETIC_DIR, dst)
    for table, columns in PERTURBED.items():
        path = dst / f"{table}.csv"
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        for col in columns:
            values = pd.to_numeric(df[col].replace("", np.nan))
            # towards the middle of the column's range, so that no value leaves the contract's range
            sign = np.where(values < (values.min() + values.max()) / 2, 1.0, -1.0)
            noisy = values * (1 + sign * rel)
            assert (noisy.dropna() != values.dropna()).any(), col  # the perturbation is real
            df[col] = [repr(float(v)) if pd.notna(v) else "" for v in noisy]
        path.write_text(df.to_csv(index=False, lineterminator="\n"), encoding="utf-8")
    manifest = json.loads((dst / "MANIFEST.json").read_text())
    for name, entry in manifest.get("files", {}).items():
        entry["sha256"] = io.sha256_file(dst / name)
    (dst / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return dst


def output_texts(nb_path: Path) -> list:
    """Every output of every cell, as text (images left out: PNG bytes are compared as files)."""
    nb = nbformat.read(nb_path, as_version=4)
    cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]  # papermill's --out cell
    out = []
    for i, cell in enumerate(cells):
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            out.append(
                (i, o.get("output_type"), o.get("text", ""), {k: v for k, v in data.items() if not k.startswith("image/")})
            )
    return out


def test_noise_in_the_last_bits_changes_no_stored_output(tmp_path):
    data = perturbed_copy(tmp_path / "synthetic")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != config.OUT_ENV}
    env.update({"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"})
    proc = subprocess.run(
        [EXE, "run", "--data", str(data), "--out", str(out), "--jobs", "1"], capture_output=True, text=True, env=env, timeout=1200
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    committed = (config.DERIVED_DIR / "results.csv").read_text(encoding="utf-8")
    assert (out / "derived" / "results.csv").read_text(encoding="utf-8") == committed

    for nb_path in sorted(config.NOTEBOOKS_DIR.glob("*.ipynb")):
        assert output_texts(out / "notebooks" / nb_path.name) == output_texts(nb_path), nb_path.name

    figures = sorted(p.name for p in config.FIGURES_DIR.glob("*.*"))
    assert figures == sorted(p.name for p in (out / "figures").glob("*.*"))
    changed = [f for f in figures if (config.FIGURES_DIR / f).read_bytes() != (out / "figures" / f).read_bytes()]
    assert not changed, f"figures that depend on last-bit noise: {changed}"
