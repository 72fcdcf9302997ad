"""ISCE2 stripmapStack SLC files: ``DATE/DATE.slc`` (raw complex64, little-endian, BIP)
with a GDAL ``.slc.vrt`` (VRTRawRasterBand) and an ISCE ``.slc.xml`` sidecar.

Writers live here (used by ``labkit synth`` and the tests); the readers that find and
validate SLCs for prep live here too.
"""

from __future__ import annotations

import os
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

# SLC file names tried in SRC and in SRC/*/, in order of preference for one date:
# ISCE2 VRT, raw ISCE2 .slc (+ .slc.xml, GDAL's ISCE driver), any GDAL VRT or GeoTIFF
SLC_PATTERNS = ("*.slc.vrt", "*.slc", "*.vrt", "*.tif", "*.tiff")
_RANK = {".slc.vrt": 0, ".slc": 1, ".vrt": 2, ".tif": 3, ".tiff": 3}
_ISCE_BYTES = {"CSHORT": 4, "CINT": 8, "CFLOAT": 8, "CDOUBLE": 16}  # bytes per sample


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
    """

    path: Path
    date: str
    lines: int
    samples: int
    dtype: str
    raw: Path | None = None
    layout: RawLayout | None = None

    @property
    def itemsize(self) -> int:
        """Bytes per sample on disk (8 for complex64)."""
        return _itemsize(self.dtype)

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


def find_slcs(src: str | os.PathLike[str]) -> list[Path]:
    """The SLC files of a stack folder, one per date, sorted by date.

    ``src`` may be a flat folder of ``*.slc.vrt`` (symlinks allowed, as the course's
    ``SLC_FINE_LOCAL``), an ISCE2 tree ``DATE/DATE.slc(.vrt, .xml)``, raw ``*.slc`` with
    their ``.slc.xml``, or any GDAL raster ``*.vrt``/``*.tif``/``*.tiff`` (searched in
    ``src`` and its sub-folders one level down). The date comes from the file name.
    When a date has both ``DATE.slc.vrt`` and ``DATE.slc``, the VRT is used. Generic
    rasters without a date in the name (e.g. ``truth/sigma0.tif``) and prep's own
    ``*_int_crop.tif`` outputs are ignored.

    Raises
    ------
    LabError
        ``src`` missing, not a folder or empty; no SLCs found (naming the patterns
        tried); an SLC name without a date; two different files for one date.
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

    found: dict[str, dict[Path, Path]] = {}  # date -> {resolved file: path as found}
    folders = [root] + sorted(
        d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
    )
    for folder in folders:
        try:
            entries = sorted(folder.iterdir())
        except OSError as exc:
            raise LabError(f"SLC folder {folder} is not readable ({exc.strerror}): fix its "
                           f"permissions or move it out of {root}") from None
        for f in entries:
            suffix = _suffix(f.name)
            if suffix is None or f.name.startswith(".") or f.name.endswith(TILE_SUFFIX):
                continue
            if not f.is_file():  # a dangling symlink is reported when it is opened
                if not f.is_symlink():
                    continue
            if suffix in (".slc.vrt", ".slc"):
                date = date_from_name(f)  # an SLC must carry its date
            else:
                try:
                    date = date_from_name(f)
                except LabError:
                    continue
            key = f.resolve() if f.exists() else f
            found.setdefault(date, {}).setdefault(key, f)

    if not found:
        tried = ", ".join(SLC_PATTERNS)
        raise LabError(
            f"no SLCs in {root}: tried {tried} in it and its sub-folders "
            f"(file names must hold a YYYYMMDD date)"
        )

    out = []
    for date in sorted(found):
        files = sorted(found[date].values(), key=lambda p: (_RANK[_suffix(p.name) or ""], p))
        # DATE.slc beside DATE.slc.vrt (or .xml-less twins) are one SLC: keep the best
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


def _check_vrt(path: Path) -> tuple[Path | None, tuple[int, int, RawLayout] | None]:
    """Check the raw files of a VRTRawRasterBand VRT.

    Returns the raw file (or None) and, for a one-band little-endian CFloat32 raw VRT
    (ISCE2's ``.slc.vrt``), ``(lines, samples, layout)``; otherwise None.
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
    raw_file = None
    layout = None
    bands = list(root.iter("VRTRasterBand"))
    for band in bands:
        if band.get("subClass") != "VRTRawRasterBand":
            continue
        src = band.find("SourceFilename")
        if src is None or not (src.text or "").strip():
            raise LabError(f"VRT {path} has no SourceFilename: expected the raw .slc file name")
        name = src.text.strip()
        if src.get("relativeToVRT", src.get("relativetoVRT", "0")) == "1":
            raw = path.parent / name
            if not raw.exists():  # a symlinked VRT: GDAL looks beside the real file
                raw = path.resolve().parent / name
        else:
            raw = Path(name)
        if not raw.is_file():
            raise LabError(
                f"VRT {path} points to raw file {raw}, which does not exist: the raw .slc "
                f"must sit where the VRT's SourceFilename says"
            )
        if not os.access(raw, os.R_OK):
            raise LabError(f"raw file {raw} is not readable (permission denied): fix its "
                           "permissions")
        offset = _int_text(band.find("ImageOffset"), 0) or 0
        line_offset = _int_text(band.find("LineOffset"), None)
        if line_offset is not None:
            _check_size(raw, offset + line_offset * lines, path)
        raw_file = raw
        pixel = _int_text(band.find("PixelOffset"), 8)
        plain = (len(bands) == 1 and band.get("dataType") == "CFloat32"
                 and (band.findtext("ByteOrder") or "").strip().upper() == "LSB"
                 and pixel == 8 and line_offset is not None and line_offset >= 8 * samples
                 and samples > 0 and lines > 0 and offset >= 0)
        if plain:
            layout = (lines, samples, RawLayout(raw, offset, line_offset))
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
    """Check a raw ISCE ``.slc`` against its ``.slc.xml``. Returns ``(lines, samples,
    layout)`` for one band of little-endian CFLOAT (what ISCE2 writes), else None."""
    xml = path.with_name(path.name + ".xml")
    if not xml.is_file():
        raise LabError(
            f"raw SLC {path} has no header: expected {xml.name} (ISCE) or {path.name}.vrt beside it"
        )
    props = _isce_props(xml)
    try:
        width, length = int(props["width"]), int(props["length"])
        bands = int(props.get("number_bands", "1") or 1)
    except (KeyError, ValueError):
        raise LabError(f"ISCE header {xml} has no valid width/length") from None
    data_type = props.get("data_type", "").upper()
    nbytes = _ISCE_BYTES.get(data_type)
    if nbytes is not None:
        _check_size(path, width * length * bands * nbytes, xml)
    plain = (data_type == "CFLOAT" and bands == 1 and width > 0 and length > 0
             and props.get("byte_order", "").lower() == "l")
    if not plain:
        return None
    if not os.access(path, os.R_OK):
        raise LabError(f"raw file {path} is not readable (permission denied): fix its "
                       "permissions")
    return length, width, RawLayout(path, 0, 8 * width)


def open_slc_checked(path: str | os.PathLike[str]) -> SlcInfo:
    """Validate one SLC file without reading its samples.

    Checks that the raw data behind a VRT (``VRTRawRasterBand``) or an ISCE ``.xml``
    exists and holds at least the bytes its header promises (``ImageOffset + LineOffset
    · lines``), that GDAL opens it, and that band 1 is complex. A header that describes
    plain little-endian complex64 lines (ISCE2's) is enough: GDAL (and the rasterio
    import) is skipped, and :attr:`SlcInfo.layout` says where to read the samples.

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
    if suffix in (".slc.vrt", ".vrt"):
        raw, plain = _check_vrt(p)
    elif suffix == ".slc":
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
            msg = str(exc).splitlines()[0] if str(exc) else "unknown format"
            raise LabError(f"cannot open SLC {p} with GDAL: {msg}") from None
    if not dtype.startswith("complex"):
        raise LabError(
            f"{p} holds {dtype} samples: expected a complex SLC (complex64, as ISCE2 writes)"
        )
    if raw is not None and raw == p:
        raw = None
    if raw is not None and suffix == ".slc.vrt" and raw.with_name(raw.name + ".xml").is_file():
        _check_xml_agrees(p, raw.with_name(raw.name + ".xml"), lines, samples)
    return SlcInfo(p, date, lines, samples, dtype, raw, layout)
