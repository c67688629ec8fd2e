"""Pareto fronts and exact hypervolumes (host side, numpy).

Two conventions live here: :func:`pareto_mask` / :func:`hypervolume_2d` take one maximised
and one minimised objective (throughput, power); :func:`nondominated_mask`,
:func:`hypervolume_3d` and :func:`hypervolume` take an ``(n, m)`` array in which *every*
objective is minimised (negate maximised ones, and their reference values).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "pareto_mask",
    "hypervolume_2d",
    "nondominated_mask",
    "hypervolume_3d",
    "hypervolume",
]


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


# ---------------------------------------------------------------------------------------
# Minimisation convention, any number of objectives
# ---------------------------------------------------------------------------------------


def _as_points(points_min, ref=None) -> tuple[np.ndarray, np.ndarray | None]:
    pts = np.asarray(points_min, dtype=np.float64)
    if pts.size == 0 and ref is not None:
        pts = pts.reshape(0, np.size(ref))
    if pts.ndim != 2:
        raise ValueError(
            f"points must have shape (n, m) (one row per point, minimised objectives), "
            f"got {pts.shape}"
        )
    if ref is None:
        return pts, None
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    if r.shape[0] != pts.shape[1]:
        raise ValueError(
            f"reference point has {r.shape[0]} coordinates but points have {pts.shape[1]} "
            "objectives; pass one reference value per objective"
        )
    if not np.all(np.isfinite(r)):
        raise ValueError(f"reference point must be finite, got {r}")
    return pts, r


def nondominated_mask(points_min) -> np.ndarray:
    """Non-dominated rows of ``points_min`` ``(n, m)``, every objective minimised.

    Row ``i`` is dominated if some row ``j`` is ``<=`` in every objective and ``<`` in one.
    Exact duplicates of a front point are all kept (as in :func:`pareto_mask`); rows with a
    NaN or inf are never on the front. O(n^2 m) memory-light loop over rows; meant for the
    few thousand points of a DSE run.

    Args:
        points_min: ``(n, m)`` objective values, smaller is better.

    Returns:
        Boolean mask ``(n,)``.

    Examples:
        >>> nondominated_mask([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0]]).tolist()
        [True, True, False]
    """
    pts, _ = _as_points(points_min)
    n = pts.shape[0]
    ok = np.all(np.isfinite(pts), axis=1)
    mask = ok.copy()
    for i in range(n):
        if not ok[i]:
            continue
        le = np.all(pts[ok] <= pts[i], axis=1)
        lt = np.any(pts[ok] < pts[i], axis=1)
        mask[i] = not np.any(le & lt)
    return mask


def _hv2_min(x: np.ndarray, y: np.ndarray, rx: float, ry: float) -> float:
    """Exact 2-D hypervolume (both minimised) of points already inside the reference box."""
    if x.size == 0:
        return 0.0
    order = np.lexsort((y, x))  # x ascending, ties by y ascending
    xs, ys = x[order], y[order]
    prev_min = np.minimum.accumulate(np.concatenate([[np.inf], ys[:-1]]))
    keep = ys < prev_min  # strictly better y than every point with smaller-or-equal x
    xs, ys = xs[keep], ys[keep]
    widths = np.diff(np.concatenate([xs, [rx]]))
    return float(np.sum(widths * (ry - ys)))


def hypervolume_3d(points_min, ref) -> float:
    """Exact hypervolume of three minimised objectives with respect to ``ref``.

    The dominated region is the union of boxes :math:`[p_i, r]`. Sweeping along the third
    objective, the slab between consecutive distinct values :math:`z_k < z_{k+1}` (the last
    slab ends at :math:`r_3`) has the 2-D cross-section dominated by the points with
    :math:`z \\le z_k`:

    .. math::

        HV = \\sum_k (z_{k+1} - z_k)\\, HV_2(\\{(p_1, p_2) : p_3 \\le z_k\\}; (r_1, r_2))

    Each slice is an exact O(n log n) 2-D staircase, so the total is O(n^2 log n); fine for a
    few thousand points. Points not strictly better than ``ref`` in every objective add
    nothing; dominated points and duplicates add nothing; NaN/inf rows are ignored.

    Args:
        points_min: ``(n, 3)`` objective values, smaller is better (negate maximised ones).
        ref: ``(3,)`` reference point (worse than every point of interest).

    Returns:
        The hypervolume (product of the objectives' units).

    Examples:
        >>> hypervolume_3d([[0.0, 0.0, 0.0]], [1.0, 2.0, 3.0])
        6.0
        >>> hypervolume_3d([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]], [1.0, 1.0, 1.0])   # dominated
        1.0

    References:
        The dimension-sweep approach of While, Hingston, Barone & Huband, "A faster algorithm
        for calculating hypervolume", IEEE TEC 10(1), 2006 (HSO), specialised to 3-D.
    """
    pts, r = _as_points(points_min, ref)
    if pts.shape[1] != 3:
        raise ValueError(f"hypervolume_3d needs 3 objectives, got {pts.shape[1]}; see hypervolume")
    ok = np.all(np.isfinite(pts), axis=1) & np.all(pts < r, axis=1)
    pts = pts[ok]
    if pts.shape[0] == 0:
        return 0.0
    pts = pts[np.argsort(pts[:, 2], kind="stable")]
    z = pts[:, 2]
    levels = np.unique(z)
    bounds = np.concatenate([levels[1:], [r[2]]])
    hv = 0.0
    for zk, znext in zip(levels, bounds, strict=True):
        n_in = int(np.searchsorted(z, zk, side="right"))
        hv += (znext - zk) * _hv2_min(pts[:n_in, 0], pts[:n_in, 1], r[0], r[1])
    return float(hv)


def hypervolume(points_min, ref) -> float:
    """Exact hypervolume of 1, 2 or 3 minimised objectives with respect to ``ref``.

    Every objective is minimised (negate a maximised one and its reference value, e.g.
    ``[-tokens_per_s, power_w]`` with ``ref = [-min_tokens_per_s, max_power_w]``). For two
    objectives this equals ``hypervolume_2d(-p[:, 0], p[:, 1], -ref[0], ref[1])``.

    Args:
        points_min: ``(n, m)`` with ``m`` in ``{1, 2, 3}``.
        ref: ``(m,)`` reference point.

    Returns:
        The hypervolume (0.0 when no point is strictly better than ``ref`` everywhere).

    Examples:
        >>> hypervolume([[0.0, 1.0], [1.0, 0.0]], [2.0, 2.0])
        3.0
    """
    pts, r = _as_points(points_min, ref)
    m = pts.shape[1]
    ok = np.all(np.isfinite(pts), axis=1) & np.all(pts < r, axis=1)
    pts = pts[ok]
    if m == 1:
        return float(r[0] - pts[:, 0].min()) if pts.shape[0] else 0.0
    if m == 2:
        return _hv2_min(pts[:, 0], pts[:, 1], r[0], r[1])
    if m == 3:
        return hypervolume_3d(pts, r)
    raise ValueError(
        f"hypervolume: exact computation is implemented for 1-3 objectives, got {m}; "
        "reduce the objectives (e.g. a scalarisation) or use a Monte-Carlo estimate"
    )
