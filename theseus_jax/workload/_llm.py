"""Decoder-only transformer LLMs and training workloads as frozen pytrees.

Every architectural number is a traced float leaf (so one compiled evaluator serves many
models and nothing overflows int32: FLOP counts reach 1e24); only the name is static.

Per-layer parameter counts (biases and norms ignored, as Megatron's FLOP formula does):

* attention input projections: dense/GQA ``h * (a + 2 g) * d_head``; MLA (DeepSeek-V2/V3)
  ``h*q_lora + q_lora*a*(nope+rope) + h*(kv_lora+rope) + kv_lora*a*(nope+v_head)``
  (``q_lora = 0`` means a direct ``h * a*(nope+rope)`` query projection);
* attention output: ``a * v_head * h``;
* FFN: ``(2 if gelu else 3) * h * F`` per expert; MoE layers hold ``E`` routed experts plus
  ``S`` shared ones and run ``k + S`` of them per token.

References:
    Narayanan et al., SC21 (arXiv 2104.04473), appendix FLOP formula; Megatron-LM
    ``num_floating_point_operations`` (commit d737deb); DeepSeek-V3 ``config_671B.json``.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

__all__ = ["LLMConfig", "TrainingWorkload"]


def _f(x) -> jnp.ndarray:
    return jnp.asarray(x, dtype=jnp.float32)


class LLMConfig(eqx.Module):
    """One decoder-only LLM. Construct with :func:`theseus_jax.load_model` or directly.

    Fields are float32 scalars (or batched arrays under vmap); ``name`` is static.
    ``ffn_gated`` is 1.0 for SwiGLU/GeGLU (three FFN matrices) and 0.0 for GELU (two).
    ``n_experts`` is 0 for a dense model. ``mla`` is 1.0 for multi-head latent attention.
    """

    n_layers: jnp.ndarray
    d_model: jnp.ndarray
    n_heads: jnp.ndarray
    n_kv_heads: jnp.ndarray
    d_head: jnp.ndarray
    d_ff: jnp.ndarray
    vocab_size: jnp.ndarray
    ffn_gated: jnp.ndarray
    n_experts: jnp.ndarray
    top_k: jnp.ndarray
    n_shared_experts: jnp.ndarray
    expert_d_ff: jnp.ndarray
    n_dense_layers: jnp.ndarray
    mla: jnp.ndarray
    q_lora_rank: jnp.ndarray
    kv_lora_rank: jnp.ndarray
    qk_nope_head_dim: jnp.ndarray
    qk_rope_head_dim: jnp.ndarray
    v_head_dim: jnp.ndarray
    tied_embeddings: jnp.ndarray
    name: str = eqx.field(static=True, default="llm")

    def __init__(
        self,
        *,
        n_layers,
        d_model,
        n_heads,
        d_ff,
        vocab_size,
        n_kv_heads=None,
        d_head=None,
        ffn_gated=0.0,
        n_experts=0.0,
        top_k=1.0,
        n_shared_experts=0.0,
        expert_d_ff=None,
        n_dense_layers=0.0,
        mla=0.0,
        q_lora_rank=0.0,
        kv_lora_rank=0.0,
        qk_nope_head_dim=0.0,
        qk_rope_head_dim=0.0,
        v_head_dim=0.0,
        tied_embeddings=0.0,
        name: str = "llm",
    ):
        self.n_layers = _f(n_layers)
        self.d_model = _f(d_model)
        self.n_heads = _f(n_heads)
        self.n_kv_heads = _f(n_heads if n_kv_heads is None else n_kv_heads)
        self.d_head = _f(
            (jnp.asarray(d_model, jnp.float32) / jnp.asarray(n_heads, jnp.float32))
            if d_head is None
            else d_head
        )
        self.d_ff = _f(d_ff)
        self.vocab_size = _f(vocab_size)
        self.ffn_gated = _f(ffn_gated)
        self.n_experts = _f(n_experts)
        self.top_k = _f(top_k)
        self.n_shared_experts = _f(n_shared_experts)
        self.expert_d_ff = _f(d_ff if expert_d_ff is None else expert_d_ff)
        self.n_dense_layers = _f(n_dense_layers)
        self.mla = _f(mla)
        self.q_lora_rank = _f(q_lora_rank)
        self.kv_lora_rank = _f(kv_lora_rank)
        self.qk_nope_head_dim = _f(qk_nope_head_dim)
        self.qk_rope_head_dim = _f(qk_rope_head_dim)
        self.v_head_dim = _f(v_head_dim)
        self.tied_embeddings = _f(tied_embeddings)
        self.name = name

    # ---- derived quantities (pure, traced) -------------------------------------------------
    def q_dim(self):
        """Width of the query (and score) head dimension times heads: ``a * d_qk``."""
        mla_qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        return self.n_heads * jnp.where(self.mla > 0, mla_qk, self.d_head)

    def v_dim(self):
        """Width of all value heads: ``a * d_v`` (``a * d_head`` unless MLA)."""
        return self.n_heads * jnp.where(self.mla > 0, self.v_head_dim, self.d_head)

    def attn_in_params(self):
        """Parameters of the attention input projections of one layer (Q, K, V or MLA)."""
        h = self.d_model
        dense = h * (self.n_heads + 2.0 * self.n_kv_heads) * self.d_head
        rope, nope = self.qk_rope_head_dim, self.qk_nope_head_dim
        q = jnp.where(
            self.q_lora_rank > 0,
            h * self.q_lora_rank + self.q_lora_rank * self.n_heads * (nope + rope),
            h * self.n_heads * (nope + rope),
        )
        kv = h * (self.kv_lora_rank + rope) + self.kv_lora_rank * self.n_heads * (
            nope + self.v_head_dim
        )
        return jnp.where(self.mla > 0, q + kv, dense)

    def attn_out_params(self):
        """Parameters of the attention output projection of one layer."""
        return self.v_dim() * self.d_model

    def attn_params(self):
        return self.attn_in_params() + self.attn_out_params()

    def _ffn_mats(self):
        return 2.0 + self.ffn_gated

    def dense_ffn_params(self):
        """FFN parameters of one dense layer: ``(2|3) * h * F``."""
        return self._ffn_mats() * self.d_model * self.d_ff

    def moe_ffn_params(self):
        """FFN parameters of one MoE layer (routed + shared experts, router ignored)."""
        return (
            self._ffn_mats()
            * self.d_model
            * self.expert_d_ff
            * (self.n_experts + self.n_shared_experts)
        )

    def moe_ffn_active_params(self):
        """FFN parameters one token runs through in an MoE layer: ``k + shared`` experts."""
        return (
            self._ffn_mats()
            * self.d_model
            * self.expert_d_ff
            * (self.top_k + self.n_shared_experts)
        )

    def n_moe_layers(self):
        return jnp.where(self.n_experts > 0, self.n_layers - self.n_dense_layers, 0.0)

    def ffn_params_total(self):
        """FFN parameters of the whole model."""
        n_moe = self.n_moe_layers()
        return (self.n_layers - n_moe) * self.dense_ffn_params() + n_moe * self.moe_ffn_params()

    def ffn_params_active(self):
        """FFN parameters one token passes through, whole model."""
        n_moe = self.n_moe_layers()
        return (self.n_layers - n_moe) * self.dense_ffn_params() + n_moe * (
            self.moe_ffn_active_params()
        )

    def embedding_params(self):
        """Input embedding plus (untied) output head: ``V h (2 - tied)``."""
        return self.vocab_size * self.d_model * (2.0 - self.tied_embeddings)

    def params_total(self):
        """All parameters (biases and norms ignored)."""
        return (
            self.n_layers * self.attn_params() + self.ffn_params_total() + (self.embedding_params())
        )

    def params_active(self):
        """Parameters used per token (MoE counts ``k + shared`` experts)."""
        return (
            self.n_layers * self.attn_params()
            + self.ffn_params_active()
            + (self.embedding_params())
        )

    def kv_cache_bytes_per_token(self, bytes_per_elem=2.0):
        """KV-cache bytes per token, all layers: ``2 L g d_head`` or MLA ``L (kv_lora+rope)``."""
        dense = 2.0 * self.n_layers * self.n_kv_heads * self.d_head
        latent = self.n_layers * (self.kv_lora_rank + self.qk_rope_head_dim)
        return jnp.where(self.mla > 0, latent, dense) * bytes_per_elem


class TrainingWorkload(eqx.Module):
    """One training step: ``global_batch`` sequences of ``seq_len`` tokens.

    ``precision_bits`` (16 or 8) selects the peak MAC rate; mixed-precision Adam keeps
    bf16/fp16 weights, fp32 main gradients and fp32 master weights and moments
    (Megatron's 18 bytes/parameter, 6 + 12/d with the distributed optimizer).
    """

    model: LLMConfig
    global_batch: jnp.ndarray
    seq_len: jnp.ndarray
    precision_bits: jnp.ndarray
    main_grad_bytes: jnp.ndarray
    flash_attention: jnp.ndarray

    def __init__(
        self,
        model: LLMConfig,
        *,
        global_batch,
        seq_len,
        precision_bits=16.0,
        main_grad_bytes=4.0,
        flash_attention=1.0,
    ):
        """Args:
        model: the LLM.
        global_batch: sequences per optimizer step.
        seq_len: tokens per sequence.
        precision_bits: 16 (BF16/FP16) or 8 (FP8) GEMM precision.
        main_grad_bytes: bytes per gradient element in the DP reduction and the gradient
            buffer: 4 for fp32 main gradients (Megatron's bf16 default), 2 for fp16 buffers
            (Megatron's fp16 default in 2021).
        flash_attention: 1 if attention scores never leave on-chip memory (FlashAttention,
            2022+; always true on a wafer), 0 for the unfused softmax kernels of Megatron 2021
            (scores written to and read from HBM).
        """
        self.model = model
        self.global_batch = _f(global_batch)
        self.seq_len = _f(seq_len)
        self.precision_bits = _f(precision_bits)
        self.main_grad_bytes = _f(main_grad_bytes)
        self.flash_attention = _f(flash_attention)

    def tokens_per_step(self):
        return self.global_batch * self.seq_len


class InferenceWorkload(eqx.Module):
    """Serving ``batch`` concurrent requests of ``prompt_len`` input and ``output_len``
    output tokens: one prefill of the prompts, then ``output_len`` decode steps.

    ``precision_bits`` (16 or 8) is the weight/activation precision of the GEMMs;
    ``kv_bits`` the KV-cache precision. Continuous batching is approximated by a steady-state
    batch: decode steps see the mean context ``prompt_len + output_len / 2``.
    ``max_tpot_s`` (> 0) bounds the time per output token: mappings slower than it are
    flagged ``LATENCY`` (0 = no bound). ``prefill_chunk_tokens`` is the most tokens one
    prefill pass holds activations for (TensorRT-LLM ``max_num_tokens``, vLLM
    ``max_num_batched_tokens``): it sizes the activation workspace, not the time.
    """

    model: LLMConfig
    batch: jnp.ndarray
    prompt_len: jnp.ndarray
    output_len: jnp.ndarray
    precision_bits: jnp.ndarray
    kv_bits: jnp.ndarray
    max_tpot_s: jnp.ndarray
    prefill_chunk_tokens: jnp.ndarray

    def __init__(
        self,
        model: LLMConfig,
        *,
        batch,
        prompt_len,
        output_len,
        precision_bits=16.0,
        kv_bits=16.0,
        max_tpot_s=0.0,
        prefill_chunk_tokens=8192.0,
    ):
        self.model = model
        self.batch = _f(batch)
        self.prompt_len = _f(prompt_len)
        self.output_len = _f(output_len)
        self.precision_bits = _f(precision_bits)
        self.kv_bits = _f(kv_bits)
        self.max_tpot_s = _f(max_tpot_s)
        self.prefill_chunk_tokens = _f(prefill_chunk_tokens)

    @property
    def global_batch(self):
        """Concurrent sequences (the name the mapping enumeration shares with training)."""
        return self.batch

    def mean_context(self):
        """Mean KV length seen by a decode step: ``prompt + output / 2``."""
        return self.prompt_len + 0.5 * self.output_len
