"""Load LLM architectures and training defaults from JSON: ours or Hugging Face ``config.json``.

This is the I/O boundary of the workload package (STYLE anti-pattern 3): every file is
validated once, here, against a small schema, and turned into a typed :class:`LLMConfig`.
Every mistake is a ``ValueError`` that names the file, the field and the fix; nothing
below this module ever reads a string-keyed dict.

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

Other top-level keys (``notes``, ``reported_params``, ...) are free-form metadata.

References:
    Hugging Face ``transformers`` configuration classes (``LlamaConfig``, ``MixtralConfig``,
    ``DeepseekV3Config``, ``GPT2Config``, ``GPTNeoXConfig``, ``OPTConfig``) for the field
    names and their defaults.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._paths import configs_dir
from ._llm import InferenceWorkload, LLMConfig, TrainingWorkload

__all__ = [
    "list_models",
    "load_model",
    "from_hf_config",
    "load_training_workload",
    "load_inference_workload",
    "workload_defaults",
    "PRECISION_BITS",
]

#: Bits per operand of each training precision (selects the peak MAC rate).
PRECISION_BITS: dict[str, float] = {"bf16": 16.0, "fp16": 16.0, "fp8": 8.0}

_GATED_FFN = {"swiglu": 1.0, "geglu": 1.0, "gelu": 0.0, "relu": 0.0}

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


# ---- files and names --------------------------------------------------------------------------
def _workloads_dir() -> Path:
    return configs_dir() / "workloads"


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}).") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read the file ({e.strerror}).") from None


def list_models() -> list[str]:
    """Slugs of the shipped workload files, sorted (``configs/workloads/<slug>.json``).

    Returns:
        For example ``["deepseek-v3", "gpt3-13b", ..., "qwen2-72b"]``.
    """
    d = _workloads_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.json"))


def _norm(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum() or ch == ".")


def _resolve(name_or_path: str | os.PathLike) -> Path:
    """A slug, a display name (case-insensitive) or a path -> the JSON file's path."""
    s = os.fspath(name_or_path)
    p = Path(s)
    if p.suffix == ".json" or os.sep in s or (os.altsep and os.altsep in s):
        if not p.is_file():
            raise ValueError(f"{p}: no such file. Pass an existing JSON path or a model name.")
        return p
    d = _workloads_dir()
    slugs = list_models()
    key = s.strip().lower()
    if key in slugs:
        return d / f"{key}.json"
    # Display names ("GPT-3 175B") and loose spellings ("gpt-3-175b", "Llama 2 70B").
    names: dict[str, str] = {}
    for slug in slugs:
        doc = _read_json(d / f"{slug}.json")
        names[_norm(slug)] = slug
        if isinstance(doc, Mapping) and isinstance(doc.get("name"), str):
            names[_norm(doc["name"])] = slug
        # other names of the same architecture (a point release with the same shape)
        for alias in (doc.get("aliases") or []) if isinstance(doc, Mapping) else []:
            if isinstance(alias, str):
                names.setdefault(_norm(alias), slug)
    if _norm(s) in names:
        return d / f"{names[_norm(s)]}.json"
    close = difflib.get_close_matches(key, slugs, n=1, cutoff=0.3) or [
        names[c] for c in difflib.get_close_matches(_norm(s), list(names), n=1, cutoff=0.3)
    ]
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"Unknown model {s!r}.{hint} Available models (in {d}): {', '.join(slugs)}. "
        "A path to one of our JSON files or to a Hugging Face config.json also works."
    )


def _is_hf(doc: Any) -> bool:
    return (
        isinstance(doc, Mapping)
        and "model" not in doc
        and ("architectures" in doc or "model_type" in doc)
    )


def _load_doc(name_or_path: str | os.PathLike) -> tuple[dict[str, Any], Path, bool]:
    """Return ``(validated document, path, is_hf)``; HF documents are converted to our model."""
    path = _resolve(name_or_path)
    doc = _read_json(path)
    if _is_hf(doc):
        model = _hf_to_model(doc, str(path))
        name = str(doc.get("_name_or_path") or path.parent.name or doc.get("model_type"))
        return {"name": name, "model": model}, path, True
    return _validate_file(doc, str(path)), path, False


def load_model(name_or_path: str | os.PathLike) -> LLMConfig:
    """Load one LLM architecture.

    Args:
        name_or_path: a slug (``"gpt3-175b"``), a display name (``"GPT-3 175B"``, any
            case), a path to one of our workload JSON files, or a path to a Hugging Face
            ``config.json``.

    Returns:
        The :class:`LLMConfig` (float32 leaves; ``name`` is the display name).

    Raises:
        ValueError: unknown name (with the closest slug) or an invalid file (naming the
            field and the fix).

    Examples:
        >>> m = load_model("GPT-3 175B")
        >>> round(float(m.params_total()) / 1e9, 1)
        174.6
    """
    doc, _, _ = _load_doc(name_or_path)
    return _build(doc["model"], doc["name"])


def workload_defaults(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """The training defaults of a shipped workload file.

    Args:
        name_or_path: as for :func:`load_model` (a Hugging Face config carries no defaults).

    Returns:
        ``{"global_batch": sequences, "seq_len": tokens, "precision": "bf16"|"fp16"|"fp8",
        "precision_bits": 16.0|8.0}``.
    """
    doc, path, is_hf = _load_doc(name_or_path)
    if is_hf:
        raise ValueError(
            f"{path}: a Hugging Face config.json has no training defaults; pass global_batch= "
            "and seq_len= to load_training_workload, or use one of our workload files."
        )
    t = dict(doc["training"])
    t["precision_bits"] = PRECISION_BITS[t["precision"]]
    return t


def load_training_workload(
    name_or_path: str | os.PathLike,
    *,
    global_batch: int | None = None,
    seq_len: int | None = None,
    precision: str | None = None,
) -> TrainingWorkload:
    """A :class:`TrainingWorkload` from a workload file, with optional overrides.

    Args:
        name_or_path: as for :func:`load_model`.
        global_batch: sequences per optimizer step (default: the file's ``training``).
        seq_len: tokens per sequence (default: the file's ``training``).
        precision: ``"bf16"``/``"fp16"`` (16-bit MACs) or ``"fp8"`` (8-bit MACs).

    Returns:
        ``TrainingWorkload(model, global_batch=, seq_len=, precision_bits=)``.

    Examples:
        >>> w = load_training_workload("gpt3-175b")
        >>> int(w.global_batch), int(w.seq_len), int(w.precision_bits)
        (1536, 2048, 16)
    """
    doc, path, is_hf = _load_doc(name_or_path)
    src = str(path)
    t = doc.get("training") or {}
    if is_hf and (global_batch is None or seq_len is None):
        raise ValueError(
            f"{src}: a Hugging Face config.json has no training defaults; pass both "
            "global_batch= (sequences) and seq_len= (tokens)."
        )
    over = {
        "global_batch": t.get("global_batch") if global_batch is None else global_batch,
        "seq_len": t.get("seq_len") if seq_len is None else seq_len,
        "precision": t.get("precision", "bf16") if precision is None else precision,
    }
    where = "argument"
    gb = _int(over, "global_batch", where, src)
    sl = _int(over, "seq_len", where, src)
    prec = _str(over, "precision", where, src, choices=tuple(PRECISION_BITS))
    model = _build(doc["model"], doc["name"])
    # fp16 mixed precision keeps fp16 gradient buffers (Megatron's fp16 default); bf16 and
    # fp8 training keep fp32 main gradients.
    grad_bytes = 2.0 if prec == "fp16" else 4.0
    return TrainingWorkload(
        model,
        global_batch=gb,
        seq_len=sl,
        precision_bits=PRECISION_BITS[prec],
        main_grad_bytes=grad_bytes,
    )


def load_inference_workload(
    name_or_path: str | os.PathLike,
    *,
    batch: int = 1,
    prompt_len: int = 2048,
    output_len: int = 128,
    precision: str = "bf16",
    kv_precision: str | None = None,
    max_tpot_s: float = 0.0,
) -> InferenceWorkload:
    """An :class:`InferenceWorkload` (prefill + decode) of a model file or HF config.

    Args:
        name_or_path: as for :func:`load_model`.
        batch: concurrent sequences (requests).
        prompt_len, output_len: tokens per request.
        precision: GEMM/weight precision, ``"bf16"``, ``"fp16"`` or ``"fp8"``.
        kv_precision: KV-cache precision (default: the GEMM precision, so an fp8 deployment
            keeps an fp8 KV cache).
        max_tpot_s: bound on the time per output token (0 = none).
    """
    src = str(name_or_path)
    over = {"batch": batch, "prompt_len": prompt_len, "output_len": output_len}
    b = _int(over, "batch", "argument", src)
    s_in = _int(over, "prompt_len", "argument", src)
    s_out = _int(over, "output_len", "argument", src)
    prec = _str({"precision": precision}, "precision", "argument", src, tuple(PRECISION_BITS))
    kv = prec if kv_precision is None else kv_precision
    kv = _str({"kv_precision": kv}, "kv_precision", "argument", src, tuple(PRECISION_BITS))
    if not max_tpot_s >= 0.0:
        raise ValueError(f"max_tpot_s must be >= 0 seconds, got {max_tpot_s}")
    return InferenceWorkload(
        load_model(name_or_path),
        batch=b,
        prompt_len=s_in,
        output_len=s_out,
        precision_bits=PRECISION_BITS[prec],
        kv_bits=PRECISION_BITS[kv],
        max_tpot_s=max_tpot_s,
    )


# ---- Hugging Face config.json -----------------------------------------------------------------
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


def from_hf_config(
    cfg: Mapping[str, Any] | str | os.PathLike, name: str | None = None
) -> LLMConfig:
    """Build an :class:`LLMConfig` from a Hugging Face ``config.json`` (dict or path).

    Supported: ``LlamaForCausalLM``, ``MistralForCausalLM``, ``Qwen2ForCausalLM`` (gated
    SwiGLU MLP, GQA via ``num_key_value_heads``, optional ``head_dim``),
    ``MixtralForCausalLM`` (``num_local_experts``, ``num_experts_per_tok``),
    ``DeepseekV2ForCausalLM``/``DeepseekV3ForCausalLM`` (MLA and MoE with
    ``first_k_dense_replace`` dense layers and shared experts), ``GPT2LMHeadModel``
    (``n_inner`` defaults to 4h, GELU, tied), ``GPTNeoXForCausalLM`` and ``OPTForCausalLM``.
    Biases, norms, routers, rotary/position embeddings are not modelled (see
    :class:`LLMConfig`).

    Args:
        cfg: the parsed ``config.json`` or a path to it.
        name: the model's display name (default ``_name_or_path`` or ``model_type``).

    Returns:
        The :class:`LLMConfig`.

    Raises:
        ValueError: unsupported architecture, or a missing/invalid field (named).
    """
    if isinstance(cfg, (str, os.PathLike)):
        src = os.fspath(cfg)
        doc = _read_json(Path(src))
    else:
        src, doc = "<config dict>", cfg
    model = _hf_to_model(doc, src)
    if name is None:
        name = str(doc.get("_name_or_path") or doc.get("model_type") or "hf-model")
    return _build(model, name)
