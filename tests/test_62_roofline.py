"""The roofline and the speed-up against K: structure and invariants on tiny sizes (the
numbers themselves are measured by the benchmarks, not asserted here)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from labkit import backends, prep
from labkit.bench import kernels_k, roofline
from labkit.errors import LabError
from labkit.filters import LeeFilter

pytest.importorskip("numba")

PNG_MAGIC = b"\x89PNG"
NOISE = 1.5  # a point may sit this far above its roof before the test calls it wrong


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset's tiles (4 dates of 64×64, looks recorded)."""
    root = tmp_path_factory.mktemp("roofline") / "data"
    return Path(prep.ensure_tiles("tiny", root=root, progress=False))


@pytest.fixture(scope="module")
def roof() -> roofline.Roof:
    """A roof measured on small arrays and short loops (fast, numbers not asserted)."""
    return roofline.measure_roof(threads=(1, 2), nbytes=6 << 20, repeat=1, iters=1 << 14)


def test_flops_are_counted_from_the_kernels():
    n, rows, cols = 5, 64, 48
    stats = roofline.count_flops(n, rows, cols)
    assert stats == n * rows * cols * 4 + rows * cols * 7
    # whole dates: each date-pixel adds the filter's count for a 64-row block
    lee = roofline.count_flops(n, rows, cols, "lee:9")
    assert lee == pytest.approx(stats + n * rows * cols * LeeFilter(9).flops_per_pixel(rows))
    # blocks of 16 rows each redo their 4 halo rows above and below
    blocks = roofline.count_flops(n, rows, cols, "lee:9", block_rows=16)
    per_block = 3 * 9 * (16 + 8) + (2 * 9 + 12) * 16  # row sums over the halo, the rest
    assert blocks == pytest.approx(stats + n * cols * 4 * per_block)
    assert blocks > lee
    assert roofline.count_flops(n, rows, cols, "lee:9:16") == lee  # ENL adds no flops
    # K grows the work per pixel: 5K + 12 flops (plus the halo rows)
    assert roofline.count_flops(n, rows, cols, "lee:15") > lee
    with pytest.raises(LabError, match="valid is"):
        roofline.count_flops(n, rows, cols, "lee:4")


def test_bytes_are_the_tiles_read_once_plus_the_outputs():
    n, rows, cols = 5, 64, 48
    assert roofline.count_bytes(n, rows, cols) == 4 * n * rows * cols + 8 * rows * cols
    assert roofline.count_bytes(n, rows, cols, "lee:9") == roofline.count_bytes(n, rows, cols)
    # 16-row blocks with 4 halo rows: 20 + 24 + 24 + 20 rows read (image edges reflect)
    assert roofline.count_bytes(n, rows, cols, "lee:9", block_rows=16) == \
        4 * n * 88 * cols + 8 * rows * cols
    # statistics alone: (4n + 7) flops over (4n + 8) bytes per pixel, just under 1
    i = roofline.count_flops(24, 8, 8) / roofline.count_bytes(24, 8, 8)
    assert i == pytest.approx((4 * 24 + 7) / (4 * 24 + 8)) and i < 1


def test_roof_structure_ridge_and_attainable(roof):
    assert roof.threads == (1, 2)
    for table in (roof.bandwidth_gbps, roof.copy_gbps, roof.peak_gflops, roof.scalar_gflops):
        assert set(table) == {1, 2}
        assert all(v > 0 and math.isfinite(v) for v in table.values())
    assert (6 << 20) - 24 <= roof.array_bytes <= 6 << 20 and roof.llc_bytes > 0
    for t in roof.threads:
        assert roof.ridge(t) == pytest.approx(roof.peak_gflops[t] / roof.bandwidth_gbps[t])
        assert roof.ridge(t, scalar=True) == pytest.approx(
            roof.scalar_gflops[t] / roof.bandwidth_gbps[t])
        r = roof.ridge(t)
        assert roof.attainable(r / 10, t) == pytest.approx(roof.bandwidth_gbps[t] * r / 10)
        assert roof.attainable(r * 10, t) == pytest.approx(roof.peak_gflops[t])
        assert roof.attainable(r, t) == pytest.approx(roof.peak_gflops[t])
    assert roof.ridge() == roof.ridge(2)
    d = roof.as_dict()
    assert d["ridge"][1] == pytest.approx(roof.ridge(1)) and d["threads"] == (1, 2)
    with pytest.raises(LabError, match="threads"):
        roofline.measure_roof(threads=(0,), nbytes=1 << 20, repeat=1, iters=16)


def test_kernel_points_are_placed_by_counted_intensity_and_under_the_roof(tiny, roof):
    points = roofline.kernel_points(tiny, filters=(None, "lee:9"), backends=("threads",),
                                    workers=(1, 2), repeat=2)
    assert [(p.kernel, p.backend, p.workers) for p in points] == [
        ("stats", "threads", 1), ("stats", "threads", 2),
        ("lee:9", "threads", 1), ("lee:9", "threads", 2)]
    for p in points:
        filt = None if p.kernel == "stats" else p.kernel
        br = backends.compute("threads", tiny, workers=p.workers,
                              filter=filt).meta["block_rows"]
        assert p.repeats == 2 and p.compute_s > 0 and p.wall_s >= p.compute_s
        assert p.flops == roofline.count_flops(4, 64, 64, filt, br)
        assert p.bytes == roofline.count_bytes(4, 64, 64, filt, br)
        assert p.intensity == pytest.approx(p.flops / p.bytes)
        assert p.gflops == pytest.approx(p.flops / p.compute_s / 1e9)
        assert p.gflops <= NOISE * roof.attainable(p.intensity, p.workers), p.as_dict()
        assert p.as_dict()["intensity"] == p.intensity
    stats1, lee1 = points[0], points[2]
    assert stats1.intensity < 1  # a few flops per 4-byte sample
    assert lee1.intensity > 10 * stats1.intensity  # the filter: ≈ 5K + 12 more per pixel
    text = roofline.describe(roof, points)
    assert "ridge point" in text and "lee:9, threads ×2" in text


def test_point_from_results_places_a_panel_run(tiny):
    runs = [backends.compute("sequential", tiny, filter="lee:5") for _ in range(3)]
    p = roofline.point_from_results(runs)
    assert (p.kernel, p.backend, p.workers, p.repeats) == ("lee:5", "sequential", 1, 3)
    br = runs[0].meta["block_rows"]
    br = br if isinstance(br, int) else None
    assert p.flops == roofline.count_flops(4, 64, 64, "lee:5", br)
    assert p.compute_s == pytest.approx(float(np.median([r.timings["compute"] for r in runs])))
    with pytest.raises(LabError, match="no results"):
        roofline.point_from_results([])


def test_speedup_vs_k_records_and_bad_input(tiny):
    recs = kernels_k.speedup_vs_k(tiny, ks=(0, 3), backends=("threads", "multiprocessing"),
                                  workers=2, repeat=1)
    assert [(r.backend, r.k, r.workers) for r in recs] == [
        ("threads", 0, 2), ("threads", 3, 2),
        ("multiprocessing/partitioned", 0, 2), ("multiprocessing/partitioned", 3, 2)]
    for r in recs:
        assert r.t1_s > 0 and r.tn_s > 0 and r.repeats == 1
        assert r.speedup == pytest.approx(r.t1_s / r.tn_s)
        assert r.efficiency == pytest.approx(r.speedup / 2)
        assert r.as_dict()["speedup"] == r.speedup
    assert kernels_k.filter_spec(0) is None and kernels_k.filter_spec(9, 16) == "lee:9:16"
    with pytest.raises(LabError, match="valid is"):
        kernels_k.speedup_vs_k(tiny, ks=(4,), backends=("threads",), workers=2, repeat=1)
    with pytest.raises(LabError, match="unknown backend"):
        kernels_k.speedup_vs_k(tiny, ks=(0,), backends=("gpu2",), workers=2, repeat=1)
    with pytest.raises(LabError, match="workers=1"):
        kernels_k.speedup_vs_k(tiny, ks=(0,), backends=("threads",), workers=1, repeat=1)


def test_figures_are_log_log_rooflines_and_k_curves(tiny, roof, tmp_path):
    from labkit.plots.roofline import (
        plot_roofline,
        plot_speedup_k,
        roofline_figure,
        speedup_k_figure,
    )

    point = roofline.KernelPoint("lee:9", "threads", 2, 2e6, 1e5, 1e-3, 2e-3, 3)
    fig = roofline_figure(roof, [point], labels={"x": "intensidad aritmética (flop/byte)"})
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_xlabel() == "intensidad aritmética (flop/byte)"
    texts = [t.get_text() for t in ax.texts]
    assert "lee:9, threads ×2" in texts and any(t.startswith("ridge") for t in texts)
    out = plot_roofline(roof, [point], tmp_path / "roofline.png")
    assert out.read_bytes().startswith(PNG_MAGIC)
    recs = [kernels_k.KSpeedup("threads", k, 2, 1.0, 1.0 / (1 + k / 15), 3) for k in (0, 3, 9)]
    fig = speedup_k_figure(recs)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["none", "3", "9"]
    assert plot_speedup_k(recs, tmp_path / "k.png").read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(LabError, match="no speed-ups"):
        speedup_k_figure([])


def test_spanish_figures_write_numbers_with_a_decimal_comma(roof):
    from labkit.plots.roofline import roofline_figure, speedup_k_figure

    fig = roofline_figure(roof, [], lang="es")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    bw = roof.bandwidth_gbps[1]
    assert any(f"{bw:.3g}".replace(".", ",") in t for t in legend), legend
    assert not any(f"{bw:.3g}" in t for t in legend if "." in f"{bw:.3g}"), legend
    recs = [kernels_k.KSpeedup("threads", k, 2, 1.0, 1.0 / 1.5, 3) for k in (0, 9)]
    fig = speedup_k_figure(recs, lang="es")
    fig.canvas.draw()
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert any("," in t for t in ticks) and not any("." in t for t in ticks), ticks
