"""ISCE2 stripmapStack SLC files: ``DATE/DATE.slc`` (raw complex64, little-endian, BIP)
with a GDAL ``.slc.vrt`` (VRTRawRasterBand) and an ISCE ``.slc.xml`` sidecar.

Writers live here (used by ``labkit synth`` and the tests); the readers that find and
validate SLCs for prep live here too.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit.errors import LabError
from labkit.io import TILE_SUFFIX, date_from_name

__all__ = [
    "SLC_PATTERNS",
    "RawLayout",
    "SlcInfo",
    "find_slcs",
    "gdal_message",
    "open_slc_checked",
    "write_isce_headers",
    "write_isce_slc",
]

_VRT = """<VRTDataset rasterXSize="{width}" rasterYSize="{length}">
    <VRTRasterBand dataType="CFloat32" band="1" subClass="VRTRawRasterBand">
        <SourceFilename relativeToVRT="1">{name}</SourceFilename>
        <ByteOrder>LSB</ByteOrder>
        <ImageOffset>0</ImageOffset>
        <PixelOffset>8</PixelOffset>
        <LineOffset>{line_offset}</LineOffset>
    </VRTRasterBand>
</VRTDataset>
"""

_COORD = """    <component name="{cname}">
        <factorymodule>isceobj.Image</factorymodule>
        <factoryname>createCoordinate</factoryname>
        <doc>{doc}</doc>
        <property name="delta">
            <value>1.0</value>
            <doc>Coordinate quantization.</doc>
        </property>
        <property name="endingvalue">
            <value>{size}.0</value>
            <doc>Ending value of the coordinate.</doc>
        </property>
        <property name="family">
            <value>imagecoordinate</value>
            <doc>Instance family name</doc>
        </property>
        <property name="name">
            <value>imagecoordinate_name</value>
            <doc>Instance name</doc>
        </property>
        <property name="size">
            <value>{size}</value>
            <doc>Coordinate size.</doc>
        </property>
        <property name="startingvalue">
            <value>0.0</value>
            <doc>Starting value of the coordinate.</doc>
        </property>
    </component>
"""


def _prop(name: str, value: object, doc: str) -> str:
    return (
        f'    <property name="{name}">\n        <value>{value}</value>\n'
        f"        <doc>{doc}</doc>\n    </property>\n"
    )


def _xml(name: str, width: int, length: int) -> str:
    return (
        "<imageFile>\n"
        + _prop("access_mode", "read", "Image access mode.")
        + _prop("byte_order", "l", "Endianness of the image.")
        + _prop("data_type", "CFLOAT", "Image data type.")
        + _prop("extra_file_name", f"{name}.vrt", "For example name of vrt metadata.")
        + _prop("family", "image", "Instance family name")
        + _prop("file_name", name, "Name of the image file.")
        + _prop("image_type", "slc", "Image type used for displaying.")
        + _prop("length", length, "Image length")
        + _prop("name", "image_name", "Instance name")
        + _prop("number_bands", 1, "Number of image bands.")
        + _prop("scheme", "BIP", "Interleaving scheme of the image.")
        + _prop("width", width, "Image width")
        + _prop("xmax", width, "Maximum range value")
        + _prop("xmin", 0, "Minimum range value")
        + _COORD.format(cname="coordinate1", doc="First coordinate of a 2D image (width).",
                        size=width)
        + _COORD.format(cname="coordinate2", doc="Second coordinate of a 2D image (length).",
                        size=length)
        + "</imageFile>\n"
    )


def write_isce_headers(slc_path: str | os.PathLike[str], width: int, length: int) -> None:
    """Write ``<slc>.vrt`` and ``<slc>.xml`` beside a raw complex64 SLC file.

    Parameters
    ----------
    slc_path : path
        The raw ``DATE.slc`` file (may not exist yet).
    width, length : int
        Samples per line and number of lines.
    """
    p = Path(slc_path)
    (p.parent / f"{p.name}.vrt").write_text(
        _VRT.format(width=width, length=length, name=p.name, line_offset=8 * width)
    )
    (p.parent / f"{p.name}.xml").write_text(_xml(p.name, width, length))


def write_isce_slc(dest: str | os.PathLike[str], date: str, slc: np.ndarray) -> Path:
    """Write one date as ISCE2 does: ``dest/DATE/DATE.slc`` + ``.slc.vrt`` + ``.slc.xml``.

    Parameters
    ----------
    dest : path
        Stack folder.
    date : str
        ``YYYYMMDD``.
    slc : (lines, samples) complex array
        Stored as little-endian complex64.

    Returns
    -------
    Path
        The raw ``.slc`` file.
    """
    folder = Path(dest) / date
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{date}.slc"
    np.asarray(slc, dtype="<c8").tofile(path)
    write_isce_headers(path, slc.shape[1], slc.shape[0])
    return path


# --------------------------------------------------------------------------------------
# Readers: find the SLCs of a stack and validate them before anything is written.
# --------------------------------------------------------------------------------------

# SLC files searched for in SRC and every folder under it, best first for one date: ISCE2
# VRT (stripmapStack .slc.vrt, topsStack .slc.full.vrt), raw ISCE2 SLC (+ .xml, GDAL's
# ISCE driver, or an ENVI .hdr), ENVI data named by its .hdr, any GDAL VRT or GeoTIFF
SLC_PATTERNS = ("*.slc.vrt", "*.slc", "*.slc.full.vrt", "*.slc.full", "*.vrt", "*.tif",
                "*.tiff", "ENVI data beside a *.hdr")
_RANK = {".slc.vrt": 0, ".slc.full.vrt": 0, ".slc": 1, ".slc.full": 1, ".vrt": 2,
         ".tif": 3, ".tiff": 3}
_ENVI_RANK = 2  # an ENVI data file found through its .hdr (any extension)
_RAW = (".slc", ".slc.full")  # raw ISCE2 SLCs: read with their .xml (or an ENVI .hdr)
_VRT_SUFFIXES = (".slc.vrt", ".slc.full.vrt", ".vrt")
_ISCE_BYTES = {"CSHORT": 4, "CINT": 8, "CFLOAT": 8, "CDOUBLE": 16}  # bytes per sample
# bytes per sample of each GDAL data type (VRT dataType names)
_GDAL_BYTES = {"Byte": 1, "Int8": 1, "UInt16": 2, "Int16": 2, "Float16": 2, "UInt32": 4,
               "Int32": 4, "Float32": 4, "UInt64": 8, "Int64": 8, "Float64": 8,
               "CInt16": 4, "CFloat16": 4, "CInt32": 8, "CFloat32": 8, "CFloat64": 16}
# ISCE2 products that are not SLCs (interferograms, coherence, offsets, masks ...), and
# date pairs (20200101_20200113): skipped when a generic *.vrt/*.tif/ENVI name has them
_NOT_SLC = (".int", ".unw", ".cor", ".amp", ".off", ".rdr", ".msk", ".conncomp", ".ccp",
            ".cov", ".flat", ".filt")
_PAIR_RE = re.compile(r"(?<!\d)\d{8}[_-]\d{8}(?!\d)")
_MAX_DEPTH = 8  # folders below SRC that are searched (topsStack's merged/SLC/DATE is 3)


@dataclass(frozen=True)
class RawLayout:
    """Where the samples of a raw little-endian complex64 SLC are, so that prep can read
    them with ``os.pread`` instead of GDAL.

    Attributes
    ----------
    path : Path
        The raw data file.
    offset : int
        Bytes before the first sample of line 0.
    line_bytes : int
        Bytes from the start of one line to the start of the next (≥ 8 · samples).
    """

    path: Path
    offset: int
    line_bytes: int


@dataclass(frozen=True)
class SlcInfo:
    """One validated SLC, ready to be read (raw with ``pread``, or with rasterio).

    Attributes
    ----------
    path : Path
        The file GDAL opens (``.slc.vrt``, raw ``.slc`` with ``.xml``, GeoTIFF, ...).
    date : str
        ``YYYYMMDD`` from the file name.
    lines, samples : int
        Azimuth lines (rows) and range samples (columns).
    dtype : str
        Sample type of band 1 as rasterio names it (``complex64``, ``complex_int16``, ...).
    raw : Path or None
        The raw data file behind a VRT or ISCE header, when there is one.
    layout : RawLayout or None
        Set when the header describes plain little-endian complex64 lines (ISCE2's
        ``.slc`` with its ``.slc.vrt`` or ``.slc.xml``): the samples can be read raw.
    nbytes : int
        Bytes per sample on disk (8 for complex64, 4 for CInt16, 16 for CFloat64).
    """

    path: Path
    date: str
    lines: int
    samples: int
    dtype: str
    raw: Path | None = None
    layout: RawLayout | None = None
    nbytes: int = 0

    @property
    def itemsize(self) -> int:
        """Bytes per sample on disk (8 for complex64)."""
        return self.nbytes or _itemsize(self.dtype)

    @property
    def mtime(self) -> float:
        """Newest modification time (s since the epoch) of the header and its raw file."""
        files = [self.path] + ([self.raw] if self.raw else [])
        return max(f.stat().st_mtime for f in files)


def _itemsize(dtype: str) -> int:
    return {"complex_int16": 4}.get(dtype) or np.dtype(dtype).itemsize


def _suffix(name: str) -> str | None:
    low = name.lower()
    for suffix in sorted(_RANK, key=len, reverse=True):
        if low.endswith(suffix):
            return suffix
    return None


def _is_envi_header(hdr: Path) -> bool:
    try:
        with open(hdr, "rb") as f:
            return f.read(4) == b"ENVI"
    except OSError:
        return False


def _envi_data(hdr: Path) -> Path | None:
    """The data file GDAL's ENVI driver pairs with ``hdr`` (``X.hdr`` → ``X`` or ``X.ext``;
    ``X.ext.hdr`` → ``X.ext``), or None."""
    if not _is_envi_header(hdr):
        return None
    bare = hdr.with_suffix("")
    if bare.is_file():
        return bare
    skip = (".hdr", ".xml", ".vrt", ".aux", ".ovr", ".sta", ".stx")
    data = [f for f in hdr.parent.glob(f"{_glob_escape(bare.name)}.*")
            if f.is_file() and not f.name.lower().endswith(skip)]
    return data[0] if len(data) == 1 else None


def _envi_header(data: Path) -> Path | None:
    """The ENVI header GDAL would read for ``data`` (``X.hdr`` first, then ``X.ext.hdr``)."""
    for hdr in (data.with_suffix(".hdr"), data.with_name(data.name + ".hdr")):
        if hdr != data and hdr.is_file() and _is_envi_header(hdr):
            return hdr
    return None


def _glob_escape(name: str) -> str:
    """``name`` with the glob characters ``*?[`` escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _walk(root: Path):  # -> Iterator[Path]: the files under root, hidden folders skipped
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
    None. Undated names are returned too (the caller sorts them out)."""
    name = f.name
    low = name.lower()
    if name.endswith(TILE_SUFFIX):  # prep's own outputs are never input
        return None
    if low.endswith(".hdr"):
        data = _envi_data(f)
        if data is None or _suffix(data.name) in _RAW:  # raw .slc: found by its own name
            return None
        generic = True
        f, rank = data, _ENVI_RANK
    else:
        suffix = _suffix(name)
        if suffix is None:
            return None
        if not f.is_file() and not f.is_symlink():
            return None
        rank = _RANK[suffix]
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
    ``Coarse/DATE/DATE.slc``), else the folder of the file (a flat folder)."""
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
                   for _, f in files.values() if _suffix(f.name) in _VRT_SUFFIXES
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
    found = (_source_file(vrt, e) for e in root.iter("SourceFilename"))
    return [f for f in found if f is not None and f.exists()]


def _rel(folder: Path, root: Path) -> str:
    rel = os.path.relpath(folder, root)
    return str(root) if rel == "." else rel


def _int_text(elem: ET.Element | None, default: int | None = None) -> int | None:
    if elem is None or elem.text is None:
        return default
    try:
        return int(float(elem.text.strip()))
    except ValueError:
        return default


def _check_size(raw: Path, need: int, header: Path) -> None:
    have = raw.stat().st_size
    if have < need:
        raise LabError(
            f"raw file {raw} is truncated: {have} bytes, its header {header.name} needs "
            f"{need} (re-copy or re-create the SLC)"
        )


def _raw_need(offset: int, pixel: int, line: int, lines: int, samples: int,
              nbytes: int) -> int:
    """Bytes a raw band needs, as GDAL counts them: up to the last sample of the last
    line (``ImageOffset + LineOffset·(lines−1) + PixelOffset·(samples−1) + itemsize``;
    no padding is needed after the last line)."""
    return (offset + max(line, 0) * (lines - 1) + max(pixel, 0) * (samples - 1) + nbytes)


# GDAL connection strings that name a file inside: HDF5:"f.h5"://path, NETCDF:"f.nc":var
_SUBDATASET_RE = re.compile(r'^(?:HDF5|HDF4_SDS|HDF4_EOS|NETCDF|NITF_IM|GTIFF_DIR):'
                            r'(?:"([^"]+)"|([^:]+))', re.IGNORECASE)


def _source_file(vrt: Path, elem: ET.Element) -> Path | None:
    """The file a VRT ``SourceFilename`` names, or None when it is not a local file that
    can be checked (``/vsi…`` paths, URLs)."""
    name = (elem.text or "").strip()
    match = _SUBDATASET_RE.match(name)
    if match:
        name = match.group(1) or match.group(2)
    if not name or name.startswith("/vsi") or "://" in name:
        return None
    rel = elem.get("relativeToVRT", elem.get("relativetoVRT", "0")).strip() == "1"
    if not rel:
        return Path(name)
    here = vrt.parent / name
    if here.exists() or not vrt.is_symlink():
        return here
    return vrt.resolve().parent / name  # a symlinked VRT: GDAL looks beside the real file


def _check_sources(path: Path, root: ET.Element) -> None:
    """Every file a VRT mosaic reads (``SimpleSource``, ``ComplexSource`` ...) must exist:
    GDAL opens them only when it reads, after prep has started."""
    for elem in root.iter():
        if not elem.tag.endswith("Source") or elem.find("SourceFilename") is None:
            continue
        src = _source_file(path, elem.find("SourceFilename"))  # type: ignore[arg-type]
        if src is None:
            continue
        if not src.exists():
            raise LabError(f"VRT {path} reads source file {src}, which does not exist: every "
                           "file of the mosaic must be there (re-create the VRT or restore "
                           "the file)")
        if src.is_file() and not os.access(src, os.R_OK):
            raise LabError(f"source file {src} of VRT {path} is not readable (permission "
                           "denied): fix its permissions")


def _check_vrt(path: Path) -> tuple[Path | None, tuple[int, int, RawLayout] | None]:
    """Check the files a VRT reads (raw files of ``VRTRawRasterBand``s, sources of
    mosaics) before anything is written.

    Returns the raw file of band 1 (or None) and, when band 1 is little-endian CFloat32
    with whole samples next to each other (ISCE2's ``.slc.vrt``; line padding, a file
    header or line prefixes allowed), ``(lines, samples, layout)`` for raw reads;
    otherwise None (GDAL reads it).
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise LabError(f"{path} is not a readable VRT (XML): {exc}") from None
    try:
        lines = int(root.get("rasterYSize", ""))
    except ValueError:
        raise LabError(f"{path} is not a GDAL VRT: no rasterYSize") from None
    try:
        samples = int(root.get("rasterXSize", ""))
    except ValueError:
        samples = 0  # GDAL reports it when it opens the VRT
    _check_sources(path, root)
    raw_file = None
    layout = None
    bands = list(root.iter("VRTRasterBand"))
    for index, band in enumerate(bands):
        if band.get("subClass") != "VRTRawRasterBand":
            continue
        src = band.find("SourceFilename")
        if src is None or not (src.text or "").strip():
            raise LabError(f"VRT {path} has no SourceFilename: expected the raw .slc file name")
        raw = _source_file(path, src)
        if raw is None:
            continue
        if not raw.is_file():
            raise LabError(
                f"VRT {path} points to raw file {raw}, which does not exist: the raw .slc "
                f"must sit where the VRT's SourceFilename says"
            )
        if not os.access(raw, os.R_OK):
            raise LabError(f"raw file {raw} is not readable (permission denied): fix its "
                           "permissions")
        dtype = band.get("dataType", "Byte")
        nbytes = _GDAL_BYTES.get(dtype, 1)
        offset = _int_text(band.find("ImageOffset"), 0) or 0
        pixel = _int_text(band.find("PixelOffset"), nbytes)
        pixel = nbytes if pixel is None else pixel
        line = _int_text(band.find("LineOffset"), None)
        line = pixel * samples if line is None else line
        if samples > 0 and lines > 0:
            _check_size(raw, _raw_need(offset, pixel, line, lines, samples, nbytes), path)
        if index > 0:
            continue
        raw_file = raw
        plain = (dtype == "CFloat32" and pixel == 8 and line >= 8 * samples
                 and (band.findtext("ByteOrder") or "").strip().upper() == "LSB"
                 and samples > 0 and lines > 0 and offset >= 0)
        if plain:
            layout = (lines, samples, RawLayout(raw, offset, line))
    return raw_file, layout


def _isce_props(xml: Path) -> dict[str, str]:
    """The ``<property name=...><value>`` pairs of an ISCE ``.xml`` header (lower-case names)."""
    try:
        root = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as exc:
        raise LabError(f"{xml} is not a readable ISCE XML header: {exc}") from None
    return {
        p.get("name", "").lower(): (p.findtext("value") or "").strip()
        for p in root.findall("property")
    }


def _check_xml_agrees(vrt: Path, xml: Path, lines: int, samples: int) -> None:
    """Refuse an ISCE ``.xml`` beside a VRT that gives another size (which one is right?).

    An unreadable ``.xml`` is ignored: GDAL reads the VRT, not the ``.xml``.
    """
    try:
        props = _isce_props(xml)
        length, width = (int(float(props[k])) for k in ("length", "width"))
    except (LabError, KeyError, ValueError):
        return
    if (length, width) != (lines, samples):
        raise LabError(
            f"{xml.name} says {length}x{width} (lines x samples) but {vrt.name} says "
            f"{lines}x{samples}: the headers disagree; re-create them "
            f"(labkit.isce.write_isce_headers) or remove the wrong one"
        )


def _check_isce_xml(path: Path) -> tuple[int, int, RawLayout] | None:
    """Check a raw ISCE ``.slc`` (or topsStack ``.slc.full``) against its ``.xml``.
    Returns ``(lines, samples, layout)`` for one band of little-endian CFLOAT (what ISCE2
    writes), else None (GDAL reads it: its ISCE driver, or ENVI with a ``.hdr``)."""
    xml = path.with_name(path.name + ".xml")
    if not xml.is_file():
        if _envi_header(path) is not None:
            return None  # an ENVI file named .slc: GDAL's ENVI driver reads it
        raise LabError(
            f"raw SLC {path} has no header: expected {xml.name} (ISCE), {path.name}.vrt or "
            "an ENVI .hdr beside it"
        )
    props = _isce_props(xml)
    try:
        width, length = int(props["width"]), int(props["length"])
        bands = int(props.get("number_bands", "1") or 1)
    except (KeyError, ValueError):
        raise LabError(f"ISCE header {xml} has no valid width/length") from None
    data_type = props.get("data_type", "").upper()
    nbytes = _ISCE_BYTES.get(data_type)
    scheme = props.get("scheme", "BIP").upper()
    if nbytes is not None and width > 0 and length > 0:
        # band 1 as GDAL's ISCE driver lays it out; the last line needs no padding
        pixel = nbytes * (bands if scheme == "BIP" else 1)
        line = nbytes * width * (1 if scheme == "BSQ" else bands)
        _check_size(path, _raw_need(0, pixel, line, length, width, nbytes), xml)
    plain = (data_type == "CFLOAT" and bands == 1 and width > 0 and length > 0
             and props.get("byte_order", "").lower() == "l")
    if not plain:
        return None
    if not os.access(path, os.R_OK):
        raise LabError(f"raw file {path} is not readable (permission denied): fix its "
                       "permissions")
    return length, width, RawLayout(path, 0, 8 * width)


def gdal_message(exc: BaseException) -> str:
    """The most telling line of a rasterio/GDAL error: GDAL's own cause when rasterio
    only says "Read failed. See previous exception for details."."""
    best = ""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur).strip()
        if text and "see previous exception" not in text.lower():
            best = text.splitlines()[0]
        cur = cur.__cause__ or cur.__context__
    return best or "read error"


def open_slc_checked(path: str | os.PathLike[str]) -> SlcInfo:
    """Validate one SLC file without reading its samples.

    Checks that the raw data behind a VRT (``VRTRawRasterBand``) or an ISCE ``.xml``
    exists and holds the bytes GDAL needs to read it (up to the last sample of the last
    line), that every source file of a VRT mosaic exists, that GDAL opens it, and that
    band 1 is complex. A header that describes plain little-endian complex64 lines
    (ISCE2's) is enough: GDAL (and the rasterio import) is skipped, and
    :attr:`SlcInfo.layout` says where to read the samples. Anything else GDAL opens
    (ENVI, big-endian, CInt16/CInt32/CFloat64, BIL/BIP/BSQ, HDF5 subdatasets named by a
    VRT ...) is read with GDAL.

    Returns
    -------
    SlcInfo

    Raises
    ------
    LabError
        Missing or truncated raw file, unreadable header, not a raster, not complex.
    """
    import warnings

    p = Path(path)
    date = date_from_name(p)
    if not p.exists():
        if p.is_symlink():
            raise LabError(
                f"SLC {p} is a dangling symlink (to {os.readlink(p)}): link with absolute "
                f"targets, e.g. data_prep/flatten_isce_tree.sh"
            )
        raise LabError(f"SLC {p} does not exist")
    raw: Path | None = None
    plain: tuple[int, int, RawLayout] | None = None
    suffix = _suffix(p.name)
    if suffix in _VRT_SUFFIXES:
        raw, plain = _check_vrt(p)
    elif suffix in _RAW:
        plain = _check_isce_xml(p)
        raw = p
    if plain is not None:  # plain complex64 lines: the header says all GDAL would
        lines, samples, layout = plain
        dtype = "complex64"
    else:
        import rasterio

        layout = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NotGeoreferencedWarning: radar geometry
                with rasterio.open(p) as ds:
                    lines, samples, dtype = ds.height, ds.width, ds.dtypes[0]
        except rasterio.errors.RasterioIOError as exc:
            raise LabError(f"cannot open SLC {p} with GDAL: {gdal_message(exc)}") from None
    if not dtype.startswith("complex"):
        raise LabError(
            f"{p} holds {dtype} samples: expected a complex SLC (complex64, as ISCE2 writes)"
        )
    if raw is not None and raw == p:
        raw = None
    if (raw is not None and suffix in (".slc.vrt", ".slc.full.vrt")
            and raw.with_name(raw.name + ".xml").is_file()):
        _check_xml_agrees(p, raw.with_name(raw.name + ".xml"), lines, samples)
    return SlcInfo(p, date, lines, samples, dtype, raw, layout)
