"""MPI backend: split the work by rows or by dates over the ranks of an MPI world.

The algorithm is :func:`labkit.backends.mpi.spmd.spmd` (mpi4py, one function every rank
runs). :func:`compute` only decides where the ranks come from:

* under ``mpiexec -n N labkit run mpi ...`` every rank runs the CLI; rank 0 gets the full
  maps (and writes the outputs), the other ranks get ``(0, cols)`` arrays;
* ``opts.pool`` is a :class:`~labkit.backends.mpi.engines.MpiCluster` (or an ipyparallel
  ``Client`` / ``Cluster`` with MPI engines): the engines run it
  (:mod:`labkit.backends.mpi.engines`);
* in-process with ``workers > 1`` (notebook, benchmarks): labkit's launcher starts
  ``mpiexec -n workers`` (:mod:`labkit.backends.mpi.launcher`);
* ``workers == 1`` without ``mpiexec``: a world of one rank in this process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit.backends.mpi._world import mpiexec_path, world_rank, world_size
from labkit.errors import LabError

if TYPE_CHECKING:
    from labkit.backends._result import Result
    from labkit.backends.options import RunOptions
    from labkit.io import TileStack

__all__ = ["compute", "mpiexec_path", "world_rank", "world_size"]


def compute(stack: TileStack, opts: RunOptions) -> Result:
    """Mean and std with MPI ranks (see the module docstring for where they come from).

    Under ``mpiexec`` or with a cluster ``opts.pool``, ``opts.workers`` must be 1 (the
    default: every rank/engine) or the world size / engine count.
    """
    split, br, mc, kernel = opts.split or "rows", opts.block_rows, opts.min_count, opts.kernel
    filt = opts.filter
    if opts.pool is not None:
        from labkit.backends.mpi.engines import run_on_engines

        n = getattr(opts.pool, "n", None)
        if n is not None and opts.workers not in (1, n):
            raise LabError(f"workers={opts.workers} but the MPI cluster has {n} engines: pass "
                           f"workers={n} (or leave it out) or start a cluster of {opts.workers}")
        return run_on_engines(opts.pool, stack, split=split, block_rows=br, ddof=opts.ddof,
                              min_count=mc, kernel=kernel, filter=filt)
    size = world_size()
    if size > 1:
        if opts.workers not in (1, size):
            raise LabError(f"--workers {opts.workers} does not match mpiexec -n {size}: "
                           "leave --workers out under mpiexec")
    elif opts.workers > 1:
        from labkit.backends.mpi.launcher import launch

        result = launch(stack, opts.workers, split=split, block_rows=br, ddof=opts.ddof,
                        min_count=mc, kernel=kernel, filter=filt)
        if opts.progress:
            opts.progress(1, 1)
        return result
    from mpi4py import MPI

    from labkit.backends.mpi.spmd import spmd

    return spmd(MPI.COMM_WORLD, stack, split=split, block_rows=br, ddof=opts.ddof,
                min_count=mc, progress=opts.progress, kernel=kernel, filter=filt)
