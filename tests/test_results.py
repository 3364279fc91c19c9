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
    assert lines[1].startswith("a.diff,BM-MSC vs Sham,,0.3333333,")
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


def test_seven_significant_digits_whatever_the_magnitude():
    # RESULTS_CONTRACT.md (Precision): 7 significant digits, not 7 decimals
    x = [0.772996800192, 1.23456789e-9, -12345.678901, 19983.2, 0.0, float("nan"), 2.5e-300]
    got = results.significant(x)
    assert list(got[:5]) == [0.7729968, 1.234568e-9, -12345.68, 19983.2, 0.0]
    assert pd.isna(got[5]) and got[6] == 2.5e-300
    # a last-bit difference (another processor) disappears
    assert results.significant([0.1 + 0.2])[0] == results.significant([0.3])[0]
    row = results.rows(pd.DataFrame({"group": ["all"], "estimate": [1 / 3], "p_value": [1.23456789e-9]}), "x")
    text = results.to_csv_text(row)
    assert "0.3333333,,,1.234568e-09" in text
