"""Layer 4: the MPI backend on ipyparallel MPI engines (labkit.backends.mpi.engines).

One 2-engine cluster is started for the module, used for both splits (rows: bitwise
equal to sequential; dates: within 1 float32 ulp), survives bad input, and is stopped by
a killed engine; no engine, mpiexec or controller process is left afterwards.
"""

from __future__ import annotations

import shlex

import faults
import numpy as np
import psutil
import pytest

from labkit.backends import compute
from labkit.backends.mpi.engines import MpiCluster, start_cluster
from labkit.errors import LabError
from labkit.io import write_geotiff


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    src = tmp_path_factory.mktemp("tiles")
    rng = np.random.default_rng(11)
    x = rng.gamma(1.0, 100.0, (5, 40, 33)).astype(np.float32)
    x[:, :3] = 5e4 + rng.normal(0, 3, (5, 3, 33)).astype(np.float32)  # PS-like rows
    x[:, :, -2:] = np.nan
    x[2, 7, 7] = np.nan
    for k in range(5):
        write_geotiff(src / f"202301{k + 10}_int_crop.tif", x[k])
    return src


@pytest.fixture(scope="module")
def cluster():
    c = start_cluster(2, timeout=60)
    yield c
    c.stop()


def _no_process_left(c: MpiCluster) -> None:
    assert c.stopped and c.stop_s is not None
    left = [p.pid for p in c._procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == []
    assert not any(psutil.pid_exists(pid) for pid in c.engine_pids)


def test_cluster_is_an_mpi_world(cluster):
    assert cluster.n == 2 and not cluster.stopped
    assert cluster.startup_s > 0 and cluster.startup == cluster.startup_s
    assert len(set(cluster.engine_pids)) == 2
    assert all(psutil.pid_exists(pid) for pid in cluster.engine_pids)
    cmd = shlex.split(cluster.mpiexec_command("tiles", "mean.tif", "std.tif", "dates"))
    assert cmd[0].endswith("mpiexec") and cmd[1:3] == ["-n", "2"]
    assert cmd[-7:] == ["run", "mpi", "tiles", "mean.tif", "std.tif", "--split", "dates"]
    assert "2 MPI engines, running" in repr(cluster)


@pytest.mark.parametrize("split", ["rows", "dates"])
def test_run_on_engines_matches_sequential(cluster, tiles, split):
    seq = compute("sequential", tiles)
    r = cluster.run(tiles, split=split)
    assert r.meta["size"] == 2 and r.meta["engines"] == 2 and r.meta["split"] == split
    assert sorted(d["pid"] for d in r.meta["per_rank"]) == sorted(cluster.engine_pids)
    assert "command" not in r.meta and r.meta["cluster_startup"] == cluster.startup_s
    if split == "rows":
        assert np.array_equal(r.mean, seq.mean, equal_nan=True)
        assert np.array_equal(r.std, seq.std, equal_nan=True)
    else:
        for a, b in ((r.mean, seq.mean), (r.std, seq.std)):
            assert np.array_equal(np.isnan(a), np.isnan(b))
            ok = ~np.isnan(a)
            np.testing.assert_array_max_ulp(a[ok], b[ok], maxulp=1)
    again = compute("mpi", tiles, workers=2, split=split, pool=cluster)
    assert np.array_equal(again.mean, r.mean, equal_nan=True)


def test_bad_input_keeps_cluster(cluster, tiles, tmp_path):
    with pytest.raises(LabError, match="does not exist"):
        cluster.run(tmp_path / "nope")
    with pytest.raises(LabError, match="ddof=5"):
        cluster.run(tiles, ddof=5)
    with pytest.raises(LabError, match="has 2 engines"):
        compute("mpi", tiles, workers=3, pool=cluster)
    assert not cluster.stopped
    assert cluster.run(tiles).mean.shape == (40, 33)


def test_killed_engine_stops_cluster(cluster, tiles):
    cluster.view.execute(faults.engine_code("kill-rank"))  # rank 1 dies after one block
    with pytest.raises(LabError, match="died during the run.*cluster was stopped"):
        cluster.run(tiles, split="dates", block_rows=4, timeout=60)
    _no_process_left(cluster)
    with pytest.raises(LabError, match="stopped"):
        cluster.run(tiles)


def test_start_stop_leaves_nothing(tiles):
    with start_cluster(1, timeout=60) as c:
        pids = list(c.engine_pids)
        r = c.run(tiles, split="dates")
        assert r.meta["size"] == 1 and r.meta["per_rank"][0]["pid"] == pids[0]
    _no_process_left(c)
    c.stop()  # twice is fine


def test_bad_engine_count():
    with pytest.raises(LabError, match="whole number"):
        start_cluster(0)
