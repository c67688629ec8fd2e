"""Training cases: the system, workload and mapping a case states (:func:`training_setup`),
the recomputation a run must have used to fit in memory, and the predicted metric."""

from __future__ import annotations

import numpy as np

from ..design._gpu import GPUSystem
from ..mapping._plan import Mapping, Recompute
from ..workload._llm import TrainingWorkload
from ._common import CaseResult, _f32, _predicted, _system_for
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
from ._metric_kinds import MetricSpec, Unsupported, read_training_metric


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
