"""Channel-load bound of XY routing: the offered load (flits/node/cycle) at which the
busiest channel is fully used (Dally & Towles, sec. 3.3)."""

from __future__ import annotations

import jax
import numpy as np

from ._config import MeshConfig, destinations

__all__ = ["channel_load_bound"]


def _path_loads(kx, ky, src, dst, weight, loads_x, loads_y):
    for s, d, w in zip(src, dst, weight, strict=True):
        x, y, dx, dy = s % kx, s // kx, d % kx, d // kx
        step = 1 if dx > x else -1
        for c in range(x, dx, step):  # X first
            loads_x[(y, c, step)] = loads_x.get((y, c, step), 0.0) + w
        step = 1 if dy > y else -1
        for c in range(y, dy, step):
            loads_y[(dx, c, step)] = loads_y.get((dx, c, step), 0.0) + w


def channel_load_bound(cfg: MeshConfig) -> float:
    """Offered load at which the most loaded channel carries one flit per cycle."""
    kx, ky, n = cfg.kx, cfg.ky, cfg.n
    if cfg.pattern in ("uniform", "hotspot"):
        # uniform over all nodes: the middle channel of a row carries (kx/2)^2 / kx per
        # unit load from each of the ky rows' ... closed form: max over rows/cols of
        # (k/2)(k/2)/k = k/4 flows-worth of load -> bound 4/k (k even)
        k = max(kx, ky)
        load = (k // 2) * ((k + 1) // 2) / k
        bound = 1.0 / load
        if cfg.pattern == "hotspot":
            # the ejection channel of node 0 receives hot * n flits per unit load
            bound = min(bound / (1.0 - cfg.hotspot_frac), 1.0 / (cfg.hotspot_frac * n))
        return float(bound)
    src = np.arange(n)
    dst = np.asarray(destinations(cfg, jax.random.PRNGKey(0), src))
    loads_x, loads_y = {}, {}
    _path_loads(kx, ky, src, dst, np.ones(n), loads_x, loads_y)
    worst = max(list(loads_x.values()) + list(loads_y.values()) + [1.0])
    return float(1.0 / worst)
