"""Predict published measurements (``validation_cases.json`` schema) from hardware specs.

Each case names its hardware (``hardware.accelerator`` resolved to a system config by alias,
``hardware.count`` GPUs), its model, its parallelism and batch, and one metric. The case is
evaluated under exactly its own mapping (no search) with the one set of constants in the
system config. Cases the model cannot yet predict are returned as ``unsupported`` with the
reason; none is dropped.

How a case is read (metric wording, model names and shapes, hardware aliases, parallelism
fields, batch, software era, inference batch) is :mod:`._interpret`; every assumption made is
returned with the row (``assumptions``, ``rules``) and printed by ``theseus validate
--explain``. Nothing is keyed to a case id or a source.
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
from ..workload._llm import TrainingWorkload
from ._interpret import (
    CaseError,
    Notes,
    read_batch,
    read_count,
    read_era,
    read_model,
    read_parallelism,
    read_precision,
    resolve_interleave,
)
from ._metric_kinds import MetricSpec, Unsupported, read_inference_metric, read_training_metric

__all__ = [
    "load_cases",
    "predict_case",
    "validate_cases",
    "default_cases_path",
    "CaseResult",
    "training_setup",
    "inference_setup",
]


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
    """One row: id, category, group, metric, unit, measured, predicted, error_pct, status,
    reason, assumptions (``[{rule, text}]``) and rules (the rule names that fired)."""


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


def _resolve_system(name: str):
    """A system config for an accelerator name: as given, without a parenthetical, the
    parenthetical alone, or with spaces as dashes ("Cerebras WSE-2 (CS-2)" -> wse2)."""
    from ..io import load_system

    return _first_loadable(load_system, name, dashes=True)


def _system_for(c: dict, count: int | None = None, notes: Notes | None = None):
    """(system with the case's GPU count, the config as loaded); GPU systems only get the
    count (a wafer is returned as loaded, twice)."""
    hw = c.get("hardware") or {}
    acc = hw.get("accelerator") if isinstance(hw, dict) else None
    if not isinstance(acc, str) or not acc.strip():
        raise CaseError("hardware.accelerator must name the accelerator (e.g. 'H100-SXM5-80GB')")
    system = _resolve_system(acc)
    if notes is not None:
        notes.add("hardware-alias", f"accelerator {acc!r} -> system config {_system_name(acc)!r}")
    if not isinstance(system, GPUSystem):
        return None, system
    if count is None:
        count = read_count(hw, None, notes or Notes())
    kw = {f: getattr(system, f) for f in system.__annotations__}
    kw["n_gpus"] = float(count)
    return GPUSystem(**kw), system


def _system_name(acc: str) -> str:
    from ..io._load import _read, _resolve

    for cand in (acc, acc.split(" (")[0], acc.replace(" ", "-")):
        try:
            return str(_read(_resolve("systems", cand.strip(), "system")).get("name", cand))
        except ValueError:
            continue
    return acc


def _number_or_none(v):
    """The case's value as a float, or None when it is not one number (a list, a range
    written as text, null)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _group(c: dict) -> str:
    hw = c.get("hardware") if isinstance(c.get("hardware"), dict) else {}
    acc = str(hw.get("accelerator", "?"))
    return f"{c.get('category', '?')} {re.split(r'[- (]', acc.strip())[0] or acc}"


def _row(c, notes: Notes | None, **kw) -> CaseResult:
    notes = notes or Notes()
    base = dict(
        id=c.get("id", "?"),
        category=c.get("category"),
        group=_group(c),
        metric=c.get("metric"),
        unit=c.get("unit"),
        measured=_number_or_none(c.get("value")),
        predicted=None,
        error_pct=None,
        status="unsupported",
        reason="",
        assumptions=notes.as_list(),
        rules=notes.rules(),
    )
    base.update(kw)
    return CaseResult(**base)


def _unsupported(c, reason, notes: Notes | None = None) -> CaseResult:
    return _row(c, notes, reason=reason)


def _predicted(c, pred, metrics, notes: Notes | None = None) -> CaseResult:
    """The row of a predicted case."""
    from .._violations import describe

    meas = float(c["value"])
    viol = int(np.asarray(metrics.violations))
    return _row(
        c,
        notes,
        measured=meas,
        predicted=float(pred),
        error_pct=100.0 * (float(pred) - meas) / meas,
        status="ok" if viol == 0 else "ok (infeasible: " + ", ".join(describe(viol)) + ")",
    )


# ---- training -----------------------------------------------------------------------------


def _training(c: dict, system: GPUSystem | None, notes: Notes):
    """(system, workload, mapping, stated recompute or None) of a training case."""
    hw = c.get("hardware") or {}
    par = read_parallelism(c.get("parallelism"))
    count = read_count(hw, par.product(), notes)
    if system is None:
        system, original = _system_for(c, count, notes)
        if system is None:
            raise Unsupported("training validation on wafer-scale systems is not modelled")
    model = read_model(c.get("model"), str(c.get("id")), notes)
    seq = c.get("seq_len")
    if isinstance(seq, dict) or seq is None:
        raise CaseError("training needs one numeric seq_len (tokens per sequence)")
    from ._interpret import _whole

    seq = _whole(seq, "seq_len")
    inner = par.tp * par.pp * par.cp
    if par.dp is None:
        if count % inner:
            raise CaseError(
                f"mapping mismatch: tp x cp x pp = {inner} does not divide the {count} GPUs"
            )
        par.dp = count // inner
        notes.add("parallelism", f"dp = GPUs / (tp x cp x pp) = {par.dp}")
    elif par.product() != count:
        raise CaseError(
            f"mapping mismatch: tp x cp x pp x dp = {par.tp} x {par.cp} x {par.pp} x "
            f"{par.dp} = {par.product()} but hardware.count = {count}; fix one of them"
        )
    n_experts = float(np.asarray(model.n_experts))
    if par.ep > 1 and (n_experts < 1 or n_experts % par.ep):
        raise CaseError(f"ep = {par.ep} needs an MoE model whose experts it divides")
    if (par.dp * par.cp) % par.ep:
        raise CaseError(f"ep = {par.ep} must divide dp x cp = {par.dp * par.cp}")
    era = read_era(c, notes)
    bits, grad = read_precision(c, notes)
    gb = read_batch(c.get("batch"), par.dp, seq, notes)
    if par.micro_batch is None:
        par.micro_batch = 1
        notes.add("parallelism", "micro-batch not stated: 1")
    n_layers = int(round(float(np.asarray(model.n_layers))))
    v = resolve_interleave(par.vp_raw, n_layers, par.pp, notes)
    modern = era == "modern"
    flash = 0.0 if era == "legacy" else 1.0
    seq_par = par.seq_par if par.seq_par is not None else (modern and par.tp > 1)
    dist = par.dist_opt if par.dist_opt is not None else (modern and par.dp * par.cp > 1)
    dp_overlap = par.dp_overlap if par.dp_overlap is not None else modern
    tp_overlap = bool(par.tp_overlap) and par.tp > 1
    if era == "unknown":
        notes.add("era", "software era not stated: FlashAttention, no SP, no distributed optimizer")
    rc = {"none": Recompute.NONE, "selective": Recompute.SELECTIVE, "full": Recompute.FULL}[
        par.recompute or "none"
    ]
    wl = TrainingWorkload(
        model,
        global_batch=gb,
        seq_len=seq,
        precision_bits=bits,
        main_grad_bytes=grad,
        flash_attention=flash,
    )
    mp = Mapping(
        tp=par.tp,
        pp=par.pp,
        dp=par.dp,
        micro_batch=par.micro_batch,
        recompute=rc,
        interleave=v,
        schedule=1,
        dist_opt=float(bool(dist)),
        seq_par=float(bool(seq_par) and par.tp > 1),
        tp_overlap=float(tp_overlap),
        dp_overlap=float(bool(dp_overlap) and par.dp * par.cp > 1),
        cp=par.cp,
        ep=par.ep,
    )
    return system, wl, mp, par.recompute


def training_setup(c: dict, system: GPUSystem | None = None):
    """(system, workload, mapping) of a training case, from the case's own fields
    (:mod:`._interpret` rules; raises ``ValueError`` when the case cannot be read)."""
    system, wl, mp, _ = _training(c, system, Notes())
    return system, wl, mp


def _fit_recompute(system, wl, mp, stated, notes: Notes):
    """Metrics under the case's mapping; when recomputation is not stated and the mapping
    does not fit in memory without it, selective and then full recomputation (the run did
    fit, so it recomputed)."""
    import equinox as eqx

    from .._violations import Violation
    from ..cost.gpu import gpu_training_step

    m = gpu_training_step(system, wl, mp)
    if stated is not None:
        return m
    for code, name in ((Recompute.SELECTIVE, "selective"), (Recompute.FULL, "full")):
        if not int(np.asarray(m.violations)) & int(Violation.MEMORY_CAPACITY):
            return m
        mp = eqx.tree_at(lambda x: x.recompute, mp, _f32(code))
        m = gpu_training_step(system, wl, mp)
        notes.add(
            "recompute",
            f"recomputation not stated and the mapping does not fit in memory without it: "
            f"{name} recomputation",
        )
    return m


def _f32(x):
    import jax.numpy as jnp

    return jnp.asarray(x, jnp.float32)


def _training_value(c, spec: MetricSpec, metrics, wl, count: int, notes: Notes) -> float:
    step = float(metrics.step_time_s)
    gb = float(np.asarray(wl.global_batch))
    tokens_step = gb * float(np.asarray(wl.seq_len))
    model_flops = float(metrics.model_flops)
    mf_seq = (c.get("model") or {}).get("model_flops_per_seq")
    if spec.kind in ("model_flops", "mfu") and isinstance(mf_seq, (int, float)) and mf_seq > 0:
        model_flops = float(mf_seq) * gb
        notes.add("metric", "model FLOPs as the case counts them (model_flops_per_seq x batch)")
    k = spec.kind
    if k == "step_time":
        return step * spec.scale
    if k == "model_flops":
        return model_flops / step / (count if spec.per_gpu else 1.0) * spec.scale
    if k == "hw_flops":
        return float(metrics.hw_flops) / step / (count if spec.per_gpu else 1.0) * spec.scale
    if k == "mfu":
        return model_flops / (step * float(metrics.peak_flops)) * spec.scale
    if k == "hfu":
        return float(metrics.hw_flops) / (step * float(metrics.peak_flops)) * spec.scale
    if k == "tokens_per_s":
        return tokens_step / step / (count if spec.per_gpu else 1.0)
    if k == "sequences_per_s":
        return gb / step / (count if spec.per_gpu else 1.0)
    if k == "gpu_hours":
        return spec.tokens / (tokens_step / step) * count / 3600.0
    if k == "time_to_train":
        return spec.tokens / (tokens_step / step) * spec.scale
    raise Unsupported(f"metric kind {k!r} is not predicted for training")


def _predict_training(c: dict, notes: Notes) -> CaseResult:
    spec = read_training_metric(c.get("metric", ""), c.get("unit", ""), c, notes)
    system, wl, mp, stated_rc = _training(c, None, notes)
    metrics = _fit_recompute(system, wl, mp, stated_rc, notes)
    count = int(round(float(np.asarray(system.n_gpus))))
    return _predicted(c, _training_value(c, spec, metrics, wl, count, notes), metrics, notes)


# ---- inference ----------------------------------------------------------------------------

# Prompt/output lengths assumed when a decode-speed case gives none (WaferLLM reports a
# per-request decode rate without lengths): a short prompt, where the KV cache is small.
DEFAULT_PROMPT, DEFAULT_OUTPUT = 128, 128
# Largest batch per replica the "max throughput" search tries: the serving engine's default
# cap (trtllm-build --max_batch_size defaults to 2048 [U], recalled); memory may bind first.
MAX_SEARCH_BATCH = 2048
_SEARCH_WORDS = (
    "max throughput",
    "inflight",
    "in-flight",
    "infinite request",
    "offline",
    "continuous batching",
    "maximum throughput",
    "saturat",
)


def _inference(c: dict, notes: Notes, spec: MetricSpec):
    """(system, tech or None, workload, mapping or None, search) of an inference case;
    ``search`` is True when the batch is to be searched for the best throughput."""
    from ..design._wafer import WaferDesign
    from ..io import load_tech, system_tech_name
    from ..workload._llm import InferenceWorkload
    from ._interpret import _lookup, _whole

    hw = c.get("hardware") or {}
    par = read_parallelism(c.get("parallelism"))
    count = read_count(hw, par.tp * par.pp * (par.dp or 1), notes)
    system, original = _system_for(c, count, notes)
    model = read_model(c.get("model"), str(c.get("id")), notes)
    seq = c.get("seq_len") or {}
    if not isinstance(seq, dict):
        raise CaseError("inference seq_len must be {input, output} (tokens)")
    if "input" not in seq or "output" not in seq:
        notes.add(
            "inference-lengths",
            f"prompt/output lengths not stated: {DEFAULT_PROMPT}/{DEFAULT_OUTPUT} tokens",
        )
    prompt = _whole(seq.get("input", DEFAULT_PROMPT), "seq_len.input")
    output = _whole(seq.get("output", DEFAULT_OUTPUT), "seq_len.output")
    bits, _ = read_precision(c, notes, training=False)
    batch_d = c.get("batch") if isinstance(c.get("batch"), dict) else {}
    stated = _lookup(batch_d, ("batchsize", "batch", "concurrency", "maxbatchsize"))
    mode = " ".join(str(x) for x in batch_d.values()).lower() + " " + str(c.get("metric", ""))
    search = False
    if stated is not None:
        batch = _whole(stated, "batch.batch_size")
    elif spec.kind in ("ttft", "tpot", "latency", "tokens_per_s_per_user"):
        batch = 1
        notes.add("inference-batch", "latency / per-user metric without a batch: batch 1")
    elif any(w in mode for w in _SEARCH_WORDS):
        batch, search = 1, True
    else:
        batch = 1
        notes.add("inference-batch", "batch not stated: 1")
    # serving stacks keep the KV cache in at least 8 bits (FP4 weights run with an FP8 cache)
    wl = InferenceWorkload(
        model,
        batch=batch,
        prompt_len=prompt,
        output_len=output,
        precision_bits=bits,
        kv_bits=max(bits, 8.0),
    )
    if isinstance(original, WaferDesign):
        name = str(hw["accelerator"])
        tech = load_tech(_first_loadable(system_tech_name, name, dashes=True))
        notes.add("mapping", "wafer: the case gives no mapping we can express; best one searched")
        return original, tech, wl, None, search, 1
    tp, pp = par.tp, par.pp
    if count % (tp * pp):
        raise CaseError(f"mapping mismatch: tp x pp = {tp * pp} does not divide the {count} GPUs")
    replicas = count // (tp * pp)
    if par.dp is not None and par.dp != replicas:
        raise CaseError(
            f"mapping mismatch: tp x pp x dp = {tp * pp * par.dp} but hardware.count = {count}"
        )
    mp = Mapping(tp=tp, pp=pp, dp=replicas, micro_batch=batch)
    return system, None, wl, mp, search, replicas


def inference_setup(c: dict):
    """(system, tech or None, workload, mapping or None) of an inference case.

    GPU cases run under their own TP (and PP) with one replica per ``tp x pp`` GPUs; wafer
    cases give no mapping we can express, so the mapping search picks the best one.
    """
    notes = Notes()
    try:
        spec = read_inference_metric(c.get("metric", ""), c.get("unit", ""), notes)
    except Unsupported:
        spec = MetricSpec("tokens_per_s")
    system, tech, wl, mp, _, _ = _inference(c, notes, spec)
    return system, tech, wl, mp


def _search_batch(system, wl, mp, replicas: int, notes: Notes):
    """Best tokens/s over replica batches 1, 2, 3, 4, 6, 8, ... up to what fits in memory."""
    import equinox as eqx

    from ..metrics._evaluate import evaluate_point

    cands = sorted({int(k * 2**i) for i in range(13) for k in (1, 1.5)} - {0})
    best = None
    largest = 0
    for b in (x for x in cands if x <= MAX_SEARCH_BATCH):
        w = eqx.tree_at(lambda x: x.batch, wl, _f32(b * replicas))
        mpb = eqx.tree_at(lambda x: x.micro_batch, mp, _f32(b))
        m = evaluate_point(system, w, mpb)
        if not bool(np.asarray(m.feasible)):
            continue
        largest = b
        if best is None or float(m.tokens_per_s) > float(best[2].tokens_per_s):
            best = (b, w, m)
    if best is None:
        b = 1
        w = eqx.tree_at(lambda x: x.batch, wl, _f32(replicas))
        m = evaluate_point(system, w, mp)
        notes.add("inference-batch", "max-throughput search: no batch fits in memory; batch 1")
        return w, m
    notes.add(
        "inference-batch",
        f"max-throughput / inflight batching without a batch: searched the batch per replica "
        f"(up to {MAX_SEARCH_BATCH}, largest that fits {largest}); best tokens/s at {best[0]}",
    )
    return best[1], best[2]


def _inference_value(spec: MetricSpec, m, wl, count: int, replicas: int) -> float:
    k = spec.kind
    if k == "ttft":
        return float(m.ttft_s) * spec.scale
    if k == "tpot":
        return float(m.tpot_s) * spec.scale
    if k == "latency":
        return float(m.total_time_s) * spec.scale
    if k == "tokens_per_s_per_user":
        return float(m.tokens_per_s_per_user)
    tps = float(m.tokens_per_s)
    if spec.include_prompt:
        p, o = float(np.asarray(wl.prompt_len)), float(np.asarray(wl.output_len))
        tps *= (p + o) / o
    if k == "requests_per_s":
        return tps / float(np.asarray(wl.output_len))
    if spec.per_gpu:
        return tps / count
    if spec.per_replica:
        return tps / replicas
    return tps


def _predict_inference(c: dict, notes: Notes) -> CaseResult:
    import jax

    from ..metrics._evaluate import default_mappings, evaluate_point, make_evaluator

    spec = read_inference_metric(c.get("metric", ""), c.get("unit", ""), notes)
    system, tech, wl, mp, search, replicas = _inference(c, notes, spec)
    count = int(round(float(np.asarray(getattr(system, "n_gpus", 1)))))
    if mp is None:  # wafer: best mapping for the case's metric
        metric = spec.kind
        objective = (
            "ttft"
            if metric == "ttft"
            else "latency"
            if metric == "tokens_per_s_per_user"
            else "time"
        )
        maps = default_mappings(system, wl)
        res = make_evaluator(wl, mappings=maps, tech=tech, objective=objective)(system)
        m = jax.tree_util.tree_map(lambda x: x[0], res.metrics)
        count = 1
    elif search:
        wl, m = _search_batch(system, wl, mp, replicas, notes)
    else:
        m = evaluate_point(system, wl, mp, tech)
    return _predicted(c, _inference_value(spec, m, wl, count, replicas), m, notes)


# ---- entry points -------------------------------------------------------------------------


def predict_case(c: dict) -> CaseResult:
    """Predict one case, or say why it is unsupported; never raises for a malformed case."""
    notes = Notes()
    cat = c.get("category")
    value = c.get("value")
    if _number_or_none(value) is None or _number_or_none(value) <= 0:
        why = (
            "is a list (write one case per measurement)"
            if isinstance(value, list)
            else "is missing"
            if value is None
            else "is not one positive number"
        )
        return _unsupported(c, f"malformed: value {value!r} {why}", notes)
    if cat not in ("training", "inference"):
        return _unsupported(c, f"unknown category {cat!r} (expected training or inference)")
    try:
        if cat == "inference":
            return _predict_inference(c, notes)
        return _predict_training(c, notes)
    except Unsupported as e:
        return _unsupported(c, str(e), notes)
    except CaseError as e:
        return _unsupported(c, f"malformed: {e}", notes)
    except (KeyError, TypeError, ValueError) as e:
        msg = str(e)
        if "unknown system" in msg or "system" in msg.lower() and "available" in msg.lower():
            return _unsupported(c, f"hardware not modelled: {msg}", notes)
        return _unsupported(c, f"case setup incomplete: {type(e).__name__}: {msg}", notes)


def validate_cases(path=None) -> dict[str, Any]:
    """Predict every case of a file; returns ``{"rows": [...], "mape_pct": ...,
    "mape_pct_by_category": ..., "mape_pct_by_group": ..., "rules_fired": ...}``."""
    rows = [predict_case(c) for c in load_cases(path)]
    errs = [abs(r["error_pct"]) for r in rows if r["error_pct"] is not None]
    by_cat: dict[str, list[float]] = {}
    by_group: dict[str, list[float]] = {}
    fired: dict[str, int] = {}
    for r in rows:
        if r["error_pct"] is not None:
            by_cat.setdefault(r["category"], []).append(abs(r["error_pct"]))
            by_group.setdefault(r["group"], []).append(abs(r["error_pct"]))
        for rule in r["rules"]:
            fired[rule] = fired.get(rule, 0) + 1
    return {
        "cases_file": str(Path(path) if path else default_cases_path()),
        "rows": [dict(r) for r in rows],
        "n_supported": len(errs),
        "n_unsupported": len(rows) - len(errs),
        "mape_pct": float(np.mean(errs)) if errs else math.nan,
        "mape_pct_by_category": {k: float(np.mean(v)) for k, v in by_cat.items()},
        "mape_pct_by_group": {k: float(np.mean(v)) for k, v in sorted(by_group.items())},
        "rules_fired": dict(sorted(fired.items())),
    }
