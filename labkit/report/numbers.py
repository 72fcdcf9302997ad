"""Numbers as the informe writes them, in English (``0.012 s``) or Spanish (``0,012 s``).

Spanish follows Argentine usage: decimal comma, no thousands separator (the informe's
numbers have at most 3 significant digits). The same helpers become the Jinja filters of
each language's environment (:mod:`labkit.report.render`), so a template never formats
a number itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from labkit.errors import LabError

__all__ = ["LANGS", "check_lang", "filters", "fmt_diff", "fmt_fixed", "fmt_pct", "fmt_s",
           "fmt_sig", "fmt_x"]

LANGS = ("en", "es")
DECIMAL_MARK = {"en": ".", "es": ","}
MISSING = "—"  # shown where a number was not measured


def check_lang(lang: str) -> str:
    """``lang`` itself when the informe is written in it, else a :class:`LabError`."""
    if lang not in LANGS:
        raise LabError(f"language {lang!r} is not available: use {' or '.join(LANGS)}")
    return lang


def _localized(text: str, lang: str) -> str:
    """``text`` (formatted with a decimal point) with the decimal mark of ``lang``."""
    return text.replace(".", DECIMAL_MARK[check_lang(lang)])


def fmt_s(seconds: float | None, lang: str = "en") -> str:
    """Seconds with 3 significant digits: ``1.06``, ``0.0421``, ``12.3`` (``0,0421`` in es).

    Parameters
    ----------
    seconds : float or None
        Duration in seconds; None, NaN or infinite give ``—``.
    lang : {"en", "es"}
        Language of the text.
    """
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    return _localized(f"{seconds:.3g}", lang)


def fmt_x(ratio: float | None, lang: str = "en") -> str:
    """A ratio (speed-up, times a floor) with 2 decimals and a ``×``: ``1.49×``.

    None (not measured) gives ``—``.
    """
    if ratio is None:
        return MISSING
    return _localized(f"{ratio:.2f}×", lang)


def fmt_pct(share: float, lang: str = "en") -> str:
    """A share (0..1) as a whole percentage with a space: ``35 %``."""
    return _localized(f"{100 * share:.0f} %", lang)


def fmt_sig(value: float, digits: int = 3, lang: str = "en") -> str:
    """``value`` with ``digits`` significant digits (sizes in MiB, shares in %)."""
    return _localized(f"{value:.{digits}g}", lang)


def fmt_fixed(value: float, decimals: int = 1, lang: str = "en") -> str:
    """``value`` with a fixed number of decimals (efficiency, serial fraction, GB/s)."""
    return _localized(f"{value:.{decimals}f}", lang)


def fmt_diff(diff: float, lang: str = "en") -> str:
    """A finite max |Δ| between two results: ``0.0`` or 2 significant digits (``2.5e-07``)."""
    return _localized("0.0" if diff == 0 else f"{diff:.2g}", lang)


def filters(lang: str) -> dict[str, Callable[..., str]]:
    """The Jinja filters of one language: ``s``, ``x``, ``pct``, ``sig``, ``fixed``, ``diff``."""
    check_lang(lang)
    return {
        "s": lambda v: fmt_s(v, lang),
        "x": lambda v: fmt_x(v, lang),
        "pct": lambda v: fmt_pct(v, lang),
        "sig": lambda v, digits=3: fmt_sig(v, digits, lang),
        "fixed": lambda v, decimals=1: fmt_fixed(v, decimals, lang),
        "diff": lambda v: fmt_diff(v, lang),
    }
