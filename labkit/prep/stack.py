"""Prep of a whole stack: find and validate every SLC first (nothing is written before),
then prep the dates in this process or in a process pool, keeping finished tiles on a
fault and warning about tiles that came out entirely NaN.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labkit import config
from labkit.errors import Interrupted, LabError
from labkit.prep.date import check_crop, prep_one, tile_tags
from labkit.prep.kernel import Looks, check_looks
from labkit.prep.readers import Crop
from labkit.sar.discovery import find_slcs
from labkit.sar.slc import SlcInfo, open_slc_checked

__all__ = ["PrepSummary", "describe", "empty_warning", "prep_stack"]


@dataclass
class PrepSummary:
    """What :func:`prep_stack` did.

    Attributes
    ----------
    outputs : list of Path
        One tile per date, sorted by date (including tiles already up to date).
    n_dates : int
        Dates in the stack.
    bytes_read : int
        SLC bytes read (dates skipped as up to date read nothing).
    seconds : float
        Wall time of the processing (after validation), s.
    mb_per_s : float
        SLC read throughput, MB/s (10⁶ bytes per second).
    skipped : int
        Dates whose tile was already up to date (``overwrite=False``).
    empty : list of str
        Dates whose tile came out entirely NaN (an all-zero SLC, or a crop over a
        zero-filled edge): valid, but worth a warning.
    """

    outputs: list[Path] = field(default_factory=list)
    n_dates: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    mb_per_s: float = 0.0
    skipped: int = 0
    empty: list[str] = field(default_factory=list)


def _check_dest(dest: Path) -> None:
    if dest.exists():
        if not dest.is_dir():
            raise LabError(f"output {dest} is a file: give a folder for the tiles")
        if not os.access(dest, os.W_OK | os.X_OK):
            raise LabError(f"output folder {dest} is not writable")
        return
    parent = dest.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise LabError(f"cannot create output folder {dest}: {parent} {what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LabError(f"cannot create output folder {dest}: {parent} is not writable")


def _is_current(out: Path, info: SlcInfo, crop: Crop, looks: Looks) -> bool:
    """True if ``out`` is a float32 tile of this crop and looks (its tags say so), made
    from this SLC and newer than it.
    """
    import rasterio

    if not out.is_file() or out.stat().st_mtime < info.mtime:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(out) as ds:
                same = (ds.count, ds.width, ds.height, ds.dtypes[0]) == (
                    1, crop[0], crop[1], "float32")
                tags = ds.tags()
    except rasterio.errors.RasterioIOError:
        return False
    want = tile_tags(info.path, crop, looks)
    return same and all(tags.get(k) == v for k, v in want.items())


def _remove_temps(dest: Path, outs: Sequence[Path]) -> None:
    """Remove temporaries a killed worker could not clean (``.<name>.*.tmp``)."""
    for out in outs:
        for tmp in dest.glob(f".{out.name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _kept(done: int, n: int) -> str:
    return f"after {done} of {n} dates; finished tiles kept, no partial files"


def _run(tasks: list[tuple[SlcInfo, Path]], crop: Crop, looks: Looks, jobs: int,
         bar: object, empty: list[str]) -> int:
    """Prep every (SLC, output) task, in-process or in a process pool; bytes read. The
    dates whose tiles came out all NaN are appended to ``empty``.
    """
    total = 0
    done = 0
    if jobs <= 1 or len(tasks) <= 1:
        try:
            for info, out in tasks:
                bar.set_postfix_str(info.date, refresh=False)  # type: ignore[attr-defined]
                nbytes, valid = prep_one(info, out, crop, looks, config.PREP_THREADS)
                if not valid:
                    empty.append(info.date)
                total += nbytes
                done += 1
                bar.update(nbytes)  # type: ignore[attr-defined]
        except KeyboardInterrupt:
            raise Interrupted("prep stopped by Ctrl-C " + _kept(done, len(tasks))) from None
        return total

    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    from labkit.backends import session

    try:
        # forkserver workers, BLAS/OpenMP pinned to 1 thread, SIGINT ignored in workers;
        # on any error or Ctrl-C the session terminates the workers before re-raising
        with session(None, "process", min(jobs, len(tasks))) as run:
            futures = {run.submit(prep_one, info, out, crop, looks): info
                       for info, out in tasks}
            for fut in as_completed(futures):
                try:
                    nbytes, valid = fut.result()
                except BrokenProcessPool:
                    raise LabError("a prep worker died (killed or out of memory?) "
                                   + _kept(done, len(tasks)) + "; retry with fewer --jobs"
                                   ) from None
                if not valid:
                    empty.append(futures[fut].date)
                total += nbytes
                done += 1
                bar.set_postfix_str(futures[fut].date, refresh=False)  # type: ignore[attr-defined]
                bar.update(nbytes)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        _remove_temps(tasks[0][1].parent, [out for _, out in tasks])
        raise Interrupted("prep stopped by Ctrl-C " + _kept(done, len(tasks))) from None
    except BaseException:
        _remove_temps(tasks[0][1].parent, [out for _, out in tasks])
        raise
    return total


class _NoBar:
    """Stands in for a tqdm bar when progress is off (tqdm costs ≈ 40 ms to import)."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float = 1) -> None:
        return None

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        return None


def _progress_bar(total: int, progress: bool) -> contextlib.AbstractContextManager:
    """A tqdm bar of SLC bytes read on stderr, or a silent stand-in."""
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1000, desc="prep",
                file=sys.stderr, leave=False)


def prep_stack(
    src: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    crop: Sequence[int],
    looks: int | Sequence[int] = (4, 4),
    jobs: int = 1,
    progress: bool = True,
    *,
    overwrite: bool = True,
) -> PrepSummary:
    """Prep every date of an SLC stack into ``dest/<YYYYMMDD>_int_crop.tif``.

    Everything is validated before anything is written: the SLCs (found with
    :func:`labkit.sar.discovery.find_slcs`, checked with :func:`labkit.sar.slc.open_slc_checked`),
    equal sizes across dates, the crop against the image, the looks and ``dest``.

    Parameters
    ----------
    src : path
        SLC folder: flat ``*.slc.vrt`` (symlinks allowed), ISCE2 tree, raw ``*.slc`` +
        ``.xml``, or complex GeoTIFFs; one file per date.
    dest : path
        Output folder; created if its parent exists and is writable.
    crop : (W, H, R0, C0)
        Width, height, first row, first column, in multilooked pixels.
    looks : int or (int, int), default (4, 4)
        Azimuth × range looks; (1, 1) = no multilook.
    jobs : int, default 1
        Dates prepared in parallel (processes; BLAS/OpenMP pinned to 1 thread each).
    progress : bool, default True
        Show a tqdm progress bar (bytes of SLC read, with the rate).
    overwrite : bool, default True
        False: keep tiles that are already up to date (same crop, looks and SLC name in
        their tags, newer than the SLC).

    Returns
    -------
    PrepSummary

    Raises
    ------
    LabError
        Bad input (one line: what is wrong and what is valid); nothing is written.
    Interrupted
        Ctrl-C: finished dates are kept, no partial files remain.
    """
    lk = check_looks(looks)
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise LabError(f"jobs {jobs!r} must be a whole number ≥ 1")
    infos = [open_slc_checked(p) for p in find_slcs(src)]
    sizes: dict[tuple[int, int], list[str]] = {}
    for info in infos:
        sizes.setdefault((info.lines, info.samples), []).append(info.path.name)
    if len(sizes) > 1:
        desc = "; ".join(f"{li}x{sa}: {', '.join(n[:3])}" + (", ..." if len(n) > 3 else "")
                         for (li, sa), n in sizes.items())
        raise LabError(f"SLCs differ in size (lines x samples) — {desc}; all dates must match")
    c = check_crop(crop, lk, infos[0].lines, infos[0].samples)
    out_dir = Path(dest)
    _check_dest(out_dir)

    outputs = [out_dir / f"{info.date}{config.TILE_SUFFIX}" for info in infos]
    tasks = [(info, out) for info, out in zip(infos, outputs, strict=True)
             if overwrite or not _is_current(out, info, c, lk)]
    summary = PrepSummary(outputs=outputs, n_dates=len(infos),
                          skipped=len(infos) - len(tasks))
    if not tasks:
        return summary
    created = not out_dir.exists()
    try:
        out_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise LabError(f"cannot create output folder {out_dir}: {exc.strerror}") from None

    need = sum(c[0] * lk[1] * c[1] * lk[0] * info.itemsize for info, _ in tasks)
    t0 = time.perf_counter()
    try:
        with _progress_bar(need, progress) as bar:
            summary.bytes_read = _run(tasks, c, lk, int(jobs), bar, summary.empty)
    except BaseException:
        if created:  # a folder this run made and left empty goes too
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    summary.empty.sort()
    summary.seconds = time.perf_counter() - t0
    if summary.seconds > 0:
        summary.mb_per_s = summary.bytes_read / 1e6 / summary.seconds
    return summary


def empty_warning(summary: PrepSummary) -> str | None:
    """One warning line naming the dates whose tiles are entirely NaN, or None."""
    if not summary.empty:
        return None
    n = len(summary.empty)
    dates = ", ".join(summary.empty)
    return (f"labkit: warning: the tile{'s' if n > 1 else ''} of {dates} {'are' if n > 1 else 'is'}"
            " entirely NaN (no valid sample in the crop: an all-zero SLC, or a crop over a "
            "zero-filled edge?); choose another --crop or check the SLC")


def describe(summary: PrepSummary, dest: str | os.PathLike[str]) -> str:
    """One line: what prep wrote and how fast it read."""
    made = summary.n_dates - summary.skipped
    line = f"prep: {made} of {summary.n_dates} dates -> {dest}"
    if summary.skipped:
        line += f" ({summary.skipped} already up to date)"
    if made:
        line += (f"; read {summary.bytes_read / 1e6:.1f} MB of SLC in {summary.seconds:.2f} s "
                 f"= {summary.mb_per_s:.0f} MB/s")
    return line
