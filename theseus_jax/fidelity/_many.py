r"""F1 of many points, one after the other or concurrently on workers.

An F1 evaluation takes seconds to minutes and F1 evaluations of different points are
independent, so a batch of them can run on several workers (:mod:`theseus_jax.parallel`:
local processes or a Ray cluster). Each worker keeps its own :class:`F1Cache`; each point
carries everything it needs (:class:`F1Point`: design, workload, technology, mapping, seed,
longest run: a few KB), so one set of workers serves any workload.

.. code-block:: python

    with open_f1_executor(Parallel(workers=4)) as ex:
        for metrics, cost in evaluate_f1_many(points, executor=ex):   # in point order
            ...

The results are those of :func:`~theseus_jax.fidelity.evaluate_f1` point by point, in
point order, whichever executor runs them (a point's result depends on its own seed only;
``cost.n_compiles`` and the timings depend on what the worker had compiled before).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import jax
import numpy as np

from ..parallel import Parallel, open_executor
from ._f1 import F1Cost, evaluate_f1
from ._windows import F1Cache

__all__ = ["F1Point", "evaluate_f1_many", "open_f1_executor", "f1_task"]


class F1Point(NamedTuple):
    """One F1 evaluation: :func:`~theseus_jax.fidelity.evaluate_f1`'s arguments."""

    design: Any
    workload: Any
    tech: Any
    mapping: Any
    seed: int = 0
    max_cycles: int = 16000


def _host(tree):
    """``tree`` with its JAX arrays as numpy arrays of the same dtype (sent to workers;
    Python scalars stay as they are, so weak types are kept)."""
    return jax.tree_util.tree_map(lambda a: np.asarray(a) if isinstance(a, jax.Array) else a, tree)


def f1_task(cache: F1Cache, p: F1Point) -> tuple[Any, F1Cost]:
    """``evaluate_f1`` of one point with a worker's cache; metrics as host arrays."""
    m, c = evaluate_f1(
        p.design,
        p.workload,
        p.tech,
        mapping=p.mapping,
        seed=int(p.seed),
        max_cycles=int(p.max_cycles),
        cache=cache,
    )
    return _host(m), c


def open_f1_executor(parallel: Parallel):
    """Workers for :func:`evaluate_f1_many`, each with its own :class:`F1Cache`
    (:func:`~theseus_jax.parallel.open_executor`; close it, or use it as a context)."""
    return open_executor(parallel, setup=F1Cache)


def evaluate_f1_many(
    points: Iterable[F1Point], *, executor=None, cache: F1Cache | None = None
) -> Iterator[tuple[Any, F1Cost]]:
    """``(metrics, cost)`` of every point, in point order, as each becomes available.

    Args:
        points: the :class:`F1Point` s.
        executor: from :func:`open_f1_executor`: the points run concurrently on its workers.
            None: one after the other in this process, compiling into ``cache``.
        cache: this process's simulator cache (``executor=None`` only; default: a new one).
    """
    if executor is None:
        cache = cache if cache is not None else F1Cache()
        return (f1_task(cache, p) for p in points)
    return executor.imap(f1_task, [_host(p) for p in points])
