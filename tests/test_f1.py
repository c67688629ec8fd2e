"""F1 (F0 compute/memory + simulated NoC): finite metrics, cost record, consistency with F0,
and the effective-bandwidth factor at low load and beyond saturation."""

import jax
import numpy as np
import pytest

import theseus_jax as tj
from theseus_jax.fidelity import F1Cache, F1Cost, evaluate_f1, f1_planned_cost, recompose
from theseus_jax.fidelity._f1 import (
    PACE_FRAC,
    _best_mapping,
    _Counter,
    _f0_pieces_jit,
    _gemm_plan,
    _gemm_window,
    _run_router_cycles,
    f0_rho,
    pace,
    window_cycles,
)
from theseus_jax.metrics._evaluate import default_mappings
from theseus_jax.metrics._metrics import BREAKDOWN_FIELDS, METRIC_FIELDS

CYCLES = 1600  # short windows keep the test fast


@pytest.fixture(scope="module")
def setup():
    tech = tj.load_tech("n7")
    wl = tj.load_training_workload("gpt3-175b")
    space = tj.load_space("theseus_2024")
    ds = space.sample(jax.random.PRNGKey(0), 16)
    maps = default_mappings(ds, wl)
    res = tj.make_evaluator(wl, mappings=maps, tech=tech)(ds)
    i = int(np.where(np.asarray(res.metrics.feasible))[0][0])
    take = lambda t, j: jax.tree_util.tree_map(lambda a: a[j], t)  # noqa: E731
    sampled = (take(ds, i), take(maps, int(res.mapping_index[i])), take(res.metrics, i))
    return tech, wl, sampled


def _check(m1, m0, cost):
    for f in METRIC_FIELDS:
        assert np.all(np.isfinite(np.asarray(getattr(m1, f), float))), f
    step = float(m1.step_time_s)
    assert step >= float(m0.compute_s) * (1 - 1e-5)
    assert sum(float(getattr(m1, f)) for f in BREAKDOWN_FIELDS) == pytest.approx(step, rel=1e-4)
    assert float(m1.tokens_per_s) * step == pytest.approx(
        float(m0.tokens_per_s) * float(m0.step_time_s), rel=1e-4
    )
    assert isinstance(cost, F1Cost)
    assert cost.sim_cycles > 0 and cost.router_cycles >= cost.sim_cycles
    assert cost.wall_s > 0 and cost.sim_s > 0 and cost.n_runs > 0
    assert all(0 < f <= 1 for f in cost.gemm_factor)
    assert 0 < cost.a2a_factor <= 1 and 0 < cost.reticle_factor <= 1
    assert all(w >= 0 for w in cost.gemm_wait_cycles)


def _check_planned(d, wl, tech, mp, cost):
    """The planned cost is the evaluation's router-cycles, or that minus the one extra
    paced GEMM run evaluate_f1 adds for an unsustainable load."""
    planned = f1_planned_cost(d, wl, tech, mapping=mp, max_cycles=CYCLES)
    pc = _f0_pieces_jit(d, tech, tj.physical_wsc(d, tech), wl, mp)
    pc = {k: np.asarray(v, float) for k, v in pc.items()}
    cfg, _, service, _, loads, _ = _gemm_plan(pc, tech, f0_rho(pc), CYCLES)
    extra = _run_router_cycles(cfg, loads.size, window_cycles(service, PACE_FRAC, CYCLES))
    assert planned > 0 and cost.router_cycles - planned in (0, extra)


def test_f1_wse2(setup):
    tech, wl, _ = setup
    d = tj.load_system("wse2")
    cache = F1Cache()  # the evaluator F1 compiles for F0's best mapping, reused below
    m1, cost = evaluate_f1(d, wl, tech, max_cycles=CYCLES, cache=cache)  # mapping: F0's best
    best = _best_mapping(d, wl, tech, cache)
    assert len(cache.evaluators) == 1 and cache.simulators  # filled by the F1 call
    m0 = tj.evaluate_point(d, wl, best, tech)
    _check(m1, m0, cost)
    assert bool(m1.feasible)
    _check_planned(d, wl, tech, best, cost)


def test_f1_sampled_design(setup):
    tech, wl, (d, mp, m0) = setup
    m1, cost = evaluate_f1(d, wl, tech, mapping=mp, metrics0=m0, max_cycles=CYCLES)
    _check(m1, m0, cost)
    _check_planned(d, wl, tech, mp, cost)
    # same compute and memory model: the network terms move the step, not its order
    assert float(m1.step_time_s) == pytest.approx(float(m0.step_time_s), rel=0.5)


def test_recompose_with_ideal_network_is_f0(setup):
    tech, wl, (d, mp, m0) = setup
    pc = _f0_pieces_jit(d, tech, tj.physical_wsc(d, tech), wl, mp)
    pc = {k: np.asarray(v, float) for k, v in pc.items()}
    parts = recompose(pc, m0)
    for k, v in parts.items():
        ref = float(getattr(m0, k))
        assert v == pytest.approx(ref, rel=2e-3, abs=1e-6 * float(m0.step_time_s)), k


def test_factor_is_one_at_low_load_and_below_one_beyond_saturation(setup):
    tech = setup[0]
    # one VC of one flit: the credit loop caps a link well below one flit per cycle
    pc = dict(n_vcs=1.0, buffer_depth=1.0, link_bits=512.0, d2d_bw_ratio=1.0, crosses=0.0)
    ctr = _Counter()
    t_bw, hops, cyc = np.full(7, 1e-3), np.zeros(7), 1e-9  # throughput only
    low = np.full(7, 0.05)
    curve, _ = _gemm_window(pc, tech, low, max_cycles=CYCLES, seed=0, ctr=ctr)
    f_low, w_low = pace(curve, low, t_bw, hops, cyc)
    assert np.allclose(f_low, 1.0, atol=0.02)
    assert np.all(w_low < 1.0)
    assert 0.1 < curve.sat < 0.8
    high = np.full(7, min(1.0, 1.5 * curve.sat))
    curve2, _ = _gemm_window(pc, tech, high, max_cycles=CYCLES, seed=1, ctr=ctr)
    f_high, w_high = pace(curve2, high, t_bw, hops, cyc)
    assert np.all(f_high < 0.9)
    # paced just below the measured saturation
    assert f_high[0] == pytest.approx(0.9 * curve2.sat / high[0], rel=0.05)
    assert np.all(w_high > w_low)
    assert ctr.n_compiles == 1  # the second call reuses the compiled window
    # with many hops, pacing slower than saturation pays off (less queueing)
    f_hops, _ = pace(curve2, high, t_bw, np.full(7, 1e5), cyc)
    assert np.all(f_hops <= f_high + 1e-9)


def test_planned_cost_batch_equals_one_at_a_time():
    tech = tj.load_tech("n7")
    wl = tj.load_training_workload("gpt3-175b")
    ds = tj.load_space("theseus_2024").sample(jax.random.PRNGKey(5), 6)
    maps = default_mappings(ds, wl)
    res = tj.make_evaluator(wl, mappings=maps, tech=tech)(ds)
    mp = jax.tree_util.tree_map(lambda a: a[np.asarray(res.mapping_index)], maps)
    got = f1_planned_cost(ds, wl, tech, mapping=mp, max_cycles=CYCLES)
    take = lambda t, j: jax.tree_util.tree_map(lambda a: a[j], t)  # noqa: E731
    one = [
        f1_planned_cost(take(ds, i), wl, tech, mapping=take(mp, i), max_cycles=CYCLES)
        for i in range(6)
    ]
    assert got.shape == (6,) and got.tolist() == one and min(one) > 0
    with pytest.raises(ValueError, match="needs the batch's mappings"):
        f1_planned_cost(ds, wl, tech)


def test_compiled_simulator_cache_is_bounded():
    """A long exploration compiles a few simulators per design; the cache keeps only the
    most recent (each XLA executable holds thousands of memory maps, and the kernel's
    per-process limit would otherwise end the run with 'Cannot allocate memory')."""
    from theseus_jax.fidelity import _f1
    from theseus_jax.sim import MeshConfig

    cache = _f1.F1Cache(max_simulators=2)
    cfgs = [
        MeshConfig(kx=2, ky=2, n_vcs=1, buf_depth=2, queue_cap=8, link_pipe=p) for p in (1, 2, 3)
    ]
    ctr = _Counter(cache)
    for c in (cfgs[0], cfgs[1], cfgs[0], cfgs[2]):
        _f1._chunk_runner(c, 1, ctr)
    # cfgs[0] was used again before cfgs[2] arrived, so cfgs[1] is the one evicted
    assert ctr.n_compiles == 3 and [k[0] for k in cache.simulators] == [cfgs[0], cfgs[2]]
    # the cache is the caller's: another one starts empty, nothing is shared behind it
    assert not _f1.F1Cache().simulators
    with pytest.raises(ValueError, match="max_simulators"):
        _f1.F1Cache(max_simulators=0)
