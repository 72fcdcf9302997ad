"""From benchmark CSV rows to the informe's :class:`~labkit.report.facts.Facts`."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from labkit.config import FLOORS
from labkit.errors import LabError
from labkit.report.facts import (
    Config,
    Correctness,
    Facts,
    Floor,
    Machine,
    MapStats,
    Roofline,
    Runs,
    Scale,
    ScalePoint,
    ScaleSize,
    ScaleVerdict,
    Spread,
    StackData,
    Sweep,
    Variant,
    Weak,
    WeakPoint,
    WeakSeries,
    XarrayGap,
)

__all__ = ["analyze", "maps_stats"]

FLOAT32_BYTES = 4


def analyze(rows: Sequence[dict[str, Any]], *, label: str | None = None,
            preset: str | None = None, tiles: str | os.PathLike[str] | None = None,
            maps: MapStats | Mapping[str, Any] | None = None,
            roofline: Roofline | None = None, sweep: Sweep | None = None) -> Facts:
    """Numbers the informe quotes, computed from benchmark rows.

    Parameters
    ----------
    rows : list of dict
        :func:`labkit.bench.read_csv` output (the whole CSV).
    label : str, optional
        Experiment to report (default: ``main`` when present, see
        :func:`labkit.plots.select_main`).
    preset : str, optional
        Synthetic preset the data came from (None: unknown or real data). Dropped when
        the CSV's number of dates is not the preset's.
    tiles : path, optional
        Tile folder, quoted in the Reproduce section.
    maps : MapStats or dict, optional
        PS counts of ``maps.png`` (:func:`maps_stats`, or the ``maps.json`` dict).
    roofline : Roofline, optional
        The machine's roof and the kernels placed on it, measured in the same session
        (:func:`labkit.report.measure_roofline`).
    sweep : Sweep, optional
        Speed-up against the Lee window K (:func:`labkit.report.measure_sweep`).

    Returns
    -------
    Facts
    """
    from labkit.bench import summarize
    from labkit.plots import select_main

    if not rows:
        raise LabError("the benchmark CSV is empty: run `labkit bench` first")
    main = select_main(rows, label)
    summary = summarize(main)
    timed = [s for s in summary if s["backend"] not in FLOORS]
    in_process = [s for s in timed if s["mode"] == "in-process"]
    process = {_key(s): s for s in timed if s["mode"] == "process"}
    seq_row = next((s for s in in_process
                    if s["backend"] == "sequential" and s["workers"] == 1), None)
    if seq_row is None:
        raise LabError("the experiment has no sequential run: the informe compares against it "
                       "(run `labkit bench` with sequential in --backends)")
    last = [r for r in main if r.get("backend") not in FLOORS][-1]
    cores = int(last.get("cores_logical") or os.cpu_count() or 1)
    floors = {s["backend"]: Floor(wall=s["wall"], gbps=s["gbps"])
              for s in summary if s["backend"] in FLOORS}
    read_floor = floors.get("floor-read")
    configs = _configs(in_process, process, seq_row["wall"], cores, read_floor)
    seq = configs[0]
    variants = _variants(configs)
    others = [c for c in configs if c.backend != "sequential"]
    parallel = [c for c in others if c.workers > 1] or others
    single = [c for c in others if c.workers == 1 and c.wall < seq.wall]
    widest = max(configs, key=lambda c: c.spread)
    data = _stack_data(seq_row, preset, tiles)
    return Facts(
        machine=_machine(last),
        cores=cores,
        data=data,
        label=last.get("label") or "",
        seq=seq,
        configs=configs,
        variants=MappingProxyType(variants),
        best=min(parallel, key=lambda c: c.wall) if parallel else None,
        best_single=min(single, key=lambda c: c.wall) if single else None,
        read_floor=read_floor,
        memory_floor=floors.get("floor-memory"),
        has_process=bool(process),
        workers=tuple(sorted({c.workers for c in configs})),
        repeats=max(c.repeats for c in configs),
        spread=Spread(ratio=widest.spread, variant=widest.variant, workers=widest.workers),
        correctness=_correctness(configs),
        scale=_scale(rows),
        maps=MapStats.from_json(maps) if isinstance(maps, Mapping) else maps,
        runs=_runs(main),
        xarray=_xarray(configs, data),
        weak=_weak(rows),
        roofline=roofline,
        sweep=sweep,
    )


def _key(s: Mapping[str, Any]) -> tuple[str, int, int]:
    """(backend/strategy/split, workers, block rows) of a summary row: the same in both
    modes, whatever display name the variant got.
    """
    from labkit.bench import variant_name

    return (variant_name(s["backend"], s["strategy"], s["split"]), s["workers"],
            s.get("block_rows") or 0)


def _runs(main: Sequence[dict[str, Any]]) -> Runs | None:
    """Which rows the informe is computed from: label, first/last timestamp, counts."""
    stamps = sorted(str(r["timestamp"]) for r in main if r.get("timestamp"))
    if not stamps:
        return None
    labels = sorted({r.get("label") or "" for r in main})
    return Runs(label="+".join(labels), first=stamps[0], last=stamps[-1], rows=len(main),
                sessions=len({r.get("run_id") for r in main}))


def _xarray(configs: Sequence[Config], data: StackData) -> XarrayGap | None:
    """The xarray way (backend ``dask``, strategy ``xarray``) against the fastest labkit
    configuration, when the experiment has both.
    """
    ways = [c for c in configs if c.backend == "dask" and "xarray" in c.variant]
    ours = [c for c in configs if c not in ways]
    if not ways or not ours:
        return None
    return XarrayGap(xarray=min(ways, key=lambda c: c.wall), best=min(ours, key=lambda c: c.wall),
                     float64_mib=2 * data.mib)


def _weak(rows: Sequence[dict[str, Any]]) -> Weak | None:
    """The last weak-scaling run (rows labelled ``weak``), or None."""
    from labkit.bench.weak import weak_points, weak_rows
    from labkit.plots import core_counts

    points = weak_points(rows)
    if not points:
        return None
    phys, logical = core_counts(weak_rows(rows))
    limit = phys or logical or 10**9
    series = tuple(
        WeakSeries(variant=v, points=tuple(
            WeakPoint(workers=d["workers"], n_dates=d["n_dates"], wall=d["wall"],
                      efficiency=d["efficiency"], scaled_speedup=d["scaled_speedup"],
                      past_physical=d["workers"] > limit) for d in pts))
        for v, pts in sorted(points.items()))
    per = min(p.n_dates // p.workers for s in series for p in s.points)
    return Weak(dates_per_worker=per, tile=str(weak_rows(rows)[-1]["tile"]), series=series,
                cores_physical=phys, cores_logical=logical)


def maps_stats(figures: Mapping[str, str | os.PathLike[str]] | None) -> MapStats | None:
    """PS counts written beside ``maps.png`` (``maps.json``), or None.

    Parameters
    ----------
    figures : dict, optional
        ``{name: path}`` of the figures written (:func:`labkit.report.make_figures`).
    """
    if not figures or "maps" not in figures:
        return None
    side = Path(figures["maps"]).with_suffix(".json")
    try:
        return MapStats.from_json(json.loads(side.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _machine(row: Mapping[str, Any]) -> Machine:
    """The machine columns of a CSV row."""
    return Machine(host=row.get("host") or "", cpu_model=row.get("cpu_model") or "",
                   cores_physical=row.get("cores_physical") or "",
                   cores_logical=row.get("cores_logical") or "",
                   versions=row.get("versions") or "", threads_env=row.get("threads_env") or "")


def _stack_data(seq_row: Mapping[str, Any], preset: str | None,
                tiles: str | os.PathLike[str] | None) -> StackData:
    """Size of the timed stack; ``preset`` kept only if its number of dates matches."""
    n_dates = int(seq_row["n_dates"])
    if preset:
        from labkit.sar.synth import PRESETS

        if preset not in PRESETS or PRESETS[preset].dates != n_dates:
            preset = None  # the CSV is not from that preset: do not claim it
    rows, cols = (int(v) for v in str(seq_row["tile"]).split("x"))
    size = n_dates * rows * cols * FLOAT32_BYTES
    return StackData(n_dates=n_dates, tile=str(seq_row["tile"]), rows=rows, cols=cols,
                     mib=size / 2**20, bytes=size, preset=preset,
                     tiles=str(tiles) if tiles else None)


def _configs(in_process: list[dict[str, Any]], process: Mapping[tuple[str, int, int], dict],
             seq_wall: float, cores: int, read_floor: Floor | None) -> tuple[Config, ...]:
    """One :class:`Config` per in-process summary row, sequential first."""
    def order(s: dict[str, Any]) -> tuple[bool, str, int]:
        return s["variant"] != "sequential", s["variant"], s["workers"]

    out = []
    for s in sorted(in_process, key=order):
        whole = process.get(_key(s))
        speedup = seq_wall / s["wall"] if s["wall"] > 0 else math.nan
        out.append(Config(
            variant=s["variant"], backend=s["backend"], workers=s["workers"], repeats=s["n"],
            wall=s["wall"], wall_min=s["wall_min"], wall_max=s["wall_max"],
            startup=s["startup"], read=s["read"], compute=s["compute"], merge=s["merge"],
            max_abs_diff=s["max_abs_diff"], speedup=speedup,
            efficiency=speedup / s["workers"],
            process_wall=whole["wall"] if whole else None,
            oversubscribed=s["workers"] > cores,
            read_floor_ratio=(s["wall"] / read_floor.wall
                              if read_floor and read_floor.wall > 0 else None),
            block_rows=s.get("block_rows") or None,
        ))
    return tuple(out)


def _variants(configs: Sequence[Config]) -> dict[str, Variant]:
    """The parallel variants with their top/best configuration and Amdahl fit."""
    from labkit.plots import fit_amdahl, fit_time_model

    grouped: dict[str, list[Config]] = {}
    for c in configs:
        if c.backend != "sequential":
            grouped.setdefault(c.variant, []).append(c)
    out = {}
    for name, group in grouped.items():
        fitting = [c for c in group if not c.oversubscribed]
        top = max(fitting, key=lambda c: c.workers) if fitting else group[-1]
        workers, speedups = [c.workers for c in group], [c.speedup for c in group]
        constant, _ = fit_time_model(workers, speedups)  # T(p)/T_seq = constant + b/p
        if math.isnan(constant):
            ceiling = math.nan
        else:
            ceiling = 1.0 / constant if constant > 0 else math.inf
        out[name] = Variant(name=name, configs=tuple(group), top=top,
                            best=min(group, key=lambda c: c.wall),
                            fit=fit_amdahl(workers, speedups), ceiling=ceiling,
                            counts=len(set(workers)))
    return out


def _correctness(configs: Sequence[Config]) -> Correctness:
    """Each variant's worst max |Δ| against sequential, grouped."""
    worst: dict[str, Config] = {}
    for c in configs:
        if c.backend == "sequential" or c.max_abs_diff is None:
            continue
        if c.variant not in worst or c.max_abs_diff > (worst[c.variant].max_abs_diff or 0.0):
            worst[c.variant] = c
    rounding = [c for c in worst.values() if 0 < (c.max_abs_diff or 0.0) < math.inf]
    return Correctness(
        exact=tuple(sorted(v for v, c in worst.items() if c.max_abs_diff == 0)),
        rounding=tuple(sorted(c.variant for c in rounding)),
        worst_rounding=max(rounding, key=lambda c: c.max_abs_diff or 0.0) if rounding else None,
        broken=tuple(sorted(v for v, c in worst.items() if c.nan_mismatch)),
    )


def _scale(rows: Sequence[dict[str, Any]]) -> Scale | None:
    """The scaled experiment (rows labelled ``scale*``), or None when there is none."""
    from labkit.plots import scale_rows, scaling_points

    picked = scale_rows(rows)
    by_variant = scaling_points(picked) if picked else {}
    if not by_variant:
        return None
    points = {v: [ScalePoint(**p) for p in pts] for v, pts in by_variant.items()}
    names = tuple(sorted(points))
    seen = {(p.n_dates, p.tile, p.mib, p.t_seq) for pts in points.values() for p in pts}
    sizes = []
    for n_dates, tile, mib, t_seq in sorted(seen, key=lambda t: t[2]):
        cells = []
        for name in names:
            here = next((p for p in points[name] if p.n_dates == n_dates and p.tile == tile),
                        None)
            cells.append(here.speedup if here else None)
        sizes.append(ScaleSize(n_dates=n_dates, tile=tile, mib=mib, t_seq=t_seq,
                               speedups=tuple(cells)))
    verdicts = tuple(
        ScaleVerdict(variant=name, first=next((p for p in points[name] if p.speedup > 1), None),
                     top=max(points[name], key=lambda p: p.speedup),
                     largest_mib=points[name][-1].mib)
        for name in names)
    return Scale(variants=names, sizes=tuple(sizes), verdicts=verdicts)
