"""results rows: contract columns, sorting, merging."""

import pandas as pd
import pytest

from respine_nb import config, results


def test_rows_sort_merge(tmp_path):
    a = results.rows(
        pd.DataFrame({"group": ["Sham", "BM-MSC"], "estimate": [0.5, 0.25], "n": [10, 12]}),
        "primary.responders",
        visit_month=12,
        method="m",
    )
    b = results.rows(pd.DataFrame({"group": ["BM-MSC vs Sham"], "estimate": [1 / 3], "p_value": [0.5]}), "mri.t2.ancova")
    results.write_part(a, tmp_path, "nb1")
    results.write_part(b, tmp_path, "nb2")
    text = results.merge(tmp_path).read_text()
    lines = text.splitlines()
    assert lines[0] == ",".join(results.COLUMNS)
    assert lines[1].startswith("mri.t2.ancova,BM-MSC vs Sham,,0.3333333,")
    assert lines[2].startswith("primary.responders,BM-MSC,12,0.25,,,,12,m")
    back = results.read(tmp_path / "results.csv")
    assert list(back.columns) == results.COLUMNS and len(back) == 3


def test_bad_rows_rejected(tmp_path):
    with pytest.raises(ValueError, match="group"):
        results.rows(pd.DataFrame({"group": ["Placebo"], "estimate": [1]}), "x")
    with pytest.raises(ValueError, match="p_value"):
        results.rows(pd.DataFrame({"group": ["all"], "p_value": [1.5]}), "x")
    dup = results.rows(pd.DataFrame({"group": ["all", "all"], "estimate": [1, 2]}), "cohort.randomized")
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


def test_unregistered_id_is_an_error(tmp_path):
    row = results.rows(pd.DataFrame({"group": ["all"], "estimate": [1.0]}), "primary.made_up")
    with pytest.raises(ValueError, match=r"not in the registry.*primary\.made_up"):
        results.write_part(row, tmp_path, "nb")
    assert not (tmp_path / "results").exists()


def test_registry_lists_each_id_once_with_every_field():
    reg = results.registry()
    assert reg["analysis_id"].is_unique
    required = ["analysis_id", "notebook", "dataset", "population", "variable", "groups", "statistic", "description"]
    assert (reg[required] != "").all().all()
    assert set(reg["notebook"]) <= {p.stem for p in config.NOTEBOOKS_DIR.glob("*.ipynb")}


def test_default_run_ids_are_exactly_the_registry():
    rows = results.read(config.DERIVED_DIR / "results.csv")
    assert sorted(set(rows["analysis_id"])) == sorted(results.registry()["analysis_id"])


def test_ard_long_format(tmp_path):
    a = results.rows(
        pd.DataFrame(
            {"group": ["BM-MSC vs Sham"], "estimate": [0.05], "ci_low": [-0.1], "ci_high": [0.2], "p_value": [0.77], "n": [98]}
        ),
        "primary.risk_difference",
        visit_month=12,
        method="m",
    )
    b = results.rows(
        pd.DataFrame({"group": ["all"], "estimate": [0.03], "n": [89]}), "mri.t2_vs_odi.corr", visit_month=12, method="r"
    )
    results.write_part(pd.concat([a, b]), tmp_path, "nb")
    results.merge(tmp_path)
    ard = pd.read_csv(tmp_path / "ard.csv", keep_default_na=False)
    assert list(ard.columns) == results.ARD_COLUMNS and len(ard) == 10
    rd = ard[ard["analysis_id"] == "primary.risk_difference"]
    assert list(rd["stat_name"]) == ["estimate", "conf.low", "conf.high", "p.value", "N"]
    assert list(rd["stat"].astype(float)) == [0.05, -0.1, 0.2, 0.77, 98]
    assert set(rd["group1"]) == {"ARM"} and set(rd["group1_level"]) == {"BM-MSC vs Sham"} and set(rd["variable"]) == {"RESP"}
    corr = ard[ard["analysis_id"] == "mri.t2_vs_odi.corr"]
    assert set(corr["group1"]) == {""} and list(corr["stat"]) == ["0.03", "", "", "", "89"]


def test_a_fixed_method_keeps_the_frames_reason():
    df = pd.DataFrame(
        {
            "group": ["BM-MSC", "Sham"],
            "estimate": [0.5, float("nan")],
            "method": ["Wilson CI", "Wilson CI; not estimable: no evaluable participant in Sham"],
        }
    )
    got = results.rows(df, "primary.responders", method="proportion of evaluable; Wilson CI")
    assert list(got["method"]) == [
        "proportion of evaluable; Wilson CI",
        "proportion of evaluable; Wilson CI; not estimable: no evaluable participant in Sham",
    ]


def test_complete_adds_the_missing_groups_with_the_reason():
    df = pd.DataFrame({"group": ["Sham"], "estimate": [0.2], "method": ["Wilson CI"]})
    got = results.complete(df, ["BM-MSC", "Sham"], "no sample at month 6", method="Wilson CI")
    assert list(got["group"]) == ["BM-MSC", "Sham"] and pd.isna(got["estimate"].iloc[0])
    assert got["method"].iloc[0] == "Wilson CI; not estimable: no sample at month 6"
    empty = results.complete(pd.DataFrame(columns=["group", "estimate"]), ["BM-MSC", "Sham"], "no immunology table")
    assert list(empty["method"]) == ["not estimable: no immunology table"] * 2
    assert df["group"].tolist() == ["Sham"]  # input untouched
