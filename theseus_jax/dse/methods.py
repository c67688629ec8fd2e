r"""Exploration methods as ``(init, ask, tell)`` triples over the pool of a :class:`Problem`.

Each method is a :class:`Method` record of three functions with an explicit, immutable
state (a ``NamedTuple`` replaced at every step, never changed in place):

.. code-block:: python

    method = METHODS[cfg.method]
    state = method.init(cfg, problem, jax.random.PRNGKey(cfg.seed))
    while budget_left:
        proposals, state = method.ask(state)      # (Proposal(index, level), ...); () = done
        evaluations = [problem.f1(p.index) if p.level == "f1" else problem.f0(p.index)
                       for p in proposals]
        state = method.tell(state, evaluations)   # Evaluation records, in proposal order

Every method is deterministic given the configuration (its randomness comes from the key
or the seed), so replaying the stored evaluations of a run through ``ask``/``tell``
rebuilds its state (:func:`~theseus_jax.dse.run_explore` with ``resume=True``).

* ``mfbo`` -- multi-fidelity BO (:mod:`theseus_jax.bo`, exact 2-D EHVI) with F0 as the GP's
  prior mean (``surrogate="f0mean"``; the initial F1 designs are F0's greedy hypervolume
  picks, :func:`greedy_hv_pick`) or AR(1) co-kriging with F0 as the low level
  (``surrogate="ar1"``); cost-aware by default (acquisition per planned F1 second);
* ``sfbo`` -- the same GP and acquisition on F1 alone;
* ``random`` -- the pool in a random order (``numpy.random.default_rng(cfg.seed)``);
* ``nsga2`` -- NSGA-II (:mod:`theseus_jax.dse.nsga2`) whose offspring snap to the nearest
  unevaluated pool design;
* ``f0`` -- the pool in F0's order (greedy F0 hypervolume gain, per planned F1 cost by
  default, then F0 throughput), evaluated at F1 without feedback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..bo import MFBOConfig, make_mfbo
from .evaluation import Evaluation
from .pareto import hypervolume_2d, pareto_mask
from .problem import (
    F0_COST_S,
    METHOD_NAMES,
    SIM_RATE,
    ExploreConfig,
    Problem,
    decades,
    log_objectives,
)

__all__ = [
    "Method",
    "Proposal",
    "METHODS",
    "greedy_hv_pick",
    "BOSetup",
    "BOState",
    "OrderState",
    "NSGA2MethodState",
]


class Proposal(NamedTuple):
    """A design to evaluate: its pool index and the level (``"f0"`` or ``"f1"``)."""

    index: int
    level: str


class Method(NamedTuple):
    """An exploration method: ``init(cfg, problem, key) -> state``,
    ``ask(state) -> (proposals, state)`` (no proposals: the method is done),
    ``tell(state, evaluations) -> state`` (the evaluations of the last proposals, in order)."""

    init: Callable[[ExploreConfig, Problem, jax.Array], Any]
    ask: Callable[[Any], tuple[tuple[Proposal, ...], Any]]
    tell: Callable[[Any, Sequence[Evaluation]], Any]


def _read_only(a) -> np.ndarray:
    out = np.array(a, copy=True)
    out.flags.writeable = False
    return out


# ---------------------------------------------------------------------------------------------
# Greedy hypervolume
# ---------------------------------------------------------------------------------------------


def greedy_hv_pick(cand_pts, front_pts, taken=None, cost=None) -> tuple[int, float]:
    """The candidate that adds the most 2-D hypervolume to a front (per unit cost).

    Points are ``(a, b)`` rows with ``a`` maximised and ``b`` minimised, against the
    reference ``(0, 0)`` (explore's decades, :func:`~theseus_jax.dse.hypervolume_trace`).

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


def _candidates(problem: Problem, evaluated: frozenset):
    """Pool coordinates with already-evaluated designs replaced by an unevaluated one (one
    fixed shape: the BO engine does not recompile), and the index map."""
    idx = np.arange(problem.size)
    free = np.array([i for i in idx if i not in evaluated])
    if free.size == 0:
        return None, None
    fill = np.where(np.isin(idx, list(evaluated)), free[0], idx)
    return problem.unit[fill], fill


# ---------------------------------------------------------------------------------------------
# BO: mfbo and sfbo
# ---------------------------------------------------------------------------------------------


class BOSetup(NamedTuple):
    """What a BO run fixes at ``init``.

    Attributes:
        q: designs per proposal.
        problem: the problem.
        engine: the :class:`~theseus_jax.bo.MFBO` triple.
        use_f0: F0 is the GP's prior mean (``mfbo`` with ``f0mean``).
        kernel: ``"ar1"``, ``"f0mean"`` or ``"single"``.
        prior_mean: ``(P, 2)`` F0's log objectives of the pool.
        f0_pts: ``(P, 2)`` F0's decades of the pool.
        cost: ``(P,)`` planned F1 cost (s) of each pool design, or None (not cost-aware).
        n_f0_init: initial F1 designs chosen by F0's greedy hypervolume (0: the engine's LHS).
    """

    q: int
    problem: Problem
    engine: Any
    use_f0: bool
    kernel: str
    prior_mean: np.ndarray
    f0_pts: np.ndarray
    cost: np.ndarray | None
    n_f0_init: int


class BOState(NamedTuple):
    """State of ``mfbo`` / ``sfbo``: the engine's state, the pool designs evaluated at F1 and
    the decades of the feasible F1 results told so far."""

    setup: BOSetup
    bo: Any  # theseus_jax.bo.MFBOState
    evaluated: frozenset
    f1_pts: tuple


def _bo_init(cfg: ExploreConfig, problem: Problem, key, *, use_f0: bool, kernel: str):

    n_fid = 2 if kernel == "ar1" else 1
    # declared costs per level (F0, F1): an F1 evaluation of a typical window set
    f1_typ = 2.0e6 / SIM_RATE
    costs = (F0_COST_S, f1_typ) if n_fid == 2 else (f1_typ,)
    n_init = (4 * cfg.n_init, cfg.n_init) if n_fid == 2 else (cfg.n_init,)
    engine = make_mfbo(
        MFBOConfig(
            dim=problem.unit.shape[1],
            n_fidelities=n_fid,
            costs=costs,
            kernel="ar1" if n_fid == 2 else "single",
            objective="ehvi",
            n_objectives=2,
            q=cfg.q,
            n_init=n_init,
            # EHVI against the hypervolume's own reference (the engine's default, just
            # below the observed minimum, gives no credit for extending the front)
            ref_point=tuple(float(v) for v in log_objectives(*problem.ref)),
        )
    )
    setup = BOSetup(
        q=cfg.q,
        problem=problem,
        engine=engine,
        use_f0=use_f0,
        kernel=kernel,
        prior_mean=_read_only(log_objectives(problem.f0_tput, problem.f0_power)),
        f0_pts=_read_only(decades(problem.f0_tput, problem.f0_power, problem.ref)),
        # cost-aware (mfbo by default): F1's run lengths follow from F0's loads
        cost=problem.f1_planned_cost_s if cfg.is_cost_aware else None,
        # f0mean: the initial F1 design is F0's greedy hypervolume picks
        n_f0_init=cfg.n_init if use_f0 else 0,
    )
    return BOState(setup=setup, bo=engine.init(key), evaluated=frozenset(), f1_pts=())


def _mfbo_init(cfg: ExploreConfig, problem: Problem, key) -> BOState:
    return _bo_init(cfg, problem, key, use_f0=cfg.surrogate == "f0mean", kernel=cfg.surrogate)


def _sfbo_init(cfg: ExploreConfig, problem: Problem, key) -> BOState:
    return _bo_init(cfg, problem, key, use_f0=False, kernel="single")


def _f0_greedy_proposals(state: BOState) -> tuple[Proposal, ...]:
    """Initial F1 designs of ``mfbo`` (f0mean): F0's greedy hypervolume picks against the F1
    front so far, each picked design believed at its F0 value until F1 is told."""
    st = state.setup
    taken = np.zeros(st.problem.size, bool)
    taken[list(state.evaluated)] = True
    front = list(state.f1_pts)
    out = []
    while len(out) < st.q and not taken.all():
        j, _ = greedy_hv_pick(st.f0_pts, np.asarray(front).reshape(-1, 2), taken, st.cost)
        out.append(Proposal(j, "f1"))
        taken[j] = True
        front.append(st.f0_pts[j])  # believer: F0's value until F1 is told
    return tuple(out)


def _bo_ask(state: BOState) -> tuple[tuple[Proposal, ...], BOState]:
    st = state.setup
    if len(state.evaluated) < st.n_f0_init:
        return _f0_greedy_proposals(state), state
    cand, fill = _candidates(st.problem, state.evaluated)
    if cand is None:
        return (), state
    pm = st.prior_mean[fill] if st.use_f0 else None
    cost = None if st.cost is None else st.cost[fill]
    prop = st.engine.ask(state.bo, jnp.asarray(cand, jnp.float32), prior_mean=pm, cost=cost)
    out = []
    for x, f, j in zip(
        np.asarray(prop.x), np.asarray(prop.fidelity), np.asarray(prop.index), strict=True
    ):
        i = int(fill[j]) if j >= 0 else int(np.argmin(np.sum((cand - x) ** 2, -1)))
        level = "f1" if (st.kernel != "ar1" or int(f) == 1) else "f0"
        out.append(Proposal(i, level))
    return tuple(out), state


def _bo_tell(state: BOState, evaluations: Sequence[Evaluation]) -> BOState:
    st = state.setup
    xs, fids, ys, pms = [], [], [], []
    evaluated, f1_pts = set(state.evaluated), list(state.f1_pts)
    for ev in evaluations:
        i = ev.index
        xs.append(st.problem.unit[i])
        fids.append(1 if (ev.level == "f1" and st.kernel == "ar1") else 0)
        ys.append(log_objectives(np.asarray(ev.tokens_per_s), np.asarray(ev.power_w)))
        pms.append(st.prior_mean[i])
        if ev.level == "f1":
            evaluated.add(i)
            if ev.feasible:
                f1_pts.append(decades(ev.tokens_per_s, ev.power_w, st.problem.ref)[0])
    pm = np.asarray(pms) if st.use_f0 else None
    bo = st.engine.tell(
        state.bo,
        jnp.asarray(np.asarray(xs), jnp.float32),
        jnp.asarray(np.asarray(fids), jnp.int32),
        jnp.asarray(np.asarray(ys), jnp.float32),
        prior_mean=pm,
    )
    return state._replace(bo=bo, evaluated=frozenset(evaluated), f1_pts=tuple(f1_pts))


# ---------------------------------------------------------------------------------------------
# The pool in a fixed order: random and f0
# ---------------------------------------------------------------------------------------------


class OrderState(NamedTuple):
    """State of ``random`` / ``f0``: the pool's order and the position reached.

    Attributes:
        q: designs per proposal.
        order: ``(P,)`` pool indices in the order they are evaluated (read-only).
        pos: number of designs proposed so far.
        evaluated: pool designs evaluated at F1.
        n_greedy: ``f0``: the leading designs of ``order`` picked by greedy F0 hypervolume
            gain (the rest follow by F0 throughput); ``random``: 0.
    """

    q: int
    order: np.ndarray
    pos: int
    evaluated: frozenset
    n_greedy: int


def _random_init(cfg: ExploreConfig, problem: Problem, key) -> OrderState:
    """A random permutation of the pool from ``cfg.seed`` (numpy; ``key`` is not used, so
    that the order of every stored run is kept)."""
    del key
    order = np.random.default_rng(cfg.seed).permutation(problem.size)
    return OrderState(cfg.q, _read_only(order), 0, frozenset(), 0)


def _f0_init(cfg: ExploreConfig, problem: Problem, key) -> OrderState:
    """The pool in F0's order: greedy F0 hypervolume gain (per planned F1 cost when
    cost-aware) while it is positive, then the rest by F0 throughput."""
    del key
    pts = decades(problem.f0_tput, problem.f0_power, problem.ref)
    taken = np.zeros(problem.size, bool)
    order: list[int] = []
    cost = problem.f1_planned_cost_s if cfg.is_cost_aware else None
    while not taken.all():
        j, gain = greedy_hv_pick(pts, pts[order], taken, cost)
        if gain <= 0.0:
            break
        order.append(j)
        taken[j] = True
    rest = [int(i) for i in np.argsort(-problem.f0_tput, kind="stable") if not taken[i]]
    return OrderState(cfg.q, _read_only(np.asarray(order + rest, int)), 0, frozenset(), len(order))


def _order_ask(state: OrderState) -> tuple[tuple[Proposal, ...], OrderState]:
    out, pos = [], state.pos
    while len(out) < state.q and pos < state.order.size:
        out.append(Proposal(int(state.order[pos]), "f1"))
        pos += 1
    return tuple(out), state._replace(pos=pos)


def _order_tell(state: OrderState, evaluations: Sequence[Evaluation]) -> OrderState:
    return state._replace(evaluated=state.evaluated | {ev.index for ev in evaluations})


# ---------------------------------------------------------------------------------------------
# NSGA-II on the pool
# ---------------------------------------------------------------------------------------------


class NSGA2MethodState(NamedTuple):
    """State of ``nsga2``.

    Attributes:
        q: designs per proposal.
        unit: ``(P, d)`` pool coordinates.
        alg: the :class:`~theseus_jax.dse.nsga2.NSGA2` triple.
        ga: its state.
        evaluated: pool designs evaluated at F1.
        pending: pool indices of the current generation not yet proposed.
        batch: evaluations of the current generation (told to NSGA-II when it is complete).
    """

    q: int
    unit: np.ndarray
    alg: Any
    ga: Any
    evaluated: frozenset
    pending: tuple
    batch: tuple


def _nsga2_init(cfg: ExploreConfig, problem: Problem, key) -> NSGA2MethodState:
    from .nsga2 import nsga2

    alg = nsga2(problem.unit.shape[1], 2, pop_size=cfg.nsga2_pop)
    return NSGA2MethodState(cfg.q, problem.unit, alg, alg.init(key), frozenset(), (), ())


def _tell_generation(state: NSGA2MethodState) -> NSGA2MethodState:
    idx = [ev.index for ev in state.batch]
    obj = np.array([[-ev.tokens_per_s, ev.power_w] for ev in state.batch], float)
    obj = np.stack([-np.log10(-obj[:, 0]), np.log10(obj[:, 1])], -1)  # minimised
    feas = np.array([ev.feasible for ev in state.batch], bool)
    ga = state.alg.tell(state.ga, state.unit[idx], obj, feasible=feas)
    return state._replace(ga=ga, batch=())


def _nsga2_ask(state: NSGA2MethodState) -> tuple[tuple[Proposal, ...], NSGA2MethodState]:
    if not state.pending:
        if state.batch:
            state = _tell_generation(state)
        off = np.asarray(state.alg.ask(state.ga))
        taken = set(state.evaluated)
        picks = []
        for x in off:  # each offspring snaps to the nearest unevaluated pool design
            d = np.sum((state.unit - x) ** 2, -1)
            for j in np.argsort(d, kind="stable"):
                if int(j) not in taken:
                    picks.append(int(j))
                    taken.add(int(j))
                    break
        if not picks:
            return (), state
        state = state._replace(pending=tuple(picks))
    out, rest = state.pending[: state.q], state.pending[state.q :]
    return tuple(Proposal(i, "f1") for i in out), state._replace(pending=rest)


def _nsga2_tell(state: NSGA2MethodState, evaluations: Sequence[Evaluation]) -> NSGA2MethodState:
    return state._replace(
        evaluated=state.evaluated | {ev.index for ev in evaluations},
        batch=state.batch + tuple(evaluations),
    )


METHODS: MappingProxyType[str, Method] = MappingProxyType(
    {
        "mfbo": Method(_mfbo_init, _bo_ask, _bo_tell),
        "sfbo": Method(_sfbo_init, _bo_ask, _bo_tell),
        "random": Method(_random_init, _order_ask, _order_tell),
        "nsga2": Method(_nsga2_init, _nsga2_ask, _nsga2_tell),
        "f0": Method(_f0_init, _order_ask, _order_tell),
    }
)
"""The methods by name (read-only; the names are :data:`~theseus_jax.dse.problem.METHOD_NAMES`)."""

if tuple(METHODS) != METHOD_NAMES:  # pragma: no cover - a bug in this module
    raise RuntimeError(f"METHODS {tuple(METHODS)} disagree with METHOD_NAMES {METHOD_NAMES}")
