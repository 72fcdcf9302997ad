"""Whole-process timing: a fresh process per run, timed like ``/usr/bin/time``.

Every child runs in its own process group with ``*_NUM_THREADS=1`` unless set; on a
timeout, Ctrl-C or any error the whole group (``mpiexec`` and its ranks too) is ended,
so no orphan survives.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit.backends._group import end_group
from labkit.backends.mpi._world import mpiexec_path
from labkit.bench.harness import max_abs_diff
from labkit.errors import LabError

__all__ = [
    "mpiexec_path",
    "peak_rss",
    "process_command",
    "python_call",
    "run_command",
    "run_in_group",
    "time_command",
    "time_process",
]


def process_command(backend: str, src: str | os.PathLike[str], mean: str | os.PathLike[str],
                    std: str | os.PathLike[str], *, workers: int = 1,
                    strategy: str | None = None, split: str | None = None,
                    block_rows: int | None = None) -> list[str]:
    """The command line of one whole-process ``labkit run`` (``mpiexec -n N`` for mpi)."""
    cmd = [sys.executable, "-m", "labkit", "run", backend, str(src), str(mean), str(std),
           "--quiet"]
    if backend == "mpi":
        cmd = [mpiexec_path(), "-n", str(workers), *cmd]
    else:
        cmd += ["--workers", str(workers)]
    if strategy:
        cmd += ["--strategy", strategy]
    if split:
        cmd += ["--split", split]
    if block_rows:
        cmd += ["--block-rows", str(block_rows)]
    return cmd


def python_call(func: str, *args: str) -> list[str]:
    """Command line running ``labkit.bench.<func>(*args)`` in a fresh interpreter
    (e.g. ``python_call("course_script", src, mean, std)``).
    """
    return [sys.executable, "-c", f"from labkit.bench import {func}; {func}(*{list(args)!r})"]


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with one thread per math library unless set, plus ``extra``."""
    from labkit.config import THREAD_ENV_VARS

    env = dict(os.environ)
    for k in THREAD_ENV_VARS:
        env.setdefault(k, "1")
    env.update(extra or {})
    return env


def run_in_group(cmd: Sequence[str], timeout: float, what: str, *,
                 env: dict[str, str] | None = None,
                 stdout: bool = True) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group and wait for it.

    Parameters
    ----------
    cmd : sequence of str
        The command and its arguments.
    timeout : float
        Seconds before the group is ended.
    what : str
        Names the run in the timeout message (``"<what> took longer than ..."``).
    env : dict, optional
        Variables added to the child's environment.
    stdout : bool, default True
        Capture stdout; False sends it to ``/dev/null``.

    Returns
    -------
    subprocess.CompletedProcess
        Whatever the exit status (stderr always captured).

    Raises
    ------
    LabError
        Timeout. Ctrl-C and other errors end the group and propagate.
    """
    proc = subprocess.Popen(list(cmd), env=_child_env(env),
                            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as exc:
        end_group(proc)
        if isinstance(exc, subprocess.TimeoutExpired):
            raise LabError(f"{what} took longer than {timeout:.0f} s: stopped") from None
        raise
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out or "", err or "")


def _run_checked(cmd: Sequence[str], timeout: float, env: dict[str, str] | None = None,
                 stdout: bool = True) -> tuple[float, str, str]:
    """(wall s, stdout, stderr) of ``cmd``; a non-zero exit is a one-line LabError."""
    t0 = time.perf_counter()
    proc = run_in_group(cmd, timeout, f"`{shlex.join(cmd[:3])} ...`", env=env, stdout=stdout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1][:300]
        raise LabError(f"`{shlex.join(cmd[:5])} ...` failed (exit {proc.returncode}): {last}")
    return wall, proc.stdout, proc.stderr


def time_command(cmd: Sequence[str], *, timeout: float = 600.0,
                 env: dict[str, str] | None = None) -> float:
    """Wall seconds of one fresh process running ``cmd`` (its output goes to /dev/null).

    Raises
    ------
    LabError
        Non-zero exit (with the last line of its stderr) or timeout.
    """
    return _run_checked(cmd, timeout, env, stdout=False)[0]


def run_command(cmd: Sequence[str], *, timeout: float = 600.0,
                env: dict[str, str] | None = None) -> tuple[float, str, str]:
    """(wall s, stdout, stderr) of one fresh process running ``cmd``.

    Raises
    ------
    LabError
        Non-zero exit (with the last line of its stderr) or timeout.
    """
    return _run_checked(cmd, timeout, env)


def peak_rss(cmd: Sequence[str], *, timeout: float = 600.0) -> tuple[float, int]:
    """(wall s, peak resident memory in bytes) of one process running ``cmd``.

    Uses ``/usr/bin/time -v`` when present, else a small Python parent that reads
    ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after its only child ends.
    """
    if Path("/usr/bin/time").exists():
        wall, _, err = _run_checked(["/usr/bin/time", "-v", *cmd], timeout, stdout=False)
        for line in err.splitlines():
            if "Maximum resident set size" in line:
                return wall, int(line.rsplit(":", 1)[1]) * 1024
        raise LabError("/usr/bin/time -v printed no 'Maximum resident set size'")
    code = ("import resource, subprocess, sys; "
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    wall, out, _ = _run_checked([sys.executable, "-c", code, *cmd], timeout)
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return wall, int(out.split()[-1]) * unit


def time_process(
    backend: str,
    stack: Any,
    *,
    workers: int = 1,
    strategy: str | None = None,
    split: str | None = None,
    block_rows: int | None = None,
    repeat: int = 3,
    reference: Any = None,
    timeout: float = 1800,
) -> list[dict[str, Any]]:
    """Time ``repeat`` fresh ``labkit run`` processes (like ``/usr/bin/time``).

    Returns
    -------
    list of dict
        ``wall`` (s, the whole process incl. interpreter start, imports, pool start and
        the GeoTIFF writes) and ``max_abs_diff`` (of the written outputs vs
        ``reference``, or None).
    """
    from labkit.io import read_tile

    out = []
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        mean, std = Path(tmp) / "mean.tif", Path(tmp) / "std.tif"
        cmd = process_command(backend, stack.paths[0].parent, mean, std, workers=workers,
                              strategy=strategy, split=split, block_rows=block_rows)
        for _ in range(repeat):
            t0 = time.perf_counter()
            proc = run_in_group(cmd, timeout, f"{backend} run")
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                msg = (proc.stderr.strip().splitlines() or ["no message"])[-1][:300]
                raise LabError(f"`labkit run {backend}` failed (exit {proc.returncode}): {msg}")
            diff = None
            if reference is not None:
                got = type("R", (), {"mean": read_tile(mean), "std": read_tile(std)})
                diff = max_abs_diff(got, reference)
            out.append({"wall": wall, "max_abs_diff": diff})
    return out
