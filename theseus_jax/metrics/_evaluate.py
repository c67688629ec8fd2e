"""Public evaluation API: every (design, mapping) point in one jit-compiled, vmapped call.

Model code is written for one design and one mapping; this module vmaps it over a padded
mapping table (inner) and a design batch (outer), masks illegal rows, and picks the best
feasible mapping per design by a selectable objective.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._violations import Violation, describe
from ..cost._records import InferenceMetrics, Metrics
from ..cost.gpu import gpu_training_step
from ..cost.inference import gpu_inference
from ..cost.physical import physical_wsc
from ..cost.wafer import wafer_training_step
from ..cost.wafer_inference import wafer_inference
from ..design._gpu import GPUSystem
from ..design._wafer import WaferDesign
from ..fidelity import F1Cache, F1Cost, F1Point, evaluate_f1_many
from ..mapping._enumerate import (
    enumerate_gpu_inference_mappings,
    enumerate_gpu_mappings,
    enumerate_wafer_inference_mappings,
    enumerate_wafer_mappings,
)
from ..mapping._plan import Mapping
from ..workload._llm import InferenceWorkload

__all__ = [
    "evaluate_point",
    "evaluate_mappings",
    "evaluate",
    "make_evaluator",
    "EvalResult",
    "OBJECTIVES",
    "default_mappings",
    "explain",
]

OBJECTIVES = ("time", "energy", "perf_per_watt", "latency", "ttft")


def _physical(design, tech):

    return physical_wsc(design, tech)


def _step_fn(design, workload):
    """The cost function of a (design kind, workload kind) pair."""
    infer = isinstance(workload, InferenceWorkload)
    if isinstance(design, GPUSystem):
        return gpu_inference if infer else gpu_training_step
    if isinstance(design, WaferDesign):
        return wafer_inference if infer else wafer_training_step
    raise TypeError(f"design must be a WaferDesign or GPUSystem, got {type(design).__name__}")


def evaluate_point(design, workload, mapping: Mapping, tech=None) -> Metrics | InferenceMetrics:
    """Metrics of one design under one mapping (scalars in, scalars out; vmap it).

    Training workloads give :class:`Metrics`, inference workloads :class:`InferenceMetrics`.
    """
    fn = _step_fn(design, workload)
    if isinstance(design, WaferDesign):
        if tech is None:
            raise ValueError("evaluating a WaferDesign needs `tech` (e.g. load_tech('n7'))")
        return fn(design, tech, _physical(design, tech), workload, mapping)
    return fn(design, workload, mapping)


def evaluate_mappings(design, workload, mappings: Mapping, tech=None):
    """Metrics of one design under every mapping of a table (leading axis = mapping)."""
    fn = _step_fn(design, workload)
    if isinstance(design, WaferDesign):
        if tech is None:
            raise ValueError("evaluating a WaferDesign needs `tech` (e.g. load_tech('n7'))")
        phys = _physical(design, tech)  # once per design, shared by all its mappings
        return jax.vmap(lambda mp: fn(design, tech, phys, workload, mp))(mappings)
    return jax.vmap(lambda mp: fn(design, workload, mp))(mappings)


def _popcount(x):
    """Number of violated constraints in a bitflag word."""
    return jax.lax.population_count(x.astype(jnp.uint32)).astype(jnp.float32)


def _objective(metrics, objective: str):
    """Quantity to minimise. Training: step time or energy per token. Inference: total time of
    the batch ("time", i.e. throughput), time per output token ("latency"), time to first
    token ("ttft"), energy per output token ("energy" / "perf_per_watt")."""
    infer = isinstance(metrics, InferenceMetrics)
    if objective in ("energy", "perf_per_watt"):  # tokens/s/W = tokens / J: same order
        return metrics.energy_per_token_j
    if objective == "time":
        return metrics.total_time_s if infer else metrics.step_time_s
    if objective in ("latency", "ttft"):
        if not infer:
            raise ValueError(f"objective {objective!r} applies to inference workloads only")
        return metrics.tpot_s if objective == "latency" else metrics.ttft_s
    raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")


class EvalResult(eqx.Module):
    """Best mapping per design.

    Attributes:
        metrics: :class:`Metrics` (training) or :class:`InferenceMetrics` (inference) of the
            chosen mapping (leaves of shape ``(n_designs,)``).
        mapping_index: index of the chosen row of the mapping table, ``(n_designs,)``.
        n_feasible: feasible (design, mapping) pairs per design, ``(n_designs,)``.
    """

    metrics: Metrics | InferenceMetrics
    mapping_index: jnp.ndarray
    n_feasible: jnp.ndarray


def _best(metrics: Metrics, mask, objective):
    """Pick the best feasible row; if none is feasible, the least-violating, then best row."""
    obj = _objective(metrics, objective)
    ok = metrics.feasible & mask
    penalty = jnp.where(mask, _popcount(metrics.violations), 1e6)
    key = jnp.where(ok, obj, 1e30 + penalty * 1e30)
    # infeasible rows: order by number of violated constraints, then objective (finite)
    key = jnp.where(ok, key, penalty * 1e20 + jnp.minimum(obj, 1e19))
    key = jnp.where(mask, key, jnp.inf)
    i = jnp.argmin(key)
    best = jax.tree_util.tree_map(lambda x: x[i], metrics)
    return best, i, jnp.sum(ok)


def evaluate(
    designs,
    workload,
    *,
    mappings: Mapping | None = None,
    mask=None,
    tech=None,
    objective: str = "time",
    space=None,
) -> EvalResult:
    """Evaluate a batch of designs, each under every mapping of a table, keep the best.

    Args:
        designs: a batched :class:`WaferDesign` or :class:`GPUSystem` (leading axis = design).
            An unbatched design is treated as a batch of one.
        workload: :class:`~theseus_jax.workload.TrainingWorkload`.
        mappings: a :class:`Mapping` table; default :func:`default_mappings`.
        mask: optional boolean array ``(n_mappings,)`` marking valid (non-padding) rows.
        tech: :class:`~theseus_jax.tech.Tech`, required for wafers.
        objective: ``"time"`` (step time), ``"energy"`` (energy per token) or
            ``"perf_per_watt"`` (tokens/s/W, same order as energy per token).
        space: the :class:`~theseus_jax.DesignSpace` the designs come from, if any: its own
            constraints (the SRAM-compiler table of legal size/bandwidth pairs, physical fit)
            are added to ``violations`` and ``feasible``, so a design built outside the
            space's repair (``from_unit(..., repair=False)``, a hand-edited CSV) is reported
            infeasible with ``SRAM_BW_PAIR`` rather than silently costed.

    Returns:
        :class:`EvalResult` with leaves of shape ``(n_designs,)``.
    """
    if mappings is None:
        mappings = default_mappings(designs, workload)
    fn = make_evaluator(workload, mappings=mappings, mask=mask, tech=tech, objective=objective)
    res = fn(designs)
    if space is None:
        return res
    return with_space_violations(res, space.violations(designs))


def with_space_violations(res: EvalResult, space_codes) -> EvalResult:
    """``res`` with space-level violation codes OR-ed into its metrics (host side)."""
    codes = jnp.asarray(np.asarray(space_codes, np.uint32)).reshape(res.metrics.violations.shape)
    viol = res.metrics.violations | codes
    metrics = eqx.tree_at(lambda m: (m.violations, m.feasible), res.metrics, (viol, viol == 0))
    return eqx.tree_at(lambda r: r.metrics, res, metrics)


def default_mappings(designs, workload) -> Mapping:
    """The full legal mapping table for the design and workload kinds (host side)."""
    infer = isinstance(workload, InferenceWorkload)
    if isinstance(designs, GPUSystem):
        n = np.unique(np.asarray(designs.n_gpus))
        if n.size != 1:
            raise ValueError(
                "GPU designs of different sizes need their own mapping tables: evaluate each "
                "GPU count separately or pass `mappings=`"
            )
        node = int(np.max(np.asarray(designs.gpus_per_node)))
        if infer:
            return enumerate_gpu_inference_mappings(workload, int(n[0]), gpus_per_node=node)
        return enumerate_gpu_mappings(workload, int(n[0]), gpus_per_node=node)
    if isinstance(designs, WaferDesign):
        r = np.asarray(designs.reticle_rows * designs.reticle_cols * designs.n_wafers)
        if infer:
            return enumerate_wafer_inference_mappings(workload, max_reticles=int(np.max(r)))
        return enumerate_wafer_mappings(workload, max_reticles=int(np.max(r)))
    raise TypeError(f"designs must be a WaferDesign or GPUSystem, got {type(designs).__name__}")


# Device memory one (design, mapping) pair needs inside the fused evaluation: about 320 B
# measured (GPT-3 175B training, 1,024 designs x 16,128 mappings: 5.3 GB peak RSS on CPU
# unchunked), rounded up.
PAIR_BYTES = 512
DEFAULT_MEMORY_BUDGET_BYTES = 2 * 1024**3


def make_evaluator(
    workload,
    *,
    mappings: Mapping,
    mask=None,
    tech=None,
    objective: str = "time",
    memory_budget_bytes: float = DEFAULT_MEMORY_BUDGET_BYTES,
    fidelity: str = "f0",
    f1_max_cycles: int = 16000,
    f1_seed: int = 0,
    f1_cache: F1Cache | None = None,
    f1_executor=None,
    devices=None,
) -> Callable:
    """Return ``evaluate(designs) -> EvalResult``, jit-compiled, closing over the rest.

    The returned function is pure; calling it again with designs of the same batch size
    does not recompile. A batch whose ``designs x mappings`` would need more than
    ``memory_budget_bytes`` (at ``PAIR_BYTES`` per pair) is evaluated in chunks of a fixed
    power-of-two size (the last one padded), so any batch runs in bounded memory with one
    compilation and the same results.

    ``devices`` (default: every visible JAX device, ``jax.devices()``) share each chunk:
    the design axis is sharded over them (``jax.sharding``, one mesh axis ``"designs"``),
    the workload, mappings and technology are replicated, and the memory budget applies
    per device. Results do not depend on the number of devices. Several hosts: designs are
    independent, so give each host its own designs and its own evaluator over its local
    devices (``run_sweep(shard=(k, m))``, ``theseus sweep --shard K/M``); no
    ``jax.distributed`` collective is needed.

    ``fidelity="f1"`` (wafers only) picks each design's best mapping with F0, then
    re-evaluates that point with F1: the same cost terms composed with network factors
    measured on the cycle-level simulator (:func:`~theseus_jax.fidelity.evaluate_f1`,
    ``f1_max_cycles``, seed ``f1_seed + i`` for design ``i``, simulators compiled into
    ``f1_cache``, a fresh :class:`~theseus_jax.fidelity.F1Cache` by default). It is a host
    loop over the designs (seconds to minutes each), run concurrently by ``f1_executor``
    (:func:`~theseus_jax.fidelity.open_f1_executor`: local processes or Ray workers; the
    same results); the result also carries each design's
    :class:`~theseus_jax.fidelity.F1Cost` in ``f1_costs``.
    """
    if fidelity not in ("f0", "f1"):
        raise ValueError(f"fidelity must be 'f0' or 'f1', got {fidelity!r}")
    if fidelity == "f1":
        return _make_f1_evaluator(
            workload,
            mappings=mappings,
            mask=mask,
            tech=tech,
            objective=objective,
            memory_budget_bytes=memory_budget_bytes,
            max_cycles=f1_max_cycles,
            seed=f1_seed,
            cache=f1_cache,
            executor=f1_executor,
        )
    if f1_executor is not None:
        raise ValueError("f1_executor= runs F1 evaluations: use it with fidelity='f1'")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if not memory_budget_bytes > 0:
        raise ValueError(f"memory_budget_bytes must be > 0, got {memory_budget_bytes}")
    n_map = mappings.size()
    mask_arr = jnp.ones(n_map, bool) if mask is None else jnp.asarray(mask, bool)
    if mask_arr.shape != (n_map,):
        raise ValueError(f"mask must have shape ({n_map},), got {mask_arr.shape}")

    @jax.jit
    def _run(designs, workload, mappings, mask_arr, tech):
        def one(design):
            ms = evaluate_mappings(design, workload, mappings, tech)
            return _best(ms, mask_arr, objective)

        best, idx, nf = jax.vmap(one)(designs)
        return EvalResult(metrics=best, mapping_index=idx, n_feasible=nf)

    devs = tuple(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("devices must name at least one JAX device (default: jax.devices())")
    fit = max(1, int(memory_budget_bytes // (PAIR_BYTES * max(n_map, 1))))
    chunk = (1 << (fit.bit_length() - 1)) * len(devs)  # per device a power of two
    shard = _design_sharding(devs)

    def run(designs):
        return _run(shard(designs), workload, mappings, mask_arr, tech)

    def evaluate_fn(designs) -> EvalResult:
        batched = jnp.ndim(jax.tree_util.tree_leaves(designs)[0]) > 0
        if not batched:
            designs = jax.tree_util.tree_map(lambda x: x[None], designs)
        n = int(jnp.shape(jax.tree_util.tree_leaves(designs)[0])[0])
        if n <= chunk and (len(devs) == 1 or n % len(devs) == 0):
            return run(designs)
        if n <= chunk:  # pad to a multiple of the device count
            m = -(-n // len(devs)) * len(devs)
            idx = np.minimum(np.arange(m), n - 1)
            res = run(jax.tree_util.tree_map(lambda x: x[idx], designs))
            return jax.tree_util.tree_map(lambda x: x[:n], res)
        parts = []
        for lo in range(0, n, chunk):
            idx = np.minimum(np.arange(lo, lo + chunk), n - 1)  # pad with the last design
            part = jax.tree_util.tree_map(lambda x: x[idx], designs)  # noqa: B023
            res = run(part)
            k = min(chunk, n - lo)
            parts.append(jax.tree_util.tree_map(lambda x: x[:k], res))  # noqa: B023
        return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *parts)

    evaluate_fn.chunk_size = chunk
    evaluate_fn.devices = devs

    return evaluate_fn


def _design_sharding(devices) -> Callable:
    """``designs -> designs`` placed with the leading (design) axis split over ``devices``
    (identity for one device: the computation stays where JAX puts it)."""
    if len(devices) == 1:
        return lambda designs: designs
    mesh = jax.sharding.Mesh(np.asarray(devices), ("designs",))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("designs"))
    return lambda designs: jax.device_put(designs, spec)


class F1Result(eqx.Module):
    """:class:`EvalResult` of an F1 evaluation, with each design's F1 cost."""

    metrics: Metrics | InferenceMetrics
    mapping_index: jnp.ndarray
    n_feasible: jnp.ndarray
    f1_costs: tuple[F1Cost, ...] = eqx.field(static=True)


def _make_f1_evaluator(
    workload, *, mappings, tech, max_cycles, seed, cache, executor, **kw
) -> Callable:
    if tech is None:
        raise ValueError("fidelity='f1' evaluates wafers and needs `tech` (load_tech('n7'))")
    f0 = make_evaluator(workload, mappings=mappings, tech=tech, **kw)
    cache = cache if cache is not None else F1Cache()

    def evaluate_fn(designs) -> F1Result:
        if not isinstance(designs, WaferDesign):
            raise TypeError(
                f"fidelity='f1' simulates wafer networks; got {type(designs).__name__} "
                "(GPU clusters have F0 only)"
            )
        res0 = f0(designs)
        batched = jnp.ndim(designs.macs_per_core) > 0
        one = designs if batched else jax.tree_util.tree_map(lambda x: x[None], designs)
        idx = np.asarray(res0.mapping_index).reshape(-1)
        points = [
            F1Point(
                jax.tree_util.tree_map(lambda x, i=i: x[i], one),
                workload,
                tech,
                jax.tree_util.tree_map(lambda x, j=int(j): x[j], mappings),
                seed + i,
                max_cycles,
            )
            for i, j in enumerate(idx)
        ]
        rows, costs = zip(
            *evaluate_f1_many(points, executor=executor, cache=None if executor else cache),
            strict=True,
        )
        metrics = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *rows)
        return F1Result(
            metrics=metrics,
            mapping_index=res0.mapping_index,
            n_feasible=res0.n_feasible,
            f1_costs=tuple(costs),
        )

    return evaluate_fn


def explain(metrics: Metrics, i: int | None = None) -> str:
    """Human-readable feasibility of one point: "feasible" or the violated constraints."""
    v = np.asarray(metrics.violations)
    code = int(v.reshape(-1)[0 if i is None else i])
    if code == 0:
        return "feasible"
    return "infeasible: " + ", ".join(describe(code))


_ = Violation  # re-exported through theseus_jax
