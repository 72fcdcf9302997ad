"""Faults the tests inject into labkit runs: workers and ranks that die, tasks that last.

Nothing here ships with labkit: the faults are put in place from outside, by patching
labkit's own functions, in this process (:func:`inject`, with pytest's ``monkeypatch``)
or in a ``labkit`` command started by a test (:func:`command`: ``python tests/faults.py
FAULT ARGV...`` runs ``labkit ARGV...`` exactly as ``python -m labkit`` does, with the
fault in place).

Faults
------
``kill-workers``
    every task a run submits to its pool is replaced by a SIGKILL of the worker that
    takes it: each worker dies at its first task of the run.
``kill-second-task``
    only the run's second task: a worker dies after the first task is done.
``slow-tasks``
    every task sleeps 60 s instead (thread tasks wake when the run is abandoned): a run
    caught in the middle.
``kill-rank``
    MPI rank 1 SIGKILLs itself after its first block; ranks started by labkit's own
    launcher carry the fault too.
``slow-ranks``
    every MPI rank sleeps 60 s after each block.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
FAULTS = ("kill-workers", "kill-second-task", "slow-tasks", "kill-rank", "slow-ranks")
DELAY_S = 60.0  # a slow task or rank: longer than any test waits for it


class _Setter:
    """``setattr`` that remembers nothing (a command runs once, then exits)."""

    @staticmethod
    def setattr(target: Any, name: str, value: Any) -> None:
        setattr(target, name, value)


def _pool_fault(fault: str) -> Callable[..., Any]:
    """A replacement for ``Session.submit`` that injects ``fault`` into the tasks."""
    from labkit.backends._session import Session

    submit = Session.submit

    def faulty(self: Session, fn: Callable[..., Any], *args: Any) -> Any:
        n = len(self.futures)
        if fault == "kill-workers" or (fault == "kill-second-task" and n == 1):
            if self.pool.kind == "process":
                return submit(self, signal.raise_signal, signal.SIGKILL)
        if fault == "slow-tasks":
            if self.pool.kind == "thread":
                return submit(self, self.stop.wait, DELAY_S)
            return submit(self, time.sleep, DELAY_S)
        return submit(self, fn, *args)

    return faulty


def _rank_fault(fault: str) -> Callable[..., Iterator[Any]]:
    """A replacement for the blocks every MPI rank reads that injects ``fault``."""
    from labkit.backends.mpi import spmd
    from labkit.backends.mpi._world import world_rank

    blocks = spmd.blocks

    def faulty(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for item in blocks(*args, **kwargs):
            yield item
            if fault == "slow-ranks":
                time.sleep(DELAY_S)
            elif world_rank() == 1:
                os.kill(os.getpid(), signal.SIGKILL)

    return faulty


def _rank_command(fault: str) -> Callable[[Path], list[str]]:
    """labkit's launcher command for each rank, with ``fault`` in place on the ranks."""
    def command(job: Path) -> list[str]:
        return [sys.executable, str(HERE), fault, "--rank-job", str(job)]
    return command


def inject(fault: str, monkeypatch: Any = _Setter) -> None:
    """Put ``fault`` in place in this process (undone by ``monkeypatch`` when given)."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}: valid are {', '.join(FAULTS)}")
    if fault in ("kill-rank", "slow-ranks"):
        from labkit.backends.mpi import launcher, spmd

        monkeypatch.setattr(spmd, "blocks", _rank_fault(fault))
        monkeypatch.setattr(launcher, "rank_command", _rank_command(fault))
    else:
        from labkit.backends._session import Session

        monkeypatch.setattr(Session, "submit", _pool_fault(fault))


def command(fault: str, *argv: str) -> list[str]:
    """The command line of ``labkit ARGV`` run with ``fault`` in place."""
    return [sys.executable, str(HERE), fault, *map(str, argv)]


def engine_code(fault: str) -> str:
    """Python to execute on ipyparallel MPI engines to put ``fault`` in place there."""
    return (f"import sys; sys.path.insert(0, {str(HERE.parent)!r}); "
            f"import faults; faults.inject({fault!r})")


def _main(args: list[str]) -> None:
    fault, rest = args[0], args[1:]
    if sys.path and sys.path[0] == str(HERE.parent):  # labkit's modules, not this folder's
        del sys.path[0]
    inject(fault)
    if rest[:1] == ["--rank-job"]:
        from labkit.backends.mpi.launcher import main

        raise SystemExit(main(rest[1:]))
    sys.argv = ["labkit", *rest]
    runpy.run_module("labkit", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
