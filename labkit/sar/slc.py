"""One SLC file, checked before anything is read: what GDAL will read (size, sample type,
the raw files behind a header, the sources of a mosaic) and, for plain little-endian
complex64 lines, where prep can ``pread`` them without GDAL.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit.errors import LabError
from labkit.io import date_from_name
from labkit.sar.isce import isce_props

__all__ = [
    "ENVI_RANK",
    "RAW_SUFFIXES",
    "SUFFIX_RANK",
    "VRT_SUFFIXES",
    "RawLayout",
    "SlcInfo",
    "envi_data",
    "gdal_message",
    "open_slc_checked",
    "slc_suffix",
    "source_file",
]

SUFFIX_RANK = {".slc.vrt": 0, ".slc.full.vrt": 0, ".slc": 1, ".slc.full": 1, ".vrt": 2,
         ".tif": 3, ".tiff": 3}

ENVI_RANK = 2  # an ENVI data file found through its .hdr (any extension)

RAW_SUFFIXES = (".slc", ".slc.full")  # raw ISCE2 SLCs: read with their .xml (or an ENVI .hdr)

VRT_SUFFIXES = (".slc.vrt", ".slc.full.vrt", ".vrt")

_ISCE_BYTES = {"CSHORT": 4, "CINT": 8, "CFLOAT": 8, "CDOUBLE": 16}  # bytes per sample

# bytes per sample of each GDAL data type (VRT dataType names)
_GDAL_BYTES = {"Byte": 1, "Int8": 1, "UInt16": 2, "Int16": 2, "Float16": 2, "UInt32": 4,
               "Int32": 4, "Float32": 4, "UInt64": 8, "Int64": 8, "Float64": 8,
               "CInt16": 4, "CFloat16": 4, "CInt32": 8, "CFloat32": 8, "CFloat64": 16}


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


def slc_suffix(name: str) -> str | None:
    """The SLC suffix a file name ends with (longest first: ``.slc.full.vrt``), or None."""
    low = name.lower()
    for suffix in sorted(SUFFIX_RANK, key=len, reverse=True):
        if low.endswith(suffix):
            return suffix
    return None


def _is_envi_header(hdr: Path) -> bool:
    try:
        with open(hdr, "rb") as f:
            return f.read(4) == b"ENVI"
    except OSError:
        return False


def envi_data(hdr: Path) -> Path | None:
    """The data file GDAL's ENVI driver pairs with ``hdr`` (``X.hdr`` → ``X`` or ``X.ext``;
    ``X.ext.hdr`` → ``X.ext``), or None.
    """
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
    no padding is needed after the last line).
    """
    return (offset + max(line, 0) * (lines - 1) + max(pixel, 0) * (samples - 1) + nbytes)

# GDAL connection strings that name a file inside: HDF5:"f.h5"://path, NETCDF:"f.nc":var
_SUBDATASET_RE = re.compile(r'^(?:HDF5|HDF4_SDS|HDF4_EOS|NETCDF|NITF_IM|GTIFF_DIR):'
                            r'(?:"([^"]+)"|([^:]+))', re.IGNORECASE)


def source_file(vrt: Path, elem: ET.Element) -> Path | None:
    """The file a VRT ``SourceFilename`` names, or None when it is not a local file that
    can be checked (``/vsi…`` paths, URLs).
    """
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
    GDAL opens them only when it reads, after prep has started.
    """
    for elem in root.iter():
        if not elem.tag.endswith("Source") or elem.find("SourceFilename") is None:
            continue
        src = source_file(path, elem.find("SourceFilename"))  # type: ignore[arg-type]
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
        raw = source_file(path, src)
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


def _check_xml_agrees(vrt: Path, xml: Path, lines: int, samples: int) -> None:
    """Refuse an ISCE ``.xml`` beside a VRT that gives another size (which one is right?).

    An unreadable ``.xml`` is ignored: GDAL reads the VRT, not the ``.xml``.
    """
    try:
        props = isce_props(xml)
        length, width = (int(float(props[k])) for k in ("length", "width"))
    except (LabError, KeyError, ValueError):
        return
    if (length, width) != (lines, samples):
        raise LabError(
            f"{xml.name} says {length}x{width} (lines x samples) but {vrt.name} says "
            f"{lines}x{samples}: the headers disagree; re-create them "
            f"(labkit.sar.isce.write_isce_headers) or remove the wrong one"
        )


def _check_isce_xml(path: Path) -> tuple[int, int, RawLayout] | None:
    """Check a raw ISCE ``.slc`` (or topsStack ``.slc.full``) against its ``.xml``.
    Returns ``(lines, samples, layout)`` for one band of little-endian CFLOAT (what ISCE2
    writes), else None (GDAL reads it: its ISCE driver, or ENVI with a ``.hdr``).
    """
    xml = path.with_name(path.name + ".xml")
    if not xml.is_file():
        if _envi_header(path) is not None:
            return None  # an ENVI file named .slc: GDAL's ENVI driver reads it
        raise LabError(
            f"raw SLC {path} has no header: expected {xml.name} (ISCE), {path.name}.vrt or "
            "an ENVI .hdr beside it"
        )
    props = isce_props(xml)
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
    only says "Read failed. See previous exception for details.".
    """
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
    suffix = slc_suffix(p.name)
    if suffix in VRT_SUFFIXES:
        raw, plain = _check_vrt(p)
    elif suffix in RAW_SUFFIXES:
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
