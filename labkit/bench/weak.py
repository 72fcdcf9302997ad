"""Weak scaling: the work grows with the workers, so perfect scaling keeps the time constant.

Strong scaling (``labkit bench`` at 1..N workers on one stack) asks how much faster a
fixed job gets. Weak scaling asks whether ``p`` workers finish ``p`` times the work in
the same time: :func:`run_weak` gives each worker count ``p`` a stack of
``p × dates_per_worker`` dates (the source's tiles reused under new dates, one revisit
apart) and times every backend variant on it with :func:`~labkit.bench.runner.run_bench`
(rows labelled ``weak``). :func:`weak_points` turns those rows into the weak-scaling
efficiency ``E_w(p) = T(1 worker, d dates) / T(p workers, p·d dates)`` of each variant.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit.config import FLOORS, TILE_SUFFIX, acquisition_dates
from labkit.errors import LabError

__all__ = ["WEAK_LABEL", "grown_stack", "run_weak", "weak_points", "weak_rows"]

WEAK_LABEL = "weak"


def grown_stack(src: str | os.PathLike[str], dest: str | os.PathLike[str],
                n_dates: int) -> Path:
    """A stack of ``n_dates`` dates made of the tiles of ``src``, reused in turn.

    The files are copied (not linked) under new dates one revisit apart, so each date is
    its own file with its own pages in the page cache, like a longer acquisition series.
    An existing complete stack is reused; extra tiles in ``dest`` are removed.

    Parameters
    ----------
    src : path
        Tile folder to copy from.
    dest : path
        Folder of the grown stack (made if missing).
    n_dates : int
        Dates in the grown stack (≥ 1).
    """
    from labkit.io import open_stack

    if not isinstance(n_dates, int) or n_dates < 1:
        raise LabError(f"dates must be a whole number ≥ 1, got {n_dates!r}")
    stack = open_stack(src)
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    names = [out / f"{date}{TILE_SUFFIX}" for date in acquisition_dates(n_dates)]
    for i, path in enumerate(names):
        source = Path(stack.paths[i % stack.n_dates])
        if not (path.is_file() and path.stat().st_size == source.stat().st_size):
            shutil.copyfile(source, path)
    for extra in set(out.glob(f"*{TILE_SUFFIX}")) - set(names):
        extra.unlink()
    return out


def run_weak(
    src: str | os.PathLike[str],
    *,
    backends: str | Sequence[str],
    workers: str | Sequence[int],
    dates_per_worker: int | None = None,
    repeat: int = 3,
    warmup: int = 1,
    csv_path: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    label: str = WEAK_LABEL,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Time every variant with ``p`` workers on ``p × dates_per_worker`` dates, for each ``p``.

    One worker is always included (the baseline of the efficiency). Each stack also gets
    a sequential run, so the scaled speed-up ``T_sequential(p·d) / T(p, p·d)`` is known.

    Parameters
    ----------
    src : path
        Tile folder: its tiles make every grown stack.
    backends : str or list
        As :func:`labkit.bench.run_bench` (e.g. ``"sequential,threads,mem"``).
    workers : str or list of int
        Worker counts, e.g. ``"1-4"``.
    dates_per_worker : int, optional
        Dates each worker gets (default: the source's number of dates).
    repeat, warmup : int
        Timed and untimed runs per configuration.
    csv_path : path, optional
        Benchmark CSV (default ``benchmarks/resultados.csv`` under the lab's home).
    root : path, optional
        Folder for the grown stacks (default ``<data>/weak/<source folder>``).
    label : str, default "weak"
        Experiment label of the rows.
    progress : bool
        A progress bar per stack on stderr.

    Returns
    -------
    list of dict
        The rows written (times in seconds).
    """
    from labkit import paths
    from labkit.bench.runner import parse_workers, run_bench
    from labkit.io import open_stack

    stack = open_stack(src)
    per = stack.n_dates if dates_per_worker is None else dates_per_worker
    if not isinstance(per, int) or per < 1:
        raise LabError(f"dates per worker must be a whole number ≥ 1, got {per!r}")
    counts = sorted({1, *parse_workers(workers)})
    base = Path(root) if root else paths.data_dir() / "weak" / Path(src).resolve().name
    written: list[dict[str, Any]] = []
    for p in counts:
        n_dates = p * per
        here = (Path(src) if n_dates == stack.n_dates
                else grown_stack(src, base / f"d{n_dates}", n_dates))
        if progress:
            print(f"weak scaling: {p} worker(s) on {n_dates} dates", file=sys.stderr)
        written += run_bench(here, backends=backends, workers=[p], repeat=repeat,
                             warmup=warmup, csv_path=csv_path, process=False, label=label,
                             floors=False, progress=progress, course_tsv=False)
    return written


def weak_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the last weak-scaling run (label ``weak...``): its session, host and tile."""
    weak = [r for r in rows if (r.get("label") or "").startswith(WEAK_LABEL)
            and r.get("backend") not in FLOORS]
    if not weak:
        return []
    last = weak[-1]
    key = ("run_id", "host", "tile")
    return [r for r in weak if all(r.get(k) == last.get(k) for k in key)]


def weak_points(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Weak-scaling points of every variant, from benchmark rows (any labels mixed).

    Returns
    -------
    dict
        ``{variant: [{workers, n_dates, wall, t_one, efficiency, t_seq, scaled_speedup}]}``
        sorted by workers: ``wall`` (s, median) with ``workers`` on ``n_dates`` dates,
        ``t_one`` its own 1-worker time on ``n_dates / workers`` dates, ``efficiency``
        ``t_one / wall`` (1 is perfect), ``t_seq`` sequential on the same ``n_dates``
        and ``scaled_speedup`` ``t_seq / wall``. A variant without its 1-worker run is
        left out; empty without weak-scaling rows.
    """
    from labkit.bench.summary import summarize

    summ = [s for s in summarize(weak_rows(rows)) if s["mode"] == "in-process"]
    if not summ:
        return {}
    seq = {s["n_dates"]: s["wall"] for s in summ if s["backend"] == "sequential"}
    one = {(s["variant"], s["n_dates"]): s["wall"] for s in summ if s["workers"] == 1}
    out: dict[str, list[dict[str, Any]]] = {}
    for s in summ:
        if s["backend"] == "sequential" or s["n_dates"] % s["workers"]:
            continue
        t_one = one.get((s["variant"], s["n_dates"] // s["workers"]))
        if t_one is None or s["wall"] <= 0:
            continue
        t_seq = seq.get(s["n_dates"])
        out.setdefault(s["variant"], []).append({
            "workers": s["workers"], "n_dates": s["n_dates"], "wall": s["wall"],
            "t_one": t_one, "efficiency": t_one / s["wall"], "t_seq": t_seq,
            "scaled_speedup": t_seq / s["wall"] if t_seq else None})
    for pts in out.values():
        pts.sort(key=lambda d: d["workers"])
    return out
