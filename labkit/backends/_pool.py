"""Reusable worker pools for the process and thread backends.

A :class:`Pool` wraps a :class:`concurrent.futures.ProcessPoolExecutor` (``multiprocessing``
and ``mem``) or :class:`~concurrent.futures.ThreadPoolExecutor` (``threads``). Make one
with :func:`labkit.backends.make_pool` and pass it as ``pool=`` to many runs in a
notebook: its start-up is paid (and timed, :attr:`Pool.startup`) once. Without a pool
each run starts its own (:mod:`labkit.backends._session`), times it as
``timings["startup"]`` and shuts it down.

Process workers are forked from one forkserver (:mod:`labkit.backends._forkserver`). They
need importable worker functions (they live in labkit, never in a notebook) and, in a
plain script, the ``if __name__ == "__main__":`` guard. Pool start-up also loads the
reduction kernel so that its one-off cost is start-up, not compute.

Workers run with BLAS/OpenMP pinned to one thread: the ``*_NUM_THREADS`` variables are
set (for the duration of the start) before the workers exist and the initializer also
calls :func:`threadpoolctl.threadpool_limits`.

Ctrl-C: a terminal sends SIGINT to the whole process group, workers and forkserver
included, but only the parent acts on it: it terminates the workers
(:meth:`Pool.terminate`) and re-raises. Starting the workers is not cut in half by a
Ctrl-C (:func:`labkit.interrupts.deferred`): every worker that exists is one the pool
knows and terminates.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from labkit import interrupts
from labkit.backends._forkserver import (
    MARK,
    PRELOAD,
    READY,
    START_METHOD,
    pinned_threads_env,
    start_forkserver,
    warm_kernel,
)
from labkit.config import TERMINATE_GRACE_S, THREAD_ENV_VARS
from labkit.errors import LabError

__all__ = ["START_METHOD", "Pool", "start_process_pool", "start_thread_pool"]


class Pool:
    """Worker processes or threads, reusable across runs; a context manager.

    Attributes
    ----------
    kind : {"process", "thread"}
    workers : int
        Number of worker processes or threads.
    startup : float
        Seconds it took to start every worker.
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
        worker died: the run's session turns it into a LabError).
        """
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
        held until the workers are gone.
        """
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


def _init_worker(env: dict[str, str]) -> None:
    """Process-pool initializer: environment, one BLAS/OpenMP thread, ignore SIGINT."""
    os.environ.pop(MARK, None)
    os.environ.pop(READY, None)
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def _ready(kernel: str | None) -> int:
    """Warm-up task: proves a worker is up, with the kernel loaded (returns its pid)."""
    warm_kernel(kernel)
    return os.getpid()


def start_process_pool(workers: int, kernel: str | None = None) -> Pool:
    """Start ``workers`` worker processes (forkserver or spawn) and wait until all run.

    Parameters
    ----------
    workers : int
        Processes (≥ 1).
    kernel : {"numba", "numpy"}, optional
        The statistics kernel loaded in every worker before the pool is handed out.

    Raises
    ------
    LabError
        A worker could not start (in a script: the ``__main__`` guard is missing).
    """
    ctx = mp.get_context(START_METHOD)
    if START_METHOD == "forkserver":
        ctx.set_forkserver_preload(PRELOAD)  # only used when the server first starts
    env = dict.fromkeys(THREAD_ENV_VARS, "1")
    mark = {MARK: kernel or "auto"}
    t0 = time.perf_counter()
    pool: Pool | None = None
    try:
        if START_METHOD == "forkserver":
            start_forkserver(kernel)
        # whole or not at all (a Ctrl-C meanwhile is held, a few ms): the queues'
        # semaphores registered, every worker process known to the pool
        with interrupts.deferred(), pinned_threads_env(**mark):
            executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                           initargs=(env,))
            pool = Pool("process", workers, executor, 0.0, START_METHOD)
            # start every worker now, not one per submit (private; submits alone also work)
            launch = getattr(executor, "_launch_processes", None)
            if launch is not None:
                launch()
        with pinned_threads_env(**mark):
            for f in [executor.submit(_ready, kernel) for _ in range(workers)]:
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


def start_thread_pool(workers: int, kernel: str | None = None) -> Pool:
    """Start ``workers`` threads, with the kernel they share loaded first."""
    t0 = time.perf_counter()
    warm_kernel(kernel)  # the threads share this process's kernel: load it once, before
    executor = ThreadPoolExecutor(workers, thread_name_prefix="labkit")
    for f in [executor.submit(time.sleep, 0.001) for _ in range(workers)]:
        f.result()
    return Pool("thread", workers, executor, time.perf_counter() - t0, None)
