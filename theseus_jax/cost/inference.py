r"""F0 inference cost: prefill and decode with a KV cache, on GPU clusters (wafers:
:mod:`~theseus_jax.cost.wafer_inference`, on the same forward-pass operations).

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

from .._numerics import safe_div
from .._violations import Violation, accumulate
from ._records import InferenceMetrics
from .collectives import allreduce_time, p2p_time
from .gpu import gpu_gemm_time

__all__ = [
    "ForwardOps",
    "forward_ops",
    "gpu_inference",
    "pipeline_times",
    "common_violations",
]


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


def pipeline_times(stage_pre, stage_dec, p2p_pre, p2p_dec, m, p, s_out):
    """(ttft, tpot, total) from per-micro-batch stage times (see module docstring)."""
    ttft = p * stage_pre + (p - 1.0) * p2p_pre
    prefill_all = (m + p - 1.0) * stage_pre + (p - 1.0) * p2p_pre
    tpot = jnp.maximum(m, p) * stage_dec + p * p2p_dec
    total = prefill_all + jnp.maximum(s_out - 1.0, 0.0) * tpot
    return ttft, tpot, total


def common_violations(viol, wl, mdl, t, p, dp, tpot):
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
    ttft, tpot, total = pipeline_times(
        _total(pre), _total(dec), p2p_pre, p2p_dec, m, p, wl.output_len
    )

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
    viol = common_violations(viol, wl, mdl, t, p, dp, tpot)
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
