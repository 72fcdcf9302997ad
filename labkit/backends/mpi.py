"""MPI backend (mpi4py): split the work by rows or by dates over the ranks of a world.

One SPMD function, :func:`spmd`, runs on every rank of a communicator:

``split="rows"``
    Each rank reduces a contiguous slab of rows over all dates with
    :func:`labkit.stats.reduce_stack`; rank 0 collects the float32 slabs with ``Gatherv``.
    Bitwise identical to ``sequential`` (every pixel sees the same operations).
``split="dates"``
    Each rank accumulates a contiguous chunk of dates over the whole tile into a
    :class:`labkit.stats.Partial` (count, mean, M2 in float64); rank 0 collects the partial
    arrays with ``Gather`` and merges them in rank order with :func:`labkit.stats.merge`.
    Within 1 float32 ulp of ``sequential`` (the float64 sums are grouped differently).

Arrays travel with the upper-case buffer methods (no pickling); only small objects
(error messages, per-rank timings) use the lower-case ones.

Where the ranks come from (:func:`compute`):

* under ``mpiexec -n N labkit run mpi ...`` every rank runs the CLI; rank 0 gets the full
  maps (and writes the outputs), the other ranks get ``(0, cols)`` arrays;
* ``pool`` is a :class:`labkit.cluster.MpiCluster` (or an ipyparallel ``Client`` /
  ``Cluster`` with MPI engines): the engines run :func:`spmd` (:mod:`labkit.cluster`);
* in-process with ``workers > 1`` (notebook, benchmarks): :func:`launch` starts
  ``mpiexec -n workers python -m labkit.backends.mpi JOB.json`` in its own process group,
  and ``timings["startup"]`` is the launch overhead (subprocess wall minus rank 0's wall);
* ``workers == 1`` without ``mpiexec``: a world of one rank in this process.

Errors never hang the world: every rank does its local work (open, read, reduce) inside a
guard, then all ranks exchange their error messages (``allgather``) before any array
moves; if any rank failed, every rank raises the same :class:`~labkit.errors.LabError`
(``rank R: <message>``), so the CLI exits with code 2 and rank 0 prints one line. An
unexpected failure during the collective phase, or Ctrl-C on one rank, aborts the whole
world (``comm.Abort``).

Test hooks: ``LABKIT_TEST_KILL_RANK=R`` makes rank R SIGKILL itself after its first block
(to test that a dying rank ends the job without a hang); ``LABKIT_TEST_TASK_DELAY=S``
makes every rank sleep S seconds after each block (to catch a run in the middle).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit import interrupts
from labkit.backends import Result, io_block_rows
from labkit.errors import Interrupted, LabError
from labkit.io import StackReader, TileStack, open_stack
from labkit.stats import (
    Accumulator,
    Partial,
    cache_block_rows,
    finalize,
    merge,
    reduce_stack,
    warm_up,
)

__all__ = [
    "SPLITS",
    "THREAD_ENV",
    "compute",
    "launch",
    "main",
    "make_pool",
    "mpiexec_path",
    "spmd",
    "world_rank",
    "world_size",
]

SPLITS = ("rows", "dates")
THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                               "BLIS_NUM_THREADS")}
KILL_GRACE_S = 3.0  # seconds between SIGTERM and SIGKILL when stopping an mpiexec group
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


# --------------------------------------------------------------------------- world


def _env_int(names: tuple[str, ...], default: int) -> int:
    """The first of the launcher's variables ``names`` that holds a whole number."""
    for var in names:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return default


def world_size() -> int:
    """Ranks in the MPI world this process was started in (1 without ``mpiexec``).

    Read from the launcher's environment (``PMI_SIZE``, ``OMPI_COMM_WORLD_SIZE``), so MPI
    is not initialised by asking.
    """
    return _env_int(_SIZE_VARS, 1)


def world_rank() -> int:
    """This process's rank under ``mpiexec`` (0 without it); read from the environment."""
    return _env_int(_RANK_VARS, 0)


def mpiexec_path() -> str:
    """The ``mpiexec`` next to ``sys.executable`` (the venv's mpich wheel), else on PATH."""
    local = Path(sys.executable).parent / "mpiexec"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("mpiexec")
    if found is None:
        raise LabError("mpiexec not found next to Python or on PATH: install the mpich wheel "
                       "(pip install mpich) or an MPI library (conda install mpich)")
    return found


# --------------------------------------------------------------------------- local work


def _share(total: int, size: int, rank: int) -> tuple[int, int]:
    """[start, stop) of ``rank``'s contiguous share of ``total`` items (sizes differ ≤ 1)."""
    return total * rank // size, total * (rank + 1) // size


def _test_hook(rank: int) -> None:
    if os.environ.get("LABKIT_TEST_KILL_RANK", "") == str(rank):
        os.kill(os.getpid(), signal.SIGKILL)
    delay = float(os.environ.get("LABKIT_TEST_TASK_DELAY", 0) or 0)  # s: caught mid-run
    if delay > 0:
        time.sleep(delay)


def _warm_kernel(split: str, min_count: int | None) -> float:
    """Load the kernel :func:`reduce_stack` will use (the fused one imports Numba, ≈0.5 s
    in a fresh process) on a 1-pixel stack, so that cost is timed as start-up, not
    compute. Returns seconds."""
    return warm_up(min_count) if split == "rows" else 0.0


def _blocks(paths: list[Path], lo: int, hi: int, br: int, cols: int, rank: int,
            times: dict[str, float], progress: Callable[[int, int], None] | None,
            ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(r0, block)`` for rows ``lo..hi`` of every tile in ``paths``, ``br`` rows at a
    time into one reused (dates, rows, cols) float32 buffer. Adds the read seconds, the
    bytes and the caller's compute seconds (the time until the next block is asked for) to
    ``times``."""
    starts = range(lo, hi, br)
    buffer = np.empty((len(paths), min(br, hi - lo), cols), np.float32)
    with StackReader(paths) as reader:  # every tile opened once, not once per block
        for i, r0 in enumerate(starts):
            n = min(br, hi - r0)
            block = buffer[:, :n] if n == buffer.shape[1] else np.empty_like(buffer[:, :n])
            t0 = time.perf_counter()
            reader.read(r0, n, out=block)
            t1 = time.perf_counter()
            yield r0, block
            times["read"] += t1 - t0
            times["compute"] += time.perf_counter() - t1
            times["bytes_read"] += block.nbytes
            _test_hook(rank)
            if progress:
                progress(i + 1, len(starts))


def _rows_local(stack: TileStack, rank: int, size: int, br: int, ddof: int,
                min_count: int | None, times: dict[str, float],
                progress: Callable[[int, int], None] | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (float32) of this rank's slab of rows, read ``br`` rows at a time."""
    lo, hi = _share(stack.rows, size, rank)
    mean = np.empty((hi - lo, stack.cols), np.float32)
    std = np.empty_like(mean)
    for r0, block in _blocks(stack.paths, lo, hi, br, stack.cols, rank, times, progress):
        n = block.shape[1]
        reduce_stack(block, ddof=ddof, min_count=min_count,
                     out=(mean[r0 - lo:r0 - lo + n], std[r0 - lo:r0 - lo + n]))
    return mean, std


def _dates_local(stack: TileStack, rank: int, size: int, br: int, nan_aware: bool,
                 times: dict[str, float],
                 progress: Callable[[int, int], None] | None) -> Partial:
    """Partial (count, mean, M2) of this rank's chunk of dates over the whole tile."""
    lo, hi = _share(stack.n_dates, size, rank)
    shape = (stack.rows, stack.cols)
    part = Partial(np.zeros(shape, np.int64), np.zeros(shape), np.zeros(shape))
    if hi == lo:
        return part
    kb = cache_block_rows(stack.cols)
    acc: Accumulator | None = None
    for r0, block in _blocks(stack.paths[lo:hi], 0, stack.rows, br, stack.cols, rank, times,
                             progress):
        n = block.shape[1]
        for k0 in range(0, n, kb):
            k1 = min(n, k0 + kb)
            if acc is None or acc.shape[0] != k1 - k0:
                acc = Accumulator((k1 - k0, stack.cols), nan_aware=nan_aware)
            acc.reset()
            for b in block:
                acc.add(b[k0:k1])
            p = acc.partial()
            part.count[r0 + k0:r0 + k1] = p.count
            part.mean[r0 + k0:r0 + k1] = p.mean
            part.m2[r0 + k0:r0 + k1] = p.m2
    return part


# --------------------------------------------------------------------------- SPMD


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    return msg if isinstance(exc, LabError) else f"{type(exc).__name__}: {msg}".rstrip(": ")


def _abort(comm: Any, exc: BaseException) -> None:
    """Last resort with several ranks: one line on stderr, then end the whole world."""
    if comm.size > 1:
        # mpiexec forwards a terminal's Ctrl-C once more: do not let it cut the abort short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        ctrl_c = isinstance(exc, KeyboardInterrupt)
        code = 130 if ctrl_c else 1
        what = "interrupted" if ctrl_c else "error"
        why = "stopped by Ctrl-C" if ctrl_c else _one_line(exc) or type(exc).__name__
        sys.stderr.write(f"labkit: {what}: rank {comm.rank}: {why}"
                         f" (aborting all {comm.size} ranks)\n")
        sys.stderr.flush()
        interrupts.unlink_segments(interrupts.mpich_segments(["self"]))  # Abort leaves them
        comm.Abort(code)
        os._exit(code)  # MPICH's MPI_Abort may return before mpiexec ends the ranks


def _gather_rows(comm: Any, stack: TileStack, local: tuple[np.ndarray, np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Gatherv the float32 slabs into full maps on rank 0 ((0, cols) elsewhere)."""
    from mpi4py import MPI

    rows, cols, size = stack.rows, stack.cols, comm.size
    if comm.rank != 0:
        for a in local:
            comm.Gatherv(a, None, root=0)
        return (np.empty((0, cols), np.float32),) * 2
    shares = [_share(rows, size, r) for r in range(size)]
    counts = [(hi - lo) * cols for lo, hi in shares]
    displs = [lo * cols for lo, _ in shares]
    out = []
    for a in local:
        full = np.empty((rows, cols), np.float32)
        comm.Gatherv(a, [full, counts, displs, MPI.FLOAT], root=0)
        out.append(full)
    return out[0], out[1]


def _gather_dates(comm: Any, stack: TileStack, part: Partial, ddof: int,
                  min_count: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Gather the partials on rank 0, merge them in rank order, finalize."""
    rows, cols, size = stack.rows, stack.cols, comm.size
    nan_aware = min_count is not None
    root = comm.rank == 0
    arrays = [part.mean, part.m2] + ([part.count] if nan_aware else [])
    recv = [np.empty((size, rows, cols), a.dtype) if root else None for a in arrays]
    for a, r in zip(arrays, recv, strict=True):
        comm.Gather(a, r, root=0)
    if not root:
        return (np.empty((0, cols), np.float32),) * 2
    total: Partial | None = None
    for r in range(size):
        if nan_aware:
            count = recv[2][r]
        else:  # strict: every pixel of rank r saw all its dates; no need to send counts
            lo, hi = _share(stack.n_dates, size, r)
            count = np.asarray(hi - lo, np.int64)
        p = Partial(count, recv[0][r], recv[1][r])
        total = p if total is None else merge(total, p)
    assert total is not None
    return finalize(total, ddof, min_count)


def spmd(comm: Any, src: TileStack | str | os.PathLike[str] | Sequence[Any], *,
         split: str = "rows", block_rows: int | None = None, ddof: int = 0,
         min_count: int | None = None,
         progress: Callable[[int, int], None] | None = None) -> Result:
    """Temporal mean and std with every rank of ``comm`` (call it on all ranks).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The communicator (``MPI.COMM_WORLD`` under ``mpiexec`` or on ipyparallel engines).
    src : TileStack, folder, or list of tile files
        Opened and validated on every rank if not already a :class:`TileStack`.
    split : {"rows", "dates"}, default "rows"
        How the work is divided (see the module docstring).
    block_rows : int, optional
        Rows read per date per I/O block (default :func:`~labkit.backends.io_block_rows`).
    ddof, min_count
        See :func:`labkit.stats.finalize`.
    progress : callable(done, total), optional
        Called on rank 0 after each of its blocks.

    Returns
    -------
    Result
        On rank 0 the full (rows, cols) float32 maps; other ranks get (0, cols) arrays.
        ``timings`` (s): ``startup`` = the slowest rank's kernel load (Numba import in a
        fresh process, ~0 afterwards), ``read`` and ``compute`` of the busiest rank,
        ``merge`` = rank 0's communicate + merge time (after every rank finished its
        local work).
        ``meta``: ``rank``, ``size``, ``split``, ``block_rows`` and, on rank 0,
        ``per_rank`` (one dict per rank: startup, read, compute, wait, merge, wall in s,
        bytes_read, host, pid, share = [first, stop) row or date), ``wait`` (s rank 0
        waited for the slowest rank) and ``rank0_wall`` (s).

    Raises
    ------
    LabError
        On every rank, if any rank failed its local work (``rank R: <message>``).
    """
    t_start = time.perf_counter()
    rank, size = comm.rank, comm.size
    times = {"startup": 0.0, "read": 0.0, "compute": 0.0, "bytes_read": 0}
    br = block_rows or 0
    error = None
    local: Any = None
    stack: TileStack | None = src if isinstance(src, TileStack) else None
    try:
        if split not in SPLITS:
            raise LabError(f"unknown split {split!r} for mpi: valid are {', '.join(SPLITS)}")
        if stack is None:
            stack = open_stack(src if isinstance(src, (str, os.PathLike)) else list(src))
        br = block_rows or io_block_rows(stack.n_dates, stack.cols)
        prog = progress if rank == 0 else None
        times["startup"] = _warm_kernel(split, min_count)
        if split == "rows":
            local = _rows_local(stack, rank, size, br, ddof, min_count, times, prog)
        else:
            local = _dates_local(stack, rank, size, br, min_count is not None, times, prog)
    except Exception as exc:  # reported to every rank below, so no rank is left waiting
        error = _one_line(exc) or type(exc).__name__
    except BaseException as exc:  # Ctrl-C on this rank only: the others may be in MPI calls
        _abort(comm, exc)
        raise
    t_local = time.perf_counter()
    try:
        errors = comm.allgather(error)
    except BaseException as exc:
        _abort(comm, exc)
        raise
    failed = [(r, e) for r, e in enumerate(errors) if e is not None]
    if failed:
        r, e = failed[0]
        raise LabError(e if size == 1 else f"rank {r}: {e}")
    assert stack is not None
    t_comm = time.perf_counter()
    try:
        if split == "rows":
            mean, std = _gather_rows(comm, stack, local)
        else:
            mean, std = _gather_dates(comm, stack, local, ddof, min_count)
        t_end = time.perf_counter()
        mine = {
            "rank": rank, "host": socket.gethostname(), "pid": os.getpid(),
            "share": list(_share(stack.rows if split == "rows" else stack.n_dates, size, rank)),
            "startup": times["startup"], "read": times["read"], "compute": times["compute"],
            "wait": t_comm - t_local,
            "merge": t_end - t_comm, "wall": t_end - t_start,
            "bytes_read": int(times["bytes_read"]),
        }
        per_rank = comm.gather(mine, root=0)
    except BaseException as exc:
        _abort(comm, exc)
        raise
    meta: dict[str, Any] = {"rank": rank, "size": size, "split": split, "block_rows": br}
    if rank != 0:
        return Result(mean, std, {"startup": times["startup"], "read": times["read"],
                                  "compute": times["compute"], "merge": mine["merge"]},
                      mine["bytes_read"], meta)
    busiest = max(per_rank, key=lambda d: d["read"] + d["compute"])
    meta.update(per_rank=per_rank, wait=mine["wait"], rank0_wall=mine["wall"])
    timings = {"startup": max(d["startup"] for d in per_rank), "read": busiest["read"],
               "compute": busiest["compute"], "merge": mine["merge"]}
    return Result(mean, std, timings, sum(d["bytes_read"] for d in per_rank), meta)


# --------------------------------------------------------------------------- launcher


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop ``mpiexec`` and every process under it, then remove the MPICH shared-memory
    files its ranks mapped (a killed world leaves them in ``/dev/shm``).

    SIGTERM to its process group and to each of its descendants (Hydra puts its proxy and
    every rank in a process group of their own), SIGKILL to whatever is left after
    :data:`KILL_GRACE_S`; ``mpiexec`` is reaped.
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
    _, alive = psutil.wait_procs(procs, timeout=KILL_GRACE_S)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(KILL_GRACE_S)
    with contextlib.suppress(ProcessLookupError):  # ranks that outlived mpiexec
        os.killpg(proc.pid, signal.SIGKILL)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=KILL_GRACE_S)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(KILL_GRACE_S)
    interrupts.unlink_segments(segments)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _failure(output: str, code: int, workers: int) -> str:
    """One line explaining why ``mpiexec -n workers`` failed (from its stderr + stdout)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("labkit: error: "):
            return ln[len("labkit: error: "):]
    if any("BAD TERMINATION" in ln for ln in lines):
        why = next((ln.split(":", 1)[1].strip() for ln in lines
                    if ln.startswith("YOUR APPLICATION TERMINATED WITH THE EXIT STRING")), "")
        return (f"an MPI rank died during the run ({why or f'exit code {code}'}); "
                f"mpiexec -n {workers} stopped every rank, no output was written")
    last = lines[-1] if lines else "no message"
    return f"mpiexec -n {workers} failed with exit code {code}: {last}"


def launch(stack: TileStack, workers: int, *, split: str = "rows",
           block_rows: int | None = None, ddof: int = 0, min_count: int | None = None,
           timeout: float | None = None) -> Result:
    """Run :func:`spmd` on ``workers`` fresh ranks: ``mpiexec -n workers python -m ...``.

    The ranks run in their own process group with ``*_NUM_THREADS=1``; rank 0 writes the
    maps to temporary ``.npy`` files and its timings to JSON, read back here. Ctrl-C or
    ``timeout`` (s) kill the whole group.

    Returns
    -------
    Result
        As :func:`spmd` on rank 0, with the launch overhead added to
        ``timings["startup"]`` (subprocess wall minus rank 0's own wall: mpiexec,
        interpreters, imports, MPI_Init/Finalize, result files), and ``meta["command"]``.
    """
    exe = mpiexec_path()
    with tempfile.TemporaryDirectory(prefix="labkit-mpi-") as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({
            "paths": [str(p) for p in stack.paths], "split": split, "block_rows": block_rows,
            "ddof": ddof, "min_count": min_count, "out": tmp,
        }))
        cmd = [exe, "-n", str(workers), sys.executable, "-m", "labkit.backends.mpi", str(job)]
        env = {k: v for k, v in os.environ.items()  # not a nested launcher's PMI/Hydra state
               if not k.startswith(("PMI_", "PMIX_", "HYDI_", "OMPI_COMM_WORLD_"))}
        env.update(THREAD_ENV)
        t0 = time.perf_counter()
        proc: subprocess.Popen | None = None
        try:
            with interrupts.deferred():  # a Ctrl-C comes once proc is known (and killed)
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, text=True,
                                        start_new_session=True)
            out, err = proc.communicate(timeout=timeout)
        except KeyboardInterrupt:
            raise Interrupted(f"stopped by Ctrl-C: the {workers} MPI ranks were killed, "
                              "no output written") from None
        except subprocess.TimeoutExpired:
            raise LabError(f"the MPI run took longer than {timeout} s: its {workers} ranks "
                           "were killed") from None
        finally:
            if proc is not None and proc.returncode is None:
                _kill_group(proc)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise LabError(_failure(f"{err}\n{out}", proc.returncode, workers))
        info = json.loads((Path(tmp) / "result.json").read_text())
        mean = np.load(Path(tmp) / "mean.npy")
        std = np.load(Path(tmp) / "std.npy")
    timings = info["timings"]
    timings["startup"] += max(0.0, wall - info["meta"]["rank0_wall"])
    meta = {**info["meta"], "command": shlex.join(cmd[:-1] + ["JOB.json"])}
    return Result(mean, std, timings, info["bytes_read"], meta)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m labkit.backends.mpi JOB.json`` (every rank runs it).

    ``JOB.json`` holds ``paths``, ``split``, ``block_rows``, ``ddof``, ``min_count`` and
    ``out`` (a folder where rank 0 writes ``mean.npy``, ``std.npy``, ``result.json``).
    Returns 0, or 2 after rank 0 printed one ``labkit: error:`` line.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: mpiexec -n N python -m labkit.backends.mpi JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text())
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    try:
        result = spmd(comm, job["paths"], split=job["split"], block_rows=job["block_rows"],
                      ddof=job["ddof"], min_count=job["min_count"])
    except LabError as exc:
        if comm.rank == 0:
            print(f"labkit: error: {exc}", file=sys.stderr)
        return 2
    if comm.rank == 0:
        out = Path(job["out"])
        np.save(out / "mean.npy", result.mean)
        np.save(out / "std.npy", result.std)
        (out / "result.json").write_text(json.dumps({
            "timings": result.timings, "bytes_read": result.bytes_read, "meta": result.meta,
        }))
    return 0


# --------------------------------------------------------------------------- backend API


def make_pool(workers: int) -> Any:
    """A reusable pool for this backend: an ipyparallel MPI cluster of ``workers`` engines.

    See :func:`labkit.cluster.start_cluster`; stop it with ``.close()`` or a ``with`` block.
    """
    from labkit.cluster import start_cluster

    return start_cluster(workers)


def compute(stack: TileStack, *, workers: int = 1, split: str | None = None,
            block_rows: int | None = None, ddof: int = 0, min_count: int | None = None,
            pool: Any = None, progress: Callable[[int, int], None] | None = None,
            **_: Any) -> Result:
    """Mean and std with MPI ranks (see the module docstring for where they come from).

    Parameters
    ----------
    stack : TileStack
    workers : int, default 1
        Ranks. Under ``mpiexec`` or with a cluster ``pool`` it must be 1 (the default:
        every rank/engine) or the world size / engine count.
    split : {"rows", "dates"}, default "rows"
    block_rows, ddof, min_count, progress
        See :func:`spmd`.
    pool : MpiCluster or ipyparallel Client/Cluster, optional
        Run on its MPI engines (start-up not timed).
    """
    split = split or SPLITS[0]
    if pool is not None:
        from labkit.cluster import run_on_engines

        n = getattr(pool, "n", None)
        if n is not None and workers not in (1, n):
            raise LabError(f"workers={workers} but the MPI cluster has {n} engines: pass "
                           f"workers={n} (or leave it out) or start a cluster of {workers}")
        return run_on_engines(pool, stack, split=split, block_rows=block_rows, ddof=ddof,
                              min_count=min_count)
    size = world_size()
    if size > 1:
        if workers not in (1, size):
            raise LabError(f"--workers {workers} does not match mpiexec -n {size}: "
                           "leave --workers out under mpiexec")
    elif workers > 1:
        result = launch(stack, workers, split=split, block_rows=block_rows, ddof=ddof,
                        min_count=min_count)
        if progress:
            progress(1, 1)
        return result
    from mpi4py import MPI

    return spmd(MPI.COMM_WORLD, stack, split=split, block_rows=block_rows, ddof=ddof,
                min_count=min_count, progress=progress)


if __name__ == "__main__":
    from labkit.backends.mpi import main as _main  # the importable module, not __main__

    raise SystemExit(_main())
