"""Read a dataset folder into validated tables; write files atomically.

:func:`load_dataset` is the one way in: it finds each table of the contract
(:mod:`respine_nb.schema`) in a folder, reads it whatever its format (CSV,
Parquet, Excel, SAS7BDAT, XPORT), parses every column to its contract type,
checks every rule and returns the typed tables, or raises
:class:`DataValidationError` listing *every* problem at once with its file,
column, row, value and rule. "At once" means one pass (DATA_CONTRACT.md v1.1):
a missing column does not stop the checks of the other columns of its file,
and each cross-table check runs whenever the columns it needs could be read.
It never writes into the folder.

Every file the project writes goes through :func:`atomic_write_bytes` (temp
file in the same folder, fsync, rename), so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import hashlib
import io as _io
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import config
from .schema import CONTRACT_VERSION, TABLES, Table, pandera_schema, rule_text

READERS = (".csv", ".parquet", ".xlsx", ".sas7bdat", ".xpt")
_INT_RE = re.compile(r"^[+-]?\d+(\.0*)?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INT_FULL = re.compile(_INT_RE.pattern[1:-1])  # as pandas str.fullmatch: the whole text
_DATE_FULL = re.compile(r"\d{4}-\d{2}-\d{2}")
_TRUE = {"true"}
_FALSE = {"false"}


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One broken rule, located as precisely as the data allow."""

    file: str
    column: str | None
    row: int | None  # 1-based data row (header excluded)
    subject_id: str | None
    value: object
    rule: str

    def __str__(self) -> str:
        where = [self.file]
        if self.column:
            where.append(f"column '{self.column}'")
        if self.row is not None:
            where.append(f"row {self.row} (line {self.row + 1})")
        if self.subject_id:
            where.append(f"subject_id {self.subject_id}")
        value = "" if self.value is None else f"value {_show(self.value)}: "
        return f"{', '.join(where)}: {value}{self.rule}"


def _show(value) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


class DataValidationError(Exception):
    """The dataset breaks the contract; ``problems`` lists every broken rule."""

    def __init__(self, folder: Path, problems: list[Problem]):
        self.folder = Path(folder)
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in {self.folder.name}")

    def report(self) -> str:
        lines = [f"INVALID dataset '{self.folder.name}': {len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass
class Dataset:
    """Validated tables of one dataset folder.

    Attributes
    ----------
    tables : dict of str to DataFrame
        Typed tables by name; optional tables that are absent are missing from the dict.
    warnings : list of str
        Facts to show the reader (e.g. participants without baseline values).
    files : dict of str to Path
        The file each table was read from.
    sha256 : dict of str to str
        Checksum of each input file, by file name.
    """

    folder: Path
    tables: dict
    warnings: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
    sha256: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    def has(self, name: str) -> bool:
        return name in self.tables

    def summary(self) -> str:
        """One screen: participants per arm, rows per table, warnings."""
        subjects = self.tables["subjects"]
        arms = subjects["arm"].value_counts()
        lines = [f"VALID dataset '{self.folder.name}' (contract v{CONTRACT_VERSION})"]
        lines.append(
            "participants: " + ", ".join(f"{arm} {int(arms.get(arm, 0))}" for arm in config.ARMS) + f" (total {len(subjects)})"
        )
        width = max(len(name) for name in TABLES)
        for name in TABLES:
            if name in self.tables:
                lines.append(f"  {name:<{width}} {len(self.tables[name]):>7} rows  ({self.files[name].name})")
            else:
                lines.append(f"  {name:<{width}} {'absent':>7}       (optional)")
        lines.append(f"warnings: {len(self.warnings)}")
        lines += [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)


# --------------------------------------------------------------------------- reading


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_table_files(folder: Path) -> tuple[dict, list[Problem]]:
    """Map table name -> file in ``folder`` (by stem and extension)."""
    found: dict[str, list[Path]] = {}
    problems: list[Problem] = []
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file():
            continue
        stem, ext = path.stem.lower(), path.suffix.lower()
        if stem in TABLES:
            if ext in READERS:
                found.setdefault(stem, []).append(path)
            elif ext not in (".md", ".json", ".txt"):
                problems.append(
                    Problem(path.name, None, None, None, None, f"unsupported format '{ext}' (use one of {', '.join(READERS)})")
                )
    files = {}
    for name, paths in found.items():
        if len(paths) > 1:
            problems.append(
                Problem(
                    ", ".join(p.name for p in paths), None, None, None, None, f"two files for table '{name}': keep exactly one"
                )
            )
        else:
            files[name] = paths[0]
    return files, problems


def _read_raw(path: Path) -> pd.DataFrame:
    """Read one file as it is (CSV as text), without interpreting values."""
    ext = path.suffix.lower()
    if ext == ".csv":
        if path.stat().st_size == 0:
            raise ValueError("file is empty (no header row)")
        with open(path, "rb") as fh:
            raw = fh.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 text (byte {exc.start}): save the file as UTF-8") from None
        if not text.strip():
            raise ValueError("file is empty (no header row)")
        try:
            df = pd.read_csv(_io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], skipinitialspace=False)
        except pd.errors.ParserError as exc:
            raise ValueError(f"not a well-formed comma-separated file ({exc})".replace("\n", " ")) from None
        if df.shape[1] == 1 and ";" in df.columns[0]:
            raise ValueError("looks semicolon-separated: the contract needs comma-separated values")
        return df
    if ext == ".parquet":
        return pd.read_parquet(path)
    if ext == ".xlsx":
        # as in CSV, only an empty cell is missing: a text cell "NA" or "null" stays text
        return pd.read_excel(path, dtype=object, keep_default_na=False, na_values=[""])
    import pyreadstat

    if ext == ".sas7bdat":
        df, _ = pyreadstat.read_sas7bdat(str(path))
    else:
        df, _ = pyreadstat.read_xport(str(path))
    return df


def _is_missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _parse_value(value, kind: str):
    """Parse one cell to ``kind``; returns (ok, parsed). Missing -> (True, None)."""
    if _is_missing(value):
        return True, None
    if kind == "text":
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return True, str(value).strip()
    if kind == "integer":
        if isinstance(value, (bool, np.bool_)):
            return False, None
        if isinstance(value, (int, np.integer)):
            return True, int(value)
        if isinstance(value, (float, np.floating)):
            return (True, int(value)) if float(value).is_integer() else (False, None)
        text = str(value).strip()
        return (True, int(float(text))) if _INT_RE.match(text) else (False, None)
    if kind == "number":
        if isinstance(value, (bool, np.bool_)):
            return False, None
        if isinstance(value, (int, float, np.integer, np.floating)):
            return (True, float(value)) if np.isfinite(value) else (False, None)
        try:
            parsed = float(str(value).strip())
        except ValueError:
            return False, None
        return (True, parsed) if np.isfinite(parsed) else (False, None)
    if kind == "bool":
        if isinstance(value, (bool, np.bool_)):
            return True, bool(value)
        if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
            return True, bool(value)  # SAS and Excel exports have no boolean type
        text = str(value).strip().lower()
        if text in _TRUE:
            return True, True
        if text in _FALSE:
            return True, False
        return False, None
    if kind == "date":
        if isinstance(value, (pd.Timestamp,)) or hasattr(value, "year") and hasattr(value, "month"):
            try:
                return True, pd.Timestamp(value).normalize()
            except (ValueError, TypeError):
                return False, None
        text = str(value).strip()
        if not _DATE_RE.match(text):
            return False, None
        try:
            return True, pd.Timestamp(text)
        except ValueError:
            return False, None
    raise ValueError(kind)


_KIND_RULE = {
    "text": "must be text",
    "integer": "must be a whole number",
    "number": "must be a number",
    "bool": "must be true or false",
    "date": "must be a date written YYYY-MM-DD",
}


def _parse_text_series(raw: pd.Series, kind: str):
    """Vectorised parsing of a column of strings (CSV); returns (values, failed mask) or None
    when the column holds other objects (Excel, SAS, Parquet), which take the cell-by-cell path.

    Each distinct cell is parsed once, then its result spread to the rows holding it (a column
    repeats few values: visits, arms, scores); the parsers see the distinct cells, and None when
    a cell is missing, as they would see the whole column."""
    codes, uniques = pd.factorize(raw.to_numpy(dtype=object))  # missing cells (None, NaN): code -1
    uniques = np.asarray(uniques, dtype=object)
    is_str = np.array([isinstance(v, str) for v in uniques], dtype=bool)
    blank = pd.isna(uniques) | np.array([isinstance(v, str) and not v.strip() for v in uniques], dtype=bool)
    if not (is_str | blank).all():
        return None

    def spread(per_cell, fill):  # one value per distinct cell -> one per row; code -1 takes ``fill``
        return np.append(per_cell, np.array([fill], dtype=per_cell.dtype))[codes]

    n, keep = len(uniques), ~blank
    missing = spread(blank, True)
    text = np.array([str(v).strip() if k else None for v, k in zip(uniques, keep)] + [None], dtype=object)
    feed = text if missing.any() else text[:n]  # None stands for the missing cells
    text = text[:n]
    if kind == "text":
        return pd.Series(pd.array(spread(text, None), dtype="string"), index=raw.index), np.zeros(len(raw), bool)
    if kind in ("number", "integer"):
        num = pd.to_numeric(pd.Series(feed), errors="coerce").astype(float).to_numpy()[:n]
        bad = keep & ~np.isfinite(num)
        if kind == "integer":
            bad |= keep & ~np.array([k and _INT_FULL.fullmatch(t) is not None for t, k in zip(text, keep)], dtype=bool)
        values = spread(np.where(keep & ~bad, num, np.nan), np.nan)
        na = np.isnan(values)  # as pd.array(values, dtype="Float64") masks them, without its checks
        if kind == "integer":
            floats = pd.arrays.FloatingArray(np.round(values), na)
            return pd.Series(floats.astype("Int64"), index=raw.index), spread(bad, False)
        return pd.Series(pd.arrays.FloatingArray(values, na), index=raw.index), spread(bad, False)
    if kind == "bool":
        low = [t.lower() if k else "" for t, k in zip(text, keep)]
        ok = spread(np.array([t in _TRUE or t in _FALSE for t in low], dtype=bool), False)
        out = pd.array(spread(np.array([t in _TRUE for t in low], dtype=bool), False), dtype="boolean")
        out[missing | ~ok] = pd.NA
        return pd.Series(out, index=raw.index), ~missing & ~ok
    if kind == "date":
        shaped = np.array([k and _DATE_FULL.fullmatch(t) is not None for t, k in zip(text, keep)] + [False], dtype=bool)
        parse = np.where(shaped, np.append(text, None), None)[: len(feed)]
        dates = pd.to_datetime(pd.Series(parse, dtype=object), format="%Y-%m-%d", errors="coerce")
        dates = spread(dates.to_numpy(dtype="datetime64[ns]")[:n], np.datetime64("NaT", "ns"))
        return pd.Series(dates, index=raw.index), ~missing & (~spread(shaped[:n], False) | np.isnat(dates))
    raise ValueError(kind)


def _parse_table(df: pd.DataFrame, columns: list, fname: str, ids: pd.Series | None):
    """Parse the contract ``columns`` (:class:`Col`) that ``df`` has; returns (typed frame,
    problems, mask of unparsable cells)."""
    out = df.copy()
    problems: list[Problem] = []
    bad = pd.DataFrame(False, index=df.index, columns=[c.name for c in columns])
    for col in columns:
        fast = _parse_text_series(df[col.name], col.kind)
        if fast is not None:
            series, failed_mask = fast
            failed = list(np.flatnonzero(failed_mask))
        else:
            parsed, failed = [], []
            for i, value in enumerate(df[col.name].tolist()):
                ok, p = _parse_value(value, col.kind)
                parsed.append(p)
                if not ok:
                    failed.append(i)
            if col.kind == "date":
                series = pd.Series(
                    pd.to_datetime(pd.Series(parsed, dtype=object), errors="coerce").values,
                    index=df.index,
                    dtype="datetime64[ns]",
                )
            else:
                series = pd.Series(pd.array(parsed, dtype=_dtype(col.kind)), index=df.index)
        out[col.name] = series
        for i in failed:
            bad.iloc[i, bad.columns.get_loc(col.name)] = True
            problems.append(Problem(fname, col.name, int(i) + 1, _sid(ids, i), df[col.name].iloc[i], _KIND_RULE[col.kind]))
    return out, problems, bad


def _dtype(kind: str) -> str:
    return {"text": "string", "integer": "Int64", "number": "Float64", "bool": "boolean"}[kind]


def _sid(ids: pd.Series | None, i: int) -> str | None:
    if ids is None:
        return None
    value = ids.iloc[i]
    return None if _is_missing(value) else str(value).strip()


def _pandera_problems(df: pd.DataFrame, table: Table, fname: str, bad: pd.DataFrame, ids) -> list[Problem]:
    cols = list(bad.columns)  # the contract columns the file has
    if not cols:
        return []
    from pandera.errors import SchemaErrors  # pandera only where data are validated (schema.py)

    schema = pandera_schema(table, cols)
    try:
        schema.validate(df[cols], lazy=True)
        return []
    except SchemaErrors as exc:
        cases = exc.failure_cases
    problems = []
    for case in cases.itertuples(index=False):
        column = case.column if isinstance(case.column, str) else None
        idx = case.index
        if idx is None or (isinstance(idx, float) and np.isnan(idx)):
            problems.append(
                Problem(fname, column, None, None, None, rule_text(table, column, str(case.check), case.check_number))
            )
            continue
        i = int(idx)
        pos = df.index.get_loc(i)
        if column in bad.columns and bad.iloc[pos][column]:
            continue  # already reported as unparsable
        rule = rule_text(table, column, str(case.check), case.check_number)
        problems.append(Problem(fname, column, pos + 1, _sid(ids, pos), case.failure_case, rule))
    problems.sort(key=lambda p: (p.row or 0, p.column or ""))
    return problems


def _read_table(path: Path, table: Table):
    """Read, parse and check one table alone.

    Returns (frame or None, problems). The frame is None only when the file cannot be read at
    all; otherwise it holds the contract columns the file has (typed, unparsable cells empty)
    and its extra columns, so that the other checks still run when a column is missing.
    """
    fname = path.name
    try:
        raw = _read_raw(path)
    except ValueError as exc:
        return None, [Problem(fname, None, None, None, None, str(exc))]
    except Exception as exc:  # unreadable binary formats: say so, no traceback
        return None, [Problem(fname, None, None, None, None, f"cannot be read as {path.suffix} ({type(exc).__name__}: {exc})")]
    raw.columns = [str(c).strip() for c in raw.columns]
    raw = raw.reset_index(drop=True)
    problems: list[Problem] = []
    twice = sorted(set(raw.columns[raw.columns.duplicated()]))
    problems += [Problem(fname, c, None, None, None, "column appears twice: keep exactly one") for c in twice]
    raw = raw.loc[:, ~raw.columns.isin(twice)]  # ambiguous: neither copy is checked
    lower = {c.lower(): c for c in raw.columns}
    for col in table.columns:
        if col.name not in raw.columns and col.name not in twice:
            near = lower.get(col.name.lower())
            hint = f" (found '{near}': names are matched exactly, in lower case)" if near else ""
            problems.append(Problem(fname, col.name, None, None, None, "required column is missing" + hint))
    if raw.empty and not table.may_be_empty:
        problems.append(Problem(fname, None, None, None, None, f"table is empty: {table.name} needs at least one row"))
    present = [c for c in table.columns if c.name in raw.columns]
    ids = raw["subject_id"] if "subject_id" in raw.columns else None
    typed, parse_problems, bad = _parse_table(raw, present, fname, ids)
    problems += parse_problems
    problems += _pandera_problems(typed, table, fname, bad, ids)
    if table.key and all(k in typed.columns for k in table.key):
        dup = typed.duplicated(list(table.key), keep="first") & typed[list(table.key)].notna().all(axis=1)
        for i in np.flatnonzero(dup.to_numpy()):
            value = ", ".join(str(typed[k].iloc[i]) for k in table.key)
            problems.append(
                Problem(
                    fname,
                    "+".join(table.key),
                    int(i) + 1,
                    _sid(ids, i),
                    value,
                    f"({', '.join(table.key)}) must be unique: this pair appears earlier",
                )
            )
    return typed, problems


def _has(tables: dict, name: str, *columns: str) -> bool:
    """Whether table ``name`` could be read with ``columns`` (a check needing them can run)."""
    return name in tables and all(c in tables[name].columns for c in columns)


def _flagged_cells(problems: list[Problem], files: dict) -> dict:
    """{(table, column): set of 0-based rows} of the cells already reported as breaking a rule."""
    table_of = {path.name: name for name, path in files.items()}
    flagged: dict = {}
    for p in problems:
        if p.row is not None and p.column and p.file in table_of:
            flagged.setdefault((table_of[p.file], p.column), set()).add(p.row - 1)
    return flagged


def _cross_checks(tables: dict, files: dict, flagged: dict) -> list[Problem]:
    """Rules spanning columns or tables; each runs whenever the columns it needs could be read.

    ``tables`` holds every table that could be read, possibly with missing columns and with
    unparsable cells empty. The checks against subjects need its subject_id column and at
    least one row (an empty or unreadable subjects table is reported on its own, not as every
    other row's unknown subject_id). A row whose needed cell already broke its own rule
    (``flagged``, see :func:`_flagged_cells`) is not checked again: one mistake, one problem.
    """

    def clean(name: str, *columns: str) -> np.ndarray:
        ok = np.ones(len(tables[name]), dtype=bool)
        for col in columns:
            ok[sorted(flagged.get((name, col), ()))] = False
        return ok

    problems: list[Problem] = []
    subjects = tables.get("subjects")
    have_subjects = _has(tables, "subjects", "subject_id") and len(subjects) > 0
    if have_subjects:
        known = set(subjects["subject_id"].dropna().to_numpy(dtype=object))  # not cell by cell
        for name, df in tables.items():
            for col in TABLES[name].references:
                if col not in df.columns:
                    continue
                orphan = df[col].notna() & ~df[col].isin(known) & clean(name, col)
                for i in np.flatnonzero(orphan.to_numpy()):
                    problems.append(
                        Problem(
                            files[name].name,
                            col,
                            int(i) + 1,
                            df[col].iloc[i],
                            df[col].iloc[i],
                            "must exist in subjects (unknown subject_id)",
                        )
                    )
    # discontinuation month and reason go together
    if _has(tables, "subjects", "discontinuation_month", "discontinuation_reason"):
        ids = subjects["subject_id"] if "subject_id" in subjects.columns else None
        month_na = subjects["discontinuation_month"].isna()
        reason_na = subjects["discontinuation_reason"].isna()
        pair = clean("subjects", "discontinuation_month", "discontinuation_reason")
        for i in np.flatnonzero((month_na != reason_na).to_numpy() & pair):
            col = "discontinuation_reason" if reason_na.iloc[i] else "discontinuation_month"
            problems.append(
                Problem(
                    files["subjects"].name,
                    col,
                    int(i) + 1,
                    _sid(ids, i),
                    None,
                    "discontinuation_month and discontinuation_reason must both be filled or both be empty",
                )
            )
    if have_subjects and _has(tables, "subjects", "arm") and _has(tables, "immunology", "subject_id", "dsa"):
        imm = tables["immunology"]
        arm = imm["subject_id"].map(dict(zip(subjects["subject_id"], subjects["arm"])))
        for i in np.flatnonzero(((arm == "Sham") & imm["dsa"].notna()).to_numpy() & clean("immunology", "dsa")):
            problems.append(
                Problem(
                    files["immunology"].name,
                    "dsa",
                    int(i) + 1,
                    imm["subject_id"].iloc[i],
                    imm["dsa"].iloc[i],
                    "must be empty for Sham participants (no donor)",
                )
            )
    if _has(tables, "screening", "outcome"):
        scr = tables["screening"]
        fname = files["screening"].name
        if "exclusion_reason" in scr.columns:
            excluded = scr["outcome"] == "excluded"
            reason = scr["exclusion_reason"].notna()
            for i in np.flatnonzero((excluded & ~reason).to_numpy()):
                problems.append(
                    Problem(fname, "exclusion_reason", int(i) + 1, None, None, "must not be empty when outcome is 'excluded'")
                )
            for i in np.flatnonzero(((scr["outcome"] == "randomized") & reason).to_numpy()):
                problems.append(
                    Problem(
                        fname,
                        "exclusion_reason",
                        int(i) + 1,
                        None,
                        scr["exclusion_reason"].iloc[i],
                        "must be empty when outcome is 'randomized'",
                    )
                )
        n_rand = int((scr["outcome"] == "randomized").sum())
        countable = clean("screening", "outcome").all()  # an outcome that is neither cannot be counted
        if countable and subjects is not None and len(subjects) > 0 and n_rand != len(subjects):
            problems.append(
                Problem(
                    fname,
                    "outcome",
                    None,
                    None,
                    n_rand,
                    f"number of 'randomized' rows must equal the number of subjects rows ({len(subjects)})",
                )
            )
    return problems


def _warnings(tables: dict) -> list[str]:
    subjects, outcomes = tables["subjects"], tables["outcomes"]
    base = outcomes[outcomes["visit_month"] == 0]
    ids = {name: set(df["subject_id"].to_numpy(dtype=object)) for name, df in (("subjects", subjects), ("base", base))}
    no_row = sorted(ids["subjects"] - ids["base"])
    both_missing = sorted(base.loc[base["vas_pain"].isna() & base["odi"].isna(), "subject_id"])
    out = []
    if no_row:
        out.append(
            f"{len(no_row)} participant(s) without a month-0 outcomes row (kept; not evaluable for "
            f"change from baseline): {_ids(no_row)}"
        )
    if both_missing:
        out.append(
            f"{len(both_missing)} participant(s) with month-0 VAS and ODI both missing (kept; not "
            f"evaluable for the responder endpoint): {_ids(both_missing)}"
        )
    return out


def _ids(ids: list, limit: int = 10) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def load_dataset(folder) -> Dataset:
    """Read and validate every table of a dataset folder.

    Parameters
    ----------
    folder : str or Path
        A folder holding one file per table (DATA_CONTRACT.md). It is only read.

    Returns
    -------
    Dataset
        ``tables``: dict of typed DataFrames (``subjects``, ``outcomes``, ``mri``,
        ``adverse_events`` and, when present, ``immunology``, ``screening`` and
        ``intercurrent_events``), each with the contract's columns first, extra columns
        kept; ``warnings``: list of str; ``files`` and ``sha256`` of the inputs.

    Raises
    ------
    DataValidationError
        With every problem found in one pass (file, column, row, subject_id, value, rule):
        file-level, column-level, row-level and cross-table problems together.
    FileNotFoundError
        When ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {folder}")
    files, problems = find_table_files(folder)
    tables: dict[str, pd.DataFrame] = {}
    for name, table in TABLES.items():
        if name not in files:
            if table.required and not any(name in p.file for p in problems):
                problems.append(
                    Problem(
                        f"{name}.*",
                        None,
                        None,
                        None,
                        None,
                        f"required table '{name}' is missing (one of {', '.join(name + e for e in READERS)})",
                    )
                )
            continue
        typed, table_problems = _read_table(files[name], table)
        problems += table_problems
        if typed is not None:
            cols = [c.name for c in table.columns if c.name in typed.columns]
            tables[name] = typed[cols + [c for c in typed.columns if c not in cols]]
    problems += _cross_checks(tables, files, _flagged_cells(problems, files))
    if problems:
        raise DataValidationError(folder, problems)
    return Dataset(
        folder=folder,
        tables=tables,
        warnings=_warnings(tables),
        files={k: v for k, v in files.items() if k in tables},
        sha256={files[k].name: sha256_file(files[k]) for k in sorted(tables)},
    )


def read_manifest(folder) -> dict:
    """The dataset's MANIFEST.json (written by ``respine-nb generate``), or an empty dict."""
    import json

    path = Path(folder) / "MANIFEST.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


# --------------------------------------------------------------------------- writing


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically, with Unix newlines."""
    return atomic_write_bytes(path, text.encode("utf-8"))


_CSV_OPTIONS = {"index": False, "lineterminator": "\n", "date_format": "%Y-%m-%d"}
# a field holding none of these is written as it is under QUOTE_MINIMAL: the delimiter, the quote
# character and the line terminator make the csv module quote; "\r" does not on Python 3.11 but does
# on later versions, so a field holding one is left to the csv module too (_csv_line)
_CSV_SPECIAL = (",", '"', "\n", "\r")
# nullable and string arrays whose astype(object) pandas hands the csv module, as an object column
_OBJECT_LIKE = (
    pd.arrays.IntegerArray,
    pd.arrays.BooleanArray,
    pd.arrays.StringArray,
    pd.arrays.ArrowStringArray,
)


def _csv_line(fields: list) -> str:
    """One row as the csv module writes it for ``DataFrame.to_csv`` (QUOTE_MINIMAL, quotes doubled)."""
    buf = _io.StringIO()
    csv.writer(buf, lineterminator="\n", delimiter=",", quotechar='"', doublequote=True, escapechar=None).writerow(fields)
    return buf.getvalue()


def _number_texts(values: np.ndarray) -> np.ndarray:
    """Numpy floats or ints as pandas hands them to the csv module: floats ``astype(str)`` with
    ``""`` for NaN, ints as Python ints, which it writes ``str()``."""
    if values.dtype.kind == "f":
        return np.where(pd.isna(values), "", values.astype(str)).astype(object)
    return np.array([str(x) for x in values.tolist()], dtype=object)


def _csv_cells(column: pd.Series, date_format: str) -> list | None:
    """The field of each cell of ``column`` as ``DataFrame.to_csv`` writes it.

    The text is the one pandas 2.3 hands the csv module (``get_values_for_csv``): floats
    ``astype(str)``, dates formatted with ``date_format``, any other value as it is, and ``""``
    for a missing cell; the csv module then writes a str as it is, ``str()`` of anything else,
    quoted when it holds a delimiter, a quote or a line end.

    Parameters
    ----------
    column : Series
        One column of the frame; not modified.
    date_format : str
        The ``date_format`` of ``to_csv``.

    Returns
    -------
    list of str or None
        The fields, in row order; None for a dtype left to pandas (datetimes with a time zone,
        timedeltas, categoricals, periods, intervals, sparse and Arrow arrays other than strings).
    """
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iuf":
        values = column.to_numpy()
        if dtype.itemsize == 8:  # a column repeats few values: each distinct bit pattern formatted once
            codes, uniques = pd.factorize(values.view(np.int64))  # bits, not values: -0.0 stays apart from 0.0
            cells = _number_texts(uniques.view(dtype))[codes]
        else:
            cells = _number_texts(values)
    elif isinstance(column.array, pd.arrays.FloatingArray):  # its dtype's kind is "f": pandas takes astype(str)
        cells = np.where(column.isna().to_numpy(), "", column.array.astype(str)).astype(object)
    elif isinstance(dtype, np.dtype) and dtype.kind == "M":
        # Series.dt.strftime is the formatting pandas applies; it leaves NaT as NaN, to_csv writes na_rep
        cells = np.where(column.isna().to_numpy(), "", column.dt.strftime(date_format).to_numpy(dtype=object))
    elif (isinstance(dtype, np.dtype) and dtype.kind in "Ob") or isinstance(column.array, _OBJECT_LIKE):
        cells = np.asarray(column.array.astype(object), dtype=object)
        if pd.api.types.infer_dtype(cells, skipna=False) != "string":  # all str: none missing, the usual case
            cells = np.where(column.isna().to_numpy(), "", cells)
            if pd.api.types.infer_dtype(cells, skipna=False) != "string":  # numbers, bools, mixed objects
                cells = np.array([x if isinstance(x, str) else str(x) for x in cells], dtype=object)
    else:
        return None
    cells = cells.tolist()
    joined = "".join(cells)
    if any(c in joined for c in _CSV_SPECIAL):  # rare: each such text is quoted once, by the csv module
        quoted = {x: _csv_line([x, ""])[:-2] for x in set(cells) if any(c in x for c in _CSV_SPECIAL)}
        cells = [quoted.get(x, x) for x in cells]
    return cells


def _fast_csv_text(df: pd.DataFrame, date_format: str) -> str | None:
    """The text of ``df.to_csv(index=False, lineterminator="\\n", date_format=date_format)``,
    built column by column and joined with ``str.join``.

    pandas formats the values in chunks and writes each row through the csv module's writer,
    which took most of the time of a large table (3 s for ADEFF at 100x, 444,600 x 22 cells).

    Parameters
    ----------
    df : DataFrame
        Not modified.
    date_format : str
        As in ``to_csv``.

    Returns
    -------
    str or None
        The same text as ``to_csv``; None when the header (no columns, a MultiIndex, duplicate or
        non-str names) or a column (:func:`_csv_cells`) is left to pandas.
    """
    labels = df.columns
    if (
        df.shape[1] == 0
        or isinstance(labels, pd.MultiIndex)
        or not labels.is_unique
        or pd.api.types.infer_dtype(labels, skipna=False) != "string"
    ):
        return None
    columns = []
    for _, column in df.items():
        cells = _csv_cells(column, date_format)
        if cells is None:
            return None
        columns.append(cells)
    if len(columns) == 1:  # the csv module writes a row made of a single empty field as ""
        empty = _csv_line([""])[:-1]
        columns = [[x or empty for x in columns[0]]]
    header = _csv_line(list(labels))[:-1]
    return "\n".join([header, *map(",".join, zip(*columns)), ""])  # the last "" ends the last row


def csv_text(df: pd.DataFrame) -> str:
    """``df.to_csv(index=False, lineterminator="\\n", date_format="%Y-%m-%d")``, exactly, built
    faster for the usual dtypes (:func:`_fast_csv_text`), by pandas for the others."""
    text = _fast_csv_text(df, _CSV_OPTIONS["date_format"])
    return df.to_csv(**_CSV_OPTIONS) if text is None else text


def write_csv(df: pd.DataFrame, path) -> Path:
    """Write ``df`` as CSV (no index, empty cell for missing, ISO dates) atomically: :func:`csv_text`."""
    return atomic_write_text(path, csv_text(df))


def write_parquet(df: pd.DataFrame, path) -> Path:
    """Write ``df`` as Parquet atomically."""
    buf = _io.BytesIO()
    df.to_parquet(buf, index=False)
    return atomic_write_bytes(path, buf.getvalue())


def write_tables(tables: dict, folder, formats: Iterable[str] = ("parquet", "csv")) -> list[Path]:
    """Write each frame of ``tables`` to ``folder/<name>.<format>`` atomically; returns the paths."""
    written = []
    for name, df in tables.items():
        for fmt in formats:
            writer = write_parquet if fmt == "parquet" else write_csv
            written.append(writer(df, Path(folder) / f"{name}.{fmt}"))
    return written


def to_contract_csv(df: pd.DataFrame) -> str:
    """A table as contract CSV text: booleans ``true``/``false``, empty cell for missing."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_bool_dtype(s) or str(s.dtype) == "boolean":
            out[col] = s.map(lambda x: "" if x is pd.NA or x is None else ("true" if x else "false")).astype(object)
    return out.to_csv(index=False, lineterminator="\n", na_rep="", date_format="%Y-%m-%d")


def write_dataset(tables: dict, folder) -> dict:
    """Write raw tables as contract CSVs into ``folder``, atomically; returns {file name: sha256}."""
    folder = Path(folder)
    sums = {}
    for name, df in tables.items():
        data = to_contract_csv(df).encode("utf-8")
        atomic_write_bytes(folder / f"{name}.csv", data)
        sums[f"{name}.csv"] = hashlib.sha256(data).hexdigest()
    return sums
