r"""F0 inference cost: prefill and decode with a KV cache, on GPU clusters and wafers.

One forward pass of ``b`` sequences, each adding ``q`` tokens (prefill: ``q`` = prompt;
decode: ``q = 1``) on top of a KV cache of ``c`` tokens, per layer and TP shard ``t``:

* weight GEMMs qkv, out, up, down with ``M = b q`` (MoE: ``M`` per expert ``b q k / E``),
  reading every weight once per pass — at small ``M`` the pass is bound by weight reads;
* attention: ``2 b q c_a (d_qk + d_v) a / t`` FLOPs with ``c_a = q/2 + c`` (causal prefill
  over the prompt, all of the cache in decode) and ``b c kv / t`` bytes of KV read, ``b q kv/t``
  written (``kv`` = KV bytes per token per layer: ``2 g d_head`` or MLA ``kv_lora + rope``);
* norms, residuals and activation functions (memory-bound on GPUs, vector work on wafers);
* two TP all-reduces of ``b q h`` values: tiny in decode, so their latency (alpha) matters;
* every kernel pays the launch overhead on GPUs; every mesh GEMM pays its hop latency on a
  wafer. These per-token latencies are what make real decoding slower than a roofline.

Pipeline: with ``p`` stages and ``m`` micro-batches, the prefill of a micro-batch leaves the
pipeline after ``p`` stage times (its time to first token), the whole batch after
``m + p - 1``; a decode step of the whole batch takes ``max(m, p)`` stage times, which is the
time per output token of each sequence. A static batch produces ``b * output_len`` tokens in
``prefill + (output_len - 1) * tpot``.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._numerics import safe_div, safe_sqrt
from .._violations import Violation, accumulate
from ..design._wafer import DramKind
from ..metrics._metrics import InferenceMetrics
from .collectives import allreduce_time, p2p_time
from .gpu import gpu_gemm_time
from .wafer import _d2d_energy, _dram_bw_per_reticle, noc_flow_terms, region_gemm

__all__ = ["ForwardOps", "forward_ops", "gpu_inference", "wafer_inference"]


class ForwardOps(eqx.Module):
    """One layer of one forward pass on one TP shard (see module docstring)."""

    m: jnp.ndarray  # (4,) weight GEMMs: qkv, out, up, down
    n: jnp.ndarray
    k: jnp.ndarray
    m_eff: jnp.ndarray
    attn_flops: jnp.ndarray
    kv_read_bytes: jnp.ndarray
    kv_write_bytes: jnp.ndarray
    elem_bytes: jnp.ndarray
    vec_flops: jnp.ndarray
    tp_bytes: jnp.ndarray
    weight_params: jnp.ndarray
    kv_bytes_per_token: jnp.ndarray  # per layer per shard

    def gemm_flops(self):
        return 2.0 * self.m * self.n * self.k


def forward_ops(model, b, q, c, t, act_bytes, kv_bits) -> ForwardOps:
    """Per-layer operations of a forward pass (``b`` sequences x ``q`` new tokens, cache ``c``)."""
    h = model.d_model
    a = model.n_heads
    L = model.n_layers
    gated = model.ffn_gated
    T = b * q
    f_act = safe_div(model.ffn_params_active(), L * (2.0 + gated) * h)
    moe_frac = safe_div(model.n_moe_layers(), L)
    tok_per_expert = safe_div(T * model.top_k, jnp.maximum(model.n_experts, 1.0))
    m_ffn = (1.0 - moe_frac) * T + moe_frac * jnp.minimum(T, tok_per_expert)
    m = jnp.stack([T, T, T, T])
    n = jnp.stack([model.attn_in_params() / (h * t), h, (1.0 + gated) * f_act / t, h])
    k = jnp.stack([h, model.v_dim() / t, h, f_act / t])
    m_eff = jnp.stack([T, T, m_ffn, m_ffn])
    c_attn = 0.5 * q + c
    attn_flops = 2.0 * T * c_attn * (model.q_dim() + model.v_dim()) / t
    kv_tok = safe_div(model.kv_cache_bytes_per_token(kv_bits / 8.0), L) / t
    th = T * h
    elem = (
        act_bytes * (2.0 * 2.0 * th + 2.0 * 3.0 * th)
        + act_bytes * (2.0 * (1.0 + gated) + 2.0) * T * f_act / t
    )
    vec = 2.0 * 8.0 * th + 2.0 * 3.0 * th + 8.0 * T * f_act / t + 5.0 * T * c_attn * a / t
    return ForwardOps(
        m=m,
        n=n,
        k=k,
        m_eff=m_eff,
        attn_flops=attn_flops,
        kv_read_bytes=b * c * kv_tok,
        kv_write_bytes=T * kv_tok,
        elem_bytes=elem,
        vec_flops=vec,
        tp_bytes=2.0 * th,
        weight_params=(model.attn_params() + safe_div(model.ffn_params_total(), L)) / t,
        kv_bytes_per_token=kv_tok,
    )


def _pipeline(stage_pre, stage_dec, p2p_pre, p2p_dec, m, p, s_out):
    """(ttft, tpot, total) from per-micro-batch stage times (see module docstring)."""
    ttft = p * stage_pre + (p - 1.0) * p2p_pre
    prefill_all = (m + p - 1.0) * stage_pre + (p - 1.0) * p2p_pre
    tpot = jnp.maximum(m, p) * stage_dec + p * p2p_dec
    total = prefill_all + jnp.maximum(s_out - 1.0, 0.0) * tpot
    return ttft, tpot, total


def _common_violations(viol, wl, mdl, t, p, dp, tpot):
    viol = accumulate(
        viol,
        Violation.MAPPING,
        (jnp.mod(mdl.n_heads, t) != 0) | (jnp.mod(mdl.n_layers, p) != 0) | (dp < 1),
    )
    viol = accumulate(viol, Violation.LATENCY, (wl.max_tpot_s > 0) & (tpot > wl.max_tpot_s))
    return viol


# ---- GPU clusters ------------------------------------------------------------------------------
def _gpu_stage(sys, wl, mp, b, q, c, t, layers, peak, last_tokens):
    """Time components (compute, memory, comm, overhead) of one stage pass and its traffic."""
    mdl = wl.model
    wb = wl.precision_bits / 8.0
    ops = forward_ops(mdl, b, q, c, t, wb, wl.kv_bits)
    hbm = sys.hbm_bw_bytes_per_s * sys.hbm_efficiency
    eff = sys.gemm_efficiency_at(wl.precision_bits)  # FP8 GEMMs have their own efficiency
    t_g, bytes_g = gpu_gemm_time(
        sys, ops.m, ops.n, ops.k, 1.0, peak, ops.m_eff, act_bytes=wb, w_bytes=wb, eff=eff
    )
    t_gemm = jnp.sum(t_g)
    # attention (fused kernel): tensor-core FLOPs or KV reads, whichever binds
    t_attn_c = safe_div(ops.attn_flops, peak * sys.gemm_efficiency)
    t_attn_m = safe_div(ops.kv_read_bytes + ops.kv_write_bytes, hbm)
    t_elem = safe_div(ops.elem_bytes, hbm)
    intra = t <= sys.gpus_per_node
    bw = jnp.where(intra, sys.nvlink_bw_bytes_per_s, sys.ib_bw_bytes_per_s)
    alpha = jnp.where(intra, sys.nvlink_latency_s, sys.ib_latency_s)
    t_comm = 2.0 * allreduce_time(ops.tp_bytes, t, bw, alpha)
    n_kernels = 4.0 + 1.0 + 7.0  # 4 GEMMs, fused attention, norms/residual/activation/rope
    t_over = n_kernels * sys.kernel_overhead_s
    # logits of the last token of each sequence on the last stage
    t_lg, bytes_lg = gpu_gemm_time(
        sys, last_tokens, mdl.vocab_size / t, mdl.d_model, 1.0, peak, act_bytes=wb, w_bytes=wb
    )
    compute = layers * (jnp.maximum(t_gemm, 0.0) + t_attn_c) + t_lg
    # split each roofline into its compute and exposed memory parts for the breakdown
    gemm_flop_s = jnp.sum(safe_div(ops.gemm_flops(), peak * eff))
    weights_s = layers * jnp.maximum(t_gemm - gemm_flop_s, 0.0) + jnp.maximum(
        t_lg - safe_div(2.0 * last_tokens * mdl.vocab_size * mdl.d_model / t, peak), 0.0
    )
    compute = layers * (jnp.minimum(gemm_flop_s, t_gemm) + t_attn_c) + jnp.minimum(
        t_lg, safe_div(2.0 * last_tokens * mdl.vocab_size * mdl.d_model / t, peak)
    )
    kv_s = layers * jnp.maximum(t_attn_m - t_attn_c, 0.0)
    memory = layers * t_elem
    comm = layers * t_comm
    over = layers * t_over + 2.0 * sys.kernel_overhead_s
    # per stage pass: the layers' work; the logits (last stage only) kept apart
    flops = layers * (jnp.sum(ops.gemm_flops()) + ops.attn_flops)
    logit_flops = 2.0 * last_tokens * mdl.vocab_size * mdl.d_model / t
    hbm_bytes = layers * (
        jnp.sum(bytes_g) + ops.kv_read_bytes + ops.kv_write_bytes + ops.elem_bytes
    )
    link_bytes = layers * 2.0 * 2.0 * ops.tp_bytes
    return dict(
        compute=compute,
        weights=weights_s,
        kv=kv_s,
        memory=memory,
        comm=comm,
        overhead=over,
        flops=flops,
        logit_flops=logit_flops,
        hbm_bytes=hbm_bytes,
        logit_hbm_bytes=bytes_lg,
        link_bytes=link_bytes,
        ops=ops,
    )


def _total(parts):
    return (
        parts["compute"]
        + parts["weights"]
        + parts["kv"]
        + parts["memory"]
        + parts["comm"]
        + (parts["overhead"])
    )


def gpu_inference(sys, wl, mp) -> InferenceMetrics:
    """F0 inference metrics of ``wl`` on GPU cluster ``sys`` under mapping ``mp``.

    Mapping fields used: ``tp``, ``pp``, ``dp`` (replicas; 0 = as many as fit),
    ``micro_batch`` (sequences per pipeline micro-batch, capped at the replica's batch).
    """
    mdl = wl.model
    t, p = mp.tp, mp.pp
    dp = jnp.where(mp.dp > 0, mp.dp, jnp.floor(safe_div(sys.n_gpus, t * p)))
    dp = jnp.maximum(dp, 1.0)
    b_rep = jnp.ceil(safe_div(wl.batch, dp) - 1e-4)
    mb = jnp.clip(mp.micro_batch, 1.0, b_rep)
    m = jnp.ceil(safe_div(b_rep, mb) - 1e-4)
    layers = safe_div(mdl.n_layers, p)
    peak = sys.peak_flops(wl.precision_bits)
    wb = wl.precision_bits / 8.0
    c_dec = wl.mean_context()

    pre = _gpu_stage(sys, wl, mp, mb, wl.prompt_len, 0.0, t, layers, peak, mb)
    dec = _gpu_stage(sys, wl, mp, mb, 1.0, c_dec, t, layers, peak, mb)
    pp_intra = t * p <= sys.gpus_per_node
    pp_bw = jnp.where(pp_intra, sys.nvlink_bw_bytes_per_s, sys.ib_bw_bytes_per_s)
    pp_alpha = jnp.where(pp_intra, sys.nvlink_latency_s, sys.ib_latency_s)
    p2p_pre = p2p_time(mb * wl.prompt_len * mdl.d_model * wb / t, pp_bw, pp_alpha)
    p2p_dec = p2p_time(mb * mdl.d_model * wb / t, pp_bw, pp_alpha)
    p2p_pre = jnp.where(p > 1, p2p_pre, 0.0)
    p2p_dec = jnp.where(p > 1, p2p_dec, 0.0)
    ttft, tpot, total = _pipeline(_total(pre), _total(dec), p2p_pre, p2p_dec, m, p, wl.output_len)

    # work of the run: every stage of every replica processes every micro-batch; the logits
    # only on the last stage (t GPUs per replica)
    n_used = t * p * dp
    steps = jnp.maximum(wl.output_len - 1.0, 0.0)
    run = lambda key: m * (pre[key] + steps * dec[key])  # noqa: E731  per GPU, per stage
    flops_run = n_used * run("flops") + t * dp * run("logit_flops")
    hbm_run = n_used * run("hbm_bytes") + t * dp * run("logit_hbm_bytes")
    dyn_j = (
        flops_run * sys.flop_energy_j
        + 8.0 * hbm_run * sys.hbm_energy_j_per_bit
        + 8.0 * n_used * run("link_bytes") * sys.link_energy_j_per_bit
    )
    # power roofline (TDP) on the whole run
    total = jnp.maximum(total, safe_div(dyn_j / jnp.maximum(n_used, 1.0), sys.tdp_w - sys.idle_w))
    nodes = jnp.ceil(safe_div(sys.n_gpus, sys.gpus_per_node))
    static_w = sys.idle_w * sys.n_gpus + sys.node_overhead_w * nodes
    energy = dyn_j + static_w * total
    power = safe_div(energy, total)
    out_tokens = dp * b_rep * wl.output_len
    tps = safe_div(jnp.minimum(out_tokens, wl.batch * wl.output_len), total)

    weights = safe_div(mdl.params_total(), t * p) * wb
    kv = b_rep * (wl.prompt_len + wl.output_len) * pre["ops"].kv_bytes_per_token * layers
    chunk = jnp.minimum(mb * wl.prompt_len, wl.prefill_chunk_tokens)
    workspace = 4.0 * chunk * (mdl.d_model + safe_div(mdl.d_ff, t)) * wb
    mem = weights + kv + workspace
    viol = jnp.uint32(0)
    viol = accumulate(viol, Violation.MEMORY_CAPACITY, mem > sys.hbm_bytes)
    viol = accumulate(viol, Violation.DEVICE_COUNT, n_used > sys.n_gpus)
    viol = _common_violations(viol, wl, mdl, t, p, dp, tpot)
    return InferenceMetrics(
        ttft_s=ttft,
        tpot_s=tpot,
        total_time_s=total,
        tokens_per_s=tps,
        tokens_per_s_per_user=safe_div(1.0, tpot),
        tokens_per_s_per_w=safe_div(tps, power),
        power_w=power,
        energy_per_token_j=safe_div(energy, out_tokens),
        flops=flops_run,
        peak_flops=peak * sys.n_gpus,
        mem_bytes=mem,
        mem_capacity_bytes=sys.hbm_bytes,
        prefill_compute_s=p * pre["compute"],
        prefill_memory_s=p * (pre["weights"] + pre["kv"] + pre["memory"]),
        prefill_comm_s=p * pre["comm"] + (p - 1.0) * p2p_pre,
        prefill_overhead_s=p * pre["overhead"],
        decode_compute_s=jnp.maximum(m, p) * dec["compute"],
        decode_weights_s=jnp.maximum(m, p) * (dec["weights"] + dec["memory"]),
        decode_kv_s=jnp.maximum(m, p) * dec["kv"],
        decode_comm_s=jnp.maximum(m, p) * dec["comm"] + p * p2p_dec,
        decode_overhead_s=jnp.maximum(m, p) * dec["overhead"],
        silicon_area_m2=sys.die_area_m2 * sys.n_gpus,
        reticle_utilisation=safe_div(sys.die_area_m2, 858e-6),
        wafer_yield=jnp.asarray(1.0, jnp.float32),
        n_devices=n_used,
        violations=viol,
        feasible=viol == 0,
    )


# ---- wafers ------------------------------------------------------------------------------------
def _wafer_stage(design, tech, phys, wl, mp, b, q, c, tp, layers, kv_in_sram, weights_streamed):
    mdl = wl.model
    f = design.clock_hz
    bits = wl.precision_bits
    wb = bits / 8.0
    cores = tp * design.usable_cores_per_reticle()
    side = safe_sqrt(cores)
    crosses = jnp.maximum(safe_sqrt(tp) - 1.0, 0.0)
    ops = forward_ops(mdl, b, q, c, 1.0, wb, wl.kv_bits)
    one = jnp.ones(4)
    t_comp, t_ovl, _, bit_hops, cross_bits = region_gemm(
        design, tech, cores, ops.m, ops.n, ops.k, one, bits, crosses
    )
    hop_s = safe_div(tech.router_delay_cycles + tech.link_delay_cycles, f)
    red_hop_s = hop_s + safe_div(tech.reduce_add_cycles, f)  # a reduction hop adds on the core
    # attention: distributed over the region, KV from SRAM (or DRAM), two reductions
    core_peak = 2.0 * design.macs_per_core * f * safe_div(16.0, bits)
    sram_bw = cores * design.sram_bw_bits_per_cycle / 8.0 * f
    stream_bw = tp * jnp.where(
        design.dram_kind != DramKind.NONE,
        _dram_bw_per_reticle(design, tech, phys),
        safe_div(design.inter_wafer_bw_bytes_per_s, design.reticles_per_wafer()),
    )
    kv_bw = jnp.where(kv_in_sram, sram_bw, stream_bw)
    t_attn_c = safe_div(ops.attn_flops, cores * core_peak)
    t_attn_m = safe_div(ops.kv_read_bytes + ops.kv_write_bytes, kv_bw)
    # softmax max/sum and the AV accumulation: two 2-D reductions over the region, each a
    # row then a column reduction run from both ends to the middle (side/2 hops each)
    t_attn_lat = 2.0 * side * red_hop_s
    # vector work and the two norm reductions (row + column latency each)
    vec_rate = cores * design.macs_per_core * tech.vector_flops_per_mac * f
    t_vec = safe_div(ops.vec_flops, vec_rate) + 2.0 * side * red_hop_s  # two norms
    # weights streamed per pass (weights not resident)
    w_bytes = ops.weight_params * wb
    t_w = jnp.where(weights_streamed, safe_div(w_bytes, stream_bw), 0.0)
    t_gemms = jnp.sum(t_ovl)
    layer_core = jnp.maximum(t_gemms, t_w) + jnp.maximum(t_attn_c, t_attn_m) + t_attn_lat + t_vec
    lc, lm, _, lbh, lcb = region_gemm(
        design, tech, cores, b, mdl.vocab_size, mdl.d_model, 1.0, bits, crosses
    )
    compute = layers * (jnp.sum(t_comp) + t_attn_c + t_vec)
    comm = layers * (jnp.sum(t_ovl - t_comp) + t_attn_lat) + (lm - lc)
    weights = layers * jnp.maximum(t_w - t_gemms, 0.0)
    kv = layers * jnp.maximum(t_attn_m - t_attn_c, 0.0)
    total = layers * layer_core + lm
    compute = total - comm - weights - kv  # keep the parts summing to the stage time
    flops = layers * (jnp.sum(ops.gemm_flops()) + ops.attn_flops)
    logit_flops = 2.0 * b * mdl.vocab_size * mdl.d_model  # last stage only
    noc = layers * jnp.sum(bit_hops) + lbh
    xbits = layers * jnp.sum(cross_bits) + lcb
    dram_bytes = layers * (
        jnp.where(weights_streamed, w_bytes, 0.0)
        + jnp.where(kv_in_sram, 0.0, ops.kv_read_bytes + ops.kv_write_bytes)
    )
    sram_bits = 8.0 * layers * (w_bytes + ops.kv_read_bytes) + 0.5 * (
        flops + logit_flops
    ) * 3.0 * bits / jnp.maximum(safe_sqrt(design.macs_per_core), 1.0)
    return dict(
        total=total,
        compute=compute,
        comm=comm,
        weights=weights,
        kv=kv,
        flops=flops,
        logit_flops=logit_flops,
        noc_bit_hops=noc,
        cross_bits=xbits,
        dram_bytes=dram_bytes,
        sram_bits=sram_bits,
        ops=ops,
    )


def wafer_inference(design, tech, phys, wl, mp) -> InferenceMetrics:
    """F0 inference metrics of ``wl`` on a wafer-scale system under mapping ``mp``.

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
    fits = (sram_need <= sram_cap) & jnp.where(has_dram, dram_need <= dram_cap, ~(~kv_in_sram))

    c_dec = wl.mean_context()
    args = (design, tech, phys, wl, mp)
    pre = _wafer_stage(*args, mb, wl.prompt_len, 0.0, tp, layers, kv_in_sram, streamed)
    dec = _wafer_stage(*args, mb, 1.0, c_dec, tp, layers, kv_in_sram, streamed)
    side = safe_sqrt(cores)
    hop_s = safe_div(tech.router_delay_cycles + tech.link_delay_cycles, design.clock_hz)
    boundary_bw = side * design.d2d_link_bw_bytes_per_s() * noc_flow_terms(design, tech, 1.0)[0]
    lat = side * hop_s + safe_div(tech.d2d_delay_cycles, design.clock_hz)
    span = tp * p > R
    off_bw = design.inter_wafer_bw_bytes_per_s

    def p2p(bytes_):
        on = safe_div(bytes_, boundary_bw) + lat
        return jnp.where(span, jnp.maximum(on, safe_div(bytes_, off_bw)), on)

    p2p_pre = jnp.where(p > 1, p2p(mb * wl.prompt_len * mdl.d_model * wb), 0.0)
    p2p_dec = jnp.where(p > 1, p2p(mb * mdl.d_model * wb), 0.0)
    ttft, tpot, total = _pipeline(pre["total"], dec["total"], p2p_pre, p2p_dec, m, p, wl.output_len)

    steps = jnp.maximum(wl.output_len - 1.0, 0.0)
    regions = p * dp
    per = lambda key: regions * m * (pre[key] + steps * dec[key])  # noqa: E731
    pitch = phys.core_pitch_m
    e_hop = tech.router_energy_j_per_bit + tech.wire_energy_j_per_bit_m * pitch
    dram_e = jnp.where(has_dram, tech.dram_energy_j_per_bit, tech.offwafer_energy_j_per_bit)
    flops_run = per("flops") + dp * m * (pre["logit_flops"] + steps * dec["logit_flops"])
    e_dyn = (
        0.5 * flops_run * tech.mac_energy_j * safe_div(wl.precision_bits, 16.0)
        + per("sram_bits") * tech.sram_energy_j_per_bit
        + per("noc_bit_hops") * e_hop
        + per("cross_bits") * _d2d_energy(design, tech)
        + 8.0 * per("dram_bytes") * dram_e
    )
    silicon = phys.silicon_area_m2 * design.n_wafers
    energy = e_dyn + tech.static_power_w_per_m2 * silicon * total
    power = safe_div(energy, total)
    out_tokens = dp * b_rep * wl.output_len
    tps = safe_div(jnp.minimum(out_tokens, wl.batch * wl.output_len), total)
    power_per_wafer = safe_div(power, design.n_wafers)
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
    viol = accumulate(viol, Violation.POWER, power_per_wafer > tech.max_wafer_power_w)
    viol = accumulate(
        viol,
        Violation.POWER_DENSITY,
        safe_div(power_per_wafer, phys.silicon_area_m2) > tech.max_power_density_w_per_m2,
    )
    viol = _common_violations(viol, wl, mdl, 1.0, p, dp, tpot)
    zero = jnp.zeros_like(ttft)
    return InferenceMetrics(
        ttft_s=ttft,
        tpot_s=tpot,
        total_time_s=total,
        tokens_per_s=tps,
        tokens_per_s_per_user=safe_div(1.0, tpot),
        tokens_per_s_per_w=safe_div(tps, power),
        power_w=power,
        energy_per_token_j=safe_div(energy, out_tokens),
        flops=flops_run,
        peak_flops=peak,
        mem_bytes=sram_need + jnp.where(has_dram, dram_need, 0.0),
        mem_capacity_bytes=sram_cap + dram_cap,
        prefill_compute_s=p * pre["compute"],
        prefill_memory_s=p * (pre["weights"] + pre["kv"]),
        prefill_comm_s=p * pre["comm"] + (p - 1.0) * p2p_pre,
        prefill_overhead_s=zero,
        decode_compute_s=jnp.maximum(m, p) * dec["compute"],
        decode_weights_s=jnp.maximum(m, p) * dec["weights"],
        decode_kv_s=jnp.maximum(m, p) * dec["kv"],
        decode_comm_s=jnp.maximum(m, p) * dec["comm"] + p * p2p_dec,
        decode_overhead_s=zero,
        silicon_area_m2=silicon,
        reticle_utilisation=phys.reticle_utilisation,
        wafer_yield=phys.wafer_yield,
        n_devices=tp * p * dp,
        violations=viol,
        feasible=viol == 0,
    )
