"""The frame every panel shares: Run button, progress bar, status line, table, plot and
the red error line, with the error handling of a click.

:class:`Panel` is the base of :class:`labkit.ui.ControlPanel`, :class:`labkit.ui.MpiPanel`
and :class:`labkit.ui.PrepPanel`; a subclass says what one click does
(:meth:`Panel._run_once`), which rows it keeps (:attr:`Panel.results`) and how they are
drawn (:meth:`Panel.figure`).
"""

from __future__ import annotations

import html
import os
import traceback
from typing import Any

import ipywidgets as w

from labkit import sysinfo
from labkit.errors import LabError
from labkit.ui import controller as ctl
from labkit.ui.html import error_html, html_table, note_html

__all__ = ["KERNEL_CHOICES", "WIDE_LABEL", "Panel", "cores_html",
           "kernel_dropdown", "max_workers", "tile_dropdown", "workers_slider"]

_BOX = w.Layout(border="1px solid #ccc", padding="6px", width="100%")
WIDE_LABEL = {"description_width": "initial"}  # a description wider than the default


KERNEL_CHOICES = (0, 3, 5, 7, 9, 11, 13, 15)  # Lee window sides offered (0: no filter)


def max_workers() -> int:
    """Top of the workers slider: the logical cores (``os.cpu_count()``)."""
    return os.cpu_count() or 1


def cores_html(workers: int) -> str:
    """One line: the machine's logical and physical cores, and whether ``workers`` is past
    the physical count (workers then share a core's arithmetic units: hyper-threads, or
    the OS taking turns).
    """
    logical, physical = sysinfo.core_counts()
    text = (f"this machine: {logical} logical core{'s' * (logical != 1)}, {physical} "
            f"physical")
    if workers > logical:
        text += (f"; {workers} workers is past the {logical} logical cores: they take turns "
                 "on the cores, expect no gain")
    elif workers > physical:
        text += (f"; {workers} workers is past the {physical} physical cores: hyper-threads "
                 "share a core's arithmetic units, expect less than linear")
    return note_html(text)


def workers_slider(workers: int, description: str, top: int | None = None) -> w.IntSlider:
    """A 1..``top`` slider (default :func:`max_workers`) starting at ``workers`` (clipped)."""
    top = max(1, top or max_workers())
    return w.IntSlider(value=min(max(1, workers), top), min=1, max=top,
                       description=description)


def kernel_dropdown(filter: str | None) -> w.Dropdown:
    """The kernel-weight selector: ``none`` or a Lee filter ``K = 3 … 15`` (value: K, 0 for
    none), starting at ``filter`` (``"lee:K"``; None or ``"none"``: none). The runs use
    the tiles' looks as ENL, so an ENL in ``filter`` is not kept.
    """
    from labkit.filters import parse_filter

    filt = parse_filter(filter)
    k = filt.k if filt is not None else 0
    if k not in KERNEL_CHOICES:
        raise LabError(f"filter {filter!r} is not offered by the panel: valid are none and "
                       f"lee:K with K in {', '.join(map(str, KERNEL_CHOICES[1:]))}")
    return w.Dropdown(options=[("none", 0)] + [(f"Lee K = {k}", k) for k in KERNEL_CHOICES[1:]],
                      value=k, description="kernel")


def tile_dropdown(preset: str, tile: int | None) -> w.Dropdown:
    """The preset's tile sides as ``T×T`` (px), starting at ``tile`` or the preset's own."""
    sizes = ctl.tile_choices(preset)
    return w.Dropdown(options=[(f"{t}×{t}", t) for t in sizes], description="tile",
                      value=tile if tile in sizes else ctl.default_tile(preset, sizes))


class Panel:
    """What every panel shares: Run button, progress bar, status line, table, plot, errors."""

    title = "Control panel"
    table_columns: tuple[tuple[str, str], ...] = ()

    def __init__(self) -> None:
        self.error: str | None = None
        self.traceback: str | None = None
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.run_button.on_click(lambda _button: self.run())
        self.progress = w.IntProgress(value=0, min=0, max=1, description="idle",
                                      style=WIDE_LABEL, layout=w.Layout(width="50%"))
        self.status = w.HTML()
        self.table = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(max_width="720px"))
        self.log = w.Output()  # anything a backend prints during a run

    @property
    def results(self) -> list[dict[str, Any]]:
        """One table row per successful run so far."""
        raise NotImplementedError

    # -- display ---------------------------------------------------------------------------
    def controls(self) -> list[w.Widget]:
        """The input widgets, top to bottom."""
        return []

    def buttons(self) -> list[w.Widget]:
        """The buttons beside the progress bar."""
        return [self.run_button]

    @property
    def widget(self) -> w.VBox:
        """The whole panel as one ipywidgets box."""
        if not hasattr(self, "_box"):
            header = w.HTML(f"<b>{html.escape(self.title)}</b>")
            buttons = w.HBox([*self.buttons(), self.progress])
            output = w.VBox([self.status, self.table, self.plot, self.log], layout=_BOX)
            self._box = w.VBox([header, *self.controls(), buttons, output], layout=_BOX)
            self._box.add_class("labkit-panel")  # stable CSS hooks for the browser tests
            for name in ("workers", "tile", "kernel", "cores", "run_button", "stop_button",
                         "progress", "status", "table", "plot"):
                if isinstance(getattr(self, name, None), w.DOMWidget):
                    getattr(self, name).add_class(f"labkit-{name.replace('_button', '')}")
        return self._box

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _note(self, text: str) -> None:
        """Show ``text`` as the status line."""
        self.status.value = note_html(text)

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
        self._note("running…")
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
        self.status.value = error_html(text)
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
        from labkit.ui.plots import png_bytes

        cols = [c for c, _ in self.table_columns]
        heads = [h for _, h in self.table_columns]
        self.table.value = html_table(self.results, cols, heads)
        if self.results:
            self.plot.value = png_bytes(self.figure())

    def figure(self) -> Any:
        """A matplotlib Figure of the runs so far (not managed by pyplot)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release pools/clusters the panel started (the widgets stay on screen)."""
