"""One evaluation of an exploration run: what a problem returns, a method is told, the store
writes and the report reads.

:class:`Evaluation` is an immutable record (host-side Python values). It converts to the
store's row (:meth:`Evaluation.row`) and back (:meth:`Evaluation.from_record`); the row
keeps the on-disk format of every run written so far: the objectives, feasibility, cost
and wall seconds in their columns, and ``extra = {pool_index, level, result}`` (plus
``refine_index`` for refined designs), where ``result`` is :meth:`Evaluation.result`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = ["Evaluation", "LEVELS"]

# "f0": the analytic model; "f1": the simulated network; "refine": F1 of a gradient-refined
# design (outside the pool)
LEVELS = ("f0", "f1", "refine")
_EMPTY: Mapping = MappingProxyType({})
_RESULT_KEYS = ("tokens_per_s", "power_w", "feasible", "violations", "cost_s", "wall_s")


class Evaluation(NamedTuple):
    """One evaluated design.

    Attributes:
        index: pool index of the design (-1: outside the pool, e.g. a refined design).
        level: ``"f0"``, ``"f1"`` or ``"refine"`` (F1 of a refined design).
        tokens_per_s: throughput (tokens/s).
        power_w: power (W).
        feasible: whether the design meets every constraint at this fidelity.
        violations: violated constraints (bitflags, :mod:`theseus_jax._violations`).
        cost_s: declared cost (s): ``F0_COST_S`` for F0, router-cycles / ``SIM_RATE``
            for F1.
        wall_s: wall seconds it took (0 for a memoised or screened result).
        metrics: further measurements by name (F1: ``step_time_s`` in s,
            ``router_cycles``, ``n_compiles``; ``cached`` when memoised).
        x_unit: unit-cube coordinates of the design.
        design: the design's parameters by name (SI).
        refine_index: which refinement of the run (``level == "refine"`` only, else -1).
    """

    index: int
    level: str
    tokens_per_s: float
    power_w: float
    feasible: bool
    violations: int
    cost_s: float
    wall_s: float
    metrics: Mapping[str, Any] = _EMPTY
    x_unit: tuple = ()
    design: Mapping[str, float] = _EMPTY
    refine_index: int = -1

    @property
    def fidelity(self) -> int:
        """0 for F0, 1 for F1 (pool or refined design)."""
        return 0 if self.level == "f0" else 1

    @property
    def objectives(self) -> tuple[float, float]:
        """``(tokens/s, W)``."""
        return (self.tokens_per_s, self.power_w)

    @property
    def cost(self) -> float:
        """Declared cost (s); the store's name for ``cost_s``."""
        return self.cost_s

    @property
    def refined(self) -> bool:
        """Whether this is a gradient-refined design (not a pool design)."""
        return self.level == "refine"

    def result(self) -> dict:
        """The result as the store's ``extra["result"]`` holds it (a flat dict)."""
        return dict(
            tokens_per_s=self.tokens_per_s,
            power_w=self.power_w,
            feasible=self.feasible,
            violations=self.violations,
            cost_s=self.cost_s,
            wall_s=self.wall_s,
            **self.metrics,
        )

    def row(self, *, iteration: int, method: str) -> dict:
        """Keyword arguments of :meth:`~theseus_jax.dse.store.RunStore.append`."""
        extra = dict(pool_index=self.index, level=self.level, result=self.result())
        if self.refined:
            extra["refine_index"] = self.refine_index
        return dict(
            iteration=iteration,
            method=method,
            fidelity=self.fidelity,
            x_unit=self.x_unit,
            design=dict(self.design),
            objectives=self.objectives,
            feasible=self.feasible,
            violations=self.violations,
            cost=self.cost_s,
            wall_s=self.wall_s,
            extra=extra,
        )

    @staticmethod
    def from_record(rec) -> Evaluation:
        """The evaluation of a stored row (:class:`~theseus_jax.dse.store.EvalRecord`).

        The values come from ``extra["result"]`` (what the run was told); a row without one
        (written by another tool) falls back to its columns."""
        extra = rec.extra or {}
        r = dict(extra.get("result") or {})
        fallback = dict(
            tokens_per_s=rec.objectives[0],
            power_w=rec.objectives[1],
            feasible=rec.feasible,
            violations=rec.violations,
            cost_s=rec.cost,
            wall_s=rec.wall_s,
        )
        level = extra.get("level", "f1" if rec.fidelity == 1 else "f0")
        return Evaluation(
            index=int(extra.get("pool_index", -1)),
            level=level,
            **{k: r.get(k, fallback[k]) for k in _RESULT_KEYS},
            metrics={k: v for k, v in r.items() if k not in _RESULT_KEYS},
            x_unit=tuple(rec.x_unit),
            design=dict(rec.design),
            refine_index=int(extra.get("refine_index", -1)),
        )
