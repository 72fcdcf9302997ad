"""Control panels for the notebooks: sliders, a Run button, a progress bar, a table and a plot.

One :class:`ControlPanel` serves notebooks 02–04 (backend and strategy, workers, tile
size, repeats, optionally rows per block), :class:`MpiPanel` drives ipyparallel MPI
engines for 05 and :class:`PrepPanel` prepares tiles in parallel for 01.

Each Run warms up once and then times ``repeats`` runs (:func:`labkit.bench.time_backend`);
every timed run is appended to the benchmark CSV, with its max |Δ| against a sequential
result computed once per tile size. Errors appear in the panel as one red line and the
panel stays usable. Everything a click does is also a method, so tests and notebooks can
drive a panel without a browser::

    panel = ControlPanel("tiny")
    panel.backend.value = "multiprocessing"
    panel.workers.value = 2
    panel.run_button.click()          # or panel.run()
    panel.results[-1]["median_s"]     # seconds
    panel.close()                     # stops the pools it started
"""

from __future__ import annotations

import html
import io
import logging
import os
import statistics
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w

from labkit.errors import LabError

__all__ = ["ControlPanel", "MpiPanel", "PrepPanel", "html_table", "max_workers"]

DEFAULT_BACKENDS = ("sequential", "multiprocessing", "mem", "threads")
BLOCK_ROWS_CHOICES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048)  # rows per block
MAX_REPEATS = 10
_COLORS = {"sequential": "#555555", "multiprocessing": "#d62728", "mem": "#2ca02c",
           "threads": "#1f77b4", "mpi": "#9467bd"}
_BOX = w.Layout(border="1px solid #ccc", padding="6px", width="100%")
_WIDE = {"description_width": "initial"}


def max_workers() -> int:
    """Top of the workers slider: ``max(4, logical cores)``."""
    return max(4, os.cpu_count() or 1)


def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
               headers: Sequence[str] | None = None) -> str:
    """A small HTML table of ``rows`` (dicts); floats shown with 3 significant digits."""
    if not rows:
        return ""
    cols = list(columns or rows[0].keys())
    heads = list(headers or cols)

    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.3g}"
        return html.escape(str(v))

    th = "".join(f"<th style='padding:2px 8px;text-align:left'>{html.escape(h)}</th>"
                 for h in heads)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px'>{cell(r.get(c))}</td>" for c in cols)
        + "</tr>" for r in rows)
    return (f"<table style='border-collapse:collapse;font-size:90%'><thead><tr>{th}</tr>"
            f"</thead><tbody>{body}</tbody></table>")


def _error_html(text: str) -> str:
    return f"<div style='color:#b00020;font-weight:bold'>⚠ {html.escape(text)}</div>"


def _note_html(text: str) -> str:
    return f"<div style='color:#333'>{html.escape(text)}</div>"


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


class _Panel:
    """What every panel shares: Run button, progress bar, status line, table, plot, errors."""

    title = "Control panel"
    table_columns: tuple[tuple[str, str], ...] = ()

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.error: str | None = None
        self.traceback: str | None = None
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.run_button.on_click(lambda _button: self.run())
        self.progress = w.IntProgress(value=0, min=0, max=1, description="idle",
                                      style=_WIDE, layout=w.Layout(width="50%"))
        self.status = w.HTML()
        self.table = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(max_width="720px"))
        self.log = w.Output()  # anything a backend prints during a run

    # -- display ---------------------------------------------------------------------------
    def controls(self) -> list[w.Widget]:
        """The input widgets, top to bottom."""
        return []

    @property
    def widget(self) -> w.VBox:
        """The whole panel as one ipywidgets box."""
        if not hasattr(self, "_box"):
            header = w.HTML(f"<b>{html.escape(self.title)}</b>")
            buttons = w.HBox([*self.buttons(), self.progress])
            output = w.VBox([self.status, self.table, self.plot, self.log], layout=_BOX)
            self._box = w.VBox([header, *self.controls(), buttons, output], layout=_BOX)
            self._box.add_class("labkit-panel")  # stable CSS hooks for the browser tests
            for name in ("workers", "tile", "run_button", "stop_button", "progress",
                         "status", "table", "plot"):
                if isinstance(getattr(self, name, None), w.DOMWidget):
                    getattr(self, name).add_class(f"labkit-{name.replace('_button', '')}")
        return self._box

    def buttons(self) -> list[w.Widget]:
        return [self.run_button]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- running ---------------------------------------------------------------------------
    def run(self, *, raise_errors: bool = False) -> Any:
        """What the Run button does; returns the last result, or None if the run failed.

        Parameters
        ----------
        raise_errors : bool, default False
            Also raise the error after showing it (notebooks executed in tests use it so a
            failure stops the notebook instead of only showing in the panel).
        """
        self.error = self.traceback = None
        self.run_button.disabled = True
        self.status.value = _note_html("running…")
        caught: BaseException | None = None
        out = None
        # catch inside the Output context: in a kernel, Output.__exit__ would swallow the
        # exception and print its traceback into the (collapsed) log instead
        with self.log:
            try:
                out = self._run_once()
            except BaseException as exc:  # noqa: BLE001 - sorted out below
                caught = exc
        try:
            if caught is not None:
                raise caught
        except KeyboardInterrupt:
            self._failed("interrupted (Ctrl-C / kernel interrupt): the run was stopped")
            raise
        except LabError as exc:
            self._failed(str(exc))
            if raise_errors:
                raise
            return None
        except Exception as exc:  # noqa: BLE001 - shown in the panel, never lost in the log
            self.traceback = "".join(traceback.format_exception(exc))
            self._failed(f"{type(exc).__name__}: {exc} (unexpected; see panel.traceback)")
            if raise_errors:
                raise
            return None
        finally:
            self.run_button.disabled = False
        self._refresh()
        return out

    def _run_once(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _failed(self, text: str) -> None:
        self.error = text
        self.status.value = _error_html(text)
        self.progress.bar_style = "danger"
        self.progress.description = "failed"
        self._cleanup_after_error()

    def _cleanup_after_error(self) -> None:
        """Drop state a failed run may have broken (pools, clusters)."""

    def _progress(self, done: int, total: int) -> None:
        self.progress.max = max(1, total)
        self.progress.value = min(done, total)
        self.progress.bar_style = "success" if done >= total else "info"
        self.progress.description = f"{done}/{total}"

    def _refresh(self) -> None:
        cols = [c for c, _ in self.table_columns]
        heads = [h for _, h in self.table_columns]
        self.table.value = html_table(self.results, cols, heads)
        if self.results:
            self.plot.value = _png(self.figure())

    def figure(self) -> Any:
        """A matplotlib Figure of the runs so far (not managed by pyplot)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release pools/clusters the panel started (the widgets stay on screen)."""


class ControlPanel(_Panel):
    """Backend runs from sliders: warm-up + repeats, CSV rows, a table and a bar plot.

    Parameters
    ----------
    preset : str, default "seed"
        Synthetic preset (see :data:`labkit.synth.PRESETS`); tiles are prepared on demand.
    backends : sequence of str, default sequential, multiprocessing, mem, threads
        Choices of the backend dropdown (names from :data:`labkit.backends.BACKENDS`).
    backend : str, optional
        Initial backend (default: the first of ``backends``).
    workers : int, default 2
        Initial workers (slider 1..:func:`max_workers`).
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
        ("run", "#"), ("backend", "backend"), ("workers", "workers"), ("tile", "tile"),
        ("block_rows", "block rows"), ("median_s", "median wall (s)"),
        ("spread_s", "spread (s)"), ("phases", "phases: read / compute / merge (s)"),
        ("gbps", "GB/s"), ("max_abs_diff", "max |Δ| vs sequential"),
        ("pool_startup_s", "pool start-up (s)"),
    )

    def __init__(self, preset: str = "seed", *, backends: Sequence[str] = DEFAULT_BACKENDS,
                 backend: str | None = None, workers: int = 2, repeats: int = 3,
                 tile: int | None = None, block_rows: bool = False,
                 root: str | os.PathLike[str] | None = None,
                 csv: str | os.PathLike[str] | bool | None = None,
                 label: str = "panel") -> None:
        from labkit.backends import BACKENDS

        super().__init__()
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown or not backends:
            raise LabError(f"unknown backend(s) {unknown}: valid are {', '.join(BACKENDS)}")
        self.preset = preset
        self.root = Path(root) if root is not None else None
        self.label = label
        if csv is None:
            from labkit.paths import bench_csv

            csv = bench_csv()
        self.csv: Path | None = Path(csv) if csv not in (False, True) else None
        self.last_result: Any = None
        self.last_results: list[Any] = []
        self._pools: dict[tuple[str, int], Any] = {}
        self._refs: dict[str, Any] = {}
        self.backend = w.Dropdown(options=list(backends), value=backend or backends[0],
                                  description="backend")
        self.strategy = w.Dropdown(description="strategy")
        self.backend.observe(self._on_backend, names="value")
        self._on_backend()
        self.workers = w.IntSlider(value=min(max(1, workers), max_workers()), min=1,
                                   max=max_workers(), description="workers")
        sizes = self._tile_sizes()
        self.tile = w.Dropdown(options=[(f"{t}×{t}", t) for t in sizes], description="tile",
                               value=tile if tile in sizes else self._default_tile(sizes))
        self.repeats = w.IntSlider(value=min(max(1, repeats), MAX_REPEATS), min=1,
                                   max=MAX_REPEATS, description="repeats")
        self._on_backend()
        self.block_rows: w.SelectionSlider | None = None
        if block_rows:
            self.block_rows = w.SelectionSlider(
                options=[("auto", 0)] + [(str(b), b) for b in BLOCK_ROWS_CHOICES],
                value=0, description="rows/block", style=_WIDE)

    # -- widgets ---------------------------------------------------------------------------
    def controls(self) -> list[w.Widget]:
        row1 = w.HBox([self.backend, self.strategy])
        row2 = w.HBox([self.workers, self.repeats])
        row3 = [self.tile] + ([self.block_rows] if self.block_rows is not None else [])
        return [row1, row2, w.HBox(row3)]

    def _on_backend(self, _change: Any = None) -> None:
        from labkit.backends import BACKENDS

        _, strategies, splits = BACKENDS[self.backend.value]
        choices = strategies or splits
        self.strategy.description = "split" if splits else "strategy"
        self.strategy.options = list(choices) if choices else [("—", "")]
        self.strategy.value = choices[0] if choices else ""
        self.strategy.disabled = not choices
        if hasattr(self, "workers"):  # one process whatever the slider says
            self.workers.disabled = self.backend.value == "sequential"

    def _tile_sizes(self) -> list[int]:
        from labkit.prep import tile_sizes

        return list(tile_sizes(self.preset))

    def _default_tile(self, sizes: list[int]) -> int:
        try:
            from labkit.synth import PRESETS

            t = PRESETS[self.preset].tile
        except (ImportError, KeyError, AttributeError):
            t = None
        return t if t in sizes else sizes[0]

    # -- one click -------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The run options the widgets currently say (backend, strategy/split, ...)."""
        from labkit.backends import BACKENDS

        backend = self.backend.value
        _, strategies, splits = BACKENDS[backend]
        variant = self.strategy.value or None
        br = self.block_rows.value if self.block_rows is not None else 0
        return {
            "backend": backend,
            "strategy": variant if strategies else None,
            "split": variant if splits else None,
            "workers": 1 if backend == "sequential" else int(self.workers.value),
            "block_rows": int(br) or None,
            "tile": int(self.tile.value),
            "repeats": int(self.repeats.value),
        }

    def tiles(self) -> Path:
        """The tile folder for the selected tile size (prepared now if missing)."""
        from labkit.prep import ensure_tiles

        return Path(ensure_tiles(self.preset, int(self.tile.value), root=self.root,
                                 jobs=min(int(self.workers.value), os.cpu_count() or 1),
                                 progress=False))

    def reference(self, src: Path) -> Any:
        """The sequential result for tile folder ``src`` (computed once, then cached)."""
        key = str(src)
        if key not in self._refs:
            from labkit.backends import compute

            self.status.value = _note_html("computing the sequential reference…")
            self._refs[key] = compute("sequential", src)
        return self._refs[key]

    def pool(self, backend: str, workers: int) -> tuple[Any, float | str]:
        """A pool for (backend, workers), reused across runs.

        Returns ``(pool, startup)``: the start-up in seconds when the pool was started
        now, ``"reused"`` when it already ran, ``"—"`` when the backend needs no pool.
        """
        key = (backend, workers)
        if key in self._pools:
            pool = self._pools[key]
            return pool, ("reused" if pool is not None else "—")
        from labkit.backends.pools import make_pool

        self.status.value = _note_html(f"starting a {backend} pool of {workers}…")
        t0 = time.perf_counter()
        pool = make_pool(backend, workers)
        startup = getattr(pool, "startup", None) or (time.perf_counter() - t0)
        self._pools[key] = pool
        return pool, (startup if pool is not None else "—")

    @property
    def pools(self) -> dict[tuple[str, int], Any]:
        """The pools this panel keeps, by (backend, workers) (None: no pool needed)."""
        return dict(self._pools)

    def _timed_runs(self, src: Path, opts: dict[str, Any], ref: Any) -> tuple[list[Any], Any]:
        from labkit.bench import time_backend

        pool, startup = self.pool(opts["backend"], opts["workers"])
        self.status.value = _note_html(
            f"{opts['backend']}: 1 warm-up + {opts['repeats']} timed runs…")
        results = time_backend(
            opts["backend"], src, workers=opts["workers"], strategy=opts["strategy"],
            split=opts["split"], block_rows=opts["block_rows"], repeat=opts["repeats"],
            warmup=1, pool=pool, reference=ref, progress=self._progress)
        return results, startup

    def _run_once(self) -> Any:
        from labkit.bench import append_csv, row_from_result

        opts = self.options()
        self._progress(0, opts["repeats"] + 1)
        self.status.value = _note_html(f"preparing {opts['tile']}×{opts['tile']} tiles…")
        src = self.tiles()
        ref = self.reference(src)
        results, startup = self._timed_runs(src, opts, ref)
        if self.csv is not None:
            rows = [row_from_result(r, repeat=i, label=self.label) for i, r in enumerate(results)]
            append_csv(self.csv, rows)
        self.last_results = results
        self.last_result = results[-1]
        self.results.append(self._summary(results, opts, startup))
        where = f" → {self.csv}" if self.csv is not None else ""
        self.status.value = _note_html(
            f"done: {len(results)} timed run(s) of {self._name(opts)}{where}")
        return self.last_result

    def describe(self) -> str:
        """One line per run so far: median, spread, GB/s, max |Δ| (for printed logs)."""
        lines = []
        for r in self.results:
            diff = r["max_abs_diff"]
            lines.append(
                f"#{r['run']} {r['backend']}, {r['workers']} worker(s), {r['tile']}, "
                f"block rows {r['block_rows']}: median {r['median_s']:.4f} s "
                f"(spread {r['spread_s']:.4f} s, {r['repeats']} runs), "
                f"{r['gbps'] or 0:.2f} GB/s, max |Δ| vs sequential "
                f"{'n/a' if diff is None else f'{diff:.3g}'}")
        return "\n".join(lines)

    @staticmethod
    def _name(opts: dict[str, Any]) -> str:
        variant = opts.get("strategy") or opts.get("split")
        return f"{opts['backend']} ({variant})" if variant else opts["backend"]

    def _summary(self, results: list[Any], opts: dict[str, Any],
                 startup: float | str) -> dict[str, Any]:
        walls = [r.timings["wall"] for r in results]
        med = statistics.median(walls)

        def phase(name: str) -> float:
            return statistics.median(r.timings.get(name, 0.0) for r in results)

        nbytes = results[-1].bytes_read
        diffs = [r.meta.get("max_abs_diff") for r in results if "max_abs_diff" in r.meta]
        br = results[-1].meta.get("block_rows")
        return {
            "run": len(self.results) + 1,
            "backend": self._name(opts),
            "backend_name": opts["backend"],
            "workers": opts["workers"],
            "tile": f"{opts['tile']}×{opts['tile']}",
            "block_rows": br if br else "auto",
            "repeats": len(walls),
            "median_s": med,
            "min_s": min(walls),
            "max_s": max(walls),
            "spread_s": max(walls) - min(walls),
            "read_s": phase("read"),
            "compute_s": phase("compute"),
            "merge_s": phase("merge"),
            "phases": f"{phase('read'):.3g} / {phase('compute'):.3g} / {phase('merge'):.3g}",
            "gbps": nbytes / med / 1e9 if med > 0 else None,
            "max_abs_diff": max(diffs) if diffs else None,
            "startup": phase("startup"),  # inside the wall (0 with a reused pool)
            "pool_startup_s": startup,
        }

    def figure(self) -> Any:
        """Bars of the median wall time of every run so far (whiskers: min..max)."""
        from matplotlib.figure import Figure

        rows = self.results
        fig = Figure(figsize=(max(4.0, 0.9 * len(rows) + 2), 3.2))
        ax = fig.add_subplot()
        x = range(len(rows))
        med = [r["median_s"] for r in rows]
        err = [[r["median_s"] - r["min_s"] for r in rows],
               [r["max_s"] - r["median_s"] for r in rows]]
        colors = [_COLORS.get(r.get("backend_name", ""), "#7f7f7f") for r in rows]
        ax.bar(x, med, yerr=err, color=colors, capsize=3)
        ax.set_xticks(list(x))
        ax.set_xticklabels([f"#{r['run']} {r['backend']}\n{r['workers']}w {r['tile']}"
                            for r in rows], fontsize=7, rotation=30, ha="right")
        ax.set_ylabel("median wall time (s)")
        ax.set_title("runs so far (whiskers: min–max of the repeats)", fontsize=9)
        seq = [r["median_s"] for r in rows if r.get("backend_name") == "sequential"]
        if seq:
            ax.axhline(seq[-1], color="k", ls="--", lw=0.8, label="last sequential")
            ax.legend(fontsize=7)
        return fig

    # -- cleanup ---------------------------------------------------------------------------
    def _cleanup_after_error(self) -> None:
        self._close_pools()

    def _close_pools(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            closer = getattr(pool, "close", None)
            if closer is not None:
                try:
                    closer()
                except Exception:  # noqa: BLE001 - a broken pool is being dropped anyway
                    pass

    def close(self) -> None:
        """Close every pool this panel started."""
        self._close_pools()
        self.status.value = _note_html("closed: pools stopped")


class MpiPanel(ControlPanel):
    """The MPI backend on ipyparallel MPI engines started from the workers slider.

    Run starts ``workers`` engines with :func:`labkit.cluster.start_cluster` (or reuses
    the running cluster when the number is unchanged), times 1 warm-up + ``repeats`` runs
    on them, shows per-rank timings and the equivalent ``mpiexec`` command. Stop (and
    :meth:`close`) stops the engines; a failed run stops them too.

    Parameters
    ----------
    preset, workers, repeats, tile, block_rows, root, csv, label
        As :class:`ControlPanel`.
    timeout : float, default 60
        Seconds to wait for the engines to start.
    """

    title = "MPI on ipyparallel engines"
    table_columns = (
        ("run", "#"), ("backend", "backend"), ("workers", "ranks"), ("tile", "tile"),
        ("block_rows", "block rows"), ("median_s", "median wall (s)"),
        ("spread_s", "spread (s)"), ("phases", "phases: read / compute / merge (s)"),
        ("gbps", "GB/s"), ("max_abs_diff", "max |Δ| vs sequential"),
        ("pool_startup_s", "cluster start-up (s)"),
    )

    def __init__(self, preset: str = "seed", *, workers: int = 2, repeats: int = 3,
                 tile: int | None = None, block_rows: bool = False,
                 root: str | os.PathLike[str] | None = None,
                 csv: str | os.PathLike[str] | bool | None = None,
                 label: str = "panel", timeout: float = 60) -> None:
        super().__init__(preset, backends=("mpi",), workers=workers, repeats=repeats,
                         tile=tile, block_rows=block_rows, root=root, csv=csv, label=label)
        self.timeout = timeout
        self.cluster: Any = None
        self._n: int | None = None
        self.backend.disabled = True
        self.workers.description = "ranks"
        self.stop_button = w.Button(description="Stop engines", icon="stop",
                                    button_style="warning")
        self.stop_button.on_click(lambda _button: self.stop())
        self.ranks = w.HTML()
        self.per_rank: list[dict[str, Any]] = []
        self.last_command = ""
        self.command = w.HTML()
        self.cluster_status = w.HTML(_note_html("engines: none running"))

    def buttons(self) -> list[w.Widget]:
        return [self.run_button, self.stop_button]

    def controls(self) -> list[w.Widget]:
        return [*super().controls(), self.cluster_status]

    @property
    def widget(self) -> w.VBox:
        if not hasattr(self, "_box"):
            box = super().widget
            out = box.children[-1]
            out.children = (*out.children[:3], self.ranks, self.command, *out.children[3:])
        return self._box

    def start(self, n: int) -> tuple[Any, float | str]:
        """Start ``n`` MPI engines, or reuse the running ones if there are ``n`` already.

        Returns ``(cluster, startup)``: start-up seconds, or ``"reused"``.
        """
        if self.cluster is not None and self._n == n:
            return self.cluster, "reused"
        self.stop()
        from labkit.cluster import start_cluster

        self.status.value = _note_html(f"starting {n} MPI engine(s)…")
        self.cluster_status.value = _note_html(f"engines: starting {n}…")
        t0 = time.perf_counter()
        self.cluster = start_cluster(n, timeout=self.timeout)
        self._n = n
        startup = getattr(self.cluster, "startup_s", None) or (time.perf_counter() - t0)
        self.cluster_status.value = _note_html(
            f"engines: {n} running (started in {startup:.1f} s; reused until Stop or a new n)")
        return self.cluster, startup

    def stop(self) -> None:
        """Stop the engines (no-op when none run)."""
        cluster, self.cluster = self.cluster, None
        self._n = None
        if cluster is not None:
            # mpiexec exits with 1 when its engines are stopped, and ipyparallel then logs
            # every engine's output as a warning into the cell: keep only real errors
            log = getattr(getattr(cluster, "cluster", None), "log", None)
            if isinstance(log, logging.Logger):
                log.setLevel(logging.ERROR)
            try:
                cluster.stop()
            finally:
                self.cluster_status.value = _note_html("engines: stopped")

    def _timed_runs(self, src: Path, opts: dict[str, Any], ref: Any) -> tuple[list[Any], Any]:
        from labkit.bench import max_abs_diff

        cluster, startup = self.start(opts["workers"])
        total = opts["repeats"] + 1
        self._progress(0, total)
        self.status.value = _note_html(
            f"mpi ({opts['split']}) on {opts['workers']} engine(s): 1 warm-up + "
            f"{opts['repeats']} timed runs…")
        results = []
        for i in range(total):
            res = cluster.run(src, split=opts["split"], block_rows=opts["block_rows"], ddof=0)
            res.meta.setdefault("backend", "mpi")
            res.meta.setdefault("split", opts["split"])
            res.meta.setdefault("workers", opts["workers"])
            if i > 0:
                res.meta["max_abs_diff"] = max_abs_diff(res, ref)
                results.append(res)
            self._progress(i + 1, total)
        self._show_ranks(results[-1], src, opts)
        return results, startup

    def _show_ranks(self, result: Any, src: Path, opts: dict[str, Any]) -> None:
        per_rank = result.meta.get("per_rank") or []
        if isinstance(per_rank, dict):
            per_rank = [{"rank": k, **v} for k, v in sorted(per_rank.items())]
        rows = []
        for i, r in enumerate(per_rank):
            r = dict(r) if isinstance(r, dict) else {"value": r}
            share = r.get("share")
            if isinstance(share, (list, tuple)) and len(share) == 2:
                what = "rows" if opts["split"] == "rows" else "dates"
                r["share"] = f"{what} {share[0]}–{share[1] - 1}"
            if "bytes_read" in r:
                r["mb_read"] = r["bytes_read"] / 1e6
            rows.append({"rank": r.get("rank", i), **r})
        cols = [c for c in ("rank", "share", "read", "compute", "wait", "merge", "wall",
                            "mb_read", "pid") if any(c in r for r in rows)]
        if not cols or cols == ["rank"]:
            cols = list(rows[0]) if rows else []
        heads = [{"mb_read": "MB read", "wait": "wait (s)", "read": "read (s)",
                  "compute": "compute (s)", "merge": "merge (s)", "wall": "wall (s)"}.get(c, c)
                 for c in cols]
        self.per_rank = rows
        self.ranks.value = ("<b>per-rank timings of the last run</b>"
                            + html_table(rows, cols, heads) if rows else "")
        try:
            from labkit.paths import results_dir

            out = results_dir()
            cmd = self.cluster.mpiexec_command(src, out / "mean_mpi.tif", out / "std_mpi.tif",
                                               opts["split"])
        except Exception as exc:  # noqa: BLE001 - the command is a hint, not the result
            cmd = f"(command unavailable: {exc})"
        self.command.value = ("<b>the same run from a terminal:</b>"
                              f"<pre style='white-space:pre-wrap'>{html.escape(str(cmd))}</pre>")
        self.last_command = str(cmd)

    def _cleanup_after_error(self) -> None:
        try:
            self.stop()
        except Exception as exc:  # noqa: BLE001 - keep the original error visible
            self.cluster_status.value = _error_html(f"could not stop the engines: {exc}")

    def close(self) -> None:
        """Stop the engines."""
        self.stop()
        self.status.value = _note_html("closed: engines stopped")


class PrepPanel(_Panel):
    """Prepare intensity tiles (|S|² → multilook → crop) with a jobs slider and tile choice.

    Run synthesizes the preset's SLC stack if missing, then prepares (again, to time it)
    the selected tile size with ``workers`` dates in parallel
    (:func:`labkit.prep.prep_stack`, crop ``T,T,0,0``) into the folder
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
    """

    title = "Prepare intensity tiles"
    table_columns = (
        ("run", "#"), ("tile", "tile"), ("workers", "jobs"), ("n_dates", "dates"),
        ("mb_read", "MB read"), ("seconds", "seconds"), ("mb_per_s", "MB/s"),
        ("folder", "tiles in"),
    )

    def __init__(self, preset: str = "seed", *, workers: int = 2, tile: int | None = None,
                 root: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.preset = preset
        self.root = Path(root) if root is not None else None
        self.last_result: Any = None
        self.workers = w.IntSlider(value=min(max(1, workers), max_workers()), min=1,
                                   max=max_workers(), description="jobs")
        sizes = ControlPanel._tile_sizes(self)  # type: ignore[arg-type]
        self.tile = w.Dropdown(options=[(f"{t}×{t}", t) for t in sizes], description="tile",
                               value=tile if tile in sizes else
                               ControlPanel._default_tile(self, sizes))  # type: ignore[arg-type]
        self.run_button.description = "Prepare"

    def controls(self) -> list[w.Widget]:
        return [w.HBox([self.workers, self.tile])]

    def _run_once(self) -> Any:
        from labkit import prep, synth
        from labkit.paths import data_dir

        tile, jobs = int(self.tile.value), int(self.workers.value)
        self._progress(0, 2)
        base = (self.root if self.root is not None else data_dir()) / self.preset
        self.status.value = _note_html(f"synthesizing the {self.preset} SLC stack if missing…")
        slc = synth.write_stack(base / "slc", self.preset, progress=False)
        looks = tuple(synth.read_manifest(slc)["looks"])
        self._progress(1, 2)
        self.status.value = _note_html(f"preparing {tile}×{tile} tiles with {jobs} job(s)…")
        dest = base / f"intens_{tile}x{tile}"
        summary = prep.prep_stack(slc, dest, (tile, tile, 0, 0), looks, jobs=jobs,
                                  progress=False)
        self.last_result = summary
        self.results.append({
            "run": len(self.results) + 1, "tile": f"{tile}×{tile}", "workers": jobs,
            "n_dates": summary.n_dates, "mb_read": summary.bytes_read / 1e6,
            "seconds": summary.seconds, "mb_per_s": summary.mb_per_s, "folder": str(dest),
        })
        self._progress(2, 2)
        self.status.value = _note_html(
            f"done: {summary.n_dates} tiles in {dest} ({summary.mb_per_s:.0f} MB/s of SLC)")
        return summary

    def figure(self) -> Any:
        """Bars of the seconds each preparation took."""
        from matplotlib.figure import Figure

        rows = self.results
        fig = Figure(figsize=(max(4.0, 0.8 * len(rows) + 2), 3.0))
        ax = fig.add_subplot()
        ax.bar(range(len(rows)), [r["seconds"] for r in rows], color="#1f77b4")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([f"#{r['run']} {r['tile']}\n{r['workers']} jobs" for r in rows],
                           fontsize=7)
        ax.set_ylabel("seconds")
        ax.set_title("tile preparation runs", fontsize=9)
        return fig
