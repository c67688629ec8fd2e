r"""Inference cost on a wafer-scale system: terms, then composition (as training).

Each pipeline stage of each replica is a region of ``tp`` reticles. Per layer and forward
pass (``b`` sequences x ``q`` new tokens over a KV cache of ``c``,
:func:`~theseus_jax.cost.inference.forward_ops`): the four weight GEMMs run as mesh
streams on the region (:mod:`~theseus_jax.cost.noc`; in decode their column reductions are
the latency-bound mesh reductions), overlapped with weight streaming when weights are not
resident; attention reads the KV cache from SRAM (or DRAM when it does not fit) and pays two
2-D reductions (softmax max/sum, AV accumulation); vector work pays two norm reductions.
The logits GEMM runs on the last stage. Pipeline transfers cross the region boundary
(reticle crossings; off-wafer links when a pipeline spans wafers).

:func:`wafer_inference_terms` computes everything that does not depend on how the network
performs; :func:`compose_inference` turns terms and
:class:`~theseus_jax.cost.noc.NetworkFactors` (four stream groups: prefill's 4 layer
GEMMs, its logits, decode's 4 layer GEMMs, its logits) into
:class:`~theseus_jax.InferenceMetrics`. F0
(:func:`wafer_inference`) composes with the analytic factors, F1 with simulated ones.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._numerics import safe_div, safe_sqrt
from .._violations import Violation, accumulate
from ..design._wafer import DramKind
from ._records import InferenceMetrics
from .inference import common_violations, forward_ops, pipeline_times
from .noc import (
    NetworkFactors,
    analytic_factors,
    mesh_streams,
    noc_flow_terms,
    stream_times,
)
from .wafer import SystemTerms, d2d_energy_j_per_bit, dram_bw_per_reticle, system_terms

__all__ = [
    "WaferInferenceTerms",
    "wafer_inference_terms",
    "compose_inference",
    "wafer_inference",
]


class StageTerms(eqx.Module):
    """Non-network terms of one stage pass (per layer unless noted; seconds)."""

    layers: jnp.ndarray  # layers per stage
    weights_s: jnp.ndarray  # weight streaming (0 when resident)
    attn_compute_s: jnp.ndarray
    attn_kv_s: jnp.ndarray  # KV-cache reads and writes
    attn_reduce_s: jnp.ndarray  # two 2-D reductions (zero-load latency)
    vector_s: jnp.ndarray  # vector work and the two norm reductions


class WaferInferenceTerms(eqx.Module):
    """The network-independent terms of serving a static batch on a wafer (one mapping)."""

    streams: tuple  # Streams of prefill (4,) qkv/out/up/down, (1,) logits; decode the same
    prefill: StageTerms
    decode: StageTerms
    p2p_pre_bw_s: jnp.ndarray  # one prefill transfer at full reticle-crossing bandwidth
    p2p_dec_bw_s: jnp.ndarray
    p2p_lat_s: jnp.ndarray
    p2p_pre_off_s: jnp.ndarray  # the same over the off-wafer links
    p2p_dec_off_s: jnp.ndarray
    span_wafers: jnp.ndarray  # 1 when a pipeline spans wafers
    tp: jnp.ndarray  # reticles per stage region
    crosses: jnp.ndarray  # reticle boundaries along a region row (> 0: region spans reticles)
    m: jnp.ndarray  # micro-batches per replica
    pp: jnp.ndarray
    dp: jnp.ndarray
    output_len: jnp.ndarray
    out_tokens: jnp.ndarray  # tokens the replicas produce (batch rounded up to replicas)
    useful_tokens: jnp.ndarray  # of which requested
    max_tpot_s: jnp.ndarray  # latency bound (0: none)
    eta_reticle: jnp.ndarray
    flops: jnp.ndarray
    peak_flops: jnp.ndarray
    system: SystemTerms  # energy, memory and constraints (power, latency checked in compose)


def _stage(design, tech, phys, wl, b, q, c, tp, layers, kv_in_sram, weights_streamed):
    """Streams, stage terms and traffic volumes of one stage pass."""
    mdl = wl.model
    f = design.clock_hz
    bits = wl.precision_bits
    wb = bits / 8.0
    cores = tp * design.usable_cores_per_reticle()
    side = safe_sqrt(cores)
    crosses = jnp.maximum(safe_sqrt(tp) - 1.0, 0.0)
    ops = forward_ops(mdl, b, q, c, 1.0, wb, wl.kv_bits)
    layer = mesh_streams(design, tech, cores, ops.m, ops.n, ops.k, jnp.ones(4), bits, crosses, 1.0)
    logits = mesh_streams(
        design, tech, cores, b * jnp.ones(1), mdl.vocab_size, mdl.d_model, 1.0, bits, crosses, 1.0
    )
    hop_s = safe_div(tech.router_delay_cycles + tech.link_delay_cycles, f)
    red_hop_s = hop_s + safe_div(tech.reduce_add_cycles, f)  # a reduction hop adds on the core
    core_peak = 2.0 * design.macs_per_core * f * safe_div(16.0, bits)
    sram_bw = cores * design.sram_bw_bits_per_cycle / 8.0 * f
    stream_bw = tp * jnp.where(
        design.dram_kind != DramKind.NONE,
        dram_bw_per_reticle(design, tech, phys),
        safe_div(design.inter_wafer_bw_bytes_per_s, design.reticles_per_wafer()),
    )
    kv_bw = jnp.where(kv_in_sram, sram_bw, stream_bw)
    vec_rate = cores * design.macs_per_core * tech.vector_flops_per_mac * f
    w_bytes = ops.weight_params * wb
    stage = StageTerms(
        layers=layers,
        weights_s=jnp.where(weights_streamed, safe_div(w_bytes, stream_bw), 0.0),
        attn_compute_s=safe_div(ops.attn_flops, cores * core_peak),
        attn_kv_s=safe_div(ops.kv_read_bytes + ops.kv_write_bytes, kv_bw),
        # softmax max/sum and the AV accumulation: two 2-D reductions over the region, each
        # a row then a column reduction run from both ends to the middle (side/2 hops each)
        attn_reduce_s=2.0 * side * red_hop_s,
        vector_s=safe_div(ops.vec_flops, vec_rate) + 2.0 * side * red_hop_s,  # two norms
    )
    flops = layers * (jnp.sum(ops.gemm_flops()) + ops.attn_flops)
    logit_flops = 2.0 * b * mdl.vocab_size * mdl.d_model  # last stage only
    volumes = dict(
        flops=flops,
        logit_flops=logit_flops,
        noc_bit_hops=layers * jnp.sum(layer.bit_hops) + logits.bit_hops[0],
        cross_bits=layers * jnp.sum(layer.cross_bits) + logits.cross_bits[0],
        dram_bytes=layers
        * (
            jnp.where(weights_streamed, w_bytes, 0.0)
            + jnp.where(kv_in_sram, 0.0, ops.kv_read_bytes + ops.kv_write_bytes)
        ),
        sram_bits=8.0 * layers * (w_bytes + ops.kv_read_bytes)
        + 0.5
        * (flops + logit_flops)
        * 3.0
        * bits
        / jnp.maximum(safe_sqrt(design.macs_per_core), 1.0),
    )
    return (layer, logits), stage, volumes


def wafer_inference_terms(design, tech, phys, wl, mp) -> WaferInferenceTerms:
    """The terms of serving ``wl`` on ``design`` under mapping ``mp``.

    Mapping fields used: ``tp`` (reticles per stage region, 0 = a whole wafer), ``pp``,
    ``dp`` (0 = as many replicas as fit), ``micro_batch``, ``stream`` (1 = weights read from
    DRAM / off-wafer memory every pass instead of resident in SRAM).
    """
    mdl = wl.model
    R = design.reticles_per_wafer()
    R_tot = R * design.n_wafers
    tp = jnp.where(mp.tp > 0, mp.tp, R)
    p = mp.pp
    dp = jnp.where(mp.dp > 0, mp.dp, jnp.floor(safe_div(R_tot, tp * p)))
    dp = jnp.maximum(dp, 1.0)
    b_rep = jnp.ceil(safe_div(wl.batch, dp) - 1e-4)
    mb = jnp.clip(mp.micro_batch, 1.0, b_rep)
    m = jnp.ceil(safe_div(b_rep, mb) - 1e-4)
    layers = safe_div(mdl.n_layers, p)
    wb = wl.precision_bits / 8.0
    cores = tp * design.usable_cores_per_reticle()
    streamed = mp.stream > 0
    has_dram = design.dram_kind != DramKind.NONE

    # capacity: weights (unless streamed) then KV cache in SRAM; what does not fit goes to DRAM
    sram_cap = cores * design.sram_bytes_per_core
    emb = mdl.vocab_size * mdl.d_model * wb
    w_stage = safe_div(mdl.params_total() - mdl.embedding_params(), p) * wb + emb
    ops0 = forward_ops(mdl, 1.0, 1.0, 0.0, 1.0, wb, wl.kv_bits)
    kv_stage = b_rep * (wl.prompt_len + wl.output_len) * ops0.kv_bytes_per_token * layers
    act = (
        4.0
        * jnp.minimum(mb * wl.prompt_len, wl.prefill_chunk_tokens)
        * (mdl.d_model + mdl.d_ff)
        * wb
    )
    w_sram = jnp.where(streamed, 2.0 * safe_div(w_stage, layers * 4.0), w_stage)
    kv_in_sram = w_sram + kv_stage + act <= sram_cap
    sram_need = w_sram + jnp.where(kv_in_sram, kv_stage, 0.0) + act
    dram_cap = tp * safe_div(design.dram_capacity_bytes(), R)
    dram_need = jnp.where(streamed & has_dram, w_stage, 0.0) + jnp.where(kv_in_sram, 0.0, kv_stage)
    fits = (sram_need <= sram_cap) & jnp.where(has_dram, dram_need <= dram_cap, kv_in_sram)

    args = (design, tech, phys, wl)
    s_pre, pre, v_pre = _stage(*args, mb, wl.prompt_len, 0.0, tp, layers, kv_in_sram, streamed)
    s_dec, dec, v_dec = _stage(*args, mb, 1.0, wl.mean_context(), tp, layers, kv_in_sram, streamed)
    side = safe_sqrt(cores)
    hop_s = safe_div(tech.router_delay_cycles + tech.link_delay_cycles, design.clock_hz)
    crossing_bw = side * design.d2d_link_bw_bytes_per_s()  # region boundary, ideal network
    off_bw = design.inter_wafer_bw_bytes_per_s
    pre_bytes = mb * wl.prompt_len * mdl.d_model * wb
    dec_bytes = mb * mdl.d_model * wb

    steps = jnp.maximum(wl.output_len - 1.0, 0.0)
    regions = p * dp
    per = lambda key: regions * m * (v_pre[key] + steps * v_dec[key])  # noqa: E731
    e_hop = tech.router_energy_j_per_bit + tech.wire_energy_j_per_bit_m * phys.core_pitch_m
    dram_e = jnp.where(has_dram, tech.dram_energy_j_per_bit, tech.offwafer_energy_j_per_bit)
    flops_run = per("flops") + dp * m * (v_pre["logit_flops"] + steps * v_dec["logit_flops"])
    e_dyn = (
        0.5 * flops_run * tech.mac_energy_j * safe_div(wl.precision_bits, 16.0)
        + per("sram_bits") * tech.sram_energy_j_per_bit
        + per("noc_bit_hops") * e_hop
        + per("cross_bits") * d2d_energy_j_per_bit(design, tech)
        + 8.0 * per("dram_bytes") * dram_e
    )
    out_tokens = dp * b_rep * wl.output_len
    peak = (
        R_tot
        * design.usable_cores_per_reticle()
        * 2.0
        * design.macs_per_core
        * (design.clock_hz * safe_div(16.0, wl.precision_bits))
    )
    viol = phys.violations
    viol = accumulate(viol, Violation.MEMORY_CAPACITY, ~fits)
    viol = accumulate(viol, Violation.DEVICE_COUNT, (tp * p * dp > R_tot) | (tp > R))
    # the mapping checks only (no latency bound: tpot = 0 here); compose adds latency
    viol = common_violations(viol, wl, mdl, 1.0, p, dp, jnp.zeros(()))
    return WaferInferenceTerms(
        streams=(*s_pre, *s_dec),
        prefill=pre,
        decode=dec,
        p2p_pre_bw_s=safe_div(pre_bytes, crossing_bw),
        p2p_dec_bw_s=safe_div(dec_bytes, crossing_bw),
        p2p_lat_s=side * hop_s + safe_div(tech.d2d_delay_cycles, design.clock_hz),
        p2p_pre_off_s=safe_div(pre_bytes, off_bw),
        p2p_dec_off_s=safe_div(dec_bytes, off_bw),
        span_wafers=jnp.where(tp * p > R, 1.0, 0.0),
        tp=tp,
        crosses=jnp.maximum(safe_sqrt(tp) - 1.0, 0.0),
        m=m,
        pp=p,
        dp=dp,
        output_len=wl.output_len,
        out_tokens=out_tokens,
        useful_tokens=jnp.minimum(out_tokens, wl.batch * wl.output_len),
        max_tpot_s=wl.max_tpot_s,
        eta_reticle=noc_flow_terms(design, tech, 1.0)[0],
        flops=flops_run,
        peak_flops=peak,
        system=system_terms(
            design,
            tech,
            phys,
            dyn_energy_j=e_dyn,
            mem_bytes=sram_need + jnp.where(has_dram, dram_need, 0.0),
            mem_capacity_bytes=sram_cap + dram_cap,
            n_devices=tp * p * dp,
            violations=viol,
        ),
    )


def _stage_time(st: StageTerms, t_gemm, t_comp, t_logit, t_logit_comp):
    """``(total, compute, comm, weights, kv)`` of one stage pass from its GEMM times (4
    layer GEMMs, then the logits)."""
    t_gemms = jnp.sum(t_gemm)
    layer = (
        jnp.maximum(t_gemms, st.weights_s)
        + jnp.maximum(st.attn_compute_s, st.attn_kv_s)
        + st.attn_reduce_s
        + st.vector_s
    )
    comm = st.layers * (jnp.sum(t_gemm - t_comp) + st.attn_reduce_s) + (
        t_logit[0] - t_logit_comp[0]
    )
    weights = st.layers * jnp.maximum(st.weights_s - t_gemms, 0.0)
    kv = st.layers * jnp.maximum(st.attn_kv_s - st.attn_compute_s, 0.0)
    total = st.layers * layer + t_logit[0]
    return total, total - comm - weights - kv, comm, weights, kv  # parts sum to the total


def compose_inference(terms: WaferInferenceTerms, factors: NetworkFactors) -> InferenceMetrics:
    """Inference metrics from terms and the network's factors (pure, jittable): stage
    times of prefill and decode, the pipeline (:func:`~theseus_jax.cost.inference.
    pipeline_times`), energy = dynamic + static power over the run, then the power and
    latency constraints."""
    t = terms
    (pl, _), (po, _), (dl, _), (do, _) = stream_times(t.streams, factors)
    c = [g.t_comp_s for g in t.streams]
    pre = _stage_time(t.prefill, pl, c[0], po, c[1])
    dec = _stage_time(t.decode, dl, c[2], do, c[3])

    def p2p(bw_s, off_s):
        on = safe_div(bw_s, factors.reticle_bw) + t.p2p_lat_s
        one = jnp.where(t.span_wafers > 0, jnp.maximum(on, off_s), on)
        return jnp.where(t.pp > 1, one, 0.0)

    p2p_pre = p2p(t.p2p_pre_bw_s, t.p2p_pre_off_s)
    p2p_dec = p2p(t.p2p_dec_bw_s, t.p2p_dec_off_s)
    ttft, tpot, total = pipeline_times(pre[0], dec[0], p2p_pre, p2p_dec, t.m, t.pp, t.output_len)
    energy, power, viol = t.system.energy(total)
    tps = safe_div(t.useful_tokens, total)
    viol = accumulate(viol, Violation.LATENCY, (t.max_tpot_s > 0) & (tpot > t.max_tpot_s))
    zero = jnp.zeros_like(ttft)
    n_dec = jnp.maximum(t.m, t.pp)
    return InferenceMetrics(
        ttft_s=ttft,
        tpot_s=tpot,
        total_time_s=total,
        tokens_per_s=tps,
        tokens_per_s_per_user=safe_div(1.0, tpot),
        tokens_per_s_per_w=safe_div(tps, power),
        power_w=power,
        energy_per_token_j=safe_div(energy, t.out_tokens),
        flops=t.flops,
        peak_flops=t.peak_flops,
        mem_bytes=t.system.mem_bytes,
        mem_capacity_bytes=t.system.mem_capacity_bytes,
        prefill_compute_s=t.pp * pre[1],
        prefill_memory_s=t.pp * (pre[3] + pre[4]),
        prefill_comm_s=t.pp * pre[2] + (t.pp - 1.0) * p2p_pre,
        prefill_overhead_s=zero,
        decode_compute_s=n_dec * dec[1],
        decode_weights_s=n_dec * dec[3],
        decode_kv_s=n_dec * dec[4],
        decode_comm_s=n_dec * dec[2] + t.pp * p2p_dec,
        decode_overhead_s=zero,
        silicon_area_m2=t.system.silicon_area_m2,
        reticle_utilisation=t.system.reticle_utilisation,
        wafer_yield=t.system.wafer_yield,
        n_devices=t.system.n_devices,
        violations=viol,
        feasible=viol == 0,
    )


def f0_factors(terms: WaferInferenceTerms) -> NetworkFactors:
    """F0's factors for ``terms`` (:func:`~theseus_jax.cost.noc.analytic_factors`)."""
    return analytic_factors(terms.streams, terms.eta_reticle)


def wafer_inference(design, tech, phys, wl, mp) -> InferenceMetrics:
    """F0 inference metrics of ``wl`` on a wafer-scale system under mapping ``mp``:
    :func:`compose_inference` of :func:`wafer_inference_terms` with F0's factors."""
    terms = wafer_inference_terms(design, tech, phys, wl, mp)
    return compose_inference(terms, f0_factors(terms))
