"""Core, router, reticle and wafer area of one wafer-scale design (BRIEF section 2, "area").

Pure single-design functions of a :class:`~theseus_jax.design.WaferDesign` and a
:class:`~theseus_jax.tech.Tech`; batch with ``jax.vmap``. All outputs are SI (m, m^2) and
differentiable in the continuous knobs (SRAM bytes, link width, MACs, ...).

The model (areas in m^2):

.. math::

    A_\\mathrm{core} = N_\\mathrm{MAC} a_\\mathrm{MAC}
        + \\frac{8 S}{\\rho_\\mathrm{SRAM}} + W_\\mathrm{SRAM} a_\\mathrm{port}
        + A_\\mathrm{router} + A_\\mathrm{ovh}

    A_\\mathrm{router} = P\\,V\\,D\\,L\\,a_\\mathrm{buf} + (P L)^2 a_\\mathrm{xbar}

with :math:`S` SRAM bytes, :math:`W_\\mathrm{SRAM}` the SRAM port width in bit/cycle,
:math:`P = 5` router ports (N, S, E, W, local), :math:`V` virtual channels, :math:`D` flits
per VC, :math:`L` link bits per flit. The crossbar term is the wire-limited matrix-crossbar
form (``P L`` wires each way at a fixed track pitch, Orion-style). The core pitch is
:math:`\\sqrt{A_\\mathrm{core}} + g_\\mathrm{core}` (square cores), the reticle's core array is
``core_rows x core_cols`` pitches, and the wafer's reticle array adds ``reticle_gap`` between
neighbouring reticles.

References:
    hardware.md sections 1.1 (WSE-2 core 38,000 um^2, half SRAM), 1.4 (26 x 33 mm reticle,
    215 mm square, 0.8 mm reticle gap), 3.1-3.3 (MAC, SRAM, router constants).
    Kahng et al., "ORION 2.0", DATE 2009 (buffer + crossbar router area model).
"""

from __future__ import annotations

import jax.numpy as jnp

from .._numerics import safe_sqrt
from ..design import WaferDesign
from ..tech import Tech

__all__ = [
    "ROUTER_PORTS",
    "router_area_m2",
    "sram_area_m2",
    "core_area_m2",
    "core_pitch_m",
    "core_array_dims_m",
    "reticle_fit",
    "wafer_dims_m",
]

#: Ports of a 2-D mesh router: north, south, east, west and the local (core) port. This is
#: the topology, not a technology constant.
ROUTER_PORTS = 5.0


def router_area_m2(design: WaferDesign, tech: Tech) -> jnp.ndarray:
    """Area of one 2-D mesh router: input buffers plus crossbar.

    .. math:: A = P V D L\\,a_\\mathrm{buf} + (P L)^2 a_\\mathrm{xbar}

    Args:
        design: one design (uses ``n_vcs``, ``buffer_depth``, ``link_bits_per_cycle``).
        tech: uses ``router_area_m2_per_buffer_bit`` and ``router_area_m2_per_xbar_bit2``.

    Returns:
        Router area in m^2 (scalar).
    """
    link = design.link_bits_per_cycle
    buffer_bits = ROUTER_PORTS * design.n_vcs * design.buffer_depth * link
    xbar_bits = ROUTER_PORTS * link
    return (
        buffer_bits * tech.router_area_m2_per_buffer_bit
        + xbar_bits * xbar_bits * tech.router_area_m2_per_xbar_bit2
    )


def sram_area_m2(design: WaferDesign, tech: Tech) -> jnp.ndarray:
    """Area of one core's SRAM: bit cells (with periphery) plus port-width overhead.

    .. math:: A = 8 S / \\rho + W a_\\mathrm{port}

    Returns:
        SRAM area in m^2 (scalar).
    """
    bits = 8.0 * design.sram_bytes_per_core
    return (
        bits / tech.sram_density_bits_per_m2
        + design.sram_bw_bits_per_cycle * tech.sram_bw_area_m2_per_bit
    )


def core_area_m2(design: WaferDesign, tech: Tech) -> jnp.ndarray:
    """Area of one core: MACs + SRAM + router + fixed overhead (m^2, scalar).

    Examples:
        >>> from theseus_jax.io import load_system, load_tech
        >>> a = core_area_m2(load_system("wse2"), load_tech("n7"))
        >>> 30e-9 < float(a) < 46e-9   # WSE-2 core is 38,000 um^2 (hardware.md 1.1)
        True
    """
    return (
        design.macs_per_core * tech.mac_area_m2
        + sram_area_m2(design, tech)
        + router_area_m2(design, tech)
        + tech.core_overhead_area_m2
    )


def core_pitch_m(design: WaferDesign, tech: Tech) -> jnp.ndarray:
    """Centre-to-centre spacing of square cores, :math:`\\sqrt{A_\\mathrm{core}} + g` (m)."""
    return safe_sqrt(core_area_m2(design, tech)) + tech.core_gap_m


def core_array_dims_m(design: WaferDesign, tech: Tech) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Height and width (m) of one reticle's core array, in the mesh frame.

    Height runs along the core rows (``core_rows`` pitches), width along the columns.
    """
    pitch = core_pitch_m(design, tech)
    return design.core_rows * pitch, design.core_cols * pitch


def reticle_fit(h_m, w_m, tech: Tech):
    """Place an ``h x w`` core array in the reticle field in the better orientation.

    The field is ``reticle_w_m x reticle_h_m`` (26 x 33 mm). Orientation A puts the array's
    width along the field width; orientation B rotates it by 90 degrees. The better one has
    the smaller overflow ratio :math:`\\max(w/W_f, h/H_f)`.

    Args:
        h_m: core-array height (mesh frame), m.
        w_m: core-array width (mesh frame), m.
        tech: uses ``reticle_w_m``, ``reticle_h_m``.

    Returns:
        ``(field_w_m, field_h_m, rotated, overflow)``: the array's extent along the field's
        width and height, ``1.0`` if rotated (else ``0.0``), and the overflow ratio (the array
        fits iff ``overflow <= 1``).
    """
    over_a = jnp.maximum(w_m / tech.reticle_w_m, h_m / tech.reticle_h_m)
    over_b = jnp.maximum(h_m / tech.reticle_w_m, w_m / tech.reticle_h_m)
    rotated = over_b < over_a
    field_w = jnp.where(rotated, h_m, w_m)
    field_h = jnp.where(rotated, w_m, h_m)
    return field_w, field_h, rotated.astype(jnp.float32), jnp.minimum(over_a, over_b)


def wafer_dims_m(design: WaferDesign, h_m, w_m, tech: Tech) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Height and width (m) of the reticle array with gaps, in the mesh frame.

    .. math:: H_w = R\\,h + (R - 1) g_\\mathrm{ret}, \\quad W_w = C\\,w + (C - 1) g_\\mathrm{ret}

    The mesh is continuous across reticles, so the reticle array stacks core-array heights
    along the reticle rows. (Rotating the whole wafer pattern does not change the fit in a
    square usable area.)
    """
    gap = tech.reticle_gap_m
    r, c = design.reticle_rows, design.reticle_cols
    return r * h_m + (r - 1.0) * gap, c * w_m + (c - 1.0) * gap
