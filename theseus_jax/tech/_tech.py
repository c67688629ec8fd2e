"""Technology constants for wafer-scale designs (area, energy, yield, packaging, limits).

Values live in ``configs/tech/*.json``, one entry per field with its unit and source, and are
converted to SI at load time (:func:`theseus_jax.io.load_tech`). Inside the model everything
is SI: m, m^2, J, W, s, B, Hz.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

__all__ = ["Tech", "TECH_FIELDS"]

# (field, SI unit, meaning)
TECH_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("mac_area_m2", "m^2", "area of one BF16 MAC incl. local datapath overhead"),
    ("mac_energy_j", "J", "energy of one BF16 MAC (2 FLOP) incl. operand delivery from registers"),
    ("vector_flops_per_mac", "1", "non-GEMM (vector) FLOP/cycle per MAC of the core"),
    (
        "core_overhead_area_m2",
        "m^2",
        "fixed per-core area: control, vector unit, instruction memory",
    ),
    ("sram_density_bits_per_m2", "bit/m^2", "SRAM macro density incl. periphery"),
    ("sram_energy_j_per_bit", "J/bit", "SRAM access energy"),
    ("sram_bw_area_m2_per_bit", "m^2/(bit/cycle)", "extra area per bit/cycle of SRAM port width"),
    ("router_area_m2_per_buffer_bit", "m^2/bit", "router buffer area per stored bit"),
    ("router_area_m2_per_xbar_bit2", "m^2/bit^2", "crossbar area per (ports x width)^2"),
    ("router_energy_j_per_bit", "J/bit", "router traversal energy per bit per hop"),
    ("wire_energy_j_per_bit_m", "J/bit/m", "on-wafer wire energy per bit per metre"),
    ("d2d_energy_stitched_j_per_bit", "J/bit", "reticle crossing, stitched (Cerebras-like)"),
    ("d2d_energy_infosow_j_per_bit", "J/bit", "reticle crossing, die-to-die on InFO-SoW"),
    (
        "d2d_bw_density_stitched_bytes_per_s_m",
        "B/s/m",
        "max crossing bandwidth per m of reticle edge, stitched",
    ),
    (
        "d2d_bw_density_infosow_bytes_per_s_m",
        "B/s/m",
        "max crossing bandwidth per m of reticle edge, InFO-SoW",
    ),
    ("dram_energy_j_per_bit", "J/bit", "DRAM access energy"),
    (
        "dram_edge_bw_density_bytes_per_s_m",
        "B/s/m",
        "max edge-DRAM bandwidth per m of wafer perimeter",
    ),
    ("offwafer_energy_j_per_bit", "J/bit", "wafer-to-wafer (SerDes) energy"),
    ("router_delay_cycles", "cycle", "router pipeline delay per hop"),
    ("link_delay_cycles", "cycle", "link traversal per hop"),
    ("d2d_delay_cycles", "cycle", "extra delay of a reticle crossing"),
    ("reduce_add_cycles", "cycle", "extra per-hop latency of a reduction: ramp in, add, ramp out"),
    ("static_power_w_per_m2", "W/m^2", "leakage power density of powered silicon"),
    ("d0_per_m2", "1/m^2", "defect density"),
    ("nb_alpha", "1", "negative-binomial clustering parameter"),
    ("yield_model", "cat", "0 Murphy, 1 negative binomial, 2 Poisson"),
    ("min_wafer_yield", "1", "required probability that a wafer has enough good cores"),
    ("infosow_assembly_yield", "1", "per-die bonding yield of known-good dies on InFO-SoW"),
    ("reticle_w_m", "m", "reticle field width"),
    ("reticle_h_m", "m", "reticle field height"),
    ("core_gap_m", "m", "spacing between cores (routing channels)"),
    ("reticle_gap_m", "m", "gap between reticles on the wafer (scribe / keep-out)"),
    ("wafer_usable_side_m", "m", "side of the usable square on the wafer"),
    ("max_wafer_power_w", "W", "per-wafer power envelope"),
    ("max_power_density_w_per_m2", "W/m^2", "cooling limit"),
)


class Tech(eqx.Module):
    """Technology constants; every field is a float32 leaf (traced, differentiable)."""

    mac_area_m2: jnp.ndarray
    mac_energy_j: jnp.ndarray
    vector_flops_per_mac: jnp.ndarray
    core_overhead_area_m2: jnp.ndarray
    sram_density_bits_per_m2: jnp.ndarray
    sram_energy_j_per_bit: jnp.ndarray
    sram_bw_area_m2_per_bit: jnp.ndarray
    router_area_m2_per_buffer_bit: jnp.ndarray
    router_area_m2_per_xbar_bit2: jnp.ndarray
    router_energy_j_per_bit: jnp.ndarray
    wire_energy_j_per_bit_m: jnp.ndarray
    d2d_energy_stitched_j_per_bit: jnp.ndarray
    d2d_energy_infosow_j_per_bit: jnp.ndarray
    d2d_bw_density_stitched_bytes_per_s_m: jnp.ndarray
    d2d_bw_density_infosow_bytes_per_s_m: jnp.ndarray
    dram_energy_j_per_bit: jnp.ndarray
    dram_edge_bw_density_bytes_per_s_m: jnp.ndarray
    offwafer_energy_j_per_bit: jnp.ndarray
    router_delay_cycles: jnp.ndarray
    link_delay_cycles: jnp.ndarray
    d2d_delay_cycles: jnp.ndarray
    reduce_add_cycles: jnp.ndarray
    static_power_w_per_m2: jnp.ndarray
    d0_per_m2: jnp.ndarray
    nb_alpha: jnp.ndarray
    yield_model: jnp.ndarray
    min_wafer_yield: jnp.ndarray
    infosow_assembly_yield: jnp.ndarray
    reticle_w_m: jnp.ndarray
    reticle_h_m: jnp.ndarray
    core_gap_m: jnp.ndarray
    reticle_gap_m: jnp.ndarray
    wafer_usable_side_m: jnp.ndarray
    max_wafer_power_w: jnp.ndarray
    max_power_density_w_per_m2: jnp.ndarray

    def __init__(self, **kw):
        names = [f for f, _, _ in TECH_FIELDS]
        missing = [f for f in names if f not in kw]
        extra = sorted(set(kw) - set(names))
        if missing or extra:
            raise ValueError(f"Tech: missing fields {missing}, unknown fields {extra}")
        for f in names:
            setattr(self, f, jnp.asarray(kw[f], dtype=jnp.float32))
