"""Load LLM architectures and training defaults from JSON: ours or Hugging Face ``config.json``.

This is the I/O boundary of the workload package (STYLE anti-pattern 3): every file is read
and validated once, here, and turned into a typed :class:`LLMConfig`; nothing below this
module ever reads a string-keyed dict. This module reads the files and resolves model names
(slugs, display names, aliases, paths); the schema and its checks are :mod:`._schema`, the
translation of Hugging Face configs is :mod:`._hf`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._config import resolve_config
from .._paths import configs_dir
from ._hf import _hf_to_model, _is_hf
from ._llm import InferenceWorkload, LLMConfig, TrainingWorkload
from ._schema import PRECISION_BITS, _build, _int, _str, _validate_file

__all__ = [
    "list_models",
    "load_model",
    "from_hf_config",
    "load_training_workload",
    "load_inference_workload",
    "workload_defaults",
    "PRECISION_BITS",
]


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
    """A slug, a display name or alias (case- and punctuation-insensitive) or a path -> the
    JSON file's path (:func:`theseus_jax._config.resolve_config`)."""
    return resolve_config(
        "workloads",
        name_or_path,
        "model",
        norm=_norm,
        hint="A path to one of our JSON files or to a Hugging Face config.json also works.",
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
