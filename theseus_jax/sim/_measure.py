"""BookSim-style measurement: warm-up, a measurement window, drain; latency, throughput,
saturation (latency threshold or undrained packets)."""

from __future__ import annotations

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._mesh import MeshConfig, run

__all__ = ["measure", "measure_batch", "MeasureSpec"]


class MeasureSpec:
    """Cycle counts of one measurement (BookSim: 3 warm-up sample periods of 1,000 cycles,
    latency threshold 500 cycles). BookSim drains until the measured packets have left; a
    fixed-length scan cannot stop early, so the drain is long (8,000 cycles) and packets
    still undelivered after it are left out of the average, as BookSim's note describes."""

    def __init__(self, warmup=3000, window=3000, drain=8000, latency_threshold=500.0):
        if min(warmup, window, drain) < 0 or window == 0:
            raise ValueError("warmup, window and drain must be >= 0 cycles and window > 0")
        self.warmup, self.window, self.drain = int(warmup), int(window), int(drain)
        self.latency_threshold = float(latency_threshold)

    @property
    def cycles(self) -> int:
        return self.warmup + self.window + self.drain


@partial(jax.jit, static_argnums=(0, 2, 3))
def _sim(cfg: MeshConfig, rate, cycles: int, window: tuple, key):
    return run(cfg, rate, cycles, key=key, window=window)


def _summarise(cfg, spec, s, rate):
    n = cfg.n
    pkts = int(s.win_pkts)
    created = int(s.win_created)
    lat = float(s.win_lat_sum) / max(pkts, 1)
    accepted = float(np.sum(np.asarray(s.acc_flits))) / (n * spec.window)
    # BookSim's criterion: the average latency of the delivered measured packets against
    # the threshold (undelivered packets do not enter the average). The latency including
    # the packets still waiting in source queues is reported beside it.
    q = cfg.queue_cap
    pos = (np.arange(q)[None, :] - np.asarray(s.q_head)[:, None]) % q
    queued = pos < np.asarray(s.q_count)[:, None]
    ct = np.asarray(s.q_ctime)
    w0, w1 = spec.warmup, spec.warmup + spec.window
    waiting = queued & (ct >= w0) & (ct < w1)
    age_sum = float(np.sum(np.where(waiting, int(s.now) - ct, 0)))
    n_wait = int(np.sum(waiting))
    lat_all = (float(s.win_lat_sum) + age_sum) / max(pkts + n_wait, 1)
    stable = pkts > 0 and lat <= spec.latency_threshold and not bool(s.overflow)
    per_src = np.asarray(s.acc_flits) / spec.window
    return {
        "rate": float(rate),
        "avg_latency": lat if pkts else float("nan"),
        "accepted_rate": accepted,
        "per_source_accepted_min": float(per_src.min()),
        "per_source_accepted_max": float(per_src.max()),
        "stable": bool(stable),
        "latency_incl_waiting": lat_all,
        "packets_measured": pkts,
        "packets_created": created,
        "overflow": bool(s.overflow),
        "injected_flits": int(np.sum(np.asarray(s.injected_flits))),
        "ejected_flits": int(np.sum(np.asarray(s.ejected_flits))),
        "in_flight_flits": int(np.sum(np.asarray(s.cnt)))
        + int(np.sum(np.asarray(s.link[..., 0]) > 0))
        + int(np.sum(np.asarray(s.eject[..., 0]) > 0)),
        "queued_flits": int(
            np.sum(np.asarray(s.q_count)) * cfg.packet_size - np.sum(np.asarray(s.inj_sent))
        ),
        "cycles": spec.cycles,
    }


def measure(cfg: MeshConfig, rate: float, *, seed: int = 0, spec: MeasureSpec | None = None):
    """Average packet latency and accepted throughput at one offered load (a dict)."""
    spec = spec or MeasureSpec()
    w = (spec.warmup, spec.warmup + spec.window)
    t = time.perf_counter()
    s = _sim(cfg, jnp.float32(rate), spec.cycles, w, jax.random.PRNGKey(seed))
    jax.block_until_ready(s.now)
    out = _summarise(cfg, spec, s, rate)
    out["wall_s"] = time.perf_counter() - t
    return out


def measure_batch(cfg: MeshConfig, rates, *, seed: int = 0, spec: MeasureSpec | None = None):
    """:func:`measure` at several loads in one vmapped call (one compile)."""
    spec = spec or MeasureSpec()
    w = (spec.warmup, spec.warmup + spec.window)
    rates = jnp.asarray(rates, jnp.float32)
    keys = jax.random.split(jax.random.PRNGKey(seed), rates.shape[0])
    f = jax.jit(jax.vmap(lambda r, k: run(cfg, r, spec.cycles, key=k, window=w)))
    t = time.perf_counter()
    st = f(rates, keys)
    jax.block_until_ready(st.now)
    wall = time.perf_counter() - t
    outs = []
    for i in range(rates.shape[0]):
        si = jax.tree_util.tree_map(lambda x: x[i], st)  # noqa: B023
        o = _summarise(cfg, spec, si, float(rates[i]))
        o["wall_s"] = wall / rates.shape[0]
        outs.append(o)
    return outs
