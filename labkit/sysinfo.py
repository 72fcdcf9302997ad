"""What machine and software a run used: ``labkit info`` and the benchmark CSV columns.

:func:`system_info` returns a flat dict with stable keys (one CSV column each); values are
str, int or float, with ``""`` for anything absent or unknown.
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from typing import Any

from labkit.config import THREAD_ENV_VARS

__all__ = ["INFO_KEYS", "core_counts", "cuda_devices", "mpi_library_version", "system_info"]

INFO_KEYS = ("host", "os", "python", "cpu_model", "cores_physical", "cores_logical",
             "mem_total_gib", "mem_available_gib", "mpi_library", "numpy", "rasterio", "gdal",
             "mpi4py", "ipyparallel", "numba", "numba_cuda", "cuda", "threads_env",
             "threadpools")
_GIB = 2.0**30  # bytes
_MPI_QUERY = ("import mpi4py; mpi4py.rc.initialize = False; mpi4py.rc.finalize = False; "
              "from mpi4py import MPI; print(MPI.Get_library_version())")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                 capture_output=True, text=True, timeout=5)
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def mpi_library_version() -> str:
    """First line of ``MPI.Get_library_version()`` (e.g. ``MPICH Version: 4.2.0``) or "".

    Uses mpi4py.MPI if this process already imported it; otherwise asks a short-lived
    subprocess (MPI is not initialized there, so a broken MPI cannot hang or kill us).
    """
    mpi = sys.modules.get("mpi4py.MPI")
    text = ""
    try:
        if mpi is not None:
            text = mpi.Get_library_version()
        elif _version("mpi4py"):
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("PMI_", "PMIX_", "HYDRA_", "MPIR_", "OMPI_"))}
            out = subprocess.run([sys.executable, "-c", _MPI_QUERY], capture_output=True,
                                 text=True, timeout=30, env=env)
            text = out.stdout if out.returncode == 0 else ""
    except Exception:  # any MPI trouble just means "unknown"
        text = ""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return " ".join(first.split())


def _gdal_version() -> str:
    try:
        import rasterio

        return str(rasterio.__gdal_version__)
    except Exception:
        return ""


def _threadpools() -> str:
    try:
        from threadpoolctl import threadpool_info

        return "; ".join(" ".join(str(i.get(k) or "") for k in
                                  ("internal_api", "version", "threading_layer")).strip()
                         + f" x{i.get('num_threads')}" for i in threadpool_info())
    except Exception:
        return ""


def cuda_devices() -> str:
    """The CUDA devices the gpu backend would find, without loading CUDA: ``"simulator"``
    under ``NUMBA_ENABLE_CUDASIM=1``, else the NVIDIA driver's GPU names (its /proc files,
    else ``nvidia-smi -L``), else "".
    """
    import glob
    import shutil

    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return "simulator (NUMBA_ENABLE_CUDASIM=1)"
    names = []
    for path in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                names += [line.split(":", 1)[1].strip() for line in f
                          if line.startswith("Model:")]
        except OSError:
            pass
    if not names and shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=10)
            names = [line.split(":", 1)[1].split("(UUID")[0].strip()
                     for line in out.stdout.splitlines() if line.startswith("GPU ")]
        except (OSError, subprocess.SubprocessError, IndexError):
            names = []
    return ", ".join(names)


def system_info() -> dict[str, Any]:
    """Host, OS, CPU, cores, memory, MPI library and package versions, thread settings.

    Returns
    -------
    dict
        Keys :data:`INFO_KEYS`: ``host``, ``os``, ``python``, ``cpu_model``,
        ``cores_physical``, ``cores_logical`` (int), ``mem_total_gib``,
        ``mem_available_gib`` (float, GiB), ``mpi_library`` (first line of the MPI
        library version), versions of ``numpy``, ``rasterio``, ``gdal``, ``mpi4py``,
        ``ipyparallel``, ``numba``, ``numba_cuda`` ("" if not installed), ``cuda`` (the
        GPUs the gpu backend would use, ``simulator (...)``, or ""), ``threads_env``
        (``OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=;...``, empty when unset) and
        ``threadpools`` (threadpoolctl's view of the loaded BLAS/OpenMP libraries).
    """
    import psutil

    vm = psutil.virtual_memory()
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cores_physical": psutil.cpu_count(logical=False) or "",
        "cores_logical": psutil.cpu_count(logical=True) or os.cpu_count() or "",
        "mem_total_gib": round(vm.total / _GIB, 2),
        "mem_available_gib": round(vm.available / _GIB, 2),
        "mpi_library": mpi_library_version(),
        "numpy": _version("numpy"),
        "rasterio": _version("rasterio"),
        "gdal": _gdal_version(),
        "mpi4py": _version("mpi4py"),
        "ipyparallel": _version("ipyparallel"),
        "numba": _version("numba"),
        "numba_cuda": _version("numba-cuda"),
        "cuda": cuda_devices(),
        "threads_env": ";".join(f"{k}={os.environ.get(k, '')}" for k in THREAD_ENV_VARS),
        "threadpools": _threadpools(),
    }
    return info


def core_counts() -> tuple[int, int]:
    """(logical, physical) cores of this machine; physical from psutil (the logical
    count when psutil cannot tell).
    """
    logical = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or logical
    except ImportError:
        physical = logical
    return logical, min(physical, logical)
