"""Area, fit, yield and shoreline model (theseus_jax.cost.{area,yield_model,physical})."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import with_leaves

from theseus_jax._violations import Violation, describe
from theseus_jax.cost import yield_model as ym
from theseus_jax.cost.area import core_area_m2, router_area_m2
from theseus_jax.cost.physical import Physical, fit_violations, physical_wsc, power_density_limit_w
from theseus_jax.io import load_system, load_tech
from theseus_jax.space import load_space

# ---- golden numbers: Cerebras WSE-2 -----------------------------------------------------


def test_wse2_core_area_near_published(wse2, n7):
    # hardware.md 1.1 [S-l]: 38,000 um^2 per WSE-2 core (half SRAM)
    p = physical_wsc(wse2, n7)
    assert abs(float(p.core_area_m2) / 38_000e-12 - 1.0) < 0.30
    # the SRAM (bit cells) is about half of it
    sram_cells = 8 * 48 * 1024 / float(n7.sram_density_bits_per_m2)
    assert 0.4 < sram_cells / float(p.core_area_m2) < 0.6


def test_wse2_84_reticles_fit_215mm(wse2, n7):
    p = physical_wsc(wse2, n7)
    assert int(p.violations) == 0, describe(int(p.violations))
    assert float(p.wafer_w_used_m) <= 0.215 and float(p.wafer_h_used_m) <= 0.215
    assert int(wse2.reticles_per_wafer()) == 84
    # as many as fit (the space's maxfit rule) is at least the 7 x 12 = 84 Cerebras uses
    gap, side = float(n7.reticle_gap_m), float(n7.wafer_usable_side_m)
    h = float(p.core_pitch_m) * float(wse2.core_rows)
    w = float(p.core_pitch_m) * float(wse2.core_cols)
    assert math.floor((side + gap) / (h + gap)) * math.floor((side + gap) / (w + gap)) >= 84
    # ~850k active cores (hardware.md 1.1 [V-a]), everything yields with 7% spares
    assert 840_000 < float(p.usable_cores) < 860_000
    assert float(p.wafer_yield) > 0.99
    assert 0.3 < float(p.reticle_utilisation) < 0.7


@pytest.mark.parametrize("name", ["wse2", "wse3", "dojo_tile"])
def test_reference_systems_are_feasible(name):
    from theseus_jax.io import system_tech_name

    p = physical_wsc(load_system(name), load_tech(system_tech_name(name)))
    assert int(p.violations) == 0, describe(int(p.violations))
    leaves = jax.tree_util.tree_leaves(p)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)


def test_router_area_in_hardware_md_range(n7, wse2):
    # hardware.md 3.3 [U]: 0.01-0.05 mm^2 for a 5-port 128-bit router at 7 nm (4 VCs x 4 flits)
    d = with_leaves(wse2, link_bits_per_cycle=128.0, n_vcs=4.0, buffer_depth=4.0)
    a = float(router_area_m2(d, n7))
    assert 0.01e-6 <= a <= 0.05e-6


# ---- yield closed forms -----------------------------------------------------------------


def test_poisson_h100_die():
    # hardware.md 1.6 worked example: e^-0.814 = 0.443 for an 8.14 cm^2 die at 0.1 /cm^2
    x = jnp.float32(8.14 * 0.1)
    assert float(1 - ym.poisson_defect_prob(x)) == pytest.approx(math.exp(-0.814), rel=1e-6)
    assert math.exp(-0.814) == pytest.approx(0.443, abs=5e-4)


@pytest.mark.parametrize("x", [1e-7, 3.4e-5, 1e-3, 0.05, 0.0999, 0.1, 0.5, 0.814, 3.0, 20.0])
def test_murphy_matches_closed_form(x):
    want = 1.0 - ((1.0 - math.exp(-x)) / x) ** 2  # float64 oracle (fine for x >= 1e-7 here)
    if x < 1e-3:  # oracle cancellation: use the series 1 - Y = x - 7/12 x^2 + ...
        want = x - 7.0 / 12.0 * x * x + 0.25 * x**3
    got = float(ym.murphy_defect_prob(jnp.float32(x)))
    assert got == pytest.approx(want, rel=2e-5)


@pytest.mark.parametrize("x,alpha", [(0.814, 2.0), (0.814, 0.5), (1e-5, 2.0), (2.0, 1.0)])
def test_neg_binomial_matches_closed_form(x, alpha):
    want = 1.0 - (1.0 + x / alpha) ** (-alpha)
    got = float(ym.neg_binomial_defect_prob(jnp.float32(x), jnp.float32(alpha)))
    assert got == pytest.approx(want, rel=1e-5)
    # alpha = 1 is Seeds' model 1 / (1 + x)
    if alpha == 1.0:
        assert 1.0 - got == pytest.approx(1.0 / (1.0 + x), rel=1e-5)


def test_neg_binomial_large_alpha_is_poisson():
    x = jnp.float32(0.814)
    assert float(ym.neg_binomial_defect_prob(x, jnp.float32(1e5))) == pytest.approx(
        float(ym.poisson_defect_prob(x)), rel=1e-3
    )


def test_yield_model_selection(n7):
    area = jnp.float32(8.14e-4)  # H100-sized die, D0 = 0.1 /cm^2 -> x = 0.814
    for code, want in [
        (ym.MURPHY, ((1 - math.exp(-0.814)) / 0.814) ** 2),
        (ym.NEG_BINOMIAL, (1 + 0.814 / 2.0) ** -2.0),
        (ym.POISSON, math.exp(-0.814)),
    ]:
        t = with_leaves(n7, yield_model=float(code), d0_per_m2=1000.0, nb_alpha=2.0)
        assert float(ym.die_yield(area, t)) == pytest.approx(want, rel=1e-5)


def test_redundancy_yield_closed_forms():
    lam, n = 0.7, 1000.0
    p = lam / n
    # zero spares: P(no defect) = e^-lam; two spares: e^-lam (1 + lam + lam^2/2)
    assert float(ym.redundancy_yield(n, 0.0, p)) == pytest.approx(math.exp(-lam), rel=1e-5)
    assert float(ym.redundancy_yield(n, 2.9, p)) == pytest.approx(
        math.exp(-lam) * (1 + lam + lam**2 / 2), rel=1e-5
    )
    # no defects at all -> 1, finite
    assert float(ym.redundancy_yield(n, 0.0, 0.0)) == pytest.approx(1.0)


# ---- monotonicity ---------------------------------------------------------------------


def test_more_sram_larger_core(wse2, n7):
    sizes = [32 * 1024, 48 * 1024, 256 * 1024, 2 * 1024 * 1024]
    areas = [float(core_area_m2(with_leaves(wse2, sram_bytes_per_core=s), n7)) for s in sizes]
    assert all(b > a for a, b in zip(areas, areas[1:], strict=False))


def test_higher_d0_lower_yield(wse2, n7):
    big = with_leaves(wse2, macs_per_core=256.0, sram_bytes_per_core=2 * 2**20, spare_core_frac=0.0)
    ys = []
    for d0 in [100.0, 1000.0, 5000.0, 20000.0]:
        p = physical_wsc(big, with_leaves(n7, d0_per_m2=d0))
        ys.append((float(p.core_yield), float(p.reticle_yield)))
    for (c0, r0), (c1, r1) in zip(ys, ys[1:], strict=False):
        assert c1 < c0 and r1 < r0


def test_more_spares_higher_reticle_yield(wse2, n7):
    t = with_leaves(n7, d0_per_m2=20000.0)  # 2 /cm^2: a regime where spares matter
    ry = [
        float(physical_wsc(with_leaves(wse2, spare_core_frac=f), t).reticle_yield)
        for f in [0.0, 0.0002, 0.001, 0.01]
    ]
    assert all(b >= a for a, b in zip(ry, ry[1:], strict=False))
    assert ry[-1] > ry[0]


# ---- violations -----------------------------------------------------------------------


def test_oversized_core_array_sets_core_area(wse2, n7):
    d = with_leaves(wse2, sram_bytes_per_core=2 * 2**20, core_rows=128.0, core_cols=128.0)
    code = int(physical_wsc(d, n7).violations)
    assert code & Violation.CORE_AREA
    assert "CORE_AREA" in describe(code)


def test_too_many_reticles_sets_wafer_area(wse2, n7):
    d = with_leaves(wse2, reticle_rows=20.0, reticle_cols=20.0)
    code = int(physical_wsc(d, n7).violations)
    assert code & Violation.WAFER_AREA and not code & Violation.CORE_AREA
    assert describe(code) == ["WAFER_AREA"]


def test_yield_violation(wse2, n7):
    d = with_leaves(wse2, spare_core_frac=0.0, macs_per_core=256.0)
    code = int(physical_wsc(d, with_leaves(n7, d0_per_m2=5000.0)).violations)
    assert "YIELD" in describe(code)


def test_d2d_shoreline_violation(wse2, n7):
    # InFO-SoW (10 Tb/s/mm) with 4096-bit links at 2 GHz on small cores: far above the edge
    d = with_leaves(
        wse2,
        integration=1.0,
        link_bits_per_cycle=4096.0,
        clock_hz=2e9,
        core_rows=16.0,
        core_cols=16.0,
    )
    assert "D2D_SHORELINE" in describe(int(physical_wsc(d, n7).violations))
    one = with_leaves(d, reticle_rows=1.0, reticle_cols=1.0)  # no crossings, no violation
    assert not int(physical_wsc(one, n7).violations) & Violation.D2D_SHORELINE


def test_dram_shoreline_violation(wse2, n7):
    ok = with_leaves(wse2, dram_kind=1.0, dram_port_bw_bytes_per_s=0.9e12)
    assert not int(physical_wsc(ok, n7).violations) & Violation.DRAM_SHORELINE
    bad = with_leaves(ok, dram_port_bw_bytes_per_s=20e12)
    assert "DRAM_SHORELINE" in describe(int(physical_wsc(bad, n7).violations))
    stacked = with_leaves(bad, dram_kind=2.0)  # stacked DRAM has no shoreline limit
    assert not int(physical_wsc(stacked, n7).violations) & Violation.DRAM_SHORELINE


def test_power_limit(wse2, n7):
    p = physical_wsc(wse2, n7)
    lim = float(power_density_limit_w(wse2, n7))
    want = min(
        float(n7.max_wafer_power_w), float(n7.max_power_density_w_per_m2) * float(p.silicon_area_m2)
    )
    assert lim == pytest.approx(want, rel=1e-6)


# ---- JAX transformations -------------------------------------------------------------


def test_grad_finite(wse2, n7):
    t = with_leaves(n7, d0_per_m2=20000.0)  # yield not saturated, so its gradient is non-trivial
    base = with_leaves(wse2, spare_core_frac=0.001)

    def f(sram, clock, which):
        d = with_leaves(base, sram_bytes_per_core=1.0, clock_hz=1.0)
        d = eqx.tree_at(lambda m: (m.sram_bytes_per_core, m.clock_hz), d, (sram, clock))
        return getattr(physical_wsc(d, t), which)

    for which in ("reticle_utilisation", "wafer_yield", "core_area_m2"):
        g = jax.grad(f, argnums=(0, 1))(jnp.float32(48 * 1024), jnp.float32(1.1e9), which)
        assert all(bool(jnp.isfinite(x)) for x in g), which
    g_util = jax.grad(f)(jnp.float32(48 * 1024), jnp.float32(1.1e9), "reticle_utilisation")
    g_yield = jax.grad(f)(jnp.float32(48 * 1024), jnp.float32(1.1e9), "wafer_yield")
    assert float(g_util) > 0 and float(g_yield) < 0


def test_jit_vmap_equivalence(n7):
    space = load_space("theseus_2024")
    batch = space.sample(jax.random.PRNGKey(3), 16, legal=False)
    out = jax.jit(jax.vmap(physical_wsc, in_axes=(0, None)))(batch, n7)
    assert isinstance(out, Physical)
    for i in (0, 7, 15):
        one = jax.tree_util.tree_map(lambda x, i=i: x[i], batch)
        ref = physical_wsc(one, n7)
        for a, b in zip(
            jax.tree_util.tree_leaves(ref), jax.tree_util.tree_leaves(out), strict=True
        ):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b)[i], rtol=1e-5)
    assert out.violations.dtype == jnp.uint32


def test_fit_violations_match_physical(n7):
    space = load_space("theseus_2024")
    batch = space.sample(jax.random.PRNGKey(4), 256, legal=False)
    full = jax.jit(jax.vmap(physical_wsc, in_axes=(0, None)))(batch, n7).violations
    fit = jax.jit(jax.vmap(fit_violations, in_axes=(0, None)))(batch, n7)
    mask = int(Violation.CORE_AREA | Violation.WAFER_AREA)
    np.testing.assert_array_equal(np.asarray(full) & mask, np.asarray(fit))
    assert (np.asarray(fit) != 0).any() and (np.asarray(fit) == 0).any()
