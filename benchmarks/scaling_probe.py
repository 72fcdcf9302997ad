"""Probes of why 2 workers give what they give on the filter group's tiles (developer script).

Run from the repository root, on the 12 random 1024² tiles of ``perf.py --groups filter``
(built by it under ``data/perf/tiles_1024x1024``)::

    .venv/bin/python benchmarks/scaling_probe.py reads --block-rows 32,128
    .venv/bin/python benchmarks/scaling_probe.py blocks --block-rows 128,256,512 --pairs 41
    .venv/bin/python benchmarks/scaling_probe.py lee
    .venv/bin/python benchmarks/scaling_probe.py cpu --block-rows 16,128

* ``reads``: reading the tiles' rows in blocks with 1 vs 2 threads (each thread half the
  rows, its own reader and buffer): through the reader as shipped (a read-ahead hint,
  ``madvise``, then a copy, per date), without the hint, as plain copies out of the maps
  (one per date), and as one copy per block from the stack in RAM.
* ``blocks``: paired speed-ups: every round runs 1 then 2 workers back to back for each
  configuration (threads backend at each block size, ``mem``, the filter group's copy
  yardstick), rounds shuffled; the median and quartiles of the per-pair ratios hold up
  better than ratios of medians when other work comes and goes on the machine.
* ``lee``: the threads backend with ``lee:9:16``, 1 and 2 workers: wall and CPU seconds,
  minor page faults per run.
* ``cpu``: a threads-backend job by hand (read a block through the thread's reader, then
  the fused kernel) with 1 and 2 threads: wall time, and the CPU time of the reads and of
  the kernel summed over the threads (CPU time counts only while a thread runs, so it
  shows whether the work itself got slower or the threads waited).

Every line says the 1-minute load average before and after.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

TILES = Path("data/perf/tiles_1024x1024")


def _load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def reads(tiles: Path, block_rows: Sequence[int], rounds: int) -> list[str]:
    """1 vs 2 threads reading the stack in blocks, four ways (medians of ``rounds``)."""
    from labkit.bench import alternate
    from labkit.io import StackReader, mapped, open_stack

    stack = open_stack(tiles)
    n, rows, cols = stack.shape
    readers = [StackReader(stack.paths) for _ in range(2)]
    if not readers[0].mapped:
        raise SystemExit("the tiles cannot be memory-mapped: this probe needs strip tiles")
    views = [[t.view() for t in rd._maps._tiles]  # type: ignore[union-attr]  # noqa: SLF001
             for rd in readers]
    data = np.stack(views[0])
    shipped = mapped.MappedTile._advise  # noqa: SLF001
    out = []
    try:
        with ThreadPoolExecutor(2) as ex:
            for br in block_rows:
                bufs = [np.empty((n, br, cols), np.float32) for _ in range(2)]

                def spans(part: int, parts: int, br: int = br) -> list[tuple[int, int]]:
                    end = (part + 1) * rows // parts
                    return [(r, min(br, end - r)) for r in range(part * rows // parts, end, br)]

                def read(part: int, parts: int, bufs: list = bufs) -> None:
                    for r, k in spans(part, parts):
                        readers[part].read(r, k, out=bufs[part][:, :k])

                def per_date(part: int, parts: int, bufs: list = bufs) -> None:
                    for r, k in spans(part, parts):
                        for d in range(n):
                            np.copyto(bufs[part][d, :k], views[part][d][r:r + k])

                def one_copy(part: int, parts: int, bufs: list = bufs) -> None:
                    for r, k in spans(part, parts):
                        np.copyto(bufs[part][:, :k], data[:, r:r + k])

                def over(step: Callable[[int, int], None], parts: int,
                         hint: bool = True) -> Callable[[], float]:
                    def fn() -> float:
                        setattr(mapped.MappedTile, "_advise",  # noqa: B010
                                shipped if hint else lambda self, o, b: None)
                        return _timed(lambda: list(ex.map(step, range(parts), [parts] * parts)))
                    return fn

                ways = {"reader, with the hint": (read, True),
                        "reader, without the hint": (read, False),
                        "one copy per date from the maps": (per_date, True),
                        "one copy per block from RAM": (one_copy, True)}
                before = _load()
                t = alternate({f"{w} ×{p}": over(s, p, h) for w, (s, h) in ways.items()
                               for p in (1, 2)}, rounds)
                for w in ways:
                    a, b = np.median(t[f"{w} ×1"]), np.median(t[f"{w} ×2"])
                    out.append(f"reads, {br} rows per block, {w}: 1 thread {a * 1e3:.2f} ms, "
                               f"2 threads {b * 1e3:.2f} ms, speed-up {a / b:.2f} "
                               f"({before} → {_load()})")
    finally:
        setattr(mapped.MappedTile, "_advise", shipped)  # noqa: B010
        for rd in readers:
            rd.close()
    return out


def blocks(tiles: Path, block_rows: Sequence[int], pairs: int) -> list[str]:
    """Paired 1-vs-2 speed-ups per configuration (median and quartiles of the ratios)."""
    from labkit.backends import compute, io_block_rows, make_pool
    from labkit.io import StackReader, open_stack

    stack = open_stack(tiles)
    n, rows, cols = stack.shape
    pools = {(b, w): make_pool(b, w) for b in ("threads", "mem") for w in (1, 2)}
    data = np.empty(stack.shape, np.float32)
    with StackReader(stack.paths) as rd:
        rd.read(0, rows, out=data)
    br0 = io_block_rows(n, cols)
    bufs = [np.empty((n, br0, cols), np.float32) for _ in range(2)]
    out = []
    try:
        with ThreadPoolExecutor(2) as ex:
            def copy(part: int, parts: int) -> None:
                for r in range(part * rows // parts, (part + 1) * rows // parts, br0):
                    k = min(br0, rows - r)
                    np.copyto(bufs[part][:, :k], data[:, r:r + k])

            def backend(b: str, br: int | None) -> Callable[[int], float]:
                return lambda w: float(compute(b, stack, workers=w, block_rows=br,
                                               pool=pools[b, w]).timings["wall"])

            configs: dict[str, Callable[[int], float]] = {
                f"threads, {br} rows per block": backend("threads", br) for br in block_rows}
            configs["threads, default blocks"] = backend("threads", None)
            configs["mem, default blocks"] = backend("mem", None)
            configs[f"copy within RAM, {br0} rows per block"] = \
                lambda w: _timed(lambda: list(ex.map(copy, range(w), [w] * w)))
            for f in configs.values():
                f(1)
                f(2)
            ratios: dict[str, list[float]] = {k: [] for k in configs}
            one: dict[str, list[float]] = {k: [] for k in configs}
            before = _load()
            keys = list(configs)
            for _ in range(pairs):
                random.shuffle(keys)
                for k in keys:
                    a, b = configs[k](1), configs[k](2)
                    ratios[k].append(a / b)
                    one[k].append(a)
            after = _load()
    finally:
        for pool in pools.values():
            if pool is not None:
                pool.close()
    for k in configs:
        q1, q2, q3 = np.percentile(ratios[k], [25, 50, 75])
        out.append(f"{k}: 1 worker {np.median(one[k]) * 1e3:.2f} ms, speed-up {q2:.2f} "
                   f"(quartiles {q1:.2f}–{q3:.2f}, {pairs} pairs; {before} → {after})")
    return out


def lee(tiles: Path, rounds: int) -> list[str]:
    """Threads backend with lee:9:16: wall, CPU and minor faults of a run (medians)."""
    from labkit.backends import compute, make_pool
    from labkit.io import open_stack

    stack = open_stack(tiles)
    pools = {w: make_pool("threads", w) for w in (1, 2)}
    out = []
    try:
        for w in (1, 2):
            compute("threads", stack, workers=w, pool=pools[w], filter="lee:9:16")
        rec: dict[int, list[tuple[float, float, float, int]]] = {1: [], 2: []}
        before = _load()
        for _ in range(rounds):
            for w in (1, 2):
                r0 = resource.getrusage(resource.RUSAGE_SELF)
                wall = float(compute("threads", stack, workers=w, pool=pools[w],
                                     filter="lee:9:16").timings["wall"])
                r1 = resource.getrusage(resource.RUSAGE_SELF)
                rec[w].append((wall, r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime,
                               r1.ru_stime - r0.ru_stime, r1.ru_minflt - r0.ru_minflt))
        after = _load()
    finally:
        for pool in pools.values():
            pool.close()
    med = {w: np.median(np.array(v), axis=0) for w, v in rec.items()}
    for w in (1, 2):
        wall, cpu, sys_s, faults = med[w]
        out.append(f"lee:9:16 threads ×{w}: wall {wall:.3f} s, CPU {cpu:.3f} s (system "
                   f"{sys_s:.3f} s), {faults:.0f} minor page faults per run")
    out.append(f"lee:9:16 threads: speed-up {med[1][0] / med[2][0]:.2f}, CPU ×2 / ×1 "
               f"{med[2][1] / med[1][1]:.2f} ({rounds} runs each; {before} → {after})")
    return out


def cpu(tiles: Path, block_rows: Sequence[int], rounds: int) -> list[str]:
    """Wall and summed thread CPU time of reads and kernel, 1 vs 2 threads (medians)."""
    from labkit import stats
    from labkit.bench import alternate
    from labkit.io import StackReader, open_stack

    stack = open_stack(tiles)
    n, rows, cols = stack.shape
    readers = [StackReader(stack.paths) for _ in range(2)]
    outs = (np.empty((rows, cols), np.float32), np.empty((rows, cols), np.float32))
    stats.warm_up()
    out = []
    try:
        with ThreadPoolExecutor(2) as ex:
            for br in block_rows:
                bufs = [np.empty((n, br, cols), np.float32) for _ in range(2)]
                rec: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}

                def part(p: int, parts: int, br: int = br, bufs: list = bufs
                         ) -> tuple[float, float]:
                    end = (p + 1) * rows // parts
                    t_read = t_kernel = 0.0
                    for r in range(p * rows // parts, end, br):
                        k = min(br, end - r)
                        a = time.thread_time()
                        blk = (readers[p].read(r, k, out=bufs[p][:, :k]) if k == br
                               else readers[p].read(r, k))
                        b = time.thread_time()
                        stats.reduce_stack(blk, out=(outs[0][r:r + k], outs[1][r:r + k]))
                        t_read += b - a
                        t_kernel += time.thread_time() - b
                    return t_read, t_kernel

                def job(parts: int, rec: dict = rec) -> Callable[[], float]:
                    def fn() -> float:
                        t0 = time.perf_counter()
                        got = list(ex.map(part, range(parts), [parts] * parts))
                        wall = time.perf_counter() - t0
                        rec[parts].append((wall, sum(g[0] for g in got),
                                           sum(g[1] for g in got)))
                        return wall
                    return fn

                before = _load()
                alternate({"1": job(1), "2": job(2)}, rounds)
                for parts in (1, 2):
                    wall, t_read, t_kernel = np.median(np.array(rec[parts][1:]), axis=0) * 1e3
                    out.append(f"cpu, {br} rows per block, {parts} thread(s): wall "
                               f"{wall:.2f} ms, CPU reading {t_read:.2f} ms + kernel "
                               f"{t_kernel:.2f} ms (summed over threads; {before} → {_load()})")
    finally:
        for rd in readers:
            rd.close()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the probes named on the command line; print one line per measurement."""
    p = argparse.ArgumentParser(prog="benchmarks/scaling_probe.py",
                                description=__doc__.split("\n")[0])
    p.add_argument("probes", nargs="+", choices=("reads", "blocks", "lee", "cpu"))
    p.add_argument("--tiles", type=Path, default=TILES, help="tile folder")
    p.add_argument("--block-rows", default="32,128,512", help="rows per block, e.g. 32,128")
    p.add_argument("--pairs", type=int, default=41, help="rounds (pairs) of each probe")
    args = p.parse_args(argv)
    if not args.tiles.is_dir():
        print(f"scaling_probe: error: {args.tiles} is not a folder: run "
              "`.venv/bin/python benchmarks/perf.py --groups filter` first", file=sys.stderr)
        return 2
    brs = [int(b) for b in str(args.block_rows).split(",") if b.strip()]
    for probe in args.probes:
        lines = {"reads": lambda: reads(args.tiles, brs, max(3, args.pairs // 3)),
                 "blocks": lambda: blocks(args.tiles, brs, args.pairs),
                 "lee": lambda: lee(args.tiles, max(3, args.pairs // 4)),
                 "cpu": lambda: cpu(args.tiles, brs, max(3, args.pairs // 3))}[probe]()
        print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
