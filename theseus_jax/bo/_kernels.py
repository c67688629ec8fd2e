r"""Covariance functions over (x, fidelity), written for ONE pair of points and vmapped.

Every kernel here is an ``eqx.Module`` whose numeric hyperparameters are array leaves, with a
single abstract method ``evaluate(x1, t1, x2, t2) -> scalar`` that treats its arguments as
single data points (tinygp style); :meth:`AbstractFidelityKernel.matrix` builds the Gram
matrix with two ``vmap`` s. ``x`` lives in the unit cube ``[0, 1]^D`` (``D`` = design
dimensions plus any extra input features appended as more columns) and ``t`` is the integer
fidelity level ``0 .. F-1`` (``F-1`` is the target, i.e. highest, fidelity).

Kernels:

* :class:`Matern52` -- Matérn-5/2 with ARD lengthscales (the spatial building block).
* :class:`SingleFidelityKernel` -- ``k((x,t),(x',t')) = k_x(x, x')`` (fidelity ignored).
* :class:`AR1Kernel` -- Kennedy--O'Hagan AR(1) co-kriging over discrete levels.
* :class:`LinearTruncatedKernel` -- BoTorch's linear-truncated fidelity kernel (Wu et al.
  2019) over a continuous fidelity ``s in [0, 1]``; level ``t`` maps to ``s_t``.

References:
    M. C. Kennedy and A. O'Hagan (2000). Predicting the output from a complex computer code
    when fast approximations are available. Biometrika 87(1):1-13.
    J. Wu, S. Toscano-Palmerin, P. I. Frazier, A. G. Wilson (2019). Practical multi-fidelity
    Bayesian optimization for hyperparameter tuning. UAI 2019 (Sec. 4 / App. kernel); BoTorch
    ``LinearTruncatedFidelityKernel``.
    C. E. Rasmussen and C. K. I. Williams (2006). Gaussian Processes for Machine Learning,
    Eq. (4.17) (Matérn-5/2).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp

from .._numerics import safe_sqrt

__all__ = [
    "AbstractFidelityKernel",
    "Matern52",
    "SingleFidelityKernel",
    "AR1Kernel",
    "LinearTruncatedKernel",
    "matern52",
]

_SQRT5 = 2.23606797749979


def matern52(x1, x2, lengthscale):
    r"""Unit-variance Matérn-5/2 ARD correlation of one pair of points.

    .. math::
        r = \lVert (x - x') / \ell \rVert_2,\qquad
        k(r) = \left(1 + \sqrt5 r + \tfrac53 r^2\right) e^{-\sqrt5 r}

    Args:
        x1, x2: ``(D,)`` points.
        lengthscale: ``(D,)`` positive ARD lengthscales (same units as ``x``).

    Returns:
        Scalar correlation in ``(0, 1]``. The gradient at ``x1 == x2`` is finite (``safe_sqrt``).
    """
    d = (x1 - x2) / lengthscale
    r2 = jnp.sum(d * d)
    r = safe_sqrt(r2)
    return (1.0 + _SQRT5 * r + (5.0 / 3.0) * r2) * jnp.exp(-_SQRT5 * r)


class AbstractFidelityKernel(eqx.Module):
    """Interface: ``evaluate`` for one pair; ``matrix`` for batches (concrete, via vmap)."""

    @abc.abstractmethod
    def evaluate(self, x1, t1, x2, t2):
        """Covariance of ``f(x1, t1)`` and ``f(x2, t2)`` for single points ``x: (D,)``,
        integer level ``t: ()``."""

    def matrix(self, x1, t1, x2, t2):
        """Gram matrix ``(N1, N2)`` for ``x1: (N1, D), t1: (N1,), x2: (N2, D), t2: (N2,)``."""
        row = jax.vmap(self.evaluate, in_axes=(None, None, 0, 0))
        return jax.vmap(row, in_axes=(0, 0, None, None))(x1, t1, x2, t2)

    def diag(self, x, t):
        """``k((x_i,t_i),(x_i,t_i))`` for ``x: (N, D), t: (N,)``."""
        return jax.vmap(self.evaluate)(x, t, x, t)


class Matern52(AbstractFidelityKernel):
    r"""``variance * matern52(x, x', lengthscale)``; ignores the fidelity arguments."""

    lengthscale: jax.Array  # (D,)
    variance: jax.Array  # ()

    def evaluate(self, x1, t1, x2, t2):
        del t1, t2
        return self.variance * matern52(x1, x2, self.lengthscale)


class SingleFidelityKernel(AbstractFidelityKernel):
    """No fidelity structure: one Matérn-5/2 ARD GP shared by every level.

    Attributes:
        lengthscale: ``(1, D)``; variance: ``(1,)`` (leading axis kept so all kernels share
        the parameter layout ``(n_components, ...)``).
    """

    lengthscale: jax.Array
    variance: jax.Array

    def evaluate(self, x1, t1, x2, t2):
        del t1, t2
        return self.variance[0] * matern52(x1, x2, self.lengthscale[0])


def _ar1_weights(rho, t, n_fidelities):
    r"""``P[j] = prod_{i=j}^{t-1} rho_i`` for ``j <= t`` (empty product 1), else 0.

    Args:
        rho: ``(F-1,)``; ``t``: integer level; ``n_fidelities``: static ``F``.

    Returns:
        ``(F,)`` weights of the independent increments ``delta_j`` in ``f_t``.
    """
    j = jnp.arange(n_fidelities)[:, None]  # (F, 1)
    i = jnp.arange(n_fidelities - 1)[None, :]  # (1, F-1)
    use = (i >= j) & (i < t)
    prod = jnp.prod(jnp.where(use, rho[None, :], jnp.ones_like(rho)[None, :]), axis=1)
    return jnp.where(jnp.arange(n_fidelities) <= t, prod, jnp.zeros_like(prod))


class AR1Kernel(AbstractFidelityKernel):
    r"""Kennedy--O'Hagan AR(1) co-kriging kernel for discrete levels ``0 .. F-1``.

    The construction is :math:`f_0 = \delta_0`, :math:`f_t = \rho_{t-1} f_{t-1} + \delta_t`
    with independent :math:`\delta_j \sim GP(0, \sigma_j^2 k_{5/2}(\cdot,\cdot;\ell_j))`.
    Unrolling, :math:`f_t = \sum_{j\le t} P_{j,t}\,\delta_j` with
    :math:`P_{j,t} = \prod_{i=j}^{t-1}\rho_i`, hence the closed form

    .. math::
        k\big((x,t),(x',t')\big) = \sum_{j=0}^{\min(t,t')} P_{j,t}\,P_{j,t'}\,
        \sigma_j^2\, k_{5/2}(x, x'; \ell_j).

    For ``F = 2``: ``k((x,0),(x',0)) = k_0``, ``k((x,0),(x',1)) = rho k_0``,
    ``k((x,1),(x',1)) = rho^2 k_0 + k_1`` (Kennedy & O'Hagan 2000, Eq. 2-3).

    Attributes:
        lengthscale: ``(F, D)`` ARD lengthscales of each increment ``delta_j``.
        variance: ``(F,)`` variances ``sigma_j^2``.
        rho: ``(F-1,)`` scale factors (any sign).
    """

    lengthscale: jax.Array
    variance: jax.Array
    rho: jax.Array

    def evaluate(self, x1, t1, x2, t2):
        nf = self.variance.shape[0]
        p1 = _ar1_weights(self.rho, t1, nf)
        p2 = _ar1_weights(self.rho, t2, nf)
        kj = jax.vmap(matern52, in_axes=(None, None, 0))(x1, x2, self.lengthscale)  # (F,)
        return jnp.sum(p1 * p2 * self.variance * kj)


class LinearTruncatedKernel(AbstractFidelityKernel):
    r"""Linear-truncated fidelity kernel (one fidelity dimension), as in BoTorch.

    With the continuous fidelity :math:`s\in[0,1]` (``s = 1`` is the target),

    .. math::
        k\big((x,s),(x',s')\big) = \sigma_0^2 k_{5/2}(x,x';\ell_0)
        + \sigma_1^2 (1-s)(1-s')(1+s s')^{p}\, k_{5/2}(x,x';\ell_1),

    i.e. a target GP plus a fidelity *bias* GP that vanishes at ``s = 1``; the bias factor is
    a deterministic part ``(1-s)(1-s')`` times a polynomial kernel of order ``p`` (learned).
    Level ``t`` maps to ``s = fidelity_values[t]``. BoTorch wraps the sum in one outer
    ``ScaleKernel``; we give each term its own variance (a superset of that model).

    Attributes:
        lengthscale: ``(2, D)``; variance: ``(2,)``; power: ``()``;
        fidelity_values: ``(F,)`` the ``s`` of each level, last one 1.

    References:
        Wu et al. (2019), UAI; BoTorch ``botorch.models.kernels.LinearTruncatedFidelityKernel``.
    """

    lengthscale: jax.Array
    variance: jax.Array
    power: jax.Array
    fidelity_values: jax.Array

    def evaluate(self, x1, t1, x2, t2):
        s1 = self.fidelity_values[t1]
        s2 = self.fidelity_values[t2]
        bias = (1.0 - s1) * (1.0 - s2) * jnp.power(1.0 + s1 * s2, self.power)
        k0 = matern52(x1, x2, self.lengthscale[0])
        k1 = matern52(x1, x2, self.lengthscale[1])
        return self.variance[0] * k0 + self.variance[1] * bias * k1
