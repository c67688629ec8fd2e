"""The run loop of a training exploration: durable, resumable, with a refinement stage.

:func:`run_explore` drives a :class:`~theseus_jax.dse.methods.Method` on a
:class:`~theseus_jax.dse.problem.Problem`. Every evaluation is written to
``RUN_DIR/run.sqlite`` (:class:`~theseus_jax.dse.store.RunStore`) as it completes. With
``resume=True`` it rebuilds the problem from the stored configuration, replays the stored
evaluations through the method's deterministic ``ask``/``tell`` (checking that each replayed
proposal is the stored one) and continues: nothing is evaluated twice or lost, and the run
ends in the same state as an uninterrupted one with the same seed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np

from ..fidelity import open_f1_executor
from ..parallel import Parallel
from ._report import summarise
from .evaluation import Evaluation
from .methods import METHODS
from .problem import (
    PROBLEM_KEYS,
    ExploreConfig,
    Problem,
    make_problem,
    problem_key,
)
from .store import DB_NAME, RunLock, RunStore

__all__ = ["RunDiverged", "run_explore"]


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
    parallel: Parallel | None = None,
) -> dict:
    """Run (or resume) an exploration; every evaluation goes to ``run_dir/run.sqlite``.

    Args:
        cfg: the configuration (ignored, may be None, when resuming: the stored one is used).
        run_dir: run directory.
        resume: continue the run stored in ``run_dir``.
        progress: ``callable(str)`` for progress lines (default: silent).
        stop_after: stop after this many evaluations in total (testing / time slicing).
        problem: a :class:`~theseus_jax.dse.problem.Problem` the caller already built (and
            may share between runs, with its F1 results); it must be the problem of the
            run's configuration (``PROBLEM_KEYS``). Default: a new one.
        parallel: how to run the F1 evaluations of a proposal batch
            (:class:`~theseus_jax.parallel.Parallel`: local processes or Ray workers);
            default: one after the other in this process. The ``cfg.q`` designs of a
            proposal run concurrently, so more workers than ``q`` stay idle. The run's
            results do not depend on it: evaluations are written and told in proposal order,
            and each design's simulator seed is its pool index.

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
        return _run_locked(cfg, run_dir, store, log, stop_after, problem, parallel or Parallel())


def _check_problem(problem: Problem, cfg: ExploreConfig) -> Problem:
    """``problem`` if it is the problem of ``cfg`` (same ``PROBLEM_KEYS``), else an error."""
    got, want = problem_key(problem.cfg), problem_key(cfg)
    diff = [
        f"{k}: {a!r} (run: {b!r})"
        for k, a, b in zip(PROBLEM_KEYS, got, want, strict=True)
        if a != b
    ]
    if diff:
        raise ValueError(f"problem= is not this run's problem: {', '.join(diff)}")
    return problem


def _replayed(rec, index: int, level: str) -> Evaluation:
    """The stored evaluation ``rec`` if it is the one proposed, else :class:`RunDiverged`."""
    if rec.extra.get("pool_index") != index or rec.extra.get("level") != level:
        raise RunDiverged(
            f"evaluation {rec.seq}: the database holds pool design "
            f"{rec.extra.get('pool_index')} at {rec.extra.get('level')}, the "
            f"resumed run proposes {index} at {level} (was the code or the "
            "environment changed since the run started?)"
        )
    return Evaluation.from_record(rec)


def _evaluate(prob: Problem, proposals, executor) -> Iterator[Evaluation]:
    """The evaluations of ``proposals`` in proposal order: F0 ones read from the screening,
    F1 ones from :meth:`Problem.f1_many` (concurrently with an executor)."""
    f1 = prob.f1_many([p.index for p in proposals if p.level == "f1"], executor)
    for p in proposals:
        yield next(f1) if p.level == "f1" else prob.f0(p.index)


def _run_locked(cfg, run_dir, store, log, stop_after, prob, parallel) -> dict:
    """The body of :func:`run_explore`, with the run directory locked."""
    t0 = time.perf_counter()
    executor = None
    try:
        method = METHODS[cfg.method]
        state = method.init(cfg, prob, jax.random.PRNGKey(cfg.seed))
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
        if parallel.workers > cfg.q:
            log(
                f"note: {parallel.workers} workers but q={cfg.q} designs per proposal: only "
                f"{cfg.q} F1 evaluation(s) run at a time (set q to use every worker)"
            )
        executor = None if parallel.in_process else open_f1_executor(parallel)
        if executor is not None:
            log(f"F1 on {parallel.workers} {parallel.backend} workers")
        while spent < prob.screen_cost_s + cfg.budget_s:
            proposals, state = method.ask(state)
            if not proposals:
                log("pool exhausted")
                break
            if stop_after is not None:
                proposals = proposals[: stop_after - n_total]
            n_replay = min(len(proposals), len(stored) - k)
            results = [
                _replayed(stored[k + j], p.index, p.level)
                for j, p in enumerate(proposals[:n_replay])
            ]
            k += n_replay
            fresh = _evaluate(prob, proposals[n_replay:], executor)
            for ev in results:
                spent += ev.cost_s
            for ev in fresh:  # in proposal order, each written as soon as it is known
                store.append(**ev.row(iteration=it, method=cfg.method))
                if ev.level == "f1":
                    log(
                        f"[{it:3d}] F1 design {ev.index:5d}: {ev.tokens_per_s:.4g} tok/s, "
                        f"{ev.power_w / 1e3:.3g} kW, cost {ev.cost_s:.1f} s "
                        f"(wall {ev.wall_s:.1f} s); spent "
                        f"{spent + ev.cost_s - prob.screen_cost_s:.1f}/{cfg.budget_s:g} s"
                    )
                spent += ev.cost_s
                results.append(ev)
            n_total += len(results)
            state = method.tell(state, results)
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
        summary["parallel"] = dict(workers=parallel.workers, backend=parallel.backend)
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
        gpu = summary.get("gpu_reference")
        log(
            f"done: {summary['n_f1']} F1 evaluations, declared F1 cost "
            f"{summary['f1_cost_s']:.1f} s, hypervolume {summary['hypervolume']:.4g}, "
            f"{summary['n_pareto']} Pareto designs -> {run_dir}"
            + (
                f"; GPU reference {gpu['label']}: {gpu['tokens_per_s']:.4g} tok/s, "
                f"{gpu['power_w'] / 1e3:.3g} kW"
                if gpu
                else ""
            )
        )
        return summary
    finally:
        if executor is not None:
            executor.close()
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
    pending = list(pending)
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
            design = jax.tree_util.tree_map(lambda a: a[0], res.designs)
            mi = int(np.asarray(res.mapping_index)[0])
            mapping = jax.tree_util.tree_map(lambda a, mi=mi: a[mi], prob.table)
            if pending:
                stored = pending.pop(0)
                if stored.extra.get("level") != "refine" or stored.extra.get("refine_index") != j:
                    raise RunDiverged(
                        f"evaluation {stored.seq}: expected refinement {j} in the database"
                    )
                ev = Evaluation.from_record(stored)
            else:
                ev = prob.f1_design(design, mapping, seed=10**6 + i)
                ev = ev._replace(level="refine", refine_index=j)
                store.append(**ev.row(iteration=it, method=cfg.method))
            row["f1"] = dict(tokens_per_s=ev.tokens_per_s, power_w=ev.power_w)
            log(
                f"refined design {i} for {objective}: F0 {row['f0_objective_start']:.4g} -> "
                f"{row['f0_objective']:.4g}; F1 {rec.objectives[0]:.4g} tok/s "
                f"{rec.objectives[1] / 1e3:.3g} kW -> {ev.tokens_per_s:.4g} tok/s "
                f"{ev.power_w / 1e3:.3g} kW"
            )
        else:
            log(f"refinement of design {i} for {objective}: no legal improvement, kept")
        out.append(row)
    return out
