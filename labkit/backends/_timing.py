"""Phase timings of a run from the per-task records its workers send back."""

from __future__ import annotations

from typing import Any

__all__ = ["critical_path", "phase_timings"]


def critical_path(records: list[tuple[Any, float, float]]) -> tuple[float, float]:
    """(read, compute) seconds of the busiest worker.

    ``records`` holds ``(worker_id, read_s, compute_s)`` per task; times are summed per
    worker and the worker with the largest total sets the run's critical path.
    """
    per: dict[Any, list[float]] = {}
    for wid, r, c in records:
        acc = per.setdefault(wid, [0.0, 0.0])
        acc[0] += r
        acc[1] += c
    if not per:
        return 0.0, 0.0
    r, c = max(per.values(), key=sum)
    return r, c


def phase_timings(startup: float, wall: float, records: list[tuple[Any, float, float]]
                  ) -> dict[str, float]:
    """Seconds of a pool run: ``startup``, ``read`` and ``compute`` of the busiest worker,
    ``merge`` = the rest of ``wall`` (dispatch, waiting, copying results).
    """
    read, comp = critical_path(records)
    return {"startup": startup, "read": read, "compute": comp,
            "merge": max(0.0, wall - read - comp)}
