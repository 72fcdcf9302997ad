"""Control panels for the notebooks: sliders, a Run button, a progress bar, a table and a plot.

One :class:`ControlPanel` serves notebooks 02–04 (backend and strategy, workers, kernel
weight, tile size, repeats, optionally rows per block), :class:`MpiPanel` drives
ipyparallel MPI engines for 05 and :class:`PrepPanel` prepares tiles in parallel for 01.
The workers slider goes up to the machine's logical cores (``os.cpu_count()``); a line
under it gives the logical and physical cores (psutil) and says when the chosen count is
past the physical one. The kernel selector runs the Lee speckle filter (``lee:K``, K = 3
… 15) before the statistics, so the work per byte grows with K.

A panel only holds widgets: what a click does is done by its controller
(:mod:`labkit.ui.controller`), with the functions ``labkit bench`` uses. Each Run warms up
once and then times ``repeats`` runs; every timed run is appended to the benchmark CSV,
with its max |Δ| against a sequential result computed once per tile size. Errors appear
in the panel as one red line and the panel stays usable. Everything a click does is also
a method, so tests and notebooks can drive a panel without a browser::

    panel = ControlPanel("tiny")
    panel.backend.value = "multiprocessing"
    panel.workers.value = 2
    panel.kernel.value = 9            # Lee K = 9 (0: none)
    panel.run_button.click()          # or panel.run()
    panel.results[-1]["median_s"]     # seconds
    panel.close()                     # stops the pools it started
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w

from labkit.ui import controller as ctl
from labkit.ui.frame import (
    WIDE_LABEL,
    Panel,
    cores_html,
    kernel_dropdown,
    tile_dropdown,
    workers_slider,
)
from labkit.ui.html import command_html, error_html, html_table, note_html

__all__ = ["ControlPanel", "MpiPanel", "PrepPanel"]

DEFAULT_BACKENDS = ("sequential", "multiprocessing", "mem", "threads")
BLOCK_ROWS_CHOICES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)  # rows per block
MAX_REPEATS = 10
RANK_COLUMNS = ("rank", "share", "read", "compute", "wait", "merge", "wall", "mb_read", "pid")
RANK_HEADERS = {"mb_read": "MB read", "wait": "wait (s)", "read": "read (s)",
                "compute": "compute (s)", "merge": "merge (s)", "wall": "wall (s)"}
PathLike = str | os.PathLike[str]


class ControlPanel(Panel):
    """Backend runs from sliders: warm-up + repeats, CSV rows, a table and a bar plot.

    Parameters
    ----------
    preset : str, default "seed"
        Synthetic preset (see :data:`labkit.sar.synth.PRESETS`); tiles are prepared on demand.
    backends : sequence of str, default sequential, multiprocessing, mem, threads
        Choices of the backend dropdown (names from :data:`labkit.backends.BACKENDS`).
    backend : str, optional
        Initial backend (default: the first of ``backends``).
    workers : int, default 2
        Initial workers (slider 1..``max_workers``).
    max_workers : int, optional
        Top of the workers slider (default: the logical cores, :func:`max_workers`).
    filter : str, optional
        Initial kernel weight: ``"lee:K"`` with K in 3, 5, … 15 (default: none).
    repeats : int, default 3
        Timed runs per click (after one warm-up), 1..10.
    tile : int, optional
        Initial tile size in pixels (default: the preset's tile).
    block_rows : bool, default False
        Show a rows-per-block slider (``auto`` = backend default).
    root : path, optional
        Data folder (default :func:`labkit.paths.data_dir`).
    csv : path or False, optional
        Benchmark CSV (default :func:`labkit.paths.bench_csv`); False writes none.
    label : str, default "panel"
        ``label`` column of the CSV rows.
    """

    title = "Run a backend"
    table_columns = (
        ("run", "#"), ("backend", "backend"), ("workers", "workers"), ("cores", "cores"),
        ("kernel", "kernel"), ("tile", "tile"), ("block_rows", "block rows"),
        ("median_s", "median wall (s)"),
        ("spread_s", "spread (s)"), ("phases", "phases: read / compute / merge (s)"),
        ("gbps", "GB/s"), ("max_abs_diff", "max |Δ| vs sequential"),
        ("pool_startup_s", "pool start-up (s)"),
    )

    def __init__(self, preset: str = "seed", *, backends: Sequence[str] = DEFAULT_BACKENDS,
                 backend: str | None = None, workers: int = 2, repeats: int = 3,
                 tile: int | None = None, block_rows: bool = False,
                 root: PathLike | None = None, csv: PathLike | bool | None = None,
                 label: str = "panel", max_workers: int | None = None,
                 filter: str | None = None) -> None:
        super().__init__()
        ctl.check_backends(backends)
        self.kernel = kernel_dropdown(filter)
        self.controller = self._controller(preset, root=root, csv=csv, label=label)
        self.preset = preset
        self.backend = w.Dropdown(options=list(backends), value=backend or backends[0],
                                  description="backend")
        self.strategy = w.Dropdown(description="strategy")
        self.backend.observe(self._on_backend, names="value")
        self.workers = workers_slider(workers, "workers", max_workers)
        self.cores = w.HTML(cores_html(self.workers.value))
        self.workers.observe(self._on_workers, names="value")
        self.tile = tile_dropdown(preset, tile)
        self.repeats = w.IntSlider(value=min(max(1, repeats), MAX_REPEATS), min=1,
                                   max=MAX_REPEATS, description="repeats")
        self._on_backend()
        self.block_rows: w.SelectionSlider | None = None
        if block_rows:
            self.block_rows = w.SelectionSlider(
                options=[("auto", 0)] + [(str(b), b) for b in BLOCK_ROWS_CHOICES],
                value=0, description="rows/block", style=WIDE_LABEL)

    def _controller(self, preset: str, **kw: Any) -> ctl.RunController:
        """The controller behind this panel."""
        return ctl.RunController(preset, notify=self._note, **kw)

    # -- what the controller holds ---------------------------------------------------------
    @property
    def results(self) -> list[dict[str, Any]]:
        """One table row per click: ``median_s``, ``min_s``, ``max_s``, phases (s), …"""
        return self.controller.runs

    @property
    def last_results(self) -> list[Any]:
        """The timed results of the last click."""
        return self.controller.last_results

    @property
    def last_result(self) -> Any:
        """The last timed result (None before the first run)."""
        return self.controller.last_results[-1] if self.controller.last_results else None

    @property
    def csv(self) -> Path | None:
        """The benchmark CSV the runs are appended to (None: none)."""
        return self.controller.csv

    @property
    def pools(self) -> dict[tuple[str, int], Any]:
        """The pools this panel keeps, by (backend, workers) (None: no pool needed)."""
        return self.controller.pools

    # -- widgets ---------------------------------------------------------------------------
    def controls(self) -> list[w.Widget]:
        """Backend and strategy, workers and repeats, the cores line, kernel weight, tile
        and block rows.
        """
        row1 = w.HBox([self.backend, self.strategy])
        row2 = w.HBox([self.workers, self.repeats])
        row3 = [self.kernel, self.tile] + ([self.block_rows] if self.block_rows is not None
                                           else [])
        return [row1, row2, self.cores, w.HBox(row3)]

    def _on_workers(self, _change: Any = None) -> None:
        self.cores.value = cores_html(self.workers.value)

    def _on_backend(self, _change: Any = None) -> None:
        kind, choices = ctl.variants_of(self.backend.value)
        self.strategy.description = kind
        self.strategy.options = list(choices) if choices else [("—", "")]
        self.strategy.value = choices[0] if choices else ""
        self.strategy.disabled = not choices
        self.workers.disabled = self.backend.value == "sequential"  # one process

    # -- one click -------------------------------------------------------------------------
    def run_options(self) -> ctl.RunOptions:
        """The run options the widgets currently say."""
        br = self.block_rows.value if self.block_rows is not None else 0
        return ctl.RunOptions.from_choices(
            self.backend.value, self.strategy.value, self.workers.value, br,
            self.tile.value, self.repeats.value, self.kernel.value)

    def options(self) -> dict[str, Any]:
        """The run options as a dict (backend, strategy, split, workers, block_rows, filter,
        …).
        """
        return self.run_options().as_dict()

    def tiles(self) -> Path:
        """The tile folder for the selected tile size (prepared now if missing)."""
        return self.controller.tiles(self.tile.value, self.workers.value)

    def reference(self, src: PathLike) -> Any:
        """The sequential result for tile folder ``src`` with the selected kernel
        (computed once, then cached).
        """
        return self.controller.reference(src, self.run_options().filter)

    def pool(self, backend: str, workers: int) -> tuple[Any, float | str]:
        """A pool for (backend, workers), reused across runs (see the controller)."""
        return self.controller.pool(backend, workers)

    def _run_once(self) -> Any:
        opts = self.run_options()
        self._progress(0, opts.repeats + 1)
        self._note(f"preparing {opts.tile}×{opts.tile} tiles…")
        src = self.tiles()
        measured = self.controller.measure(src, opts, progress=self._progress)
        self._show_extras(src, opts, measured)
        self.controller.record(measured, opts)
        where = f" → {self.csv}" if self.csv is not None else ""
        self._note(f"done: {len(measured.results)} timed run(s) of {opts.name}{where}")
        return self.last_result

    def _show_extras(self, src: PathLike, opts: ctl.RunOptions,
                     measured: ctl.Measurement) -> None:
        """Show what a subclass adds after the runs (nothing here)."""

    def describe(self) -> str:
        """One line per run so far: median, spread, GB/s, max |Δ| (for printed logs)."""
        return ctl.describe_runs(self.results)

    def figure(self) -> Any:
        """Bars of the median wall time of every run so far (whiskers: min..max)."""
        from labkit.ui.plots import runs_figure

        return runs_figure(self.results)

    # -- cleanup ---------------------------------------------------------------------------
    def _cleanup_after_error(self) -> None:
        self.controller.close()

    def close(self) -> None:
        """Close every pool this panel started."""
        self.controller.close()
        self._note("closed: pools stopped")


class MpiPanel(ControlPanel):
    """The MPI backend on ipyparallel MPI engines started from the workers slider.

    Run starts ``workers`` engines with :func:`labkit.backends.mpi.engines.start_cluster` (or reuses
    the running cluster when the number is unchanged), times 1 warm-up + ``repeats`` runs
    on them, shows per-rank timings and the equivalent ``mpiexec`` command. Stop (and
    :meth:`close`) stops the engines; a failed run stops them too.

    Parameters
    ----------
    preset, workers, repeats, tile, block_rows, root, csv, label, max_workers, filter
        As :class:`ControlPanel` (with a kernel weight, ``--split rows`` exchanges the
        K//2 halo rows between neighbouring ranks).
    timeout : float, default 60
        Seconds to wait for the engines to start.
    """

    controller: ctl.MpiController  # the MPI panel's controller holds the cluster

    title = "MPI on ipyparallel engines"
    table_columns = (
        ("run", "#"), ("backend", "backend"), ("workers", "ranks"), ("cores", "cores"),
        ("kernel", "kernel"), ("tile", "tile"), ("block_rows", "block rows"),
        ("median_s", "median wall (s)"),
        ("spread_s", "spread (s)"), ("phases", "phases: read / compute / merge (s)"),
        ("gbps", "GB/s"), ("max_abs_diff", "max |Δ| vs sequential"),
        ("pool_startup_s", "cluster start-up (s)"),
    )

    def __init__(self, preset: str = "seed", *, workers: int = 2, repeats: int = 3,
                 tile: int | None = None, block_rows: bool = False,
                 root: PathLike | None = None, csv: PathLike | bool | None = None,
                 label: str = "panel", timeout: float = 60, max_workers: int | None = None,
                 filter: str | None = None) -> None:
        self.timeout = timeout
        self.cluster_status = w.HTML(note_html("engines: none running"))
        super().__init__(preset, backends=("mpi",), workers=workers, repeats=repeats,
                         tile=tile, block_rows=block_rows, root=root, csv=csv, label=label,
                         max_workers=max_workers, filter=filter)
        self.backend.disabled = True
        self.workers.description = "ranks"
        self.stop_button = w.Button(description="Stop engines", icon="stop",
                                    button_style="warning")
        self.stop_button.on_click(lambda _button: self.stop())
        self.ranks = w.HTML()
        self.per_rank: list[dict[str, Any]] = []
        self.last_command = ""
        self.command = w.HTML()

    def _controller(self, preset: str, **kw: Any) -> ctl.MpiController:
        return ctl.MpiController(preset, notify=self._note, timeout=self.timeout,
                                 engines_note=self._engines_note, **kw)

    def _engines_note(self, text: str) -> None:
        self.cluster_status.value = note_html(text)

    @property
    def cluster(self) -> Any:
        """The running :class:`labkit.backends.mpi.engines.MpiCluster` (None when none runs)."""
        return self.controller.cluster

    def buttons(self) -> list[w.Widget]:
        """Run, and Stop (the engines)."""
        return [self.run_button, self.stop_button]

    def controls(self) -> list[w.Widget]:
        """The run controls and the cluster's status line."""
        return [*super().controls(), self.cluster_status]

    @property
    def widget(self) -> w.VBox:
        """The panel, with the per-rank table and the ``mpiexec`` command."""
        if not hasattr(self, "_box"):
            box = super().widget
            out = box.children[-1]
            out.children = (*out.children[:3], self.ranks, self.command, *out.children[3:])
        return self._box

    def start(self, n: int) -> tuple[Any, float | str]:
        """Start ``n`` MPI engines, or reuse the running ones if there are ``n`` already.

        Returns ``(cluster, startup)``: start-up seconds, or ``"reused"``.
        """
        return self.controller.pool("mpi", n)

    def stop(self) -> None:
        """Stop the engines (no-op when none run)."""
        self.controller.stop()

    def _show_extras(self, src: PathLike, opts: ctl.RunOptions,
                     measured: ctl.Measurement) -> None:
        """The per-rank table of the last run and the same run as a terminal command."""
        rows = ctl.per_rank_rows(measured.results[-1], opts.split)
        cols = [c for c in RANK_COLUMNS if any(c in r for r in rows)]
        if not cols or cols == ["rank"]:
            cols = list(rows[0]) if rows else []
        heads = [RANK_HEADERS.get(c, c) for c in cols]
        self.per_rank = rows
        self.ranks.value = ("<b>per-rank timings of the last run</b>"
                            + html_table(rows, cols, heads) if rows else "")
        self.last_command = self.controller.terminal_command(src, opts.split, opts.filter)
        self.command.value = command_html("the same run from a terminal:", self.last_command)

    def _cleanup_after_error(self) -> None:
        try:
            self.stop()
        except Exception as exc:  # noqa: BLE001 - keep the original error visible
            self.cluster_status.value = error_html(f"could not stop the engines: {exc}")

    def close(self) -> None:
        """Stop the engines."""
        self.stop()
        self._note("closed: engines stopped")


class PrepPanel(Panel):
    """Prepare intensity tiles (|S|² → multilook → crop) with a jobs slider and tile choice.

    Run synthesizes the preset's SLC stack if missing, then prepares (again, to time it)
    the selected tile size with ``workers`` dates in parallel (see
    :class:`labkit.ui.controller.PrepController`) into the folder
    :func:`labkit.prep.ensure_tiles` uses, ``<root>/<preset>/intens_<T>x<T>``.

    Parameters
    ----------
    preset : str, default "seed"
    workers : int, default 2
        Dates prepared in parallel.
    tile : int, optional
        Initial tile size (default: the preset's).
    root : path, optional
        Data folder (default :func:`labkit.paths.data_dir`).
    max_workers : int, optional
        Top of the jobs slider (default: the logical cores).
    """

    title = "Prepare intensity tiles"
    table_columns = (
        ("run", "#"), ("tile", "tile"), ("workers", "jobs"), ("n_dates", "dates"),
        ("mb_read", "MB read"), ("seconds", "seconds"), ("mb_per_s", "MB/s"),
        ("folder", "tiles in"),
    )

    def __init__(self, preset: str = "seed", *, workers: int = 2, tile: int | None = None,
                 root: PathLike | None = None, max_workers: int | None = None) -> None:
        super().__init__()
        self.controller = ctl.PrepController(preset, root=root, notify=self._note)
        self.preset = preset
        self.workers = workers_slider(workers, "jobs", max_workers)
        self.cores = w.HTML(cores_html(self.workers.value))
        self.workers.observe(self._on_workers, names="value")
        self.tile = tile_dropdown(preset, tile)
        self.run_button.description = "Prepare"

    @property
    def results(self) -> list[dict[str, Any]]:
        """One table row per preparation: tile, jobs, dates, MB read, seconds, MB/s."""
        return self.controller.runs

    @property
    def last_result(self) -> Any:
        """The :class:`labkit.prep.PrepSummary` of the last preparation (or None)."""
        return self.controller.last_result

    def controls(self) -> list[w.Widget]:
        """Workers (dates in parallel) and tile size, and the cores line."""
        return [w.HBox([self.workers, self.tile]), self.cores]

    def _on_workers(self, _change: Any = None) -> None:
        self.cores.value = cores_html(self.workers.value)

    def _run_once(self) -> Any:
        return self.controller.prepare(int(self.tile.value), int(self.workers.value),
                                       progress=self._progress)

    def figure(self) -> Any:
        """Bars of the seconds each preparation took."""
        from labkit.ui.plots import prep_figure

        return prep_figure(self.results)
