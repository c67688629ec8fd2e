r"""A GPU reference point for an exploration: the modelled GPU cluster of comparable size.

The reference is the repository's default GPU cluster (``configs/systems/a100_dgx.json``,
the default system of ``theseus sweep``) with as many whole nodes as bring its peak FLOP/s
closest, in ratio, to a target (the explored pool's median system peak; iso-peak, as the
``train_vs_gpu`` and ``inference_vs_baselines`` experiments compare), evaluated at F0 under
the best mapping of the default mapping table (:func:`~theseus_jax.evaluate`, the modelled
GPU baseline of those experiments). Its throughput (tokens/s) and power (W) are drawn on
``pareto.png`` and written to ``summary.json``.

.. math::

    n_\text{nodes} = \max(1, \operatorname{round}(P_\text{target} / (P_\text{GPU}\,g))),
    \qquad n_\text{GPU} = g\, n_\text{nodes}

with :math:`P_\text{GPU}` the per-GPU dense peak at the workload's precision and :math:`g`
the GPUs per node. When no mapping fits that count, the nearest counts are tried.
"""

from __future__ import annotations

import json

import numpy as np

from .._config import resolve_config
from .._violations import describe
from ..design import with_gpus
from ..io import load_system
from ..metrics._evaluate import evaluate

__all__ = ["gpu_reference", "DEFAULT_GPU_SYSTEM"]

DEFAULT_GPU_SYSTEM = "a100_dgx"


def _system_label(system: str) -> str:
    """``"A100 DGX"`` for ``a100_dgx`` (the file's ``name`` without ``" cluster"``)."""
    try:
        name = str(json.loads(resolve_config("systems", system, "system").read_text())["name"])
    except (OSError, ValueError, KeyError):
        return system
    return name.removesuffix(" cluster")


def gpu_reference(workload, target_peak_flops: float, *, system: str = DEFAULT_GPU_SYSTEM):
    """The GPU cluster of comparable peak on ``workload``, F0, best mapping.

    Args:
        workload: a training or inference workload (what the exploration runs).
        target_peak_flops: system peak FLOP/s to match (e.g. the median of the explored
            designs' ``peak_flops``), FLOP/s.
        system: GPU cluster config (name or path), default :data:`DEFAULT_GPU_SYSTEM`.

    Returns:
        ``dict(label, system, n_gpus, tokens_per_s, power_w, peak_flops, target_peak_flops,
        feasible, violated, fidelity, mapping, units)`` (tokens/s, W, FLOP/s), or None when
        no GPU count near the target has a legal mapping or the target is not a positive
        number.
    """
    if not (np.isfinite(target_peak_flops) and target_peak_flops > 0):
        return None
    base = load_system(system)
    per_gpu = float(np.asarray(base.peak_flops(workload.precision_bits)))
    node = int(np.asarray(base.gpus_per_node))
    nodes = max(1, int(np.round(target_peak_flops / per_gpu / node)))
    for k in sorted(range(1, 2 * nodes + 2), key=lambda k: (abs(k - nodes), k)):
        try:
            m = evaluate(with_gpus(base, k * node), workload).metrics
        except ValueError:  # no legal mapping of the workload on this count
            continue
        n = k * node
        feasible = bool(np.asarray(m.feasible).reshape(-1)[0])
        label = f"{_system_label(system)} x {n} (F0, best mapping)"
        return dict(
            label=label if feasible else f"{label}, infeasible",
            system=system,
            n_gpus=n,
            tokens_per_s=float(np.asarray(m.tokens_per_s).reshape(-1)[0]),
            power_w=float(np.asarray(m.power_w).reshape(-1)[0]),
            peak_flops=float(np.asarray(m.peak_flops).reshape(-1)[0]),
            target_peak_flops=float(target_peak_flops),
            feasible=feasible,
            violated=describe(int(np.asarray(m.violations).reshape(-1)[0])),
            fidelity="F0",
            mapping="best of the default mapping table (highest tokens/s)",
            units=dict(tokens_per_s="tokens/s", power_w="W", peak_flops="FLOP/s"),
        )
    return None
