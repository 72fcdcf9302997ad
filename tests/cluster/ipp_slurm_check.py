"""ipyparallel engines under SLURM (run by tests/cluster/run_slurm_test.sh, inside its cluster).

Usage: ipp_slurm_check.py N SRC WORKDIR

Starts a local controller and N engines through ``ipp.Cluster(engines="slurm")`` with the lab's
batch template (data_prep/slurm/ipengines.sbatch), checks that the engines form one MPI world of
N ranks and that an MPI reduction over them (each rank a band of rows of the tiles of SRC) gives
the driver's sum, then stops the cluster (scancel of the engine job).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import ipyparallel as ipp
import numpy as np
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "data_prep" / "slurm" / "ipengines.sbatch"


def _mpi_world() -> tuple[int, int]:
    """(rank, size) of this engine's MPI world."""
    from mpi4py import MPI

    return MPI.COMM_WORLD.rank, MPI.COMM_WORLD.size


def _tile_rows(src: str, lo: float, hi: float) -> np.ndarray:
    """Rows [lo*height, hi*height) of every tile of ``src``, as one float64 array."""
    from pathlib import Path

    import numpy as np
    import rasterio

    parts = []
    for path in sorted(Path(src).glob("*.tif")):
        with rasterio.open(path) as f:
            a, b = int(f.height * lo), int(f.height * hi)
            parts.append(f.read(1, window=((a, b), (0, f.width))).astype(np.float64))
    return np.stack(parts)


def _mpi_total(tile_rows: Callable[[str, float, float], np.ndarray], src: str
               ) -> tuple[float, int]:
    """(sum, count) of the finite pixels of all tiles: rows split over the ranks, MPI allreduce.

    ``tile_rows`` is :func:`_tile_rows`, passed along since engines do not see this module.
    """
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    part = tile_rows(src, comm.rank / comm.size, (comm.rank + 1) / comm.size)
    local = np.array([np.nansum(part), np.isfinite(part).sum()], dtype=np.float64)
    total = np.empty_like(local)
    comm.Allreduce(local, total, op=MPI.SUM)
    return float(total[0]), int(total[1])


def main() -> int:
    """Run the check; 0 on success."""
    n, src, workdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.chdir(workdir)  # the engines' batch script and the profile go there
    config = Config()
    config.SlurmEngineSetLauncher.batch_template_file = str(TEMPLATE)
    profile = tempfile.mkdtemp(prefix="ipp-profile-", dir=".")
    cluster = ipp.Cluster(engines="slurm", n=n, controller_ip="127.0.0.1",
                          profile_dir=str(Path(profile).resolve()), config=config)
    try:
        client = cluster.start_and_connect_sync()
        client.wait_for_engines(n, timeout=90)
        world = sorted(client[:].apply_sync(_mpi_world))
        if world != [(rank, n) for rank in range(n)]:
            print(f"ipp_slurm_check: engines are not one MPI world of {n}: {world}",
                  file=sys.stderr)
            return 1
        print(f"ipp_slurm_check: {n} engines under SLURM, one MPI world {world}")
        totals = client[:].apply_sync(_mpi_total, _tile_rows, src)
        whole = _tile_rows(src, 0.0, 1.0)
        want = (float(np.nansum(whole)), int(np.isfinite(whole).sum()))
        same = len(set(totals)) == 1 and totals[0][1] == want[1]
        if not (same and np.isclose(totals[0][0], want[0], rtol=1e-12)):
            print(f"ipp_slurm_check: MPI allreduce on the engines gave {totals}, expected {want}",
                  file=sys.stderr)
            return 1
        print(f"ipp_slurm_check: MPI allreduce over the engines matches: {want[1]} pixels")
        return 0
    finally:
        cluster.stop_cluster_sync()


if __name__ == "__main__":
    sys.exit(main())
