"""Valid datasets of the shapes a real export may have are accepted (exit 0), and read as written:
identifiers in any format, site names with accents, months that are not visits, visits nobody
reached, empty or absent tables, participants without baseline or without follow-up; and each
file format the contract lists (csv, parquet, xlsx) for one small table."""

from __future__ import annotations

import io as _io
import uuid

import pandas as pd
import pytest

from respine_nb import cli, io, synthetic

BASE = {name: io.to_contract_csv(df) for name, df in synthetic.generate(11, 20, 20).items()}


def frames() -> dict:
    """Fresh copies of the base dataset's tables, every cell as written in CSV (text)."""
    return {name: pd.read_csv(_io.StringIO(text), dtype=str, keep_default_na=False) for name, text in BASE.items()}


def write(tables: dict, folder) -> None:
    folder.mkdir(exist_ok=True)
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")


# identifiers made only of digits stay text: "007" and "7" are two participants
ODD_IDS = ["007", "7", "0001", "P-17/a", "12.0", "1e3", "NA", str(uuid.UUID(int=2**100 + 17)), "id 9 (bis)"]
ODD_SITES = ["Saint-Étienne", "A Coruña", "Zürich", "Bad Homburg v. d. Höhe"]


def rename_ids(t):
    old = t["subjects"]["subject_id"].tolist()
    new = ODD_IDS + [f"{i:04d}" for i in range(len(ODD_IDS), len(old))]
    mapping = dict(zip(old, new))
    for df in t.values():
        if "subject_id" in df.columns:
            df["subject_id"] = df["subject_id"].map(mapping)
    scr = t["screening"]
    scr["screening_id"] = [f"{i:03d}" for i in range(len(scr))]
    return t


def accented_sites(t):
    s = t["subjects"]
    s["site"] = [ODD_SITES[i % len(ODD_SITES)] for i in range(len(s))]
    return t


def discontinued_between_visits(t):
    s, o = t["subjects"], t["outcomes"]
    sid = s.loc[s["discontinuation_month"] == "", "subject_id"].iloc[0]
    s.loc[s["subject_id"] == sid, ["discontinuation_month", "discontinuation_reason"]] = ["7.5", "moved away"]
    t["outcomes"] = o[~((o["subject_id"] == sid) & (o["visit_month"].astype(int) > 7.5))]
    return t


def no_month_24(t):
    t["outcomes"] = t["outcomes"][t["outcomes"]["visit_month"] != "24"]
    t["mri"] = t["mri"][t["mri"]["visit_month"] != "24"]
    return t


def mri_months_0_and_12(t):
    t["mri"] = t["mri"][t["mri"]["visit_month"].isin(["0", "12"])]
    return t


def adverse_events_header_only(t):
    t["adverse_events"] = t["adverse_events"].iloc[0:0]
    return t


def optional_tables_absent(t):
    for name in ("immunology", "screening", "intercurrent_events"):
        t.pop(name, None)
    return t


def first_id(t):
    return t["subjects"]["subject_id"].iloc[0]


def no_month_0_row(t):
    o, sid = t["outcomes"], first_id(t)
    t["outcomes"] = o[~((o["subject_id"] == sid) & (o["visit_month"] == "0"))]
    return t


def no_follow_up(t):
    o, sid = t["outcomes"], t["subjects"]["subject_id"].iloc[1]
    t["outcomes"] = o[~((o["subject_id"] == sid) & (o["visit_month"] != "0"))]
    t["mri"] = t["mri"][~((t["mri"]["subject_id"] == sid) & (t["mri"]["visit_month"] != "0"))]
    return t


def no_outcome_row_at_all(t):
    sid = t["subjects"]["subject_id"].iloc[2]
    t["outcomes"] = t["outcomes"][t["outcomes"]["subject_id"] != sid]
    return t


SHAPES = {
    "identifiers in any format": rename_ids,
    "site names with accents, dashes and spaces": accented_sites,
    "discontinuation at month 7.5": discontinued_between_visits,
    "no month-24 rows": no_month_24,
    "MRI only at months 0 and 12": mri_months_0_and_12,
    "adverse_events header only": adverse_events_header_only,
    "optional tables absent": optional_tables_absent,
    "a participant without a month-0 row": no_month_0_row,
    "a participant without follow-up": no_follow_up,
    "a participant without any outcome row": no_outcome_row_at_all,
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_valid_shape_is_accepted_and_read_as_written(shape, tmp_path, capsys):
    tables = SHAPES[shape](frames())
    write(tables, tmp_path / "ds")
    code = cli.main(["validate", str(tmp_path / "ds")])
    out = capsys.readouterr().out
    assert code == 0, out
    ds = io.load_dataset(tmp_path / "ds")
    subjects = ds["subjects"]
    assert subjects["subject_id"].tolist() == tables["subjects"]["subject_id"].tolist()
    for name, df in ds.tables.items():
        assert len(df) == len(tables[name]), name
        if "subject_id" in df.columns:
            assert str(df["subject_id"].dtype) == "string"
            assert df["subject_id"].tolist() == tables[name]["subject_id"].tolist(), name
    if shape == "identifiers in any format":
        assert subjects["subject_id"].tolist()[: len(ODD_IDS)] == ODD_IDS
        outcomes_ids = set(ds["outcomes"]["subject_id"])
        assert {"007", "7", "0001", "12.0", "NA"} <= outcomes_ids
        assert ds["screening"]["screening_id"].iloc[0] == "000"
    if shape == "site names with accents, dashes and spaces":
        assert set(subjects["site"]) == set(ODD_SITES)
    if shape == "discontinuation at month 7.5":
        assert 7.5 in subjects["discontinuation_month"].tolist()
    if shape == "optional tables absent":
        assert sorted(ds.tables) == ["adverse_events", "mri", "outcomes", "subjects"]
    if shape == "a participant without a month-0 row":
        assert ds.warnings and first_id(tables) in ds.warnings[0] and "without a month-0" in ds.warnings[0]
        assert "warnings: 1" in out
    elif shape == "a participant without any outcome row":
        assert len(ds.warnings) == 1 and "without a month-0" in ds.warnings[0]
    else:
        assert ds.warnings == [], ds.warnings


def test_all_shapes_at_once(tmp_path, capsys):
    tables = frames()
    for shape in SHAPES.values():
        tables = shape(tables)
    write(tables, tmp_path / "ds")
    code = cli.main(["validate", str(tmp_path / "ds")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "warnings: 1" in out  # two participants without a month-0 row, in one warning


# --------------------------------------------------------------------------- formats


def excel_typed(df: pd.DataFrame) -> pd.DataFrame:
    """A typed frame as an export tool writes it to Excel: dates as dates, booleans as booleans,
    numbers as numbers (Excel has no nullable integer: a missing one is an empty cell)."""
    out = df.copy()
    for col in out.columns:
        dtype = str(out[col].dtype)
        if dtype in ("Int64", "Float64"):
            out[col] = out[col].astype(float)
        elif dtype in ("boolean", "string"):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


@pytest.mark.parametrize("fmt", ["csv", "parquet", "parquet-typed", "xlsx", "xlsx-typed"])
@pytest.mark.parametrize("table", ["subjects", "intercurrent_events"])
def test_each_format_reads_one_small_table_the_same(table, fmt, tmp_path):
    tables = rename_ids(accented_sites(discontinued_between_visits(frames())))
    ids = tables["subjects"]["subject_id"]
    tables["intercurrent_events"] = pd.DataFrame(
        {
            "subject_id": [ids.iloc[0], ids.iloc[1], ids.iloc[4], ids.iloc[6]],  # "007", "7", "12.0", "NA"
            "event": ["rescue_medication", "spine_surgery", "other_spinal_injection", "treatment_not_received"],
            "month": ["3", "7.5", "0", "14"],
        }
    )
    write(tables, tmp_path / "csv")
    reference = io.load_dataset(tmp_path / "csv")[table]
    folder = tmp_path / fmt
    write({k: v for k, v in tables.items() if k != table}, folder)
    if fmt == "csv":
        tables[table].to_csv(folder / f"{table}.csv", index=False, lineterminator="\n")
    elif fmt == "parquet":
        tables[table].to_parquet(folder / f"{table}.parquet", index=False)
    elif fmt == "parquet-typed":
        reference.to_parquet(folder / f"{table}.parquet", index=False)
    elif fmt == "xlsx":
        tables[table].to_excel(folder / f"{table}.xlsx", index=False)
    else:
        excel_typed(reference).to_excel(folder / f"{table}.xlsx", index=False)
    got = io.load_dataset(folder)[table]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), reference.reset_index(drop=True), check_dtype=True)
    if table == "subjects":
        assert got["subject_id"].tolist()[:3] == ["007", "7", "0001"]
        assert "Saint-Étienne" in got["site"].tolist()
