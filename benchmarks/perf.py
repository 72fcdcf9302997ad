"""Developer benchmarks of labkit: ratios of two things timed alternately, in one run.

Run from the repository root (``make bench-perf`` does)::

    .venv/bin/python benchmarks/perf.py --out benchmarks/perf.csv [--groups kernel,prep]

Each row compares A and B, timed alternately (A, B, A, B, ... after one untimed round)
and summarised by their medians; ``ratio`` is median A / median B. The rows are printed
and written to the CSV with the command that produced them. Groups (``group`` column):

* ``kernel``: ``numpy.sum`` vs each in-memory reduction of a 24×2048×2048 float32
  stack; the Numba load vs compile time of a fresh process.
* ``process``: whole processes on 24 tiles of 2048²: ``labkit run`` vs a process that
  reads and sums the tiles; the course-style script vs ``labkit run``.
* ``parallel``: 1 vs 2 workers on the ``dates24`` tiles (in process, pools started
  beforehand), ``sequential`` vs 2 workers on ``seed``, pool start-up, the fixed cost of
  a run, and the 2-thread scaling of reading, copying and reducing.
* ``prep``: raw read of a 1 GiB SLC vs its prep in process; ``cat`` vs ``labkit prep``
  (with its peak RSS).
* ``startup``: ``labkit run`` on the tiny tiles vs ``python -c 'import numpy, rasterio'``;
  ``importtime.txt`` beside the CSV lists the slowest imports.
* ``prefetch``: ``sequential`` without vs with prefetch, in process, each kernel.
* ``filter`` (only when asked for: ``--groups filter``): the Lee filter (``lee:9:16``) with
  1 vs 2 workers on ``threads``, ``mem`` and ``mpi`` (12 random tiles of 1024², pools
  started beforehand); the fused Lee kernel vs scipy's ``uniform_filter`` on one date,
  with their largest relative difference; the statistics kernel's best 2-worker speed-up
  against the 2-thread copy scaling of the same run.
* ``memory`` (only when asked for: ``--groups memory``): why the statistics kernel scales
  as it does: each step of a block (copy within RAM, copy from the page cache, read +
  kernel, the threads backend) with 1 vs 2 threads for several block sizes, the kernel
  alone, the process backends, and the minor page faults of a run.

The inputs are built once under ``data/`` (``--root``), only those the groups need.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # imported by path (the tests): find the sibling modules
    sys.path.insert(0, str(HERE))

from _perf_cases import (  # noqa: E402
    PERF_COLUMNS,
    measure_kernel,
    measure_prefetch,
    measure_prep,
    measure_process,
    measure_startup,
)
from _perf_filter import measure_filter  # noqa: E402
from _perf_memory import measure_memory  # noqa: E402
from _perf_parallel import measure_parallel  # noqa: E402

from labkit.errors import LabError  # noqa: E402
from labkit.io import write_text_atomic  # noqa: E402

GROUPS = ("kernel", "process", "parallel", "prep", "startup", "prefetch", "filter", "memory")
DEFAULT_GROUPS = GROUPS[:-2]  # filter and memory only when asked for (+≈1 min each, 2 cores)


# ----------------------------------------------------------------------------- inputs


def make_tiles(dest: str | os.PathLike[str], n_dates: int = 24, side: int = 2048,
               seed: int = 0) -> Path:
    """Random speckle tiles ``dest/YYYYMMDD_int_crop.tif`` (float32, exponential, mean 1).

    Kept when ``n_dates`` tiles of ``side``² are already there. Returns ``dest``.
    """

    import numpy as np

    from labkit.config import TILE_SUFFIX, acquisition_dates
    from labkit.io import write_geotiff

    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    need = side * side * 4
    names = [f"{date}{TILE_SUFFIX}" for date in acquisition_dates(n_dates)]
    have = {p.name for p in out.glob(f"*{TILE_SUFFIX}") if p.stat().st_size >= need}
    if set(names) <= have and len(have) == n_dates:
        return out
    for p in out.glob(f"*{TILE_SUFFIX}"):
        p.unlink()
    rng = np.random.default_rng(seed)
    for name in names:
        write_geotiff(out / name, rng.standard_exponential((side, side), dtype=np.float32))
    return out


def make_slc(dest: str | os.PathLike[str], lines: int = 8192, samples: int = 16384) -> Path:
    """A one-date synthetic SLC stack of ``lines × samples`` complex64 (8192 × 16384 =
    1 GiB) in ``dest`` (ISCE2 layout, :func:`labkit.sar.synth.write_stack`). Returns ``dest``."""
    from labkit.sar import synth

    return synth.write_stack(dest, "seed", dates=1, size=(lines, samples), progress=False)


class Inputs:
    """The inputs of the groups under ``root`` (default ``data/``), each built on first use."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        from labkit.paths import data_dir

        self.root = Path(root) if root is not None else data_dir()

    def _preset(self, name: str, jobs: int = 1) -> Path:
        from labkit.prep import ensure_tiles

        return ensure_tiles(name, root=self.root, jobs=jobs, progress=False)

    @functools.cached_property
    def tiles2048(self) -> Path:
        """24 random 2048×2048 float32 tiles (groups process, prefetch)."""
        return make_tiles(self.root / "perf" / "tiles_2048x2048")

    @functools.cached_property
    def tiles1024(self) -> Path:
        """12 random 1024×1024 float32 tiles, no looks tag (group filter)."""
        return make_tiles(self.root / "perf" / "tiles_1024x1024", n_dates=12, side=1024)

    @functools.cached_property
    def seed(self) -> Path:
        """The seed preset's tiles (group parallel)."""
        return self._preset("seed")

    @functools.cached_property
    def dates24(self) -> Path:
        """The dates24 preset's tiles (group parallel)."""
        return self._preset("dates24", jobs=os.cpu_count() or 1)

    @functools.cached_property
    def tiny(self) -> Path:
        """The tiny preset's tiles (group startup)."""
        return self._preset("tiny")

    @functools.cached_property
    def slc(self) -> Path:
        """A folder with one 1 GiB SLC, ISCE2 layout (group prep)."""
        return make_slc(self.root / "perf" / "slc_1gib")


# ----------------------------------------------------------------------------- CSV


def _cell(v: Any) -> str:
    """CSV text of one value (6 significant digits for floats, empty for None)."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_perf_csv(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` (keys ``PERF_COLUMNS``) to ``path``, replacing the rows of the same
    groups already there (the others are kept, in :data:`GROUPS` order). Atomic."""
    groups = {r["group"] for r in rows}
    keep = [r for r in (read_perf_csv(path) if Path(path).is_file() else [])
            if r["group"] not in groups]
    order = {g: i for i, g in enumerate(GROUPS)}
    merged = sorted(keep + list(rows), key=lambda r: order.get(r["group"], len(order)))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=PERF_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in merged:
        w.writerow({k: _cell(r.get(k)) for k in PERF_COLUMNS})
    return write_text_atomic(path, buf.getvalue())


def read_perf_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a perf CSV, numbers parsed (seconds; empty cells are None)."""
    p = Path(path)
    if not p.is_file():
        raise LabError(f"perf CSV {p} does not exist: run `make bench-perf` first")
    with open(p, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if set(PERF_COLUMNS) - set(reader.fieldnames or ()):
            raise LabError(f"{p} is not a perf CSV of this script (columns "
                           f"{', '.join(PERF_COLUMNS)}): move it aside")
        rows = []
        for r in reader:
            row: dict[str, Any] = dict(r)
            for k in ("a_median_s", "b_median_s", "ratio"):
                row[k] = float(r[k]) if r[k] else None
            row["repeats"] = int(r["repeats"]) if r["repeats"] else None
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- run


def _compile_labkit() -> None:
    """Write labkit's bytecode (``__pycache__``) as a regular install does, so that the
    timed processes load it instead of compiling every module (≈20 ms) when the
    environment sets ``PYTHONDONTWRITEBYTECODE``; the libraries' bytecode came with them."""
    import compileall

    import labkit

    compileall.compile_dir(Path(labkit.__file__).parent, quiet=1)


def _measurements(data: Inputs, repeats: int, importtime: Path,
                  say: Callable[[str], None] | None
                  ) -> dict[str, Callable[[], list[dict[str, Any]]]]:
    """What each group runs (its inputs are built when it starts)."""
    return {
        "kernel": lambda: measure_kernel(repeats=repeats, progress=say),
        "process": lambda: measure_process(data.tiles2048, repeats, say),
        "parallel": lambda: measure_parallel(data.dates24, data.seed, repeats, progress=say),
        "prep": lambda: measure_prep(data.slc, repeats, say),
        "startup": lambda: measure_startup(data.tiny, repeats, importtime, say),
        "prefetch": lambda: measure_prefetch(data.tiles2048, repeats, say),
        "filter": lambda: measure_filter(data.tiles1024, repeats, progress=say),
        "memory": lambda: measure_memory(data.tiles1024, repeats, progress=say),
    }


def run_perf(csv_path: str | os.PathLike[str], *, groups: Sequence[str] = DEFAULT_GROUPS,
             repeats: int = 9, root: str | os.PathLike[str] | None = None,
             command: str = "", progress: bool = True) -> list[dict[str, Any]]:
    """Measure ``groups`` and write them to ``csv_path`` (one write per group, so an
    interrupted run keeps what it measured). ``command`` goes in every row.

    Returns
    -------
    list of dict
        The rows (keys ``PERF_COLUMNS``; seconds; ratio = median A / median B).
    """
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        raise LabError(f"unknown groups {', '.join(bad)}: valid are {', '.join(GROUPS)}")
    say = (lambda text: print(f"perf: {text}", file=sys.stderr, flush=True)) \
        if progress else None
    _compile_labkit()
    jobs = _measurements(Inputs(root), repeats, Path(csv_path).with_name("importtime.txt"),
                         say)
    rows: list[dict[str, Any]] = []
    for g in groups:
        if say:
            say(f"group {g}")
        new = [{**r, "command": command} for r in jobs[g]()]
        write_perf_csv(csv_path, new)
        rows += new
    return rows


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of perf rows: group, case, ratio A/B, the medians, the timed
    runs of each, A | B."""
    out = [f"{'group':9} {'case':21} {'A/B':>7}  {'A (s)':>10}  {'B (s)':>10} {'n':>3}  A | B"]
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.3g}"
        a = "" if r["a_median_s"] is None else f"{r['a_median_s']:.4f}"
        b = "" if r["b_median_s"] is None else f"{r['b_median_s']:.4f}"
        out.append(f"{r['group']:9} {r['case']:21} {ratio:>7}  {a:>10}  {b:>10} "
                   f"{r['repeats'] or '':>3}  {r['a_label']} | {r['b_label']}")
    return "\n".join(out)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number ≥ 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The script's command line."""
    p = argparse.ArgumentParser(prog="benchmarks/perf.py", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/perf.csv", help="CSV to write")
    p.add_argument("--repeat", type=_positive_int, default=9, help="timed runs of A and B")
    p.add_argument("--groups", default=",".join(DEFAULT_GROUPS),
                   help=f"which groups, e.g. kernel,prep (default: {','.join(DEFAULT_GROUPS)}; "
                        f"all: {','.join(GROUPS)})")
    p.add_argument("--root", default=None, help="data folder (default: data)")
    return p


def command_line(argv: Sequence[str]) -> str:
    """How this run was started, as one shell line (paths relative to the current folder
    where they are under it)."""
    def rel(path: str) -> str:
        try:
            inside = Path(os.path.abspath(path)).is_relative_to(Path.cwd())
            return os.path.relpath(path) if inside else path
        except ValueError:
            return path

    return shlex.join([rel(sys.executable), rel(str(HERE / "perf.py")), *argv])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; exit status 0, or 2 with a one-line message."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    groups = [g.strip() for g in str(args.groups).split(",") if g.strip()]
    command = command_line(argv)
    try:
        rows = run_perf(args.out, groups=groups, repeats=args.repeat, root=args.root,
                        command=command)
    except LabError as exc:
        print(f"perf: error: {exc}", file=sys.stderr)
        return 2
    print(f"{command}\nratio = median A / median B; A and B alternated, n timed runs each\n")
    print(format_rows(rows))
    print(f"\nrows in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
