"""labkit's backends against Dask on the same tiles, as whole processes.

Each command is one fresh ``labkit run`` (interpreter start, imports, pool or cluster
start, reading, computing, writing the two GeoTIFFs), timed from outside; the commands
are timed in turns (after one untimed round that warms the page cache), and the median
of each is printed with the ratio of the xarray way to the fastest labkit backend and the
1-minute load average before and after.

    .venv/bin/python benchmarks/dask_compare.py data/perf/tiles_2048x2048 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

from labkit.bench import alternate, time_command

LABKIT = [sys.executable, "-m", "labkit", "run"]


def commands(tiles: str, out: Path, workers: int) -> dict[str, list[str]]:
    """The ``labkit run`` command lines, by name."""
    w = ["--workers", str(workers)]

    def run(*args: str) -> list[str]:
        return [*LABKIT, args[0], tiles, str(out / "m.tif"), str(out / "s.tif"), "--quiet",
                *args[1:]]

    return {
        "sequential": run("sequential"),
        f"threads x{workers}": run("threads", *w),
        f"mem x{workers}": run("mem", *w),
        f"dask/chunks threads x{workers}": run("dask", *w),
        f"dask/chunks processes x{workers}": run("dask", *w, "--scheduler", "processes"),
        f"dask/chunks distributed x{workers}": run("dask", *w, "--scheduler", "distributed"),
        f"dask/xarray threads x{workers}": run("dask", *w, "--strategy", "xarray"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tiles", help="folder of intensity tiles")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds (default 3)")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="labkit-dask-compare-") as tmp:
        cmds = commands(args.tiles, Path(tmp), args.workers)
        times = alternate({k: (lambda c=c: time_command(c)) for k, c in cmds.items()},
                          args.repeat, warmup=1,
                          progress=lambda s: print(f"  {s}", file=sys.stderr, flush=True))
    load1 = os.getloadavg()[0]
    med = {k: statistics.median(v) for k, v in times.items()}
    labkit = {k: v for k, v in med.items() if not k.startswith("dask")}
    best = min(labkit, key=labkit.__getitem__)
    xarray = next(k for k in med if k.startswith("dask/xarray"))
    print(f"whole processes on {args.tiles}, {args.repeat} timed rounds, "
          f"load {load0:.1f} -> {load1:.1f}, {os.cpu_count()} logical cores")
    for k, v in med.items():
        runs = ", ".join(f"{t:.2f}" for t in times[k])
        print(f"{k:34} median {v:6.2f} s  ({runs})  {v / med[best]:5.2f}x the best")
    print(f"best labkit backend: {best}; the xarray way takes {med[xarray] / med[best]:.1f}x "
          f"as long")
    print("command of the best:", shlex.join(cmds[best]).replace(tmp, "OUT"))


if __name__ == "__main__":
    main()
