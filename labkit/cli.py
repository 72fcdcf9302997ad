"""Command line: ``labkit synth|prep|data|run|verify|info|bench|plot|report``.

Bad input prints one line, ``labkit: error: <what was wrong; what is valid>``, and exits
with code 2; Ctrl-C exits with 130 after cleaning up. Heavy modules are imported inside
the handlers so that ``labkit run`` starts fast.
"""

from __future__ import annotations

import os
import signal
import sys


def _rank0() -> bool:
    """False on the ranks other than 0 under ``mpiexec`` (they print nothing)."""
    from labkit.backends.mpi._world import world_rank

    return world_rank() == 0


_early: list[int] = []  # SIGINTs that came while the CLI was importing


def _interrupted_early(signum: int, frame: object) -> None:
    """SIGINT while the CLI is still importing: noted; :func:`main` raises it at once."""
    _early.append(signum)


def _is_entry() -> bool:
    """True when this process is the ``labkit`` console script or ``python -m labkit``."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        return spec.name == "labkit.__main__"
    name = os.path.basename(getattr(main, "__file__", None) or "")
    return name.removesuffix(".exe") == "labkit"


# A Ctrl-C during the imports below would print an import traceback: as the program's
# entry, note it and let main() stop there (the interpreter's own start-up, before any of
# this, is out of reach: a SIGINT there ends the process by the signal).
if _is_entry() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_early)

import argparse  # noqa: E402
import atexit  # noqa: E402
import contextlib  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import NoReturn  # noqa: E402

from labkit import interrupts  # noqa: E402
from labkit.backends.registry import BACKENDS  # noqa: E402
from labkit.errors import Interrupted, LabError  # noqa: E402

__all__ = ["build_parser", "main", "run"]



def _say(line: str) -> None:
    """Print one line on stderr; under ``mpiexec`` only rank 0 does (every rank meets the
    same error, see :mod:`labkit.backends.mpi`, so the user reads it once).
    """
    if _rank0():  # line and newline in one write: under mpiexec other ranks write too
        sys.stderr.write(f"{line}\n")
        sys.stderr.flush()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        _say(f"labkit: error: {message} (see `{self.prog} --help`)")
        self.exit(2)


def positive_int(text: str) -> int:
    """Argparse type: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not ≥ 1")
    return value


def non_negative_int(text: str) -> int:
    """Argparse type: an integer ≥ 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not ≥ 0")
    return value


def crop_spec(text: str) -> tuple[int, int, int, int]:
    """Argparse type: ``W,H,R0,C0`` in multilooked pixels (W, H ≥ 1; R0, C0 ≥ 0)."""
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        w, h, r0, c0 = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"crop {text!r} must be four whole numbers W,H,R0,C0 (e.g. 1024,1024,0,0)"
        ) from None
    if w < 1 or h < 1 or r0 < 0 or c0 < 0:
        raise argparse.ArgumentTypeError(
            f"crop {text!r}: width and height must be ≥ 1, first row/column ≥ 0"
        )
    return w, h, r0, c0


def looks_spec(text: str) -> tuple[int, int]:
    """Argparse type: ``N`` or ``AZxRG`` looks (azimuth × range), each ≥ 1."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"looks {text!r} must be N or AZxRG, e.g. 4 or 2x8"
        ) from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"looks {text!r} must be ≥ 1 (N or AZxRG, e.g. 4 or 2x8)")
    return values[0], values[1]


def filter_spec(text: str) -> object:
    """Argparse type: a filter spec, ``none``, ``lee:K`` or ``lee:K:ENL``
    (:func:`labkit.filters.parse_filter`).
    """
    from labkit.filters import parse_filter

    try:
        return parse_filter(text)
    except LabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def size_spec(text: str) -> tuple[int, int]:
    """Argparse type: ``LINESxSAMPLES`` (each ≥ 1)."""
    try:
        lines, samples = (int(p) for p in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size {text!r} must be LINESxSAMPLES, e.g. 4096x4096"
        ) from None
    if lines < 1 or samples < 1:
        raise argparse.ArgumentTypeError(f"size {text!r}: lines and samples must be ≥ 1")
    return lines, samples


def build_parser() -> argparse.ArgumentParser:
    """The ``labkit`` argument parser (one sub-command per lab step)."""
    p = _Parser(prog="labkit", description="SAR HPC Lab command line.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("synth", help="write a synthetic SAOCOM-like SLC stack (ISCE2 layout)")
    s.add_argument("dest", help="destination folder (DATE/DATE.slc + .vrt + .xml)")
    s.add_argument("--preset", default="tiny", help="tiny | seed | dates24 | large")
    s.add_argument("--dates", type=positive_int, help="number of dates (overrides the preset)")
    s.add_argument("--size", type=size_spec, help="LINESxSAMPLES (overrides the preset)")
    s.add_argument("--seed", type=non_negative_int, default=None, help="random seed")

    s = sub.add_parser("prep", help="SLCs -> |S|^2 -> multilook -> crop -> float32 GeoTIFF tiles")
    s.add_argument("src", help="folder of *.slc.vrt, an ISCE2 tree, raw *.slc + .xml, ...")
    s.add_argument("dest", help="output folder for YYYYMMDD_int_crop.tif")
    s.add_argument("--crop", type=crop_spec, required=True, help="W,H,R0,C0 (multilooked px)")
    s.add_argument("--looks", type=looks_spec, default=(4, 4), help="N or AZxRG (default 4)")
    s.add_argument("--jobs", type=positive_int, default=1, help="dates prepared in parallel")

    s = sub.add_parser("data", help="synthesize a preset (if missing) and prep its tiles")
    s.add_argument("--preset", default="seed", help="tiny | seed | dates24 | large")
    s.add_argument("--root", default="data", help="data folder (default: data)")
    s.add_argument("--jobs", type=positive_int, default=1, help="dates prepared in parallel")

    s = sub.add_parser("run", help="temporal mean and std of a tile stack with one backend")
    s.add_argument("backend", help=" | ".join(BACKENDS))
    s.add_argument("src", help="folder of YYYYMMDD_int_crop.tif tiles")
    s.add_argument("mean", help="output mean GeoTIFF")
    s.add_argument("std", help="output std GeoTIFF")
    s.add_argument("--workers", type=positive_int, default=None, help="processes/threads/ranks")
    strategies = "; ".join(f"{n}: " + " | ".join(v[1]) for n, v in BACKENDS.items() if v[1])
    splits = "; ".join(f"{n}: " + " | ".join(v[2]) for n, v in BACKENDS.items() if v[2])
    s.add_argument("--strategy", help=strategies)
    s.add_argument("--split", help=splits)
    s.add_argument("--scheduler", help="dask: threads (default) | processes | distributed")
    s.add_argument("--block-rows", type=positive_int, default=None, help="rows per block")
    s.add_argument("--ddof", type=non_negative_int, default=0, help="0 population, 1 sample")
    s.add_argument("--min-count", type=positive_int, default=None, help="NaN-aware: min dates")
    s.add_argument("--filter", type=filter_spec, default=None,
                   help="Lee speckle filter on every date first: lee:K or lee:K:ENL (K odd, "
                        "3..31; ENL default: the tiles' looks, e.g. 16 for 4x4)")
    s.add_argument("--quiet", action="store_true", help="print nothing on success")

    s = sub.add_parser("verify", help="compare two GeoTIFFs: max |Δ|; exit 1 above tolerance")
    s.add_argument("a")
    s.add_argument("b")
    s.add_argument("--tol", type=float, default=0.0, help="max |Δ| allowed (default 0)")
    s.add_argument("--rtol", type=float, default=None, help="relative tolerance instead")

    sub.add_parser("info", help="cores, memory, MPI library and versions")

    s = sub.add_parser("bench", help="time backends at several worker counts -> CSV")
    s.add_argument("src", help="folder of tiles")
    s.add_argument("--backends", default="sequential,multiprocessing,mem,threads,mpi")
    s.add_argument("--workers", default="1,2")
    s.add_argument("--repeat", type=positive_int, default=3)
    s.add_argument("--warmup", type=non_negative_int, default=1)
    s.add_argument("--csv", default="benchmarks/resultados.csv")
    s.add_argument("--process", action="store_true", help="also time whole processes")

    s = sub.add_parser("plot", help="figures from a benchmark CSV")
    s.add_argument("csv")
    s.add_argument("--out", default="figures")
    s.add_argument("--maps-tiles", help="tile folder: also write maps.png (mean, std, CV)")
    s.add_argument("--maps-slc", help="SLC stack folder: PS candidates vs truth in maps.png")

    s = sub.add_parser("report", help="execute 06_analysis and export the informe to HTML")
    s.add_argument("--csv", default="benchmarks/resultados.csv")
    s.add_argument("--lang", choices=("en", "es"), default="en")
    s.add_argument("--out", default="reports/informe.html")
    s.add_argument("--full", action="store_true",
                   help="whole pipeline: data, prep, bench, notebooks, informe (en + es)")
    s.add_argument("--preset", default="seed", help="--full: synthetic preset (tiny | seed)")
    s.add_argument("--quick", action="store_true", help="--full: fewer repeats and sizes")
    s.add_argument("--data", help="--full: a real SLC stack instead of the synthetic preset")
    return p


# -- command handlers: each imports what it needs, so `labkit run` starts fast ---------------


def _synth(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from labkit.sar import synth

    t0 = time.perf_counter()
    try:
        summary = synth.synthesize(args.dest, args.preset, dates=args.dates, size=args.size,
                                   seed=args.seed, progress=sys.stderr.isatty())
    except KeyboardInterrupt:
        if (Path(args.dest) / synth.PENDING).is_file():
            raise Interrupted("synth stopped by Ctrl-C; finished dates kept, no partial "
                              "date: the same command resumes") from None
        raise Interrupted("synth stopped by Ctrl-C, nothing written") from None
    if summary.wrote:
        print(f"wrote {summary.dest} ({summary.description}) in "
              f"{time.perf_counter() - t0:.1f} s")
    else:
        print(f"{summary.dest} already holds this stack ({summary.description}): nothing to do")
    return 0


def _prep(args: argparse.Namespace) -> int:
    from labkit.prep import describe, empty_warning, prep_stack

    summary = prep_stack(args.src, args.dest, args.crop, args.looks, jobs=args.jobs,
                         progress=sys.stderr.isatty())
    print(describe(summary, args.dest))
    warning = empty_warning(summary)
    if warning:
        print(warning, file=sys.stderr)
    return 0


def _data(args: argparse.Namespace) -> int:
    from labkit.prep import ensure_tiles

    print(ensure_tiles(args.preset, root=args.root, jobs=args.jobs,
                       progress=sys.stderr.isatty()))
    return 0


def _run(args: argparse.Namespace) -> int:
    from labkit.backends import default_workers, run, summary_line
    from labkit.backends.registry import resolve
    from labkit.io import open_stack
    from labkit.stats import one_shot_kernel

    backend, strategy, split = resolve(args.backend, args.strategy, args.split)
    stack = open_stack(args.src)
    kernel = one_shot_kernel(stack.nbytes)  # NumPy unless the stack repays Numba (same bits)
    result = run(backend, stack, args.mean, args.std,
                 workers=args.workers or default_workers(backend), strategy=strategy,
                 split=split, block_rows=args.block_rows, ddof=args.ddof,
                 min_count=args.min_count, kernel=kernel, filter=args.filter,
                 scheduler=args.scheduler)
    if result.meta.get("rank", 0) == 0 and not args.quiet:
        print(summary_line(result, (args.mean, args.std)), flush=True)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from labkit.compare import compare_files

    comparison = compare_files(args.a, args.b, args.tol, args.rtol or 0.0)
    print(comparison.line())
    return 0 if comparison.ok else 1


def _info(args: argparse.Namespace) -> int:
    from labkit.sysinfo import system_info

    info = system_info()
    width = max(map(len, info))
    for k, v in info.items():
        if k == "threads_env":
            v = " ".join(p for p in v.split(";") if not p.endswith("=")) or "(none set)"
        print(f"{k:<{width}}  {v if v != '' else '-'}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from labkit.bench import format_table, run_bench, summarize

    rows = run_bench(args.src, backends=args.backends, workers=args.workers,
                     repeat=args.repeat, warmup=args.warmup, csv_path=args.csv,
                     process=args.process, label="")
    print(format_table(summarize(rows)))
    print(f"rows appended to {args.csv}; course table in "
          f"{Path(args.csv).with_name('tiempos.tsv')}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from labkit.plots import plot_all

    if args.maps_slc and not args.maps_tiles:
        raise LabError("--maps-slc needs --maps-tiles (the intensity tiles of that stack)")
    for path in plot_all(args.csv, args.out, maps_tiles=args.maps_tiles,
                         maps_slc=args.maps_slc):
        print(path)
    return 0


def _report(args: argparse.Namespace) -> int:
    from labkit.config import ENV_REPORT_DATA
    from labkit.report import build_report, find_data, full_report

    if args.full:
        data = args.data or os.environ.get(ENV_REPORT_DATA) or None
        res = full_report(args.preset, quick=args.quick, data=data)
        print(f"informe: {res['reports'][0]}")
        print(f"informe (es): {res['reports'][1]}")
        print(f"benchmarks: {res['csv']}; figures: {res['figures']}; executed notebooks: "
              f"{res['reports'][0].parent / 'notebooks'} ({res['seconds']:.3g} s)")
        return 0
    tiles, slc = find_data(args.preset) if args.preset else (None, None)
    out = build_report(args.csv, lang=args.lang, out=args.out, preset=args.preset,
                       tiles=tiles, slc=slc)
    print(f"informe: {out}")
    return 0


HANDLERS = {"synth": _synth, "prep": _prep, "data": _data, "run": _run, "verify": _verify,
            "info": _info, "bench": _bench, "plot": _plot, "report": _report}


def _dispatch(args: argparse.Namespace) -> int:
    return int(HANDLERS[args.command](args) or 0)


def _interrupted(why: str) -> int:
    """Report an interruption (one line), end the MPI world if this is a rank; 130."""
    interrupts.reported()
    _say(f"labkit: interrupted: {why}")
    interrupts.stop_mpi_world(130)
    return 130


# what a Ctrl-C left behind, by command (when the command does not say it itself)
STOPPED = {
    "run": "stopped by Ctrl-C, no output written",
    "prep": "stopped by Ctrl-C; finished tiles kept, no partial files",
    "data": "stopped by Ctrl-C; finished dates and tiles kept, no partial files",
    "bench": "stopped by Ctrl-C; the rows of the rounds already timed are in the CSV",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``labkit`` console script; returns the exit code."""
    stopped = "stopped by Ctrl-C, no output written"  # until a command starts
    try:
        if signal.getsignal(signal.SIGINT) is _interrupted_early:  # the entry: take over
            interrupts.take_sigint()
            if _early:
                raise KeyboardInterrupt
        args = build_parser().parse_args(argv)
        stopped = STOPPED.get(args.command, "stopped by Ctrl-C")
        return _dispatch(args)
    except Interrupted as exc:
        return _interrupted(str(exc))
    except KeyboardInterrupt:
        return _interrupted(stopped)
    except LabError as exc:
        if interrupts.taken():  # a failure of the clean-up after a Ctrl-C
            return _interrupted(stopped)
        _say(f"labkit: error: {exc}")
        return 2
    except Exception:
        # after a Ctrl-C: code that turned the KeyboardInterrupt into another error (an
        # extension module's import fails with ImportError when it is cut short)
        if interrupts.taken():
            return _interrupted(stopped)
        raise


def _stop_helpers() -> None:
    """Stop the multiprocessing helpers this process started (the forkserver, the resource
    tracker) and reap them, so that no process of the command, not even a zombie, outlives
    it. The forkserver has nothing left to do (the pools are closed): it is killed. The
    resource tracker is asked to stop: it first unlinks anything left registered. Both at
    once (≈10 ms).
    """
    import threading

    tracker = sys.modules.get("multiprocessing.resource_tracker")
    tracker = getattr(tracker, "_resource_tracker", None)
    stopping = None
    if getattr(tracker, "_pid", None) is not None:
        def stop_tracker() -> None:
            with contextlib.suppress(Exception):
                tracker._stop()  # type: ignore[union-attr]  # closes its pipe, waits for it

        stopping = threading.Thread(target=stop_tracker)
        stopping.start()
    forkserver = sys.modules.get("multiprocessing.forkserver")
    server = getattr(forkserver, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    if pid is not None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            server._stop()  # type: ignore[union-attr]  # closes its pipe, waits for it
    if stopping is not None:
        stopping.join()


def run() -> None:
    """The ``labkit`` console script and ``python -m labkit``: :func:`main`, then exit.

    After a command has returned, its outputs are closed and renamed into place; what is
    left of a normal exit is the interpreter's teardown (module dictionaries, GDAL's
    driver manager), ≈30 ms of a 0.3 s ``labkit prep``. So the exit handlers run as usual
    (pools closed, shared memory unlinked, progress bars closed), the multiprocessing
    helpers are stopped and reaped, the streams are flushed, and the process ends with
    ``os._exit``. Under MPI the normal exit is kept: mpi4py finalizes MPI in the teardown,
    and ``mpiexec`` waits for it. Once the exit code is known SIGINT is ignored.
    """
    try:
        code = main()
    except KeyboardInterrupt:  # Ctrl-C just as main() was returning or reporting an error
        code = _interrupted("stopped by Ctrl-C")
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # the exit code is known
        interrupts.reported()
    if "mpi4py" in sys.modules:
        _stop_helpers()
        raise SystemExit(code)
    atexit._run_exitfuncs()
    _stop_helpers()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. stdout was a pipe closed early: let Python report it as usual
        raise SystemExit(code) from None
    os._exit(code)
