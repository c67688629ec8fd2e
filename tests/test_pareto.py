"""Pareto fronts and 2-D hypervolume (theseus_jax.dse.pareto) against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest

from theseus_jax.dse.pareto import hypervolume_2d, pareto_mask


def _brute_front(up, down):
    """O(n^2) reference with the documented definition: a finite point is on the front unless
    another finite point is at least as good in both objectives and strictly better in one."""
    up, down = np.asarray(up, np.float64), np.asarray(down, np.float64)
    ok = np.isfinite(up) & np.isfinite(down)
    mask = np.zeros(up.size, bool)
    for i in range(up.size):
        if not ok[i]:
            continue
        dominated = False
        for j in range(up.size):
            if j == i or not ok[j]:
                continue
            if up[j] >= up[i] and down[j] <= down[i] and (up[j] > up[i] or down[j] < down[i]):
                dominated = True
                break
        mask[i] = not dominated
    return mask


def _brute_hv(up, down, ref_max, ref_min, grid=None):
    """Area of the union of the boxes [ref_max, u] x [d, ref_min] by exact coordinate sweep."""
    pts = [
        (u, d)
        for u, d in zip(up, down, strict=True)
        if np.isfinite(u) and np.isfinite(d) and u > ref_max and d < ref_min
    ]
    xs = sorted({ref_max, *[u for u, _ in pts]})
    area = 0.0
    for x0, x1 in zip(xs[:-1], xs[1:], strict=True):
        # points covering the strip (x0, x1] have u >= x1; the strip spans down to min d
        ds = [d for u, d in pts if u >= x1]
        if ds:
            area += (x1 - x0) * (ref_min - min(ds))
    return area


def _unique_rows(up, down):
    """Drop exact duplicate points (kept: partial ties in one objective)."""
    _, idx = np.unique(np.stack([up, down], axis=1), axis=0, return_index=True)
    idx = np.sort(idx)
    return up[idx], down[idx]


@pytest.mark.parametrize("seed", range(20))
def test_pareto_mask_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # small integer grids give many ties in one objective; a few NaN / inf sprinkled in
    up = rng.integers(0, 8, n).astype(np.float64)
    down = rng.integers(0, 8, n).astype(np.float64)
    up, down = _unique_rows(up, down)
    bad = rng.uniform(size=up.size)
    up[bad < 0.05] = np.nan
    down[(bad >= 0.05) & (bad < 0.1)] = np.nan
    up[(bad >= 0.1) & (bad < 0.12)] = np.inf
    np.testing.assert_array_equal(pareto_mask(up, down), _brute_front(up, down))


@pytest.mark.parametrize("seed", range(5))
def test_pareto_mask_continuous(seed):
    rng = np.random.default_rng(100 + seed)
    up, down = rng.lognormal(size=500), rng.lognormal(size=500)
    m = pareto_mask(up, down)
    np.testing.assert_array_equal(m, _brute_front(up, down))
    # the front is a staircase: sorted by throughput, power increases strictly
    order = np.argsort(up[m])
    assert (np.diff(down[m][order]) > 0).all()


def test_pareto_mask_exact_duplicates_are_both_on_the_front():
    # Regression: exact duplicates of a front point are both on the front.
    up = np.array([1.0, 1.0, 2.0, 0.5])
    down = np.array([1.0, 1.0, 3.0, 2.0])
    np.testing.assert_array_equal(_brute_front(up, down), [True, True, True, False])
    np.testing.assert_array_equal(pareto_mask(up, down), [True, True, True, False])


def test_pareto_mask_hand_examples():
    # maximise the first, minimise the second
    np.testing.assert_array_equal(
        pareto_mask([3, 2, 1, 2.5], [3, 1, 0.5, 3.5]), [True, True, True, False]
    )
    # ties in one objective: equal throughput, higher power is dominated (and vice versa)
    np.testing.assert_array_equal(pareto_mask([2, 2, 1], [1, 2, 1]), [True, False, False])
    # non-finite points never make the front and never dominate
    np.testing.assert_array_equal(
        pareto_mask([np.nan, 1.0, np.inf, 0.5], [0.0, 1.0, 0.0, -np.inf]),
        [False, True, False, False],
    )
    assert pareto_mask([], []).shape == (0,)
    with pytest.raises(ValueError, match="differ in length"):
        pareto_mask([1, 2], [1])


def test_hypervolume_hand_examples():
    # one point: a box
    assert hypervolume_2d([3.0], [1.0], 0.0, 5.0) == pytest.approx(3.0 * 4.0)
    # staircase (2, 2), (1, 1) with reference (0, 3): [0,2]x[2,3] + [0,1]x[1,2] = 2 + 1
    assert hypervolume_2d([2.0, 1.0], [2.0, 1.0], 0.0, 3.0) == pytest.approx(3.0)
    # three steps: (3,3),(2,2),(1,1), ref (0,4): 3*1 + 2*1 + 1*1
    assert hypervolume_2d([3.0, 2.0, 1.0], [3.0, 2.0, 1.0], 0.0, 4.0) == pytest.approx(6.0)
    # a dominated point adds nothing
    assert hypervolume_2d([2.0, 1.0, 1.5], [2.0, 1.0, 2.5], 0.0, 3.0) == pytest.approx(3.0)
    # points beyond the reference are ignored; nothing left -> 0
    assert hypervolume_2d([2.0, -1.0], [5.0, 1.0], 0.0, 3.0) == 0.0
    assert hypervolume_2d([], [], 0.0, 1.0) == 0.0
    # NaN points are ignored
    assert hypervolume_2d([3.0, np.nan], [1.0, 0.0], 0.0, 5.0) == pytest.approx(12.0)
    # order does not matter
    assert hypervolume_2d([1.0, 3.0, 2.0], [1.0, 3.0, 2.0], 0.0, 4.0) == pytest.approx(6.0)


@pytest.mark.parametrize("seed", range(10))
def test_hypervolume_matches_brute_force(seed):
    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(1, 40))
    up = rng.uniform(0, 10, n)
    down = rng.uniform(0, 10, n)
    ref_max, ref_min = 1.0, 9.0
    hv = hypervolume_2d(up, down, ref_max, ref_min)
    assert hv == pytest.approx(_brute_hv(up, down, ref_max, ref_min), rel=1e-12, abs=1e-12)
    # monotone: adding a point never lowers the hypervolume
    up2, down2 = np.append(up, rng.uniform(0, 10)), np.append(down, rng.uniform(0, 10))
    assert hypervolume_2d(up2, down2, ref_max, ref_min) >= hv - 1e-12
