"""The course's side of the comparison: its script, its names and its ``tiempos.tsv``.

:func:`course_script` is the coursework's ``run_secuencial.py`` way of computing the
temporal mean and std; :func:`read_and_sum` is the least a process that looks at every
byte of the stack must do. Both are meant to run in a fresh process
(:func:`labkit.bench.process.python_call`), to be timed the way ``labkit run`` is.
:func:`write_course_tsv` writes the course's two-column ``backend<TAB>tiempo`` table.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from labkit.bench.schema import FLOOR_BACKENDS
from labkit.bench.summary import summarize
from labkit.io import write_text_atomic

__all__ = ["COURSE_NAMES", "course_script", "read_and_sum", "write_course_tsv"]

COURSE_NAMES = {  # the course's short names (benchmarks/resultados.csv of the coursework)
    ("sequential", ""): "sec",
    ("multiprocessing", "partitioned"): "mp{w}",
    ("multiprocessing", "per-file"): "mp{w}_perfile",
    ("mem", ""): "mp{w}_mem",
    ("threads", ""): "thr{w}",
    ("mpi", "rows"): "mpi{w}",
    ("mpi", "dates"): "mpi{w}_dates",
}


def read_and_sum(src: str) -> float:
    """Read every tile of ``src`` whole with rasterio and sum it.

    Plain rasterio, as a student would write it: the least a process that looks at
    every byte of the stack must do.

    Parameters
    ----------
    src : str
        Folder of ``*_int_crop.tif`` tiles.

    Returns
    -------
    float
        The sum of every pixel (float64; NaN if any pixel is NaN).
    """
    import warnings

    import numpy as np
    import rasterio

    total = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(Path(src).glob("*_int_crop.tif")):
            with rasterio.open(path) as ds:
                total += float(ds.read(1).sum(dtype=np.float64))
    return total


def course_script(src: str, mean_path: str, std_path: str) -> None:
    """The course's ``run_secuencial.py`` style: temporal mean and std of a tile folder.

    Read each tile whole, accumulate x and x² in float64 over the whole image, then
    ``mean = Σx/n`` and ``std = sqrt(Σx²/n - mean²)``, written as float32 GeoTIFFs.

    Parameters
    ----------
    src : str
        Folder of ``*_int_crop.tif`` tiles.
    mean_path, std_path : str
        The two GeoTIFFs to write (same units as the tiles).
    """
    import warnings

    import numpy as np
    import rasterio

    files = sorted(Path(src).glob("*_int_crop.tif"))
    s = ss = None
    profile: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            with rasterio.open(path) as ds:
                x = ds.read(1).astype(np.float64)
                profile = dict(ds.profile)
            if s is None:
                s, ss = np.zeros_like(x), np.zeros_like(x)
            s += x
            ss += x * x
        assert s is not None and ss is not None
        n = len(files)
        mean = s / n
        std = np.sqrt(np.maximum(ss / n - mean * mean, 0.0))
        profile.update(driver="GTiff", dtype="float32", count=1)
        for out, a in ((mean_path, mean), (std_path, std)):
            with rasterio.open(out, "w", **profile) as dst:
                dst.write(a.astype(np.float32), 1)


def _course_order(s: dict[str, Any]) -> tuple[int, int]:
    """Sort key of a summary: the course's table order, then the worker count."""
    order = list(COURSE_NAMES)
    variant = (s["backend"], s["strategy"] or s["split"])
    return (order.index(variant) if variant in order else len(order), s["workers"])


def write_course_tsv(rows: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """The course's two-column ``backend<TAB>tiempo`` file (median seconds).

    Names follow the coursework (``sec``, ``mp4``, ``mp4_mem``, ``mpi4``; plus
    ``mp4_perfile``, ``thr4``, ``mpi4_dates``). Whole-process times are used when
    measured (the course timed with ``/usr/bin/time``), in-process times otherwise.

    Returns
    -------
    Path
        ``path``.
    """
    summ = sorted((s for s in summarize(rows) if s["backend"] not in FLOOR_BACKENDS),
                  key=_course_order)
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
