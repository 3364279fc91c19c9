"""Notebook kernels for the runner: local IPC sockets, and started from one process that has
already imported the analysis stack.

A notebook's kernel normally starts a new Python, imports ipykernel, then pandas, matplotlib,
SciPy, statsmodels... : about 2.5 s of CPU before its first analysis, paid by every notebook.
The runner instead starts one *kernel factory* (``python -m respine_nb.kernels``) as the run
begins, which imports that stack once (:data:`PRELOAD`) and then forks one child per notebook.
Each child sets its environment, working directory and standard streams as the kernel's launch
command would have, and runs the same ``ipykernel_launcher`` with the same arguments: the same
kernel, already past its imports (memory pages are shared until written).

Before the first fork the factory also sets the environment variables a kernel sets before its
first cell (which the imports see), draws one small figure to PNG and PDF in memory (fonts loaded,
fontTools' table code imported), and freezes the garbage collector's view of all it loaded (no
kernel's collector walks, and so copies, those pages again). When the kernel's environment names
the run's cache (validated and derived data, :mod:`respine_nb.session`), the factory waits for it
and loads it once: each kernel finds it in memory instead of reading it.

A fork is only safe where nothing else runs, so the factory forks only when it has a single
Python thread (pyarrow's allocator keeps one native thread, which handles forks itself), has not
chosen pyplot's backend (each kernel selects the inline backend itself, as a fresh one would),
and the kernel command is this interpreter's ``-m ipykernel_launcher -f FILE ...``; and only on
Linux.
Otherwise, or if the factory cannot start, the kernel is launched the usual way: the factory
only ever saves time. The notebooks' outputs are the same either way (CI re-executes every
stored notebook in ordinary kernels with nbval and compares).

The factory also refuses to fork (each kernel then starts the usual way) when the kernel's
environment gives another value than the factory's to a variable read when Python starts or a
library is imported (``PYTHON*``, ``LD_*``, locale, BLAS threads, matplotlib, Jupyter...: the
imports would have seen other values), and when an import showed a warning (an ordinary kernel
would show it in the notebook). Each kernel gets its own environment for everything else.

The factory reads one request per line on a pipe of its own (JSON: argv, env, cwd, log) and
answers one line on another (JSON: pid, or error); its standard streams go nowhere. The runner
kills it when the run ends, and it exits when the runner is gone. Each kernel watches the runner
(as an ordinary kernel does through ipykernel's parent poller) and stops when it is gone; at its
end it runs the exit handlers, as an ordinary Python does.

Forked or not, the runner's kernel clients count a kernel ready as soon as it has answered a
kernel_info request on the shell channel and on IOPub, instead of after 0.2 s of silence on IOPub
as jupyter_client's do (:func:`_ready_client`): 0.2 s less per notebook.
"""

from __future__ import annotations

import atexit
import builtins
import functools
import gc
import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

# What every notebook imports, or one of them does (importing a module a notebook would not have
# imported changes nothing it shows: checked with the stored notebooks, which CI re-executes in
# ordinary kernels).
PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",  # the kernel class, which each kernel imports as it starts (with debugpy)
    "IPython.display",
    "numpy",
    "pandas",
    "matplotlib.pyplot",
    "scipy.stats",
    "statsmodels.genmod.api",
    "statsmodels.formula.api",
    "pingouin",
    "seaborn",
    "lifelines",
    "tableone",
    "great_tables",
    "docx",
    "fontTools.subset",
    "respine_nb.session",
    "respine_nb.plots",
    "respine_nb.tables",
    "respine_nb.derive",
    "respine_nb.estimands",
    "respine_nb.mmrm",
    "respine_nb.results",
    "respine_nb.design",
    "respine_nb.stats",  # and each of its topic modules (imported on first use in a kernel)
)
# One BLAS/OpenMP thread per kernel: the runner already runs one kernel per core, and letting each
# kernel's NumPy spawn a thread per core oversubscribes the machine (measured: the 100x cohort run
# took 62 s for 02_primary_endpoint alongside another kernel, 15 s alone). Also with one kernel at a
# time: the matrices are small (a participant's visits), where threads cost more than they give.
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
FACTORY_ENV = "RESPINE_NB_KERNEL_FACTORY"  # "0": every kernel starts a new Python (to compare, or debug)
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"  # what ipykernel sets when MPLBACKEND is unset
_LAUNCHER = ("-m", "ipykernel_launcher", "-f")
# Environment variables read when Python starts or a library is imported (interpreter, loader,
# allocator, locale, BLAS threads, matplotlib, Jupyter and IPython paths, this package): a kernel
# whose value differs from the factory's is not forked. Others are read at run time, from the
# kernel's own environment. The run's cache folder, and the factory switch, differ harmlessly.
_STARTUP_ENV = ("PYTHON", "LD_", "MALLOC_", "MPL", "MATPLOTLIB", "OPENBLAS_", "OMP_", "MKL_", "LANG", "LC_", "TZ")
_STARTUP_ENV += ("JUPYTER", "IPYTHON", "RESPINE_NB_")
_PER_KERNEL_ENV = ("RESPINE_NB_RUN_CACHE", FACTORY_ENV)  # the first is session.RUN_CACHE_ENV (session imports pandas)
_FORK_SAFE_THREADS = ("jemalloc_bg_thd",)  # native threads that handle a fork themselves (pyarrow's allocator)


# ----------------------------------------------------------------------------------------------
# the factory process


def _reap(signum, frame) -> None:  # pragma: no cover - runs in the factory process
    """Collect the exit status of finished kernels (no zombies; their CPU time is counted)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _can_fork() -> str:
    """Why forking is unsafe here, or ""."""
    if threading.active_count() != 1:
        return f"{threading.active_count()} Python threads"
    others = sorted(name for name in _other_threads() if name not in _FORK_SAFE_THREADS)
    if others:
        return f"native threads running: {', '.join(others)}"
    pyplot = sys.modules.get("matplotlib.pyplot")
    if "matplotlib_inline.backend_inline" in sys.modules or getattr(pyplot, "_backend_mod", None) is not None:
        return "pyplot's backend is already chosen (each kernel must choose the inline backend itself)"
    return ""


def _other_threads() -> list:
    """The names of this process's threads other than the main one (Linux: /proc)."""
    names = []
    for task in os.listdir("/proc/self/task"):
        if int(task) != os.getpid():
            try:
                with open(f"/proc/self/task/{task}/comm", encoding="utf-8") as f:
                    names.append(f.read().strip())
            except OSError:  # ended meanwhile
                pass
    return names


class _InAKernel:
    """What pandas asks when it is imported (``get_ipython()``: is this a Jupyter kernel?),
    answered as in a kernel: it then sets ``display.max_columns`` to 20, as in a kernel, not to
    0 as in a terminal."""

    kernel = None


def _import_stack() -> None:
    """Import :data:`PRELOAD` and the stats topic modules as a kernel would import them.

    Raises
    ------
    RuntimeError
        When an import shows a warning (a kernel would show it in the notebook).
    """
    shown = []
    showwarning = warnings.showwarning
    warnings.showwarning = lambda message, category, *a, **k: shown.append(f"{category.__name__}: {message}")
    builtins.get_ipython = _InAKernel  # during a kernel's cells, IPython puts get_ipython there
    try:
        for name in PRELOAD:
            importlib.import_module(name)
        for name in importlib.import_module("respine_nb.stats").MODULE_NAMES:
            importlib.import_module(f"respine_nb.stats.{name}")
    finally:
        del builtins.get_ipython
        warnings.showwarning = showwarning
    if shown:
        raise RuntimeError(f"an import showed a warning ({shown[0]})")


def _kernel_environment() -> None:
    """Set the environment variables a kernel sets before it runs a cell (the notebooks' imports
    see them), as ipykernel sets them."""
    from ipykernel.zmqshell import ZMQInteractiveShell

    ZMQInteractiveShell.init_environment(None)  # TERM, CLICOLOR, FORCE_COLOR, PAGER...
    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)  # IPKernelApp.init_gui_pylab


def _warm_up() -> None:
    """Draw a small figure in the notebooks' theme and save it as PNG and PDF, in memory: the
    fonts are loaded, and the code that subsets them into a PDF imported, once here instead of
    in every kernel. Matplotlib's settings are restored afterwards, and pyplot is not used."""

    import matplotlib
    from matplotlib.figure import Figure

    from respine_nb import plots

    with matplotlib.rc_context():
        plots.theme()
        fig = Figure(figsize=(2, 1.5))
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], label="BM-MSC")
        ax.set(title="Month 12", xlabel="VAS (mm)")
        ax.legend()
        for fmt in ("png", "pdf"):
            fig.savefig(io.BytesIO(), format=fmt, dpi=plots.PNG_DPI)


def _inherit_run_cache(env: dict, runner: int) -> None:
    """Load the run's validated and derived data (once; after the runner wrote them) before
    forking, so that each kernel inherits them instead of reading them (:mod:`respine_nb.session`);
    stop waiting if the runner (pid ``runner``) is gone."""
    from respine_nb import session

    folder = env.get(session.RUN_CACHE_ENV)
    if folder and session.inherit_run_cache(folder, alive=lambda: os.getppid() == runner):
        gc.freeze()  # as the stack: shared by the kernels, never walked by their collectors


def _process_start(pid: int):
    """The process's start time (clock ticks since boot, Linux), or None when it is gone or has
    exited: with the pid, it names one process (a pid alone can be reused)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def _watch(pid: int, start) -> None:  # pragma: no cover - runs in a forked kernel's thread
    """Stop this kernel when process ``pid`` (started at ``start``) is gone: what ipykernel's
    parent poller does for an ordinary kernel, whose parent is the runner."""
    while _process_start(pid) == start:
        time.sleep(1.0)
    os._exit(1)


def _child(request: dict, pipes) -> None:  # pragma: no cover - runs in a forked kernel
    """Become the kernel that ``request`` describes; never returns."""
    code = 1
    try:
        os.setsid()  # its own session and process group, as jupyter_client starts kernels
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in pipes:  # the factory's requests and answers are not the kernel's
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)  # as open(): umask applies
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__  # on those descriptors, as in a new Python
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if "numpy" in sys.modules:  # its global generator was seeded once, in the factory: a fresh
            sys.modules["numpy"].random.seed()  # one per kernel, as in a new Python (random reseeds itself)
        launcher = importlib.util.find_spec("ipykernel_launcher")
        sys.argv = [launcher.origin if launcher else "ipykernel_launcher", *request["argv"]]  # as with -m
        runner = int(request["env"].get("JPY_PARENT_PID") or 0)
        if runner:
            threading.Thread(target=_watch, args=(runner, request["runner_start"]), daemon=True).start()
        from ipykernel import kernelapp

        # parent_handle's default was read from JPY_PARENT_PID when the factory imported ipykernel,
        # and ipykernel's poller only watches a parent: the thread above watches the runner instead.
        # 1 ("the parent is init"): no poller, and no connection help printed as for a terminal.
        kernelapp.IPKernelApp.launch_instance(parent_handle=1)
        code = 0
        # Its sockets need no closing in a process that ends now: IPKernelApp.close (at exit) would
        # stop the IOPub thread while the control thread may still be flushing its last reply
        # through it, and wait for that thread (seconds, until jupyter_client kills the kernel).
        atexit.unregister(kernelapp.IPKernelApp.instance().close)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()  # as at an ordinary exit: the user namespace reset, files closed
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _environment_differs(env: dict, start: dict) -> str:
    """The variables read at start-up or import (:data:`_STARTUP_ENV`) whose value in a kernel's
    environment is not the factory's, comma-separated; "" when none."""
    names = sorted(
        k for k in set(env) | set(start) if k.startswith(_STARTUP_ENV) and k not in _PER_KERNEL_ENV and env.get(k) != start.get(k)
    )
    return ", ".join(names)


def serve(requests: int, answers: int) -> int:  # pragma: no cover - runs in the factory process
    """The factory's loop: import the stack, then fork one kernel per request line read from file
    descriptor ``requests``, answering on ``answers``."""
    start_env, runner = dict(os.environ), os.getppid()
    # what a kernel's imports see: streams in UTF-8, as ipykernel's (pandas records the encoding)
    sys.stdout = sys.stderr = io.TextIOWrapper(open(os.devnull, "wb"), encoding="UTF-8")
    if sys.path and (sys.path[0] == "" or os.path.abspath(sys.path[0]) == os.getcwd()):
        del sys.path[0]  # as ipykernel_launcher does (IPython puts "" back in each kernel)
    problem = ""
    try:
        _kernel_environment()
        _import_stack()
        _warm_up()
    except Exception as exc:  # e.g. a missing optional library: kernels start the usual way
        problem = f"{type(exc).__name__}: {exc}"
    problem = problem or _can_fork()
    gc.freeze()  # what is loaded stays: no kernel's garbage collector walks (and copies) it again
    signal.signal(signal.SIGCHLD, _reap)
    with open(requests, "rb") as incoming, open(answers, "wb") as outgoing:
        for line in iter(incoming.readline, b""):
            request = json.loads(line)
            differs = _environment_differs(request["env"], start_env)
            if problem or differs:
                answer = {"error": problem or f"the kernel's environment differs from the factory's ({differs})"}
            else:
                try:
                    _inherit_run_cache(request["env"], runner)
                    pid = os.fork()
                except (RuntimeError, OSError) as exc:  # the run stopped; cannot fork
                    if os.getppid() != runner:
                        return 0
                    answer = {"error": f"{type(exc).__name__}: {exc}"}
                else:
                    if pid == 0:
                        _child(request, (incoming.fileno(), outgoing.fileno()))
                    answer = {"pid": pid}
            try:
                outgoing.write((json.dumps(answer) + "\n").encode())
                outgoing.flush()
            except BrokenPipeError:
                return 0
    return 0


# ----------------------------------------------------------------------------------------------
# the runner's side


def factory_enabled() -> bool:
    """Whether the runner forks its kernels from a factory: on Linux, unless
    ``RESPINE_NB_KERNEL_FACTORY=0`` (on macOS, system libraries are not safe to use after a fork:
    Python's multiprocessing does not fork there either)."""
    return sys.platform.startswith("linux") and os.environ.get(FACTORY_ENV, "1") != "0"


class ForkedKernel:
    """The part of :class:`subprocess.Popen` that jupyter_client uses, for a kernel the factory
    forked (a child of the factory, not of the runner: polled by its pid)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode = None
        self.stdin = self.stdout = self.stderr = None
        self._start = _process_start(pid)  # with the pid: this process, not a later one with its pid

    def poll(self):
        """None while the kernel runs, else its exit status (0: the factory collects the real one)."""
        if self.returncode is None and (self._start is None or _process_start(self.pid) != self._start):
            self.returncode = 0
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class KernelFactory:
    """The runner's handle on the factory process (see the module doc).

    Parameters
    ----------
    env : dict, optional
        The factory's environment, which its imports see (default: this process's, with one
        BLAS thread, :data:`SINGLE_THREAD_ENV`). Each kernel then gets its own environment.
    """

    def __init__(self, env: dict | None = None):
        env = {**os.environ, **SINGLE_THREAD_ENV} if env is None else env
        self._lock = threading.Lock()
        self._failed = ""
        self._stopped = False
        self._requests = self._answers = self._proc = None
        requests, answers = os.pipe(), os.pipe()  # (read, write) each, private to the two processes
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "respine_nb.kernels", str(requests[0]), str(answers[1])],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(requests[0], answers[1]),
                env=env,
                start_new_session=True,  # a Ctrl-C in the terminal reaches the runner, which stops it
            )
        except OSError as exc:
            self._failed = f"{type(exc).__name__}: {exc}"
        finally:
            os.close(requests[0])
            os.close(answers[1])
        if self._proc is None:
            os.close(requests[1])
            os.close(answers[0])
        else:
            self._requests, self._answers = open(requests[1], "wb"), open(answers[0], "rb")
        self._start = _process_start(os.getpid())  # the kernels watch this process (the runner)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def failed(self) -> str:
        """Why kernels were launched the usual way, or "" (the factory forked every kernel)."""
        return self._failed

    def spawn(self, kernel_cmd, env: dict, cwd: str, log: str) -> ForkedKernel | None:
        """Fork a kernel for ``kernel_cmd``, or None when it must be launched the usual way."""
        if self._stopped:
            raise RuntimeError("the run stopped: no kernel starts any more")
        args = list(kernel_cmd)
        if self._proc is None or self._failed or len(args) < 5 or tuple(args[1:4]) != _LAUNCHER or not _same_python(args[0], env):
            return None
        env = {**env, "JPY_PARENT_PID": str(os.getpid())}  # as jupyter_client's launcher sets it
        request = {"argv": args[3:], "env": env, "cwd": str(cwd), "log": str(log), "runner_start": self._start}
        with self._lock:
            try:
                self._requests.write((json.dumps(request) + "\n").encode())
                self._requests.flush()
                answer = json.loads(self._answers.readline() or b"{}")
            except (OSError, ValueError) as exc:
                self._failed = f"{type(exc).__name__}: {exc}"
                answer = {}
        if self._stopped:
            raise RuntimeError("the run stopped: no kernel starts any more")
        if "pid" not in answer:
            self._failed = answer.get("error", "the kernel factory stopped")
            return None
        return ForkedKernel(int(answer["pid"]))

    def stop(self) -> None:
        """Stop the factory at once (the run is abandoned): a kernel still waiting for it does
        not start."""
        self._stopped = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def close(self) -> None:
        """Stop the factory (idempotent; the runner has shut its kernels down by then)."""
        self._stopped = True
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()  # it keeps no state: nothing to finish
        self._proc.wait()
        for stream in (self._requests, self._answers):
            try:
                stream.close()
            except OSError:
                pass


def _same_python(executable: str, env: dict) -> bool:
    """Whether the kernel command's interpreter is this one (as the launch would resolve it)."""
    import shutil

    found = shutil.which(executable, path=env.get("PATH")) if os.sep not in executable else executable
    # not os.path.samefile: a virtual environment's python is a link to the base interpreter,
    # which has other packages
    return found is not None and os.path.abspath(found) == os.path.abspath(sys.executable)


READY_REPLY_S = 1.0  # how long a kernel_info request waits for its reply before it is sent again
READY_IDLE_S = 0.05  # and for its "idle" status on IOPub (lost while the subscription connects)


async def _message_to(channel, msg_id: str, until: float, idle: bool = False):
    """The next message on ``channel`` whose parent is request ``msg_id`` (with ``idle``: its
    "idle" status, the kernel's last message about it), or None at ``until`` (time.monotonic);
    the messages before it, about earlier requests, are dropped."""
    from queue import Empty

    while True:
        try:  # polled at least once, even when the time is up (a message may be waiting)
            msg = await channel.get_msg(timeout=max(0.0, until - time.monotonic()))
        except Empty:
            return None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if not idle or (msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle"):
            return msg


@functools.cache
def _ready_client():
    """jupyter_client's ``AsyncKernelClient`` whose ``wait_for_ready`` returns as soon as the
    kernel has answered a kernel_info request on both channels (see :meth:`wait_for_ready`)."""
    from jupyter_client.asynchronous import AsyncKernelClient

    class ReadyKernelClient(AsyncKernelClient):
        async def wait_for_ready(self, timeout: float | None = None) -> None:
            """Wait until the kernel has answered a kernel_info request on the shell channel
            and sent that request's "idle" status on IOPub.

            jupyter_client's own version, after the reply, takes any IOPub message as the proof
            that IOPub is connected and then reads IOPub until it has been silent for 0.2 s:
            0.2 s of nothing per kernel, every time. The "idle" status of the request is the
            kernel's last message about it, so once it is read IOPub is connected and holds
            nothing more from the kernel; the request is sent again, as there, when the reply
            or the status does not come (the status is lost while IOPub's subscription is still
            connecting).

            Raises
            ------
            RuntimeError
                When the kernel dies first, or ``timeout`` seconds pass (as jupyter_client's).
            """
            deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
            while True:
                msg_id = self.kernel_info()
                reply = await _message_to(self.shell_channel, msg_id, min(deadline, time.monotonic() + READY_REPLY_S))
                if reply is not None and await _message_to(
                    self.iopub_channel, msg_id, min(deadline, time.monotonic() + READY_IDLE_S), idle=True
                ):
                    self._handle_kernel_info_reply(reply)  # the protocol version, as jupyter_client does
                    return
                if not await self.is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")

    return ReadyKernelClient


def ipc_kernel_manager(folder: str, env: dict | None = None, factory: KernelFactory | None = None, pids=None):
    """A kernel manager class over local IPC sockets in ``folder`` (no TCP ports, no ipykernel
    warning about unencrypted TCP; one folder per kernel so parallel kernels never collide),
    whose kernel is forked by ``factory`` when it can, else launched as usual, and whose clients
    are ready as soon as the kernel has answered (:func:`_ready_client`).

    Parameters
    ----------
    folder : str
        The kernel's private folder: its sockets and its log (``kernel.log``).
    env : dict, optional
        Added to the kernel's environment.
    factory : KernelFactory, optional
    pids : set, optional
        Where to add the kernel's pid (the runner kills them if it is interrupted).

    Returns
    -------
    type
        A subclass of jupyter_client's ``AsyncKernelManager``.
    """
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.transport = "ipc"
            self.ip = os.path.join(folder, "kernel")
            self.client_factory = _ready_client()  # ready as soon as the kernel answers

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            # The kernel's own log (e.g. "KeyboardInterrupt caught in kernel" when jupyter_client
            # interrupts it before shutdown) goes to a file, read back only if the kernel fails.
            if env:
                kw["env"] = {**(kw.get("env") or os.environ), **env}
            log_path = os.path.join(folder, "kernel.log")
            forked = None
            if factory is not None:
                launch_env = {**(kw.get("env") or os.environ)}
                forked = factory.spawn(kernel_cmd, launch_env, kw.get("cwd") or os.getcwd(), log_path)
            if forked is not None:
                provisioner = self.provisioner
                provisioner.process = forked
                provisioner.pid = provisioner.pgid = forked.pid  # its own process group (setsid)
                provisioner.cwd = kw.get("cwd") or os.getcwd()
                self._reconcile_connection_info(provisioner.connection_info)
            else:
                with open(log_path, "ab") as log:  # the child keeps its own copy
                    kw["stderr"] = log
                    await super()._async_launch_kernel(kernel_cmd, **kw)
            pid = getattr(self.provisioner, "pid", None)
            if pid and pids is not None:
                pids.add(pid)

    return IPCKernelManager


if __name__ == "__main__":  # pragma: no cover - the factory process
    sys.exit(serve(int(sys.argv[1]), int(sys.argv[2])))
