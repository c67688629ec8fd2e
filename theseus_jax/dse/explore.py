r"""Design-space exploration of wafer-scale chips: multi-fidelity BO and baselines, durable.

The problem (:func:`make_problem`): LLM training on a design space; two objectives,
throughput (tokens/s, maximised) and power (W, minimised), measured at F1 (F0's compute and
memory model plus the simulated network, :func:`~theseus_jax.fidelity.evaluate_f1`) under
the mapping F0 finds best for each design. Candidates come from a pool of ``pool`` legal
designs sampled from the space and screened by F0 in one batched call: designs F0 finds
infeasible never reach F1 (F0's feasibility verdict is exact for memory, power, area and
yield; the network does not change it).

Cost: F0 and F1 have declared costs in seconds, so a run is reproducible: an F0 evaluation
(full mapping search of one design) costs ``F0_COST_S`` and an F1 evaluation its simulated
router-cycles divided by ``SIM_RATE`` (router-cycles per second of the simulator on a 2-core
CPU, ``scripts/bench_sim.py``). The pool's F0 screening is charged to every method.

Methods (all in the same harness, :func:`run_explore`):

* ``mfbo`` -- multi-fidelity BO (:mod:`theseus_jax.bo`) with exact 2-D EHVI; the surrogate
  fuses F0 and F1 either with F0 as the GP's prior mean (``surrogate="f0mean"``: the GP
  models F1 - F0 over log objectives) or by AR(1) co-kriging with F0 as the low level
  (``surrogate="ar1"``; the acquisition then picks the fidelity by variance reduction per
  cost). With ``f0mean`` the initial F1 design is chosen by F0 too: each initial point is
  the pool design whose F0 objectives add the most hypervolume to the F1 front found so far
  (the EHVI of a posterior that trusts F0 exactly, :func:`greedy_hv_pick`); the GP then
  learns F1 - F0 from these points. mfbo is cost-aware: F1's windows and run lengths follow
  from F0's loads, so each design's F1 cost is known before simulating
  (:func:`~theseus_jax.fidelity.f1_planned_cost`) and the acquisition is per unit of it;
* ``sfbo`` -- single-fidelity BO on F1 alone (same GP and acquisition, no F0 information
  beyond feasibility);
* ``random`` -- random F0-feasible pool designs at F1;
* ``nsga2`` -- NSGA-II (:mod:`theseus_jax.dse.nsga2`) whose offspring snap to the nearest
  unevaluated pool design;
* ``f0`` -- the F0-only optimum: the pool ordered by F0 alone (greedy F0 hypervolume gain
  per planned F1 cost, :func:`greedy_hv_pick` with F0 values throughout; then by F0
  throughput) and evaluated at F1 in that order, with no feedback from F1.

Durable runs: every evaluation is written to ``RUN_DIR/run.sqlite``
(:class:`~theseus_jax.dse.store.RunStore`) as it completes. :func:`run_explore` with
``resume=True`` rebuilds the problem from the stored configuration, replays the stored
evaluations through the method's deterministic ``ask``/``tell`` (checking that each replayed
proposal is the stored one) and continues: nothing is evaluated twice or lost, and the run
ends in the same state as an uninterrupted one with the same seed.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ._report import hypervolume_trace, summarise
from .pareto import hypervolume_2d, pareto_mask
from .store import DB_NAME, RunLock, RunStore

__all__ = [
    "ExploreConfig",
    "Problem",
    "greedy_hv_pick",
    "make_problem",
    "run_explore",
    "METHODS",
    "F0_COST_S",
    "SIM_RATE",
    "hypervolume_trace",
]

METHODS = ("mfbo", "sfbo", "random", "nsga2", "f0")
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
        method: one of :data:`METHODS`.
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
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
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

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(d: dict) -> ExploreConfig:
        return ExploreConfig(**d)


# ---------------------------------------------------------------------------------------------
# The problem: pool, F0 screening, F1 evaluation
# ---------------------------------------------------------------------------------------------


class Problem:
    """A WSC exploration problem on a fixed F0-screened pool (host-side object).

    Attributes:
        space, workload, tech: the loaded objects.
        unit: ``(P, d)`` unit-cube coordinates of the F0-feasible pool designs.
        designs: the batched :class:`~theseus_jax.WaferDesign` of those designs.
        f0_tput, f0_power: ``(P,)`` F0 throughput (tokens/s) and power (W).
        mappings: F0's best mapping of each pool design (batched ``Mapping``).
        screened: designs sampled (feasible or not); screen_cost_s: their F0 cost.
        ref: hypervolume reference ``(throughput, power)`` (F0 pool minimum / maximum).
    """

    def __init__(self, cfg: ExploreConfig, *, chunk: int = 256):
        from .. import load_space, load_tech, load_training_workload
        from ..fidelity import F1Cache
        from ..metrics._evaluate import default_mappings, make_evaluator

        self.cfg = cfg
        # this problem's compiled F1 simulators (bounded LRU), shared by its evaluations
        self.sim_cache = F1Cache()
        self.tech = load_tech(cfg.tech)
        self.workload = load_training_workload(cfg.workload)
        self.space = load_space(cfg.space, tech=self.tech)
        key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 17)
        ds = self.space.sample(key, cfg.pool)
        maps = default_mappings(ds, self.workload)
        ev = make_evaluator(self.workload, mappings=maps, tech=self.tech)
        take = lambda t, sl: jax.tree_util.tree_map(lambda a: a[sl], t)  # noqa: E731
        chunk = min(chunk, cfg.pool)
        feas, tput, power, midx = [], [], [], []
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
            midx.append(np.asarray(r.mapping_index)[:n])
        feas = np.concatenate(feas)
        ok = np.nonzero(feas)[0]
        if ok.size < 4:
            raise ValueError(
                f"only {ok.size} of {cfg.pool} sampled designs are F0-feasible for "
                f"{cfg.workload}: raise --pool or relax the space"
            )
        self.screened = int(cfg.pool)
        self.screen_cost_s = cfg.pool * F0_COST_S
        self.designs = take(ds, ok)
        self.unit = np.asarray(self.space.to_unit(self.designs), float)
        self.f0_tput = np.concatenate(tput)[ok]
        self.f0_power = np.concatenate(power)[ok]
        self.mappings = take(maps, np.concatenate(midx)[ok])
        self.table = maps
        self.ref = (float(self.f0_tput.min()) * 0.5, float(self.f0_power.max()) * 1.5)
        self._f1_cache: dict[int, dict] = {}
        self._planned: np.ndarray | None = None

    @property
    def f1_planned_cost_s(self) -> np.ndarray:
        """Declared F1 cost (s) of each pool design, known before simulating
        (:func:`~theseus_jax.fidelity.f1_planned_cost`; the evaluation may add one run)."""
        if self._planned is None:
            from ..fidelity import f1_planned_cost

            rc = f1_planned_cost(
                self.designs,
                self.workload,
                self.tech,
                mapping=self.mappings,
                max_cycles=self.cfg.f1_max_cycles,
            )
            self._planned = np.maximum(np.asarray(rc, float), 1.0) / SIM_RATE
        return self._planned

    @property
    def size(self) -> int:
        return int(self.unit.shape[0])

    def design(self, i: int):
        return jax.tree_util.tree_map(lambda a: a[i], self.designs)

    def mapping(self, i: int):
        return jax.tree_util.tree_map(lambda a: a[i], self.mappings)

    def design_dict(self, i: int) -> dict:
        d = self.design(i)
        return {k: float(np.asarray(getattr(d, k))) for k in self.space.names}

    def f0(self, i: int) -> dict:
        """F0 result of pool design ``i`` (already computed by the screening)."""
        return dict(
            tokens_per_s=float(self.f0_tput[i]),
            power_w=float(self.f0_power[i]),
            feasible=True,
            violations=0,
            cost_s=F0_COST_S,
            wall_s=0.0,
        )

    def f1_design(self, design, mapping, seed: int) -> dict:
        """F1 result of any design under ``mapping`` (not cached)."""
        from ..fidelity import evaluate_f1

        t = time.perf_counter()
        m, c = evaluate_f1(
            design,
            self.workload,
            self.tech,
            mapping=mapping,
            seed=seed,
            max_cycles=self.cfg.f1_max_cycles,
            cache=self.sim_cache,
        )
        return dict(
            tokens_per_s=float(m.tokens_per_s),
            power_w=float(m.power_w),
            feasible=bool(m.feasible),
            violations=int(m.violations),
            cost_s=c.router_cycles / SIM_RATE,
            wall_s=time.perf_counter() - t,
            step_time_s=float(m.step_time_s),
            router_cycles=int(c.router_cycles),
            n_compiles=int(c.n_compiles),
        )

    def f1(self, i: int) -> dict:
        """F1 result of pool design ``i`` (deterministic: the simulator seed is the index;
        cached, so methods sharing a problem simulate a design once)."""
        if i in self._f1_cache:
            return dict(self._f1_cache[i], wall_s=0.0, cached=True)
        out = self.f1_design(self.design(i), self.mapping(i), seed=i)
        self._f1_cache[i] = out
        return out


# the configuration fields that define a Problem (the rest configure the search)
PROBLEM_KEYS = ("space", "workload", "tech", "seed", "pool", "f1_max_cycles")


def make_problem(cfg: ExploreConfig) -> Problem:
    """A new :class:`Problem` of a configuration (F0-screens the pool: seconds to a minute).

    Nothing is cached behind the caller's back: to share one problem (and its F1 results)
    between runs, keep the object and pass it to :func:`run_explore` as ``problem=``.
    """
    return Problem(cfg)


def _problem_key(cfg: ExploreConfig) -> tuple:
    return tuple(getattr(cfg, k) for k in PROBLEM_KEYS)


def _log_obj(tput, power) -> np.ndarray:
    """GP objectives (maximised): log10 tokens/s and -log10 W."""
    return np.stack([np.log10(np.maximum(tput, 1e-30)), -np.log10(np.maximum(power, 1e-30))], -1)


# ---------------------------------------------------------------------------------------------
# Methods: ask/tell over pool indices
# ---------------------------------------------------------------------------------------------


def greedy_hv_pick(cand_pts, front_pts, taken=None, cost=None) -> tuple[int, float]:
    """The candidate that adds the most 2-D hypervolume to a front (per unit cost).

    Points are ``(a, b)`` rows with ``a`` maximised and ``b`` minimised, against the
    reference ``(0, 0)`` (explore's decades, :func:`hypervolume_trace`).

    Args:
        cand_pts: ``(M, 2)`` candidate points.
        front_pts: ``(K, 2)`` points already held (any K >= 0; dominated ones are harmless).
        taken: optional ``(M,)`` bool mask of candidates that may not be picked.
        cost: optional ``(M,)`` positive cost of evaluating each candidate.

    Returns:
        ``(index, gain)``: the first candidate of largest ``gain / cost`` (cost 1 if not
        given), with ``gain = HV(front + c) - HV(front)`` (decades^2); ``gain`` is 0 when no
        candidate improves the front, -inf when all are taken.
    """
    cand = np.asarray(cand_pts, float).reshape(-1, 2)
    front = np.asarray(front_pts, float).reshape(-1, 2)
    ok = np.ones(cand.shape[0], bool) if taken is None else ~np.asarray(taken, bool)
    if front.shape[0]:
        front = front[pareto_mask(front[:, 0], front[:, 1])]
    base = hypervolume_2d(front[:, 0], front[:, 1], 0.0, 0.0) if front.shape[0] else 0.0
    gain = np.full(cand.shape[0], -np.inf)
    for j in np.nonzero(ok)[0]:
        # a candidate dominated by the front (or outside the reference box) adds nothing
        if cand[j, 0] <= 0.0 or cand[j, 1] >= 0.0:
            gain[j] = 0.0
            continue
        if front.shape[0] and np.any((front[:, 0] >= cand[j, 0]) & (front[:, 1] <= cand[j, 1])):
            gain[j] = 0.0
            continue
        a = np.concatenate([front, cand[j : j + 1]])
        gain[j] = hypervolume_2d(a[:, 0], a[:, 1], 0.0, 0.0) - base
    c = np.ones(cand.shape[0]) if cost is None else np.asarray(cost, float).reshape(-1)
    j = int(np.argmax(np.where(np.isfinite(gain), gain / c, -np.inf)))
    return j, float(gain[j])


def _decades(tput, power, ref) -> np.ndarray:
    """``(log10(tokens/s / ref0), log10(W / ref1))`` rows (the hypervolume's coordinates)."""
    t = np.log10(np.maximum(np.asarray(tput, float), 1e-30) / ref[0])
    p = np.log10(np.maximum(np.asarray(power, float), 1e-30) / ref[1])
    return np.stack([np.atleast_1d(t), np.atleast_1d(p)], -1)


def _cost_aware(cfg: ExploreConfig) -> bool:
    return cfg.method in ("mfbo", "f0") if cfg.cost_aware is None else bool(cfg.cost_aware)


class _Driver:
    """A method as ``ask() -> [(pool index, fidelity), ...]`` / ``tell(results)`` over the
    pool; deterministic given the configuration (its randomness comes from the seed)."""

    def __init__(self, cfg: ExploreConfig, prob: Problem):
        self.cfg, self.prob = cfg, prob
        self.evaluated: set[int] = set()  # pool indices evaluated at F1
        self.f0_told: set[int] = set()

    def _candidates(self):
        """Pool coordinates with already-evaluated designs replaced by an unevaluated one
        (one fixed shape: the BO engine does not recompile), and the index map."""
        idx = np.arange(self.prob.size)
        free = np.array([i for i in idx if i not in self.evaluated])
        if free.size == 0:
            return None, None
        fill = np.where(np.isin(idx, list(self.evaluated)), free[0], idx)
        return self.prob.unit[fill], fill


class _BODriver(_Driver):
    def __init__(self, cfg, prob, *, use_f0: bool, kernel: str):
        super().__init__(cfg, prob)
        from ..bo import MFBOConfig, make_mfbo

        self.use_f0, self.kernel = use_f0, kernel
        n_fid = 2 if kernel == "ar1" else 1
        # declared costs per level (F0, F1): an F1 evaluation of a typical window set
        f1_typ = 2.0e6 / SIM_RATE
        costs = (F0_COST_S, f1_typ) if n_fid == 2 else (f1_typ,)
        d = prob.unit.shape[1]
        n_init = (4 * cfg.n_init, cfg.n_init) if n_fid == 2 else (cfg.n_init,)
        self.opt = make_mfbo(
            MFBOConfig(
                dim=d,
                n_fidelities=n_fid,
                costs=costs,
                kernel="ar1" if n_fid == 2 else "single",
                objective="ehvi",
                n_objectives=2,
                q=cfg.q,
                n_init=n_init,
                # EHVI against the hypervolume's own reference (the engine's default, just
                # below the observed minimum, gives no credit for extending the front)
                ref_point=tuple(float(v) for v in _log_obj(*prob.ref)),
            )
        )
        self.state = self.opt.init(jax.random.PRNGKey(cfg.seed))
        self._pm = _log_obj(prob.f0_tput, prob.f0_power)
        # f0mean: the initial F1 design is F0's greedy hypervolume picks (module docstring)
        self._n_f0_init = cfg.n_init if use_f0 else 0
        self._f0_pts = _decades(prob.f0_tput, prob.f0_power, prob.ref)
        self._f1_pts: list = []  # decades of the feasible F1 results told so far
        # cost-aware (mfbo by default): F1's run lengths follow from F0's loads
        self._cost = prob.f1_planned_cost_s if _cost_aware(cfg) else None

    def _f0_init(self):
        taken = np.zeros(self.prob.size, bool)
        taken[list(self.evaluated)] = True
        front = list(self._f1_pts)
        out = []
        while len(out) < self.cfg.q and not taken.all():
            j, _ = greedy_hv_pick(self._f0_pts, np.asarray(front).reshape(-1, 2), taken, self._cost)
            out.append((j, "f1"))
            taken[j] = True
            front.append(self._f0_pts[j])  # believer: F0's value until F1 is told
        return out

    def ask(self):
        if len(self.evaluated) < self._n_f0_init:
            return self._f0_init()
        cand, fill = self._candidates()
        if cand is None:
            return []
        pm = self._pm[fill] if self.use_f0 else None
        cost = None if self._cost is None else self._cost[fill]
        prop = self.opt.ask(self.state, jnp.asarray(cand, jnp.float32), prior_mean=pm, cost=cost)
        out = []
        for x, f, j in zip(
            np.asarray(prop.x), np.asarray(prop.fidelity), np.asarray(prop.index), strict=True
        ):
            i = int(fill[j]) if j >= 0 else int(np.argmin(np.sum((cand - x) ** 2, -1)))
            lvl = "f1" if (self.kernel != "ar1" or int(f) == 1) else "f0"
            out.append((i, lvl))
        return out

    def tell(self, results):
        xs, fids, ys, pms = [], [], [], []
        for i, lvl, r in results:
            xs.append(self.prob.unit[i])
            fids.append(1 if (lvl == "f1" and self.kernel == "ar1") else 0)
            ys.append(_log_obj(np.asarray(r["tokens_per_s"]), np.asarray(r["power_w"])))
            pms.append(self._pm[i])
            if lvl == "f1":
                self.evaluated.add(i)
                if r["feasible"]:
                    self._f1_pts.append(_decades(r["tokens_per_s"], r["power_w"], self.prob.ref)[0])
        pm = np.asarray(pms) if self.use_f0 else None
        self.state = self.opt.tell(
            self.state,
            jnp.asarray(np.asarray(xs), jnp.float32),
            jnp.asarray(np.asarray(fids), jnp.int32),
            jnp.asarray(np.asarray(ys), jnp.float32),
            prior_mean=pm,
        )


class _RandomDriver(_Driver):
    def __init__(self, cfg, prob):
        super().__init__(cfg, prob)
        self.rng = np.random.default_rng(cfg.seed)
        self.order = self.rng.permutation(prob.size)
        self.pos = 0

    def ask(self):
        out = []
        while len(out) < self.cfg.q and self.pos < self.order.size:
            out.append((int(self.order[self.pos]), "f1"))
            self.pos += 1
        return out

    def tell(self, results):
        for i, _, _ in results:
            self.evaluated.add(i)


class _F0Driver(_Driver):
    """The pool in F0's order: greedy F0 hypervolume gain while it is positive, then the rest
    by F0 throughput; evaluated at F1 without feedback."""

    def __init__(self, cfg, prob):
        super().__init__(cfg, prob)
        pts = _decades(prob.f0_tput, prob.f0_power, prob.ref)
        taken = np.zeros(prob.size, bool)
        order: list[int] = []
        cost = prob.f1_planned_cost_s if _cost_aware(cfg) else None
        while not taken.all():
            j, gain = greedy_hv_pick(pts, pts[order], taken, cost)
            if gain <= 0.0:
                break
            order.append(j)
            taken[j] = True
        rest = [int(i) for i in np.argsort(-prob.f0_tput, kind="stable") if not taken[i]]
        self.order = np.asarray(order + rest, int)
        self.n_greedy = len(order)
        self.pos = 0

    ask = _RandomDriver.ask
    tell = _RandomDriver.tell


class _NSGA2Driver(_Driver):
    def __init__(self, cfg, prob):
        super().__init__(cfg, prob)
        from .nsga2 import nsga2

        self.alg = nsga2(prob.unit.shape[1], 2, pop_size=cfg.nsga2_pop)
        self.state = self.alg.init(jax.random.PRNGKey(cfg.seed))
        self.pending: list = []
        self.batch: list = []

    def ask(self):
        if not self.pending:
            if self.batch:
                self._tell_generation()
            off = np.asarray(self.alg.ask(self.state))
            taken = set(self.evaluated)
            picks = []
            for x in off:
                d = np.sum((self.prob.unit - x) ** 2, -1)
                for j in np.argsort(d, kind="stable"):
                    if int(j) not in taken:
                        picks.append(int(j))
                        taken.add(int(j))
                        break
            if not picks:
                return []
            self.pending = picks
        out, self.pending = self.pending[: self.cfg.q], self.pending[self.cfg.q :]
        return [(i, "f1") for i in out]

    def tell(self, results):
        for i, _, r in results:
            self.evaluated.add(i)
            self.batch.append((i, r))

    def _tell_generation(self):
        idx = [i for i, _ in self.batch]
        obj = np.array([[-r["tokens_per_s"], r["power_w"]] for _, r in self.batch], float)
        obj = np.stack([-np.log10(-obj[:, 0]), np.log10(obj[:, 1])], -1)  # minimised
        feas = np.array([r["feasible"] for _, r in self.batch], bool)
        self.state = self.alg.tell(self.state, self.prob.unit[idx], obj, feasible=feas)
        self.batch = []


def _driver(cfg: ExploreConfig, prob: Problem) -> _Driver:
    if cfg.method == "mfbo":
        return _BODriver(cfg, prob, use_f0=cfg.surrogate == "f0mean", kernel=cfg.surrogate)
    if cfg.method == "sfbo":
        return _BODriver(cfg, prob, use_f0=False, kernel="single")
    if cfg.method == "random":
        return _RandomDriver(cfg, prob)
    if cfg.method == "f0":
        return _F0Driver(cfg, prob)
    return _NSGA2Driver(cfg, prob)


# ---------------------------------------------------------------------------------------------
# The run loop
# ---------------------------------------------------------------------------------------------


class RunDiverged(RuntimeError):
    """A resumed run proposed something other than what the database holds."""


def run_explore(
    cfg: ExploreConfig | None,
    run_dir,
    *,
    resume: bool = False,
    progress=None,
    stop_after: int | None = None,
    problem: Problem | None = None,
) -> dict:
    """Run (or resume) an exploration; every evaluation goes to ``run_dir/run.sqlite``.

    Args:
        cfg: the configuration (ignored, may be None, when resuming: the stored one is used).
        run_dir: run directory.
        resume: continue the run stored in ``run_dir``.
        progress: ``callable(str)`` for progress lines (default: silent).
        stop_after: stop after this many evaluations in total (testing / time slicing).
        problem: a :class:`Problem` the caller already built (and may share between runs,
            with its F1 results); it must be the problem of the run's configuration
            (``PROBLEM_KEYS``). Default: a new one.

    Returns:
        A summary dict (also written to ``run_dir/summary.json``).
    """
    log = progress or (lambda s: None)
    run_dir = Path(run_dir)
    if not resume:
        if cfg is None:
            raise ValueError("run_explore needs a configuration for a new run")
        # bad names (and a foreign problem=) fail here, before a run directory is created
        problem = _check_problem(problem if problem is not None else make_problem(cfg), cfg)
    elif not (run_dir / DB_NAME).exists():
        RunStore.open(run_dir)  # the one-line "no run database" error, before any lock file
    # one writer per run directory: a second process gets RunBusy, not interleaved rows
    with RunLock(run_dir):
        if resume:
            store = RunStore.open(run_dir)
            cfg = ExploreConfig.from_json(store.config())
            try:
                problem = _check_problem(problem if problem is not None else make_problem(cfg), cfg)
            except BaseException:
                store.close()
                raise
        else:
            store = RunStore.create(run_dir, cfg.to_json())
        return _run_locked(cfg, run_dir, store, log, stop_after, problem)


def _check_problem(problem: Problem, cfg: ExploreConfig) -> Problem:
    """``problem`` if it is the problem of ``cfg`` (same ``PROBLEM_KEYS``), else an error."""
    got, want = _problem_key(problem.cfg), _problem_key(cfg)
    diff = [
        f"{k}: {a!r} (run: {b!r})"
        for k, a, b in zip(PROBLEM_KEYS, got, want, strict=True)
        if a != b
    ]
    if diff:
        raise ValueError(f"problem= is not this run's problem: {', '.join(diff)}")
    return problem


def _run_locked(cfg, run_dir, store, log, stop_after, prob) -> dict:
    """The body of :func:`run_explore`, with the run directory locked."""
    t0 = time.perf_counter()
    try:
        drv = _driver(cfg, prob)
        stored = store.evaluations()
        k = 0  # next stored record to replay
        spent = prob.screen_cost_s
        it = 0
        n_total = 0
        log(
            f"{cfg.method} on {cfg.space} x {cfg.workload}: pool {prob.size} F0-feasible of "
            f"{prob.screened}, budget {cfg.budget_s:g} s declared F1 cost"
            + (f", replaying {len(stored)} stored evaluations" if stored else "")
        )
        while spent < prob.screen_cost_s + cfg.budget_s:
            props = drv.ask()
            if not props:
                log("pool exhausted")
                break
            results = []
            for i, lvl in props:
                if k < len(stored):
                    rec = stored[k]
                    if rec.extra.get("pool_index") != i or rec.extra.get("level") != lvl:
                        raise RunDiverged(
                            f"evaluation {rec.seq}: the database holds pool design "
                            f"{rec.extra.get('pool_index')} at {rec.extra.get('level')}, the "
                            f"resumed run proposes {i} at {lvl} (was the code or the "
                            "environment changed since the run started?)"
                        )
                    r = dict(rec.extra["result"])
                    k += 1
                else:
                    r = prob.f1(i) if lvl == "f1" else prob.f0(i)
                    store.append(
                        iteration=it,
                        method=cfg.method,
                        fidelity=1 if lvl == "f1" else 0,
                        x_unit=prob.unit[i],
                        design=prob.design_dict(i),
                        objectives=(r["tokens_per_s"], r["power_w"]),
                        feasible=r["feasible"],
                        violations=r["violations"],
                        cost=r["cost_s"],
                        wall_s=r["wall_s"],
                        extra=dict(pool_index=i, level=lvl, result=r),
                    )
                    if lvl == "f1":
                        log(
                            f"[{it:3d}] F1 design {i:5d}: {r['tokens_per_s']:.4g} tok/s, "
                            f"{r['power_w'] / 1e3:.3g} kW, cost {r['cost_s']:.1f} s "
                            f"(wall {r['wall_s']:.1f} s); spent "
                            f"{spent + r['cost_s'] - prob.screen_cost_s:.1f}/{cfg.budget_s:g} s"
                        )
                spent += r["cost_s"]
                results.append((i, lvl, r))
                n_total += 1
                if stop_after is not None and n_total >= stop_after:
                    break
            drv.tell(results)
            it += 1
            if stop_after is not None and n_total >= stop_after:
                break
        refined = []
        if (
            cfg.refine
            and cfg.method in ("mfbo", "sfbo")
            and (stop_after is None or n_total < stop_after)
        ):
            refined = _refine_stage(cfg, prob, store, stored[k:], it, log)
        summary = summarise(cfg, prob, store, run_dir, time.perf_counter() - t0)
        summary["refinement"] = refined
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        log(
            f"done: {summary['n_f1']} F1 evaluations, declared F1 cost "
            f"{summary['f1_cost_s']:.1f} s, hypervolume {summary['hypervolume']:.4g}, "
            f"{summary['n_pareto']} Pareto designs -> {run_dir}"
        )
        return summary
    finally:
        store.close()


def _refine_stage(cfg, prob, store, pending, it, log) -> list[dict]:
    """Gradient refinement of the run's best F1 designs (see ``ExploreConfig.refine``);
    replays stored refinement evaluations when resuming."""
    from .refine import refine

    f1 = [r for r in store.evaluations() if r.fidelity == 1 and r.feasible]
    f1 = [r for r in f1 if r.extra.get("level") == "f1"]
    if not f1:
        return []
    by_tput = max(f1, key=lambda r: r.objectives[0])
    by_ppw = max(f1, key=lambda r: r.objectives[0] / r.objectives[1])
    picks = [(by_tput, "time")]
    if by_ppw.seq != by_tput.seq:
        picks.append((by_ppw, "perf_per_watt"))
    out = []
    for j, (rec, objective) in enumerate(picks):
        i = int(rec.extra["pool_index"])
        res = refine(
            jax.tree_util.tree_map(lambda a, i=i: a[i : i + 1], prob.designs),
            prob.workload,
            prob.space,
            prob.tech,
            mappings=prob.table,
            steps=cfg.refine_steps,
            objective=objective,
        )
        improved = bool(np.asarray(res.improved)[0])
        row = dict(
            pool_index=i,
            objective=objective,
            f0_objective_start=float(np.asarray(res.objective_start)[0]),
            f0_objective=float(np.asarray(res.objective)[0]),
            improved=improved,
            legal=bool(np.asarray(res.legal)[0]),
            feasible=bool(np.asarray(res.feasible)[0]),
            f1_start=dict(tokens_per_s=rec.objectives[0], power_w=rec.objectives[1]),
        )
        if improved:
            d = jax.tree_util.tree_map(lambda a: a[0], res.designs)
            mi = int(np.asarray(res.mapping_index)[0])
            mp = jax.tree_util.tree_map(lambda a, mi=mi: a[mi], prob.table)
            if pending:
                stored = pending.pop(0)
                if stored.extra.get("level") != "refine" or stored.extra.get("refine_index") != j:
                    raise RunDiverged(
                        f"evaluation {stored.seq}: expected refinement {j} in the database"
                    )
                r = dict(stored.extra["result"])
            else:
                r = prob.f1_design(d, mp, seed=10**6 + i)
                dd = {k: float(np.asarray(getattr(d, k))) for k in prob.space.names}
                store.append(
                    iteration=it,
                    method=cfg.method,
                    fidelity=1,
                    x_unit=np.asarray(prob.space.to_unit(d), float).reshape(-1),
                    design=dd,
                    objectives=(r["tokens_per_s"], r["power_w"]),
                    feasible=r["feasible"],
                    violations=r["violations"],
                    cost=r["cost_s"],
                    wall_s=r["wall_s"],
                    extra=dict(level="refine", refine_index=j, pool_index=-1, result=r),
                )
            row["f1"] = dict(tokens_per_s=r["tokens_per_s"], power_w=r["power_w"])
            log(
                f"refined design {i} for {objective}: F0 {row['f0_objective_start']:.4g} -> "
                f"{row['f0_objective']:.4g}; F1 {rec.objectives[0]:.4g} tok/s "
                f"{rec.objectives[1] / 1e3:.3g} kW -> {r['tokens_per_s']:.4g} tok/s "
                f"{r['power_w'] / 1e3:.3g} kW"
            )
        else:
            log(f"refinement of design {i} for {objective}: no legal improvement, kept")
        out.append(row)
    return out
