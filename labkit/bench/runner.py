"""``labkit bench``: every backend variant at every worker count, rows appended to the CSV.

The configurations are timed in rounds (each once per round), in process on pools started
beforehand, then optionally as whole fresh processes; the floors are measured first and
the course's ``tiempos.tsv`` is written from the rows at the end.
"""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.bench.course import write_course_tsv
from labkit.bench.floors import measure_floors
from labkit.bench.harness import check_counts, time_backend
from labkit.bench.process import mpiexec_path, time_process
from labkit.bench.schema import append_csv, machine_columns, now_iso, read_csv, row_from_result
from labkit.bench.summary import variant_name
from labkit.errors import LabError

__all__ = ["parse_backends", "parse_workers", "run_bench", "startup_of"]

Config = tuple[str, str | None, str | None, int]  # backend, strategy, split, workers
_WORKERS_HINT = "must be whole numbers ≥ 1 like 1,2,4 or 1-4"


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
                raise LabError(f"workers {text!r} {_WORKERS_HINT}") from None
    if not values or any(not isinstance(v, int) or v < 1 for v in values):
        raise LabError(f"workers {text!r} {_WORKERS_HINT}")
    return sorted(set(values))


def _variants_of(item: str) -> list[tuple[str, str | None, str | None]]:
    """The (backend, strategy, split) triples one ``name[:variant]`` item stands for."""
    import importlib.util

    from labkit.backends import BACKENDS, resolve

    name, _, variant = item.partition(":")
    if name not in BACKENDS:
        raise LabError(f"unknown backend {name!r}: valid are {', '.join(BACKENDS)}")
    module, strategies, splits = BACKENDS[name]
    if importlib.util.find_spec(module) is None:
        raise LabError(f"backend {name!r} is not available in this labkit ({module} missing)")
    if variant:
        if strategies:
            return [resolve(name, strategy=variant)]
        if splits:
            return [resolve(name, split=variant)]
        raise LabError(f"backend {name!r} has no variants: use {name} alone")
    if strategies:
        return [resolve(name, strategy=s) for s in strategies]
    if splits:
        return [resolve(name, split=s) for s in splits]
    return [resolve(name)]


def parse_backends(text: str | Sequence[str]) -> list[tuple[str, str | None, str | None]]:
    """Backend variants from ``"sequential,multiprocessing:per-file,mpi"``.

    A bare ``multiprocessing`` means every strategy and a bare ``mpi`` every split.

    Returns
    -------
    list of (backend, strategy, split)
        Sequential first, no duplicates.
    """
    from labkit.backends import BACKENDS

    items = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    items = [p for p in items if p]
    if not items:
        raise LabError(f"no backends given: valid are {', '.join(BACKENDS)}")
    out: list[tuple[str, str | None, str | None]] = []
    for item in items:
        out += [v for v in _variants_of(item) if v not in out]
    out.sort(key=lambda v: v[0] != "sequential")
    return out


def startup_of(pool: Any) -> float:
    """Seconds a reusable pool or MPI cluster took to start."""
    value = getattr(pool, "startup_s", None)
    return float(value if value is not None else getattr(pool, "startup", 0.0) or 0.0)


def _configs(variants: list[tuple[str, str | None, str | None]],
             counts: list[int]) -> list[Config]:
    """Every variant at every worker count (sequential and gpu at 1 only; sequential always
    included: it is the reference).
    """
    one = ("sequential", "gpu")  # one process, one device: no worker counts
    configs = [(b, s, sp, 1 if b in one else w)
               for (b, s, sp) in variants for w in ([1] if b in one else counts)]
    if ("sequential", None, None, 1) not in configs:
        configs.insert(0, ("sequential", None, None, 1))
    return configs


def _note_oversubscription(counts: list[int]) -> None:
    """Say on stderr which worker counts exceed the logical cores (allowed, but slow)."""
    cores = int(machine_columns().get("cores_logical") or os.cpu_count() or 1)
    over = [w for w in counts if w > cores]
    if over:
        print(f"labkit bench: note: workers {over} exceed the {cores} logical cores "
              "(oversubscription: expect slow-downs)", file=sys.stderr)


@dataclass
class _Rounds:
    """One bench session's state: the stack, its configurations and their pools, the
    sequential reference, and what was measured so far.
    """

    stack: Any
    configs: list[Config]
    csv_file: Path
    label: str
    bar: Any
    pools: dict[tuple[str, int], Any] = field(default_factory=dict)
    reference: Any = None
    walls: dict[Config, list[float]] = field(default_factory=dict)
    template: dict[Config, dict[str, Any]] = field(default_factory=dict)
    written: list[dict[str, Any]] = field(default_factory=list)

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Append ``rows`` to the CSV now, so an interrupted bench keeps them."""
        append_csv(self.csv_file, rows)
        self.written += rows

    def start_pools(self) -> None:
        """One reusable pool/cluster per (backend, workers), started (and timed) once and
        kept out of the runs' wall times, as in a notebook.
        """
        from labkit.backends import make_pool

        for backend, _, _, w in self.configs:
            if backend != "sequential" and (backend, w) not in self.pools:
                self.bar.set_postfix_str(f"starting {backend} ×{w}")
                self.pools[(backend, w)] = make_pool(backend, w)

    def in_process_round(self, repeat: int | None) -> None:
        """Every configuration once, in process; ``repeat`` None: a warm-up round."""
        rows = []
        for cfg in self.configs:
            backend, strategy, split, w = cfg
            self.bar.set_postfix_str(f"{variant_name(backend, strategy, split)} ×{w}")
            pool = self.pools.get((backend, w))
            (res,) = time_backend(backend, self.stack, workers=w, strategy=strategy,
                                  split=split, repeat=1, warmup=0, reference=self.reference,
                                  pool=pool)
            if pool is not None:
                res.timings["startup"] = startup_of(pool)
            self.bar.update()
            if self.reference is None and backend == "sequential":
                self.reference = (res.mean, res.std)
                res.meta["max_abs_diff"] = 0.0
            if repeat is None:
                continue
            row = row_from_result(res, repeat=repeat, label=self.label)
            self.template.setdefault(cfg, row)
            self.walls.setdefault(cfg, []).append(res.timings["wall"])
            rows.append(row)
        self.append(rows)  # a warm-up round appends nothing (the header if the CSV is new)

    def process_round(self, repeat: int) -> None:
        """Every configuration once as a whole fresh process (after the in-process
        rounds: their median wall gives ``startup_s``).
        """
        rows = []
        for cfg in self.configs:
            backend, strategy, split, w = cfg
            self.bar.set_postfix_str(f"{variant_name(backend, strategy, split)} ×{w} process")
            (p,) = time_process(backend, self.stack, workers=w, strategy=strategy, split=split,
                                repeat=1, reference=self.reference)
            self.bar.update()
            first = self.template[cfg]
            rows.append(dict(
                first, repeat=repeat, mode="process", wall_s=p["wall"],
                startup_s=max(0.0, p["wall"] - statistics.median(self.walls[cfg])),
                read_s="", compute_s="", merge_s="", write_s="", timestamp=now_iso(),
                gbps=first["bytes"] / p["wall"] / 1e9, max_abs_diff=p["max_abs_diff"]))
        self.append(rows)

    def close_pools(self) -> None:
        """Shut every pool down."""
        for pool in self.pools.values():
            if pool is not None:
                pool.close()


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
    src : path
        Folder of intensity tiles.
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
    process_repeat : int, optional
        Whole-process runs per configuration (default ``repeat``; no warm-up: the page
        cache is warm from the in-process runs).
    course_tsv : bool, default True
        Write the course's table (``tsv_path``) from this run's rows.

    Returns
    -------
    list of dict
        The rows written (times in seconds).
    """
    from tqdm.auto import tqdm

    from labkit import paths
    from labkit.io import open_stack

    variants = parse_backends(backends)
    counts = parse_workers(workers)
    check_counts(repeat, warmup)
    csv_file = Path(csv_path) if csv_path else paths.bench_csv()
    if csv_file.exists():
        read_csv(csv_file)  # refuse a foreign header before timing anything
    stack = open_stack(src)
    if process and any(b == "mpi" for b, _, _ in variants):
        mpiexec_path()
    _note_oversubscription(counts)
    configs = _configs(variants, counts)
    p_repeat = repeat if process_repeat is None else process_repeat
    if not isinstance(p_repeat, int) or p_repeat < 1:
        raise LabError(f"process_repeat must be a whole number ≥ 1, got {p_repeat!r}")
    runs_each = warmup + repeat + (p_repeat if process else 0)
    bar = tqdm(total=len(configs) * runs_each, unit="run", disable=not progress,
               desc="bench", file=sys.stderr)
    rounds = _Rounds(stack, configs, csv_file, label, bar)
    try:
        if floors:
            rounds.append(measure_floors(stack, repeat=repeat, label=label))
        rounds.start_pools()
        # every configuration once per round (warm-up rounds first), so a burst of load
        # from elsewhere spreads over all configurations instead of hitting one
        for rnd in range(warmup + repeat):
            rounds.in_process_round(rnd - warmup if rnd >= warmup else None)
        for rnd in range(p_repeat if process else 0):
            rounds.process_round(rnd)
    finally:
        bar.close()
        rounds.close_pools()
    if rounds.written and course_tsv:
        tsv = Path(tsv_path) if tsv_path else csv_file.with_name("tiempos.tsv")
        write_course_tsv(rounds.written, tsv)
    return rounds.written
