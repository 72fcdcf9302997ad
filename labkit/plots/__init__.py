"""Figures from the benchmark CSV (matplotlib, Agg backend), written as PNG atomically.

Which rows: the *main experiment* is the rows sharing host, label, dates and tile size
with the last non-floor row whose label does not start with ``scale`` (see
:func:`~labkit.plots.models.select_main`); rows labelled ``scale...`` feed
``scaling.png``, rows labelled ``weak...`` feed ``weak.png``.

- :mod:`~labkit.plots.models`: rows, speed-ups, Amdahl fits, captions;
- :mod:`~labkit.plots.timing`: the timing figures (the course's ``t_barras.png`` first);
- :mod:`~labkit.plots.weak`: weak scaling beside strong scaling (``weak.png``);
- :mod:`~labkit.plots.labels`: every word drawn on a figure, in English and Spanish;
- :mod:`~labkit.plots.maps`: the mean/std/CV maps and the persistent scatterers.
"""

from __future__ import annotations

import os
from pathlib import Path

from labkit.errors import LabError
from labkit.plots.maps import PS_THRESHOLD, amplitude_dispersion, plot_maps, read_ps_truth
from labkit.plots.models import (
    FIT_MIN_COUNTS,
    amdahl,
    caption,
    fit_amdahl,
    fit_time_model,
    karp_flatt,
    scale_rows,
    scaling_points,
    select_main,
    speedups,
    summary,
)
from labkit.plots.timing import (
    plot_breakdown,
    plot_efficiency,
    plot_scaling,
    plot_speedup,
    plot_times,
)
from labkit.plots.weak import core_counts, plot_weak

__all__ = [
    "FIT_MIN_COUNTS",
    "PS_THRESHOLD",
    "amdahl",
    "amplitude_dispersion",
    "caption",
    "core_counts",
    "fit_amdahl",
    "fit_time_model",
    "karp_flatt",
    "plot_all",
    "plot_breakdown",
    "plot_efficiency",
    "plot_maps",
    "plot_scaling",
    "plot_speedup",
    "plot_times",
    "plot_weak",
    "read_ps_truth",
    "scale_rows",
    "scaling_points",
    "select_main",
    "speedups",
]


def plot_all(csv_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
             maps_tiles: str | os.PathLike[str] | None = None,
             maps_slc: str | os.PathLike[str] | None = None,
             label: str | None = None, lang: str = "en") -> list[Path]:
    """Every figure of a benchmark CSV into ``out_dir``; returns the written paths.

    ``lang`` (``"en"`` or ``"es"``) is the language of the figures' labels.
    """
    from labkit.bench import read_csv

    rows = read_csv(csv_path)
    if not rows:
        raise LabError(f"{csv_path} has no rows: run `labkit bench` first")
    main = select_main(rows, label)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LabError(f"--out {out} is a file: give a folder")
    written = [plot_times(main, out / "t_barras.png", lang=lang)]
    sp = speedups(summary(main))
    if sp:
        written += [plot_speedup(main, out / "speedup.png", lang=lang),
                    plot_efficiency(main, out / "efficiency.png", lang=lang)]
    written.append(plot_breakdown(main, out / "breakdown.png", lang=lang))
    for extra in (plot_scaling(rows, out / "scaling.png", lang=lang),
                  plot_weak(rows, out / "weak.png", lang=lang)):
        if extra:
            written.append(extra)
    if maps_tiles:
        written.append(plot_maps(maps_tiles, maps_slc, out / "maps.png", lang=lang))
    return written
