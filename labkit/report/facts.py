"""The informe's facts: every number it quotes, as frozen dataclasses.

:func:`labkit.report.analyze.analyze` builds a :class:`Facts` from the benchmark CSV;
the templates of each language only choose words around these numbers, so both
languages quote the same facts. Times are seconds, sizes MiB (2**20 bytes), ratios
plain floats (``1.5`` = 1.5×) and shares fractions of 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Config", "Correctness", "Facts", "Floor", "Machine", "MapStats", "Scale",
           "ScalePoint", "ScaleSize", "ScaleVerdict", "Spread", "StackData", "Variant"]

SERIAL_FIT_ONE = 0.995  # an Amdahl serial fraction above this reads as "1": no scaling
SERIAL_FIT_ZERO = 0.005  # ... and below this as "0": perfect scaling so far


@dataclass(frozen=True)
class Machine:
    """Where the benchmark ran (the CSV's machine columns of the last timed row)."""

    host: str
    cpu_model: str
    cores_physical: int | str
    cores_logical: int | str
    versions: str
    threads_env: str  # "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=;..."

    @property
    def thread_settings(self) -> tuple[str, ...]:
        """The thread variables that were set, e.g. ``("OMP_NUM_THREADS=1",)``."""
        pairs = (kv for kv in (self.threads_env or "").split(";") if "=" in kv)
        return tuple(kv for kv in pairs if kv.split("=", 1)[1])


@dataclass(frozen=True)
class StackData:
    """The stack that was timed: ``n_dates`` tiles of ``rows × cols`` float32 pixels."""

    n_dates: int
    tile: str  # "ROWSxCOLS"
    rows: int
    cols: int
    mib: float
    bytes: int
    preset: str | None  # synthetic preset, None for real or unknown data
    tiles: str | None  # tile folder, quoted in the Reproduce section


@dataclass(frozen=True)
class Config:
    """One in-process configuration (variant × workers): medians of its repeats, in s."""

    variant: str
    backend: str
    workers: int
    repeats: int
    wall: float
    wall_min: float
    wall_max: float
    startup: float
    read: float
    compute: float
    merge: float
    max_abs_diff: float | None  # vs sequential; inf when the NaN pattern differs
    speedup: float  # sequential wall / this wall
    efficiency: float  # speed-up per worker
    process_wall: float | None  # whole-process median, when measured
    oversubscribed: bool  # more workers than logical cores
    read_floor_ratio: float | None  # wall / time to read the files once

    @property
    def overhead(self) -> float:
        """Seconds starting workers plus merging/transferring results."""
        return self.startup + self.merge

    @property
    def process_extra(self) -> float | None:
        """Seconds a whole process adds to the in-process time (start, imports, writes)."""
        return None if self.process_wall is None else self.process_wall - self.wall

    @property
    def process_extra_share(self) -> float | None:
        """Share of the whole-process time that is not the in-process run."""
        extra = self.process_extra
        return None if extra is None or not self.process_wall else extra / self.process_wall

    @property
    def spread(self) -> float:
        """Run-to-run spread: (max - min) / median of the wall times."""
        return (self.wall_max - self.wall_min) / self.wall

    @property
    def read_share(self) -> float:
        """Share of the wall time spent reading."""
        return self.read / max(self.wall, 1e-12)

    @property
    def compute_share(self) -> float:
        """Share of the wall time spent in the kernel."""
        return self.compute / max(self.wall, 1e-12)

    @property
    def nan_mismatch(self) -> bool:
        """True when the result's NaN pattern differs from sequential's (a bug)."""
        return self.max_abs_diff is not None and math.isinf(self.max_abs_diff)


@dataclass(frozen=True)
class Variant:
    """A parallel variant over its worker counts, with its Amdahl fit."""

    name: str
    configs: tuple[Config, ...]
    top: Config  # most workers that fit the cores
    best: Config  # fastest
    fit: float  # Amdahl serial fraction of its own 1-worker run (NaN: one worker count)
    ceiling: float  # best speed-up over sequential with any number of workers

    @property
    def fit_kind(self) -> str:
        """``"serial"`` (more workers never helped), ``"perfect"``, ``"partial"`` or ``"none"``."""
        if math.isnan(self.fit):
            return "none"
        if self.fit >= SERIAL_FIT_ONE:
            return "serial"
        if self.fit <= SERIAL_FIT_ZERO:
            return "perfect"
        return "partial"

    @property
    def own_ceiling(self) -> float:
        """Best speed-up over its own 1-worker time: 1 / serial fraction."""
        return 1.0 / self.fit


@dataclass(frozen=True)
class Floor:
    """A lower bound measured in the same run: seconds and GB/s for the stack's bytes."""

    wall: float
    gbps: float


@dataclass(frozen=True)
class Spread:
    """The widest run-to-run spread among the configurations."""

    ratio: float  # (max - min) / median
    variant: str
    workers: int


@dataclass(frozen=True)
class Correctness:
    """How each variant's worst result compares with sequential."""

    exact: tuple[str, ...]  # max |Δ| = 0
    rounding: tuple[str, ...]  # 0 < max |Δ| < inf
    worst_rounding: Config | None  # the largest finite max |Δ|
    broken: tuple[str, ...]  # NaN pattern differs


@dataclass(frozen=True)
class ScalePoint:
    """A variant at its most workers on one stack size of the scaled experiment."""

    n_dates: int
    tile: str
    mib: float
    workers: int
    speedup: float
    wall: float
    t_seq: float


@dataclass(frozen=True)
class ScaleSize:
    """One row of the scaling table: a stack size and each variant's speed-up there."""

    n_dates: int
    tile: str
    mib: float
    t_seq: float
    speedups: tuple[float | None, ...]  # in the order of Scale.variants; None: not run


@dataclass(frozen=True)
class ScaleVerdict:
    """From which size a variant beats sequential (``first``), and its best size."""

    variant: str
    first: ScalePoint | None
    top: ScalePoint
    largest_mib: float  # largest stack it ran on


@dataclass(frozen=True)
class Scale:
    """The scaled experiment: the same kernel on bigger stacks."""

    variants: tuple[str, ...]
    sizes: tuple[ScaleSize, ...]
    verdicts: tuple[ScaleVerdict, ...]

    @property
    def break_even(self) -> ScaleVerdict | None:
        """The variant that beats sequential on the smallest stack, if any does."""
        paying = [v for v in self.verdicts if v.first is not None]
        if not paying:
            return None
        return min(paying, key=lambda v: (v.first.mib if v.first else 0.0, v.variant))

    @property
    def largest_mib(self) -> float:
        """The largest stack size tried, MiB."""
        return max(s.mib for s in self.sizes)


@dataclass(frozen=True)
class MapStats:
    """PS candidates of ``maps.png``: amplitude dispersion below ``threshold``."""

    threshold: float
    n_dates: int
    candidates: int
    pixels: int
    true_ps: int | None = None  # synthetic data: how many PS were planted
    hits: int | None = None  # ... and how many of them were found

    TOO_NOISY_SHARE = 0.01  # more candidates than this share of pixels: D_A is noise

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MapStats:
        """From the ``maps.json`` written beside ``maps.png``."""
        return cls(threshold=data["threshold"], n_dates=int(data["n_dates"]),
                   candidates=int(data["candidates"]), pixels=int(data["pixels"]),
                   true_ps=data.get("true_ps") or None, hits=data.get("hits"))

    @property
    def percent(self) -> float:
        """Candidates as a percentage of the image's pixels."""
        return 100.0 * self.candidates / max(1, self.pixels)

    @property
    def too_noisy(self) -> bool:
        """True when so many pixels pass that D_A cannot be selecting PS."""
        return self.percent / 100.0 > self.TOO_NOISY_SHARE


@dataclass(frozen=True)
class Facts:
    """Everything the informe says, computed from one benchmark CSV."""

    machine: Machine
    cores: int  # logical cores: at most this many workers run at once
    data: StackData
    label: str
    seq: Config  # the sequential baseline
    configs: tuple[Config, ...]  # sequential first, then by variant and workers
    variants: Mapping[str, Variant]  # parallel variants by name
    best: Config | None  # fastest parallel configuration (more than 1 worker if any)
    best_single: Config | None  # fastest 1-worker variant faster than sequential
    read_floor: Floor | None  # reading the tile files once (page cache warm)
    memory_floor: Floor | None  # streaming the same bytes through memory with NumPy
    has_process: bool  # whole-process times were measured
    workers: tuple[int, ...]
    repeats: int
    spread: Spread
    correctness: Correctness
    scale: Scale | None
    maps: MapStats | None

    SINGLE_WORKER_GAIN = 1.05  # a 1-worker variant this much faster is worth a sentence
    WITHIN_NOISE_SPEEDUP = 1.05  # below this the best parallel variant "did not pay"
    MODEST_SPEEDUP = 1.5  # below this, suggest more work per byte

    @property
    def io_bound(self) -> bool:
        """True when sequential spent longer reading than computing."""
        return self.seq.read > self.seq.compute

    @property
    def single_worker_gain(self) -> Config | None:
        """A 1-worker variant clearly faster than sequential (its gain is not parallelism)."""
        one = self.best_single
        return one if one is not None and one.speedup > self.SINGLE_WORKER_GAIN else None

    @property
    def parallel_paid(self) -> bool:
        """True when the best parallel variant was clearly faster than sequential."""
        return self.best is not None and self.best.speedup >= self.WITHIN_NOISE_SPEEDUP

    @property
    def needs_more_work(self) -> bool:
        """True when parallelism gained little: the kernel needs more work per byte."""
        return self.best is None or self.best.speedup < self.MODEST_SPEEDUP

    @property
    def worst_process_overhead(self) -> Config | None:
        """The parallel configuration whose whole process added the most seconds."""
        timed = [c for c in self.configs
                 if c.backend != "sequential" and c.process_wall is not None]
        return max(timed, key=lambda c: c.process_extra or 0.0) if timed else None

    @property
    def most_oversubscribed(self) -> Config | None:
        """The configuration with the most workers beyond the logical cores."""
        over = [c for c in self.configs if c.oversubscribed]
        return max(over, key=lambda c: c.workers) if over else None

    @property
    def mpi_variants(self) -> tuple[Variant, ...]:
        """The MPI variants (one per split)."""
        return tuple(v for v in self.variants.values() if v.name.startswith("mpi"))

    @property
    def backends(self) -> tuple[str, ...]:
        """Backends timed, sequential first then alphabetical."""
        names = {c.backend for c in self.configs}
        return tuple(sorted(names, key=lambda b: (b != "sequential", b)))

    @property
    def compute_to_memory_floor(self) -> float | None:
        """Sequential kernel time over the memory floor (how far from streaming speed)."""
        floor = self.memory_floor
        return self.seq.compute / floor.wall if floor and floor.wall > 0 else None

    @property
    def closing_noise(self) -> float:
        """The larger spread of sequential and the best parallel configuration."""
        runs = [self.seq] + ([self.best] if self.best else [])
        return max(c.spread for c in runs)

    @property
    def best_within_noise(self) -> bool:
        """True when best vs sequential differs by less than the run-to-run spread."""
        if self.best is None:
            return False
        return abs(self.best.wall - self.seq.wall) / self.seq.wall < self.closing_noise
