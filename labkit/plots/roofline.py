"""The roofline figure and the speed-up against the filter's window side K.

* :func:`roofline_figure`: log-log, attainable GFLOP/s against arithmetic intensity
  (flop/B): the memory roof (measured triad bandwidth × intensity) up to the compute roof
  (measured multiply-add rate), for 1 thread and for all of them, the scalar roof dashed,
  the ridge points marked, and the lab's kernels as labelled points
  (:class:`labkit.bench.roofline.KernelPoint`).
* :func:`speedup_k_figure`: speed-up of N workers over 1 against K (``none`` first), one
  line per backend, ideal N dotted (:class:`labkit.bench.kernels_k.KSpeedup`).

Both return a matplotlib Figure (Agg, not managed by pyplot); :func:`plot_roofline` and
:func:`plot_speedup_k` write it as PNG (atomically) and return the path::

    from labkit.bench import roofline, kernels_k
    from labkit.plots.roofline import roofline_figure, speedup_k_figure

    fig = roofline_figure(roofline.measure_roof(), roofline.kernel_points(tiles))
    fig = speedup_k_figure(kernels_k.speedup_vs_k(tiles))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import LabError
from labkit.plots._figure import decimal_mark, save
from labkit.plots.labels import num

__all__ = ["plot_roofline", "plot_speedup_k", "roofline_figure", "speedup_k_figure"]


def _figure(size: tuple[float, float]) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.add_subplot()


def roofline_figure(roof: Any, points: Sequence[Any] = (), *, title: str | None = None,
                    labels: dict[str, str] | None = None, lang: str = "en") -> Any:
    """The measured roofline with the lab's kernels placed on it.

    Parameters
    ----------
    roof : labkit.bench.roofline.Roof
        Measured bandwidths (GB/s) and peaks (GFLOP/s) per thread count.
    points : sequence of KernelPoint
        Placed at (intensity in flop/B, achieved GFLOP/s), labelled.
    title : str, optional
        Figure title (default: "Roofline of this machine").
    labels : dict, optional
        Replacement texts for the axis and legend words (keys ``x``, ``y``, ``memory``,
        ``compute``, ``scalar``, ``ridge``, ``threads``), e.g. for a Spanish figure.
    lang : {"en", "es"}, default "en"
        Decimal mark of the numbers in the legend (``es``: comma).

    Returns
    -------
    matplotlib.figure.Figure
    """
    words = {"x": "arithmetic intensity (flop/byte)", "y": "GFLOP/s",
             "memory": "memory", "compute": "compute", "scalar": "scalar roof",
             "ridge": "ridge", "threads": "thread(s)", **(labels or {})}
    fig, ax = _figure((7.0, 4.6))
    xs = [p.intensity for p in points]
    lo = min([0.05, *[x / 3 for x in xs]])
    hi = max([4 * roof.ridge(), 100.0, *[x * 3 for x in xs]])
    grid = np.geomspace(lo, hi, 200)
    colors = {t: c for t, c in zip(roof.threads, ("tab:blue", "tab:red", "tab:green",
                                                  "tab:purple"), strict=False)}
    for i, t in enumerate(roof.threads):
        c = colors.get(t, "0.3")
        ax.plot(grid, np.minimum(roof.peak_gflops[t], roof.bandwidth_gbps[t] * grid), color=c,
                lw=2, label=f"{t} {words['threads']}: {words['memory']} "
                            f"{num(roof.bandwidth_gbps[t], lang)} GB/s, {words['compute']} "
                            f"{num(roof.peak_gflops[t], lang)} GFLOP/s")
        ax.plot(grid, np.minimum(roof.scalar_gflops[t], roof.bandwidth_gbps[t] * grid),
                color=c, lw=1, ls="--",
                label=f"{t} {words['threads']}: {words['scalar']} "
                      f"{num(roof.scalar_gflops[t], lang)} GFLOP/s")
        r = roof.ridge(t)
        ax.plot([r], [roof.peak_gflops[t]], "v", color=c, ms=7)
        ax.annotate(f"{words['ridge']} {num(r, lang, 2)}", (r, roof.peak_gflops[t]),
                    textcoords="offset points", xytext=(-30, 8 + 11 * i), fontsize=8,
                    color=c)
    markers = {"stats": "o"}
    for p in points:
        c = colors.get(p.workers, "0.2")
        ax.plot([p.intensity], [p.gflops], markers.get(p.kernel, "s"), color=c, mec="k",
                ms=7)
    for kernel in dict.fromkeys(p.kernel for p in points):  # the top label above, the rest below
        same = sorted((p for p in points if p.kernel == kernel), key=lambda p: -p.gflops)
        for i, p in enumerate(same):
            ax.annotate(p.label, (p.intensity, p.gflops), textcoords="offset points",
                        xytext=(6, 4 if i == 0 else -10 * i), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    tops = [*roof.peak_gflops.values()]
    bottoms = [p.gflops for p in points if p.gflops > 0] + [roof.bandwidth_gbps[1] * lo]
    ax.set_ylim(min(bottoms) / 2, max(tops) * 2)
    ax.set_xlabel(words["x"])
    ax.set_ylabel(words["y"])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title or "Roofline of this machine", fontsize=10)
    fig.tight_layout()
    return fig


def speedup_k_figure(records: Sequence[Any], *, title: str | None = None,
                     labels: dict[str, str] | None = None, lang: str = "en") -> Any:
    """Speed-up of N workers over 1 against the Lee window side K, one line per backend.

    Parameters
    ----------
    records : sequence of KSpeedup
        From :func:`labkit.bench.kernels_k.speedup_vs_k` (``k`` 0: no filter).
    title : str, optional
        Figure title.
    labels : dict, optional
        Replacement texts (keys ``x``, ``y``, ``none``, ``ideal``).
    lang : {"en", "es"}, default "en"
        Decimal mark of the speed-up axis (``es``: comma).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not records:
        raise LabError("no speed-ups to plot: run speedup_vs_k first")
    words = {"x": "Lee window side K", "y": "speed-up (1 worker / N workers)",
             "none": "none", "ideal": "ideal", **(labels or {})}
    fig, ax = _figure((6.4, 4.0))
    ks = sorted({r.k for r in records})
    pos = {k: i for i, k in enumerate(ks)}
    for backend in dict.fromkeys(r.backend for r in records):
        rs = sorted((r for r in records if r.backend == backend), key=lambda r: r.k)
        ax.plot([pos[r.k] for r in rs], [r.speedup for r in rs], "o-",
                label=f"{backend} ×{rs[0].workers}")
    for n in sorted({r.workers for r in records}):
        ax.axhline(n, color="0.5", ls=":", lw=1)
        ax.annotate(f"{words['ideal']} {n}×", (0, n), textcoords="offset points",
                    xytext=(2, 3), fontsize=7, color="0.4")
    ax.axhline(1, color="0.7", lw=0.8)
    ax.set_xticks(range(len(ks)), [words["none"] if k == 0 else str(k) for k in ks])
    ax.set_xlabel(words["x"])
    ax.set_ylabel(words["y"])
    ax.set_ylim(0, max([r.speedup for r in records] + [r.workers for r in records]) * 1.15)
    decimal_mark(fig, lang)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "Where parallelism pays: speed-up against kernel weight",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_roofline(roof: Any, points: Sequence[Any], out: str | os.PathLike[str],
                  **kw: Any) -> Path:
    """:func:`roofline_figure` written as PNG to ``out``; returns the path."""
    return save(roofline_figure(roof, points, **kw), out)


def plot_speedup_k(records: Sequence[Any], out: str | os.PathLike[str], **kw: Any) -> Path:
    """:func:`speedup_k_figure` written as PNG to ``out``; returns the path."""
    return save(speedup_k_figure(records, **kw), out)
