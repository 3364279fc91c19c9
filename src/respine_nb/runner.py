"""Run the notebook collection with papermill: validate once, derive, execute in parallel.

Two modes:

- the **default run** (no ``--data``, ``--out`` or ``-p``): the committed synthetic
  cohort (generated first if absent), notebooks executed *in place* in notebooks/,
  derived data in data/derived/, figures in figures/. Papermill's timing metadata is
  stripped so a second default run changes no byte in git.
- a **run elsewhere** (``--out OUT``, with ``--data DIR`` and/or ``-p``): everything
  under OUT (notebooks/, derived/, figures/, manifest.json); nothing is written into
  the repository's notebooks/, data/ or figures/, nor into DIR.

Every file is written atomically; a notebook's executed copy goes to a private
temporary folder first and replaces its target only on success. A failing notebook
does not stop the others: its executed copy is kept under OUT/failed/ (default
run: runs/failed/), the run names the notebook, cell and error, and exits 1.

The longest notebooks start first (by their seconds in the last run, remembered in
runs/.timings.json), so that a short notebook, not the longest, finishes the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nbformat

from . import __version__, config, derive, io, kernels, parameters
from .provenance import data_manifest, git_commit, versions

KERNEL = "python3"
_STOP = threading.Event()  # set on SIGINT/SIGTERM: running notebooks must not publish their output
_KERNEL_PIDS: set = set()


@dataclass
class Outcome:
    notebook: str
    ok: bool
    seconds: float
    error: str = ""
    failed_copy: Path | None = None


class Progress:
    """What the run is doing, one line per notebook: its state (waiting, running, done, FAILED)
    and elapsed time.

    On a terminal, a live display (tqdm, one line per notebook) refreshed every ``interval``
    seconds while notebooks run; otherwise (CI logs, pipes, files) plain lines, one per state
    change, with no control characters.

    Parameters
    ----------
    names : list of str
        The notebooks, in display order.
    stream : file, optional
        Where to write (default: standard error).
    live : bool, optional
        Force the live display on or off (default: on when ``stream`` is a terminal and
        ``TERM`` is not ``dumb``).
    interval : float
        Refresh period of the live display, seconds.
    hold : bool
        Record state changes without showing them until :meth:`show` (the runner's kernels start
        while it validates: an invalid dataset then shows its report alone).
    """

    STATES = ("waiting", "running", "done", "FAILED")

    def __init__(self, names, stream=None, live=None, interval: float = 0.5, hold: bool = False):
        self.stream = stream if stream is not None else sys.stderr
        if live is None:
            live = bool(getattr(self.stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"
        self.live = live
        self.names = list(names)
        self.width = max((len(n) for n in self.names), default=0)
        self.state = {n: "waiting" for n in self.names}
        self.started: dict = {}
        self.seconds: dict = {}
        self.lock = threading.Lock()
        self._bars: list = []
        self._stop = threading.Event()
        self._thread = None
        self._interval = interval
        self.held = hold
        if not hold:
            self._start()

    def show(self) -> None:
        """Start showing (after ``hold``): the states so far, then every change."""
        with self.lock:
            if not self.held:
                return
            self.held = False
            if not self.live:
                for name in self.names:
                    if self.state[name] != "waiting":
                        print(self.line(name), file=self.stream, flush=True)
        self._start()

    def _start(self) -> None:
        if self.live:
            from tqdm import tqdm

            # a terminal that reports no size (0 x 0, e.g. some ptys) would hide every line: fall back to 100 x 24
            size = shutil.get_terminal_size((100, 24))
            self._bars = [
                tqdm(
                    total=0,
                    position=i,
                    bar_format="{desc}",
                    file=self.stream,
                    leave=True,
                    ncols=size.columns,
                    nrows=max(size.lines, len(self.names) + 1),
                )
                for i in range(len(self.names))
            ]
            self._draw()
            self._thread = threading.Thread(target=self._refresh, args=(self._interval,), daemon=True)
            self._thread.start()

    def line(self, name: str) -> str:
        """The notebook's line: name, state and elapsed (or final) seconds."""
        state = self.state[name]
        if name in self.seconds:
            elapsed = f"{self.seconds[name]:6.1f} s"
        elif name in self.started and self.live:
            elapsed = f"{time.perf_counter() - self.started[name]:6.1f} s"
        else:
            elapsed = ""
        return f"  {name:<{self.width}}  {state:<7}  {elapsed}".rstrip()

    def set(self, name: str, state: str, seconds: float | None = None, detail: str = "") -> None:
        """Record a state change (``running``, ``done`` or ``FAILED``); ``detail`` is appended to
        the plain line (e.g. the error)."""
        if state not in self.STATES:
            raise ValueError(f"state must be one of {self.STATES}, not {state!r}")
        with self.lock:
            self.state[name] = state
            if state == "running":
                self.started[name] = time.perf_counter()
            if seconds is not None:
                self.seconds[name] = seconds
            if self.held:
                return
            if self.live:
                self._draw()
            else:
                print(self.line(name) + (f": {detail}" if detail else ""), file=self.stream, flush=True)

    def _draw(self) -> None:
        for name, bar in zip(self.names, self._bars):
            bar.set_description_str(self.line(name), refresh=False)
            bar.refresh()

    def _refresh(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with self.lock:
                self._draw()

    def close(self) -> None:
        """Stop refreshing and leave the final lines on screen."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self.lock:
            if self._bars:
                self._draw()
            for bar in reversed(self._bars):
                bar.close()
            self._bars = []


def notebooks(only=None) -> list[Path]:
    """The collection's notebooks (sorted), or the named subset; raises ValueError on unknown names."""
    found = sorted(p for p in config.NOTEBOOKS_DIR.glob("*.ipynb"))
    if not only:
        return found
    names = {p.stem: p for p in found}
    unknown = [n for n in only if Path(n).stem not in names]
    if unknown:
        raise ValueError(f"unknown notebook(s) {unknown}; known: {sorted(names)}")
    return [names[Path(n).stem] for n in sorted(set(only))]


TIMINGS = config.RUNS_DIR / ".timings.json"  # each notebook's seconds in the last run (runs/ is git-ignored)


def read_timings(path=None) -> dict:
    """Notebook name -> seconds it took in the last run (empty when unknown or unreadable).

    Returns
    -------
    dict
    """
    try:
        found = json.loads(Path(path or TIMINGS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in found.items() if isinstance(v, (int, float))} if isinstance(found, dict) else {}


def write_timings(outcomes, path=None) -> None:
    """Remember how long each notebook that ran took (merged with the others' last times)."""
    path = Path(path or TIMINGS)
    times = {**read_timings(path), **{o.notebook: round(o.seconds, 2) for o in outcomes if o.ok}}
    try:
        io.atomic_write_text(path, json.dumps(times, indent=2, sort_keys=True) + "\n")
    except OSError:  # a read-only checkout: the next run schedules by name
        pass


def schedule(paths, timings: dict) -> list:
    """The order in which to start the notebooks: the longest first (by their last run's seconds),
    so that the last notebook to finish is a short one; unknown ones first (they may be long), then
    by name.

    Parameters
    ----------
    paths : list of Path
        The notebooks to run.
    timings : dict
        Notebook name -> seconds (:func:`read_timings`).

    Returns
    -------
    list of Path
    """
    return sorted(paths, key=lambda p: (-timings.get(p.stem, float("inf")), p.stem))


def strip_metadata(nb) -> None:
    """Remove papermill's and nbclient's per-run metadata (timings, paths) in place."""
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        cell.metadata.pop("ExecuteTime", None)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _kernel_log(folder: str, lines: int = 5) -> str:
    path = Path(folder) / "kernel.log"
    if not path.is_file():
        return ""
    tail = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-lines:]
    return (" | kernel log: " + " / ".join(tail)) if tail else ""


def _execute(
    nb_path: Path,
    target: Path,
    tmpdir: Path,
    failed_dir: Path,
    params: dict,
    cwd: Path,
    progress,
    kernel_env: dict | None = None,
    abandoned: threading.Event | None = None,
    factory=None,
) -> Outcome:
    import papermill as pm

    def gave_up() -> bool:  # the run stopped it (invalid data): no failed copy, no progress line
        return abandoned is not None and abandoned.is_set()

    if gave_up():
        return Outcome(nb_path.stem, False, 0.0, "abandoned")

    name = nb_path.stem
    tmp = tmpdir / nb_path.name
    t0 = time.perf_counter()
    progress(name, "running")
    sockets = tempfile.mkdtemp(prefix="respine-kernel-")  # short path: Unix sockets allow ~100 chars
    try:
        pm.execute_notebook(
            str(nb_path),
            str(tmp),
            parameters=params or None,
            kernel_name=KERNEL,
            language="python",
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=False,
            cwd=str(cwd),
            kernel_manager_class=kernels.ipc_kernel_manager(sockets, kernel_env, factory, _KERNEL_PIDS),
        )
    except pm.PapermillExecutionError as exc:
        seconds = time.perf_counter() - t0
        if gave_up():
            return Outcome(name, False, seconds, "abandoned")
        copy = None
        if tmp.exists():
            copy = failed_dir / nb_path.name
            io.atomic_write_bytes(copy, tmp.read_bytes())
        first = next((line for line in (exc.source or "").splitlines() if line.strip()), "")
        error = f"cell [{exc.exec_count}] `{first[:80]}`: {exc.ename}: {exc.evalue}"
        progress(name, "FAILED", seconds, error)
        return Outcome(name, False, seconds, error, copy)
    except Exception as exc:  # kernel died, could not start, ...
        seconds = time.perf_counter() - t0
        if gave_up():
            return Outcome(name, False, seconds, "abandoned")
        error = f"{type(exc).__name__}: {exc}{_kernel_log(sockets)}"
        progress(name, "FAILED", seconds, error)
        return Outcome(name, False, seconds, error)
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    if gave_up():
        return Outcome(name, False, time.perf_counter() - t0, "abandoned")
    if _STOP.is_set():  # interrupted: never publish a notebook after the user asked to stop
        seconds = time.perf_counter() - t0
        progress(name, "FAILED", seconds, "interrupted")
        return Outcome(name, False, seconds, "interrupted")
    nb = nbformat.read(tmp, as_version=4)
    strip_metadata(nb)
    io.atomic_write_text(target, nbformat.writes(nb) + "\n")
    seconds = time.perf_counter() - t0
    progress(name, "done", seconds)
    return Outcome(name, True, seconds)


def notebook_parameters(path: Path) -> dict:
    """The notebook's ``parameters``-tagged cell, as papermill reads it: name -> papermill's record
    (``default`` as written in the cell, ``help`` from its comment).

    ``papermill.inspect_notebook`` needs the notebook's kernelspec; a notebook without one (which
    :func:`_execute` runs with the ``python3`` kernel) is read by papermill's Python translator.

    Returns
    -------
    dict
    """
    import papermill as pm
    from papermill.translators import PythonTranslator

    nb = nbformat.read(path, as_version=4)
    if nb.metadata.get("kernelspec", {}).get("name"):
        return dict(pm.inspect_notebook(str(path)))
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    return {p.name: p._asdict() for p in PythonTranslator.inspect(cells[0])} if cells else {}


def declared_parameters(path: Path) -> set:
    """Names of the notebook's ``parameters``-tagged cell (see :func:`notebook_parameters`).

    Returns
    -------
    set of str
    """
    return set(notebook_parameters(path))


def list_parameters(notebook: str) -> str:
    """What ``respine-nb run --list-parameters NOTEBOOK`` prints: each parameter of the notebook's
    parameters cell with its type, its default (as the cell has it), the values allowed and its
    meaning (from :data:`respine_nb.parameters.SPEC`; the cell's own comment for an undeclared one).

    Parameters
    ----------
    notebook : str
        A notebook's name (``02_primary_endpoint``) or file name.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For an unknown notebook.
    """
    (path,) = notebooks([notebook])
    cell = notebook_parameters(path)
    rows = []
    for name, record in cell.items():
        spec = parameters.SPEC.get(name)
        kind = spec.kind if spec else (record.get("inferred_type_name") or "?")
        allowed = spec.allowed() if spec else "not declared in respine_nb.parameters"
        meaning = spec.help if spec else (record.get("help") or "")
        how = " (set with --data / --out)" if name in parameters.PATHS else f" (-p {name} VALUE)"
        rows.append((name, kind, record.get("default", ""), allowed, meaning + how))
    width = max((len(r[0]) for r in rows), default=4)
    lines = [f"parameters of {path.stem} (from its parameters cell):"]
    for name, kind, default, allowed, meaning in rows:
        lines.append(f"  {name:<{width}}  {kind:<5}  default {default}; {allowed}")
        lines.append(f"  {'':<{width}}  {meaning}")
    return "\n".join(lines)


def _on_sigterm(signum, frame):  # pragma: no cover - exercised by the interrupt test
    raise KeyboardInterrupt


def _kill_kernels() -> None:
    """SIGKILL every kernel this run started (checked to be an ipykernel process)."""
    for pid in list(_KERNEL_PIDS):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"ipykernel" in cmdline or b"respine_nb.kernels" in cmdline:  # launched, or forked by the factory
                os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass
        _KERNEL_PIDS.discard(pid)


def remove_partial_files(folders) -> list:
    """Delete the temporary files of interrupted atomic writes (``.<name>.<random>.tmp``)."""
    removed = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_dir():
            for p in folder.rglob(".*.tmp"):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def run(data=None, out=None, params=None, only=None, jobs=None, derive_only=False, factory=None) -> int:
    """Check the parameters, validate, derive and execute the notebooks.

    Parameters are checked first (against :mod:`respine_nb.parameters`, then against the
    notebooks' parameters cells), before any data is read or kernel started. ``factory``: a
    :class:`kernels.KernelFactory` the caller started early (the run closes it); by default the
    run starts its own (unless ``RESPINE_NB_KERNEL_FACTORY=0``).

    Returns
    -------
    int
        The exit status: 0, 1 (a notebook failed) or 2 (bad arguments or data).
    """
    params = dict(params or {})
    paths_given = sorted(set(params) & set(parameters.PATHS))
    if paths_given:
        print(f"error: set {', '.join(paths_given)} with --data / --out, not with -p", file=sys.stderr)
        return 2
    try:
        params = parameters.check(params)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    default = data is None and out is None and not params
    if not default and out is None:
        print("error: --out OUT is required with --data or -p (only the default run writes into the repository)", file=sys.stderr)
        return 2
    data_dir = Path(data).expanduser().resolve() if data else config.SYNTHETIC_DIR
    if default:
        root = config.ROOT
        nb_dir, derived_dir, figures_dir = config.NOTEBOOKS_DIR, config.DERIVED_DIR, config.FIGURES_DIR
        failed_dir, tmp_parent = config.RUNS_DIR / "failed", config.RUNS_DIR
    else:
        root = Path(out).expanduser().resolve()
        for protected in (config.NOTEBOOKS_DIR, config.ROOT / "data", config.FIGURES_DIR, data_dir):
            if _inside(root, protected) or root.resolve() == config.ROOT.resolve():
                print(f"error: --out {out} must not be inside {protected} (or be the repository)", file=sys.stderr)
                return 2
        nb_dir, derived_dir, figures_dir = root / "notebooks", root / "derived", root / "figures"
        failed_dir, tmp_parent = root / "failed", root
    try:
        paths = notebooks(only)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    declared = {p.stem: declared_parameters(p) for p in paths}
    unused = sorted(set(params) - set().union(*declared.values())) if declared else sorted(params)
    if unused:
        print(
            f"error: parameter(s) {', '.join(unused)} not used by the notebook(s) {', '.join(p.stem for p in paths)}",
            file=sys.stderr,
        )
        return 2

    if data is None and not (config.SYNTHETIC_DIR / "subjects.csv").exists():
        from . import synthetic  # only when the committed cohort is absent (a fresh clone without data)

        synthetic.write(config.SYNTHETIC_DIR)
        print(f"wrote the SYNTHETIC default cohort to {config.SYNTHETIC_DIR.relative_to(config.ROOT)}")

    started = datetime.now(UTC)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() else None
    tmpdir, made, pool, progress, futures = None, [], None, None, {}
    abandoned = threading.Event()
    try:
        settings = {**parameters.defaults(), **params}  # the run's visit and responder rule
        rule = parameters.rule(settings)
        if not derive_only:
            # The kernels start now and import their libraries while this process validates and
            # derives; each notebook's session.start waits for the cache's stamp, written last.
            made = _missing_folders(nb_dir, tmp_parent)
            nb_dir.mkdir(parents=True, exist_ok=True)  # the kernels' working directory
            tmp_parent.mkdir(parents=True, exist_ok=True)
            tmpdir = Path(tempfile.mkdtemp(prefix=".respine-run-", dir=tmp_parent))
            from .session import RUN_CACHE_ENV, write_run_cache

            cache = tmpdir / "cache"
            cache.mkdir()
            jobs = max(1, jobs or os.cpu_count() or 1)
            kernel_env = {RUN_CACHE_ENV: str(cache), **kernels.SINGLE_THREAD_ENV}
            if factory is None and kernels.factory_enabled():  # imports the stack once, forks the kernels
                factory = kernels.KernelFactory()
            base = {} if default else {"data_dir": str(data_dir), "out_dir": str(root)}
            progress = Progress([p.stem for p in paths], hold=True)  # shown once the data are valid
            pool = ThreadPoolExecutor(max_workers=jobs)
            futures = {
                p.stem: pool.submit(
                    _execute,
                    p,
                    nb_dir / p.name,
                    tmpdir,
                    failed_dir,
                    {k: v for k, v in {**base, **params}.items() if k in declared[p.stem]},
                    nb_dir,
                    progress.set,
                    kernel_env,
                    abandoned,
                    factory,
                )
                for p in schedule(paths, read_timings())
            }
        try:
            dataset, problem, stream = _validate(data_dir, default)
            if dataset is None:
                _abandon(pool, progress, abandoned, tmpdir, factory, kill=False)
                for d in made:  # the run created them: an invalid dataset leaves nothing behind
                    shutil.rmtree(d, ignore_errors=True)
                print(problem, file=stream)
                return 2
            derived_tables = derive.derive_all(dataset.tables, settings["visit_month"], **rule)
            if not derive_only:
                # first, so that the kernels start on it while the CSV files are written (a 100x
                # cohort's take seconds): they reuse this validation and derivation when its stamp
                # matches their data and parameters
                write_run_cache(cache, dataset, derived_tables, settings["visit_month"], rule)
            io.write_tables(derived_tables, derived_dir)
            validated = (
                f"validated {_shown(data_dir, default)} and derived the analysis datasets into {_shown(derived_dir, default)}/"
            )
            if derive_only:
                print(validated, flush=True)
                return 0
            print(validated, flush=True)
            print(f"running {len(paths)} notebook(s), {jobs} at a time", flush=True)
            progress.show()
            from . import tables

            tables.import_writers()  # for Table 2, at the end: now, while the kernels start
            outcomes = [futures[p.stem].result() for p in paths]
        except KeyboardInterrupt:
            _STOP.set()
            _abandon(pool, progress, abandoned, tmpdir, factory)
            remove_partial_files({nb_dir, derived_dir, figures_dir, failed_dir})
            print("interrupted: running notebooks stopped; nothing half-written was left behind", file=sys.stderr)
            return 130
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
                progress.close()
        write_timings(outcomes)
        from . import results

        results.merge(derived_dir)
        # Table 2 reads rows of several notebooks: built once they have all run
        results.write_table2(
            derived_dir, figures_dir, settings["visit_month"], settings["immunology_visit"], settings["min_cell"]
        )
        finished = datetime.now(UTC)
        if not default:
            manifest = {
                "respine_nb": __version__,
                "git_commit": git_commit(),
                "started": started.isoformat(timespec="seconds"),
                "finished": finished.isoformat(timespec="seconds"),
                "data_dir": str(data_dir),
                "inputs_sha256": dataset.sha256,
                "data_manifest": data_manifest(data_dir, dataset.sha256),
                "parameters": params,
                "notebooks": {o.notebook: {"ok": o.ok, "seconds": round(o.seconds, 2), "error": o.error} for o in outcomes},
                "versions": versions(),
            }
            io.atomic_write_text(root / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    finally:
        if pool is not None and not all(f.done() for f in futures.values()):  # an unexpected error
            _abandon(pool, progress, abandoned, tmpdir, factory)
        if factory is not None:
            factory.close()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    failed = [o for o in outcomes if not o.ok]
    total = (finished - started).total_seconds()
    if factory is not None and factory.failed:  # slower, same outputs: said, so that it does not go unnoticed
        print(f"note: the kernels started the usual way, not from the kernel factory ({factory.failed})", file=sys.stderr)
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} notebook(s) ran in {total:.1f} s")
    for o in failed:
        kept = f"; executed copy kept at {o.failed_copy}" if o.failed_copy else ""
        print(f"FAILED {o.notebook}: {o.error}{kept}", file=sys.stderr)
    print(where_to_look(root if not default else None))
    return 1 if failed else 0


def _missing_folders(*folders: Path) -> list:
    """The folders (and their parents) that do not exist yet, outermost first."""
    return sorted({d for f in folders for d in (f, *f.parents) if not d.exists()}, key=lambda d: len(d.parts))


def _validate(data_dir: Path, default: bool):
    """(dataset, None, None) when ``data_dir`` holds valid data (and, for the default run, the
    committed cohort as its manifest describes it); else (None, the report, the stream to print
    it on)."""
    try:
        dataset = io.load_dataset(data_dir)
    except FileNotFoundError as exc:
        return None, f"INVALID: {exc}", sys.stdout
    except io.DataValidationError as exc:
        return None, exc.report(), sys.stdout
    if default and not data_manifest(data_dir, dataset.sha256).get("files_match"):
        return (
            None,
            f"error: {data_dir.relative_to(config.ROOT)} does not match its MANIFEST.json: the default run "
            "writes the committed results only from the committed cohort (restore it with git, or run "
            "with --data and --out)",
            sys.stderr,
        )
    return dataset, None, None


def _abandon(pool, progress, abandoned: threading.Event, tmpdir, factory=None, kill: bool = True) -> None:
    """Stop a run whose kernels started before its data turned out invalid (or an error, or an
    interrupt): the cache they wait for is removed, so that their session.start stops with an
    error, quietly; the kernel factory stops, so that no kernel starts any more; the notebooks
    not started are cancelled; with ``kill``, the kernels are also killed at once. Nothing is
    published."""
    abandoned.set()
    if factory is not None:  # first: a kernel it is starting must not fall back to an ordinary one
        factory.stop()
    if tmpdir is not None:
        shutil.rmtree(Path(tmpdir) / "cache", ignore_errors=True)
    if pool is not None:
        if kill:
            _kill_kernels()
        pool.shutdown(wait=True, cancel_futures=True)
        if kill:
            _kill_kernels()  # any kernel that was still starting
    if progress is not None:
        progress.close()


def _shown(path: Path, default: bool) -> str:
    """A path as the user would type it: relative to the repository in the default run."""
    if default:
        try:
            return Path(path).resolve().relative_to(config.ROOT.resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


def where_to_look(out=None) -> str:
    """The closing lines of a run: where its notebooks, figures and results are, and how to
    build the report.

    Parameters
    ----------
    out : str or Path, optional
        The run's output folder; None for the default run (paths relative to the repository).

    Returns
    -------
    str
    """
    if out is None:
        nb, fig, derived = "notebooks/", "figures/", "data/derived/"
        report = "make report  (or: respine-nb report; opens as reports/index.html)"
    else:
        root = Path(out).expanduser().resolve()
        nb, fig, derived = f"{root / 'notebooks'}/", f"{root / 'figures'}/", f"{root / 'derived'}/"
        report = f"respine-nb report --out {root}  (or: make report OUT={root}; opens as {root / 'report' / 'index.html'})"
    return "\n".join(
        [
            "Where to look:",
            f"  notebooks  {nb}  (executed, with their outputs)",
            f"  figures    {fig}  (PNG 300 dpi and PDF)",
            f"  results    {derived}results.csv  (and {derived}ard.csv, the same numbers as Analysis Results Data)",
            f"  report     {report}",
        ]
    )
