"""Pareto fronts and 2-D hypervolume (host side, numpy)."""

from __future__ import annotations

import numpy as np

__all__ = ["pareto_mask", "hypervolume_2d"]


def pareto_mask(maximize, minimize) -> np.ndarray:
    """Non-dominated points of (maximise ``maximize``, minimise ``minimize``).

    A point is dominated if another is at least as good in both objectives and strictly
    better in one. O(n log n): sort by the maximised objective (descending, ties by the
    minimised one ascending) and keep points whose minimised value beats every earlier one.
    NaN or inf points are never on the front.
    """
    up = np.asarray(maximize, dtype=np.float64).reshape(-1)
    down = np.asarray(minimize, dtype=np.float64).reshape(-1)
    if up.shape != down.shape:
        raise ValueError(f"objectives differ in length: {up.shape} vs {down.shape}")
    ok = np.isfinite(up) & np.isfinite(down)
    order = np.lexsort((down, -up))
    mask = np.zeros(up.size, bool)
    best, best_up = np.inf, np.nan
    for i in order:
        if not ok[i]:
            continue
        if down[i] < best:
            mask[i] = True
            best, best_up = down[i], up[i]
        elif down[i] == best and up[i] == best_up:  # an exact duplicate of a front point
            mask[i] = True
    return mask


def hypervolume_2d(maximize, minimize, ref_max: float, ref_min: float) -> float:
    """Area dominated by the points and bounded by the reference point
    (``ref_max`` below every useful throughput, ``ref_min`` above every useful power)."""
    up = np.asarray(maximize, np.float64).reshape(-1)
    down = np.asarray(minimize, np.float64).reshape(-1)
    m = pareto_mask(up, down) & (up > ref_max) & (down < ref_min)
    pts = sorted(zip(up[m], down[m], strict=False), key=lambda p: -p[0])
    hv, prev_down = 0.0, ref_min
    for u, d in pts:
        hv += (u - ref_max) * (prev_down - d)
        prev_down = d
    return float(hv)
