"""The schema of our workload files: field validation and the typed :class:`LLMConfig`.

Every check of a workload document lives here, so that each mistake is a ``ValueError``
that names the file, the field and the fix (STYLE anti-pattern 3); :mod:`._load` reads the
files and resolves names, :mod:`._hf` translates Hugging Face configs into the same
validated ``model`` dict, and both end in :func:`_build`.

Our schema (``configs/workloads/<slug>.json``)::

    {"name": str, "family": str, "source": str, "status": str,
     "model": {"n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff",
               "vocab_size", "max_seq_len": positive int,
               "ffn": "gelu" | "relu" | "swiglu" | "geglu",
               "tied_embeddings": bool,
               "moe": {"n_experts", "top_k", "n_shared_experts", "expert_d_ff",
                       "n_dense_layers"}            # optional
               "mla": {"q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
                       "qk_rope_head_dim", "v_head_dim"}},  # optional
     "training": {"global_batch": sequences, "seq_len": tokens,
                  "precision": "bf16" | "fp16" | "fp8"}}

Other top-level keys (``notes``, ``reported_params``, ...) are free-form metadata; the
optional ``aliases`` list gives other names of the same architecture.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ._llm import LLMConfig

#: Bits per operand of each training precision (selects the peak MAC rate).
PRECISION_BITS = MappingProxyType({"bf16": 16.0, "fp16": 16.0, "fp8": 8.0})

_GATED_FFN = MappingProxyType({"swiglu": 1.0, "geglu": 1.0, "gelu": 0.0, "relu": 0.0})

_MODEL_INT_FIELDS = (
    "n_layers",
    "d_model",
    "n_heads",
    "n_kv_heads",
    "d_head",
    "d_ff",
    "vocab_size",
    "max_seq_len",
)
_MODEL_FIELDS = (*_MODEL_INT_FIELDS, "ffn", "tied_embeddings", "moe", "mla")
_MOE_FIELDS = ("n_experts", "top_k", "n_shared_experts", "expert_d_ff", "n_dense_layers")
_MLA_FIELDS = ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
_TRAINING_FIELDS = ("global_batch", "seq_len", "precision")
_TOP_REQUIRED = ("name", "family", "source", "status", "model", "training")


# ---- small validation helpers --------------------------------------------------------------
def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def _check_keys(d: Mapping, allowed, where: str, src: str) -> None:
    for k in d:
        if k not in allowed:
            raise ValueError(
                f"{src}: unknown field {where}.{k}.{_suggest(k, allowed)} "
                f"Allowed fields of {where}: {', '.join(allowed)}."
            )


def _get(d: Mapping, key: str, where: str, src: str, hint: str = ""):
    if key not in d or d[key] is None:
        raise ValueError(
            f"{src}: missing field {where}.{key}."
            + (f" {hint}" if hint else f" Add {where}.{key} to the file.")
        )
    return d[key]


# Upper bounds of every integer field: far above any published model or run (the largest
# today: ~10^3 layers, d_model ~3*10^4, 10^7-token contexts), low enough that divisor
# enumeration and float32 counts stay exact and fast. A value above is a typo.
_MAX_INT: dict[str, int] = {
    "n_layers": 10_000,
    "n_dense_layers": 10_000,
    "d_model": 1 << 20,
    "n_heads": 1 << 16,
    "n_kv_heads": 1 << 16,
    "d_head": 1 << 16,
    "d_ff": 1 << 24,
    "expert_d_ff": 1 << 24,
    "vocab_size": 1 << 24,
    "max_seq_len": 1 << 27,
    "seq_len": 1 << 27,
    "prompt_len": 1 << 27,
    "output_len": 1 << 27,
    "global_batch": 1 << 24,
    "batch": 1 << 24,
    "n_experts": 1 << 16,
    "top_k": 1 << 16,
    "n_shared_experts": 1 << 16,
}
_MAX_DEFAULT = 1 << 24


def _int(d: Mapping, key: str, where: str, src: str, *, minimum: int = 1, hint: str = "") -> int:
    v = _get(d, key, where, src, hint)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(
            f"{src}: {where}.{key} = {v!r} has the wrong type ({type(v).__name__}); "
            f"it must be an integer >= {minimum}."
        )
    if v < minimum:
        kind = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{src}: {where}.{key} = {v} must be {kind}.")
    top = _MAX_INT.get(key, _MAX_DEFAULT)
    if v > top:
        raise ValueError(
            f"{src}: {where}.{key} = {v:.6g} is above the largest accepted value {top:,}; "
            "check the number (a typo or a unit slip?)."
        )
    return v


def _str(d: Mapping, key: str, where: str, src: str, choices=None) -> str:
    v = _get(d, key, where, src)
    if not isinstance(v, str):
        raise ValueError(
            f"{src}: {where}.{key} = {v!r} has the wrong type ({type(v).__name__}); "
            "it must be a string."
        )
    if choices is not None and v.lower() not in choices:
        raise ValueError(
            f"{src}: unknown {where}.{key} = {v!r}.{_suggest(v.lower(), choices)} "
            f"Use one of: {', '.join(choices)}."
        )
    return v.lower() if choices is not None else v


def _bool(d: Mapping, key: str, where: str, src: str) -> bool:
    v = _get(d, key, where, src, f"Add {where}.{key}: true or false.")
    if not isinstance(v, bool):
        raise ValueError(
            f"{src}: {where}.{key} = {v!r} has the wrong type ({type(v).__name__}); "
            "it must be true or false."
        )
    return v


def _mapping(d: Mapping, key: str, where: str, src: str) -> Mapping:
    v = _get(d, key, where, src)
    if not isinstance(v, Mapping):
        raise ValueError(
            f"{src}: {where}.{key} has the wrong type ({type(v).__name__}); it must be an object."
        )
    return v


# ---- schema -----------------------------------------------------------------------------------
def _validate_model(m: Mapping, src: str) -> dict[str, Any]:
    """Validate a ``model`` block; return a normalised plain dict (ints, bools, strings)."""
    if not isinstance(m, Mapping):
        raise ValueError(f"{src}: model must be an object, got {type(m).__name__}.")
    _check_keys(m, _MODEL_FIELDS, "model", src)
    out: dict[str, Any] = {}
    for k in _MODEL_INT_FIELDS:
        hint = ""
        if k == "d_ff":
            hint = (
                "Add model.d_ff, the FFN inner width (4*d_model for GPT; the SwiGLU "
                "intermediate_size for Llama-style models)."
            )
        elif k == "n_kv_heads":
            hint = "Add model.n_kv_heads (= n_heads for multi-head attention)."
        elif k == "d_head":
            hint = "Add model.d_head (usually d_model / n_heads)."
        out[k] = _int(m, k, "model", src, hint=hint)
    if out["n_heads"] % out["n_kv_heads"]:
        raise ValueError(
            f"{src}: model.n_kv_heads = {out['n_kv_heads']} does not divide model.n_heads = "
            f"{out['n_heads']}; grouped-query attention needs n_heads to be a multiple of "
            "n_kv_heads (use n_kv_heads = n_heads for MHA, 1 for MQA)."
        )
    out["ffn"] = _str(m, "ffn", "model", src, choices=tuple(_GATED_FFN))
    out["tied_embeddings"] = _bool(m, "tied_embeddings", "model", src)
    if m.get("moe") is not None:
        moe = _mapping(m, "moe", "model", src)
        _check_keys(moe, _MOE_FIELDS, "model.moe", src)
        w = "model.moe"
        out["moe"] = {
            "n_experts": _int(moe, "n_experts", w, src),
            "top_k": _int(moe, "top_k", w, src),
            "n_shared_experts": _int(moe, "n_shared_experts", w, src, minimum=0),
            "expert_d_ff": _int(moe, "expert_d_ff", w, src),
            "n_dense_layers": _int(moe, "n_dense_layers", w, src, minimum=0),
        }
        if out["moe"]["top_k"] > out["moe"]["n_experts"]:
            raise ValueError(
                f"{src}: model.moe.top_k = {out['moe']['top_k']} exceeds model.moe.n_experts = "
                f"{out['moe']['n_experts']}; a token is routed to at most n_experts experts."
            )
        if out["moe"]["n_dense_layers"] >= out["n_layers"]:
            raise ValueError(
                f"{src}: model.moe.n_dense_layers = {out['moe']['n_dense_layers']} must be smaller "
                f"than model.n_layers = {out['n_layers']} (remove the moe block for a dense model)."
            )
    if m.get("mla") is not None:
        mla = _mapping(m, "mla", "model", src)
        _check_keys(mla, _MLA_FIELDS, "model.mla", src)
        w = "model.mla"
        out["mla"] = {
            "q_lora_rank": _int(
                mla,
                "q_lora_rank",
                w,
                src,
                minimum=0,
                hint="Add model.mla.q_lora_rank (0 for a direct query projection).",
            ),
            **{k: _int(mla, k, w, src) for k in _MLA_FIELDS[1:]},
        }
    return out


def _validate_training(t: Mapping, model: Mapping, src: str) -> dict[str, Any]:
    if not isinstance(t, Mapping):
        raise ValueError(f"{src}: training must be an object, got {type(t).__name__}.")
    _check_keys(t, _TRAINING_FIELDS, "training", src)
    out = {
        "global_batch": _int(t, "global_batch", "training", src),
        "seq_len": _int(t, "seq_len", "training", src),
        "precision": _str(t, "precision", "training", src, choices=tuple(PRECISION_BITS)),
    }
    if out["seq_len"] > model["max_seq_len"]:
        raise ValueError(
            f"{src}: training.seq_len = {out['seq_len']} exceeds model.max_seq_len = "
            f"{model['max_seq_len']}; lower training.seq_len or raise model.max_seq_len."
        )
    return out


def _validate_file(doc: Any, src: str) -> dict[str, Any]:
    if not isinstance(doc, Mapping):
        raise ValueError(f"{src}: the top level must be a JSON object, got {type(doc).__name__}.")
    for k in _TOP_REQUIRED:
        if k not in doc:
            raise ValueError(
                f"{src}: missing field {k}. A workload file needs: {', '.join(_TOP_REQUIRED)}."
            )
    out = dict(doc)
    for k in ("name", "family", "source", "status"):
        out[k] = _str(doc, k, "<top>", src)
    out["model"] = _validate_model(doc["model"], src)
    out["training"] = _validate_training(doc["training"], out["model"], src)
    aliases = doc.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise ValueError(
            f"{src}: 'aliases' must be a list of other names of this same architecture "
            f'(e.g. ["Llama-3.3-70B"]), got {aliases!r}.'
        )
    out["aliases"] = aliases
    return out


def _build(m: Mapping[str, Any], name: str) -> LLMConfig:
    """A validated ``model`` dict -> :class:`LLMConfig` (float32 leaves)."""
    moe = m.get("moe") or {}
    mla = m.get("mla")
    kw: dict[str, Any] = dict(
        n_layers=m["n_layers"],
        d_model=m["d_model"],
        n_heads=m["n_heads"],
        n_kv_heads=m["n_kv_heads"],
        d_head=m["d_head"],
        d_ff=m["d_ff"],
        vocab_size=m["vocab_size"],
        ffn_gated=_GATED_FFN[m["ffn"]],
        tied_embeddings=1.0 if m["tied_embeddings"] else 0.0,
        name=name,
    )
    if moe:
        kw.update(
            n_experts=moe["n_experts"],
            top_k=moe["top_k"],
            n_shared_experts=moe["n_shared_experts"],
            expert_d_ff=moe["expert_d_ff"],
            n_dense_layers=moe["n_dense_layers"],
        )
    if mla:
        kw.update(mla=1.0, **{k: mla[k] for k in _MLA_FIELDS})
    return LLMConfig(**kw)
