"""Control panels driven headlessly: set widget values, click Run, check the table and CSV."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labkit.errors import LabError

pytest.importorskip("ipywidgets")

from labkit import backends, bench, prep  # noqa: E402
from labkit.ui import ControlPanel, MpiPanel, PrepPanel, html_table, max_workers  # noqa: E402

PNG_MAGIC = b"\x89PNG"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny preset prepared once: {"root": data folder, "src": tile folder}."""
    root = tmp_path_factory.mktemp("widgets") / "data"
    src = prep.ensure_tiles("tiny", root=root, progress=False)
    return {"root": root, "src": Path(src)}


def _panel(lab: dict[str, Path], tmp_path: Path, **kw: Any) -> ControlPanel:
    return ControlPanel("tiny", root=lab["root"], csv=tmp_path / "bench.csv", **kw)


def test_run_button_adds_a_result_row_and_csv_rows(lab, tmp_path):
    panel = _panel(lab, tmp_path, workers=1, repeats=1)
    try:
        assert panel.workers.max == max_workers() == (os.cpu_count() or 1)
        assert panel.kernel.value == 0 and panel.options()["filter"] is None
        assert list(panel.tile.options[i][1] for i in range(len(panel.tile.options))) == \
            list(prep.tile_sizes("tiny"))
        panel.repeats.value = 2
        panel.run_button.click()
        assert panel.error is None, panel.error
        res = panel.last_result
        assert res.mean.shape == res.std.shape == (64, 64)
        assert res.mean.dtype == np.float32
        row = panel.results[-1]
        assert row["backend"] == "sequential" and row["workers"] == 1
        assert row["repeats"] == 2 and row["median_s"] > 0
        assert row["max_abs_diff"] == 0.0
        assert row["min_s"] <= row["median_s"] <= row["max_s"]
        rows = bench.read_csv(tmp_path / "bench.csv")
        assert len(rows) == 2
        assert {r["backend"] for r in rows} == {"sequential"}
        assert [r["repeat"] for r in rows] == [0, 1]
        assert rows[0]["tile"] == "64x64" and rows[0]["max_abs_diff"] == 0.0
        assert rows[0]["label"] == "panel"
        assert "sequential" in panel.table.value and "<table" in panel.table.value
        assert bytes(panel.plot.value).startswith(PNG_MAGIC)
        assert panel.progress.value == panel.progress.max == 3  # warm-up + 2
        assert not panel.run_button.disabled
        bundle = panel._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
    finally:
        panel.close()


def test_multiprocessing_pool_is_reused_then_closed(lab, tmp_path):
    panel = _panel(lab, tmp_path, backends=("sequential", "multiprocessing"),
                   backend="multiprocessing", workers=2, repeats=1)
    try:
        assert panel.strategy.options == ("partitioned", "per-file")
        panel.strategy.value = "per-file"
        panel.run()
        assert panel.error is None, panel.error
        panel.strategy.value = "partitioned"
        panel.run()
        assert panel.error is None, panel.error
        first, second = panel.results
        assert isinstance(first["pool_startup_s"], float) and first["pool_startup_s"] > 0
        assert second["pool_startup_s"] == "reused"
        assert first["backend"] == "multiprocessing (per-file)"
        assert second["backend"] == "multiprocessing (partitioned)"
        for r in panel.results:  # date splits: equal to within float32 rounding
            assert r["max_abs_diff"] < 1e-4
        pool = panel.pools[("multiprocessing", 2)]
        assert not pool.closed
        rows = bench.read_csv(tmp_path / "bench.csv")
        assert [r["strategy"] for r in rows] == ["per-file", "partitioned"]
        assert all(r["workers"] == 2 for r in rows)
    finally:
        panel.close()
    assert pool.closed and panel.pools == {}


def test_backend_dropdown_updates_strategy_choices(lab, tmp_path):
    panel = _panel(lab, tmp_path, backends=("sequential", "multiprocessing", "mpi"))
    assert panel.strategy.disabled and panel.workers.disabled
    panel.workers.value = 2
    assert panel.options()["workers"] == 1  # sequential is one process
    panel.backend.value = "multiprocessing"
    assert not panel.workers.disabled and panel.options()["workers"] == 2
    assert not panel.strategy.disabled and panel.strategy.value == "partitioned"
    panel.backend.value = "mpi"
    assert panel.strategy.description == "split" and panel.strategy.value == "rows"
    opts = panel.options()
    assert opts["split"] == "rows" and opts["strategy"] is None
    with pytest.raises(LabError, match="unknown backend"):
        ControlPanel("tiny", root=lab["root"], backends=("abacus",), csv=False)


def test_block_rows_slider_reaches_the_backend_and_csv(lab, tmp_path):
    panel = _panel(lab, tmp_path, backends=("threads",), workers=2, repeats=1,
                   block_rows=True)
    try:
        panel.block_rows.value = 16
        panel.run()
        assert panel.error is None, panel.error
        assert panel.results[-1]["block_rows"] == 16
        assert panel.results[-1]["max_abs_diff"] == 0.0  # split by space: bitwise
        assert bench.read_csv(tmp_path / "bench.csv")[-1]["block_rows"] == 16
    finally:
        panel.close()


def test_errors_are_shown_in_the_panel_and_it_stays_usable(lab, tmp_path, monkeypatch):
    bad = tmp_path / "bad_tiles"
    shutil.copytree(lab["src"], bad)
    tile = sorted(bad.glob("*.tif"))[1]
    tile.write_bytes(tile.read_bytes()[:300])  # truncated
    panel = _panel(lab, tmp_path, workers=1, repeats=1)
    try:
        monkeypatch.setattr(panel, "tiles", lambda: bad)
        assert panel.run() is None
        assert panel.error and tile.name in panel.error
        assert "color:#b00020" in panel.status.value and tile.name in panel.status.value
        assert panel.progress.bar_style == "danger"
        assert not panel.run_button.disabled
        assert panel.results == [] and not (tmp_path / "bench.csv").exists()
        with pytest.raises(LabError):
            panel.run(raise_errors=True)

        def boom(*_a: Any, **_k: Any) -> None:
            raise RuntimeError("disk on fire")

        monkeypatch.undo()
        monkeypatch.setattr(bench, "time_backend", boom)
        panel.run_button.click()
        assert panel.error.startswith("RuntimeError: disk on fire")
        assert "Traceback" in panel.traceback
        monkeypatch.undo()
        panel.run_button.click()  # still usable after both errors
        assert panel.error is None and len(panel.results) == 1
        assert "color:#b00020" not in panel.status.value
    finally:
        panel.close()


class FakeCluster:
    """Stands in for labkit.backends.mpi.engines.MpiCluster: runs the sequential backend
    (reached, as the real one, through ``compute("mpi", pool=cluster)`` and ``run_on_engines``)."""

    started: list[int] = []
    stopped: list[int] = []
    fail = False

    def __init__(self, n: int) -> None:
        self.n = n
        self.startup_s = 0.01
        FakeCluster.started.append(n)

    def run(self, src: Any, *, split: str, block_rows: Any = None, ddof: int = 0,
            filter: Any = None, **_: Any) -> Any:
        if FakeCluster.fail:
            raise LabError("rank 1 died")
        res = backends.compute("sequential", src, block_rows=block_rows, ddof=ddof,
                               filter=filter)
        res.meta.update(backend="mpi", split=split, workers=self.n, strategy=None)
        res.meta["per_rank"] = [{"rank": k, "read": 0.001, "compute": 0.002, "merge": 0.0}
                                for k in range(self.n)]
        return res

    def mpiexec_command(self, src: Any, mean: Any, std: Any, split: str) -> str:
        return f"mpiexec -n {self.n} labkit run mpi {src} {mean} {std} --split {split}"

    def stop(self) -> None:
        FakeCluster.stopped.append(self.n)


@pytest.fixture
def fake_cluster(monkeypatch):
    FakeCluster.started, FakeCluster.stopped, FakeCluster.fail = [], [], False
    from labkit.backends.mpi import engines  # where the panel and compute("mpi") find them

    monkeypatch.setattr(engines, "start_cluster", lambda n, timeout=60: FakeCluster(n))
    monkeypatch.setattr(engines, "run_on_engines",
                        lambda pool, stack, **kw: pool.run(stack, **kw))
    return FakeCluster


def test_mpi_panel_starts_reuses_and_stops_engines(lab, tmp_path, fake_cluster):
    panel = MpiPanel("tiny", root=lab["root"], csv=tmp_path / "bench.csv", workers=2, repeats=1,
                     max_workers=4)
    panel.widget  # noqa: B018 - builds the box with the per-rank and command areas
    panel.run_button.click()
    assert panel.error is None, panel.error
    panel.strategy.value = "dates"
    panel.run()
    assert fake_cluster.started == [2] and fake_cluster.stopped == []
    assert panel.results[0]["pool_startup_s"] == 0.01
    assert panel.results[1]["pool_startup_s"] == "reused"
    assert "rank" in panel.ranks.value and "<table" in panel.ranks.value
    assert "mpiexec -n 2" in panel.command.value and "--split dates" in panel.last_command
    rows = bench.read_csv(tmp_path / "bench.csv")
    assert [(r["backend"], r["split"], r["workers"]) for r in rows] == \
        [("mpi", "rows", 2), ("mpi", "dates", 2)]
    panel.workers.value = 3
    panel.run()
    assert fake_cluster.started == [2, 3] and fake_cluster.stopped == [2]
    panel.stop_button.click()
    assert fake_cluster.stopped == [2, 3] and panel.cluster is None
    panel.close()  # nothing left to stop: no error
    assert fake_cluster.stopped == [2, 3]


def test_mpi_panel_replaces_engines_stopped_behind_its_back(lab, tmp_path, fake_cluster):
    """A check that crashed stops the engines it was given: the panel's next Run starts
    new ones instead of failing on the stopped cluster."""
    panel = MpiPanel("tiny", root=lab["root"], csv=False, workers=2, repeats=1)
    panel.run()
    panel.cluster.stopped = True  # as MpiCluster.stopped reads once it was stopped
    panel.run()
    assert panel.error is None, panel.error
    assert fake_cluster.started == [2, 2]
    assert panel.results[-1]["pool_startup_s"] == 0.01  # a new start-up, not "reused"
    panel.close()


def test_mpi_panel_failed_run_stops_the_engines(lab, tmp_path, fake_cluster):
    panel = MpiPanel("tiny", root=lab["root"], csv=False, workers=2, repeats=1)
    fake_cluster.fail = True
    panel.run()
    assert panel.error == "rank 1 died"
    assert fake_cluster.started == [2] and fake_cluster.stopped == [2]
    assert panel.cluster is None and not panel.run_button.disabled
    fake_cluster.fail = False
    panel.run()
    assert panel.error is None and fake_cluster.started == [2, 2]
    panel.close()
    assert fake_cluster.stopped == [2, 2]


def test_prep_panel_prepares_and_times_tiles(tmp_path):
    root = tmp_path / "data"
    panel = PrepPanel("tiny", root=root, workers=2)
    panel.tile.value = min(prep.tile_sizes("tiny"))
    panel.run_button.click()
    assert panel.error is None, panel.error
    row = panel.results[-1]
    assert row["n_dates"] == 4 and row["workers"] == 2 and row["seconds"] > 0
    folder = Path(row["folder"])
    assert len(list(folder.glob("*_int_crop.tif"))) == 4
    assert bytes(panel.plot.value).startswith(PNG_MAGIC)


def test_html_table_escapes_and_formats():
    text = html_table([{"a": "<b>", "b": 0.123456, "c": None}])
    assert "&lt;b&gt;" in text and "0.123" in text and "<td style='padding:2px 8px'></td>" in text
    assert html_table([]) == ""


def test_errors_reach_the_panel_inside_a_kernel(lab, tmp_path):
    """In a kernel, ipywidgets.Output swallows exceptions raised inside it: the panel must
    still show the error, keep working and raise with ``raise_errors=True``."""
    import nbformat

    from labkit.nbrun import execute_notebook

    bad = tmp_path / "bad_tiles"
    shutil.copytree(lab["src"], bad)
    tile = sorted(bad.glob("*.tif"))[0]
    tile.write_bytes(tile.read_bytes()[:300])
    code = f"""
from labkit.errors import LabError
from labkit.ui import ControlPanel
panel = ControlPanel("tiny", root={str(lab["root"])!r}, csv=False, workers=1, repeats=1)
display(panel)
good = panel.tiles
panel.tiles = lambda: {str(bad)!r}
panel.run_button.click()
assert panel.error and {tile.name!r} in panel.error, panel.error
assert "b00020" in panel.status.value and not panel.run_button.disabled
try:
    panel.run(raise_errors=True)
except LabError:
    pass
else:
    raise AssertionError("raise_errors=True did not raise")
panel.tiles = good
panel.run(raise_errors=True)
assert panel.error is None and len(panel.results) == 1
print("kernel-ok")
"""
    path = tmp_path / "panel_errors.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), path)
    nb = execute_notebook(path, {}, timeout=120)
    out = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "kernel-ok" in out


def test_kernel_selector_runs_the_lee_filter_and_shows_it(lab, tmp_path):
    from labkit.ui.frame import KERNEL_CHOICES

    panel = _panel(lab, tmp_path, backends=("sequential", "threads"), backend="threads",
                   workers=2, repeats=1, filter="lee:5")
    try:
        assert [v for _, v in panel.kernel.options] == list(KERNEL_CHOICES)
        assert panel.kernel.options[0] == ("none", 0) and KERNEL_CHOICES[1:] == tuple(
            range(3, 16, 2))
        assert panel.kernel.value == 5 and panel.options()["filter"] == "lee:5"
        panel.run()
        assert panel.error is None, panel.error
        panel.kernel.value = 0
        panel.run()
        panel.kernel.value = 15
        panel.run()
        assert panel.error is None, panel.error
        rows = panel.results
        assert [r["kernel"] for r in rows] == ["lee:5:16", "none", "lee:15:16"]
        assert all(r["max_abs_diff"] == 0.0 for r in rows)  # vs sequential, same kernel
        plain = backends.compute("threads", lab["src"], workers=2)
        assert not np.array_equal(panel.last_result.mean, plain.mean)  # the filter ran
        assert panel.last_result.meta["filter"] == "lee:15:16"
        assert "lee:15:16" in panel.table.value and ">kernel<" in panel.table.value
        assert "kernel lee:5:16" in panel.describe()
        ticks = [t.get_text() for t in panel.figure().axes[0].get_xticklabels()]
        assert "lee:15" in ticks[-1] and "lee" not in ticks[1]
        csv_rows = bench.read_csv(tmp_path / "bench.csv")
        assert [r["filter"] for r in csv_rows] == ["lee:5:16", None, "lee:15:16"]
        variants = {s["variant"] for s in bench.summarize(csv_rows)}
        assert variants == {"threads + lee:5:16", "threads", "threads + lee:15:16"}
    finally:
        panel.close()
    with pytest.raises(LabError, match="valid are none and lee:K"):
        ControlPanel("tiny", root=lab["root"], csv=False, filter="lee:17")
    with pytest.raises(LabError, match="valid is"):
        ControlPanel("tiny", root=lab["root"], csv=False, filter="lee:4")


def test_mpi_panel_passes_the_kernel_to_the_engines_and_the_command(lab, tmp_path,
                                                                    fake_cluster):
    panel = MpiPanel("tiny", root=lab["root"], csv=False, workers=2, repeats=1,
                     filter="lee:9")
    try:
        panel.widget  # noqa: B018 - builds the box with the command area
        panel.run()
        assert panel.error is None, panel.error
        row = panel.results[-1]
        assert row["kernel"] == "lee:9:16" and row["max_abs_diff"] == 0.0
        assert panel.last_command.endswith("--split rows --filter lee:9")
    finally:
        panel.close()


def test_cores_line_marks_counts_past_the_physical_cores(lab, tmp_path, monkeypatch):
    from labkit import sysinfo
    from labkit.ui import frame

    logical, physical = sysinfo.core_counts()
    assert 1 <= physical <= logical == (os.cpu_count() or 1)
    monkeypatch.setattr(sysinfo, "core_counts", lambda: (8, 4))
    assert "8 logical cores, 4 physical" in frame.cores_html(4)
    assert "past" not in frame.cores_html(4)
    assert "past the 4 physical cores" in frame.cores_html(6)
    assert "hyper-threads" in frame.cores_html(6)
    assert "past the 8 logical cores" in frame.cores_html(9)
    panel = _panel(lab, tmp_path, backends=("threads",), workers=4, repeats=1, max_workers=8)
    try:
        assert panel.workers.max == 8 and "past" not in panel.cores.value
        panel.workers.value = 6
        assert "6 workers is past the 4 physical cores" in panel.cores.value
        panel.run()
        assert panel.error is None, panel.error
        assert panel.results[-1]["workers"] == 6
        assert panel.results[-1]["cores"] == "past 4 physical"
        assert "past 4 physical" in panel.table.value and ">cores<" in panel.table.value
        panel.workers.value = 4
        panel.run()
        assert panel.results[-1]["cores"] == "≤ 4 physical"
    finally:
        panel.close()
    prep_panel = PrepPanel("tiny", root=lab["root"], workers=5, max_workers=8)
    assert "past the 4 physical" in prep_panel.cores.value
