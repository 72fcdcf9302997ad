"""Figures from the benchmark CSV (matplotlib, Agg backend) and ``labkit plot``.

Figures (PNG, written atomically): ``t_barras.png`` (median time, min..max as error
bars), ``speedup.png`` (vs sequential, ideal line, fitted Amdahl curves),
``efficiency.png``, ``breakdown.png`` (stacked phases), ``scaling.png`` (speed-up against
stack size, when the CSV has a scale experiment) and ``maps.png`` (mean, std, coefficient
of variation, persistent-scatterer candidates vs the synthetic truth).

Which rows: the *main experiment* is the rows sharing host, label, dates and tile size
with the last non-floor row whose label does not start with ``scale`` (see
:func:`select_main`); rows labelled ``scale...`` feed ``scaling.png``.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import LabError

__all__ = [
    "PS_THRESHOLD",
    "amdahl",
    "amplitude_dispersion",
    "caption",
    "fit_amdahl",
    "fit_time_model",
    "plot_all",
    "plot_breakdown",
    "plot_efficiency",
    "plot_maps",
    "plot_scaling",
    "plot_speedup",
    "plot_times",
    "read_ps_truth",
    "scale_rows",
    "scaling_points",
    "select_main",
    "speedups",
]

PS_THRESHOLD = 0.25  # amplitude dispersion D_A = std(|S|)/mean(|S|) below this: PS candidate
PHASE_COLORS = {"startup": "#9467bd", "read": "#1f77b4", "compute": "#2ca02c",
                "merge": "#d62728", "write": "#8c564b", "other": "#c7c7c7",
                "process": "#ff7f0e"}
FLOORS = ("floor-memory", "floor-read")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: str | os.PathLike[str]) -> Path:
    """Save a figure as PNG atomically (temp file + rename) and close it."""
    from labkit.bench import default_mode

    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        default_mode(tmp)
        os.replace(tmp, p)
    finally:
        _plt().close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


# --------------------------------------------------------------------------- selection


def select_main(rows: Sequence[dict[str, Any]], label: str | None = None) -> list[dict[str, Any]]:
    """Rows of the main experiment (floors included).

    The experiment is the host, number of dates and tile of the last timed row (not a
    floor) with the given ``label``. Without ``label``: the rows labelled ``main`` when
    there are any (``labkit bench`` / ``make report``), else every label not starting
    with ``scale`` (e.g. the notebook panels' rows together).
    """
    timed = [r for r in rows if r.get("backend") not in FLOORS]
    if label is None and any(r.get("label") == "main" for r in timed):
        label = "main"
    if label is not None:
        pool = [r for r in timed if (r.get("label") or "") == label]
    else:
        pool = [r for r in timed if not (r.get("label") or "").startswith("scale")] or timed
    if not pool:
        raise LabError("the CSV has no timed rows: run `labkit bench` first")
    last = pool[-1]
    key = ("host", "n_dates", "tile")
    same = [r for r in rows if all(r.get(k) == last.get(k) for k in key)]
    labels = {r.get("label") or "" for r in pool}
    out = [r for r in same if r.get("backend") in FLOORS or (r.get("label") or "") in labels]
    if len(labels) > 1:  # one experiment: summarize across the labels
        joined = "+".join(sorted(labels))
        out = [{**r, "label": joined} for r in out]
    return out


def scale_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the scaled experiment (label starting with ``scale``) on the last host."""
    sc = [r for r in rows if (r.get("label") or "").startswith("scale")]
    if not sc:
        return []
    host = sc[-1].get("host")
    return [r for r in sc if r.get("host") == host]


def caption(rows: Sequence[dict[str, Any]], data: bool = True) -> str:
    """One line about the machine (CPU, cores, host) and, with ``data``, dates × tile."""
    timed = [r for r in rows if r.get("backend") not in FLOORS] or list(rows)
    if not timed:
        return ""
    r = timed[-1]
    cpu = r.get("cpu_model") or "unknown CPU"
    size = ""
    if data and r.get("tile") and r.get("n_dates"):
        try:
            h, w = (int(v) for v in str(r["tile"]).split("x"))
            size = (f"; {r['n_dates']} dates × {r['tile']} float32 "
                    f"({r['n_dates'] * h * w * 4 / 2**20:.3g} MiB)")
        except ValueError:
            size = f"; {r['n_dates']} dates × {r['tile']}"
    return (f"{cpu}, {r.get('cores_physical') or '?'} physical / "
            f"{r.get('cores_logical') or '?'} logical cores, host {r.get('host') or '?'}{size}")


# --------------------------------------------------------------------------- analysis


def amdahl(workers: Any, serial_fraction: float) -> Any:
    """Amdahl speed-up ``1 / (s + (1 - s) / p)`` for ``p`` workers."""
    p = np.asarray(workers, dtype=float)
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / p)


def fit_time_model(workers: Sequence[float], speedup: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``a, b`` of the normalized time ``T(p)/T_seq = 1/S(p) = a + b/p``.

    ``a`` is the part that does not shrink with workers (serial work and fixed overhead),
    ``b/p`` the part that does. Returns ``(nan, nan)`` without two distinct ``p``.
    """
    p = np.asarray(workers, dtype=float)
    sp = np.asarray(speedup, dtype=float)
    if p.shape != sp.shape:
        raise LabError(f"workers and speedup differ in length ({p.size} vs {sp.size})")
    ok = np.isfinite(sp) & (sp > 0) & (p >= 1)
    x, y = 1.0 / p[ok], 1.0 / sp[ok]
    if x.size < 2 or np.ptp(x) == 0:
        return math.nan, math.nan
    b = float(np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2))
    return float(y.mean() - b * x.mean()), b


def fit_amdahl(workers: Sequence[float], speedup: Sequence[float]) -> float:
    """Serial fraction ``s`` (0..1) of Amdahl's law fitted to measured speed-ups.

    Fits ``1/S(p) = a + b/p`` by least squares (:func:`fit_time_model`) and returns
    ``s = a / (a + b)``: the share of the backend's own 1-worker time that does not
    shrink with more workers. With ``S(1) = 1`` this is exactly Amdahl's
    ``1/S = s + (1 - s)/p``; a backend with a fixed start-up cost gets it counted as
    serial. ``1`` when more workers never helped, ``0`` when nothing stayed fixed.

    Returns
    -------
    float
        The serial fraction, or NaN without two distinct worker counts.
    """
    a, b = fit_time_model(workers, speedup)
    if math.isnan(a):
        return math.nan
    if b <= 0:
        return 1.0
    if a <= 0:
        return 0.0
    return float(a / (a + b))


def speedups(summary: Sequence[dict[str, Any]], mode: str = "in-process"
             ) -> dict[str, list[dict[str, Any]]]:
    """Speed-up and efficiency per variant relative to sequential (1 worker, same mode).

    Returns ``{variant: [{workers, wall, speedup, efficiency}, ...]}`` sorted by workers;
    empty if the summary has no sequential run in that mode.
    """
    base = [s for s in summary if s["backend"] == "sequential" and s["mode"] == mode
            and s["workers"] == 1]
    if not base:
        return {}
    t_seq = base[0]["wall"]
    out: dict[str, list[dict[str, Any]]] = {}
    for s in summary:
        if s["mode"] != mode or s["backend"] in FLOORS or s["wall"] <= 0:
            continue
        sp = t_seq / s["wall"]
        out.setdefault(s["variant"], []).append(
            {"workers": s["workers"], "wall": s["wall"], "speedup": sp,
             "efficiency": sp / s["workers"]})
    for v in out.values():
        v.sort(key=lambda d: d["workers"])
    return out


def _variant_colors(variants: Iterable[str]) -> dict[str, Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    order = sorted(set(variants), key=lambda v: (v != "sequential", v))
    return {v: cmap(i % 10) for i, v in enumerate(order)}


def _summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    from labkit.bench import summarize

    return summarize(rows)


def _finish(fig: Any, rows: Sequence[dict[str, Any]], title: str, data: bool = True) -> None:
    """Title on top, the machine/data caption just under it (inside the saved area)."""
    fig.tight_layout()
    fig.suptitle(title, y=1.06)
    fig.text(0.5, 1.0, caption(rows, data), fontsize=7, color="0.35", ha="center", va="bottom")


# --------------------------------------------------------------------------- figures


def plot_times(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str]) -> Path:
    """``t_barras.png``: median wall time per variant and worker count, min..max bars.

    One panel per mode (in-process; whole process when measured). Dashed lines: the
    read and memory floors for the stack's bytes.
    """
    plt = _plt()
    summ = _summary(rows)
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
                       label=f"{w} worker{'s' if w > 1 else ''}")
        if mode == "in-process":
            for name, style in (("floor-read", "--"), ("floor-memory", ":")):
                if name in floors:
                    ax.axhline(floors[name], color="k", ls=style, lw=1,
                               label=f"{name} ({floors[name]:.3g} s)")
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels(variants, rotation=25, ha="right")
        ax.set_ylabel("wall time (s), median; bars min..max")
        ax.legend(fontsize=7)
        ax.set_title("in-process (perf_counter)" if mode == "in-process"
                     else "whole process (fresh interpreter)")
    _finish(fig, rows, "Time per backend: temporal mean and std of the stack")
    return _save(fig, out)


def plot_speedup(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str],
                 mode: str = "in-process") -> Path:
    """``speedup.png``: speed-up vs workers relative to sequential, ideal line, Amdahl fits."""
    plt = _plt()
    sp = speedups(_summary(rows), mode)
    if not sp:
        raise LabError("no sequential run in the CSV: speed-up needs the sequential baseline")
    colors = _variant_colors(sp)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    pmax = max(d["workers"] for v in sp.values() for d in v)
    grid = np.linspace(1, max(pmax, 2), 100)
    ax.plot(grid, grid, color="0.6", lw=1, ls="--", label="ideal (S = p)")
    ax.axhline(1.0, color="0.8", lw=0.8)
    for v, pts in sp.items():
        if v == "sequential":
            continue
        p = [d["workers"] for d in pts]
        s = [d["speedup"] for d in pts]
        frac = fit_amdahl(p, s)
        lab = v if math.isnan(frac) else f"{v} (Amdahl s = {frac:.2f})"
        ax.plot(p, s, "o-", color=colors[v], label=lab)
        a, b = fit_time_model(p, s)
        if not math.isnan(a) and b > 0:  # no curve for "more workers, slower"
            with np.errstate(divide="ignore"):
                ax.plot(grid, 1.0 / np.maximum(a + b / grid, 1e-9), ":", color=colors[v], lw=1)
    ax.set_xlabel("workers p (processes / threads / ranks)")
    ax.set_ylabel("speed-up S = T_sequential / T(p)")
    ax.set_xticks(sorted({d["workers"] for v in sp.values() for d in v}))
    ax.legend(fontsize=7)
    ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1.1))
    _finish(fig, rows, f"Speed-up vs sequential ({mode}); dotted: fitted Amdahl "
            "1/S = a + b/p, s = a/(a+b)")
    return _save(fig, out)


def plot_efficiency(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str],
                    mode: str = "in-process") -> Path:
    """``efficiency.png``: parallel efficiency ``E = S / p`` vs workers (1 is perfect)."""
    plt = _plt()
    sp = speedups(_summary(rows), mode)
    if not sp:
        raise LabError("no sequential run in the CSV: efficiency needs the sequential baseline")
    colors = _variant_colors(sp)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.axhline(1.0, color="0.6", ls="--", lw=1, label="perfect (E = 1)")
    for v, pts in sp.items():
        if v == "sequential":
            continue
        ax.plot([d["workers"] for d in pts], [d["efficiency"] for d in pts], "o-",
                color=colors[v], label=v)
    ax.set_xlabel("workers p")
    ax.set_ylabel("efficiency E = S / p")
    ax.set_ylim(bottom=0)
    ax.set_xticks(sorted({d["workers"] for v in sp.values() for d in v}))
    ax.legend(fontsize=7)
    _finish(fig, rows, f"Parallel efficiency ({mode})")
    return _save(fig, out)


def plot_breakdown(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str]) -> Path:
    """``breakdown.png``: stacked phase medians (s) per variant × workers (in-process).

    ``other`` is wall minus the reported phases; where a whole-process time was measured,
    ``process start + write`` tops the bar up to it. Backends that sum a phase over
    workers may exceed the wall time (a black tick marks the in-process wall).
    """
    plt = _plt()
    summ = [s for s in _summary(rows) if s["backend"] not in FLOORS]
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
                       label=ph if ph not in labels else None)
                labels.append(ph)
                bottom += h
        other = s["wall"] - bottom
        if other > 0:
            ax.bar(i, other, 0.7, bottom=bottom, color=PHASE_COLORS["other"],
                   label="other" if "other" not in labels else None)
            labels.append("other")
            bottom += other
        ax.plot([i - 0.35, i + 0.35], [s["wall"]] * 2, color="k", lw=1.5)
        extra = proc.get((s["variant"], s["workers"]), 0.0) - max(bottom, s["wall"])
        if extra > 0:
            ax.bar(i, extra, 0.7, bottom=max(bottom, s["wall"]), color=PHASE_COLORS["process"],
                   hatch="//", alpha=0.6,
                   label="process start + write" if "process" not in labels else None)
            labels.append("process")
    ax.set_xticks(range(len(inproc)))
    ax.set_xticklabels([f"{s['variant']} ×{s['workers']}" for s in inproc], rotation=35,
                       ha="right", fontsize=8)
    ax.set_ylabel("seconds (median)")
    order = [*phases, "other", "process start + write"]
    handles = sorted(zip(*ax.get_legend_handles_labels(), strict=True),
                     key=lambda hl: order.index(hl[1]) if hl[1] in order else len(order))
    ax.legend(*zip(*handles, strict=True), fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    _finish(fig, rows, "Where the time goes (black tick: in-process wall)")
    return _save(fig, out)


def plot_scaling(rows: Sequence[dict[str, Any]], out: str | os.PathLike[str]) -> Path | None:
    """``scaling.png``: best speed-up of each variant against stack size (scale rows).

    Returns None when the CSV holds no scale experiment.
    """
    plt = _plt()
    sc = scale_rows(rows)
    if not sc:
        return None
    points = scaling_points(sc)
    if not points:
        return None
    colors = _variant_colors(points)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.axhline(1.0, color="0.6", ls="--", lw=1, label="break-even (S = 1)")
    for v, pts in points.items():
        ax.plot([p["mib"] for p in pts], [p["speedup"] for p in pts], "o-", color=colors[v],
                label=v)
    ax.set_xscale("log")
    ticks = sorted({(p["mib"], f"{p['n_dates']}×{_side(p['tile'])} ({p['mib']:.3g} MiB)")
                    for pts in points.values() for p in pts})
    ax.set_xticks([t[0] for t in ticks], [t[1] for t in ticks], fontsize=7, rotation=30,
                  ha="right")
    ax.minorticks_off()
    ax.set_xlabel("stack: dates × tile, size of the float32 tiles")
    ax.set_ylabel("speed-up vs sequential at the most workers")
    ax.legend(fontsize=7)
    _finish(fig, sc, "When does parallelism pay? (in-process)", data=False)
    return _save(fig, out)


def _side(tile: str) -> str:
    """``1024x1024`` → ``1024²``; other shapes unchanged."""
    h, _, w = str(tile).partition("x")
    return f"{h}²" if h == w else str(tile)


def scaling_points(sc: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{variant: [{n_dates, tile, mib, workers, speedup, wall, t_seq}]}`` by size."""
    summ = [s for s in _summary(sc) if s["mode"] == "in-process"]
    out: dict[str, list[dict[str, Any]]] = {}
    sizes = sorted({(s["n_dates"], s["tile"]) for s in summ})
    for n_dates, tile in sizes:
        here = [s for s in summ if s["n_dates"] == n_dates and s["tile"] == tile]
        seq = [s for s in here if s["backend"] == "sequential" and s["workers"] == 1]
        if not seq:
            continue
        h, w = (int(v) for v in tile.split("x"))
        for s in here:
            if s["backend"] in ("sequential", *FLOORS):
                continue
            top = max(x["workers"] for x in here if x["variant"] == s["variant"])
            if s["workers"] != top:
                continue
            out.setdefault(s["variant"], []).append({
                "n_dates": n_dates, "tile": tile, "mib": n_dates * h * w * 4 / 2**20,
                "workers": top, "speedup": seq[0]["wall"] / s["wall"], "wall": s["wall"],
                "t_seq": seq[0]["wall"]})
    for v in out.values():
        v.sort(key=lambda p: p["mib"])
    return out


# --------------------------------------------------------------------------- maps


def read_ps_truth(path: str | os.PathLike[str]) -> np.ndarray:
    """Known persistent scatterers of a synthetic stack as an (n, 2) int array (line, sample).

    Reads ``<stack>/truth/ps.csv``; the row/column headers may be named ``line``/``row``/
    ``azimuth``/``y`` and ``sample``/``col``/``range``/``x``.
    """
    import csv

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


def _ps_panel(fig: Any, ax: Any, slc_dir: Path, block: int = 8) -> dict[str, Any]:
    """PS candidates (D_A < threshold) as a fraction per ``block``² pixels; truth circled."""
    da = amplitude_dispersion(slc_dir)
    cand = np.nan_to_num(da, nan=np.inf) < PS_THRESHOLD
    n_cand = int(cand.sum())
    lines, samples = (d - d % block for d in cand.shape)
    frac = cand[:lines, :samples].reshape(lines // block, block, samples // block, block)
    im = ax.imshow(frac.mean(axis=(1, 3)), cmap="Reds", vmin=0, vmax=1,
                   extent=(0, samples, lines, 0), interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.7, label=f"candidate fraction per {block}×{block} px")
    text = f"{n_cand} candidates ({100 * n_cand / cand.size:.2g} % of pixels)"
    stats: dict[str, Any] = {"threshold": PS_THRESHOLD, "candidates": n_cand,
                             "pixels": int(cand.size), "true_ps": None, "hits": None,
                             "n_dates": len(_slc_files(slc_dir))}
    truth_file = slc_dir / "truth" / "ps.csv"
    if truth_file.is_file():
        truth = read_ps_truth(truth_file)
        inside = (truth[:, 0] < cand.shape[0]) & (truth[:, 1] < cand.shape[1])
        hits = int(cand[truth[inside, 0], truth[inside, 1]].sum())
        ax.scatter(truth[:, 1], truth[:, 0], s=30, facecolors="none", edgecolors="tab:blue",
                   lw=0.8, label=f"true PS ({len(truth)})")
        ax.legend(fontsize=7, loc="upper right")
        text += f"\n{hits}/{len(truth)} true PS found, {n_cand - hits} false alarms"
        stats.update(true_ps=len(truth), hits=hits)
    ax.set_title(f"PS candidates: amplitude dispersion D_A < {PS_THRESHOLD}\n"
                 "(std/mean of |S| over dates, full-resolution SLC)", fontsize=9)
    ax.set_xlabel(f"range sample\n{text}", fontsize=8)
    ax.set_ylabel("azimuth line")
    return stats


def plot_maps(tiles_dir: str | os.PathLike[str], slc_dir: str | os.PathLike[str] | None,
              out: str | os.PathLike[str]) -> Path:
    """``maps.png``: temporal mean, std and CV of the tiles; PS candidates vs truth.

    Parameters
    ----------
    tiles_dir : folder of intensity tiles
    slc_dir : SLC stack folder (with ``truth/ps.csv`` when synthetic), optional
        Without it the fourth panel is left out.
    out : output PNG
        With ``slc_dir``, the PS counts are also written beside it as JSON (``maps.json``:
        threshold, candidates, pixels, true_ps, hits, n_dates).
    """
    from labkit.backends import compute

    plt = _plt()
    res = compute("sequential", Path(tiles_dir))
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = res.std / res.mean
    panels = 4 if slc_dir else 3
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 4.6), layout="constrained")
    for ax, data, title, unit in (
        (axes[0], res.mean, "temporal mean of |S|² (multilooked)", "intensity (linear)"),
        (axes[1], res.std, "temporal std (ddof 0)", "intensity (linear)"),
        (axes[2], cv, "coefficient of variation std/mean", "ratio"),
    ):
        finite = data[np.isfinite(data)]
        lo, hi = (np.percentile(finite, [2, 98]) if finite.size else (0, 1))
        im = ax.imshow(data, cmap="gray" if ax is not axes[2] else "magma", vmin=lo, vmax=hi,
                       interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("range (px)")
        ax.set_ylabel("azimuth (px)")
        fig.colorbar(im, ax=ax, shrink=0.7, label=unit)
    stats = _ps_panel(fig, axes[3], Path(slc_dir)) if slc_dir else None
    s = res.meta
    fig.suptitle(f"Temporal statistics of {s['n_dates']} dates, tiles {s['rows']}x{s['cols']}")
    path = _save(fig, out)
    if stats is not None:
        import json

        from labkit.bench import write_text_atomic

        write_text_atomic(path.with_suffix(".json"), json.dumps(stats, indent=1))
    return path


# --------------------------------------------------------------------------- all + CLI


def plot_all(csv_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
             maps_tiles: str | os.PathLike[str] | None = None,
             maps_slc: str | os.PathLike[str] | None = None,
             label: str | None = None) -> list[Path]:
    """Every figure of a benchmark CSV into ``out_dir``; returns the written paths."""
    from labkit.bench import read_csv

    rows = read_csv(csv_path)
    if not rows:
        raise LabError(f"{csv_path} has no rows: run `labkit bench` first")
    main = select_main(rows, label)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LabError(f"--out {out} is a file: give a folder")
    written = [plot_times(main, out / "t_barras.png")]
    sp = speedups(_summary(main))
    if sp:
        written += [plot_speedup(main, out / "speedup.png"),
                    plot_efficiency(main, out / "efficiency.png")]
    written.append(plot_breakdown(main, out / "breakdown.png"))
    scaling = plot_scaling(rows, out / "scaling.png")
    if scaling:
        written.append(scaling)
    if maps_tiles:
        written.append(plot_maps(maps_tiles, maps_slc, out / "maps.png"))
    return written
