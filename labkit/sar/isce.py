"""ISCE2 SLC files as stripmapStack writes them: ``DATE/DATE.slc`` (raw complex64,
little-endian, one band, BIP) with a GDAL ``.slc.vrt`` (VRTRawRasterBand) and an ISCE
``.slc.xml``. The writers serve ``labkit synth`` and the tests; :func:`isce_props` reads
an ``.xml`` back.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from labkit.errors import LabError

__all__ = ["isce_props", "write_isce_headers", "write_isce_slc"]

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


def isce_props(xml: Path) -> dict[str, str]:
    """The ``<property name=...><value>`` pairs of an ISCE ``.xml`` header (lower-case names)."""
    try:
        root = ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as exc:
        raise LabError(f"{xml} is not a readable ISCE XML header: {exc}") from None
    return {
        p.get("name", "").lower(): (p.findtext("value") or "").strip()
        for p in root.findall("property")
    }
