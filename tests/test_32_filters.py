"""Layer 32: the Lee speckle filter — definition, NaN rules, borders, split invariance.

The NumPy reference is checked against an independent float64 computation (sliding
windows over a reflect-padded image); the fused kernel must equal the reference bit for
bit; any cut of the image into row blocks with halos must give the whole image's bits.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from labkit.errors import LabError
from labkit.filters import LeeFilter, halo_rows, lee, lee_reference, parse_filter, reflect_index


def independent(img: np.ndarray, k: int, enl: float) -> np.ndarray:
    """Float64 Lee filter written another way: pad, window means, formula."""
    h = k // 2
    p = np.pad(img.astype(np.float64), h, mode="symmetric")  # = scipy's "reflect"
    win = sliding_window_view(p, (k, k))
    m = win.mean(axis=(2, 3))
    q = (win * win).mean(axis=(2, 3))
    s2 = 1.0 / enl
    var_y = np.maximum(q - m**2, 1e-10)
    var_x = np.maximum((var_y - m**2 * s2) / (1 + s2), 0.0)
    out = m + (img - m) * var_x / var_y
    out[np.isnan(win).any(axis=(2, 3))] = np.nan
    return out


def speckle(rows: int, cols: int, seed: int = 0, looks: int = 16) -> np.ndarray:
    """Gamma speckle over a smooth scene, with bright persistent-scatterer pixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    scene = 0.05 + 0.5 * (np.sin(x / 7.0) + 1) * (y > rows // 3)
    img = scene * rng.gamma(looks, 1.0 / looks, (rows, cols))
    img[rows // 2, cols // 2] = 80.0  # a PS pixel
    img[1, -2] = 40.0  # another, near a border
    return img.astype(np.float32)


@pytest.mark.parametrize("spec, want", [
    ("lee:7", LeeFilter(7)), ("LEE:3", LeeFilter(3)), ("lee:31:4.5", LeeFilter(31, 4.5)),
    ("none", None), ("", None), (None, None),
])
def test_parse_good_specs(spec, want):
    assert parse_filter(spec) == want


@pytest.mark.parametrize("spec", ["lee:4", "lee:0", "lee:1", "lee:33", "lee:x", "gauss:3",
                                  "lee:5:0", "lee:5:-2", "lee:5:nan", "lee:5:inf", "lee",
                                  "lee:5:16:1"])
def test_parse_bad_specs_say_what_is_valid(spec):
    with pytest.raises(LabError, match=r"K odd, 3\.\.31, and ENL > 0") as err:
        parse_filter(spec)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("size, pad", [(5, 2), (5, 7), (1, 3), (2, 9)])
def test_reflect_index_is_numpys_symmetric_pad(size, pad):
    a = np.arange(size)
    idx = reflect_index(np.arange(-pad, size + pad), size)
    assert np.array_equal(a[idx], np.pad(a, pad, mode="symmetric"))


@pytest.mark.parametrize("k, enl", [(3, 16.0), (7, 4.0), (9, 16.0), (15, 1.0)])
def test_reference_matches_an_independent_float64_computation(k, enl):
    img = speckle(40, 37, seed=k)
    img[5, 6] = np.nan
    img[-1, 0] = np.nan  # at a corner
    got = lee_reference(img, k, enl)
    want = independent(img, k, enl)
    assert got.dtype == np.float32 and got.shape == img.shape
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.max(np.abs(got[ok] - want[ok]) / np.abs(want[ok])) < 1e-5
    h = k // 2  # NaN spreads over exactly its window
    assert np.isnan(got[5 - h:5 + h + 1, 6 - h:6 + h + 1]).all()


def test_constant_image_is_unchanged_and_speckle_is_reduced():
    flat = np.full((20, 20), 3.5, np.float32)
    assert np.array_equal(lee_reference(flat, 5, 16.0), flat)
    rng = np.random.default_rng(1)
    img = rng.gamma(4, 1 / 4, (64, 64)).astype(np.float32)  # 4-look speckle, CV 1/2
    img[32, 32] = 80.0  # a persistent scatterer
    out = lee(img, 7, 4.0)
    calm = slice(5, 25), slice(5, 60)
    assert out[calm].std() / out[calm].mean() < 0.5 * img[calm].std() / img[calm].mean()
    assert out[32, 32] > 40  # the PS pixel is kept (var_x ≈ var_y there)


@pytest.mark.parametrize("k", [3, 5, 9, 15])
def test_fused_kernel_equals_the_reference_bit_for_bit(k):
    pytest.importorskip("numba")
    img = speckle(70, 53, seed=k)
    img[10:12, 20] = np.nan
    img[0, 0] = np.nan
    assert np.array_equal(lee(img, k, 16.0, kernel="numba"), lee_reference(img, k, 16.0),
                          equal_nan=True)


@pytest.mark.parametrize("kernel", ["numpy", "numba"])
@pytest.mark.parametrize("k, cuts", [(3, [1, 2, 7, 30]), (9, [4, 5, 13, 31]),
                                     (15, [3, 11, 29]), (7, [1, 1, 1, 1, 40])])
def test_any_row_split_with_halos_gives_the_whole_image_bits(kernel, k, cuts):
    if kernel == "numba":
        pytest.importorskip("numba")
    img = speckle(44, 29, seed=3)
    img[20, 3] = np.nan
    whole = lee(img, k, 9.0, kernel=kernel)
    starts = np.cumsum([0, *cuts])
    starts = starts[starts < img.shape[0]]
    parts = []
    for r0, r1 in zip(starts, [*starts[1:], img.shape[0]], strict=True):
        lo, hi, index = halo_rows(int(r0), int(r1 - r0), img.shape[0], k)
        parts.append(lee(img[lo:hi], k, 9.0, index, kernel=kernel))
    assert np.array_equal(np.concatenate(parts), whole, equal_nan=True)


def test_images_smaller_than_the_window_reflect_like_scipy():
    img = speckle(3, 4, seed=1)
    got = lee_reference(img, 9, 16.0)
    assert np.allclose(got, independent(img, 9, 16.0), rtol=1e-5)
    scipy = pytest.importorskip("scipy.ndimage")
    m = scipy.uniform_filter(img.astype(np.float64), 9, mode="reflect")
    q = scipy.uniform_filter(img.astype(np.float64) ** 2, 9, mode="reflect")
    var_y = np.maximum(q - m**2, 1e-10)
    var_x = np.maximum((var_y - m**2 / 16) / (1 + 1 / 16), 0)
    assert np.allclose(got, m + (img - m) * var_x / var_y, rtol=1e-5)


def test_flops_per_pixel_counts_the_halo():
    f = LeeFilter(9)
    assert f.halo == 4 and f.spec == "lee:9" and LeeFilter(9, 16).spec == "lee:9:16"
    assert f.flops_per_pixel(1024) == pytest.approx(3 * 9 * 1032 / 1024 + 18 + 12)
