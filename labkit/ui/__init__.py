"""The notebooks' panels and figures.

* :mod:`~labkit.ui.controller`: what a panel does (tiles, pools, timed runs, CSV rows),
  with the functions ``labkit bench`` uses and no widget;
* :mod:`~labkit.ui.panels`: :class:`ControlPanel`, :class:`MpiPanel`, :class:`PrepPanel`,
  the ipywidgets views over a controller;
* :mod:`~labkit.ui.frame`: what every panel shares (buttons, progress, status, errors);
* :mod:`~labkit.ui.html`: the table, error and note HTML the panels show;
* :mod:`~labkit.ui.plots`: the notebooks' figures and small checks.

The names below load their module on first use, so ``labkit.ui.controller`` and
``labkit.ui.plots`` can be used without importing ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ControlPanel", "MpiPanel", "PrepPanel", "html_table", "max_workers"]

_HOMES = {"ControlPanel": "labkit.ui.panels", "MpiPanel": "labkit.ui.panels",
          "PrepPanel": "labkit.ui.panels", "max_workers": "labkit.ui.frame",
          "html_table": "labkit.ui.html"}


def __getattr__(name: str) -> Any:
    """``ControlPanel``, ``html_table``, …: imported from their module when first asked."""
    if name not in _HOMES:
        raise AttributeError(f"module 'labkit.ui' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
