"""Find the SLC stack under a folder: every folder below it is searched, one file is kept
per date, and a tree that holds several stacks is refused rather than guessed.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from labkit.config import TILE_SUFFIX
from labkit.errors import LabError
from labkit.io import date_from_name
from labkit.sar.slc import (
    ENVI_RANK,
    RAW_SUFFIXES,
    SUFFIX_RANK,
    VRT_SUFFIXES,
    envi_data,
    slc_suffix,
    source_file,
)

__all__ = ["SLC_PATTERNS", "find_slcs"]

# SLC files searched for in SRC and every folder under it, best first for one date: ISCE2
# VRT (stripmapStack .slc.vrt, topsStack .slc.full.vrt), raw ISCE2 SLC (+ .xml, GDAL's
# ISCE driver, or an ENVI .hdr), ENVI data named by its .hdr, any GDAL VRT or GeoTIFF
SLC_PATTERNS = ("*.slc.vrt", "*.slc", "*.slc.full.vrt", "*.slc.full", "*.vrt", "*.tif",
                "*.tiff", "ENVI data beside a *.hdr")

# ISCE2 products that are not SLCs (interferograms, coherence, offsets, masks ...), and
# date pairs (20200101_20200113): skipped when a generic *.vrt/*.tif/ENVI name has them
_NOT_SLC = (".int", ".unw", ".cor", ".amp", ".off", ".rdr", ".msk", ".conncomp", ".ccp",
            ".cov", ".flat", ".filt")

_PAIR_RE = re.compile(r"(?<!\d)\d{8}[_-]\d{8}(?!\d)")

_MAX_DEPTH = 8  # folders below SRC that are searched (topsStack's merged/SLC/DATE is 3)


def _walk(root: Path) -> Iterator[Path]:  # the files under root, hidden folders skipped
    seen: set[tuple[int, int]] = set()
    todo = [(root, 0)]
    while todo:
        folder, depth = todo.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise LabError(f"SLC folder {folder} is not readable ({exc.strerror}): fix its "
                           f"permissions or move it out of {root}") from None
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir()
            except OSError:
                is_dir = False
            if not is_dir:
                yield Path(e.path)
                continue
            if depth >= _MAX_DEPTH:
                continue
            st = e.stat()
            if (st.st_dev, st.st_ino) not in seen:  # symlinked folders: no loops
                seen.add((st.st_dev, st.st_ino))
                todo.append((Path(e.path), depth + 1))


def _candidate(f: Path) -> tuple[Path, int] | None:
    """``(SLC file, rank)`` if ``f`` names an SLC (an ENVI ``.hdr`` names its data), else
    None. Undated names are returned too (the caller sorts them out).
    """
    name = f.name
    low = name.lower()
    if name.endswith(TILE_SUFFIX):  # prep's own outputs are never input
        return None
    if low.endswith(".hdr"):
        data = envi_data(f)
        if data is None or slc_suffix(data.name) in RAW_SUFFIXES:  # raw .slc: found by its own name
            return None
        generic = True
        f, rank = data, ENVI_RANK
    else:
        suffix = slc_suffix(name)
        if suffix is None:
            return None
        if not f.is_file() and not f.is_symlink():
            return None
        rank = SUFFIX_RANK[suffix]
        generic = rank >= 2
    if generic:
        base = f.name.lower()
        for ext in (".vrt", ".tif", ".tiff"):
            base = base.removesuffix(ext)
        if base.endswith(_NOT_SLC) or _PAIR_RE.search(f.name):
            return None
    return f, rank


def _stack_folder(f: Path, date: str, root: Path) -> Path:
    """The folder that holds a stack: the parent of ``DATE/`` folders (ISCE2's
    ``Coarse/DATE/DATE.slc``), else the folder of the file (a flat folder).
    """
    parent = f.parent
    if parent != root:
        try:
            if date_from_name(parent) == date:
                return parent.parent
        except LabError:
            pass
    return parent


def find_slcs(src: str | os.PathLike[str]) -> list[Path]:
    """The SLC files of a stack, one per date, sorted by date.

    ``src`` and every folder under it are searched (hidden folders skipped), so ``src``
    may be a flat folder of ``*.slc.vrt`` (symlinks allowed, as the course's
    ``SLC_FINE_LOCAL``), an ISCE2 stripmapStack ``coregSLC/Coarse`` (``DATE/DATE.slc`` +
    ``.slc.vrt``, ``.slc.xml``), a topsStack ``merged/SLC`` (``DATE/DATE.slc.full``), the
    root of such a project, raw ``*.slc`` with their ``.xml``, ENVI files with their
    ``.hdr``, or any GDAL raster ``*.vrt``/``*.tif``/``*.tiff`` whose name holds a date.
    The date is the first ``YYYYMMDD`` in the file name. When a date has both
    ``DATE.slc.vrt`` and ``DATE.slc``, the VRT is used. Files without a date (``burst_01
    .slc.vrt``, ``truth/sigma0.tif``), ISCE2 products that are not SLCs (``*.int``,
    ``*.cor`` ..., date pairs) and prep's own ``*_int_crop.tif`` tiles are ignored.

    A stack is the set of SLCs in one folder, or in the ``DATE/`` folders of one folder.
    When ``src`` holds more than one (stripmapStack's ``coregSLC/Coarse`` and
    ``coregSLC/Fine``, or the uncoregistered ``SLC/``), nothing is guessed: the error
    lists them with their date counts.

    Raises
    ------
    LabError
        ``src`` missing, not a folder or empty; no SLCs found (naming the patterns
        tried); several stacks under ``src``; two different files for one date.
    """
    root = Path(src)
    if not root.exists():
        raise LabError(f"SLC folder {root} does not exist: give the folder that holds the SLCs")
    if not root.is_dir():
        raise LabError(f"{root} is a file: give the folder that holds the SLCs")
    if not os.access(root, os.R_OK | os.X_OK):
        raise LabError(f"SLC folder {root} is not readable")
    if not any(root.iterdir()):
        raise LabError(f"SLC folder {root} is empty: expected *.slc.vrt or DATE/DATE.slc files")

    # stack folder -> date -> {resolved file: (rank, path as found)}
    stacks: dict[Path, dict[str, dict[Path, tuple[int, Path]]]] = {}
    undated: list[Path] = []
    for entry in _walk(root):
        cand = _candidate(entry)
        if cand is None:
            continue
        f, rank = cand
        try:
            date = date_from_name(f)
        except LabError:
            if rank < 2:
                undated.append(f)
            continue
        key = f.resolve() if f.exists() else f
        dates = stacks.setdefault(_stack_folder(f, date, root), {})
        dates.setdefault(date, {}).setdefault(key, (rank, f))

    # the files a dated VRT reads (its raw .slc, the tiles of a mosaic) are part of it
    read_by_vrt = {src.resolve() for dates in stacks.values() for files in dates.values()
                   for _, f in files.values() if slc_suffix(f.name) in VRT_SUFFIXES
                   for src in _vrt_sources(f)}
    for folder in list(stacks):
        dates = stacks[folder]
        for date in list(dates):
            dates[date] = {k: v for k, v in dates[date].items() if k not in read_by_vrt}
            if not dates[date]:
                del dates[date]
        if not dates:
            del stacks[folder]

    if not stacks:
        tried = ", ".join(SLC_PATTERNS)
        hint = ""
        if undated:
            hint = (f"; {len(undated)} SLC file(s) have no date in the name, e.g. "
                    f"{undated[0].relative_to(root)}: name them DATE.slc... or pass the "
                    "folder of the coregistered, dated SLCs")
        raise LabError(
            f"no SLCs in {root}: tried {tried} in it and its sub-folders "
            f"(file names must hold a YYYYMMDD date){hint}"
        )
    if len(stacks) > 1:
        listed = ", ".join(
            f"{_rel(folder, root)} ({len(dates)} date{'s' if len(dates) != 1 else ''})"
            for folder, dates in sorted(stacks.items())
        )
        raise LabError(
            f"{root} holds {len(stacks)} SLC stacks: {listed}; pass one of these folders as "
            "SRC (ISCE2's coregSLC/Coarse and Fine hold the secondary dates only)"
        )

    (found,) = stacks.values()
    out = []
    for date in sorted(found):
        files = [f for _, f in sorted(found[date].values(), key=lambda rf: (rf[0], rf[1]))]
        # DATE.slc beside DATE.slc.vrt (or .slc.full beside .slc.full.vrt) are one SLC
        best = files[0]
        others = [
            f for f in files[1:]
            if not (f.parent == best.parent and f.name.lower() + ".vrt" == best.name.lower())
        ]
        if others:
            names = ", ".join(str(f) for f in [best, *others])
            raise LabError(f"two SLCs for date {date}: {names}; keep one file per date")
        out.append(best)
    return out


def _vrt_sources(vrt: Path) -> list[Path]:
    """The local files a VRT reads (nothing if it cannot be parsed: reported later)."""
    try:
        root = ET.parse(vrt).getroot()
    except (ET.ParseError, OSError):
        return []
    found = (source_file(vrt, e) for e in root.iter("SourceFilename"))
    return [f for f in found if f is not None and f.exists()]


def _rel(folder: Path, root: Path) -> str:
    rel = os.path.relpath(folder, root)
    return str(root) if rel == "." else rel
