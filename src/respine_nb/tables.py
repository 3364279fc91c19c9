"""Table 1 and publication tables (built with tableone and great_tables).

tableone and scipy.stats are imported by Table 1's functions only, great_tables and python-docx
when a table is rendered: the other notebooks and the runner's Table 2 do without them.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from . import config

TABLE1_VARIABLES = {  # ADSL variable -> label
    "AGE": "Age, years",
    "SEX": "Sex",
    "BMI": "BMI, kg/m2",
    "SYMDUR": "Symptom duration, months",
    "DISCLVL": "Treated disc level",
    "PFIRRSCR": "Modified Pfirrmann grade",
    "BVAS": "Low back pain VAS, mm",
    "BODI": "ODI, %",
    "BPCS": "SF-36 PCS",
    "BMCS": "SF-36 MCS",
    "BT2": "Nucleus pulposus T2, ms",
}
CATEGORICAL = ("SEX", "DISCLVL", "PFIRRSCR")
SKEW_LIMIT = 1.0  # |sample skewness| above this: median [Q1, Q3] instead of mean (SD)


def skewed(adsl: pd.DataFrame, columns) -> list[str]:
    """Continuous columns whose pooled sample skewness exceeds :data:`SKEW_LIMIT` in absolute value
    (a constant column, or one with fewer than 3 values, has no skewness: not skewed)."""
    from scipy import stats as sps

    out = []
    for c in columns:
        x = pd.to_numeric(adsl[c], errors="coerce").astype(float).dropna()
        if len(x) > 2 and x.nunique() > 1 and abs(sps.skew(x, bias=False)) > SKEW_LIMIT:
            out.append(c)
    return out


def _round10(x: np.ndarray) -> np.ndarray:
    """``float(f"{v:.10g}")`` of every value, formatted once per distinct value (bit for bit: -0.0
    and NaN kept), not once per participant.

    Parameters
    ----------
    x : numpy.ndarray
        float64 values.

    Returns
    -------
    numpy.ndarray
        float64, same shape.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    bits, inverse = np.unique(x.view(np.int64), return_inverse=True)
    return np.array([float(f"{v:.10g}") for v in bits.view(np.float64)], dtype=np.float64)[inverse.reshape(x.shape)]


def table1(adsl: pd.DataFrame, variables: dict | None = None, pvalues: bool = False, decimals: int = 1):
    """Baseline characteristics by arm and overall (CONSORT Table 1).

    Mean (SD) for roughly normal variables, median [Q1, Q3] for skewed ones
    (|skewness| > 1, decided on the pooled data), n (%) for categorical ones;
    standardised mean differences; missing counts; p-values only when asked
    (CONSORT advises against testing baseline differences in an RCT).

    Parameters
    ----------
    adsl : DataFrame
        Subject-level dataset (ADSL: ``ARM`` and the variables).
    variables : dict, optional
        Column -> label (default :data:`TABLE1_VARIABLES`).
    pvalues : bool
        Add tableone's p-values (default False).

    Returns
    -------
    tableone.TableOne
        ``.tableone`` is the table as a DataFrame; ``.to_csv`` / ``.to_html`` export it.
    """
    from tableone import TableOne

    variables = dict(variables or TABLE1_VARIABLES)
    cols = list(variables)
    df = pd.DataFrame({"arm": adsl["ARM"].astype(object).to_numpy()})
    categorical = [c for c in cols if c in CATEGORICAL]
    for c in cols:
        s = adsl[c]
        if c in categorical:
            df[c] = s.astype(object).where(s.notna(), None).map(lambda v: None if v is None else str(v)).to_numpy()
        else:  # 10 significant digits: noise in the last bits cannot move a quartile across a rounding boundary
            df[c] = _round10(pd.to_numeric(s, errors="coerce").astype(float).to_numpy())
    nonnormal = skewed(df, [c for c in cols if c not in categorical])
    # An SD of fewer than 2 values (an arm with one measured participant), the quartiles of an arm with
    # no measured value and the SMD of a constant variable are undefined: tableone shows them empty;
    # only those expected messages are silenced.
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Degrees of freedom <= 0 for slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        return TableOne(
            df,
            columns=cols,
            categorical=categorical,
            nonnormal=nonnormal,
            groupby="arm",
            order={"arm": list(config.ARMS)},
            pval=pvalues,
            smd=True,
            missing=True,
            overall=True,
            rename=variables,
            decimals=decimals,
            label_suffix=True,
        )


def fmt_ci(estimate, low, high, digits: int = 1, percent: bool = False) -> str:
    """``"12.3 [8.1, 16.5]"`` (or with % when ``percent``); empty string when the estimate is missing."""
    import math

    if estimate is None or (isinstance(estimate, float) and math.isnan(estimate)):
        return ""
    k = 100 if percent else 1
    unit = "%" if percent else ""

    def num(x):
        return f"{round(x * k, digits) + 0.0:.{digits}f}"  # + 0.0: never print "-0.0"

    if low is None or (isinstance(low, float) and math.isnan(low)):
        return f"{num(estimate)}{unit}"
    return f"{num(estimate)}{unit} [{num(low)}, {num(high)}]"


def fmt_p(p) -> str:
    """p-value as journals print it: ``<0.001``, else 3 decimals below 0.01, 2 above."""
    import math

    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def wide_ci(
    df: pd.DataFrame, index: str, columns: str, estimate: str = "estimate", digits: int = 1, percent: bool = False
) -> pd.DataFrame:
    """Display table: one cell ``estimate [low, high]`` per (index, columns) pair.

    Returns
    -------
    pandas.DataFrame
        Index ``index``, one column per value of ``columns`` (in order of appearance).
    """
    cell = [fmt_ci(e, lo, hi, digits, percent) for e, lo, hi in zip(df[estimate], df["ci_low"], df["ci_high"])]
    d = df.assign(_cell=cell)
    order = list(dict.fromkeys(d[columns]))
    return d.pivot(index=index, columns=columns, values="_cell")[order].rename_axis(columns=None)


def suppress_small(df: pd.DataFrame, count_columns, min_cell: int, derived_columns=()) -> pd.DataFrame:
    """Display copy where counts from 1 to ``min_cell - 1`` read ``"<min_cell"`` (and the columns
    derived from them are blanked), for authors who must not publish small cells of real data.

    ``min_cell = 0`` (the default of the notebooks) returns the frame unchanged.

    Returns
    -------
    pandas.DataFrame
    """
    if not min_cell:
        return df.copy()
    out = df.copy().astype({c: object for c in [*count_columns, *derived_columns] if c in df.columns})
    for c in count_columns:
        small = pd.to_numeric(df[c], errors="coerce").between(1, min_cell - 1)
        out.loc[small, c] = f"<{min_cell}"
        for d in derived_columns:
            if d in out.columns:
                out.loc[small, d] = ""
    return out


def num_text(x, spec: str = ".1f", missing: str = "not estimable", scale: float = 1.0, suffix: str = "") -> str:
    """``x`` formatted for running text (``format(x * scale, spec) + suffix``), or ``missing``
    when it is NaN or None, so that a sentence stays true on data where a number cannot be
    estimated."""
    import math

    if x is None or (isinstance(x, float) and math.isnan(x)) or pd.isna(x):
        return missing
    return f"{float(x) * scale:{spec}}{suffix}"


def p_text(p) -> str:
    """``"p = 0.77"``, ``"p = 0.004"`` or ``"p < 0.001"`` for running text."""
    s = fmt_p(p)
    return "p not estimable" if not s else (f"p {s[0]} {s[1:]}" if s.startswith("<") else f"p = {s}")


# --------------------------------------------------------------------------- publication tables
#
# Each builder below takes tidy inputs and returns a :class:`PubTable`: a frame of display strings
# (no NaN, no float counts, no index) with a title, column spanners, row groups and notes. Its
# ``.gt`` is the ``great_tables.GT`` (what a notebook displays: a PubTable renders as that HTML in
# Jupyter) and :func:`write_table` writes it as ``<name>.html`` (great_tables) and ``<name>.docx``
# (python-docx: great_tables 1.1 has no Word export), byte-reproducibly.

DASH = "\u2014"  # what an empty cell shows
NOT_ESTIMABLE = "not estimable"


def pct_text(x, digits: int = 1) -> str:
    """A proportion (0-1) as ``"74.4 %"``; :data:`DASH` when missing."""
    if x is None or pd.isna(x):
        return DASH
    return f"{round(float(x) * 100, digits) + 0.0:.{digits}f} %"


def count_text(x) -> str:
    """A count as an integer string (``39``, never ``39.0``); :data:`DASH` when missing."""
    if x is None or pd.isna(x):
        return DASH
    return str(int(round(float(x))))


def n_pct_text(events, n, digits: int = 1, min_cell: int = 0) -> str:
    """``"43/58 (74.1 %)"``; ``"<5/58"`` when ``1 <= events < min_cell``; :data:`DASH` without a denominator."""
    if n is None or pd.isna(n) or int(n) == 0:
        return DASH
    if events is None or pd.isna(events):
        return f"{DASH}/{int(n)}"
    e = int(round(float(events)))
    if min_cell and 1 <= e < min_cell:
        return f"<{min_cell}/{int(n)}"
    return f"{e}/{int(n)} ({pct_text(e / int(n), digits)})"


def ci_text(estimate, low, high, digits: int = 1, scale: float = 1.0, missing: str = NOT_ESTIMABLE) -> str:
    """``"5.1 [-12.3, 22.4]"`` (values times ``scale``); ``missing`` when the estimate is missing,
    the estimate alone when the interval is."""
    if estimate is None or pd.isna(estimate):
        return missing

    def num(v):
        return f"{round(float(v) * scale, digits) + 0.0:.{digits}f}"

    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return num(estimate)
    return f"{num(estimate)} [{num(low)}, {num(high)}]"


def p_cell(p) -> str:
    """p for a table cell: ``"0.77"``, ``"0.004"``, ``"<0.001"``; :data:`DASH` when missing."""
    return fmt_p(p) or DASH


class PubTable:
    """A publication table: display strings plus layout.

    Parameters
    ----------
    frame : DataFrame
        One column per table column, every cell a string (the row labels are ordinary columns).
    title : str
        Table title.
    table_id : str
        Fixed HTML id (great_tables would otherwise draw a random one).
    group : str, optional
        Column whose values form row groups (shown as group heading rows, not as a column).
    spanners : dict, optional
        Spanner label -> list of columns it spans.
    notes : list of str, optional
        Footnotes, in order.

    Notes
    -----
    ``frame`` is copied; the original is never modified.
    """

    def __init__(self, frame: pd.DataFrame, title: str, table_id: str, group=None, spanners=None, notes=()):
        frame = frame.reset_index(drop=True).copy()
        self.frame = frame.astype(object).where(frame.notna(), DASH).astype(str)
        self.title = title
        self.table_id = table_id
        self.group = group
        self.spanners = dict(spanners or {})
        self.notes = [str(n) for n in notes if n]

    @property
    def gt(self):
        """The table as a ``great_tables.GT`` (fixed id, so its HTML is reproducible).

        Returns
        -------
        great_tables.GT
        """
        from great_tables import GT

        t = GT(self.frame, groupname_col=self.group, id=self.table_id).tab_header(title=self.title)
        for label, cols in self.spanners.items():
            t = t.tab_spanner(label=label, columns=list(cols))
        for note in self.notes:
            t = t.tab_source_note(note)
        return t.tab_options(table_font_size="12px").opt_align_table_header(align="left")

    def to_html(self) -> str:
        """Standalone HTML page of :attr:`gt` (its style sheet in the page, fixed id).

        Returns
        -------
        str
        """
        return self.gt.as_raw_html(make_page=True)

    def _repr_html_(self) -> str:
        return self.gt.as_raw_html()

    def __repr__(self) -> str:
        # the text/plain twin of the HTML in a notebook: no object address, so stored outputs stay stable
        return f"{self.title}\n{self.frame.to_string(index=False)}" if self.title else self.frame.to_string(index=False)

    def to_docx(self) -> bytes:
        """The table as a Word document (one title paragraph, one table, the notes), reproducible bytes.

        Returns
        -------
        bytes
        """
        return _docx_bytes(self)


def _docx_bytes(table: PubTable) -> bytes:
    import datetime as dt
    import io as _io
    import zipfile

    from docx import Document
    from docx.shared import Pt

    doc = Document()
    cp = doc.core_properties
    fixed = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    cp.created = cp.modified = cp.last_printed = fixed
    cp.author = cp.last_modified_by = "respine-notebooks"
    cp.title, cp.revision = table.title, 1
    doc.add_paragraph().add_run(table.title).bold = True
    body = [c for c in table.frame.columns if c != table.group]
    span_of = {c: label for label, cols in table.spanners.items() for c in cols}
    header_rows = 2 if table.spanners else 1
    rows = []
    last = None
    for _, r in table.frame.iterrows():
        if table.group is not None and r[table.group] != last:
            last = r[table.group]
            rows.append(("group", last))
        rows.append(("row", [r[c] for c in body]))
    grid = doc.add_table(rows=header_rows + len(rows), cols=len(body))
    grid.style = "Table Grid"

    def cell(i, j):  # grid.cell(i, j) would lay out the whole table on every call
        return grid.rows[i].cells[j]

    if table.spanners:
        for j, c in enumerate(body):
            cell(0, j).text = span_of.get(c, "")
        j = 0
        while j < len(body):  # merge the cells of one spanner
            k = j
            while k + 1 < len(body) and span_of.get(body[j]) and span_of.get(body[k + 1]) == span_of.get(body[j]):
                k += 1
            if k > j:
                label = span_of[body[j]]
                merged = cell(0, j).merge(cell(0, k))
                merged.text = label
            j = k + 1
    for j, c in enumerate(body):
        cell(header_rows - 1, j).text = str(c)
    for header in (cell(i, j) for i in range(header_rows) for j in range(len(body))):
        for run in header.paragraphs[0].runs:
            run.bold = True
    for i, (kind, value) in enumerate(rows, start=header_rows):
        if kind == "group":
            merged = cell(i, 0).merge(cell(i, len(body) - 1))
            merged.text = str(value)
            for run in merged.paragraphs[0].runs:
                run.bold = True
        else:
            for c, v in zip(grid.rows[i].cells, value, strict=True):
                c.text = v
    for row in grid.rows:
        for c in row.cells:
            for p in c.paragraphs:
                for run in p.runs:
                    run.font.size = Pt(8)
    for note in table.notes:
        doc.add_paragraph().add_run(note).font.size = Pt(8)
    buf = _io.BytesIO()
    doc.save(buf)
    # python-docx stamps each zip member with the current time: rewrite them with a fixed date.
    out = _io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed_info = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed_info.compress_type = zipfile.ZIP_DEFLATED
            fixed_info.external_attr = 0o644 << 16
            dst.writestr(fixed_info, src.read(info.filename))
    return out.getvalue()


def import_writers() -> None:
    """Import what :func:`write_table` writes with (great_tables, python-docx: 0.2 s), ahead of
    the first table: the runner does it while it only waits for the notebooks, so that Table 2,
    written once they have all run, does not wait for these imports at the run's end."""
    import docx  # noqa: F401
    import great_tables  # noqa: F401


def write_table(table: PubTable, name: str, folder) -> list:
    """Write ``<folder>/<name>.html`` and ``<folder>/<name>.docx`` atomically.

    Parameters
    ----------
    table : PubTable
        What a builder of this module returned.
    name : str
        File stem, e.g. ``"table2"``.
    folder : path-like
        Output folder (created if missing), e.g. the run's figures folder.

    Returns
    -------
    list of Path
        The two files written.
    """
    from pathlib import Path

    from .io import atomic_write_bytes, atomic_write_text

    folder = Path(folder)
    return [
        atomic_write_text(folder / f"{name}.html", table.to_html()),
        atomic_write_bytes(folder / f"{name}.docx", table.to_docx()),
    ]


# ---- generic

COLUMN_LABELS = {
    "analysis_id": "Analysis",
    "group": "Group",
    "arm": "Arm",
    "visit_month": "Month",
    "measure": "Measure",
    "estimate": "Estimate",
    "ci_low": "95 % CI, lower",
    "ci_high": "95 % CI, upper",
    "ci": "95 % CI",
    "p_value": "p",
    "p_holm": "p (Holm)",
    "n": "n",
    "events": "Events",
    "participants": "Participants",
    "n_events": "Events",
    "method": "Method",
    "term": "Term",
    "mean": "Mean",
    "sd": "SD",
    "label": "",
}
COUNT_COLUMNS = ("n", "events", "participants", "n_events", "n_randomized", "n_observed", "n_discontinued", "visit_month")


def _label(col) -> str:
    c = str(col)
    text = c.replace("_", " ")
    return COLUMN_LABELS.get(c, text[:1].upper() + text[1:])  # "BM-MSC" stays "BM-MSC" (str.capitalize would lower it)


def results_table(
    df: pd.DataFrame, title: str = "", digits: int = 3, labels: dict | None = None, table_id: str = "results"
) -> PubTable:
    """Any tidy frame as a formatted table: readable column labels, counts as integers, other
    numbers rounded to ``digits``, p-values as ``0.77`` / ``<0.001``, ``ci_low``/``ci_high`` merged
    into one "95 % CI" column, missing cells as a dash, no index.

    Parameters
    ----------
    df : DataFrame
        Any tidy frame (e.g. results rows: analysis_id, group, visit_month, estimate, ci_low,
        ci_high, p_value, n, method). Columns named in :data:`COUNT_COLUMNS`, and float columns
        holding only whole numbers, print as integers; columns whose name starts with ``p_`` as p-values.
    title : str
        Table title.
    digits : int
        Decimals of the other numbers.
    labels : dict, optional
        Column -> label, over :data:`COLUMN_LABELS`.
    table_id : str
        Fixed HTML id.

    Returns
    -------
    PubTable
    """
    d = df.reset_index(drop=True)
    names = {**COLUMN_LABELS, **(labels or {})}

    def num(v):
        return DASH if v is None or pd.isna(v) else f"{round(float(v), digits) + 0.0:.{digits}f}"

    out = {}
    cols = list(d.columns)
    for c in cols:
        s = d[c]
        if c == "ci_high" and "ci_low" in cols:
            continue
        if c == "ci_low" and "ci_high" in cols:
            out[names.get("ci", "95 % CI")] = [
                DASH if pd.isna(lo) or pd.isna(hi) else f"[{num(lo)}, {num(hi)}]" for lo, hi in zip(s, d["ci_high"])
            ]
            continue
        label = names.get(str(c), _label(c))
        if str(c).startswith("p_") or c == "p":
            out[label] = [p_cell(v) for v in pd.to_numeric(s, errors="coerce")]
        elif pd.api.types.is_bool_dtype(s.dtype):
            out[label] = ["yes" if v is True else "no" if v is False else DASH for v in s.astype(object)]
        elif pd.api.types.is_numeric_dtype(s.dtype):
            x = pd.to_numeric(s, errors="coerce").astype(float)
            whole = bool(((x.dropna() % 1) == 0).all())
            # counts, and any whole number (a count in an estimate column), print without decimals
            out[label] = [count_text(v) if (c in COUNT_COLUMNS or whole or float(v).is_integer()) else num(v) for v in x]
        else:
            out[label] = [DASH if v is None or (not isinstance(v, str) and pd.isna(v)) or v == "" else str(v) for v in s]
    frame = pd.DataFrame(out, columns=list(out)) if out else pd.DataFrame()
    return PubTable(frame, title, table_id)


# ---- Table 1


def table1_publication(t1, title: str = "Table 1. Baseline characteristics by arm", table_id: str = "table1") -> PubTable:
    """Table 1 laid out for publication from :func:`table1` (tableone keeps the numbers).

    Parameters
    ----------
    t1 : tableone.TableOne or DataFrame
        :func:`table1`'s result, or its ``.tableone`` frame (row index: variable, level; columns
        Missing, Overall, one per arm, SMD).

    Returns
    -------
    PubTable
        Columns Characteristic, Overall, BM-MSC (N = ...), Sham (N = ...), SMD, Missing.
    """
    df = t1.tableone if hasattr(t1, "tableone") else t1
    df = df.copy()
    if isinstance(df.columns, pd.MultiIndex):
        df.columns = [c[-1] for c in df.columns]
    smd_col = next((c for c in df.columns if str(c).startswith("SMD")), None)
    n_row = df.loc[[i for i in df.index if i[0] == "n"]].iloc[0] if any(i[0] == "n" for i in df.index) else None
    arms = [a for a in config.ARMS if a in df.columns]

    def head(a):
        return f"{a} (N = {n_row[a]})" if n_row is not None and str(n_row[a]).strip() else a

    recs = []
    last = None
    for (var, level), r in df.iterrows():
        if var == "n":
            continue
        cell = {"Overall": r.get("Overall", ""), **{head(a): r[a] for a in arms}}
        smd = r[smd_col] if smd_col else ""
        miss = r.get("Missing", "")
        if level == "":
            recs.append({"Characteristic": var, **cell, "SMD": smd, "Missing": miss})
        else:
            if var != last:
                recs.append({"Characteristic": var, "Overall": "", **{head(a): "" for a in arms}, "SMD": smd, "Missing": miss})
            recs.append({"Characteristic": f"\u00a0\u00a0\u00a0\u00a0{level}", **cell, "SMD": "", "Missing": ""})
        last = var
    frame = pd.DataFrame(recs)
    for c in frame.columns:  # tableone writes "nan" for an SD or SMD it cannot compute
        frame[c] = [
            "" if v is None or (not isinstance(v, str) and pd.isna(v)) else re.sub(r"\bnan\b", DASH, str(v).strip())
            for v in frame[c]
        ]
    notes = [
        "Mean (SD), median [Q1, Q3] for skewed variables, or n (%). SMD: standardised mean difference, BM-MSC vs sham. "
        "Missing: participants without the value."
    ]
    return PubTable(frame, title, table_id, notes=notes)


# ---- Table 2

# label, per-arm analysis_id (proportions), contrast analysis_id (difference), visit (None: no visit)
TABLE2_ROWS = (
    ("Responders (primary, evaluable)", "primary.responders", "primary.risk_difference", 12),
    ("Responders, non-responder imputation", "primary.nri.responders", "primary.nri.risk_difference", 12),
    ("Responders, multiple imputation", None, "primary.mi.risk_difference", 12),
    ("Responders", "secondary.responders", "secondary.responders", 24),
    ("VAS improvement >= MCID (15 mm)", "secondary.mcid.vas_pain", "secondary.mcid.vas_pain", 12),
    ("ODI improvement >= MCID (10 points)", "secondary.mcid.odi", "secondary.mcid.odi", 12),
    ("Any adverse event", "safety.any_ae", "safety.any_ae", None),
    ("Any serious adverse event", "safety.sae", "safety.sae", None),
    ("New anti-HLA sensitisation", "immunology.new_sensitisation", "immunology.new_sensitisation", 6),
)


def _pick(results: pd.DataFrame, analysis_id, group, visit):
    if analysis_id is None:
        return None
    r = results[(results["analysis_id"] == analysis_id) & (results["group"] == group)]
    if visit is not None:
        r = r[pd.to_numeric(r["visit_month"], errors="coerce") == visit]
    return r.iloc[0] if len(r) else None


def table2_publication(
    results: pd.DataFrame,
    rows=TABLE2_ROWS,
    title: str = "Table 2. Primary and key secondary endpoints",
    table_id: str = "table2",
    min_cell: int = 0,
) -> PubTable:
    """Table 2 in the paper's layout: per arm n/N (%), difference in % points [95 % CI], p.

    Parameters
    ----------
    results : DataFrame
        Results rows (RESULTS_CONTRACT v2): ``analysis_id``, ``group``, ``visit_month``,
        ``estimate`` (a proportion 0-1 for the arm rows, a difference for the contrast rows),
        ``ci_low``, ``ci_high``, ``p_value``, ``n``, ``method``.
    rows : sequence of (label, arm_id, contrast_id, visit)
        What to show, in order (default :data:`TABLE2_ROWS`); ``arm_id`` may be None (contrast
        only); a row whose ids are all absent from ``results`` is left out; an estimate that is
        missing reads "not estimable".
    min_cell : int
        Counts from 1 to ``min_cell - 1`` read ``"<min_cell"``.

    Returns
    -------
    PubTable
        Columns Endpoint, Month, one per arm ("n/N (%)"), "Difference, % points [95 % CI]", p.
    """
    contrast = config.CONTRAST
    recs, notes = [], []
    for label, arm_id, con_id, visit in rows:
        arm_rows = {a: _pick(results, arm_id, a, visit) for a in config.ARMS}
        con = _pick(results, con_id, contrast, visit)
        if con is None and all(v is None for v in arm_rows.values()):
            continue
        rec = {"Endpoint": label, "Month": DASH if visit is None else str(int(visit))}
        for a, r in arm_rows.items():
            if r is None:
                rec[a] = DASH
            elif pd.isna(r["estimate"]):
                rec[a] = NOT_ESTIMABLE
            else:
                rec[a] = n_pct_text(float(r["estimate"]) * float(r["n"]), r["n"], min_cell=min_cell)
        if con is None:
            rec["Difference"], rec["p"] = DASH, DASH
        else:
            rec["Difference"] = ci_text(con["estimate"], con["ci_low"], con["ci_high"], digits=1, scale=100)
            rec["p"] = p_cell(con["p_value"])
            if isinstance(con.get("method"), str) and con["method"]:
                notes.append(f"{label}{'' if visit is None else f', month {int(visit)}'}: {con['method']}.")
        recs.append(rec)
    cols = ["Endpoint", "Month", *config.ARMS, "Difference", "p"]
    frame = pd.DataFrame(recs, columns=cols).rename(
        columns={"Difference": "Difference, % points [95 % CI]", **{a: f"{a}, n/N (%)" for a in config.ARMS}}
    )
    notes = ["Difference: BM-MSC minus sham.", *notes]
    if min_cell:
        notes.append(f"Counts from 1 to {min_cell - 1} are shown as <{min_cell}.")
    return PubTable(frame, title, table_id, notes=notes)


# ---- Table 3

TABLE3_MEASURES = {
    "vas_pain": "Low back pain VAS (mm)",
    "odi": "Oswestry Disability Index (%)",
    "sf36_pcs": "SF-36 physical component summary",
    "sf36_mcs": "SF-36 mental component summary",
}


def table3_publication(
    summary: pd.DataFrame,
    results: pd.DataFrame,
    measures: dict | None = None,
    p_adjusted: str | None = "p_holm",
    title: str = "Table 3. Patient-reported outcomes by visit",
    table_id: str = "table3",
    digits: int = 1,
) -> PubTable:
    """Table 3: per measure and visit, mean (SD) and n per arm; the MMRM difference in LS-mean
    change from baseline [95 % CI] and its p (and an adjusted p when given).

    Parameters
    ----------
    summary : DataFrame
        Per-visit summary, one row per measure (name or ADEFF PARAMCD), arm and visit: ``measure``, ``group`` (an arm),
        ``visit_month``, ``mean``, ``sd``, ``n`` (e.g. :func:`respine_nb.stats.trajectories`).
    results : DataFrame
        Results rows; the ``secondary.mmrm.<measure>`` contrast rows (``group`` "BM-MSC vs Sham")
        are used: ``visit_month``, ``estimate``, ``ci_low``, ``ci_high``, ``p_value``, and the
        column ``p_adjusted`` when present.
    measures : dict, optional
        Measure -> label, in order (default :data:`TABLE3_MEASURES`).
    p_adjusted : str or None
        Column of ``results`` with a multiplicity-adjusted p (default ``p_holm``); shown as
        "p (Holm)" when that column exists and holds a value.

    Returns
    -------
    PubTable
        Row groups by measure; columns Month, per arm "Mean (SD)" and "n", "LS-mean difference
        [95 % CI]", p (, p (Holm)).
    """
    measures = dict(measures or TABLE3_MEASURES)
    mm = results[results["analysis_id"].astype(str).str.startswith("secondary.mmrm.") & (results["group"] == config.CONTRAST)]
    adj = p_adjusted if p_adjusted and p_adjusted in mm.columns and mm[p_adjusted].notna().any() else None
    recs = []
    measure_of = summary["measure"].replace(config.MEASURE_OF)  # PARAMCD (ADEFF) or measure name
    for m, label in measures.items():
        s = summary[measure_of == m]
        c = mm[mm["analysis_id"] == f"secondary.mmrm.{m}"]
        visits = sorted({int(v) for v in s["visit_month"].dropna()} | {int(v) for v in c["visit_month"].dropna()})
        for v in visits:
            rec = {"Measure": label, "Month": str(v)}
            for a in config.ARMS:
                r = s[(s["group"] == a) & (s["visit_month"] == v)]
                if not len(r) or pd.isna(r["n"].iloc[0]) or int(r["n"].iloc[0]) == 0:
                    rec[f"{a} mean (SD)"], rec[f"{a} n"] = DASH, "0" if len(r) else DASH
                    continue
                r = r.iloc[0]
                mean = num_text(r["mean"], f".{digits}f", DASH)
                sd = num_text(r["sd"], f".{digits}f", DASH)
                rec[f"{a} mean (SD)"] = f"{mean} ({sd})"
                rec[f"{a} n"] = count_text(r["n"])
            cr = c[pd.to_numeric(c["visit_month"], errors="coerce") == v]
            if v == 0:
                rec["diff"], rec["p"] = "", ""
                if adj:
                    rec["padj"] = ""
            elif not len(cr):
                rec["diff"], rec["p"] = DASH, DASH
                if adj:
                    rec["padj"] = DASH
            else:
                cr = cr.iloc[0]
                rec["diff"] = ci_text(cr["estimate"], cr["ci_low"], cr["ci_high"], digits)
                rec["p"] = p_cell(cr["p_value"])
                if adj:
                    rec["padj"] = p_cell(cr[adj])
            recs.append(rec)
    arm_cols = [f"{a} {k}" for a in config.ARMS for k in ("mean (SD)", "n")]
    cols = ["Measure", "Month", *arm_cols, "diff", "p", *(["padj"] if adj else [])]
    frame = pd.DataFrame(recs, columns=cols)
    rename = {
        "diff": "LS-mean difference [95 % CI]",
        "padj": "p (Holm)",
        **{f"{a} mean (SD)": f"{a}: mean (SD)" for a in config.ARMS},
    }
    rename.update({f"{a} n": f"{a}: n" for a in config.ARMS})
    frame = frame.rename(columns=rename)
    spanners = {a: [f"{a}: mean (SD)", f"{a}: n"] for a in config.ARMS}
    spanners["MMRM, BM-MSC minus sham"] = ["LS-mean difference [95 % CI]", "p", *(["p (Holm)"] if adj else [])]
    notes = [
        "Mean (SD) of the observed values and n observed, per arm. MMRM: difference in least-squares mean change from "
        "baseline, BM-MSC minus sham (change ~ visit x arm + visit x baseline, unstructured covariance, REML).",
    ]
    if adj:
        notes.append("p (Holm): Holm-adjusted over the comparisons of the family.")
    return PubTable(frame, title, table_id, group="Measure", spanners=spanners, notes=notes)


# ---- safety


def safety_publication(
    events: pd.DataFrame,
    n_treated,
    min_cell: int = 0,
    subject: str = "subject_id",
    arm: str = "arm",
    term: str = "term",
    serious: str = "serious",
    title: str = "Table 4. Adverse events in the safety population",
    table_id: str = "safety",
) -> PubTable:
    """Participants with adverse events by term and seriousness, per arm: n (%) of the treated.

    Parameters
    ----------
    events : DataFrame
        One row per adverse event of a treated participant (the safety population), with the
        columns named by ``subject``, ``arm``, ``term`` and ``serious`` (bool).
    n_treated : dict or Series
        Arm -> number of treated participants (the denominators).
    min_cell : int
        Counts from 1 to ``min_cell - 1`` read ``"<min_cell"`` (and their percentage is withheld).
    subject, arm, term, serious : str
        Column names in ``events`` (defaults: the package's ADAE names).

    Returns
    -------
    PubTable
        Row groups by term (first "Any adverse event"); columns Events (all / serious), one per
        arm with "n (%)".
    """
    n_treated = {a: int(dict(n_treated).get(a, 0)) for a in config.ARMS}
    ev = events[[subject, arm, term, serious]].copy()
    ev["_serious"] = ev[serious].isin([True, 1, "Y"]).to_numpy(dtype=bool)  # boolean or an ADaM Y/N flag

    def cell(d, a):
        n = n_treated[a]
        x = d.loc[d[arm] == a, subject].nunique()
        if not n:
            return DASH
        if min_cell and 1 <= x < min_cell:
            return f"<{min_cell}"
        return f"{x} ({pct_text(x / n)})"

    heads = {a: f"{a} (N = {n_treated[a]}), n (%)" for a in config.ARMS}
    recs = []

    def add(group, d):
        recs.append({"Term": group, "Events": "any", **{heads[a]: cell(d, a) for a in config.ARMS}})
        recs.append({"Term": group, "Events": "serious", **{heads[a]: cell(d[d["_serious"]], a) for a in config.ARMS}})

    add("Any adverse event", ev)
    if len(ev):
        order = ev.groupby(term)[subject].nunique().reset_index().assign(_k=lambda t: -t[subject])
        for t in order.sort_values(["_k", term], kind="mergesort")[term]:
            d = ev[ev[term] == t]
            recs.append({"Term": str(t), "Events": "any", **{heads[a]: cell(d, a) for a in config.ARMS}})
            if d["_serious"].any():
                recs.append({"Term": str(t), "Events": "serious", **{heads[a]: cell(d[d["_serious"]], a) for a in config.ARMS}})
    frame = pd.DataFrame(recs, columns=["Term", "Events", *heads.values()])
    notes = [
        "Participants with at least one such event, n (% of the treated). A term without a serious event has no serious row."
    ]
    if min_cell:
        notes.append(f"Counts from 1 to {min_cell - 1} are shown as <{min_cell}.")
    return PubTable(frame, title, table_id, group="Term", notes=notes)


# ---- secondary endpoints (03)


def table3_secondary(
    means: pd.DataFrame,
    mmrm_rows: pd.DataFrame,
    title: str = "Table 3. Patient-reported outcomes by visit",
    table_id: str = "table3",
    digits: int = 1,
) -> PubTable:
    """Table 3 from the stats frames of notebook 03: :func:`table3_publication` fed with the
    per-visit means and the MMRM contrast rows (and their ``p_holm`` column when present).

    Parameters
    ----------
    means : DataFrame
        :func:`respine_nb.stats.means_by_measure` (``measure`` as PARAMCD, ``group``,
        ``visit_month``, ``estimate`` = mean, ``sd``, ``n``).
    mmrm_rows : DataFrame
        Results rows ``secondary.mmrm.<measure>`` (contrast per visit), optionally with a column
        ``p_holm`` (e.g. :func:`respine_nb.stats.holm` over the family).

    Returns
    -------
    PubTable
        As :func:`table3_publication`, with a note naming the Holm family when ``p_holm`` is shown.
    """
    measure = means["measure"].map(config.MEASURE_OF).fillna(means["measure"])
    summary = means.rename(columns={"estimate": "mean"}).assign(measure=measure)
    pub = table3_publication(summary, mmrm_rows, title=title, table_id=table_id, digits=digits)
    if "p (Holm)" in pub.frame.columns:
        family = int(pd.to_numeric(mmrm_rows["p_value"], errors="coerce").notna().sum())
        pub.notes.append(
            f"Every contrast is descriptive; the Holm family is the {family} MMRM contrasts with a p-value in this table."
        )
    return pub


# ---- running text with small-cell suppression


def small_count_text(x, min_cell: int = 0) -> str:
    """A count for running text: ``"<5"`` when ``1 <= x < min_cell``, else :func:`count_text`."""
    if min_cell and x is not None and not pd.isna(x) and 1 <= float(x) < min_cell:
        return f"<{min_cell}"
    return count_text(x)


def contrast_text(rows: pd.DataFrame, min_cell: int = 0) -> str:
    """Arms and contrast of two proportions (:func:`respine_nb.stats.compare_proportions` rows) for
    running text: ``"46/57 (80.7 %) BM-MSC vs 44/55 (80.0 %) sham, difference 0.7 [-14.0, 15.5]
    percentage points (p = 1.00)"``; an arm with 1 to ``min_cell - 1`` events reads ``"<5/57"`` and
    then the difference is not shown (it would give the count back)."""
    r = rows.set_index("group")
    arms = [r.loc[a] if a in r.index else None for a in config.ARMS]
    cells = [DASH if a is None else n_pct_text(a["events"], a["n"], min_cell=min_cell) for a in arms]
    small = any(a is not None and small_count_text(a["events"], min_cell).startswith("<") for a in arms)
    text = f"{cells[0]} {config.ARMS[0]} vs {cells[1]} {config.ARMS[1].lower()}"
    if small:
        return f"{text}, difference not shown (counts below {min_cell})"
    if config.CONTRAST not in r.index:
        return text
    c = r.loc[config.CONTRAST]
    diff = ci_text(c["estimate"], c["ci_low"], c["ci_high"], 1, 100)
    return f"{text}, difference {diff}" + ("" if pd.isna(c["estimate"]) else f" percentage points ({p_text(c['p_value'])})")


# --------------------------------------------------------------------------- sentences of the primary endpoint (02)

MC_ERROR_LIMIT = 0.10  # Monte Carlo error of the estimate below 10 % of its SE: small (White, Royston and Wood 2011)


def mc_error_text(row, limit: float = MC_ERROR_LIMIT) -> str:
    """One sentence on the Monte Carlo error of a pooled multiple-imputation estimate.

    Parameters
    ----------
    row : Series or dict
        A row of :func:`respine_nb.stats.mi_risk_difference`: ``estimate``, ``se``, ``mc_error``, ``m``.
    limit : float
        The Monte Carlo error, as a fraction of the SE, below which it counts as small.

    Returns
    -------
    str
        e.g. "With m = 50 imputations the Monte Carlo error of the estimate (0.0036) is 4 % of its
        standard error (0.089): small (below 10 %), so another seed would not change the reading."
    """
    m, se, mc = int(row["m"]), float(row["se"]), float(row["mc_error"])
    if not (np.isfinite(se) and np.isfinite(mc)) or se <= 0:
        return f"With m = {m} imputations the Monte Carlo error of the estimate is not estimable on these data."
    if mc == 0:
        return (
            f"With m = {m} imputations the pooled estimate has no Monte Carlo error: every imputation gives the same "
            "difference (nothing that decides a responder status was missing, or the imputations agree on it)."
        )
    ratio = mc / se
    head = (
        f"With m = {m} imputations the Monte Carlo error of the estimate ({mc:.2g}) is {ratio * 100:.0f} % of its standard "
        f"error ({se:.2g})"
    )
    if ratio < limit:
        return f"{head}: small (below {limit * 100:.0f} %), so another seed would not change the reading."
    need = int(np.ceil(m * (ratio / limit) ** 2))
    return f"{head}: not small (the rule of thumb asks below {limit * 100:.0f} %); about m = {need} imputations would bring it there."


def delta_text(rows, alpha: float = 0.05) -> str:
    """One sentence reading a delta-adjusted (tipping-point) analysis: from which D the conclusion of
    the missing-at-random analysis (D = 0) changes, or that none of the D tried changes it.

    Parameters
    ----------
    rows : DataFrame
        :func:`respine_nb.stats.mi_delta_risk_difference` output: ``delta``, ``estimate``, ``p_value``.
    alpha : float
        Significance level.

    Returns
    -------
    str
    """
    d = rows.sort_values("delta", kind="mergesort")
    span = f"{d['delta'].min():g} to {d['delta'].max():g} mm"
    ok = d[d["p_value"].notna() & d["estimate"].notna()]
    if ok.empty or ok["delta"].iloc[0] != d["delta"].iloc[0]:
        return "The delta-adjusted analysis is not estimable on these data (the reason is in the rows' method)."
    base = ok.iloc[0]
    significant = ok["p_value"] < alpha
    flips = ok[significant != bool(significant.iloc[0])]
    if flips.empty:
        state = f"p < {alpha:g}" if significant.iloc[0] else f"p ≥ {alpha:g}"
        first, last = num_text(base["estimate"], "+.1f", scale=100), num_text(ok["estimate"].iloc[-1], "+.1f", scale=100)
        moves = f"stays at {first}" if first == last else f"goes from {first} to {last}"
        return (
            f"In the delta-adjusted imputation, no penalty D from {span} changes the conclusion of the missing-at-random analysis "
            f"({state} at every D; the difference {moves} percentage points)."
        )
    first = flips.iloc[0]
    if significant.iloc[0]:
        return (
            f"In the delta-adjusted imputation, the difference significant under missing at random ({p_text(base['p_value'])}) vanishes from D = "
            f"{first['delta']:g} mm ({p_text(first['p_value'])}): the result holds only if the BM-MSC participants "
            "who could not be assessed did less than that much worse than those like them who could."
        )
    side = "BM-MSC" if first["estimate"] > 0 else "sham"
    return (
        f"In the delta-adjusted imputation, the difference, not significant under missing at random ({p_text(base['p_value'])}), becomes significant "
        f"in favour of {side} from D = {first['delta']:g} mm ({num_text(first['estimate'], '+.1f', scale=100)} "
        f"percentage points, {p_text(first['p_value'])})."
    )


def contrasts_table(frames: dict, title: str = "", analysis: str = "risk_difference", table_id: str = "contrasts") -> PubTable:
    """The between-arm contrast of several analyses side by side, formatted (:func:`results_table`).

    Unlike :func:`respine_nb.results.contrast_table`, nothing is rounded before formatting (so a p of
    0.7747 shows as 0.77, not 0.78 through 0.775), and each row keeps its ``method``.

    Parameters
    ----------
    frames : dict
        Label -> a stats frame: one with an ``analysis`` column (its ``analysis`` row is taken,
        e.g. :func:`respine_nb.stats.primary_analysis`), else its contrast row (``group`` equal to
        ``config.CONTRAST``), else its first row (e.g. multiple imputation).
    title : str
    analysis : str
        The row taken from frames with an ``analysis`` column.
    table_id : str

    Returns
    -------
    PubTable
        Columns Analysis, Estimate, 95 % CI, p, n, Method.
    """
    cols = ["estimate", "ci_low", "ci_high", "p_value", "n", "method"]
    picked = []
    for label, f in frames.items():
        if "analysis" in f.columns:
            f = f[f["analysis"] == analysis]
        elif "group" in f.columns and (f["group"] == config.CONTRAST).any():
            f = f[f["group"] == config.CONTRAST]
        picked.append(f.reindex(columns=cols).iloc[[0]].assign(label=label))
    d = pd.concat(picked, ignore_index=True)[["label", *cols]]
    return results_table(d, title, labels={"label": "Analysis"}, table_id=table_id)
