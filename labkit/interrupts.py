"""Ctrl-C (SIGINT): who takes it, and the few steps it must not cut in half.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group: the labkit
process, the forkserver, the pool workers, ``mpiexec`` and its ranks. Only the labkit
process acts on it: it raises :class:`KeyboardInterrupt`, terminates its workers, removes
partial outputs and (CLI) exits with code 130. The helper processes never take SIGINT
themselves: the forkserver starts with SIGINT blocked (:func:`sigint_blocked`), ignores it
from then on and its workers inherit that (:mod:`labkit.backends._forkserver`).

A few steps must happen whole or not at all, and a KeyboardInterrupt raised in their
middle would leave something behind: starting a child process (which would then never be
stopped), creating a shared-memory block (never unlinked), renaming a pair of outputs into
place (one of two written). They run under :func:`deferred`: a SIGINT that arrives during
the step is delivered when it ends. They are short (≤ about 0.5 s: the first forkserver
start), so Ctrl-C still ends a run at once.

The CLI's last step also runs under :func:`final`: once the command's outputs are in place,
a Ctrl-C no longer turns a finished run into an interrupted one (exit 0, outputs whole,
rather than exit 130 with the outputs there); :func:`finished` says whether that happened.

The CLI's handler (:func:`take_sigint`): the first Ctrl-C raises KeyboardInterrupt; one
that comes while that is being handled (the clean-up runs in ``except``/``finally``
blocks) is ignored, so it cannot cut the clean-up short (``mpiexec`` forwards a terminal's
Ctrl-C to its ranks once more). A KeyboardInterrupt can be lost or turned into something
else: a C extension's import turns it into an ImportError, a Cython one clears it, ctypes
callbacks (Numba's JIT) and ``__del__`` methods print and drop it. So it is not raised in
an extension's import, in llvmlite or in a ``__del__``; and until the CLI has reported the
interruption (:func:`reported`) the handler sends SIGINT to its own process again every
:data:`RETRY_S` seconds: ignored while the clean-up runs, a KeyboardInterrupt at the
first place it can be raised, or again if the command runs on as if nothing happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from labkit.errors import Interrupted

__all__ = ["MPI_INIT_WAIT_S", "RETRY_S", "commit", "deferred", "done", "final", "finished",
           "mpich_segments", "reported", "sigint_blocked", "stop_mpi_world", "stopping",
           "take_sigint", "taken", "unlink_segments"]

RETRY_S = 0.1  # s between SIGINTs the handler sends itself until the interrupt is reported
MPI_INIT_WAIT_S = 1.0  # s an interrupted rank waits in MPI_Init for the others before dying
_state = {"final": False, "finished": False, "taken": False, "reported": False}


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def deferred() -> Iterator[list[int]]:
    """Hold SIGINT while the block runs; a SIGINT that arrived is delivered at its end.

    Yields the list of held signals (empty when none arrived); clearing it drops them.
    Python delivers signals to the main thread only, so in any other thread, or where the
    handler cannot be changed, the block simply runs.
    """
    held: list[int] = []
    if not _in_main_thread():
        yield held
        return

    def hold(signum: int, frame: object) -> None:
        held.append(signum)

    try:
        old = signal.signal(signal.SIGINT, hold)
    except (ValueError, OSError):  # not the main interpreter
        yield held
        return
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, old)
        if held:
            if callable(old):
                old(signal.SIGINT, None)  # Python's default raises KeyboardInterrupt here
            elif old == signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread while the block runs (Unix; elsewhere a no-op).

    A process started inside inherits the blocked mask through ``exec``, so it cannot take
    a Ctrl-C until it unblocks or ignores SIGINT itself. This process gets a SIGINT that
    arrived meanwhile as soon as the block ends (it stays pending). Use it together with
    :func:`deferred`, which keeps the KeyboardInterrupt out of the block.
    """
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:
        yield
        return
    old = mask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        mask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def final() -> Iterator[None]:
    """Mark the block as the command's last step: once it has committed its outputs
    (:func:`commit`), :func:`finished` is true and a held SIGINT is dropped.
    """
    _state["final"] = True
    try:
        yield
    finally:
        _state["final"] = False


@contextlib.contextmanager
def commit() -> Iterator[None]:
    """The step that puts outputs in place (renames): whole, never cut by a SIGINT.

    Inside :func:`final` a SIGINT that arrived meanwhile is dropped (the work is done);
    elsewhere it is delivered when the step ends.
    """
    with deferred() as held:
        yield
        if _state["final"]:
            _state["finished"] = True
            held.clear()


def done() -> None:
    """A last step with nothing to put in place (an MPI rank other than 0): inside
    :func:`final`, the command is finished from here on.
    """
    with commit():
        pass


def finished() -> bool:
    """True once the last step (:func:`final`) has committed its outputs."""
    return _state["finished"]


def stopping() -> bool:
    """True while the main thread handles a KeyboardInterrupt (or an :class:`Interrupted`
    made of one), directly or as the context of the exception it handles: the clean-up
    after a Ctrl-C is running.
    """
    exc = sys.exc_info()[1]
    for _ in range(32):  # the chain of exceptions raised while handling others
        if exc is None:
            return False
        if isinstance(exc, (KeyboardInterrupt, Interrupted)):
            return True
        exc = exc.__context__
    return False


def _resend() -> None:
    """Watchdog thread: SIGINT to this process every :data:`RETRY_S` s until reported."""
    while True:
        time.sleep(RETRY_S)
        if _state["reported"] or _state["finished"]:
            return
        os.kill(os.getpid(), signal.SIGINT)


def _unsafe(frame: Any) -> bool:
    """True when a KeyboardInterrupt raised in ``frame`` would be lost, printed or turned
    into another error: inside a C extension module's import (its init turns it into an
    ImportError, Cython's clears it), in llvmlite (Numba's JIT calls back into Python
    through ctypes, which prints and drops it), or in a ``__del__`` (called by the garbage
    collector, which drops it).
    """
    for _ in range(256):
        if frame is None:
            return False
        code = frame.f_code
        name = frame.f_globals.get("__name__") or ""
        if name.startswith("llvmlite") or code.co_name == "__del__":
            return True
        if (name == "importlib._bootstrap_external"
                and code.co_name in ("create_module", "exec_module")
                and type(frame.f_locals.get("self")).__name__ == "ExtensionFileLoader"):
            return True
        frame = frame.f_back
    return False


def _on_sigint(signum: int, frame: Any) -> None:
    """The CLI's SIGINT handler (see the module docstring)."""
    if _state["reported"] or _state["finished"]:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return
    if stopping():
        return
    if not _state["taken"]:
        _state["taken"] = True
        threading.Thread(target=_resend, name="labkit-sigint", daemon=True).start()
    if _unsafe(frame):  # not here: the watchdog sends it again in RETRY_S
        return
    raise KeyboardInterrupt


def taken() -> bool:
    """True once the CLI's handler has taken a Ctrl-C."""
    return _state["taken"]


def take_sigint() -> None:
    """Install the CLI's SIGINT handler (call it in the main thread of the program)."""
    signal.signal(signal.SIGINT, _on_sigint)


def reported() -> None:
    """The CLI has reported the interruption (or is exiting): SIGINT is ignored from now
    on, also by the interpreter's own teardown.
    """
    _state["reported"] = True
    if _in_main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def mpich_segments(pids: list[int | str]) -> set[str]:
    """The MPICH shared-memory files (``/dev/shm/mpich_shm_*``) these processes map.

    MPICH unlinks them when MPI is finalized; a world that is aborted or killed leaves
    them behind, so whoever ends it removes them (:func:`unlink_segments`).
    """
    found: set[str] = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as maps:
                for line in maps:
                    at = line.find("/dev/shm/mpich_shm_")
                    if at >= 0:
                        found.add(line[at:].split()[0])
        except OSError:  # gone, or no /proc
            pass
    return found


def unlink_segments(paths: set[str]) -> None:
    """Remove these shared-memory files (those already gone are skipped)."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _give_up_world() -> None:
    """Timer thread: MPI_Init did not return (a rank ended before it): end this rank by
    SIGKILL, and ``mpiexec`` ends the others.
    """
    unlink_segments(mpich_segments(["self"]))
    os.kill(os.getpid(), signal.SIGKILL)


def stop_mpi_world(code: int = 130) -> None:
    """Under ``mpiexec`` with several ranks: end every rank (``MPI_Abort(code)``).

    A rank that stops on its own after a Ctrl-C can leave the others waiting for it for
    ever (in ``MPI_Init`` or a collective). So an interrupted rank aborts the world, after
    starting MPI if it had not yet (the others may be waiting for it there); its MPICH
    shared-memory files are removed first. If MPI does not start within
    :data:`MPI_INIT_WAIT_S` (a rank was ended by the Ctrl-C before any of labkit ran), or
    cannot start, the rank ends by a signal, and ``mpiexec`` stops the others. Without
    ``mpiexec`` (or with one rank) this does nothing.
    """
    sizes = [os.environ.get(v, "") for v in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")]
    size = max((int(v) for v in sizes if v.isdigit()), default=1)
    if size <= 1:
        return
    rank = next((v for v in (os.environ.get(k, "") for k in ("PMI_RANK", "OMPI_COMM_WORLD_RANK"))
                 if v.isdigit()), "0")
    if rank != "0":  # rank 0 has said why; the others say they end the world (it may be first)
        with contextlib.suppress(OSError):
            os.write(2, f"labkit: interrupted: rank {rank}: stopped by Ctrl-C (aborting all "
                        f"{size} ranks)\n".encode())
    try:
        if "mpi4py.MPI" not in sys.modules:  # importing it starts MPI: waits for every rank
            timer = threading.Timer(MPI_INIT_WAIT_S, _give_up_world)
            timer.daemon = True
            timer.start()
            from mpi4py import MPI

            timer.cancel()
        from mpi4py import MPI

        if MPI.Is_finalized():
            return
        if not MPI.Is_initialized():
            MPI.Init()
        unlink_segments(mpich_segments(["self"]))
        MPI.COMM_WORLD.Abort(code)
        os._exit(code)  # MPICH's MPI_Abort may return before mpiexec ends the ranks
    except BaseException:  # whatever failed: do not leave the world waiting
        pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
