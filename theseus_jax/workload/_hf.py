"""Hugging Face ``config.json`` -> our validated ``model`` dict (no file I/O here).

References:
    Hugging Face ``transformers`` configuration classes (``LlamaConfig``, ``MixtralConfig``,
    ``DeepseekV3Config``, ``GPT2Config``, ``GPTNeoXConfig``, ``OPTConfig``) for the field
    names and their defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._schema import _int, _validate_model

_HF_LLAMA_LIKE = ("llama", "mistral", "qwen2", "mixtral")
_HF_DEEPSEEK = ("deepseek_v2", "deepseek_v3")
_HF_ARCH_TO_TYPE = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "MixtralForCausalLM": "mixtral",
    "DeepseekV2ForCausalLM": "deepseek_v2",
    "DeepseekV3ForCausalLM": "deepseek_v3",
    "GPT2LMHeadModel": "gpt2",
    "GPTNeoXForCausalLM": "gpt_neox",
    "OPTForCausalLM": "opt",
}
#: ``tie_word_embeddings`` defaults of the transformers config classes.
_HF_TIE_DEFAULT = {
    "llama": False,
    "mistral": False,
    "qwen2": False,
    "mixtral": False,
    "deepseek_v2": False,
    "deepseek_v3": False,
    "gpt2": True,
    "gpt_neox": False,
    "opt": True,
}


def _hf_type(cfg: Mapping, src: str) -> str:
    mt = cfg.get("model_type")
    archs = cfg.get("architectures") or []
    for a in archs if isinstance(archs, list) else []:
        if a in _HF_ARCH_TO_TYPE:
            return _HF_ARCH_TO_TYPE[a]
    if isinstance(mt, str) and mt in _HF_TIE_DEFAULT:
        return mt
    got = archs or mt
    raise ValueError(
        f"{src}: unsupported Hugging Face architecture {got!r}. Supported: "
        f"{', '.join(_HF_ARCH_TO_TYPE)} (model_type {', '.join(_HF_TIE_DEFAULT)})."
    )


def _hf_to_model(cfg: Mapping, src: str) -> dict[str, Any]:
    """Translate a Hugging Face ``config.json`` dict into our validated ``model`` dict."""
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{src}: a config.json must be a JSON object.")
    kind = _hf_type(cfg, src)
    w = "config"

    def req(key):
        return _int(cfg, key, w, src, hint=f"Hugging Face {kind} configs must set {key}.")

    def opt(key, default):
        return default if cfg.get(key) is None else cfg[key]

    tied = bool(opt("tie_word_embeddings", _HF_TIE_DEFAULT[kind]))
    if kind == "gpt2":
        h = req("n_embd")
        a = req("n_head")
        m = dict(
            n_layers=req("n_layer"),
            d_model=h,
            n_heads=a,
            n_kv_heads=a,
            d_head=h // a if h % a == 0 else None,
            d_ff=opt("n_inner", 4 * h),
            vocab_size=req("vocab_size"),
            max_seq_len=opt("n_positions", 1024),
            ffn="gelu",
            tied_embeddings=tied,
        )
    elif kind == "gpt_neox":
        h = req("hidden_size")
        a = req("num_attention_heads")
        m = dict(
            n_layers=req("num_hidden_layers"),
            d_model=h,
            n_heads=a,
            n_kv_heads=a,
            d_head=h // a if h % a == 0 else None,
            d_ff=opt("intermediate_size", 4 * h),
            vocab_size=req("vocab_size"),
            max_seq_len=opt("max_position_embeddings", 2048),
            ffn="gelu",
            tied_embeddings=tied,
        )
    elif kind == "opt":
        h = req("hidden_size")
        a = req("num_attention_heads")
        act = str(opt("activation_function", "relu")).lower()
        m = dict(
            n_layers=req("num_hidden_layers"),
            d_model=h,
            n_heads=a,
            n_kv_heads=a,
            d_head=h // a if h % a == 0 else None,
            d_ff=req("ffn_dim"),
            vocab_size=req("vocab_size"),
            max_seq_len=opt("max_position_embeddings", 2048),
            ffn="relu" if act == "relu" else "gelu",
            tied_embeddings=tied,
        )
    else:  # Llama-style decoders (gated MLP: gate_proj, up_proj, down_proj)
        h = req("hidden_size")
        a = req("num_attention_heads")
        act = str(opt("hidden_act", "silu")).lower()
        m = dict(
            n_layers=req("num_hidden_layers"),
            d_model=h,
            n_heads=a,
            n_kv_heads=opt("num_key_value_heads", a),
            d_head=opt("head_dim", h // a if h % a == 0 else None),
            d_ff=req("intermediate_size"),
            vocab_size=req("vocab_size"),
            max_seq_len=opt("max_position_embeddings", 4096),
            ffn="geglu" if act.startswith("gelu") else "swiglu",
            tied_embeddings=tied,
        )
        if kind == "mixtral":
            m["moe"] = dict(
                n_experts=req("num_local_experts"),
                top_k=req("num_experts_per_tok"),
                n_shared_experts=0,
                expert_d_ff=m["d_ff"],
                n_dense_layers=0,
            )
        elif kind in _HF_DEEPSEEK:
            freq = opt("moe_layer_freq", 1)
            if freq != 1:
                raise ValueError(
                    f"{src}: config.moe_layer_freq = {freq!r} is not supported (only 1: every "
                    "layer after first_k_dense_replace is MoE)."
                )
            if cfg.get("n_routed_experts"):
                m["moe"] = dict(
                    n_experts=req("n_routed_experts"),
                    top_k=req("num_experts_per_tok"),
                    n_shared_experts=opt("n_shared_experts", 0),
                    expert_d_ff=req("moe_intermediate_size"),
                    n_dense_layers=opt("first_k_dense_replace", 0),
                )
            nope, rope = req("qk_nope_head_dim"), req("qk_rope_head_dim")
            m["mla"] = dict(
                q_lora_rank=opt("q_lora_rank", 0),
                kv_lora_rank=req("kv_lora_rank"),
                qk_nope_head_dim=nope,
                qk_rope_head_dim=rope,
                v_head_dim=req("v_head_dim"),
            )
            # MLA's K/V are up-projected to every head; d_head is the query/key head width.
            m["d_head"] = nope + rope
            m["n_kv_heads"] = opt("num_key_value_heads", a)
    if m["d_head"] is None:
        raise ValueError(
            f"{src}: d_model = {m['d_model']} is not divisible by n_heads = {m['n_heads']}; "
            "set head_dim in the config."
        )
    return _validate_model(m, src)


def _is_hf(doc: Any) -> bool:
    return (
        isinstance(doc, Mapping)
        and "model" not in doc
        and ("architectures" in doc or "model_type" in doc)
    )
