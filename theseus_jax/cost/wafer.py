r"""F0 training cost of one mapping on one wafer-scale system.

Placement: each pipeline stage of each data-parallel replica occupies a region of ``tp``
reticles (contiguous, snake order), i.e. ``C = tp * usable cores per reticle`` cores arranged
as a near-square ``P x P`` core mesh (``P = sqrt(C)``). Replicas fill the wafers
(``dp = floor(reticles / (tp pp))`` unless the mapping fixes it).

GEMMs are partitioned 2-D over the region's mesh (weight-stationary): ``K`` over rows, ``N``
over columns. Per GEMM, every core computes ``M x K/P x N/P``; the MAC array of a core is a
``sqrt(macs) x sqrt(macs)`` block, so its utilisation loses the padding of ``K/P`` and ``N/P``
to multiples of ``sqrt(macs)``; cores idle when ``K < P`` or ``N < P``; and the array is
starved when the SRAM delivers fewer than ``3 bits sqrt(macs)`` bits per cycle (operands in,
partial sums out, with register reuse over the block). Communication: the input ``M x K/P``
is multicast along each row and partial sums ``M x N/P`` are reduced along each column (XY
routing puts the two on disjoint links); the bottleneck link carries
``max(M K / P, M N / P)`` values, at the core link bandwidth, or at the inter-reticle
bandwidth where the row/column crosses reticle boundaries. Zero-load latency is
``hops x (router + link delay) + crossings x d2d delay``, plus an M/D/1 queueing wait per hop
at the phase's link utilisation. Compute and mesh traffic overlap (the GEMM takes the max).
Attention heads are spread over the region; Q, K, V and the head outputs are redistributed
through the region's bisection (an all-to-all).

Memory: weights resident (``stream = 0``): weights + gradients (and optimizer state when
there is no DRAM) in SRAM, optimizer state in DRAM otherwise; weights streamed
(``stream = 1``): each layer's weights are read from DRAM (or, without DRAM, from off-wafer
memory over the off-wafer link, as Cerebras MemoryX does) once per micro-batch per pass and
double-buffered in SRAM, gradients written back; activations live in SRAM and spill to DRAM.

Power: MAC energy per FLOP, SRAM energy per operand bit, NoC energy per bit-hop (router +
wire over the core pitch), reticle-crossing energy by integration style, DRAM and off-wafer
energy per bit, and static power over the powered silicon area.
"""

from __future__ import annotations

import jax.numpy as jnp

from .._numerics import safe_div, safe_sqrt
from .._violations import Violation, accumulate
from ..design._wafer import DramKind, Integration
from ..metrics._metrics import Metrics
from ._ops import ATTN_CORE, N_GEMMS, layer_ops
from .collectives import mdl_queue_wait
from .training import (
    activation_bytes,
    inflight_microbatches,
    n_microbatches,
    recompute_passes,
    state_bytes_per_param,
)

__all__ = [
    "wafer_training_step",
    "region_gemm",
    "gemm_stream_terms",
    "noc_flow_terms",
    "paced_gemm",
    "PACKET_PAYLOAD_BITS",
]

PACKET_PAYLOAD_BITS = 512.0  # [U] payload of one NoC packet (32 16-bit values); F1 uses it too
MAX_PACKET_FLITS = 8.0  # [U] longest packet (flits)


def _pad_eff(x, a):
    """Utilisation of a length-``x`` loop on a ``a``-wide array: ``x / (ceil(x/a) a)``."""
    xx = jnp.maximum(x, 1.0)
    return safe_div(xx, jnp.ceil(safe_div(xx, a) - 1e-4) * a)


def gemm_stream_terms(design, tech, cores, m, n, k, count, bits, d2d_cross):
    """Per-GEMM terms of :func:`region_gemm` before pacing (shared with the F1 evaluator).

    Returns ``(t_compute, t_bw, hops, lat0, tau_star, c_inst, p)``: compute time at the
    achieved MAC-array efficiency, busiest-link time, hops, zero-load latency (s), the
    pacing optimum of an ideal network (one-cycle service, full link bandwidth: the load the
    F1 evaluator offers its simulated window; F0 itself paces with :func:`paced_gemm`),
    cores per GEMM instance and the instance's mesh side.
    """
    f = design.clock_hz
    a = safe_sqrt(design.macs_per_core)
    c_inst = jnp.maximum(safe_div(cores, count), 1.0)  # cores per GEMM instance
    p = safe_sqrt(c_inst)
    busy = jnp.minimum(1.0, safe_div(k, p)) * jnp.minimum(1.0, safe_div(n, p))
    k_loc = jnp.maximum(safe_div(k, p), 1.0)
    n_loc = jnp.maximum(safe_div(n, p), 1.0)
    eta_pad = _pad_eff(k_loc, a) * _pad_eff(n_loc, a)
    need_bits = 3.0 * bits * a
    eta_sram = jnp.minimum(1.0, safe_div(design.sram_bw_bits_per_cycle, need_bits))
    peak_core = 2.0 * design.macs_per_core * f * safe_div(16.0, bits)
    flops = 2.0 * m * n * k * count
    t_comp = safe_div(flops, cores * peak_core * busy * eta_pad * eta_sram)

    bytes_el = bits / 8.0
    link_vals = jnp.maximum(m * k, m * n) / p  # values on the busiest link per instance
    link_bw = design.link_bw_bytes_per_s() * jnp.where(
        d2d_cross > 0, jnp.minimum(1.0, design.d2d_bw_ratio), 1.0
    )
    t_bw = safe_div(link_vals * bytes_el, link_bw) * jnp.where(c_inst > 1.0, 1.0, 0.0)
    # instances packed several per core need no mesh traffic
    t_bw = t_bw * jnp.minimum(1.0, safe_div(cores, count))
    # Both collectives run from/to the middle of the row/column over both link directions:
    # the multicast crosses p/2 routers, the reduction p/2 routers and p/2 adders.
    hops = p
    cyc = safe_div(1.0, f)
    lat0 = (
        hops * (tech.router_delay_cycles + tech.link_delay_cycles)
        + 0.5 * p * tech.reduce_add_cycles
        + d2d_cross * tech.d2d_delay_cycles
    ) * cyc
    tau_star = jnp.maximum(t_bw / 0.95, t_bw + safe_sqrt(0.5 * hops * cyc * t_bw))
    return t_comp, t_bw, hops, lat0, tau_star, c_inst, p


def noc_flow_terms(design, tech, d2d_cross):
    r"""Flow-control terms of F0's congestion model for streams on one class of links.

    .. math::

        s = \min(8, \max(1, 512 / w))\, P, \qquad
        \eta = \min\!\Big(1, \frac{B\, P}{t_{crt}}\Big), \qquad
        t_{crt} = 2 t_{hop} + 1

    ``s`` is the cycles one packet holds a link (flits of a 512-bit packet on a ``w``-bit
    link, 1 to 8 -- fractional, so F0 stays differentiable in ``w``; the simulator rounds
    up -- times the link's period ``P``: ``1 / d2d_bw_ratio`` on reticle
    crossings, else 1): the service time of the M/D/1 wait. ``eta`` is the share of link
    bandwidth one stream keeps with credit-based flow control: a VC of ``B`` flit buffers
    can have at most ``B`` flits in flight per credit round trip ``t_crt`` (flit pipeline,
    credit pipeline, one cycle to process the credit; ``t_hop`` = router + link delay),
    and a stream of packets holds one VC at a time.

    Args:
        design: one :class:`~theseus_jax.WaferDesign`.
        tech: :class:`~theseus_jax.Tech`.
        d2d_cross: > 0 when the stream's bottleneck link crosses reticles.

    Returns:
        ``(eta, s_cycles)``.

    References:
        Dally & Towles, *Principles and Practices of Interconnection Networks* (2004),
        sec. 13.3 (credit round trip: ``B >= t_crt b / L_f`` for full throughput).
    """
    period = jnp.where(d2d_cross > 0, safe_div(1.0, jnp.minimum(1.0, design.d2d_bw_ratio)), 1.0)
    # fractional flits (the mean over packets of a stream): keeps F0 smooth in link width
    flits = jnp.clip(
        safe_div(PACKET_PAYLOAD_BITS, design.link_bits_per_cycle), 1.0, MAX_PACKET_FLITS
    )
    hop = jnp.maximum(jnp.round(tech.router_delay_cycles + tech.link_delay_cycles), 1.0)
    t_crt = 2.0 * hop + 1.0
    eta = jnp.minimum(1.0, safe_div(design.buffer_depth * period, t_crt))
    return eta, flits * period


def paced_gemm(t_comp, t_bw, hops, lat0, cyc, eta, s_cycles, overlap):
    r"""F0's paced time of a GEMM's mesh stream (see :func:`region_gemm`).

    The stream needs ``t_bw / eta`` on its busiest link; at utilisation ``rho`` each of its
    ``hops`` hops waits ``s rho / (2 (1 - rho))`` cycles (M/D/1, ``s`` cycles per packet).
    Cores pace injection: minimising :math:`\tau + h c s \rho / (2(1-\rho))` over
    ``tau >= t_bw / (0.95 eta)`` gives
    :math:`\tau^* = t_e + \sqrt{h c s\, t_e / 2}` with :math:`t_e = t_{bw} / \eta`.
    With ``overlap`` the phase lasts ``max(t_compute, tau*)``.

    Returns:
        ``(tau, wait_cycles, t_alone)``: phase duration, wait per hop, and the stream time
        ``tau + lat0 + hops c wait``.
    """
    t_e = safe_div(t_bw, eta)
    tau_star = jnp.maximum(t_e / 0.95, t_e + safe_sqrt(0.5 * hops * cyc * s_cycles * t_e))
    tau = jnp.where(overlap, jnp.maximum(t_comp, tau_star), tau_star)
    wait = s_cycles * mdl_queue_wait(safe_div(t_e, tau))
    return tau, wait, tau + lat0 + hops * cyc * wait


def region_gemm(design, tech, cores, m, n, k, count, bits, d2d_cross):
    r"""Time and traffic of ``count`` GEMMs (m x k)(k x n) spread over ``cores`` cores.

    The mesh stream of a GEMM takes ``t_bw`` on its busiest link; its packets also see the
    zero-load latency (hops x router/link delay, plus each core's add on the reduction hops,
    plus reticle crossings) and an M/D/1 queueing wait per hop at the link utilisation
    ``rho = t_bw / (eta tau)`` of the phase of duration ``tau``, with the packet's link time
    ``s`` as service time and the credit-loop efficiency ``eta`` (:func:`noc_flow_terms`).
    Cores pace their injection, so ``tau`` is the best of ``tau >= max(t_compute, t_e /
    0.95)``, ``t_e = t_bw / eta``: minimising :math:`\tau + h c s \rho / (2 (1 - \rho))`
    gives :math:`\tau^* = t_e + \sqrt{h c s\, t_e / 2}` (``h`` hops, ``c`` cycle time)
    (:func:`paced_gemm`). The overlapped GEMM time is therefore never larger for faster
    compute or wider links.

    Returns ``(t_compute, t_overlapped, t_comm_alone, bit_hops, cross_bits)``: compute time at
    the achieved MAC-array efficiency, the GEMM time with compute and mesh traffic
    overlapped, the time of the traffic alone (for a non-overlapped schedule), NoC bit-hops
    and bits that cross reticle boundaries (for energy).
    """
    t_comp, t_bw, hops, lat0, tau_star, c_inst, p = gemm_stream_terms(
        design, tech, cores, m, n, k, count, bits, d2d_cross
    )
    cyc = safe_div(1.0, design.clock_hz)
    eta, s_cyc = noc_flow_terms(design, tech, d2d_cross)
    has = t_bw > 0
    t_ovl = jnp.where(has, paced_gemm(t_comp, t_bw, hops, lat0, cyc, eta, s_cyc, True)[2], t_comp)
    t_alone = jnp.where(has, paced_gemm(t_comp, t_bw, hops, lat0, cyc, eta, s_cyc, False)[2], 0.0)
    # bit-hops: inputs fan out along rows, partial sums gather along columns (~p hops each)
    vals_moved = (m * k + m * n) * count * jnp.where(c_inst > 1.0, 1.0, 0.0)
    bit_hops = vals_moved * bits * p
    cross_bits = vals_moved * bits * d2d_cross
    return t_comp, t_ovl, t_alone, bit_hops, cross_bits


def _d2d_energy(design, tech):
    return jnp.where(
        design.integration == Integration.INFO_SOW,
        tech.d2d_energy_infosow_j_per_bit,
        tech.d2d_energy_stitched_j_per_bit,
    )


def _dram_bw_per_reticle(design, tech, phys):
    """Sustainable DRAM bandwidth per reticle (B/s), 0 without DRAM."""
    R = design.reticles_per_wafer()
    edge_ports = design.n_dram_ports() * design.dram_port_bw_bytes_per_s
    # Edge traffic must enter through the wafer's perimeter links.
    perim_cores = 2.0 * (
        design.reticle_rows * design.core_rows + design.reticle_cols * design.core_cols
    )
    edge_links = perim_cores * design.d2d_link_bw_bytes_per_s()
    edge = safe_div(jnp.minimum(edge_ports, edge_links), R)
    stacked = design.dram_bw_density_bytes_per_s_m2 * safe_div(phys.silicon_area_m2, R)
    return jnp.where(
        design.dram_kind == DramKind.EDGE,
        edge,
        jnp.where(design.dram_kind == DramKind.STACKED, stacked, 0.0),
    )


def wafer_training_step(design, tech, phys, workload, mp) -> Metrics:
    """F0 metrics of one training step on wafer-scale system ``design`` under mapping ``mp``.

    ``phys`` is :func:`theseus_jax.cost.physical.physical_wsc` of the design (computed once per
    design, shared by all its mappings).
    """
    mdl = workload.model
    f = design.clock_hz
    bits = workload.precision_bits
    R = design.reticles_per_wafer()
    R_tot = R * design.n_wafers
    tp = jnp.where(mp.tp > 0, mp.tp, R)  # tp <= 0: one region spans a whole wafer
    p = mp.pp
    dp = jnp.where(mp.dp > 0, mp.dp, jnp.floor(safe_div(R_tot, tp * p)))
    dp = jnp.maximum(dp, 1.0)
    b = mp.micro_batch
    m = n_microbatches(workload.global_batch, dp, b)
    cores = tp * design.usable_cores_per_reticle()
    side = safe_sqrt(cores)  # region side in cores
    crosses = jnp.maximum(safe_sqrt(tp) - 1.0, 0.0)  # reticle boundaries along a row
    ops = layer_ops(workload, b, 1.0, 0.0)
    full, sel = recompute_passes(mp.recompute, mp.recompute_layers)
    layers = safe_div(mdl.n_layers, p)
    T = b * workload.seq_len
    bytes_el = bits / 8.0

    # ---- GEMMs on the region mesh -------------------------------------------------------------
    t_comp, t_ovl, t_alone, bit_hops, cross_bits = region_gemm(
        design, tech, cores, ops.m, ops.n, ops.k, ops.count, bits, crosses
    )
    t_gemm = jnp.where(mp.tp_overlap > 0, t_ovl, t_comp + t_alone)
    is_attn = jnp.zeros(N_GEMMS).at[jnp.array(ATTN_CORE)].set(1.0)
    passes = 3.0 + full + sel * is_attn
    layer_comp = jnp.sum(t_comp * passes)
    layer_gemm = jnp.sum(t_gemm * passes)
    layer_flops = jnp.sum(ops.gemm_flops() * passes)
    layer_bit_hops = jnp.sum(bit_hops * passes)
    layer_cross_bits = jnp.sum(cross_bits * passes)

    # attention redistribution (all-to-all through the bisection), fwd + bwd (+ recompute)
    a2a_vals = T * (safe_div(mdl.attn_in_params(), mdl.d_model) + mdl.v_dim())
    bisect_bw = (
        side
        * design.link_bw_bytes_per_s()
        * jnp.where(crosses > 0, jnp.minimum(1.0, design.d2d_bw_ratio), 1.0)
    )
    a2a_s = (3.0 + full + sel) * safe_div(0.5 * a2a_vals * bytes_el, bisect_bw)
    a2a_bit_hops = (3.0 + full + sel) * a2a_vals * bits * 0.5 * side

    # vector (non-GEMM) work at the cores' vector rate
    vec_rate = cores * design.macs_per_core * tech.vector_flops_per_mac * f
    elem_passes = 3.0 + full
    vec_s = safe_div(ops.vec_flops_fwd * elem_passes, vec_rate)

    # logits on the last stage (fwd + 2 bwd)
    lc, lm, _, lbh, lcb = region_gemm(
        design, tech, cores, T, mdl.vocab_size, mdl.d_model, 1.0, bits, crosses
    )
    logit_s = 3.0 * lm
    logit_flops = 3.0 * 2.0 * T * mdl.vocab_size * mdl.d_model

    # ---- weights: resident or streamed --------------------------------------------------------
    dram_bw_ret = _dram_bw_per_reticle(design, tech, phys)
    offwafer_bw_ret = safe_div(design.inter_wafer_bw_bytes_per_s, R)
    has_dram = design.dram_kind != DramKind.NONE
    stream_bw = tp * jnp.where(has_dram, dram_bw_ret, offwafer_bw_ret)
    layer_w_bytes = ops.weight_params * bytes_el
    # per micro-batch: weights read in fwd, bwd (and recompute); gradients written in bwd
    stream_bytes_layer = layer_w_bytes * (2.0 + full) + ops.weight_params * workload.main_grad_bytes
    stream_s_layer = safe_div(stream_bytes_layer, stream_bw)
    layer_compute_total = layer_gemm + vec_s + a2a_s
    stall_layer = jnp.where(
        mp.stream > 0, jnp.maximum(stream_s_layer - layer_compute_total, 0.0), 0.0
    )

    # ---- memory capacity of the region ---------------------------------------------------------
    sram_cap = cores * design.sram_bytes_per_core
    dram_cap = tp * safe_div(design.dram_capacity_bytes(), R)
    emb = mdl.vocab_size * mdl.d_model
    params_region = layers * ops.weight_params + jnp.where(p > 1, emb, mdl.embedding_params())
    inflight = inflight_microbatches(mp.schedule, p, mp.interleave, m)
    act = (
        activation_bytes(ops, mp.recompute, layers, inflight, mp.recompute_layers)
        + 4.0 * T * mdl.vocab_size
    )
    state_all = params_region * state_bytes_per_param(workload.main_grad_bytes, 0.0, dp)
    w_and_g = params_region * (2.0 + workload.main_grad_bytes)
    resident_sram = jnp.where(has_dram, w_and_g, state_all) + act
    # weights arrive in chunks of one weight matrix (~1/4 of a layer), double-buffered;
    # gradients leave as they are produced through the same buffers
    stream_sram = 2.0 * layer_w_bytes / 4.0 * (1.0 + workload.main_grad_bytes / bytes_el) + act
    sram_need = jnp.where(mp.stream > 0, stream_sram, resident_sram)
    spill = jnp.maximum(sram_need - sram_cap, 0.0)
    # what must live in DRAM: optimizer state (resident) or all state (streamed) + spill
    dram_need = (
        jnp.where(mp.stream > 0, state_all, jnp.where(has_dram, state_all - w_and_g, 0.0)) + spill
    )
    # without DRAM, streamed state lives in off-wafer memory (MemoryX-like, not capped here)
    dram_ok = jnp.where(has_dram, dram_need <= dram_cap, (spill <= 0.0))
    # spilled activations are written once and read once per micro-batch
    spill_s = jnp.where(has_dram, safe_div(2.0 * spill, tp * dram_bw_ret), 0.0)
    spill_s = safe_div(spill_s, jnp.maximum(m, 1.0))  # per micro-batch share
    spill_s = jnp.where(spill > 0, spill_s, 0.0)

    # ---- pipeline p2p (region boundary; off-wafer when the pipeline spans wafers) -------------
    p2p_bytes = 2.0 * T * mdl.d_model * bytes_el / 2.0  # T h values
    # region boundaries are reticle crossings: credit-loop efficiency at their period
    eta_ret = noc_flow_terms(design, tech, 1.0)[0]
    boundary_bw = side * design.d2d_link_bw_bytes_per_s() * eta_ret
    on_wafer_s = safe_div(p2p_bytes, boundary_bw) + safe_div(
        side * (tech.router_delay_cycles + tech.link_delay_cycles) + tech.d2d_delay_cycles, f
    )
    span_wafers = tp * p > R
    pipes_per_wafer = jnp.maximum(safe_div(R, tp * p), 1.0)
    off_s = safe_div(p2p_bytes * pipes_per_wafer, design.inter_wafer_bw_bytes_per_s)
    p2p_one = jnp.where(span_wafers, jnp.maximum(on_wafer_s, off_s), on_wafer_s)
    p2p_s = jnp.where(p > 1, 2.0 * mp.interleave * p2p_one, 0.0)

    # ---- stage time ---------------------------------------------------------------------------
    stage_compute = layers * (layer_comp + vec_s) + logit_s
    stage_tp = layers * (layer_gemm - layer_comp + a2a_s)
    stage_memory = layers * stall_layer + spill_s
    t_mb = stage_compute + stage_tp + stage_memory + p2p_s
    bubble_s = safe_div(p - 1.0, mp.interleave) * t_mb

    # ---- data parallel gradient reduction ---------------------------------------------------
    grad_bytes = params_region * workload.main_grad_bytes
    frac = safe_div(dp - 1.0, dp)
    on_dp = 2.0 * frac * safe_div(grad_bytes, boundary_bw)
    regions_per_wafer = jnp.minimum(safe_div(R, tp), dp * p)
    wafers_spanned = jnp.ceil(safe_div(dp * tp * p, R) - 1e-4)
    off_dp = (
        2.0 * frac * safe_div(grad_bytes * regions_per_wafer, design.inter_wafer_bw_bytes_per_s)
    )
    dp_raw = jnp.where(
        dp > 1, jnp.where(wafers_spanned > 1, jnp.maximum(on_dp, off_dp), on_dp), 0.0
    )
    window = safe_div(2.0 + full, 3.0 + full) * (t_mb - logit_s)  # last micro-batch's backward
    dp_s = jnp.where(mp.dp_overlap > 0, jnp.maximum(dp_raw - window, 0.0), dp_raw)

    # ---- optimizer update --------------------------------------------------------------------
    opt_bytes = params_region * (30.0 + workload.main_grad_bytes)
    opt_sram_s = safe_div(params_region * 12.0, vec_rate)  # ~12 FLOP per Adam update
    opt_dram_s = safe_div(opt_bytes, stream_bw)
    optimizer_s = jnp.where(
        (mp.stream > 0) | has_dram, jnp.maximum(opt_dram_s, opt_sram_s), opt_sram_s
    )

    step = (m + safe_div(p - 1.0, mp.interleave)) * t_mb + dp_s + optimizer_s

    # ---- FLOPs, energy, power -------------------------------------------------------------------
    n_regions = tp * p * dp
    regions = p * dp
    # the logits layer runs on the last stage of each replica only
    hw_flops = m * (layers * layer_flops * regions + logit_flops * dp)
    no_rc = 3.0 * jnp.sum(ops.gemm_flops())
    model_flops = m * (layers * no_rc * regions + logit_flops * dp)
    peak_sys = (
        R_tot
        * design.usable_cores_per_reticle()
        * 2.0
        * design.macs_per_core
        * f
        * safe_div(16.0, bits)
    )
    pitch = phys.core_pitch_m
    e_hop = tech.router_energy_j_per_bit + tech.wire_energy_j_per_bit_m * pitch
    noc_bit_hops = m * regions * layers * (layer_bit_hops + a2a_bit_hops) + m * dp * 3.0 * lbh
    cross_bits_total = m * regions * layers * layer_cross_bits + m * dp * 3.0 * lcb
    dram_bits = (
        8.0
        * regions
        * (
            jnp.where(mp.stream > 0, m * layers * stream_bytes_layer, 0.0)
            + jnp.where(has_dram | (mp.stream > 0), opt_bytes, 0.0)
            + 2.0 * spill
        )
    )
    dram_e = jnp.where(has_dram, tech.dram_energy_j_per_bit, tech.offwafer_energy_j_per_bit)
    off_bits = 8.0 * regions * (jnp.where(wafers_spanned > 1, 2.0 * grad_bytes, 0.0))
    sram_bits = 0.5 * hw_flops * 3.0 * bits / jnp.maximum(safe_sqrt(design.macs_per_core), 1.0)
    e_dyn = (
        0.5 * hw_flops * tech.mac_energy_j * safe_div(bits, 16.0)
        + sram_bits * tech.sram_energy_j_per_bit
        + noc_bit_hops * e_hop
        + cross_bits_total * _d2d_energy(design, tech)
        + dram_bits * dram_e
        + off_bits * tech.offwafer_energy_j_per_bit
    )
    silicon = phys.silicon_area_m2 * design.n_wafers
    static_w = tech.static_power_w_per_m2 * silicon
    energy = e_dyn + static_w * step
    power = safe_div(energy, step)
    power_per_wafer = safe_div(power, design.n_wafers)
    tokens = workload.global_batch * workload.seq_len

    viol = phys.violations
    viol = accumulate(viol, Violation.MEMORY_CAPACITY, ~dram_ok)
    viol = accumulate(viol, Violation.DEVICE_COUNT, (n_regions > R_tot) | (tp > R))
    viol = accumulate(viol, Violation.MAPPING, (jnp.mod(mdl.n_layers, p) != 0) | (m < 1))
    viol = accumulate(viol, Violation.POWER, power_per_wafer > tech.max_wafer_power_w)
    viol = accumulate(
        viol,
        Violation.POWER_DENSITY,
        safe_div(power_per_wafer, phys.silicon_area_m2) > tech.max_power_density_w_per_m2,
    )

    return Metrics(
        step_time_s=step,
        tokens_per_s=safe_div(tokens, step),
        mfu=safe_div(model_flops, step * peak_sys),
        hfu=safe_div(hw_flops, step * peak_sys),
        power_w=power,
        energy_per_token_j=safe_div(energy, tokens),
        model_flops=model_flops,
        hw_flops=hw_flops,
        peak_flops=peak_sys,
        mem_bytes=sram_need + jnp.where(has_dram, dram_need, 0.0),
        mem_capacity_bytes=sram_cap + dram_cap,
        compute_s=m * stage_compute,
        memory_s=m * stage_memory,
        overhead_s=jnp.zeros_like(step),
        tp_comm_s=m * stage_tp,
        pp_comm_s=m * p2p_s,
        bubble_s=bubble_s,
        dp_comm_s=dp_s,
        optimizer_s=optimizer_s,
        silicon_area_m2=silicon,
        reticle_utilisation=phys.reticle_utilisation,
        wafer_yield=phys.wafer_yield,
        n_devices=n_regions,
        violations=viol,
        feasible=viol == 0,
    )
