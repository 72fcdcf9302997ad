"""Building the informe: ``labkit report`` (one CSV → HTML) and ``make report`` (all of it).

:func:`build_report` executes ``notebooks/06_analysis.ipynb`` on a CSV and exports it;
:func:`full_report` runs the whole lab first (data, benchmarks, scaled experiment,
figures, notebooks 01–05) and writes the informe in both languages.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit.errors import LabError
from labkit.report.display import make_figures
from labkit.report.export import export_html
from labkit.report.numbers import LANGS, check_lang
from labkit.report.stacks import available_backends, real_tiles, scaled_stack

__all__ = ["NOTEBOOK", "build_report", "ensure_results", "ensure_weak", "full_report"]

NOTEBOOK = "06_analysis.ipynb"
INFORME_FILES = {"en": "informe.html", "es": "informe_es.html"}
NOTEBOOK_TIMEOUT_S = 900  # seconds allowed per notebook cell
FULL_SCALE_SIZES = ((5, 256), (5, 1024), (12, 1024), (24, 1024), (24, 2048), (48, 2048))


def _logical_cores() -> int:
    """Logical cores of this machine (what ``labkit bench`` records as ``cores_logical``)."""
    import psutil

    return int(psutil.cpu_count(logical=True) or os.cpu_count() or 1)


def _notebook_dir() -> Path:
    """The lab's ``notebooks/`` (the checkout's, else the one under the lab's home)."""
    from labkit import paths

    here = Path(__file__).resolve().parents[2] / "notebooks"
    return here if here.is_dir() else paths.home() / "notebooks"


def _say(msg: str) -> None:
    """A progress line on stderr, with the time of day."""
    print(f"[report {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_results(
    csv_path: str | os.PathLike[str] | None = None,
    *,
    tiles: str | os.PathLike[str] | None = None,
    preset: str | None = "seed",
    workers: int | None = None,
    repeats: int | None = 3,
) -> Path:
    """The benchmark CSV, benchmarked first if it has no sequential baseline yet.

    When ``csv_path`` (default ``benchmarks/resultados.csv``) is missing or its main
    experiment lacks a sequential run, every available backend is timed in-process at
    1..``workers`` workers (default: the logical cores) on ``tiles`` (default: the
    preset's, made if missing) with ``repeats`` timed runs, and appended with label
    ``main``.
    """
    from labkit import paths
    from labkit.bench import read_csv, run_bench
    from labkit.plots import select_main

    csv_file = Path(csv_path) if csv_path else paths.bench_csv()
    if csv_file.is_file():
        try:
            main = select_main(read_csv(csv_file))
        except LabError:
            main = []
        if any(r["backend"] == "sequential" for r in main):
            return csv_file
    if tiles is None:
        if not preset:
            raise LabError(f"{csv_file} has no sequential baseline and no tiles were given")
        from labkit.prep import ensure_tiles

        tiles = ensure_tiles(preset, progress=False)
    top = workers or _logical_cores()
    run_bench(tiles, backends=available_backends(), workers=list(range(1, top + 1)),
              repeat=repeats or 3, warmup=1, csv_path=csv_file, label="main", progress=False)
    return csv_file


def ensure_weak(
    csv_path: str | os.PathLike[str],
    tiles: str | os.PathLike[str] | None,
    *,
    workers: int | None = None,
    repeats: int | None = 3,
    backends: list[str] | None = None,
) -> bool:
    """Add a weak-scaling run to the CSV unless it already has one from this machine.

    The backends of the main experiment (or ``backends``) are timed with p workers on p
    times the dates of ``tiles``, for p = 1..``workers`` (default: the logical cores);
    rows labelled ``weak`` (:func:`labkit.bench.weak.run_weak`).

    Returns
    -------
    bool
        True when a weak-scaling run is in the CSV (found or made); False without tiles.
    """
    import platform

    from labkit.bench import read_csv
    from labkit.bench.weak import run_weak, weak_rows

    csv_file = Path(csv_path)
    rows = read_csv(csv_file) if csv_file.is_file() else []
    done = weak_rows(rows)
    if done and done[-1].get("host") == platform.node():
        return True
    if tiles is None:
        return bool(done)
    if backends is None:
        from labkit.config import FLOORS
        from labkit.plots import select_main

        try:
            main = select_main(rows)
        except LabError:
            main = []
        backends = sorted({r["backend"] for r in main if r["backend"] not in FLOORS})
    top = workers or _logical_cores()
    run_weak(tiles, backends=backends or available_backends(), workers=list(range(1, top + 1)),
             repeat=repeats or 3, warmup=1, csv_path=csv_file, progress=False)
    return True


def build_report(
    csv_path: str | os.PathLike[str],
    *,
    lang: str = "en",
    out: str | os.PathLike[str] = "reports/informe.html",
    figures: str | os.PathLike[str] | None = None,
    preset: str | None = None,
    tiles: str | os.PathLike[str] | None = None,
    slc: str | os.PathLike[str] | None = None,
    executed: str | os.PathLike[str] | None = None,
    timeout: int = NOTEBOOK_TIMEOUT_S,
    quick: bool = False,
) -> Path:
    """Execute ``06_analysis`` on a CSV and export the informe to HTML.

    Parameters
    ----------
    csv_path : path
        Benchmark CSV.
    lang : {"en", "es"}
        Language of the informe.
    out : path
        The HTML (written atomically).
    figures : path, optional
        Folder for the PNGs (default: ``figures/`` under the lab's home).
    preset : str, optional
        Synthetic preset quoted in the informe (None: not synthetic).
    tiles, slc : path, optional
        Tile folder and SLC stack for ``maps.png``.
    executed : path, optional
        Where to keep the executed notebook.
    timeout : int
        Seconds allowed per notebook cell.
    quick : bool
        Quick roofline and speed-up-vs-K measurements (fewer K, shorter loops).

    Returns
    -------
    Path
        ``out``.
    """
    from labkit import paths
    from labkit.bench import read_csv
    from labkit.nbrun import execute_notebook

    check_lang(lang)
    csv_file = Path(csv_path).resolve()
    read_csv(csv_file)  # fail fast on a missing/foreign CSV, before starting a kernel
    nb_path = _notebook_dir() / NOTEBOOK
    if not nb_path.is_file():
        raise LabError(f"notebook {nb_path} is missing: the informe is built from it")
    out_path = Path(out).resolve()
    params = {
        "csv": str(csv_file), "lang": lang, "out": str(out_path),
        "figures": str(Path(figures).resolve() if figures else paths.figures_dir()),
        "preset": preset, "tiles": str(Path(tiles).resolve()) if tiles else None,
        "slc": str(Path(slc).resolve()) if slc else None, "quick": quick,
    }
    nb = execute_notebook(nb_path, params, timeout=timeout, out_path=executed)
    return export_html(nb, out_path, lang=lang)


def _rotate(csv_file: Path) -> Path | None:
    """Move an existing CSV aside (``name.<stamp>.csv``) so a full run starts clean."""
    if not csv_file.exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(csv_file.stat().st_mtime))
    old = csv_file.with_name(f"{csv_file.stem}.{stamp}{csv_file.suffix}")
    os.replace(csv_file, old)
    return old


def _bench_scaled(tiles: Path, data_root: Path, csv_file: Path, backends: list[str],
                  workers: int, *, quick: bool, reuse_seed: bool) -> None:
    """The scaled experiment (label ``scale``): every variant at ``workers`` on bigger stacks.

    ``reuse_seed``: the seed stack itself stands for its own size (5 × 1024²).
    """
    from labkit.bench import run_bench

    side = int(tiles.name.rsplit("x", 1)[-1]) if "x" in tiles.name else 64
    sizes = ((4, 32), (8, side), (16, 2 * side)) if quick else FULL_SCALE_SIZES
    for n_dates, size in sizes:
        if reuse_seed and (n_dates, size) == (5, side):
            src = tiles
        else:
            src = scaled_stack(tiles, data_root / "scale" / f"d{n_dates}_{size}x{size}",
                               n_dates, size)
        _say(f"scale: {n_dates} dates × {size}x{size}")
        run_bench(src, backends=backends, workers=[workers], repeat=1 if quick else 3,
                  warmup=1, csv_path=csv_file, process=False, label="scale", floors=False,
                  progress=sys.stderr.isatty(), course_tsv=False)


def _run_notebooks(out_dir: Path, preset: str) -> tuple[list[Path], list[str]]:
    """Execute notebooks 01–05 into ``out_dir``: (executed copies, failure messages)."""
    from labkit.nbrun import execute_notebook

    executed, failed = [], []
    for nb in sorted(_notebook_dir().glob("0[1-5]_*.ipynb")):
        _say(f"notebook {nb.name}")
        target = out_dir / nb.name
        try:
            execute_notebook(nb, {"preset": preset}, out_path=target,
                             timeout=NOTEBOOK_TIMEOUT_S)
        except LabError as exc:
            failed.append(str(exc))
        executed.append(target)
    return executed, failed


def full_report(
    preset: str = "seed",
    *,
    quick: bool = False,
    data: str | os.PathLike[str] | None = None,
    home: str | os.PathLike[str] | None = None,
    workers: Sequence[int] | None = None,
    notebooks: bool = True,
) -> dict[str, Any]:
    """The whole lab, end to end (``make report``).

    1. Tiles: the synthetic ``preset`` (synthesized and prepped if missing), or the real
       SLC stack ``data`` prepped with the largest square crop ≤ 1024 px that fits.
    2. Bench (label ``main``): every available backend variant at 1..N workers
       (N = logical cores), 5 in-process repeats and 3 whole-process runs; floors. A
       previous ``benchmarks/resultados.csv`` is kept as ``resultados.<stamp>.csv``.
    3. Scale (label ``scale``): sequential and every variant at N workers (3 repeats)
       on bigger stacks built from the tiles (:func:`scaled_stack`): 5×256², 5×1024²,
       12×1024², 24×1024², 24×2048², 48×2048² (768 MiB). Weak scaling (label ``weak``):
       every variant with p workers on p times the tiles' dates, p = 1..N.
    4. Figures, notebooks 01–05 (whichever exist; executed copies under
       ``reports/notebooks/``), and 06_analysis → ``reports/informe.html`` and
       ``reports/informe_es.html``.

    Parameters
    ----------
    preset : str, default "seed"
        Synthetic preset (``tiny`` | ``seed`` | ``dates24`` | ``large``).
    quick : bool
        2 repeats, 1 whole-process run, scale sizes 4×32², 8×T², 16×(2T)² (the test
        suite runs ``tiny`` + quick).
    data : path, optional
        Real SLC stack (``REPORT_DATA``) instead of the preset.
    home : path, optional
        Lab folder (default :func:`labkit.paths.home`).
    workers : list of int, optional
        Default 1..N.
    notebooks : bool
        Execute notebooks 01–05.

    Returns
    -------
    dict
        ``csv``, ``figures``, ``reports`` (HTML paths, English first), ``notebooks``,
        ``seconds`` (wall time of the whole run), ``failed`` (notebook errors).
    """
    from labkit import paths
    from labkit.bench import run_bench

    t0 = time.perf_counter()
    root = Path(home).resolve() if home else paths.home()
    data_root = root / "data"
    csv_file = root / "benchmarks" / "resultados.csv"
    fig_dir, rep_dir = root / "figures", root / "reports"
    if data:
        _say(f"prepping the real stack {data}")
        tiles = real_tiles(data, data_root)
        slc: Path | None = None
        preset_name = None
    else:
        from labkit.prep import ensure_tiles

        _say(f"data: preset {preset} under {data_root} (synthesized/prepped if missing)")
        tiles = ensure_tiles(preset, root=data_root, progress=sys.stderr.isatty())
        slc = tiles.parent / "slc"
        preset_name = preset
    counts = list(workers) if workers else list(range(1, _logical_cores() + 1))
    backends = available_backends()
    old = _rotate(csv_file)
    if old:
        _say(f"previous results kept as {old}")
    repeat = 2 if quick else 5
    _say(f"bench: {', '.join(backends)} at workers {counts} ({repeat} repeats, in-process "
         "and whole-process)")
    run_bench(tiles, backends=backends, workers=counts, repeat=repeat, warmup=1,
              csv_path=csv_file, process=True, label="main", progress=sys.stderr.isatty(),
              process_repeat=1 if quick else 3)
    _bench_scaled(tiles, data_root, csv_file, backends, max(counts), quick=quick,
                  reuse_seed=not quick and preset == "seed" and not data)
    _say(f"weak scaling: p workers on p × the tiles' dates, p = {counts[0]}..{max(counts)}")
    from labkit.bench.weak import run_weak

    run_weak(tiles, backends=backends, workers=counts, repeat=1 if quick else 3, warmup=1,
             csv_path=csv_file, root=data_root / "weak" / tiles.name,
             progress=sys.stderr.isatty())
    _say("figures")
    for lang in LANGS:
        make_figures(csv_file, fig_dir, tiles=tiles, slc=slc, lang=lang)
    nb_out = rep_dir / "notebooks"
    executed, failed = _run_notebooks(nb_out, preset_name or preset) if notebooks else ([], [])
    reports = []
    for lang in LANGS:
        _say(f"informe ({lang})")
        nb_name = NOTEBOOK if lang == "en" else NOTEBOOK.replace(".ipynb", f"_{lang}.ipynb")
        reports.append(build_report(csv_file, lang=lang, out=rep_dir / INFORME_FILES[lang],
                                    figures=fig_dir, preset=preset_name, tiles=tiles, slc=slc,
                                    executed=nb_out / nb_name, quick=quick))
        executed.append(nb_out / nb_name)
    summary = {"csv": csv_file, "figures": fig_dir, "reports": reports,
               "notebooks": executed, "seconds": time.perf_counter() - t0, "failed": failed}
    if failed:
        raise LabError(f"informe written to {reports[0]}, but {len(failed)} notebook(s) "
                       f"failed: {failed[0]}")
    return summary
