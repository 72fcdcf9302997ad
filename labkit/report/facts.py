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

__all__ = ["Config", "Correctness", "Facts", "Floor", "Machine", "MapStats", "Roofline",
           "RooflinePoint", "Runs", "Scale", "ScalePoint", "ScaleSize", "ScaleVerdict",
           "Spread", "StackData", "Sweep", "SweepPoint", "Variant", "Weak", "WeakPoint",
           "WeakSeries", "XarrayGap"]

FIT_MIN_COUNTS = 3  # distinct worker counts an Amdahl fit needs (2 points fit exactly)
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
    block_rows: int | None = None  # rows per block (None: not recorded)

    @property
    def karp_flatt(self) -> float | None:
        """Karp–Flatt serial fraction ``e = (1/S − 1/p) / (1 − 1/p)`` (None for 1 worker)."""
        if self.workers <= 1 or not self.speedup > 0:
            return None
        return (1.0 / self.speedup - 1.0 / self.workers) / (1.0 - 1.0 / self.workers)

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
    fit: float  # Amdahl serial fraction of its own 1-worker run (NaN: too few counts)
    ceiling: float  # best speed-up over sequential with any number of workers
    counts: int = 1  # distinct worker counts measured

    @property
    def fit_kind(self) -> str:
        """``"serial"`` (more workers never helped), ``"perfect"``, ``"partial"``,
        ``"too_few"`` (2 worker counts: a curve through 2 points is exact, not a fit) or
        ``"none"`` (1 worker count).
        """
        if math.isnan(self.fit):
            return "too_few" if self.counts == FIT_MIN_COUNTS - 1 else "none"
        if self.fit >= SERIAL_FIT_ONE:
            return "serial"
        if self.fit <= SERIAL_FIT_ZERO:
            return "perfect"
        return "partial"

    @property
    def own_ceiling(self) -> float:
        """Best speed-up over its own 1-worker time: 1 / serial fraction."""
        return 1.0 / self.fit

    @property
    def karp_flatt(self) -> tuple[tuple[int, float], ...]:
        """(workers, Karp–Flatt e) of each configuration with more than one worker."""
        return tuple((c.workers, c.karp_flatt) for c in self.configs
                     if c.karp_flatt is not None)

    @property
    def karp_flatt_trend(self) -> str:
        """``"above_one"``, ``"grows"`` or ``"steady"`` over the worker counts (``""``:
        fewer than 2 values).

        ``e`` ≥ 1: slower than one worker, overhead and no serial part explains it;
        growing ``e``: overhead that grows with the workers; steady: a serial part.
        """
        values = [e for _, e in self.karp_flatt]
        if values and max(values) >= 1:
            return "above_one"
        if len(values) < 2:
            return ""
        return "grows" if values[-1] > values[0] + 0.05 else "steady"


@dataclass(frozen=True)
class Runs:
    """Which benchmark runs the informe used: label, first/last timestamp, how many."""

    label: str
    first: str  # ISO 8601 UTC timestamp of the first row used
    last: str
    rows: int  # timed rows (repeats) used, floors included
    sessions: int  # distinct bench sessions (run ids)

    @property
    def first_day(self) -> str:
        """``YYYY-MM-DD HH:MM`` of the first row (UTC)."""
        return self.first[:16].replace("T", " ")

    @property
    def last_day(self) -> str:
        """``YYYY-MM-DD HH:MM`` of the last row (UTC)."""
        return self.last[:16].replace("T", " ")


@dataclass(frozen=True)
class XarrayGap:
    """The ecosystem's way (xarray + Dask, float64) against the fastest labkit design."""

    xarray: Config
    best: Config  # fastest labkit configuration (sequential included)
    float64_mib: float  # one float64 copy of the stack, MiB

    @property
    def ratio(self) -> float:
        """How many times longer the xarray way took (in process)."""
        return self.xarray.wall / self.best.wall

    @property
    def process_ratio(self) -> float | None:
        """The same as whole processes, when both were measured that way."""
        if self.xarray.process_wall is None or self.best.process_wall is None:
            return None
        return self.xarray.process_wall / self.best.process_wall


@dataclass(frozen=True)
class WeakPoint:
    """A variant with ``workers`` workers on ``n_dates`` dates (weak scaling)."""

    workers: int
    n_dates: int
    wall: float
    efficiency: float  # its 1-worker time on n_dates / workers dates / wall
    scaled_speedup: float | None  # sequential on n_dates / wall
    past_physical: bool  # more workers than physical cores


@dataclass(frozen=True)
class WeakSeries:
    """One variant's weak-scaling points, sorted by workers."""

    variant: str
    points: tuple[WeakPoint, ...]

    @property
    def top(self) -> WeakPoint:
        """The point with the most workers that fit the physical cores (else the first)."""
        inside = [p for p in self.points if not p.past_physical]
        return inside[-1] if inside else self.points[0]

    @property
    def past(self) -> WeakPoint | None:
        """The point with the most workers past the physical cores, if any."""
        past = [p for p in self.points if p.past_physical]
        return past[-1] if past else None


@dataclass(frozen=True)
class Weak:
    """The weak-scaling run: work grows with the workers (``dates_per_worker`` each)."""

    dates_per_worker: int
    tile: str
    series: tuple[WeakSeries, ...]
    cores_physical: int | None
    cores_logical: int | None

    @property
    def best(self) -> WeakSeries:
        """The variant with the highest efficiency at its top point."""
        return max(self.series, key=lambda s: s.top.efficiency)

    @property
    def workers(self) -> tuple[int, ...]:
        """Worker counts tried."""
        return tuple(sorted({p.workers for s in self.series for p in s.points}))


@dataclass(frozen=True)
class RooflinePoint:
    """A kernel run on the roofline: counted flops per byte, achieved GFLOP/s."""

    label: str
    intensity: float  # flop / byte
    gflops: float
    attainable: float  # the roof at that intensity for its workers, GFLOP/s

    @property
    def share(self) -> float:
        """Achieved / attainable (1 = on the roof)."""
        return self.gflops / self.attainable if self.attainable > 0 else math.nan


@dataclass(frozen=True)
class Roofline:
    """The machine's measured roof and where the lab's kernels sit under it."""

    bandwidth: float  # GB/s, all cores
    bandwidth_one: float  # GB/s, one thread
    peak: float  # GFLOP/s, all cores
    peak_one: float  # GFLOP/s, one thread
    ridge: float  # flop/byte where the two roofs meet (all cores)
    points: tuple[RooflinePoint, ...]

    @property
    def memory_bound(self) -> tuple[RooflinePoint, ...]:
        """Points left of the ridge: memory traffic limits them."""
        return tuple(p for p in self.points if p.intensity < self.ridge)

    @property
    def compute_bound(self) -> tuple[RooflinePoint, ...]:
        """Points right of the ridge: arithmetic limits them."""
        return tuple(p for p in self.points if p.intensity >= self.ridge)


@dataclass(frozen=True)
class SweepPoint:
    """Speed-up of a backend at ``workers`` over 1 worker with the Lee filter of window K."""

    backend: str
    k: int  # 0: no filter
    workers: int
    speedup: float


@dataclass(frozen=True)
class Sweep:
    """Speed-up against the kernel's weight (Lee window K), per backend."""

    points: tuple[SweepPoint, ...]

    @property
    def backends(self) -> tuple[str, ...]:
        """Backends measured, alphabetical."""
        return tuple(sorted({p.backend for p in self.points}))

    def of(self, backend: str) -> tuple[SweepPoint, ...]:
        """A backend's points sorted by K."""
        return tuple(sorted((p for p in self.points if p.backend == backend),
                            key=lambda p: p.k))

    @property
    def gain(self) -> tuple[SweepPoint, SweepPoint] | None:
        """(statistics only, best filtered) of the backend whose speed-up rose the most
        with a filter; None when no filtered run beat its unfiltered speed-up.
        """
        best: tuple[SweepPoint, SweepPoint] | None = None
        for b in self.backends:
            pts = self.of(b)
            base = next((p for p in pts if p.k == 0), None)
            heavy = [p for p in pts if p.k > 0]
            if base is None or not heavy:
                continue
            top = max(heavy, key=lambda p: p.speedup)
            if top.speedup > base.speedup and (
                    best is None or top.speedup - base.speedup > best[1].speedup - best[0].speedup):
                best = (base, top)
        return best


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
    runs: Runs | None = None
    xarray: XarrayGap | None = None
    weak: Weak | None = None
    roofline: Roofline | None = None
    sweep: Sweep | None = None

    SINGLE_WORKER_GAIN = 1.05  # a 1-worker variant this much faster is worth a sentence
    WITHIN_NOISE_SPEEDUP = 1.05  # below this the best parallel variant "did not pay"
    MODEST_SPEEDUP = 1.5  # below this, suggest more work per byte

    @property
    def io_bound(self) -> bool:
        """True when sequential spent longer reading than computing."""
        return self.seq.read > self.seq.compute

    @property
    def block_rows(self) -> dict[str, tuple[int, ...]]:
        """Block rows recorded per variant (variants that record none left out)."""
        out: dict[str, set[int]] = {}
        for c in self.configs:
            if c.block_rows:
                out.setdefault(c.variant, set()).add(c.block_rows)
        return {v: tuple(sorted(sizes)) for v, sizes in sorted(out.items())}

    @property
    def stats_point(self) -> RooflinePoint | None:
        """The plain statistics kernel on the roofline (its first placed run), if measured."""
        if self.roofline is None:
            return None
        return next((p for p in self.roofline.points if "lee" not in p.label), None)

    @property
    def stats_bound(self) -> str:
        """``"memory"`` or ``"compute"``: where the roofline puts the plain statistics
        kernel; ``""`` when no roofline was measured (then the informe does not say).
        """
        point = self.stats_point
        if point is None or self.roofline is None:
            return ""
        return "memory" if point.intensity < self.roofline.ridge else "compute"

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
