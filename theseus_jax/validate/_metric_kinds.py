"""The metric a measurement reports, read from its wording and unit.

Training: step/iteration time; model or hardware (with recomputation) FLOP/s, per GPU or
aggregate; MFU/HFU against the peak of the case's precision; tokens/s and sequences/s (per
GPU or total); GPU-hours per N tokens; time to train (only with the tokens trained).
Inference: TTFT, TPOT/ITL, request latency, per-user, per-GPU, per-replica and total tokens/s
(output, or input + output), requests/s. Speedups and ratios need a baseline run and are
:class:`Unsupported` with that reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

from ._interpret import Notes, _lookup

__all__ = ["MetricSpec", "Unsupported", "read_training_metric", "read_inference_metric"]


@dataclass(frozen=True)
class MetricSpec:
    """What to predict: ``kind`` (see :func:`read_training_metric`), the factor from SI to
    the case's unit, and modifiers."""

    kind: str
    scale: float = 1.0
    per_gpu: bool = False
    tokens: float = 0.0  # GPU-hours per this many tokens; time to train over this many
    include_prompt: bool = False
    per_replica: bool = False


class Unsupported(Exception):
    """The metric is understood but cannot be predicted from what the case gives."""


_TIME = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 1e3,
    "us": 1e6,
    "min": 1.0 / 60,
    "minute": 1.0 / 60,
    "minutes": 1.0 / 60,
    "h": 1.0 / 3600,
    "hr": 1.0 / 3600,
    "hour": 1.0 / 3600,
    "hours": 1.0 / 3600,
    "day": 1.0 / 86400,
    "days": 1.0 / 86400,
}
_FLOPS = MappingProxyType({"gflop": 1e-9, "tflop": 1e-12, "pflop": 1e-15, "eflop": 1e-18})
_MULT = {
    "k": 1e3,
    "thousand": 1e3,
    "m": 1e6,
    "million": 1e6,
    "b": 1e9,
    "billion": 1e9,
    "g": 1e9,
    "t": 1e12,
    "trillion": 1e12,
}


def _time_scale(unit: str, default: float = 1.0) -> float:
    u = unit.strip().lower().rstrip(".")
    return _TIME.get(u, default)


def _token_count(text: str) -> float:
    """ "per 1T tokens" -> 1e12, "per million tokens" -> 1e6; 0 when absent."""
    m = re.search(r"([0-9.]+)\s*([kmbgt]|thousand|million|billion|trillion)?\s*tokens", text)
    if m:
        return float(m.group(1)) * _MULT.get((m.group(2) or "").lower(), 1.0)
    m = re.search(r"(thousand|million|billion|trillion)\s+tokens", text)
    return _MULT[m.group(1)] if m else 0.0


def _per_gpu(text: str) -> bool:
    return bool(re.search(r"per[- ]?gpu|/\s*gpu|per device|per accelerator", text))


def read_training_metric(metric: str, unit: str, c: dict, notes: Notes) -> MetricSpec:
    m, u = str(metric).lower(), str(unit or "").lower()
    both = f"{m} {u}"
    if re.search(r"speed-?up|\bratio\b|relative to|\bvs\.?\b", m) or u in ("x", "\u00d7"):
        raise Unsupported(
            "a speedup is relative to a baseline run the case does not give; give the "
            "absolute metric of each run as its own case"
        )
    if re.search(r"time[- ]to[- ]train|time to (converge|target)|convergence time", m):
        tokens = _lookup(c.get("batch"), ("totaltokens", "tokenstotrain", "traintokens"))
        if tokens is None:
            tokens = _lookup(c, ("totaltokens", "tokenstotrain", "traintokens"))
        if tokens is None:
            raise Unsupported(
                "time to train needs the number of tokens trained (batch.total_tokens); "
                "the case does not give it"
            )
        return MetricSpec("time_to_train", _time_scale(u, 1.0 / 60), tokens=float(tokens))
    if re.search(r"gpu[- ]?hours?", both):
        n = _token_count(both)
        if not n:
            raise Unsupported("GPU-hours need the token count they are for ('per 1T tokens')")
        return MetricSpec("gpu_hours", 1.0, tokens=n)
    if re.search(r"\bmfu\b|model flops utili[sz]ation", both):
        notes.add("metric", "MFU = model FLOP/s / (GPUs x dense peak at the case's precision)")
        return MetricSpec("mfu", 100.0 if ("%" in u or "pct" in u or "percent" in u) else 1.0)
    if re.search(r"\bhfu\b|hardware flops utili[sz]ation", both):
        return MetricSpec("hfu", 100.0 if "%" in u else 1.0)
    if "flop" in both:
        scale = next((v for k, v in _FLOPS.items() if k in u), None)
        if scale is None:
            scale = next((v for k, v in _FLOPS.items() if k in m), 1e-12)
        aggregate = bool(re.search(r"aggregate|total|cluster|system|all gpus", m))
        per_gpu = _per_gpu(both) or not aggregate
        hw = bool(re.search(r"achieved|hardware|recomput|\bhfu\b", m)) and "model" not in m
        kind = "hw_flops" if hw else "model_flops"
        notes.add(
            "metric",
            f"{'hardware (incl. recomputation)' if hw else 'model'} FLOP/s "
            f"{'per GPU' if per_gpu else 'of the whole cluster'}",
        )
        return MetricSpec(kind, scale, per_gpu=per_gpu)
    if re.search(r"step time|iteration time|time per (step|iteration)|per (step|iteration)", m) or (
        u in _TIME and re.search(r"step|iter", m)
    ):
        return MetricSpec("step_time", _time_scale(u))
    if re.search(r"samples?/s|sequences?/s|seqs?/s", both):
        return MetricSpec("sequences_per_s", 1.0, per_gpu=_per_gpu(both))
    if "token" in both:
        per_gpu = _per_gpu(both)
        return MetricSpec("tokens_per_s", 1.0, per_gpu=per_gpu)
    raise Unsupported(f"metric {metric!r} (unit {unit!r}) is not one the model predicts")


def read_inference_metric(metric: str, unit: str, notes: Notes) -> MetricSpec:
    m, u = str(metric).lower(), str(unit or "").lower()
    both = f"{m} {u}"
    if re.search(r"speed-?up|\bratio\b|relative to", m) or u in ("x", "\u00d7"):
        raise Unsupported("a speedup needs the baseline run; give each run as its own case")
    if re.search(r"first[- ]token|\bttft\b|time to first", m):
        return MetricSpec("ttft", _time_scale(u, 1e3))
    if re.search(r"per output token|\btpot\b|inter-?token|\bitl\b|token latency|time per token", m):
        return MetricSpec("tpot", _time_scale(u, 1e3))
    if re.search(r"(end-to-end|e2e|request) latency|latency per request", m) or (
        "latency" in m and u in _TIME
    ):
        return MetricSpec("latency", _time_scale(u))
    if re.search(r"requests?/s|queries/s|qps", both):
        return MetricSpec("requests_per_s", 1.0)
    if "token" in both:
        if re.search(r"per (user|request|stream|sequence)|/user|/request", both):
            return MetricSpec("tokens_per_s_per_user")
        include_prompt = bool(
            re.search(r"input\s*\+\s*output|prompt\s*\+|total tokens|input and output", m)
        )
        per_replica = bool(re.search(r"replica|tp group|all gpus in|per instance|per node", m))
        per_gpu = _per_gpu(both) and not per_replica
        if per_replica:
            notes.add("metric", "throughput of one model replica (all GPUs of its TP x PP group)")
        if include_prompt:
            notes.add("metric", "throughput counts prompt and output tokens")
        return MetricSpec(
            "tokens_per_s",
            1.0,
            per_gpu=per_gpu,
            include_prompt=include_prompt,
            per_replica=per_replica,
        )
    raise Unsupported(f"metric {metric!r} (unit {unit!r}) is not one the model predicts")
