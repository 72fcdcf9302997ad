"""labkit's own ``mpiexec`` launcher: ``labkit run mpi --workers N`` from a plain process.

:func:`launch` starts ``mpiexec -n N python -m labkit.backends.mpi JOB.json`` in its own
process group; every rank runs :func:`main`, which calls :func:`~labkit.backends.mpi.spmd.spmd`
and, on rank 0, writes the maps to ``.npy`` files and its timings to JSON, read back here.
``timings["startup"]`` is the launch overhead (subprocess wall minus rank 0's wall).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labkit import interrupts
from labkit.backends._group import end_group
from labkit.backends._result import Result
from labkit.backends.mpi._world import launcher_free_env, mpiexec_path
from labkit.errors import Interrupted, LabError
from labkit.filters import LeeFilter
from labkit.io import TileStack

__all__ = ["launch", "main", "rank_command"]

_ERROR = "labkit: error: "


def _failure(output: str, code: int, workers: int) -> str:
    """One line explaining why ``mpiexec -n workers`` failed (from its stderr + stdout)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(_ERROR):
            return ln[len(_ERROR):]
    if any("BAD TERMINATION" in ln for ln in lines):
        why = next((ln.split(":", 1)[1].strip() for ln in lines
                    if ln.startswith("YOUR APPLICATION TERMINATED WITH THE EXIT STRING")), "")
        return (f"an MPI rank died during the run ({why or f'exit code {code}'}); "
                f"mpiexec -n {workers} stopped every rank, no output was written")
    last = lines[-1] if lines else "no message"
    return f"mpiexec -n {workers} failed with exit code {code}: {last}"


def rank_command(job: Path) -> list[str]:
    """What every rank runs: ``python -m labkit.backends.mpi JOB.json``."""
    return [sys.executable, "-m", "labkit.backends.mpi", str(job)]


def _run_world(cmd: list[str], workers: int, timeout: float | None) -> float:
    """Run ``cmd`` (``mpiexec ...``) in its own process group; return its wall seconds.

    Ctrl-C or ``timeout`` (s) end the whole group; a failed world is a one-line LabError.
    """
    t0 = time.perf_counter()
    proc: subprocess.Popen | None = None
    try:
        with interrupts.deferred():  # a Ctrl-C comes once proc is known (and killed)
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=launcher_free_env(),
                                    text=True, start_new_session=True)
        out, err = proc.communicate(timeout=timeout)
    except KeyboardInterrupt:
        raise Interrupted(f"stopped by Ctrl-C: the {workers} MPI ranks were killed, "
                          "no output written") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"the MPI run took longer than {timeout} s: its {workers} ranks "
                       "were killed") from None
    finally:
        if proc is not None and proc.returncode is None:
            end_group(proc)
    if proc.returncode != 0:
        raise LabError(_failure(f"{err}\n{out}", proc.returncode, workers))
    return time.perf_counter() - t0


def launch(stack: TileStack, workers: int, *, split: str = "rows",
           block_rows: int | None = None, ddof: int = 0, min_count: int | None = None,
           kernel: str | None = None, timeout: float | None = None,
           filter: LeeFilter | None = None) -> Result:
    """Run :func:`~labkit.backends.mpi.spmd.spmd` on ``workers`` fresh ranks.

    The ranks run in their own process group with ``*_NUM_THREADS=1``. Ctrl-C or
    ``timeout`` (s) kill the whole group. ``filter``: the Lee filter (its K and ENL go
    to the ranks as numbers).

    Returns
    -------
    Result
        As ``spmd`` on rank 0, with the launch overhead added to ``timings["startup"]``
        (subprocess wall minus rank 0's own wall: mpiexec, interpreters, imports,
        MPI_Init/Finalize, result files), and ``meta["command"]``.
    """
    with tempfile.TemporaryDirectory(prefix="labkit-mpi-") as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({
            "paths": [str(p) for p in stack.paths], "split": split, "block_rows": block_rows,
            "ddof": ddof, "min_count": min_count, "kernel": kernel, "out": tmp,
            "filter": None if filter is None else [filter.k, filter.enl],
        }))
        cmd = [mpiexec_path(), "-n", str(workers), *rank_command(job)]
        wall = _run_world(cmd, workers, timeout)
        info = json.loads((Path(tmp) / "result.json").read_text())
        mean = np.load(Path(tmp) / "mean.npy")
        std = np.load(Path(tmp) / "std.npy")
    timings = info["timings"]
    timings["startup"] += max(0.0, wall - info["meta"]["rank0_wall"])
    meta = {**info["meta"], "command": shlex.join(cmd[:-1] + ["JOB.json"])}
    return Result(mean, std, timings, info["bytes_read"], meta)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m labkit.backends.mpi JOB.json`` (every rank runs it).

    ``JOB.json`` holds ``paths``, ``split``, ``block_rows``, ``ddof``, ``min_count``,
    ``kernel``, ``filter`` (null or [K, ENL]) and ``out`` (a folder where rank 0 writes
    ``mean.npy``, ``std.npy``, ``result.json``). Returns 0, or 2 after rank 0 printed one
    ``labkit: error:`` line.
    """
    from labkit.backends.mpi.spmd import spmd

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: mpiexec -n N python -m labkit.backends.mpi JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text())
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    filt = job.get("filter")
    try:
        result = spmd(comm, job["paths"], split=job["split"], block_rows=job["block_rows"],
                      ddof=job["ddof"], min_count=job["min_count"], kernel=job.get("kernel"),
                      filter=None if filt is None else LeeFilter(filt[0], filt[1]))
    except LabError as exc:
        if comm.rank == 0:
            print(f"{_ERROR}{exc}", file=sys.stderr)
        return 2
    if comm.rank == 0:
        out = Path(job["out"])
        np.save(out / "mean.npy", result.mean)
        np.save(out / "std.npy", result.std)
        (out / "result.json").write_text(json.dumps({
            "timings": result.timings, "bytes_read": result.bytes_read, "meta": result.meta,
        }))
    return 0
