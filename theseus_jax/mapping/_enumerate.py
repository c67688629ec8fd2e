"""Host-side enumeration of legal mappings as padded tables (numpy -> :class:`Mapping`).

Enumeration is vectorised with numpy over the cheap axes (micro-batch, interleaving, flags)
and loops only over (TP, PP) pairs, so millions of rows take well under a second.
"""

from __future__ import annotations

import itertools

import numpy as np

from ._plan import MAPPING_FIELDS, Mapping

__all__ = [
    "enumerate_gpu_mappings",
    "enumerate_wafer_mappings",
    "enumerate_gpu_inference_mappings",
    "enumerate_wafer_inference_mappings",
    "pad_mappings",
    "divisors",
]


def divisors(n: int) -> np.ndarray:
    """Sorted positive divisors of ``n``."""
    n = int(n)
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return np.array(sorted(set(small + [n // d for d in small])), dtype=np.int64)


def _product(**axes) -> dict[str, np.ndarray]:
    names = list(axes)
    grids = np.meshgrid(*[np.asarray(axes[k]) for k in names], indexing="ij")
    return {k: g.reshape(-1) for k, g in zip(names, grids, strict=False)}


def _model_ints(workload):
    m = workload.model
    g = lambda x: int(round(float(np.asarray(x))))  # noqa: E731
    return dict(
        L=g(m.n_layers),
        heads=g(m.n_heads),
        kv=g(m.n_kv_heads),
        ff=g(m.d_ff),
        B=g(workload.global_batch),
        experts=g(m.n_experts),
        s=g(getattr(workload, "seq_len", 0)),
    )


# Context parallelism is enumerated only where each rank keeps at least this many tokens of a
# sequence: below it the ring exchange outweighs the attention it hides behind (Megatron-Core
# uses CP for long sequences, 8k and above).
MIN_CP_CHUNK = 4096


def _cp_degrees(seq_len: int, n: int) -> list[int]:
    return [
        c
        for c in (1, 2, 4, 8, 16, 32)
        if c <= n and seq_len % c == 0 and (c == 1 or seq_len // c >= MIN_CP_CHUNK)
    ]


def enumerate_gpu_mappings(
    workload,
    n_gpus: int,
    *,
    gpus_per_node: int = 8,
    max_tp: int = 64,
    flags: bool = True,
    interleave: bool = True,
) -> Mapping:
    """Every legal Megatron-style mapping of ``workload`` on ``n_gpus`` GPUs.

    Legal means: ``tp`` is a power of two dividing the heads and the FFN width (and, with GQA,
    the KV heads or a multiple of them); ``pp`` divides the layers;
    ``global_batch % (dp * micro_batch) == 0``; context parallelism ``cp`` (powers of two
    leaving each rank at least ``MIN_CP_CHUNK`` tokens of a sequence; ``tp * cp * pp * dp =
    n_gpus``); expert parallelism ``ep`` for MoE models (dividing the experts and
    ``dp * cp``); interleaving ``v > 1`` needs ``pp > 1``,
    ``layers % (pp v) == 0`` and micro-batches divisible by ``pp`` (Megatron's rule);
    sequence parallelism and TP overlap need ``tp > 1``; the distributed optimizer and DP
    overlap need ``dp > 1``. Full recomputation is enumerated per number of recomputed layers
    per stage (Megatron's block method, ``k = 1 .. L/pp``), and when TP leaves room in the
    NVLink domain both rank placements (DP or PP next to TP) are tried. ``flags=False``
    fixes the boolean knobs to 0, the schedule to 1F1B and full recompute to uniform (a
    Megatron-2021-style search).
    """
    w = _model_ints(workload)
    n = int(n_gpus)
    if n < 1:
        raise ValueError(f"n_gpus must be >= 1, got {n_gpus}")
    cols = {k: [] for k in MAPPING_FIELDS}
    tps = [t for t in (1, 2, 4, 8, 16, 32, 64, 128) if t <= min(max_tp, n)]
    for tp in tps:
        if w["heads"] % tp or w["ff"] % tp:
            continue
        if w["kv"] % tp and tp % w["kv"]:
            continue
        for pp, cp in itertools.product(divisors(w["L"]), _cp_degrees(w["s"], n)):
            pp = int(pp)
            if n % (tp * pp * cp):
                continue
            dp = n // (tp * pp * cp)
            if w["B"] % dp:
                continue
            # expert parallelism: MoE only, EP divides the experts and the dp x cp group
            eps = [e for e in divisors(w["experts"]) if (dp * cp) % e == 0] if w["experts"] else [1]
            mbs = divisors(w["B"] // dp)
            vs = divisors(w["L"] // pp) if (interleave and pp > 1) else np.array([1])
            on = [0, 1] if flags else [0]
            per_stage = w["L"] // pp
            # recompute code 2 + block recompute of k of the stage's layers, k = 1..L/pp
            ks = np.arange(1, per_stage + 1) if flags else np.array([per_stage])
            rc_code = np.concatenate([[0, 1], np.full(ks.size, 2)])
            rc_frac = np.concatenate([[1.0, 1.0], ks / per_stage])
            # placement matters only when TP (x CP) leaves room in the NVLink domain
            place = [0, 1] if (flags and tp * cp < gpus_per_node and pp > 1 and dp > 1) else [0]
            axes = dict(
                micro_batch=mbs,
                interleave=vs,
                rc=np.arange(rc_code.size),
                schedule=[0, 1] if flags else [1],
                dist_opt=on if dp * cp > 1 else [0],
                seq_par=on if tp > 1 else [0],
                tp_overlap=on if tp > 1 else [0],
                dp_overlap=on if dp * cp > 1 else [0],
                placement=place,
                ep=eps,
            )
            g = _product(**axes)
            m = w["B"] // (dp * g["micro_batch"])
            ok = (g["interleave"] == 1) | ((m % pp == 0) & (g["schedule"] == 1))
            for k in axes:
                if k != "rc":
                    cols[k].append(g[k][ok])
            cols["recompute"].append(rc_code[g["rc"][ok]])
            cols["recompute_layers"].append(rc_frac[g["rc"][ok]])
            cnt = int(ok.sum())
            cols["tp"].append(np.full(cnt, tp))
            cols["pp"].append(np.full(cnt, pp))
            cols["dp"].append(np.full(cnt, dp))
            cols["cp"].append(np.full(cnt, cp))
            cols["stream"].append(np.zeros(cnt))
    if not cols["tp"]:
        raise ValueError(
            f"no legal mapping of {workload.model.name} on {n} GPUs: check that the global "
            f"batch ({w['B']}) is divisible by some data-parallel degree and the heads "
            f"({w['heads']}) by some tensor-parallel degree"
        )
    return Mapping.from_columns({k: np.concatenate(v) for k, v in cols.items()})


def enumerate_wafer_mappings(
    workload,
    *,
    max_reticles: int,
    region_sizes=(0, 1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128),
    micro_batches=(1, 2, 4, 8, 16, 32, 64, 128),
) -> Mapping:
    """Design-independent mapping table for wafer-scale systems.

    ``tp`` = reticles per stage region (``0`` = a whole wafer, resolved per design), ``pp``
    divides the layers, ``dp = 0`` (resolved per design to as many replicas as fit). Rows
    whose ``tp * pp`` exceeds a design's reticles are flagged DEVICE_COUNT for that design.
    Both execution modes (resident, streamed) and the recompute options are included.
    """
    w = _model_ints(workload)
    pps = [int(p) for p in divisors(w["L"]) if p <= max_reticles]
    tps = [t for t in region_sizes if t <= max_reticles]
    if not all(isinstance(t, (int, np.integer)) and t >= 0 for t in tps):
        raise ValueError(f"region_sizes must be non-negative integers, got {region_sizes}")
    mbs = [b for b in micro_batches if b <= w["B"]]
    rows = []
    for tp, pp in itertools.product(tps, pps):
        if max(tp, 1) * pp > max_reticles:
            continue
        rows.append((tp, pp))
    if not rows:
        raise ValueError("no wafer mapping fits: increase max_reticles")
    tp_pp = np.array(rows)
    g = _product(
        idx=np.arange(len(rows)),
        micro_batch=mbs,
        recompute=[0, 1, 2],
        stream=[0, 1],
        dp_overlap=[0, 1],
    )
    tp = tp_pp[g["idx"], 0]
    pp = tp_pp[g["idx"], 1]
    # Streaming runs the whole wafer as one pipeline-free stage per replica: pp > 1 with
    # streaming is legal but dominated; keep it, the search discards it.
    cols = dict(
        tp=tp,
        pp=pp,
        dp=np.zeros_like(tp),
        micro_batch=g["micro_batch"],
        recompute=g["recompute"],
        interleave=np.ones_like(tp),
        schedule=np.ones_like(tp),
        dist_opt=np.zeros_like(tp),
        seq_par=np.zeros_like(tp),
        tp_overlap=np.ones_like(tp),
        dp_overlap=g["dp_overlap"],
        stream=g["stream"],
        recompute_layers=np.ones_like(tp, dtype=np.float64),
        placement=np.zeros_like(tp),
    )
    return Mapping.from_columns(cols)


def _micro_batches(batch: int) -> np.ndarray:
    """Powers of two below ``batch`` and ``batch`` itself (sequences per micro-batch)."""
    p2 = [1 << i for i in range(0, 20) if (1 << i) < batch]
    return np.array(sorted(set(p2 + [batch])), dtype=np.int64)


def enumerate_gpu_inference_mappings(workload, n_gpus: int, *, gpus_per_node: int = 8) -> Mapping:
    """Legal inference mappings on ``n_gpus`` GPUs: TP (powers of two dividing the heads, and
    the KV heads or a multiple of them), PP dividing the layers, as many replicas as the GPUs
    allow (``dp = n / (tp pp)``, each serving ``ceil(batch / dp)`` sequences), and the
    pipeline micro-batch size (powers of two and the whole replica batch). Expert
    parallelism of MoE layers follows the TP group (experts sharded over it).
    """
    w = _model_ints(workload)
    n = int(n_gpus)
    if n < 1:
        raise ValueError(f"n_gpus must be >= 1, got {n_gpus}")
    rows = []
    for tp in (t for t in (1, 2, 4, 8, 16, 32, 64) if t <= n):
        if w["heads"] % tp or (w["kv"] % tp and tp % w["kv"]):
            continue
        for pp in divisors(w["L"]):
            pp = int(pp)
            if tp * pp > n:
                continue
            dp = n // (tp * pp)
            b_rep = -(-w["B"] // dp)
            mbs = _micro_batches(b_rep) if pp > 1 else np.array([b_rep])
            for mb in mbs:
                rows.append((tp, pp, dp, int(mb)))
    if not rows:
        raise ValueError(f"no legal inference mapping of {workload.model.name} on {n} GPUs")
    a = np.array(rows)
    return Mapping.from_columns(dict(tp=a[:, 0], pp=a[:, 1], dp=a[:, 2], micro_batch=a[:, 3]))


def enumerate_wafer_inference_mappings(
    workload,
    *,
    max_reticles: int,
    region_sizes=(0, 1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128),
) -> Mapping:
    """Design-independent inference mappings for wafers: region size (``0`` = a whole
    wafer), pipeline stages dividing the layers, replicas as many as fit (``dp = 0``),
    micro-batch sizes, weights resident (``stream = 0``) or streamed (``stream = 1``)."""
    w = _model_ints(workload)
    pps = [int(p) for p in divisors(w["L"]) if p <= max_reticles]
    tps = [t for t in region_sizes if t <= max_reticles]
    mbs = _micro_batches(w["B"])
    rows = [
        (tp, pp, int(mb), st)
        for tp in tps
        for pp in pps
        if max(tp, 1) * pp <= max_reticles
        for mb in mbs
        for st in (0, 1)
    ]
    a = np.array(rows)
    return Mapping.from_columns(
        dict(tp=a[:, 0], pp=a[:, 1], dp=np.zeros(len(rows)), micro_batch=a[:, 2], stream=a[:, 3])
    )


def pad_mappings(mappings: Mapping, size: int) -> tuple[Mapping, np.ndarray]:
    """Pad a table to ``size`` rows (repeating row 0) and return it with a validity mask."""
    n = mappings.size()
    if size < n:
        raise ValueError(f"pad size {size} < table size {n}")
    idx = np.concatenate([np.arange(n), np.zeros(size - n, dtype=np.int64)])
    cols = {k: np.asarray(getattr(mappings, k))[idx] for k in MAPPING_FIELDS}
    mask = np.arange(size) < n
    return Mapping.from_columns(cols), mask
