"""Figures and small checks for the notebooks and the panels (keeps the cells short).

Notebook figures are made with :mod:`matplotlib.pyplot` so the notebook shows them inline;
assign the returned figure (``fig = ...``) to avoid showing it twice. The panels' own
figures (:func:`runs_figure`, :func:`prep_figure`) are plain :class:`matplotlib.figure.Figure`
objects outside pyplot, turned into PNG bytes with :func:`png_bytes`.
"""

from __future__ import annotations

import io
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit.config import PHASE_COLORS

__all__ = [
    "db",
    "evict_page_cache",
    "homogeneous_cv",
    "human_bytes",
    "phase_bars",
    "png_bytes",
    "prep_figure",
    "ps_mask",
    "read_seconds",
    "runs_figure",
    "show_images",
    "stats_maps",
    "truth_scatter",
]

_PHASE_LABELS = {"merge": "merge / communicate", "startup": "start-up (in the run)"}
# one colour per backend in the panel's bars (the phases use labkit.config.PHASE_COLORS)
BACKEND_COLORS = {"sequential": "#555555", "multiprocessing": "#d62728", "mem": "#2ca02c",
                  "threads": "#1f77b4", "mpi": "#9467bd"}


def db(x: np.ndarray, floor: float = 1e-12) -> np.ndarray:
    """``10·log10(x)`` in dB; values ≤ ``floor`` (and NaN) become NaN."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x > floor, 10.0 * np.log10(np.where(x > floor, x, 1.0)), np.nan)


def _limits(a: np.ndarray, robust: bool) -> tuple[float | None, float | None]:
    finite = a[np.isfinite(a)]
    if not robust or finite.size == 0:
        return None, None
    lo, hi = np.percentile(finite, [2, 98])
    return float(lo), float(hi)


def show_images(images: Mapping[str, np.ndarray], *, to_db: bool = True, cmap: str = "gray",
                units: str | None = None, robust: bool = True, ncols: int | None = None,
                size: float = 3.6) -> Any:
    """One panel per image with its own colorbar.

    Parameters
    ----------
    images : mapping of title -> 2-D array
        The images, one panel each.
    to_db : bool, default True
        Show ``10·log10`` of the values (for intensities); colorbar label ``dB``.
    cmap : str, default "gray"
        Matplotlib colour map.
    units : str, optional
        Colorbar label (default ``dB`` or ``linear``).
    robust : bool, default True
        Color limits at the 2nd and 98th percentiles (speckle has long tails).
    ncols : int, optional
        Panels per row (default: all in one row, up to 4).
    size : float, default 3.6
        Inches per panel.
    """
    import matplotlib.pyplot as plt

    n = len(images)
    ncols = ncols or min(n, 4)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * 0.85 * nrows),
                             squeeze=False, layout="constrained")
    for ax, (title, img) in zip(axes.flat, images.items(), strict=False):
        a = db(img) if to_db else np.asarray(img, dtype=np.float64)
        vmin, vmax = _limits(a, robust)
        im = ax.imshow(a, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(f"{title}\n{img.shape[0]}×{img.shape[1]} px", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8, label=units or ("dB" if to_db else "linear"))
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig


def stats_maps(mean: np.ndarray, std: np.ndarray) -> Any:
    """Mean (dB), std (dB) and coefficient of variation std/mean (linear, 0..1) maps."""
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = np.asarray(std, np.float64) / np.asarray(mean, np.float64)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), layout="constrained")
    panels: tuple[tuple[str, np.ndarray, dict[str, Any]], ...] = (
        ("temporal mean (dB)", db(mean), {"cmap": "gray"}),
        ("temporal std (dB)", db(std), {"cmap": "gray"}),
        ("coefficient of variation std/mean", cv, {"cmap": "viridis", "vmin": 0, "vmax": 1}),
    )
    for ax, (title, a, kw) in zip(axes, panels, strict=True):
        lo, hi = _limits(a, True)
        kw = {"vmin": lo, "vmax": hi, **kw}
        im = ax.imshow(a, interpolation="nearest", **kw)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def human_bytes(n: float) -> str:
    """``n`` bytes as B, KiB, MiB or GiB (binary units)."""
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def ps_mask(ps_csv: str | os.PathLike[str], shape: tuple[int, int],
            looks: Sequence[int] = (4, 4)) -> np.ndarray:
    """Multilooked pixels that hold a known persistent scatterer (synthetic truth).

    Parameters
    ----------
    ps_csv : path
        ``truth/ps.csv`` of a synthetic stack (columns ``line``, ``sample`` in SLC pixels).
    shape : (rows, cols)
        Shape of the multilooked image (from SLC pixel 0, 0).
    looks : (int, int), default (4, 4)
        Azimuth × range looks of the multilook.

    Returns
    -------
    bool array of ``shape``
    """
    import csv

    mask = np.zeros(shape, dtype=bool)
    with open(ps_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            r, c = int(row["line"]) // looks[0], int(row["sample"]) // looks[1]
            if r < shape[0] and c < shape[1]:
                mask[r, c] = True
    return mask


def homogeneous_cv(intensity: np.ndarray, sigma0: np.ndarray, *, window: int = 8,
                   max_truth_cv: float = 0.05, looks: int = 16,
                   exclude: np.ndarray | None = None) -> dict[str, float]:
    """Speckle check: CV of multilooked intensity over windows where the truth is flat.

    Over a distributed (homogeneous) area the intensity of one look is exponential
    (CV 1); averaging ``looks`` independent looks gives CV ``1/√looks`` (0.25 for 4×4).

    Parameters
    ----------
    intensity : (rows, cols) array
        Multilooked intensity of one date.
    sigma0 : (rows, cols) array
        The ground-truth backscatter multilooked the same way (same shape).
    window : int, default 8
        Window side in (multilooked) pixels.
    max_truth_cv : float, default 0.05
        A window counts as homogeneous when the CV of its truth is below this.
    looks : int, default 16
        Looks per multilooked pixel.
    exclude : bool array, optional
        Pixels to keep out (e.g. :func:`ps_mask`): windows touching one are skipped.

    Returns
    -------
    dict
        ``measured`` (median CV over homogeneous windows), ``expected`` (1/√looks),
        ``n_windows`` used and ``n_total`` windows.
    """
    i = np.asarray(intensity, np.float64)
    s = np.asarray(sigma0, np.float64)
    if i.shape != s.shape:
        raise ValueError(f"intensity {i.shape} and truth {s.shape} differ in shape")
    r = i.shape[0] // window * window
    c = i.shape[1] // window * window

    def blocks(a: np.ndarray) -> np.ndarray:
        return (a[:r, :c].reshape(r // window, window, c // window, window)
                .swapaxes(1, 2).reshape(-1, window * window))

    bi, bs = blocks(i), blocks(s)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        truth_cv = bs.std(axis=1) / bs.mean(axis=1)
        cv = bi.std(axis=1, ddof=1) / bi.mean(axis=1)  # ddof=1: unbiased for small windows
    ok = np.isfinite(cv) & np.isfinite(truth_cv) & (truth_cv < max_truth_cv)
    if exclude is not None:
        ok &= ~blocks(np.asarray(exclude, dtype=bool)).any(axis=1)
    measured = float(np.median(cv[ok])) if ok.any() else float("nan")
    return {"measured": measured, "expected": 1.0 / np.sqrt(looks),
            "n_windows": int(ok.sum()), "n_total": int(ok.size)}


def truth_scatter(intensity: np.ndarray, sigma0: np.ndarray) -> tuple[Any, float]:
    """Multilooked intensity against multilooked truth, both in dB; returns (fig, r).

    ``r`` is the Pearson correlation of the two in dB over finite pixels.
    """
    import matplotlib.pyplot as plt

    x, y = db(sigma0).ravel(), db(intensity).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    r = float(np.corrcoef(x, y)[0, 1]) if x.size > 1 else float("nan")
    fig, ax = plt.subplots(figsize=(4.2, 4), layout="constrained")
    ax.hexbin(x, y, gridsize=60, bins="log", cmap="viridis", mincnt=1)
    lo, hi = np.percentile(np.r_[x, y], [0.5, 99.5]) if x.size else (0, 1)
    ax.plot([lo, hi], [lo, hi], "r--", lw=1, label="I = σ0")
    ax.set_xlabel("truth σ0, multilooked (dB)")
    ax.set_ylabel("multilooked intensity (dB)")
    ax.set_title(f"intensity follows σ0 (r = {r:.3f})", fontsize=9)
    ax.legend(fontsize=8)
    return fig, r


def phase_bars(rows: Sequence[Mapping[str, Any]], *, label_key: str = "backend") -> Any:
    """Stacked bars of median phase times per run: read, compute, merge, rest of the wall.

    ``rows`` are :attr:`labkit.ui.ControlPanel.results` rows (``median_s``,
    ``read_s``, ``compute_s``, ``merge_s``) or ``Result.timings``-like dicts (``wall``,
    ``startup``, ``read``, ...). The grey part is wall time no phase accounts for: process
    or task start, pickling, waiting. The black tick marks the wall time; backends report
    the phases of their busiest worker, so phases fit inside the wall.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(rows) + 2.5), 3.4), layout="constrained")
    for k, row in enumerate(rows):
        wall = float(row.get("median_s", row.get("wall", 0.0)) or 0.0)
        bottom = 0.0
        for phase in ("startup", "read", "compute", "merge"):
            v = row.get(f"{phase}_s", row.get(phase, 0.0)) if phase != "startup" else \
                row.get("startup", 0.0)  # a pool's start-up outside the wall is not a phase
            v = float(v) if isinstance(v, (int, float)) else 0.0
            ax.bar(k, v, bottom=bottom, color=PHASE_COLORS[phase], width=0.6,
                   label=_PHASE_LABELS.get(phase, phase) if k == 0 else None)
            bottom += v
        ax.bar(k, max(0.0, wall - bottom), bottom=bottom, color=PHASE_COLORS["other"],
               width=0.6, label="other (start, pickling, waiting)" if k == 0 else None)
        ax.plot([k - 0.35, k + 0.35], [wall, wall], "k-", lw=2)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{str(r.get(label_key, '')).replace(' (', chr(10) + '(')}\n"
                        f"{r.get('workers', '')} w" for r in rows], fontsize=8)
    ax.set_ylabel("seconds (black tick: wall time)")
    ax.set_title("where the time goes (medians)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def evict_page_cache(paths: Iterable[str | os.PathLike[str]]) -> bool:
    """Ask the kernel to drop ``paths`` from the page cache (no root needed).

    Uses ``posix_fadvise(POSIX_FADV_DONTNEED)``; returns False where that is not
    available (macOS, Windows) so the next read may still be warm.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return False
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def read_seconds(paths: Iterable[str | os.PathLike[str]]) -> tuple[float, int]:
    """Read every file fully; returns (seconds, bytes)."""
    t0 = time.perf_counter()
    nbytes = 0
    for p in paths:
        nbytes += len(Path(p).read_bytes())
    return time.perf_counter() - t0, nbytes


def png_bytes(fig: Any, dpi: int = 90) -> bytes:
    """``fig`` as PNG bytes (``dpi`` dots per inch, tight bounding box)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def runs_figure(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Bars of the median wall time of every panel run (whiskers: min..max of the repeats).

    Parameters
    ----------
    rows : sequence of dict
        :attr:`labkit.ui.ControlPanel.results` rows: ``run``, ``backend``,
        ``backend_name``, ``workers``, ``tile``, ``median_s``, ``min_s``, ``max_s`` (s),
        optionally ``kernel`` (``lee:K:ENL``, shown as ``lee:K``).

    Returns
    -------
    matplotlib.figure.Figure
        Not managed by pyplot (a notebook does not show it by itself).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(4.0, 0.9 * len(rows) + 2), 3.2))
    ax = fig.add_subplot()
    x = range(len(rows))
    med = [r["median_s"] for r in rows]
    err = [[r["median_s"] - r["min_s"] for r in rows],
           [r["max_s"] - r["median_s"] for r in rows]]
    colors = [BACKEND_COLORS.get(r.get("backend_name", ""), "#7f7f7f") for r in rows]
    ax.bar(x, med, yerr=err, color=colors, capsize=3)
    ax.set_xticks(list(x))
    def kernel(r: Mapping[str, Any]) -> str:
        k = r.get("kernel") or "none"
        return "" if k == "none" else f" {':'.join(str(k).split(':')[:2])}"

    ax.set_xticklabels([f"#{r['run']} {r['backend']}{kernel(r)}\n{r['workers']}w {r['tile']}"
                        for r in rows], fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("median wall time (s)")
    ax.set_title("runs so far (whiskers: min–max of the repeats)", fontsize=9)
    seq = [r["median_s"] for r in rows if r.get("backend_name") == "sequential"]
    if seq:
        ax.axhline(seq[-1], color="k", ls="--", lw=0.8, label="last sequential")
        ax.legend(fontsize=7)
    return fig


def prep_figure(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Bars of the seconds each tile preparation took.

    Parameters
    ----------
    rows : sequence of dict
        :attr:`labkit.ui.PrepPanel.results` rows: ``run``, ``tile``, ``workers`` (jobs),
        ``seconds``.

    Returns
    -------
    matplotlib.figure.Figure
        Not managed by pyplot.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(4.0, 0.8 * len(rows) + 2), 3.0))
    ax = fig.add_subplot()
    ax.bar(range(len(rows)), [r["seconds"] for r in rows], color="#1f77b4")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"#{r['run']} {r['tile']}\n{r['workers']} jobs" for r in rows],
                       fontsize=7)
    ax.set_ylabel("seconds")
    ax.set_title("tile preparation runs", fontsize=9)
    return fig
