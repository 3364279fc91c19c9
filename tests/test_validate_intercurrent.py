"""Contract v1.1: the optional intercurrent_events table, validated like the others; a v1 dataset
(without it) stays valid."""

from __future__ import annotations

import pandas as pd
import pytest
from test_validate import problem_lines, validate

from respine_nb import io
from respine_nb.schema import CONTRACT_VERSION, INTERCURRENT_EVENT_TYPES, TABLES

GOOD = pd.DataFrame(
    {
        "subject_id": ["SYN-001", "SYN-001", "SYN-002", "SYN-005", "SYN-007"],
        "event": ["rescue_medication", "spine_surgery", "other_spinal_injection", "treatment_not_received", "rescue_medication"],
        "month": ["3", "14.5", "0", "0", "7.25"],
    }
)


def write_events(folder, df) -> None:
    df.to_csv(folder / "intercurrent_events.csv", index=False, lineterminator="\n")


def test_contract_version_and_event_names():
    assert CONTRACT_VERSION == "1.1"
    assert INTERCURRENT_EVENT_TYPES == ("rescue_medication", "spine_surgery", "other_spinal_injection", "treatment_not_received")
    table = TABLES["intercurrent_events"]
    assert not table.required and [c.name for c in table.columns] == ["subject_id", "event", "month"]


def test_valid_events_are_read_typed(dataset_copy, capsys):
    write_events(dataset_copy, GOOD.assign(note="free text kept"))
    code, out = validate(dataset_copy, capsys)
    assert code == 0, out
    assert "(contract v1.1)" in out and "intercurrent_events       5 rows  (intercurrent_events.csv)" in out
    events = io.load_dataset(dataset_copy)["intercurrent_events"]
    assert list(events.columns) == ["subject_id", "event", "month", "note"]
    assert str(events["month"].dtype) == "Float64" and events["month"].tolist() == [3.0, 14.5, 0.0, 0.0, 7.25]
    assert str(events["subject_id"].dtype) == "string"


def test_absent_or_header_only_means_no_event_recorded(dataset_copy, capsys):
    (dataset_copy / "intercurrent_events.csv").unlink(missing_ok=True)  # a v1 dataset: no such table
    code, out = validate(dataset_copy, capsys)
    assert code == 0, out
    assert "intercurrent_events  absent" in out
    assert not io.load_dataset(dataset_copy).has("intercurrent_events")
    write_events(dataset_copy, GOOD.iloc[0:0])
    assert validate(dataset_copy, capsys)[0] == 0
    assert len(io.load_dataset(dataset_copy)["intercurrent_events"]) == 0


BROKEN = {
    "unknown subject_id": (3, "subject_id", "SYN-999", ["column 'subject_id'", "row 4", "'SYN-999'", "must exist in subjects"]),
    "bad event": (
        2,
        "event",
        "surgery",
        ["column 'event'", "row 3", "subject_id SYN-002", "'surgery'", "must be one of", "'rescue_medication'"],
    ),
    "negative month": (1, "month", "-1", ["column 'month'", "row 2", "subject_id SYN-001", "value -1", "must be >= 0"]),
    "month not a number": (0, "month", "March", ["column 'month'", "row 1", "'March'", "must be a number"]),
    "empty event": (4, "event", "", ["column 'event'", "row 5", "must not be empty"]),
    "empty month": (4, "month", "", ["column 'month'", "row 5", "must not be empty"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_events_exit_2_naming_file_column_row(case, dataset_copy, capsys):
    row, column, value, expected = BROKEN[case]
    df = GOOD.copy()
    df.loc[row, column] = value
    write_events(dataset_copy, df)
    code, out = validate(dataset_copy, capsys)
    assert code == 2, out
    lines = problem_lines(out)
    assert len(lines) == 1, out
    assert "intercurrent_events.csv" in lines[0]
    for text in expected:
        assert text in lines[0], f"{case}: {text!r} not in {lines[0]!r}"


def test_event_problems_are_reported_with_the_others(dataset_copy, capsys):
    df = GOOD.drop(columns="month")
    df.loc[0, "event"] = "surgery"
    df.loc[1, "subject_id"] = "SYN-999"
    write_events(dataset_copy, df)
    code, out = validate(dataset_copy, capsys)
    assert code == 2
    lines = problem_lines(out)
    assert len(lines) == 3, out
    assert any("column 'month'" in line and "required column is missing" in line for line in lines)
    assert any("'surgery'" in line for line in lines)
    assert any("'SYN-999'" in line and "must exist in subjects" in line for line in lines)
