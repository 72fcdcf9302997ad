"""Ending child processes for good: a whole process group (``mpiexec`` and its ranks, a
timed ``labkit run``), or a list of processes (an ipyparallel cluster).

Whatever is ended, the MPICH shared-memory files its processes mapped are removed too
(a killed MPI world leaves them in ``/dev/shm``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from labkit import interrupts
from labkit.config import KILL_GRACE_S

__all__ = ["alive", "end_group", "kill_processes", "wait_dead"]


def alive(proc: Any) -> bool:
    """True while the psutil process ``proc`` runs (a zombie has exited)."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_dead(procs: Sequence[Any], timeout: float) -> list[Any]:
    """Wait up to ``timeout`` s until every process has exited; return those still alive."""
    deadline = time.monotonic() + timeout
    left = [p for p in procs if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


def kill_processes(procs: Sequence[Any], grace: float = KILL_GRACE_S,
                   reap: float = KILL_GRACE_S, segments: set[str] | None = None) -> list[int]:
    """Give ``procs`` (psutil processes) ``grace`` s to exit, SIGKILL the rest (and wait
    ``reap`` s for them), remove their MPICH shared memory (and ``segments``, found while
    they still ran). Returns the pids still alive after that.
    """
    import psutil

    segments = set(segments or ()) | interrupts.mpich_segments([p.pid for p in procs])
    left = wait_dead(procs, grace)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    left = wait_dead(left, reap)
    interrupts.unlink_segments(segments)
    return [p.pid for p in left]


def end_group(proc: subprocess.Popen, grace: float = KILL_GRACE_S) -> None:
    """Stop ``proc`` (started with ``start_new_session=True``) and every process under it.

    SIGTERM to its process group and to each of its descendants (MPICH's Hydra puts its
    proxy and every rank in a process group of their own), SIGKILL to whatever is left
    after ``grace`` seconds; ``proc`` is reaped, its pipes closed, and the MPICH
    shared-memory files its descendants mapped are removed.
    """
    import psutil

    try:
        procs = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        procs = []
    segments = interrupts.mpich_segments([p.pid for p in procs])
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, left = psutil.wait_procs(procs, timeout=grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):  # processes that outlived their parent
        os.killpg(proc.pid, signal.SIGKILL)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(left, timeout=KILL_GRACE_S)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(KILL_GRACE_S)
    interrupts.unlink_segments(segments)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
