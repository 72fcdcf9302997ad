"""The options of one run, as one typed object: :class:`RunOptions`.

``labkit.backends.compute("threads", folder, workers=2)`` builds one from its keywords;
a misspelt keyword is an error that names it and lists the valid ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from labkit.errors import LabError
from labkit.filters import LeeFilter, parse_filter

__all__ = ["KERNELS", "SCHEDULERS", "RunOptions", "options_from"]

KERNELS = ("numba", "numpy")  # statistics kernels a run may ask for (None: the default)
SCHEDULERS = ("threads", "processes", "distributed")  # dask's schedulers (threads: default)


@dataclass(frozen=True)
class RunOptions:
    """How a backend computes the mean and std of a stack.

    Attributes
    ----------
    workers : int, default 1
        Processes, threads or MPI ranks (≥ 1).
    strategy : str, optional
        ``multiprocessing``: ``partitioned`` (default) or ``per-file``; ``dask``:
        ``chunks`` (default) or ``xarray``.
    split : str, optional
        ``mpi``: ``rows`` (default) or ``dates``.
    block_rows : int, optional
        Rows per block or task (each backend has its default).
    ddof : int, default 0
        0: population std; 1: sample std. Must be smaller than the number of dates.
    min_count : int, optional
        NaN-aware statistics with at least this many valid dates (default: strict NaN).
    pool : object, optional
        A reusable pool or MPI cluster from :func:`labkit.backends.make_pool` (its
        start-up is not timed).
    progress : callable(done, total), optional
        Called as work completes.
    prefetch : bool, default False
        ``sequential``: read the next block in a helper thread while this one is reduced.
    kernel : {"numba", "numpy"}, optional
        The statistics kernel (same bits either way); None: ``LABKIT_KERNEL`` or the
        fused one when Numba is installed (:func:`labkit.stats.kernel_name`).
    filter : LeeFilter or str, optional
        Lee speckle filter applied to every date before the statistics: a
        :class:`~labkit.filters.LeeFilter` or its text form (``"lee:7"``, ``"lee:7:16"``,
        ``"none"``), parsed by :func:`~labkit.filters.parse_filter`. Without an ENL the
        tiles' looks are used (see :func:`labkit.backends._filtering.with_enl`).
    scheduler : {"threads", "processes", "distributed"}, optional
        ``dask`` only: the Dask scheduler that runs the task graph (None: ``threads``);
        ``distributed`` starts a local cluster of worker processes for the run.
    """

    workers: int = 1
    strategy: str | None = None
    split: str | None = None
    block_rows: int | None = None
    ddof: int = 0
    min_count: int | None = None
    pool: Any = None
    progress: Callable[[int, int], None] | None = None
    prefetch: bool = False
    kernel: str | None = None
    filter: LeeFilter | None = None
    scheduler: str | None = None

    def __post_init__(self) -> None:
        # a text spec becomes a LeeFilter (LabError naming the valid specs otherwise)
        object.__setattr__(self, "filter", parse_filter(self.filter))
        if not isinstance(self.workers, int) or self.workers < 1:
            raise LabError(f"workers must be a whole number ≥ 1, got {self.workers!r}")
        if self.block_rows is not None and (not isinstance(self.block_rows, int)
                                            or self.block_rows < 1):
            raise LabError(f"block rows must be a whole number ≥ 1, got {self.block_rows!r}")
        if self.kernel is not None and self.kernel not in KERNELS:
            raise LabError(f"unknown kernel {self.kernel!r}: valid are {', '.join(KERNELS)}")
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise LabError(f"unknown scheduler {self.scheduler!r}: valid are "
                           f"{', '.join(SCHEDULERS)} (dask only)")

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` (checked like the keywords of ``compute``)."""
        return options_from(self, changes, "RunOptions.replace")


FIELDS = tuple(f.name for f in dataclasses.fields(RunOptions))


def options_from(options: RunOptions | None, keywords: Mapping[str, Any],
                 caller: str = "compute") -> RunOptions:
    """``options`` (default :class:`RunOptions()`) with ``keywords`` applied.

    Raises
    ------
    LabError
        A keyword that is not a field: ``unknown option 'wokers' for compute: valid
        are workers, ...``; or ``options`` is not a :class:`RunOptions`.
    """
    if options is None:
        options = RunOptions()
    elif not isinstance(options, RunOptions):
        raise LabError(f"options for {caller} must be a RunOptions, got "
                       f"{type(options).__name__}")
    unknown = [k for k in keywords if k not in FIELDS]
    if unknown:
        raise LabError(f"unknown option {unknown[0]!r} for {caller}: valid are "
                       f"{', '.join(FIELDS)}")
    return dataclasses.replace(options, **keywords) if keywords else options
