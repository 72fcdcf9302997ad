"""Synthetic SAOCOM-like SLC stack, written exactly as ISCE2 stripmapStack writes a
coarse-coregistered stack: ``DEST/<YYYYMMDD>/<YYYYMMDD>.slc`` (raw complex64,
little-endian, BIP) with its ``.slc.vrt`` and ``.slc.xml``. The scene itself is
:mod:`labkit.sar.scene`.

Beside the dates: ``truth/sigma0.tif`` (σ0 before the change, float32, SLC geometry),
``truth/ps.csv``, ``truth/change.json``, ``truth/zero_strips.csv`` and ``manifest.json``
(written last: its presence means the stack is complete). An interrupted run keeps its
whole dates and resumes.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import LabError
from labkit.io.atomic import atomic_file, write_text_atomic
from labkit.sar.isce import write_isce_headers
from labkit.sar.scene import GEN_BLOCK, Scene

__all__ = [
    "DEFAULT_SEED",
    "GENERATOR_VERSION",
    "MIN_SIZE",
    "PRESETS",
    "Preset",
    "SynthSummary",
    "read_manifest",
    "synthesize",
    "write_stack",
]

GENERATOR_VERSION = 1

DEFAULT_SEED = 2023

MIN_SIZE = 64  # minimum lines and samples (room for every feature)

MANIFEST = "manifest.json"

PENDING = ".synth-pending.json"  # the manifest of a run in progress (resume after Ctrl-C)


@dataclass(frozen=True)
class Preset:
    """A named stack size.

    Attributes
    ----------
    name : str
    dates : int
        Number of acquisitions.
    lines, samples : int
        SLC size (azimuth lines × range samples).
    looks : (int, int)
        Multilook (azimuth, range) used by prep; keyword-only, default (4, 4).
    tile : int
        Side of the square multilooked crop prep makes (multilooked pixels).
    """

    name: str
    dates: int
    lines: int
    samples: int
    looks: tuple[int, int] = field(default=(4, 4), kw_only=True)
    tile: int

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("tiny", 4, 256, 256, tile=64),
        Preset("seed", 5, 4096, 4096, tile=1024),  # the course's experiment: 5 × 1024²
        Preset("dates24", 24, 4096, 4096, tile=1024),
        Preset("large", 24, 8192, 8192, tile=2048),
    )
}


def _resolve(
    preset: str, dates: int | None, size: tuple[int, int] | None, seed: int | None
) -> tuple[Preset, int, int, int, int]:
    key = str(preset).strip().lower()
    if key not in PRESETS:
        raise LabError(f"unknown preset {preset!r}: valid presets are {', '.join(PRESETS)}")
    p = PRESETS[key]
    n = p.dates if dates is None else dates
    try:
        lines, samples = (p.lines, p.samples) if size is None else size
    except (TypeError, ValueError):
        raise LabError(f"size must be (lines, samples), got {size!r}") from None
    seed = DEFAULT_SEED if seed is None else seed
    for name, v in (("dates", n), ("lines", lines), ("samples", samples), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise LabError(f"{name} must be a whole number, got {v!r}")
    if n < 1:
        raise LabError(f"dates must be ≥ 1, got {n}")
    if seed < 0:
        raise LabError(f"seed must be ≥ 0, got {seed}")
    if min(lines, samples) < MIN_SIZE:
        raise LabError(
            f"size {lines}x{samples} is too small for the scene's features: "
            f"lines and samples must be ≥ {MIN_SIZE}"
        )
    return p, int(n), int(lines), int(samples), int(seed)


def _manifest(p: Preset, scene: Scene) -> dict[str, Any]:
    L, W = scene.lines, scene.samples
    tile = min(p.tile, L // p.looks[0], W // p.looks[1])
    return {
        "generator": "labkit.synth",
        "version": GENERATOR_VERSION,
        "preset": p.name,
        "dates": scene.dates,
        "lines": L,
        "samples": W,
        "seed": scene.seed,
        "looks": list(p.looks),
        "tile": tile,
        "dtype": "complex64",
        "slc": [f"{d}/{d}.slc" for d in scene.dates],
        "change": scene.change(),
        "zero_strips": scene.zero_strips(),
        "n_ps": int(scene.ps_line.size),
        "truth": {
            "sigma0": "truth/sigma0.tif",
            "ps": "truth/ps.csv",
            "change": "truth/change.json",
            "zero_strips": "truth/zero_strips.csv",
        },
    }


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def read_manifest(dest: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``manifest.json`` of a complete synthetic stack.

    Raises
    ------
    LabError
        If ``dest`` holds no (complete) synthetic stack.
    """
    path = Path(dest) / MANIFEST
    if not path.is_file():
        raise LabError(
            f"no synthetic stack in {dest} ({MANIFEST} missing): create one with "
            f"`labkit synth {dest}`"
        )
    data = _load_json(path)
    if data is None or data.get("generator") != "labkit.synth" or "dates" not in data:
        raise LabError(f"{path} is not a labkit synth manifest (unreadable or foreign JSON)")
    return data


def _date_complete(dest: Path, date: str, lines: int, samples: int) -> bool:
    slc = dest / date / f"{date}.slc"
    return (
        slc.is_file()
        and slc.stat().st_size == lines * samples * 8
        and slc.with_name(f"{date}.slc.vrt").is_file()
        and slc.with_name(f"{date}.slc.xml").is_file()
    )


def _describe(m: dict[str, Any]) -> str:
    return (
        f"preset {m.get('preset')}, {len(m.get('dates', []))} dates, "
        f"{m.get('lines')}x{m.get('samples')}, seed {m.get('seed')}"
    )


def _check_dest(dest: Path, want: dict[str, Any]) -> str:
    """``"new"``, ``"done"`` or ``"resume"``; LabError if ``dest`` is not ours to write."""
    if dest.exists() and not dest.is_dir():
        raise LabError(f"destination {dest} is a file: give a folder for the stack")
    if not dest.exists():
        return "new"
    entries = [e.name for e in dest.iterdir()]
    if not entries:
        return "new"
    for name in (MANIFEST, PENDING):
        if name in entries:
            have = _load_json(dest / name)
            if have is None or have.get("generator") != "labkit.synth":
                raise LabError(
                    f"{dest / name} is unreadable: remove {dest} or choose another folder"
                )
            if have != want:
                state = "a different" if name == MANIFEST else "an unfinished, different"
                raise LabError(
                    f"{dest} holds {state} synthetic stack ({_describe(have)}); "
                    f"remove it or choose another folder"
                )
            if name == MANIFEST and all(
                _date_complete(dest, d, want["lines"], want["samples"]) for d in want["dates"]
            ) and (dest / want["truth"]["sigma0"]).is_file():
                return "done"
            return "resume"
    raise LabError(
        f"destination {dest} is not empty and is not a synthetic stack "
        f"(it holds {sorted(entries)[0]!r}, ...): give a new or empty folder"
    )


def _write_date(scene: Scene, d: int, dest: Path, bar: Any) -> None:
    date = scene.dates[d]
    tmp = dest / f".{date}.partial"
    final = dest / date
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        slc = tmp / f"{date}.slc"
        buf = np.empty((GEN_BLOCK, scene.samples, 2), dtype=np.float32)
        n_blocks = -(-scene.lines // GEN_BLOCK)
        with open(slc, "wb") as f:
            for b in range(n_blocks):
                out = scene.block(d, b, buf)
                if sys.byteorder != "little":
                    out = out.byteswap()
                f.write(out.data.cast("B"))
                bar.update(out.nbytes)
        write_isce_headers(slc, scene.samples, scene.lines)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_truth(scene: Scene, dest: Path, manifest: dict[str, Any]) -> None:
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    truth = dest / "truth"
    truth.mkdir(exist_ok=True)
    L, W = scene.lines, scene.samples
    target = truth / "sigma0.tif"
    if not target.is_file():
        profile = {
            "driver": "GTiff",
            "dtype": "float32",
            "count": 1,
            "height": L,
            "width": W,
            "transform": Affine.identity(),
            "compress": "deflate",
            "predictor": 3,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
        }
        with atomic_file(target) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NotGeoreferencedWarning: radar geometry
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.update_tags(1, units="linear power (sigma0, before the change)")
                for r0 in range(0, L, GEN_BLOCK):
                    r1 = min(L, r0 + GEN_BLOCK)
                    dst.write(scene.sigma0(r0, r1), 1, window=Window(0, r0, W, r1 - r0))

    with atomic_file(truth / "ps.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["line", "sample", "amplitude"])
        for line, sample, amp in zip(scene.ps_line, scene.ps_sample, scene.ps_amp, strict=True):
            w.writerow([int(line), int(sample), f"{float(amp):.6g}"])

    with atomic_file(truth / "zero_strips.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "edge", "line0", "line1", "sample0", "sample1"])
        for s in manifest["zero_strips"]:
            w.writerow([s["date"], s["edge"], *s["box"]])
    _write_json(truth / "change.json", manifest["change"])


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`synthesize` did.

    Attributes
    ----------
    dest : Path
        The stack folder.
    wrote : bool
        False when the folder already held this very stack (nothing written).
    description : str
        Preset, dates, size, seed and MiB of the stack, in words.
    """

    dest: Path
    wrote: bool
    description: str


def synthesize(
    dest: str | os.PathLike[str],
    preset: str = "tiny",
    *,
    dates: int | None = None,
    size: tuple[int, int] | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> SynthSummary:
    """:func:`write_stack`, telling also whether anything was written (same parameters)."""
    dest, wrote = _write_stack(dest, preset, dates=dates, size=size, seed=seed,
                               progress=progress)
    m = read_manifest(dest)
    mib = len(m["dates"]) * m["lines"] * m["samples"] * 8 / 2**20
    return SynthSummary(dest, wrote, f"{_describe(m)}, {mib:.1f} MiB")


def _write_stack(
    dest: str | os.PathLike[str],
    preset: str = "tiny",
    *,
    dates: int | None = None,
    size: tuple[int, int] | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> tuple[Path, bool]:
    """Write the stack unless ``dest`` holds it already; (dest, whether it wrote)."""
    from tqdm import tqdm

    p, n, lines, samples, seed = _resolve(preset, dates, size, seed)
    scene = Scene(lines, samples, n, seed)
    want = _manifest(p, scene)
    dest = Path(dest)
    state = _check_dest(dest, want)
    if state == "done":
        return dest, False
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabError(f"cannot create {dest}: {exc.strerror}") from None
    if not os.access(dest, os.W_OK | os.X_OK):
        raise LabError(f"cannot write into {dest}: folder is not writable")

    todo = [d for d in range(n) if not _date_complete(dest, scene.dates[d], lines, samples)]
    need = len(todo) * lines * samples * 8
    free = shutil.disk_usage(dest).free
    if need > free:
        raise LabError(
            f"not enough disk space in {dest}: the stack needs {need / 2**30:.1f} GiB, "
            f"{free / 2**30:.1f} GiB free (try a smaller preset, --dates or --size)"
        )
    with contextlib.suppress(FileNotFoundError):
        (dest / MANIFEST).unlink()  # being repaired: not complete until rewritten
    _write_json(dest / PENDING, want)
    with tqdm(
        total=need,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"synth {p.name}",
        file=sys.stderr,
        disable=not progress,
    ) as bar:
        for d in todo:
            bar.set_postfix_str(scene.dates[d], refresh=False)
            _write_date(scene, d, dest, bar)
    _write_truth(scene, dest, want)
    _write_json(dest / MANIFEST, want)
    (dest / PENDING).unlink()
    return dest, True


def write_stack(
    dest: str | os.PathLike[str],
    preset: str = "tiny",
    *,
    dates: int | None = None,
    size: tuple[int, int] | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> Path:
    """Write a synthetic SAOCOM-like SLC stack in the ISCE2 stripmapStack layout.

    Parameters
    ----------
    dest : path
        Stack folder (created). If it already holds this very stack, nothing is written;
        an interrupted run with the same parameters is resumed.
    preset : str, default "tiny"
        One of :data:`PRESETS`: ``tiny`` (4 × 256²), ``seed`` (5 × 4096²), ``dates24``
        (24 × 4096²), ``large`` (24 × 8192², 12 GiB).
    dates : int, optional
        Number of dates (default: the preset's), 8 days apart from 2023-01-05.
    size : (lines, samples), optional
        SLC size in pixels (default: the preset's); each ≥ ``MIN_SIZE``.
    seed : int, optional
        Random seed ≥ 0 (default ``DEFAULT_SEED``); same seed → identical bytes.
    progress : bool, default True
        Show a tqdm progress bar on stderr.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    LabError
        Unknown preset, bad sizes, ``dest`` a file / a foreign non-empty folder / another
        stack, not writable, or not enough disk space.
    """
    return _write_stack(dest, preset, dates=dates, size=size, seed=seed, progress=progress)[0]
