"""What a student does in JupyterLab, with Playwright: open, Run All, read outputs, panels.

The kernel state is read from ``window.jupyterapp`` (the server runs with
``--LabApp.expose_app_in_browser``); everything else goes through the menus and the DOM.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PanelRun",
    "cell_errors",
    "drive_panel",
    "fill_exercise",
    "open_notebook",
    "prompts",
    "run_all",
    "run_in_terminal",
    "save_notebook",
    "screenshot",
    "wait_until_done",
]

# JupyterLab 4 renders an exception like stream stderr: a .jp-OutputArea-output with
# data-mime-type="application/vnd.jupyter.stderr" (red ANSI header, "Traceback", ename).
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^-{40,}$|^\w*(Error|Exception)\b"
                        r"|^KeyboardInterrupt", re.M)
PANEL_ERROR = "⚠"  # labkit.ui shows a failed run as one red line starting with it

_KERNEL_READY = """(name) => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  if (!w || !w.context || !w.context.path.endsWith(name)) return false;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}"""
_BUSY = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  if (!k || k.status !== 'idle') return true;
  return [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')]
    .some(e => e.textContent.includes('*'));
}"""


def _menu(page: Any, menu: str, item: str | re.Pattern[str]) -> None:
    """Click ``menu`` in the menu bar, then its entry ``item`` (exact label or pattern)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
    label = item if isinstance(item, re.Pattern) else re.compile(f"^{re.escape(item)}$")
    page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=label).first.click()


def open_notebook(page: Any, url: str, name: str, timeout: float = 90) -> None:
    """Open ``url`` (a /lab/tree/<name> address) and wait for its kernel to be idle."""
    page.goto(url)
    page.wait_for_function(_KERNEL_READY, arg=name, timeout=timeout * 1000)


def run_all(page: Any) -> None:
    """Run → Run All Cells."""
    _menu(page, "Run", "Run All Cells")


def wait_until_done(page: Any, timeout: float, settle: float = 2.0) -> float:
    """Wait until the kernel is idle and no cell is queued for ``settle`` seconds.

    Returns
    -------
    float : seconds waited

    Raises
    ------
    TimeoutError
        Still busy after ``timeout`` seconds.
    """
    t0 = time.monotonic()
    quiet_since: float | None = None
    while True:
        now = time.monotonic()
        if page.evaluate(_BUSY):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= settle and now - t0 > settle + 1:
            return now - t0
        if now - t0 > timeout:
            raise TimeoutError(f"notebook still running after {timeout:.0f} s")
        page.wait_for_timeout(250)


def prompts(page: Any) -> list[str]:
    """The input prompt of every code cell, e.g. ``[3]:`` (``[ ]:`` never run), from the
    cells' models: a cell whose input is hidden (a solution) shows no prompt on screen.
    """
    return page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.widgets
      .filter(c => c.model.type === 'code')
      .map(c => `[${c.model.executionCount ?? ' '}]:`)""")


def cell_errors(page: Any) -> list[str]:
    """Texts of the stderr outputs on screen that are exceptions (not warnings)."""
    texts = page.eval_on_selector_all(STDERR, "els => els.map(e => e.innerText)")
    return [t for t in texts if ERROR_TEXT.search(t)]


_SELECT_CELL = """(marker) => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  const i = nb.widgets.findIndex(c => c.model.sharedModel.getSource().includes(marker));
  if (i >= 0) { nb.mode = 'command'; nb.activeCellIndex = i; }
  return i;
}"""


def fill_exercise(page: Any, marker: str, body: str, timeout: float = 120) -> str:
    """Replace the code of the exercise cell whose code contains ``marker`` by ``body``,
    run it and the cell after it (its checker) with Shift+Enter, as a student does.

    The body goes in as keyboard text input (as a paste would: the editor keeps its
    indentation as written). Returns the text the checker cell shows.
    """
    index = page.evaluate(_SELECT_CELL, marker)
    if index < 0:
        raise AssertionError(f"no cell contains {marker!r}")
    cell = page.locator(".jp-Notebook .jp-Cell.jp-mod-active")
    cell.scroll_into_view_if_needed()
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(body)
    page.keyboard.press("Shift+Enter")  # run the exercise; the checker cell is next
    page.keyboard.press("Shift+Enter")  # run the checker
    wait_until_done(page, timeout)
    checker = page.locator(".jp-Notebook .jp-Cell").nth(index + 1)
    checker.scroll_into_view_if_needed()
    return str(checker.locator(".jp-OutputArea").inner_text())


def run_in_terminal(page: Any, command: str, timeout: float = 60) -> Any:
    """File → New → Terminal, type ``command`` + Enter; the terminal's locator.

    Returns as soon as the command is typed (the caller waits for its effect).
    """
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^File$")).click()
    page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile("^New$")).first.hover()
    page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile("^Terminal$")).first.click()
    term = page.locator(".jp-Terminal").last
    term.locator(".xterm-accessibility-tree").filter(has_text=re.compile(r"[$#]")).wait_for(
        timeout=timeout * 1000)  # the shell prompt (screen reader mode: text in the DOM)
    term.locator(".xterm-helper-textarea").focus()
    page.keyboard.type(command)
    page.keyboard.press("Enter")
    return term


def save_notebook(page: Any, timeout: float = 30) -> None:
    """File → Save Notebook; wait until the tab is no longer dirty."""
    _menu(page, "File", re.compile(r"^Save( Notebook)?$"))
    page.wait_for_function(
        "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
        timeout=timeout * 1000)


def screenshot(page: Any, path: str, *, full: bool = False) -> None:
    """PNG of the page; ``full`` grows the window to show the whole notebook first."""
    if full:
        height = page.evaluate(
            "() => { const n = document.querySelector('.jp-WindowedPanel-outer') ||"
            " document.querySelector('.jp-Notebook'); return n ? n.scrollHeight : 0; }")
        page.evaluate("() => { const n = document.querySelector('.jp-WindowedPanel-outer');"
                      " if (n) n.scrollTop = 0; }")
        size = page.viewport_size
        tall = min(12000, max(size["height"], 200 + height))
        page.set_viewport_size({"width": size["width"], "height": tall})
        page.wait_for_timeout(500)
        try:
            page.screenshot(path=path)
        finally:
            page.set_viewport_size(size)
    else:
        page.screenshot(path=path)


@dataclass
class PanelRun:
    """What one Run click in a control panel did."""

    workers: int | None  # slider value after moving it (None: no slider or disabled)
    tile: int | None  # tile size picked (pixels; None: no tile selector)
    rows_before: int
    rows_after: int
    status: str
    plot_changed: bool
    seconds: float


def _rows(panel: Any) -> int:
    return panel.locator(".labkit-table tbody tr").count()


def _move_slider(panel: Any) -> int | None:
    """Move the workers slider one step (down if it can, else up); its new value."""
    slider = panel.locator(".labkit-workers")
    if slider.count() == 0:
        return None
    if slider.locator(".noUi-target[disabled]").count():  # e.g. sequential: one process
        return None
    handle = slider.locator(".noUi-handle")
    lo, now = (int(float(handle.get_attribute(a))) for a in ("aria-valuemin", "aria-valuenow"))
    handle.focus()
    handle.press("ArrowLeft" if now > lo else "ArrowRight")
    readout = slider.locator(".widget-readout")
    want = str(now - 1 if now > lo else now + 1)
    readout.filter(has_text=re.compile(f"^{want}$")).wait_for(timeout=5000)
    return int(want)


def _pick_tile(panel: Any) -> int | None:
    """Pick another tile size in the tile dropdown; its size in pixels."""
    select = panel.locator(".labkit-tile select")
    if select.count() == 0:
        return None
    labels = select.locator("option").all_inner_texts()
    current = select.evaluate("s => s.options[s.selectedIndex].text")
    other = next(lab for lab in labels if lab != current)
    select.select_option(label=other)
    return int(re.match(r"\d+", other).group(0))


def drive_panel(page: Any, panel: Any, timeout: float = 180) -> PanelRun:
    """Move the workers slider and the tile selector of ``panel``, click Run, wait.

    Waits until the results table has one more row or the panel shows an error.
    """
    panel.scroll_into_view_if_needed()
    before = _rows(panel)
    plot = panel.locator("img.labkit-plot")
    src_before = plot.get_attribute("src") if plot.count() else None
    workers = _move_slider(panel)
    tile = _pick_tile(panel)
    t0 = time.monotonic()
    panel.locator("button.labkit-run").click()
    deadline = t0 + timeout
    status = ""
    while time.monotonic() < deadline:
        status = panel.locator(".labkit-status").inner_text()
        if _rows(panel) > before or PANEL_ERROR in status:
            break
        page.wait_for_timeout(250)
    page.wait_for_timeout(500)  # the plot is set right after the table
    src_after = plot.get_attribute("src") if plot.count() else None
    loaded = bool(plot.count()) and plot.evaluate("i => i.complete && i.naturalWidth > 0")
    return PanelRun(workers=workers, tile=tile, rows_before=before, rows_after=_rows(panel),
                    status=panel.locator(".labkit-status").inner_text(),
                    plot_changed=bool(loaded and src_after and src_after != src_before),
                    seconds=time.monotonic() - t0)
