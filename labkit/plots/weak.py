"""``weak.png``: weak scaling (work grows with the workers) beside strong scaling.

Left: each variant's median time with ``p`` workers on ``p × d`` dates (flat is
perfect). Right: weak-scaling efficiency ``T(1, d) / T(p, p·d)`` (solid) and the main
experiment's strong-scaling efficiency ``S / p`` (dashed), with the machine's physical
and logical core counts marked: past the physical cores, workers share cores
(hyper-threads), and past the logical ones they take turns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit.errors import LabError
from labkit.plots._figure import finish, pyplot, save, summary, variant_colors
from labkit.plots.labels import say
from labkit.plots.models import select_main, speedups

__all__ = ["core_counts", "plot_weak"]


def core_counts(rows: Sequence[dict[str, Any]]) -> tuple[int | None, int | None]:
    """(physical, logical) cores recorded in the last row that has them, else None."""
    for r in reversed(rows):
        phys, logical = r.get("cores_physical"), r.get("cores_logical")
        if isinstance(phys, int) or isinstance(logical, int):
            return (phys if isinstance(phys, int) else None,
                    logical if isinstance(logical, int) else None)
    return None, None


def _strong(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Strong-scaling points of the main experiment ({} when there is none)."""
    try:
        return speedups(summary(select_main(rows)))
    except LabError:
        return {}


def plot_weak(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str],
              lang: str = "en") -> Path | None:
    """``weak.png`` from benchmark rows; None when they hold no weak-scaling run.

    Parameters
    ----------
    rows : list of dict
        The whole benchmark CSV (:func:`labkit.bench.read_csv`).
    out : path
        The PNG.
    lang : {"en", "es"}
        Language of the labels.
    """
    from labkit.bench.weak import weak_points, weak_rows

    points = weak_points(rows)
    if not points:
        return None
    weak = weak_rows(rows)
    strong = _strong(rows)
    plt = pyplot()
    colors = variant_colors(points)
    fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(11.5, 4.3))
    counts = sorted({d["workers"] for pts in points.values() for d in pts})
    per = min(d["n_dates"] // d["workers"] for pts in points.values() for d in pts)
    for v, pts in points.items():
        ws = [d["workers"] for d in pts]
        ax_t.plot(ws, [d["wall"] for d in pts], "o-", color=colors[v], label=v)
        ax_t.axhline(pts[0]["t_one"], color=colors[v], lw=0.6, ls=":")
        ax_e.plot(ws, [d["efficiency"] for d in pts], "o-", color=colors[v], label=v)
        if v in strong:
            ax_e.plot([d["workers"] for d in strong[v]], [d["efficiency"] for d in strong[v]],
                      "--", color=colors[v], lw=1)
    ax_e.axhline(1.0, color="0.6", lw=1, ls="--", label=say("weak_ideal", lang))
    phys, logical = core_counts(weak)
    top = max(counts)
    for ax in (ax_t, ax_e):
        if phys and phys < top:
            ax.axvspan(phys + 0.5, top + 0.5, color="0.9", zorder=0)
        if phys:
            ax.axvline(phys + 0.5, color="0.4", lw=1, ls="-.", label=say("physical", lang, n=phys))
        if logical and logical != phys and logical <= top:
            ax.axvline(logical + 0.5, color="0.2", lw=1, ls=":",
                       label=say("logical", lang, n=logical))
        ax.set_xticks(counts)
        ax.set_xlabel(say("workers_short", lang))
    ax_t.set_ylabel(say("weak_time_axis", lang))
    ax_t.set_title(say("weak_time_title", lang, dates=per), fontsize=9)
    ax_t.set_ylim(bottom=0)
    ax_e.set_ylabel(say("weak_eff_axis", lang))
    ax_e.set_title(say("weak_eff_title", lang), fontsize=9)
    ax_e.set_ylim(bottom=0, top=max(1.15, ax_e.get_ylim()[1]))
    ax_t.legend(fontsize=7)
    ax_e.legend(fontsize=7)
    finish(fig, weak, say("weak_title", lang), data=False, lang=lang)
    return save(fig, out)
