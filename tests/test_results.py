"""results rows: contract columns, sorting, merging."""
import pandas as pd
import pytest

from respine_nb import results


def test_rows_sort_merge(tmp_path):
    a = results.rows(pd.DataFrame({"group": ["Sham", "BM-MSC"], "estimate": [0.5, 0.25], "n": [10, 12]}),
                     "x.rate", visit_month=12, method="m")
    b = results.rows(pd.DataFrame({"group": ["BM-MSC vs Sham"], "estimate": [1 / 3], "p_value": [0.5]}), "a.diff")
    results.write_part(a, tmp_path, "nb1")
    results.write_part(b, tmp_path, "nb2")
    text = results.merge(tmp_path).read_text()
    lines = text.splitlines()
    assert lines[0] == ",".join(results.COLUMNS)
    assert lines[1].startswith("a.diff,BM-MSC vs Sham,,0.3333333333,")
    assert lines[2].startswith("x.rate,BM-MSC,12,0.25,,,,12,m")
    back = results.read(tmp_path / "results.csv")
    assert list(back.columns) == results.COLUMNS and len(back) == 3


def test_bad_rows_rejected(tmp_path):
    with pytest.raises(ValueError, match="group"):
        results.rows(pd.DataFrame({"group": ["Placebo"], "estimate": [1]}), "x")
    with pytest.raises(ValueError, match="p_value"):
        results.rows(pd.DataFrame({"group": ["all"], "p_value": [1.5]}), "x")
    dup = results.rows(pd.DataFrame({"group": ["all", "all"], "estimate": [1, 2]}), "x")
    with pytest.raises(ValueError, match="duplicate"):
        results.write_part(dup, tmp_path, "nb")
