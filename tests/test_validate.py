"""The data contract enforced: every rule family, every format, every problem reported at once."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from respine_nb import cli, io


def edit(folder: Path, table: str, fn) -> None:
    path = folder / f"{table}.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = fn(df)
    df.to_csv(path, index=False, lineterminator="\n")


def set_cell(folder, table, row, column, value):
    def fn(df):
        df.loc[row - 1, column] = value
        return df

    edit(folder, table, fn)


def snapshot(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def validate(folder, capsys):
    before = snapshot(folder)
    code = cli.main(["validate", str(folder)])
    out = capsys.readouterr().out
    assert snapshot(folder) == before, "validation must never write into the dataset folder"
    return code, out


def test_committed_synthetic_is_valid(capsys):
    from respine_nb import config

    code, out = validate(config.SYNTHETIC_DIR, capsys)
    assert code == 0
    assert "participants: BM-MSC 58, Sham 56 (total 114)" in out
    assert "warnings: 0" in out


# Each case: break the copy, then the message must name file, column and row (and the rule).
CASES = {
    "out of range": (
        lambda d: set_cell(d, "subjects", 3, "age", "75"),
        ["subjects.csv", "column 'age'", "row 3", "value 75", "between 18 and 60"],
    ),
    "unknown category": (
        lambda d: set_cell(d, "subjects", 5, "arm", "Placebo"),
        ["subjects.csv", "column 'arm'", "row 5", "'Placebo'", "must be one of"],
    ),
    "duplicate key": (
        lambda d: edit(d, "outcomes", lambda df: pd.concat([df, df.iloc[[3]]], ignore_index=True)),
        ["outcomes.csv", "column 'subject_id+visit_month'", "must be unique"],
    ),
    "duplicate id": (
        lambda d: set_cell(d, "subjects", 2, "subject_id", "SYN-001"),
        ["subjects.csv", "column 'subject_id'", "row 2", "must be unique"],
    ),
    "orphan key": (
        lambda d: set_cell(d, "mri", 4, "subject_id", "SYN-999"),
        ["mri.csv", "column 'subject_id'", "row 4", "SYN-999", "must exist in subjects"],
    ),
    "wrong type": (
        lambda d: set_cell(d, "outcomes", 7, "vas_pain", "sixty"),
        ["outcomes.csv", "column 'vas_pain'", "row 7", "'sixty'", "must be a number"],
    ),
    "wrong bool": (
        lambda d: set_cell(d, "subjects", 9, "treated", "yes"),
        ["subjects.csv", "column 'treated'", "row 9", "'yes'", "true or false"],
    ),
    "bad date": (
        lambda d: set_cell(d, "subjects", 6, "randomization_date", "2019-02-30"),
        ["subjects.csv", "column 'randomization_date'", "row 6", "'2019-02-30'", "YYYY-MM-DD"],
    ),
    "date format": (
        lambda d: set_cell(d, "subjects", 8, "randomization_date", "03/04/2019"),
        ["subjects.csv", "column 'randomization_date'", "row 8", "YYYY-MM-DD"],
    ),
    "non-integer": (
        lambda d: set_cell(d, "outcomes", 2, "visit_month", "2.5"),
        ["outcomes.csv", "column 'visit_month'", "row 2", "whole number"],
    ),
    "visit not scheduled": (
        lambda d: set_cell(d, "outcomes", 2, "visit_month", "2"),
        ["outcomes.csv", "column 'visit_month'", "row 2", "must be one of"],
    ),
    "empty required cell": (
        lambda d: set_cell(d, "subjects", 4, "sex", ""),
        ["subjects.csv", "column 'sex'", "row 4", "must not be empty"],
    ),
    "missing column": (
        lambda d: edit(d, "subjects", lambda df: df.drop(columns="bmi")),
        ["subjects.csv", "column 'bmi'", "required column is missing"],
    ),
    "missing required table": (lambda d: (d / "mri.csv").unlink(), ["mri.*", "required table 'mri' is missing"]),
    "empty table": (lambda d: edit(d, "outcomes", lambda df: df.iloc[0:0]), ["outcomes.csv", "table is empty"]),
    "empty file": (lambda d: (d / "subjects.csv").write_text(""), ["subjects.csv", "file is empty"]),
    "screening mismatch": (
        lambda d: edit(d, "screening", lambda df: df.drop(index=df.index[df["outcome"] == "randomized"][0])),
        ["screening.csv", "column 'outcome'", "value 113", "must equal the number of subjects rows (114)"],
    ),
    "discontinuation pair": (
        lambda d: set_cell(d, "subjects", 1, "discontinuation_reason", "moved away"),
        ["subjects.csv", "column 'discontinuation_month'", "row 1", "both be filled"],
    ),
    "dsa for sham": (
        lambda d: edit(d, "immunology", lambda df: df.assign(dsa="false")),
        ["immunology.csv", "column 'dsa'", "must be empty for Sham"],
    ),
    "semicolons": (
        lambda d: (d / "subjects.csv").write_text((d / "subjects.csv").read_text().replace(",", ";")),
        ["subjects.csv", "semicolon"],
    ),
    "not utf-8": (
        lambda d: (d / "adverse_events.csv").write_bytes(
            (d / "adverse_events.csv").read_bytes() + "Rückenschmerz\n".encode("latin-1")
        ),
        ["adverse_events.csv", "not UTF-8"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_dataset_exits_2_naming_file_column_row(case, dataset_copy, capsys):
    breaker, expected = CASES[case]
    breaker(dataset_copy)
    code, out = validate(dataset_copy, capsys)
    assert code == 2, out
    assert out.startswith("INVALID")
    for text in expected:
        assert text in out, f"{case}: {text!r} not in report:\n{out}"
    assert "Traceback" not in out


def test_every_problem_reported_at_once(dataset_copy, capsys):
    set_cell(dataset_copy, "subjects", 3, "age", "75")
    set_cell(dataset_copy, "subjects", 4, "bmi", "50")
    set_cell(dataset_copy, "outcomes", 7, "odi", "140")
    set_cell(dataset_copy, "mri", 2, "t2_np_ms", "abc")
    code, out = validate(dataset_copy, capsys)
    assert code == 2
    assert "4 problem(s)" in out
    assert "subject_id SYN-003" in out  # the row's subject is named too


def test_console_script_exit_status(dataset_copy):
    set_cell(dataset_copy, "subjects", 3, "age", "75")
    exe = Path(sys.executable).parent / "respine-nb"
    proc = subprocess.run([str(exe), "validate", str(dataset_copy)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "column 'age'" in proc.stdout and "Traceback" not in proc.stderr


def test_missing_folder(tmp_path, capsys):
    assert cli.main(["validate", str(tmp_path / "nope")]) == 2


def test_two_files_for_one_table(dataset_copy, capsys):
    pd.read_csv(dataset_copy / "mri.csv").to_parquet(dataset_copy / "mri.parquet")
    code, out = validate(dataset_copy, capsys)
    assert code == 2 and "two files for table 'mri'" in out


def test_warnings_for_missing_baseline(dataset_copy, capsys):
    edit(dataset_copy, "outcomes", lambda df: df[~((df["subject_id"] == "SYN-010") & (df["visit_month"] == "0"))])

    def blank(df):
        sel = (df["subject_id"] == "SYN-011") & (df["visit_month"] == "0")
        df.loc[sel, ["vas_pain", "odi"]] = ""
        return df

    edit(dataset_copy, "outcomes", blank)
    ds = io.load_dataset(dataset_copy)
    assert len(ds.warnings) == 2
    assert "SYN-010" in ds.warnings[0] and "SYN-011" in ds.warnings[1]
    assert cli.main(["validate", str(dataset_copy)]) == 0
    assert "warnings: 2" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["parquet", "xlsx", "xpt"])
def test_other_formats_read_the_same(fmt, tmp_path, small_dataset_dir):
    ref = io.load_dataset(small_dataset_dir)
    out = tmp_path / fmt
    out.mkdir()
    for name, df in ref.tables.items():
        raw = pd.read_csv(small_dataset_dir / f"{name}.csv", dtype=str, keep_default_na=False)
        if fmt == "parquet":
            df.to_parquet(out / f"{name}.parquet", index=False)
        elif fmt == "xlsx":
            raw.to_excel(out / f"{name}.xlsx", index=False)
        else:
            import pyreadstat

            sas = df.copy()
            for col in sas.columns:
                kind = str(sas[col].dtype)
                if kind == "boolean":
                    sas[col] = sas[col].astype("Float64").astype(float)
                elif kind in ("Int64", "Float64"):
                    sas[col] = sas[col].astype(float)
                elif kind.startswith("datetime"):
                    sas[col] = sas[col].dt.strftime("%Y-%m-%d")
                else:
                    sas[col] = sas[col].astype(object).where(sas[col].notna(), "")
            pyreadstat.write_xport(sas, str(out / f"{name}.xpt"), table_name=name[:8])
    got = io.load_dataset(out)
    for name, df in ref.tables.items():
        left, right = df.reset_index(drop=True), got.tables[name].reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right[left.columns], check_dtype=True, obj=name)


def test_adverse_events_may_be_empty_and_optional_tables_absent(dataset_copy, capsys):
    header = (dataset_copy / "adverse_events.csv").read_text().splitlines()[0]
    (dataset_copy / "adverse_events.csv").write_text(header + "\n")
    (dataset_copy / "immunology.csv").unlink()
    (dataset_copy / "screening.csv").unlink()
    code, out = validate(dataset_copy, capsys)
    assert code == 0, out
    ds = io.load_dataset(dataset_copy)
    assert len(ds["adverse_events"]) == 0 and not ds.has("immunology") and not ds.has("screening")


def test_bom_is_tolerated(dataset_copy, capsys):
    path = dataset_copy / "subjects.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert validate(dataset_copy, capsys)[0] == 0


def problem_lines(out: str) -> list[str]:
    return [line[4:] for line in out.splitlines() if line.startswith("  - ")]


def test_one_pass_reports_file_column_row_and_cross_table_problems_together(dataset_copy, capsys):
    """DATA_CONTRACT.md v1.1: a missing column hides neither a bad value elsewhere in the same file
    nor a problem in another table, nor an unknown subject_id (a cross-table check)."""
    edit(dataset_copy, "outcomes", lambda df: df.drop(columns="odi"))
    set_cell(dataset_copy, "outcomes", 7, "vas_pain", "sixty")
    set_cell(dataset_copy, "subjects", 3, "age", "75")
    set_cell(dataset_copy, "mri", 4, "subject_id", "SYN-999")
    code, out = validate(dataset_copy, capsys)
    assert code == 2
    lines = problem_lines(out)
    assert len(lines) == 4, out
    assert "4 problem(s)" in out
    expected = [
        ["outcomes.csv", "column 'odi'", "required column is missing"],
        ["outcomes.csv", "column 'vas_pain'", "row 7", "'sixty'", "must be a number"],
        ["subjects.csv", "column 'age'", "row 3", "subject_id SYN-003", "value 75", "between 18 and 60"],
        ["mri.csv", "column 'subject_id'", "row 4", "'SYN-999'", "must exist in subjects"],
    ]
    for parts in expected:
        assert any(all(p in line for p in parts) for line in lines), f"{parts} not in:\n{out}"
