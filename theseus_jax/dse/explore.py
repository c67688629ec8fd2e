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

Where things live: :mod:`~theseus_jax.dse.problem` (:class:`ExploreConfig`, :class:`Problem`,
:func:`make_problem`), :mod:`~theseus_jax.dse.methods` (the methods as ``(init, ask, tell)``
triples with explicit immutable state, :data:`METHODS`), :mod:`~theseus_jax.dse.evaluation`
(:class:`Evaluation`, one evaluated design), ``dse/_run.py`` (the run loop, replay and the
refinement stage) and ``dse/_report.py`` (the files a run leaves, with a GPU reference
point). This module re-exports their public names.

Durable runs: every evaluation is written to ``RUN_DIR/run.sqlite``
(:class:`~theseus_jax.dse.store.RunStore`) as it completes. :func:`run_explore` with
``resume=True`` rebuilds the problem from the stored configuration, replays the stored
evaluations through the method's deterministic ``ask``/``tell`` (checking that each replayed
proposal is the stored one) and continues: nothing is evaluated twice or lost, and the run
ends in the same state as an uninterrupted one with the same seed.
"""

from __future__ import annotations

from ._report import hypervolume_trace
from ._run import RunDiverged, run_explore
from .evaluation import Evaluation
from .methods import METHODS, Method, Proposal, greedy_hv_pick
from .problem import (
    F0_COST_S,
    METHOD_NAMES,
    PROBLEM_KEYS,
    SIM_RATE,
    SURROGATES,
    ExploreConfig,
    Problem,
    decades,
    log_objectives,
    make_problem,
)

# the names these helpers had in this module
_decades = decades
_log_obj = log_objectives

__all__ = [
    "ExploreConfig",
    "Problem",
    "Evaluation",
    "Method",
    "Proposal",
    "RunDiverged",
    "greedy_hv_pick",
    "make_problem",
    "run_explore",
    "METHODS",
    "METHOD_NAMES",
    "SURROGATES",
    "PROBLEM_KEYS",
    "F0_COST_S",
    "SIM_RATE",
    "hypervolume_trace",
    "decades",
    "log_objectives",
]
