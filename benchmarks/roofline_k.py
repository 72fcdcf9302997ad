"""The roofline and the speed-up against the Lee window K at a real size (developer script).

Run from the repository root::

    .venv/bin/python benchmarks/roofline_k.py --out benchmarks/roofline
    .venv/bin/python benchmarks/roofline_k.py --tiles data/seed/intens_1024x1024 --ks 0,9 --repeat 3

On the filter group's 12 random 1024² tiles by default (built by ``perf.py --groups
filter``; they record no looks, so the filter runs as ``lee:K:16``), in process:

* the machine's roofline (:func:`labkit.bench.roofline.measure_roof`) with the statistics
  kernel and ``lee:9`` placed on it by the threads backend, 1 and N workers;
* the speed-up of N workers over 1 for each backend and K
  (:func:`labkit.bench.kernels_k.speedup_vs_k`, pools started beforehand, medians).

Writes ``roofline.png``, ``k_speedup.png`` and ``roofline_k.json`` (the records, with the
load average before and after) into ``--out``, and prints one line per record.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

TILES = Path("data/perf/tiles_1024x1024")


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print, write the figures and the JSON; exit status 0, or 2 on bad input."""
    from labkit.bench import kernels_k, roofline
    from labkit.errors import LabError
    from labkit.io import write_text_atomic
    from labkit.plots.roofline import plot_roofline, plot_speedup_k

    p = argparse.ArgumentParser(prog="benchmarks/roofline_k.py",
                                description=__doc__.split("\n")[0])
    p.add_argument("--tiles", type=Path, default=TILES, help="tile folder")
    p.add_argument("--out", type=Path, default=Path("benchmarks/roofline"),
                   help="folder for the figures and the JSON")
    p.add_argument("--ks", default="0,3,5,7,9,11,13,15", help="Lee window sides (0: none)")
    p.add_argument("--backends", default="threads,mem,multiprocessing",
                   help="backends compared (mpi starts ipyparallel engines)")
    p.add_argument("--enl", type=float, default=16.0, help="the filter's ENL")
    p.add_argument("--repeat", type=int, default=5, help="timed runs of 1 and N workers")
    args = p.parse_args(argv)
    try:
        if not args.tiles.is_dir():
            raise LabError(f"{args.tiles} is not a folder: run `.venv/bin/python "
                           "benchmarks/perf.py --groups filter` first, or give --tiles")
        ks = [int(k) for k in str(args.ks).split(",") if k.strip()]
        backends = [b.strip() for b in str(args.backends).split(",") if b.strip()]
        load0 = os.getloadavg()[0]
        roof = roofline.measure_roof()
        points = roofline.kernel_points(args.tiles, filters=(None, f"lee:9:{args.enl:g}"),
                                        repeat=args.repeat)
        recs = kernels_k.speedup_vs_k(args.tiles, ks=ks, backends=backends, enl=args.enl,
                                      repeat=args.repeat)
        load1 = os.getloadavg()[0]
    except (LabError, ValueError) as exc:
        print(f"roofline_k: error: {exc}", file=sys.stderr)
        return 2
    print(roofline.describe(roof, points))
    for r in recs:
        print(f"{r.backend}, K={r.k or 'none'}: ×1 {r.t1_s:.4f} s, ×{r.workers} "
              f"{r.tn_s:.4f} s, speed-up {r.speedup:.2f}")
    print(f"load {load0:.2f} → {load1:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    plot_roofline(roof, points, args.out / "roofline.png")
    plot_speedup_k(recs, args.out / "k_speedup.png")
    doc = {"tiles": str(args.tiles), "load": [load0, load1], "roof": roof.as_dict(),
           "points": [pt.as_dict() for pt in points], "k_speedup": [r.as_dict() for r in recs]}
    write_text_atomic(args.out / "roofline_k.json", json.dumps(doc, indent=1, default=str))
    print(f"figures and roofline_k.json in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
