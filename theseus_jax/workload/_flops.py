r"""Closed-form FLOP and memory oracles for transformer training (Megatron conventions).

These are deliberately *not* the op-level cost model: they are the published closed forms,
written once, so that the op-level model can be tested against them. All functions are pure
``jnp`` functions of an :class:`LLMConfig` / :class:`TrainingWorkload` with float32 leaves
(no Python ints in traced math: counts reach 1e24 and would overflow int32); static
switches (``recompute``, ``seq_parallel``) are Python values.

Notation: :math:`B` global batch (sequences), :math:`b` micro-batch, :math:`s` sequence
length, :math:`L` layers, :math:`h` hidden size, :math:`a` heads, :math:`g` KV heads,
:math:`d_{qk}, d_v` query/key and value head widths, :math:`F` FFN width, :math:`V` vocab,
:math:`t` tensor-parallel size.

References:
    [1] Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters
        Using Megatron-LM", SC21 (arXiv 2104.04473), appendix (FLOP formula).
    [2] Korthikanti et al., "Reducing Activation Recomputation in Large Transformer
        Models", MLSys 2023 (arXiv 2205.05198), section 4 and Table 2.
    [3] NVIDIA/Megatron-LM ``megatron/training/training.py::num_floating_point_operations``
        (commit d737deb, July 2024).
    [4] NVIDIA/Megatron-LM ``docs/user-guide/features/dist_optimizer.md`` (bytes/param).
"""

from __future__ import annotations

import jax.numpy as jnp

from ._llm import LLMConfig, TrainingWorkload

__all__ = [
    "model_flops_per_token",
    "megatron_model_flops_per_step",
    "activation_bytes_per_layer",
    "optimizer_bytes_per_param",
]

_RECOMPUTE = ("none", "selective", "full")


def _f32(x) -> jnp.ndarray:
    return jnp.asarray(x, dtype=jnp.float32)


def _qk_dim(m: LLMConfig) -> jnp.ndarray:
    """``a * d_qk``: width of all query (= key) heads."""
    return m.q_dim()


def _layer_flops_per_token(m: LLMConfig, seq_len) -> jnp.ndarray:
    """Training FLOPs per token of all transformer layers (fwd + bwd, no logits)."""
    s = _f32(seq_len)
    linear = m.n_layers * m.attn_params() + m.ffn_params_active()
    # Scores Q K^T (a d_qk per key) and A V (a d_v per key), non-causal: 2 FLOPs/MAC x 3.
    scores = m.n_layers * s * (_qk_dim(m) + m.v_dim())
    return 6.0 * linear + 6.0 * scores


def _logits_flops_per_token(m: LLMConfig) -> jnp.ndarray:
    """Training FLOPs per token of the output (logits) GEMM: ``6 V h``."""
    return 6.0 * m.vocab_size * m.d_model


def model_flops_per_token(model: LLMConfig, seq_len) -> jnp.ndarray:
    r"""Model FLOPs per trained token (forward + backward, no recomputation).

    .. math::

        C = 6\,N_\text{active, non-emb} + 6\,V h
            + 6\,L\,s\,(a\,d_{qk} + a\,d_v)

    For a dense or GQA model (:math:`d_{qk} = d_v = d_\text{head}`) the last term is
    Megatron's :math:`12\,L\,s\,a\,d_\text{head}` (= :math:`12 L s h` for GPT). It counts
    the full, non-causal score matrices (Megatron convention); causal kernels
    (FlashAttention) skip about half of it. MoE layers count the ``top_k + shared``
    experts a token runs through; embedding lookups are free; the logits GEMM counts once
    even when embeddings are tied.

    Args:
        model: the architecture.
        seq_len: tokens per sequence :math:`s` (scalar).

    Returns:
        FLOPs per token, float32 scalar.

    Examples:
        >>> from theseus_jax.workload import load_model
        >>> m = load_model("llama-3.1-70b")
        >>> round(float(model_flops_per_token(m, 8192)) / 1e9)
        481

    References:
        Kaplan et al. 2020 (6N); [1] appendix; [3]; hardware.md section 6.1.
    """
    return _layer_flops_per_token(model, seq_len) + _logits_flops_per_token(model)


def megatron_model_flops_per_step(
    workload: TrainingWorkload, recompute_full: bool = False
) -> jnp.ndarray:
    r"""Megatron's model FLOPs of one training step (optionally with full recomputation).

    Generalised Megatron formula [3] (hardware.md section 6.3):

    .. math::

        F = 12 B s L h^2 \Big[(1 + \tfrac{g}{a} + \tfrac{s}{h})\tfrac{q}{h}
            + \tfrac{F}{h} k\,(\tfrac32 \text{ if gated else } 1) + \tfrac{V}{2 L h}\Big]

    which is :math:`B s` times :func:`model_flops_per_token`. It reduces, for GPT
    (:math:`F = 4h`, :math:`g = a`), to :math:`72 B s L h^2 (1 + s/(6h) + V/(12 L h))`.
    Here it is also exact for MLA (per-layer projection parameters) and for MoE models with
    leading dense layers and shared experts (DeepSeek), where Megatron's code approximates.

    With ``recompute_full`` the transformer layers run their forward pass once more
    (the logits layer does not), i.e. the layer term is multiplied by 4/3, which for GPT is
    Narayanan's :math:`96 B s L h^2 (1 + s/(6h) + V/(16 L h))` [1] (hardware.md 6.2). This
    is the "hardware" FLOP count of Table 1 of [1].

    Args:
        workload: model, global batch :math:`B` and sequence length :math:`s`.
        recompute_full: count one extra forward of the layers (full activation recompute).

    Returns:
        FLOPs per optimizer step, float32 scalar.

    Examples:
        >>> import equinox as eqx
        >>> from theseus_jax.workload import load_training_workload
        >>> w = load_training_workload("gpt3-175b", global_batch=1)
        >>> w = eqx.tree_at(lambda w: w.model.vocab_size, w, jnp.float32(51200))
        >>> f"{float(megatron_model_flops_per_step(w)):.4e}"
        '2.2046e+15'

    References:
        [1] appendix; [3]; hardware.md sections 6.2-6.3.
    """
    m = workload.model
    layers = _layer_flops_per_token(m, workload.seq_len)
    if recompute_full:
        layers = layers * (4.0 / 3.0)
    return workload.tokens_per_step() * (layers + _logits_flops_per_token(m))


def activation_bytes_per_layer(
    model: LLMConfig,
    seq_len,
    micro_batch,
    tp=1.0,
    seq_parallel: bool = False,
    recompute: str = "none",
) -> jnp.ndarray:
    r"""Activation bytes stored per transformer layer for the backward pass (16-bit).

    Korthikanti et al. [2] for a GPT layer (:math:`F = 4h`, :math:`g = a`, dropout on):

    ============================  ===========================================
    none, no parallelism           :math:`s b h (34 + 5 a s / h)`
    tensor parallel                :math:`s b h (10 + 24/t + 5 a s/(h t))`
    TP + sequence parallel         :math:`s b h (34 + 5 a s / h) / t`
    selective (+ SP)               :math:`34\,s b h / t` (scores recomputed)
    full                           :math:`2 s b h` (layer input; :math:`/t` with SP)
    ============================  ===========================================

    Generalised term by term (bytes per token, 16-bit):

    * replicated over TP (split by SP): two LayerNorm inputs ``4h``, attention and MLP
      inputs ``2h + 2h``, two dropout masks ``2h`` -> ``10h``;
    * split over TP: Q, K, V ``2(a d_qk + a d_qk|g d_head + a d_v|g d_head)`` (GQA stores
      ``g`` K/V heads; MLA's K/V are per head), attention output ``2 a d_v``, FFN
      ``2 F_act`` per stored tensor: 2 tensors (input and output of GELU) or 3 for gated
      FFNs (gate, up, product). ``F_act`` is the FFN width a token passes through,
      averaged over layers (MoE: ``(top_k + shared) expert_d_ff`` in MoE layers);
    * scores: softmax output, dropout mask and dropout output ``5 a s`` per token (/t).

    For GPT this is exactly the table above (``6 + 2 + 16 = 24`` split terms). Without
    dropout (Llama) the masks are still counted, as in [2]. FlashAttention would remove the
    score term; use ``recompute="selective"`` for that.

    Args:
        model: the architecture.
        seq_len: :math:`s`, tokens per sequence.
        micro_batch: :math:`b`, sequences per micro-batch.
        tp: tensor-parallel size :math:`t`.
        seq_parallel: sequence parallelism (static bool).
        recompute: ``"none"``, ``"selective"`` or ``"full"`` (static).

    Returns:
        Bytes per layer per device, float32 scalar.

    Examples:
        >>> from theseus_jax.workload import load_model
        >>> m = load_model("gpt3-175b")
        >>> sbh = 2048 * 1 * 12288
        >>> float(activation_bytes_per_layer(m, 2048, 1, 8, True, "selective")) == 34 * sbh / 8
        True

    References:
        [2] section 4.1-4.2, Table 2; hardware.md section 6.6.
    """
    if recompute not in _RECOMPUTE:
        raise ValueError(f"recompute = {recompute!r}; use one of {', '.join(_RECOMPUTE)}.")
    m = model
    s, b, t = _f32(seq_len), _f32(micro_batch), _f32(tp)
    h = m.d_model
    sb = s * b
    rep_div = t if seq_parallel else 1.0
    if recompute == "full":
        return 2.0 * sb * h / rep_div
    mla = m.mla > 0
    k_dim = jnp.where(mla, _qk_dim(m), m.n_kv_heads * m.d_head)
    v_kv_dim = jnp.where(mla, m.v_dim(), m.n_kv_heads * m.d_head)
    attn_split = 2.0 * (_qk_dim(m) + k_dim + v_kv_dim) + 2.0 * m.v_dim()
    f_act = m.ffn_params_active() / (m.n_layers * m._ffn_mats() * h)
    ffn_split = 2.0 * (2.0 + m.ffn_gated) * f_act
    replicated = 10.0 * h
    per_token = replicated / rep_div + (attn_split + ffn_split) / t
    if recompute == "none":
        per_token = per_token + 5.0 * m.n_heads * s / t
    return sb * per_token


def optimizer_bytes_per_param(distributed: bool = False, dp=1.0) -> jnp.ndarray:
    r"""Model and optimizer-state bytes per parameter, Megatron bf16 + fp32 main grads.

    bf16 weights (2) + fp32 main gradients (4) + fp32 master weights and Adam moments (12):

    .. math::

        \text{bytes/param} = \begin{cases} 18 & \text{non-distributed} \\
        6 + 12/d & \text{distributed optimizer over } d \text{ data-parallel ranks}
        \end{cases}

    Args:
        distributed: Megatron's distributed optimizer (ZeRO-1-like sharding of the
            12 bytes of fp32 state); may be a traced boolean.
        dp: data-parallel size :math:`d`.

    Returns:
        Bytes per parameter per device, float32 scalar.

    Examples:
        >>> float(optimizer_bytes_per_param(True, 8))
        7.5

    References:
        [4] (table "bf16 / fp32 main grads"); hardware.md section 6.8.
    """
    d = _f32(dp)
    return jnp.where(jnp.asarray(distributed), 6.0 + 12.0 / d, jnp.float32(18.0))
