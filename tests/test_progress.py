"""What a run says while it works and when it ends; the help texts; validation and derivation
once per run (the kernels' reuse of the runner's stamped cache)."""

from __future__ import annotations

import io as _io
import re

import pandas as pd
import pytest

from respine_nb import cli, derive, parameters, runner, session

NAMES = ["01_cohort", "02_primary_endpoint"]


def test_plain_lines_one_per_state_change():
    stream = _io.StringIO()  # not a terminal: CI logs
    p = runner.Progress(NAMES, stream=stream)
    assert not p.live
    assert stream.getvalue() == ""  # nothing until a state changes
    p.set("01_cohort", "running")
    p.set("02_primary_endpoint", "running")
    p.set("01_cohort", "done", 3.25)
    p.set("02_primary_endpoint", "FAILED", 4.0, "cell [3] `x`: ValueError: boom")
    p.close()
    lines = stream.getvalue().splitlines()
    assert lines == [
        "  01_cohort            running",
        "  02_primary_endpoint  running",
        "  01_cohort            done        3.2 s",
        "  02_primary_endpoint  FAILED      4.0 s: cell [3] `x`: ValueError: boom",
    ]
    assert not re.search(r"[\r\x1b]", stream.getvalue())  # no control characters in a log


def test_held_display_shows_nothing_until_the_data_are_valid():
    """The runner's kernels start while it validates: their states are shown only after."""
    stream = _io.StringIO()
    p = runner.Progress(NAMES, stream=stream, hold=True)
    p.set("01_cohort", "running")
    assert stream.getvalue() == ""  # an invalid dataset would show its report alone
    p.show()
    p.set("01_cohort", "done", 2.0)
    p.close()
    assert stream.getvalue().splitlines() == ["  01_cohort            running", "  01_cohort            done        2.0 s"]


def test_state_is_checked():
    p = runner.Progress(NAMES, stream=_io.StringIO())
    with pytest.raises(ValueError, match="state must be one of"):
        p.set("01_cohort", "finished")


def test_live_display_shows_every_notebook_with_its_state_and_time():
    stream = _io.StringIO()
    p = runner.Progress(NAMES, stream=stream, live=True, interval=0.01)
    p.set("01_cohort", "running")
    p.set("01_cohort", "done", 1.5)
    p.close()
    text = stream.getvalue()
    assert "02_primary_endpoint  waiting" in text
    assert "01_cohort            running" in text
    assert "01_cohort            done        1.5 s" in text


def test_final_message_of_the_default_run_names_every_output():
    text = runner.where_to_look()
    assert text.startswith("Where to look:")
    for expected in ("notebooks/", "figures/", "data/derived/results.csv", "data/derived/ard.csv", "make report"):
        assert expected in text, expected


def test_final_message_of_a_run_elsewhere_names_its_folder(tmp_path):
    text = runner.where_to_look(tmp_path / "out")
    out = (tmp_path / "out").resolve()
    for expected in (
        f"{out}/notebooks/",
        f"{out}/figures/",
        f"{out}/derived/results.csv",
        f"{out}/derived/ard.csv",
        f"respine-nb report --out {out}",
    ):
        assert expected in text, expected
    assert "make report  (" not in text


def _helps(parser):
    import argparse

    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[name] = sub
    return out


def test_help_has_no_backticks_and_every_option_has_help():
    parser = cli.build_parser()
    assert "`" not in parser.format_help()
    for name, sub in _helps(parser).items():
        assert "`" not in sub.format_help(), name
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_generate_options_state_their_defaults():
    sub = _helps(cli.build_parser())["generate"]
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert "(default:" in action.help, action.option_strings


def test_every_option_of_every_command_states_its_default():
    parser = cli.build_parser()
    for name, sub in {"respine-nb": parser, **_helps(parser)}.items():
        for action in sub._actions:
            if action.option_strings and action.dest not in ("help", "version"):
                assert action.help and "default" in action.help, f"{name} {action.option_strings}"


@pytest.mark.parametrize("path", runner.notebooks(), ids=lambda p: p.stem)
def test_list_parameters_shows_every_parameter_of_the_cell(path):
    text = runner.list_parameters(path.stem)
    cell = runner.notebook_parameters(path)
    assert cell, "a notebook without parameters"
    for name, record in cell.items():
        spec = parameters.SPEC[name]
        line = next(ln for ln in text.splitlines() if ln.split()[:1] == [name])
        assert spec.kind in line and f"default {record['default']}" in line and spec.allowed() in line, line
        assert spec.help in text


def test_list_parameters_from_the_command_line(capsys):
    assert cli.main(["run", "--list-parameters", "02_primary_endpoint"]) == 0
    out = capsys.readouterr().out
    assert "n_imputations  int    default 50; an integer >= 2" in out
    assert "multiple imputation: number of imputed datasets" in out
    assert cli.main(["run", "--list-parameters", "99_nothing"]) == 2
    assert "unknown notebook" in capsys.readouterr().err


def test_longest_notebook_starts_first(tmp_path):
    paths = [tmp_path / f"{n}.ipynb" for n in ("01_a", "02_b", "03_c", "04_d")]
    timings = {"01_a": 3.0, "02_b": 9.5, "03_c": 1.0}
    assert [p.stem for p in runner.schedule(paths, timings)] == ["04_d", "02_b", "01_a", "03_c"]  # unknown first
    assert [p.stem for p in runner.schedule(paths, {})] == ["01_a", "02_b", "03_c", "04_d"]
    record = tmp_path / "timings.json"
    runner.write_timings([runner.Outcome("02_b", True, 9.5), runner.Outcome("01_a", False, 1.0)], record)
    runner.write_timings([runner.Outcome("03_c", True, 1.0)], record)
    assert runner.read_timings(record) == {"02_b": 9.5, "03_c": 1.0}  # failed runs are not remembered
    record.write_text("not json")
    assert runner.read_timings(record) == {}


def _write_cache(tmp_path, folder, visit=12, rule=None):
    from respine_nb import io

    ds = io.load_dataset(folder)
    rule = rule or parameters.rule({})
    return ds, session.write_run_cache(tmp_path / "cache", ds, derive.derive_all(ds.tables, visit, **rule), visit, rule)


def test_session_reuses_the_runs_validation_and_derivation(small_dataset_dir, tmp_path, monkeypatch):
    ds, cache = _write_cache(tmp_path, small_dataset_dir)
    monkeypatch.setenv(session.RUN_CACHE_ENV, str(cache))
    monkeypatch.setattr(session.io, "load_dataset", lambda *a, **k: pytest.fail("validated again"))
    nb = session.start("01_cohort", data_dir=small_dataset_dir, out_dir=tmp_path / "out")
    assert nb._cache is not None
    assert nb.data.sha256 == ds.sha256
    got = session.derived(nb)
    expected = derive.derive_all(ds.tables, 12, **parameters.rule({}))
    for name in expected:
        pd.testing.assert_frame_equal(got[name], expected[name])
    got["adsl"].loc[:, "AGE"] = -1  # the notebook gets its own copy
    assert (session.derived(nb)["adsl"]["AGE"] != -1).all()
    for name in derive.DATASETS:  # nb.<dataset>: the run's datasets, derived once per notebook
        pd.testing.assert_frame_equal(getattr(nb, name), expected[name])
    assert nb.adsl is nb.datasets["adsl"] and nb.datasets is nb.datasets


def test_other_parameters_derive_again(small_dataset_dir, tmp_path, monkeypatch):
    ds, cache = _write_cache(tmp_path, small_dataset_dir)
    monkeypatch.setenv(session.RUN_CACHE_ENV, str(cache))
    nb = session.start("01_cohort", data_dir=small_dataset_dir, out_dir=tmp_path / "out", visit_month=6)
    expected = derive.derive_all(ds.tables, 6, **parameters.rule({}))
    pd.testing.assert_frame_equal(session.derived(nb)["adsl"], expected["adsl"])
    pd.testing.assert_frame_equal(
        session.derived(nb, visit_month=6, vas_rel=0.3)["adsl"],
        derive.derive_all(ds.tables, 6, **{**parameters.rule({}), "vas_rel": 0.3})["adsl"],
    )


def test_changed_input_files_are_validated_again(dataset_copy, tmp_path, monkeypatch):
    _, cache = _write_cache(tmp_path, dataset_copy)
    monkeypatch.setenv(session.RUN_CACHE_ENV, str(cache))
    with open(dataset_copy / "subjects.csv", "a", encoding="utf-8") as fh:
        fh.write("\n")  # same tables, other bytes: the stamp no longer matches
    nb = session.start("01_cohort", data_dir=dataset_copy, out_dir=tmp_path / "out")
    assert nb._cache is None


def test_other_data_or_no_cache_validate_again(small_dataset_dir, dataset_copy, tmp_path, monkeypatch):
    _, cache = _write_cache(tmp_path, small_dataset_dir)
    monkeypatch.setenv(session.RUN_CACHE_ENV, str(cache))
    assert session.start("01_cohort", data_dir=dataset_copy, out_dir=tmp_path / "out")._cache is None
    monkeypatch.delenv(session.RUN_CACHE_ENV)
    assert session.start("01_cohort", data_dir=small_dataset_dir, out_dir=tmp_path / "out")._cache is None


def test_session_waits_for_the_runs_validation(small_dataset_dir, tmp_path, monkeypatch):
    """The runner starts its kernels before it has validated: start() waits for the stamp."""
    import threading

    from respine_nb import io

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv(session.RUN_CACHE_ENV, str(cache))
    ds = io.load_dataset(small_dataset_dir)
    rule = parameters.rule({})
    late = threading.Timer(0.5, session.write_run_cache, (cache, ds, derive.derive_all(ds.tables, 12, **rule), 12, rule))
    late.start()
    monkeypatch.setattr(session.io, "load_dataset", lambda *a, **k: pytest.fail("validated again"))
    nb = session.start("01_cohort", data_dir=small_dataset_dir, out_dir=tmp_path / "out")
    late.join()
    assert nb._cache is not None and nb.data.sha256 == ds.sha256


def test_session_takes_the_cache_the_kernel_factory_loaded(small_dataset_dir, tmp_path, monkeypatch):
    """A kernel forked by the kernel factory finds the run's cache in memory (loaded once, before
    the fork): it reads no file, and checks the stamp as it would check one it read."""
    ds, cache = _write_cache(tmp_path, small_dataset_dir)
    (tmp_path / "b").mkdir()
    _, complete = _write_cache(tmp_path / "b", small_dataset_dir)
    monkeypatch.setattr(session, "_INHERITED", {})
    assert session.inherit_run_cache(cache) and not session.inherit_run_cache(cache)  # loaded once
    (cache / session._PICKLE).unlink()  # nothing to read any more
    monkeypatch.setenv(session.RUN_CACHE_ENV, str(cache))
    monkeypatch.setattr(session.io, "load_dataset", lambda *a, **k: pytest.fail("validated again"))
    nb = session.start("01_cohort", data_dir=small_dataset_dir, out_dir=tmp_path / "out")
    assert nb._cache is not None and nb.data.sha256 == ds.sha256 and session._INHERITED == {}  # handed over
    # the stamp still decides: for other data, what was inherited is not used (and not read: the
    # cache is complete again, so that only the stamp can refuse it)
    monkeypatch.setenv(session.RUN_CACHE_ENV, str(complete))
    assert session.inherit_run_cache(complete) and session._INHERITED[str(complete)] is not None
    assert session._run_cache(small_dataset_dir) is not None  # the same data: taken
    assert session.inherit_run_cache(complete)
    assert session._run_cache(tmp_path) is None and session._INHERITED == {}  # other data: refused


def test_session_stops_when_the_run_gave_up(small_dataset_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(session.RUN_CACHE_ENV, str(tmp_path / "removed-cache"))
    with pytest.raises(RuntimeError, match="stopped"):
        session.start("01_cohort", data_dir=small_dataset_dir, out_dir=tmp_path / "out")


def test_inline_figure_is_the_saved_png_reduced(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from respine_nb import plots

    fig, ax = plt.subplots(figsize=(2, 1), dpi=100)
    ax.plot([0, 1], [0, 1])
    png, _ = plots.save(fig, "x", tmp_path)
    assert plt.fignum_exists(fig.number)  # outside a kernel: nothing shown, the figure stays open
    small = plots.inline_png(png.read_bytes(), 3)
    assert small == plots.inline_png(png.read_bytes(), 3)  # deterministic
    with Image.open(png) as big, Image.open(_io.BytesIO(small)) as im:
        assert im.size == (-(-big.size[0] // 3), -(-big.size[1] // 3))
    plt.close(fig)
