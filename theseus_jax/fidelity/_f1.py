r"""F1: the same cost terms as F0, composed with network factors *measured* on the
cycle-level mesh simulator instead of F0's analytic ones.

A wafer's cost function splits into network-independent terms and
:class:`~theseus_jax.cost.noc.NetworkFactors` (:mod:`theseus_jax.cost.noc`): F0 composes
the terms with :func:`~theseus_jax.cost.noc.analytic_factors`; F1 composes **the same
terms with the same composition** (:func:`~theseus_jax.cost.wafer.compose_training`,
:func:`~theseus_jax.cost.wafer_inference.compose_inference`) with factors measured on small
representative windows of the simulator at steady state (:mod:`._windows`):

1. **GEMM streams** (training: the 6 layer GEMMs and the logits; inference: prefill's and
   decode's 4 layer GEMMs and logits, whose column reductions are decode's latency-bound
   mesh reductions). The GEMM window is offered each stream's ideal-network link
   utilisation ``rho = t_bw / tau`` (plus a few lower loads, one vmapped batch); measured
   at each load: accepted / generated flits and the contention wait per hop ``W``. A load
   the window cannot sustain is replaced by a run at 90% of the measured saturation. Cores
   pace each stream: F1 picks the load ``r <= rho`` minimising ``t_bw / (r f(r)) + hops x
   W(r)`` on the measured curve (:func:`~._windows.pace`), giving the effective-bandwidth
   factor ``r f(r) / rho`` (the phase lasts ``tau / factor``) and the wait ``W(r)``.
2. **Attention all-to-all** (training): the uniform window's saturation throughput over the
   channel-load bound of uniform traffic, ``a2a_bw``.
3. **Reticle crossings** (pipeline point-to-point, data-parallel reduction): the reticle
   window's accepted rate over the crossing-link capacity, ``reticle_bw``.

Everything else -- compute, memory, off-wafer links, the attention/norm reductions' zero-load
latency, dynamic energy -- is F0's, term for term, and the constraints (power included) are
re-checked on F1's times. Composing with F0's factors gives F0 exactly (a test checks it),
so every F0/F1 difference comes from the measured factors.

Stated simplifications: one window per traffic class stands for every link of that class;
Bernoulli injection (as F0's M/D/1 assumes Poisson arrivals); the GEMM window simulates at
most four loads per evaluation besides low load and saturation (more distinct loads are
represented by quantiles, the curve is interpolated); the reticle crossings' extra latency
(``d2d_delay_cycles``) stays analytic.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import numpy as np

from ..cost.noc import NetworkFactors, Streams, analytic_factors, concat_streams, with_gemm_bw
from ..cost.physical import physical_wsc
from ..cost.wafer import compose_training, wafer_training_terms
from ..cost.wafer_inference import compose_inference, wafer_inference_terms
from ..design._wafer import WaferDesign
from ..workload import InferenceWorkload, TrainingWorkload
from ._windows import (
    CHUNK,
    Counter,
    F1Cache,
    NetParams,
    a2a_window,
    bulk_cycles,
    core_window_configs,
    d2d_period,
    gemm_plan,
    gemm_window,
    pace,
    reticle_config,
    reticle_window,
    round_chunk,
)

__all__ = [
    "evaluate_f1",
    "f1_planned_cost",
    "measure_factors",
    "wafer_terms",
    "compose",
    "F1Cost",
]


class F1Cost(NamedTuple):
    """What one F1 evaluation cost and what it measured (host-side Python values).

    Attributes:
        sim_cycles: cycles simulated, summed over every simulation run (a vmapped batch of
            ``K`` loads counts ``K`` runs).
        router_cycles: router-cycles simulated (``sum runs x routers x cycles``).
        wall_s: wall-clock seconds of the whole F1 evaluation (terms, compiles, runs).
        compile_s: seconds spent compiling simulators (0 when all were cached).
        sim_s: seconds spent running simulators.
        n_runs, n_compiles: simulation runs and simulator compilations.
        gemm_rho: offered link utilisation of each GEMM stream (ideal-network pace).
        gemm_factor: F1 effective-bandwidth factor of each GEMM stream (<= 1).
        gemm_wait_cycles: F1 contention wait per hop of each GEMM stream at its pace.
        f0_gemm_wait_cycles: F0's M/D/1 wait per hop of each stream (cycles).
        core_sat: saturation throughput of the GEMM window (fraction of link capacity).
        a2a_factor: F1 factor of the attention all-to-all (1 where there is none).
        reticle_factor: F1 factor of reticle-level transfers (1 where none is simulated).
        windows: the simulated windows, ``(name, kx, ky, n_vcs, buf_depth, packet_size,
            d2d_period)``.
    """

    sim_cycles: int
    router_cycles: int
    wall_s: float
    compile_s: float
    sim_s: float
    n_runs: int
    n_compiles: int
    gemm_rho: tuple
    gemm_factor: tuple
    gemm_wait_cycles: tuple
    f0_gemm_wait_cycles: tuple
    core_sat: float
    a2a_factor: float
    reticle_factor: float
    windows: tuple


def wafer_terms(design, tech, workload, mapping):
    """The cost terms of ``(design, mapping)``: training or inference by workload type."""
    phys = physical_wsc(design, tech)
    if isinstance(workload, InferenceWorkload):
        return wafer_inference_terms(design, tech, phys, workload, mapping)
    return wafer_training_terms(design, tech, phys, workload, mapping)


def compose(terms, factors: NetworkFactors):
    """:class:`~theseus_jax.Metrics` or :class:`~theseus_jax.InferenceMetrics` of terms
    composed with network factors (the composition F0 uses)."""
    if hasattr(terms, "decode"):
        return compose_inference(terms, factors)
    return compose_training(terms, factors)


_terms_jit = jax.jit(wafer_terms)
_terms_batch = jax.jit(jax.vmap(wafer_terms, (0, None, None, 0)))
_compose_jit = jax.jit(compose)


def _has_a2a(t) -> bool:
    return hasattr(t, "a2a_s") and float(t.a2a_s) > 0


def _needs_reticle(t) -> bool:
    """The reticle window matters when an on-wafer inter-reticle transfer can be on the
    critical path: pipeline transfers, or a DP gradient reduction (training) not dominated
    (10x) by the off-wafer links."""
    if float(t.pp) > 1:
        return True
    if not hasattr(t, "dp_on_s") or float(t.dp_multi) <= 0:
        return False
    return bool(float(t.dp_spans) <= 0 or float(t.dp_on_s) > 0.1 * float(t.dp_off_s))


def _host(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, float), tree)


def _planned_router_cycles(t, net: NetParams, tech, max_cycles: int) -> int:
    """Router-cycles of the runs :func:`evaluate_f1` always makes for these terms."""

    def batch_cycles(cfg, k, cycles):
        return int(sum(round_chunk(c) for c in cycles) * k * cfg.n)

    rho = _rho(t)
    gemm_cfg, _, _, _, loads, cyc = gemm_plan(net, tech, rho, max_cycles)
    total = 0 if loads is None else batch_cycles(gemm_cfg, loads.size, cyc)
    bulk = bulk_cycles(max_cycles)
    if _has_a2a(t):
        a2a_cfg = core_window_configs(
            net.n_vcs, net.buffer_depth, net.link_bits, net.d2d_bw_ratio, net.crosses, tech
        )[1]
        total += batch_cycles(a2a_cfg, 1, bulk)
    if _needs_reticle(t):
        rcfg = reticle_config(net, tech)[0]
        total += 0 if rcfg is None else batch_cycles(rcfg, 1, bulk)
    return total


def _flat(t) -> Streams:
    """All of the terms' stream groups as one :class:`Streams` (host side)."""
    return jax.tree_util.tree_map(lambda x: np.asarray(x, float), concat_streams(*t.streams))


def _rho(t) -> np.ndarray:
    s = _flat(t)
    return np.where(s.t_bw_s > 0, s.t_bw_s / np.maximum(s.tau_s, 1e-30), 0.0)


def f1_planned_cost(design: WaferDesign, workload, tech, *, mapping, max_cycles=16000):
    """Router-cycles an F1 evaluation of ``design`` will simulate, known before simulating.

    F1's windows and run lengths follow from the terms (the GEMM loads set the window
    lengths, :func:`~._windows.window_cycles`), so the cost of an evaluation is predictable:
    this is ``F1Cost.router_cycles`` except for the one extra paced GEMM run that
    :func:`evaluate_f1` adds when a GEMM load turns out unsustainable (a lower bound then).
    Cost-aware acquisition divides by it (:mod:`theseus_jax.dse`).

    Args:
        design: one design, or a batch (leading axis on every leaf) with a ``mapping`` batch.
        workload, tech, max_cycles: as :func:`evaluate_f1`.
        mapping: the design's :class:`~theseus_jax.Mapping` (a batch for a design batch).

    Returns:
        Router-cycles (``sum runs x routers x cycles``) of the mandatory simulation runs: an
        int for one design, an ``(N,)`` int64 array for a batch.
    """
    if mapping is None:
        raise ValueError(_NEEDS_MAPPING.format(fn="f1_planned_cost"))
    if np.ndim(design.macs_per_core) == 0:
        t = _host(_terms_jit(design, tech, workload, mapping))
        return _planned_router_cycles(t, NetParams.of(design, t.crosses), tech, max_cycles)
    ts = _host(_terms_batch(design, tech, workload, mapping))
    n = int(np.shape(design.macs_per_core)[0])
    out = []
    for i in range(n):
        t = jax.tree_util.tree_map(lambda x: x[i], ts)  # noqa: B023
        d = jax.tree_util.tree_map(lambda x: x[i], design)  # noqa: B023
        out.append(_planned_router_cycles(t, NetParams.of(d, t.crosses), tech, max_cycles))
    return np.array(out, np.int64)


_NEEDS_MAPPING = (
    "{fn} needs the mapping to evaluate: pass mapping=... (e.g. F0's best, "
    "tj.make_evaluator(workload, mappings=maps, tech=tech)(design).mapping_index), or use "
    "tj.make_evaluator(workload, mappings=maps, tech=tech, fidelity='f1') to evaluate F1 at "
    "F0's best mapping"
)


def measure_factors(terms, net: NetParams, tech, *, max_cycles=16000, seed=0, ctr=None):
    """Measure the network factors of ``terms`` on the simulator windows.

    Args:
        terms: training or inference terms of one design (host or device arrays).
        net: the design's network parameters (:class:`~._windows.NetParams`).
        tech: :class:`~theseus_jax.Tech` (router and link delays).
        max_cycles, seed: as :func:`evaluate_f1`.
        ctr: a :class:`~._windows.Counter` collecting the simulation cost.

    Returns:
        ``(factors, info)``: :class:`~theseus_jax.cost.noc.NetworkFactors` and a dict with
        the offered loads ``rho``, the measured bandwidth factors ``gemm_bw``, the GEMM
        window's saturation ``core_sat`` and the simulated window configs.
    """
    ctr = ctr if ctr is not None else Counter()
    t = _host(terms)
    rho = _rho(t)
    s = _flat(t)
    curve, gcfg = gemm_window(net, tech, rho, max_cycles=max_cycles, seed=seed, ctr=ctr)
    factor, wait = pace(curve, rho, s.t_bw_s, s.hops, float(s.cycle_s[0]))
    a2a_f, acfg = (1.0, None)
    if _has_a2a(t):
        a2a_f, acfg = a2a_window(net, tech, max_cycles=max_cycles, seed=seed, ctr=ctr)
    ret_f, rcfg = 1.0, None
    if _needs_reticle(t):
        ret_f, rcfg = reticle_window(net, tech, max_cycles=max_cycles, seed=seed, ctr=ctr)
    factors = with_gemm_bw(
        terms.streams,
        np.asarray(factor, np.float32),
        np.asarray(wait, np.float32),
        np.float32(a2a_f),
        np.float32(ret_f),
    )
    info = dict(rho=rho, gemm_bw=factor, core_sat=float(curve.sat))
    return factors, dict(info, gemm=gcfg, a2a=acfg, reticle=rcfg)


def _window_tuple(name, cfg, period):
    if cfg is None:
        return None
    return (name, cfg.kx, cfg.ky, cfg.n_vcs, cfg.buf_depth, cfg.packet_size, period)


def evaluate_f1(
    design: WaferDesign,
    workload,
    tech,
    *,
    mapping,
    seed: int = 0,
    max_cycles: int = 16000,
    metrics0=None,
    cache: F1Cache | None = None,
    factors: NetworkFactors | None = None,
):
    """F1 metrics of one wafer design under one mapping, and what F1 cost.

    Args:
        design: one (unbatched) :class:`~theseus_jax.WaferDesign`.
        workload: :class:`~theseus_jax.TrainingWorkload` or
            :class:`~theseus_jax.InferenceWorkload`.
        tech: :class:`~theseus_jax.Tech`.
        mapping: the :class:`~theseus_jax.Mapping` to evaluate (for F0's best mapping use
            ``make_evaluator(..., fidelity="f1")``).
        seed: simulation seed.
        max_cycles: the most cycles of one simulation run. GEMM-stream windows run a few
            relaxation times of their highest load (``window_cycles``), up to this; bulk
            (saturation) windows run 1,600 cycles (or ``max_cycles`` if less).
        metrics0: F0's metrics of the point if the caller has them: checked to be F0's
            (the terms are recomputed, which is cheap), so a caller that paired the wrong
            metrics with a design learns it.
        cache: an :class:`F1Cache` to reuse compiled simulators across calls (the
            caller's; default: this call's own).
        factors: compose with these :class:`~theseus_jax.cost.noc.NetworkFactors` instead
            of measuring (no simulation; e.g. F0's, to check that F1 composes as F0 does).

    Returns:
        ``(metrics, cost)``: the metrics record of the workload kind, with F1's times,
        energy and constraints, and :class:`F1Cost`.
    """
    t0 = time.perf_counter()
    if max_cycles < 3 * CHUNK:
        raise ValueError(f"max_cycles must be >= {3 * CHUNK}, got {max_cycles}")
    if not isinstance(design, WaferDesign):
        raise TypeError(f"evaluate_f1 needs a WaferDesign, got {type(design).__name__}")
    if not isinstance(workload, (TrainingWorkload, InferenceWorkload)):
        raise TypeError(
            f"evaluate_f1 needs a TrainingWorkload or InferenceWorkload, got "
            f"{type(workload).__name__}"
        )
    if np.ndim(design.macs_per_core) != 0:
        raise ValueError("evaluate_f1 takes one design (scalar leaves), not a batch")
    if mapping is None:
        raise ValueError(_NEEDS_MAPPING.format(fn="evaluate_f1"))
    terms = _terms_jit(design, tech, workload, mapping)
    t = _host(terms)
    net = NetParams.of(design, t.crosses)
    ctr = Counter(cache)
    f0 = _host(_f0_factors_jit(terms))
    if metrics0 is not None:
        m0 = _compose_jit(terms, f0)
        want, got = _main_time(m0), _main_time(metrics0)
        if not np.isclose(want, got, rtol=1e-4):
            raise ValueError(
                f"metrics0 is not F0's metrics of this design and mapping (its time "
                f"{got:.6g} s, F0's {want:.6g} s): pass the matching metrics or none"
            )
    if factors is None:
        factors, info = measure_factors(terms, net, tech, max_cycles=max_cycles, seed=seed, ctr=ctr)
    else:
        bw = np.asarray(factors.gemm_bw(terms.streams), float)
        info = dict(rho=_rho(t), gemm_bw=bw, core_sat=1.0, gemm=None, a2a=None, reticle=None)
    metrics = _compose_jit(terms, factors)
    period = d2d_period(net.d2d_bw_ratio) if net.crosses > 0 else 0
    windows = tuple(
        w
        for w in (
            _window_tuple("gemm", info["gemm"], period),
            _window_tuple("a2a", info["a2a"], period),
            _window_tuple("reticle", info["reticle"], d2d_period(net.d2d_bw_ratio)),
        )
        if w is not None
    )
    fl = lambda xs: tuple(float(x) for x in np.asarray(xs).reshape(-1))  # noqa: E731
    cost = F1Cost(
        sim_cycles=int(ctr.sim_cycles),
        router_cycles=int(ctr.router_cycles),
        wall_s=time.perf_counter() - t0,
        compile_s=ctr.compile_s,
        sim_s=ctr.sim_s,
        n_runs=ctr.n_runs,
        n_compiles=ctr.n_compiles,
        gemm_rho=fl(info["rho"]),
        gemm_factor=fl(info["gemm_bw"]),
        gemm_wait_cycles=fl(np.concatenate([np.atleast_1d(w) for w in factors.gemm_wait_cycles])),
        f0_gemm_wait_cycles=fl(np.concatenate([np.atleast_1d(w) for w in f0.gemm_wait_cycles])),
        core_sat=float(info["core_sat"]),
        a2a_factor=float(factors.a2a_bw),
        reticle_factor=float(factors.reticle_bw),
        windows=windows,
    )
    return metrics, cost


def _main_time(m) -> float:
    return float(np.asarray(m.total_time_s if hasattr(m, "total_time_s") else m.step_time_s))


def _f0_factors(terms) -> NetworkFactors:
    return analytic_factors(terms.streams, terms.eta_reticle)


_f0_factors_jit = jax.jit(_f0_factors)
