"""Tile stacks the informe is measured on: a preset's, a real stack's, bigger copies."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from labkit.config import TILE_SIDES, TILE_SUFFIX, acquisition_dates
from labkit.errors import LabError

__all__ = ["available_backends", "find_data", "real_tiles", "scaled_stack"]

REAL_TILE_MAX_SIDE = 1024  # px: largest crop prepped from a real SLC stack
REAL_LOOKS = (4, 4)  # range × azimuth looks for a real SLC stack


def find_data(preset: str | None, slc: str | None = None) -> tuple[str | None, str | None]:
    """A preset's tile folder and SLC stack under ``data/`` if they exist (nothing is made).

    Parameters
    ----------
    preset : str, optional
        Synthetic preset name (:data:`labkit.sar.synth.PRESETS`).
    slc : str, optional
        SLC stack folder; kept when given.

    Returns
    -------
    (tiles, slc)
        ``tiles`` is None when the preset's tiles are missing; ``slc`` is the given one,
        else the preset's stack when complete, else None.
    """
    from labkit import paths
    from labkit.sar.synth import PRESETS

    spec = PRESETS.get(str(preset)) if preset else None
    if spec is None:
        return None, slc
    tiles = paths.data_dir() / spec.name / f"intens_{spec.tile}x{spec.tile}"
    if not (tiles.is_dir() and any(tiles.glob(f"*{TILE_SUFFIX}"))):
        return None, slc
    stack = tiles.parent / "slc"
    return str(tiles), slc or (str(stack) if (stack / "manifest.json").is_file() else None)


def _scaled_names(dest: Path, n_dates: int) -> list[Path]:
    """Tile file names of a scaled stack: ``n_dates`` dates, one revisit apart."""
    return [dest / f"{date}{TILE_SUFFIX}" for date in acquisition_dates(n_dates)]


def _is_complete(dest: Path, names: list[Path], side: int) -> bool:
    """True when ``dest`` already holds the scaled stack (every date, ``side × side``)."""
    from labkit.io import open_stack

    if not all(p.is_file() for p in names):
        return False
    try:
        return open_stack(dest).shape == (len(names), side, side)
    except LabError:
        return False


def scaled_stack(src: str | os.PathLike[str], dest: str | os.PathLike[str], n_dates: int,
                 side: int) -> Path:
    """A bigger tile stack built from an existing one, for the scaling experiment.

    Dates are reused cyclically (new names one revisit apart) and each tile is mosaicked
    (``numpy.tile``) or cropped to ``side × side`` px. The kernel's cost does not depend
    on the values, so this times like a prepped stack of that size, without synthesizing
    and prepping gigabytes of SLCs. An existing complete stack is reused.

    Parameters
    ----------
    src : path
        Tile folder to copy from.
    dest : path
        Folder of the scaled stack (made if missing; extra tiles are removed).
    n_dates : int
        Dates in the scaled stack.
    side : int
        Tile side, px.
    """
    import numpy as np

    from labkit.io import open_stack, read_tile, write_geotiff

    stack = open_stack(src)
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    names = _scaled_names(out, n_dates)
    if _is_complete(out, names, side):
        return out
    tiles = {}
    for i, path in enumerate(names):
        k = i % stack.n_dates
        if k not in tiles:
            tile = read_tile(stack.paths[k])
            reps = (-(-side // tile.shape[0]), -(-side // tile.shape[1]))
            tiles[k] = np.tile(tile, reps)[:side, :side]
        write_geotiff(path, tiles[k])
    for extra in set(out.glob(f"*{TILE_SUFFIX}")) - set(names):
        extra.unlink()
    return out


def real_tiles(src: str | os.PathLike[str], root: Path) -> Path:
    """Prep a real SLC stack with the largest square crop ≤ 1024 px that fits (looks 4×4).

    Parameters
    ----------
    src : path
        ISCE2 SLC stack.
    root : Path
        Data folder: the tiles go to ``root/real/intens_<T>x<T>``.
    """
    from labkit.prep import prep_stack
    from labkit.sar.discovery import find_slcs
    from labkit.sar.slc import open_slc_checked

    first, *_ = [open_slc_checked(p) for p in find_slcs(src)]  # every date must open
    rows_looks, cols_looks = REAL_LOOKS
    room = min(first.lines // rows_looks, first.samples // cols_looks)
    fits = [s for s in TILE_SIDES if s <= min(room, REAL_TILE_MAX_SIDE)]
    if not fits:
        raise LabError(f"SLCs in {src} are too small for a {TILE_SIDES[0]}-px tile at 4×4 looks")
    side = fits[-1]
    dest = root / "real" / f"intens_{side}x{side}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    prep_stack(src, dest, (side, side, 0, 0), REAL_LOOKS, progress=sys.stderr.isatty(),
               overwrite=False)
    return dest


def available_backends() -> list[str]:
    """Backends whose module can be imported here (e.g. ``mpi`` needs mpi4py); ``gpu``
    only with a GPU (:func:`labkit.backends.gpu.device_present`).
    """
    import importlib.util

    from labkit.backends import BACKENDS
    from labkit.backends.gpu import device_present

    return [b for b, (module, _, _) in BACKENDS.items() if importlib.util.find_spec(module)
            and (b != "gpu" or device_present())]
