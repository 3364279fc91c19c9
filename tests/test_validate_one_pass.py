"""One pass (DATA_CONTRACT.md v1.1): file-level, column-level, row-level and cross-table problems are
reported together, as far as they can be checked independently; exit 2 and nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
from test_validate import edit, problem_lines, set_cell, snapshot, validate

EXE = Path(sys.executable).parent / "respine-nb"


def has_line(lines, *parts) -> bool:
    return any(all(p in line for p in parts) for line in lines)


def break_four_ways(folder: Path) -> None:
    """The dataset of the one-pass test in test_validate.py: four problems in three files."""
    edit(folder, "outcomes", lambda df: df.drop(columns="odi"))
    set_cell(folder, "outcomes", 7, "vas_pain", "sixty")
    set_cell(folder, "subjects", 3, "age", "75")
    set_cell(folder, "mri", 4, "subject_id", "SYN-999")


def test_unreadable_or_empty_tables_do_not_hide_the_others(dataset_copy, capsys):
    """An unreadable file, an empty table, a mis-cased and a missing column, a bad value, and the
    screening and discontinuation checks, all in one report. Unknown subject_ids cannot be checked
    without a readable subjects table: they are not reported (nor is every row flagged)."""
    path = dataset_copy / "subjects.csv"
    path.write_bytes(path.read_bytes() + "Rückenschmerz\n".encode("latin-1"))
    edit(dataset_copy, "outcomes", lambda df: df.iloc[0:0])
    edit(dataset_copy, "mri", lambda df: df.rename(columns={"t2_np_ms": "T2_np_ms"}))
    set_cell(dataset_copy, "mri", 2, "disc_height_mm", "50")
    edit(dataset_copy, "screening", lambda df: df.drop(columns="exclusion_reason"))
    set_cell(dataset_copy, "adverse_events", 1, "subject_id", "NOBODY")
    code, out = validate(dataset_copy, capsys)
    assert code == 2
    lines = problem_lines(out)
    assert has_line(lines, "subjects.csv", "not UTF-8")
    assert has_line(lines, "outcomes.csv", "table is empty")
    assert has_line(lines, "mri.csv", "column 't2_np_ms'", "required column is missing", "found 'T2_np_ms'")
    assert has_line(lines, "mri.csv", "column 'disc_height_mm'", "row 2", "between 2 and 20")
    assert has_line(lines, "screening.csv", "column 'exclusion_reason'", "required column is missing")
    assert not has_line(lines, "NOBODY")
    assert len(lines) == 5, out


def test_cross_table_checks_run_when_their_columns_could_be_read(dataset_copy, capsys):
    """subjects lacks a column: the screening count, the discontinuation pair, the unknown
    subject_id and the dsa-for-sham rule are still checked, since their columns are there."""
    edit(dataset_copy, "subjects", lambda df: df.drop(columns="bmi"))
    set_cell(dataset_copy, "subjects", 1, "discontinuation_reason", "moved away")
    edit(dataset_copy, "screening", lambda df: df.drop(index=df.index[df["outcome"] == "randomized"][0]))
    set_cell(dataset_copy, "outcomes", 5, "subject_id", "SYN-999")
    edit(dataset_copy, "immunology", lambda df: df.assign(dsa="false"))
    edit(dataset_copy, "outcomes", lambda df: df.drop(columns="sf36_mcs"))
    code, out = validate(dataset_copy, capsys)
    assert code == 2
    lines = problem_lines(out)
    assert has_line(lines, "subjects.csv", "column 'bmi'", "required column is missing")
    assert has_line(lines, "outcomes.csv", "column 'sf36_mcs'", "required column is missing")
    assert has_line(lines, "subjects.csv", "column 'discontinuation_month'", "row 1", "subject_id SYN-001", "both be filled")
    assert has_line(lines, "screening.csv", "column 'outcome'", "value 113", "(114)")
    assert has_line(lines, "outcomes.csv", "column 'subject_id'", "row 5", "'SYN-999'", "must exist in subjects")
    assert has_line(lines, "immunology.csv", "column 'dsa'", "must be empty for Sham")


def test_a_column_missing_in_one_table_and_a_duplicate_key_in_the_same_table(dataset_copy, capsys):
    edit(dataset_copy, "mri", lambda df: df.drop(columns="pfirrmann_grade"))
    edit(dataset_copy, "mri", lambda df: pd.concat([df, df.iloc[[3]]], ignore_index=True))
    code, out = validate(dataset_copy, capsys)
    assert code == 2
    lines = problem_lines(out)
    assert has_line(lines, "mri.csv", "column 'pfirrmann_grade'", "required column is missing")
    assert has_line(lines, "mri.csv", "column 'subject_id+visit_month'", "must be unique")
    assert len(lines) == 2, out


def _cli(*args):
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=600)


def test_cli_validate_and_run_report_all_four_exit_2_and_write_nothing(dataset_copy, tmp_path):
    break_four_ways(dataset_copy)
    before = snapshot(dataset_copy)
    out_dir = tmp_path / "run-out"
    for args in (["validate", str(dataset_copy)], ["run", "--data", str(dataset_copy), "--out", str(out_dir)]):
        proc = _cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr == "", proc.stderr
        lines = problem_lines(proc.stdout)
        assert len(lines) == 4, proc.stdout
        assert has_line(lines, "outcomes.csv", "column 'odi'", "missing")
        assert has_line(lines, "outcomes.csv", "column 'vas_pain'", "row 7", "'sixty'")
        assert has_line(lines, "subjects.csv", "column 'age'", "row 3", "75")
        assert has_line(lines, "mri.csv", "column 'subject_id'", "row 4", "'SYN-999'")
    assert snapshot(dataset_copy) == before
    assert not out_dir.exists(), "an invalid dataset must not create the output folder"


def test_one_mistake_one_problem(dataset_copy, capsys):
    """A cell that breaks its own rule is not reported again by a cross-table check that needs it:
    an unreadable discontinuation month is not also 'month and reason not filled together', an
    unknown screening outcome is not also a wrong count of randomized rows."""

    def bad_month(df):
        df.loc[df.index[df["discontinuation_month"] != ""][0], "discontinuation_month"] = "abc"
        return df

    def bad_outcome(df):
        df.loc[df.index[df["outcome"] == "randomized"][0], "outcome"] = "Randomised"
        return df

    edit(dataset_copy, "subjects", bad_month)
    edit(dataset_copy, "screening", bad_outcome)
    code, out = validate(dataset_copy, capsys)
    assert code == 2
    lines = problem_lines(out)
    assert len(lines) == 2, out
    assert has_line(lines, "subjects.csv", "column 'discontinuation_month'", "'abc'", "must be a number")
    assert has_line(lines, "screening.csv", "column 'outcome'", "'Randomised'", "must be one of")
