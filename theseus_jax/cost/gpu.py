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
from ..metrics._metrics import Metrics
from ._ops import ATTN_CORE, N_GEMMS, layer_ops
from .collectives import allreduce_time, p2p_time, reduce_scatter_time
from .training import (
    activation_bytes,
    inflight_microbatches,
    n_microbatches,
    recompute_passes,
    state_bytes_per_param,
)

__all__ = ["gpu_training_step", "gpu_gemm_time"]


def gpu_gemm_time(sys, m, n, k, count, peak, m_eff=None, act_bytes=2.0, w_bytes=2.0):
    """Time (s) and HBM bytes of ``count`` GEMMs ``(m x k) @ (k x n)`` on one GPU.

    The thread-block tile height shrinks to the next power of two >= ``m`` (at least 16, the
    tensor-core MMA height) for skinny GEMMs, as cuBLAS/CUTLASS heuristics pick smaller
    tiles, and when the output tiles cannot fill the SMs the K loop is split over up to
    ``SMs / tiles`` blocks of at least 256 (split-K); the weight operand ``k x n`` has
    ``w_bytes`` per element, activations ``act_bytes``.
    """
    m_eff = m if m_eff is None else m_eff
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
    t_flops = safe_div(flops, peak * sys.gemm_efficiency * eta_wave * eta_pad)
    bytes_ = (act_bytes * (m * k + m * n) + w_bytes * k * n) * count
    t_mem = safe_div(bytes_, sys.hbm_bw_bytes_per_s * sys.hbm_efficiency)
    return jnp.maximum(t_flops, t_mem), bytes_


def gpu_training_step(sys, workload, mp) -> Metrics:
    """F0 metrics of one training step of ``workload`` on GPU cluster ``sys`` under ``mp``."""
    mdl = workload.model
    t, p, v = mp.tp, mp.pp, mp.interleave
    dp = jnp.where(mp.dp > 0, mp.dp, jnp.floor(safe_div(sys.n_gpus, t * p)))
    b = mp.micro_batch
    m = n_microbatches(workload.global_batch, dp, b)
    ops = layer_ops(workload, b, t, mp.seq_par)
    peak = sys.peak_flops(workload.precision_bits)
    hbm = sys.hbm_bw_bytes_per_s * sys.hbm_efficiency
    full, sel = recompute_passes(mp.recompute, mp.recompute_layers)
    layers = safe_div(mdl.n_layers, p)

    # ---- compute, per layer per micro-batch ------------------------------------------------
    t_g, bytes_g = gpu_gemm_time(sys, ops.m, ops.n, ops.k, ops.count, peak, ops.m_eff)
    is_attn = jnp.zeros(N_GEMMS).at[jnp.array(ATTN_CORE)].set(1.0)
    passes = 3.0 + full + sel * is_attn  # fwd + 2x bwd + recompute
    gemm_s = jnp.sum(t_g * passes)
    gemm_bytes = jnp.sum(bytes_g * passes)
    gemm_flops = jnp.sum(ops.gemm_flops() * passes)
    elem_passes = 3.0 + full
    elem_bytes = ops.elem_bytes_fwd * elem_passes + ops.attn_elem_bytes_fwd * sel
    elem_s = safe_div(elem_bytes, hbm)
    kernels = (N_GEMMS + ops.kernels_fwd) * elem_passes
    overhead_s = kernels * sys.kernel_overhead_s

    # logits + cross-entropy on the last stage (fwd + 2x bwd, never recomputed)
    T = b * workload.seq_len
    t_lg, bytes_lg = gpu_gemm_time(sys, T, mdl.vocab_size / t, mdl.d_model, 1.0, peak)
    logit_s = 3.0 * t_lg
    ce_bytes = 3.0 * 4.0 * T * mdl.vocab_size / t  # fp32 logits: softmax fwd + bwd passes
    logit_mem_s = safe_div(ce_bytes, hbm)
    logit_flops = 3.0 * 2.0 * T * mdl.vocab_size * mdl.d_model / t

    # ---- tensor-parallel communication per layer per micro-batch ---------------------------
    intra = t <= sys.gpus_per_node
    tp_bw = jnp.where(intra, sys.nvlink_bw_bytes_per_s, sys.ib_bw_bytes_per_s)
    tp_alpha = jnp.where(intra, sys.nvlink_latency_s, sys.ib_latency_s)
    n_ar = 4.0 + 2.0 * full
    tp_raw = n_ar * allreduce_time(ops.tp_bytes, t, tp_bw, tp_alpha)
    tp_exposed = jnp.where(mp.tp_overlap > 0, jnp.maximum(tp_raw - gemm_s, 0.0), tp_raw)

    # ---- pipeline point-to-point per micro-batch -------------------------------------------
    # rank placement: TP innermost, then DP (placement 0, Megatron order) or PP (1)
    node = sys.gpus_per_node
    pp_intra = jnp.where(mp.placement > 0, t * p <= node, t * dp * p <= node)
    pp_bw = jnp.where(pp_intra, sys.nvlink_bw_bytes_per_s, sys.ib_bw_bytes_per_s)
    pp_alpha = jnp.where(pp_intra, sys.nvlink_latency_s, sys.ib_latency_s)
    p2p_s = jnp.where(p > 1, 2.0 * v * p2p_time(ops.p2p_bytes, pp_bw, pp_alpha), 0.0)

    # ---- stage time and pipeline ------------------------------------------------------------
    layer_compute = gemm_s
    layer_memory = elem_s
    stage_compute = layers * layer_compute + logit_s
    stage_memory = layers * layer_memory + logit_mem_s
    stage_overhead = layers * overhead_s + 6.0 * sys.kernel_overhead_s
    stage_tp = layers * tp_exposed
    t_mb = stage_compute + stage_memory + stage_overhead + stage_tp + p2p_s
    t_mb_window = t_mb - logit_s - logit_mem_s
    bubble_s = safe_div(p - 1.0, v) * t_mb

    # ---- model state, DP and optimizer ------------------------------------------------------
    emb = mdl.vocab_size * mdl.d_model / t
    params_dev = layers * ops.weight_params + jnp.where(p > 1, emb, mdl.embedding_params() / t)
    dp_span = jnp.where(mp.placement > 0, dp * t * p > node, dp * t > node)
    dp_bw = jnp.where(dp_span, sys.ib_bw_bytes_per_s, sys.nvlink_bw_bytes_per_s)
    dp_alpha = jnp.where(dp_span, sys.ib_latency_s, sys.nvlink_latency_s)
    grad_bytes = params_dev * workload.main_grad_bytes
    dp_plain = allreduce_time(grad_bytes, dp, dp_bw, dp_alpha)
    dp_dist = reduce_scatter_time(grad_bytes, dp, dp_bw, dp_alpha) + reduce_scatter_time(
        2.0 * params_dev, dp, dp_bw, dp_alpha
    )
    dp_raw = jnp.where(mp.dist_opt > 0, dp_dist, dp_plain)
    # the reduction hides behind the last micro-batch's backward pass, i.e. the backward
    # share of the stage time (incl. its exposed communication): hiding never makes a
    # faster stage slower overall
    bwd_window = safe_div(2.0 + full, 3.0 + full) * t_mb_window
    dp_s = jnp.where(mp.dp_overlap > 0, jnp.maximum(dp_raw - bwd_window, 0.0), dp_raw)
    opt_params = jnp.where(mp.dist_opt > 0, safe_div(params_dev, dp), params_dev)
    opt_bytes = opt_params * (30.0 + workload.main_grad_bytes)
    optimizer_s = safe_div(opt_bytes, hbm) + 4.0 * sys.kernel_overhead_s

    step_core = (m + safe_div(p - 1.0, v)) * t_mb + dp_s + optimizer_s

    # ---- FLOPs, energy and power ------------------------------------------------------------
    n_used = t * p * dp
    # the logits layer runs on the last stage only: t * dp of the n_used GPUs
    hw_flops_dev = m * (layers * gemm_flops + logit_flops)  # last stage (the busiest)
    hw_flops = m * (layers * gemm_flops * n_used + logit_flops * t * dp)
    no_rc = 3.0 * jnp.sum(ops.gemm_flops())
    model_flops = m * (layers * no_rc * n_used + logit_flops * t * dp)
    hbm_bytes_dev = m * (layers * (gemm_bytes + elem_bytes) + bytes_lg * 3.0 + ce_bytes) + opt_bytes
    link_bytes_dev = (
        m * layers * n_ar * 2.0 * ops.tp_bytes + m * 2.0 * v * ops.p2p_bytes + (2.0 * grad_bytes)
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
    logits_buf = 4.0 * T * mdl.vocab_size / t * 2.0
    mem = (
        params_dev * state_bytes_per_param(workload.main_grad_bytes, mp.dist_opt, dp)
        + act
        + (logits_buf)
    )

    viol = jnp.uint32(0)
    viol = accumulate(viol, Violation.MEMORY_CAPACITY, mem > sys.hbm_bytes)
    viol = accumulate(viol, Violation.DEVICE_COUNT, n_used > sys.n_gpus)
    bad_map = (
        (jnp.mod(mdl.n_heads, t) != 0) | (jnp.mod(mdl.n_layers, p * v) != 0) | (dp < 1) | (m < 1)
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
