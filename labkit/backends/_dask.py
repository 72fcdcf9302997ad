"""Where a Dask graph runs: the scheduler of one run, and a local ``distributed`` cluster.

:func:`scheduler_session` hands the dask backend a :class:`DaskRun` whose
:meth:`~DaskRun.compute` runs Dask collections on the chosen scheduler:

``threads``
    Dask's threaded scheduler on a labkit thread pool (:func:`labkit.backends.make_pool`
    ``("threads", n)``: the kernel loaded once, before the threads start).
``processes``
    Dask's multiprocessing scheduler on a labkit process pool (forked from labkit's
    forkserver: workers that ignore Ctrl-C, BLAS pinned to one thread, kernel loaded).
    Tasks are sent one at a time (``chunksize=1``) so that the workers share them evenly.
``distributed``
    A :class:`DaskCluster`: ``distributed.LocalCluster`` of ``n`` worker processes (one
    thread each, under a nanny) and a scheduler, all on ``127.0.0.1``, dashboard off.

A pool or cluster started for the run is timed as start-up and stopped when the run ends,
also on an error or Ctrl-C (the lab's :func:`labkit.backends._session.session` for the
first two, :meth:`DaskCluster.close` for the cluster); a given one is reused.

Ctrl-C: a terminal sends SIGINT to the whole process group. The cluster's worker
processes are forked from labkit's forkserver, which ignores SIGINT, and so do they: none
of them prints a KeyboardInterrupt traceback. This process stops the cluster (workers
killed first, then client, nannies and scheduler closed) and checks with psutil that no
worker is left; a Ctrl-C while the cluster starts stops whatever it had started.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from labkit import interrupts
from labkit.backends._buffers import io_block_rows
from labkit.backends._group import kill_processes
from labkit.backends._pool import Pool
from labkit.backends._session import session
from labkit.config import THREAD_ENV_VARS
from labkit.errors import Interrupted, LabError
from labkit.filters import LeeFilter
from labkit.io import TileStack

__all__ = ["CHUNK_BYTES", "TASKS_PER_WORKER", "DaskCluster", "DaskRun", "chunk_rows",
           "import_scheduler", "scheduler_for", "scheduler_session", "start_cluster"]

STOP_TIMEOUT_S = 5.0  # s the cluster may take to close before its workers are killed
FAST_STOP_TIMEOUT_S = 0.5  # the same after a Ctrl-C, its workers already killed
START_TIMEOUT_S = 60.0  # s the workers may take to come up

CHUNK_BYTES = 32 * 2**20  # input bytes (all dates) per task at most, by default
TASKS_PER_WORKER = 4  # at least this many tasks per worker, so that they balance


def chunk_rows(stack: TileStack, workers: int) -> int:
    """Default rows per chunk: at most :data:`CHUNK_BYTES` of input per task, at least
    :data:`TASKS_PER_WORKER` tasks per worker, never below the cache-sized block.
    """
    tasks = max(TASKS_PER_WORKER * workers, math.ceil(stack.nbytes / CHUNK_BYTES))
    rows = math.ceil(stack.rows / min(tasks, stack.rows))
    return max(rows, min(io_block_rows(stack.n_dates, stack.cols), stack.rows))


def _warm(kernel: str | None, filt: LeeFilter | None) -> int:
    """Worker start-up task: load the statistics kernel (and the filter's); its pid."""
    from labkit.backends._filtering import warm_up as load_filter
    from labkit.backends._forkserver import warm_kernel

    warm_kernel(kernel)
    load_filter(filt)
    return os.getpid()


class DaskCluster:
    """A running ``distributed.LocalCluster`` and its ``Client``; a context manager.

    Make one with :func:`start_cluster` (or ``make_pool("dask", n,
    scheduler="distributed")``) and pass it as ``pool=`` to many dask runs.

    Attributes
    ----------
    cluster : distributed.LocalCluster
    client : distributed.Client
    workers : int
        Worker processes (one thread each).
    startup : float
        Seconds it took to start the scheduler and the workers, connect the client and
        load the kernel in every worker.
    pids : list of int
        The worker processes.
    closed : bool
        True after :meth:`close`.
    stop_s : float or None
        Seconds :meth:`close` took.
    """

    kind = "distributed"

    def __init__(self, cluster: Any, client: Any, workers: int, startup: float,
                 pids: list[int], scratch: str) -> None:
        self.cluster = cluster
        self.scratch = scratch
        self.client = client
        self.workers = workers
        self.startup = startup
        self.pids = pids
        self.closed = False
        self.stop_s: float | None = None
        atexit.register(self.close)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "running"
        return (f"<labkit DaskCluster {self.workers} workers on 127.0.0.1, {state}, "
                f"startup {self.startup:.2f} s>")

    def __enter__(self) -> DaskCluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close client, workers and scheduler; kill any worker left; check none is.

        Safe to call twice. A Ctrl-C meanwhile is held until the workers are gone.
        Raises :class:`LabError` if a worker process could not be ended.
        """
        if self.closed:
            return
        self.closed = True
        atexit.unregister(self.close)
        t0 = time.perf_counter()
        with interrupts.deferred():
            fast = interrupts.stopping() or interrupts.taken()  # after a Ctrl-C
            pids = [*self.pids, *_worker_pids(self.cluster)]  # restarted ones too
            left = _shutdown(self.cluster, self.client, _processes(pids), self.scratch, fast)
        self.stop_s = time.perf_counter() - t0
        if left:
            raise LabError(f"could not stop dask worker processes {left}: kill them by hand")

    stop = close


def _worker_pids(cluster: Any) -> list[int]:
    """The worker processes the cluster's nannies run now."""
    pids = []
    for nanny in list(getattr(cluster, "workers", {}).values()):
        with contextlib.suppress(Exception):
            pid = nanny.process.pid
            if pid:
                pids.append(int(pid))
    return pids


def _processes(pids: list[int]) -> list[Any]:
    """The processes ``pids`` and everything under them (those still there), as psutil's."""
    import psutil

    procs: dict[int, Any] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            procs[pid] = p
            for child in p.children(recursive=True):
                procs.setdefault(child.pid, child)
    return list(procs.values())


def _shutdown(cluster: Any, client: Any, procs: list[Any], scratch: str,
              fast: bool = False) -> list[int]:
    """Close the client and the cluster, then kill what is left of ``procs`` and remove the
    workers' ``scratch`` folder; return the pids still alive. ``fast`` (after a Ctrl-C):
    kill the workers first, then close.
    """
    timeout = STOP_TIMEOUT_S
    if fast:
        _quiet_for_good()
        _no_restarts(cluster)
        kill_processes(procs, grace=0.0)
        timeout = FAST_STOP_TIMEOUT_S  # nothing left to wait for
    if client is not None:
        with contextlib.suppress(Exception):
            client.close(timeout=timeout)
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close(timeout=timeout)
        with contextlib.suppress(Exception):  # closed (or its processes killed): not
            from distributed.deploy.spec import SpecCluster  # again at exit

            SpecCluster._instances.discard(cluster)
    left = kill_processes(procs, grace=1.0)
    shutil.rmtree(scratch, ignore_errors=True)
    return left


def _quiet_for_good() -> None:
    """After a Ctrl-C: no more log lines from distributed or tornado in this process.

    The scheduler runs in this process; as its workers are killed, its comms log the
    closed connections (with tracebacks) from the event-loop thread, also after
    ``cluster.close`` has put back the log levels that ``silence_logs`` lowered.
    """
    for name in ("distributed", "tornado", "asyncio"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.CRITICAL + 1)
        for handler in logger.handlers:
            handler.setLevel(logging.CRITICAL + 1)


def _no_restarts(cluster: Any) -> None:
    """Tell the cluster's nannies not to restart their worker when it dies (it is being
    killed): each one closes instead.
    """
    from distributed.core import Status

    for nanny in list(getattr(cluster, "workers", {}).values()):
        with contextlib.suppress(Exception):
            nanny.status = Status.closing_gracefully


def _descendants() -> dict[int, Any]:
    """Every process under this one, by pid (psutil processes)."""
    import psutil

    return {p.pid: p for p in psutil.Process().children(recursive=True)}


def start_cluster(workers: int, kernel: str | None = None, filt: LeeFilter | None = None,
                  timeout: float = START_TIMEOUT_S) -> DaskCluster:
    """Start a ``distributed.LocalCluster`` of ``workers`` processes on this machine.

    The worker processes are forked from labkit's forkserver
    (:mod:`labkit.backends._forkserver`: NumPy, rasterio and labkit already imported,
    BLAS pinned to one thread, SIGINT ignored), where the platform has one.

    Parameters
    ----------
    workers : int
        Worker processes (≥ 1), one thread each, each under a nanny.
    kernel : {"numba", "numpy"}, optional
        The statistics kernel loaded in every worker before the cluster is handed out.
    filt : LeeFilter, optional
        A filter whose compiled kernel every worker loads too.
    timeout : float, default 60
        Seconds to wait for the workers (s).

    Returns
    -------
    DaskCluster
        Running; ``.startup`` is its start-up in seconds.

    Raises
    ------
    LabError
        The cluster could not start (everything started is stopped).
    KeyboardInterrupt
        Ctrl-C during the start (everything started is stopped).
    """
    if not isinstance(workers, int) or workers < 1:
        raise LabError(f"workers must be a whole number ≥ 1, got {workers!r}")
    import multiprocessing as mp

    from labkit.backends._forkserver import PRELOAD, START_METHOD, start_forkserver

    t0 = time.perf_counter()
    if START_METHOD == "forkserver":
        mp.get_context(START_METHOD).set_forkserver_preload(PRELOAD)  # if it starts now
        start_forkserver(kernel)
    before = _descendants()
    scratch = tempfile.mkdtemp(prefix="labkit-dask-")  # the workers' spill folder
    cluster: Any = None
    client: Any = None
    try:
        import dask
        import distributed.utils
        from distributed import Client, LocalCluster
        from distributed.deploy.spec import SpecCluster

        clusters = set(SpecCluster._instances)
        # labkit's forkserver is running: distributed's own preload list would only
        # import its optional packages here (≈0.5 s)
        distributed.utils._forkserver_preload_set = True
        with dask.config.set({"distributed.worker.multiprocessing-method": START_METHOD,
                              "temporary-directory": scratch}):  # scheduler's and nannies
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                scheduler_port=0, dashboard_address=None,
                # no dashboard; the scheduler's health page on a free loopback port
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                worker_dashboard_address=None, silence_logs=logging.CRITICAL,
                env=dict.fromkeys(THREAD_ENV_VARS, "1"), death_timeout=timeout,
                local_directory=scratch)
        client = Client(cluster, timeout=timeout)
        client.wait_for_workers(workers, timeout=timeout)
        pids = sorted(client.run(_warm, kernel, filt).values())
        return DaskCluster(cluster, client, workers, time.perf_counter() - t0, pids, scratch)
    except BaseException as exc:
        ctrl_c = not isinstance(exc, Exception)
        with interrupts.deferred():
            if cluster is None:  # cut short while it started: the one made meanwhile
                with contextlib.suppress(Exception):
                    cluster = next(iter(set(SpecCluster._instances) - clusters), None)
            with contextlib.suppress(Exception):  # its nannies' start fails as we stop
                # them: asyncio would print each failure's traceback ("Task exception was
                # never retrieved") when the task is collected
                cluster.loop.asyncio_loop.set_exception_handler(lambda loop, context: None)
            new = [p for pid, p in _descendants().items() if pid not in before]
            _shutdown(cluster, client, new, scratch, fast=ctrl_c)
        if ctrl_c or isinstance(exc, (LabError, Interrupted)):
            raise  # Ctrl-C (KeyboardInterrupt) included
        raise LabError(f"could not start a dask cluster of {workers} workers "
                       f"({type(exc).__name__}: {exc})") from None


class DaskRun:
    """Runs Dask collections on one run's scheduler (see :func:`scheduler_session`).

    Attributes
    ----------
    scheduler : str
        ``threads``, ``processes`` or ``distributed``.
    startup : float
        Seconds spent starting the pool or cluster for this run (0 when given).
    own : bool
        True when the pool or cluster was started (and is stopped) by this run.
    workers : int
        Threads or processes the graph runs on.
    """

    def __init__(self, scheduler: str, pool: Any, own: bool, startup: float) -> None:
        self.scheduler = scheduler
        self.pool = pool
        self.own = own
        self.startup = startup
        self.workers = int(pool.workers)

    def compute(self, *collections: Any,
                progress: Callable[[int, int], None] | None = None) -> tuple:
        """Run ``collections`` (dask.delayed objects or arrays); their results in order.

        ``progress(done, total)`` is called as the collections' last tasks finish
        (distributed) or as tasks finish (local schedulers).
        """
        import dask

        if self.scheduler == "distributed":
            return self._distributed(collections, progress)
        kw: dict[str, Any] = {"pool": self.pool.executor}
        get: Callable[..., Any]
        if self.scheduler == "processes":
            import dask.multiprocessing

            get = dask.multiprocessing.get
            kw["chunksize"] = 1  # one task per message: the workers share them evenly
        else:
            import dask.threaded

            get = dask.threaded.get
        # the scheduler's function itself: a name would import distributed (≈0.4 s) to
        # look for a client
        with _progress_callback(progress):
            return dask.compute(*collections, scheduler=get, **kw)

    def _distributed(self, collections: tuple, progress: Callable[[int, int], None] | None
                     ) -> tuple:
        from distributed import as_completed

        client = self.pool.client
        futures = client.compute(list(collections))
        try:
            for done, _ in enumerate(as_completed(futures), 1):
                if progress:
                    progress(done, len(futures))
            return tuple(client.gather(futures))
        except BaseException:
            if not self.own:  # a given cluster goes on: drop this run's tasks
                with contextlib.suppress(Exception):
                    client.cancel(futures)
            raise


@contextlib.contextmanager
def _progress_callback(progress: Callable[[int, int], None] | None) -> Iterator[None]:
    """A local scheduler's task count reported through ``progress(done, total)``."""
    if progress is None:
        yield
        return
    from dask.callbacks import Callback

    state = {"done": 0, "total": 0}

    def start_state(dsk: Any, st: Any) -> None:
        state["total"] = len(st["ready"]) + len(st["waiting"])

    def posttask(key: Any, result: Any, dsk: Any, st: Any, worker_id: Any) -> None:
        state["done"] += 1
        progress(state["done"], max(state["total"], state["done"]))

    with Callback(start_state=start_state, posttask=posttask):
        yield


def _given_cluster(pool: Any, workers: int) -> DaskCluster:
    """The caller's cluster, after checking it suits the run."""
    if not isinstance(pool, DaskCluster):
        got = getattr(pool, "kind", type(pool).__name__)
        raise LabError(f"scheduler distributed needs a dask cluster, got {got}: use "
                       f"make_pool('dask', n, scheduler='distributed')")
    if pool.closed:
        raise LabError("this dask cluster is closed: make a new one with "
                       "make_pool('dask', n, scheduler='distributed')")
    if workers > pool.workers:
        raise LabError(f"the cluster has {pool.workers} workers, the run asks for {workers}: "
                       f"pass workers ≤ {pool.workers} or make a bigger cluster")
    return pool


def scheduler_for(pool: Any, scheduler: str | None) -> str:
    """The run's scheduler: the one asked for, else the given pool's kind, else threads.

    Raises
    ------
    LabError
        The scheduler asked for does not match the given pool.
    """
    kinds = {"thread": "threads", "process": "processes", "distributed": "distributed"}
    kind = kinds.get(getattr(pool, "kind", ""), None) if pool is not None else None
    if scheduler is None:
        return kind or "threads"
    if kind is not None and kind != scheduler:
        raise LabError(f"scheduler {scheduler} does not match the given pool ({kind}): make "
                       f"one with make_pool('dask', n, scheduler={scheduler!r})")
    return scheduler


def import_scheduler(scheduler: str) -> float:
    """Import Dask and a local scheduler's module (≈0.2 s in a fresh process); seconds."""
    t0 = time.perf_counter()
    import dask.delayed  # noqa: F401

    if scheduler == "threads":
        import dask.threaded  # noqa: F401
    else:
        import dask.multiprocessing  # noqa: F401
    return time.perf_counter() - t0


@contextlib.contextmanager
def scheduler_session(pool: Any, scheduler: str, workers: int, kernel: str | None,
                      filt: LeeFilter | None = None) -> Iterator[DaskRun]:
    """One run on ``scheduler``: on the caller's ``pool``, or on one started here.

    Parameters
    ----------
    pool : Pool, DaskCluster or None
        The caller's pool (see :func:`scheduler_for`); None starts one for this run.
    scheduler : {"threads", "processes", "distributed"}
        Where the graph runs.
    workers : int
        Threads or processes for a pool or cluster started here.
    kernel : {"numba", "numpy"}, optional
        The statistics kernel its workers load as they start.
    filt : LeeFilter, optional
        The run's filter (its kernel is loaded at start-up too).
    """
    if scheduler != "distributed":
        kind = "thread" if scheduler == "threads" else "process"
        loaded = import_scheduler(scheduler)  # Dask's modules: part of the start-up
        with session(pool, kind, workers, kernel) as s:
            assert isinstance(s.pool, Pool)
            startup = s.startup + loaded if s.own else 0.0
            if s.own and kind == "thread" and filt is not None:  # threads share this process
                from labkit.backends._filtering import warm_up as load_filter

                startup += load_filter(filt)
            yield DaskRun(scheduler, s.pool, s.own, startup)
        return
    if pool is not None:
        yield DaskRun(scheduler, _given_cluster(pool, workers), False, 0.0)
        return
    cluster = start_cluster(workers, kernel, filt)
    try:
        yield DaskRun(scheduler, cluster, True, cluster.startup)
    finally:  # also on an error or Ctrl-C: no worker is left
        cluster.close()
