"""Check a student's version of a design against the lab's: :func:`exercise`.

>>> from labkit import check
>>> check.exercise("sequential", my_stats, preset="tiny")      # doctest: +SKIP

The checker prepares the preset's tiles, calls the student's function, compares its
``(mean, std)`` with the lab's sequential result and times it against the lab's own
backend for the same design. It never raises for what the student's code does: it returns
an :class:`ExerciseResult` (``ok``, ``message``, the numbers) that a notebook shows as a
coloured box. Only a call that cannot be checked at all (unknown task, ``fn`` not a
function of the task's arguments, a bad preset) raises :class:`~labkit.errors.LabError`.

Verdicts
--------
right
    Bitwise identical to the lab's sequential maps, or every pixel within 1 float32 ulp
    (unit in the last place) of them: a different summation order rounds differently by
    at most that much, and the message says which of the two it is. NaN in the same
    pixels counts as equal.
wrong
    Where and by how much: max |Δ|, how many pixels are off by more than 1 ulp, one pixel
    with both values; a wrong shape, dtype or return value said plainly.
crashed
    The student's exception (type and message) and the line of the student's own code it
    came from; never a traceback from inside labkit.

Tasks and the function each one takes (``paths`` is the list of tile files in date order,
``mean`` and ``std`` are float32 arrays of shape ``(rows, cols)``, population std):

``"sequential"``  ``fn(paths) -> (mean, std)``
    One process reads the dates one by one and accumulates (02). Timed against the lab's
    ``sequential`` backend.
``"per-file"``  ``fn(paths, workers) -> (mean, std)``
    A process pool with one task per date (``Pool.map``: every image travels back to the
    parent, which accumulates). Timed against ``multiprocessing``, strategy ``per-file``.
``"partitioned"``  ``fn(paths, workers) -> (mean, std)``
    Each worker reduces a group of dates to a mergeable partial ``(count, mean, M2)``;
    the parent merges the partials (Chan et al.) and finishes. Timed against
    ``multiprocessing``, strategy ``partitioned``.
``"shared-memory"``  ``fn(paths, workers) -> (mean, std)``
    A :class:`multiprocessing.shared_memory.SharedMemory` block; worker processes reduce
    row slabs in it. Timed against ``mem``.
``"threads"``  ``fn(paths, workers) -> (mean, std)``
    Threads over row slabs, in one process. Timed against ``threads``.
``"mpi"``  ``fn(paths, comm) -> (mean, std)`` on rank 0, None on the other ranks
    Run on ``workers`` ipyparallel MPI engines (``comm`` is their ``MPI.COMM_WORLD``).
    Timed against ``mpi`` (split by rows) on the same engines.
``"halo"``  ``fn(paths, comm, lee) -> (mean, std)`` on rank 0, None elsewhere
    Rows split across ranks; each rank sends its first and last K//2 rows to its
    neighbours and receives theirs (``comm.Sendrecv``), Lee-filters its rows with ``lee``
    (a :class:`HaloLee`: ``lee(slab, above, below)``) and reduces. Compared with the lab's
    sequential result with the same filter (``filter``, default ``lee:5``) and timed
    against ``mpi`` (rows) with it.

Worker processes (``per-file``, ``partitioned``, ``shared-memory``) can only run functions
they can import: under the ``forkserver`` and ``spawn`` start methods a function defined in
a notebook cell (module ``__main__``) cannot be sent to them. Use an importable worker:
:func:`labkit.io.read_tile` (one date), :func:`partial_stats` (a group of dates) or
:func:`slab_stats` (a row slab in shared memory), or your own module (``%%writefile
my_workers.py`` in a cell, then ``from my_workers import ...``). :func:`mp_context` gives
the lab's start method, for ``ProcessPoolExecutor(workers, mp_context=mp_context())``.
Threads and MPI engines have no such limit (threads share the interpreter; ipyparallel
sends the function itself).
"""

from __future__ import annotations

import contextlib
import html
import inspect
import linecache
import math
import re
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import LabError
from labkit.filters import LeeFilter

__all__ = [
    "TASKS",
    "ExerciseResult",
    "HaloLee",
    "Task",
    "exercise",
    "mp_context",
    "partial_stats",
    "slab_stats",
    "start_method",
]


@dataclass(frozen=True)
class Task:
    """One exercise: the student's function's arguments and the lab's version of it.

    Attributes
    ----------
    name : str
        The task's name (``exercise(name, ...)``).
    args : tuple of str
        The arguments the student's function takes, in order.
    backend, strategy, split : str
        The lab backend it is timed against (and its strategy or split).
    what : str
        One line: what the function does.
    """

    name: str
    args: tuple[str, ...]
    backend: str
    strategy: str | None
    split: str | None
    what: str

    @property
    def signature(self) -> str:
        """``fn(paths, workers) -> (mean, std)``, as the student writes it."""
        out = "(mean, std) on rank 0" if self.mpi else "(mean, std)"
        return f"fn({', '.join(self.args)}) -> {out}"

    @property
    def mpi(self) -> bool:
        """True when the function runs on MPI engines."""
        return "comm" in self.args

    @property
    def lab(self) -> str:
        """The lab's version, e.g. ``multiprocessing (per-file)``."""
        how = self.strategy or self.split
        return f"{self.backend} ({how})" if how else self.backend


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("sequential", ("paths",), "sequential", None, None,
         "one process accumulates the dates one by one"),
    Task("per-file", ("paths", "workers"), "multiprocessing", "per-file", None,
         "a process pool, one task per date; the parent accumulates the images"),
    Task("partitioned", ("paths", "workers"), "multiprocessing", "partitioned", None,
         "each worker reduces a group of dates to (count, mean, M2); the parent merges"),
    Task("shared-memory", ("paths", "workers"), "mem", None, None,
         "worker processes reduce row slabs of a shared-memory block"),
    Task("threads", ("paths", "workers"), "threads", None, None,
         "threads reduce row slabs in one process"),
    Task("mpi", ("paths", "comm"), "mpi", None, "rows",
         "MPI ranks reduce row slabs; rank 0 gathers the maps"),
    Task("halo", ("paths", "comm", "lee"), "mpi", None, "rows",
         "MPI ranks exchange K//2 halo rows, Lee-filter and reduce their rows"),
)}
HALO_FILTER = "lee:5"  # the halo task's filter when none is given
VERDICTS = ("right", "wrong", "crashed")
_LABKIT = Path(__file__).resolve().parent
_DYNAMIC = "<dynamic-code>"  # co_filename of a function cloudpickled by value
_COLOURS = {"right": "#2e7d32", "wrong": "#c62828", "crashed": "#ef6c00"}


@dataclass(frozen=True, repr=False)
class ExerciseResult:
    """What :func:`exercise` found. Shown in a notebook as a coloured box.

    Attributes
    ----------
    task : str
        The task checked.
    verdict : {"right", "wrong", "crashed"}
    ok : bool
        True when the verdict is ``right``.
    message : str
        What was found, in words (several lines).
    exact : bool or None
        ``right``: True if bitwise identical, False if within 1 float32 ulp only.
    max_abs_diff : float or None
        Largest |yours − lab's| over both maps (same units as the intensities); NaN
        pixels in the same places do not count.
    max_ulps : float or None
        Largest difference in float32 ulps (of the larger of the two values).
    n_bad : int or None
        Pixels (over both maps) off by more than 1 ulp or NaN in one map only.
    n_pixels : int
        Pixels per map.
    example : tuple or None
        ``(map, row, col, yours, lab's)`` of the worst pixel, when one is off.
    error : str or None
        ``crashed``: ``"ExceptionType: message"``.
    student_line : str or None
        ``crashed``: where in the student's code (file, line number, function, text).
    student_s, lab_s : float or None
        Median wall time (s) of the student's function and of the lab's backend over
        ``repeats`` runs after one warm-up (only when ``right``).
    lab : str
        The lab's version timed (backend and strategy or split).
    workers : int
        Processes, threads or MPI ranks both used.
    repeats : int
        Timed runs of each.
    """

    task: str
    verdict: str
    message: str
    exact: bool | None = None
    max_abs_diff: float | None = None
    max_ulps: float | None = None
    n_bad: int | None = None
    n_pixels: int = 0
    example: tuple[str, int, int, float, float] | None = None
    error: str | None = None
    student_line: str | None = None
    student_s: float | None = None
    lab_s: float | None = None
    lab: str = ""
    workers: int = 1
    repeats: int = 0
    ok: bool = field(init=False)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        object.__setattr__(self, "ok", self.verdict == "right")

    def __repr__(self) -> str:
        return self.message

    def __bool__(self) -> bool:
        return self.ok

    def _repr_html_(self) -> str:
        colour = _COLOURS.get(self.verdict, "#555")
        head, _, rest = self.message.partition("\n")
        body = html.escape(rest).replace("\n", "<br>")
        return (f'<div style="border-left:6px solid {colour};padding:6px 10px;'
                f'margin:4px 0;background:rgba(127,127,127,0.07)">'
                f'<b style="color:{colour}">{html.escape(head)}</b>'
                f'<div style="font-family:monospace;white-space:pre-wrap;margin-top:4px">'
                f'{body}</div></div>')


# ---------------------------------------------------------------------------------------
# importable workers for process pools


def mp_context() -> Any:
    """The multiprocessing context the lab's process pools use, ready to start workers.

    ``forkserver`` where the platform has it (Linux, macOS), else ``spawn``
    (:data:`labkit.backends._forkserver.START_METHOD`); with ``forkserver`` the lab's
    server (NumPy, rasterio and labkit already imported) is started first, so workers
    start warm. Use it as
    ``with ProcessPoolExecutor(workers, mp_context=mp_context()) as pool: ...``
    (a worker that dies makes the executor raise ``BrokenProcessPool``; a
    ``multiprocessing.Pool`` would wait for its lost task for ever).
    """
    import multiprocessing as mp

    from labkit.backends._forkserver import PRELOAD, START_METHOD, start_forkserver

    ctx = mp.get_context(START_METHOD)
    if START_METHOD == "forkserver":
        ctx.set_forkserver_preload(PRELOAD)
        start_forkserver()
    return ctx


def start_method() -> str:
    """The start method of the lab's process pools (``forkserver`` where the platform
    has it, else ``spawn``), without starting anything.
    """
    from labkit.backends._forkserver import START_METHOD

    return START_METHOD


def partial_stats(paths: Sequence[str | Path]) -> tuple[int, np.ndarray, np.ndarray]:
    """Worker for the partitioned design: the mergeable partial of a group of dates.

    Parameters
    ----------
    paths : sequence of paths
        Tile files (one group of dates), in date order.

    Returns
    -------
    count : int
        Dates in the group.
    mean : (rows, cols) float64 array
        Per-pixel mean of those dates (intensity units).
    m2 : (rows, cols) float64 array
        Per-pixel sum of squared deviations from ``mean`` (intensity² units).
    """
    from labkit.io import read_tile
    from labkit.stats import Accumulator

    if not paths:
        raise LabError("partial_stats got an empty group of dates")
    acc: Accumulator | None = None
    for p in paths:
        x = read_tile(p)
        if acc is None:
            acc = Accumulator(x.shape)
        acc.add(x)
    assert acc is not None
    part = acc.partial()
    return int(part.count), part.mean, part.m2


def slab_stats(name: str, shape: tuple[int, int, int], paths: Sequence[str | Path],
               r0: int, r1: int) -> tuple[int, int]:
    """Worker for the shared-memory design: read and reduce rows ``r0:r1`` in a block.

    The block ``name`` holds a float32 array of ``shape`` = ``(dates + 2, rows, cols)``:
    the dates, then the mean and std planes. The worker attaches to it, reads rows
    ``r0:r1`` of every date into it, writes their mean and std into the last two planes
    and detaches (the block lives on: its creator closes and unlinks it).

    Returns
    -------
    (r0, r1) : the rows it did
    """
    from multiprocessing import shared_memory

    from labkit.io import read_block
    from labkit.stats import reduce_stack

    shm = shared_memory.SharedMemory(name=name)
    try:
        block = np.ndarray(shape, np.float32, buffer=shm.buf)
        n = shape[0] - 2
        read_block(paths, r0, r1 - r0, out=block[:n, r0:r1])
        reduce_stack(block[:n], rows=(r0, r1), out=(block[n, r0:r1], block[n + 1, r0:r1]))
        del block  # no view may outlive the mapping
    finally:
        shm.close()
    return r0, r1


@dataclass(frozen=True)
class HaloLee:
    """The Lee filter for one rank's row slab, given its neighbours' halo rows.

    Attributes
    ----------
    k : int
        Window side (odd).
    enl : float
        Equivalent number of looks.
    """

    k: int
    enl: float

    @property
    def halo(self) -> int:
        """Rows each neighbour must send: K // 2."""
        return self.k // 2

    def __call__(self, slab: np.ndarray, above: np.ndarray | None,
                 below: np.ndarray | None) -> np.ndarray:
        """Every date of ``slab`` Lee-filtered, bit for bit as the whole image would be.

        Parameters
        ----------
        slab : (dates, n, cols) float32 array
            This rank's rows of every date (n ≥ K//2).
        above : (dates, K//2, cols) float32 array or None
            The last K//2 rows of the rank above; None for the image's first slab.
        below : (dates, K//2, cols) float32 array or None
            The first K//2 rows of the rank below; None for the image's last slab.

        Returns
        -------
        (dates, n, cols) float32 array
        """
        from labkit.backends._filtering import filtered

        h, n = self.halo, slab.shape[1]
        if n < h:
            raise LabError(f"a slab of {n} rows is thinner than the halo ({h} rows): "
                           "use fewer ranks or a smaller K")
        for side, part in (("above", above), ("below", below)):
            if part is not None and part.shape != (slab.shape[0], h, slab.shape[2]):
                raise LabError(f"halo {side} has shape {part.shape}: expected "
                               f"{(slab.shape[0], h, slab.shape[2])} (dates, K//2, cols)")
        parts = [p for p in (above, slab, below) if p is not None]
        rows = np.ascontiguousarray(np.concatenate(parts, axis=1), np.float32)
        index = np.arange(-h, n + h)
        if above is None:  # the image's top: reflect (-1 -> 0, -2 -> 1, ...)
            index = np.where(index < 0, -index - 1, index)
        if below is None:  # the image's bottom
            index = np.where(index >= n, 2 * n - index - 1, index)
        index = index + (0 if above is None else h)
        return filtered(rows, LeeFilter(self.k, self.enl), index)


# ---------------------------------------------------------------------------------------
# where the student's code failed


def _is_students(filename: str) -> bool:
    """True for a file that is neither labkit nor Python's or an installed package's."""
    if not filename or filename.startswith("<frozen") or filename.startswith("<string"):
        return False
    if filename == _DYNAMIC:
        return True  # the student's function, sent to an engine by value
    path = Path(filename)
    if not path.is_absolute() or path.suffix in (".pyx", ".pxi", ".pxd"):
        return False  # compiled code's source names (mpi4py's "mpi4py/MPI/Comm.pyx")
    with contextlib.suppress(OSError, ValueError):
        path = path.resolve()
    roots = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    if path == _LABKIT or _LABKIT in path.parents:
        return False
    return not any(r in path.parents for r in roots)


def _frame_text(filename: str, lineno: int, name: str) -> str:
    text = linecache.getline(filename, lineno).strip()
    where = "a notebook cell" if "ipykernel" in filename else Path(filename).name
    line = f"line {lineno} of {where}, in {name}"
    return f"{line}: {text}" if text else line


def _student_frame(exc: BaseException) -> tuple[str, int, str] | None:
    """(file, line, function) of the last frame in the student's code, looking into a
    worker's traceback (multiprocessing sends its text along) first.
    """
    cause = exc.__cause__
    remote = str(cause) if cause is not None and "Traceback" in str(cause) else ""
    found = [(f, int(n), fn) for f, n, fn in
             re.findall(r'File "([^"]+)", line (\d+), in (\S+)', remote) if _is_students(f)]
    if found:
        return found[-1]
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_students(f.filename)]
    if frames:
        f = frames[-1]
        return f.filename, f.lineno or 0, f.name
    return None


def _error_text(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0][:300]}" if msg else type(exc).__name__


# ---------------------------------------------------------------------------------------
# comparing with the lab's maps


def _problem_with(value: Any, shape: tuple[int, int], who: str) -> str | None:
    """A plain sentence if ``value`` is not a (mean, std) pair of float32 maps."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        got = type(value).__name__ if not isinstance(value, (tuple, list)) else \
            f"a {type(value).__name__} of {len(value)} items"
        return f"{who} returned {got}: expected a (mean, std) pair of float32 arrays {shape}"
    for label, a in zip(("mean", "std"), value, strict=True):
        if not isinstance(a, np.ndarray):
            return f"{label} is a {type(a).__name__}, not a NumPy array of shape {shape}"
        if a.shape != shape:
            return f"{label} has shape {a.shape}: the lab's maps are {shape} (rows, cols)"
        if a.dtype != np.float32:
            return (f"{label} is {a.dtype}, not float32: accumulate in float64, then return "
                    f"{label}.astype(np.float32)")
    return None


def _compare(yours: tuple[np.ndarray, np.ndarray], lab: tuple[np.ndarray, np.ndarray]
             ) -> dict[str, Any]:
    """Bitwise / ulp comparison of both maps."""
    exact = True
    n_bad = 0
    max_abs = 0.0
    max_ulps = 0.0
    worst: tuple[float, str, int, int] | None = None  # (badness, map, row, col)
    per_map = {}
    for label, a, b in zip(("mean", "std"), yours, lab, strict=True):
        na, nb = np.isnan(a), np.isnan(b)
        nan_mismatch = na != nb
        both = ~(na | nb)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        diff = np.where(both, np.abs(a64 - b64), 0.0)
        ulp = np.spacing(np.maximum(np.abs(a), np.abs(b))).astype(np.float64)
        ulps = np.where(both, diff / ulp, 0.0)
        bad = nan_mismatch | (ulps > 1.0)
        same = np.array_equal(a.view(np.int32)[both], b.view(np.int32)[both]) and \
            not nan_mismatch.any()
        exact &= same
        per_map[label] = int(bad.sum())
        n_bad += int(bad.sum())
        if both.any():
            max_abs = max(max_abs, float(diff.max()))
            max_ulps = max(max_ulps, float(ulps.max()))
        if bad.any():
            score = np.where(nan_mismatch, np.inf, ulps)
            where = np.unravel_index(int(np.argmax(score)), score.shape)
            row, col = int(where[0]), int(where[1])
            if worst is None or float(score[row, col]) > worst[0]:
                worst = (float(score[row, col]), label, row, col)
    example = None
    if worst is not None:
        _, label, r, c = worst
        i = 0 if label == "mean" else 1
        example = (label, r, c, float(yours[i][r, c]), float(lab[i][r, c]))
    return {"exact": exact, "n_bad": n_bad, "max_abs_diff": max_abs, "max_ulps": max_ulps,
            "example": example, "per_map": per_map}


def _g(x: float) -> str:
    return f"{x:.7g}"


def _wrong_text(cmp: dict[str, Any], n_pixels: int) -> str:
    maps = [f"{m} at {n} of {n_pixels} pixels" for m, n in cmp["per_map"].items() if n]
    right = [m for m, n in cmp["per_map"].items() if not n]
    lines = [f"differs from the lab's: {' and '.join(maps)} (more than 1 float32 ulp, or "
             "NaN where the lab has a number or the other way round)."]
    lines.append(f"max |Δ| = {cmp['max_abs_diff']:.3g} ({cmp['max_ulps']:.3g} ulps)")
    if cmp["example"] is not None:
        label, r, c, y, lab = cmp["example"]
        rel = abs(y - lab) / abs(lab) if lab and math.isfinite(lab) and math.isfinite(y) \
            else None
        tail = f", relative error {rel:.2g}" if rel is not None else ""
        lines.append(f"example: {label}[{r}, {c}] is {_g(y)} in yours, {_g(lab)} in the "
                     f"lab's{tail}")
    if right:
        lines.append(f"{right[0]} is right.")
    return "\n".join(lines)


def _timing_text(student_s: float, lab_s: float, lab: str, workers: int, repeats: int,
                 task: Task) -> str:
    who = "1 process" if task.name == "sequential" else (
        f"{workers} rank{'s' if workers > 1 else ''}" if task.mpi
        else f"{workers} worker{'s' if workers > 1 else ''}")
    ratio = student_s / lab_s if lab_s > 0 else math.inf
    if 0.9 <= ratio <= 1.1:
        far = "about the same time"
    elif ratio > 1:
        far = f"yours takes {ratio:.1f}× as long"
    else:
        far = f"yours is {1 / ratio:.1f}× faster"
    how = ("; both start their worker processes on every call" if task.args == ("paths", "workers")
           and task.backend != "threads" else "; both on the same engines" if task.mpi else "")
    return (f"time: yours {student_s:.4f} s, the lab's {lab} {lab_s:.4f} s (median of "
            f"{repeats} after a warm-up, {who}{how}): {far}")


# ---------------------------------------------------------------------------------------
# running the student's function


def _blanks_left(fn: Any) -> list[int]:
    """Line numbers of ``fn``'s source that still assign ``...`` (an unfilled blank)."""
    try:
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return []
    return [first + i for i, line in enumerate(lines)
            if re.search(r"(=|return)\s*\.\.\.\s*(#.*)?$", line)]


def _check_fn(task: Task, fn: Any) -> None:
    name = getattr(fn, "__name__", type(fn).__name__)
    if not callable(fn):
        raise LabError(f"the {task.name} task needs a function {task.signature}, got a "
                       f"{type(fn).__name__}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin: let the call say
    try:
        sig.bind(*task.args)
    except TypeError:
        raise LabError(f"{name}{sig} does not fit the {task.name} task: it is called as "
                       f"{task.signature}") from None


def _median(seconds: list[float]) -> float:
    return statistics.median(seconds)


class _Crash(Exception):
    """The student's function raised (carries what to show)."""

    def __init__(self, error: str, where: str | None) -> None:
        super().__init__(error)
        self.error, self.where = error, where


BROKEN_POOL_HINT = ("(a worker process died. Often the pool was given a function defined in "
                    "the notebook: worker processes can only run functions they can import, "
                    "e.g. from labkit or from a module you wrote with %%writefile)")


def _call_local(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    try:
        out = fn(*args)
    except Exception as exc:
        frame = _student_frame(exc)
        error = _error_text(exc)
        if type(exc).__name__ == "BrokenProcessPool":
            error = f"{error}\n{BROKEN_POOL_HINT}"
        raise _Crash(error, _frame_text(*frame) if frame else None) from None
    return out, time.perf_counter() - t0


def _engine_call(blob: bytes, paths: list[str], extra: tuple[Any, ...]) -> dict[str, Any]:
    """On each MPI engine: the student's function (cloudpickled) on ``COMM_WORLD``."""
    import cloudpickle
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    fn = cloudpickle.loads(blob)
    comm.Barrier()
    t0 = time.perf_counter()
    try:
        out = fn([Path(p) for p in paths], comm, *extra)
    except Exception as exc:
        return {"rank": comm.rank, "error": _error_text(exc), "frame": _student_frame(exc)}
    wall = time.perf_counter() - t0
    return {"rank": comm.rank, "out": out if comm.rank == 0 else None, "wall": wall}


def _by_value(fn: Callable[..., Any]) -> bytes:
    """``fn`` cloudpickled with its code: a notebook's function always is; one from a
    module of the student's (``%%writefile``, a test file) is too, as the engines may not
    be able to import that module.
    """
    import cloudpickle

    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    name = getattr(module, "__name__", "")
    mine = module is not None and name not in ("__main__", "builtins") and not \
        name.startswith("labkit") and _is_students(getattr(module, "__file__", "") or "")
    if not mine:
        return cloudpickle.dumps(fn)
    cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(fn)
    finally:
        cloudpickle.unregister_pickle_by_value(module)


class _Engines:
    """The student's function on a cluster of MPI engines, with a watchdog: a rank that
    raised while the others wait in an MPI call, or a run past ``timeout``, stops the
    cluster rather than hanging the notebook.
    """

    GRACE_S = 3.0  # s the other ranks get after one rank raised

    def __init__(self, cluster: Any, timeout: float) -> None:
        self.cluster, self.timeout = cluster, timeout
        self.filename = ""  # of the function run (cloudpickle renames its code's file)

    def __call__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, float]:
        paths, extra = args
        blob = _by_value(fn)
        self.filename = getattr(getattr(fn, "__code__", None), "co_filename", "")
        client = self.cluster.client
        t0 = time.perf_counter()
        ars = [client[i].apply_async(_engine_call, blob, [str(p) for p in paths], extra)
               for i in client.ids]
        deadline = t0 + self.timeout
        failed_at: float | None = None
        while not all(ar.ready() for ar in ars):
            now = time.perf_counter()
            done = [self._outcome(ar) for ar in ars if ar.ready()]
            dead = self._dead_engines()
            if failed_at is None and (dead or any("error" in d for d in done)):
                failed_at = now
            if (failed_at is not None and now - failed_at > self.GRACE_S) or now > deadline:
                self._stop()
                why = (" while the other ranks waited for it in an MPI call" if failed_at
                       else f": it ran longer than {self.timeout:g} s")
                crash = self._first_error(done)
                stopped = f"(the engines were stopped{why}; a new check starts new ones)"
                if crash is not None:
                    raise _Crash(crash.error, f"{crash.where or ''}\n{stopped}".strip())
                if dead:
                    raise _Crash(f"MPI engine process {dead[0]} died during the run (an MPI "
                                 "Abort, or a crash in compiled code)", stopped)
                raise _Crash(f"the MPI engines did not finish{why}; they were stopped", None)
            for ar in ars:
                if not ar.ready():
                    ar.wait(0.05)
                    break
        wall = time.perf_counter() - t0
        results = [self._outcome(ar) for ar in ars]
        crash = self._first_error(results)
        if crash is not None:
            raise crash
        root = next(r for r in results if r["rank"] == 0)
        return root["out"], wall

    @staticmethod
    def _outcome(ar: Any) -> dict[str, Any]:
        """What one engine's (finished) call gave: ``_engine_call``'s dict, or the error
        ipyparallel raised for it (SystemExit on the engine, an engine that died).
        """
        try:
            return dict(ar.get())
        except Exception as exc:  # rank unknown: -1
            text = _error_text(exc)
            if "EngineError" in text or "died" in text:
                text = ("an MPI engine process died during the run (exited, an MPI Abort, or a "
                        "crash in compiled code)")
            else:
                text = f"an MPI engine failed: {text}"
            return {"rank": -1, "error": text, "frame": None}

    def _dead_engines(self) -> list[int]:
        """Pids of this cluster's engines that are no longer running."""
        import psutil

        dead = []
        for pid in getattr(self.cluster, "engine_pids", []):
            try:
                proc = psutil.Process(pid)
                if proc.status() == psutil.STATUS_ZOMBIE:
                    dead.append(pid)
            except psutil.Error:
                dead.append(pid)
        return dead

    def _first_error(self, results: list[dict[str, Any]]) -> _Crash | None:
        for r in sorted(results, key=lambda d: d["rank"]):
            if "error" in r:
                where = None
                if r.get("frame"):
                    filename, lineno, name = r["frame"]
                    if filename == _DYNAMIC and self.filename:  # cloudpickle's name for it
                        filename = self.filename
                    where = _frame_text(filename, lineno, name)
                who = f"rank {r['rank']}: " if r["rank"] >= 0 else ""
                return _Crash(f"{who}{r['error']}", where)
        return None

    def _stop(self) -> None:
        """Kill the engines at once (a rank may be stuck in an MPI call), then stop."""
        import psutil

        from labkit.backends._group import kill_processes

        with contextlib.suppress(Exception):
            engines = []
            for pid in self.cluster.engine_pids:
                with contextlib.suppress(psutil.Error):
                    engines.append(psutil.Process(pid))
            kill_processes(engines, grace=0.0)
        with contextlib.suppress(Exception):
            self.cluster.stop()


# ---------------------------------------------------------------------------------------


def exercise(task: str, fn: Callable[..., Any], preset: str = "tiny", *, workers: int = 2,
             repeats: int = 3, filter: str | None = None, tile: int | None = None,
             cluster: Any = None, timeout: float = 120.0) -> ExerciseResult:
    """Run a student's function for ``task``, compare it with the lab's and time both.

    Parameters
    ----------
    task : str
        One of :data:`TASKS` (see the module docstring for each function's arguments).
    fn : callable
        The student's function.
    preset : str, default "tiny"
        Synthetic stack whose tiles are used (prepared when missing).
    workers : int, default 2
        Workers, threads or MPI ranks for the student's function and the lab's backend
        (MPI: the engines started, or those of ``cluster``).
    repeats : int, default 3
        Timed runs of each after one warm-up (the student's first call, the one checked,
        is its warm-up); the medians are compared.
    filter : str, optional
        A Lee filter spec (``"lee:7"``): the lab's maps are filtered with it, so the
        student's function must filter too. ``halo``: default ``"lee:5"``, and the
        function gets it as ``lee``.
    tile : int, optional
        Tile side in pixels (default: the preset's).
    cluster : MpiCluster, optional
        MPI tasks: running engines (:func:`labkit.backends.mpi.engines.start_cluster`)
        to use; without one, ``workers`` engines are started and stopped here.
    timeout : float, default 120
        MPI tasks: seconds a run may take before the engines are stopped.

    Returns
    -------
    ExerciseResult
        ``ok``/``verdict``/``message`` and the numbers; never raises for what ``fn``
        does.

    Raises
    ------
    LabError
        Unknown task, ``fn`` not a function of the task's arguments, bad ``workers``,
        ``repeats``, ``preset`` or ``filter``.
    """
    from labkit import backends, prep
    from labkit.backends._filtering import with_enl
    from labkit.filters import parse_filter
    from labkit.io import open_stack

    if task not in TASKS:
        raise LabError(f"unknown exercise task {task!r}: valid are {', '.join(TASKS)}")
    t = TASKS[task]
    _check_fn(t, fn)
    for label, value in (("workers", workers), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LabError(f"{label} must be a whole number ≥ 1, got {value!r}")
    if filter is None and task == "halo":
        filter = HALO_FILTER
    filt = parse_filter(filter)
    if task == "halo" and filt is None:
        raise LabError("the halo task needs a filter: give filter='lee:K' (K odd, 3..31)")
    stack = open_stack(prep.ensure_tiles(preset, tile, progress=False))
    filt = with_enl(filt, stack)
    paths = list(stack.paths)
    ref = backends.compute("sequential", stack, filter=filt)
    lab_opts: dict[str, Any] = {"strategy": t.strategy, "split": t.split, "filter": filt}
    own_cluster = None
    if t.mpi:
        from labkit.backends.mpi.engines import start_cluster

        # none given, or stopped by an earlier check that crashed: engines of the same
        # size, for this check only
        if cluster is None or getattr(cluster, "stopped", False) is True:
            n = workers if cluster is None else cluster.n
            cluster = own_cluster = start_cluster(n, timeout=timeout)
        workers = cluster.n
        run: Callable[..., tuple[Any, float]] = _Engines(cluster, timeout)
        extra: tuple[Any, ...] = (HaloLee(filt.k, float(filt.enl)),) if task == "halo" \
            and filt is not None and filt.enl is not None else ()
        args: tuple[Any, ...] = (paths, extra)
        lab_opts["pool"] = cluster
    else:
        run = _call_local
        args = (paths,) if task == "sequential" else (paths, workers)
    n_px = stack.rows * stack.cols
    common: dict[str, Any] = {"task": task, "lab": t.lab, "workers": workers, "n_pixels": n_px}
    head = f"{task}: {getattr(fn, '__name__', 'your function')}"
    try:
        try:
            out, _ = run(fn, args)
        except _Crash as crash:
            where = f"\n{crash.where}" if crash.where else \
                f"\n(when called as {t.signature})"
            blanks = _blanks_left(fn)
            if blanks:
                plural = "s" if len(blanks) > 1 else ""
                lines = ", ".join(str(n) for n in blanks)
                where += f"\nblanks still to fill in: the ... on line{plural} {lines}"
            return ExerciseResult(verdict="crashed", message=f"✘ crashed — {head}\n"
                                  f"{crash.error}{where}", error=crash.error,
                                  student_line=crash.where, **common)  # type: ignore[arg-type]
        problem = _problem_with(out, (stack.rows, stack.cols), "your function")
        if problem is not None:
            return ExerciseResult(verdict="wrong", message=f"✘ wrong — {head}\n{problem}",
                                  **common)  # type: ignore[arg-type]
        cmp = _compare((out[0], out[1]), (ref.mean, ref.std))
        numbers = {k: cmp[k] for k in ("max_abs_diff", "max_ulps", "n_bad", "example")}
        if cmp["n_bad"]:
            return ExerciseResult(verdict="wrong", exact=False, message=f"✘ wrong — {head}\n"
                                  f"{_wrong_text(cmp, n_px)}", **numbers,
                                  **common)  # type: ignore[arg-type]
        # right: time it against the lab's version
        mine = []
        for _ in range(repeats):
            try:
                mine.append(run(fn, args)[1])
            except _Crash as crash:  # right once, then it raised: say so
                return ExerciseResult(verdict="crashed", message=f"✘ crashed — {head}\n"
                                      f"right on its first call, then a timed call raised "
                                      f"{crash.error}\n{crash.where or ''}".rstrip(),
                                      error=crash.error, student_line=crash.where,
                                      **common)  # type: ignore[arg-type]
        labs = []
        for i in range(1 + repeats):
            t0 = time.perf_counter()
            backends.compute(t.backend, stack, workers=workers, **lab_opts)
            if i:
                labs.append(time.perf_counter() - t0)
    finally:
        if own_cluster is not None:
            with contextlib.suppress(Exception):
                own_cluster.stop()
    student_s, lab_s = _median(mine), _median(labs)
    filtered_by = f" (both filtered with {filt.spec})" if filt else ""
    if cmp["exact"]:
        how = (f"bitwise identical to the lab's sequential mean and std{filtered_by} "
               f"({n_px} pixels each).")
    else:
        how = (f"within 1 float32 ulp of the lab's sequential mean and std{filtered_by} at "
               f"every pixel, not bitwise: max |Δ| = {cmp['max_abs_diff']:.3g}. Your sums "
               "are done in another order (or precision), which rounds differently; the "
               "same operations in the same order give the same bits.")
    timing = _timing_text(student_s, lab_s, t.lab, workers, repeats, t)
    return ExerciseResult(verdict="right", message=f"✔ right — {head}\n{how}\n{timing}",
                          exact=bool(cmp["exact"]), student_s=student_s, lab_s=lab_s,
                          repeats=repeats, **numbers, **common)  # type: ignore[arg-type]
