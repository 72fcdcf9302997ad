"""Timing harness: warm-up + repeats, the CSV schema (DESIGN §7), floors, ``labkit bench``.

One CSV row per timed run (``benchmarks/resultados.csv``). Floors are rows in the same
CSV with backend ``floor-memory`` (NumPy streaming a float32 array of the stack's size)
and ``floor-read`` (reading every tile fully, page cache warm): their ``wall_s`` is the
least time one process needs to touch the stack's bytes, their ``gbps`` the bandwidth.
"""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import LabError

__all__ = [
    "COURSE_NAMES",
    "CSV_COLUMNS",
    "FLOOR_BACKENDS",
    "append_csv",
    "cli_main",
    "default_mode",
    "format_table",
    "max_abs_diff",
    "measure_floors",
    "parse_backends",
    "parse_workers",
    "process_command",
    "read_csv",
    "row_from_result",
    "run_bench",
    "session_id",
    "summarize",
    "time_backend",
    "time_process",
    "variant_name",
    "write_course_tsv",
    "write_text_atomic",
]

CSV_COLUMNS: tuple[str, ...] = (
    "backend",        # sequential | multiprocessing | mem | threads | mpi | floor-*
    "strategy",       # multiprocessing: partitioned | per-file (else empty)
    "split",          # mpi: rows | dates (else empty)
    "workers",        # processes / threads / ranks
    "n_dates",        # dates in the stack
    "tile",           # ROWSxCOLS of one tile, e.g. 1024x1024
    "block_rows",     # rows per block (empty: backend default)
    "repeat",         # 0, 1, ... (warm-up runs are not written)
    "mode",           # in-process (perf_counter around compute) | process (whole fresh process)
    "wall_s",         # seconds, whole call (process mode: whole process)
    "startup_s",      # seconds, pool/cluster start; process mode: process wall - in-process
                      # median wall (interpreter start, imports, GeoTIFF writes)
    "read_s",         # seconds reading tiles (summed over workers where backends report so)
    "compute_s",      # seconds in the kernel
    "merge_s",        # seconds merging partials / communicating
    "write_s",        # seconds writing the two GeoTIFFs (process mode only)
    "bytes",          # bytes of tile data read
    "gbps",           # bytes / wall_s / 1e9
    "max_abs_diff",   # max |Δ| of mean and std vs sequential in the same session
    "host",
    "cpu_model",
    "cores_physical",
    "cores_logical",
    "versions",       # python=..;numpy=..;rasterio=..;gdal=..;mpi4py=..;mpi=..
    "threads_env",    # OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1;...
    "timestamp",      # ISO 8601, UTC
    "run_id",         # one id per bench session / notebook kernel
    "label",          # free text: experiment name (e.g. main, scale-dates24-1024)
)
FLOOR_BACKENDS = ("floor-memory", "floor-read")
_INT_COLUMNS = {"workers", "n_dates", "block_rows", "repeat", "bytes", "cores_physical",
                "cores_logical"}
_FLOAT_COLUMNS = {"wall_s", "startup_s", "read_s", "compute_s", "merge_s", "write_s", "gbps",
                  "max_abs_diff"}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS")
_SESSION = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
_SYSTEM: dict[str, Any] | None = None


def session_id() -> str:
    """This process's run id (one per bench session or notebook kernel)."""
    return _SESSION


def _system() -> dict[str, Any]:
    """Machine columns of every row (cached): host, cpu, cores, versions, threads."""
    global _SYSTEM
    if _SYSTEM is None:
        try:
            from labkit.sysinfo import system_info

            info = dict(system_info())
        except ImportError:  # sysinfo not there: the essentials from the stdlib
            import platform

            info = {"host": platform.node(), "cpu_model": platform.processor(),
                    "cores_physical": os.cpu_count(), "cores_logical": os.cpu_count(),
                    "python": platform.python_version(), "numpy": np.__version__}
        keys = ("python", "numpy", "rasterio", "gdal", "mpi4py", "mpi_library")
        versions = ";".join(f"{k}={info[k]}" for k in keys if info.get(k))
        env = info.get("threads_env")
        if not isinstance(env, str):
            env = ";".join(f"{k}={os.environ.get(k, '')}" for k in _THREAD_VARS)
        _SYSTEM = {
            "host": info.get("host", ""),
            "cpu_model": info.get("cpu_model", ""),
            "cores_physical": info.get("cores_physical") or "",
            "cores_logical": info.get("cores_logical") or os.cpu_count() or "",
            "versions": versions,
            "threads_env": env,
        }
    return _SYSTEM


def default_mode(path: str | os.PathLike[str]) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) the usual ``0666 & ~umask`` mode."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write a text file whole or not at all (temp file in the same folder + rename)."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabError(f"cannot create folder {p.parent}: {exc.strerror}") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        default_mode(tmp)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def max_abs_diff(result: Any, reference: Any) -> float:
    """Max |Δ| over mean and std between two results (NaN where both are NaN is equal).

    ``reference`` is a Result or a ``(mean, std)`` pair. Returns ``inf`` when NaN
    patterns differ or shapes differ.
    """
    ref = (reference.mean, reference.std) if hasattr(reference, "mean") else reference
    worst = 0.0
    for a, b in zip((result.mean, result.std), ref, strict=True):
        a = np.asarray(a, np.float64)
        b = np.asarray(b, np.float64)
        if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
            return math.inf
        d = np.abs(a - b)
        if d.size and np.isfinite(d).any():
            worst = max(worst, float(np.nanmax(d)))
    return worst


def row_from_result(
    result: Any,
    *,
    repeat: int,
    mode: str = "in-process",
    max_abs_diff: float | None = None,
    label: str = "",
    run_id: str | None = None,
) -> dict[str, Any]:
    """One CSV row (keys = :data:`CSV_COLUMNS`) from a backend :class:`Result`.

    Parameters
    ----------
    result : labkit.backends.Result
        ``timings`` in seconds; ``meta`` with backend, strategy, split, workers,
        n_dates, rows, cols, block_rows.
    repeat : int
        Index of this repeat (0-based).
    mode : {"in-process", "process"}
    max_abs_diff : float, optional
        Default: ``result.meta["max_abs_diff"]`` (set by :func:`time_backend`).
    label : str
        Experiment name.
    run_id : str, optional
        Default: :func:`session_id`.
    """
    if mode not in ("in-process", "process"):
        raise LabError(f"mode {mode!r} is not valid: use in-process or process")
    m, t = result.meta, result.timings
    wall = float(t.get("wall", 0.0))
    nbytes = int(getattr(result, "bytes_read", 0) or 0)
    diff = max_abs_diff if max_abs_diff is not None else m.get("max_abs_diff")
    row = {
        "backend": m.get("backend", ""),
        "strategy": m.get("strategy") or "",
        "split": m.get("split") or "",
        "workers": m.get("workers", 1),
        "n_dates": m.get("n_dates", ""),
        "tile": f"{m.get('rows', '')}x{m.get('cols', '')}",
        "block_rows": m.get("block_rows") or "",
        "repeat": repeat,
        "mode": mode,
        "wall_s": wall,
        "startup_s": float(t.get("startup", 0.0)),
        "read_s": float(t.get("read", 0.0)),
        "compute_s": float(t.get("compute", 0.0)),
        "merge_s": float(t.get("merge", 0.0)),
        "write_s": float(t.get("write", 0.0)),
        "bytes": nbytes,
        "gbps": nbytes / wall / 1e9 if wall > 0 else "",
        "max_abs_diff": "" if diff is None else float(diff),
        "timestamp": _now(),
        "run_id": run_id or _SESSION,
        "label": label,
    }
    row.update(_system())
    return {k: row.get(k, "") for k in CSV_COLUMNS}


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.6g}"
    return str(value)


def append_csv(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> Path:
    """Append rows to a benchmark CSV (created with its header if missing).

    Each call is one ``write`` of whole lines on an ``O_APPEND`` descriptor, so readers
    never see half a row. A new file appears whole (written aside, then linked in).

    Raises
    ------
    LabError
        A row has keys outside :data:`CSV_COLUMNS`, or the existing file's header differs.
    """
    p = Path(path)
    rows = list(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    for r in rows:
        extra = set(r) - set(CSV_COLUMNS)
        if extra:
            raise LabError(f"row has unknown columns {sorted(extra)}: valid are CSV_COLUMNS")
        writer.writerow({k: _format(r.get(k)) for k in CSV_COLUMNS})
    body = buf.getvalue()
    header = ",".join(CSV_COLUMNS) + "\n"
    if p.is_dir():
        raise LabError(f"CSV {p} is a folder: give a file name such as {p / 'resultados.csv'}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabError(f"cannot create folder {p.parent}: {exc.strerror}") from None
    if not p.exists():
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(header + body)
            default_mode(tmp)
            try:
                os.link(tmp, p)  # fails if another writer created it meanwhile
                return p
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    with open(p, encoding="utf-8") as fh:
        first = fh.readline()
    if first != header:
        raise LabError(
            f"{p} has a different header (an older lab version?): move it aside or use --csv"
        )
    if body:
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, body.encode("utf-8"))
        finally:
            os.close(fd)
    return p


def _parse(col: str, text: str) -> Any:
    if text == "":
        return None
    try:
        if col in _INT_COLUMNS:
            return int(float(text))
        if col in _FLOAT_COLUMNS:
            return float(text)
    except ValueError:
        return None
    return text


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a benchmark CSV as dicts with numbers parsed (empty cells are None).

    Raises
    ------
    LabError
        Missing file, or a header without the :data:`CSV_COLUMNS`.
    """
    p = Path(path)
    if not p.is_file():
        raise LabError(f"benchmark CSV {p} does not exist: run `labkit bench` first")
    with open(p, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(CSV_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise LabError(f"{p} is not a labkit benchmark CSV (missing {sorted(missing)[:4]})")
        return [{k: _parse(k, r.get(k) or "") for k in CSV_COLUMNS} for r in reader]


def time_backend(
    backend: str,
    src: Any,
    *,
    workers: int = 1,
    strategy: str | None = None,
    split: str | None = None,
    block_rows: int | None = None,
    repeat: int = 3,
    warmup: int = 1,
    pool: Any = None,
    reference: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """Time ``labkit.backends.compute`` in this process: ``warmup`` runs, then ``repeat``.

    Parameters
    ----------
    backend, src, workers, strategy, split, block_rows, pool
        As :func:`labkit.backends.compute`. Without ``pool`` each run starts (and times,
        as ``startup``) its own pool.
    repeat : int, default 3
        Timed runs (≥ 1).
    warmup : int, default 1
        Untimed runs first (≥ 0): page cache, imports, pools.
    reference : Result or (mean, std), optional
        When given, ``meta["max_abs_diff"]`` of each result is its max |Δ| to it.
    progress : callable(done, total), optional
        Called after each run (warm-up included).

    Returns
    -------
    list of Result
        The ``repeat`` timed results (``timings`` in seconds).
    """
    from labkit.backends import compute
    from labkit.io import TileStack, open_stack

    if not isinstance(repeat, int) or repeat < 1:
        raise LabError(f"repeat must be a whole number ≥ 1, got {repeat!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise LabError(f"warmup must be a whole number ≥ 0, got {warmup!r}")
    stack = src if isinstance(src, TileStack) else open_stack(src)
    total = warmup + repeat
    out = []
    for i in range(total):
        res = compute(backend, stack, workers=workers, strategy=strategy, split=split,
                      block_rows=block_rows, pool=pool)
        if i >= warmup:
            if reference is not None:
                res.meta["max_abs_diff"] = max_abs_diff(res, reference)
            out.append(res)
        if progress:
            progress(i + 1, total)
    return out


# --------------------------------------------------------------------------- parsing


def parse_workers(text: str | Sequence[int]) -> list[int]:
    """Worker counts from ``"1,2,4"`` or ``"1-4"`` (or a list); sorted, unique, each ≥ 1."""
    if not isinstance(text, str):
        values = list(text)
    else:
        values = []
        for part in (p.strip() for p in text.split(",")):
            try:
                if "-" in part:
                    lo, hi = (int(x) for x in part.split("-"))
                    values += list(range(lo, hi + 1))
                else:
                    values.append(int(part))
            except ValueError:
                raise LabError(
                    f"workers {text!r} must be whole numbers ≥ 1 like 1,2,4 or 1-4"
                ) from None
    if not values or any(not isinstance(v, int) or v < 1 for v in values):
        raise LabError(f"workers {text!r} must be whole numbers ≥ 1 like 1,2,4 or 1-4")
    return sorted(set(values))


def parse_backends(text: str | Sequence[str]) -> list[tuple[str, str | None, str | None]]:
    """Backend variants from ``"sequential,multiprocessing:per-file,mpi"``.

    A bare ``multiprocessing`` means every strategy and a bare ``mpi`` every split.
    Returns ``(backend, strategy, split)`` triples, sequential first.
    """
    import importlib.util

    from labkit.backends import BACKENDS, resolve

    items = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    items = [p for p in items if p]
    if not items:
        raise LabError(f"no backends given: valid are {', '.join(BACKENDS)}")
    out: list[tuple[str, str | None, str | None]] = []
    for item in items:
        name, _, variant = item.partition(":")
        if name not in BACKENDS:
            raise LabError(f"unknown backend {name!r}: valid are {', '.join(BACKENDS)}")
        module, strategies, splits = BACKENDS[name]
        if importlib.util.find_spec(module) is None:
            raise LabError(f"backend {name!r} is not available in this labkit ({module} missing)")
        if variant:
            if strategies:
                triple = resolve(name, strategy=variant)
            elif splits:
                triple = resolve(name, split=variant)
            else:
                raise LabError(f"backend {name!r} has no variants: use {name} alone")
            variants = [triple]
        elif strategies:
            variants = [resolve(name, strategy=s) for s in strategies]
        elif splits:
            variants = [resolve(name, split=s) for s in splits]
        else:
            variants = [resolve(name)]
        out += [v for v in variants if v not in out]
    out.sort(key=lambda v: v[0] != "sequential")
    return out


# --------------------------------------------------------------------------- floors


def measure_floors(stack: Any, *, repeat: int = 3, label: str = "",
                   run_id: str | None = None) -> list[dict[str, Any]]:
    """Floor rows for a tile stack: memory streaming and file reading, one process.

    ``floor-memory``: ``numpy.sum`` over a float32 array of the stack's size (pages
    touched first). ``floor-read``: every tile file read whole into a buffer with
    ``readinto`` after one warm-up pass (page cache warm). ``wall_s`` is the time for
    the stack's bytes at that bandwidth.
    """
    nbytes = int(stack.nbytes)
    base = {"workers": 1, "n_dates": stack.n_dates, "tile": f"{stack.rows}x{stack.cols}",
            "mode": "in-process", "timestamp": _now(), "run_id": run_id or _SESSION,
            "label": label, **_system()}
    rows = []
    arr = np.ones(max(1, nbytes // 4), np.float32)
    arr.sum()
    for i in range(repeat):
        t0 = time.perf_counter()
        arr.sum()
        dt = time.perf_counter() - t0
        rows.append({**base, "backend": "floor-memory", "repeat": i, "wall_s": dt,
                     "compute_s": dt, "bytes": arr.nbytes, "gbps": arr.nbytes / dt / 1e9})
    del arr
    sizes = [os.path.getsize(p) for p in stack.paths]
    buf = bytearray(max(sizes))
    view = memoryview(buf)
    for i in range(repeat + 1):
        t0 = time.perf_counter()
        for p, size in zip(stack.paths, sizes, strict=True):
            with open(p, "rb", buffering=0) as fh:
                got = 0
                while got < size:
                    n = fh.readinto(view[got:size])
                    if not n:
                        break
                    got += n
        dt = time.perf_counter() - t0
        if i == 0:
            continue  # warm-up: page cache
        total = sum(sizes)
        t_stack = dt * nbytes / total
        rows.append({**base, "backend": "floor-read", "repeat": i - 1, "wall_s": t_stack,
                     "read_s": t_stack, "bytes": nbytes, "gbps": total / dt / 1e9})
    return [{k: r.get(k, "") for k in CSV_COLUMNS} for r in rows]


# --------------------------------------------------------------------------- process mode


def _mpiexec() -> str:
    import shutil

    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if not found:
        raise LabError("mpiexec not found: install MPICH (pip install mpich) or skip mpi")
    return found


def process_command(backend: str, src: str | os.PathLike[str], mean: str | os.PathLike[str],
                    std: str | os.PathLike[str], *, workers: int = 1,
                    strategy: str | None = None, split: str | None = None,
                    block_rows: int | None = None) -> list[str]:
    """The command line of one whole-process run (``mpiexec -n N`` for mpi)."""
    cmd = [sys.executable, "-m", "labkit", "run", backend, str(src), str(mean), str(std),
           "--quiet"]
    if backend == "mpi":
        cmd = [_mpiexec(), "-n", str(workers), *cmd]
    else:
        cmd += ["--workers", str(workers)]
    if strategy:
        cmd += ["--strategy", strategy]
    if split:
        cmd += ["--split", split]
    if block_rows:
        cmd += ["--block-rows", str(block_rows)]
    return cmd


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    for k in _THREAD_VARS:
        env.setdefault(k, "1")
    return env


def _run_group(cmd: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group; on timeout, Ctrl-C or any error, end the whole
    group (mpiexec and its ranks too), so no orphan survives."""
    import signal

    proc = subprocess.Popen(cmd, env=_child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as exc:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        if isinstance(exc, subprocess.TimeoutExpired):
            raise LabError(f"{what} run took longer than {timeout:.0f} s: stopped") from None
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def time_process(
    backend: str,
    stack: Any,
    *,
    workers: int = 1,
    strategy: str | None = None,
    split: str | None = None,
    block_rows: int | None = None,
    repeat: int = 3,
    reference: Any = None,
    timeout: float = 1800,
) -> list[dict[str, Any]]:
    """Time ``repeat`` fresh ``labkit run`` processes (like ``/usr/bin/time``).

    Returns a list of dicts: ``wall`` (s, the whole process incl. interpreter start,
    imports, pool start and the GeoTIFF writes) and ``max_abs_diff`` (of the written
    outputs vs ``reference``, or None).
    """
    from labkit.io import read_tile

    out = []
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        mean, std = Path(tmp) / "mean.tif", Path(tmp) / "std.tif"
        cmd = process_command(backend, stack.paths[0].parent, mean, std, workers=workers,
                              strategy=strategy, split=split, block_rows=block_rows)
        for _ in range(repeat):
            t0 = time.perf_counter()
            proc = _run_group(cmd, timeout, backend)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                msg = (proc.stderr.strip().splitlines() or ["no message"])[-1][:300]
                raise LabError(f"`labkit run {backend}` failed (exit {proc.returncode}): {msg}")
            diff = None
            if reference is not None:
                got = type("R", (), {"mean": read_tile(mean), "std": read_tile(std)})
                diff = max_abs_diff(got, reference)
            out.append({"wall": wall, "max_abs_diff": diff})
    return out


# --------------------------------------------------------------------------- summaries


def _key(r: dict[str, Any]) -> tuple:
    workers = 1 if r["backend"] in ("sequential", *FLOOR_BACKENDS) else r.get("workers") or 1
    return (r.get("label") or "", r["backend"], r.get("strategy") or "", r.get("split") or "",
            r.get("mode") or "", r.get("n_dates") or 0, r.get("tile") or "", workers)


def variant_name(backend: str, strategy: str | None = None, split: str | None = None) -> str:
    """Display name of a backend variant, e.g. ``multiprocessing/per-file``."""
    extra = strategy or split
    return f"{backend}/{extra}" if extra else backend


def summarize(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median and spread per (label, backend, strategy, split, mode, n_dates, tile, workers).

    Sequential and floor rows count as 1 worker whatever their ``workers`` column says.

    Returns dicts with those keys plus ``variant``, ``n`` (repeats), ``wall`` (median s),
    ``wall_min``, ``wall_max``, the median of each phase (``startup``, ``read``,
    ``compute``, ``merge``, ``write``), ``bytes``, ``gbps`` (median) and ``max_abs_diff``
    (the largest seen, None if never measured). Sorted by key.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if not isinstance(r.get("wall_s"), (int, float)) or not r.get("backend"):
            continue
        groups.setdefault(_key(r), []).append(r)
    out = []
    for key, rs in sorted(groups.items()):
        label, backend, strategy, split, mode, n_dates, tile, workers = key

        def med(col: str, rs: list[dict[str, Any]] = rs) -> float:
            vals = [r[col] for r in rs if isinstance(r.get(col), (int, float))]
            return float(statistics.median(vals)) if vals else 0.0

        walls = [r["wall_s"] for r in rs]
        diffs = [r["max_abs_diff"] for r in rs if isinstance(r.get("max_abs_diff"), float)]
        first = rs[0]
        out.append({
            "label": label, "backend": backend, "strategy": strategy, "split": split,
            "variant": variant_name(backend, strategy, split), "mode": mode,
            "n_dates": n_dates, "tile": tile, "workers": workers, "n": len(rs),
            "wall": med("wall_s"), "wall_min": min(walls), "wall_max": max(walls),
            "startup": med("startup_s"), "read": med("read_s"), "compute": med("compute_s"),
            "merge": med("merge_s"), "write": med("write_s"), "bytes": int(med("bytes")),
            "gbps": med("gbps"), "max_abs_diff": max(diffs) if diffs else None,
            "cores_logical": first.get("cores_logical"), "cpu_model": first.get("cpu_model"),
            "host": first.get("host"),
        })
    return out


COURSE_NAMES = {  # the course's short names (benchmarks/resultados.csv of the coursework)
    ("sequential", ""): "sec",
    ("multiprocessing", "partitioned"): "mp{w}",
    ("multiprocessing", "per-file"): "mp{w}_perfile",
    ("mem", ""): "mp{w}_mem",
    ("threads", ""): "thr{w}",
    ("mpi", "rows"): "mpi{w}",
    ("mpi", "dates"): "mpi{w}_dates",
}


def write_course_tsv(rows: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """The course's two-column ``backend<TAB>tiempo`` file (median seconds).

    Names follow the coursework (``sec``, ``mp4``, ``mp4_mem``, ``mpi4``; plus
    ``mp4_perfile``, ``thr4``, ``mpi4_dates``). Whole-process times are used when
    measured (the course timed with ``/usr/bin/time``), in-process times otherwise.
    """
    order = list(COURSE_NAMES)
    summ = sorted((s for s in summarize(rows) if s["backend"] not in FLOOR_BACKENDS),
                  key=lambda s: (order.index((s["backend"], s["strategy"] or s["split"]))
                                 if (s["backend"], s["strategy"] or s["split"]) in order
                                 else len(order), s["workers"]))
    by_name: dict[str, dict[str, Any]] = {}
    for s in summ:
        pattern = COURSE_NAMES.get((s["backend"], s["strategy"] or s["split"]))
        if pattern is None:
            continue
        name = pattern.format(w=s["workers"])
        if s["backend"] == "sequential" and s["workers"] != 1:
            name += f"_{s['workers']}"
        old = by_name.get(name)
        if old is None or (old["mode"] != "process" and s["mode"] == "process"):
            by_name[name] = s
    text = "backend\ttiempo\n" + "".join(f"{n}\t{s['wall']:.3f}\n" for n, s in by_name.items())
    return write_text_atomic(path, text)


# --------------------------------------------------------------------------- the bench


def run_bench(
    src: str | os.PathLike[str],
    *,
    backends: str | Sequence[str] = "sequential,multiprocessing,mem,threads,mpi",
    workers: str | Sequence[int] = "1,2",
    repeat: int = 3,
    warmup: int = 1,
    csv_path: str | os.PathLike[str] | None = None,
    process: bool = False,
    label: str = "",
    floors: bool = True,
    progress: bool = True,
    tsv_path: str | os.PathLike[str] | None = None,
    process_repeat: int | None = None,
    course_tsv: bool = True,
) -> list[dict[str, Any]]:
    """Time every backend variant at every worker count; append rows to the CSV.

    Sequential runs with 1 worker only and is the reference for ``max_abs_diff``. The
    configurations are timed in rounds (each once per round: ``warmup`` untimed rounds,
    then ``repeat`` timed ones), so load from elsewhere spreads over all of them; with
    ``process`` then ``process_repeat`` rounds of fresh processes. Floors are measured
    first. Rows are appended after each round, so an interrupted bench keeps what it
    measured.

    Parameters
    ----------
    src : folder of tiles
    backends : str or list
        ``"sequential,multiprocessing,mem,threads,mpi"``; ``name:variant`` picks one
        strategy/split (e.g. ``multiprocessing:per-file``, ``mpi:dates``).
    workers : str or list of int
        ``"1,2,4"``; counts above the logical cores are run (oversubscription) and flagged.
    repeat, warmup : int
        Timed and untimed runs per configuration.
    csv_path : path, optional
        Default ``benchmarks/resultados.csv`` under the lab's home.
    process : bool
        Also time whole processes.
    label : str
        Experiment name written in every row.
    floors : bool
        Measure the memory and read floors first.
    progress : bool
        Show a tqdm bar on stderr.
    tsv_path : path, optional
        The course's two-column file; default ``tiempos.tsv`` beside the CSV.
    course_tsv : bool, default True
        Write the course's table (``tsv_path``) from this run's rows.
    process_repeat : int, optional
        Whole-process runs per configuration (default ``repeat``; no warm-up: the page
        cache is warm from the in-process runs).

    Returns
    -------
    list of dict
        The rows written.
    """
    from tqdm.auto import tqdm

    from labkit import paths
    from labkit.backends import make_pool
    from labkit.io import open_stack

    variants = parse_backends(backends)
    counts = parse_workers(workers)
    if not isinstance(repeat, int) or repeat < 1:
        raise LabError(f"repeat must be a whole number ≥ 1, got {repeat!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise LabError(f"warmup must be a whole number ≥ 0, got {warmup!r}")
    csv_file = Path(csv_path) if csv_path else paths.bench_csv()
    if csv_file.exists():
        read_csv(csv_file)  # refuse a foreign header before timing anything
    stack = open_stack(src)
    if process and any(b == "mpi" for b, _, _ in variants):
        _mpiexec()
    cores = int(_system().get("cores_logical") or os.cpu_count() or 1)
    over = [w for w in counts if w > cores]
    if over:
        print(f"labkit bench: note: workers {over} exceed the {cores} logical cores "
              "(oversubscription: expect slow-downs)", file=sys.stderr)
    configs = [(b, s, sp, 1 if b == "sequential" else w)
               for (b, s, sp) in variants for w in ([1] if b == "sequential" else counts)]
    if ("sequential", None, None, 1) not in configs:
        configs.insert(0, ("sequential", None, None, 1))  # the reference, always measured
    p_repeat = repeat if process_repeat is None else process_repeat
    if not isinstance(p_repeat, int) or p_repeat < 1:
        raise LabError(f"process_repeat must be a whole number ≥ 1, got {p_repeat!r}")
    runs_each = warmup + repeat + (p_repeat if process else 0)
    pools: dict[tuple[str, int], Any] = {}
    written: list[dict[str, Any]] = []
    bar = tqdm(total=len(configs) * runs_each, unit="run", disable=not progress,
               desc="bench", file=sys.stderr)
    try:
        if floors:
            rows = measure_floors(stack, repeat=repeat, label=label)
            append_csv(csv_file, rows)
            written += rows
        # one reusable pool/cluster per (backend, workers), started (and timed) once and
        # kept out of the runs' wall times, as in a notebook; whole-process mode shows it
        for backend, _, _, w in configs:
            if backend != "sequential" and (backend, w) not in pools:
                bar.set_postfix_str(f"starting {backend} ×{w}")
                pools[(backend, w)] = make_pool(backend, w)
        reference: tuple[np.ndarray, np.ndarray] | None = None
        walls: dict[tuple, list[float]] = {c: [] for c in configs}
        template: dict[tuple, dict[str, Any]] = {}
        # rounds: every configuration once per round (warm-up rounds first), so a burst
        # of load from elsewhere spreads over all configurations instead of hitting one
        for rnd in range(warmup + repeat):
            rows = []
            for cfg in configs:
                backend, strategy, split, w = cfg
                bar.set_postfix_str(f"{variant_name(backend, strategy, split)} ×{w}")
                pool = pools.get((backend, w))
                (res,) = time_backend(backend, stack, workers=w, strategy=strategy,
                                      split=split, repeat=1, warmup=0, reference=reference,
                                      pool=pool)
                if pool is not None:
                    res.timings["startup"] = _startup_of(pool)
                bar.update()
                if reference is None and backend == "sequential":
                    reference = (res.mean, res.std)
                    res.meta["max_abs_diff"] = 0.0
                if rnd < warmup:
                    continue
                row = row_from_result(res, repeat=rnd - warmup, label=label)
                template.setdefault(cfg, row)
                walls[cfg].append(res.timings["wall"])
                rows.append(row)
            append_csv(csv_file, rows)
            written += rows
        for rnd in range(p_repeat if process else 0):
            rows = []
            for cfg in configs:
                backend, strategy, split, w = cfg
                bar.set_postfix_str(f"{variant_name(backend, strategy, split)} ×{w} process")
                (p,) = time_process(backend, stack, workers=w, strategy=strategy, split=split,
                                    repeat=1, reference=reference)
                bar.update()
                rows.append(dict(
                    template[cfg], repeat=rnd, mode="process", wall_s=p["wall"],
                    startup_s=max(0.0, p["wall"] - statistics.median(walls[cfg])),
                    read_s="", compute_s="", merge_s="", write_s="", timestamp=_now(),
                    gbps=template[cfg]["bytes"] / p["wall"] / 1e9,
                    max_abs_diff=p["max_abs_diff"]))
            append_csv(csv_file, rows)
            written += rows
    finally:
        bar.close()
        for pool in pools.values():
            if pool is not None:
                pool.close()
    if written and course_tsv:
        tsv = Path(tsv_path) if tsv_path else csv_file.with_name("tiempos.tsv")
        write_course_tsv(written, tsv)
    return written


def _startup_of(pool: Any) -> float:
    """Seconds a reusable pool or MPI cluster took to start."""
    value = getattr(pool, "startup_s", None)
    return float(value if value is not None else getattr(pool, "startup", 0.0) or 0.0)


def format_table(summary: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of :func:`summarize` output (one line per configuration)."""
    lines = [f"{'variant':28} {'mode':10} {'workers':>7} {'median s':>9} {'min..max s':>19} "
             f"{'max|Δ|':>8}"]
    for s in summary:
        diff = "" if s["max_abs_diff"] is None else f"{s['max_abs_diff']:.2g}"
        lines.append(f"{s['variant']:28} {s['mode']:10} {s['workers']:>7} {s['wall']:>9.4g} "
                     f"{s['wall_min']:>9.4g}..{s['wall_max']:<9.4g} {diff:>8}")
    return "\n".join(lines)


def cli_main(args: Any) -> int:
    """``labkit bench SRC --backends LIST --workers 1,2,4 [--repeat R] [--warmup W]
    [--csv PATH] [--process]``."""
    rows = run_bench(args.src, backends=args.backends, workers=args.workers,
                     repeat=args.repeat, warmup=args.warmup, csv_path=args.csv,
                     process=args.process, label=getattr(args, "label", "") or "")
    print(format_table(summarize(rows)))
    print(f"rows appended to {args.csv}; course table in "
          f"{Path(args.csv).with_name('tiempos.tsv')}")
    return 0
