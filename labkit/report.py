"""The informe: conclusions computed from the benchmark CSV, HTML export, ``labkit report``.

:func:`analyze` turns CSV rows into *facts* (numbers only); :func:`section` turns facts
into Markdown in English or Spanish, following the course's informe: Methodology,
Results, Why, Limitations, Next steps, Reproduce, Closing (Metodología, Resultados, Por
qué, Limitaciones, Próximos pasos, Reproducir, Cierre). Every sentence quotes numbers
from the facts. ``notebooks/06_analysis.ipynb`` calls these; :func:`build_report`
executes it and exports HTML with code hidden, figures embedded and nothing loaded from
the network; :func:`full_report` is the whole lab (``make report``).
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit.errors import LabError

__all__ = [
    "LANGS",
    "SECTIONS",
    "analyze",
    "build_report",
    "check_offline",
    "cli_main",
    "display_section",
    "ensure_results",
    "export_html",
    "find_data",
    "fmt_s",
    "fmt_x",
    "full_report",
    "make_figures",
    "maps_stats",
    "render_markdown",
    "results_table",
    "scaled_stack",
    "section",
]

LANGS = ("en", "es")
SECTIONS = ("title", "methodology", "results", "why", "limitations", "next", "reproduce",
            "closing")
HEADINGS = {
    "en": {"methodology": "Methodology", "results": "Results", "why": "Why",
           "limitations": "Limitations", "next": "Next steps", "reproduce": "Reproduce",
           "closing": "Closing"},
    "es": {"methodology": "Metodología", "results": "Resultados", "why": "Por qué",
           "limitations": "Limitaciones", "next": "Próximos pasos", "reproduce": "Reproducir",
           "closing": "Cierre"},
}
FIGURES = {  # figure -> section it illustrates
    "t_barras": "results", "speedup": "results", "efficiency": "results",
    "scaling": "results", "maps": "results", "breakdown": "why",
}
ALT = {  # figure -> (English, Spanish) alternative text
    "t_barras": ("Bar chart: median time per backend and worker count, min..max bars",
                 "Barras: tiempo mediano por backend y cantidad de workers, barras mín..máx"),
    "speedup": ("Speed-up vs workers, ideal line and fitted Amdahl curves",
                "Speed-up contra workers, línea ideal y curvas de Amdahl ajustadas"),
    "efficiency": ("Parallel efficiency vs workers", "Eficiencia paralela contra workers"),
    "scaling": ("Speed-up against stack size", "Speed-up contra tamaño de la pila"),
    "maps": ("Maps: temporal mean, std, coefficient of variation and PS candidates",
             "Mapas: promedio, desvío, coeficiente de variación y candidatos a PS"),
    "breakdown": ("Stacked time per phase for each configuration",
                  "Tiempo apilado por fase para cada configuración"),
}
FLOORS = ("floor-memory", "floor-read")
NOTEBOOK = "06_analysis.ipynb"
REPORT_SKIP_TAGS = ("no-report", "parameters", "injected-parameters")


# --------------------------------------------------------------------------- formatting


def fmt_s(seconds: float) -> str:
    """Seconds with 3 significant digits (``1.06``, ``0.0421``, ``12.3``)."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    return f"{seconds:.3g}"


def fmt_x(ratio: float) -> str:
    """A ratio as ``1.49×``."""
    return f"{ratio:.2f}×"


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _diff(d: float | None) -> str:
    if d is None:
        return "—"
    if math.isinf(d):
        return "NaN mismatch"
    return "0.0" if d == 0 else f"{d:.2g}"


def _t(lang: str, en: str, es: str) -> str:
    return es if lang == "es" else en


def _check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise LabError(f"language {lang!r} is not available: use {' or '.join(LANGS)}")
    return lang


# --------------------------------------------------------------------------- facts


def analyze(rows: Sequence[dict[str, Any]], *, label: str | None = None,
            preset: str | None = None, tiles: str | None = None,
            maps: dict[str, Any] | None = None) -> dict[str, Any]:
    """Numbers the informe quotes, computed from benchmark rows.

    Parameters
    ----------
    rows : list of dict
        :func:`labkit.bench.read_csv` output (the whole CSV).
    label : str, optional
        Experiment to report (default: ``main`` when present, see
        :func:`labkit.plots.select_main`).
    preset : str, optional
        Synthetic preset the data came from (None: unknown or real data).
    tiles : str, optional
        Tile folder, quoted in the Reproduce section.
    maps : dict, optional
        PS counts of ``maps.png`` (:func:`maps_stats`).

    Returns
    -------
    dict
        ``machine``, ``data``, ``seq``, ``configs`` (one per in-process configuration),
        ``variants`` (per variant: ``top`` = most workers, ``best``, ``fit``),
        ``best``, ``floors``, ``process``, ``scale``, ``repeats``, ``spread``, ...
    """
    from labkit.bench import summarize
    from labkit.plots import fit_amdahl, fit_time_model, scale_rows, scaling_points, select_main

    if not rows:
        raise LabError("the benchmark CSV is empty: run `labkit bench` first")
    main = select_main(rows, label)
    summ = summarize(main)
    timed = [s for s in summ if s["backend"] not in FLOORS]
    inproc = [s for s in timed if s["mode"] == "in-process"]
    proc = {(s["variant"], s["workers"]): s for s in timed if s["mode"] == "process"}
    seq = next((s for s in inproc if s["backend"] == "sequential" and s["workers"] == 1), None)
    if seq is None:
        raise LabError("the experiment has no sequential run: the informe compares against it "
                       "(run `labkit bench` with sequential in --backends)")
    last = [r for r in main if r.get("backend") not in FLOORS][-1]
    cores = int(last.get("cores_logical") or os.cpu_count() or 1)
    n_dates = int(seq["n_dates"])
    if preset:
        from labkit.synth import PRESETS

        if preset not in PRESETS or PRESETS[preset].dates != n_dates:
            preset = None  # the CSV is not from that preset: do not claim it
    h, w = (int(v) for v in str(seq["tile"]).split("x"))
    mib = n_dates * h * w * 4 / 2**20
    configs = []
    for s in sorted(inproc, key=lambda s: (s["variant"] != "sequential", s["variant"],
                                           s["workers"])):
        p = proc.get((s["variant"], s["workers"]))
        sp = seq["wall"] / s["wall"] if s["wall"] > 0 else math.nan
        configs.append({
            **s, "speedup": sp, "efficiency": sp / s["workers"],
            "process_wall": p["wall"] if p else None,
            "process_extra": (p["wall"] - s["wall"]) if p else None,
            "overhead": s["startup"] + s["merge"],
            "oversubscribed": s["workers"] > cores,
        })
    variants: dict[str, dict[str, Any]] = {}
    for c in configs:
        if c["backend"] == "sequential":
            continue
        v = variants.setdefault(c["variant"], {"configs": []})
        v["configs"].append(c)
    for v in variants.values():
        cs = v["configs"]
        v["top"] = max((c for c in cs if not c["oversubscribed"]), default=cs[-1],
                       key=lambda c: c["workers"])
        v["best"] = min(cs, key=lambda c: c["wall"])
        ps, sps = [c["workers"] for c in cs], [c["speedup"] for c in cs]
        v["fit"] = fit_amdahl(ps, sps)
        a, _ = fit_time_model(ps, sps)
        v["ceiling"] = (1.0 / a if a > 0 else math.inf) if not math.isnan(a) else math.nan
        v["name"] = cs[0]["variant"]
    floors = {s["backend"]: s for s in summ if s["backend"] in FLOORS}
    others = [c for c in configs if c["backend"] != "sequential"]
    parallel = [c for c in others if c["workers"] > 1] or others
    best = min(parallel, key=lambda c: c["wall"]) if parallel else None
    single = [c for c in others if c["workers"] == 1 and c["wall"] < seq["wall"]]
    best_single = min(single, key=lambda c: c["wall"]) if single else None
    spread_c = max(configs, key=lambda c: (c["wall_max"] - c["wall_min"]) / c["wall"])
    seq_proc = proc.get(("sequential", 1))
    sc = scale_rows(rows)
    scale = scaling_points(sc) if sc else {}
    scale_seq = sorted({(p["n_dates"], p["tile"], p["mib"], p["t_seq"])
                        for pts in scale.values() for p in pts}, key=lambda t: t[2])
    return {
        "machine": {k: last.get(k) for k in ("host", "cpu_model", "cores_physical",
                                              "cores_logical", "versions", "threads_env")},
        "cores": cores,
        "data": {"n_dates": n_dates, "tile": seq["tile"], "rows": h, "cols": w, "mib": mib,
                 "bytes": n_dates * h * w * 4, "preset": preset, "tiles": tiles},
        "label": last.get("label") or "",
        "seq": {**seq, "process_wall": seq_proc["wall"] if seq_proc else None},
        "configs": configs,
        "variants": variants,
        "best": best,
        "best_single": best_single,
        "floors": floors,
        "process": bool(proc),
        "workers": sorted({c["workers"] for c in configs}),
        "repeats": max(c["n"] for c in configs),
        "spread": {"ratio": (spread_c["wall_max"] - spread_c["wall_min"]) / spread_c["wall"],
                   "variant": spread_c["variant"], "workers": spread_c["workers"]},
        "scale": scale,
        "scale_sizes": scale_seq,
        "maps": maps,
    }


# --------------------------------------------------------------------------- sections


def _faster(lang: str, ratio: float) -> str:
    """``1.49× faster`` / ``1.49× slower`` (ratio = speed-up)."""
    if ratio >= 1:
        return _t(lang, f"{fmt_x(ratio)} faster", f"{fmt_x(ratio)} más rápido")
    return _t(lang, f"{fmt_x(1 / ratio)} slower", f"{fmt_x(1 / ratio)} más lento")


def _w(lang: str, n: int) -> str:
    one = n == 1
    return _t(lang, f"{n} worker{'' if one else 's'}", f"{n} worker{'' if one else 's'}")


def _title(f: dict[str, Any], lang: str) -> str:
    m, d = f["machine"], f["data"]
    head = _t(lang, "# SAR HPC Lab — report", "# SAR HPC Lab — informe")
    sub = _t(
        lang,
        f"Temporal mean and standard deviation of a stack of {d['n_dates']} intensity tiles "
        f"of {d['tile']} px ({d['mib']:.3g} MiB of float32), timed on **{m['host']}** "
        f"({m['cpu_model'] or 'unknown CPU'}, {m['cores_physical']} physical / "
        f"{m['cores_logical']} logical cores).",
        f"Promedio y desvío temporal de una pila de {d['n_dates']} recortes de intensidad "
        f"de {d['tile']} px ({d['mib']:.3g} MiB en float32), medido en **{m['host']}** "
        f"({m['cpu_model'] or 'CPU desconocida'}, {m['cores_physical']} núcleos físicos / "
        f"{m['cores_logical']} lógicos).",
    )
    return f"{head}\n\n{sub}\n"


def _threads(env: str | None, lang: str) -> str:
    """The thread variables that were set, e.g. ``OMP_NUM_THREADS=1``, or a note."""
    pairs = [kv for kv in (env or "").split(";") if "=" in kv and kv.split("=", 1)[1]]
    if pairs:
        return "`" + " ".join(pairs) + "`"
    return _t(lang, "no `*_NUM_THREADS` set in the parent", "ninguna `*_NUM_THREADS` en el padre")


def _methodology(f: dict[str, Any], lang: str) -> str:
    d = f["data"]
    variants = ", ".join(f"`{v}`" for v in f["variants"]) or "—"
    workers = ", ".join(str(w) for w in f["workers"])
    src = (_t(lang, f"the synthetic SAOCOM-like preset `{d['preset']}`",
              f"la pila sintética tipo SAOCOM `{d['preset']}`") if d["preset"]
           else _t(lang, "an SLC stack", "una pila de SLC"))
    lines = [
        _t(lang,
           f"Data: {src} (ISCE2 coarse-coregistered layout) → |S|² → multilook 4×4 → crop "
           f"{d['tile']} → float32 GeoTIFF, {d['n_dates']} dates ({d['mib']:.3g} MiB).",
           f"Datos: {src} (estructura de corregistro grueso de ISCE2) → |S|² → multilook 4×4 "
           f"→ recorte {d['tile']} → GeoTIFF float32, {d['n_dates']} fechas "
           f"({d['mib']:.3g} MiB)."),
        _t(lang,
           f"Kernel: per-pixel temporal mean and population std (float64 accumulation, "
           f"float32 output). Baseline: `sequential`. Parallel variants: {variants}, with "
           f"{workers} workers.",
           f"Núcleo: promedio y desvío poblacional por píxel (acumulación en float64, salida "
           f"float32). Referencia: `sequential`. Variantes paralelas: {variants}, con "
           f"{workers} workers."),
        _t(lang,
           f"Timing: `perf_counter` around each call after a warm-up run, {f['repeats']} "
           "repeats, median and min..max reported"
           + ("; also whole processes (a fresh `python -m labkit run ...`, like the course's "
              "`/usr/bin/time`), so start-up shows next to the run cost" if f["process"]
              else "") + ".",
           f"Medición: `perf_counter` alrededor de cada llamada tras una corrida de "
           f"calentamiento, {f['repeats']} repeticiones, mediana y mín..máx"
           + ("; además procesos completos (un `python -m labkit run ...` nuevo, como el "
              "`/usr/bin/time` del curso), para ver el arranque junto al costo de la corrida"
              if f["process"] else "") + "."),
        _t(lang,
           f"Thread settings: {_threads(f['machine']['threads_env'], lang)} (BLAS/OpenMP "
           "pinned to 1 thread in workers). Floors measured in the same run: NumPy memory "
           "streaming and reading the tile files (page cache warm).",
           f"Hilos: {_threads(f['machine']['threads_env'], lang)} (BLAS/OpenMP fijados a "
           "1 hilo en los workers). Pisos medidos en la misma corrida: lectura de memoria "
           "con NumPy y lectura de los archivos (page cache caliente)."),
        _t(lang,
           "Correctness: every result is compared with sequential (max |Δ| of mean and std).",
           "Corrección: cada resultado se compara con el secuencial (máx |Δ| de mean y std)."),
    ]
    return "\n".join(f"- {x}" for x in lines) + "\n"


def results_table(f: dict[str, Any], lang: str = "en") -> str:
    """Markdown table: one line per configuration (in-process and whole-process times)."""
    hdr = _t(lang,
             "| variant | workers | in-process s (min..max) | whole process s | speed-up "
             "| efficiency | × read floor | max \\|Δ\\| |",
             "| variante | workers | en proceso s (mín..máx) | proceso completo s | speed-up "
             "| eficiencia | × piso de lectura | máx \\|Δ\\| |")
    lines = [hdr, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    fr = f["floors"].get("floor-read")
    for c in f["configs"]:
        flag = " ⚠" if c["oversubscribed"] else ""
        floor_x = f"{c['wall'] / fr['wall']:.1f}" if fr and fr["wall"] > 0 else "—"
        proc = fmt_s(c["process_wall"]) if c["process_wall"] else "—"
        lines.append(
            f"| {c['variant']} | {c['workers']}{flag} | {fmt_s(c['wall'])} "
            f"({fmt_s(c['wall_min'])}..{fmt_s(c['wall_max'])}) | {proc} | "
            f"{fmt_x(c['speedup'])} | {c['efficiency']:.2f} | {floor_x} | "
            f"{_diff(c['max_abs_diff'])} |")
    out = "\n".join(lines) + "\n"
    if any(c["oversubscribed"] for c in f["configs"]):
        out += _t(lang, f"\n⚠ more workers than the {f['cores']} logical cores "
                        "(oversubscription).\n",
                  f"\n⚠ más workers que los {f['cores']} núcleos lógicos "
                  "(sobre-suscripción).\n")
    return out


def _results(f: dict[str, Any], lang: str) -> str:
    seq, best = f["seq"], f["best"]
    parts = []
    s = _t(lang, f"Sequential (the baseline) took **{fmt_s(seq['wall'])} s** in-process",
           f"El secuencial (referencia) tardó **{fmt_s(seq['wall'])} s** en proceso")
    if seq.get("process_wall"):
        s += _t(lang, f" and {fmt_s(seq['process_wall'])} s as a whole process",
                f" y {fmt_s(seq['process_wall'])} s como proceso completo")
    parts.append(s + ".")
    bullets = []
    for v in f["variants"].values():
        t = v["top"]
        line = _t(lang, f"`{v['name']}` with {_w(lang, t['workers'])}: {fmt_s(t['wall'])} s, "
                        f"{_faster(lang, t['speedup'])} than sequential",
                  f"`{v['name']}` con {_w(lang, t['workers'])}: {fmt_s(t['wall'])} s, "
                  f"{_faster(lang, t['speedup'])} que el secuencial")
        if v["best"] is not t:
            b = v["best"]
            line += _t(lang, f" (its best: {_w(lang, b['workers'])}, {fmt_s(b['wall'])} s)",
                       f" (su mejor: {_w(lang, b['workers'])}, {fmt_s(b['wall'])} s)")
        bullets.append(line + ".")
    if bullets:
        parts.append("\n".join(f"- {b}" for b in bullets))
    if best is not None:
        if best["speedup"] > 1:
            parts.append(_t(
                lang,
                f"Fastest in parallel: **`{best['variant']}` with {_w(lang, best['workers'])}, "
                f"{fmt_s(best['wall'])} s = {fmt_x(best['speedup'])} speed-up** over "
                "sequential.",
                f"El más rápido en paralelo: **`{best['variant']}` con "
                f"{_w(lang, best['workers'])}, {fmt_s(best['wall'])} s = speed-up de "
                f"{fmt_x(best['speedup'])}** sobre el secuencial."))
        else:
            parts.append(_t(
                lang,
                f"**No parallel variant beat sequential**: the closest was `{best['variant']}` "
                f"with {_w(lang, best['workers'])}, {fmt_s(best['wall'])} s "
                f"({_faster(lang, best['speedup'])}).",
                f"**Ningún backend paralelo le ganó al secuencial**: el más cercano fue "
                f"`{best['variant']}` con {_w(lang, best['workers'])}, {fmt_s(best['wall'])} s "
                f"({_faster(lang, best['speedup'])})."))
    one = f.get("best_single")
    if one is not None and one["speedup"] > 1.05:
        parts.append(_t(
            lang,
            f"With a single worker `{one['variant']}` already took {fmt_s(one['wall'])} s "
            f"({fmt_x(one['speedup'])} vs sequential): that gain comes from how it reads and "
            "loops, not from parallelism.",
            f"Con un solo worker `{one['variant']}` ya tardó {fmt_s(one['wall'])} s "
            f"({fmt_x(one['speedup'])} frente al secuencial): esa ganancia viene de cómo lee y "
            "recorre los datos, no del paralelismo."))
    parts.append(_correctness(f, lang))
    parts.append(results_table(f, lang))
    if f["scale"]:
        parts.append(_scale(f, lang))
    if f.get("maps"):
        parts.append(_maps(f["maps"], lang))
    return "\n\n".join(p for p in parts if p) + "\n"


def _maps(m: dict[str, Any], lang: str) -> str:
    share = m["candidates"] / max(1, m["pixels"])
    s = _t(lang,
           f"Maps: amplitude dispersion D_A < {m['threshold']} over {m['n_dates']} dates "
           f"flagged {m['candidates']} pixels ({100 * share:.2g} % of the image) as PS "
           "candidates",
           f"Mapas: la dispersión de amplitud D_A < {m['threshold']} sobre {m['n_dates']} "
           f"fechas marcó {m['candidates']} píxeles ({100 * share:.2g} % de la imagen) como "
           "candidatos a PS")
    if m.get("true_ps"):
        s += _t(lang, f"; {m['hits']} of the {m['true_ps']} true PS are among them",
                f"; {m['hits']} de los {m['true_ps']} PS verdaderos están entre ellos")
    if share > 0.01:
        s += _t(lang, ". With so few dates D_A is too noisy to select PS (the usual rule asks "
                      "for 20 or more images)",
                ". Con tan pocas fechas D_A es demasiado ruidosa para elegir PS (la regla "
                "usual pide 20 imágenes o más)")
    return s + "."


def _correctness(f: dict[str, Any], lang: str) -> str:
    worst: dict[str, dict[str, Any]] = {}
    for c in f["configs"]:
        if c["backend"] == "sequential" or c["max_abs_diff"] is None:
            continue
        if c["variant"] not in worst or c["max_abs_diff"] > worst[c["variant"]]["max_abs_diff"]:
            worst[c["variant"]] = c
    exact = sorted(v for v, c in worst.items() if c["max_abs_diff"] == 0)
    rounding = [c for c in worst.values() if 0 < c["max_abs_diff"] < math.inf]
    broken = sorted(v for v, c in worst.items() if math.isinf(c["max_abs_diff"]))
    out = []
    if exact:
        out.append(_t(lang, f"Identical to sequential (max |Δ| = 0.0): {', '.join(exact)}.",
                      f"Idénticos al secuencial (máx |Δ| = 0.0): {', '.join(exact)}."))
    if rounding:
        top = max(rounding, key=lambda c: c["max_abs_diff"])
        names = ", ".join(sorted(c["variant"] for c in rounding))
        out.append(_t(
            lang,
            f"Within rounding: {names} (largest max |Δ| = {_diff(top['max_abs_diff'])}, "
            f"`{top['variant']}` with {top['workers']}): merging partial sums in another "
            "order rounds differently in float32.",
            f"Dentro del redondeo: {names} (mayor máx |Δ| = {_diff(top['max_abs_diff'])}, "
            f"`{top['variant']}` con {top['workers']}): sumar parciales en otro orden "
            "redondea distinto en float32."))
    if broken:
        out.append(_t(lang, f"**NaN pattern differs from sequential** (a bug): "
                            f"{', '.join(broken)}.",
                      f"**El patrón de NaN difiere del secuencial** (un error): "
                      f"{', '.join(broken)}."))
    return " ".join(out)


def _scale(f: dict[str, Any], lang: str) -> str:
    head = _t(lang, "**From where does parallelism pay?** The same kernel on bigger stacks "
                    "(more dates, bigger tiles), each variant at its most workers:",
              "**¿Desde dónde conviene paralelizar?** El mismo cálculo sobre pilas más grandes "
              "(más fechas, recortes más grandes), cada variante con la mayor cantidad de "
              "workers:")
    variants = sorted(f["scale"])
    hdr = _t(lang, "| dates × tile | MiB | sequential s | ", "| fechas × recorte | MiB | "
             "secuencial s | ") + " | ".join(variants) + " |"
    lines = [hdr, "|---|---:|---:|" + "---:|" * len(variants)]
    for n, tile, mib, t_seq in f["scale_sizes"]:
        cells = []
        for v in variants:
            p = next((p for p in f["scale"][v] if p["n_dates"] == n and p["tile"] == tile),
                     None)
            cells.append(f"{fmt_x(p['speedup'])}" if p else "—")
        lines.append(f"| {n} × {tile} | {mib:.3g} | {fmt_s(t_seq)} | " + " | ".join(cells)
                     + " |")
    verdicts = []
    for v in variants:
        pts = f["scale"][v]
        first = next((p for p in pts if p["speedup"] > 1), None)
        top = max(pts, key=lambda p: p["speedup"])
        if first is None:
            verdicts.append(_t(
                lang,
                f"`{v}` never beat sequential up to {pts[-1]['mib']:.3g} MiB "
                f"(best {fmt_x(top['speedup'])} at {top['n_dates']} × {top['tile']}).",
                f"`{v}` nunca le ganó al secuencial hasta {pts[-1]['mib']:.3g} MiB "
                f"(mejor {fmt_x(top['speedup'])} con {top['n_dates']} × {top['tile']})."))
        else:
            verdicts.append(_t(
                lang,
                f"`{v}` pays from {first['n_dates']} × {first['tile']} ({first['mib']:.3g} MiB, "
                f"{fmt_x(first['speedup'])}); best {fmt_x(top['speedup'])} at "
                f"{top['n_dates']} × {top['tile']}.",
                f"`{v}` conviene desde {first['n_dates']} × {first['tile']} "
                f"({first['mib']:.3g} MiB, {fmt_x(first['speedup'])}); mejor "
                f"{fmt_x(top['speedup'])} con {top['n_dates']} × {top['tile']}."))
    return head + "\n\n" + "\n".join(lines) + "\n\n" + "\n".join(f"- {v}" for v in verdicts)


def _why(f: dict[str, Any], lang: str) -> str:
    seq, d = f["seq"], f["data"]
    out = []
    rs, cs = seq["read"], seq["compute"]
    tot = max(seq["wall"], 1e-12)
    kind = (_t(lang, "reading dominates: the job is I/O-bound",
               "domina la lectura: el trabajo está limitado por E/S") if rs > cs
            else _t(lang, "the kernel dominates: the job is compute-bound",
                    "domina el cálculo: el trabajo está limitado por cómputo"))
    out.append(_t(
        lang,
        f"In sequential, reading took {fmt_s(rs)} s ({_pct(rs / tot)}) and the kernel "
        f"{fmt_s(cs)} s ({_pct(cs / tot)}) of {fmt_s(seq['wall'])} s — {kind}.",
        f"En el secuencial, leer llevó {fmt_s(rs)} s ({_pct(rs / tot)}) y el cálculo "
        f"{fmt_s(cs)} s ({_pct(cs / tot)}) de {fmt_s(seq['wall'])} s — {kind}."))
    fr, fm = f["floors"].get("floor-read"), f["floors"].get("floor-memory")
    if fr and fm:
        s = _t(
            lang,
            f"Floors for the {d['mib']:.3g} MiB: reading the files once takes at least "
            f"{fmt_s(fr['wall'])} s ({fr['gbps']:.2f} GB/s, page cache warm) and streaming "
            f"them through memory {fmt_s(fm['wall'])} s ({fm['gbps']:.2f} GB/s). Sequential "
            f"ran at {seq['wall'] / fr['wall']:.1f}× the read floor",
            f"Pisos para los {d['mib']:.3g} MiB: leer los archivos una vez lleva al menos "
            f"{fmt_s(fr['wall'])} s ({fr['gbps']:.2f} GB/s, page cache caliente) y recorrerlos "
            f"en memoria {fmt_s(fm['wall'])} s ({fm['gbps']:.2f} GB/s). El secuencial corrió a "
            f"{seq['wall'] / fr['wall']:.1f}× el piso de lectura")
        if f["best"]:
            b = f["best"]
            s += _t(lang, f", the fastest variant (`{b['variant']}` ×{b['workers']}) at "
                          f"{b['wall'] / fr['wall']:.1f}×",
                    f", la variante más rápida (`{b['variant']}` ×{b['workers']}) a "
                    f"{b['wall'] / fr['wall']:.1f}×")
        out.append(s + ".")
    bullets = []
    for v in f["variants"].values():
        t = v["top"]
        if t["speedup"] < 1:
            why = _t(
                lang,
                f"`{v['name']}` with {_w(lang, t['workers'])} was "
                f"{_faster(lang, t['speedup'])} than sequential: {fmt_s(t['overhead'])} s of "
                f"its {fmt_s(t['wall'])} s went to starting workers ({fmt_s(t['startup'])} s) "
                f"and merging/transferring results ({fmt_s(t['merge'])} s)",
                f"`{v['name']}` con {_w(lang, t['workers'])} fue "
                f"{_faster(lang, t['speedup'])} que el secuencial: {fmt_s(t['overhead'])} s de "
                f"sus {fmt_s(t['wall'])} s se fueron en arrancar workers "
                f"({fmt_s(t['startup'])} s) y en juntar/transferir resultados "
                f"({fmt_s(t['merge'])} s)")
        else:
            why = _t(
                lang,
                f"`{v['name']}` with {_w(lang, t['workers'])} was "
                f"{_faster(lang, t['speedup'])}: its start-up and merge cost "
                f"{fmt_s(t['overhead'])} s of {fmt_s(t['wall'])} s",
                f"`{v['name']}` con {_w(lang, t['workers'])} fue "
                f"{_faster(lang, t['speedup'])}: arranque y unión costaron "
                f"{fmt_s(t['overhead'])} s de {fmt_s(t['wall'])} s")
        if v["fit"] >= 0.995:
            why += _t(lang, "; Amdahl fit: serial fraction ≈ 1, i.e. more workers did not "
                            "make it faster",
                      "; ajuste de Amdahl: fracción serial ≈ 1, o sea más workers no lo "
                      "hicieron más rápido")
        elif v["fit"] <= 0.005:
            why += _t(lang, "; Amdahl fit: no serial part measured yet (it scaled perfectly "
                            "over the workers tried)",
                      "; ajuste de Amdahl: todavía no se mide parte serial (escaló perfecto "
                      "con los workers probados)")
        elif not math.isnan(v["fit"]):
            why += _t(lang, f"; Amdahl fit: serial fraction {v['fit']:.2f} of its own run, so "
                            f"at most {fmt_x(1 / v['fit'])} its 1-worker speed and "
                            f"{fmt_x(v['ceiling'])} sequential's with any number of workers",
                      f"; ajuste de Amdahl: fracción serial {v['fit']:.2f} de su propia "
                      f"corrida, o sea a lo sumo {fmt_x(1 / v['fit'])} su velocidad con 1 "
                      f"worker y {fmt_x(v['ceiling'])} la del secuencial con cualquier "
                      "cantidad de workers")
        bullets.append(why + ".")
    if bullets:
        out.append("\n".join(f"- {b}" for b in bullets))
    if seq.get("process_wall"):
        extra = seq["process_wall"] - seq["wall"]
        s = _t(
            lang,
            f"As a whole process, sequential took {fmt_s(seq['process_wall'])} s: "
            f"{fmt_s(extra)} s ({_pct(extra / seq['process_wall'])}) is interpreter start, "
            "imports of the scientific stack and writing the two GeoTIFFs — the cost the "
            "course's `/usr/bin/time` included",
            f"Como proceso completo, el secuencial tardó {fmt_s(seq['process_wall'])} s: "
            f"{fmt_s(extra)} s ({_pct(extra / seq['process_wall'])}) son arranque del "
            "intérprete, imports de las bibliotecas científicas y escritura de los dos "
            "GeoTIFF — el costo que incluía el `/usr/bin/time` del curso")
        withp = [c for c in f["configs"] if c["backend"] != "sequential" and c["process_wall"]]
        if withp:
            worst = max(withp, key=lambda c: c["process_extra"])
            s += _t(lang, f"; the largest such overhead was `{worst['variant']}` "
                          f"×{worst['workers']}: +{fmt_s(worst['process_extra'])} s",
                    f"; el mayor de esos sobrecostos fue `{worst['variant']}` "
                    f"×{worst['workers']}: +{fmt_s(worst['process_extra'])} s")
        out.append(s + ".")
    over = [c for c in f["configs"] if c["oversubscribed"]]
    if over:
        c = max(over, key=lambda c: c["workers"])
        out.append(_t(
            lang,
            f"Oversubscription: `{c['variant']}` with {c['workers']} workers on "
            f"{f['cores']} cores took {fmt_s(c['wall'])} s ({_faster(lang, c['speedup'])} "
            "than sequential): extra workers only add start-up and switching.",
            f"Sobre-suscripción: `{c['variant']}` con {c['workers']} workers en "
            f"{f['cores']} núcleos tardó {fmt_s(c['wall'])} s ({_faster(lang, c['speedup'])} "
            "que el secuencial): los workers de más solo agregan arranque y cambios de "
            "contexto."))
    return "\n\n".join(out) + "\n"


def _limitations(f: dict[str, Any], lang: str) -> str:
    d, sp = f["data"], f["spread"]
    items = [
        _t(lang,
           f"One machine ({f['machine']['host']}) with {f['machine']['cores_logical']} logical "
           f"({f['machine']['cores_physical']} physical) cores: at most {f['cores']} workers "
           "truly run at once.",
           f"Una sola máquina ({f['machine']['host']}) con {f['machine']['cores_logical']} "
           f"núcleos lógicos ({f['machine']['cores_physical']} físicos): como mucho "
           f"{f['cores']} workers corren a la vez."),
        _t(lang,
           "Warm page cache (a warm-up run first): reads come from RAM, not from the disk; "
           "a cold read would be slower and parallel readers could contend for the device.",
           "Page cache caliente (primero una corrida de calentamiento): se lee desde RAM, no "
           "del disco; en frío la lectura sería más lenta y los lectores en paralelo podrían "
           "pelear por el disco."),
        _t(lang,
           f"{d['n_dates']} dates of {d['tile']} ({d['mib']:.3g} MiB) and a light kernel "
           "(a few additions per sample): little work per byte.",
           f"{d['n_dates']} fechas de {d['tile']} ({d['mib']:.3g} MiB) y un cálculo liviano "
           "(unas pocas sumas por muestra): poco trabajo por byte."),
        _t(lang,
           f"{f['repeats']} timed repeats per configuration; the widest spread (min..max) was "
           f"{_pct(sp['ratio'])} of the median (`{sp['variant']}` ×{sp['workers']}): "
           "differences smaller than that are noise.",
           f"{f['repeats']} repeticiones por configuración; la mayor dispersión (mín..máx) "
           f"fue {_pct(sp['ratio'])} de la mediana (`{sp['variant']}` ×{sp['workers']}): "
           "diferencias menores que eso son ruido."),
    ]
    if d["preset"]:
        items.append(_t(
            lang,
            f"Synthetic data (preset `{d['preset']}`): the timings do not depend on the "
            "values, but the maps show a simulated scene, not a real acquisition.",
            f"Datos sintéticos (preset `{d['preset']}`): los tiempos no dependen de los "
            "valores, pero los mapas muestran una escena simulada, no una adquisición real."))
    return "\n".join(f"- {x}" for x in items) + "\n"


def _next(f: dict[str, Any], lang: str) -> str:
    seq, best = f["seq"], f["best"]
    items = []
    if best is None or best["speedup"] < 1.5:
        items.append(_t(
            lang,
            f"More work per byte: the kernel spends {fmt_s(seq['compute'])} s on "
            f"{f['data']['mib']:.3g} MiB; heavier kernels (speckle filters, coherence, "
            "convolutions) or more dates give parallel compute something to win.",
            f"Más trabajo por byte: el cálculo usa {fmt_s(seq['compute'])} s para "
            f"{f['data']['mib']:.3g} MiB; kernels más pesados (filtros de speckle, coherencia, "
            "convoluciones) o más fechas le dan al cálculo paralelo algo para ganar."))
    if f["scale"]:
        firsts = []
        for v, pts in f["scale"].items():
            first = next((p for p in pts if p["speedup"] > 1), None)
            if first is not None:
                firsts.append((first["mib"], v))
        if firsts:
            mib, v = min(firsts)
            items.append(_t(
                lang,
                f"On this machine use a parallel backend from about {mib:.3g} MiB of stack "
                f"(`{v}` breaks even there); below that, sequential is the right choice.",
                f"En esta máquina conviene un backend paralelo desde unos {mib:.3g} MiB de "
                f"pila (`{v}` empata ahí); por debajo, el secuencial es la opción correcta."))
        else:
            top = max(m for _, _, m, _ in f["scale_sizes"])
            items.append(_t(
                lang,
                f"Try still larger stacks: nothing beat sequential up to {top:.3g} MiB.",
                f"Probar pilas aún más grandes: nada le ganó al secuencial hasta "
                f"{top:.3g} MiB."))
    mpi = {v: d for v, d in f["variants"].items() if v.startswith("mpi")}
    if len(mpi) >= 2:
        desc = ", ".join(f"`{v}` {fmt_s(d['top']['wall'])} s" for v, d in mpi.items())
        items.append(_t(lang, f"Compare MPI splits on several nodes (here: {desc}).",
                        f"Comparar las divisiones de MPI en varios nodos (acá: {desc})."))
    elif not mpi:
        items.append(_t(lang, "Run MPI split by dates (`mpiexec -n N labkit run mpi ... "
                              "--split dates`) and compare it with multiprocessing.",
                        "Correr MPI repartiendo por fechas (`mpiexec -n N labkit run mpi ... "
                        "--split dates`) y compararlo con multiprocessing."))
    if seq["read"] > seq["compute"]:
        items.append(_t(
            lang,
            f"Cut I/O: reading is {_pct(seq['read'] / max(seq['wall'], 1e-12))} of the "
            "sequential time — faster storage (NVMe, ramdisk), memory-mapped tiles, or one "
            "read of the stack shared by all workers (`mem`).",
            f"Bajar la E/S: leer es {_pct(seq['read'] / max(seq['wall'], 1e-12))} del tiempo "
            "secuencial — almacenamiento más rápido (NVMe, ramdisk), recortes mapeados en "
            "memoria, o una sola lectura compartida por todos los workers (`mem`)."))
    fm = f["floors"].get("floor-memory")
    if fm and fm["wall"] > 0:
        ratio = seq["compute"] / fm["wall"]
        items.append(_t(
            lang,
            f"GPU (Numba CUDA, CuPy) only with heavier kernels: the kernel takes "
            f"{ratio:.1f}× the memory floor ({fmt_s(seq['compute'])} s vs "
            f"{fmt_s(fm['wall'])} s), and a GPU must first receive the bytes over PCIe.",
            f"GPU (Numba CUDA, CuPy) solo con kernels más pesados: el cálculo tarda "
            f"{ratio:.1f}× el piso de memoria ({fmt_s(seq['compute'])} s contra "
            f"{fmt_s(fm['wall'])} s), y una GPU primero tiene que recibir los bytes por PCIe."))
    return "\n".join(f"- {x}" for x in items) + "\n"


def _reproduce(f: dict[str, Any], lang: str) -> str:
    d = f["data"]
    backends = sorted({c["backend"] for c in f["configs"]},
                      key=lambda b: (b != "sequential", b))
    tiles = d["tiles"] or "data/<preset>/intens_<T>x<T>"
    preset = d["preset"] or "seed"
    cmd = [
        "make report                 # "
        + _t(lang, "everything, on a fresh machine", "todo, en una máquina nueva"),
        f"labkit data --preset {preset}",
        f"labkit bench {tiles} --backends {','.join(backends)} "
        f"--workers {','.join(str(w) for w in f['workers'])} --repeat {f['repeats']}"
        + (" --process" if f["process"] else ""),
        "labkit plot benchmarks/resultados.csv --out figures",
        "labkit report --csv benchmarks/resultados.csv --lang "
        + _t(lang, "en --out reports/informe.html", "es --out reports/informe_es.html"),
    ]
    note = _t(lang,
              "`benchmarks/resultados.csv` holds one row per timed run (DESIGN §7 columns, "
              "floors as `floor-read`/`floor-memory` rows); `benchmarks/tiempos.tsv` is the "
              "course's two-column `backend<TAB>tiempo` table. Threads pinned with "
              "`OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1`.",
              "`benchmarks/resultados.csv` tiene una fila por corrida medida (columnas de "
              "DESIGN §7, pisos como filas `floor-read`/`floor-memory`); "
              "`benchmarks/tiempos.tsv` es la tabla de dos columnas `backend<TAB>tiempo` del "
              "curso. Hilos fijados con `OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "
              "MKL_NUM_THREADS=1`.")
    return "```\n" + "\n".join(cmd) + "\n```\n\n" + note + "\n"


def _closing(f: dict[str, Any], lang: str) -> str:
    d, best, seq = f["data"], f["best"], f["seq"]
    s = _t(lang, f"With {d['n_dates']} dates of {d['tile']} on {f['cores']} cores, ",
           f"Con {d['n_dates']} fechas de {d['tile']} en {f['cores']} núcleos, ")
    if best is None:
        s += _t(lang, f"only sequential was measured ({fmt_s(seq['wall'])} s).",
                f"solo se midió el secuencial ({fmt_s(seq['wall'])} s).")
        return s + "\n"
    sp = best["speedup"]
    if sp < 1.05:
        s += _t(
            lang,
            f"brute-force parallelism did not pay: the best parallel variant "
            f"(`{best['variant']}` ×{best['workers']}) was {_faster(lang, sp)} than "
            f"sequential, because reading and process overhead outweigh a light kernel.",
            f"el paralelismo “a lo bruto” no alcanzó: el mejor backend paralelo "
            f"(`{best['variant']}` ×{best['workers']}) fue {_faster(lang, sp)} que el "
            "secuencial, porque la lectura y el costo de los procesos pesan más que un "
            "cálculo liviano.")
    else:
        s += _t(
            lang,
            f"the best design (`{best['variant']}` ×{best['workers']}) reached a "
            f"{fmt_x(sp)} speed-up ({fmt_s(seq['wall'])} → {fmt_s(best['wall'])} s) with "
            f"results equal to sequential (max |Δ| = {_diff(best['max_abs_diff'])}).",
            f"el mejor diseño (`{best['variant']}` ×{best['workers']}) logró un speed-up de "
            f"{fmt_x(sp)} ({fmt_s(seq['wall'])} → {fmt_s(best['wall'])} s) con resultados "
            f"iguales al secuencial (máx |Δ| = {_diff(best['max_abs_diff'])}).")
    noise = max((c["wall_max"] - c["wall_min"]) / c["wall"] for c in (seq, best))
    if abs(best["wall"] - seq["wall"]) / seq["wall"] < noise:
        s += _t(lang, f" That difference is within the run-to-run spread ({_pct(noise)}): "
                      "repeat on a quiet machine before trusting it.",
                f" Esa diferencia está dentro de la dispersión entre corridas "
                f"({_pct(noise)}): repetir en una máquina sin carga antes de creerla.")
    s += _t(lang,
            " The balance between data, compute, I/O and communication decides it: less "
            "inter-process traffic and one shared read help, and more work per byte is what "
            "makes MPI or a GPU worth it.",
            " Lo decide el balance entre datos, cómputo, E/S y comunicación: menos tráfico "
            "entre procesos y una sola lectura compartida ayudan, y más trabajo por byte es lo "
            "que hace que MPI o una GPU valgan la pena.")
    return s + "\n"


_BUILDERS = {"title": _title, "methodology": _methodology, "results": _results, "why": _why,
             "limitations": _limitations, "next": _next, "reproduce": _reproduce,
             "closing": _closing}


def section(name: str, facts: dict[str, Any], lang: str = "en") -> str:
    """Markdown of one informe section (with its ``##`` heading, except ``title``)."""
    _check_lang(lang)
    if name not in _BUILDERS:
        raise LabError(f"unknown section {name!r}: valid are {', '.join(SECTIONS)}")
    body = _BUILDERS[name](facts, lang)
    if name == "title":
        return body
    return f"## {HEADINGS[lang][name]}\n\n{body}"


def render_markdown(facts: dict[str, Any], lang: str = "en") -> str:
    """The whole informe as one Markdown document (no figures)."""
    return "\n".join(section(n, facts, lang) for n in SECTIONS)


# --------------------------------------------------------------------------- notebook side


def maps_stats(figures: dict[str, Path] | None) -> dict[str, Any] | None:
    """PS counts written beside ``maps.png`` (``maps.json``), or None."""
    import json

    if not figures or "maps" not in figures:
        return None
    side = Path(figures["maps"]).with_suffix(".json")
    if not side.is_file():
        return None
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def make_figures(csv_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                 tiles: str | os.PathLike[str] | None = None,
                 slc: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Write every figure (see :mod:`labkit.plots`); ``{name: path}`` of those written."""
    from labkit.plots import plot_all

    paths = plot_all(csv_path, out_dir, maps_tiles=tiles, maps_slc=slc)
    return {p.stem: p for p in paths}


def display_section(name: str, facts: dict[str, Any], lang: str = "en",
                    figures: dict[str, Path] | None = None) -> None:
    """Show one section in a notebook: its Markdown, then the figures that belong to it."""
    from IPython.display import Image, Markdown, display

    display(Markdown(section(name, facts, lang)))
    for fig, where in FIGURES.items():
        if where == name and figures and fig in figures and Path(figures[fig]).is_file():
            alt = ALT.get(fig, (fig, fig))[lang == "es"]
            display(Image(filename=str(figures[fig]), metadata={"alt": alt}))


def display_perf(lang: str = "en", csv: str | os.PathLike[str] | None = None) -> None:
    """Show the performance-targets section measured by ``make bench-perf``
    (``benchmarks/perf.csv``), or say how to measure it when that file is missing."""
    from IPython.display import Markdown, display

    from labkit import paths, perf

    path = Path(csv) if csv else paths.home() / "benchmarks" / "perf.csv"
    if path.is_file():
        display(Markdown(perf.perf_section(path, _check_lang(lang))))
    else:
        display(Markdown(_t(
            lang,
            "*Performance targets were not measured for this informe: `make bench-perf` "
            "measures them (benchmarks/perf.csv) and `make report` includes them.*",
            "*Los objetivos de rendimiento no se midieron para este informe: `make bench-perf` "
            "los mide (benchmarks/perf.csv) y `make report` los incluye.*")))


# --------------------------------------------------------------------------- HTML export

_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block data_png scoped %}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}"
alt="{{ (output | get_metadata('alt', 'image/png')) or 'figure' | escape_html }}">
</div>
{% endblock data_png %}
"""
_REMOTE = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I)
_REMOTE_CSS = re.compile(r"@import\s+(?:url\()?[\"']?(?:https?:)?//|url\([\"']?(?:https?:)?//",
                         re.I)


def check_offline(html: str) -> list[str]:
    """Remote resources an HTML page would load (scripts, styles, images, CSS imports)."""
    return [m.group(0) for m in _REMOTE.finditer(html)] + \
        [m.group(0) for m in _REMOTE_CSS.finditer(html)]


def export_html(nb: Any, out: str | os.PathLike[str], *, lang: str = "en",
                title: str | None = None) -> Path:
    """Export an executed notebook to a self-contained HTML file (atomically).

    Code cells are hidden; cells tagged ``no-report``, ``parameters`` or
    ``injected-parameters`` and stderr outputs are left out; images are embedded
    (base64 PNG); no script, style or font is fetched from the network (checked).
    """
    import copy

    import jinja2
    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells
                if not set(c.get("metadata", {}).get("tags", [])) & set(REPORT_SKIP_TAGS)]
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs = [o for o in c.get("outputs", [])
                         if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    nb.metadata.pop("widgets", None)
    nb.metadata["title"] = title or _t(lang, "SAR HPC Lab — report", "SAR HPC Lab — informe")
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"labkit_offline.html.j2": _OFFLINE_TEMPLATE})],
        template_file="labkit_offline.html.j2",
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
        embed_images=True,
    )
    html, _ = exporter.from_notebook_node(nb, resources={"language_code": lang})
    html = html.replace('<html lang="en">', f'<html lang="{lang}">', 1)
    remote = check_offline(html)
    if remote:
        raise LabError(f"the HTML would load {remote[0]!r} from the network: not exported")
    from labkit.bench import write_text_atomic

    return write_text_atomic(out, html)


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
    preset's, made if missing) and appended with label ``main``.
    """
    from labkit import paths
    from labkit.bench import _system, read_csv, run_bench
    from labkit.plots import select_main

    csv_file = Path(csv_path) if csv_path else paths.bench_csv()
    if csv_file.is_file():
        rows = read_csv(csv_file)
        try:
            main = select_main(rows)
        except LabError:
            main = []
        if any(r["backend"] == "sequential" for r in main):
            return csv_file
    if tiles is None:
        if not preset:
            raise LabError(f"{csv_file} has no sequential baseline and no tiles were given")
        from labkit.prep import ensure_tiles

        tiles = ensure_tiles(preset, progress=False)
    top = workers or int(_system().get("cores_logical") or os.cpu_count() or 1)
    run_bench(tiles, backends=_available_backends(), workers=list(range(1, top + 1)),
              repeat=repeats or 3, warmup=1, csv_path=csv_file, label="main", progress=False)
    return csv_file


def find_data(preset: str | None, slc: str | None = None) -> tuple[str | None, str | None]:
    """A preset's tile folder and SLC stack under ``data/`` if they exist (nothing is made).

    Returns ``(tiles, slc)``; ``slc`` is kept when given, else the preset's stack when
    complete, else None.
    """
    from labkit import paths
    from labkit.synth import PRESETS

    p = PRESETS.get(str(preset)) if preset else None
    if p is None:
        return None, slc
    cand = paths.data_dir() / p.name / f"intens_{p.tile}x{p.tile}"
    if not (cand.is_dir() and any(cand.glob("*_int_crop.tif"))):
        return None, slc
    stack = cand.parent / "slc"
    return str(cand), slc or (str(stack) if (stack / "manifest.json").is_file() else None)


def _notebook_dir() -> Path:
    from labkit import paths

    here = Path(__file__).resolve().parent.parent / "notebooks"
    return here if here.is_dir() else paths.home() / "notebooks"


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
    timeout: int = 900,
) -> Path:
    """Execute ``06_analysis`` on a CSV and export the informe to HTML.

    Parameters
    ----------
    csv_path : benchmark CSV
    lang : {"en", "es"}
    out : path of the HTML (written atomically)
    figures : folder for the PNGs (default: ``figures/`` under the lab's home)
    preset : synthetic preset name quoted in the informe (None: not synthetic)
    tiles, slc : tile folder and SLC stack for ``maps.png`` (optional)
    executed : where to keep the executed notebook (optional)
    """
    from labkit import paths
    from labkit.bench import read_csv
    from labkit.nbrun import execute_notebook

    _check_lang(lang)
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
        "slc": str(Path(slc).resolve()) if slc else None,
    }
    nb = execute_notebook(nb_path, params, timeout=timeout, out_path=executed)
    return export_html(nb, out_path, lang=lang)


# --------------------------------------------------------------------------- full pipeline


def scaled_stack(src: str | os.PathLike[str], dest: str | os.PathLike[str], n_dates: int,
                 side: int) -> Path:
    """A bigger tile stack built from an existing one, for the scaling experiment.

    Dates are reused cyclically (new names 8 days apart) and each tile is mosaicked
    (``numpy.tile``) or cropped to ``side × side``. The kernel's cost does not depend on
    the values, so this times like a prepped stack of that size, without synthesizing
    and prepping gigabytes of SLCs. Existing complete stacks are reused.
    """
    import datetime as dt

    import numpy as np

    from labkit.io import open_stack, read_tile, write_geotiff

    stack = open_stack(src)
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    day0 = dt.date(2023, 1, 5)
    names = [out / f"{(day0 + dt.timedelta(days=8 * i)):%Y%m%d}_int_crop.tif"
             for i in range(n_dates)]
    if all(p.is_file() for p in names):
        try:
            have = open_stack(out)
            if have.shape == (n_dates, side, side):
                return out
        except LabError:
            pass
    tiles = {}
    for i, p in enumerate(names):
        k = i % stack.n_dates
        if k not in tiles:
            a = read_tile(stack.paths[k])
            reps = (-(-side // a.shape[0]), -(-side // a.shape[1]))
            tiles[k] = np.tile(a, reps)[:side, :side]
        write_geotiff(p, tiles[k])
    for extra in set(out.glob("*_int_crop.tif")) - set(names):
        extra.unlink()
    return out


def _available_backends() -> list[str]:
    import importlib.util

    from labkit.backends import BACKENDS

    return [b for b, (mod, _, _) in BACKENDS.items() if importlib.util.find_spec(mod)]


def _rotate(csv_file: Path) -> Path | None:
    """Move an existing CSV aside (``name.<stamp>.csv``) so a full run starts clean."""
    if not csv_file.exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(csv_file.stat().st_mtime))
    old = csv_file.with_name(f"{csv_file.stem}.{stamp}{csv_file.suffix}")
    os.replace(csv_file, old)
    return old


def _real_tiles(src: str | os.PathLike[str], root: Path) -> Path:
    """Prep a real SLC stack with the largest square crop ≤ 1024 that fits (looks 4×4)."""
    from labkit.isce import find_slcs, open_slc_checked
    from labkit.prep import TILE_SIDES, prep_stack

    infos = [open_slc_checked(p) for p in find_slcs(src)]
    room = min(infos[0].lines // 4, infos[0].samples // 4)
    fits = [s for s in TILE_SIDES if s <= min(room, 1024)]
    if not fits:
        raise LabError(f"SLCs in {src} are too small for a {TILE_SIDES[0]}-px tile at 4×4 looks")
    t = fits[-1]
    dest = root / "real" / f"intens_{t}x{t}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    prep_stack(src, dest, (t, t, 0, 0), (4, 4), progress=sys.stderr.isatty(), overwrite=False)
    return dest


def _say(msg: str) -> None:
    print(f"[report {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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
       SLC stack ``data`` prepped with the largest square crop ≤ 1024 that fits.
    2. Bench (label ``main``): every available backend variant at 1..N workers
       (N = logical cores), 5 in-process repeats and 3 whole-process runs; floors. A
       previous ``benchmarks/resultados.csv`` is kept as ``resultados.<stamp>.csv``.
    3. Scale (label ``scale``): sequential and every variant at N workers (3 repeats)
       on bigger stacks built from the tiles (:func:`scaled_stack`): 5×256², 5×1024²,
       12×1024², 24×1024², 24×2048², 48×2048² (768 MiB).
    4. Figures, notebooks 01–05 (whichever exist; executed copies under
       ``reports/notebooks/``), and 06_analysis → ``reports/informe.html`` and
       ``reports/informe_es.html``.

    Parameters
    ----------
    preset : str, default "seed"
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
        ``csv``, ``figures``, ``reports`` (list of HTML paths), ``notebooks``, ``seconds``.
    """
    from labkit import paths
    from labkit.bench import _system, run_bench
    from labkit.nbrun import execute_notebook

    t0 = time.perf_counter()
    root = Path(home).resolve() if home else paths.home()
    data_root = root / "data"
    csv_file = root / "benchmarks" / "resultados.csv"
    fig_dir = root / "figures"
    rep_dir = root / "reports"
    if data:
        _say(f"prepping the real stack {data}")
        tiles = _real_tiles(data, data_root)
        slc: Path | None = None
        preset_name = None
    else:
        from labkit.prep import ensure_tiles

        _say(f"data: preset {preset} under {data_root} (synthesized/prepped if missing)")
        tiles = ensure_tiles(preset, root=data_root, progress=sys.stderr.isatty())
        slc = tiles.parent / "slc"
        preset_name = preset
    cores = int(_system().get("cores_logical") or os.cpu_count() or 1)
    counts = list(workers) if workers else list(range(1, cores + 1))
    backends = _available_backends()
    old = _rotate(csv_file)
    if old:
        _say(f"previous results kept as {old}")
    repeat, warmup = (2, 1) if quick else (5, 1)
    _say(f"bench: {', '.join(backends)} at workers {counts} ({repeat} repeats, in-process "
         "and whole-process)")
    run_bench(tiles, backends=backends, workers=counts, repeat=repeat, warmup=warmup,
              csv_path=csv_file, process=True, label="main", progress=sys.stderr.isatty(),
              process_repeat=1 if quick else 3)
    # the scaled experiment: more dates, bigger tiles (built from the tiles above)
    stack_side = int(tiles.name.rsplit("x", 1)[-1]) if "x" in tiles.name else 64
    if quick:
        sizes = [(4, 32), (8, stack_side), (16, 2 * stack_side)]
    else:
        sizes = [(5, 256), (5, 1024), (12, 1024), (24, 1024), (24, 2048), (48, 2048)]
    top = [max(counts)]
    for n, side in sizes:
        if not quick and (n, side) == (5, stack_side) and preset == "seed" and not data:
            src = tiles  # the seed stack itself
        else:
            src = scaled_stack(tiles, data_root / "scale" / f"d{n}_{side}x{side}", n, side)
        _say(f"scale: {n} dates × {side}x{side}")
        run_bench(src, backends=backends, workers=top, repeat=3 if not quick else 1,
                  warmup=1, csv_path=csv_file, process=False, label="scale", floors=False,
                  progress=sys.stderr.isatty(), course_tsv=False)
    _say("figures")
    make_figures(csv_file, fig_dir, tiles=tiles, slc=slc)
    executed: list[Path] = []
    failed: list[str] = []
    nb_out = rep_dir / "notebooks"
    if notebooks:
        for nb in sorted(_notebook_dir().glob("0[1-5]_*.ipynb")):
            _say(f"notebook {nb.name}")
            target = nb_out / nb.name
            try:
                execute_notebook(nb, {"preset": preset_name or preset}, out_path=target,
                                 timeout=900)
            except LabError as exc:
                failed.append(str(exc))
            executed.append(target)
    reports = []
    for lang, name in (("en", "informe.html"), ("es", "informe_es.html")):
        _say(f"informe ({lang})")
        nb_name = NOTEBOOK if lang == "en" else NOTEBOOK.replace(".ipynb", "_es.ipynb")
        reports.append(build_report(csv_file, lang=lang, out=rep_dir / name, figures=fig_dir,
                                    preset=preset_name, tiles=tiles, slc=slc,
                                    executed=nb_out / nb_name))
        executed.append(nb_out / nb_name)
    seconds = time.perf_counter() - t0
    summary = {"csv": csv_file, "figures": fig_dir, "reports": reports,
               "notebooks": executed, "seconds": seconds, "failed": failed}
    if failed:
        raise LabError(f"informe written to {reports[0]}, but {len(failed)} notebook(s) "
                       f"failed: {failed[0]}")
    return summary


def cli_main(args: Any) -> int:
    """``labkit report [--csv CSV] [--lang en|es] [--out HTML]`` or ``--full``."""
    if getattr(args, "full", False):
        data = getattr(args, "data", None) or os.environ.get("REPORT_DATA") or None
        res = full_report(args.preset, quick=args.quick, data=data)
        print(f"informe: {res['reports'][0]}")
        print(f"informe (es): {res['reports'][1]}")
        print(f"benchmarks: {res['csv']}; figures: {res['figures']}; executed notebooks: "
              f"{res['reports'][0].parent / 'notebooks'} ({res['seconds']:.3g} s)")
        return 0
    preset = getattr(args, "preset", None)
    tiles, slc = find_data(preset) if preset else (None, None)
    out = build_report(args.csv, lang=args.lang, out=args.out, preset=preset, tiles=tiles,
                       slc=slc)
    print(f"informe: {out}")
    return 0
