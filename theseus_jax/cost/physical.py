"""Physical feasibility of one wafer-scale design: area, fit, yield, shoreline (BRIEF section 2).

:func:`physical_wsc` combines :mod:`~theseus_jax.cost.area` and
:mod:`~theseus_jax.cost.yield_model` into one :class:`Physical` record per design (per
wafer) with a ``violations`` bitflag. It is pure, jit/vmap-able and differentiable in the
continuous design knobs; the violation bits are exact (no relaxation).

Constraints set here (see :class:`~theseus_jax._violations.Violation`):

* ``CORE_AREA``: the core array does not fit the reticle field in either orientation;
* ``WAFER_AREA``: the reticle array plus gaps does not fit the usable square;
* ``YIELD``: wafer yield below ``tech.min_wafer_yield``;
* ``D2D_SHORELINE``: inter-reticle traffic across a reticle edge (both directions,
  ``2 x edge cores x d2d link bandwidth``) above the integration's bandwidth density
  times the edge length;
* ``DRAM_SHORELINE``: edge DRAM (``2 (R + C)`` ports) above the DRAM shoreline density times
  the perimeter of the reticle array.

``SRAM_BW_PAIR`` is a property of the design space (:mod:`theseus_jax.space`);
power and power density are checked by the power model, with
:func:`power_density_limit_w` giving the allowed wafer power.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._violations import Violation, accumulate
from ..design import DramKind, Integration, WaferDesign
from ..tech import Tech
from . import area as _area, yield_model as _ym

__all__ = ["Physical", "physical_wsc", "fit_violations", "power_density_limit_w"]

# Relative slack on geometric limits so that a design built exactly at a limit (e.g. the
# space's "as many reticles as fit" rule) is not rejected by float32 rounding.
_REL_TOL = 1e-5


class Physical(eqx.Module):
    """Physical outputs of one design (float32 scalars; ``violations`` uint32).

    Geometry is in the mesh frame (rows = height) except ``reticle_w_used_m`` /
    ``reticle_h_used_m``, which are the core array's extent along the reticle field's width
    (26 mm) and height (33 mm) after choosing the better orientation (``reticle_rotated``).
    Counts and yields are per wafer.
    """

    core_area_m2: jnp.ndarray
    router_area_m2: jnp.ndarray
    sram_area_m2: jnp.ndarray
    core_pitch_m: jnp.ndarray
    reticle_w_used_m: jnp.ndarray
    reticle_h_used_m: jnp.ndarray
    reticle_rotated: jnp.ndarray
    reticle_utilisation: jnp.ndarray
    reticle_area_m2: jnp.ndarray
    wafer_w_used_m: jnp.ndarray
    wafer_h_used_m: jnp.ndarray
    silicon_area_m2: jnp.ndarray
    physical_cores: jnp.ndarray
    usable_cores: jnp.ndarray
    core_yield: jnp.ndarray
    reticle_yield: jnp.ndarray
    wafer_yield: jnp.ndarray
    expected_good_cores: jnp.ndarray
    violations: jnp.ndarray


def physical_wsc(design: WaferDesign, tech: Tech) -> Physical:
    """Area, fit, yield and shoreline checks of one wafer-scale design.

    .. math::

        A_r = (R_c p)(C_c p), \\quad u_r = A_r / (W_f H_f), \\quad
        A_\\mathrm{Si} = R C A_r

        Y_\\mathrm{core} = Y(A_\\mathrm{core}), \\quad
        Y_r = Q(\\lfloor f_s n \\rfloor + 1,\\ n(1 - Y_\\mathrm{core})), \\quad
        Y_w = \\begin{cases} Y_r^{RC} & \\text{stitched} \\\\
                             y_a^{RC} & \\text{InFO-SoW (known-good dies)} \\end{cases}

    with ``p`` the core pitch, ``R_c x C_c`` cores per reticle (``n`` of them), ``R x C``
    reticles, ``f_s`` the spare fraction.

    Args:
        design: one design (scalar leaves); ``jax.vmap`` for a batch.
        tech: technology constants (scalar leaves).

    Returns:
        :class:`Physical` for one wafer.

    Examples:
        >>> from theseus_jax.io import load_system, load_tech
        >>> p = physical_wsc(load_system("wse2"), load_tech("n7"))
        >>> int(p.violations), round(float(p.core_area_m2) * 1e12, -3)
        (0, 38000.0)

    References:
        hardware.md sections 1.1, 1.4, 1.6; BRIEF section 2 (constraints).
    """
    core_a = _area.core_area_m2(design, tech)
    router_a = _area.router_area_m2(design, tech)
    sram_a = _area.sram_area_m2(design, tech)
    pitch = _area.core_pitch_m(design, tech)
    h = design.core_rows * pitch
    w = design.core_cols * pitch
    field_w, field_h, rotated, overflow = _area.reticle_fit(h, w, tech)
    reticle_a = h * w
    utilisation = reticle_a / (tech.reticle_w_m * tech.reticle_h_m)
    wafer_h, wafer_w = _area.wafer_dims_m(design, h, w, tech)
    n_reticles = design.reticle_rows * design.reticle_cols
    silicon_a = n_reticles * reticle_a

    # ---- yield -------------------------------------------------------------------------
    n_cores = design.core_rows * design.core_cols
    n_spares = jnp.floor(n_cores * design.spare_core_frac)
    p_def = _ym.defect_prob(core_a, tech)
    core_yield = 1.0 - p_def
    reticle_yield = _ym.redundancy_yield(n_cores, n_spares, p_def)
    infosow = design.integration == Integration.INFO_SOW
    per_die = jnp.where(infosow, tech.infosow_assembly_yield, reticle_yield)
    wafer_yield = per_die**n_reticles
    expected_good = n_reticles * n_cores * core_yield

    # ---- shoreline ---------------------------------------------------------------------
    d2d_density = jnp.where(
        infosow,
        tech.d2d_bw_density_infosow_bytes_per_s_m,
        tech.d2d_bw_density_stitched_bytes_per_s_m,
    )
    d2d_link = design.d2d_link_bw_bytes_per_s()
    # edges between reticle rows (length w, core_cols crossing links each way) and between
    # reticle columns (length h, core_rows links); both directions share the shoreline.
    need_row_edge = 2.0 * design.core_cols * d2d_link
    need_col_edge = 2.0 * design.core_rows * d2d_link
    d2d_bad = ((design.reticle_rows > 1) & (need_row_edge > d2d_density * w * (1 + _REL_TOL))) | (
        (design.reticle_cols > 1) & (need_col_edge > d2d_density * h * (1 + _REL_TOL))
    )
    edge_dram_bw = (
        2.0 * (design.reticle_rows + design.reticle_cols) * design.dram_port_bw_bytes_per_s
    )
    perimeter = 2.0 * (wafer_w + wafer_h)
    dram_bad = (design.dram_kind == DramKind.EDGE) & (
        edge_dram_bw > tech.dram_edge_bw_density_bytes_per_s_m * perimeter * (1 + _REL_TOL)
    )

    # ---- violations --------------------------------------------------------------------
    code = _fit_code(overflow, wafer_h, wafer_w, tech)
    code = accumulate(code, Violation.YIELD, wafer_yield < tech.min_wafer_yield)
    code = accumulate(code, Violation.D2D_SHORELINE, d2d_bad)
    code = accumulate(code, Violation.DRAM_SHORELINE, dram_bad)

    f32 = jnp.float32
    return Physical(
        core_area_m2=core_a.astype(f32),
        router_area_m2=router_a.astype(f32),
        sram_area_m2=sram_a.astype(f32),
        core_pitch_m=pitch.astype(f32),
        reticle_w_used_m=field_w.astype(f32),
        reticle_h_used_m=field_h.astype(f32),
        reticle_rotated=rotated.astype(f32),
        reticle_utilisation=utilisation.astype(f32),
        reticle_area_m2=reticle_a.astype(f32),
        wafer_w_used_m=wafer_w.astype(f32),
        wafer_h_used_m=wafer_h.astype(f32),
        silicon_area_m2=silicon_a.astype(f32),
        physical_cores=(n_reticles * n_cores).astype(f32),
        usable_cores=(n_reticles * (n_cores - n_spares)).astype(f32),
        core_yield=core_yield.astype(f32),
        reticle_yield=reticle_yield.astype(f32),
        wafer_yield=wafer_yield.astype(f32),
        expected_good_cores=expected_good.astype(f32),
        violations=code,
    )


def _fit_code(overflow, wafer_h, wafer_w, tech: Tech):
    side = tech.wafer_usable_side_m * (1 + _REL_TOL)
    code = jnp.uint32(0)
    code = accumulate(code, Violation.CORE_AREA, overflow > 1.0 + _REL_TOL)
    return accumulate(code, Violation.WAFER_AREA, (wafer_w > side) | (wafer_h > side))


def fit_violations(design: WaferDesign, tech: Tech) -> jnp.ndarray:
    """Only the geometric bits of :func:`physical_wsc`: ``CORE_AREA`` and ``WAFER_AREA``.

    Cheap to compile (no yield model); the design space uses it for its fit rule. Same
    formulas and tolerances as :func:`physical_wsc`.

    Returns:
        uint32 violation code (scalar).
    """
    h, w = _area.core_array_dims_m(design, tech)
    _, _, _, overflow = _area.reticle_fit(h, w, tech)
    wafer_h, wafer_w = _area.wafer_dims_m(design, h, w, tech)
    return _fit_code(overflow, wafer_h, wafer_w, tech)


def power_density_limit_w(design: WaferDesign, tech: Tech) -> jnp.ndarray:
    """Largest power one wafer may draw: the envelope or the cooling limit, whichever is lower.

    .. math:: P_\\max = \\min(P_\\mathrm{wafer},\\ q_\\max A_\\mathrm{Si})

    Args:
        design: one design.
        tech: uses ``max_wafer_power_w`` and ``max_power_density_w_per_m2``.

    Returns:
        Allowed power per wafer in W (scalar).
    """
    h, w = _area.core_array_dims_m(design, tech)
    silicon = design.reticle_rows * design.reticle_cols * h * w
    return jnp.minimum(tech.max_wafer_power_w, tech.max_power_density_w_per_m2 * silicon)
