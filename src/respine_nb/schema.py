"""The raw data contract (v1.1) in code.

One :class:`Table` per raw table of DATA_CONTRACT.md: its columns, their kinds
(text, integer, number, bool, date), whether they may be empty, and their value
rules. :func:`pandera_schema` turns a table into a pandera ``DataFrameSchema``
that checks the value rules of already-typed columns; the parsing of raw text
into those types, the compound keys, the cross-table keys and the screening
count rule live in :mod:`respine_nb.io`, which reports every problem with its
file, column, row and rule.

Changing the contract is a versioned decision: add columns, never silently
rename them. v1.1 added the optional ``intercurrent_events`` table; a v1 dataset
stays valid.

pandera is imported by :func:`pandera_schema` only, when data are validated: a notebook that
reads the run's already validated datasets does not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import config

CONTRACT_VERSION = "1.1"

# Pandas dtype of each column kind once parsed.
DTYPES = {
    "text": "string",
    "integer": "Int64",
    "number": "Float64",
    "bool": "boolean",
    "date": "datetime64[ns]",
}


@dataclass(frozen=True)
class Col:
    """One column of the contract.

    ``checks`` are the column's value rules (:class:`Rule`).
    """

    name: str
    kind: str
    nullable: bool = False
    checks: tuple = ()
    unique: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Table:
    """One table of the contract."""

    name: str
    required: bool
    columns: tuple
    key: tuple = ()  # compound key, unique together
    may_be_empty: bool = False
    doc: str = ""
    references: tuple = field(default=("subject_id",))  # columns that must exist in subjects

    def column(self, name: str) -> Col:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class Rule:
    """A value rule: the pandera check that tests it and the rule as a reader should see it.

    ``check`` names a built-in ``pandera.Check`` (``in_range``, ``ge``, ``le``, ``isin``) called
    with ``args``, or ``non_blank`` (text that is not only spaces).
    """

    check: str
    args: tuple
    text: str

    def pandera(self):
        """The ``pandera.Check`` of this rule."""
        import pandera.pandas as pa

        if self.check == "non_blank":
            return pa.Check(_non_blank, element_wise=False)
        return getattr(pa.Check, self.check)(*self.args)


def _non_blank(s):
    return s.str.strip().str.len() > 0


def _range(lo=None, hi=None, unit=""):
    unit = f" {unit}" if unit else ""
    if lo is not None and hi is not None:
        return Rule("in_range", (lo, hi), f"must be between {lo} and {hi}{unit}")
    if lo is not None:
        return Rule("ge", (lo,), f"must be >= {lo}{unit}")
    return Rule("le", (hi,), f"must be <= {hi}{unit}")


def _one_of(values):
    values = list(values)
    shown = ", ".join(repr(v) for v in values)
    return Rule("isin", (values,), f"must be one of {shown}")


_NON_BLANK = Rule("non_blank", (), "must not be blank")

SUBJECTS = Table(
    "subjects",
    required=True,
    references=(),
    doc="one row per randomised participant",
    columns=(
        Col("subject_id", "text", checks=(_NON_BLANK,), unique=True, doc="unique, non-empty"),
        Col("site", "text", checks=(_NON_BLANK,), doc="non-empty"),
        Col("arm", "text", checks=(_one_of(config.ARMS),), doc="`BM-MSC` or `Sham`"),
        Col("randomization_date", "date", doc="ISO `YYYY-MM-DD`"),
        Col("treated", "bool", doc="received the allocated procedure"),
        Col("age", "integer", checks=(_range(18, 60, "years"),), doc="years, 18 to 60"),
        Col("sex", "text", checks=(_one_of(("F", "M")),), doc="`F` or `M`"),
        Col("bmi", "number", checks=(_range(15, 35, "kg/m2"),), doc="kg/m2, 15 to 35"),
        Col("symptom_duration_months", "number", checks=(_range(3, None, "months"),), doc=">= 3"),
        Col("disc_level", "text", checks=(_one_of(config.DISC_LEVELS),), doc="L1-L2 ... L5-S1"),
        Col("pfirrmann_grade", "integer", checks=(_range(1, 8),), doc="modified Pfirrmann 1 to 8"),
        Col("discontinuation_month", "number", nullable=True, checks=(_range(0, None, "months"),), doc="empty if completed"),
        Col("discontinuation_reason", "text", nullable=True, doc="empty if completed"),
    ),
)

OUTCOMES = Table(
    "outcomes",
    required=True,
    key=("subject_id", "visit_month"),
    doc="one row per participant and visit",
    columns=(
        Col("subject_id", "text", checks=(_NON_BLANK,)),
        Col("visit_month", "integer", checks=(_one_of(config.VISITS),)),
        Col("vas_pain", "number", nullable=True, checks=(_range(0, 100, "mm"),)),
        Col("odi", "number", nullable=True, checks=(_range(0, 100, "%"),)),
        Col("sf36_pcs", "number", nullable=True, checks=(_range(0, 100),)),
        Col("sf36_mcs", "number", nullable=True, checks=(_range(0, 100),)),
    ),
)

MRI = Table(
    "mri",
    required=True,
    key=("subject_id", "visit_month"),
    doc="one row per participant and imaging visit",
    columns=(
        Col("subject_id", "text", checks=(_NON_BLANK,)),
        Col("visit_month", "integer", checks=(_one_of(config.MRI_VISITS),)),
        Col("t2_np_ms", "number", nullable=True, checks=(_range(10, 300, "ms"),)),
        Col("pfirrmann_grade", "integer", nullable=True, checks=(_range(1, 8),)),
        Col("disc_height_mm", "number", nullable=True, checks=(_range(2, 20, "mm"),)),
    ),
)

ADVERSE_EVENTS = Table(
    "adverse_events",
    required=True,
    may_be_empty=True,
    doc="one row per event",
    columns=(
        Col("subject_id", "text", checks=(_NON_BLANK,)),
        Col("term", "text", checks=(_NON_BLANK,)),
        Col("onset_day", "integer", checks=(_range(0, None, "days"),)),
        Col("serious", "bool"),
        Col("related", "bool"),
        Col("severity", "text", checks=(_one_of(config.SEVERITIES),)),
    ),
)

IMMUNOLOGY = Table(
    "immunology",
    required=False,
    may_be_empty=True,
    key=("subject_id", "visit_month"),
    doc="one row per participant and sample",
    columns=(
        Col("subject_id", "text", checks=(_NON_BLANK,)),
        Col("visit_month", "integer", checks=(_one_of(config.IMMUNOLOGY_VISITS),)),
        Col("anti_hla_class_i", "bool", nullable=True),
        Col("anti_hla_class_ii", "bool", nullable=True),
        Col("dsa", "bool", nullable=True),
    ),
)

SCREENING = Table(
    "screening",
    required=False,
    references=(),
    doc="one row per screened candidate",
    columns=(
        Col("screening_id", "text", checks=(_NON_BLANK,), unique=True),
        Col("outcome", "text", checks=(_one_of(("randomized", "excluded")),)),
        Col("exclusion_reason", "text", nullable=True),
    ),
)

# Intercurrent events (ICH E9(R1)) the contract knows, v1.1. Kept next to their table; they
# could move to config.py with the other category lists if a notebook needs them.
INTERCURRENT_EVENT_TYPES = (
    "rescue_medication",  # opioid or corticosteroid started for back pain
    "spine_surgery",
    "other_spinal_injection",
    "treatment_not_received",
)

INTERCURRENT_EVENTS = Table(
    "intercurrent_events",
    required=False,
    may_be_empty=True,
    doc="one row per intercurrent event (added in v1.1); absent table = no event recorded",
    columns=(
        Col("subject_id", "text", checks=(_NON_BLANK,)),
        Col("event", "text", checks=(_one_of(INTERCURRENT_EVENT_TYPES),)),
        Col("month", "number", checks=(_range(0, None, "months"),), doc="months after the procedure (or randomisation)"),
    ),
)

TABLES = {t.name: t for t in (SUBJECTS, OUTCOMES, MRI, ADVERSE_EVENTS, IMMUNOLOGY, SCREENING, INTERCURRENT_EVENTS)}


def pandera_schema(table: Table, columns=None):
    """The pandera schema of the value rules of ``table`` (types already parsed).

    Parameters
    ----------
    table : Table
        A table of :data:`TABLES`.
    columns : iterable of str, optional
        Only these contract columns (those a file actually has, so that a
        missing column does not stop the checks of the others). Default: all.

    Returns
    -------
    pandera.DataFrameSchema
        Column dtypes, nullability, uniqueness and value checks. Extra columns
        are allowed (``strict=False``): the contract keeps and ignores them.
    """
    import pandera.pandas as pa

    names = None if columns is None else set(columns)
    unknown = set() if names is None else names - {c.name for c in table.columns}
    if unknown:
        raise ValueError(f"not columns of table '{table.name}': {sorted(unknown)}")
    checked = {
        c.name: pa.Column(
            DTYPES[c.kind],
            checks=[rule.pandera() for rule in c.checks],
            nullable=c.nullable,
            unique=c.unique,
            coerce=False,
            required=True,
        )
        for c in table.columns
        if names is None or c.name in names
    }
    return pa.DataFrameSchema(checked, strict=False, name=table.name)


def rule_text(table: Table, column: str, check: str, check_number) -> str:
    """Human wording of a pandera failure (``check`` and ``check_number`` as pandera reports them)."""
    if check == "field_uniqueness":
        return "must be unique"
    if check == "not_nullable":
        return "must not be empty"
    if check.startswith("dtype("):
        kind = table.column(column).kind
        return f"must be of type {kind}"
    try:
        return table.column(column).checks[int(check_number)].text
    except (StopIteration, TypeError, ValueError, IndexError):
        return check
