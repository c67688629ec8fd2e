"""Inference cases: the system, workload and mapping a case states (:func:`inference_setup`),
the batch search of "max throughput" cases, and the predicted metric (wafers: the best
mapping for the case's metric)."""

from __future__ import annotations

import numpy as np

from ..mapping._plan import Mapping
from ._common import CaseResult, _f32, _first_loadable, _predicted, _system_for
from ._interpret import CaseError, Notes, read_count, read_model, read_parallelism, read_precision
from ._metric_kinds import MetricSpec, Unsupported, read_inference_metric

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
