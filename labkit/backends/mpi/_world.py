"""Where a process stands in an MPI world, read from what the launcher put in its
environment (so MPI is not initialised by asking), and which ``mpiexec`` starts one.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from labkit.config import RANK_ENV_VARS, SIZE_ENV_VARS, THREAD_ENV_VARS
from labkit.errors import LabError

__all__ = ["THREAD_ENV", "launcher_free_env", "mpiexec_path", "world_rank", "world_size"]

THREAD_ENV = dict.fromkeys(THREAD_ENV_VARS, "1")  # one BLAS/OpenMP thread per rank
_LAUNCHER_PREFIXES = ("PMI_", "PMIX_", "HYDI_", "OMPI_COMM_WORLD_")


def _env_int(names: tuple[str, ...], default: int) -> int:
    """The first of the launcher's variables ``names`` that holds a whole number."""
    for var in names:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return default


def world_size() -> int:
    """Ranks in the MPI world this process was started in (1 without ``mpiexec``)."""
    return _env_int(SIZE_ENV_VARS, 1)


def world_rank() -> int:
    """This process's rank under ``mpiexec`` (0 without it)."""
    return _env_int(RANK_ENV_VARS, 0)


def mpiexec_path() -> str:
    """The ``mpiexec`` next to ``sys.executable`` (the venv's mpich wheel), else on PATH.

    Raises
    ------
    LabError
        None found.
    """
    local = Path(sys.executable).parent / "mpiexec"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("mpiexec")
    if found is None:
        raise LabError("mpiexec not found next to Python or on PATH: install the mpich wheel "
                       "(pip install mpich) or an MPI library (conda install mpich)")
    return found


def launcher_free_env() -> dict[str, str]:
    """This environment without a launcher's PMI/Hydra/Open MPI state (for a nested
    ``mpiexec``), with one BLAS/OpenMP thread per rank.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LAUNCHER_PREFIXES)}
    env.update(THREAD_ENV)
    return env
