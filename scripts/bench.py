"""Benchmark of the notebook collection on this machine (a script, not a timed test).

Prints: the floor (an empty notebook through papermill: kernel start), each notebook's own time
run alone, the whole run's wall time (all notebooks in parallel, default data), and the same run
on a synthetic cohort 100 times larger, with the peak resident memory of any process of that run.
Nothing is written into the repository: every run goes to a temporary --out folder (the runner
remembers each notebook's seconds in runs/.timings.json, to start the longest first).

Options: ``--repeat N`` runs the whole default-data run N times and reports the median (and each
notebook's median seconds within it); ``--no-singles`` and ``--no-big`` skip the single-notebook
runs and the 100x cohort (a quicker comparison on a busy machine); ``--ordinary`` also times the
whole run with ordinary kernels instead of the kernel factory's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from respine_nb import kernels, runner

EXE = str(Path(sys.executable).parent / "respine-nb")


def timed(cmd, env=None) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB) of any process of the command (``env``: added to ours)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )  # stderr: the progress lines
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) // 1024


IMPORTS = (
    "import pandas as pd\nimport matplotlib.pyplot as plt\nimport lifelines, pingouin, statsmodels.api, tableone\n"
    "from respine_nb import config, derive, mmrm, plots, results, session, stats, tables\n"
    "plt.figure(); plt.close('all')"
)


def floor(tmp: Path, repeat: int = 3, code: str = "pass") -> float:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.cells = [nbformat.v4.new_code_cell(code)]
    path = tmp / "empty.ipynb"
    nbformat.write(nb, path)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = runner._execute(path, tmp / "empty-out.ipynb", tmp, tmp / "failed", {}, tmp, lambda *a: None)
        assert out.ok
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1, help="whole runs on the default data, median reported (default: 1)")
    ap.add_argument("--no-singles", action="store_true", help="skip each notebook run alone (default: run them)")
    ap.add_argument("--no-big", action="store_true", help="skip the 100x cohort (default: run it)")
    ap.add_argument(
        "--ordinary",
        action="store_true",
        help="also time one whole run with ordinary kernels (RESPINE_NB_KERNEL_FACTORY=0), to compare (default: not)",
    )
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"machine: {cores} cores, Python {sys.version.split()[0]}")
        print(
            "the runs' kernels: "
            + ("forked from the kernel factory (respine_nb.kernels)" if kernels.factory_enabled() else "ordinary kernels")
            + "; the floors' kernels: ordinary kernels (a new Python each)"
        )
        f = floor(tmp)
        print(f"floor (empty notebook through papermill, median of 3): {f:.2f} s")
        f_imp = floor(tmp, code=IMPORTS)
        print(f"floor + imports (pandas, matplotlib, lifelines, pingouin, statsmodels, tableone, respine_nb): {f_imp:.2f} s")
        names = [p.stem for p in runner.notebooks()]
        singles = {}
        for name in [] if args.no_singles else names:
            out = tmp / f"single-{name}"
            seconds, _ = timed([EXE, "run", "--out", str(out), "--only", name, "--jobs", "1"])
            nb_seconds = json.loads((out / "manifest.json").read_text())["notebooks"][name]["seconds"]
            singles[name] = nb_seconds
            print(f"  {name:<28} {nb_seconds:6.2f} s  (own compute beyond kernel start and imports: {nb_seconds - f_imp:5.2f} s)")
        total_single = sum(singles.values())
        walls, peaks, per_nb = [], [], {}
        for i in range(args.repeat):
            w, pk = timed([EXE, "run", "--out", str(tmp / f"all-{i}")])
            walls.append(w)
            peaks.append(pk)
            for name, meta in json.loads((tmp / f"all-{i}" / "manifest.json").read_text())["notebooks"].items():
                per_nb.setdefault(name, []).append(meta["seconds"])
        wall, peak = statistics.median(walls), max(peaks)
        floor_run = len(names) * f_imp / cores
        print(
            f"whole run ({len(names)} notebooks, {cores} at a time): {wall:.2f} s wall (median of {args.repeat}: "
            + ", ".join(f"{w:.1f}" for w in walls)
            + "); each notebook's seconds within it:"
        )
        for name in names:
            print(f"  {name:<28} {statistics.median(per_nb[name]):6.2f} s")
        print(
            f"  floor of the run = notebooks x (floor + imports) / cores = {len(names)} x {f_imp:.2f} / {cores} = "
            f"{floor_run:.2f} s; ratio {wall / floor_run:.2f} (target <= 1.3)"
        )
        if singles:
            target = total_single / cores
            print(f"  sum of single-notebook times / cores = {target:.2f} s; ratio {wall / target:.2f} (scheduling overhead)")
        print(f"  peak RSS of any process: {peak} MiB")
        if args.ordinary:
            w, _ = timed([EXE, "run", "--out", str(tmp / "all-ordinary")], env={kernels.FACTORY_ENV: "0"})
            print(f"  the same run with ordinary kernels: {w:.2f} s wall; ratio {w / floor_run:.2f}")
        print(f"  load average after the runs (other processes share the machine): {os.getloadavg()[0]:.2f}")
        if args.no_big:
            return
        big = tmp / "big"
        t_gen, _ = timed([EXE, "generate", "--n-msc", "5800", "--n-sham", "5600", "--out", str(big)])
        print(f"100x cohort (11,400 participants) generated in {t_gen:.2f} s")
        wall_big, peak_big = timed([EXE, "run", "--data", str(big), "--out", str(tmp / "all-big")])
        big_nb = json.loads((tmp / "all-big" / "manifest.json").read_text())["notebooks"]
        for name, meta in sorted(big_nb.items()):
            print(f"  {name:<28} {meta['seconds']:6.2f} s")
        print(
            f"whole run on the 100x cohort: {wall_big:.2f} s wall, {wall_big / wall:.2f}x the default run "
            f"(target < 3x); peak RSS of any process {peak_big} MiB (target < 1024 per kernel)"
        )


if __name__ == "__main__":
    main()
