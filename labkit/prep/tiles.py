"""Tiles of the synthetic presets: which tile sides suit a preset, and making sure a
preset's stack and tiles exist (for ``make data``, the notebooks and the report).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from labkit import config
from labkit.errors import LabError
from labkit.prep.stack import PrepSummary, prep_stack

if TYPE_CHECKING:
    from labkit.sar import synth

__all__ = ["ensure_tiles", "prep_preset", "tile_sizes"]


def _preset(preset: str) -> synth.Preset:
    from labkit.sar import synth

    key = str(preset).strip().lower()
    if key not in synth.PRESETS:
        raise LabError(f"unknown preset {preset!r}: valid presets are {', '.join(synth.PRESETS)}")
    return synth.PRESETS[key]


def _fitting_sides(preset: str) -> list[int]:
    p = _preset(preset)
    side = min(p.lines // p.looks[0], p.samples // p.looks[1])
    return [s for s in config.TILE_SIDES if s <= side]


def tile_sizes(preset: str) -> list[int]:
    """Square tile sides offered for a preset: the three largest of ``config.TILE_SIDES`` that
    fit its multilooked image (px), e.g. tiny → [16, 32, 64], seed → [256, 512, 1024].
    """
    return _fitting_sides(preset)[-3:]


def ensure_tiles(
    preset: str = "seed",
    tile: int | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
    jobs: int = 1,
    progress: bool = True,
) -> Path:
    """Make sure a preset's intensity tiles exist; return their folder.

    :func:`prep_preset`, keeping tiles that are already up to date (same parameters).
    """
    return prep_preset(preset, tile, root=root, jobs=jobs, progress=progress,
                       overwrite=False)[0]


def prep_preset(
    preset: str = "seed",
    tile: int | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
    jobs: int = 1,
    progress: bool = True,
    overwrite: bool = True,
) -> tuple[Path, PrepSummary]:
    """Synthesize a preset's SLC stack if missing and prep its tiles.

    Synthesizes ``root/<preset>/slc`` (:func:`labkit.sar.synth.write_stack`, a quick no-op
    when complete) and preps ``root/<preset>/intens_<T>x<T>`` with crop ``T,T,0,0`` and
    the preset's looks.

    Parameters
    ----------
    preset : str, default "seed"
        ``tiny`` | ``seed`` | ``dates24`` | ``large``.
    tile : int, optional
        Tile side T in multilooked px (default: the preset's); one of ``config.TILE_SIDES``
        that fits the image.
    root : path, optional
        Data folder (default :func:`labkit.paths.data_dir`).
    jobs : int, default 1
        Dates prepared in parallel.
    progress : bool, default True
        Show progress bars.
    overwrite : bool, default True
        False: keep tiles that are already up to date.

    Returns
    -------
    (Path, PrepSummary)
        The tile folder and what prep did.
    """
    from labkit.paths import data_dir
    from labkit.sar import synth

    p = _preset(preset)
    t = p.tile if tile is None else tile
    fits = _fitting_sides(p.name)
    if t not in fits:
        raise LabError(f"tile {t!r} does not suit preset {p.name}: valid sides are "
                       f"{', '.join(map(str, fits))}")
    base = (Path(root) if root is not None else data_dir()) / p.name
    slc = base / "slc"
    synth.write_stack(slc, p.name, progress=progress)
    dest = base / f"intens_{t}x{t}"
    summary = prep_stack(slc, dest, (t, t, 0, 0), p.looks, jobs=jobs, progress=progress,
                         overwrite=overwrite)
    return dest, summary
