"""What the notebook panels do, without any widget: tiles, pools, timed runs, CSV rows.

Every step is the function the rest of labkit already uses: tiles from
:func:`labkit.prep.ensure_tiles`; pools from :func:`labkit.backends.make_pool` and
:func:`labkit.backends.mpi.engines.start_cluster`, kept across runs; timing (warm-up,
repeats, max |Δ| against the sequential reference) by :func:`labkit.bench.time_backend`, as ``labkit
bench`` does; CSV rows and medians by :func:`labkit.bench.row_from_result`,
:func:`labkit.bench.append_csv` and :func:`labkit.bench.summarize`.

:class:`RunController` serves :class:`labkit.ui.ControlPanel`, :class:`MpiController`
:class:`labkit.ui.MpiPanel` and :class:`PrepController` :class:`labkit.ui.PrepPanel`. A
panel turns its widget values into :class:`RunOptions` and shows what comes back; what a
controller is doing is told, one line at a time, to its ``notify`` callable.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labkit import bench
from labkit.bench.runner import startup_of
from labkit.errors import LabError

__all__ = [
    "Measurement",
    "MpiController",
    "PrepController",
    "RunController",
    "RunOptions",
    "check_backends",
    "default_tile",
    "describe_runs",
    "per_rank_rows",
    "tile_choices",
]

Notify = Callable[[str], None]  # told one line of what is going on
Progress = Callable[[int, int], None]  # told (runs done, runs in all)
PathLike = str | os.PathLike[str]


def _quiet(_text: str) -> None:
    """The default ``notify``: says nothing."""


# -- choices -------------------------------------------------------------------------------
def check_backends(backends: Sequence[str]) -> None:
    """Refuse an empty list or names outside :data:`labkit.backends.BACKENDS` (LabError)."""
    from labkit.backends import BACKENDS

    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise LabError(f"unknown backend(s) {unknown}: valid are {', '.join(BACKENDS)}")


def variants_of(backend: str) -> tuple[str, tuple[str, ...]]:
    """``("strategy", strategies)`` or ``("split", splits)`` of ``backend`` (may be empty)."""
    from labkit.backends import BACKENDS

    _, strategies, splits = BACKENDS[backend]
    return ("split", splits) if splits else ("strategy", strategies)


def tile_choices(preset: str) -> list[int]:
    """Tile sides offered for ``preset`` (px): :func:`labkit.prep.tile_sizes`."""
    from labkit.prep import tile_sizes

    return list(tile_sizes(preset))


def default_tile(preset: str, sizes: Sequence[int]) -> int:
    """The preset's own tile side (px) when offered, else the first of ``sizes``."""
    try:
        from labkit.sar.synth import PRESETS

        side = PRESETS[preset].tile
    except (ImportError, KeyError, AttributeError):
        side = None
    return side if side is not None and side in sizes else sizes[0]


@dataclass(frozen=True)
class RunOptions:
    """One configuration to time.

    Attributes
    ----------
    backend : str
    strategy, split : str or None
        The backend's variant (``multiprocessing``: strategy; ``mpi``: split).
    workers : int
        Processes, threads or ranks (1 for ``sequential``).
    block_rows : int or None
        Rows per block (None: the backend's default).
    tile : int
        Tile side (px).
    repeats : int
        Timed runs after one warm-up.
    filter : str or None
        Lee filter applied to every date first, ``"lee:K"`` (None: statistics only).
    """

    backend: str
    strategy: str | None
    split: str | None
    workers: int
    block_rows: int | None
    tile: int
    repeats: int
    filter: str | None = None

    @classmethod
    def from_choices(cls, backend: str, variant: str | None, workers: int, block_rows: int,
                     tile: int, repeats: int, kernel: int = 0) -> RunOptions:
        """Options from what a panel shows: ``variant`` is the strategy or the split,
        ``block_rows`` 0 means the backend's default; ``sequential`` runs 1 worker;
        ``kernel`` is the Lee window side K (0: no filter).
        """
        kind, _ = variants_of(backend)
        return cls(backend=backend,
                   strategy=(variant or None) if kind == "strategy" else None,
                   split=(variant or None) if kind == "split" else None,
                   workers=1 if backend == "sequential" else int(workers),
                   block_rows=int(block_rows) or None, tile=int(tile), repeats=int(repeats),
                   filter=f"lee:{int(kernel)}" if kernel else None)

    @property
    def name(self) -> str:
        """``backend (variant)``, e.g. ``multiprocessing (per-file)``."""
        variant = self.strategy or self.split
        return f"{self.backend} ({variant})" if variant else self.backend

    def as_dict(self) -> dict[str, Any]:
        """The options as a plain dict (keys as the attributes)."""
        return asdict(self)


@dataclass
class Measurement:
    """What one click timed: the results and the pool's start-up.

    Attributes
    ----------
    results : list of Result
        The timed runs (warm-up left out); ``meta["max_abs_diff"]`` against sequential.
    startup : float or str
        Pool/cluster start-up in s, ``"reused"``, or ``"—"`` (no pool needed).
    """

    results: list[Any]
    startup: float | str


# -- summaries -----------------------------------------------------------------------------
def panel_row(run: int, opts: RunOptions, rows: list[dict[str, Any]],
              startup: float | str) -> dict[str, Any]:
    """The panel's table row for one click, from its CSV rows via :func:`labkit.bench.summarize`.

    Times in s; ``gbps`` is GB/s at the median wall; ``startup`` is the start-up inside
    the runs (0 with a reused pool), ``pool_startup_s`` the pool's own start-up;
    ``kernel`` the filter run (``lee:K:ENL``, or ``none``); ``cores`` says whether the
    workers fit in the physical cores (``≤ 4 physical``) or not (``past 4 physical``).
    """
    from labkit import sysinfo

    (s,) = bench.summarize(rows)  # one configuration per click
    block_rows = rows[-1]["block_rows"]
    phases = f"{s['read']:.3g} / {s['compute']:.3g} / {s['merge']:.3g}"
    physical = sysinfo.core_counts()[1]
    cores = f"{'past' if opts.workers > physical else '≤'} {physical} physical"
    return {
        "run": run, "backend": opts.name, "backend_name": opts.backend,
        "workers": opts.workers, "cores": cores,
        "kernel": rows[-1].get("filter") or "none", "tile": f"{opts.tile}×{opts.tile}",
        "block_rows": block_rows if block_rows else "auto", "repeats": s["n"],
        "median_s": s["wall"], "min_s": s["wall_min"], "max_s": s["wall_max"],
        "spread_s": s["wall_max"] - s["wall_min"], "read_s": s["read"],
        "compute_s": s["compute"], "merge_s": s["merge"], "phases": phases,
        "gbps": s["bytes"] / s["wall"] / 1e9 if s["wall"] > 0 else None,
        "max_abs_diff": s["max_abs_diff"], "startup": s["startup"],
        "pool_startup_s": startup,
    }


def describe_runs(rows: Sequence[dict[str, Any]]) -> str:
    """One line per panel run: median, spread, GB/s, max |Δ| (for printed logs)."""
    lines = []
    for r in rows:
        diff = r["max_abs_diff"]
        lines.append(
            f"#{r['run']} {r['backend']}, {r['workers']} worker(s), kernel "
            f"{r.get('kernel', 'none')}, {r['tile']}, "
            f"block rows {r['block_rows']}: median {r['median_s']:.4f} s "
            f"(spread {r['spread_s']:.4f} s, {r['repeats']} runs), "
            f"{r['gbps'] or 0:.2f} GB/s, max |Δ| vs sequential "
            f"{'n/a' if diff is None else f'{diff:.3g}'}")
    return "\n".join(lines)


def per_rank_rows(result: Any, split: str | None) -> list[dict[str, Any]]:
    """Rows of ``result.meta["per_rank"]`` (MPI), one per rank, ready for a table.

    ``share`` ``(first, end)`` becomes ``"rows 0–15"`` (or ``dates``); ``bytes_read``
    adds ``mb_read`` (MB, 10⁶ bytes).
    """
    per_rank = result.meta.get("per_rank") or []
    if isinstance(per_rank, dict):
        per_rank = [{"rank": k, **v} for k, v in sorted(per_rank.items())]
    rows = []
    for i, r in enumerate(per_rank):
        r = dict(r) if isinstance(r, dict) else {"value": r}
        share = r.get("share")
        if isinstance(share, (list, tuple)) and len(share) == 2:
            what = "rows" if split == "rows" else "dates"
            r["share"] = f"{what} {share[0]}–{share[1] - 1}"
        if "bytes_read" in r:
            r["mb_read"] = r["bytes_read"] / 1e6
        rows.append({"rank": r.get("rank", i), **r})
    return rows


def _close_quietly(pool: Any) -> None:
    """Close ``pool`` if it can be closed; errors of a pool being dropped are ignored."""
    closer = getattr(pool, "close", None)
    if closer is not None:
        try:
            closer()
        except Exception:  # noqa: BLE001 - a broken pool is being dropped anyway
            pass


# -- backend runs --------------------------------------------------------------------------
class RunController:
    """Timed backend runs for a panel: tiles, a cached reference, reused pools, CSV rows.

    Parameters
    ----------
    preset : str
        Synthetic preset (see :data:`labkit.sar.synth.PRESETS`); tiles are prepared on demand.
    root : path, optional
        Data folder (default :func:`labkit.paths.data_dir`).
    csv : path, bool or None
        Benchmark CSV; None: :func:`labkit.paths.bench_csv`; False (or True): none.
    label : str, default "panel"
        ``label`` column of the CSV rows.
    notify : callable(str), optional
        Told what is going on, one line at a time.

    Attributes
    ----------
    runs : list of dict
        One table row per click (:func:`panel_row`).
    last_results : list of Result
        The timed results of the last click.
    """

    def __init__(self, preset: str, *, root: PathLike | None = None,
                 csv: PathLike | bool | None = None, label: str = "panel",
                 notify: Notify | None = None) -> None:
        self.preset = preset
        self.root = Path(root) if root is not None else None
        self.label = label
        if csv is None:
            from labkit.paths import bench_csv

            csv = bench_csv()
        self.csv: Path | None = (Path(csv) if not isinstance(csv, bool) else None)
        self.notify = notify or _quiet
        self.runs: list[dict[str, Any]] = []
        self.last_results: list[Any] = []
        self._pools: dict[tuple[str, int], Any] = {}
        self._references: dict[tuple[str, str], Any] = {}

    def tiles(self, tile: int, jobs: int) -> Path:
        """The tile folder for side ``tile`` (px), prepared now with ``jobs`` if missing."""
        from labkit.prep import ensure_tiles

        return Path(ensure_tiles(self.preset, int(tile), root=self.root,
                                 jobs=min(int(jobs), os.cpu_count() or 1), progress=False))

    def reference(self, src: PathLike, filter: str | None = None) -> Any:
        """The sequential result for tile folder ``src`` with ``filter`` (``"lee:K"``,
        None: none), computed once, then cached.
        """
        key = (str(src), filter or "")
        if key not in self._references:
            from labkit.backends import compute

            what = f" with {filter}" if filter else ""
            self.notify(f"computing the sequential reference{what}…")
            self._references[key] = compute("sequential", Path(src), filter=filter)
        return self._references[key]

    def pool(self, backend: str, workers: int) -> tuple[Any, float | str]:
        """A pool for (backend, workers), reused across runs.

        Returns
        -------
        (pool, startup)
            ``startup``: seconds when the pool was started now, ``"reused"`` when it
            already ran, ``"—"`` when the backend needs no pool (pool None).
        """
        key = (backend, workers)
        if key in self._pools:
            pool = self._pools[key]
            return pool, ("reused" if pool is not None else "—")
        from labkit.backends import make_pool

        self.notify(f"starting a {backend} pool of {workers}…")
        t0 = time.perf_counter()
        pool = make_pool(backend, workers)
        self._pools[key] = pool
        if pool is None:
            return None, "—"
        return pool, startup_of(pool) or (time.perf_counter() - t0)

    @property
    def pools(self) -> dict[tuple[str, int], Any]:
        """The pools kept, by (backend, workers) (None: no pool needed)."""
        return dict(self._pools)

    def runs_note(self, opts: RunOptions) -> str:
        """What a Run is about to time, in words."""
        """The line shown while ``opts`` is being timed."""
        kernel = f" with {opts.filter}" if opts.filter else ""
        return f"{opts.backend}{kernel}: 1 warm-up + {opts.repeats} timed runs…"

    def measure(self, src: PathLike, opts: RunOptions,
                progress: Progress | None = None) -> Measurement:
        """Time 1 warm-up + ``opts.repeats`` runs on the tiles in ``src``.

        The runs use the kept pool and :func:`labkit.bench.time_backend`; each result's
        ``meta["max_abs_diff"]`` is its max |Δ| against :meth:`reference` (with the same
        filter).
        """
        reference = self.reference(src, opts.filter)
        pool, startup = self.pool(opts.backend, opts.workers)
        self.notify(self.runs_note(opts))
        results = bench.time_backend(
            opts.backend, src, workers=opts.workers, strategy=opts.strategy,
            split=opts.split, block_rows=opts.block_rows, filter=opts.filter,
            repeat=opts.repeats, warmup=1, pool=pool, reference=reference, progress=progress)
        return Measurement(results, startup)

    def record(self, measured: Measurement, opts: RunOptions) -> dict[str, Any]:
        """Append the CSV rows of ``measured`` (when there is a CSV), then keep its table
        row (:func:`panel_row`) in :attr:`runs` and return it.
        """
        rows = [bench.row_from_result(r, repeat=i, label=self.label)
                for i, r in enumerate(measured.results)]
        if self.csv is not None:
            bench.append_csv(self.csv, rows)
        self.last_results = measured.results
        row = panel_row(len(self.runs) + 1, opts, rows, measured.startup)
        self.runs.append(row)
        return row

    def close(self) -> None:
        """Close every pool kept (a later run starts new ones)."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            _close_quietly(pool)


class MpiController(RunController):
    """:class:`RunController` for the ``mpi`` backend on ipyparallel MPI engines.

    One cluster at a time: it is reused while the number of engines stays the same, and
    replaced when it changes. Closing (or a failed run, through the panel) stops it.

    Parameters
    ----------
    preset, root, csv, label, notify
        As :class:`RunController`.
    timeout : float, default 60
        Seconds to wait for the engines to start.
    engines_note : callable(str), optional
        Told the engines' state ("engines: 2 running …", "engines: stopped").
    """

    def __init__(self, preset: str, *, root: PathLike | None = None,
                 csv: PathLike | bool | None = None, label: str = "panel",
                 notify: Notify | None = None, timeout: float = 60,
                 engines_note: Notify | None = None) -> None:
        super().__init__(preset, root=root, csv=csv, label=label, notify=notify)
        self.timeout = timeout
        self.engines_note = engines_note or _quiet
        self.cluster: Any = None
        self._n: int | None = None

    def pool(self, backend: str, workers: int) -> tuple[Any, float | str]:
        """The running cluster when it has ``workers`` engines, else a new one.

        Returns ``(cluster, startup)``: start-up seconds, or ``"reused"``.
        """
        if self.cluster is not None and getattr(self.cluster, "stopped", False) is True:
            self.cluster = None  # stopped meanwhile (a crashed check, a hung run): start anew
        if self.cluster is not None and self._n == workers:
            return self.cluster, "reused"
        self.stop()
        from labkit.backends.mpi.engines import start_cluster

        self.notify(f"starting {workers} MPI engine(s)…")
        self.engines_note(f"engines: starting {workers}…")
        t0 = time.perf_counter()
        self.cluster = start_cluster(workers, timeout=self.timeout)
        self._n = workers
        startup = startup_of(self.cluster) or (time.perf_counter() - t0)
        self.engines_note(f"engines: {workers} running (started in {startup:.1f} s; "
                          "reused until Stop or a new n)")
        return self.cluster, startup

    @property
    def pools(self) -> dict[tuple[str, int], Any]:
        """The running cluster, by ("mpi", engines) (empty when none runs)."""
        if self.cluster is None or self._n is None:
            return {}
        return {("mpi", self._n): self.cluster}

    def runs_note(self, opts: RunOptions) -> str:
        """What a Run is about to time, in words."""
        kernel = f" with {opts.filter}" if opts.filter else ""
        return (f"mpi ({opts.split}){kernel} on {opts.workers} engine(s): 1 warm-up + "
                f"{opts.repeats} timed runs…")

    def terminal_command(self, src: PathLike, split: str | None,
                         filter: str | None = None) -> str:
        """The running cluster's ``mpiexec -n N labkit run mpi …`` for tiles ``src``
        (outputs in :func:`labkit.paths.results_dir`; ``--filter`` when ``filter``); a
        note in brackets when there is none to give.
        """
        try:
            from labkit.paths import results_dir

            out = results_dir()
            command = str(self.cluster.mpiexec_command(src, out / "mean_mpi.tif",
                                                       out / "std_mpi.tif", split))
            return f"{command} --filter {filter}" if filter else command
        except Exception as exc:  # noqa: BLE001 - the command is a hint, not the result
            return f"(command unavailable: {exc})"

    def stop(self) -> None:
        """Stop the engines (nothing to do when none run)."""
        cluster, self.cluster = self.cluster, None
        self._n = None
        if cluster is None:
            return
        # mpiexec exits with 1 when its engines are stopped, and ipyparallel then logs
        # every engine's output as a warning into the cell: keep only real errors
        log = getattr(getattr(cluster, "cluster", None), "log", None)
        if isinstance(log, logging.Logger):
            log.setLevel(logging.ERROR)
        try:
            cluster.stop()
        finally:
            self.engines_note("engines: stopped")

    def close(self) -> None:
        """Stop the engines."""
        self.stop()


# -- tile preparation ----------------------------------------------------------------------
class PrepController:
    """Tile preparation for :class:`labkit.ui.PrepPanel`, timed every time.

    Run synthesizes the preset's SLC stack if missing (:func:`labkit.sar.synth.write_stack`),
    then prepares the tiles again, to time it (:func:`labkit.prep.prep_stack`, crop
    ``T,T,0,0``, the preset's looks), into the folder :func:`labkit.prep.ensure_tiles`
    uses, ``<root>/<preset>/intens_<T>x<T>``.

    Parameters
    ----------
    preset : str
    root : path, optional
        Data folder (default :func:`labkit.paths.data_dir`).
    notify : callable(str), optional
        Told what is going on.

    Attributes
    ----------
    runs : list of dict
        One table row per preparation: ``tile``, ``workers`` (jobs), ``n_dates``,
        ``mb_read`` (MB), ``seconds``, ``mb_per_s`` (MB/s), ``folder``.
    last_result : PrepSummary or None
    """

    def __init__(self, preset: str, *, root: PathLike | None = None,
                 notify: Notify | None = None) -> None:
        self.preset = preset
        self.root = Path(root) if root is not None else None
        self.notify = notify or _quiet
        self.runs: list[dict[str, Any]] = []
        self.last_result: Any = None

    def prepare(self, tile: int, jobs: int, progress: Progress | None = None) -> Any:
        """Prepare (again) the ``tile``×``tile`` tiles with ``jobs`` dates in parallel.

        Returns
        -------
        labkit.prep.PrepSummary
        """
        from labkit.prep import prep_preset

        step = progress or (lambda _done, _total: None)
        step(0, 1)
        self.notify(f"preparing {tile}×{tile} tiles with {jobs} job(s) (the {self.preset} "
                    "SLC stack is synthesized first if missing)…")
        dest, summary = prep_preset(self.preset, tile, root=self.root, jobs=jobs,
                                    progress=False)
        self.last_result = summary
        self.runs.append({
            "run": len(self.runs) + 1, "tile": f"{tile}×{tile}", "workers": jobs,
            "n_dates": summary.n_dates, "mb_read": summary.bytes_read / 1e6,
            "seconds": summary.seconds, "mb_per_s": summary.mb_per_s, "folder": str(dest),
        })
        step(1, 1)
        self.notify(f"done: {summary.n_dates} tiles in {dest} "
                    f"({summary.mb_per_s:.0f} MB/s of SLC)")
        return summary
