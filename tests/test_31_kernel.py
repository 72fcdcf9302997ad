"""Layer 3: the fused (Numba) kernel and the NumPy kernel are bitwise identical."""

from __future__ import annotations

import numpy as np
import pytest

from labkit import stats


def _stack(n=6, rows=37, cols=53, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.0, 1.0, (n, rows, cols)).astype(np.float32)
    x[:, :3] *= 1e4                       # PS-like: mean >> std
    x[:, :3] += rng.normal(0, 1, (n, 3, cols)).astype(np.float32)
    x[:, :, -4:] = np.nan                 # zero-filled edge -> NaN in every date
    x[2, 10, 10] = np.nan                 # one missing date
    x[:, 20, 20] = 7.0                    # constant pixel
    return x


@pytest.mark.parametrize("ddof", [0, 1])
def test_numba_equals_numpy_bitwise(monkeypatch, ddof):
    x = _stack()
    monkeypatch.setenv("LABKIT_KERNEL", "numba")
    assert stats.kernel_name(x) == "numba"
    fused = stats.reduce_stack(x, ddof=ddof)
    monkeypatch.setenv("LABKIT_KERNEL", "numpy")
    assert stats.kernel_name(x) == "numpy"
    plain = stats.reduce_stack(x, ddof=ddof)
    for a, b in zip(fused, plain, strict=True):
        assert a.dtype == np.float32
        assert np.array_equal(a, b, equal_nan=True)
    mean, std = fused
    assert std[20, 20] == 0.0 and mean[20, 20] == 7.0
    assert np.isnan(mean[10, 10]) and np.isnan(std[:, -1]).all()


def test_fused_kernel_matches_float64_reference():
    x = _stack(n=24, rows=64, cols=64, seed=3)
    mean, std = stats.reduce_stack(x)
    ref_mean, ref_std = stats.reference(x)
    ok = ~np.isnan(ref_mean)
    assert np.array_equal(ok, ~np.isnan(mean))
    assert np.max(np.abs(mean[ok] - ref_mean[ok]) / np.abs(ref_mean[ok])) < 1e-6
    nz = ok & (ref_std > 0)
    assert np.max(np.abs(std[nz] - ref_std[nz]) / ref_std[nz]) < 1e-6


def test_nan_aware_and_lists_use_numpy():
    x = _stack()
    assert stats.kernel_name(x, min_count=2) == "numpy"
    assert stats.kernel_name(list(x)) == "numpy"
