"""Uncertainty model of the technology constants (theseus_jax.tech._uncertainty)."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theseus_jax._paths import configs_dir
from theseus_jax.io import load_tech, load_tech_ranges
from theseus_jax.tech import (
    TECH_FIELDS,
    Tech,
    TechRanges,
    draws_table,
    rank_sensitivity,
    sample_techs,
)

_NAMES = [f for f, _, _ in TECH_FIELDS]


@pytest.fixture(scope="module")
def n7():
    return load_tech("n7"), load_tech_ranges("n7")


# ---- loading ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["n7", "n5"])
def test_ranges_contain_nominal(name):
    tech, r = load_tech(name), load_tech_ranges(name)
    assert isinstance(r, TechRanges)
    assert len(r.names) >= 10
    assert r.lo.shape == r.hi.shape == (len(r.names),) and len(r.log) == len(r.names)
    assert list(r.names) == [f for f in _NAMES if f in r.names]  # table order
    for j, f in enumerate(r.names):
        lo, hi, v = float(r.lo[j]), float(r.hi[j]), float(getattr(tech, f))
        assert 0 <= lo <= v <= hi and lo < hi, (f, lo, v, hi)
        if r.log[j]:
            assert lo > 0, f
    # design limits, verified numbers and categorical choices carry no range
    for f in (
        "yield_model",
        "min_wafer_yield",
        "max_wafer_power_w",
        "max_power_density_w_per_m2",
        "reticle_w_m",
        "wafer_usable_side_m",
        "router_delay_cycles",
        "link_delay_cycles",
    ):
        assert f not in r.names, f


def test_range_units_are_si(n7):
    _, r = n7
    j = r.names.index("sram_energy_j_per_bit")
    assert float(r.lo[j]) == pytest.approx(0.02e-12, rel=1e-6)
    assert float(r.hi[j]) == pytest.approx(0.05e-12, rel=1e-6)
    assert r.log[j] is False  # hi/lo = 2.5 < 3: uniform by default
    j = r.names.index("nb_alpha")
    assert r.log[j] is True  # hi/lo = 4: log-uniform by default
    j = r.names.index("wire_energy_j_per_bit_m")
    assert r.log[j] is True  # explicit "dist": "loguniform"


def test_ranges_do_not_change_load_tech(n7, tmp_path):
    tech, _ = n7
    doc = json.loads((configs_dir() / "tech" / "n7.json").read_text())
    for e in doc["fields"].values():
        e.pop("range", None)
        e.pop("dist", None)
    plain = load_tech(_write(tmp_path, doc))
    for f in _NAMES:
        assert float(getattr(plain, f)) == float(getattr(tech, f)), f


# ---- sampling --------------------------------------------------------------------------


def test_sample_shapes_bounds_and_nominal(n7):
    tech, r = n7
    n = 512
    techs = sample_techs(tech, r, jax.random.key(0), n)
    assert isinstance(techs, Tech)
    for f in _NAMES:
        a = np.asarray(getattr(techs, f))
        assert a.shape == (n,) and a.dtype == np.float32, f
        if f in r.names:
            j = r.names.index(f)
            assert (a >= np.asarray(r.lo[j])).all() and (a <= np.asarray(r.hi[j])).all(), f
            assert np.ptp(a) > 0, f
        else:
            assert (a == np.asarray(getattr(tech, f))).all(), f


def test_loguniform_median_is_geometric_mean(n7):
    tech, r = n7
    techs = sample_techs(tech, r, jax.random.key(3), 4096)
    checked = 0
    for j, f in enumerate(r.names):
        a = np.log(np.asarray(getattr(techs, f), dtype=np.float64))
        llo, lhi = math.log(float(r.lo[j])), math.log(float(r.hi[j]))
        if r.log[j]:
            # median of u ~ U(0,1) at n = 4096 has sd ~0.008; allow 0.05 of the log-width
            assert abs(np.median(a) - 0.5 * (llo + lhi)) < 0.05 * (lhi - llo), f
            checked += 1
        else:
            lin = np.exp(a)
            mid = 0.5 * (float(r.lo[j]) + float(r.hi[j]))
            assert abs(np.median(lin) - mid) < 0.05 * (float(r.hi[j]) - float(r.lo[j])), f
    assert checked >= 5


def test_sample_deterministic_and_jittable(n7):
    tech, r = n7
    a = sample_techs(tech, r, jax.random.key(7), 64)
    b = jax.jit(sample_techs, static_argnums=3)(tech, r, jax.random.key(7), 64)
    a2 = sample_techs(tech, r, jax.random.key(7), 64)
    c = sample_techs(tech, r, jax.random.key(8), 64)
    for f in r.names:
        np.testing.assert_array_equal(getattr(a, f), getattr(a2, f))
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-5)  # float32 exp
    assert not np.array_equal(np.asarray(a.d0_per_m2), np.asarray(c.d0_per_m2))


def test_vmap_over_sampled_techs(n7):
    tech, r = n7
    techs = sample_techs(tech, r, jax.random.key(1), 256)
    y = jax.vmap(lambda t: t.mac_energy_j * 2.0)(techs)
    assert y.shape == (256,)
    np.testing.assert_allclose(y, 2.0 * techs.mac_energy_j, rtol=1e-6)
    # a vmapped function reading a ranged and an unranged field
    z = jax.vmap(lambda t: t.static_power_w_per_m2 * t.reticle_w_m * t.reticle_h_m)(techs)
    assert z.shape == (256,) and bool(jnp.isfinite(z).all())


def test_sample_rejects_bad_inputs(n7):
    tech, r = n7
    with pytest.raises(ValueError, match="n must be a positive int"):
        sample_techs(tech, r, jax.random.key(0), 0)
    batched = sample_techs(tech, r, jax.random.key(0), 2)
    with pytest.raises(ValueError, match="scalar leaves"):
        sample_techs(batched, r, jax.random.key(0), 2)
    with pytest.raises(ValueError, match="unknown"):
        TechRanges(("not_a_field",), [0.0], [1.0], [False])
    with pytest.raises(ValueError, match="lo < hi"):
        TechRanges(("nb_alpha",), [2.0], [1.0], [False])


def test_draws_table(n7):
    tech, r = n7
    techs = sample_techs(tech, r, jax.random.key(2), 32)
    d = draws_table(techs, r)
    assert list(d) == list(r.names)
    assert all(v.shape == (32,) for v in d.values())


# ---- rank sensitivity ------------------------------------------------------------------


def test_rank_sensitivity_recovers_planted_dependence(n7):
    tech, r = n7
    n = 512
    techs = sample_techs(tech, r, jax.random.key(5), n)
    d = draws_table(techs, r)
    x = d["d0_per_m2"]
    rank = np.argsort(np.argsort(x)).astype(np.float64)
    noise = np.random.default_rng(0).normal(scale=0.3 * n, size=n)
    y = 3.0 * rank + noise
    rho = rank_sensitivity(d, y)
    assert rho[0][0] == "d0_per_m2" and rho[0][1] > 0.8
    assert [abs(v) for _, v in rho] == sorted((abs(v) for _, v in rho), reverse=True)
    assert all(abs(v) < 0.2 for _, v in rho[1:])
    assert {k for k, _ in rho} == set(r.names)


def test_rank_sensitivity_nan_safe():
    x = np.linspace(0.0, 1.0, 50)
    d = {"a": x, "b": x[::-1].copy(), "c": np.full(50, 3.0)}
    y = x**2
    y[[3, 10, 20]] = np.nan
    y[4] = np.inf
    rho = dict(rank_sensitivity(d, y))
    assert rho["a"] == pytest.approx(1.0) and rho["b"] == pytest.approx(-1.0)
    assert rho["c"] == 0.0  # constant draw
    assert all(v == 0.0 for _, v in rank_sensitivity(d, np.full(50, 2.0)))  # constant y
    assert all(v == 0.0 for _, v in rank_sensitivity(d, np.full(50, np.nan)))
    with pytest.raises(ValueError, match="shape"):
        rank_sensitivity({"a": x[:10]}, y)


# ---- schema errors ---------------------------------------------------------------------


def _n7_doc():
    return json.loads((configs_dir() / "tech" / "n7.json").read_text())


def _write(tmp_path, doc, name="t.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


@pytest.mark.parametrize(
    "field,edit,match",
    [
        ("nb_alpha", {"range": [0.5, 1.5]}, r"nb_alpha: range \[0.5, 1.5\] must contain value 2"),
        ("nb_alpha", {"range": [2.0, 2.0]}, r"nb_alpha: range \[2.0, 2.0\] needs lo < hi"),
        ("nb_alpha", {"range": [3.0, 1.0]}, r"nb_alpha: range .* needs lo < hi"),
        ("nb_alpha", {"range": [-1.0, 3.0]}, r"nb_alpha: range .* negative"),
        ("nb_alpha", {"range": [1.0]}, r"nb_alpha: \"range\" must be a list of two"),
        ("nb_alpha", {"range": [1.0, "x"]}, r"nb_alpha: \"range\" must be a list of two"),
        ("yield_model", {"range": [0, 2]}, r"yield_model: .*categorical.*cannot have a \"range\""),
        ("nb_alpha", {"dist": "normal"}, r"nb_alpha: \"dist\" must be one of"),
        ("reduce_add_cycles", {"dist": "uniform"}, None),  # has a range: fine
        ("core_gap_m", {"dist": "uniform"}, r"core_gap_m: \"dist\" needs a \"range\""),
        ("sram_energy_j_per_bit", {"range": [0.0, 0.05], "dist": "loguniform"}, r"lo > 0"),
        ("nb_alpha", {"range": [0.0, 2.0]}, r"nb_alpha: range .* must be > 0"),
        ("infosow_assembly_yield", {"range": [0.99, 1.2]}, r"must lie in \[0, 1\]"),
        ("mac_area_m2", {"ranges": [1.0, 2.0]}, r"mac_area_m2: .*unknown keys \['ranges'\]"),
    ],
)
def test_schema_errors_name_field(tmp_path, field, edit, match):
    doc = _n7_doc()
    doc["fields"][field].update(edit)
    p = _write(tmp_path, doc)
    if match is None:
        load_tech(p)
        load_tech_ranges(p)
        return
    with pytest.raises(ValueError, match=match):
        load_tech(p)
    with pytest.raises(ValueError, match=str(p.name)):
        load_tech_ranges(p)


def test_default_dist_rule(tmp_path):
    doc = _n7_doc()
    doc["fields"]["nb_alpha"].update(range=[1.0, 2.9])  # hi/lo < 3
    doc["fields"]["nb_alpha"].pop("dist", None)
    doc["fields"]["reduce_add_cycles"].update(range=[2.0, 6.0], dist="loguniform")
    r = load_tech_ranges(_write(tmp_path, doc))
    assert r.log[r.names.index("nb_alpha")] is False
    assert r.log[r.names.index("reduce_add_cycles")] is True
