"""``maps.png``: the temporal mean, std and coefficient of variation of a stack, and the
persistent-scatterer candidates (low amplitude dispersion) against the synthetic truth.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import LabError
from labkit.plots._figure import pyplot, save
from labkit.plots.labels import num, say

__all__ = ["PS_THRESHOLD", "amplitude_dispersion", "plot_maps", "read_ps_truth"]

PS_THRESHOLD = 0.25  # amplitude dispersion D_A = std(|S|)/mean(|S|) below this: PS candidate


def read_ps_truth(path: str | os.PathLike[str]) -> np.ndarray:
    """Known persistent scatterers of a synthetic stack as an (n, 2) int array (line, sample).

    Reads ``<stack>/truth/ps.csv``; the row/column headers may be named ``line``/``row``/
    ``azimuth``/``y`` and ``sample``/``col``/``range``/``x``.
    """
    p = Path(path)
    if not p.is_file():
        raise LabError(f"no PS truth file {p}: maps need a synthetic stack (labkit synth)")
    with open(p, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        names = {n.strip().lower(): n for n in reader.fieldnames or ()}
        rk = next((names[k] for k in ("line", "row", "azimuth", "az", "y") if k in names), None)
        ck = next((names[k] for k in ("sample", "col", "column", "range", "rg", "x")
                   if k in names), None)
        if rk is None or ck is None:
            raise LabError(f"{p} needs line and sample columns, has {list(names)}")
        pts = [(int(float(r[rk])), int(float(r[ck]))) for r in reader]
    return np.asarray(pts, dtype=np.int64).reshape(-1, 2)


def _slc_files(slc_dir: Path) -> list[Path]:
    """SLC rasters of a stack folder: ``*.slc.vrt`` (nested or flat), else ``*.slc``."""
    found = sorted(slc_dir.rglob("*.slc.vrt"))
    if not found:
        found = sorted(p for p in slc_dir.rglob("*.slc") if p.is_file())
    found = [p for p in found if "truth" not in p.parts]
    if not found:
        raise LabError(f"no SLCs (*.slc.vrt or *.slc) under {slc_dir}")
    return found


def amplitude_dispersion(slc_dir: str | os.PathLike[str], block_lines: int = 512
                         ) -> np.ndarray:
    """Amplitude dispersion ``D_A = std(|S|) / mean(|S|)`` over dates, full resolution.

    Streams the SLC stack by blocks of ``block_lines`` lines (rasterio windows); float32
    (lines, samples), NaN where the mean amplitude is 0 or a sample is no-data.
    """
    import warnings

    import rasterio
    from rasterio.windows import Window

    from labkit.stats import reduce_stack

    files = _slc_files(Path(slc_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dsets = [rasterio.open(f) for f in files]
    try:
        lines, samples = dsets[0].height, dsets[0].width
        out = np.empty((lines, samples), np.float32)
        for r0 in range(0, lines, block_lines):
            n = min(block_lines, lines - r0)
            win = Window(0, r0, samples, n)
            amp = [np.abs(ds.read(1, window=win)).astype(np.float32) for ds in dsets]
            for a in amp:
                a[a == 0] = np.nan
            m, s = reduce_stack(amp)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[r0:r0 + n] = s / m
    finally:
        for ds in dsets:
            ds.close()
    return out


def _ps_panel(fig: Any, ax: Any, slc_dir: Path, block: int = 8, lang: str = "en"
              ) -> dict[str, Any]:
    """PS candidates (D_A < threshold) as a fraction per ``block``² pixels; truth circled."""
    da = amplitude_dispersion(slc_dir)
    cand = np.nan_to_num(da, nan=np.inf) < PS_THRESHOLD
    n_cand = int(cand.sum())
    lines, samples = (d - d % block for d in cand.shape)
    frac = cand[:lines, :samples].reshape(lines // block, block, samples // block, block)
    im = ax.imshow(frac.mean(axis=(1, 3)), cmap="Reds", vmin=0, vmax=1,
                   extent=(0, samples, lines, 0), interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.7, label=say("ps_fraction", lang, block=block))
    text = say("ps_count", lang, n=n_cand, pct=num(100 * n_cand / cand.size, lang, 2))
    stats: dict[str, Any] = {"threshold": PS_THRESHOLD, "candidates": n_cand,
                             "pixels": int(cand.size), "true_ps": None, "hits": None,
                             "n_dates": len(_slc_files(slc_dir))}
    truth_file = slc_dir / "truth" / "ps.csv"
    if truth_file.is_file():
        truth = read_ps_truth(truth_file)
        inside = (truth[:, 0] < cand.shape[0]) & (truth[:, 1] < cand.shape[1])
        hits = int(cand[truth[inside, 0], truth[inside, 1]].sum())
        ax.scatter(truth[:, 1], truth[:, 0], s=30, facecolors="none", edgecolors="tab:blue",
                   lw=0.8, label=say("ps_true", lang, n=len(truth)))
        ax.legend(fontsize=7, loc="upper right")
        text += "\n" + say("ps_found", lang, hits=hits, n=len(truth), false=n_cand - hits)
        stats.update(true_ps=len(truth), hits=hits)
    ax.set_title(say("ps_title", lang, threshold=num(PS_THRESHOLD, lang)), fontsize=9)
    ax.set_xlabel(f"{say('range_sample', lang)}\n{text}", fontsize=8)
    ax.set_ylabel(say("azimuth_line", lang))
    return stats


def plot_maps(tiles_dir: str | os.PathLike[str], slc_dir: str | os.PathLike[str] | None,
              out: str | os.PathLike[str], lang: str = "en") -> Path:
    """``maps.png``: temporal mean, std and CV of the tiles; PS candidates vs truth.

    Parameters
    ----------
    tiles_dir : path
        Folder of intensity tiles.
    slc_dir : SLC stack folder (with ``truth/ps.csv`` when synthetic), optional
        Without it the fourth panel is left out.
    out : output PNG
        With ``slc_dir``, the PS counts are also written beside it as JSON (``maps.json``:
        threshold, candidates, pixels, true_ps, hits, n_dates).
    lang : {"en", "es"}
        Language of the titles and labels.
    """
    from labkit.backends import compute

    plt = pyplot()
    res = compute("sequential", Path(tiles_dir))
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = res.std / res.mean
    panels = 4 if slc_dir else 3
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 4.6), layout="constrained")
    for ax, data, title, unit in (
        (axes[0], res.mean, say("map_mean", lang), say("intensity", lang)),
        (axes[1], res.std, say("map_std", lang), say("intensity", lang)),
        (axes[2], cv, say("map_cv", lang), say("ratio", lang)),
    ):
        finite = data[np.isfinite(data)]
        lo, hi = (np.percentile(finite, [2, 98]) if finite.size else (0, 1))
        im = ax.imshow(data, cmap="gray" if ax is not axes[2] else "magma", vmin=lo, vmax=hi,
                       interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(say("range_px", lang))
        ax.set_ylabel(say("azimuth_px", lang))
        fig.colorbar(im, ax=ax, shrink=0.7, label=unit)
    stats = _ps_panel(fig, axes[3], Path(slc_dir), lang=lang) if slc_dir else None
    s = res.meta
    fig.suptitle(say("maps_title", lang, dates=s["n_dates"], tile=f"{s['rows']}x{s['cols']}"))
    path = save(fig, out)
    if stats is not None:
        import json

        from labkit.io import write_text_atomic

        write_text_atomic(path.with_suffix(".json"), json.dumps(stats, indent=1))
    return path
