"""The backends the lab knows: name → module, strategies and splits. Light (no NumPy), so
the command line can list the names without importing any backend.
"""

from __future__ import annotations

from labkit.errors import LabError

__all__ = ["BACKENDS", "resolve"]

# name -> (module, valid strategies, valid splits); the first of each is the default
BACKENDS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "sequential": ("labkit.backends.sequential", (), ()),
    "multiprocessing": ("labkit.backends.multiproc", ("partitioned", "per-file"), ()),
    "mem": ("labkit.backends.mem", (), ()),
    "threads": ("labkit.backends.threads", (), ()),
    "mpi": ("labkit.backends.mpi", (), ("rows", "dates")),
    "gpu": ("labkit.backends.gpu", (), ()),  # CUDA via Numba: pip install -e .[gpu]
    # chunks: Dask runs the lab's kernel on row blocks; xarray: the ecosystem's way
    "dask": ("labkit.backends.dask_chunks", ("chunks", "xarray"), ()),
}


def resolve(backend: str, strategy: str | None = None, split: str | None = None
            ) -> tuple[str, str | None, str | None]:
    """Check backend/strategy/split names; return them with defaults filled in."""
    if backend not in BACKENDS:
        raise LabError(f"unknown backend {backend!r}: valid are {', '.join(BACKENDS)}")
    _, strategies, splits = BACKENDS[backend]
    if strategy is not None and strategy not in strategies:
        valid = ", ".join(strategies) if strategies else f"none ({backend} takes no --strategy)"
        raise LabError(f"unknown strategy {strategy!r} for {backend}: valid are {valid}")
    if split is not None and split not in splits:
        valid = ", ".join(splits) if splits else f"none ({backend} takes no --split)"
        raise LabError(f"unknown split {split!r} for {backend}: valid are {valid}")
    return (backend, strategy or (strategies[0] if strategies else None),
            split or (splits[0] if splits else None))
