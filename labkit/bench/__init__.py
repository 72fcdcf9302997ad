"""Benchmarks of the lab: timing harness, whole-process timing, floors, the CSV, ``labkit bench``.

One module per job:

* :mod:`~labkit.bench.schema`: the CSV columns, machine fields, appending and
  reading rows.
* :mod:`~labkit.bench.harness`: in-process timing (warm-up, repeats, alternated rounds,
  medians), result comparison, prefetch on and off.
* :mod:`~labkit.bench.process`: whole fresh processes timed like ``/usr/bin/time``.
* :mod:`~labkit.bench.floors`: memory and read floors measured in the same run, kernel
  rates beside the memory floor.
* :mod:`~labkit.bench.course`: the course-style script, a read-and-sum process and the
  course's ``tiempos.tsv``.
* :mod:`~labkit.bench.summary`: medians and spread per configuration.
* :mod:`~labkit.bench.runner`: ``labkit bench`` (:func:`run_bench`).

Every public name is importable from ``labkit.bench`` itself.
"""

from __future__ import annotations

from labkit.bench.course import COURSE_NAMES, course_script, read_and_sum, write_course_tsv
from labkit.bench.floors import kernel_rates, measure_floors
from labkit.bench.harness import (
    alternate,
    compare_prefetch,
    describe_prefetch,
    forced_kernel,
    max_abs_diff,
    median,
    time_backend,
    timed,
)
from labkit.bench.process import (
    peak_rss,
    process_command,
    python_call,
    run_command,
    time_command,
    time_process,
)
from labkit.bench.runner import parse_backends, parse_workers, run_bench
from labkit.bench.schema import (
    CSV_COLUMNS,
    FLOOR_BACKENDS,
    append_csv,
    machine_columns,
    read_csv,
    row_from_result,
    session_id,
)
from labkit.bench.summary import format_table, summarize, variant_name

_system = machine_columns  # the name labkit.report imports

__all__ = [
    "COURSE_NAMES",
    "CSV_COLUMNS",
    "FLOOR_BACKENDS",
    "alternate",
    "append_csv",
    "compare_prefetch",
    "course_script",
    "describe_prefetch",
    "forced_kernel",
    "format_table",
    "kernel_rates",
    "machine_columns",
    "max_abs_diff",
    "measure_floors",
    "median",
    "parse_backends",
    "parse_workers",
    "peak_rss",
    "process_command",
    "python_call",
    "read_and_sum",
    "read_csv",
    "row_from_result",
    "run_bench",
    "run_command",
    "session_id",
    "summarize",
    "time_backend",
    "time_command",
    "time_process",
    "timed",
    "variant_name",
    "write_course_tsv",
]
