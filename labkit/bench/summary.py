"""Benchmark rows summarised per configuration: medians, spread, a plain-text table."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from labkit.bench.schema import FLOOR_BACKENDS

__all__ = ["format_table", "summarize", "variant_name"]


def _group_key(r: dict[str, Any]) -> tuple:
    """(label, backend, strategy, split, mode, n_dates, tile, workers, block_rows, filter)
    of a row; sequential and floor rows count as 1 worker; no block rows recorded counts
    as 0, no filter as "".
    """
    workers = 1 if r["backend"] in ("sequential", *FLOOR_BACKENDS) else r.get("workers") or 1
    return (r.get("label") or "", r["backend"], r.get("strategy") or "", r.get("split") or "",
            r.get("mode") or "", r.get("n_dates") or 0, r.get("tile") or "", workers,
            r.get("block_rows") or 0, r.get("filter") or "")


def variant_name(backend: str, strategy: str | None = None, split: str | None = None) -> str:
    """Display name of a backend variant, e.g. ``multiprocessing/per-file``."""
    extra = strategy or split
    return f"{backend}/{extra}" if extra else backend


def _median_of(rows: list[dict[str, Any]], col: str) -> float:
    """Median of the numeric cells of ``col`` (0.0 when there are none)."""
    vals = [r[col] for r in rows if isinstance(r.get(col), (int, float))]
    return float(statistics.median(vals)) if vals else 0.0


def _summary_of(key: tuple, rs: list[dict[str, Any]]) -> dict[str, Any]:
    """One :func:`summarize` entry for the rows ``rs`` of one configuration ``key``."""
    label, backend, strategy, split, mode, n_dates, tile, workers, block_rows, filt = key
    walls = [r["wall_s"] for r in rs]
    diffs = [r["max_abs_diff"] for r in rs if isinstance(r.get("max_abs_diff"), float)]
    first = rs[0]
    return {
        "label": label, "backend": backend, "strategy": strategy, "split": split,
        "variant": variant_name(backend, strategy, split) + (f" + {filt}" if filt else ""),
        "filter": filt or None, "mode": mode,
        "n_dates": n_dates, "tile": tile, "workers": workers, "block_rows": block_rows or None,
        "n": len(rs),
        "wall": _median_of(rs, "wall_s"), "wall_min": min(walls), "wall_max": max(walls),
        "startup": _median_of(rs, "startup_s"), "read": _median_of(rs, "read_s"),
        "compute": _median_of(rs, "compute_s"), "merge": _median_of(rs, "merge_s"),
        "write": _median_of(rs, "write_s"), "bytes": int(_median_of(rs, "bytes")),
        "gbps": _median_of(rs, "gbps"), "max_abs_diff": max(diffs) if diffs else None,
        "cores_logical": first.get("cores_logical"), "cpu_model": first.get("cpu_model"),
        "host": first.get("host"),
    }


def _name_block_rows(summary: list[dict[str, Any]]) -> None:
    """Where one variant was timed with several block sizes at the same worker count, name
    each of its configurations with its block rows (``threads (64 rows)``), in place.
    """
    seen: dict[tuple, set[int]] = {}
    for s in summary:
        key = (s["label"], s["variant"], s["mode"], s["n_dates"], s["tile"])
        seen.setdefault((*key, s["workers"]), set()).add(s["block_rows"] or 0)
    mixed = {k[:-1] for k, sizes in seen.items() if len(sizes) > 1}
    for s in summary:
        if (s["label"], s["variant"], s["mode"], s["n_dates"], s["tile"]) in mixed:
            size = s["block_rows"] or "default"
            s["variant"] = f"{s['variant']} ({size} rows)"


def summarize(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median and spread per (label, backend, strategy, split, mode, n_dates, tile, workers,
    block_rows, filter).

    Sequential and floor rows count as 1 worker whatever their ``workers`` column says.
    A variant timed with several block sizes at one worker count gets its block rows in
    its ``variant`` name (``threads (64 rows)``), so each block size is a series of its own.

    Parameters
    ----------
    rows : iterable of dict
        Benchmark CSV rows (:func:`labkit.bench.schema.read_csv`); rows without a
        numeric ``wall_s`` or a backend are skipped.

    Returns
    -------
    list of dict
        Those keys (``block_rows`` and ``filter`` None when not recorded) plus
        ``variant`` (``threads + lee:9`` when filtered), ``n``
        (repeats), ``wall`` (median s), ``wall_min``, ``wall_max``, the median of each
        phase in s (``startup``, ``read``, ``compute``, ``merge``, ``write``), ``bytes``,
        ``gbps`` (median GB/s) and ``max_abs_diff`` (the largest seen, None if never
        measured). Sorted by key.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if not isinstance(r.get("wall_s"), (int, float)) or not r.get("backend"):
            continue
        groups.setdefault(_group_key(r), []).append(r)
    out = [_summary_of(key, rs) for key, rs in sorted(groups.items())]
    _name_block_rows(out)
    return out


def format_table(summary: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of :func:`summarize` output (one line per configuration)."""
    lines = [f"{'variant':28} {'mode':10} {'workers':>7} {'median s':>9} {'min..max s':>19} "
             f"{'max|Δ|':>8}"]
    for s in summary:
        diff = "" if s["max_abs_diff"] is None else f"{s['max_abs_diff']:.2g}"
        lines.append(f"{s['variant']:28} {s['mode']:10} {s['workers']:>7} {s['wall']:>9.4g} "
                     f"{s['wall_min']:>9.4g}..{s['wall_max']:<9.4g} {diff:>8}")
    return "\n".join(lines)
