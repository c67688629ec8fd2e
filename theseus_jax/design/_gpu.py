"""A GPU cluster as a design of its own kind (same API as :class:`WaferDesign`).

A cluster is ``n_gpus`` GPUs in nodes of ``gpus_per_node`` joined by NVLink/NVSwitch, nodes
joined by InfiniBand (one NIC per GPU, rail-optimised). The per-GPU numbers come from
``configs/systems/*.json`` with their sources; the three efficiency constants are calibrated
(see the README, "Calibration") and say so in the config.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

__all__ = ["GPUSystem", "GPU_FIELDS"]


GPU_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("n_gpus", "1", "GPUs in the cluster"),
    ("gpus_per_node", "1", "GPUs per NVLink domain"),
    ("peak_flops_16", "FLOP/s", "dense BF16/FP16 tensor peak per GPU"),
    ("peak_flops_8", "FLOP/s", "dense FP8 tensor peak per GPU (0 when unsupported)"),
    ("peak_flops_4", "FLOP/s", "dense FP4 tensor peak per GPU (0 when unsupported)"),
    ("vector_flops", "FLOP/s", "non-tensor (CUDA-core FP32) peak per GPU"),
    ("n_sms", "1", "streaming multiprocessors (GEMM tiles are scheduled on these)"),
    ("gemm_tile_m", "1", "GEMM thread-block tile rows (cuBLAS-like)"),
    ("gemm_tile_n", "1", "GEMM thread-block tile columns"),
    ("hbm_bytes", "B", "HBM capacity per GPU"),
    ("hbm_bw_bytes_per_s", "B/s", "HBM bandwidth per GPU"),
    ("nvlink_bw_bytes_per_s", "B/s", "NVLink bandwidth per GPU, each direction"),
    ("nvlink_latency_s", "s", "NVLink per-step latency (NCCL alpha)"),
    ("ib_bw_bytes_per_s", "B/s", "scale-out bandwidth per GPU, each direction"),
    ("ib_latency_s", "s", "scale-out per-step latency (NCCL alpha)"),
    ("tdp_w", "W", "GPU board power limit"),
    ("idle_w", "W", "GPU static/idle power"),
    ("node_overhead_w", "W", "CPUs, NICs, switches, fans per node"),
    ("flop_energy_j", "J/FLOP", "tensor-core dynamic energy per 16-bit FLOP"),
    ("hbm_energy_j_per_bit", "J/bit", "HBM access energy"),
    ("link_energy_j_per_bit", "J/bit", "NVLink / IB energy"),
    ("die_area_m2", "m^2", "GPU die area (for power density)"),
    ("gemm_efficiency", "1", "calibrated: achievable fraction of tensor peak on large GEMMs"),
    ("gemm_efficiency_8", "1", "achievable fraction of the FP8/FP4 peak on large GEMMs"),
    ("hbm_efficiency", "1", "calibrated: achievable fraction of HBM bandwidth on streaming ops"),
    ("kernel_overhead_s", "s", "calibrated: launch/synchronisation time per kernel"),
)


def _f(x):
    return jnp.asarray(x, dtype=jnp.float32)


class GPUSystem(eqx.Module):
    """One GPU cluster (or a batch of them)."""

    n_gpus: jnp.ndarray
    gpus_per_node: jnp.ndarray
    peak_flops_16: jnp.ndarray
    peak_flops_8: jnp.ndarray
    peak_flops_4: jnp.ndarray
    vector_flops: jnp.ndarray
    n_sms: jnp.ndarray
    gemm_tile_m: jnp.ndarray
    gemm_tile_n: jnp.ndarray
    hbm_bytes: jnp.ndarray
    hbm_bw_bytes_per_s: jnp.ndarray
    nvlink_bw_bytes_per_s: jnp.ndarray
    nvlink_latency_s: jnp.ndarray
    ib_bw_bytes_per_s: jnp.ndarray
    ib_latency_s: jnp.ndarray
    tdp_w: jnp.ndarray
    idle_w: jnp.ndarray
    node_overhead_w: jnp.ndarray
    flop_energy_j: jnp.ndarray
    hbm_energy_j_per_bit: jnp.ndarray
    link_energy_j_per_bit: jnp.ndarray
    die_area_m2: jnp.ndarray
    gemm_efficiency: jnp.ndarray
    gemm_efficiency_8: jnp.ndarray
    hbm_efficiency: jnp.ndarray
    kernel_overhead_s: jnp.ndarray

    def __init__(self, **kw):
        missing = [f for f, _, _ in GPU_FIELDS if f not in kw]
        extra = sorted(set(kw) - {f for f, _, _ in GPU_FIELDS})
        if missing or extra:
            raise ValueError(
                f"GPUSystem: missing fields {missing}, unknown fields {extra}; "
                f"expected exactly {[f for f, _, _ in GPU_FIELDS]}"
            )
        for f, _, _ in GPU_FIELDS:
            setattr(self, f, _f(kw[f]))

    def peak_flops(self, precision_bits):
        """Dense tensor peak at the GEMM precision: 16, 8 or 4 bits (a precision the part
        lacks falls back to the next wider one it has: FP4 -> FP8 -> 16-bit)."""
        fp8 = jnp.where(self.peak_flops_8 > 0, self.peak_flops_8, self.peak_flops_16)
        fp4 = jnp.where(self.peak_flops_4 > 0, self.peak_flops_4, fp8)
        return jnp.where(
            precision_bits <= 4, fp4, jnp.where(precision_bits <= 8, fp8, self.peak_flops_16)
        )

    def gemm_efficiency_at(self, precision_bits):
        """Achievable fraction of :meth:`peak_flops` on large GEMMs at that precision: the
        FP8/FP4 kernels have their own (lower: casts, scaling, shorter K loops per byte)."""
        low = (precision_bits <= 8) & (self.peak_flops_8 > 0)
        return jnp.where(low, self.gemm_efficiency_8, self.gemm_efficiency)


def with_gpus(system: GPUSystem, n: int) -> GPUSystem:
    """A copy of GPU cluster ``system`` with ``n`` GPUs (``n >= 1``)."""
    if n < 1:
        raise ValueError(f"a GPU cluster needs n_gpus >= 1, got {n}")
    kw = {f: getattr(system, f) for f in system.__annotations__}
    kw["n_gpus"] = float(n)
    return GPUSystem(**kw)
