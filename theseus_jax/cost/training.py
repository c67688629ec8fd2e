r"""Shared pieces of the F0 training-step model: pipeline composition and memory footprint.

Per micro-batch, the slowest pipeline stage takes ``t_mb`` (forward + backward + recompute
of ``L/p`` layers, plus the logits layer on the last stage, plus exposed TP communication,
plus ``2 v`` point-to-point transfers). With ``m`` micro-batches and ``v`` virtual stages
(interleaving), a 1F1B or GPipe step takes

.. math:: t_{step} = \left(m + \frac{p-1}{v}\right) t_{mb} + t_{dp,exposed} + t_{opt}

so the bubble fraction is ``(p-1) / (v m)`` (Narayanan et al. SC21, eq. 1 and 2). GPipe and
1F1B share the bubble and differ in activation memory: GPipe stashes ``m`` micro-batches,
1F1B at most ``p`` (interleaved: ``p (1 + (p-1)/(p v))``).

Model-state bytes per parameter follow Megatron's distributed-optimizer table: weights (2 B),
main gradients (``g`` B) and fp32 master weights + Adam moments (12 B): ``2 + g + 12``, or
``2 + g + 12/d`` with the optimizer state sharded over ``d`` data-parallel ranks.
"""

from __future__ import annotations

import jax.numpy as jnp

from .._numerics import safe_div
from ..mapping._plan import Recompute, Schedule

__all__ = [
    "recompute_passes",
    "inflight_microbatches",
    "state_bytes_per_param",
    "activation_bytes",
    "n_microbatches",
]


def n_microbatches(global_batch, dp, micro_batch):
    """Micro-batches per replica per step, ``ceil(B / (d b))`` (a partial one costs a full one)."""
    return jnp.ceil(safe_div(global_batch, dp * micro_batch) - 1e-4)


def recompute_passes(recompute, recompute_layers=1.0):
    """Extra forward passes in the backward: ``(full, selective)``.

    ``full`` is the fraction of layers re-run entirely (``recompute_layers`` with full
    recomputation, else 0); ``selective`` is 1 when only the attention core (score, softmax,
    AV) is recomputed.
    """
    full = jnp.where(recompute == Recompute.FULL, recompute_layers, 0.0)
    sel = jnp.where(recompute == Recompute.SELECTIVE, 1.0, 0.0)
    return full, sel


def inflight_microbatches(schedule, pp, interleave, m):
    """Micro-batches whose activations the first stage holds at once."""
    onefoneb = jnp.minimum(pp, m) * jnp.where(
        interleave > 1, 1.0 + safe_div(pp - 1.0, pp * interleave), 1.0
    )
    return jnp.where(schedule == Schedule.GPIPE, m, onefoneb)


def state_bytes_per_param(main_grad_bytes, dist_opt, dp):
    """Weights + gradients + optimizer bytes per parameter (Megatron dist-optimizer table)."""
    opt = jnp.where(dist_opt > 0, safe_div(12.0, jnp.maximum(dp, 1.0)), 12.0)
    return 2.0 + main_grad_bytes + opt


def activation_bytes(ops, recompute, layers, inflight, recompute_layers=1.0):
    """Activation bytes one device keeps: stash of ``layers`` layers for ``inflight``
    micro-batches, plus one layer's full stash as the working set when recomputing.
    With block recomputation a fraction ``recompute_layers`` of the layers keeps only its
    input and the rest keeps everything."""
    full = recompute_layers * ops.act_bytes_full + (1.0 - recompute_layers) * ops.act_bytes_stash
    per_layer = jnp.where(
        recompute == Recompute.FULL,
        full,
        jnp.where(recompute == Recompute.SELECTIVE, ops.act_bytes_selective, ops.act_bytes_stash),
    )
    working = jnp.where(recompute > 0, ops.act_bytes_stash, 0.0)
    return per_layer * layers * inflight + working
