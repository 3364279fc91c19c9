"""What every notebook does first and last: check parameters, resolve folders, load, derive,
record, list outputs.

A notebook calls :func:`start` with its name and every parameter of its parameters cell; they
are checked against :mod:`respine_nb.parameters` (a ValueError naming the parameter and what is
allowed). Paths resolve through :mod:`respine_nb.config`, never the working directory, so the
same notebook runs in JupyterLab, under plain papermill or under the runner. Where the outputs go:

- ``out_dir`` (or the ``RESPINE_NB_OUT`` environment variable, used by the test suite): under it;
- else, the default parameters on the committed synthetic cohort: the repository's own
  data/derived/ and figures/ (the default run);
- else (exploring in JupyterLab with a changed parameter or other data): under
  ``runs/lab-<what changed>/``, so exploring never overwrites the committed results; the
  notebook's last cell says where.

Every analysis input comes from the session's analysis datasets (:mod:`respine_nb.derive`):
``nb.adsl``, ``nb.adeff``, ``nb.admri``, ``nb.adtte``, ``nb.adae``, ``nb.adis``, ``nb.adds``, ``nb.adice`` (or
``nb.datasets["adsl"]``, ...), derived with the run's visit and responder rule; a notebook never
reads the raw tables. :meth:`Session.record` and :meth:`Session.record_each` keep result rows.

Validation and derivation once per run: the runner (:mod:`respine_nb.runner`) validates the data
and derives the analysis datasets once, writes them with a stamp (the input files' sha256, the
data folder and the visit and responder rule of the derivation) into its private temporary folder,
and names that folder to its kernels only (environment variable ``RESPINE_NB_RUN_CACHE``). The
kernels start while the runner validates: :func:`start` waits for the stamp (written last).
:func:`start` and :func:`derived` reuse them only when the stamp matches the notebook's data and
parameters, the input files included (re-hashed); a notebook run alone (JupyterLab, plain
papermill, nbval) validates and derives itself. A kernel forked by the runner's kernel factory
finds the cache already loaded (:func:`inherit_run_cache`).
"""

from __future__ import annotations

import json
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import __version__, config, derive, io, parameters, results

RUN_CACHE_ENV = "RESPINE_NB_RUN_CACHE"  # set by the runner for its own kernels only
CACHE_WAIT_SECONDS = 600  # longest wait for the runner's validation (a 100x cohort takes seconds)
_STAMP, _PICKLE = "stamp.json", "validated-and-derived.pickle"


SYNTHETIC_BANNER = (
    "**Synthetic data.** These participants were simulated by `respine_nb.synthetic`, calibrated "
    "to the published aggregates of RESPINE; they are not the trial's patients."
)
MANIFEST_MISMATCH = (
    "**MANIFEST.json does not match these files.** The folder's manifest describes a synthetic "
    "dataset, but the sha256 of the input files differ from it (an edited or partial copy?): "
    "these data are not presented as that synthetic cohort."
)


def manifest_matches(manifest: dict, sha256: dict) -> bool:
    """True when the input files are exactly those of the manifest, byte for byte.

    Parameters
    ----------
    manifest : dict
        A dataset folder's MANIFEST.json (see :func:`io.read_manifest`).
    sha256 : dict
        Input file name -> sha256 of the loaded dataset (:attr:`io.Dataset.sha256`).

    Returns
    -------
    bool
    """
    files = manifest.get("files") or {}
    return bool(files) and set(files) == set(sha256) and all(files[k].get("sha256") == sha256[k] for k in files)


def is_default_generator(manifest: dict) -> bool:
    """True when the manifest records the generator settings of the committed cohort.

    Returns
    -------
    bool
    """
    default = parameters.generator_defaults()
    return manifest.get("seed") == default["seed"] and manifest.get("parameters") == default["parameters"]


def synthetic_banner(manifest: dict, matches: bool) -> str:
    """The banner of a synthetic dataset: empty for data that are not synthetic, a warning when
    the files do not match their manifest, else what generated them.

    Parameters
    ----------
    manifest : dict
        MANIFEST.json of the data folder (its ``synthetic``, ``seed`` and ``parameters``).
    matches : bool
        Whether the input files match the manifest (:func:`manifest_matches`).

    Returns
    -------
    str
        Markdown; "calibrated to the published aggregates" only for the default generator settings.
    """
    if not manifest.get("synthetic"):
        return ""
    if not matches:
        return MANIFEST_MISMATCH
    if is_default_generator(manifest):
        return SYNTHETIC_BANNER
    settings = ", ".join(
        f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in sorted((manifest.get("parameters") or {}).items())
    )
    return (
        f"**Synthetic data.** These participants were simulated by `respine_nb.synthetic` with seed "
        f"{manifest.get('seed')} and settings {settings or 'unknown'}; they are not the trial's patients."
    )


@dataclass
class Session:
    """A notebook's run context.

    Attributes
    ----------
    name : str
        Notebook name (e.g. ``01_cohort``): prefix of its figures and results part.
    data : io.Dataset
        The validated input tables.
    root : Path
        The output root (the repository for the default run, else ``out_dir``).
    derived_dir, figures_dir : Path
        Where results and figures go.
    is_default_data : bool
        True for the committed synthetic cohort (matching its MANIFEST.json), whose published
        counts the notebook asserts.
    synthetic : bool
        True when the data folder's MANIFEST.json says the data are synthetic and matches them.
    params : dict
        The notebook's checked parameters (without the folders).
    banner : str
        The synthetic-data banner, or the manifest-mismatch warning, or empty.
    redirected_to : str
        ``runs/lab-...`` (relative to the repository) when an exploration was sent there, else empty.
    """

    name: str
    data: io.Dataset
    root: Path
    derived_dir: Path
    figures_dir: Path
    is_default_data: bool
    synthetic: bool
    params: dict = field(default_factory=dict)
    banner: str = ""
    redirected_to: str = ""
    written: list = field(default_factory=list)
    _rows: list = field(default_factory=list)
    _cache: dict | None = field(default=None, repr=False)  # the runner's validated and derived data
    _datasets: dict | None = field(default=None, repr=False)  # this notebook's analysis datasets, once

    @property
    def tables(self) -> dict:
        """The validated raw tables (for the package's own checks; notebooks read :attr:`datasets`)."""
        return self.data.tables

    @property
    def datasets(self) -> dict:
        """The analysis datasets of this run (name -> DataFrame; :data:`respine_nb.derive.DATASETS`),
        derived once: the runner's, when its stamp matches, else derived here (:func:`derived`)."""
        if self._datasets is None:
            self._datasets = derived(self)
        return self._datasets

    @property
    def adsl(self) -> pd.DataFrame:
        """ADSL: one row per randomised participant (data/derived/README.md)."""
        return self.datasets["adsl"]

    @property
    def adeff(self) -> pd.DataFrame:
        """ADEFF: the efficacy BDS (VAS, ODI, PCS, MCS, RESP, MCIDVAS, MCIDODI)."""
        return self.datasets["adeff"]

    @property
    def admri(self) -> pd.DataFrame:
        """ADMRI: the MRI BDS (T2NP, PFIRR, DISCHT)."""
        return self.datasets["admri"]

    @property
    def adtte(self) -> pd.DataFrame:
        """ADTTE: time to first response (TTRESP)."""
        return self.datasets["adtte"]

    @property
    def adae(self) -> pd.DataFrame:
        """ADAE: adverse events."""
        return self.datasets["adae"]

    @property
    def adis(self) -> pd.DataFrame:
        """ADIS: immunogenicity (no row without an immunology table)."""
        return self.datasets["adis"]

    @property
    def adds(self) -> pd.DataFrame:
        """ADDS: the screening log (no row without a screening table)."""
        return self.datasets["adds"]

    @property
    def adice(self) -> pd.DataFrame:
        """ADICE: intercurrent events (no row without an intercurrent_events table)."""
        return self.datasets["adice"]

    @property
    def published_setting(self) -> bool:
        """True when the published figures apply: the committed cohort, analysed at the protocol's
        visit, with its responder rule, in the evaluable population (the notebook's own values,
        defaults for those it does not declare)."""
        p = {**parameters.defaults(), **self.params}
        return (
            self.is_default_data
            and p["visit_month"] == config.PRIMARY_VISIT
            and parameters.rule(p) == parameters.rule({})
            and p["population"] == "evaluable"
        )

    @property
    def rule(self) -> dict:
        """The responder-rule arguments of this run (declared ones, defaults for the others).

        Returns
        -------
        dict
            ``vas_abs_mm``, ``vas_rel``, ``odi_rel``, ``odi_rule`` (for derive and stats).
        """
        return parameters.rule(self.params)

    def record(self, df: pd.DataFrame, analysis_id: str | None = None, **fixed) -> pd.DataFrame:
        """Keep result rows; returns them for display.

        Parameters
        ----------
        df : DataFrame
            Contract rows (:func:`results.rows`), or, with ``analysis_id``, a tidy stats frame
            turned into rows under that id (an empty frame records nothing).
        analysis_id : str, optional
            The id of every row (must be in the analysis registry).
        **fixed
            Values for columns the frame lacks (see :func:`results.rows`).

        Returns
        -------
        pandas.DataFrame
        """
        rows = df if analysis_id is None else results.rows(df, analysis_id, **fixed)
        checked = results.check_registered(results.check(rows))
        self._rows.append(checked)
        return checked

    def record_each(self, df: pd.DataFrame, prefix: str, by: str, keys=None, **fixed) -> pd.DataFrame:
        """Keep the rows of ``df`` under one id per value of its column ``by`` (see
        :func:`results.rows_each`); returns them for display."""
        return self.record(results.rows_each(df, prefix, by, keys, **fixed))

    def save(self, fig, what: str) -> None:
        """Save a figure as ``<figures>/<notebook>-<what>.png/.pdf`` (listed by :meth:`finish`)."""
        from . import plots

        self.written += plots.save(fig, f"{self.name}-{what}", self.figures_dir)

    def save_table(self, text: str, filename: str) -> None:
        """Save a table file (CSV or HTML text) as ``<figures>/<notebook>-<filename>``."""
        self.written.append(io.atomic_write_text(self.figures_dir / f"{self.name}-{filename}", text))

    def save_publication(self, pub, name: str) -> None:
        """Save a publication table (:class:`respine_nb.tables.PubTable`) as
        ``<figures>/<notebook>-<name>.html`` and ``.docx`` (:func:`respine_nb.tables.write_table`;
        listed by :meth:`finish`)."""
        from . import tables

        self.written += tables.write_table(pub, f"{self.name}-{name}", self.figures_dir)

    def finish(self):
        """Write the results part, merge results.csv, and list what was written (relative paths).

        When the outputs were sent under runs/ (exploring with other parameters or data), a
        sentence says where first.

        Returns
        -------
        respine_nb.tables.PubTable
            The formatted listing (its ``frame``: columns ``File``, ``derived/...`` or
            ``figures/...``, the same whatever the output root, so the listing is reproducible, and
            ``Kind``).
        """
        from . import tables

        rows = pd.concat(self._rows, ignore_index=True) if self._rows else pd.DataFrame(columns=results.COLUMNS)
        part = results.write_part(rows, self.derived_dir, self.name)
        merged = results.merge(self.derived_dir)
        files = [*self.written, part, merged]
        listed = sorted({self._logical(p) for p in files})
        kinds = [Path(f).suffix.lstrip(".") for f in listed]
        if self.redirected_to:
            from IPython.display import Markdown, display

            display(
                Markdown(
                    f"These parameters or data differ from the defaults, so the files below were written "
                    f"under `{self.redirected_to}/` (relative to the repository), not into the committed "
                    "data/derived/ and figures/."
                )
            )
        listing = pd.DataFrame({"file": listed, "kind": kinds})
        return tables.results_table(listing, "Files written by this notebook", table_id=f"{self.name}-files")

    def header(self, full: bool = False):
        """What the reader must know before any result: a banner when the data are synthetic (or
        when they do not match their manifest), the setting (visit, responder rule, population:
        :func:`parameters.setting`), participants per arm (or the whole validation summary with
        ``full``) and the dataset's warnings.

        Returns
        -------
        IPython.display.Markdown
        """
        from IPython.display import Markdown

        summary = self.data.summary()
        lines = summary.splitlines()
        text = (
            "```\n"
            + (summary if full else "\n".join([lines[1], *[ln for ln in lines if ln.startswith(("warnings", "  - "))]]))
            + "\n```"
        )
        setting = parameters.setting(self.params)
        return Markdown("\n\n".join(part for part in (self.banner, setting, text) if part))

    def _logical(self, path) -> str:
        path = Path(path).resolve()
        for label, folder in (("derived", self.derived_dir), ("figures", self.figures_dir)):
            try:
                return f"{label}/{path.relative_to(folder.resolve()).as_posix()}"
            except ValueError:
                continue
        return path.name


def start(name: str, data_dir=None, out_dir=None, **params) -> Session:
    """Check the parameters, resolve folders, load and validate the data, apply the figure theme.

    Parameters
    ----------
    name : str
        The notebook's name.
    data_dir : str or Path, optional
        Dataset folder (default: the committed synthetic cohort).
    out_dir : str or Path, optional
        Output root (default: see the module doc).
    **params
        Every other parameter of the notebook's parameters cell, by name.

    Returns
    -------
    Session

    Raises
    ------
    ValueError
        For an undeclared parameter or a value outside what :mod:`respine_nb.parameters` allows.
    """
    checked = parameters.check({"data_dir": data_dir, "out_dir": out_dir, **params})
    params = {k: v for k, v in checked.items() if k not in parameters.PATHS}
    data = Path(data_dir).expanduser().resolve() if data_dir else config.SYNTHETIC_DIR
    out_dir = out_dir or os.environ.get(config.OUT_ENV)  # the test suite sends nbval's writes elsewhere
    cached = _run_cache(data)
    dataset = cached["dataset"] if cached else io.load_dataset(data)
    manifest = io.read_manifest(data)
    matches = manifest_matches(manifest, dataset.sha256)
    is_default_data = data.resolve() == config.SYNTHETIC_DIR.resolve() and matches and is_default_generator(manifest)
    redirected_to = ""
    if out_dir:
        root = Path(out_dir).expanduser().resolve()
    elif is_default_data and not parameters.changed(params):
        root = config.ROOT.resolve()
    else:  # exploring: never into the committed results
        folder = parameters.lab_folder(params, None if is_default_data else data.name)
        root = config.RUNS_DIR.resolve() / folder
        redirected_to = f"{config.RUNS_DIR.name}/{folder}"
    if root == config.ROOT.resolve():
        derived_dir, figures_dir = config.DERIVED_DIR, config.FIGURES_DIR
    else:
        derived_dir, figures_dir = root / "derived", root / "figures"
    from . import plots

    plots.theme()
    pd.set_option("display.max_colwidth", 120)  # file names and methods are shown whole
    return Session(
        name=name,
        data=dataset,
        root=root,
        derived_dir=derived_dir,
        figures_dir=figures_dir,
        is_default_data=is_default_data,
        synthetic=bool(manifest.get("synthetic")) and matches,
        params=params,
        banner=synthetic_banner(manifest, matches),
        redirected_to=redirected_to,
        _cache=cached,
    )


def derived(session: Session, visit_month: int | None = None, **thresholds) -> dict:
    """The analysis datasets of the session's data (see :func:`derive.derive_all`), at the
    session's visit and with its responder rule unless given: the runner's, the first time its
    stamp matches (handed over, not copied), else derived here.

    Returns
    -------
    dict
        Name -> DataFrame, the caller's own (never given out twice).
    """
    visit = session.params.get("visit_month", config.PRIMARY_VISIT) if visit_month is None else visit_month
    rule = {**session.rule, **thresholds}
    cached = session._cache
    if cached and cached.get("derived") is not None and cached["stamp"]["derivation"] == _derivation(visit, rule):
        # the runner's frames, handed over once (a later call derives again, so that what a notebook
        # changes in them is never seen twice): never two copies in memory (a large cohort's are big)
        return cached.pop("derived")
    return derive.derive_all(session.tables, visit, **rule)


def _derivation(visit_month, rule: dict) -> dict:
    """What a derivation depends on besides the input tables (JSON-comparable)."""
    return json.loads(json.dumps({"visit_month": visit_month, **{k: rule[k] for k in sorted(rule)}}))


def _inputs(folder: Path) -> dict | None:
    """Input file name -> sha256 of a dataset folder's table files (None when they cannot be listed)."""
    files, problems = io.find_table_files(folder)
    if problems:
        return None
    return {path.name: io.sha256_file(path) for path in files.values()}


def write_run_cache(folder, dataset: io.Dataset, derived_tables: dict, visit_month: int, rule: dict) -> Path:
    """Write the run's validated tables and analysis datasets, with their stamp, into ``folder``
    (the runner's private temporary folder; see the module doc). Atomic writes.

    Parameters
    ----------
    folder : str or Path
        Where to write (created if needed).
    dataset : io.Dataset
        The validated data (:func:`io.load_dataset`).
    derived_tables : dict
        Name -> DataFrame, as :func:`derive.derive_all` returned them for ``visit_month`` and ``rule``.
    visit_month : int
    rule : dict
        The responder-rule arguments of the derivation (:func:`parameters.rule`).

    Returns
    -------
    Path
        The folder, to pass to the kernels as ``RESPINE_NB_RUN_CACHE``.
    """
    folder = Path(folder)
    stamp = {
        "respine_nb": __version__,
        "data_dir": str(Path(dataset.folder).resolve()),
        "inputs_sha256": dict(sorted(dataset.sha256.items())),
        "derivation": _derivation(visit_month, rule),
    }
    io.atomic_write_bytes(
        folder / _PICKLE, pickle.dumps({"dataset": dataset, "derived": derived_tables}, protocol=pickle.HIGHEST_PROTOCOL)
    )
    io.atomic_write_text(folder / _STAMP, json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    return folder


def _load_run_cache(folder: Path, alive=None) -> dict | None:
    """The stamp and content of the runner's cache in ``folder``, once its stamp is written
    (waiting up to :data:`CACHE_WAIT_SECONDS` for it); None when it cannot be read. ``alive``:
    a function saying whether the run still goes on (checked while waiting).

    Raises
    ------
    RuntimeError
        When the folder disappears (or ``alive()`` is false): the runner stopped the run.
    """
    # The runner starts its kernels while it validates and derives: its stamp, written last, says
    # the cache is complete. A folder that disappears means the runner stopped the run.
    deadline = time.monotonic() + CACHE_WAIT_SECONDS
    while not (folder / _STAMP).exists():
        if not folder.is_dir() or (alive is not None and not alive()):
            raise RuntimeError(f"the run that started this kernel stopped (its cache {folder} is gone)")
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)
    try:
        stamp = json.loads((folder / _STAMP).read_text(encoding="utf-8"))
        cached = pickle.loads((folder / _PICKLE).read_bytes())  # written by this run's runner
    except (OSError, ValueError, pickle.UnpicklingError, EOFError):
        return None
    return {"stamp": stamp, **cached}


_INHERITED: dict = {}  # cache folder -> its content, loaded by the kernel factory before it forked this kernel


def inherit_run_cache(folder, alive=None) -> bool:
    """In the kernel factory (:mod:`respine_nb.kernels`), before it forks a kernel: load the
    runner's cache once, so that every kernel forked afterwards finds it in its memory instead of
    reading it (a 100x cohort's takes 0.7 s per kernel to read). The kernel checks its stamp as
    it checks one it reads.

    Parameters
    ----------
    folder : str or Path
        The runner's cache folder (``RESPINE_NB_RUN_CACHE``).
    alive : callable, optional
        Says whether the runner still runs (the factory stops waiting when it is gone).

    Returns
    -------
    bool
        Whether it was loaded now (False: already loaded).

    Raises
    ------
    RuntimeError
        When the folder disappears: the runner stopped the run.
    """
    key = str(Path(folder))
    if key in _INHERITED:
        return False
    _INHERITED[key] = _load_run_cache(Path(folder), alive)
    return True


def _run_cache(data: Path) -> dict | None:
    """The runner's validated tables and analysis datasets for ``data``, when the runner named its
    cache to this kernel and the stamp matches (same folder, same version, same input bytes);
    else None (the caller validates and derives itself)."""
    folder = os.environ.get(RUN_CACHE_ENV)
    if not folder:
        return None
    cached = _INHERITED.pop(str(Path(folder)), None) or _load_run_cache(Path(folder))
    if cached is None:
        return None
    stamp = cached["stamp"]
    if (
        stamp.get("respine_nb") != __version__
        or stamp.get("data_dir") != str(data.resolve())
        or stamp.get("inputs_sha256") != _inputs(data)
    ):
        return None
    return cached
