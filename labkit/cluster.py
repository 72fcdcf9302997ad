"""ipyparallel MPI engines for the notebook: the names of
:mod:`labkit.backends.mpi.engines`, where they live, under a short import path.
"""

from labkit.backends.mpi.engines import (
    LOOPBACK_ENV,
    RUN_TIMEOUT_S,
    MpiCluster,
    run_on_engines,
    start_cluster,
)

__all__ = ["LOOPBACK_ENV", "RUN_TIMEOUT_S", "MpiCluster", "run_on_engines", "start_cluster"]
