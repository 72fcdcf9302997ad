"""Reusable worker pools for the process and thread backends.

A :class:`Pool` wraps a :class:`concurrent.futures.ProcessPoolExecutor` (``multiprocessing``
and ``mem``) or :class:`~concurrent.futures.ThreadPoolExecutor` (``threads``). Make one
with :func:`make_pool` and pass it as ``pool=`` to many runs in a notebook: its start-up is
paid (and timed, :attr:`Pool.startup`) once. Without a pool each run starts its own, times
it as ``timings["startup"]`` and shuts it down.

Start method: ``forkserver`` where the platform has it (Linux, macOS), else ``spawn``.

* ``fork`` is not safe in Jupyter: the kernel process runs threads (ZeroMQ, heartbeat,
  GDAL's), and a forked child inherits their locks in whatever state they were (Python
  3.12 warns, 3.14 no longer uses it by default).
* ``spawn`` is safe but every worker starts a new interpreter and imports NumPy and
  rasterio again (≈ 0.3-0.5 s per worker).
* ``forkserver`` starts one clean single-threaded server once per session (with NumPy,
  rasterio and labkit preloaded, the Numba kernel loaded, BLAS pinned to 1 thread); each
  worker is then a cheap ``fork`` of that server. Measured on 2 cores: first pool ≈ 0.5-1 s
  (server start), later pools of 2 ≈ 0.03-0.1 s; ``spawn`` pools ≈ 0.4-0.8 s every time.

Both need importable worker functions (they live in labkit, never in a notebook) and, in
a plain script, the ``if __name__ == "__main__":`` guard. Pool start-up also loads the
reduction kernel (Numba's JIT cache) so that its one-off cost is start-up, not compute.

Workers run with BLAS/OpenMP pinned to one thread: the ``*_NUM_THREADS`` variables are
set (for the duration of the start) before the workers exist and the initializer also
calls :func:`threadpoolctl.threadpool_limits`.

Ctrl-C: a terminal sends SIGINT to the whole process group, workers and forkserver included,
but only the parent acts on it: it terminates the workers (:meth:`Pool.terminate`) and
re-raises. The forkserver is started with SIGINT blocked, ignores it once it has imported
its preloads, and its workers inherit that: none of them ever takes a Ctrl-C (no traceback
from a worker or from the forkserver's imports). Starting the workers is not cut in half by
a Ctrl-C (:func:`labkit.interrupts.deferred`): every worker that exists is one the pool
knows and terminates.

Test hooks (read by :func:`apply_test_hooks` at the start of every worker task; the values are
handed to the workers when the pool starts):

``LABKIT_TEST_KILL_AFTER=N``
    a worker process that has already run N tasks SIGKILLs itself at its next task
    (never the main process, so thread tasks ignore it).
``LABKIT_TEST_TASK_DELAY=S``
    every task first sleeps S seconds (to catch a run in the middle).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from labkit import interrupts
from labkit.errors import LabError

__all__ = [
    "START_METHOD",
    "THREAD_ENV_VARS",
    "WORKER_DIED",
    "Pool",
    "Session",
    "apply_test_hooks",
    "critical_path",
    "make_pool",
    "pinned_threads_env",
    "session",
]

START_METHOD = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                   "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")
TEST_HOOK_VARS = ("LABKIT_TEST_KILL_AFTER", "LABKIT_TEST_TASK_DELAY")
# imported once by the forkserver so that forked workers start warm
PRELOAD = ["numpy", "rasterio", "threadpoolctl", "labkit.io", "labkit.stats",
           "labkit.backends.pools", "labkit.backends.mem"]
WORKER_DIED = "a worker process died (killed?) during the run; no output was written"
TERMINATE_GRACE_S = 1.0  # s a terminated worker gets to exit before it is killed
FORKSERVER_WAIT_S = 120.0  # s at most to wait for the forkserver's preloads (cold Numba cache)
_tasks_run = 0  # tasks started in this worker process (for LABKIT_TEST_KILL_AFTER)


@contextlib.contextmanager
def pinned_threads_env(**extra: str) -> Iterator[None]:
    """Set every ``*_NUM_THREADS`` variable (and ``extra``) inside the block, then restore."""
    values = {**dict.fromkeys(THREAD_ENV_VARS, "1"), **extra}
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _init_worker(env: dict[str, str]) -> None:
    """Process-pool initializer: environment, one BLAS/OpenMP thread, ignore SIGINT."""
    global _tasks_run
    _tasks_run = 0
    os.environ.pop("LABKIT_FORKSERVER", None)
    os.environ.pop("LABKIT_FORKSERVER_READY", None)
    os.environ.update(env)
    for k in TEST_HOOK_VARS:
        if k not in env:
            os.environ.pop(k, None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def _warm_kernel() -> None:
    """Load the reduction kernel (Numba: JIT cache, ~0.5 s) so a run does not pay it.

    Never raises: if the kernel cannot load, the run itself reports why.
    """
    from labkit.stats import warm_up

    with contextlib.suppress(Exception):
        warm_up()


if os.environ.get("LABKIT_FORKSERVER") == "1":  # imported by the forkserver (PRELOAD):
    # it started with SIGINT blocked (_start_forkserver): ignore it from now on (a Ctrl-C
    # that came meanwhile is dropped), and so will every worker forked from it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _warm_kernel()  # warm it once there, every forked worker inherits it
    if os.environ.get("LABKIT_FORKSERVER_READY"):  # tell the parent: it can fork workers
        with contextlib.suppress(OSError):  # it gave up waiting (Ctrl-C) and removed it
            open(os.environ["LABKIT_FORKSERVER_READY"], "x").close()


def _ready() -> int:
    """Warm-up task: proves a worker is up, with the kernel loaded (returns its pid)."""
    _warm_kernel()
    return os.getpid()


def apply_test_hooks(stop: threading.Event | None = None) -> None:
    """Apply the ``LABKIT_TEST_*`` hooks (see the module docstring); call at task start."""
    global _tasks_run
    kill_after = os.environ.get("LABKIT_TEST_KILL_AFTER")
    in_worker = mp.parent_process() is not None  # never kill the main process (threads)
    if kill_after is not None and in_worker and _tasks_run >= int(kill_after):
        os.kill(os.getpid(), signal.SIGKILL)
    _tasks_run += 1
    delay = float(os.environ.get("LABKIT_TEST_TASK_DELAY", 0) or 0)
    if delay > 0:
        if stop is None:
            time.sleep(delay)
        else:
            stop.wait(delay)


class Pool:
    """Worker processes or threads, reusable across runs; a context manager.

    Attributes
    ----------
    kind : {"process", "thread"}
    workers : int
        Number of worker processes or threads.
    startup : float
        Seconds it took to start every worker (measured by :func:`make_pool`).
    start_method : str or None
        ``forkserver``/``spawn`` for process pools, None for threads.
    closed : bool
        True after :meth:`close` or :meth:`terminate` (or a fault that terminated it).
    cache : dict
        Objects a backend keeps between the runs of this pool (``mem``: its shared-memory
        block).
    on_close : list of callables
        Called (once) when the pool is closed or terminated, after its workers stopped
        (``mem``: unlink its shared-memory block).
    """

    def __init__(self, kind: str, workers: int, executor: Executor, startup: float,
                 start_method: str | None) -> None:
        self.kind = kind
        self.workers = workers
        self.executor = executor
        self.startup = startup
        self.start_method = start_method
        self.closed = False
        self.cache: dict[str, Any] = {}
        self.on_close: list[Callable[[], Any]] = []

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        how = f", {self.start_method}" if self.start_method else ""
        return (f"<labkit Pool {self.kind} x{self.workers}{how}, {state}, "
                f"startup {self.startup:.3f} s>")

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (empty for a thread pool)."""
        procs = getattr(self.executor, "_processes", None) or {}
        return list(procs)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Submit ``fn(*args)``; LabError if the pool is closed (BrokenProcessPool if a
        worker died: :func:`session` turns it into a LabError)."""
        if self.closed:
            raise LabError("this pool is closed: make a new one with make_pool(backend, workers)")
        return self.executor.submit(fn, *args)

    def close(self) -> None:
        """Let running tasks finish, then stop the workers."""
        if not self.closed:
            self.closed = True
            self.executor.shutdown(wait=True, cancel_futures=True)
        self._release()

    def _release(self) -> None:
        """Run the :attr:`on_close` callbacks (each once) and drop the cache."""
        self.cache.clear()
        while self.on_close:
            with contextlib.suppress(Exception):
                self.on_close.pop()()

    def terminate(self) -> None:
        """Stop now: cancel queued tasks and terminate worker processes (threads finish
        their current task). The pool cannot be used afterwards. A Ctrl-C meanwhile is
        held until the workers are gone."""
        with interrupts.deferred():
            self.closed = True
            procs = list((getattr(self.executor, "_processes", None) or {}).values())
            for p in procs:  # private but stable (3.10-3.13); 3.14 has terminate_workers()
                with contextlib.suppress(Exception):
                    p.terminate()
            for p in procs:
                p.join(TERMINATE_GRACE_S)
                if p.is_alive():
                    p.kill()
                    p.join(TERMINATE_GRACE_S)
            # A worker terminated while it was sending a result (a whole image, per-file)
            # leaves half a message in the result pipe: the executor's manager thread
            # would wait for the rest forever, and shutdown() with it. The workers, the
            # only other writers, are gone: closing this process's end gives it EOF.
            writer = getattr(getattr(self.executor, "_result_queue", None), "_writer", None)
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()
            self.executor.shutdown(wait=True, cancel_futures=True)
            self._release()


def _exited(pid: int) -> bool:
    """True if child ``pid`` has exited (it is not reaped: multiprocessing does that)."""
    waitid = getattr(os, "waitid", None)
    if waitid is None:
        return False
    try:
        return waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _start_forkserver() -> None:
    """Start the forkserver if it is not running, and wait until it serves.

    It starts with SIGINT blocked: a Ctrl-C cannot interrupt its interpreter start and
    preload imports; once they are done it ignores SIGINT (see the ``LABKIT_FORKSERVER``
    branch above), as do the workers forked from it. This process gets a Ctrl-C that came
    meanwhile right after. The wait for its preloads (≈0.5 s, the kernel loaded) is here,
    where a Ctrl-C stops it at once, not in the workers' launch, which a Ctrl-C must not
    cut in half.
    """
    from multiprocessing import forkserver, resource_tracker

    # first the resource tracker that ensure_running() also starts: starting it unblocks
    # SIGINT in this thread (it blocks SIGINT around its own spawn, then unblocks it)
    resource_tracker.ensure_running()
    server = forkserver._forkserver
    before = getattr(server, "_forkserver_pid", None)
    try:
        tmp = tempfile.mkdtemp(prefix="labkit-forkserver-")
    except OSError:  # no usable TMPDIR: the launch waits for the preloads instead
        tmp = None
    try:
        ready = os.path.join(tmp, "ready") if tmp else ""
        with interrupts.deferred(), interrupts.sigint_blocked(), \
                pinned_threads_env(LABKIT_FORKSERVER="1", LABKIT_FORKSERVER_READY=ready):
            forkserver.ensure_running()
        pid = getattr(server, "_forkserver_pid", None)
        if not ready or pid is None or pid == before:  # already serving, or cannot tell
            return
        deadline = time.monotonic() + FORKSERVER_WAIT_S
        while not os.path.exists(ready) and time.monotonic() < deadline:
            if _exited(pid):  # it died: the launch will say so
                return
            time.sleep(0.005)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _process_pool(workers: int) -> Pool:
    ctx = mp.get_context(START_METHOD)
    if START_METHOD == "forkserver":
        ctx.set_forkserver_preload(PRELOAD)  # only used when the server first starts
    env = {k: os.environ[k] for k in TEST_HOOK_VARS if k in os.environ}
    env.update(dict.fromkeys(THREAD_ENV_VARS, "1"))
    t0 = time.perf_counter()
    pool: Pool | None = None
    try:
        if START_METHOD == "forkserver":
            _start_forkserver()
        # whole or not at all (a Ctrl-C meanwhile is held, a few ms): the queues'
        # semaphores registered, every worker process known to the pool
        with interrupts.deferred(), pinned_threads_env(LABKIT_FORKSERVER="1"):
            executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                           initargs=(env,))
            pool = Pool("process", workers, executor, 0.0, START_METHOD)
            # start every worker now, not one per submit (private; submits alone also work)
            launch = getattr(executor, "_launch_processes", None)
            if launch is not None:
                launch()
        with pinned_threads_env(LABKIT_FORKSERVER="1"):
            futures = [executor.submit(_ready) for _ in range(workers)]
            for f in futures:
                f.result()
    except BrokenProcessPool:
        if pool is not None:
            pool.terminate()
        raise LabError(f"could not start {workers} worker processes ({START_METHOD}); in a "
                       "script, call labkit under `if __name__ == \"__main__\":`") from None
    except BaseException:
        if pool is not None:
            pool.terminate()
        raise
    pool.startup = time.perf_counter() - t0
    return pool


def _thread_pool(workers: int) -> Pool:
    t0 = time.perf_counter()
    _warm_kernel()  # the threads share this process's kernel: load it once, before the run
    executor = ThreadPoolExecutor(workers, thread_name_prefix="labkit")
    for f in [executor.submit(time.sleep, 0.001) for _ in range(workers)]:
        f.result()
    return Pool("thread", workers, executor, time.perf_counter() - t0, None)


def make_pool(backend: str = "multiprocessing", workers: int = 2) -> Any:
    """Start a reusable pool for ``backend`` with ``workers`` workers.

    Parameters
    ----------
    backend : str, default "multiprocessing"
        ``multiprocessing`` or ``mem``: worker processes; ``threads``: threads;
        ``sequential``: no pool (returns None); other backends (``mpi``) use their
        module's own ``make_pool`` if it has one, else None.
    workers : int, default 2
        Processes or threads (≥ 1).

    Returns
    -------
    Pool or None
        Use it as ``pool=`` in :func:`labkit.backends.compute` / ``run``; close it with
        ``pool.close()`` or a ``with`` block. ``pool.startup`` is its start-up in seconds.
    """
    from labkit.backends import BACKENDS

    if backend not in BACKENDS:
        raise LabError(f"unknown backend {backend!r}: valid are {', '.join(BACKENDS)}")
    if not isinstance(workers, int) or workers < 1:
        raise LabError(f"workers must be a whole number ≥ 1, got {workers!r}")
    if backend in ("multiprocessing", "mem"):
        return _process_pool(workers)
    if backend == "threads":
        return _thread_pool(workers)
    if backend == "sequential":
        return None
    import importlib

    module = importlib.import_module(BACKENDS[backend][0])
    own = getattr(module, "make_pool", None)
    return own(workers) if own is not None else None


class Session:
    """The tasks of one run on a pool (see :func:`session`).

    Attributes
    ----------
    pool : Pool
    startup : float
        Seconds spent starting the pool for this run (0 when it was given).
    own : bool
        True when the pool was started (and is stopped) by this run.
    stop : threading.Event
        Set when the run is being abandoned; thread tasks should check it.
    """

    def __init__(self, pool: Pool, own: bool) -> None:
        self.pool = pool
        self.own = own
        self.startup = pool.startup if own else 0.0
        self.stop = threading.Event()
        self.futures: list[Future] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Submit ``fn(*args)`` as part of this run."""
        f = self.pool.submit(fn, *args)
        self.futures.append(f)
        return f


@contextlib.contextmanager
def session(pool: Pool | None, kind: str, workers: int) -> Iterator[Session]:
    """Run tasks on ``pool`` (or on a pool of ``workers`` started and stopped here).

    On leaving with an error: queued tasks are cancelled; a dead worker becomes
    ``LabError(WORKER_DIED)`` after the other workers are terminated; Ctrl-C (or any
    non-``Exception``) terminates worker processes and re-raises; an ordinary error
    (e.g. an unreadable tile) waits for running tasks and re-raises. A pool started here
    is always shut down; a given pool survives ordinary errors.
    """
    own = pool is None
    if pool is None:
        try:
            pool = _process_pool(workers) if kind == "process" else _thread_pool(workers)
            s = Session(pool, own)
        except BaseException:  # e.g. Ctrl-C just after the pool started: stop it
            if pool is not None:
                pool.terminate()
            raise
    elif not isinstance(pool, Pool) or pool.kind != kind:
        got = getattr(pool, "kind", type(pool).__name__)
        raise LabError(f"this backend needs a {kind} pool, got {got}: use make_pool(backend, n)")
    elif pool.closed:
        raise LabError("this pool is closed: make a new one with make_pool(backend, workers)")
    elif workers > pool.workers:
        raise LabError(f"the pool has {pool.workers} workers, the run asks for {workers}: "
                       f"pass workers ≤ {pool.workers} or make a bigger pool")
    else:
        s = Session(pool, own)
    try:
        yield s
    except BrokenProcessPool:
        s.stop.set()
        pool.terminate()
        raise LabError(WORKER_DIED) from None
    except BaseException as exc:
        s.stop.set()
        ordinary = isinstance(exc, Exception)
        if pool.kind == "process" and (own or not ordinary):
            # no cancel() first: terminating fails the pending futures itself, and on
            # Python ≤ 3.11 the executor's manager thread dies with a traceback on a
            # pending future that was cancelled from outside
            pool.terminate()
        else:
            for f in s.futures:
                f.cancel()
            if own and ordinary:
                pool.terminate()
            else:
                wait(s.futures)
                if own:
                    pool.close()
        raise
    else:
        if own:
            pool.close()


def critical_path(records: list[tuple[Any, float, float]]) -> tuple[float, float]:
    """(read, compute) seconds of the busiest worker.

    ``records`` holds ``(worker_id, read_s, compute_s)`` per task; times are summed per
    worker and the worker with the largest total sets the run's critical path.
    """
    per: dict[Any, list[float]] = {}
    for wid, r, c in records:
        acc = per.setdefault(wid, [0.0, 0.0])
        acc[0] += r
        acc[1] += c
    if not per:
        return 0.0, 0.0
    r, c = max(per.values(), key=sum)
    return r, c
