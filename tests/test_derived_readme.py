"""data/derived/README.md documents every variable of every analysis dataset a run writes, one
line each (name, label, derivation), and the columns of results.csv and ard.csv; nothing it
lists is missing from the files."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from respine_nb import config, derive, io, results, runner

README = config.DERIVED_DIR / "README.md"


def documented() -> dict:
    """Section key (``adsl``, ..., ``results.csv``, ``ard.csv``) -> the first cells of its variable tables."""
    out, key = {}, None
    for line in README.read_text(encoding="utf-8").splitlines():
        head = re.match(r"## (AD[A-Z]+|results\.csv|ard\.csv)\b", line)
        if head:
            key = head.group(1).lower()
            out[key] = []
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if key and len(cells) == 3 and cells[0] not in ("Variable", "Column", "---"):
            out[key].append(cells[0])
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory, small_dataset_dir):
    out = tmp_path_factory.mktemp("run")
    assert runner.run(data=small_dataset_dir, out=out, derive_only=True) == 0
    return out / "derived"


def test_every_dataset_has_a_section_with_one_line_per_variable():
    doc = documented()
    for name in derive.DATASETS:
        assert name in doc, f"README.md has no section for {name.upper()}"
        names = doc[name]
        assert len(names) == len(set(names)), f"{name.upper()}: a variable documented twice"


@pytest.mark.parametrize("name", derive.DATASETS)
def test_every_written_column_is_documented_and_nothing_more(written, name):
    doc = documented()
    for path in (written / f"{name}.csv", written / f"{name}.parquet"):
        cols = list(pd.read_parquet(path).columns if path.suffix == ".parquet" else pd.read_csv(path, nrows=0).columns)
        assert cols == doc[name], f"{path.name}: columns {cols} differ from README.md's {doc[name]}"


def test_the_default_cohort_writes_the_documented_columns(default_tables):
    doc = documented()
    for name, df in derive.derive_all(default_tables).items():
        assert list(df.columns) == doc[name], name


def test_results_and_ard_columns_are_documented():
    doc = documented()
    assert doc["results.csv"] == results.COLUMNS
    assert doc["ard.csv"] == results.ARD_COLUMNS


def test_a_dataset_without_optional_tables_writes_the_same_columns(tmp_path, default_tables):
    tables = {k: v for k, v in default_tables.items() if k not in ("immunology", "screening")}
    paths = io.write_tables(derive.derive_all(tables), tmp_path)
    doc = documented()
    for p in paths:
        cols = list(pd.read_parquet(p).columns if p.suffix == ".parquet" else pd.read_csv(p, nrows=0).columns)
        assert cols == doc[p.stem], p.name
