"""The numbers behind the figures: which CSV rows form the main experiment, speed-ups,
Amdahl fits, the scaled experiment, and each figure's caption.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from labkit.config import FLOORS
from labkit.errors import LabError

__all__ = ["FIT_MIN_COUNTS", "SIDE_LABELS", "amdahl", "caption", "fit_amdahl",
           "fit_time_model", "karp_flatt", "scale_rows", "scaling_points", "select_main",
           "speedups", "summary"]

FIT_MIN_COUNTS = 3  # distinct worker counts a fit needs: a line through 2 points is exact
SIDE_LABELS = ("scale", "weak")  # labels of the side experiments, never the main one


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
        pool = [r for r in timed
                if not (r.get("label") or "").startswith(SIDE_LABELS)] or timed
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


def caption(rows: Sequence[dict[str, Any]], data: bool = True, lang: str = "en") -> str:
    """One line about the machine (CPU, cores, host) and, with ``data``, dates × tile."""
    from labkit.plots.labels import num, say

    timed = [r for r in rows if r.get("backend") not in FLOORS] or list(rows)
    if not timed:
        return ""
    r = timed[-1]
    cpu = r.get("cpu_model") or say("unknown_cpu", lang)
    size = ""
    if data and r.get("tile") and r.get("n_dates"):
        try:
            h, w = (int(v) for v in str(r["tile"]).split("x"))
            size = say("caption_data", lang, dates=r["n_dates"], tile=r["tile"],
                       mib=num(r["n_dates"] * h * w * 4 / 2**20, lang))
        except ValueError:
            size = say("caption_data_short", lang, dates=r["n_dates"], tile=r["tile"])
    return say("caption", lang, cpu=cpu, phys=r.get("cores_physical") or "?",
               logical=r.get("cores_logical") or "?", host=r.get("host") or "?") + size


def amdahl(workers: Any, serial_fraction: float) -> Any:
    """Amdahl speed-up ``1 / (s + (1 - s) / p)`` for ``p`` workers."""
    p = np.asarray(workers, dtype=float)
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / p)


def fit_time_model(workers: Sequence[float], speedup: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``a, b`` of the normalized time ``T(p)/T_seq = 1/S(p) = a + b/p``.

    ``a`` is the part that does not shrink with workers (serial work and fixed overhead),
    ``b/p`` the part that does. Returns ``(nan, nan)`` with fewer than
    :data:`FIT_MIN_COUNTS` distinct ``p``: two unknowns through two points are solved
    exactly, which is no test of the model.
    """
    p = np.asarray(workers, dtype=float)
    sp = np.asarray(speedup, dtype=float)
    if p.shape != sp.shape:
        raise LabError(f"workers and speedup differ in length ({p.size} vs {sp.size})")
    ok = np.isfinite(sp) & (sp > 0) & (p >= 1)
    x, y = 1.0 / p[ok], 1.0 / sp[ok]
    if np.unique(x).size < FIT_MIN_COUNTS:
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
        The serial fraction, or NaN with fewer than :data:`FIT_MIN_COUNTS` distinct
        worker counts (no fit).
    """
    a, b = fit_time_model(workers, speedup)
    if math.isnan(a):
        return math.nan
    if b <= 0:
        return 1.0
    if a <= 0:
        return 0.0
    return float(a / (a + b))


def karp_flatt(speedup: float, workers: int) -> float:
    """Experimentally determined serial fraction ``e = (1/S - 1/p) / (1 - 1/p)``.

    Karp and Flatt (1990): the serial fraction that would explain the measured speed-up
    ``S`` on ``p`` workers under Amdahl's law. Constant ``e`` over ``p``: a true serial
    part; ``e`` growing with ``p``: overhead that grows with the workers (start-up,
    communication, contention). NaN for ``p = 1`` or a non-positive speed-up.
    """
    if workers <= 1 or not speedup > 0:
        return math.nan
    return (1.0 / speedup - 1.0 / workers) / (1.0 - 1.0 / workers)


def speedups(summary: Sequence[dict[str, Any]], mode: str = "in-process"
             ) -> dict[str, list[dict[str, Any]]]:
    """Speed-up and efficiency per variant relative to sequential (1 worker, same mode,
    same filter: a filtered run is compared with sequential under that filter).

    Returns ``{variant: [{workers, wall, speedup, efficiency}, ...]}`` sorted by workers;
    empty if the summary has no sequential run in that mode. A variant whose filter has
    no sequential run is left out.
    """
    t_seq: dict[Any, float] = {}
    for s in summary:
        if s["backend"] == "sequential" and s["mode"] == mode and s["workers"] == 1:
            t_seq.setdefault(s.get("filter"), s["wall"])
    if not t_seq:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for s in summary:
        if (s["mode"] != mode or s["backend"] in FLOORS or s["wall"] <= 0
                or s.get("filter") not in t_seq):
            continue
        sp = t_seq[s.get("filter")] / s["wall"]
        out.setdefault(s["variant"], []).append(
            {"workers": s["workers"], "wall": s["wall"], "speedup": sp,
             "efficiency": sp / s["workers"]})
    for v in out.values():
        v.sort(key=lambda d: d["workers"])
    return out


def tile_side(tile: str) -> str:
    """``1024x1024`` → ``1024²``; other shapes unchanged."""
    h, _, w = str(tile).partition("x")
    return f"{h}²" if h == w else str(tile)


def scaling_points(sc: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{variant: [{n_dates, tile, mib, workers, speedup, wall, t_seq}]}`` by size."""
    summ = [s for s in summary(sc) if s["mode"] == "in-process"]
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


def summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians and spreads per configuration (:func:`labkit.bench.summarize`)."""
    from labkit.bench import summarize

    return summarize(rows)

