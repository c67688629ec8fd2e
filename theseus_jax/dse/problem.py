r"""The training exploration problem: its configuration and its F0-screened pool.

:class:`ExploreConfig` is everything that defines a run (stored as JSON in the run
database). :func:`make_problem` builds the :class:`Problem` of a configuration once: it
samples ``pool`` legal designs, screens them at F0 in one batched call (designs F0 finds
infeasible never reach F1) and keeps the F0-feasible ones with their best mapping. The
problem is immutable; methods, the run loop and the report read it.

Coordinates of the objectives (host side):

* :func:`log_objectives` -- the GP's objectives, both maximised: ``(log10 tokens/s,
  -log10 W)``;
* :func:`decades` -- the hypervolume's: ``(log10(tokens/s / ref0), log10(W / ref1))`` against
  the reference ``ref`` (half the pool's lowest F0 throughput, 1.5x its highest F0 power).

Declared costs: an F0 evaluation (full mapping search of one design) costs ``F0_COST_S``,
an F1 evaluation its simulated router-cycles divided by ``SIM_RATE``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..fidelity import F1Cache, F1Point, evaluate_f1_many
from ..io import load_tech
from ..metrics._evaluate import default_mappings, make_evaluator
from ..space import load_space
from ..workload import load_training_workload
from .evaluation import Evaluation

__all__ = [
    "ExploreConfig",
    "Problem",
    "make_problem",
    "PROBLEM_KEYS",
    "METHOD_NAMES",
    "SURROGATES",
    "F0_COST_S",
    "SIM_RATE",
    "decades",
    "log_objectives",
]

METHOD_NAMES = ("mfbo", "sfbo", "random", "nsga2", "f0")
SURROGATES = ("f0mean", "ar1")
# Declared costs. F0: ~400 designs/s with the full mapping search of GPT-3 175B on a 2-core
# CPU (scripts/bench_eval.py (a)); F1: simulated router-cycles at the simulator's 2-core CPU
# rate (scripts/bench_sim.py: 4-5e5 router-cycles/s).
F0_COST_S = 1.0 / 400.0
SIM_RATE = 4.0e5


@dataclass(frozen=True)
class ExploreConfig:
    """Everything that defines a run (stored as JSON in the run database).

    Attributes:
        space, workload, tech: names (or paths) of the design space, training workload and
            technology.
        method: one of :data:`METHOD_NAMES` (the keys of
            :data:`~theseus_jax.dse.methods.METHODS`).
        surrogate: ``"f0mean"`` or ``"ar1"`` (``mfbo`` only).
        budget_s: declared F1 cost to spend (seconds, see module docstring); the run stops at
            the first evaluation that reaches it.
        seed: seed of the pool, the method and the simulator.
        pool: designs sampled for the F0-screened candidate pool.
        q: designs per proposal (parallel F1 evaluations).
        f1_max_cycles: longest simulation run of an F1 evaluation.
        nsga2_pop: NSGA-II population.
        n_init: F1 points of the BO methods' initial design (LHS for ``sfbo``, F0's greedy
            hypervolume picks for ``mfbo`` with ``f0mean``; AR(1) adds ``4 n_init`` F0 points).
            The engine's own default, ``2 (d + 1)``, would spend a small budget on it alone.
        refine: after a BO run, refine the continuous knobs of its best designs by gradient
            through F0 (:func:`~theseus_jax.dse.refine.refine`: the highest-throughput F1
            design for step time, the best tokens/s/W one for perf/W), snap to the grid,
            re-check and evaluate the improved ones at F1 (charged beyond the budget).
        refine_steps: optimiser steps of the refinement.
        cost_aware: divide the acquisition (BO) or the F0 hypervolume gain (``f0``) by each
            design's planned F1 cost (:func:`~theseus_jax.fidelity.f1_planned_cost`, derived
            from F0's loads). None: on for ``mfbo`` and ``f0`` (they use F0), off for
            ``sfbo`` (F1 alone); ``random`` and ``nsga2`` ignore it.
    """

    space: str = "theseus_2024"
    workload: str = "gpt3-175b"
    tech: str = "n7"
    method: str = "mfbo"
    surrogate: str = "f0mean"
    budget_s: float = 60.0
    seed: int = 0
    pool: int = 1024
    q: int = 1
    f1_max_cycles: int = 16000
    nsga2_pop: int = 8
    n_init: int = 5
    refine: bool = True
    refine_steps: int = 60
    cost_aware: bool | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.method not in METHOD_NAMES:
            raise ValueError(f"method must be one of {METHOD_NAMES}, got {self.method!r}")
        if self.surrogate not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {self.surrogate!r}")
        if not self.budget_s > 0:
            raise ValueError(f"budget_s must be > 0 (declared F1 seconds), got {self.budget_s}")
        if self.pool < 8:
            raise ValueError(f"pool must be >= 8 designs, got {self.pool}")
        if self.q < 1:
            raise ValueError(f"q must be >= 1, got {self.q}")
        if self.n_init < 2:
            raise ValueError(f"n_init must be >= 2 (the GP needs two points), got {self.n_init}")
        if self.nsga2_pop < 4 or self.nsga2_pop % 2:
            raise ValueError(f"nsga2_pop must be an even number >= 4, got {self.nsga2_pop}")

    @property
    def is_cost_aware(self) -> bool:
        """Whether the method weighs designs by their planned F1 cost (see ``cost_aware``)."""
        if self.cost_aware is None:
            return self.method in ("mfbo", "f0")
        return bool(self.cost_aware)

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(d: dict) -> ExploreConfig:
        return ExploreConfig(**d)


# the configuration fields that define a Problem (the rest configure the search)
PROBLEM_KEYS = ("space", "workload", "tech", "seed", "pool", "f1_max_cycles")


def problem_key(cfg: ExploreConfig) -> tuple:
    """The values of :data:`PROBLEM_KEYS` of a configuration."""
    return tuple(getattr(cfg, k) for k in PROBLEM_KEYS)


def log_objectives(tput, power) -> np.ndarray:
    """GP objectives (maximised): ``(log10 tokens/s, -log10 W)`` rows."""
    return np.stack([np.log10(np.maximum(tput, 1e-30)), -np.log10(np.maximum(power, 1e-30))], -1)


def decades(tput, power, ref) -> np.ndarray:
    """``(log10(tokens/s / ref0), log10(W / ref1))`` rows (the hypervolume's coordinates)."""
    t = np.log10(np.maximum(np.asarray(tput, float), 1e-30) / ref[0])
    p = np.log10(np.maximum(np.asarray(power, float), 1e-30) / ref[1])
    return np.stack([np.atleast_1d(t), np.atleast_1d(p)], -1)


def _read_only(a) -> np.ndarray:
    """A read-only copy of an array (problem data is never changed in place)."""
    out = np.array(a, copy=True)
    out.flags.writeable = False
    return out


def _coords(x) -> tuple[float, ...]:
    """Unit-cube coordinates as a tuple of Python floats."""
    return tuple(float(v) for v in np.asarray(x, float).reshape(-1))


class _Memo:
    """Results a :class:`Problem` computes on demand, each a pure function of the problem's
    fields: F1 results of pool designs (by index), the planned F1 costs, the GPU reference."""

    def __init__(self):
        self.f1: dict[int, Evaluation] = {}
        self.planned: np.ndarray | None = None
        self.gpu: dict[str, Any] = {}


@dataclass(frozen=True, eq=False)
class Problem:
    """A WSC exploration problem on a fixed F0-screened pool (host side, immutable).

    Build it with :func:`make_problem`. Its data never changes after construction: the
    fields are frozen and the numpy arrays read-only. To derive a variant (e.g. a study that
    biases F0), use :func:`dataclasses.replace`, which builds a new problem with fresh
    caches.

    The one exception is caching. The problem owns ``sim_cache``, an
    :class:`~theseus_jax.fidelity.F1Cache` of compiled F1 simulators (bounded LRU) shared by
    its evaluations, and it is allowed to fill it. The problem also memoises the F1 result of
    each pool design it evaluated, the planned F1 costs and the GPU reference. Each of these
    is a pure function of the frozen fields, so filling a cache never changes a result; it
    only means that methods sharing one problem simulate a design once.

    Attributes:
        cfg: the :class:`ExploreConfig` it was built from (only :data:`PROBLEM_KEYS` matter).
        space, workload, tech: the loaded objects.
        designs: the batched :class:`~theseus_jax.WaferDesign` of the F0-feasible pool.
        unit: ``(P, d)`` unit-cube coordinates of those designs.
        f0_tput, f0_power: ``(P,)`` F0 throughput (tokens/s) and power (W).
        f0_peak_flops: ``(P,)`` system peak FLOP/s of each design (cost model's
            ``peak_flops``).
        mappings: F0's best mapping of each pool design (batched ``Mapping``).
        table: the mapping table the pool was screened with.
        screened: designs sampled (feasible or not); screen_cost_s: their F0 cost (s).
        ref: hypervolume reference ``(tokens/s, W)`` (F0 pool minimum / 2, maximum x 1.5).
        sim_cache: the problem's F1 simulator cache (filled by its F1 evaluations).
    """

    cfg: ExploreConfig
    space: Any
    workload: Any
    tech: Any
    designs: Any
    unit: np.ndarray
    f0_tput: np.ndarray
    f0_power: np.ndarray
    f0_peak_flops: np.ndarray
    mappings: Any
    table: Any
    screened: int
    screen_cost_s: float
    ref: tuple[float, float]
    sim_cache: Any = field(init=False, repr=False)
    _memo: _Memo = field(init=False, repr=False)

    def __post_init__(self):

        for k in ("unit", "f0_tput", "f0_power", "f0_peak_flops"):
            object.__setattr__(self, k, _read_only(np.asarray(getattr(self, k), float)))
        object.__setattr__(self, "ref", tuple(float(v) for v in self.ref))
        object.__setattr__(self, "sim_cache", F1Cache())
        object.__setattr__(self, "_memo", _Memo())

    def __repr__(self) -> str:
        c = self.cfg
        return (
            f"Problem({c.workload} on {c.space}, {self.size} F0-feasible of {self.screened}, "
            f"seed {c.seed})"
        )

    @property
    def size(self) -> int:
        """Number of F0-feasible pool designs."""
        return int(self.unit.shape[0])

    @property
    def f1_planned_cost_s(self) -> np.ndarray:
        """Declared F1 cost (s) of each pool design, known before simulating
        (:func:`~theseus_jax.fidelity.f1_planned_cost`; the evaluation may add one run)."""
        if self._memo.planned is None:
            from ..fidelity import f1_planned_cost

            rc = f1_planned_cost(
                self.designs,
                self.workload,
                self.tech,
                mapping=self.mappings,
                max_cycles=self.cfg.f1_max_cycles,
            )
            self._memo.planned = _read_only(np.maximum(np.asarray(rc, float), 1.0) / SIM_RATE)
        return self._memo.planned

    def design(self, i: int):
        return jax.tree_util.tree_map(lambda a: a[i], self.designs)

    def mapping(self, i: int):
        return jax.tree_util.tree_map(lambda a: a[i], self.mappings)

    def design_dict(self, i: int) -> dict:
        return self._params(self.design(i))

    def _params(self, design) -> dict:
        return {k: float(np.asarray(getattr(design, k))) for k in self.space.names}

    def f0(self, i: int) -> Evaluation:
        """F0 result of pool design ``i`` (already computed by the screening)."""
        return Evaluation(
            index=int(i),
            level="f0",
            tokens_per_s=float(self.f0_tput[i]),
            power_w=float(self.f0_power[i]),
            feasible=True,
            violations=0,
            cost_s=F0_COST_S,
            wall_s=0.0,
            x_unit=_coords(self.unit[i]),
            design=self.design_dict(i),
        )

    def f1_design(self, design, mapping, seed: int, *, index: int = -1, x_unit=None) -> Evaluation:
        """F1 result of any design under ``mapping`` (not memoised).

        Args:
            design, mapping: one design and the mapping to run it under.
            seed: the simulator's seed.
            index: its pool index (-1: a design outside the pool).
            x_unit: its unit-cube coordinates, if known (default: ``space.to_unit``).
        """
        (r,) = evaluate_f1_many([self._f1_point(design, mapping, seed)], cache=self.sim_cache)
        return self._f1_evaluation(r, design, index, x_unit)

    def _f1_point(self, design, mapping, seed: int) -> F1Point:
        return F1Point(design, self.workload, self.tech, mapping, seed, self.cfg.f1_max_cycles)

    def _f1_evaluation(self, result, design, index: int, x_unit) -> Evaluation:
        """The :class:`Evaluation` of an ``evaluate_f1`` result ``(metrics, cost)``."""
        m, c = result
        return Evaluation(
            index=int(index),
            level="f1",
            tokens_per_s=float(m.tokens_per_s),
            power_w=float(m.power_w),
            feasible=bool(m.feasible),
            violations=int(m.violations),
            cost_s=c.router_cycles / SIM_RATE,
            wall_s=float(c.wall_s),
            metrics=dict(
                step_time_s=float(m.step_time_s),
                router_cycles=int(c.router_cycles),
                n_compiles=int(c.n_compiles),
            ),
            x_unit=_coords(self.space.to_unit(design) if x_unit is None else x_unit),
            design=self._params(design),
        )

    def f1(self, i: int) -> Evaluation:
        """F1 result of pool design ``i`` (deterministic: the simulator seed is the index;
        memoised, so methods sharing a problem simulate a design once)."""
        return next(self.f1_many([i]))

    def f1_many(self, indices, executor=None) -> Iterator[Evaluation]:
        """F1 results of pool designs ``indices``, in that order, as each becomes available.

        Args:
            indices: pool indices.
            executor: from :func:`~theseus_jax.fidelity.open_f1_executor`: the designs not
                memoised yet are evaluated concurrently by its workers (each with its own
                simulator cache; ``n_compiles`` counts the worker's). None: one after the
                other in this process, with the problem's ``sim_cache``.

        The results are those of :meth:`f1` one index at a time, whatever the executor:
        each design's simulator seed is its index, and the order is ``indices``.
        """
        idx = [int(i) for i in indices]
        todo = [i for i in dict.fromkeys(idx) if i not in self._memo.f1]
        points = [self._f1_point(self.design(i), self.mapping(i), i) for i in todo]
        results = iter(
            evaluate_f1_many(points, executor=executor, cache=None if executor else self.sim_cache)
        )
        fresh = set(todo)
        for i in idx:
            if i in fresh:
                ev = self._f1_evaluation(next(results), self.design(i), i, self.unit[i])
                self._memo.f1[i] = ev
                fresh.discard(i)
                yield ev
            else:
                ev = self._memo.f1[i]
                yield ev._replace(wall_s=0.0, metrics={**ev.metrics, "cached": True})

    def gpu_reference(self) -> dict | None:
        """The GPU cluster of comparable peak FLOP/s on this workload, F0 with its best mapping
        (:func:`~theseus_jax.dse.gpu_reference`; the pool's median peak; memoised)."""
        if "ref" not in self._memo.gpu:
            from ._gpu_reference import gpu_reference

            self._memo.gpu["ref"] = gpu_reference(
                self.workload, float(np.median(self.f0_peak_flops))
            )
        return self._memo.gpu["ref"]


def make_problem(cfg: ExploreConfig, *, chunk: int = 256) -> Problem:
    """A new :class:`Problem` of a configuration (F0-screens the pool: seconds to a minute).

    Nothing is cached behind the caller's back: to share one problem (and its F1 results)
    between runs, keep the object and pass it to :func:`~theseus_jax.dse.run_explore` as
    ``problem=``.

    Args:
        cfg: the run's configuration (:data:`PROBLEM_KEYS` define the problem).
        chunk: designs per compiled F0 call (the last chunk is padded to it).
    """

    tech = load_tech(cfg.tech)
    workload = load_training_workload(cfg.workload)
    space = load_space(cfg.space, tech=tech)
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 17)
    ds = space.sample(key, cfg.pool)
    maps = default_mappings(ds, workload)
    ev = make_evaluator(workload, mappings=maps, tech=tech)
    take = lambda t, sl: jax.tree_util.tree_map(lambda a: a[sl], t)  # noqa: E731
    chunk = min(chunk, cfg.pool)
    feas, tput, power, peak, midx = [], [], [], [], []
    for s in range(0, cfg.pool, chunk):
        sl = slice(s, min(s + chunk, cfg.pool))
        part = take(ds, sl)
        n = int(np.asarray(part.clock_hz).shape[0])
        if n < chunk:  # pad to one compiled shape
            part = jax.tree_util.tree_map(
                lambda a, n=n: jnp.concatenate([a, jnp.repeat(a[-1:], chunk - n, 0)]), part
            )
        r = ev(part)
        feas.append(np.asarray(r.metrics.feasible)[:n])
        tput.append(np.asarray(r.metrics.tokens_per_s, float)[:n])
        power.append(np.asarray(r.metrics.power_w, float)[:n])
        peak.append(np.asarray(r.metrics.peak_flops, float)[:n])
        midx.append(np.asarray(r.mapping_index)[:n])
    ok = np.nonzero(np.concatenate(feas))[0]
    if ok.size < 4:
        raise ValueError(
            f"only {ok.size} of {cfg.pool} sampled designs are F0-feasible for "
            f"{cfg.workload}: raise --pool or relax the space"
        )
    designs = take(ds, ok)
    f0_tput = np.concatenate(tput)[ok]
    f0_power = np.concatenate(power)[ok]
    return Problem(
        cfg=cfg,
        space=space,
        workload=workload,
        tech=tech,
        designs=designs,
        unit=np.asarray(space.to_unit(designs), float),
        f0_tput=f0_tput,
        f0_power=f0_power,
        f0_peak_flops=np.concatenate(peak)[ok],
        mappings=take(maps, np.concatenate(midx)[ok]),
        table=maps,
        screened=int(cfg.pool),
        screen_cost_s=cfg.pool * F0_COST_S,
        ref=(float(f0_tput.min()) * 0.5, float(f0_power.max()) * 1.5),
    )
