"""The kernel factory (respine_nb.kernels): kernels forked from one process that has imported the
analysis stack give the notebook exactly what an ordinary kernel gives; it steps aside (ordinary
launch) whenever it cannot fork, stops at once when the run is abandoned, and leaves no process
behind."""

from __future__ import annotations

import json
import os
import re
import sys
import time

import nbformat
import papermill as pm
import pytest

from respine_nb import kernels

# What a notebook shows: text, Markdown, a table, a warning on stderr, an inline figure, and an error
# caught and printed. (The factory is only a way of starting the same kernel.)
CELLS = [
    "import warnings\nimport pandas as pd\nfrom IPython.display import Markdown, display",
    "print('two', 1 + 1)\ndisplay(Markdown('**month 12**'))\npd.DataFrame({'arm': ['BM-MSC', 'Sham'], 'n': [58, 56]})",
    "warnings.warn('a warning the notebook would show', UserWarning)",
    "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(2, 1.5))\nax.plot([0, 1], [1, 0])\nax.set_title('VAS')",
    "import os, sys\nprint(os.getcwd() == os.environ['EXPECTED_CWD'], sys.argv[0].endswith('ipykernel_launcher.py') or sys.argv[0])",
]


def _notebook(path, extra=()):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (*CELLS, *extra)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _execute(tmp_path, name, factory, extra=()):
    src = _notebook(tmp_path / f"{name}-in.ipynb", extra)
    sockets = tmp_path / f"{name}-sockets"
    sockets.mkdir()
    os.environ["EXPECTED_CWD"] = str(tmp_path)
    try:
        return pm.execute_notebook(
            str(src),
            str(tmp_path / f"{name}.ipynb"),
            kernel_name="python3",
            progress_bar=False,
            cwd=str(tmp_path),
            kernel_manager_class=kernels.ipc_kernel_manager(str(sockets), None, factory, set()),
        )
    finally:
        os.environ.pop("EXPECTED_CWD", None)


def _outputs(nb):
    """The outputs of the cells of CELLS, without the kernel's pid (in the folder of a warning's code)."""
    return [
        re.sub(r"ipykernel_\d+", "ipykernel_PID", json.dumps(cell.outputs, sort_keys=True)) for cell in nb.cells[: len(CELLS)]
    ]


@pytest.fixture(scope="module")
def factory():
    f = kernels.KernelFactory()
    yield f
    f.close()


def test_forked_kernel_shows_what_an_ordinary_kernel_shows(factory, tmp_path):
    probe = ("import os, sys\nprint(os.getppid(), 'scipy.stats' in sys.modules, 'respine_nb.stats.missing' in sys.modules)",)
    forked = _execute(tmp_path, "forked", factory, probe)
    ordinary = _execute(tmp_path, "ordinary", None, probe)
    assert _outputs(forked) == _outputs(ordinary)
    # every kind of output is there, the figure inline as in any kernel
    kinds = [o.get("output_type") + ":" + ",".join(sorted(o.get("data", {}))) for c in forked.cells for o in c.outputs]
    assert "display_data:image/png,text/plain" in kinds and "display_data:text/markdown,text/plain" in kinds
    assert any(o.get("name") == "stderr" and "a warning the notebook would show" in o["text"] for o in forked.cells[2].outputs)
    # the forked kernel is the factory's child, with the stack already imported; the ordinary one, ours
    assert forked.cells[-1].outputs[0]["text"].split() == [str(factory.pid), "True", "True"]
    assert ordinary.cells[-1].outputs[0]["text"].split()[0] == str(os.getpid())


def test_forked_kernel_finds_the_runs_cache_loaded(factory, tmp_path, small_dataset_dir):
    from respine_nb import derive, io, parameters, session

    ds = io.load_dataset(small_dataset_dir)
    rule = parameters.rule({})
    cache = session.write_run_cache(tmp_path / "cache", ds, derive.derive_all(ds.tables, 12, **rule), 12, rule)
    sockets = tmp_path / "sockets"
    sockets.mkdir()
    src = tmp_path / "probe.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from respine_nb import session\nprint(list(session._INHERITED))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src)
    out = pm.execute_notebook(
        str(src),
        str(tmp_path / "probe-out.ipynb"),
        kernel_name="python3",
        progress_bar=False,
        kernel_manager_class=kernels.ipc_kernel_manager(str(sockets), {session.RUN_CACHE_ENV: str(cache)}, factory, set()),
    )
    assert out.cells[0].outputs[0]["text"].strip() == repr([str(cache)])


def test_factory_steps_aside_when_it_cannot_fork(tmp_path):
    # a stack that fails to import (here: a broken module shadowing lifelines) -> ordinary kernels
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "lifelines.py").write_text("raise ImportError('broken on purpose')\n")
    env = {
        **os.environ,
        **kernels.SINGLE_THREAD_ENV,
        "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]),
    }
    broken = kernels.KernelFactory(env)
    try:
        nb = _execute(tmp_path, "fallback", broken, ("import os\nprint(os.getppid())",))
        assert nb.cells[-1].outputs[0]["text"].split() == [str(os.getpid())]  # launched the usual way
        assert "broken on purpose" in broken._failed
    finally:
        broken.close()


def test_other_kernel_commands_are_launched_the_usual_way(factory, tmp_path):
    env = dict(os.environ)
    assert (
        factory.spawn(["/usr/bin/env", "python3", "-m", "ipykernel_launcher", "-f", "x.json"], env, str(tmp_path), "log") is None
    )
    assert factory.spawn([sys.executable, "-m", "other_launcher", "-f", "x.json"], env, str(tmp_path), "log") is None
    assert factory._failed == ""  # not a failure: the factory still forks the project's kernels


def _wait_gone(kernel, seconds=15.0):
    deadline = time.monotonic() + seconds
    while kernel.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return kernel.poll() is not None


def test_forked_kernels_stop_when_killed_or_when_the_factory_is_gone(tmp_path):
    f = kernels.KernelFactory()
    try:
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f"]
        env = dict(os.environ)
        first = f.spawn([*argv, str(tmp_path / "k1.json")], env, str(tmp_path), str(tmp_path / "k1.log"))
        second = f.spawn([*argv, str(tmp_path / "k2.json")], env, str(tmp_path), str(tmp_path / "k2.log"))
        assert first is not None and second is not None and first.poll() is None and second.poll() is None
        first.kill()
        assert _wait_gone(first)
    finally:
        f.close()
    assert f._proc.returncode is not None
    assert _wait_gone(second)  # its parent poller saw the factory go
    f.stop()
    with pytest.raises(RuntimeError, match="run stopped"):
        f.spawn([*argv, str(tmp_path / "k3.json")], env, str(tmp_path), str(tmp_path / "k3.log"))


def test_factory_can_be_switched_off(monkeypatch):
    monkeypatch.setenv(kernels.FACTORY_ENV, "0")
    assert not kernels.factory_enabled()
    monkeypatch.setenv(kernels.FACTORY_ENV, "1")
    assert kernels.factory_enabled()
