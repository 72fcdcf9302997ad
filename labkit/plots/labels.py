"""Every word drawn on a figure, in English and in Spanish (Argentine usage).

A figure takes ``lang`` and asks :func:`say` for its axis labels, titles and legend
entries; numbers drawn on a figure go through :func:`num` so Spanish figures use the
decimal comma, like the informe's text.
"""

from __future__ import annotations

from labkit.errors import LabError

__all__ = ["LANGS", "num", "say"]

LANGS = ("en", "es")

_TEXT: dict[str, tuple[str, str]] = {
    # t_barras.png
    "worker": ("{n} worker", "{n} worker"),
    "workers": ("{n} workers", "{n} workers"),
    "floor": ("{name} ({value} s)", "{name} ({value} s)"),
    "wall_axis": ("wall time (s), median; bars min..max", "tiempo (s), mediana; barras mín..máx"),
    "in_process": ("in-process (perf_counter)", "en proceso (perf_counter)"),
    "whole_process": ("whole process (fresh interpreter)",
                      "proceso completo (intérprete nuevo)"),
    "times_title": ("Time per backend: temporal mean and std of the stack",
                    "Tiempo por backend: promedio y desvío temporal de la pila"),
    # speedup.png / efficiency.png
    "ideal": ("ideal (S = p)", "ideal (S = p)"),
    "amdahl_label": ("{variant} (Amdahl s = {s})", "{variant} (Amdahl s = {s})"),
    "workers_axis": ("workers p (processes / threads / ranks)",
                     "workers p (procesos / hilos / ranks)"),
    "speedup_axis": ("speed-up S = T_sequential / T(p)", "speed-up S = T_secuencial / T(p)"),
    "speedup_title": ("Speed-up vs sequential ({mode}); dotted: Amdahl 1/S = a + b/p "
                      "fitted on ≥ {n} worker counts",
                      "Speed-up frente al secuencial ({mode}); punteado: Amdahl 1/S = a + b/p "
                      "ajustado con ≥ {n} cantidades de workers"),
    "perfect": ("perfect (E = 1)", "perfecta (E = 1)"),
    "workers_short": ("workers p", "workers p"),
    "efficiency_axis": ("efficiency E = S / p", "eficiencia E = S / p"),
    "efficiency_title": ("Parallel efficiency ({mode})", "Eficiencia paralela ({mode})"),
    "mode_in-process": ("in-process", "en proceso"),
    "mode_process": ("whole process", "proceso completo"),
    # breakdown.png
    "phase_startup": ("startup", "arranque"),
    "phase_read": ("read", "lectura"),
    "phase_compute": ("compute", "cálculo"),
    "phase_merge": ("merge", "combinación de parciales"),
    "phase_write": ("write", "escritura"),
    "phase_other": ("other", "otro"),
    "phase_process": ("process start + write", "arranque del proceso + escritura"),
    "seconds_axis": ("seconds (median)", "segundos (mediana)"),
    "breakdown_title": ("Where the time goes (black tick: in-process wall)",
                        "En qué se va el tiempo (marca negra: tiempo en proceso)"),
    # scaling.png
    "break_even": ("break-even (S = 1)", "empate (S = 1)"),
    "stack_axis": ("stack: dates × tile, size of the float32 tiles",
                   "pila: fechas × recorte, tamaño de los recortes float32"),
    "scale_axis": ("speed-up vs sequential at the most workers",
                   "speed-up frente al secuencial con la mayor cantidad de workers"),
    "scaling_title": ("When does parallelism pay? (in-process)",
                      "¿Cuándo conviene paralelizar? (en proceso)"),
    # weak.png
    "weak_time_axis": ("wall time (s), median", "tiempo (s), mediana"),
    "weak_time_title": ("Weak scaling: {dates} dates per worker",
                        "Escalado débil: {dates} fechas por worker"),
    "weak_eff_axis": ("efficiency", "eficiencia"),
    "weak_eff_title": ("Efficiency: weak (solid) and strong (dashed)",
                       "Eficiencia: débil (llena) y fuerte (rayada)"),
    "weak_ideal": ("ideal (time constant)", "ideal (tiempo constante)"),
    "physical": ("{n} physical cores", "{n} núcleos físicos"),
    "logical": ("{n} logical cores", "{n} núcleos lógicos"),
    "weak_title": ("Weak scaling: the work grows with the workers (in-process)",
                   "Escalado débil: el trabajo crece con los workers (en proceso)"),
    # roofline.png and speedup_k.png (drawn by labkit.plots.roofline)
    "roof_x": ("arithmetic intensity (flop/byte)", "intensidad aritmética (flop/byte)"),
    "roof_y": ("GFLOP/s", "GFLOP/s"),
    "roof_memory": ("memory", "memoria"),
    "roof_compute": ("compute", "cálculo"),
    "roof_scalar": ("scalar roof", "techo escalar"),
    "roof_ridge": ("ridge", "punto de quiebre"),
    "roof_threads": ("thread(s)", "hilo(s)"),
    "roof_title": ("Roofline of this machine, measured in this run",
                   "Roofline de esta máquina, medido en esta corrida"),
    "sweep_x": ("Lee window side K", "lado K de la ventana de Lee"),
    "sweep_y": ("speed-up (1 worker / N workers)", "speed-up (1 worker / N workers)"),
    "sweep_none": ("none", "sin filtro"),
    "sweep_ideal": ("ideal", "ideal"),
    "sweep_title": ("Where parallelism pays: speed-up against kernel weight",
                    "Dónde rinde el paralelismo: speed-up según el peso del cálculo"),
    # maps.png
    "map_mean": ("temporal mean of |S|² (multilooked)",
                 "promedio temporal de |S|² (con multilook)"),
    "map_std": ("temporal std (ddof 0)", "desvío temporal (ddof 0)"),
    "map_cv": ("coefficient of variation std/mean", "coeficiente de variación desvío/promedio"),
    "intensity": ("intensity (linear)", "intensidad (lineal)"),
    "ratio": ("ratio", "cociente"),
    "range_px": ("range (px)", "rango (px)"),
    "azimuth_px": ("azimuth (px)", "acimut (px)"),
    "range_sample": ("range sample", "muestra en rango"),
    "azimuth_line": ("azimuth line", "línea en acimut"),
    "maps_title": ("Temporal statistics of {dates} dates, tiles {tile}",
                   "Estadística temporal de {dates} fechas, recortes {tile}"),
    "ps_fraction": ("candidate fraction per {block}×{block} px",
                    "fracción de candidatos cada {block}×{block} px"),
    "ps_count": ("{n} candidates ({pct} % of pixels)", "{n} candidatos ({pct} % de los píxeles)"),
    "ps_true": ("true PS ({n})", "PS verdaderos ({n})"),
    "ps_found": ("{hits}/{n} true PS found, {false} false alarms",
                 "{hits}/{n} PS verdaderos encontrados, {false} falsas alarmas"),
    "ps_title": ("PS candidates: amplitude dispersion D_A < {threshold}\n"
                 "(std/mean of |S| over dates, full-resolution SLC)",
                 "Candidatos a PS: dispersión de amplitud D_A < {threshold}\n"
                 "(desvío/promedio de |S| entre fechas, SLC a resolución completa)"),
    # captions under every title
    "caption": ("{cpu}, {phys} physical / {logical} logical cores, host {host}",
                "{cpu}, {phys} núcleos físicos / {logical} lógicos, host {host}"),
    "caption_data": ("; {dates} dates × {tile} float32 ({mib} MiB)",
                     "; {dates} fechas × {tile} float32 ({mib} MiB)"),
    "caption_data_short": ("; {dates} dates × {tile}", "; {dates} fechas × {tile}"),
    "unknown_cpu": ("unknown CPU", "CPU desconocida"),
}


def _check(lang: str) -> int:
    """Index of ``lang`` in :data:`LANGS`, else a :class:`LabError`."""
    if lang not in LANGS:
        raise LabError(f"language {lang!r} is not available for figures: use "
                       f"{' or '.join(LANGS)}")
    return LANGS.index(lang)


def say(key: str, lang: str = "en", **values: object) -> str:
    """The figure text ``key`` in ``lang``, with ``values`` filled in.

    Parameters
    ----------
    key : str
        One of the figure texts (axis, title, legend).
    lang : {"en", "es"}
        Language of the figure.
    **values
        Fields of the text (already formatted: use :func:`num` for numbers).
    """
    return _TEXT[key][_check(lang)].format(**values)


def num(value: float, lang: str = "en", digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits and the decimal mark of ``lang``."""
    text = f"{value:.{digits}g}"
    return text.replace(".", ",") if _check(lang) == 1 else text
