r"""Per-layer operations of one training micro-batch on one tensor-parallel shard.

Shared by every system kind: GPU clusters and wafers see the same GEMM shapes, the same
non-GEMM traffic, the same collective volumes and the same activation memory; only how they
are timed differs.

For ``T = b s`` tokens of a micro-batch ``b``, TP degree ``t``, hidden ``h``, ``a`` heads of
query/key width ``d_qk`` and value width ``d_v``, average active FFN width ``F`` per layer
(``F`` for dense layers, ``(k + S) F_e`` for MoE layers), one layer's forward GEMMs are

====== ================ ============== ================= ======================
GEMM   M                N              K                 instances
====== ================ ============== ================= ======================
qkv    T                P_in / (h t)   h                 1
score  s                s              d_qk              b a / t
av     s                d_v            s                 b a / t
out    T                h              a d_v / t         1
up     T                (1+g) F / t    h                 1
down   T                h              F / t             1
====== ================ ============== ================= ======================

with ``g = 1`` for gated FFNs (SwiGLU). The forward FLOPs are ``2 M N K`` per instance; the
backward pass costs twice the forward (data and weight gradients). The logits GEMM
(``M = T, N = V / t, K = h``) runs once per micro-batch on the last stage.

References:
    Narayanan et al. SC21 (arXiv 2104.04473) sec. 3 and appendix; Korthikanti et al. 2022
    (arXiv 2205.05198) table 2 for activation memory.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._numerics import safe_div

__all__ = ["LayerOps", "layer_ops", "N_GEMMS", "GEMM_NAMES"]

GEMM_NAMES = ("qkv", "score", "av", "out", "up", "down")
N_GEMMS = len(GEMM_NAMES)
ATTN_CORE = (1, 2)  # indices of the attention-core GEMMs (selective recompute redoes these)


class LayerOps(eqx.Module):
    """Shapes and volumes of one layer, one micro-batch, one TP shard (all float32).

    Attributes:
        m, n, k, count: GEMM shapes, arrays of shape ``(6,)`` (see module table).
        m_eff: rows seen by one GEMM for efficiency purposes (MoE: tokens per expert).
        elem_bytes_fwd: bytes of non-GEMM (element-wise, norm, softmax) memory traffic in the
            forward pass on an accelerator that keeps nothing on chip between kernels.
        attn_elem_bytes_fwd: the softmax/dropout part of it (score-sized tensors).
        vec_flops_fwd: FLOPs of the non-GEMM operations in the forward pass.
        kernels_fwd: kernel launches in the forward pass (GPU overhead model).
        tp_bytes: bytes of one TP all-reduce (``T h`` elements at 16 bit).
        p2p_bytes: bytes sent between pipeline stages per micro-batch per direction.
        act_bytes_stash: activation bytes kept for the backward pass (no recompute).
        act_bytes_selective, act_bytes_full: same with selective / full recomputation.
        weight_params: parameters of this layer held by one TP shard.
    """

    m: jnp.ndarray
    n: jnp.ndarray
    k: jnp.ndarray
    count: jnp.ndarray
    m_eff: jnp.ndarray
    elem_bytes_fwd: jnp.ndarray
    attn_elem_bytes_fwd: jnp.ndarray
    vec_flops_fwd: jnp.ndarray
    kernels_fwd: jnp.ndarray
    tp_bytes: jnp.ndarray
    p2p_bytes: jnp.ndarray
    act_bytes_stash: jnp.ndarray
    act_bytes_selective: jnp.ndarray
    act_bytes_full: jnp.ndarray
    weight_params: jnp.ndarray

    def gemm_flops(self):
        """Forward FLOPs of each GEMM, shape ``(6,)``."""
        return 2.0 * self.m * self.n * self.k * self.count


def layer_ops(workload, micro_batch, tp, seq_par, cp=1.0, ep=1.0) -> LayerOps:
    """Operations of one average transformer layer for one micro-batch on one TP shard.

    Args:
        workload: :class:`~theseus_jax.workload.TrainingWorkload`.
        micro_batch: sequences per micro-batch ``b``.
        tp: tensor-parallel degree ``t`` (the shard holds ``1/t`` of every weight).
        seq_par: 1.0 if sequence parallelism shards the non-TP regions over ``t``.
        cp: context-parallel degree: the shard holds ``s / cp`` tokens of each sequence
            (its queries), and attends to all ``s`` keys (ring attention), so ``T = b s / cp``
            and the score GEMMs are ``(s/cp) x s``.
        ep: expert-parallel degree (MoE): the shard holds ``E / ep`` routed experts, and
            each of them sees the tokens of ``ep`` ranks (``T ep k / E``).
    """
    mdl = workload.model
    s_k = workload.seq_len  # keys each query attends to
    s = s_k / cp  # local queries per sequence
    h = mdl.d_model
    a = mdl.n_heads
    t = tp
    b = micro_batch
    T = b * s
    L = mdl.n_layers
    gated = mdl.ffn_gated
    d_qk = safe_div(mdl.q_dim(), a)
    d_v = safe_div(mdl.v_dim(), a)
    ffn_mats = 2.0 + gated
    f_act = safe_div(mdl.ffn_params_active(), L * ffn_mats * h)  # active inner width per layer
    moe_frac = safe_div(mdl.n_moe_layers(), L)
    # Tokens seen by one expert's GEMM: T k / E on MoE layers (load-balanced), T on dense.
    tok_per_expert = safe_div(T * ep * mdl.top_k, jnp.maximum(mdl.n_experts, 1.0))
    m_ffn = (1.0 - moe_frac) * T + moe_frac * jnp.minimum(T * ep, tok_per_expert)

    heads_t = b * a / t
    m = jnp.stack([T, s, s, T, T, T])
    n = jnp.stack([mdl.attn_in_params() / (h * t), s_k, d_v, h, (1.0 + gated) * f_act / t, h])
    k = jnp.stack([h, d_qk, s_k, mdl.v_dim() / t, h, f_act / t])
    count = jnp.stack([1.0, heads_t, heads_t, 1.0, 1.0, 1.0])
    m_eff = jnp.stack([T, s, s, T, m_ffn, m_ffn])

    # Non-GEMM traffic (16-bit), forward. Token-wise tensors are replicated over the TP group
    # unless sequence parallelism shards them.
    sp_div = jnp.where(seq_par > 0, t, 1.0)
    th = T * h / sp_div
    ln_bytes = 2.0 * (2.0 * 2.0 * th)  # two norms, read + write
    resid_bytes = 2.0 * (3.0 * 2.0 * th + th)  # bias+dropout+residual: 2 reads, 1 write, mask
    act_fn_bytes = (2.0 * (1.0 + gated) + 2.0) * T * f_act / t  # read (1|2) F, write F
    score_elems = heads_t * s * s_k
    # unfused scale-mask-softmax (read+write) and attention dropout (read, write, 1-B mask)
    attn_bytes = (1.0 - workload.flash_attention) * score_elems * (2.0 * 2.0 + 2.0 * 2.0 + 1.0)
    elem_bytes = ln_bytes + resid_bytes + act_fn_bytes + attn_bytes
    vec_flops = 2.0 * 8.0 * th + 2.0 * 3.0 * th + 8.0 * T * f_act / t + 6.0 * score_elems
    kernels = 12.0 + 3.0 * (1.0 - workload.flash_attention)

    # Activation memory kept for backward, bytes (Korthikanti table 2, generalised to the
    # FFN width: the 24/t sharded coefficient is 8 (attention) + 16 F/(4h) (MLP)).
    c_rep = 10.0
    c_shard = 8.0 + 4.0 * f_act * (1.0 + 0.5 * gated) / h
    sbh = T * h
    score_stash = (1.0 - workload.flash_attention) * 5.0 * a * s * s_k * b / t
    rep = jnp.where(seq_par > 0, c_rep / t, c_rep)
    stash = sbh * (rep + c_shard / t) + score_stash
    selective = sbh * (rep + c_shard / t)
    full = 2.0 * sbh / sp_div

    # routed experts are split over the EP group; shared experts and dense FFNs are not
    routed = mdl.n_moe_layers() * mdl._ffn_mats() * h * mdl.expert_d_ff * mdl.n_experts
    ffn_dev = mdl.ffn_params_total() - routed * (1.0 - safe_div(1.0, ep))
    weight_params = (mdl.attn_params() + safe_div(ffn_dev, L)) / t

    return LayerOps(
        m=m,
        n=n,
        k=k,
        count=count,
        m_eff=m_eff,
        elem_bytes_fwd=elem_bytes,
        attn_elem_bytes_fwd=attn_bytes,
        vec_flops_fwd=vec_flops,
        kernels_fwd=jnp.asarray(kernels, jnp.float32),
        tp_bytes=2.0 * T * h,
        p2p_bytes=2.0 * T * h / t,  # Megatron scatter/gather optimisation (SC21 sec. 4.1)
        act_bytes_stash=stash,
        act_bytes_selective=selective,
        act_bytes_full=full,
        weight_params=weight_params,
    )
