r"""Alpha-beta collective costs (NCCL-like rings and trees) and mesh-link helpers.

Ring all-reduce over ``n`` ranks of a message of ``S`` bytes on links of bandwidth ``B``
(each direction) and per-step latency ``alpha``:

.. math:: t = 2\frac{n-1}{n}\frac{S}{B} + 2(n-1)\alpha

Reduce-scatter and all-gather each cost half of that. A double binary tree (NCCL's tree
algorithm) has the same bandwidth term and ``2 log2(n) alpha`` latency; NCCL picks the faster,
which :func:`allreduce_time` does too.

References:
    Thakur, Rabenseifner, Gropp, "Optimization of collective communication operations in
    MPICH", IJHPCA 2005; NCCL tests "performance.md" (bus bandwidth = 2 (n-1)/n algbw).
"""

from __future__ import annotations

import jax.numpy as jnp

from .._numerics import safe_div, safe_log

__all__ = ["allreduce_time", "reduce_scatter_time", "p2p_time", "mdl_queue_wait"]


def allreduce_time(bytes_, n, bw_bytes_per_s, alpha_s):
    """All-reduce time (s): min of ring and double-binary-tree latency, same bandwidth term."""
    frac = safe_div(n - 1.0, n)
    beta = 2.0 * frac * safe_div(bytes_, bw_bytes_per_s)
    ring_lat = 2.0 * (n - 1.0) * alpha_s
    tree_lat = 2.0 * safe_log(jnp.maximum(n, 1.0), 0.0) / jnp.log(2.0) * alpha_s
    return jnp.where(n > 1, beta + jnp.minimum(ring_lat, tree_lat), 0.0)


def reduce_scatter_time(bytes_, n, bw_bytes_per_s, alpha_s):
    """Reduce-scatter (or all-gather) of a ``bytes_`` buffer: half an all-reduce."""
    frac = safe_div(n - 1.0, n)
    return jnp.where(n > 1, frac * safe_div(bytes_, bw_bytes_per_s) + (n - 1.0) * alpha_s, 0.0)


def p2p_time(bytes_, bw_bytes_per_s, alpha_s):
    """Point-to-point transfer time (s)."""
    return safe_div(bytes_, bw_bytes_per_s) + alpha_s


def mdl_queue_wait(rho):
    r"""M/D/1 mean waiting time in service times, :math:`\rho / (2 (1-\rho))`, with
    :math:`\rho` clipped to 0.95 (beyond that the phase is bandwidth-bound anyway)."""
    r = jnp.clip(rho, 0.0, 0.95)
    return r / (2.0 * (1.0 - r))
