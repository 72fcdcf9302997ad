"""What every backend returns (:class:`Result`) and the one-line summary of a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labkit.config import PHASES

__all__ = ["Result", "summary_line"]


@dataclass
class Result:
    """What a backend returns.

    Attributes
    ----------
    mean, std : (rows, cols) float32 arrays
    timings : dict of str to float
        Seconds: ``wall`` (the whole compute call), ``startup`` (pool/cluster start, 0 if
        reused), ``jit`` (loading the compiled kernel in this process, outside ``wall``)
        and each of :data:`labkit.config.PHASES` (write is filled by
        :func:`labkit.backends.run`).
    bytes_read : int
        Bytes of tile data read from files.
    meta : dict
        backend, strategy, split, workers, block_rows, n_dates, rows, cols, ddof and
        backend extras (e.g. ``per_rank`` timings).
    """

    mean: np.ndarray
    std: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    bytes_read: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


def summary_line(result: Result, outputs: tuple[Any, ...] = ()) -> str:
    """One line: backend, workers, wall and phase seconds, GB read and GB/s (and for the
    gpu backend the GB over the bus and its host→device, kernel, device→host seconds).
    """
    m, t = result.meta, result.timings
    name = "/".join(str(x) for x in (m.get("backend"), m.get("strategy") or m.get("split")) if x)
    phases = ", ".join(f"{k} {t.get(k, 0.0):.3f}" for k in ("startup", *PHASES))
    gbps = result.bytes_read / 1e9 / t["wall"] if t.get("wall") else 0.0
    dest = f" -> {', '.join(map(str, outputs))}" if outputs else ""
    bus = ""
    if "bus_bytes" in m:  # the gpu backend: bytes over the bus and the three device phases
        bus = (f", {m['bus_bytes'] / 1e9:.3f} GB over the bus (h2d {t.get('h2d', 0.0):.3f}, "
               f"kernel {t.get('kernel', 0.0):.3f}, d2h {t.get('d2h', 0.0):.3f} s)")
    return (f"{name} x{m.get('workers')}: wall {t.get('wall', 0.0):.3f} s ({phases} s), "
            f"{result.bytes_read / 1e9:.3f} GB read, {gbps:.2f} GB/s{bus}{dest}")
