"""The measurements of ``benchmarks/perf.py`` (all but the parallel group).

Every row compares two things, A and B, timed alternately in one run
(:func:`labkit.bench.alternate`) and summarised by their medians; ``ratio`` is always
median A / median B. Whole processes are timed in a fresh interpreter, the way
``/usr/bin/time`` does (:func:`labkit.bench.time_command`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from labkit.bench import (
    alternate,
    compare_prefetch,
    forced_kernel,
    median,
    peak_rss,
    process_command,
    python_call,
    run_command,
    time_command,
    timed,
)
from labkit.io import write_text_atomic

__all__ = [
    "FORBIDDEN_IMPORTS",
    "MIB",
    "PERF_COLUMNS",
    "import_report",
    "labkit_run",
    "make_row",
    "measure_kernel",
    "measure_prefetch",
    "measure_prep",
    "measure_process",
    "measure_startup",
]

PERF_COLUMNS = ("group", "case", "a_label", "b_label", "a_median_s", "b_median_s", "ratio",
                "repeats", "machine", "versions", "command")
FORBIDDEN_IMPORTS = ("matplotlib", "ipywidgets", "jupyter")  # prefixes `labkit run` avoids
MIB = 2**20  # bytes
Progress = Callable[[str], None] | None
_MACHINE: tuple[str, str] | None = None


def _machine() -> tuple[str, str]:
    """(machine description, ``name=version;...``) of this machine (cached)."""
    global _MACHINE
    if _MACHINE is None:
        from labkit.sysinfo import system_info

        i = system_info()
        _MACHINE = (
            f"{i.get('cpu_model') or '?'}, {i.get('cores_physical') or '?'} cores, "
            f"{i.get('mem_total_gib') or '?'} GiB, {i.get('os') or ''}".strip(", "),
            ";".join(f"{k}={i[k]}" for k in ("python", "numpy", "numba", "rasterio", "gdal",
                                             "mpi4py") if i.get(k)),
        )
    return _MACHINE


def _median_or_value(v: Sequence[float] | float | None) -> float | None:
    """The median of a list of seconds, a single value as is, None as None."""
    if v is None:
        return None
    return median(v) if isinstance(v, Sequence) else float(v)


def make_row(group: str, case: str, a_label: str, b_label: str,
             a: Sequence[float] | float | None, b: Sequence[float] | float | None,
             repeats: int | None = None) -> dict[str, Any]:
    """One perf.csv row (keys :data:`PERF_COLUMNS`, ``command`` left empty).

    Parameters
    ----------
    group, case : str
        The group of measurements (``kernel``, ``process``, ...) and the row's case.
    a_label, b_label : str
        What A and B are.
    a, b : list of float, float or None
        Seconds (a list gives its median).
    repeats : int, optional
        Timed runs of each (default: the length of ``a``).

    Returns
    -------
    dict
        ``ratio`` = median A / median B (None without both); ``machine`` ends with the
        1-minute load average, since other work on the machine skews 2-core results.
    """
    a_s, b_s = _median_or_value(a), _median_or_value(b)
    n = repeats if repeats is not None else (len(a) if isinstance(a, Sequence) else 1)
    machine, versions = _machine()
    if hasattr(os, "getloadavg"):
        machine += f", load {os.getloadavg()[0]:.2f}"
    return {"group": group, "case": case, "a_label": a_label, "b_label": b_label,
            "a_median_s": a_s, "b_median_s": b_s,
            "ratio": a_s / b_s if a_s is not None and b_s else None,
            "repeats": n, "machine": machine, "versions": versions, "command": ""}


def labkit_run(backend: str, src: Path, tmp: Path, workers: int = 1) -> list[str]:
    """The ``labkit run`` command line of ``backend`` on ``src``, outputs under ``tmp``."""
    return process_command(backend, src, tmp / f"{backend}{workers}_mean.tif",
                           tmp / f"{backend}{workers}_std.tif", workers=workers)


# ----------------------------------------------------------------------------- kernel


def measure_kernel(shape: tuple[int, int, int] = (24, 2048, 2048), repeats: int = 5,
                   progress: Progress = None) -> list[dict[str, Any]]:
    """``numpy.sum`` vs each in-memory reduction over the same float32 stack, and the
    Numba load/compile time of a fresh process (start-up, outside the other rows)."""
    import numpy as np

    from labkit import stats

    x = np.random.default_rng(1).standard_exponential(shape, dtype=np.float32)
    out = (np.empty(shape[1:], np.float32), np.empty(shape[1:], np.float32))
    size = f"{shape[0]}×{shape[1]}×{shape[2]} float32 ({x.nbytes / MIB:.0f} MiB)"
    with forced_kernel("numba"):
        stats.warm_up()

    def reduce(kernel: str, threads: int) -> Callable[[], float]:
        def fn() -> float:
            with forced_kernel(kernel):
                return timed(lambda: stats.reduce_stack(x, out=out, threads=threads))
        return fn

    fns = {"numpy.sum": lambda: timed(x.sum),
           "fused kernel ×1 thread": reduce("numba", 1),
           "fused kernel ×2 threads (row slabs)": reduce("numba", 2),
           "NumPy kernel ×1 thread": reduce("numpy", 1),
           "NumPy kernel ×2 threads (row slabs)": reduce("numpy", 2)}
    t = alternate(fns, repeats, progress=progress)
    ref = t.pop("numpy.sum")
    best = min(t, key=lambda k: median(t[k]))
    rows = [make_row("kernel", "reduction", f"numpy.sum on {size}", f"best: {best}", ref,
                     t[best])]
    rows += [make_row("kernel", "reduction", "numpy.sum, same array", k, ref, v)
             for k, v in t.items()]
    rows.append(_jit_row(progress))
    return rows


def _jit_row(progress: Progress) -> dict[str, Any]:
    """Fresh-process Numba import + kernel load (cached) vs compile (empty cache)."""
    code = ("import os, time; t = time.perf_counter(); os.environ['LABKIT_KERNEL'] = 'numba'; "
            "from labkit import stats; stats.warm_up(); print(time.perf_counter() - t)")
    cmd = [sys.executable, "-c", code]
    if progress:
        progress("JIT load and compile")
    run_command(cmd)  # make sure the cache exists
    load = [float(run_command(cmd)[1].split()[-1]) for _ in range(3)]
    with tempfile.TemporaryDirectory(prefix="labkit-numba-") as tmp:
        compile_s = float(run_command(cmd, env={"NUMBA_CACHE_DIR": tmp})[1].split()[-1])
    return make_row("kernel", "jit", "Numba import + kernel load from cache (fresh process)",
                    "the same with an empty cache (compile)", load, compile_s)


# ----------------------------------------------------------------------------- process


def measure_process(tiles: Path, repeats: int = 5,
                    progress: Progress = None) -> list[dict[str, Any]]:
    """Whole processes on ``tiles`` (page cache warm): ``labkit run`` against a process
    that only reads and sums the tiles, and the course-style script against both."""
    from labkit.io import READ_OPTIONS, open_stack

    stack = open_stack(tiles)
    size = f"{stack.n_dates} tiles of {stack.rows}×{stack.cols}"
    with tempfile.TemporaryDirectory(prefix="labkit-perf-") as tmp_s:
        tmp = Path(tmp_s)
        cmds = {
            "read-and-sum (rasterio)": python_call("read_and_sum", str(tiles)),
            "read-and-sum (rasterio, labkit's GDAL read options)": python_call(
                "read_and_sum", str(tiles)),
            "course-style script": python_call("course_script", str(tiles),
                                               str(tmp / "c_mean.tif"), str(tmp / "c_std.tif")),
            "labkit run sequential": labkit_run("sequential", tiles, tmp),
            "labkit run threads ×2": labkit_run("threads", tiles, tmp, 2),
            "labkit run mem ×2": labkit_run("mem", tiles, tmp, 2),
        }
        envs = {k: READ_OPTIONS if "labkit's GDAL" in k else None for k in cmds}

        def timer(name: str) -> Callable[[], float]:
            return lambda: time_command(cmds[name], env=envs[name])

        # mem is timed apart: freeing its 400 MiB of shared memory disturbs the next runs
        t = alternate({k: timer(k) for k in cmds if "mem" not in k}, repeats,
                      progress=progress)
        mem = alternate({"ref": timer("read-and-sum (rasterio)"),
                         "labkit run mem ×2": timer("labkit run mem ×2")}, repeats,
                        progress=progress)
        t["labkit run mem ×2"] = mem["labkit run mem ×2"]
    ref, course, seq = (t["read-and-sum (rasterio)"], t["course-style script"],
                        t["labkit run sequential"])
    runs = {k: v for k, v in t.items() if k.startswith("labkit")}
    best = min(runs, key=lambda k: median(runs[k]))
    rows = [
        make_row("process", "readsum", f"best: {best}, {size}", "read-and-sum process",
                 runs[best], ref),
        make_row("process", "course", "course-style script process", f"best: {best}",
                 course, runs[best]),
        make_row("process", "course-vs-sequential", "course-style script process",
                 "labkit run sequential", course, seq),
    ]
    rows += [make_row("process", "each", k, "read-and-sum process", v, ref)
             for k, v in t.items() if k != "read-and-sum (rasterio)"]
    return rows


# ----------------------------------------------------------------------------- prep


def _raw_read(path: Path) -> None:
    """Read a file to its end in 8 MiB chunks, unbuffered (the least a reader does)."""
    buf = bytearray(8 * MIB)
    with open(path, "rb", buffering=0) as fh:
        while fh.readinto(buf):
            pass


def measure_prep(slc_dir: Path, repeats: int = 5,
                 progress: Progress = None) -> list[dict[str, Any]]:
    """Prep of one SLC (whole image, 4×4 looks) in process against a raw read of it, and
    as ``labkit prep`` against ``cat SLC > /dev/null`` (with its peak RSS)."""
    from labkit import config, prep
    from labkit.sar.discovery import find_slcs
    from labkit.sar.slc import open_slc_checked

    info = open_slc_checked(find_slcs(slc_dir)[0])
    raw = info.path.with_suffix("") if info.path.suffix == ".vrt" else info.path
    crop = (info.samples // 4, info.lines // 4, 0, 0)
    size = f"{info.lines}×{info.samples} SLC ({raw.stat().st_size / 2**30:.2f} GiB)"
    rows = []
    with tempfile.TemporaryDirectory(prefix="labkit-perf-") as tmp_s:
        tmp = Path(tmp_s)
        fns = {
            "raw read": lambda: timed(lambda: _raw_read(raw)),
            "prep": lambda: timed(lambda: prep.prep_date(info.path, tmp / "a.tif", crop, 4)),
            "prep ×1 thread": lambda: timed(lambda: prep.prep_date(info.path, tmp / "b.tif",
                                                                   crop, 4, threads=1)),
        }
        t = alternate(fns, repeats, progress=progress)
        rows.append(make_row("prep", "in-process", f"raw read of the {size}",
                             f"|S|² + multilook 4×4 + crop + write, {config.PREP_THREADS} "
                             f"threads, {prep.kernel_name()} kernel", t["raw read"], t["prep"]))
        rows.append(make_row("prep", "in-process", "raw read", "the same prep on 1 thread",
                             t["raw read"], t["prep ×1 thread"]))
        cmd = [sys.executable, "-m", "labkit", "prep", str(slc_dir), str(tmp / "tiles"),
               "--crop", ",".join(map(str, crop)), "--looks", "4"]
        rss: list[int] = []

        def prep_process() -> float:
            wall, peak = peak_rss(cmd)
            rss.append(peak)
            return wall

        t = alternate({"cat": lambda: time_command(["cat", str(raw)]),
                       "labkit prep": prep_process}, repeats, progress=progress)
    rows.append(make_row("prep", "peak-rss", f"labkit prep {size}: peak RSS "
                         f"{max(rss) / MIB:.0f} MiB (largest of {len(rss)} runs)", "",
                         t["labkit prep"], None))
    rows.append(make_row("prep", "cat", "cat SLC > /dev/null", "labkit prep (whole process)",
                         t["cat"], t["labkit prep"]))
    return rows


# ----------------------------------------------------------------------------- start-up


def import_report(importtime_stderr: str, top: int = 15) -> tuple[list[str], list[str]]:
    """What ``python -X importtime`` printed, read back.

    Returns
    -------
    (list of str, list of str)
        The imported module names in import order, and the ``top`` lines with the
        largest cumulative time, as ``cumulative_ms  self_ms  module``.
    """
    entries = []
    for line in importtime_stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:"):].split("|")
        try:
            self_us, cum_us = int(parts[0]), int(parts[1])
        except ValueError:
            continue
        entries.append((cum_us, self_us, parts[2].strip()))
    names = [e[2] for e in entries]
    lines = [f"{c / 1e3:9.1f} {s / 1e3:9.1f}  {n}" for c, s, n in sorted(entries, reverse=True)]
    return names, lines[:top]


def _write_import_report(path: Path, names: list[str], top: list[str],
                         forbidden: list[str]) -> None:
    """``importtime.txt``: the module count, the notebook libraries imported, the top."""
    head = (f"python -X importtime -m labkit run sequential <tiny tiles> ... "
            f"({len(names)} modules imported)\nnotebook libraries imported "
            f"({', '.join(FORBIDDEN_IMPORTS)}*): {', '.join(forbidden) or 'none'}\n\n"
            f"{'cumul ms':>9} {'self ms':>9}  module\n")
    write_text_atomic(path, head + "\n".join(top) + "\n")


def measure_startup(tiny: Path, repeats: int = 5, text_path: Path | None = None,
                    progress: Progress = None) -> list[dict[str, Any]]:
    """What ``labkit run sequential`` imports, and its start-up against a process that
    only imports NumPy and rasterio; ``text_path`` gets the import-time report."""
    with tempfile.TemporaryDirectory(prefix="labkit-perf-") as tmp_s:
        run_cmd = labkit_run("sequential", tiny, Path(tmp_s))
        _, _, err = run_command([run_cmd[0], "-X", "importtime", *run_cmd[1:]])
        t = alternate({"labkit run": lambda: time_command(run_cmd),
                       "imports": lambda: time_command([sys.executable, "-c",
                                                        "import numpy, rasterio"])},
                      repeats, progress=progress)
    names, top = import_report(err)
    forbidden = sorted({n for n in names if n.split(".")[0].startswith(FORBIDDEN_IMPORTS)})
    if text_path is not None:
        _write_import_report(text_path, names, top, forbidden)
    heavy = ", ".join(n for n in ("numba", "matplotlib", "ipywidgets", "mpi4py", "psutil",
                                  "tqdm") if n in names) or "none of numba/mpi4py/psutil/tqdm"
    notebook = ", ".join(forbidden) or "none"
    return [make_row("startup", "imports", f"labkit run sequential (tiny), {len(names)} "
                     f"modules; imports {heavy}; notebook libraries: {notebook}",
                     "python -c 'import numpy, rasterio'", t["labkit run"], t["imports"])]


# ----------------------------------------------------------------------------- prefetch


def measure_prefetch(tiles: Path, repeats: int = 5,
                     progress: Progress = None) -> list[dict[str, Any]]:
    """``sequential`` without vs with prefetch, in process, with each kernel."""
    rows = []
    for kernel in ("numba", "numpy"):
        if progress:
            progress(f"prefetch, {kernel} kernel")
        runs = compare_prefetch(tiles, repeats, kernel)
        off = [r.timings["wall"] for r in runs["off"]]
        on = [r.timings["wall"] for r in runs["on"]]
        read = median([r.timings["read"] for r in runs["off"]])
        comp = median([r.timings["compute"] for r in runs["off"]])
        waited = median([r.timings["compute"] for r in runs["on"]])
        name = "fused" if kernel == "numba" else "NumPy"
        rows.append(make_row("prefetch", "prefetch", f"sequential, {name} kernel, no "
                             f"prefetch (read {read:.3f} s + compute {comp:.3f} s)",
                             f"with prefetch (compute not hidden: {waited:.3f} s)", off, on))
    return rows
