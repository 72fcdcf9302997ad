"""The timing figures of a benchmark: ``t_barras.png`` (median time, min..max as error
bars), ``speedup.png`` (vs sequential, ideal line, fitted Amdahl curves),
``efficiency.png``, ``breakdown.png`` (stacked phases) and ``scaling.png`` (speed-up
against stack size).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import LabError
from labkit.plots._figure import (
    FLOORS,
    PHASE_COLORS,
    finish,
    pyplot,
    save,
    summary,
    variant_colors,
)
from labkit.plots.labels import num, say
from labkit.plots.models import (
    FIT_MIN_COUNTS,
    fit_amdahl,
    fit_time_model,
    scale_rows,
    scaling_points,
    speedups,
    tile_side,
)

__all__ = ["plot_breakdown", "plot_efficiency", "plot_scaling", "plot_speedup", "plot_times"]


def plot_times(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str],
               lang: str = "en") -> Path:
    """``t_barras.png``: median wall time per variant and worker count, min..max bars.

    One panel per mode (in-process; whole process when measured). Dashed lines: the
    read and memory floors for the stack's bytes. ``lang``: language of the labels.
    """
    plt = pyplot()
    summ = summary(rows)
    timed = [s for s in summ if s["backend"] not in FLOORS]
    if not timed:
        raise LabError("no timed rows to plot: run `labkit bench` first")
    modes = [m for m in ("in-process", "process") if any(s["mode"] == m for s in timed)]
    workers = sorted({s["workers"] for s in timed})
    variants = sorted({s["variant"] for s in timed}, key=lambda v: (v != "sequential", v))
    floors = {s["backend"]: s["wall"] for s in summ if s["backend"] in FLOORS}
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes) + 1, 4.2), squeeze=False)
    width = 0.8 / len(workers)
    wcolors = {w: plt.get_cmap("viridis")(i / max(1, len(workers) - 1) * 0.85)
               for i, w in enumerate(workers)}
    for ax, mode in zip(axes[0], modes, strict=True):
        for j, w in enumerate(workers):
            xs, hs, lo, hi = [], [], [], []
            for i, v in enumerate(variants):
                s = next((s for s in timed if s["variant"] == v and s["workers"] == w
                          and s["mode"] == mode), None)
                if s is None:
                    continue
                xs.append(i + (j - (len(workers) - 1) / 2) * width)
                hs.append(s["wall"])
                lo.append(s["wall"] - s["wall_min"])
                hi.append(s["wall_max"] - s["wall"])
            if xs:
                ax.bar(xs, hs, width, yerr=[lo, hi], capsize=2, color=wcolors[w],
                       label=say("workers" if w > 1 else "worker", lang, n=w))
        if mode == "in-process":
            for name, style in (("floor-read", "--"), ("floor-memory", ":")):
                if name in floors:
                    ax.axhline(floors[name], color="k", ls=style, lw=1,
                               label=say("floor", lang, name=name,
                                         value=num(floors[name], lang)))
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels(variants, rotation=25, ha="right")
        ax.set_ylabel(say("wall_axis", lang))
        ax.legend(fontsize=7)
        ax.set_title(say("in_process" if mode == "in-process" else "whole_process", lang))
    finish(fig, rows, say("times_title", lang), lang=lang)
    return save(fig, out)


def plot_speedup(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str],
                 mode: str = "in-process", lang: str = "en") -> Path:
    """``speedup.png``: speed-up vs workers relative to sequential, ideal line, Amdahl fits
    (only for variants timed at :data:`~labkit.plots.models.FIT_MIN_COUNTS` or more
    worker counts).
    """
    plt = pyplot()
    sp = speedups(summary(rows), mode)
    if not sp:
        raise LabError("no sequential run in the CSV: speed-up needs the sequential baseline")
    colors = variant_colors(sp)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    pmax = max(d["workers"] for v in sp.values() for d in v)
    grid = np.linspace(1, max(pmax, 2), 100)
    ax.plot(grid, grid, color="0.6", lw=1, ls="--", label=say("ideal", lang))
    ax.axhline(1.0, color="0.8", lw=0.8)
    for v, pts in sp.items():
        if v == "sequential":
            continue
        p = [d["workers"] for d in pts]
        s = [d["speedup"] for d in pts]
        frac = fit_amdahl(p, s)
        lab = v if math.isnan(frac) else say("amdahl_label", lang, variant=v,
                                             s=num(round(frac, 2), lang, 2))
        ax.plot(p, s, "o-", color=colors[v], label=lab)
        a, b = fit_time_model(p, s)
        if not math.isnan(a) and b > 0:  # no curve for "more workers, slower"
            with np.errstate(divide="ignore"):
                ax.plot(grid, 1.0 / np.maximum(a + b / grid, 1e-9), ":", color=colors[v], lw=1)
    ax.set_xlabel(say("workers_axis", lang))
    ax.set_ylabel(say("speedup_axis", lang))
    ax.set_xticks(sorted({d["workers"] for v in sp.values() for d in v}))
    ax.legend(fontsize=7)
    ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1.1))
    finish(fig, rows, say("speedup_title", lang, mode=say(f"mode_{mode}", lang),
                          n=FIT_MIN_COUNTS), lang=lang)
    return save(fig, out)


def plot_efficiency(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str],
                    mode: str = "in-process", lang: str = "en") -> Path:
    """``efficiency.png``: parallel efficiency ``E = S / p`` vs workers (1 is perfect)."""
    plt = pyplot()
    sp = speedups(summary(rows), mode)
    if not sp:
        raise LabError("no sequential run in the CSV: efficiency needs the sequential baseline")
    colors = variant_colors(sp)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.axhline(1.0, color="0.6", ls="--", lw=1, label=say("perfect", lang))
    for v, pts in sp.items():
        if v == "sequential":
            continue
        ax.plot([d["workers"] for d in pts], [d["efficiency"] for d in pts], "o-",
                color=colors[v], label=v)
    ax.set_xlabel(say("workers_short", lang))
    ax.set_ylabel(say("efficiency_axis", lang))
    ax.set_ylim(bottom=0)
    ax.set_xticks(sorted({d["workers"] for v in sp.values() for d in v}))
    ax.legend(fontsize=7)
    finish(fig, rows, say("efficiency_title", lang, mode=say(f"mode_{mode}", lang)),
           lang=lang)
    return save(fig, out)


def plot_breakdown(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str],
                   lang: str = "en") -> Path:
    """``breakdown.png``: stacked phase medians (s) per variant × workers (in-process).

    ``other`` is wall minus the reported phases; where a whole-process time was measured,
    ``process start + write`` tops the bar up to it. Backends that sum a phase over
    workers may exceed the wall time (a black tick marks the in-process wall).
    """
    plt = pyplot()
    summ = [s for s in summary(rows) if s["backend"] not in FLOORS]
    inproc = [s for s in summ if s["mode"] == "in-process"]
    if not inproc:
        raise LabError("no in-process rows to break down: run `labkit bench` first")
    proc = {(s["variant"], s["workers"]): s["wall"] for s in summ if s["mode"] == "process"}
    inproc.sort(key=lambda s: (s["variant"] != "sequential", s["variant"], s["workers"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(inproc) + 2), 4.5))
    phases = ("startup", "read", "compute", "merge", "write")
    labels = []
    for i, s in enumerate(inproc):
        bottom = 0.0
        for ph in phases:
            h = s[ph]
            if h > 0:
                ax.bar(i, h, 0.7, bottom=bottom, color=PHASE_COLORS[ph],
                       label=say(f"phase_{ph}", lang) if ph not in labels else None)
                labels.append(ph)
                bottom += h
        other = s["wall"] - bottom
        if other > 0:
            ax.bar(i, other, 0.7, bottom=bottom, color=PHASE_COLORS["other"],
                   label=say("phase_other", lang) if "other" not in labels else None)
            labels.append("other")
            bottom += other
        ax.plot([i - 0.35, i + 0.35], [s["wall"]] * 2, color="k", lw=1.5)
        extra = proc.get((s["variant"], s["workers"]), 0.0) - max(bottom, s["wall"])
        if extra > 0:
            ax.bar(i, extra, 0.7, bottom=max(bottom, s["wall"]), color=PHASE_COLORS["process"],
                   hatch="//", alpha=0.6,
                   label=say("phase_process", lang) if "process" not in labels else None)
            labels.append("process")
    ax.set_xticks(range(len(inproc)))
    ax.set_xticklabels([f"{s['variant']} ×{s['workers']}" for s in inproc], rotation=35,
                       ha="right", fontsize=8)
    ax.set_ylabel(say("seconds_axis", lang))
    order = [say(f"phase_{ph}", lang) for ph in (*phases, "other", "process")]
    handles = sorted(zip(*ax.get_legend_handles_labels(), strict=True),
                     key=lambda hl: order.index(hl[1]) if hl[1] in order else len(order))
    ax.legend(*zip(*handles, strict=True), fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    finish(fig, rows, say("breakdown_title", lang), lang=lang)
    return save(fig, out)


def plot_scaling(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str],
                 lang: str = "en") -> Path | None:
    """``scaling.png``: best speed-up of each variant against stack size (scale rows).

    Returns None when the CSV holds no scale experiment.
    """
    plt = pyplot()
    sc = scale_rows(rows)
    if not sc:
        return None
    points = scaling_points(sc)
    if not points:
        return None
    colors = variant_colors(points)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.axhline(1.0, color="0.6", ls="--", lw=1, label=say("break_even", lang))
    for v, pts in points.items():
        ax.plot([p["mib"] for p in pts], [p["speedup"] for p in pts], "o-", color=colors[v],
                label=v)
    ax.set_xscale("log")
    ticks = sorted({(p["mib"], f"{p['n_dates']}×{tile_side(p['tile'])} "
                               f"({num(p['mib'], lang)} MiB)")
                    for pts in points.values() for p in pts})
    ax.set_xticks([t[0] for t in ticks], [t[1] for t in ticks], fontsize=7, rotation=30,
                  ha="right")
    ax.minorticks_off()
    ax.set_xlabel(say("stack_axis", lang))
    ax.set_ylabel(say("scale_axis", lang))
    ax.legend(fontsize=7)
    finish(fig, sc, say("scaling_title", lang), data=False, lang=lang)
    return save(fig, out)
