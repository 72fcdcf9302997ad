"""The procedural scene of the synthetic SAOCOM-like stack: any row block of any date can
be made without holding the image.

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

Bytes depend only on (size, dates, seed): every date × generation block (``GEN_BLOCK``
lines) draws from its own ``numpy.random.SeedSequence(seed, spawn_key=...)`` stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.config import acquisition_dates

__all__ = ["CHANGE_FACTOR", "GEN_BLOCK", "Scene"]

GEN_BLOCK = 256  # lines per generation block (fixed: the bytes never depend on it)

CHANGE_FACTOR = 0.2  # σ0 multiplier inside the change area after the change date (−7 dB)

# σ0 levels, linear power (dB in comments)
_FIELD_DB = (-15.0, -6.5)  # agricultural parcels, uniform in dB

_BUILDING_DB = (-4.0, 5.0)  # urban blocks

_STREET_S0 = 0.05  # −13 dB

_WATER_S0 = 0.002  # −27 dB, calm water

_PS_AMP = (4.0, 12.0)  # PS amplitude |S| (σ0 of the clutter is 0.002–3)

_PS_DISPERSION = (0.1, 0.2)  # target amplitude dispersion std(|S|)/mean(|S|)

# independent random streams (spawn_key[0])
_STREAM_SLC, _STREAM_MAP, _STREAM_PS, _STREAM_STRIPS = 1, 2, 3, 4


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


class Scene:
    """The procedural scene of one (lines, samples, dates, seed): σ0 by row block, PS,
    change, zero strips. Small arrays only (parcel and block values, PS list).
    """

    def __init__(self, lines: int, samples: int, n_dates: int, seed: int) -> None:
        L, W = lines, samples
        self.lines, self.samples, self.seed = L, W, seed
        self.dates = acquisition_dates(n_dates)
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
        picked: Any = (srng.permutation(np.arange(1, n_dates))[: n_dates // 2]
                       if n_dates > 1 else [])
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
        change area's drop.
        """
        W = self.samples
        rows = np.arange(r0, r1)[:, None]
        pr = rows // self.ph
        s = self.fields[pr, (np.arange(W)[None, :] + self.shift[pr]) // self.pw]

        u = self.urban
        a0, a1 = max(r0, u.l0), min(r1, u.l1)
        if a0 < a1:
            lr: Any = np.arange(a0, a1)[:, None] - u.l0
            lc: Any = np.arange(u.s1 - u.s0)[None, :]
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
        returns the (lines, samples, 2) float32 view holding it (complex64 byte layout).
        """
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
        """The change: its date, box and σ0 factor (None with fewer than 2 dates)."""
        if self.change_index is None:
            return None
        return {
            "date": self.dates[self.change_index],
            "box": self.change_box.as_list(),
            "factor": CHANGE_FACTOR,
        }

    def zero_strips(self) -> list[dict[str, Any]]:
        """The zero-filled strips: date, edge and box of each."""
        return [
            {"date": self.dates[d], "edge": edge, "box": box.as_list()}
            for d, (edge, box) in sorted(self.strips.items())
        ]
