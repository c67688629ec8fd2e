"""The wafer-scale chip design pytree: core -> reticle -> wafer -> system (BRIEF section 2).

All numeric knobs are float32 leaves (so a batch of designs is one ``WaferDesign`` whose
leaves have a leading axis, and ``jax.grad`` reaches the continuous ones); categorical choices
are small integers stored as float leaves and decoded with ``jnp.where``. SI units throughout.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

__all__ = ["WaferDesign", "Integration", "DramKind", "WAFER_FIELDS"]


class Integration:
    """How reticles are joined (categorical, stored as a float leaf)."""

    STITCHED = 0  # Cerebras-like: wires across the scribe line at on-die pitch
    INFO_SOW = 1  # Dojo-like: known-good dies on a TSMC InFO-SoW carrier (die-to-die links)


class DramKind:
    """Where DRAM sits (categorical, stored as a float leaf)."""

    NONE = 0
    EDGE = 1  # ports on the wafer periphery, 2 (R + C) ports
    STACKED = 2  # 3-D stacked, one port per reticle


# (field, unit, description) — the order is the order of the unit-cube encoding.
WAFER_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("macs_per_core", "MAC/cycle", "BF16 MACs per core per cycle (2 FLOP each)"),
    ("sram_bytes_per_core", "B", "SRAM per core"),
    ("sram_bw_bits_per_cycle", "bit/cycle", "SRAM bandwidth per core"),
    ("link_bits_per_cycle", "bit/cycle", "NoC link width per direction"),
    ("n_vcs", "1", "router virtual channels"),
    ("buffer_depth", "flit", "router buffer depth per VC"),
    ("clock_hz", "Hz", "core / NoC clock"),
    ("core_rows", "1", "core array rows per reticle"),
    ("core_cols", "1", "core array columns per reticle"),
    ("d2d_bw_ratio", "1", "inter-reticle link bandwidth / core link bandwidth"),
    ("integration", "cat", "0 stitched (Cerebras-like), 1 InFO-SoW (Dojo-like)"),
    ("reticle_rows", "1", "reticle array rows per wafer"),
    ("reticle_cols", "1", "reticle array columns per wafer"),
    ("dram_kind", "cat", "0 none, 1 edge, 2 stacked"),
    ("dram_port_bw_bytes_per_s", "B/s", "edge DRAM bandwidth per port"),
    ("dram_bw_density_bytes_per_s_m2", "B/s/m^2", "stacked DRAM bandwidth per wafer area"),
    ("dram_port_capacity_bytes", "B", "DRAM capacity per port (edge) or per reticle (stacked)"),
    ("spare_core_frac", "1", "fraction of physical cores held as spares"),
    ("n_wafers", "1", "wafers in the system"),
    ("inter_wafer_bw_bytes_per_s", "B/s", "off-wafer bandwidth per wafer, each direction"),
)


def _f(x):
    return jnp.asarray(x, dtype=jnp.float32)


class WaferDesign(eqx.Module):
    """One wafer-scale system design (or a batch: every leaf then has a leading axis)."""

    macs_per_core: jnp.ndarray
    sram_bytes_per_core: jnp.ndarray
    sram_bw_bits_per_cycle: jnp.ndarray
    link_bits_per_cycle: jnp.ndarray
    n_vcs: jnp.ndarray
    buffer_depth: jnp.ndarray
    clock_hz: jnp.ndarray
    core_rows: jnp.ndarray
    core_cols: jnp.ndarray
    d2d_bw_ratio: jnp.ndarray
    integration: jnp.ndarray
    reticle_rows: jnp.ndarray
    reticle_cols: jnp.ndarray
    dram_kind: jnp.ndarray
    dram_port_bw_bytes_per_s: jnp.ndarray
    dram_bw_density_bytes_per_s_m2: jnp.ndarray
    dram_port_capacity_bytes: jnp.ndarray
    spare_core_frac: jnp.ndarray
    n_wafers: jnp.ndarray
    inter_wafer_bw_bytes_per_s: jnp.ndarray

    def __init__(self, **kw):
        missing = [f for f, _, _ in WAFER_FIELDS if f not in kw]
        extra = sorted(set(kw) - {f for f, _, _ in WAFER_FIELDS})
        if missing or extra:
            raise ValueError(
                f"WaferDesign: missing fields {missing}, unknown fields {extra}; "
                f"expected exactly {[f for f, _, _ in WAFER_FIELDS]}"
            )
        for f, _, _ in WAFER_FIELDS:
            setattr(self, f, _f(kw[f]))

    # ---- derived, traced -------------------------------------------------------------------
    def cores_per_reticle(self):
        return self.core_rows * self.core_cols

    def reticles_per_wafer(self):
        return self.reticle_rows * self.reticle_cols

    def usable_cores_per_reticle(self):
        """Cores that run work: physical minus spares."""
        return self.cores_per_reticle() * (1.0 - self.spare_core_frac)

    def core_peak_flops(self):
        """Peak FLOP/s of one core at 16-bit (2 FLOP per MAC)."""
        return 2.0 * self.macs_per_core * self.clock_hz

    def link_bw_bytes_per_s(self):
        """One core-to-core NoC link, one direction."""
        return self.link_bits_per_cycle / 8.0 * self.clock_hz

    def d2d_link_bw_bytes_per_s(self):
        """One inter-reticle link (per edge core), one direction."""
        return self.link_bw_bytes_per_s() * self.d2d_bw_ratio

    def n_dram_ports(self):
        """Edge: ``2 (R + C)`` ports; stacked: one per reticle; none: 0."""
        edge = 2.0 * (self.reticle_rows + self.reticle_cols)
        stacked = self.reticles_per_wafer()
        return jnp.where(
            self.dram_kind == DramKind.EDGE,
            edge,
            jnp.where(self.dram_kind == DramKind.STACKED, stacked, 0.0),
        )

    def dram_capacity_bytes(self):
        """DRAM capacity of one wafer."""
        return self.n_dram_ports() * self.dram_port_capacity_bytes
