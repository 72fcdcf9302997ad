"""Measurements the informe makes in its own session: the roofline and speed-up against K.

The benchmark CSV holds the timed runs; the machine's roofs (memory bandwidth, peak flop
rate), where the lab's kernels sit under them, and how the speed-up of N workers over 1
grows with the Lee window K are measured when the informe is built, on the same tiles
(:mod:`labkit.bench.roofline`, :mod:`labkit.bench.kernels_k`), and written as figures
in the informe's language.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.report.facts import Roofline, RooflinePoint, Sweep, SweepPoint

__all__ = ["Extras", "measure_extras", "roofline_facts", "sweep_facts"]

QUICK_KS = (0, 3, 9)  # Lee windows of a quick run (0: statistics only)
FULL_KS = (0, 3, 5, 9, 15)
SWEEP_BACKENDS = ("threads", "mem", "multiprocessing")


@dataclass(frozen=True)
class Extras:
    """What :func:`measure_extras` measured: facts for the informe and the figures."""

    roofline: Roofline
    sweep: Sweep
    figures: dict[str, Path]


def roofline_facts(roof: Any, points: Any) -> Roofline:
    """:class:`Roofline` facts from a measured roof and placed kernel points.

    Parameters
    ----------
    roof : labkit.bench.roofline.Roof
        Bandwidth (GB/s) and peak (GFLOP/s) per thread count.
    points : sequence of labkit.bench.roofline.KernelPoint
        The lab's kernels placed on it.
    """
    top = max(roof.threads)
    one = min(roof.threads)
    placed = tuple(
        RooflinePoint(label=p.label, intensity=p.intensity, gflops=p.gflops,
                      attainable=roof.attainable(p.intensity,
                                                 p.workers if p.workers in roof.threads
                                                 else top))
        for p in points)
    return Roofline(bandwidth=roof.bandwidth_gbps[top], bandwidth_one=roof.bandwidth_gbps[one],
                    peak=roof.peak_gflops[top], peak_one=roof.peak_gflops[one],
                    ridge=roof.ridge(top), points=placed)


def sweep_facts(records: Any) -> Sweep:
    """:class:`Sweep` facts from :func:`labkit.bench.kernels_k.speedup_vs_k` records."""
    return Sweep(points=tuple(SweepPoint(backend=r.backend, k=r.k, workers=r.workers,
                                         speedup=r.speedup) for r in records))


def _words(lang: str) -> tuple[dict[str, str], dict[str, str], str, str]:
    """Localized texts of the roofline and speed-up-vs-K figures, and their titles."""
    from labkit.plots.labels import say

    roof = {k: say(f"roof_{k}", lang) for k in
            ("x", "y", "memory", "compute", "scalar", "ridge", "threads")}
    sweep = {k: say(f"sweep_{k}", lang) for k in ("x", "y", "none", "ideal")}
    return roof, sweep, say("roof_title", lang), say("sweep_title", lang)


def gpu_points(tiles: str | os.PathLike[str], repeat: int = 3) -> list[Any]:
    """The gpu backend's kernels on the roofline when a GPU is present (else none).

    Timed like the CPU points, one worker; the achieved rate is counted flops over the
    kernel time alone (copies over the bus are the gpu run's ``merge`` phase). The roofs
    drawn are this machine's CPU roofs: a GPU point above them shows by how much the
    device outruns the cores.
    """
    from labkit.backends.gpu import device_present
    from labkit.bench import roofline

    if not device_present():
        return []
    return list(roofline.kernel_points(tiles, filters=(None, "lee:9"), backends=("gpu",),
                                       workers=(1,), repeat=repeat))


def measure_extras(tiles: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                   workers: int | None = None, quick: bool = False, lang: str = "en",
                   repeat: int = 3) -> Extras:
    """Measure the roofline and the speed-up against K on ``tiles``; write both figures.

    Parameters
    ----------
    tiles : path
        Tile folder (a preset's: the Lee filter reads the looks from the tiles).
    out_dir : path
        Folder for ``roofline.png`` and ``speedup_k.png``.
    workers : int, optional
        N, compared with 1 worker (default: the logical cores, at least 2).
    quick : bool
        Fewer K (none, 3, 9) and smaller roof measurements (tests, tiny preset).
    lang : {"en", "es"}
        Language of the figures.
    repeat : int, default 3
        Timed runs of each configuration (medians).

    Returns
    -------
    Extras
    """
    from labkit.bench import kernels_k, roofline
    from labkit.plots.roofline import plot_roofline, plot_speedup_k

    n = max(2, workers or os.cpu_count() or 2)
    threads = (1, n)
    roof = (roofline.measure_roof(threads=threads, repeat=3, iters=1 << 18) if quick
            else roofline.measure_roof(threads=threads))
    points = roofline.kernel_points(tiles, filters=(None, "lee:9"), backends=("threads",),
                                    workers=threads, repeat=repeat)
    points += gpu_points(tiles, repeat)
    records = kernels_k.speedup_vs_k(tiles, ks=QUICK_KS if quick else FULL_KS,
                                     backends=SWEEP_BACKENDS, workers=n, repeat=repeat)
    roof_words, sweep_words, roof_title, sweep_title = _words(lang)
    out = Path(out_dir)
    figures = {
        "roofline": plot_roofline(roof, points, out / "roofline.png", title=roof_title,
                                  labels=roof_words, lang=lang),
        "speedup_k": plot_speedup_k(records, out / "speedup_k.png", title=sweep_title,
                                    labels=sweep_words, lang=lang),
    }
    return Extras(roofline=roofline_facts(roof, points), sweep=sweep_facts(records),
                  figures=figures)
