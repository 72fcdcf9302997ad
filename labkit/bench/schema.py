"""The benchmark CSV: its columns, the machine fields, appending and reading.

One row per timed run (``benchmarks/resultados.csv``). Floors are rows of the same CSV
with backend ``floor-memory`` and ``floor-read`` (:mod:`labkit.bench.floors`).
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labkit.errors import LabError
from labkit.io import default_mode

__all__ = [
    "CSV_COLUMNS",
    "FLOOR_BACKENDS",
    "append_csv",
    "machine_columns",
    "now_iso",
    "read_csv",
    "row_from_result",
    "session_id",
]

CSV_COLUMNS: tuple[str, ...] = (
    "backend",        # sequential | multiprocessing | mem | threads | mpi | floor-*
    "strategy",       # multiprocessing: partitioned | per-file (else empty)
    "split",          # mpi: rows | dates (else empty)
    "workers",        # processes / threads / ranks
    "n_dates",        # dates in the stack
    "tile",           # ROWSxCOLS of one tile, e.g. 1024x1024
    "block_rows",     # rows per block (empty: backend default)
    "filter",         # speckle filter before the statistics, e.g. lee:9:16 (empty: none)
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
_OPTIONAL_COLUMNS = {"filter"}  # absent from CSVs written before it existed: read as empty
_FLOAT_COLUMNS = {"wall_s", "startup_s", "read_s", "compute_s", "merge_s", "write_s", "gbps",
                  "max_abs_diff"}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS")
_VERSION_KEYS = ("python", "numpy", "rasterio", "gdal", "mpi4py", "mpi_library")
_SESSION = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
_MACHINE: dict[str, Any] | None = None


def session_id() -> str:
    """This process's run id (one per bench session or notebook kernel)."""
    return _SESSION


def now_iso() -> str:
    """The current UTC time as ISO 8601 to the second (the ``timestamp`` column)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _system_info() -> dict[str, Any]:
    """:func:`labkit.sysinfo.system_info`, or the essentials from the stdlib without it."""
    try:
        from labkit.sysinfo import system_info

        return dict(system_info())
    except ImportError:
        import platform

        import numpy as np

        return {"host": platform.node(), "cpu_model": platform.processor(),
                "cores_physical": os.cpu_count(), "cores_logical": os.cpu_count(),
                "python": platform.python_version(), "numpy": np.__version__}


def machine_columns() -> dict[str, Any]:
    """Machine columns of every row (cached for the process).

    Returns
    -------
    dict
        ``host``, ``cpu_model``, ``cores_physical``, ``cores_logical``, ``versions``
        (``python=..;numpy=..;...``) and ``threads_env`` (``OMP_NUM_THREADS=1;...``).
    """
    global _MACHINE
    if _MACHINE is None:
        info = _system_info()
        versions = ";".join(f"{k}={info[k]}" for k in _VERSION_KEYS if info.get(k))
        env = info.get("threads_env")
        if not isinstance(env, str):
            env = ";".join(f"{k}={os.environ.get(k, '')}" for k in _THREAD_VARS)
        _MACHINE = {
            "host": info.get("host", ""),
            "cpu_model": info.get("cpu_model", ""),
            "cores_physical": info.get("cores_physical") or "",
            "cores_logical": info.get("cores_logical") or os.cpu_count() or "",
            "versions": versions,
            "threads_env": env,
        }
    return _MACHINE


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
        ``in-process`` or ``process`` (whole process).
    max_abs_diff : float, optional
        Default: ``result.meta["max_abs_diff"]`` (set by
        :func:`labkit.bench.harness.time_backend`).
    label : str
        Experiment name.
    run_id : str, optional
        Default: :func:`session_id`.

    Returns
    -------
    dict
        Times in seconds, ``bytes`` in bytes, ``gbps`` in GB/s.
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
        "filter": m.get("filter") or "",
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
        "timestamp": now_iso(),
        "run_id": run_id or _SESSION,
        "label": label,
    }
    row.update(machine_columns())
    return {k: row.get(k, "") for k in CSV_COLUMNS}


def _cell(value: Any) -> str:
    """The CSV text of one value (6 significant digits for floats, empty for None)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.6g}"
    return str(value)


def _csv_lines(rows: list[dict[str, Any]]) -> str:
    """Whole CSV lines for ``rows``, refusing keys outside :data:`CSV_COLUMNS`."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    for r in rows:
        extra = set(r) - set(CSV_COLUMNS)
        if extra:
            raise LabError(f"row has unknown columns {sorted(extra)}: valid are CSV_COLUMNS")
        writer.writerow({k: _cell(r.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


def _create_whole(p: Path, text: str) -> bool:
    """Create ``p`` holding ``text`` (written aside, then linked in). False when another
    writer created it meanwhile (nothing written).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        default_mode(tmp)
        try:
            os.link(tmp, p)  # fails if another writer created it meanwhile
            return True
        except FileExistsError:
            return False
    finally:
        os.unlink(tmp)


def append_csv(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> Path:
    """Append rows to a benchmark CSV (created with its header if missing).

    Each call is one ``write`` of whole lines on an ``O_APPEND`` descriptor, so readers
    never see half a row. A new file appears whole (written aside, then linked in).

    Parameters
    ----------
    path : path
        The CSV file.
    rows : iterable of dict
        Keys among :data:`CSV_COLUMNS` (missing ones are written empty).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    LabError
        A row has keys outside :data:`CSV_COLUMNS`, or the existing file's header differs.
    """
    p = Path(path)
    body = _csv_lines(list(rows))
    header = ",".join(CSV_COLUMNS) + "\n"
    if p.is_dir():
        raise LabError(f"CSV {p} is a folder: give a file name such as {p / 'resultados.csv'}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabError(f"cannot create folder {p.parent}: {exc.strerror}") from None
    if not p.exists() and _create_whole(p, header + body):
        return p
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
    """One cell as int, float or str by its column (None when empty or unreadable)."""
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

    Parameters
    ----------
    path : path
        A CSV written by :func:`append_csv`.

    Returns
    -------
    list of dict
        Keys :data:`CSV_COLUMNS`; times in seconds.

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
        missing = set(CSV_COLUMNS) - set(reader.fieldnames or ()) - _OPTIONAL_COLUMNS
        if missing:
            raise LabError(f"{p} is not a labkit benchmark CSV (missing {sorted(missing)[:4]})")
        return [{k: _parse(k, r.get(k) or "") for k in CSV_COLUMNS} for r in reader]
