"""Speed-up against kernel weight: N workers over 1 for each backend and Lee window K.

The statistics kernel does a few flops per byte and its parallel speed-up is capped by
how memory and the page cache scale; the Lee filter adds ≈3K + 2K flops per pixel, so as
K grows the work per byte grows and the speed-up climbs toward the number of cores.
:func:`speedup_vs_k` measures that curve on any stack, in process, on pools started
once beforehand (start-up excluded), 1 and N workers alternated, medians::

    from labkit.bench import kernels_k
    from labkit.plots.roofline import speedup_k_figure

    recs = kernels_k.speedup_vs_k("data/tiny/intens_64x64", repeat=3)   # a few seconds
    fig = speedup_k_figure(recs)
    [r.as_dict() for r in recs]       # backend, k (0: none), workers, t1_s, tn_s, speedup

On the tiny preset the runs take milliseconds and the fixed cost of a parallel run
dominates; a real size (the ``seed`` preset, or ``benchmarks/perf.py --groups filter``)
shows the curve the machine gives.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labkit.errors import LabError

__all__ = ["DEFAULT_BACKENDS", "K_CHOICES", "KSpeedup", "filter_spec", "speedup_vs_k"]

K_CHOICES = (0, 3, 5, 7, 9, 11, 13, 15)  # 0: no filter
DEFAULT_BACKENDS = ("threads", "mem", "multiprocessing")


def filter_spec(k: int, enl: float | None = None) -> str | None:
    """The run's ``filter`` for window side ``k`` (0: None; else ``lee:K`` or
    ``lee:K:ENL``).
    """
    if not k:
        return None
    return f"lee:{k}" if enl is None else f"lee:{k}:{enl:g}"


@dataclass(frozen=True)
class KSpeedup:
    """One backend's speed-up at one K.

    Attributes
    ----------
    backend : str
        Backend with its variant, e.g. ``multiprocessing/partitioned``.
    k : int
        Lee window side (0: no filter, statistics only).
    workers : int
        N, the workers compared with 1.
    t1_s, tn_s : float
        Median wall time (s) with 1 and with N workers, pool start-up excluded.
    repeats : int
        Timed runs of each.
    """

    backend: str
    k: int
    workers: int
    t1_s: float
    tn_s: float
    repeats: int

    @property
    def speedup(self) -> float:
        """``t1_s / tn_s``."""
        return self.t1_s / self.tn_s if self.tn_s > 0 else float("nan")

    @property
    def efficiency(self) -> float:
        """Speed-up / workers."""
        return self.speedup / self.workers

    def as_dict(self) -> dict[str, Any]:
        """A table row: the fields plus ``speedup`` and ``efficiency``."""
        return {**asdict(self), "speedup": self.speedup, "efficiency": self.efficiency}


def _variant(backend: str) -> tuple[str, str | None, str | None]:
    """``(backend, strategy, split)`` with the backend's default variant."""
    from labkit.backends.registry import resolve

    return resolve(backend, None, None)  # LabError naming the valid ones


def speedup_vs_k(src: Any, *, ks: Sequence[int] = K_CHOICES,
                 backends: Sequence[str] = DEFAULT_BACKENDS, workers: int | None = None,
                 repeat: int = 3, enl: float | None = None,
                 progress: Callable[[str], None] | None = None) -> list[KSpeedup]:
    """Speed-up of ``workers`` over 1 worker for every backend and K.

    Parameters
    ----------
    src : folder of tiles or TileStack
        The stack.
    ks : sequence of int, default none, 3, 5, …, 15
        Lee window sides (odd, 3..31); 0 is the statistics alone.
    backends : sequence of str, default threads, mem, multiprocessing
        Backends (their default variant; ``mpi`` starts ipyparallel engines, seconds).
    workers : int, optional
        N (default: the logical cores, at least 2).
    repeat : int, default 3
        Timed runs of 1 and N workers, alternated after one warm-up round.
    enl : float, optional
        The filter's ENL (default: the tiles' looks; random tiles need it).
    progress : callable(str), optional
        Told what is being timed.

    Returns
    -------
    list of KSpeedup
        One per (backend, K), backends in the order given, K ascending.
    """
    from labkit.backends import compute, make_pool
    from labkit.bench.harness import alternate, check_counts
    from labkit.bench.summary import variant_name
    from labkit.filters import parse_filter
    from labkit.io import TileStack, open_stack

    check_counts(repeat, 1)
    n = int(workers or max(2, os.cpu_count() or 1))
    if n < 2:
        raise LabError(f"workers={n} is not valid: compare 1 with 2 or more")
    ks = sorted(set(int(k) for k in ks))
    for k in ks:
        if k:
            parse_filter(filter_spec(k, enl))  # one clear line for a bad K
    variants = [_variant(b) for b in backends]
    stack = src if isinstance(src, TileStack) else open_stack(src)
    pools: dict[tuple[str, int], Any] = {}
    out = []
    try:
        for b, _, _ in variants:
            for w in (1, n):
                if (b, w) not in pools:
                    pools[b, w] = make_pool(b, w)
        for b, st, sp in variants:
            name = variant_name(b, st, sp)
            for k in ks:
                spec = filter_spec(k, enl)

                def run(w: int, b: str = b, st: str | None = st, sp: str | None = sp,
                        spec: str | None = spec) -> Callable[[], float]:
                    def fn() -> float:
                        r = compute(b, stack, workers=w, strategy=st, split=sp,
                                    pool=pools[b, w], filter=spec)
                        return float(r.timings["wall"] - r.timings.get("startup", 0.0))
                    return fn

                t = alternate({f"{name}, K={k or 'none'} ×1": run(1),
                               f"{name}, K={k or 'none'} ×{n}": run(n)}, repeat,
                              progress=progress)
                t1, tn = t.values()
                out.append(KSpeedup(name, k, n, float(np.median(t1)), float(np.median(tn)),
                                    repeat))
    finally:
        for pool in pools.values():
            if pool is not None:
                pool.close()
    return out
