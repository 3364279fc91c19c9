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

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel factory runs on Linux only")

# What a notebook shows: text, Markdown, a table, a warning on stderr, an inline figure, and an error
# caught and printed. (The factory is only a way of starting the same kernel.)
CELLS = [
    "import warnings\nimport pandas as pd\nfrom IPython.display import Markdown, display",
    "print('two', 1 + 1)\ndisplay(Markdown('**month 12**'))\npd.DataFrame({'arm': ['BM-MSC', 'Sham'], 'n': [58, 56]})",
    "warnings.warn('a warning the notebook would show', UserWarning)",
    "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(2, 1.5))\nax.plot([0, 1], [1, 0])\nax.set_title('VAS')",
    "import os, sys\nprint(os.getcwd(), sys.argv[0].endswith('ipykernel_launcher.py') or sys.argv[0], sys.path[0] == '')",
    # what the imports set, as the notebook sees it once it has imported the stack: pandas' options,
    # matplotlib's settings, the warnings filters, NumPy's printing, the loggers' levels. (Without
    # importing it, a forked kernel has, in addition, the warnings filters that SciPy and statsmodels
    # set for their own warning classes, which only they raise.)
    "import importlib\nfrom respine_nb import kernels, stats\n"
    "for name in (*kernels.PRELOAD, *(f'respine_nb.stats.{m}' for m in stats.MODULE_NAMES)):\n"
    "    importlib.import_module(name)\n"
    "import logging, warnings\nimport matplotlib as mpl\nimport numpy as np\nimport pandas as pd\n"
    "options = {k: repr(pd.get_option(k)) for k in sorted(pd._config.config._registered_options)"
    " if k not in pd._config.config._deprecated_options}\n"
    "print(options)\nprint(sorted((k, repr(v)) for k, v in mpl.rcParams.items() if k != 'backend'))\n"
    "print(sorted(map(repr, warnings.filters)))\nprint(np.get_printoptions(), np.geterr())\n"
    "print(logging.getLogger().level, logging.lastResort.level)",
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
    return pm.execute_notebook(
        str(src),
        str(tmp_path / f"{name}.ipynb"),
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
        kernel_manager_class=kernels.ipc_kernel_manager(str(sockets), kernels.SINGLE_THREAD_ENV, factory, set()),
    )


def _outputs(nb):
    """The outputs of the cells of CELLS, without the kernel's pid (in the folder of a warning's code)."""
    return [
        re.sub(r"ipykernel_\d+", "ipykernel_PID", json.dumps(cell.outputs, sort_keys=True)) for cell in nb.cells[: len(CELLS)]
    ]


@pytest.fixture
def factory():
    """A kernel factory started when the test runs: its environment must be the kernels' (pytest
    changes PYTEST_CURRENT_TEST between a fixture's setup and the test)."""
    made = []

    def make():
        made.append(kernels.KernelFactory())
        return made[-1]

    yield make
    for f in made:
        f.close()


def test_forked_kernel_shows_what_an_ordinary_kernel_shows(factory, tmp_path):
    factory = factory()
    probe = ("import os, sys\nprint(os.getppid(), 'scipy.stats' in sys.modules, 'respine_nb.stats.missing' in sys.modules)",)
    forked = _execute(tmp_path, "forked", factory, probe)
    ordinary = _execute(tmp_path, "ordinary", None, probe)
    assert _outputs(forked) == _outputs(ordinary)
    # every kind of output is there, the figure inline as in any kernel
    kinds = [o.get("output_type") + ":" + ",".join(sorted(o.get("data", {}))) for c in forked.cells for o in c.outputs]
    assert "display_data:image/png,text/plain" in kinds and "display_data:text/markdown,text/plain" in kinds
    assert any(o.get("name") == "stderr" and "a warning the notebook would show" in o["text"] for o in forked.cells[2].outputs)
    assert forked.cells[4].outputs[0]["text"].split()[:2] == [str(tmp_path), "True"]  # sys.path: as the ordinary one
    assert "'display.max_columns': '20'" in forked.cells[5].outputs[0]["text"]  # as in a kernel, not 0 as in a terminal
    # the forked kernel is the factory's child, with the stack already imported; the ordinary one, ours
    assert forked.cells[-1].outputs[0]["text"].split() == [str(factory.pid), "True", "True"]
    assert ordinary.cells[-1].outputs[0]["text"].split()[0] == str(os.getpid())


def test_forked_kernel_finds_the_runs_cache_loaded(factory, tmp_path, small_dataset_dir):
    factory = factory()
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
        kernel_manager_class=kernels.ipc_kernel_manager(
            str(sockets), {session.RUN_CACHE_ENV: str(cache), **kernels.SINGLE_THREAD_ENV}, factory, set()
        ),
    )
    assert factory.failed == "", factory.failed
    assert out.cells[0].outputs[0]["text"].strip() == repr([str(cache)])


def test_factory_steps_aside_when_it_cannot_fork(tmp_path):
    # a stack that fails to import (here: a broken module shadowing lifelines) -> ordinary kernels
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "lifelines.py").write_text("raise ImportError('broken on purpose')\n")
    path = [str(shadow), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, **kernels.SINGLE_THREAD_ENV, "PYTHONPATH": os.pathsep.join(path)}
    broken = kernels.KernelFactory(env)
    try:
        nb = _execute(tmp_path, "fallback", broken, ("import os\nprint(os.getppid())",))
        assert nb.cells[-1].outputs[0]["text"].split() == [str(os.getpid())]  # launched the usual way
        assert "broken on purpose" in broken.failed
    finally:
        broken.close()


def test_other_kernel_commands_are_launched_the_usual_way(factory, tmp_path):
    factory = factory()
    env = dict(os.environ)
    base = os.path.realpath(sys.executable)  # the interpreter the virtual environment links to
    assert base != sys.executable and not kernels._same_python(base, env) and kernels._same_python(sys.executable, env)
    assert factory.spawn([base, "-m", "ipykernel_launcher", "-f", "x.json"], env, str(tmp_path), "log") is None
    assert factory.spawn([sys.executable, "-m", "other_launcher", "-f", "x.json"], env, str(tmp_path), "log") is None
    assert factory.failed == ""  # not a failure: the factory still forks the project's kernels


def test_a_kernel_with_another_environment_is_launched_the_usual_way(tmp_path):
    f = kernels.KernelFactory()
    try:
        env = {**os.environ, **kernels.SINGLE_THREAD_ENV, "PYTHONHASHSEED": "7"}  # seen at start-up: not forkable
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", str(tmp_path / "k.json")]
        assert f.spawn(argv, env, str(tmp_path), str(tmp_path / "k.log")) is None
        assert "environment differs" in f.failed and "PYTHONHASHSEED" in f.failed
    finally:
        f.close()


def test_a_forked_kernel_exits_as_python_does(factory, tmp_path):
    """At its end, a forked kernel runs the exit handlers: an unclosed file is flushed, a temporary
    folder removed (as when an ordinary kernel's Python exits)."""
    factory = factory()
    probe = (
        f"import tempfile\nf = open({str(tmp_path / 'unclosed.txt')!r}, 'w')\nf.write('written')\n"
        f"d = tempfile.TemporaryDirectory(dir={str(tmp_path)!r})\nprint(d.name)",
    )
    nb = _execute(tmp_path, "exit", factory, probe)
    folder = nb.cells[-1].outputs[0]["text"].strip()
    deadline = time.monotonic() + 10
    while os.path.exists(folder) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(folder)
    assert (tmp_path / "unclosed.txt").read_text() == "written"


def _wait_gone(kernel, seconds=15.0):
    deadline = time.monotonic() + seconds
    while kernel.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return kernel.poll() is not None


def test_forked_kernels_stop_when_killed_and_outlive_the_factory(tmp_path):
    f = kernels.KernelFactory()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f"]
    env = {**os.environ, **kernels.SINGLE_THREAD_ENV}
    try:
        first = f.spawn([*argv, str(tmp_path / "k1.json")], env, str(tmp_path), str(tmp_path / "k1.log"))
        second = f.spawn([*argv, str(tmp_path / "k2.json")], env, str(tmp_path), str(tmp_path / "k2.log"))
        assert first is not None and second is not None and first.poll() is None and second.poll() is None
        first.kill()
        assert _wait_gone(first)
    finally:
        f.close()
    assert f._proc.returncode is not None
    time.sleep(1.5)
    assert second.poll() is None  # a kernel depends on the runner (this process), not on the factory
    second.kill()
    assert _wait_gone(second)
    with pytest.raises(RuntimeError, match="run stopped"):  # a closed factory starts nothing
        f.spawn([*argv, str(tmp_path / "k3.json")], env, str(tmp_path), str(tmp_path / "k3.log"))


RUNNER = """
import os, sys
from respine_nb import kernels
f = kernels.KernelFactory()
env = {**os.environ, **kernels.SINGLE_THREAD_ENV}
k = f.spawn([sys.executable, "-m", "ipykernel_launcher", "-f", sys.argv[1] + "/k.json"], env, sys.argv[1], sys.argv[1] + "/k.log")
env["RESPINE_NB_RUN_CACHE"] = sys.argv[1] + "/never-written"
os.mkdir(env["RESPINE_NB_RUN_CACHE"])
print(k.pid, f.pid, flush=True)
f.spawn([sys.executable, "-m", "ipykernel_launcher", "-f", sys.argv[1] + "/k2.json"], env, sys.argv[1], sys.argv[1] + "/k2.log")
"""


def test_nothing_outlives_a_killed_runner(tmp_path):
    """A runner killed at once (SIGKILL) leaves no process: its kernels and the factory (here
    waiting for a cache that never comes) notice it is gone."""
    import signal
    import subprocess

    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    kernel, factory = (int(x) for x in runner.stdout.readline().split())
    assert kernels._process_start(kernel) is not None and kernels._process_start(factory) is not None
    time.sleep(0.5)  # the factory now waits for the cache
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    runner.stdout.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (kernels._process_start(kernel) or kernels._process_start(factory)):
        time.sleep(0.1)
    assert kernels._process_start(kernel) is None and kernels._process_start(factory) is None


def test_factory_can_be_switched_off(monkeypatch):
    monkeypatch.setenv(kernels.FACTORY_ENV, "0")
    assert not kernels.factory_enabled()
    monkeypatch.setenv(kernels.FACTORY_ENV, "1")
    assert kernels.factory_enabled() == sys.platform.startswith("linux")


def test_a_forked_kernels_log_is_its_own(factory, tmp_path):
    """What the kernel logs goes to its log file (read back when a kernel fails), as for an
    ordinary kernel: not to the factory's streams."""
    factory = factory()
    probe = ("from ipykernel.kernelapp import IPKernelApp\nIPKernelApp.instance().log.warning('logged by the kernel')",)
    _execute(tmp_path, "log", factory, probe)
    assert "logged by the kernel" in (tmp_path / "log-sockets" / "kernel.log").read_text()


class _Channel:
    """A channel that hands out the messages given, then times out (as an empty ZMQ channel)."""

    def __init__(self, messages):
        self.messages = list(messages)

    async def get_msg(self, timeout=None):
        from queue import Empty

        if not self.messages:
            raise Empty
        return self.messages.pop(0)


def _msg(parent, msg_type, state=None):
    return {
        "parent_header": {"msg_id": parent},
        "msg_type": msg_type,
        "content": {"protocol_version": "5.3", "execution_state": state},
    }


def _fake_client(answers, alive=True, stale=()):
    """A client whose kernel answers its n-th kernel_info request with ``answers[n]`` (the shell
    channel's messages, then IOPub's, as message types or "status:<state>"), after ``stale`` on IOPub."""

    def messages(parent, types):
        return [_msg(parent, *t.split(":")) for t in types]

    class Client(kernels._ready_client()):
        shell_channel = _Channel([])
        iopub_channel = _Channel(messages("startup", stale))
        sent = []

        def kernel_info(self):
            self.sent.append(f"info-{len(self.sent) + 1}")
            shell, iopub = answers[len(self.sent) - 1] if len(self.sent) <= len(answers) else ((), ())
            self.shell_channel.messages += messages(self.sent[-1], shell)
            self.iopub_channel.messages += messages(self.sent[-1], iopub)
            return self.sent[-1]

        async def is_alive(self):
            return alive

    return Client()


def test_ready_client_returns_at_the_requests_idle_status():
    """Ready once the reply and the request's "idle" status are read, the messages before it
    dropped; when the status was lost (IOPub still connecting), the request is sent again; a dead
    kernel, or no answer within the timeout, raises."""
    import asyncio

    reply, busy, idle = "kernel_info_reply", "status:busy", "status:idle"
    client = _fake_client([([reply], []), ([reply], [busy, idle, "stream"])], stale=["status:starting"])
    asyncio.run(client.wait_for_ready(timeout=10))
    assert client.sent == ["info-1", "info-2"]  # the first request's status was lost
    assert [m["msg_type"] for m in client.iopub_channel.messages] == ["stream"]  # read up to the idle status

    client = _fake_client([([reply], [busy, idle])])
    asyncio.run(client.wait_for_ready(timeout=10))
    assert client.sent == ["info-1"] and not client.iopub_channel.messages

    dead = _fake_client([], alive=False)
    with pytest.raises(RuntimeError, match="died"):
        asyncio.run(dead.wait_for_ready(timeout=10))
    silent = _fake_client([])
    with pytest.raises(RuntimeError, match="respond in 0.3 seconds"):
        asyncio.run(silent.wait_for_ready(timeout=0.3))


def test_runner_kernels_are_ready_with_iopub_read(factory, tmp_path):
    """A real kernel (forked, then ordinary): ready, with nothing left on IOPub from the
    kernel_info request, and it runs code."""
    import asyncio

    async def start(factory):
        km = kernels.ipc_kernel_manager(str(tmp_path), kernels.SINGLE_THREAD_ENV, factory, set())(kernel_name="python3")
        await km.start_kernel(cwd=str(tmp_path))
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            assert isinstance(kc, kernels._ready_client())
            assert not await kc.iopub_channel.msg_ready()
            reply = await kc.execute_interactive("x = 1 + 1", timeout=60)
            assert reply["content"]["status"] == "ok"
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)

    asyncio.run(start(factory()))
    asyncio.run(start(None))
