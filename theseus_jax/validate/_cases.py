"""Predict published measurements (``validation_cases.json`` schema) from hardware specs.

Each case names its hardware (``hardware.accelerator`` resolved to a system config by alias,
``hardware.count`` GPUs), its model, its parallelism and batch, and one metric. The case is
evaluated under exactly its own mapping (no search) with the one set of constants in the
system config. Cases the model cannot yet predict are returned as ``unsupported`` with the
reason; none is dropped.

Software-stack facts that a case implies are derived by rule from the case, never tuned:
* ``precision`` "fp16 mixed" -> fp16 gradient buffers (Megatron's fp16 default; 2 B per
  gradient), otherwise fp32 main gradients (4 B);
* a source before FlashAttention (2022) -> unfused softmax kernels (scores go through HBM).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .._paths import configs_dir
from ..design._gpu import GPUSystem
from ..mapping._plan import Mapping, Recompute
from ..workload._llm import LLMConfig, TrainingWorkload

__all__ = [
    "load_cases",
    "predict_case",
    "validate_cases",
    "default_cases_path",
    "CaseResult",
    "training_setup",
    "inference_setup",
]

# Sources whose software stack predates FlashAttention (Dao et al., 2022).
_PRE_FLASH_SOURCES = ("2104.04473", "SC21")


def default_cases_path() -> Path:
    """The reference file: ``$THESEUS_CASES``, else ``../shared/reference/validation_cases.json``
    beside the repository when present, else ``configs/validation/validation_cases.json`` (an
    identical copy shipped with the package, so a fresh clone works alone)."""
    env = os.environ.get("THESEUS_CASES")
    if env:
        return Path(env)
    shared = configs_dir().parent.parent / "shared" / "reference" / "validation_cases.json"
    if shared.exists():
        return shared
    return configs_dir() / "validation" / "validation_cases.json"


def load_cases(path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Read and check a cases file; errors name the file, the case and the field."""
    p = Path(path) if path is not None else default_cases_path()
    if not p.exists():
        raise ValueError(f"validation cases file not found: {p} (pass --cases FILE)")
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON ({e})") from None
    cases = doc.get("cases") if isinstance(doc, dict) else None
    if not isinstance(cases, list):
        raise ValueError(f"{p}: expected an object with a 'cases' list")
    for i, c in enumerate(cases):
        for key in ("id", "category", "hardware", "model", "metric", "value"):
            if key not in c:
                raise ValueError(f"{p}: case #{i} ({c.get('id', '?')}) lacks field {key!r}")
    return cases


class CaseResult(dict):
    """One row: id, category, metric, unit, measured, predicted, error_pct, status, reason."""


def _ffn(model: dict, h: int) -> tuple[int, float]:
    """Parse the case's ``ffn`` field ("4h gelu", "swiglu 14336", ...)."""
    spec = str(model.get("ffn", "4h gelu")).lower()
    gated = 1.0 if ("swiglu" in spec or "geglu" in spec) else 0.0
    mult = re.search(r"([0-9.]+)\s*h", spec)
    num = re.search(r"\b([0-9]{3,})\b", spec)
    if "d_ff" in model:
        return int(model["d_ff"]), gated
    if mult:
        return int(round(float(mult.group(1)) * h)), gated
    if num:
        return int(num.group(1)), gated
    raise ValueError(f"cannot read the FFN width from ffn={model.get('ffn')!r}")


def _case_model(c: dict) -> LLMConfig:
    m = c["model"]
    need = ("n_layers", "d_model", "n_heads", "vocab")
    if all(k in m for k in need):
        h = int(m["d_model"])
        d_ff, gated = _ffn(m, h)
        return LLMConfig(
            n_layers=m["n_layers"],
            d_model=h,
            n_heads=m["n_heads"],
            n_kv_heads=m.get("n_kv_heads", m["n_heads"]),
            d_ff=d_ff,
            vocab_size=m["vocab"],
            ffn_gated=gated,
            tied_embeddings=1.0,
            name=str(m.get("name", c["id"])),
        )
    from ..workload._load import load_model

    return _first_loadable(load_model, str(m.get("name", "")), dashes=False)


def _first_loadable(loader, name: str, *, dashes: bool):
    """``loader`` of the first spelling of ``name`` it accepts: as given, without a
    parenthetical, the parenthetical alone (and, with ``dashes``, each with spaces as
    dashes: "Cerebras WSE-2 (CS-2)" -> "Cerebras-WSE-2"); else the first spelling's error."""
    cands = [name, name.split(" (")[0]]
    inner = re.search(r"\(([^)]*)\)", name)
    if inner:
        cands.append(inner.group(1))
    if dashes:
        cands += [c.replace(" ", "-") for c in list(cands)]
    err = None
    for cand in cands:
        try:
            return loader(cand.strip())
        except ValueError as e:
            err = err or e
    raise err


def _interleave(par: dict, n_layers: int) -> int:
    s = str(par.get("interleaved", "none")).lower()
    if s in ("none", "", "1", "no"):
        return 1
    k = re.search(r"([0-9]+)\s*layer", s)
    if not k:
        raise ValueError(f"cannot read interleaving from {par.get('interleaved')!r}")
    per_virtual = int(k.group(1))
    return max(1, n_layers // (int(par["pp"]) * per_virtual))


def _recompute(par: dict) -> int:
    s = str(par.get("activation_recompute", "none")).lower()
    if s.startswith("full"):
        return Recompute.FULL
    if s.startswith("selective"):
        return Recompute.SELECTIVE
    return Recompute.NONE


def _resolve_system(name: str):
    """A system config for an accelerator name: as given, without a parenthetical, the
    parenthetical alone, or with spaces as dashes ("Cerebras WSE-2 (CS-2)" -> wse2)."""
    from ..io import load_system

    return _first_loadable(load_system, name, dashes=True)


def _system_for(c: dict):
    hw = c["hardware"]
    system = _resolve_system(str(hw["accelerator"]))
    if not isinstance(system, GPUSystem):
        return None, system
    kw = {f: getattr(system, f) for f in system.__annotations__}
    kw["n_gpus"] = float(hw.get("count", 1))
    return GPUSystem(**kw), system


def _number_or_none(v):
    """The case's value as a float, or None when it is not one number (a list, a range
    written as text, null)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _unsupported(c, reason) -> CaseResult:
    return CaseResult(
        id=c.get("id", "?"),
        category=c.get("category"),
        metric=c.get("metric"),
        unit=c.get("unit"),
        measured=_number_or_none(c.get("value")),
        predicted=None,
        error_pct=None,
        status="unsupported",
        reason=reason,
    )


def _predicted(c, pred, metrics) -> CaseResult:
    """The row of a predicted case (or unsupported when the metric is not one we predict)."""
    from .._violations import describe

    if pred is None:
        return _unsupported(c, f"metric {c['metric']!r} is not one the model predicts")
    meas = float(c["value"])
    viol = int(np.asarray(metrics.violations))
    return CaseResult(
        id=c["id"],
        category=c.get("category"),
        metric=c["metric"],
        unit=c.get("unit"),
        measured=meas,
        predicted=pred,
        error_pct=100.0 * (pred - meas) / meas,
        status="ok" if viol == 0 else "ok (infeasible: " + ", ".join(describe(viol)) + ")",
        reason="",
    )


def training_setup(c: dict, system: GPUSystem | None = None):
    """(system, workload, mapping) of a training case, from the case's own fields."""
    if system is None:
        system, _ = _system_for(c)
    model = _case_model(c)
    par = c.get("parallelism", {})
    batch = c.get("batch", {})
    seq = c.get("seq_len")
    if not isinstance(seq, (int, float)):
        raise ValueError(f"case {c['id']}: training needs a numeric seq_len")
    prec = str(c.get("precision", "bf16")).lower()
    bits = 8.0 if "fp8" in prec else 16.0
    grad_bytes = 2.0 if "fp16" in prec else 4.0
    src = str(c.get("source", ""))
    flash = 0.0 if any(s in src for s in _PRE_FLASH_SOURCES) else 1.0
    wl = TrainingWorkload(
        model,
        global_batch=batch["global_batch_seqs"],
        seq_len=seq,
        precision_bits=bits,
        main_grad_bytes=grad_bytes,
        flash_attention=flash,
    )
    n_layers = int(c["model"].get("n_layers", float(np.asarray(model.n_layers))))
    mp = Mapping(
        tp=par.get("tp", 1),
        pp=par.get("pp", 1),
        dp=par.get("dp", 1),
        micro_batch=par.get("micro_batch", 1),
        recompute=_recompute(par),
        interleave=_interleave(par, n_layers),
        schedule=1,
    )
    return system, wl, mp


def _training_metric(c, metrics) -> float | None:
    metric = str(c["metric"]).lower()
    n = float(c["hardware"].get("count", 1))
    step = float(metrics.step_time_s)
    if "tflop/s per gpu" in metric:
        flops = metrics.hw_flops if "recomputation" in metric else metrics.model_flops
        return float(flops) / step / n / 1e12
    if "mfu" in metric:
        return float(metrics.mfu) * 100.0
    if "tokens/s" in metric:
        return float(metrics.tokens_per_s)
    return None


# Prompt/output lengths assumed when a decode-speed case gives none (WaferLLM reports a
# per-request decode rate without lengths): a short prompt, where the KV cache is small.
DEFAULT_PROMPT, DEFAULT_OUTPUT = 128, 128


def inference_setup(c: dict):
    """(system, tech or None, workload, mapping or None) of an inference case.

    GPU cases run under their own TP (and PP) with one replica per ``count`` GPUs; wafer
    cases give no mapping we can express, so the mapping search picks the best one.
    """
    from ..design._wafer import WaferDesign
    from ..io import load_tech, system_tech_name
    from ..workload._llm import InferenceWorkload

    system, original = _system_for(c)
    model = _case_model(c)
    seq = c.get("seq_len") or {}
    if not isinstance(seq, dict):
        raise ValueError(f"case {c['id']}: inference seq_len must be {{input, output}}")
    prompt = int(seq.get("input", DEFAULT_PROMPT))
    output = int(seq.get("output", DEFAULT_OUTPUT))
    batch = int((c.get("batch") or {}).get("batch_size", 1))
    prec = str(c.get("precision", "fp16")).lower()
    bits = 8.0 if "fp8" in prec else 16.0
    wl = InferenceWorkload(
        model, batch=batch, prompt_len=prompt, output_len=output, precision_bits=bits, kv_bits=bits
    )
    if isinstance(original, WaferDesign):
        name = str(c["hardware"]["accelerator"])
        tech = load_tech(_first_loadable(system_tech_name, name, dashes=True))
        return original, tech, wl, None
    par = c.get("parallelism", {})
    tp, pp = int(par.get("tp", 1)), int(par.get("pp", 1))
    n = float(c["hardware"].get("count", tp * pp))
    mp = Mapping(tp=tp, pp=pp, dp=max(1, int(n) // (tp * pp)), micro_batch=batch)
    return system, None, wl, mp


def _inference_metric(c, m) -> float | None:
    metric = str(c["metric"]).lower()
    unit = str(c.get("unit", "")).lower()
    n = float(c["hardware"].get("count", 1))
    if "first-token" in metric or "ttft" in metric or "first token" in metric:
        return float(m.ttft_s) * (1e3 if unit == "ms" else 1.0)
    if "per request" in metric or "per user" in metric:
        return float(m.tokens_per_s_per_user)
    if "tokens/s per gpu" in metric:
        return float(m.tokens_per_s) / n
    if "tokens/s" in metric:
        return float(m.tokens_per_s)
    return None


def _predict_inference(c: dict) -> CaseResult:
    from ..metrics._evaluate import default_mappings, evaluate_point, make_evaluator

    try:
        system, tech, wl, mp = inference_setup(c)
    except (KeyError, ValueError) as e:
        return _unsupported(c, f"case setup incomplete: {e}")
    metric = str(c["metric"]).lower()
    if mp is None:  # wafer: best mapping for the case's metric
        objective = "ttft" if "first" in metric else ("latency" if "request" in metric else "time")
        maps = default_mappings(system, wl)
        res = make_evaluator(wl, mappings=maps, tech=tech, objective=objective)(system)
        import jax

        m = jax.tree_util.tree_map(lambda x: x[0], res.metrics)
    else:
        m = evaluate_point(system, wl, mp, tech)
    return _predicted(c, _inference_metric(c, m), m)


def predict_case(c: dict) -> CaseResult:
    """Predict one case (or say why it is unsupported)."""
    from ..cost.gpu import gpu_training_step

    cat = c.get("category")
    if cat == "inference":
        try:
            return _predict_inference(c)
        except ValueError as e:
            return _unsupported(c, f"hardware not modelled: {e}")
    if cat != "training":
        return _unsupported(c, f"unknown category {cat!r} (expected training or inference)")
    try:
        system, original = _system_for(c)
    except ValueError as e:
        return _unsupported(c, f"hardware not modelled: {e}")
    if system is None:
        return _unsupported(c, "training validation on wafer-scale systems is not modelled")
    try:
        system, wl, mp = training_setup(c, system)
    except (KeyError, ValueError) as e:
        return _unsupported(c, f"case setup incomplete: {e}")
    metrics = gpu_training_step(system, wl, mp)
    return _predicted(c, _training_metric(c, metrics), metrics)


def validate_cases(path=None) -> dict[str, Any]:
    """Predict every case of a file; returns ``{"rows": [...], "mape_pct": ..., ...}``."""
    rows = []
    for c in load_cases(path):
        # a malformed case (a list as value, a GPU count written as text, ...) is reported,
        # never fatal for the rest of the file
        if _number_or_none(c.get("value")) is None or _number_or_none(c.get("value")) <= 0:
            rows.append(
                _unsupported(c, f"malformed: value {c.get('value')!r} is not one positive number")
            )
            continue
        try:
            rows.append(predict_case(c))
        except (KeyError, TypeError, ValueError) as e:
            rows.append(_unsupported(c, f"malformed case: {type(e).__name__}: {e}"))
    errs = [abs(r["error_pct"]) for r in rows if r["error_pct"] is not None]
    by_cat: dict[str, list[float]] = {}
    for r in rows:
        if r["error_pct"] is not None:
            by_cat.setdefault(r["category"], []).append(abs(r["error_pct"]))
    return {
        "cases_file": str(Path(path) if path else default_cases_path()),
        "rows": [dict(r) for r in rows],
        "n_supported": len(errs),
        "n_unsupported": len(rows) - len(errs),
        "mape_pct": float(np.mean(errs)) if errs else math.nan,
        "mape_pct_by_category": {k: float(np.mean(v)) for k, v in by_cat.items()},
    }
