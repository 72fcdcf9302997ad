#!/usr/bin/env python3
"""Write a synthetic SAOCOM-like SLC stack in the ISCE2 coarse-coregistered layout.

Course-style wrapper around :func:`labkit.sar.synth.write_stack` (same as ``labkit synth``)::

    python data_prep/make_synthetic_stack.py Coarse --preset seed
    data_prep/flatten_isce_tree.sh Coarse SLC_FINE_LOCAL
"""

from __future__ import annotations

import argparse
import sys

from labkit.cli import non_negative_int, positive_int, size_spec
from labkit.errors import LabError
from labkit.sar.synth import PRESETS, write_stack

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, write the stack; returns the exit code (2 on bad input)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dest", help="stack folder: DEST/YYYYMMDD/YYYYMMDD.slc + .vrt + .xml")
    p.add_argument("--preset", default="tiny", help=" | ".join(PRESETS) + " (default tiny)")
    p.add_argument("--dates", type=positive_int, help="number of dates (overrides the preset)")
    p.add_argument("--size", type=size_spec, help="LINESxSAMPLES (overrides the preset)")
    p.add_argument("--seed", type=non_negative_int, help="random seed (default 2023)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        dest = write_stack(
            args.dest,
            args.preset,
            dates=args.dates,
            size=args.size,
            seed=args.seed,
            progress=not args.quiet,
        )
    except LabError as exc:
        print(f"make_synthetic_stack.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("make_synthetic_stack.py: interrupted (finished dates are kept)", file=sys.stderr)
        return 130
    print(f"stack ready in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
