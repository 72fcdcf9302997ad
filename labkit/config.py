"""Every tunable, environment variable and shared constant of the lab, in one place.

Change a block size or a timeout here, not in the module that uses it. Sizes are in
bytes, times in seconds, unless the name says otherwise.
"""

from __future__ import annotations

import datetime as dt
import os

# -- files ---------------------------------------------------------------------------------
TILE_SUFFIX = "_int_crop.tif"  # prep's output, one per date: <YYYYMMDD>_int_crop.tif
TILE_SIDES = (16, 32, 64, 128, 256, 512, 1024, 2048)  # square tile sides offered (px)
SHM_PREFIX = "labkit_"  # names of the shared-memory blocks (/dev/shm/labkit_*)

# -- environment variables -------------------------------------------------------------------
ENV_HOME = "LABKIT_HOME"  # the data/results root (default: the repository)
ENV_KERNEL = "LABKIT_KERNEL"  # statistics kernel: auto | numba | numpy
ENV_PREP_KERNEL = "LABKIT_PREP_KERNEL"  # prep kernel: auto | c | numpy
ENV_REPORT_DATA = "REPORT_DATA"  # `make report` on a real SLC folder instead of synthetic data
# BLAS/OpenMP thread pools pinned to one thread in every worker, process and rank
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                   "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")
# what MPI launchers (MPICH's Hydra, Open MPI, PMIx, SLURM's srun) tell each rank
RANK_ENV_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")
SIZE_ENV_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS")

# -- prep ----------------------------------------------------------------------------------
PREP_BLOCK_BYTES = 4 * 2**20  # SLC bytes per block: keeps the kernel in L2/L3 cache
PREP_THREADS = min(2, os.cpu_count() or 1)  # threads per date when one date runs at a time

# -- backends ------------------------------------------------------------------------------
IO_BLOCK_ROWS = 256  # most rows read per date per block by the streaming backends
IO_BLOCK_BYTES = 6 * 2**20  # one block over every date: two of them stay in the L3 cache
KERNEL_CACHE_BYTES = 1 << 20  # working set per statistics-kernel block (L2 on a laptop)
JIT_PAYS_BYTES = 2 * 2**30  # stack size above which loading Numba pays in a one-shot run
MEM_HEADROOM = 0.8  # fraction of free RAM (and /dev/shm) a shared block may take
TERMINATE_GRACE_S = 1.0  # a terminated worker's time to exit before it is killed
KILL_GRACE_S = 3.0  # between SIGTERM and SIGKILL when stopping an mpiexec process group

# -- ipyparallel MPI engines ---------------------------------------------------------------
ENGINE_RUN_TIMEOUT_S = 600.0  # a run on the engines longer than this stops the cluster
ENGINE_STOP_TIMEOUT_S = 10.0  # wait for engines to exit before killing them
ENGINE_POLL_S = 0.1  # between checks that every engine is alive during a run

# -- synthetic stacks ----------------------------------------------------------------------
FIRST_DATE = dt.date(2023, 1, 5)  # first acquisition of a synthetic (or scaled) stack
REVISIT_DAYS = 8  # SAOCOM-1A/1B constellation revisit


def acquisition_dates(n: int, start: dt.date = FIRST_DATE) -> list[str]:
    """``n`` acquisition dates ``YYYYMMDD``, one revisit apart, from ``start``."""
    return [(start + dt.timedelta(days=REVISIT_DAYS * i)).strftime("%Y%m%d")
            for i in range(n)]


# -- timing and figures --------------------------------------------------------------------
PHASES = ("read", "compute", "merge", "write")  # phases of a run; merge = merge/communicate
FLOORS = ("floor-memory", "floor-read")  # benchmark rows: the machine's own limits
PHASE_COLORS = {"startup": "#9467bd", "read": "#1f77b4", "compute": "#2ca02c",
                "merge": "#d62728", "write": "#8c564b", "other": "#c7c7c7",
                "process": "#ff7f0e"}
