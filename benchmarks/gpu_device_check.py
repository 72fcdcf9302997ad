"""GPU device check: the gpu backend vs one CPU core vs all cores, transfers apart.

Run once, in one go, on a machine with an NVIDIA GPU, from the repository root:

    python3 benchmarks/gpu_device_check.py                 # 24 dates of 2048², Lee K=9
    python3 benchmarks/gpu_device_check.py --dates 4 --side 256 --repeat 1   # a smoke run

Set-up first: when labkit cannot be imported it installs ``.[gpu]`` with pip. On a machine
without network, bring the missing wheels in ``.whl/`` (``pip download --no-deps
--only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 -d .whl rasterio
affine cligj click-plugins``, plus ``numba-cuda`` and its CUDA packages if that machine
lacks them): they are installed from there, into a folder of their own.

Then it writes 24 random speckle tiles of 2048² (float32, 384 MiB, in a temporary folder),
and times, after one untimed run, ``--repeat`` runs of each of: the statistics alone and
with ``lee:9:16``, on ``gpu``, ``sequential`` (one core) and ``threads`` (the physical
cores). It prints one table of medians (read, host→device, kernel or compute, device→host,
GB over the bus, speed-ups over one core with and without the read) and the largest
difference between the gpu and sequential maps in float32 ulps; the same rows go to a CSV
(``--out``, default ``$OUT/gpu_check.csv`` when ``OUT`` is set, else
``benchmarks/gpu_check.csv``). A few minutes, most of them the one-core Lee runs.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(tempfile.gettempdir()) / "labkit-gpu-site"  # wheels from .whl/ go here


def ensure_packages() -> None:
    """Make ``import labkit.backends`` and numba's CUDA target work, or exit with a line."""
    sys.path[:0] = [str(ROOT)] + ([str(SITE)] if SITE.is_dir() else [])
    try:
        import labkit.backends  # noqa: F401  (needs rasterio, numpy, numba)

        if importlib.util.find_spec("numba.cuda") is not None:
            return
    except ImportError:
        pass
    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    if wheels:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
               "--no-compile", "--upgrade", "--target", str(SITE), *map(str, wheels)]
    else:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "-e", f"{ROOT}[gpu]"]
    print("set-up:", " ".join(cmd), flush=True)
    if subprocess.run(cmd).returncode != 0:
        sys.exit("gpu_device_check: could not install the packages (no network? bring the "
                 "wheels in .whl/, see this script's docstring)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(SITE) if wheels else "", str(ROOT), os.environ.get("PYTHONPATH", ""))
        if p))
    os.execve(sys.executable, [sys.executable, *sys.argv], env)  # again, with them


def make_tiles(dest: Path, n_dates: int, side: int, seed: int = 0) -> Path:
    """``n_dates`` random speckle tiles of ``side``² (gamma, 16 looks, mean 1)."""
    import numpy as np

    from labkit.config import TILE_SUFFIX, acquisition_dates
    from labkit.io import write_geotiff

    rng = np.random.default_rng(seed)
    for date in acquisition_dates(n_dates):
        write_geotiff(dest / f"{date}{TILE_SUFFIX}",
                      rng.gamma(16.0, 1 / 16, (side, side)).astype(np.float32))
    return dest


def max_ulp(a: Any, b: Any) -> int:
    """Largest difference in float32 ulps between two maps (NaN in the same places)."""
    import numpy as np

    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return -1
    ok = ~np.isnan(a)
    ia = a[ok].view(np.int32).astype(np.int64)
    ib = b[ok].view(np.int32).astype(np.int64)
    return int(np.abs(ia - ib).max()) if ia.size else 0


def time_runs(backend: str, tiles: Path, repeat: int, **options: Any) -> tuple[dict, Any]:
    """One untimed run, then ``repeat`` runs: the median of every timing, and the result."""
    from labkit.backends import compute

    result = compute(backend, tiles, **options)
    runs = [compute(backend, tiles, **options) for _ in range(repeat)]
    keys = set().union(*(r.timings for r in runs))
    med = {k: statistics.median(r.timings.get(k, 0.0) for r in runs) for k in keys}
    return med, runs[-1] if runs else result


def main(argv: list[str] | None = None) -> int:
    """Parse the options, set up, measure, print the table and write the CSV."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dates", type=int, default=24)
    p.add_argument("--side", type=int, default=2048)
    p.add_argument("--k", type=int, default=9, help="Lee window side (odd)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default=None, help="CSV path")
    args = p.parse_args(argv)
    ensure_packages()

    import psutil

    from labkit.backends import default_workers
    from labkit.sysinfo import system_info

    info = system_info()
    cores = default_workers("threads")
    print(f"machine: {info['cpu_model']}, {info['cores_physical']} physical / "
          f"{info['cores_logical']} logical cores, {psutil.virtual_memory().total / 2**30:.0f} "
          f"GiB; GPU: {info['cuda'] or 'none found'}; numba {info['numba']}, numba-cuda "
          f"{info['numba_cuda'] or '-'}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="labkit-gpu-check-") as tmp:
        tiles = make_tiles(Path(tmp), args.dates, args.side)
        for filt in (None, f"lee:{args.k}:16"):
            ref = None
            base: dict[str, float] = {}
            for backend, workers in (("sequential", 1), ("threads", cores), ("gpu", 1)):
                print(f"timing {backend} x{workers} filter={filt or 'none'} ...", flush=True)
                t, r = time_runs(backend, tiles, args.repeat, workers=workers, filter=filt,
                                 kernel="numba")
                if backend == "sequential":
                    ref, base = r, t
                gpu = backend == "gpu"
                rows.append({
                    "case": filt or "stats", "backend": backend, "workers": workers,
                    "wall_s": t["wall"], "read_s": t["read"],
                    "h2d_s": t.get("h2d", 0.0) if gpu else "",
                    "compute_s": t["compute"], "d2h_s": t.get("d2h", 0.0) if gpu else "",
                    "bus_gb": r.meta["bus_bytes"] / 1e9 if gpu else "",
                    "speedup": base["wall"] / t["wall"],
                    "speedup_no_read": (base["wall"] - base["read"]) / (t["wall"] - t["read"]),
                    "max_ulp": max(max_ulp(r.mean, ref.mean), max_ulp(r.std, ref.std)),
                    "device": r.meta.get("device", ""),
                })
    head = list(rows[0])
    fmt = {k: (lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)) for k in head}
    table = [head] + [[fmt[k](row[k]) for k in head] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    for line in table:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))
    out = Path(args.out or (Path(os.environ["OUT"]) / "gpu_check.csv" if os.environ.get("OUT")
                            else ROOT / "benchmarks" / "gpu_check.csv"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, head)
        writer.writeheader()
        writer.writerows(rows)
    print(f"rows in {out}; seconds are medians of {args.repeat} runs after one untimed run; "
          "wall includes the read; gpu compute = kernel, bus = host→device + device→host")
    return 0


if __name__ == "__main__":
    sys.exit(main())
