r"""Simulation windows of F1: small meshes of the cycle-level simulator that stand for one
class of on-wafer traffic each, run at steady state, and the measurements taken on them.

* the **GEMM window** (``8 x 4`` routers, neighbour streams): a GEMM's row multicast /
  column reduction, hop by hop, one stream per link; simulated at the streams' offered
  loads, giving a curve of contention wait and accepted / generated flits over load
  (:func:`gemm_window`), on which cores pace each stream (:func:`pace`);
* the **all-to-all window** (``8 x 8``, uniform traffic beyond saturation): the attention
  redistribution's share of the channel-load bound (:func:`a2a_window`);
* the **reticle window** (the wafer's reticle array, at most ``16 x 16`` routers, every link
  a reticle crossing, neighbour traffic beyond saturation): bulk pipeline / data-parallel
  transfers (:func:`reticle_window`).

Routers match the technology's per-hop delay (``link_pipe = round(router + link delay)``,
credits over the same wire), the design's virtual channels, buffer depth and packets of 512
payload bits (``ceil(512 / link width)`` flits, 1 to 8); a window whose region spans
reticles has crossing links of period ``round(1 / d2d_bw_ratio)``. Runs are chunked
(``CHUNK`` cycles per compiled step) so that any length reuses one compiled simulator; the
compiled chunks live in an :class:`F1Cache` the caller owns.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..cost.noc import MAX_PACKET_FLITS, PACKET_PAYLOAD_BITS
from ..sim import MeshConfig, make_mesh_sim, run

__all__ = [
    "F1Cache",
    "NetParams",
    "Measured",
    "simulate_loads",
    "window_cycles",
    "core_window_configs",
    "reticle_config",
    "gemm_plan",
    "gemm_window",
    "a2a_window",
    "reticle_window",
    "pace",
]

WINDOW_K = 8  # core-level window side (routers)
GEMM_ROWS = 4  # rows of the GEMM (neighbour-stream) window
RETICLE_CAP = 16  # reticle-level mesh at most 16 x 16 routers
RHO_LOW = 0.05  # "zero-load" reference utilisation
STABLE_FRAC = 0.97  # accepted / generated above this (and no queue overflow): sustained
PACE_FRAC = 0.9  # unsustainable loads are paced at this share of saturation
N_SLOTS = 4  # GEMM-window loads simulated per design (besides low load and saturation)


class NetParams(NamedTuple):
    """The design's network parameters the windows are built from (host floats)."""

    n_vcs: float
    buffer_depth: float
    link_bits: float
    d2d_bw_ratio: float
    crosses: float  # > 0: the stage region spans reticles (its rows cross them)
    reticle_rows: float
    reticle_cols: float

    @staticmethod
    def of(design, crosses) -> NetParams:
        f = lambda x: float(np.asarray(x))  # noqa: E731
        return NetParams(
            f(design.n_vcs),
            f(design.buffer_depth),
            f(design.link_bits_per_cycle),
            f(design.d2d_bw_ratio),
            f(crosses),
            f(design.reticle_rows),
            f(design.reticle_cols),
        )


class F1Cache:
    """What F1 compiles, kept by the caller that wants it reused (nothing is cached at
    module level): the compiled simulator chunks (least recently used first, at most
    ``max_simulators``; every XLA CPU executable holds thousands of memory mappings, and a
    long exploration compiles a few per design, which would exhaust the kernel's per-process
    map limit, ``vm.max_map_count``).

    Pass one to :func:`~theseus_jax.fidelity.evaluate_f1` to share compilations across
    calls; without one each call compiles what it needs.
    """

    def __init__(self, max_simulators: int = 12):
        if max_simulators < 1:
            raise ValueError(f"max_simulators must be >= 1, got {max_simulators}")
        self.max_simulators = int(max_simulators)
        self.simulators: OrderedDict = OrderedDict()


class Counter:
    """What the simulations of one evaluation cost (and the cache they compile into)."""

    def __init__(self, cache: F1Cache | None = None):
        self.cache = cache if cache is not None else F1Cache()
        self.sim_cycles = 0
        self.router_cycles = 0
        self.compile_s = 0.0
        self.sim_s = 0.0
        self.n_runs = 0
        self.n_compiles = 0


CHUNK = 400  # cycles per compiled simulation step; runs of any length reuse one compile
BULK_CYCLES = (400, 800, 400)  # warm-up, window, drain of saturation (bulk) measurements


def _chunk_runner(cfg: MeshConfig, k: int, ctr: Counter):
    """``(state, rates, keys, w0, w1) -> state`` advancing ``k`` runs by ``CHUNK`` cycles,
    compiled once per (config, batch size)."""
    key = (cfg, k, CHUNK)
    sims = ctr.cache.simulators
    hit = sims.get(key)
    if hit is not None:
        sims.move_to_end(key)
    else:
        t = time.perf_counter()
        init = make_mesh_sim(cfg)[0]
        s0 = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (k,) + x.shape), init())
        f = jax.jit(
            jax.vmap(
                lambda s, r, kk, w0, w1: run(cfg, r, CHUNK, key=kk, window=(w0, w1), state=s),
                in_axes=(0, 0, 0, None, None),
            )
        )
        keys = jax.random.split(jax.random.PRNGKey(0), k)
        fn = f.lower(s0, jnp.zeros(k, jnp.float32), keys, jnp.int32(0), jnp.int32(1)).compile()
        hit = (fn, s0)
        sims[key] = hit
        while len(sims) > ctr.cache.max_simulators:
            sims.popitem(last=False)
        ctr.compile_s += time.perf_counter() - t
        ctr.n_compiles += 1
    return hit


def round_chunk(c: float) -> int:
    return int(CHUNK * max(1, math.ceil(float(c) / CHUNK)))


def window_cycles(service: float, load: float, max_cycles: int) -> tuple[int, int, int]:
    """Warm-up, measurement window and drain (cycles) for a queue of deterministic service
    ``service`` cycles at utilisation ``load``: a few relaxation times ``s / (1 - u)^2`` so
    the wait is measured at steady state, at least ``BULK_CYCLES``, at most ``max_cycles``."""
    u = min(max(float(load), 0.0), 0.95)
    relax = max(float(service), 1.0) / (1.0 - u) ** 2
    warm = max(BULK_CYCLES[0], relax)
    win = max(BULK_CYCLES[1], 2.0 * relax)
    drain = max(BULK_CYCLES[2], 4.0 * max(float(service), 1.0) / (1.0 - u))
    total = warm + win + drain
    if total > max_cycles:
        scale = max_cycles / total
        warm, win, drain = warm * scale, win * scale, drain * scale
    warm, win, drain = round_chunk(warm), round_chunk(win), round_chunk(drain)
    return warm, win, drain


class Measured(NamedTuple):
    """One batch of simulation runs, one entry per offered load.

    Attributes:
        accepted: mean flits/cycle per source delivered during the measurement window.
        latency: mean latency (cycles) of the packets created in the window and delivered
            (NaN if none).
        generated: flits/cycle per source that entered the source queues during the window
            (the Bernoulli draw of the offered load; arrivals to a full queue are dropped).
        overflow: a source queue filled up (the load is beyond what the network sustains).
    """

    accepted: np.ndarray
    latency: np.ndarray
    generated: np.ndarray
    overflow: np.ndarray


def simulate_loads(cfg: MeshConfig, rates, *, cycles=BULK_CYCLES, seed=0, ctr=None):
    """Simulate ``cfg`` at each offered load (flits/node/cycle) in one vmapped batch.

    ``cycles = (warm-up, window, drain)``, each rounded up to whole ``CHUNK`` s. Returns
    :class:`Measured` arrays, one entry per load.
    """
    ctr = ctr or Counter()
    rates = np.asarray(rates, np.float32)
    k = int(rates.shape[0])
    warm, win, drain = (round_chunk(c) for c in cycles)
    total = warm + win + drain
    fn, s = _chunk_runner(cfg, k, ctr)
    base = jax.random.PRNGKey(seed)
    r = jnp.asarray(rates)
    w0, w1 = jnp.int32(warm), jnp.int32(warm + win)
    t = time.perf_counter()
    gen = {}
    for i in range(total // CHUNK):
        s = fn(s, r, jax.random.split(jax.random.fold_in(base, i), k), w0, w1)
        if (i + 1) * CHUNK in (warm, warm + win):
            gen[(i + 1) * CHUNK] = jnp.sum(s.injected_flits, axis=-1)
    acc, lat_sum, pkts, ovf = jax.block_until_ready(
        (s.acc_flits, s.win_lat_sum, s.win_pkts, s.overflow)
    )
    ctr.sim_s += time.perf_counter() - t
    ctr.n_runs += k
    ctr.sim_cycles += total * k
    ctr.router_cycles += total * k * cfg.n
    acc = np.asarray(acc, float).mean(axis=1) / win
    offered = np.asarray(gen[warm + win] - gen[warm], float) / (cfg.n * win)
    pk = np.asarray(pkts, float)
    lat = np.where(pk > 0, np.asarray(lat_sum, float) / np.maximum(pk, 1.0), np.nan)
    return Measured(acc, lat, offered, np.asarray(ovf, bool).reshape(-1))


def packet_flits(link_bits: float) -> int:
    return int(
        min(MAX_PACKET_FLITS, max(1, math.ceil(PACKET_PAYLOAD_BITS / max(float(link_bits), 1.0))))
    )


def d2d_period(ratio: float) -> int:
    return int(max(1, round(1.0 / max(min(float(ratio), 1.0), 1e-3))))


def router_kw(tech) -> dict:
    hop = int(max(1, round(float(tech.router_delay_cycles) + float(tech.link_delay_cycles))))
    return dict(
        routing_delay=0,
        vc_alloc_delay=0,
        link_pipe=hop,
        eject_pipe=1,
        inject_delay=1,
        credit_pipe=hop,
        queue_cap=256,
    )


def core_window_configs(n_vcs, buffer_depth, link_bits, d2d_bw_ratio, crosses, tech):
    """MeshConfigs of the core-level windows: ``(gemm_cfg, a2a_cfg, period)``.

    The GEMM window is ``8 x 4`` routers of neighbour streams: its rows never share a
    router or a link, so four rows are four independent copies of one (an ``8 x 8`` window
    gives the same distribution at twice the cost). The all-to-all window is ``8 x 8``.
    ``period`` is the crossing links' ``d2d_period`` (0 when the region is one reticle).
    """
    kw = router_kw(tech)
    base = dict(
        kx=WINDOW_K,
        n_vcs=int(round(float(n_vcs))),
        buf_depth=int(round(float(buffer_depth))),
        packet_size=packet_flits(link_bits),
        **kw,
    )
    gky, aky = GEMM_ROWS, WINDOW_K
    if float(crosses) > 0:
        period = d2d_period(d2d_bw_ratio)
        gemm = MeshConfig(ky=gky, pattern="neighbor", reticle_x=1, d2d_period=period, **base)
        half = WINDOW_K // 2
        a2a = MeshConfig(
            ky=aky, pattern="uniform", reticle_x=half, reticle_y=half, d2d_period=period, **base
        )
        return gemm, a2a, period
    gemm = MeshConfig(ky=gky, pattern="neighbor", **base)
    return gemm, MeshConfig(ky=aky, pattern="uniform", **base), 0


def reticle_config(net: NetParams, tech):
    """MeshConfig of the reticle-level window (``None`` for a one-column wafer) and the
    crossing links' period."""
    rows, cols = int(round(float(net.reticle_rows))), int(round(float(net.reticle_cols)))
    kx, ky = min(cols, RETICLE_CAP), min(rows, RETICLE_CAP)
    if kx < 2:
        kx, ky = ky, kx
    if kx < 2:
        return None, 1
    period = d2d_period(net.d2d_bw_ratio)
    cfg = MeshConfig(
        kx=kx,
        ky=max(ky, 1),
        n_vcs=int(round(float(net.n_vcs))),
        buf_depth=int(round(float(net.buffer_depth))),
        packet_size=packet_flits(net.link_bits),
        pattern="neighbor",
        reticle_x=1,
        reticle_y=1,
        d2d_period=period,
        **router_kw(tech),
    )
    return cfg, period


def _slots(rho: np.ndarray) -> np.ndarray:
    """``N_SLOTS`` loads to simulate: the GEMMs' distinct loads (quantiles of them if there
    are more), the free slots filled with fractions of the highest (for the pacing choice)."""
    u = np.unique(np.round(rho[rho > 0], 4))
    if u.size > N_SLOTS:
        q = np.quantile(np.log(u), np.linspace(0.0, 1.0, N_SLOTS))
        u = np.unique(u[np.argmin(np.abs(np.log(u)[None, :] - q[:, None]), axis=1)])
    top = float(u.max())
    for frac in (0.8, 0.6, 0.4, 0.9, 0.7):
        if u.size >= N_SLOTS:
            break
        c = frac * top
        if c > RHO_LOW and np.min(np.abs(u - c)) > 0.02:
            u = np.sort(np.append(u, c))
    return np.pad(u, (0, N_SLOTS - u.size), constant_values=2.0 * RHO_LOW)


class Curve(NamedTuple):
    """Measured sustained operating points of the GEMM window (relative load, contention
    wait per hop in cycles, accepted / generated), sorted by load, and the saturation."""

    rho: np.ndarray
    wait: np.ndarray
    frac: np.ndarray
    sat: float


def gemm_plan(net: NetParams, tech, rho, max_cycles):
    """The GEMM window's mandatory run at the streams' loads ``rho``: ``(cfg, cap, service,
    slots, loads, cycles)``; ``loads``/``cycles`` are None when no stream loads the network."""
    gemm_cfg, _, period = core_window_configs(
        net.n_vcs, net.buffer_depth, net.link_bits, net.d2d_bw_ratio, net.crosses, tech
    )
    cap = 1.0 / period if period else 1.0
    service = gemm_cfg.packet_size / cap  # cycles a packet holds the bottleneck link
    if not np.any(rho > 0):
        return gemm_cfg, cap, service, None, None, None
    slots = _slots(rho)
    loads = np.concatenate([[RHO_LOW, 1.0 / cap], slots])  # relative to link capacity
    cyc = window_cycles(service, float(np.max(slots)), max_cycles)
    return gemm_cfg, cap, service, slots, loads, cyc


def gemm_window(net: NetParams, tech, rho, *, max_cycles, seed, ctr) -> tuple[Curve, MeshConfig]:
    """Simulate the core-level GEMM window at the GEMMs' loads (one batch), and once more
    just below saturation when a load is not sustained."""
    gemm_cfg, cap, service, slots, loads, cyc = gemm_plan(net, tech, rho, max_cycles)
    if loads is None:
        return Curve(np.array([RHO_LOW]), np.zeros(1), np.ones(1), 1.0), gemm_cfg
    ms = simulate_loads(gemm_cfg, loads * cap, cycles=cyc, seed=seed, ctr=ctr)
    acc, lat = ms.accepted, ms.latency
    sat = float(acc[1] / cap)
    lat_low = float(lat[0])
    # accepted / generated in the window: 1 up to boundary effects for a sustained load
    # (comparing with the nominal load would add the Bernoulli draw's noise); a queue that
    # overflowed marks a load beyond saturation (its arrivals were dropped)
    ratio = acc[2:] / np.maximum(ms.generated[2:], 1e-12)
    s_lat = lat[2:]
    stable = (ratio >= STABLE_FRAC) & ~ms.overflow[2:] & np.isfinite(s_lat)
    pts_r = [RHO_LOW, *slots[stable]]
    pts_w = [0.0, *np.maximum(s_lat[stable] - lat_low, 0.0)]
    pts_f = [1.0, *np.minimum(1.0, ratio[stable])]
    paced = float(PACE_FRAC * sat)
    if np.any(rho > max(max(pts_r), paced)):
        cyc2 = window_cycles(service, PACE_FRAC, max_cycles)
        m2 = simulate_loads(
            gemm_cfg, np.full(loads.size, paced * cap), cycles=cyc2, seed=seed + 7, ctr=ctr
        )
        lat2 = m2.latency
        r2 = float(np.sum(m2.accepted) / max(np.sum(m2.generated), 1e-12))
        if paced > RHO_LOW and np.all(np.isfinite(lat2)):
            pts_r.append(paced)
            pts_w.append(float(max(np.mean(lat2) - lat_low, 0.0)))
            pts_f.append(min(1.0, r2))
    order = np.argsort(pts_r)
    curve = Curve(np.asarray(pts_r)[order], np.asarray(pts_w)[order], np.asarray(pts_f)[order], sat)
    return curve, gemm_cfg


def pace(curve: Curve, rho, t_bw, hops, cycle_s):
    """F1's pacing of each GEMM stream on the measured curve.

    Cores pace a stream (as F0 does with its optimum ``tau*``): at relative load ``r`` it
    takes ``t_bw / (r f(r))`` on its busiest link plus ``hops x W(r)`` cycles of contention,
    with ``W`` and ``f`` (accepted / generated) interpolated between the measured sustained
    points. The load is at most F0's (``rho``: F0 runs the stream no faster, compute
    permitting) and at most the highest sustained point. Returns the factor
    ``r* f(r*) / rho`` (the stream takes ``tau / factor``) and the wait ``W(r*)`` per GEMM.
    """
    rho = np.asarray(rho, float)
    factor = np.ones(rho.shape)
    wait = np.zeros(rho.shape)
    for g in range(rho.size):
        r = float(rho[g])
        if r <= 0:
            continue
        hi = min(r, float(curve.rho[-1]))
        lo = min(float(curve.rho[0]), hi)
        grid = np.unique(
            np.concatenate([np.linspace(lo, hi, 257), curve.rho[curve.rho <= hi], [hi]])
        )
        w = np.interp(grid, curve.rho, curve.wait)
        f = np.interp(grid, curve.rho, curve.frac)
        t = t_bw[g] / (grid * f) + hops[g] * cycle_s * w
        i = int(np.argmin(t))
        factor[g] = min(1.0, grid[i] * f[i] / r)
        wait[g] = float(w[i])
    return factor, wait


def bulk_cycles(max_cycles):
    total = sum(BULK_CYCLES)
    if max_cycles >= total:
        return BULK_CYCLES
    return tuple(max(1, int(c * max_cycles / total)) for c in BULK_CYCLES)


def a2a_window(net: NetParams, tech, *, max_cycles, seed, ctr):
    _, a2a_cfg, period = core_window_configs(
        net.n_vcs, net.buffer_depth, net.link_bits, net.d2d_bw_ratio, net.crosses, tech
    )
    ideal = 4.0 / WINDOW_K / (period if period else 1.0)
    ms = simulate_loads(a2a_cfg, [1.0], cycles=bulk_cycles(max_cycles), seed=seed + 1, ctr=ctr)
    return float(min(1.0, ms.accepted[0] / ideal)), a2a_cfg


def reticle_window(net: NetParams, tech, *, max_cycles, seed, ctr):
    cfg, period = reticle_config(net, tech)
    if cfg is None:
        return 1.0, None
    ms = simulate_loads(cfg, [1.0], cycles=bulk_cycles(max_cycles), seed=seed + 2, ctr=ctr)
    return float(min(1.0, ms.accepted[0] * period)), cfg
