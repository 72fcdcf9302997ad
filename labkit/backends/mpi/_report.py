"""Per-rank timings of an SPMD run, gathered on rank 0 into the run's :class:`Result`."""

from __future__ import annotations

import os
import socket
from typing import Any

import numpy as np

from labkit.backends._result import Result

__all__ = ["rank_record", "rank_result"]


def rank_record(rank: int, share: tuple[int, int], times: dict[str, float],
                t_start: float, t_local: float, t_comm: float, t_end: float
                ) -> dict[str, Any]:
    """This rank's line of ``meta["per_rank"]``: seconds of each phase, host, pid, share.

    ``merge`` (communicate) includes the halo exchange of a filtered run
    (``times["exchange"]``).
    """
    return {
        "rank": rank, "host": socket.gethostname(), "pid": os.getpid(), "share": list(share),
        "startup": times["startup"], "read": times["read"], "compute": times["compute"],
        "wait": t_comm - t_local, "merge": t_end - t_comm + times.get("exchange", 0.0),
        "wall": t_end - t_start,
        "bytes_read": int(times["bytes_read"]),
    }


def rank_result(mean: np.ndarray, std: np.ndarray, mine: dict[str, Any],
                per_rank: list[dict[str, Any]] | None, meta: dict[str, Any]) -> Result:
    """The Result of one rank; on rank 0 (``per_rank`` given) the run's: ``startup`` of the
    slowest rank, ``read``/``compute`` of the busiest, rank 0's ``merge``.
    """
    if per_rank is None:
        timings = {k: mine[k] for k in ("startup", "read", "compute", "merge")}
        return Result(mean, std, timings, mine["bytes_read"], meta)
    busiest = max(per_rank, key=lambda d: d["read"] + d["compute"])
    meta.update(per_rank=per_rank, wait=mine["wait"], rank0_wall=mine["wall"])
    timings = {"startup": max(d["startup"] for d in per_rank), "read": busiest["read"],
               "compute": busiest["compute"], "merge": mine["merge"]}
    return Result(mean, std, timings, sum(d["bytes_read"] for d in per_rank), meta)
