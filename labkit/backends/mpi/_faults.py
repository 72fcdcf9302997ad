"""What a rank does when something goes wrong, so that no rank is left waiting.

Local work (open, read, reduce) runs inside a guard; all ranks then exchange their error
messages (``allgather``) before any array moves, and if any rank failed every rank raises
the same :class:`~labkit.errors.LabError` (``rank R: <message>``). An unexpected failure
during a collective, or Ctrl-C on one rank, ends the whole world (:func:`abort`).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from labkit import interrupts
from labkit.errors import LabError

__all__ = ["abort", "first_error", "one_line"]


def one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (with its type unless it is a LabError)."""
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    return msg if isinstance(exc, LabError) else f"{type(exc).__name__}: {msg}".rstrip(": ")


def abort(comm: Any, exc: BaseException) -> None:
    """Last resort with several ranks: one line on stderr, then end the whole world."""
    if comm.size > 1:
        # mpiexec forwards a terminal's Ctrl-C once more: do not let it cut the abort short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        ctrl_c = isinstance(exc, KeyboardInterrupt)
        code = 130 if ctrl_c else 1
        what = "interrupted" if ctrl_c else "error"
        why = "stopped by Ctrl-C" if ctrl_c else one_line(exc) or type(exc).__name__
        sys.stderr.write(f"labkit: {what}: rank {comm.rank}: {why}"
                         f" (aborting all {comm.size} ranks)\n")
        sys.stderr.flush()
        interrupts.unlink_segments(interrupts.mpich_segments(["self"]))  # Abort leaves them
        comm.Abort(code)
        os._exit(code)  # MPICH's MPI_Abort may return before mpiexec ends the ranks


def first_error(comm: Any, error: str | None) -> None:
    """Share this rank's error (or None) with every rank; raise the first one on all."""
    try:
        errors = comm.allgather(error)
    except BaseException as exc:
        abort(comm, exc)
        raise
    failed = [(r, e) for r, e in enumerate(errors) if e is not None]
    if failed:
        r, e = failed[0]
        raise LabError(e if comm.size == 1 else f"rank {r}: {e}")
