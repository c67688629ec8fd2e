r"""Multi-fidelity benchmark functions on the unit cube, all MAXIMISED.

Each :class:`MFTestFunction` has ``evaluate(x, t)`` for one point ``x: (d,)`` and an integer
level ``t`` (``n_fidelities - 1`` = the target/high fidelity), written for one point so it
vmaps; ``costs`` per level; and ``optimum``, the maximum of the TARGET level (for simple
regret). The simple regret after a run is ``optimum - (best target-level observation so
far)``: only target-level evaluations count for the incumbent (a low-fidelity value says
nothing certain about the target).

* **Currin exponential** (d=2). High: Currin et al. (1991); low: the four-point average of
  Xiong, Qian & Wu (2013), Technometrics 55(1):37-46, Sec. 5. Maximum 13.798717 at
  ``x = (0.21666, 0)`` (found by a dense grid + local refinement, see ``tests/test_bo.py``).
* **Park** (d=4). High: Park (1991) PhD thesis, Stanford (the "Park function #1"); low:
  ``(1 + sin(x1)/10) f(x) - 2 x1 + x2^2 + x3^2 + 0.5`` (Xiong et al. 2013, Sec. 5).
  Maximum 25.589254 at ``x = (1, 1, 1, 1)``. The first term is evaluated as
  ``(sqrt(x1^2 + (x2 + x3^2) x4) - x1) / 2`` (algebraically equal, finite at ``x1 = 0``).
* **Hartmann-6** (d=6), the negated Hartmann-6 with the fidelity parameter of BoTorch's
  ``AugmentedHartmann``: ``alpha_1(s) = 1 - 0.1 (1 - s)`` (Balandat et al. 2020, BoTorch;
  the same bias form as MF-GP-UCB's Hartmann, Kandasamy et al. 2016), levels
  ``s in {0.5, 1.0}`` (the lowest fidelity of BoTorch's discrete multi-fidelity tutorial).
  Maximum 3.322368 at ``x* = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)``.

Costs: ``(1, 10)`` for every function -- the cheap/expensive ratio 1:10 used for two-level
synthetic problems in the multi-fidelity BO literature (e.g. Kandasamy et al. 2016's
two-fidelity experiments; Takeno et al. 2020, MF-MES, use comparable ratios). We could not
re-check the exact per-paper numbers offline; the ratio is a parameter of the benchmark.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, NamedTuple

import jax.numpy as jnp

__all__ = ["MFTestFunction", "currin", "park", "hartmann6", "TEST_FUNCTIONS"]


class MFTestFunction(NamedTuple):
    """A multi-fidelity test problem (maximisation).

    Attributes:
        name: short name; dim: ``d``; n_fidelities: ``F``; costs: per level;
        optimum: maximum of the target level; evaluate: ``evaluate(x (d,), t int) -> scalar``.
    """

    name: str
    dim: int
    n_fidelities: int
    costs: tuple
    optimum: float
    evaluate: Any


def _currin_high(x1, x2):
    ok = x2 > 0
    x2s = jnp.where(ok, x2, 1.0)
    first = jnp.where(ok, 1.0 - jnp.exp(-1.0 / (2.0 * x2s)), 1.0)
    num = 2300.0 * x1**3 + 1900.0 * x1**2 + 2092.0 * x1 + 60.0
    den = 100.0 * x1**3 + 500.0 * x1**2 + 4.0 * x1 + 20.0
    return first * num / den


def _currin(x, t):
    x1, x2 = x[0], x[1]
    hi = _currin_high(x1, x2)
    lo = 0.25 * (
        _currin_high(x1 + 0.05, x2 + 0.05)
        + _currin_high(x1 + 0.05, jnp.maximum(0.0, x2 - 0.05))
        + _currin_high(x1 - 0.05, x2 + 0.05)
        + _currin_high(x1 - 0.05, jnp.maximum(0.0, x2 - 0.05))
    )
    return jnp.where(t >= 1, hi, lo)


def _park_high(x):
    x1, x2, x3, x4 = x[0], x[1], x[2], x[3]
    first = 0.5 * (jnp.sqrt(x1**2 + (x2 + x3**2) * x4) - x1)
    return first + (x1 + 3.0 * x4) * jnp.exp(1.0 + jnp.sin(x3))


def _park(x, t):
    hi = _park_high(x)
    lo = (1.0 + jnp.sin(x[0]) / 10.0) * hi - 2.0 * x[0] + x[1] ** 2 + x[2] ** 2 + 0.5
    return jnp.where(t >= 1, hi, lo)


_H_ALPHA = (1.0, 1.2, 3.0, 3.2)
_H_A = (
    (10.0, 3.0, 17.0, 3.5, 1.7, 8.0),
    (0.05, 10.0, 17.0, 0.1, 8.0, 14.0),
    (3.0, 3.5, 1.7, 10.0, 17.0, 8.0),
    (17.0, 8.0, 0.05, 10.0, 0.1, 14.0),
)
_H_P = (
    (1312, 1696, 5569, 124, 8283, 5886),
    (2329, 4135, 8307, 3736, 1004, 9991),
    (2348, 1451, 3522, 2883, 3047, 6650),
    (4047, 8828, 8732, 5743, 1091, 381),
)
_H_S = (0.5, 1.0)


def _hartmann(x, t):
    dtype = x.dtype
    s = jnp.asarray(_H_S, dtype)[t]
    alpha = jnp.asarray(_H_ALPHA, dtype).at[0].add(-0.1 * (1.0 - s))
    a = jnp.asarray(_H_A, dtype)
    p = jnp.asarray(_H_P, dtype) * 1e-4
    inner = jnp.sum(a * (x[None, :] - p) ** 2, axis=1)
    return jnp.sum(alpha * jnp.exp(-inner))


currin = MFTestFunction("currin", 2, 2, (1.0, 10.0), 13.798717, _currin)
park = MFTestFunction("park", 4, 2, (1.0, 10.0), 25.589254, _park)
hartmann6 = MFTestFunction("hartmann6", 6, 2, (1.0, 10.0), 3.322368, _hartmann)

TEST_FUNCTIONS = MappingProxyType({f.name: f for f in (currin, park, hartmann6)})
