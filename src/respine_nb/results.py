"""Tidy result rows (RESULTS_CONTRACT.md): record from a notebook, merge into results.csv.

Each notebook writes its rows to ``<derived>/results/<notebook>.csv``; :func:`merge`
joins every part into ``<derived>/results.csv``, sorted by analysis_id, group,
visit_month, and writes the same numbers as Analysis Results Data (``ard.csv``, the long
format of the pharmaverse ``cards`` package and the CDISC Analysis Results Standard).
Every write is atomic, and merging is idempotent, so a notebook run alone and the runner
agree.

Every analysis_id is listed, with its dataset, population, variable, visit, statistic and
meaning, in the analysis registry (``registry.csv`` beside this module, :func:`registry`);
writing a row whose id is not registered is an error.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from . import config, tables
from .io import atomic_write_text

COLUMNS = ["analysis_id", "group", "visit_month", "estimate", "ci_low", "ci_high", "p_value", "n", "method"]
GROUPS = (*config.ARMS, config.CONTRAST, "all")
DIGITS = 7  # significant digits stored (RESULTS_CONTRACT.md, Precision): hides the last-bit noise of another processor


REGISTRY_FILE = Path(__file__).with_name("registry.csv")
ARD_COLUMNS = ["analysis_id", "group1", "group1_level", "variable", "visit_month", "stat_name", "stat", "method"]
ARD_STATS = {"estimate": "estimate", "ci_low": "conf.low", "ci_high": "conf.high", "p_value": "p.value", "n": "N"}


@lru_cache(maxsize=1)
def _registry() -> pd.DataFrame:
    reg = pd.read_csv(REGISTRY_FILE, dtype=str, keep_default_na=False)
    dup = reg["analysis_id"][reg["analysis_id"].duplicated()]
    if len(dup):
        raise ValueError(f"{REGISTRY_FILE.name}: analysis_id listed twice: {sorted(dup)}")
    return reg


def registry() -> pd.DataFrame:
    """The analysis registry: what every analysis_id means.

    Returns
    -------
    pandas.DataFrame
        Columns ``analysis_id``, ``notebook``, ``dataset``, ``population``, ``variable``,
        ``visit``, ``groups``, ``statistic``, ``description``; one row per id (a copy).
    """
    return _registry().copy()


def check_registered(df: pd.DataFrame) -> pd.DataFrame:
    """Raise ValueError naming every analysis_id of ``df`` that the registry does not list;
    returns ``df`` unchanged."""
    unknown = sorted(set(df["analysis_id"]) - set(_registry()["analysis_id"]))
    if unknown:
        raise ValueError(f"analysis_id(s) not in the registry ({REGISTRY_FILE.name}): {unknown}")
    return df


def rows(df: pd.DataFrame, analysis_id: str, **fixed) -> pd.DataFrame:
    """Turn a tidy stats frame into contract rows.

    Parameters
    ----------
    df : pandas.DataFrame
        A frame holding some of the contract's columns (``group``, ``estimate``,
        ``ci_low``, ``ci_high``, ``p_value``, ``n``, ``method``, ``visit_month``).
    analysis_id : str
        The dotted key of the rows.
    **fixed
        Values for columns the frame lacks (e.g. ``visit_month=12``, ``group="all"``).

    Returns
    -------
    pandas.DataFrame
        Exactly the contract columns, in order.
    """
    out = pd.DataFrame(index=df.index)
    for col in COLUMNS:
        if col == "analysis_id":
            out[col] = analysis_id
        elif col == "method" and "method" in fixed and "method" in df.columns:
            # a fixed method names the analysis; the frame's reasons (not estimable, suppressed) stay
            reasons = df["method"].astype(str).str.extract(r"(; (?:p )?not estimable: .*|; suppressed: .*)$")[0]
            out[col] = (str(fixed["method"]) + reasons.fillna("")).to_numpy()
        elif col in fixed:
            out[col] = fixed[col]
        elif col in df.columns:
            out[col] = df[col].to_numpy()
        else:
            out[col] = np.nan
    return check(out.reset_index(drop=True))


def complete(df: pd.DataFrame, groups, reason: str, method: str = "") -> pd.DataFrame:
    """``df`` with an empty row (estimate missing, ``method`` ending "not estimable: <reason>") for
    each of ``groups`` it lacks, so that a row the contract requires is written whatever the data.

    Returns
    -------
    pandas.DataFrame
        The columns of ``df`` (plus ``group`` and ``method``), rows in the order of ``groups``
        followed by any other group of ``df``.
    """
    have = set(df["group"]) if "group" in df.columns else set()
    extra = [g for g in groups if g not in have]
    if not extra:
        return df.copy()
    filler = pd.DataFrame(
        {"group": extra, "method": f"{method}; not estimable: {reason}" if method else f"not estimable: {reason}"}
    )
    out = pd.concat([df, filler], ignore_index=True) if len(df) else filler
    order = {g: i for i, g in enumerate(groups)}
    return (
        out.assign(_o=out["group"].map(order).fillna(len(order)))
        .sort_values("_o", kind="mergesort")
        .drop(columns="_o")
        .reset_index(drop=True)
    )


def check(df: pd.DataFrame) -> pd.DataFrame:
    """Validate rows against the contract and normalise types; returns a new frame.

    Returns
    -------
    pandas.DataFrame
        Columns of :data:`COLUMNS`; ``visit_month`` and ``n`` as nullable integers,
        numbers as floats rounded to :data:`DIGITS` significant digits.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"result rows lack column(s) {missing}")
    out = df[COLUMNS].copy()
    bad = sorted(set(out["group"]) - set(GROUPS))
    if bad:
        raise ValueError(f"result group(s) {bad} not in {GROUPS}")
    if out["analysis_id"].isna().any() or (out["analysis_id"].astype(str).str.strip() == "").any():
        raise ValueError("every result row needs an analysis_id")
    out["visit_month"] = pd.array(pd.to_numeric(out["visit_month"]), dtype="Float64").round().astype("Int64")
    out["n"] = pd.array(pd.to_numeric(out["n"]), dtype="Float64").round().astype("Int64")
    for col in ("estimate", "ci_low", "ci_high", "p_value"):
        out[col] = significant(pd.to_numeric(out[col]).astype(float).to_numpy())
    p = out["p_value"].dropna()
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p_value must lie in [0, 1]")
    out["method"] = out["method"].astype(object).where(out["method"].notna(), "")
    return out


def significant(values, digits: int = DIGITS) -> np.ndarray:
    """Round to ``digits`` significant digits (NaN and infinities unchanged).

    Returns
    -------
    numpy.ndarray
        Floats; ``significant(x)`` printed with ``%.7g`` gives back the same number.
    """
    x = np.asarray(values, dtype=float)
    out = x.copy()
    ok = np.isfinite(x) & (x != 0)
    out[ok] = [float(f"{v:.{digits - 1}e}") for v in x[ok]]
    return out


def sort(df: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by analysis_id, group, visit_month (missing visit first)."""
    key = df.assign(_v=df["visit_month"].astype("Float64").fillna(-1))
    return key.sort_values(["analysis_id", "group", "_v"], kind="mergesort").drop(columns="_v").reset_index(drop=True)


def to_csv_text(df: pd.DataFrame) -> str:
    """Contract CSV text of rows (sorted, numbers with :data:`DIGITS` significant digits, empty
    cells for missing)."""
    return sort(check(df)).to_csv(index=False, lineterminator="\n", float_format=f"%.{DIGITS}g")


def write_part(df: pd.DataFrame, derived_dir, notebook: str) -> Path:
    """Write one notebook's rows to ``<derived_dir>/results/<notebook>.csv`` atomically."""
    dup = df.duplicated(["analysis_id", "group", "visit_month"], keep=False)
    if dup.any():
        raise ValueError(f"duplicate result rows: {df.loc[dup, ['analysis_id', 'group', 'visit_month']].values.tolist()}")
    check_registered(df)
    path = Path(derived_dir) / "results" / f"{notebook}.csv"
    atomic_write_text(path, to_csv_text(df))
    return path


def read(path) -> pd.DataFrame:
    """Read a results CSV back into checked rows."""
    df = pd.read_csv(
        path,
        dtype={"analysis_id": str, "group": str, "method": str},
        keep_default_na=False,
        na_values={c: [""] for c in COLUMNS if c not in ("analysis_id", "group", "method")},
    )
    return check(df)


def to_ard(df: pd.DataFrame) -> pd.DataFrame:
    """The rows in the long Analysis Results Data format (RESULTS_CONTRACT.md, ARD).

    Returns
    -------
    pandas.DataFrame
        Columns ``analysis_id``, ``group1`` (``ARM``, or empty for a row over all
        participants), ``group1_level`` (the arm or the contrast), ``variable`` (from the
        registry), ``visit_month``, ``stat_name`` (``estimate``, ``conf.low``, ``conf.high``,
        ``p.value``, ``N``), ``stat`` (empty where the row has no such number) and ``method``;
        five rows per result row, in the order of the sorted results.
    """
    res = sort(check(df))
    variable = _registry().set_index("analysis_id")["variable"]
    out = []
    for col, name in ARD_STATS.items():
        part = pd.DataFrame(
            {
                "analysis_id": res["analysis_id"],
                "group1": np.where(res["group"] == "all", "", "ARM"),
                "group1_level": res["group"].where(res["group"] != "all", ""),
                "variable": res["analysis_id"].map(variable).fillna(""),
                "visit_month": res["visit_month"],
                "stat_name": name,
                "stat": res[col].astype("Float64"),
                "method": res["method"],
                "_row": np.arange(len(res)),
                "_stat": list(ARD_STATS).index(col),
            }
        )
        out.append(part)
    ard = pd.concat(out, ignore_index=True).sort_values(["_row", "_stat"], kind="mergesort")
    return ard.drop(columns=["_row", "_stat"]).reset_index(drop=True)[ARD_COLUMNS]


def merge(derived_dir) -> Path:
    """Merge every part under ``<derived_dir>/results/`` into ``<derived_dir>/results.csv``, and
    write the same numbers as ``<derived_dir>/ard.csv`` (:func:`to_ard`)."""
    derived_dir = Path(derived_dir)
    parts = sorted((derived_dir / "results").glob("*.csv"))
    frames = [read(p) for p in parts]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    dup = df.duplicated(["analysis_id", "group", "visit_month"], keep=False)
    if dup.any():
        raise ValueError(f"two notebooks report the same row: {sorted(set(df.loc[dup, 'analysis_id']))}")
    ard = to_ard(df).to_csv(index=False, lineterminator="\n", float_format=f"%.{DIGITS}g")
    atomic_write_text(derived_dir / "ard.csv", ard)
    return atomic_write_text(derived_dir / "results.csv", to_csv_text(df))


def suppress(df: pd.DataFrame, min_cell: int, count: str = "events") -> pd.DataFrame:
    """Rows whose ``count`` is between 1 and ``min_cell - 1`` lose their estimate and CI (the
    method says so), so that small cells of real data are not published; ``min_cell = 0`` keeps
    everything.

    Returns
    -------
    pandas.DataFrame
        A copy of ``df``.
    """
    out = df.copy()
    if not min_cell or count not in out.columns:
        return out
    small = pd.to_numeric(out[count], errors="coerce").between(1, min_cell - 1).to_numpy()
    for c in ("estimate", "ci_low", "ci_high"):
        if c in out.columns:
            out.loc[small, c] = np.nan
    if "method" in out.columns:
        out.loc[small, "method"] = out.loc[small, "method"].astype(str) + f"; suppressed: fewer than {min_cell}"
    return out


def result_id(prefix: str, key) -> str:
    """The analysis_id of one part of a family: ``prefix.key``, or ``prefix`` with ``{}`` filled.

    Returns
    -------
    str
        e.g. ``result_id("secondary.mmrm", "vas_pain")`` -> ``secondary.mmrm.vas_pain``;
        ``result_id("mri.t2_vs_{}.corr", "vas")`` -> ``mri.t2_vs_vas.corr``.
    """
    return prefix.format(key) if "{}" in prefix else f"{prefix}.{key}"


def rows_each(df: pd.DataFrame, prefix: str, by: str, keys=None, **fixed) -> pd.DataFrame:
    """Contract rows of ``df`` under one analysis_id per value of its column ``by``.

    Parameters
    ----------
    df : pandas.DataFrame
        A tidy stats frame (see :func:`rows`).
    prefix : str
        The id family (see :func:`result_id`).
    by : str
        The column whose values name the parts (e.g. ``analysis``, ``measure``, ``category``).
    keys : dict or sequence, optional
        Which values to record and their key in the id: a dict value -> key, a sequence of
        values (their own key); default every value, in order of appearance. A listed value
        absent from ``df`` records nothing.
    **fixed
        As :func:`rows`.

    Returns
    -------
    pandas.DataFrame
        The rows, part after part.
    """
    if keys is None:
        keys = list(dict.fromkeys(df[by]))
    mapping = dict(keys) if isinstance(keys, dict) else {k: k for k in keys}
    parts = [rows(df[df[by] == value], result_id(prefix, key), **fixed) for value, key in mapping.items()]
    return pd.concat(parts, ignore_index=True) if parts else rows(df.iloc[:0], prefix, **fixed)


# --------------------------------------------------------------------------- display views
# Small display tables of stats frames, so that notebook cells hold no pivot chains.


def with_ci(
    df: pd.DataFrame, column: str = "estimate [95 % CI]", digits: int = 1, percent: bool = False, missing: str = ""
) -> pd.DataFrame:
    """``df`` with a text column ``estimate [low, high]`` (:func:`respine_nb.tables.fmt_ci`).

    Parameters
    ----------
    df : DataFrame
        Columns ``estimate``, ``ci_low``, ``ci_high``.
    column : str
        Name of the new column.
    digits : int
    percent : bool
    missing : str
        Text where the estimate is missing (e.g. ``not reached``).

    Returns
    -------
    pandas.DataFrame
        A copy with the column added.
    """
    cell = [
        tables.fmt_ci(e, lo, hi, digits=digits, percent=percent) if pd.notna(e) else missing
        for e, lo, hi in zip(df["estimate"], df["ci_low"], df["ci_high"])
    ]
    return df.assign(**{column: cell})


def p_table(df: pd.DataFrame, index: str, columns: str) -> pd.DataFrame:
    """p-values as journals print them (:func:`respine_nb.tables.fmt_p`), one cell per (index, columns) pair.

    Returns
    -------
    pandas.DataFrame
        Index ``index``, one column per value of ``columns`` (in order of appearance).
    """
    d = df.assign(_p=df["p_value"].map(tables.fmt_p))
    return d.pivot(index=index, columns=columns, values="_p")[list(dict.fromkeys(d[columns]))].rename_axis(columns=None)


def contrast_table(frames: dict, analysis: str = "risk_difference") -> pd.DataFrame:
    """The between-arm contrast of several analyses side by side.

    Parameters
    ----------
    frames : dict
        Label -> a stats frame: one with an ``analysis`` column (its ``analysis`` row is taken,
        e.g. :func:`respine_nb.stats.primary_analysis`), or a one-row frame (e.g. multiple
        imputation).
    analysis : str
        The row taken from frames with an ``analysis`` column.

    Returns
    -------
    pandas.DataFrame
        Index ``analysis`` (the labels); ``estimate``, ``ci_low``, ``ci_high``, ``p_value``
        rounded to 3 decimals, ``n``.
    """
    cols = ["estimate", "ci_low", "ci_high", "p_value", "n"]
    picked = [(f[f["analysis"] == analysis] if "analysis" in f.columns else f)[cols].iloc[0].rename(k) for k, f in frames.items()]
    return pd.DataFrame(picked).rename_axis("analysis").astype(float).round(3).astype({"n": "Int64"})


def shift_table(shift: pd.DataFrame, visit_month: int) -> pd.DataFrame:
    """A grade shift table (:func:`respine_nb.stats.grade_shift`): rows arm and baseline grade,
    columns the grade at ``visit_month``, counts (0 where none).

    Returns
    -------
    pandas.DataFrame
    """
    t = shift.pivot_table(index=["group", "base_grade"], columns="grade", values="n", fill_value=0, aggfunc="sum")
    return t.astype(int).rename_axis(index=["arm", "baseline grade"], columns=f"month {visit_month} grade")


def turnbull_table(npmle: pd.DataFrame) -> pd.DataFrame:
    """Cumulative proportion responding by the end of each Turnbull interval, per arm
    (:func:`respine_nb.stats.turnbull`; the open last interval left out), rounded to 3 decimals.

    Returns
    -------
    pandas.DataFrame
        Index ``by month``, one column per arm.
    """
    d = npmle[npmle["upper"] < np.inf]
    t = d.pivot(index="upper", columns="group", values="cumulative").reindex(columns=list(config.ARMS))
    return t.rename_axis(index="by month", columns=None).round(3)


def ae_table(overview: pd.DataFrame, min_cell: int = 0) -> pd.DataFrame:
    """The adverse-event overview (:func:`respine_nb.stats.ae_overview`) as printed: participants
    per arm and their percentage (Wilson CI), one row per kind; counts from 1 to ``min_cell - 1``
    suppressed (:func:`respine_nb.tables.suppress_small`).

    Returns
    -------
    pandas.DataFrame
    """
    shown = with_ci(overview, "proportion", digits=0, percent=True)
    shown = tables.suppress_small(shown, ["events", "n_events"], min_cell, ["proportion"])
    order = list(dict.fromkeys(shown["label"]))
    events = shown.pivot(index="label", columns="group", values="events").reindex(columns=list(config.ARMS))
    pct = shown.pivot(index="label", columns="group", values="proportion").reindex(columns=list(config.ARMS))
    return events.join(pct.add_suffix(" %")).reindex(order).rename_axis(index=None, columns=None)


def months_text(m) -> str:
    """``"3 months"``, ``"1 month"`` or ``"not reached"`` (a median time, for running text)."""
    return "not reached" if pd.isna(m) else f"{m:g} month" + ("" if m == 1 else "s")


# --------------------------------------------------------------------------- Table 2 of the run

TABLE2_NAME = "table2"


def table2(rows: pd.DataFrame, visit_month: int = config.PRIMARY_VISIT, immunology_visit: int = 6, min_cell: int = 0):
    """Table 2 (primary and key secondary endpoints, the paper's layout) from merged results rows:
    :data:`respine_nb.tables.TABLE2_ROWS` read at the run's primary visit (their month-12 rows)
    and immunology visit (their month-6 row); month 24 stays month 24.

    Parameters
    ----------
    rows : DataFrame
        The run's results (results.csv).
    visit_month, immunology_visit, min_cell : int
        The run's parameters.

    Returns
    -------
    respine_nb.tables.PubTable
    """
    at = {config.PRIMARY_VISIT: int(visit_month), 6: int(immunology_visit)}
    spec = [(label, arm, con, None if v is None else at.get(v, v)) for label, arm, con, v in tables.TABLE2_ROWS]
    return tables.table2_publication(rows, spec, min_cell=int(min_cell))


def write_table2(derived_dir, figures_dir, visit_month: int = config.PRIMARY_VISIT, immunology_visit: int = 6, min_cell: int = 0):
    """Write ``<figures_dir>/table2.html`` and ``.docx`` from ``<derived_dir>/results.csv`` (the
    runner calls it once every notebook has run and the parts are merged); same bytes for the
    same rows.

    Returns
    -------
    list of Path
        The two files.
    """
    merged = read(Path(derived_dir) / "results.csv")
    return tables.write_table(table2(merged, visit_month, immunology_visit, min_cell), TABLE2_NAME, figures_dir)
