"""The metric records every cost function returns for one (design, mapping) point:
:class:`Metrics` (training) and :class:`InferenceMetrics` (inference)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

__all__ = [
    "Metrics",
    "InferenceMetrics",
    "BREAKDOWN_FIELDS",
    "METRIC_FIELDS",
    "INFERENCE_BREAKDOWN_FIELDS",
    "INFERENCE_METRIC_FIELDS",
]

# Time components that add up to step_time_s (seconds per optimizer step).
BREAKDOWN_FIELDS = (
    "compute_s",  # GEMMs and vector ops on the critical path (m micro-batches)
    "memory_s",  # exposed memory time: memory-bound kernels, weight streaming stalls
    "overhead_s",  # kernel launch / synchronisation
    "tp_comm_s",  # exposed tensor-parallel / on-mesh GEMM communication
    "pp_comm_s",  # pipeline point-to-point transfers
    "bubble_s",  # pipeline fill and drain
    "dp_comm_s",  # exposed gradient reduction (and parameter all-gather)
    "optimizer_s",  # optimizer update
)


class Metrics(eqx.Module):
    """F0 results for one (design, mapping) point; every field is a float32/uint32 scalar.

    Attributes (SI units):
        step_time_s, tokens_per_s, mfu (model FLOPs / peak), hfu (hardware FLOPs incl.
        recomputation / peak), power_w (whole system), energy_per_token_j,
        model_flops (per step), hw_flops (per step, incl. recomputation), peak_flops (system),
        mem_bytes (per device: GPU or core-region, peak need), mem_capacity_bytes,
        the breakdown fields (see ``BREAKDOWN_FIELDS``), silicon_area_m2,
        reticle_utilisation, wafer_yield (1 for GPUs: dies are binned), n_devices (GPUs or
        reticles in use), violations (bitflags, :class:`~theseus_jax.Violation`), feasible.
    """

    step_time_s: jnp.ndarray
    tokens_per_s: jnp.ndarray
    mfu: jnp.ndarray
    hfu: jnp.ndarray
    power_w: jnp.ndarray
    energy_per_token_j: jnp.ndarray
    model_flops: jnp.ndarray
    hw_flops: jnp.ndarray
    peak_flops: jnp.ndarray
    mem_bytes: jnp.ndarray
    mem_capacity_bytes: jnp.ndarray
    compute_s: jnp.ndarray
    memory_s: jnp.ndarray
    overhead_s: jnp.ndarray
    tp_comm_s: jnp.ndarray
    pp_comm_s: jnp.ndarray
    bubble_s: jnp.ndarray
    dp_comm_s: jnp.ndarray
    optimizer_s: jnp.ndarray
    silicon_area_m2: jnp.ndarray
    reticle_utilisation: jnp.ndarray
    wafer_yield: jnp.ndarray
    n_devices: jnp.ndarray
    violations: jnp.ndarray
    feasible: jnp.ndarray


METRIC_FIELDS = tuple(Metrics.__annotations__)


# Time components of one decode step (seconds per output token per sequence) and of the
# prefill; each group adds up to tpot_s and ttft_s respectively.
INFERENCE_BREAKDOWN_FIELDS = (
    "prefill_compute_s",
    "prefill_memory_s",
    "prefill_comm_s",
    "prefill_overhead_s",
    "decode_compute_s",
    "decode_weights_s",
    "decode_kv_s",
    "decode_comm_s",
    "decode_overhead_s",
)


class InferenceMetrics(eqx.Module):
    """F0 results of one inference (design, mapping) point (float32 scalars).

    Attributes (SI units): ttft_s (time to first token: the prefill of a micro-batch through
    the pipeline), tpot_s (time per output token of one sequence), total_time_s (prefill +
    ``output_len - 1`` decode steps), tokens_per_s (output tokens/s of the whole system),
    tokens_per_s_per_user (``1 / tpot``), tokens_per_s_per_w, power_w, energy_per_token_j
    (per output token), flops (the whole run: prefill + decode), peak_flops,
    mem_bytes / mem_capacity_bytes (per device), the
    prefill and decode breakdowns (``INFERENCE_BREAKDOWN_FIELDS``: where one micro-batch's
    time goes, prefill summing to ttft_s, decode to tpot_s), silicon_area_m2,
    reticle_utilisation, wafer_yield, n_devices, violations, feasible.
    """

    ttft_s: jnp.ndarray
    tpot_s: jnp.ndarray
    total_time_s: jnp.ndarray
    tokens_per_s: jnp.ndarray
    tokens_per_s_per_user: jnp.ndarray
    tokens_per_s_per_w: jnp.ndarray
    power_w: jnp.ndarray
    energy_per_token_j: jnp.ndarray
    flops: jnp.ndarray
    peak_flops: jnp.ndarray
    mem_bytes: jnp.ndarray
    mem_capacity_bytes: jnp.ndarray
    prefill_compute_s: jnp.ndarray
    prefill_memory_s: jnp.ndarray
    prefill_comm_s: jnp.ndarray
    prefill_overhead_s: jnp.ndarray
    decode_compute_s: jnp.ndarray
    decode_weights_s: jnp.ndarray
    decode_kv_s: jnp.ndarray
    decode_comm_s: jnp.ndarray
    decode_overhead_s: jnp.ndarray
    silicon_area_m2: jnp.ndarray
    reticle_utilisation: jnp.ndarray
    wafer_yield: jnp.ndarray
    n_devices: jnp.ndarray
    violations: jnp.ndarray
    feasible: jnp.ndarray


INFERENCE_METRIC_FIELDS = tuple(InferenceMetrics.__annotations__)
