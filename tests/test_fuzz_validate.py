"""Property-based: corrupt a valid dataset at random; validation always ends in exit 0 or 2 (never a
traceback), 2 for every corruption that breaks the contract and 0 for every harmless change; and two
independent corruptions in two tables are both reported in one pass (DATA_CONTRACT.md v1.1)."""

from __future__ import annotations

import contextlib
import io as _io
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respine_nb import cli, io, synthetic
from respine_nb.schema import TABLES


def _with_intercurrent_events(tables: dict) -> dict:
    """The generated tables plus a valid intercurrent_events table (contract v1.1)."""
    ids = tables["subjects"]["subject_id"]
    events = pd.DataFrame(
        {
            "subject_id": [ids.iloc[0], ids.iloc[0], ids.iloc[3], ids.iloc[5]],
            "event": ["rescue_medication", "spine_surgery", "other_spinal_injection", "treatment_not_received"],
            "month": [2.0, 13.5, 6.0, 0.0],
        }
    )
    return {**tables, "intercurrent_events": events}


BASE = {name: io.to_contract_csv(df) for name, df in _with_intercurrent_events(synthetic.generate(9, 12, 12)).items()}
FRAMES = {name: pd.read_csv(_io.StringIO(text), dtype=str, keep_default_na=False) for name, text in BASE.items()}


def not_a_number(s: str) -> bool:
    try:
        float(s)
        return False
    except ValueError:
        return True


HARMLESS = ["bom", "extra_column", "row_order", "bool_case", "no_adverse_events", "no_optional_tables"]
# corruptions of one table's values or columns, each reported in that table's file whatever else is broken
LOCATED = ["blank_required", "text_in_number", "out_of_range", "unknown_category", "drop_column"]
BREAKING = LOCATED + [
    "duplicate_key",
    "orphan",
    "empty_file",
    "semicolons",
    "latin1",
    "drop_table",
    "bad_date",
    "fractional_integer",
]
CORRUPTIBLE = ["subjects", "outcomes", "mri", "adverse_events", "intercurrent_events"]


@st.composite
def corruption(draw, kinds=tuple(HARMLESS + BREAKING), tables=tuple(CORRUPTIBLE)):
    """(description, expected exit code, function(folder) applying it)."""
    kind = draw(st.sampled_from(kinds))
    table = draw(st.sampled_from(tables))
    df = FRAMES[table].copy()
    row = draw(st.integers(0, len(df) - 1))
    spec = TABLES[table]

    def write(folder, frame, name=table):
        (folder / f"{name}.csv").write_text(frame.to_csv(index=False, lineterminator="\n"), encoding="utf-8")

    if kind == "bom":
        return kind, 0, lambda f: (f / f"{table}.csv").write_bytes(b"\xef\xbb\xbf" + BASE[table].encode())
    if kind == "extra_column":
        name = draw(st.from_regex(r"[a-z]{3,10}_extra", fullmatch=True))
        return kind, 0, lambda f: write(f, df.assign(**{name: "anything"}))
    if kind == "row_order":
        seed = draw(st.integers(0, 1000))
        return kind, 0, lambda f: write(f, df.sample(frac=1.0, random_state=seed))
    if kind == "no_adverse_events":
        return kind, 0, lambda f: (f / "adverse_events.csv").write_text(BASE["adverse_events"].splitlines()[0] + "\n")
    if kind == "no_optional_tables":
        return kind, 0, lambda f: [(f / f"{t}.csv").unlink() for t in ("immunology", "screening", "intercurrent_events")]
    if kind == "bool_case":
        t = "subjects"
        d = FRAMES[t].assign(treated=FRAMES[t]["treated"].str.upper())
        return kind, 0, lambda f: write(f, d, t)
    if kind == "blank_required":
        col = draw(st.sampled_from([c.name for c in spec.columns if not c.nullable]))
        df.loc[row, col] = ""
        return f"{kind}:{table}.{col}", 2, lambda f: write(f, df)
    if kind == "text_in_number":
        col = draw(st.sampled_from([c.name for c in spec.columns if c.kind in ("integer", "number")]))
        junk = draw(st.text(alphabet="abcxyzNA-/%é ", min_size=1, max_size=6).filter(lambda s: s.strip() and not_a_number(s)))
        df.loc[row, col] = junk
        return f"{kind}:{table}.{col}={junk!r}", 2, lambda f: write(f, df)
    if kind == "out_of_range":
        col, value = draw(
            st.sampled_from(
                {
                    "subjects": [("age", "17"), ("age", "61"), ("bmi", "14.9"), ("bmi", "35.5"), ("pfirrmann_grade", "9")],
                    "outcomes": [("vas_pain", "100.5"), ("odi", "-1"), ("sf36_pcs", "101")],
                    "mri": [("t2_np_ms", "9.9"), ("t2_np_ms", "301"), ("disc_height_mm", "1.5")],
                    "adverse_events": [("onset_day", "-3")],
                    "intercurrent_events": [("month", "-0.5")],
                }[table]
            )
        )
        df.loc[row, col] = value
        return f"{kind}:{table}.{col}={value}", 2, lambda f: write(f, df)
    if kind == "unknown_category":
        col = {
            "subjects": "arm",
            "outcomes": "visit_month",
            "mri": "visit_month",
            "adverse_events": "severity",
            "intercurrent_events": "event",
        }[table]
        df.loc[row, col] = {"arm": "Placebo", "visit_month": "2", "severity": "fatal", "event": "surgery"}[col]
        return f"{kind}:{table}.{col}", 2, lambda f: write(f, df)
    if kind == "duplicate_key":
        key = {"subjects": ["subject_id"], "outcomes": ["subject_id", "visit_month"], "mri": ["subject_id", "visit_month"]}
        if table not in key:
            return (
                "duplicate_key:subjects",
                2,
                lambda f: write(f, pd.concat([FRAMES["subjects"], FRAMES["subjects"].iloc[[0]]]), "subjects"),
            )
        return f"{kind}:{table}", 2, lambda f: write(f, pd.concat([df, df.iloc[[row]]]))
    if kind == "orphan":
        if table == "subjects":
            table2 = "outcomes"
            d = FRAMES[table2].copy()
            d.loc[0, "subject_id"] = "NOBODY-1"
            return f"{kind}:{table2}", 2, lambda f: write(f, d, table2)
        df.loc[row, "subject_id"] = "NOBODY-1"
        return f"{kind}:{table}", 2, lambda f: write(f, df)
    if kind == "drop_column":
        col = draw(st.sampled_from([c.name for c in spec.columns]))
        return f"{kind}:{table}.{col}", 2, lambda f: write(f, df.drop(columns=col))
    if kind == "empty_file":
        return f"{kind}:{table}", 2, lambda f: (f / f"{table}.csv").write_bytes(b"")
    if kind == "semicolons":
        return f"{kind}:{table}", 2, lambda f: (f / f"{table}.csv").write_text(BASE[table].replace(",", ";"))
    if kind == "latin1":
        return (
            f"{kind}:{table}",
            2,
            lambda f: (f / f"{table}.csv").write_bytes(BASE[table].encode() + "x,é,ü\n".encode("latin-1")),
        )
    if kind == "drop_table":  # an optional table may be absent
        return f"{kind}:{table}", 2 if spec.required else 0, lambda f: (f / f"{table}.csv").unlink()
    if kind == "bad_date":
        d = FRAMES["subjects"].copy()
        d.loc[row % len(d), "randomization_date"] = draw(
            st.sampled_from(["2020-02-30", "20200101", "01/02/2020", "2020-13-01", "soon"])
        )
        return f"{kind}", 2, lambda f: write(f, d, "subjects")
    # fractional_integer
    if table == "intercurrent_events":  # no integer column: a month between visits is valid
        df.loc[row, "month"] = "3.5"
        return "fractional_month:intercurrent_events", 0, lambda f: write(f, df)
    col = {"subjects": "age", "outcomes": "visit_month", "mri": "visit_month", "adverse_events": "onset_day"}[table]
    df.loc[row, col] = "3.5"
    return f"{kind}:{table}.{col}", 2, lambda f: write(f, df)


@settings(max_examples=120, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(corruption())
def test_validation_never_crashes_and_is_right(case):
    description, expected, apply = case
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for name, text in BASE.items():
            (folder / f"{name}.csv").write_text(text, encoding="utf-8")
        apply(folder)
        out = _io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = cli.main(["validate", str(folder)])  # an exception here fails the test: no tracebacks
        assert code in (0, 2)
        assert code == expected, f"{description}: exit {code}, expected {expected}\n{out.getvalue()[:1500]}"
        if code == 2:
            assert "INVALID" in out.getvalue() and "Traceback" not in out.getvalue()


@st.composite
def two_independent_corruptions(draw):
    """Two located corruptions in two different tables, plus an unknown subject_id in a third table."""
    first, second, third = draw(st.permutations(CORRUPTIBLE))[:3]
    a = draw(corruption(kinds=tuple(LOCATED), tables=(first,)))
    b = draw(corruption(kinds=tuple(LOCATED), tables=(second,)))
    if "drop_column:subjects.subject_id" in (a[0], b[0]) or third == "subjects":
        return a, b, None  # without subjects' ids (or in subjects itself) an unknown id cannot be told
    c = draw(corruption(kinds=("orphan",), tables=(third,)))
    return a, b, c


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_independent_corruptions())
def test_independent_problems_are_reported_in_one_pass(cases):
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for name, text in BASE.items():
            (folder / f"{name}.csv").write_text(text, encoding="utf-8")
        for case in cases:
            if case is not None:
                case[2](folder)
        out = _io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = cli.main(["validate", str(folder)])
        report = out.getvalue()
        assert code == 2, report
        for case in cases:
            if case is None:
                continue
            description = case[0]
            table = description.split(":")[1].split(".")[0]
            assert f"{table}.csv" in report, f"{description} not reported:\n{report[:2000]}"
        if cases[2] is not None:
            assert "NOBODY-1" in report and "must exist in subjects" in report, report[:2000]
