r"""F1: F0's compute and memory model plus *simulated* on-wafer communication.

F0 (:mod:`theseus_jax.cost.wafer`) charges three kinds of on-wafer traffic for a training
step. F1 keeps F0's compute, memory, optimizer and off-wafer terms and replaces the
network's ideal-bandwidth / M/D/1 assumptions by measurements of the cycle-level mesh
simulator (:mod:`theseus_jax.sim`) on small representative windows at steady state,
hierarchically:

1. **GEMM streams on a stage region (core level).** F0 partitions every GEMM 2-D over the
   region's ``P x P`` cores: inputs are multicast along rows and partial sums reduced along
   columns, hop by hop, one stream per link (XY routing puts rows and columns on disjoint
   links, so one of them, the busiest, is simulated). The window is an ``8 x 4`` core mesh
   (its rows are independent copies: neighbour streams never share a router across rows)
   with the **neighbor** pattern (each core streams to its +x neighbour; the wrap-around
   flow of the last column loads every -x link once, like the other half of a centre-out
   multicast): every link carries exactly one stream, and every packet is one hop of a
   store-and-forward chain, as in the reduction where each core adds and forwards.
   The window is offered F0's paced link utilisation ``rho = t_bw / tau`` of each GEMM
   (``tau`` = F0's phase duration: ``max(t_compute, tau*)`` when TP traffic overlaps
   compute), plus a few lower loads, in one vmapped batch. Measured at each load: accepted
   / generated flits (the effective-bandwidth factor, 1 while the load is sustained) and
   the contention wait per hop ``W = latency - latency(low load)`` in cycles. Near
   saturation a queue takes ``~ s / (1 - rho)^2`` cycles (``s``: cycles a packet holds the
   link) to reach steady state, so the window runs a few such relaxation times (up to
   ``max_cycles``); runs are chunked so that any length reuses one compiled simulator.
   When the region spans reticles F0 sizes the stream by the reticle-crossing link (at
   ``d2d_bw_ratio``); the window's x-links are then all of that class (``d2d_period =
   round(1 / d2d_bw_ratio)``) so that the window measures the bottleneck. A load the
   window cannot sustain (accepted < 97% of generated) is replaced by a run at 90% of the
   measured saturation throughput (cores stall under back-pressure and pace themselves
   just below saturation).
   Cores pace each stream, as F0 does with its optimum ``tau*``: F1 picks the load
   ``r <= min(rho, highest sustained load)`` that minimises ``t_bw / (r f(r)) + hops x
   W(r)`` on the measured curve (:func:`pace`), giving the factor ``r f(r) / rho``.
   F1 GEMM time: ``tau / factor`` (+ ``t_compute`` when not overlapped) + F0's zero-load
   latency + ``hops x W``: the same form as F0, whose queueing term is
   ``hops x s M/D/1(rho)`` with the packet's link time ``s`` as service time and the
   credit-loop efficiency ``eta`` on link capacity (:func:`~theseus_jax.cost.wafer.
   noc_flow_terms`). ``tau`` and ``rho`` here are those of an *ideal* network (full
   bandwidth, one-cycle service), so F1's offered load does not depend on F0's
   congestion model; :func:`f0_network` expresses F0's own pace in the same terms.
2. **Attention all-to-all (core level).** F0 sends the Q/K/V/head-output redistribution
   through the region's bisection. Window: ``8 x 8`` core mesh, **uniform** random traffic
   (the all-to-all's destination mix), offered beyond saturation; the factor is the
   measured saturation throughput over the channel-load bound of uniform traffic on a
   ``k x k`` mesh (``4 / k`` flits/node/cycle, divided by ``d2d_period`` when the region
   spans reticles: the window's bisection links are then reticle crossings). F1 all-to-all
   time = F0's / factor.
3. **Pipeline point-to-point and data-parallel reduction (reticle level).** Both move bulk
   data between neighbouring regions across reticle boundaries (F0: ``side x d2d`` link
   bandwidth). Window: the wafer's reticle array as a mesh of reticle routers (capped at
   ``16 x 16``), every link a reticle crossing (``d2d_period``), **neighbor** traffic
   offered beyond saturation; the factor is the accepted rate over the crossing-link
   capacity ``1 / d2d_period``. F1 applies it to the on-wafer bandwidth terms of the
   pipeline transfers and of the gradient reduction (off-wafer links are not NoC and keep
   F0's time); latency terms keep F0's values.

The simulated router matches the technology's per-hop delay (``link_pipe = round(router +
link delay)``, credits return over the same wire, no extra routing / VC-allocation stages),
takes the design's virtual channels and buffer depth, and packets of 512 payload bits
(``ceil(512 / link width)`` flits, 1 to 8). The step is then composed exactly as F0 does
(the pipeline bubble, the weight-streaming stall and the exposed data-parallel reduction
follow the F1 stage time); energy is F0's dynamic energy plus static power over the F1 step
time. :func:`recompose` with unit factors reproduces F0 (a test checks it), so every
difference between F0 and F1 comes from the simulated network.

Stated simplifications: one window per phase class stands for every link of that class;
Bernoulli injection (as F0's M/D/1 assumes Poisson arrivals); the GEMM window simulates at
most four loads per design besides low load and saturation (the curve is interpolated
between them; more than four distinct GEMM loads are represented by quantiles); the reticle
crossings' extra latency (``d2d_delay_cycles``) stays analytic; F0's feasibility verdict
(memory, power) is kept.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._numerics import safe_div, safe_sqrt
from ..cost._ops import ATTN_CORE, N_GEMMS, layer_ops
from ..cost.physical import physical_wsc
from ..cost.training import n_microbatches, recompute_passes
from ..cost.wafer import (
    MAX_PACKET_FLITS,
    PACKET_PAYLOAD_BITS,
    _dram_bw_per_reticle,
    gemm_stream_terms,
    noc_flow_terms,
    paced_gemm,
    wafer_training_step,
)
from ..design._wafer import DramKind, WaferDesign
from ..metrics._metrics import Metrics
from ..sim import MeshConfig, make_mesh_sim, run
from ..workload import TrainingWorkload

__all__ = [
    "evaluate_f1",
    "F1Cache",
    "F1Cost",
    "f0_pieces",
    "recompose",
    "core_window_configs",
    "simulate_loads",
    "window_cycles",
    "Measured",
    "pace",
    "PACKET_PAYLOAD_BITS",
]

WINDOW_K = 8  # core-level window side (routers)
GEMM_ROWS = 4  # rows of the GEMM (neighbour-stream) window
RETICLE_CAP = 16  # reticle-level mesh at most 16 x 16 routers
RHO_LOW = 0.05  # "zero-load" reference utilisation
STABLE_FRAC = 0.97  # accepted / generated above this (and no queue overflow): sustained
PACE_FRAC = 0.9  # unsustainable loads are paced at this share of saturation
N_SLOTS = 4  # GEMM-window loads simulated per design (besides low load and saturation)
N_GEMM_ALL = N_GEMMS + 1  # the six layer GEMMs and the logits GEMM


class F1Cost(NamedTuple):
    """What one F1 evaluation cost and what it measured (host-side Python values).

    Attributes:
        sim_cycles: cycles simulated, summed over every simulation run (a vmapped batch of
            ``K`` loads counts ``K`` runs).
        router_cycles: router-cycles simulated (``sum runs x routers x cycles``).
        wall_s: wall-clock seconds of the whole F1 evaluation (F0 pieces, compiles, runs).
        compile_s: seconds spent compiling simulators (0 when all were cached).
        sim_s: seconds spent running simulators.
        n_runs, n_compiles: simulation runs and simulator compilations.
        gemm_rho: F0's offered link utilisation of the 7 GEMMs (6 layer GEMMs, logits).
        gemm_factor: F1 effective-bandwidth factor of each GEMM stream (<= 1): its load at
            F1's pace times accepted / generated, over F0's load (:func:`pace`).
        gemm_wait_cycles: F1 contention wait per hop of each GEMM stream at that pace.
        f0_gemm_wait_cycles: F0's M/D/1 wait per hop at the same utilisation (cycles).
        core_sat: saturation throughput of the GEMM window (fraction of link capacity).
        a2a_factor: F1 factor of the attention all-to-all (saturation / channel-load bound).
        reticle_factor: F1 factor of reticle-level neighbour traffic (p2p and DP).
        windows: the simulated windows, ``(name, kx, ky, n_vcs, buf_depth, packet_size,
            d2d_period)``.
    """

    sim_cycles: int
    router_cycles: int
    wall_s: float
    compile_s: float
    sim_s: float
    n_runs: int
    n_compiles: int
    gemm_rho: tuple
    gemm_factor: tuple
    gemm_wait_cycles: tuple
    f0_gemm_wait_cycles: tuple
    core_sat: float
    a2a_factor: float
    reticle_factor: float
    windows: tuple


# ---------------------------------------------------------------------------------------------
# F0's pieces (mirrors theseus_jax.cost.wafer.wafer_training_step; see recompose)
# ---------------------------------------------------------------------------------------------


def _gemm_streams(design, tech, cores, m, n, k, count, bits, d2d_cross):
    """Per-GEMM pieces of :func:`theseus_jax.cost.wafer.region_gemm`: compute time, busiest
    link time ``t_bw``, hops, zero-load latency and F0's pacing optimum ``tau*``."""
    terms = gemm_stream_terms(design, tech, cores, m, n, k, count, bits, d2d_cross)
    return terms[:5]


def f0_pieces(design, tech, phys, workload, mp) -> dict:
    """The terms of F0's training step that F1 re-uses or re-times, as a dict of arrays.

    Mirrors :func:`theseus_jax.cost.wafer.wafer_training_step` line by line (GEMM index 6
    is the logits GEMM of the last stage); :func:`recompose` with unit factors gives back
    F0's step time and breakdown.
    """
    mdl = workload.model
    f = design.clock_hz
    bits = workload.precision_bits
    R = design.reticles_per_wafer()
    R_tot = R * design.n_wafers
    tp = jnp.where(mp.tp > 0, mp.tp, R)
    p = mp.pp
    dp = jnp.where(mp.dp > 0, mp.dp, jnp.floor(safe_div(R_tot, tp * p)))
    dp = jnp.maximum(dp, 1.0)
    b = mp.micro_batch
    m = n_microbatches(workload.global_batch, dp, b)
    cores = tp * design.usable_cores_per_reticle()
    side = safe_sqrt(cores)
    crosses = jnp.maximum(safe_sqrt(tp) - 1.0, 0.0)
    ops = layer_ops(workload, b, 1.0, 0.0)
    full, sel = recompute_passes(mp.recompute, mp.recompute_layers)
    layers = safe_div(mdl.n_layers, p)
    T = b * workload.seq_len
    bytes_el = bits / 8.0

    gm = jnp.concatenate([ops.m, jnp.atleast_1d(T)])
    gn = jnp.concatenate([ops.n, jnp.atleast_1d(mdl.vocab_size)])
    gk = jnp.concatenate([ops.k, jnp.atleast_1d(mdl.d_model)])
    gc = jnp.concatenate([ops.count, jnp.ones(1)])
    t_comp, t_bw, hops, lat0, tau_star = _gemm_streams(
        design, tech, cores, gm, gn, gk, gc, bits, crosses
    )
    eta, s_cyc = noc_flow_terms(design, tech, crosses)
    eta_ret = noc_flow_terms(design, tech, 1.0)[0]
    is_attn = jnp.zeros(N_GEMMS).at[jnp.array(ATTN_CORE)].set(1.0)
    passes = jnp.concatenate([3.0 + full + sel * is_attn, jnp.atleast_1d(3.0)])

    a2a_vals = T * (safe_div(mdl.attn_in_params(), mdl.d_model) + mdl.v_dim())
    bisect_bw = (
        side
        * design.link_bw_bytes_per_s()
        * jnp.where(crosses > 0, jnp.minimum(1.0, design.d2d_bw_ratio), 1.0)
    )
    a2a_s = (3.0 + full + sel) * safe_div(0.5 * a2a_vals * bytes_el, bisect_bw)
    vec_rate = cores * design.macs_per_core * tech.vector_flops_per_mac * f
    vec_s = safe_div(ops.vec_flops_fwd * (3.0 + full), vec_rate)

    dram_bw_ret = _dram_bw_per_reticle(design, tech, phys)
    offwafer_bw_ret = safe_div(design.inter_wafer_bw_bytes_per_s, R)
    has_dram = design.dram_kind != DramKind.NONE
    stream_bw = tp * jnp.where(has_dram, dram_bw_ret, offwafer_bw_ret)
    layer_w_bytes = ops.weight_params * bytes_el
    stream_bytes_layer = layer_w_bytes * (2.0 + full) + ops.weight_params * workload.main_grad_bytes
    stream_s_layer = safe_div(stream_bytes_layer, stream_bw)

    # spill (memory capacity) is not affected by the network: take F0's exposed memory
    # term apart from the stall, which F1 recomputes
    p2p_bytes = T * mdl.d_model * bytes_el
    boundary_bw = side * design.d2d_link_bw_bytes_per_s()
    p2p_bw_s = safe_div(p2p_bytes, boundary_bw)
    p2p_lat_s = safe_div(
        side * (tech.router_delay_cycles + tech.link_delay_cycles) + tech.d2d_delay_cycles, f
    )
    span_wafers = tp * p > R
    pipes_per_wafer = jnp.maximum(safe_div(R, tp * p), 1.0)
    p2p_off_s = safe_div(p2p_bytes * pipes_per_wafer, design.inter_wafer_bw_bytes_per_s)

    emb = mdl.vocab_size * mdl.d_model
    params_region = layers * ops.weight_params + jnp.where(p > 1, emb, mdl.embedding_params())
    grad_bytes = params_region * workload.main_grad_bytes
    frac = safe_div(dp - 1.0, dp)
    on_dp = 2.0 * frac * safe_div(grad_bytes, boundary_bw)
    regions_per_wafer = jnp.minimum(safe_div(R, tp), dp * p)
    wafers_spanned = jnp.ceil(safe_div(dp * tp * p, R) - 1e-4)
    off_dp = (
        2.0 * frac * safe_div(grad_bytes * regions_per_wafer, design.inter_wafer_bw_bytes_per_s)
    )

    return dict(
        clock_hz=f,
        tp=tp,
        pp=p,
        dp=dp,
        m=m,
        crosses=crosses,
        layers=layers,
        full=full,
        interleave=mp.interleave,
        tp_overlap=mp.tp_overlap,
        dp_overlap=mp.dp_overlap,
        stream=mp.stream,
        t_comp=t_comp,
        t_bw=t_bw,
        hops=hops,
        lat0=lat0,
        tau_star=tau_star,
        eta=eta,
        s_cycles=s_cyc,
        eta_ret=eta_ret,
        passes=passes,
        a2a_s=a2a_s,
        vec_s=vec_s,
        stream_s_layer=stream_s_layer,
        stream_bw=stream_bw,
        p2p_bw_s=p2p_bw_s,
        p2p_lat_s=p2p_lat_s,
        span_wafers=span_wafers.astype(jnp.float32),
        p2p_off_s=p2p_off_s,
        on_dp=on_dp,
        off_dp=off_dp,
        wafers_spanned=wafers_spanned,
        n_vcs=design.n_vcs,
        buffer_depth=design.buffer_depth,
        link_bits=design.link_bits_per_cycle,
        d2d_bw_ratio=design.d2d_bw_ratio,
        reticle_rows=design.reticle_rows,
        reticle_cols=design.reticle_cols,
    )


_f0_pieces_jit = jax.jit(f0_pieces)
_f0_step_jit = jax.jit(lambda d, t, w, mp: wafer_training_step(d, t, physical_wsc(d, t), w, mp))


def _tau(pc):
    """F0's phase duration of each GEMM stream (paced): overlap -> max(t_comp, tau*)."""
    ovl = pc["tp_overlap"] > 0
    return np.where(ovl, np.maximum(pc["t_comp"], pc["tau_star"]), pc["tau_star"])


def f0_rho(pc) -> np.ndarray:
    """F0's link utilisation of each GEMM stream (0 where there is no mesh traffic)."""
    tau = _tau(pc)
    return np.where(pc["t_bw"] > 0, pc["t_bw"] / np.maximum(tau, 1e-30), 0.0)


def f0_network(pc) -> tuple[np.ndarray, np.ndarray]:
    """F0's own network model in :func:`recompose`'s terms: per GEMM stream the factor
    ``tau / tau_F0`` (``tau``: the ideal-network pace F1 starts from; ``tau_F0``: F0's pace
    with flow-control efficiency and packet service time, :func:`~theseus_jax.cost.wafer.
    paced_gemm`) and F0's M/D/1 wait per hop (cycles)."""
    cyc = 1.0 / pc["clock_hz"]
    ovl = bool(pc["tp_overlap"] > 0)
    tau_f0, wait, _ = paced_gemm(
        pc["t_comp"], pc["t_bw"], pc["hops"], pc["lat0"], cyc, pc["eta"], pc["s_cycles"], ovl
    )
    tau_f0, wait = np.asarray(tau_f0, float), np.asarray(wait, float)
    has = pc["t_bw"] > 0
    fac = np.where(has, _tau(pc) / np.maximum(tau_f0, 1e-30), 1.0)
    return fac, np.where(has, wait, 0.0)


def recompose(
    pc,
    metrics0: Metrics,
    *,
    gemm_factor=None,
    gemm_wait=None,
    a2a_factor=1.0,
    reticle_factor=None,
) -> dict:
    """Compose a training step from F0's pieces and network factors (host side, numpy).

    Args:
        pc: :func:`f0_pieces` as numpy.
        metrics0: F0's metrics of the same point (its spill and optimizer terms are kept).
        gemm_factor: effective-bandwidth factor of each GEMM stream (7,) relative to the
            ideal-network pace ``tau``; default F0's (:func:`f0_network`).
        gemm_wait: contention wait per hop of each GEMM stream in cycles (7,); default
            F0's M/D/1 wait.
        a2a_factor: factor of the attention all-to-all (F0: 1).
        reticle_factor: factor of the on-wafer pipeline and DP transfers; default F0's
            credit-loop efficiency of reticle crossings ``eta_ret``.

    Returns:
        dict with ``step_time_s`` and the breakdown fields; with the defaults it is F0.
    """
    f0_fac, f0_wait = f0_network(pc)
    fac = f0_fac if gemm_factor is None else np.asarray(gemm_factor, float)
    if gemm_wait is None:
        gemm_wait = f0_wait
    if reticle_factor is None:
        reticle_factor = float(pc["eta_ret"])
    has = pc["t_bw"] > 0
    cyc = 1.0 / pc["clock_hz"]
    tau = _tau(pc)
    tau_f1 = tau / np.maximum(fac, 1e-9)
    lat = pc["lat0"] + pc["hops"] * cyc * np.asarray(gemm_wait, float)
    ovl = pc["tp_overlap"] > 0
    t_alone = tau_f1 + lat
    t_gemm = np.where(has, np.where(ovl, t_alone, pc["t_comp"] + t_alone), pc["t_comp"])
    t_ovl = np.where(has, t_alone, pc["t_comp"])  # logits: always overlapped (as F0)
    passes = pc["passes"]
    layer_comp = float(np.sum(pc["t_comp"][:N_GEMMS] * passes[:N_GEMMS]))
    layer_gemm = float(np.sum(t_gemm[:N_GEMMS] * passes[:N_GEMMS]))
    logit_s = 3.0 * float(t_ovl[N_GEMMS])
    a2a_s = float(pc["a2a_s"]) / max(a2a_factor, 1e-9)
    vec_s = float(pc["vec_s"])
    layers, m, p, v = (float(pc[k]) for k in ("layers", "m", "pp", "interleave"))
    stall = 0.0
    if pc["stream"] > 0:
        stall = max(float(pc["stream_s_layer"]) - (layer_gemm + vec_s + a2a_s), 0.0)
    # F0's spill share of the memory term (not network-dependent)
    stall0 = 0.0
    if pc["stream"] > 0:
        l0 = _f0_layer_gemm(pc)
        stall0 = max(float(pc["stream_s_layer"]) - (l0 + vec_s + float(pc["a2a_s"])), 0.0)
    spill_s = max(float(metrics0.memory_s) / max(m, 1.0) - layers * stall0, 0.0)

    stage_compute = layers * (layer_comp + vec_s) + logit_s
    stage_tp = layers * (layer_gemm - layer_comp + a2a_s)
    stage_memory = layers * stall + spill_s
    on_wafer = float(pc["p2p_bw_s"]) / max(reticle_factor, 1e-9) + float(pc["p2p_lat_s"])
    p2p_one = max(on_wafer, float(pc["p2p_off_s"])) if pc["span_wafers"] > 0 else on_wafer
    p2p_s = 2.0 * v * p2p_one if p > 1 else 0.0
    t_mb = stage_compute + stage_tp + stage_memory + p2p_s
    bubble = (p - 1.0) / v * t_mb
    on_dp = float(pc["on_dp"]) / max(reticle_factor, 1e-9)
    dp_raw = 0.0
    if pc["dp"] > 1:
        dp_raw = max(on_dp, float(pc["off_dp"])) if pc["wafers_spanned"] > 1 else on_dp
    full = float(pc["full"])
    window = (2.0 + full) / (3.0 + full) * (t_mb - logit_s)
    dp_s = max(dp_raw - window, 0.0) if pc["dp_overlap"] > 0 else dp_raw
    opt = float(metrics0.optimizer_s)
    step = (m + (p - 1.0) / v) * t_mb + dp_s + opt
    return dict(
        step_time_s=step,
        compute_s=m * stage_compute,
        memory_s=m * stage_memory,
        tp_comm_s=m * stage_tp,
        pp_comm_s=m * p2p_s,
        bubble_s=bubble,
        dp_comm_s=dp_s,
        optimizer_s=opt,
    )


def _f0_layer_gemm(pc) -> float:
    fac, wait = f0_network(pc)
    has = pc["t_bw"] > 0
    t_alone = _tau(pc) / fac + pc["lat0"] + pc["hops"] / pc["clock_hz"] * wait
    ovl = pc["tp_overlap"] > 0
    t_gemm = np.where(has, np.where(ovl, t_alone, pc["t_comp"] + t_alone), pc["t_comp"])
    return float(np.sum(t_gemm[:N_GEMMS] * pc["passes"][:N_GEMMS]))


# ---------------------------------------------------------------------------------------------
# Simulation windows
# ---------------------------------------------------------------------------------------------


class F1Cache:
    """What F1 compiles, kept by the caller that wants it reused (nothing is cached at
    module level): the compiled simulator chunks (least recently used first, at most
    ``max_simulators``; every XLA CPU executable holds thousands of memory mappings, and a
    long exploration compiles a few per design, which would exhaust the kernel's per-process
    map limit, ``vm.max_map_count``) and F0's best-mapping evaluators per (workload, tech).

    Pass one to :func:`evaluate_f1` / :func:`f1_planned_cost` to share compilations across
    calls; without one each call compiles what it needs.
    """

    def __init__(self, max_simulators: int = 12):
        if max_simulators < 1:
            raise ValueError(f"max_simulators must be >= 1, got {max_simulators}")
        self.max_simulators = int(max_simulators)
        self.simulators: OrderedDict = OrderedDict()
        self.evaluators: dict = {}


class _Counter:
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


def _chunk_runner(cfg: MeshConfig, k: int, ctr: _Counter):
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


def _round_chunk(c: float) -> int:
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
    warm, win, drain = _round_chunk(warm), _round_chunk(win), _round_chunk(drain)
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
    ctr = ctr or _Counter()
    rates = np.asarray(rates, np.float32)
    k = int(rates.shape[0])
    warm, win, drain = (_round_chunk(c) for c in cycles)
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


def _packet_flits(link_bits: float) -> int:
    return int(
        min(MAX_PACKET_FLITS, max(1, math.ceil(PACKET_PAYLOAD_BITS / max(float(link_bits), 1.0))))
    )


def _d2d_period(ratio: float) -> int:
    return int(max(1, round(1.0 / max(min(float(ratio), 1.0), 1e-3))))


def _router_kw(tech) -> dict:
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
    kw = _router_kw(tech)
    base = dict(
        kx=WINDOW_K,
        n_vcs=int(round(float(n_vcs))),
        buf_depth=int(round(float(buffer_depth))),
        packet_size=_packet_flits(link_bits),
        **kw,
    )
    gky, aky = GEMM_ROWS, WINDOW_K
    if float(crosses) > 0:
        period = _d2d_period(d2d_bw_ratio)
        gemm = MeshConfig(ky=gky, pattern="neighbor", reticle_x=1, d2d_period=period, **base)
        half = WINDOW_K // 2
        a2a = MeshConfig(
            ky=aky, pattern="uniform", reticle_x=half, reticle_y=half, d2d_period=period, **base
        )
        return gemm, a2a, period
    gemm = MeshConfig(ky=gky, pattern="neighbor", **base)
    return gemm, MeshConfig(ky=aky, pattern="uniform", **base), 0


def _reticle_config(pc, tech):
    rows, cols = int(round(float(pc["reticle_rows"]))), int(round(float(pc["reticle_cols"])))
    kx, ky = min(cols, RETICLE_CAP), min(rows, RETICLE_CAP)
    if kx < 2:
        kx, ky = ky, kx
    if kx < 2:
        return None, 1
    period = _d2d_period(pc["d2d_bw_ratio"])
    cfg = MeshConfig(
        kx=kx,
        ky=max(ky, 1),
        n_vcs=int(round(float(pc["n_vcs"]))),
        buf_depth=int(round(float(pc["buffer_depth"]))),
        packet_size=_packet_flits(pc["link_bits"]),
        pattern="neighbor",
        reticle_x=1,
        reticle_y=1,
        d2d_period=period,
        **_router_kw(tech),
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


class _Curve(NamedTuple):
    """Measured sustained operating points of the GEMM window (relative load, contention
    wait per hop in cycles, accepted / generated), sorted by load, and the saturation."""

    rho: np.ndarray
    wait: np.ndarray
    frac: np.ndarray
    sat: float


def _gemm_plan(pc, tech, rho, max_cycles):
    """The GEMM window's mandatory run: ``(cfg, cap, service, slots, loads, cycles)``;
    ``loads``/``cycles`` are None when no GEMM stream loads the network."""
    gemm_cfg, _, period = core_window_configs(
        pc["n_vcs"], pc["buffer_depth"], pc["link_bits"], pc["d2d_bw_ratio"], pc["crosses"], tech
    )
    cap = 1.0 / period if period else 1.0
    service = gemm_cfg.packet_size / cap  # cycles a packet holds the bottleneck link
    if not np.any(rho > 0):
        return gemm_cfg, cap, service, None, None, None
    slots = _slots(rho)
    loads = np.concatenate([[RHO_LOW, 1.0 / cap], slots])  # relative to link capacity
    cyc = window_cycles(service, float(np.max(slots)), max_cycles)
    return gemm_cfg, cap, service, slots, loads, cyc


def _gemm_window(pc, tech, rho, *, max_cycles, seed, ctr) -> tuple[_Curve, MeshConfig]:
    """Simulate the core-level GEMM window at the GEMMs' loads (one batch), and once more
    just below saturation when a load is not sustained."""
    gemm_cfg, cap, service, slots, loads, cyc = _gemm_plan(pc, tech, rho, max_cycles)
    if loads is None:
        return _Curve(np.array([RHO_LOW]), np.zeros(1), np.ones(1), 1.0), gemm_cfg
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
    curve = _Curve(
        np.asarray(pts_r)[order], np.asarray(pts_w)[order], np.asarray(pts_f)[order], sat
    )
    return curve, gemm_cfg


def pace(curve: _Curve, rho, t_bw, hops, cycle_s):
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


def _bulk_cycles(max_cycles):
    total = sum(BULK_CYCLES)
    if max_cycles >= total:
        return BULK_CYCLES
    return tuple(max(1, int(c * max_cycles / total)) for c in BULK_CYCLES)


def _a2a_window(pc, tech, *, max_cycles, seed, ctr):
    _, a2a_cfg, period = core_window_configs(
        pc["n_vcs"], pc["buffer_depth"], pc["link_bits"], pc["d2d_bw_ratio"], pc["crosses"], tech
    )
    ideal = 4.0 / WINDOW_K / (period if period else 1.0)
    ms = simulate_loads(a2a_cfg, [1.0], cycles=_bulk_cycles(max_cycles), seed=seed + 1, ctr=ctr)
    return float(min(1.0, ms.accepted[0] / ideal)), a2a_cfg


def _reticle_window(pc, tech, *, max_cycles, seed, ctr):
    cfg, period = _reticle_config(pc, tech)
    if cfg is None:
        return 1.0, None
    ms = simulate_loads(cfg, [1.0], cycles=_bulk_cycles(max_cycles), seed=seed + 2, ctr=ctr)
    return float(min(1.0, ms.accepted[0] * period)), cfg


def _needs_reticle(pc) -> bool:
    """The reticle window matters when an on-wafer inter-reticle transfer can be on the
    critical path: pipeline transfers, or a DP reduction not dominated (10x) by off-wafer."""
    return bool(
        (pc["pp"] > 1)
        or (pc["dp"] > 1 and (pc["wafers_spanned"] <= 1 or pc["on_dp"] > 0.1 * pc["off_dp"]))
    )


def _run_router_cycles(cfg: MeshConfig, k: int, cycles) -> int:
    """Router-cycles of one :func:`simulate_loads` batch (its chunk rounding included)."""
    return int(sum(_round_chunk(c) for c in cycles) * k * cfg.n)


def _planned_router_cycles(pc, tech, max_cycles: int) -> int:
    """Router-cycles of the runs :func:`evaluate_f1` always makes for these F0 pieces."""
    gemm_cfg, _, _, _, loads, cyc = _gemm_plan(pc, tech, f0_rho(pc), max_cycles)
    total = 0 if loads is None else _run_router_cycles(gemm_cfg, loads.size, cyc)
    bulk = _bulk_cycles(max_cycles)
    if pc["a2a_s"] > 0:
        a2a_cfg = core_window_configs(
            pc["n_vcs"],
            pc["buffer_depth"],
            pc["link_bits"],
            pc["d2d_bw_ratio"],
            pc["crosses"],
            tech,
        )[1]
        total += _run_router_cycles(a2a_cfg, 1, bulk)
    if _needs_reticle(pc):
        rcfg = _reticle_config(pc, tech)[0]
        total += 0 if rcfg is None else _run_router_cycles(rcfg, 1, bulk)
    return total


_f0_pieces_batch = jax.jit(
    jax.vmap(lambda d, t, w, mp: f0_pieces(d, t, physical_wsc(d, t), w, mp), (0, None, None, 0))
)


def f1_planned_cost(
    design: WaferDesign, workload, tech, *, mapping=None, max_cycles=16000, cache=None
):
    """Router-cycles an F1 evaluation of ``design`` will simulate, known before simulating.

    F1's windows and run lengths follow from F0's pieces (the GEMM loads set the window
    lengths, :func:`window_cycles`), so the cost of an evaluation is predictable: this is
    ``F1Cost.router_cycles`` except for the one extra paced GEMM run that
    :func:`evaluate_f1` adds when a GEMM load turns out unsustainable (a lower bound then).
    Cost-aware acquisition divides by it (:mod:`theseus_jax.dse.explore`).

    Args:
        design: one design, or a batch (leading axis on every leaf) with a ``mapping`` batch.
        workload, tech, max_cycles: as :func:`evaluate_f1`.
        mapping: as :func:`evaluate_f1` (required for a batch).
        cache: as :func:`evaluate_f1` (reuses F0's best-mapping evaluator).

    Returns:
        Router-cycles (``sum runs x routers x cycles``) of the mandatory simulation runs: an
        int for one design, an ``(N,)`` int64 array for a batch.
    """
    if jnp.ndim(design.macs_per_core) == 0:
        if mapping is None:
            mapping = _best_mapping(design, workload, tech, cache)
        phys = physical_wsc(design, tech)
        pc = _f0_pieces_jit(design, tech, phys, workload, mapping)
        pc = {k: np.asarray(v, float) for k, v in pc.items()}
        return _planned_router_cycles(pc, tech, max_cycles)
    if mapping is None:
        raise ValueError("f1_planned_cost of a design batch needs the batch's mappings")
    pcs = {
        k: np.asarray(v, float)
        for k, v in _f0_pieces_batch(design, tech, workload, mapping).items()
    }
    n = int(np.shape(design.macs_per_core)[0])
    return np.array(
        [
            _planned_router_cycles({k: v[i] for k, v in pcs.items()}, tech, max_cycles)
            for i in range(n)
        ],
        np.int64,
    )


def _best_mapping(design, workload, tech, cache: F1Cache | None = None):
    """F0's best mapping (step time) of one design, from the full wafer mapping table."""
    from ..metrics._evaluate import default_mappings, make_evaluator

    maps = default_mappings(design, workload)
    evaluators = cache.evaluators if cache is not None else {}
    key = (id(workload), id(tech), maps.size())
    hit = evaluators.get(key)
    if hit is None or hit[0] is not workload or hit[1] is not tech:
        hit = (workload, tech, make_evaluator(workload, mappings=maps, tech=tech), maps)
        evaluators[key] = hit
    res = hit[2](design)
    maps = hit[3]
    i = int(np.asarray(res.mapping_index).reshape(-1)[0])
    return jax.tree_util.tree_map(lambda x: x[i], maps)


def _window_tuple(name, cfg, period):
    if cfg is None:
        return None
    return (name, cfg.kx, cfg.ky, cfg.n_vcs, cfg.buf_depth, cfg.packet_size, period)


def evaluate_f1(
    design: WaferDesign,
    workload,
    tech,
    *,
    mapping=None,
    seed: int = 0,
    max_cycles: int = 16000,
    metrics0: Metrics | None = None,
    cache: F1Cache | None = None,
) -> tuple[Metrics, F1Cost]:
    """F1 metrics of one wafer design for a training workload, and what F1 cost.

    Args:
        design: one (unbatched) :class:`~theseus_jax.WaferDesign`.
        workload: :class:`~theseus_jax.TrainingWorkload`.
        tech: :class:`~theseus_jax.Tech`.
        mapping: the :class:`~theseus_jax.Mapping` to evaluate; default F0's best mapping
            (step time) from the full wafer mapping table.
        seed: simulation seed.
        max_cycles: the most cycles of one simulation run. GEMM-stream windows run a few
            relaxation times of their highest load (``window_cycles``), up to this; bulk
            (saturation) windows run 1,600 cycles (or ``max_cycles`` if less).
        metrics0: F0's metrics of (design, mapping), if already computed.
        cache: an :class:`F1Cache` to reuse compiled simulators and evaluators across calls
            (the caller's; default: this call's own).

    Returns:
        ``(metrics, cost)``: :class:`~theseus_jax.Metrics` with F1's step time and breakdown
        (same fields as F0; F0's feasibility verdict), and :class:`F1Cost`.
    """
    t0 = time.perf_counter()
    if max_cycles < 3 * CHUNK:
        raise ValueError(f"max_cycles must be >= {3 * CHUNK}, got {max_cycles}")
    if not isinstance(design, WaferDesign):
        raise TypeError(f"evaluate_f1 needs a WaferDesign, got {type(design).__name__}")
    if not isinstance(workload, TrainingWorkload):
        raise TypeError(f"evaluate_f1 models training, got {type(workload).__name__}")
    if jnp.ndim(design.macs_per_core) != 0:
        raise ValueError("evaluate_f1 takes one design (scalar leaves), not a batch")
    cache = cache if cache is not None else F1Cache()
    if mapping is None:
        mapping = _best_mapping(design, workload, tech, cache)
    if metrics0 is None:
        metrics0 = _f0_step_jit(design, tech, workload, mapping)
    phys = physical_wsc(design, tech)
    pc = _f0_pieces_jit(design, tech, phys, workload, mapping)
    pc = {k: np.asarray(v, float) for k, v in pc.items()}
    ctr = _Counter(cache)
    rho = f0_rho(pc)
    curve, gcfg = _gemm_window(pc, tech, rho, max_cycles=max_cycles, seed=seed, ctr=ctr)
    factor, wait = pace(curve, rho, pc["t_bw"], pc["hops"], 1.0 / float(pc["clock_hz"]))
    sat = curve.sat
    a2a_f, acfg = (1.0, None)
    if pc["a2a_s"] > 0:
        a2a_f, acfg = _a2a_window(pc, tech, max_cycles=max_cycles, seed=seed, ctr=ctr)
    ret_f, rcfg = 1.0, None
    if _needs_reticle(pc):
        ret_f, rcfg = _reticle_window(pc, tech, max_cycles=max_cycles, seed=seed, ctr=ctr)
    parts = recompose(
        pc, metrics0, gemm_factor=factor, gemm_wait=wait, a2a_factor=a2a_f, reticle_factor=ret_f
    )
    metrics = _metrics_from(metrics0, parts, tech)
    period = _d2d_period(pc["d2d_bw_ratio"]) if pc["crosses"] > 0 else 0
    windows = tuple(
        w
        for w in (
            _window_tuple("gemm", gcfg, period),
            _window_tuple("a2a", acfg, period),
            _window_tuple("reticle", rcfg, _d2d_period(pc["d2d_bw_ratio"])),
        )
        if w is not None
    )
    cost = F1Cost(
        sim_cycles=int(ctr.sim_cycles),
        router_cycles=int(ctr.router_cycles),
        wall_s=time.perf_counter() - t0,
        compile_s=ctr.compile_s,
        sim_s=ctr.sim_s,
        n_runs=ctr.n_runs,
        n_compiles=ctr.n_compiles,
        gemm_rho=tuple(float(x) for x in rho),
        gemm_factor=tuple(float(x) for x in factor),
        gemm_wait_cycles=tuple(float(x) for x in wait),
        f0_gemm_wait_cycles=tuple(float(x) for x in f0_network(pc)[1]),
        core_sat=float(sat),
        a2a_factor=float(a2a_f),
        reticle_factor=float(ret_f),
        windows=windows,
    )
    return metrics, cost


def _metrics_from(m0: Metrics, parts: dict, tech) -> Metrics:
    """F1 Metrics: F1 step and breakdown; F0's dynamic energy, static power over F1's step."""
    step0 = float(m0.step_time_s)
    step = float(parts["step_time_s"])
    tokens = float(m0.tokens_per_s) * step0
    static_w = float(tech.static_power_w_per_m2) * float(m0.silicon_area_m2)
    e_dyn = float(m0.power_w) * step0 - static_w * step0
    energy = e_dyn + static_w * step
    peak = float(m0.peak_flops)
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    fields = {k: getattr(m0, k) for k in Metrics.__annotations__}
    fields.update(
        step_time_s=f32(step),
        tokens_per_s=f32(tokens / step),
        mfu=f32(float(m0.model_flops) / (step * peak)),
        hfu=f32(float(m0.hw_flops) / (step * peak)),
        power_w=f32(energy / step),
        energy_per_token_j=f32(energy / tokens),
        overhead_s=f32(0.0),
    )
    for k, v in parts.items():
        fields[k] = f32(v)
    return Metrics(**fields)
