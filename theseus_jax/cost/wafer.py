r"""Training cost of one mapping on one wafer-scale system: terms, then composition.

:func:`wafer_training_terms` computes everything that does not depend on how the network
performs (a :class:`WaferTrainingTerms`); :func:`compose_training` turns terms and
:class:`~theseus_jax.cost.noc.NetworkFactors` into :class:`~theseus_jax.Metrics`. F0
(:func:`wafer_training_step`) composes with the analytic factors; F1
(:mod:`theseus_jax.fidelity`) composes the same terms with simulated ones.

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

import equinox as eqx
import jax.numpy as jnp

from .._numerics import safe_div, safe_sqrt
from .._violations import Violation, accumulate
from ..design._wafer import DramKind, Integration
from ._ops import ATTN_CORE, N_GEMMS, layer_ops
from ._records import Metrics
from .noc import (
    NetworkFactors,
    Streams,
    analytic_factors,
    mesh_streams,
    noc_flow_terms,
    stream_times,
)
from .training import (
    activation_bytes,
    inflight_microbatches,
    n_microbatches,
    recompute_passes,
    state_bytes_per_param,
)

__all__ = [
    "WaferTrainingTerms",
    "wafer_training_terms",
    "compose_training",
    "wafer_training_step",
    "d2d_energy_j_per_bit",
    "dram_bw_per_reticle",
    "f0_factors",
    "SystemTerms",
    "system_terms",
]


def d2d_energy_j_per_bit(design, tech):
    """Energy per bit crossing a reticle boundary, by integration style (J/bit)."""
    return jnp.where(
        design.integration == Integration.INFO_SOW,
        tech.d2d_energy_infosow_j_per_bit,
        tech.d2d_energy_stitched_j_per_bit,
    )


def dram_bw_per_reticle(design, tech, phys):
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


class WaferTrainingTerms(eqx.Module):
    """The network-independent terms of one training step on a wafer (one mapping).

    Everything :func:`compose_training` needs besides the :class:`~theseus_jax.cost.noc.
    NetworkFactors`: the mesh streams of the 6 layer GEMMs and of the logits GEMM (two
    groups) under an ideal network, and every other time, energy, memory and feasibility term of
    the step (seconds, joules, bytes; scalars unless noted).
    """

    streams: tuple[Streams, Streams]  # (6,) qkv, attn-score, attn-AV, out, up, down; (1,) logits
    passes: jnp.ndarray  # (6,) layer-GEMM passes per micro-batch (fwd + 2 bwd + recompute)
    tp: jnp.ndarray  # reticles per stage region
    crosses: jnp.ndarray  # reticle boundaries along a region row (> 0: region spans reticles)
    layers: jnp.ndarray  # layers per pipeline stage
    m: jnp.ndarray  # micro-batches per step
    pp: jnp.ndarray
    dp: jnp.ndarray
    interleave: jnp.ndarray
    full: jnp.ndarray  # full-recompute passes (0 or 1)
    dp_overlap: jnp.ndarray
    stream: jnp.ndarray  # 1: weights streamed from DRAM / off-wafer memory
    a2a_s: jnp.ndarray  # attention all-to-all per layer (all passes), full bisection bw
    vec_s: jnp.ndarray  # vector work per layer (all passes)
    stream_s_layer: jnp.ndarray  # weight streaming per layer per micro-batch
    stream_bw_bytes_per_s: jnp.ndarray  # the region's DRAM / off-wafer streaming bandwidth
    spill_s: jnp.ndarray  # activation spill per micro-batch
    p2p_bw_s: jnp.ndarray  # one pipeline transfer at full reticle-crossing bandwidth
    p2p_lat_s: jnp.ndarray
    p2p_off_s: jnp.ndarray  # the same over the off-wafer links (pipeline spans wafers)
    span_wafers: jnp.ndarray  # 1 when a pipeline spans wafers
    dp_on_s: jnp.ndarray  # DP reduction at full reticle-crossing bandwidth
    dp_off_s: jnp.ndarray  # DP reduction over the off-wafer links
    dp_multi: jnp.ndarray  # 1 when dp > 1
    dp_spans: jnp.ndarray  # 1 when the replicas span wafers
    optimizer_s: jnp.ndarray
    eta_reticle: jnp.ndarray  # F0's credit-loop efficiency of reticle crossings
    tokens: jnp.ndarray
    model_flops: jnp.ndarray
    hw_flops: jnp.ndarray
    peak_flops: jnp.ndarray
    system: SystemTerms  # energy, memory and constraints (power is checked in compose)


def wafer_training_terms(design, tech, phys, workload, mp) -> WaferTrainingTerms:
    """The terms of one training step of ``workload`` on ``design`` under mapping ``mp``.

    ``phys`` is :func:`theseus_jax.cost.physical.physical_wsc` of the design (computed once
    per design, shared by all its mappings). See the module docstring for the model.
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

    # ---- GEMM streams on the region mesh: 6 layer GEMMs, then the logits (always overlapped)
    layer = mesh_streams(
        design, tech, cores, ops.m, ops.n, ops.k, ops.count, bits, crosses, mp.tp_overlap
    )
    logits = mesh_streams(
        design, tech, cores, T * jnp.ones(1), mdl.vocab_size, mdl.d_model, 1.0, bits, crosses, 1.0
    )
    is_attn = jnp.zeros(N_GEMMS).at[jnp.array(ATTN_CORE)].set(1.0)
    passes = 3.0 + full + sel * is_attn
    layer_flops = jnp.sum(ops.gemm_flops() * passes)
    layer_bit_hops = jnp.sum(layer.bit_hops * passes)
    layer_cross_bits = jnp.sum(layer.cross_bits * passes)
    logit_bit_hops = logits.bit_hops[0]
    logit_cross_bits = logits.cross_bits[0]

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
    vec_s = safe_div(ops.vec_flops_fwd * (3.0 + full), vec_rate)
    logit_flops = 3.0 * 2.0 * T * mdl.vocab_size * mdl.d_model  # last stage: fwd + 2 bwd

    # ---- weights: resident or streamed --------------------------------------------------------
    dram_bw_ret = dram_bw_per_reticle(design, tech, phys)
    offwafer_bw_ret = safe_div(design.inter_wafer_bw_bytes_per_s, R)
    has_dram = design.dram_kind != DramKind.NONE
    stream_bw = tp * jnp.where(has_dram, dram_bw_ret, offwafer_bw_ret)
    layer_w_bytes = ops.weight_params * bytes_el
    # per micro-batch: weights read in fwd, bwd (and recompute); gradients written in bwd
    stream_bytes_layer = layer_w_bytes * (2.0 + full) + ops.weight_params * workload.main_grad_bytes
    stream_s_layer = safe_div(stream_bytes_layer, stream_bw)

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
    p2p_bytes = T * mdl.d_model * bytes_el
    crossing_bw = side * design.d2d_link_bw_bytes_per_s()  # region boundary, ideal network
    p2p_lat_s = safe_div(
        side * (tech.router_delay_cycles + tech.link_delay_cycles) + tech.d2d_delay_cycles, f
    )
    pipes_per_wafer = jnp.maximum(safe_div(R, tp * p), 1.0)
    p2p_off_s = safe_div(p2p_bytes * pipes_per_wafer, design.inter_wafer_bw_bytes_per_s)

    # ---- data parallel gradient reduction ---------------------------------------------------
    grad_bytes = params_region * workload.main_grad_bytes
    frac = safe_div(dp - 1.0, dp)
    regions_per_wafer = jnp.minimum(safe_div(R, tp), dp * p)
    wafers_spanned = jnp.ceil(safe_div(dp * tp * p, R) - 1e-4)
    dp_off_s = (
        2.0 * frac * safe_div(grad_bytes * regions_per_wafer, design.inter_wafer_bw_bytes_per_s)
    )

    # ---- optimizer update --------------------------------------------------------------------
    opt_bytes = params_region * (30.0 + workload.main_grad_bytes)
    opt_sram_s = safe_div(params_region * 12.0, vec_rate)  # ~12 FLOP per Adam update
    opt_dram_s = safe_div(opt_bytes, stream_bw)
    optimizer_s = jnp.where(
        (mp.stream > 0) | has_dram, jnp.maximum(opt_dram_s, opt_sram_s), opt_sram_s
    )

    # ---- FLOPs and dynamic energy (traffic volumes: independent of the network's timing) ----
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
    e_hop = tech.router_energy_j_per_bit + tech.wire_energy_j_per_bit_m * phys.core_pitch_m
    noc_bit_hops = (
        m * regions * layers * (layer_bit_hops + a2a_bit_hops) + m * dp * 3.0 * logit_bit_hops
    )
    cross_bits_total = m * regions * layers * layer_cross_bits + m * dp * 3.0 * logit_cross_bits
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
        + cross_bits_total * d2d_energy_j_per_bit(design, tech)
        + dram_bits * dram_e
        + off_bits * tech.offwafer_energy_j_per_bit
    )
    viol = phys.violations
    viol = accumulate(viol, Violation.MEMORY_CAPACITY, ~dram_ok)
    viol = accumulate(viol, Violation.DEVICE_COUNT, (n_regions > R_tot) | (tp > R))
    viol = accumulate(viol, Violation.MAPPING, (jnp.mod(mdl.n_layers, p) != 0) | (m < 1))
    flag = lambda c: jnp.where(c, 1.0, 0.0)  # noqa: E731

    return WaferTrainingTerms(
        streams=(layer, logits),
        passes=passes,
        tp=tp,
        crosses=crosses,
        layers=layers,
        m=m,
        pp=p,
        dp=dp,
        interleave=mp.interleave,
        full=full,
        dp_overlap=mp.dp_overlap,
        stream=flag(mp.stream > 0),
        a2a_s=a2a_s,
        vec_s=vec_s,
        stream_s_layer=stream_s_layer,
        stream_bw_bytes_per_s=stream_bw,
        spill_s=spill_s,
        p2p_bw_s=safe_div(p2p_bytes, crossing_bw),
        p2p_lat_s=p2p_lat_s,
        p2p_off_s=p2p_off_s,
        span_wafers=flag(tp * p > R),
        dp_on_s=2.0 * frac * safe_div(grad_bytes, crossing_bw),
        dp_off_s=dp_off_s,
        dp_multi=flag(dp > 1),
        dp_spans=flag(wafers_spanned > 1),
        optimizer_s=optimizer_s,
        eta_reticle=noc_flow_terms(design, tech, 1.0)[0],
        tokens=workload.global_batch * workload.seq_len,
        model_flops=model_flops,
        hw_flops=hw_flops,
        peak_flops=peak_sys,
        system=system_terms(
            design,
            tech,
            phys,
            dyn_energy_j=e_dyn,
            mem_bytes=sram_need + jnp.where(has_dram, dram_need, 0.0),
            mem_capacity_bytes=sram_cap + dram_cap,
            n_devices=n_regions,
            violations=viol,
        ),
    )


class SystemTerms(eqx.Module):
    """Energy, memory and feasibility terms every wafer cost function carries (scalars, SI):
    the dynamic energy of the work (traffic volumes, not timing), static power, the power
    limits, memory need and capacity, and the constraints known before timing."""

    dyn_energy_j: jnp.ndarray
    static_w: jnp.ndarray
    n_wafers: jnp.ndarray
    wafer_silicon_m2: jnp.ndarray
    max_wafer_power_w: jnp.ndarray
    max_power_density_w_per_m2: jnp.ndarray
    mem_bytes: jnp.ndarray
    mem_capacity_bytes: jnp.ndarray
    silicon_area_m2: jnp.ndarray
    reticle_utilisation: jnp.ndarray
    wafer_yield: jnp.ndarray
    n_devices: jnp.ndarray
    violations: jnp.ndarray

    def energy(self, time_s):
        """``(energy J, power W, violations)`` over ``time_s``: dynamic energy plus static
        power, then the power and power-density constraints added."""
        energy = self.dyn_energy_j + self.static_w * time_s
        power = safe_div(energy, time_s)
        per_wafer = safe_div(power, self.n_wafers)
        viol = accumulate(self.violations, Violation.POWER, per_wafer > self.max_wafer_power_w)
        viol = accumulate(
            viol,
            Violation.POWER_DENSITY,
            safe_div(per_wafer, self.wafer_silicon_m2) > self.max_power_density_w_per_m2,
        )
        return energy, power, viol


def system_terms(
    design, tech, phys, *, dyn_energy_j, mem_bytes, mem_capacity_bytes, n_devices, violations
) -> SystemTerms:
    """:class:`SystemTerms` of ``design``: static power over its powered silicon, the
    technology's power limits, and the given energy, memory and constraint terms."""
    silicon = phys.silicon_area_m2 * design.n_wafers
    return SystemTerms(
        dyn_energy_j=dyn_energy_j,
        static_w=tech.static_power_w_per_m2 * silicon,
        n_wafers=design.n_wafers,
        wafer_silicon_m2=phys.silicon_area_m2,
        max_wafer_power_w=tech.max_wafer_power_w,
        max_power_density_w_per_m2=tech.max_power_density_w_per_m2,
        mem_bytes=mem_bytes,
        mem_capacity_bytes=mem_capacity_bytes,
        silicon_area_m2=silicon,
        reticle_utilisation=phys.reticle_utilisation,
        wafer_yield=phys.wafer_yield,
        n_devices=n_devices,
        violations=violations,
    )


def compose_training(terms: WaferTrainingTerms, factors: NetworkFactors) -> Metrics:
    r"""Metrics of a training step from its terms and the network's factors (pure, jittable).

    Per micro-batch and stage: GEMMs (:func:`~theseus_jax.cost.noc.stream_times`; the TP
    share is the time beyond compute), the all-to-all at ``a2a_s / a2a_bw``, vector work,
    the weight-streaming stall ``max(stream - layer work, 0)``, the spill, and the pipeline
    transfer (on-wafer at ``reticle_bw``, or the off-wafer link when slower). The step is

    .. math::

        t = (m + (p - 1)/v)\, t_{mb} + t_{dp} + t_{opt}

    with the DP reduction hidden behind the last micro-batch's backward pass when it
    overlaps. Energy is the dynamic energy plus static power over the step.
    """
    t = terms
    (t_gemm, _), (t_logit, _) = stream_times(t.streams, factors)
    layer_comp = jnp.sum(t.streams[0].t_comp_s * t.passes)
    layer_gemm = jnp.sum(t_gemm * t.passes)
    logit_s = 3.0 * t_logit[0]  # fwd + 2 bwd
    a2a_s = safe_div(t.a2a_s, factors.a2a_bw)
    stall = jnp.where(
        t.stream > 0, jnp.maximum(t.stream_s_layer - (layer_gemm + t.vec_s + a2a_s), 0.0), 0.0
    )
    stage_compute = t.layers * (layer_comp + t.vec_s) + logit_s
    stage_tp = t.layers * (layer_gemm - layer_comp + a2a_s)
    stage_memory = t.layers * stall + t.spill_s
    on_wafer = safe_div(t.p2p_bw_s, factors.reticle_bw) + t.p2p_lat_s
    p2p_one = jnp.where(t.span_wafers > 0, jnp.maximum(on_wafer, t.p2p_off_s), on_wafer)
    p2p_s = jnp.where(t.pp > 1, 2.0 * t.interleave * p2p_one, 0.0)
    t_mb = stage_compute + stage_tp + stage_memory + p2p_s
    bubble_s = safe_div(t.pp - 1.0, t.interleave) * t_mb

    on_dp = safe_div(t.dp_on_s, factors.reticle_bw)
    dp_raw = jnp.where(
        t.dp_multi > 0, jnp.where(t.dp_spans > 0, jnp.maximum(on_dp, t.dp_off_s), on_dp), 0.0
    )
    window = safe_div(2.0 + t.full, 3.0 + t.full) * (t_mb - logit_s)  # last backward pass
    dp_s = jnp.where(t.dp_overlap > 0, jnp.maximum(dp_raw - window, 0.0), dp_raw)
    step = (t.m + safe_div(t.pp - 1.0, t.interleave)) * t_mb + dp_s + t.optimizer_s

    energy, power, viol = t.system.energy(step)
    return Metrics(
        step_time_s=step,
        tokens_per_s=safe_div(t.tokens, step),
        mfu=safe_div(t.model_flops, step * t.peak_flops),
        hfu=safe_div(t.hw_flops, step * t.peak_flops),
        power_w=power,
        energy_per_token_j=safe_div(energy, t.tokens),
        model_flops=t.model_flops,
        hw_flops=t.hw_flops,
        peak_flops=t.peak_flops,
        mem_bytes=t.system.mem_bytes,
        mem_capacity_bytes=t.system.mem_capacity_bytes,
        compute_s=t.m * stage_compute,
        memory_s=t.m * stage_memory,
        overhead_s=jnp.zeros_like(step),
        tp_comm_s=t.m * stage_tp,
        pp_comm_s=t.m * p2p_s,
        bubble_s=bubble_s,
        dp_comm_s=dp_s,
        optimizer_s=t.optimizer_s,
        silicon_area_m2=t.system.silicon_area_m2,
        reticle_utilisation=t.system.reticle_utilisation,
        wafer_yield=t.system.wafer_yield,
        n_devices=t.system.n_devices,
        violations=viol,
        feasible=viol == 0,
    )


def f0_factors(terms) -> NetworkFactors:
    """F0's factors for ``terms`` (:func:`~theseus_jax.cost.noc.analytic_factors`)."""
    return analytic_factors(terms.streams, terms.eta_reticle)


def wafer_training_step(design, tech, phys, workload, mp) -> Metrics:
    """F0 metrics of one training step on wafer-scale system ``design`` under mapping ``mp``:
    :func:`compose_training` of :func:`wafer_training_terms` with F0's analytic factors."""
    terms = wafer_training_terms(design, tech, phys, workload, mp)
    return compose_training(terms, f0_factors(terms))
