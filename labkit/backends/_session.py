"""The tasks of one run on a pool, and what happens to them when the run fails.

:func:`session` hands a backend a :class:`Session` to submit its tasks to. Leaving it with
an error: queued tasks are cancelled; a dead worker becomes ``LabError(WORKER_DIED)``
after the other workers are terminated; Ctrl-C (or any non-``Exception``) terminates
worker processes and re-raises; an ordinary error (e.g. an unreadable tile) waits for
running tasks and re-raises. A pool started here is always shut down; a given pool
survives ordinary errors.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from labkit.backends._pool import Pool, start_process_pool, start_thread_pool
from labkit.errors import LabError

__all__ = ["WORKER_DIED", "Session", "session"]

WORKER_DIED = "a worker process died (killed?) during the run; no output was written"


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


def _start(kind: str, workers: int, kernel: str | None) -> Session:
    """A session on a pool started for this run (stopped again if the start is cut)."""
    pool = None
    try:
        if kind == "process":
            pool = start_process_pool(workers, kernel)
        else:
            pool = start_thread_pool(workers, kernel)
        return Session(pool, own=True)
    except BaseException:  # e.g. Ctrl-C just after the pool started: stop it
        if pool is not None:
            pool.terminate()
        raise


def _given(pool: Any, kind: str, workers: int) -> Session:
    """A session on the caller's pool, after checking it suits the run."""
    if not isinstance(pool, Pool) or pool.kind != kind:
        got = getattr(pool, "kind", type(pool).__name__)
        raise LabError(f"this backend needs a {kind} pool, got {got}: use make_pool(backend, n)")
    if pool.closed:
        raise LabError("this pool is closed: make a new one with make_pool(backend, workers)")
    if workers > pool.workers:
        raise LabError(f"the pool has {pool.workers} workers, the run asks for {workers}: "
                       f"pass workers ≤ {pool.workers} or make a bigger pool")
    return Session(pool, own=False)


def _abandon(s: Session, exc: BaseException) -> None:
    """Stop the tasks of a failed run (see the module docstring)."""
    s.stop.set()
    pool, ordinary = s.pool, isinstance(exc, Exception)
    if pool.kind == "process" and (s.own or not ordinary):
        # no cancel() first: terminating fails the pending futures itself, and on
        # Python ≤ 3.11 the executor's manager thread dies with a traceback on a
        # pending future that was cancelled from outside
        pool.terminate()
        return
    for f in s.futures:
        f.cancel()
    if s.own and ordinary:
        pool.terminate()
        return
    wait(s.futures)
    if s.own:
        pool.close()


@contextlib.contextmanager
def session(pool: Pool | None, kind: str, workers: int,
            kernel: str | None = None) -> Iterator[Session]:
    """Run tasks on ``pool`` (or on a pool of ``workers`` started and stopped here).

    Parameters
    ----------
    pool : Pool, optional
        The caller's pool; None starts one for this run.
    kind : {"process", "thread"}
        The kind of pool the backend needs.
    workers : int
        Workers the run uses.
    kernel : {"numba", "numpy"}, optional
        The statistics kernel a pool started here loads in its workers.
    """
    s = _start(kind, workers, kernel) if pool is None else _given(pool, kind, workers)
    try:
        yield s
    except BrokenProcessPool:
        s.stop.set()
        s.pool.terminate()
        raise LabError(WORKER_DIED) from None
    except BaseException as exc:
        _abandon(s, exc)
        raise
    else:
        if s.own:
            s.pool.close()
