"""Design space: encoding, snapping, sampling, enumeration, loading (theseus_jax.space)."""

from __future__ import annotations

import json
import time

import equinox as eqx
import jax
import numpy as np
import pytest

from theseus_jax import Mapping, evaluate_point, load_training_workload
from theseus_jax._paths import configs_dir
from theseus_jax._violations import Violation
from theseus_jax.design import WAFER_FIELDS, WaferDesign
from theseus_jax.io import load_system, load_tech
from theseus_jax.space import DesignSpace, load_space


@pytest.fixture(scope="module")
def space() -> DesignSpace:
    return load_space("theseus_2024")


def _cols(d: WaferDesign) -> dict[str, np.ndarray]:
    return {f: np.atleast_1d(np.asarray(getattr(d, f))) for f, _, _ in WAFER_FIELDS}


def _same(a: WaferDesign, b: WaferDesign, rtol=0.0):
    ca, cb = _cols(a), _cols(b)
    for f in ca:
        np.testing.assert_allclose(ca[f], cb[f], rtol=rtol, err_msg=f)


def test_metadata(space):
    assert space.dim == len(space.names) == 18
    assert "reticle_rows" not in space.names and "reticle_cols" not in space.names
    assert space.spec("macs_per_core").values == (4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
    assert space.spec("sram_bytes_per_core").values[0] == 32 * 1024
    assert space.spec("sram_bytes_per_core").values[-1] == 2 * 2**20
    assert space.spec("link_bits_per_cycle").values == tuple(float(2**k) for k in range(5, 13))
    assert space.spec("clock_hz").lo == 0.5e9 and space.spec("clock_hz").hi == 2e9
    assert space.spec("integration").labels == ("stitched", "info_sow")
    assert space.fix(clock_hz=1e9).dim == 17
    with pytest.raises(KeyError, match="did you mean 'clock_hz'"):
        space.spec("clock")


def test_sram_pair_table(space):
    kib = 1024.0
    assert space.pair_legal(32 * kib, 256.0)[0]
    assert not space.pair_legal(32 * kib, 2048.0)[0]
    assert space.pair_legal(2048 * kib, 2048.0)[0]
    assert not space.pair_legal(40 * kib, 128.0)[0]  # size not offered by the compiler


def test_sample_n_legal_fast(space):
    t0 = time.perf_counter()
    d = space.sample(jax.random.PRNGKey(0), 20_000)
    elapsed = time.perf_counter() - t0
    assert np.asarray(d.macs_per_core).shape == (20_000,)
    assert space.is_legal(d).all()
    assert (space.violations(d) == 0).all()
    assert elapsed < 10.0
    # reproducible; different keys differ
    d2 = space.sample(jax.random.PRNGKey(0), 20_000)
    _same(d, d2)
    d3 = space.sample(jax.random.PRNGKey(1), 100)
    assert not np.array_equal(np.asarray(d3.core_rows), np.asarray(d.core_rows)[:100])
    # every discrete value is reached (uniform over legal values)
    assert set(np.unique(np.asarray(d.macs_per_core))) == set(space.spec("macs_per_core").values)
    assert set(np.unique(np.asarray(d.integration))) == {0.0, 1.0}
    # maxfit fills the wafer: one more reticle row (or column) would not fit
    from theseus_jax.cost.physical import physical_wsc

    phys = jax.jit(jax.vmap(physical_wsc, in_axes=(0, None)))
    sub = jax.tree_util.tree_map(lambda x: x[:2000], d)
    side = float(space.tech.wafer_usable_side_m)
    for f, dim in (("reticle_rows", "wafer_h_used_m"), ("reticle_cols", "wafer_w_used_m")):
        more = eqx.tree_at(lambda m, f=f: getattr(m, f), sub, getattr(sub, f) + 1.0)
        extent = np.asarray(getattr(phys(more, space.tech), dim))
        at_cap = np.asarray(getattr(sub, f)) == space.spec(f).hi
        assert (extent > side * (1 - 1e-5))[~at_cap].all(), f  # float32 tolerance


def test_sample_unconstrained_has_illegal(space):
    d = space.sample(jax.random.PRNGKey(2), 4000, legal=False)
    v = space.violations(d)
    assert (v & Violation.SRAM_BW_PAIR).any() and (v & Violation.CORE_AREA).any()
    # ...but every value is still on its legal grid
    for s in space.specs:
        if s.kind in ("choice", "log2int", "categorical"):
            assert np.isin(
                np.asarray(getattr(d, s.name)).astype(np.float64), np.float32(s.values)
            ).all()


def test_to_unit_range_and_round_trip(space):
    d = space.sample(jax.random.PRNGKey(4), 500)
    u = space.to_unit(d)
    assert u.shape == (500, space.dim)
    assert (u >= 0).all() and (u <= 1).all()
    back = space.from_unit(u)
    _same(back, d, rtol=1e-6)
    # ordinal encoding of discrete specs sits on the grid k / (n - 1)
    k = space.names.index("macs_per_core")
    assert np.allclose(u[:, k] * 6, np.rint(u[:, k] * 6))
    # encode(decode(u)) is the snapped u (identity on continuous coordinates)
    u0 = np.asarray(jax.random.uniform(jax.random.PRNGKey(5), (200, space.dim)), dtype=np.float64)
    u1 = space.to_unit(space.from_unit(u0))
    c = space.names.index("clock_hz")
    np.testing.assert_allclose(u1[:, c], u0[:, c], atol=1e-6)
    u2 = space.to_unit(space.from_unit(u1))
    np.testing.assert_allclose(u2, u1, atol=1e-6)


def test_snap_idempotent_and_legal_values(space):
    rng = np.random.default_rng(0)
    n = 300
    wse2 = _cols(load_system("wse2"))
    raw = {f: np.broadcast_to(v, (n,)) * rng.uniform(0.3, 3.0, n) for f, v in wse2.items()}
    raw["sram_bytes_per_core"] = rng.uniform(10e3, 3e6, n)
    raw["sram_bw_bits_per_cycle"] = rng.uniform(50, 5000, n)
    raw["integration"] = rng.uniform(0, 1.4, n)
    raw["dram_kind"] = rng.uniform(0, 2.4, n)
    d = WaferDesign(**raw)
    s1 = space.snap(d)
    s2 = space.snap(s1)
    _same(s1, s2)
    # legal values and SRAM pairs (the fit rule is not part of snapping)
    assert not (space.violations(s1) & Violation.SRAM_BW_PAIR).any()
    for s in space.specs:
        x = np.asarray(getattr(s1, s.name), dtype=np.float64)
        if s.kind in ("choice", "log2int", "categorical"):
            assert np.isin(x, np.float32(s.values)).all(), s.name
        if s.kind == "interval":
            assert (x >= np.float32(s.lo)).all() and (x <= np.float32(s.hi)).all(), s.name
    fits = space.violations(s1) == 0
    assert (space.is_legal(s1) == fits).all()
    # a single (unbatched) design snaps too
    one = space.snap(load_system("wse2"))
    assert float(one.sram_bw_bits_per_cycle[0]) in (128.0, 256.0)  # 192 -> nearest legal for 48 KiB


def test_grid_legal_and_complete(space):
    small = space.fix(
        sram_bw_bits_per_cycle=256.0,
        n_vcs=4.0,
        buffer_depth=4.0,
        clock_hz=1e9,
        d2d_bw_ratio=1.0,
        integration=0.0,
        dram_kind=0.0,
        dram_port_bw_bytes_per_s=0.9e12,
        dram_bw_density_bytes_per_s_m2=1e16,
        dram_port_capacity_bytes=36e9,
        spare_core_frac=0.05,
        n_wafers=1.0,
        inter_wafer_bw_bytes_per_s=0.15e12,
    )
    assert small.dim == 5  # macs, sram, link, rows, cols
    g = small.grid()
    n = np.asarray(g.macs_per_core).shape[0]
    assert n > 100
    assert space.is_legal(g).all() and small.is_legal(g).all()
    # complete: every point of the raw Cartesian grid that passes the fit rule, and no other
    import itertools

    from theseus_jax.cost.physical import physical_wsc

    fixed = {
        f: float(small.spec(f).value) for f, _, _ in WAFER_FIELDS if small.spec(f).kind == "fixed"
    }
    combos = np.asarray(list(itertools.product(*(small.spec(f).values for f in small.names))))
    raw = {
        **{f: combos[:, k] for k, f in enumerate(small.names)},
        **{f: np.full(len(combos), v) for f, v in fixed.items()},
    }
    raw = small.snap(
        WaferDesign(**raw, reticle_rows=np.ones(len(combos)), reticle_cols=np.ones(len(combos)))
    )
    code = np.asarray(
        jax.jit(jax.vmap(physical_wsc, in_axes=(0, None)))(raw, small.tech).violations
    )
    assert n == int(((code & (Violation.CORE_AREA | Violation.WAFER_AREA)) == 0).sum())
    # no duplicates
    keys = np.stack([np.asarray(getattr(g, f)) for f in small.names], axis=1)
    assert len(np.unique(keys, axis=0)) == n


def test_grid_too_large_raises(space):
    with pytest.raises(ValueError, match=r"exceed max_points.*space\.fix"):
        space.grid()
    g = space.fix(
        **{f: float(np.asarray(getattr(load_system("wse2"), f))) for f in space.names[2:]}
    ).grid(max_points=1000)
    assert space.is_legal(g).all()


# ---- loading errors ---------------------------------------------------------------------


@pytest.fixture
def space_doc():
    return json.loads((configs_dir() / "spaces" / "theseus_2024.json").read_text())


def _write(tmp_path, doc):
    p = tmp_path / "space.json"
    p.write_text(json.dumps(doc))
    return p


def test_unknown_space_name():
    with pytest.raises(
        ValueError, match=r"unknown design space 'theseus2024'.*Did you mean 'theseus_2024'"
    ):
        load_space("theseus2024")


def test_space_errors_name_the_field(tmp_path, space_doc):
    doc = json.loads(json.dumps(space_doc))
    doc["params"]["macs_per_core"]["lo"] = 6
    with pytest.raises(
        ValueError, match=r"param macs_per_core\.lo: 6 MAC/cycle is not a power of two"
    ):
        load_space(_write(tmp_path, doc))
    doc = json.loads(json.dumps(space_doc))
    doc["params"]["clock_hz"]["unit"] = "Ghz"
    with pytest.raises(ValueError, match=r"param clock_hz\.lo: unknown unit 'Ghz'"):
        load_space(_write(tmp_path, doc))
    doc = json.loads(json.dumps(space_doc))
    del doc["params"]["n_vcs"]
    with pytest.raises(ValueError, match=r"params missing \['n_vcs'\]"):
        load_space(_write(tmp_path, doc))
    doc = json.loads(json.dumps(space_doc))
    doc["params"]["n_vcs"]["kind"] = "range"
    with pytest.raises(ValueError, match=r"param n_vcs: unknown kind 'range'"):
        load_space(_write(tmp_path, doc))
    doc = json.loads(json.dumps(space_doc))
    doc["params"]["core_rows"]["values"] = [8, -16]
    with pytest.raises(ValueError, match=r"param core_rows\.values: value -16 is negative"):
        load_space(_write(tmp_path, doc))
    doc = json.loads(json.dumps(space_doc))
    doc["params"]["dram_kind"]["options"]["hbm"] = 5
    with pytest.raises(ValueError, match=r"param dram_kind\.options\.hbm: code 5 is not valid"):
        load_space(_write(tmp_path, doc))
    doc = json.loads(json.dumps(space_doc))
    del doc["sram_pairs"]["table"]["48"]
    with pytest.raises(ValueError, match=r"sram_pairs\.table: SRAM sizes \['48 KiB'\]"):
        load_space(_write(tmp_path, doc))


# ---- iso-peak wafer count -------------------------------------------------------------------


def _system_peak(d):
    return np.asarray(
        d.reticle_rows
        * d.reticle_cols
        * d.usable_cores_per_reticle()
        * d.core_peak_flops()
        * d.n_wafers,
        np.float64,
    )


def test_iso_peak_wafer_count_is_the_closest_ratio():
    space = load_space("theseus_2024")
    target = 1024 * 312e12  # 1,024 A100 at BF16
    iso = space.iso_peak(target)
    assert "n_wafers" not in iso.names and iso.dim == space.dim - 1
    d = iso.sample(jax.random.PRNGKey(3), 400)
    k = np.asarray(d.n_wafers)
    assert np.all(k == np.round(k)) and np.all(k >= 1)
    ratio = _system_peak(d) / target
    assert np.all(np.abs(np.log(ratio)) <= np.log(1.1) + 1e-9)  # default tol 10 %
    per_wafer = ratio / k
    # no other whole count is closer in log ratio
    for dk in (-1, 1):
        alt = np.maximum(k + dk, 1) * per_wafer
        assert np.all(np.abs(np.log(ratio)) <= np.abs(np.log(alt)) + 1e-9)
    # the cost model's peak agrees with the count's definition
    wl = load_training_workload("gpt3-175b")
    mp = Mapping(tp=0, pp=1, micro_batch=1, recompute=2, stream=1)
    one = jax.tree_util.tree_map(lambda a: a[0], d)
    m = evaluate_point(one, wl, mp, load_tech("n7"))
    assert float(m.peak_flops) == pytest.approx(float(_system_peak(d)[0]), rel=1e-5)


def test_iso_peak_survives_snap_complete_and_json(tmp_path):
    space = load_space("theseus_2024")
    iso = space.iso_peak(3.0e17, lo=1, hi=64)
    d = iso.sample(jax.random.PRNGKey(0), 50)
    again = iso.complete({n: np.asarray(getattr(d, n)) for n in iso.names})
    np.testing.assert_array_equal(np.asarray(again.n_wafers), np.asarray(d.n_wafers))
    assert np.all(iso.is_legal(again))
    assert np.all(np.asarray(d.n_wafers) <= 64)
    doc = json.loads((configs_dir() / "spaces" / "theseus_2024.json").read_text())
    doc["params"]["n_wafers"] = {
        "kind": "isopeak",
        "peak_flops": 300,
        "unit": "PFLOP/s",
        "lo": 1,
        "hi": 64,
    }
    p = tmp_path / "iso.json"
    p.write_text(json.dumps(doc))
    from_file = load_space(p).sample(jax.random.PRNGKey(0), 50)
    np.testing.assert_array_equal(np.asarray(from_file.n_wafers), np.asarray(d.n_wafers))
    doc["params"]["core_rows"] = {"kind": "isopeak", "peak_flops": 1, "lo": 1, "hi": 2}
    p.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="only for 'n_wafers'"):
        load_space(p)
    with pytest.raises(ValueError, match="peak_flops"):
        space.iso_peak(-1.0)
    with pytest.raises(ValueError, match="tol"):
        space.iso_peak(1e17, tol=0.0)
    with pytest.raises(ValueError, match="missing free parameters"):
        iso.complete({"clock_hz": 1e9})


def test_evaluate_with_space_reports_illegal_sram_pairs():
    """F0 alone cannot know the space's SRAM-compiler table; evaluating with ``space=``
    adds SRAM_BW_PAIR to designs built outside the space's repair."""
    import theseus_jax as tj

    space = load_space("theseus_2024")
    tech = load_tech("n7")
    wl = load_training_workload("gpt3-small")
    d = space.sample(jax.random.PRNGKey(0), 4)
    sizes = np.asarray(d.sram_bytes_per_core)
    bws = np.array([128.0, 256.0, 512.0, 1024.0, 2048.0])
    # give design 0 a bandwidth its SRAM size does not come with
    bad_bw = next(b for b in bws if not space.pair_legal(sizes[:1], np.array([b]))[0])
    d = eqx.tree_at(
        lambda x: x.sram_bw_bits_per_cycle, d, d.sram_bw_bits_per_cycle.at[0].set(bad_bw)
    )
    plain = tj.evaluate(d, wl, tech=tech)
    checked = tj.evaluate(d, wl, tech=tech, space=space)
    v = np.asarray(checked.metrics.violations)
    assert v[0] & int(Violation.SRAM_BW_PAIR) and not bool(checked.metrics.feasible[0])
    # the other designs are untouched, and the costs themselves are the same
    np.testing.assert_array_equal(v[1:], np.asarray(plain.metrics.violations)[1:])
    np.testing.assert_allclose(
        np.asarray(checked.metrics.step_time_s), np.asarray(plain.metrics.step_time_s)
    )
