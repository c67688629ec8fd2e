"""A parallel mapping of one training step onto a system, as a pytree of float leaves.

All fields are float32 so a padded table of mappings is one ``Mapping`` whose leaves have a
leading axis, evaluated in the same vmapped call as the designs. Integer-valued fields hold
integers; categorical fields hold small codes.

Fields:
    tp: tensor-parallel degree. On a GPU cluster, GPUs per TP group (Megatron TP). On a wafer,
        reticles per stage replica: the stage's layers are split over every core of that
        region with 2-D (row/column) GEMM partitioning on the mesh.
    pp: pipeline stages.
    dp: data-parallel replicas. On a wafer, ``dp <= 0`` means "as many replicas as fit"
        (``floor(reticles / (tp * pp))``), resolved per design.
    micro_batch: sequences per micro-batch.
    recompute: 0 none, 1 selective (attention core), 2 full (layer input only is kept).
    interleave: virtual stages per device (1 = plain schedule).
    schedule: 0 GPipe, 1 1F1B (same bubble, different activation memory).
    dist_opt: 1 shards optimizer state over DP (Megatron distributed optimizer / ZeRO-1).
    seq_par: 1 uses sequence parallelism with TP (activations between TP regions sharded).
    tp_overlap: 1 overlaps TP communication with GEMMs (Megatron-Core userbuffers; on a
        wafer, the mesh streams operands while cores compute).
    dp_overlap: 1 overlaps the gradient reduction with the last micro-batch's backward pass.
    stream: wafers only: 0 weights resident in SRAM (layer pipelining), 1 weights streamed
        from DRAM / off-wafer memory layer by layer (Cerebras weight streaming).
    recompute_layers: with ``recompute = 2``, the fraction of each stage's layers that are
        fully recomputed (Megatron ``--recompute-method block --recompute-num-layers k``:
        ``k / (L / pp)``); the other layers keep their full activations. 1.0 = uniform full.
    placement: GPU clusters: which parallel dimension fills the NVLink domain after TP
        (0: data parallel, Megatron's default rank order tp-dp-pp; 1: pipeline stages).
    cp: GPU clusters: context-parallel degree (Megatron-Core ``--context-parallel-size``):
        each sequence is split over ``cp`` ranks that exchange K/V in a ring during
        attention; weights are replicated over CP, so gradients reduce over ``dp x cp``.
        ``tp * cp * pp * dp`` GPUs in all. Wafers: must be 1.
    ep: GPU clusters, MoE models: expert-parallel degree: the routed experts are split over
        ``ep`` ranks carved out of the ``dp x cp`` group (Megatron-Core
        ``--expert-model-parallel-size``), tokens reach them by all-to-all. Dense models and
        wafers: 1.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

__all__ = ["Mapping", "MAPPING_FIELDS", "Recompute", "Schedule"]

MAPPING_FIELDS = (
    "tp",
    "pp",
    "dp",
    "micro_batch",
    "recompute",
    "interleave",
    "schedule",
    "dist_opt",
    "seq_par",
    "tp_overlap",
    "dp_overlap",
    "stream",
    "recompute_layers",
    "placement",
    "cp",
    "ep",
)


class Recompute:
    NONE = 0
    SELECTIVE = 1
    FULL = 2
    NAMES = ("none", "selective", "full")


class Schedule:
    GPIPE = 0
    ONE_F_ONE_B = 1
    NAMES = ("gpipe", "1f1b")


class Mapping(eqx.Module):
    """One mapping (scalars) or a table of them (leaves with a leading axis)."""

    tp: jnp.ndarray
    pp: jnp.ndarray
    dp: jnp.ndarray
    micro_batch: jnp.ndarray
    recompute: jnp.ndarray
    interleave: jnp.ndarray
    schedule: jnp.ndarray
    dist_opt: jnp.ndarray
    seq_par: jnp.ndarray
    tp_overlap: jnp.ndarray
    dp_overlap: jnp.ndarray
    stream: jnp.ndarray
    recompute_layers: jnp.ndarray
    placement: jnp.ndarray
    cp: jnp.ndarray
    ep: jnp.ndarray

    def __init__(
        self,
        *,
        tp=1,
        pp=1,
        dp=1,
        micro_batch=1,
        recompute=0,
        interleave=1,
        schedule=1,
        dist_opt=0,
        seq_par=0,
        tp_overlap=0,
        dp_overlap=0,
        stream=0,
        recompute_layers=1.0,
        placement=0,
        cp=1,
        ep=1,
    ):
        vals = dict(
            tp=tp,
            pp=pp,
            dp=dp,
            micro_batch=micro_batch,
            recompute=recompute,
            interleave=interleave,
            schedule=schedule,
            dist_opt=dist_opt,
            seq_par=seq_par,
            tp_overlap=tp_overlap,
            dp_overlap=dp_overlap,
            stream=stream,
            recompute_layers=recompute_layers,
            placement=placement,
            cp=cp,
            ep=ep,
        )
        for k, v in vals.items():
            setattr(self, k, jnp.asarray(v, dtype=jnp.float32))

    @classmethod
    def from_columns(cls, cols: dict) -> Mapping:
        """Build a table from a dict of equal-length columns; missing columns take their
        default value, broadcast to the table length."""
        unknown = sorted(set(cols) - set(MAPPING_FIELDS))
        if unknown:
            raise ValueError(f"unknown mapping fields {unknown}; expected {list(MAPPING_FIELDS)}")
        arrs = {k: np.atleast_1d(np.asarray(v, np.float32)) for k, v in cols.items()}
        lengths = {a.shape[0] for a in arrs.values()}
        if len(lengths) > 1:
            raise ValueError(f"mapping columns differ in length: {sorted(lengths)}")
        n = lengths.pop() if lengths else 1
        defaults = cls()
        full = {
            k: arrs[k] if k in arrs else np.full(n, float(getattr(defaults, k)), np.float32)
            for k in MAPPING_FIELDS
        }
        return cls(**full)

    def size(self) -> int:
        return int(np.size(self.tp))

    def row(self, i: int) -> dict:
        """Host-side dict of mapping ``i`` with readable names."""
        d = {k: float(np.asarray(getattr(self, k)).reshape(-1)[i]) for k in MAPPING_FIELDS}
        out = {k: int(round(v)) for k, v in d.items()}
        out["recompute_layers"] = round(d["recompute_layers"], 4)
        out["recompute"] = Recompute.NAMES[out["recompute"]]
        out["schedule"] = Schedule.NAMES[out["schedule"]]
        return out
