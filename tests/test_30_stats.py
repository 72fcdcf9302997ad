"""Layer 3: the reduction kernel (labkit.stats) — reference, block independence, merges."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from labkit import stats
from labkit.errors import LabError


def sar_stack(n=6, rows=33, cols=41, seed=0):
    """Speckle-like intensities with PS pixels (mean ≫ std), NaN edges, constant pixels."""
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.0, 1.0, (n, rows, cols)).astype(np.float32)
    x[:, 2:5, 5:9] = (5e3 + rng.normal(0, 0.5, (n, 3, 4))).astype(np.float32)  # PS-like
    x[:, :, :2] = np.nan                    # zero-filled edge: NaN in every date
    x[3, 10, 10] = np.nan                   # one missing date
    x[:, 7, 7] = 3.25                       # constant pixel
    x[:, 8, 8] = 1e6                        # constant, large
    return x


def assert_same_nan(a, b):
    assert np.array_equal(np.isnan(a), np.isnan(b))


def assert_close_to_reference(got, ref, rtol=1e-6):
    """float32 result within ``rtol`` (relative) of the float64 reference, same NaNs."""
    assert_same_nan(got, ref)
    ok = ~np.isnan(ref)
    g, r = got[ok].astype(np.float64), ref[ok]
    assert np.all(np.abs(g - r) <= rtol * np.abs(r) + 1e-30), np.max(np.abs(g - r))


def assert_within_ulp(a, b, ulps=1):
    """float32 arrays equal within ``ulps`` units in the last place, same NaNs."""
    assert_same_nan(a, b)
    ok = ~np.isnan(a)
    x, y = a[ok], b[ok]
    tol = ulps * np.spacing(np.maximum(np.abs(x), np.abs(y)).astype(np.float32))
    assert np.all(np.abs(x.astype(np.float64) - y) <= tol), np.max(np.abs(x - y))


def merged(x, cuts, ddof=0, min_count=None):
    """Accumulate date chunks ``x[cuts[i]:cuts[i+1]]`` separately, merge in order."""
    total = None
    edges = [0, *cuts, len(x)]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if a == b:
            continue
        acc = stats.Accumulator(x.shape[1:], nan_aware=min_count is not None)
        for k in range(a, b):
            acc.add(x[k])
        part = acc.partial()
        total = part if total is None else stats.merge(total, part)
    return stats.finalize(total, ddof, min_count)


@pytest.mark.parametrize("ddof", [0, 1])
def test_reduce_matches_reference(ddof):
    x = sar_stack()
    mean, std = stats.reduce_stack(x, ddof=ddof)
    assert mean.dtype == std.dtype == np.float32
    ref_mean, ref_std = stats.reference(x, ddof=ddof)
    assert_close_to_reference(mean, ref_mean)
    assert_close_to_reference(std, ref_std)


def test_ddof_one_is_sample_std():
    x = sar_stack(n=5)
    _, s0 = stats.reduce_stack(x, ddof=0)
    _, s1 = stats.reduce_stack(x, ddof=1)
    ok = ~np.isnan(s0)
    np.testing.assert_allclose(s1[ok], s0[ok] * np.sqrt(5 / 4), rtol=1e-6)
    with pytest.raises(LabError, match="ddof=5"):
        stats.reduce_stack(x, ddof=5)


@pytest.mark.parametrize("as_list", [False, True])
def test_block_size_independence_bitwise(as_list):
    x = sar_stack()
    stack = list(x) if as_list else x
    whole = stats.reduce_stack(stack, block_rows=x.shape[1])
    for br in (1, 2, 7, 16):
        got = stats.reduce_stack(stack, block_rows=br)
        for a, b in zip(got, whole, strict=True):
            assert np.array_equal(a, b, equal_nan=True)


def test_row_split_bitwise():
    x = sar_stack()
    whole = stats.reduce_stack(x)
    for cut in (1, 9, 20):
        top = stats.reduce_stack(np.ascontiguousarray(x[:, :cut]))
        bottom = stats.reduce_stack(x[:, cut:])  # a strided view, as mem's workers see it
        for a, t, b in zip(whole, top, bottom, strict=True):
            assert np.array_equal(a, np.concatenate([t, b]), equal_nan=True)


def test_list_and_array_paths_agree_bitwise():
    x = sar_stack()
    for ddof in (0, 1):
        plain = stats.reduce_stack(list(x), ddof=ddof)
        for a, b in zip(stats.reduce_stack(x, ddof=ddof), plain, strict=True):
            assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("cuts", [[1], [3], [5], [2, 4], [1, 2, 3, 4, 5]])
@pytest.mark.parametrize("ddof", [0, 1])
def test_merge_of_date_splits_within_one_ulp(cuts, ddof):
    x = sar_stack(n=6)
    seq = stats.reduce_stack(x, ddof=ddof)
    for a, b in zip(merged(x, cuts, ddof), seq, strict=True):
        assert_within_ulp(a, b)


def test_single_chunk_accumulator_is_bitwise():
    x = sar_stack()
    for a, b in zip(merged(x, []), stats.reduce_stack(x), strict=True):
        assert np.array_equal(a, b, equal_nan=True)


def test_strict_nan():
    x = sar_stack()
    mean, std = stats.reduce_stack(x)
    assert np.isnan(mean[10, 10]) and np.isnan(std[10, 10])  # one date missing
    assert np.isnan(mean[:, :2]).all() and np.isnan(std[:, :2]).all()
    assert np.isfinite(mean[:, 2:]).sum() == mean[:, 2:].size - 1


def test_min_count_is_nan_aware():
    x = sar_stack(n=6)
    x[:4, 12, 12] = np.nan  # 2 valid dates left
    mean, std = stats.reduce_stack(x, min_count=3)
    ref_mean, ref_std = stats.reference(x, min_count=3)
    assert_close_to_reference(mean, ref_mean)
    assert_close_to_reference(std, ref_std)
    assert np.isfinite(mean[10, 10]) and np.isnan(mean[12, 12])
    mean2, _ = stats.reduce_stack(x, min_count=2)
    np.testing.assert_allclose(mean2[12, 12], np.nanmean(x[:, 12, 12]), rtol=1e-6)
    # NaN-aware partials merge too
    for a, b in zip(merged(x, [2, 5], min_count=3), (mean, std), strict=True):
        assert_within_ulp(a, b)


def test_constant_pixels_have_exactly_zero_std():
    x = sar_stack()
    for ddof in (0, 1):
        mean, std = stats.reduce_stack(x, ddof=ddof)
        assert std[7, 7] == 0.0 and std[8, 8] == 0.0
        assert mean[7, 7] == np.float32(3.25) and mean[8, 8] == np.float32(1e6)
        m, s = merged(x, [2, 3], ddof)
        assert s[7, 7] == 0.0 and s[8, 8] == 0.0 and m[8, 8] == np.float32(1e6)


def test_persistent_scatterers_keep_precision():
    """mean ≫ std: the shifted sums keep std accurate where naive Σx² would not."""
    rng = np.random.default_rng(1)
    x = (1e4 + rng.normal(0, 0.01, (12, 8, 8))).astype(np.float32)
    _, std = stats.reduce_stack(x)
    _, ref = stats.reference(x)
    assert_close_to_reference(std, ref)


# ---- property tests -------------------------------------------------------------------

_values = st.floats(0.0, 1e4, width=32, allow_nan=False)


@st.composite
def stacks(draw):
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    x = draw(hnp.arrays(np.float32, shape, elements=_values))
    nan = draw(hnp.arrays(np.bool_, shape, elements=st.booleans()))
    if draw(st.booleans()):
        x[nan & (draw(st.integers(0, 3)) == 0)] = np.nan
    return x


_settings = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(stacks(), st.integers(1, 10))
def test_property_block_rows_bitwise(x, br):
    whole = stats.reduce_stack(x)
    for a, b in zip(stats.reduce_stack(list(x), block_rows=br), whole, strict=True):
        assert np.array_equal(a, b, equal_nan=True)


@_settings
@given(stacks())
def test_property_matches_reference(x):
    mean, std = stats.reduce_stack(x)
    ref_mean, ref_std = stats.reference(x)
    assert_close_to_reference(mean, ref_mean)
    assert_close_to_reference(std, ref_std)


@_settings
@given(stacks(), st.data())
def test_property_date_split_within_one_ulp(x, data):
    n = len(x)
    cuts = sorted(data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=3)))
    ddof = data.draw(st.integers(0, n - 1))
    min_count = data.draw(st.one_of(st.none(), st.integers(1, n)))
    seq = stats.reduce_stack(x, ddof=ddof, min_count=min_count)
    got = merged(x, [c for c in cuts if 0 < c < n], ddof, min_count)
    for a, b in zip(got, seq, strict=True):
        assert_within_ulp(a, b)


def test_one_shot_kernel_only_chooses(monkeypatch):
    """The choice is returned (the run passes it to its workers), not put in os.environ."""
    monkeypatch.delenv("LABKIT_KERNEL", raising=False)
    before = dict(os.environ)
    assert stats.one_shot_kernel(10) in ("numba", "numpy")
    assert dict(os.environ) == before
    x = np.random.default_rng(1).gamma(1.0, 1.0, (4, 5, 6)).astype(np.float32)
    a = stats.reduce_stack(x, kernel="numpy")
    b = stats.reduce_stack(x, kernel="numba")
    assert all(np.array_equal(p, q, equal_nan=True) for p, q in zip(a, b, strict=True))
