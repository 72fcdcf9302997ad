"""The forkserver every process pool forks its workers from, started once per session.

Start method: ``forkserver`` where the platform has it (Linux, macOS), else ``spawn``.

* ``fork`` is not safe in Jupyter: the kernel process runs threads (ZeroMQ, heartbeat,
  GDAL's), and a forked child inherits their locks in whatever state they were (Python
  3.12 warns, 3.14 no longer uses it by default).
* ``spawn`` is safe but every worker starts a new interpreter and imports NumPy and
  rasterio again (≈ 0.3-0.5 s per worker).
* ``forkserver`` starts one clean single-threaded server once per session (with NumPy,
  rasterio and labkit preloaded, the reduction kernel loaded, BLAS pinned to 1 thread);
  each worker is then a cheap ``fork`` of that server. Measured on 2 cores: first pool
  ≈ 0.5-1 s (server start), later pools of 2 ≈ 0.03-0.1 s; ``spawn`` pools ≈ 0.4-0.8 s
  every time.

Ctrl-C: the forkserver is started with SIGINT blocked, ignores it once it has imported its
preloads, and its workers inherit that: none of them ever takes a Ctrl-C (no traceback
from a worker or from the forkserver's imports).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator

from labkit import interrupts
from labkit.config import THREAD_ENV_VARS

__all__ = ["PRELOAD", "START_METHOD", "pinned_threads_env", "start_forkserver", "warm_kernel"]

START_METHOD = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
# imported once by the forkserver so that forked workers start warm
PRELOAD = ["numpy", "rasterio", "threadpoolctl", "labkit.io", "labkit.stats",
           "labkit.backends._forkserver", "labkit.backends._pool", "labkit.backends.mem"]
FORKSERVER_WAIT_S = 120.0  # s at most to wait for the forkserver's preloads (cold Numba cache)
MARK = "LABKIT_FORKSERVER"  # set while the server starts: the kernel it preloads
READY = "LABKIT_FORKSERVER_READY"  # a file the server creates once it serves


@contextlib.contextmanager
def pinned_threads_env(**extra: str) -> Iterator[None]:
    """Set every ``*_NUM_THREADS`` variable to 1 (and ``extra``) inside the block, then
    restore them: what child processes started inside inherit.
    """
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


def warm_kernel(kernel: str | None = None) -> None:
    """Load the reduction kernel (Numba: JIT cache, ~0.5 s) so a run does not pay it.

    Never raises: if the kernel cannot load, the run itself reports why.
    """
    from labkit.stats import warm_up

    with contextlib.suppress(Exception):
        warm_up(kernel=kernel)


def _serve_warm() -> None:
    """In the forkserver, after its preloads: ignore SIGINT, load the kernel, say ready."""
    # it started with SIGINT blocked (start_forkserver): ignore it from now on (a Ctrl-C
    # that came meanwhile is dropped), and so will every worker forked from it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    kernel = os.environ.get(MARK)
    warm_kernel(kernel if kernel in ("numba", "numpy") else None)  # every worker inherits it
    if os.environ.get(READY):  # tell the parent: it can fork workers
        with contextlib.suppress(OSError):  # it gave up waiting (Ctrl-C) and removed it
            open(os.environ[READY], "x").close()


if os.environ.get(MARK):  # imported by the forkserver (PRELOAD)
    _serve_warm()


def _exited(pid: int) -> bool:
    """True if child ``pid`` has exited (it is not reaped: multiprocessing does that)."""
    waitid = getattr(os, "waitid", None)
    if waitid is None:
        return False
    try:
        return waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def start_forkserver(kernel: str | None = None) -> None:
    """Start the forkserver if it is not running, and wait until it serves.

    It starts with SIGINT blocked: a Ctrl-C cannot interrupt its interpreter start and
    preload imports; once they are done it ignores SIGINT, as do the workers forked from
    it. This process gets a Ctrl-C that came meanwhile right after. The wait for its
    preloads (≈0.5 s, the kernel loaded) is here, where a Ctrl-C stops it at once, not in
    the workers' launch, which a Ctrl-C must not cut in half.

    Parameters
    ----------
    kernel : {"numba", "numpy"}, optional
        The statistics kernel the server loads for its workers (default: the usual
        choice, :func:`labkit.stats.kernel_name`).
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
                pinned_threads_env(**{MARK: kernel or "auto", READY: ready}):
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
