#!/usr/bin/env python3
r"""The course's prep script, kept working on top of labkit (same command line):

    python data_prep/make_intensity_and_crop.py \
        SLC_FINE_LOCAL intens_512 "1024,1024,0,0" True 4 True

For every date in SRC: |S|² → multilook → crop → ``DEST/<YYYYMMDD>_int_crop.tif``
(float32 GeoTIFF, driver GTiff, nodata NaN, written atomically). It calls
:func:`labkit.prep.prep_stack`, exactly as ``labkit prep SRC DEST --crop ... --looks ...``.

Positional arguments (as in the original script)
------------------------------------------------
SRC           folder of SLCs: flat ``*.slc.vrt`` (symlinks allowed), an ISCE2 tree
              ``DATE/DATE.slc.vrt``, raw ``*.slc`` + ``.slc.xml``, or complex GeoTIFFs.
DEST          output folder for the tiles (created if its parent exists).
CROP          ``"W,H,R0,C0"``: width, height, first row, first column of the crop, in
              output (multilooked) pixels, e.g. ``"1024,1024,0,0"``.
DO_MULTILOOK  True/False (default True). False = no multilook (looks 1×1): the crop is
              then in SLC pixels.
LOOKS         looks per axis, N or AZxRG (default 4): each output pixel is the mean of
              AZ × RG intensity samples. Ignored when DO_MULTILOOK is False.
OVERWRITE     True/False (default True). False keeps tiles that are already up to date
              (same crop and looks, newer than their SLC) and only makes the others.

Option: ``--jobs N`` prepares N dates in parallel. Bad input exits with code 2 and one
line saying what is wrong (nothing is written); Ctrl-C exits with 130 and leaves no
partial file.
"""

from __future__ import annotations

import argparse
import sys

try:
    import labkit  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labkit.cli import crop_spec, looks_spec, positive_int
from labkit.errors import Interrupted, LabError

PROG = "make_intensity_and_crop.py"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{PROG}: error: {message} (see `{PROG} --help`)\n")


def flag(text: str) -> bool:
    """argparse type: True/False (also 1/0, yes/no, case-insensitive)."""
    low = text.strip().lower()
    if low in ("true", "1", "yes", "y", "t"):
        return True
    if low in ("false", "0", "no", "n", "f"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not True or False")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="SLC -> |S|^2 -> multilook -> crop -> float32 GeoTIFF tiles\n"
        "(DEST/YYYYMMDD_int_crop.tif), as the course's script did.",
        epilog='example: %(prog)s SLC_FINE_LOCAL intens_512 "1024,1024,0,0" True 4 True',
    )
    p.add_argument("src", metavar="SRC", help="folder of *.slc.vrt, an ISCE2 tree, raw *.slc "
                   "+ .xml, or complex GeoTIFFs")
    p.add_argument("dest", metavar="DEST", help="output folder for YYYYMMDD_int_crop.tif")
    p.add_argument("crop", metavar="CROP", type=crop_spec,
                   help='"W,H,R0,C0" in output (multilooked) pixels, e.g. "1024,1024,0,0"')
    p.add_argument("do_multilook", metavar="DO_MULTILOOK", type=flag, nargs="?", default=True,
                   help="True/False (default True); False = looks 1x1")
    p.add_argument("looks", metavar="LOOKS", type=looks_spec, nargs="?", default=(4, 4),
                   help="N or AZxRG looks (default 4)")
    p.add_argument("overwrite", metavar="OVERWRITE", type=flag, nargs="?", default=True,
                   help="True/False (default True); False keeps up-to-date tiles")
    p.add_argument("--jobs", type=positive_int, default=1, help="dates prepared in parallel")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from labkit.prep import describe, prep_stack

    looks = args.looks if args.do_multilook else (1, 1)
    try:
        summary = prep_stack(args.src, args.dest, args.crop, looks, jobs=args.jobs,
                             progress=sys.stderr.isatty(), overwrite=args.overwrite)
    except Interrupted as exc:
        print(f"{PROG}: interrupted: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted: stopped by Ctrl-C, no partial files", file=sys.stderr)
        return 130
    except LabError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(describe(summary, args.dest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
