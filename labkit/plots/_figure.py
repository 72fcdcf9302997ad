"""What every figure shares: matplotlib on its Agg backend, colours, the caption that
says which machine and data a figure comes from, and the atomic PNG write.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from labkit.config import FLOORS, PHASE_COLORS
from labkit.plots.models import caption, summary

__all__ = ["FLOORS", "PHASE_COLORS", "decimal_mark", "finish", "pyplot", "save", "summary",
           "variant_colors"]


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, out: str | os.PathLike[str]) -> Path:
    """Save a figure as PNG atomically (temp file + rename) and close it."""
    from labkit.io import atomic_file

    try:
        with atomic_file(out) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        pyplot().close(fig)
    return Path(out)


def variant_colors(variants: Iterable[str]) -> dict[str, Any]:
    plt = pyplot()
    cmap = plt.get_cmap("tab10")
    order = sorted(set(variants), key=lambda v: (v != "sequential", v))
    return {v: cmap(i % 10) for i, v in enumerate(order)}


def finish(fig: Any, rows: Sequence[dict[str, Any]], title: str, data: bool = True,
           lang: str = "en") -> None:
    """Title on top, the machine/data caption (in ``lang``) just under it, inside the
    saved area.
    """
    decimal_mark(fig, lang)
    fig.tight_layout()
    fig.suptitle(title, y=1.06)
    fig.text(0.5, 1.0, caption(rows, data, lang), fontsize=7, color="0.35", ha="center",
             va="bottom")


def decimal_mark(fig: Any, lang: str) -> None:
    """Tick numbers of ``fig``'s linear axes with the decimal mark of ``lang`` (Spanish:
    ``0,5``). Axes with their own tick texts (categories) and log axes are left alone.
    """
    if lang != "es":
        return
    from matplotlib.ticker import FuncFormatter, ScalarFormatter

    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "linear" and isinstance(axis.get_major_formatter(), ScalarFormatter):
                axis.set_major_formatter(
                    FuncFormatter(lambda v, _: f"{v:g}".replace(".", ",")))
