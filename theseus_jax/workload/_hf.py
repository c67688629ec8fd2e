"""Hugging Face ``config.json`` -> our validated ``model`` dict (no file I/O here).

References:
    Hugging Face ``transformers`` configuration classes (``LlamaConfig``, ``MixtralConfig``,
    ``DeepseekV3Config``, ``GPT2Config``, ``GPTNeoXConfig``, ``OPTConfig``) for the field
    names and their defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

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


class _Keys(NamedTuple):
    """Where one architecture family keeps the dense-decoder fields, and its defaults (the
    defaults here are the names most transformers configs share)."""

    n_layers: str = "num_hidden_layers"
    d_model: str = "hidden_size"
    n_heads: str = "num_attention_heads"
    d_ff: str = "intermediate_size"
    d_ff_default_x: int | None = None  # default d_ff as a multiple of d_model (None: required)
    max_seq_len: str = "max_position_embeddings"
    max_seq_len_default: int = 2048
    act: str | None = None  # activation key (None: the family has one activation)
    act_default: str = "gelu"
    gated: bool = False  # gated MLP (gate_proj, up_proj, down_proj)
    n_kv_heads: str | None = None  # GQA key (None: multi-head attention)
    head_dim: str | None = None  # explicit head width key (None: d_model / n_heads)


_GPT2 = _Keys(
    n_layers="n_layer",
    d_model="n_embd",
    n_heads="n_head",
    d_ff="n_inner",
    d_ff_default_x=4,
    max_seq_len="n_positions",
    max_seq_len_default=1024,
)
_GPT_NEOX = _Keys(d_ff_default_x=4)
_OPT = _Keys(d_ff="ffn_dim", act="activation_function", act_default="relu")
_LLAMA = _Keys(  # Llama-style decoders, Mixtral and DeepSeek included
    max_seq_len_default=4096,
    act="hidden_act",
    act_default="silu",
    gated=True,
    n_kv_heads="num_key_value_heads",
    head_dim="head_dim",
)
_HF_KEYS = MappingProxyType(
    {"gpt2": _GPT2, "gpt_neox": _GPT_NEOX, "opt": _OPT}
    | dict.fromkeys(_HF_LLAMA_LIKE + _HF_DEEPSEEK, _LLAMA)
)


def _ffn(keys: _Keys, act: str) -> str:
    """Our ``ffn`` of a family's MLP and activation."""
    if keys.gated:
        return "geglu" if act.startswith("gelu") else "swiglu"
    return "relu" if act == "relu" else "gelu"


def _hf_to_model(cfg: Mapping, src: str) -> dict[str, Any]:
    """Translate a Hugging Face ``config.json`` dict into our validated ``model`` dict."""
    if not isinstance(cfg, Mapping):
        raise ValueError(f"{src}: a config.json must be a JSON object.")
    kind = _hf_type(cfg, src)
    keys = _HF_KEYS[kind]
    w = "config"

    def req(key):
        return _int(cfg, key, w, src, hint=f"Hugging Face {kind} configs must set {key}.")

    def opt(key, default):
        return default if key is None or cfg.get(key) is None else cfg[key]

    h = req(keys.d_model)
    a = req(keys.n_heads)
    act = str(opt(keys.act, keys.act_default)).lower()
    d_ff_default = None if keys.d_ff_default_x is None else keys.d_ff_default_x * h
    m = dict(
        n_layers=req(keys.n_layers),
        d_model=h,
        n_heads=a,
        n_kv_heads=opt(keys.n_kv_heads, a),
        d_head=opt(keys.head_dim, h // a if h % a == 0 else None),
        d_ff=req(keys.d_ff) if d_ff_default is None else opt(keys.d_ff, d_ff_default),
        vocab_size=req("vocab_size"),
        max_seq_len=opt(keys.max_seq_len, keys.max_seq_len_default),
        ffn=_ffn(keys, act),
        tied_embeddings=bool(opt("tie_word_embeddings", _HF_TIE_DEFAULT[kind])),
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
