"""Constraint violations as data: a uint32 bitflag per evaluated point.

A violated constraint never raises inside traced code; it sets its bit. ``feasible`` is
``violations == 0``. Use :func:`describe` at the I/O boundary to turn bits into names.
"""

from __future__ import annotations

import enum

import jax.numpy as jnp

__all__ = ["Violation", "accumulate", "describe", "describe_array"]


class Violation(enum.IntFlag):
    """One bit per named constraint (BRIEF section 2)."""

    NONE = 0
    CORE_AREA = 1 << 0  # cores (+ router, gaps) do not fit the 26 x 33 mm reticle
    WAFER_AREA = 1 << 1  # reticles + gaps do not fit the usable wafer
    YIELD = 1 << 2  # probability that the wafer meets its usable-core count is too low
    POWER = 1 << 3  # total power above the per-wafer (or per-GPU TDP) envelope
    POWER_DENSITY = 1 << 4  # W/cm^2 above the cooling limit
    MEMORY_CAPACITY = 1 << 5  # weights+grads+optimizer+activations do not fit SRAM+DRAM(+HBM)
    DRAM_SHORELINE = 1 << 6  # edge DRAM bandwidth exceeds what the wafer perimeter can carry
    D2D_SHORELINE = 1 << 7  # inter-reticle bandwidth exceeds what the reticle edge can carry
    DEVICE_COUNT = 1 << 8  # mapping needs more devices (GPUs / reticles) than the system has
    MAPPING = 1 << 9  # mapping does not divide the workload (heads, layers, batch)
    SRAM_BW_PAIR = 1 << 10  # SRAM size / bandwidth pair not offered by the SRAM compiler
    NO_DRAM = 1 << 11  # weight-streaming mode on a design without DRAM
    LATENCY = 1 << 12  # inference: time per output token above the workload's bound


def accumulate(code, bit: Violation, violated):
    """Set ``bit`` in ``code`` where ``violated`` is true (traced, vmappable)."""
    return code | jnp.where(violated, jnp.uint32(int(bit)), jnp.uint32(0))


def describe(code: int) -> list[str]:
    """Names of the violated constraints of one code, in bit order."""
    code = int(code)
    return [v.name for v in Violation if v.value and (code & v.value)]


def describe_array(codes) -> list[str]:
    """``"; ".join(describe(c))`` for each code of a host array ("" when feasible)."""
    return [", ".join(describe(int(c))) for c in list(jnp.asarray(codes).reshape(-1))]
