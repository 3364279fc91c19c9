"""What every notebook does first and last: resolve folders, load, derive, record, list outputs.

A notebook calls :func:`start` with its parameters; paths resolve through
:mod:`respine_nb.config`, never the working directory, so the same notebook runs
in JupyterLab, under plain papermill or under the runner. Defaults (``None``):
the committed synthetic dataset, and the repository's own data/derived/ and
figures/ (the default run). With ``out_dir`` set, everything goes under it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import config, derive, io, plots, results


SYNTHETIC_BANNER = ("**Synthetic data.** These participants were simulated by `respine_nb.synthetic`, calibrated "
                    "to the published aggregates of RESPINE; they are not the trial's patients.")


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
        True for the committed synthetic cohort, whose published counts the notebook asserts.
    synthetic : bool
        True when the data folder's MANIFEST.json says the data are synthetic.
    """

    name: str
    data: io.Dataset
    root: Path
    derived_dir: Path
    figures_dir: Path
    is_default_data: bool
    synthetic: bool
    written: list = field(default_factory=list)
    _rows: list = field(default_factory=list)

    @property
    def tables(self) -> dict:
        return self.data.tables

    def record(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Keep result rows (contract columns; see :func:`results.rows`); returns them for display."""
        checked = results.check(rows)
        self._rows.append(checked)
        return checked

    def save(self, fig, what: str) -> None:
        """Save a figure as ``<figures>/<notebook>-<what>.png/.pdf`` (listed by :meth:`finish`)."""
        self.written += plots.save(fig, f"{self.name}-{what}", self.figures_dir)

    def save_table(self, text: str, filename: str) -> None:
        """Save a table file (CSV or HTML text) as ``<figures>/<notebook>-<filename>``."""
        self.written.append(io.atomic_write_text(self.figures_dir / f"{self.name}-{filename}", text))

    def finish(self) -> pd.DataFrame:
        """Write the results part, merge results.csv, and list what was written (relative paths).

        Returns
        -------
        pandas.DataFrame
            Columns ``file`` (``derived/...`` or ``figures/...``, the same whatever the output
            root, so the listing is reproducible) and ``kind``.
        """
        rows = pd.concat(self._rows, ignore_index=True) if self._rows else pd.DataFrame(columns=results.COLUMNS)
        part = results.write_part(rows, self.derived_dir, self.name)
        merged = results.merge(self.derived_dir)
        files = [*self.written, part, merged]
        listed = sorted({self._logical(p) for p in files})
        kinds = [Path(f).suffix.lstrip(".") for f in listed]
        return pd.DataFrame({"file": listed, "kind": kinds})


    def header(self, full: bool = False):
        """What the reader must know about the data before any result: participants per arm (or
        the whole validation summary with ``full``), the dataset's warnings, and a banner when
        the data are synthetic.

        Returns
        -------
        IPython.display.Markdown
        """
        from IPython.display import Markdown

        summary = self.data.summary()
        lines = summary.splitlines()
        text = "```\n" + (summary if full else "\n".join([lines[1], *[ln for ln in lines if ln.startswith(("warnings", "  - "))]])) + "\n```"
        if self.synthetic:
            text = (SYNTHETIC_BANNER + "\n\n") + text
        return Markdown(text)

    def _logical(self, path) -> str:
        path = Path(path).resolve()
        for label, folder in (("derived", self.derived_dir), ("figures", self.figures_dir)):
            try:
                return f"{label}/{path.relative_to(folder.resolve()).as_posix()}"
            except ValueError:
                continue
        return path.name


def start(name: str, data_dir=None, out_dir=None) -> Session:
    """Resolve folders, load and validate the data, apply the figure theme.

    Parameters
    ----------
    name : str
        The notebook's name.
    data_dir : str or Path, optional
        Dataset folder (default: the committed synthetic cohort).
    out_dir : str or Path, optional
        Output root (default: the repository's data/derived and figures).

    Returns
    -------
    Session
    """
    data = Path(data_dir).expanduser().resolve() if data_dir else config.SYNTHETIC_DIR
    out_dir = out_dir or os.environ.get(config.OUT_ENV)  # the test suite sends nbval's writes elsewhere
    dataset = io.load_dataset(data)
    if out_dir:
        root = Path(out_dir).expanduser().resolve()
        derived_dir, figures_dir = root / "derived", root / "figures"
    else:
        root, derived_dir, figures_dir = config.ROOT.resolve(), config.DERIVED_DIR, config.FIGURES_DIR
    plots.theme()
    pd.set_option("display.max_colwidth", 120)  # file names and methods are shown whole
    manifest = io.read_manifest(data)
    return Session(
        name=name, data=dataset, root=root, derived_dir=derived_dir, figures_dir=figures_dir,
        is_default_data=data.resolve() == config.SYNTHETIC_DIR.resolve(),
        synthetic=bool(manifest.get("synthetic", False)),
    )


def derived(session: Session, visit_month: int = config.PRIMARY_VISIT, **thresholds) -> dict:
    """The analysis datasets of the session's data (see :func:`derive.derive_all`)."""
    return derive.derive_all(session.tables, visit_month, **thresholds)
