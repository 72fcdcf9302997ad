"""The HTML the panels show: a small table, the red error line, a plain note, a command.

Plain strings (no ipywidgets): a panel puts them into its ``HTML`` widgets.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

__all__ = ["command_html", "error_html", "html_table", "note_html"]

ERROR_COLOR = "#b00020"  # the red of a failed run
ERROR_MARK = "⚠"  # first character of the error line (the browser tests look for it)


def _cell(value: Any) -> str:
    """One table cell: empty for None, floats with 3 significant digits, text escaped."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))


def html_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
               headers: Sequence[str] | None = None) -> str:
    """A small HTML table of ``rows``; floats shown with 3 significant digits.

    Parameters
    ----------
    rows : sequence of dict
        One dict per table row; missing keys give empty cells.
    columns : sequence of str, optional
        Keys to show, in order (default: the keys of the first row).
    headers : sequence of str, optional
        Column titles (default: the keys).

    Returns
    -------
    str
        ``<table>…</table>``, or ``""`` when there are no rows.
    """
    if not rows:
        return ""
    cols = list(columns or rows[0].keys())
    heads = list(headers or cols)
    th = "".join(f"<th style='padding:2px 8px;text-align:left'>{html.escape(h)}</th>"
                 for h in heads)
    body = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px'>{_cell(r.get(c))}</td>" for c in cols)
        + "</tr>" for r in rows)
    return (f"<table style='border-collapse:collapse;font-size:90%'><thead><tr>{th}</tr>"
            f"</thead><tbody>{body}</tbody></table>")


def error_html(text: str) -> str:
    """``text`` as one bold red line starting with ⚠ (a failed run)."""
    return (f"<div style='color:{ERROR_COLOR};font-weight:bold'>{ERROR_MARK} "
            f"{html.escape(text)}</div>")


def note_html(text: str) -> str:
    """``text`` as one plain grey line (what the panel is doing, or did)."""
    return f"<div style='color:#333'>{html.escape(text)}</div>"


def command_html(title: str, command: str) -> str:
    """A bold ``title`` over ``command`` in a wrapping ``<pre>`` block."""
    return (f"<b>{html.escape(title)}</b>"
            f"<pre style='white-space:pre-wrap'>{html.escape(command)}</pre>")
