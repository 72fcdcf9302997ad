"""Synthetic SAOCOM-like SLC stack, written exactly as ISCE2 stripmapStack writes a
coarse-coregistered stack: ``DEST/<YYYYMMDD>/<YYYYMMDD>.slc`` (raw complex64,
little-endian, BIP) with its ``.slc.vrt`` and ``.slc.xml``.

The scene is procedural, so any row block can be made without holding the image:

- distributed scatterers: circular complex Gaussian ``S = sqrt(σ0/2)·(n1 + i·n2)``, so
  ``|S|²`` is exponential with mean σ0 (independent speckle on every date);
- σ0 map: agricultural fields (a staggered grid of parcels, −15 to −6.5 dB), an urban
  area of bright building blocks (−4 to +5 dB) split by darker streets, a lake (−27 dB);
- a change area (a rectangle of fields) whose σ0 drops by ``CHANGE_FACTOR`` from the
  middle date on (harvest / flooding);
- persistent scatterers (PS): strong stable amplitude plus small complex noise, amplitude
  dispersion (std/mean of |S| over dates) about 0.1–0.2;
- zero-filled strips (exactly 0+0j) on one edge of about half of the secondary dates,
  as resampled SLCs have (the reference, first date, has none).

Beside the dates: ``truth/sigma0.tif`` (σ0 before the change, float32, SLC geometry),
``truth/ps.csv``, ``truth/change.json``, ``truth/zero_strips.csv`` and ``manifest.json``
(written last: its presence means the stack is complete).

Bytes depend only on (size, dates, seed): every date × generation block (``GEN_BLOCK``
lines) draws from its own ``numpy.random.SeedSequence(seed, spawn_key=...)`` stream.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import math
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import Interrupted, LabError
from labkit.isce import write_isce_headers

__all__ = [
    "CHANGE_FACTOR",
    "DEFAULT_SEED",
    "GEN_BLOCK",
    "GENERATOR_VERSION",
    "MIN_SIZE",
    "PRESETS",
    "Preset",
    "cli_main",
    "read_manifest",
    "stack_dates",
    "write_stack",
]

GENERATOR_VERSION = 1
DEFAULT_SEED = 2023
GEN_BLOCK = 256  # lines per generation block (fixed: the bytes never depend on it)
MIN_SIZE = 64  # minimum lines and samples (room for every feature)
START_DATE = dt.date(2023, 1, 5)  # first acquisition
REVISIT_DAYS = 8  # SAOCOM-1A/1B constellation revisit, days
CHANGE_FACTOR = 0.2  # σ0 multiplier inside the change area after the change date (−7 dB)
MANIFEST = "manifest.json"
PENDING = ".synth-pending.json"  # the manifest of a run in progress (resume after Ctrl-C)

# σ0 levels, linear power (dB in comments)
_FIELD_DB = (-15.0, -6.5)  # agricultural parcels, uniform in dB
_BUILDING_DB = (-4.0, 5.0)  # urban blocks
_STREET_S0 = 0.05  # −13 dB
_WATER_S0 = 0.002  # −27 dB, calm water
_PS_AMP = (4.0, 12.0)  # PS amplitude |S| (σ0 of the clutter is 0.002–3)
_PS_DISPERSION = (0.1, 0.2)  # target amplitude dispersion std(|S|)/mean(|S|)

# independent random streams (spawn_key[0])
_STREAM_SLC, _STREAM_MAP, _STREAM_PS, _STREAM_STRIPS = 1, 2, 3, 4


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


def stack_dates(n: int, start: dt.date = START_DATE) -> list[str]:
    """``n`` acquisition dates ``YYYYMMDD``, ``REVISIT_DAYS`` apart from ``start``."""
    return [(start + dt.timedelta(days=REVISIT_DAYS * i)).strftime("%Y%m%d") for i in range(n)]


def _q(x: float, q: int = 4) -> int:
    """Round to a multiple of ``q`` pixels (feature edges fall on multilook cells)."""
    return int(round(x / q)) * q


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@dataclass(frozen=True)
class _Box:
    """Half-open pixel rectangle ``[l0, l1) × [s0, s1)``."""

    l0: int
    l1: int
    s0: int
    s1: int

    def contains(self, line: int, sample: int) -> bool:
        return self.l0 <= line < self.l1 and self.s0 <= sample < self.s1

    def as_list(self) -> list[int]:
        return [self.l0, self.l1, self.s0, self.s1]


class _Scene:
    """The procedural scene of one (lines, samples, dates, seed): σ0 by row block, PS,
    change, zero strips. Small arrays only (parcel and block values, PS list)."""

    def __init__(self, lines: int, samples: int, n_dates: int, seed: int) -> None:
        L, W = lines, samples
        self.lines, self.samples, self.seed = L, W, seed
        self.dates = stack_dates(n_dates)
        rng = _rng(seed, _STREAM_MAP)

        # fields: parcels ph × pw, each parcel row shifted so the boundaries stagger
        self.ph, self.pw = max(32, _q(L / 16)), max(32, _q(W / 16))
        nr, nc = -(-L // self.ph), -(-W // self.pw) + 1
        self.shift = rng.integers(0, self.pw // 4, size=nr) * 4
        self.fields = (10 ** (rng.uniform(*_FIELD_DB, size=(nr, nc)) / 10)).astype(np.float32)

        # urban: blocks of side ub (street width st on their top/left sides)
        self.urban = _Box(_q(0.08 * L), _q(0.40 * L), _q(0.55 * W), _q(0.92 * W))
        self.ub = max(32, _q(min(L, W) / 48))
        self.street = max(4, _q(self.ub / 4))
        nbl = -(-(self.urban.l1 - self.urban.l0) // self.ub)
        nbs = -(-(self.urban.s1 - self.urban.s0) // self.ub)
        self.buildings = (10 ** (rng.uniform(*_BUILDING_DB, size=(nbl, nbs)) / 10)).astype(
            np.float32
        )

        # lake: ellipse (centre, semi-axes) in pixels
        self.lake = (0.72 * L, 0.27 * W, 0.13 * L, 0.19 * W)

        # change area: a rectangle of fields, from the middle date on
        self.change_box = _Box(_q(0.52 * L), _q(0.78 * L), _q(0.58 * W), _q(0.86 * W))
        self.change_index = n_dates // 2 if n_dates >= 2 else None

        # zero strips: on n//2 of the secondary dates, one edge each
        self.strip_max = (max(16, L // 48), max(16, W // 48))  # (lines, samples)
        self.strips: dict[int, tuple[str, _Box]] = {}
        srng = _rng(seed, _STREAM_STRIPS)
        picked = srng.permutation(np.arange(1, n_dates))[: n_dates // 2] if n_dates > 1 else []
        for d in sorted(int(i) for i in picked):
            edge = ("left", "right", "top", "bottom")[int(srng.integers(4))]
            n_max = self.strip_max[0] if edge in ("top", "bottom") else self.strip_max[1]
            width = int(srng.integers(max(8, n_max // 3), n_max + 1))
            box = {
                "left": _Box(0, L, 0, width),
                "right": _Box(0, L, W - width, W),
                "top": _Box(0, width, 0, W),
                "bottom": _Box(L - width, L, 0, W),
            }[edge]
            self.strips[d] = (edge, box)

        self._place_ps(_rng(seed, _STREAM_PS))

    # -- geometry -------------------------------------------------------------------
    def _in_lake(self, line: float, sample: float) -> bool:
        cl, cs, al, as_ = self.lake
        return ((line - cl) / al) ** 2 + ((sample - cs) / as_) ** 2 <= 1.0

    def _is_building(self, line: int, sample: int) -> bool:
        u = self.urban
        return (
            u.contains(line, sample)
            and (line - u.l0) % self.ub >= self.street
            and (sample - u.s0) % self.ub >= self.street
        )

    def _place_ps(self, rng: np.random.Generator) -> None:
        L, W = self.lines, self.samples
        n = int(np.clip(round(20 + 40 * (math.sqrt(L * W) - 256) / (4096 - 256)), 20, 60))
        ml, ms = self.strip_max[0] + 4, self.strip_max[1] + 4  # never inside a zero strip
        n_urban = (2 * n) // 3
        taken: set[tuple[int, int]] = set()
        rows: list[tuple[int, int]] = []
        for _ in range(200 * n):
            if len(rows) == n:
                break
            line, sample = int(rng.integers(ml, L - ml)), int(rng.integers(ms, W - ms))
            urban = len(rows) < n_urban
            ok = (
                self._is_building(line, sample)
                if urban
                else not (
                    self.urban.contains(line, sample)
                    or self._in_lake(line, sample)
                    or self.change_box.contains(line, sample)
                )
            )
            near = any(abs(line - a) < 3 and abs(sample - b) < 3 for a, b in taken)
            if ok and not near:
                taken.add((line, sample))
                rows.append((line, sample))
        rows.sort()
        k = len(rows)
        self.ps_line = np.array([r[0] for r in rows], dtype=np.int64)
        self.ps_sample = np.array([r[1] for r in rows], dtype=np.int64)
        self.ps_amp = rng.uniform(*_PS_AMP, size=k).astype(np.float32)
        phase = rng.uniform(-np.pi, np.pi, size=k)
        self.ps_value = (self.ps_amp * np.exp(1j * phase)).astype(np.complex64)
        # noise std per real component: dispersion ≈ sigma / amplitude
        self.ps_sigma = (self.ps_amp * rng.uniform(*_PS_DISPERSION, size=k)).astype(np.float32)

    # -- σ0 by row block ------------------------------------------------------------
    def sigma0(self, r0: int, r1: int, changed: bool = False) -> np.ndarray:
        """σ0 (linear, float32) of lines ``r0 .. r1``, all samples; ``changed`` applies the
        change area's drop."""
        W = self.samples
        rows = np.arange(r0, r1)[:, None]
        pr = rows // self.ph
        s = self.fields[pr, (np.arange(W)[None, :] + self.shift[pr]) // self.pw]

        u = self.urban
        a0, a1 = max(r0, u.l0), min(r1, u.l1)
        if a0 < a1:
            lr = np.arange(a0, a1)[:, None] - u.l0
            lc = np.arange(u.s1 - u.s0)[None, :]
            street = (lr % self.ub < self.street) | (lc % self.ub < self.street)
            blocks = self.buildings[lr // self.ub, lc // self.ub]
            s[a0 - r0 : a1 - r0, u.s0 : u.s1] = np.where(street, np.float32(_STREET_S0), blocks)

        cl, cs, al, as_ = self.lake
        a0, a1 = max(r0, math.floor(cl - al)), min(r1, math.ceil(cl + al) + 1)
        if a0 < a1:
            c0, c1 = max(0, math.floor(cs - as_)), min(W, math.ceil(cs + as_) + 1)
            lr = (np.arange(a0, a1)[:, None] - cl) / al
            lc = (np.arange(c0, c1)[None, :] - cs) / as_
            sub = s[a0 - r0 : a1 - r0, c0:c1]
            sub[lr**2 + lc**2 <= 1.0] = _WATER_S0

        b = self.change_box
        a0, a1 = max(r0, b.l0), min(r1, b.l1)
        if changed and a0 < a1:
            s[a0 - r0 : a1 - r0, b.s0 : b.s1] *= np.float32(CHANGE_FACTOR)
        return s

    # -- one block of one date ------------------------------------------------------
    def block(self, d: int, b: int, buf: np.ndarray) -> np.ndarray:
        """Fill ``buf`` (≥ GEN_BLOCK × samples × 2 float32) with block ``b`` of date ``d``;
        returns the (lines, samples, 2) float32 view holding it (complex64 byte layout)."""
        r0, r1 = b * GEN_BLOCK, min(self.lines, (b + 1) * GEN_BLOCK)
        out = buf[: r1 - r0]
        changed = self.change_index is not None and d >= self.change_index
        amp = self.sigma0(r0, r1, changed)
        amp *= np.float32(0.5)
        np.sqrt(amp, out=amp)
        rng = _rng(self.seed, _STREAM_SLC, d, b)
        rng.standard_normal(out=out, dtype=np.float32)
        out *= amp[:, :, None]
        slc = out.view(np.complex64)[..., 0]

        sel = (self.ps_line >= r0) & (self.ps_line < r1)
        if sel.any():
            noise = rng.standard_normal((int(sel.sum()), 2), dtype=np.float32)
            noise *= self.ps_sigma[sel][:, None]
            slc[self.ps_line[sel] - r0, self.ps_sample[sel]] = (
                self.ps_value[sel] + noise.view(np.complex64)[:, 0]
            )

        if d in self.strips:
            box = self.strips[d][1]
            a0, a1 = max(r0, box.l0), min(r1, box.l1)
            if a0 < a1:
                slc[a0 - r0 : a1 - r0, box.s0 : box.s1] = 0
        return out

    # -- description ----------------------------------------------------------------
    def change(self) -> dict[str, Any] | None:
        if self.change_index is None:
            return None
        return {
            "date": self.dates[self.change_index],
            "box": self.change_box.as_list(),
            "factor": CHANGE_FACTOR,
        }

    def zero_strips(self) -> list[dict[str, Any]]:
        return [
            {"date": self.dates[d], "edge": edge, "box": box.as_list()}
            for d, (edge, box) in sorted(self.strips.items())
        ]


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


def _manifest(p: Preset, scene: _Scene) -> dict[str, Any]:
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
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


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


def _write_date(scene: _Scene, d: int, dest: Path, bar: Any) -> None:
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
                f.write(memoryview(out).cast("B"))
                bar.update(out.nbytes)
        write_isce_headers(slc, scene.samples, scene.lines)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_truth(scene: _Scene, dest: Path, manifest: dict[str, Any]) -> None:
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    truth = dest / "truth"
    truth.mkdir(exist_ok=True)
    L, W = scene.lines, scene.samples
    target = truth / "sigma0.tif"
    if not target.is_file():
        tmp = truth / ".sigma0.tif.tmp"
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
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NotGeoreferencedWarning: radar geometry
                with rasterio.open(tmp, "w", **profile) as dst:
                    dst.update_tags(1, units="linear power (sigma0, before the change)")
                    for r0 in range(0, L, GEN_BLOCK):
                        r1 = min(L, r0 + GEN_BLOCK)
                        dst.write(scene.sigma0(r0, r1), 1, window=Window(0, r0, W, r1 - r0))
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    ps_tmp = truth / ".ps.csv.tmp"
    with open(ps_tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["line", "sample", "amplitude"])
        for line, sample, amp in zip(scene.ps_line, scene.ps_sample, scene.ps_amp, strict=True):
            w.writerow([int(line), int(sample), f"{float(amp):.6g}"])
    os.replace(ps_tmp, truth / "ps.csv")

    zs_tmp = truth / ".zero_strips.csv.tmp"
    with open(zs_tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "edge", "line0", "line1", "sample0", "sample1"])
        for s in manifest["zero_strips"]:
            w.writerow([s["date"], s["edge"], *s["box"]])
    os.replace(zs_tmp, truth / "zero_strips.csv")
    _write_json(truth / "change.json", manifest["change"])


def _write_stack(
    dest: str | os.PathLike[str],
    preset: str = "tiny",
    *,
    dates: int | None = None,
    size: tuple[int, int] | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> tuple[Path, bool]:
    """:func:`write_stack`, also telling whether anything was written."""
    from tqdm import tqdm

    p, n, lines, samples, seed = _resolve(preset, dates, size, seed)
    scene = _Scene(lines, samples, n, seed)
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


def cli_main(args: argparse.Namespace) -> int:
    """``labkit synth DEST [--preset NAME] [--dates N] [--size LxS] [--seed K]``."""
    t0 = time.perf_counter()
    try:
        dest, wrote = _write_stack(
            args.dest,
            args.preset,
            dates=args.dates,
            size=args.size,
            seed=args.seed,
            progress=sys.stderr.isatty(),
        )
    except KeyboardInterrupt:
        if (Path(args.dest) / PENDING).is_file():
            raise Interrupted("synth stopped by Ctrl-C; finished dates kept, no partial "
                              "date: the same command resumes") from None
        raise Interrupted("synth stopped by Ctrl-C, nothing written") from None
    m = read_manifest(dest)
    what = f"{_describe(m)}, {len(m['dates']) * m['lines'] * m['samples'] * 8 / 2**20:.1f} MiB"
    if wrote:
        print(f"wrote {dest} ({what}) in {time.perf_counter() - t0:.1f} s")
    else:
        print(f"{dest} already holds this stack ({what}): nothing to do")
    return 0
