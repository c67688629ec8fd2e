r"""F0 training cost of one mapping on one GPU cluster.

Compute: every GEMM of :mod:`._ops` is tiled into ``tile_m x tile_n`` thread-block tiles
scheduled in waves over the SMs; its time is the roofline

.. math:: t = \max\left(\frac{2MNK}{P\,\eta\,\eta_{wave}\,\eta_{pad}},
                         \frac{2(MK+KN+MN)}{B_{HBM}\,\eta_{HBM}}\right)

with ``eta_wave = tiles / (waves * SMs)``, ``eta_pad = MN / (padded M x padded N)`` and the
calibrated large-GEMM efficiency ``eta``. Element-wise, normalisation and (unfused) softmax
kernels are memory-bound at ``B_HBM eta_HBM``; every kernel costs a launch overhead.

Communication (NCCL-like, :mod:`.collectives`): Megatron TP does 2 all-reduces of ``T h``
16-bit values per layer per pass (forward, backward, recompute); PP sends ``T h / t`` values per
micro-batch per boundary each way; DP all-reduces the gradients once per step (or
reduce-scatters them and all-gathers the parameters with the distributed optimizer). Links are
NVLink inside the NVLink domain and InfiniBand across it.

Power: dynamic energy (tensor FLOPs, HBM bytes, link bytes) over the step plus idle power of
GPUs and node overheads. A GPU whose dynamic power would exceed ``TDP - idle`` is throttled:
the step stretches to keep it at TDP (a "power roofline").
"""

from __future__ import annotations

import jax.numpy as jnp

from .._numerics import safe_div
from .._violations import Violation, accumulate
from ..mapping._plan import Recompute
from ._ops import ATTN_CORE, N_GEMMS, layer_ops
from ._records import Metrics
from .collectives import allreduce_time, p2p_time, reduce_scatter_time
from .training import (
    activation_bytes,
    inflight_microbatches,
    n_microbatches,
    recompute_passes,
)

__all__ = ["gpu_training_step", "gpu_gemm_time"]


def gpu_gemm_time(sys, m, n, k, count, peak, m_eff=None, act_bytes=2.0, w_bytes=2.0, eff=None):
    """Time (s) and HBM bytes of ``count`` GEMMs ``(m x k) @ (k x n)`` on one GPU.

    The thread-block tile height shrinks to the next power of two >= ``m`` (at least 16, the
    tensor-core MMA height) for skinny GEMMs, as cuBLAS/CUTLASS heuristics pick smaller
    tiles, and when the output tiles cannot fill the SMs the K loop is split over up to
    ``SMs / tiles`` blocks of at least 256 (split-K); the weight operand ``k x n`` has
    ``w_bytes`` per element, activations ``act_bytes``. ``eff`` is the large-GEMM
    efficiency at this precision (default: the 16-bit one).
    """
    m_eff = m if m_eff is None else m_eff
    eff = sys.gemm_efficiency if eff is None else eff
    tn, sms = sys.gemm_tile_n, sys.n_sms
    pow2 = jnp.exp2(jnp.ceil(jnp.log2(jnp.maximum(m_eff, 1.0))))
    tm = jnp.clip(pow2, 16.0, sys.gemm_tile_m)
    tiles_m = jnp.ceil(safe_div(m_eff, tm))
    tiles_n = jnp.ceil(safe_div(n, tn))
    groups = safe_div(m, m_eff) * count  # independent GEMMs (MoE experts, attention heads)
    tiles = tiles_m * tiles_n * groups
    # split-K (cuBLAS) / stream-K: too few output tiles to fill the SMs -> split the K loop
    split = jnp.clip(jnp.floor(safe_div(sms, tiles)), 1.0, jnp.ceil(safe_div(k, 256.0)))
    tiles = tiles * split
    waves = jnp.ceil(safe_div(tiles, sms))
    eta_wave = safe_div(tiles, waves * sms)
    eta_pad = safe_div(m_eff * n, tiles_m * tm * tiles_n * tn)
    flops = 2.0 * m * n * k * count
    t_flops = safe_div(flops, peak * eff * eta_wave * eta_pad)
    bytes_ = (act_bytes * (m * k + m * n) + w_bytes * k * n) * count
    t_mem = safe_div(bytes_, sys.hbm_bw_bytes_per_s * sys.hbm_efficiency)
    return jnp.maximum(t_flops, t_mem), bytes_


def _causal_fraction(seq_len, block=128.0):
    """Share of the ``s x s`` score tiles a causal FlashAttention kernel computes: the lower
    triangle plus the diagonal blocks, ``(1 + block / s) / 2`` (FlashAttention-2 skips the
    tiles above the diagonal; ``block`` = 128, its key-block size)."""
    return jnp.minimum(0.5 * (1.0 + safe_div(block, seq_len)), 1.0)


def gpu_training_step(sys, workload, mp) -> Metrics:
    """F0 metrics of one training step of ``workload`` on GPU cluster ``sys`` under ``mp``.

    Rank order (Megatron-Core): TP innermost, then CP, EP (inside DP), DP, PP, so a group
    stays on NVLink when the product of the degrees inside it fits in a node.
    """
    mdl = workload.model
    t, p, v, c, e = mp.tp, mp.pp, mp.interleave, mp.cp, mp.ep
    dp = jnp.where(mp.dp > 0, mp.dp, jnp.floor(safe_div(sys.n_gpus, t * p * c)))
    dpc = dp * c  # ranks holding the same weights: gradients reduce over dp x cp
    b = mp.micro_batch
    m = n_microbatches(workload.global_batch, dp, b)
    ops = layer_ops(workload, b, t, mp.seq_par, c, e)
    bits = workload.precision_bits
    fp8 = jnp.where(bits <= 8, 1.0, 0.0)
    peak = sys.peak_flops(bits)  # the linear GEMMs' precision
    peak16 = sys.peak_flops_16  # attention core, logits (Transformer Engine keeps them BF16)
    hbm = sys.hbm_bw_bytes_per_s * sys.hbm_efficiency
    full, sel = recompute_passes(mp.recompute, mp.recompute_layers)
    layers = safe_div(mdl.n_layers, p)
    node = sys.gpus_per_node
    flash = workload.flash_attention

    # ---- compute, per layer per micro-batch ------------------------------------------------
    # linear GEMMs at the workload precision (FP8: 1-byte operands, FP8 efficiency); the
    # attention core in 16 bit
    is_attn = jnp.zeros(N_GEMMS).at[jnp.array(ATTN_CORE)].set(1.0)
    is_lin = 1.0 - is_attn
    peak_g = is_lin * peak + is_attn * peak16
    eff_g = is_lin * sys.gemm_efficiency_at(bits) + is_attn * sys.gemm_efficiency
    op_bytes = 2.0 - is_lin * fp8
    t_g, bytes_g = gpu_gemm_time(
        sys, ops.m, ops.n, ops.k, ops.count, peak_g, ops.m_eff, op_bytes, op_bytes, eff_g
    )
    # FlashAttention: the attention core is one fused, compute-bound kernel over the causal
    # tiles; HBM sees Q, K, V and the output only (no s x s matrix)
    f_attn = ops.gemm_flops() * is_attn * _causal_fraction(workload.seq_len)
    t_fa = safe_div(f_attn, peak16 * sys.gemm_efficiency)
    # score = Q K^T reads Q (m x k) and K (n x k); AV reads V (k x n) and writes O (m x n):
    # the (s/cp) x s score matrix is never an HBM operand
    s_idx, av_idx = ATTN_CORE
    qk = ops.m[s_idx] * ops.k[s_idx] + ops.n[s_idx] * ops.k[s_idx]
    vo = ops.k[av_idx] * ops.n[av_idx] + ops.m[av_idx] * ops.n[av_idx]
    qkvo_bytes = 2.0 * ops.count * (jnp.zeros(N_GEMMS).at[s_idx].set(qk).at[av_idx].set(vo))
    t_g = jnp.where((flash > 0) & (is_attn > 0), t_fa, t_g)
    bytes_g = jnp.where((flash > 0) & (is_attn > 0), qkvo_bytes, bytes_g)
    passes = 3.0 + full + sel * is_attn  # fwd + 2x bwd + recompute
    gemm_s = jnp.sum(t_g * passes)
    attn_s_fwd = jnp.sum(t_g * is_attn)
    gemm_bytes = jnp.sum(bytes_g * passes)
    gemm_flops = jnp.sum(ops.gemm_flops() * passes)
    elem_passes = 3.0 + full
    # FP8 casts (Transformer Engine cast-transpose): each linear GEMM's input in every
    # forward and its output gradient in the backward: read 2 B, write 1 B + a 1 B transpose
    lin_in = jnp.sum(is_lin * ops.m * ops.k * ops.count)
    lin_out = jnp.sum(is_lin * ops.m * ops.n * ops.count)
    cast_bytes = fp8 * 4.0 * (lin_in * (1.0 + full) + lin_out)
    elem_bytes = ops.elem_bytes_fwd * elem_passes + ops.attn_elem_bytes_fwd * sel + cast_bytes
    elem_s = safe_div(elem_bytes, hbm)
    kernels = (N_GEMMS + ops.kernels_fwd) * elem_passes
    overhead_s = kernels * sys.kernel_overhead_s

    # logits + cross-entropy on the last stage (fwd + 2x bwd, never recomputed), 16-bit
    T = b * workload.seq_len / c
    t_lg, bytes_lg = gpu_gemm_time(sys, T, mdl.vocab_size / t, mdl.d_model, 1.0, peak16)
    logit_s = 3.0 * t_lg
    ce_bytes = 3.0 * 4.0 * T * mdl.vocab_size / t  # fp32 logits: softmax fwd + bwd passes
    logit_mem_s = safe_div(ce_bytes, hbm)
    logit_flops = 3.0 * 2.0 * T * mdl.vocab_size * mdl.d_model / t

    # ---- tensor-parallel communication per layer per micro-batch ---------------------------
    intra = t <= node
    tp_bw = jnp.where(intra, sys.nvlink_bw_bytes_per_s, sys.ib_bw_bytes_per_s)
    tp_alpha = jnp.where(intra, sys.nvlink_latency_s, sys.ib_latency_s)
    n_ar = 4.0 + 2.0 * full
    tp_raw = n_ar * allreduce_time(ops.tp_bytes, t, tp_bw, tp_alpha)
    tp_exposed = jnp.where(mp.tp_overlap > 0, jnp.maximum(tp_raw - gemm_s, 0.0), tp_raw)

    # ---- context parallelism: ring exchange of K/V chunks, overlapped with attention ------
    # each of the cp - 1 ring steps passes this rank's K and V (16 bit); the backward pass
    # sends K, V and their gradients
    kv_width = jnp.where(mdl.mla > 0, mdl.q_dim() + mdl.v_dim(), 2.0 * mdl.n_kv_heads * mdl.d_head)
    kv_chunk = 2.0 * T * jnp.maximum(safe_div(kv_width, t), mdl.d_head)
    cp_intra = t * c <= node
    cp_bw = jnp.where(cp_intra, sys.nvlink_bw_bytes_per_s, sys.ib_bw_bytes_per_s)
    cp_alpha = jnp.where(cp_intra, sys.nvlink_latency_s, sys.ib_latency_s)
    ring_fwd = (c - 1.0) * p2p_time(kv_chunk, cp_bw, cp_alpha)
    cp_fwd = jnp.maximum(ring_fwd - attn_s_fwd, 0.0)
    cp_bwd = jnp.maximum(2.0 * ring_fwd - 2.0 * attn_s_fwd, 0.0)
    cp_s = jnp.where(c > 1, (1.0 + full) * cp_fwd + cp_bwd, 0.0)

    # ---- expert parallelism: token all-to-all (dispatch + combine) per MoE layer ----------
    moe_frac = safe_div(mdl.n_moe_layers(), mdl.n_layers)
    a2a_bytes = 2.0 * T * mdl.top_k * mdl.d_model * safe_div(e - 1.0, e) / t
    ep_intra = t * c * e <= node
    ep_bw = jnp.where(ep_intra, sys.nvlink_bw_bytes_per_s, sys.ib_bw_bytes_per_s)
    ep_alpha = jnp.where(ep_intra, sys.nvlink_latency_s, sys.ib_latency_s)
    a2a_s = safe_div(a2a_bytes, ep_bw) + (e - 1.0) * ep_alpha
    ep_s = jnp.where(e > 1, moe_frac * 2.0 * (3.0 + full) * a2a_s, 0.0)

    # ---- pipeline point-to-point per micro-batch -------------------------------------------
    # rank placement: TP (x CP) innermost, then DP (placement 0, Megatron order) or PP (1)
    tc = t * c
    pp_intra = jnp.where(mp.placement > 0, tc * p <= node, tc * dp * p <= node)
    pp_bw = jnp.where(pp_intra, sys.nvlink_bw_bytes_per_s, sys.ib_bw_bytes_per_s)
    pp_alpha = jnp.where(pp_intra, sys.nvlink_latency_s, sys.ib_latency_s)
    p2p_s = jnp.where(p > 1, 2.0 * v * p2p_time(ops.p2p_bytes, pp_bw, pp_alpha), 0.0)

    # ---- stage time and pipeline ------------------------------------------------------------
    layer_compute = gemm_s
    layer_memory = elem_s
    stage_compute = layers * layer_compute + logit_s
    stage_memory = layers * layer_memory + logit_mem_s
    stage_overhead = layers * overhead_s + 6.0 * sys.kernel_overhead_s
    stage_tp = layers * (tp_exposed + cp_s + ep_s)
    t_mb = stage_compute + stage_memory + stage_overhead + stage_tp + p2p_s
    t_mb_window = t_mb - logit_s - logit_mem_s
    bubble_s = safe_div(p - 1.0, v) * t_mb

    # ---- model state, DP and optimizer ------------------------------------------------------
    emb = mdl.vocab_size * mdl.d_model / t
    params_dev = layers * ops.weight_params + jnp.where(p > 1, emb, mdl.embedding_params() / t)
    dp_span = jnp.where(mp.placement > 0, dpc * t * p > node, dpc * t > node)
    dp_bw = jnp.where(dp_span, sys.ib_bw_bytes_per_s, sys.nvlink_bw_bytes_per_s)
    dp_alpha = jnp.where(dp_span, sys.ib_latency_s, sys.nvlink_latency_s)
    # routed-expert weights are replicated over dp x cp / ep ranks only
    routed_dev = layers * safe_div(
        mdl.n_moe_layers() * mdl._ffn_mats() * mdl.d_model * mdl.expert_d_ff * mdl.n_experts,
        mdl.n_layers * t * e,
    )
    dense_dev = params_dev - routed_dev
    dp_exp = jnp.maximum(safe_div(dpc, e), 1.0)
    grad_b = workload.main_grad_bytes
    dp_plain = allreduce_time(dense_dev * grad_b, dpc, dp_bw, dp_alpha) + allreduce_time(
        routed_dev * grad_b, dp_exp, dp_bw, dp_alpha
    )
    dp_rs = reduce_scatter_time(dense_dev * grad_b, dpc, dp_bw, dp_alpha) + reduce_scatter_time(
        routed_dev * grad_b, dp_exp, dp_bw, dp_alpha
    )
    dp_ag = reduce_scatter_time(2.0 * dense_dev, dpc, dp_bw, dp_alpha) + reduce_scatter_time(
        2.0 * routed_dev, dp_exp, dp_bw, dp_alpha
    )
    # overlap as the distributed optimizer does it: the gradient reduce-scatter (or the
    # all-reduce) runs behind the last micro-batch's backward pass, the parameter all-gather
    # behind the next step's first forward pass (each window includes that pass's exposed
    # communication); hiding never makes a faster stage slower overall
    bwd_window = safe_div(2.0 + full, 3.0 + full) * t_mb_window
    fwd_window = safe_div(1.0, 3.0 + full) * t_mb_window
    dist = mp.dist_opt > 0
    hidden = jnp.where(
        dist,
        jnp.maximum(dp_rs - bwd_window, 0.0) + jnp.maximum(dp_ag - fwd_window, 0.0),
        jnp.maximum(dp_plain - bwd_window, 0.0),
    )
    dp_raw = jnp.where(dist, dp_rs + dp_ag, dp_plain)
    dp_s = jnp.where(mp.dp_overlap > 0, hidden, dp_raw)
    shard = jnp.where(dist, safe_div(dense_dev, dpc) + safe_div(routed_dev, dp_exp), params_dev)
    opt_bytes = shard * (30.0 + grad_b)
    # FP8: weights cast (with a transpose) once per step
    optimizer_s = safe_div(opt_bytes + fp8 * 4.0 * params_dev, hbm) + 4.0 * sys.kernel_overhead_s
    grad_bytes = params_dev * grad_b

    step_core = (m + safe_div(p - 1.0, v)) * t_mb + dp_s + optimizer_s

    # ---- FLOPs, energy and power ------------------------------------------------------------
    n_used = t * c * p * dp
    # the logits layer runs on the last stage only: t * c * dp of the n_used GPUs
    hw_flops_dev = m * (layers * gemm_flops + logit_flops)  # last stage (the busiest)
    hw_flops = m * (layers * gemm_flops * n_used + logit_flops * t * dpc)
    no_rc = 3.0 * jnp.sum(ops.gemm_flops())
    model_flops = m * (layers * no_rc * n_used + logit_flops * t * dpc)
    hbm_bytes_dev = m * (layers * (gemm_bytes + elem_bytes) + bytes_lg * 3.0 + ce_bytes) + opt_bytes
    link_bytes_dev = (
        m * layers * n_ar * 2.0 * ops.tp_bytes
        + m * 2.0 * v * ops.p2p_bytes
        + (2.0 * grad_bytes)
        + m * layers * (3.0 + full) * ((c - 1.0) * kv_chunk + moe_frac * 2.0 * a2a_bytes)
    )
    dyn_j_dev = (
        hw_flops_dev * sys.flop_energy_j
        + 8.0 * hbm_bytes_dev * sys.hbm_energy_j_per_bit
        + 8.0 * link_bytes_dev * sys.link_energy_j_per_bit
    )
    # energy of the whole cluster: the logits (and their bytes) only on the last stages
    lg_frac = safe_div(p - 1.0, p)
    lg_j = m * (
        logit_flops * sys.flop_energy_j
        + 8.0 * (3.0 * bytes_lg + ce_bytes) * sys.hbm_energy_j_per_bit
    )
    dyn_j = dyn_j_dev * n_used - lg_frac * lg_j * n_used
    # power roofline: a GPU (the busiest, last stage) cannot draw more than its TDP
    step = jnp.maximum(step_core, safe_div(dyn_j_dev, sys.tdp_w - sys.idle_w))
    throttle = step - step_core
    nodes = jnp.ceil(safe_div(sys.n_gpus, sys.gpus_per_node))
    static_w = sys.idle_w * sys.n_gpus + sys.node_overhead_w * nodes
    energy = dyn_j + static_w * step
    power = safe_div(energy, step)
    tokens = workload.global_batch * workload.seq_len
    peak_sys = peak * sys.n_gpus

    # ---- memory capacity --------------------------------------------------------------------
    inflight = inflight_microbatches(mp.schedule, p, v, m)
    act = activation_bytes(ops, mp.recompute, layers, inflight, mp.recompute_layers)
    # FP8: Transformer Engine saves the FP8 casts of the linear layers' inputs for the
    # backward pass (1 B instead of 2): the two norm outputs (sharded by SP), the attention
    # output and the FFN activation
    sp_div = jnp.where(mp.seq_par > 0, t, 1.0)
    fp8_saved = fp8 * (2.0 * T * mdl.d_model / sp_div + T * (ops.k[3] + ops.k[5]))
    kept = jnp.where(mp.recompute == Recompute.FULL, 1.0 - mp.recompute_layers, 1.0)
    act = act - fp8_saved * kept * layers * inflight
    logits_buf = 4.0 * T * mdl.vocab_size / t * 2.0
    # Megatron's table: weights + main gradients + 12 B of fp32 state (sharded over DP with
    # the distributed optimizer), see training.state_bytes_per_param
    state = params_dev * (2.0 + grad_b) + 12.0 * shard
    # FP8 weight copies (and their transposes) kept through the step
    mem = state + fp8 * 2.0 * params_dev + act + logits_buf

    viol = jnp.uint32(0)
    viol = accumulate(viol, Violation.MEMORY_CAPACITY, mem > sys.hbm_bytes)
    viol = accumulate(viol, Violation.DEVICE_COUNT, n_used > sys.n_gpus)
    bad_map = (
        (jnp.mod(mdl.n_heads, t) != 0)
        | (jnp.mod(mdl.n_layers, p * v) != 0)
        | (dp < 1)
        | (m < 1)
        | (jnp.mod(workload.seq_len, c) != 0)
        | ((e > 1) & ((mdl.n_experts < 1) | (jnp.mod(mdl.n_experts, e) != 0)))
        | (jnp.mod(dpc, e) != 0)
    )
    viol = accumulate(viol, Violation.MAPPING, bad_map)

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
        mem_bytes=mem,
        mem_capacity_bytes=sys.hbm_bytes,
        compute_s=m * stage_compute + throttle,
        memory_s=m * stage_memory,
        overhead_s=m * stage_overhead,
        tp_comm_s=m * stage_tp,
        pp_comm_s=m * p2p_s,
        bubble_s=bubble_s,
        dp_comm_s=dp_s,
        optimizer_s=optimizer_s,
        silicon_area_m2=sys.die_area_m2 * sys.n_gpus,
        reticle_utilisation=safe_div(sys.die_area_m2, 858e-6),
        wafer_yield=jnp.asarray(1.0, jnp.float32),
        n_devices=n_used,
        violations=viol,
        feasible=viol == 0,
    )
