"""Parameters are declared once, checked before anything runs, and flow everywhere; exploring never
overwrites the committed results; the synthetic banner only for data matching their manifest."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill as pm
import pytest

from respine_nb import cli, config, derive, io, parameters, report, results, runner, session

EXE = str(Path(sys.executable).parent / "respine-nb")
NOTEBOOKS = sorted(config.NOTEBOOKS_DIR.glob("*.ipynb"))


def tree_hash(*folders: Path) -> dict:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------- declared once


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_parameter_is_declared_with_its_default(path):
    found = pm.inspect_notebook(str(path))
    assert {"data_dir", "out_dir"} <= set(found)
    for name, info in found.items():
        assert name in parameters.SPEC, f"{path.stem}: parameter {name} is not declared in respine_nb.parameters"
        assert ast.literal_eval(info["default"]) == parameters.SPEC[name].default, f"{path.stem}: default of {name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_passes_all_its_parameters_to_session_start(path):
    """So that session.start checks them all, and knows whether they are the defaults."""
    nb = nbformat.read(path, as_version=4)
    calls = [
        node
        for cell in nb.cells
        if cell.cell_type == "code" and "session.start(" in cell.source
        for node in ast.walk(ast.parse(cell.source))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "session.start"
    ]
    assert len(calls) == 1
    call = calls[0]
    passed = {ast.unparse(a) for a in call.args[1:]} | {k.arg for k in call.keywords}
    assert all(ast.unparse(k.value) == k.arg for k in call.keywords)  # name=name, nothing else
    assert passed == set(runner.declared_parameters(path))


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("visit_month", "twelve", "visit_month = 'twelve' is not allowed: expected one of 1, 3, 6, 12, 24"),
        ("visit_month", 7, "visit_month = 7 is not allowed: expected one of 1, 3, 6, 12, 24"),
        ("visit_month", 12.0, "visit_month = 12.0"),
        ("vas_rel", 20, "vas_rel = 20 is not allowed: expected a number in (0, 1] (a fraction: 0.2 means 20 %)"),
        ("odi_rel", 0, "odi_rel = 0 is not allowed"),
        ("vas_abs_mm", 150, "vas_abs_mm = 150 is not allowed: expected a number in (0, 100]"),
        ("odi_rule", "relatif", "one of 'relative', 'absolute'"),
        ("population", "pp", "population = 'pp' is not allowed: expected one of 'evaluable', 'nri', 'treated'"),
        ("immunology_visit", 0, "one of 1, 3, 6, 12"),
        ("n_imputations", 1, "an integer >= 2"),
        ("mi_seed", 1.5, "an integer >= 0"),
        ("min_cell", -1, "an integer >= 0"),
        ("spaghetti_per_arm", 0, "an integer >= 1"),
        ("table1_pvalues", "yes", "true or false"),
        ("data_dir", 3, "a folder path, or None"),
    ],
)
def test_check_names_the_parameter_the_value_and_what_is_allowed(name, value, expected):
    with pytest.raises(ValueError) as err:
        parameters.check({name: value})
    assert expected in str(err.value)


def test_check_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown parameter.*nonsense.*valid names: .*visit_month.*odi_rule"):
        parameters.check({"nonsense": 1})


def test_check_accepts_and_normalises_valid_values():
    got = parameters.check(
        {
            "visit_month": 6,
            "vas_abs_mm": 15,
            "vas_rel": 1,
            "odi_rule": "absolute",
            "population": "treated",
            "data_dir": None,
            "table1_pvalues": True,
        }
    )
    assert got == {
        "visit_month": 6,
        "vas_abs_mm": 15.0,
        "vas_rel": 1.0,
        "odi_rule": "absolute",
        "population": "treated",
        "data_dir": None,
        "table1_pvalues": True,
    }
    assert isinstance(got["vas_abs_mm"], float)
    assert parameters.check(parameters.defaults()) == parameters.defaults()


@pytest.mark.parametrize(
    "args, words",
    [
        (["visit_month", "twelve"], ["visit_month", "'twelve'", "1, 3, 6, 12, 24"]),
        (["visit_month", "7"], ["visit_month", "7", "1, 3, 6, 12, 24"]),
        (["vas_rel", "20"], ["vas_rel", "20", "(0, 1]"]),
        (["population", "pp"], ["population", "'pp'", "'evaluable', 'nri', 'treated'"]),
        (["nonsense", "1"], ["nonsense", "valid names", "visit_month", "min_cell"]),
        (["out_dir", "/tmp"], ["out_dir", "--out"]),
    ],
)
def test_run_rejects_a_bad_parameter_before_anything(args, words, tmp_path, capsys, monkeypatch):
    """Exit 2 before data validation or any kernel: nothing created under --out."""

    def no_load(*a, **k):
        raise AssertionError("data read before the parameters were checked")

    monkeypatch.setattr(io, "load_dataset", no_load)
    out = tmp_path / "out"
    assert cli.main(["run", "--out", str(out), "-p", *args]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert not out.exists()


def test_run_rejects_a_parameter_no_selected_notebook_uses(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["run", "--out", str(out), "--only", "02_primary_endpoint", "-p", "min_cell", "5"]) == 2
    assert "min_cell" in capsys.readouterr().err and not out.exists()


def test_run_bad_parameter_from_the_command_line(tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != config.OUT_ENV}
    proc = subprocess.run(
        [EXE, "run", "--out", str(out), "-p", "vas_rel", "20"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2 and "(0, 1]" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_run_help_lists_parameters_with_defaults_and_allowed_values():
    text = cli.build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for p in parameters.SPEC.values():
        if p.name not in parameters.PATHS:
            assert p.name in text and p.allowed() in text
    assert "visit_month (default 12; one of 1, 3, 6, 12, 24)" in text
    assert "vas_rel (default 0.2; a number in (0, 1])" in text
    # free text is called text, and an empty default is visible
    assert "n_per_arm_grid (default '50,100,200,400,800,1600'; text)" in text
    assert "scheduler_address (default ''; text)" in text


def test_session_start_checks_parameters_before_reading_data():
    with pytest.raises(ValueError, match=r"vas_rel = 20 .*\(0, 1\]"):
        session.start("02_primary_endpoint", data_dir="/nonexistent", vas_rel=20)
    with pytest.raises(ValueError, match="unknown parameter.*seed"):
        session.start("02_primary_endpoint", seed=1)


# --------------------------------------------------------------------------- flow


def test_run_derives_with_the_runs_parameters(tmp_path, small_dataset_dir):
    out = tmp_path / "out"
    code = runner.run(data=small_dataset_dir, out=out, params={"visit_month": 6, "odi_rule": "absolute"}, derive_only=True)
    assert code == 0
    got = pd.read_parquet(out / "derived" / "adsl.parquet")
    tables = io.load_dataset(small_dataset_dir).tables
    want = derive.derive_all(tables, 6, odi_rule="absolute")["adsl"]
    default = derive.derive_all(tables)["adsl"]

    def flags(d):
        return d["RESPFL"].fillna("NA").tolist()

    assert flags(got) == flags(want) and flags(got) != flags(default)
    assert (got["EVALVIS"] == 6).all()


def test_absolute_rule_run_writes_responder_flags_of_the_absolute_rule(tmp_path, small_dataset_dir):
    """-p odi_rule absolute: the written ADEFF's ODI criterion is the absolute one (>= 20 points),
    recomputed here from the ODI values the same file holds, and RESP follows from the criteria."""
    out = tmp_path / "out"
    assert runner.run(data=small_dataset_dir, out=out, params={"odi_rule": "absolute"}, derive_only=True) == 0
    for eff in (pd.read_parquet(out / "derived" / "adeff.parquet"), pd.read_csv(out / "derived" / "adeff.csv")):
        resp = eff[eff["PARAMCD"] == "RESP"].set_index(["USUBJID", "AVISITN"])
        odi = eff[eff["PARAMCD"] == "ODI"].set_index(["USUBJID", "AVISITN"]).reindex(resp.index)
        assert (resp["CRIT2"] == "ODI improved by >= 20 points").all()
        improvement = odi["BASE"] - odi["AVAL"]
        known = improvement.notna()
        expected = np.where((improvement >= 20 - 1e-9) & (improvement > 0), "Y", "N")
        assert (resp.loc[known, "CRIT2FL"].to_numpy() == expected[known.to_numpy()]).all()
        assert resp.loc[~known, "CRIT2FL"].isna().all()
        either = (resp["CRIT1FL"] == "Y") | (resp["CRIT2FL"] == "Y")
        both_no = (resp["CRIT1FL"] == "N") & (resp["CRIT2FL"] == "N")
        assert (resp.loc[either, "AVAL"] == 1).all() and (resp.loc[both_no, "AVAL"] == 0).all()
        assert resp.loc[~either & ~both_no, "AVAL"].isna().all()
        relative = derive.adeff(io.load_dataset(small_dataset_dir).tables)
        assert (
            not relative[relative["PARAMCD"] == "RESP"]["CRIT2FL"]
            .fillna("")
            .equals(eff[eff["PARAMCD"] == "RESP"]["CRIT2FL"].fillna("").reset_index(drop=True))
        )


def test_setting_sentence_follows_the_parameters():
    text = parameters.setting({"visit_month": 6, "odi_rule": "absolute", "population": "nri", "vas_rel": 0.25})
    assert "month 6" in text and "month 12" not in text
    assert ">= 20 points (absolute rule)" in text and ">= 25 % of baseline" in text
    assert "not evaluable counted as non-responders" in text and "of evaluable" not in text
    assert "Changed from the defaults" in text
    default = parameters.setting({k: parameters.SPEC[k].default for k in ("visit_month", *parameters.RULE)})
    assert "month 12" in default and "(relative rule)" in default and "Changed" not in default


def test_report_headline_labels_follow_the_parameters():
    rows = pd.DataFrame(
        [
            {
                "analysis_id": "primary.responders",
                "group": "BM-MSC",
                "visit_month": 6,
                "estimate": 0.5,
                "ci_low": 0.4,
                "ci_high": 0.6,
                "p_value": None,
                "n": 50,
                "method": "x",
            },
            {
                "analysis_id": "secondary.mmrm.vas_pain",
                "group": "BM-MSC vs Sham",
                "visit_month": 12,
                "estimate": -1.0,
                "ci_low": -3.0,
                "ci_high": 1.0,
                "p_value": 0.4,
                "n": 100,
                "method": "x",
            },
            {
                "analysis_id": "secondary.mmrm.vas_pain",
                "group": "BM-MSC vs Sham",
                "visit_month": 6,
                "estimate": -2.0,
                "ci_low": -4.0,
                "ci_high": 0.0,
                "p_value": 0.05,
                "n": 100,
                "method": "x",
            },
        ]
    )
    head = report.headline(rows, {"visit_month": 6, "population": "nri"})
    assert head["result"].tolist() == [
        "Responders at month 6 (all randomised, NRI)",
        "VAS change at month 6, BM-MSC minus sham (MMRM, mm)",
    ]
    assert head["visit"].tolist() == ["6", "6"]
    assert report.headline(rows)["result"].tolist() == [
        "Responders at month 6 (among evaluable)",
        "VAS change at month 12, BM-MSC minus sham (MMRM, mm)",
    ]


def _texts(nb) -> list:
    """Markdown and every text output of an executed notebook."""
    out = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            out.append(cell.source)
        for o in cell.get("outputs", []):
            out.append(o.get("text", ""))
            out += [v for k, v in o.get("data", {}).items() if k.startswith("text/") and isinstance(v, str)]
    return out


def test_a_run_at_month_6_with_the_absolute_rule_says_so_everywhere(tmp_path, small_dataset_dir):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != config.OUT_ENV}
    proc = subprocess.run(
        [
            EXE,
            "run",
            "--data",
            str(small_dataset_dir),
            "--out",
            str(out),
            "--only",
            "02_primary_endpoint",
            "-p",
            "visit_month",
            "6",
            "-p",
            "odi_rule",
            "absolute",
            "-p",
            "population",
            "nri",
            "-p",
            "n_imputations",
            "3",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert subprocess.run([EXE, "report", "--out", str(out)], capture_output=True, env=env).returncode == 0
    nb = nbformat.read(out / "notebooks" / "02_primary_endpoint.ipynb", as_version=4)
    texts = _texts(nb) + [(out / "report" / "index.html").read_text()]
    wrong = re.compile(r"month[ -]12|relative rule|of evaluable|among evaluable", re.I)
    claims = [m.group(0) for t in texts for m in wrong.finditer(t)]
    assert not claims, claims
    joined = "\n".join(texts)
    assert "Primary visit: month 6" in joined and "(absolute rule)" in joined
    assert "Responders at month 6 (all randomised, NRI)" in joined


# --------------------------------------------------------------------------- exploring never overwrites


@pytest.fixture
def no_out_env(monkeypatch, tmp_path):
    monkeypatch.delenv(config.OUT_ENV, raising=False)
    monkeypatch.setattr(config, "RUNS_DIR", tmp_path / "runs")
    return tmp_path / "runs"


def test_session_default_writes_into_the_repository(no_out_env):
    nb = session.start("01_cohort", visit_month=12, table1_pvalues=False)
    assert nb.root == config.ROOT.resolve() and nb.derived_dir == config.DERIVED_DIR and not nb.redirected_to
    assert nb.is_default_data and nb.synthetic and nb.banner == session.SYNTHETIC_BANNER


def test_session_with_changed_parameters_goes_under_runs(no_out_env):
    nb = session.start("02_primary_endpoint", visit_month=6, odi_rule="absolute")
    assert nb.root == no_out_env.resolve() / "lab-visit_month-6_odi_rule-absolute"
    assert nb.derived_dir == nb.root / "derived" and nb.figures_dir == nb.root / "figures"
    assert nb.redirected_to == "runs/lab-visit_month-6_odi_rule-absolute"
    protected = tree_hash(config.DERIVED_DIR, config.FIGURES_DIR)
    nb.record(
        results.rows(pd.DataFrame({"group": ["BM-MSC"], "estimate": [0.5], "n": [10]}), "primary.responders", visit_month=6)
    )
    listing = nb.finish()
    assert (nb.derived_dir / "results.csv").is_file()
    assert "derived/results.csv" in listing.frame["File"].tolist()
    assert tree_hash(config.DERIVED_DIR, config.FIGURES_DIR) == protected


def test_session_on_other_data_goes_under_runs(no_out_env, small_dataset_dir):
    nb = session.start("01_cohort", data_dir=small_dataset_dir)
    assert nb.root == no_out_env.resolve() / f"lab-data-{small_dataset_dir.name}"
    assert not nb.is_default_data and not nb.synthetic and nb.banner == ""  # no MANIFEST.json


def test_notebook_explored_without_out_dir_writes_under_runs(tmp_path):
    """As in JupyterLab: plain papermill, no out_dir, no RESPINE_NB_OUT, a changed parameter; in a clone."""
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(config.ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k != config.OUT_ENV}
    env["RESPINE_NB_ROOT"] = str(clone)
    code = (
        "import papermill as pm\n"
        f"pm.execute_notebook({str(clone / 'notebooks' / '01_cohort.ipynb')!r}, {str(tmp_path / 'x.ipynb')!r}, "
        "parameters={'visit_month': 6}, kernel_name='python3', progress_bar=False)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    status = subprocess.run(
        ["git", "-C", str(clone), "status", "--porcelain", "--untracked-files=all"], capture_output=True, text=True
    ).stdout
    assert status == "", f"the exploration changed committed files:\n{status}"
    lab = clone / "runs" / "lab-visit_month-6"
    assert (lab / "derived" / "results.csv").is_file() and (lab / "figures" / "01_cohort-consort.png").is_file()
    rows = results.read(lab / "derived" / "results.csv")
    assert set(rows.loc[rows["analysis_id"] == "cohort.evaluable", "visit_month"]) == {6}
    last = "\n".join(_texts(nbformat.read(tmp_path / "x.ipynb", as_version=4)))
    assert "`runs/lab-visit_month-6/` (relative to the repository)" in last
    assert str(tmp_path) not in last  # no absolute path in the outputs


# --------------------------------------------------------------------------- generate and the banner


@pytest.mark.parametrize(
    "args",
    [["--seed", "7"], ["--n-msc", "20"], ["--p-sham", "0.5"], ["--free"], ["--seed", "7", "--out", str(config.SYNTHETIC_DIR)]],
)
def test_generate_refuses_to_overwrite_the_committed_cohort_with_other_settings(args, capsys):
    before = tree_hash(config.SYNTHETIC_DIR)
    assert cli.main(["generate", *args]) == 2
    err = capsys.readouterr().err
    assert "committed cohort" in err and "--out" in err
    assert tree_hash(config.SYNTHETIC_DIR) == before


def test_banner_only_for_files_matching_their_manifest(dataset_copy, no_out_env):
    nb = session.start("01_cohort", data_dir=dataset_copy)
    assert nb.synthetic and nb.banner == session.SYNTHETIC_BANNER
    assert "calibrated to the published aggregates" in nb.header().data
    outcomes = dataset_copy / "outcomes.csv"
    outcomes.write_bytes(outcomes.read_bytes() + b"\n")  # the same values, other bytes: an edited copy
    nb = session.start("01_cohort", data_dir=dataset_copy)
    assert not nb.synthetic and nb.banner == session.MANIFEST_MISMATCH
    header = nb.header().data
    assert "does not match" in header and "Synthetic data." not in header


def test_banner_names_the_settings_of_a_non_default_cohort(tmp_path, no_out_env):
    data = tmp_path / "seed3"
    assert cli.main(["generate", "--seed", "3", "--n-msc", "25", "--n-sham", "25", "--out", str(data)]) == 0
    nb = session.start("01_cohort", data_dir=data)
    assert nb.synthetic and "calibrated" not in nb.banner
    assert "with seed 3 and settings" in nb.banner and "n_msc = 25" in nb.banner
    manifest = json.loads((data / "MANIFEST.json").read_text())
    assert not session.is_default_generator(manifest)
    assert session.is_default_generator(io.read_manifest(config.SYNTHETIC_DIR))
