"""F1 (F0 compute/memory + simulated NoC): finite metrics, cost record, consistency with F0,
and the effective-bandwidth factor at low load and beyond saturation."""

import jax
import numpy as np
import pytest

import theseus_jax as tj
from theseus_jax.cost.noc import analytic_factors, ideal_factors, stream_rho
from theseus_jax.fidelity import (
    F1Cache,
    F1Cost,
    NetParams,
    compose,
    evaluate_f1,
    f1_planned_cost,
    wafer_terms,
)
from theseus_jax.fidelity._windows import (
    PACE_FRAC,
    Counter,
    _chunk_runner,
    gemm_plan,
    gemm_window,
    pace,
    round_chunk,
    window_cycles,
)
from theseus_jax.metrics import BREAKDOWN_FIELDS, INFERENCE_METRIC_FIELDS, METRIC_FIELDS
from theseus_jax.metrics._evaluate import default_mappings

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
    t = wafer_terms(d, tech, wl, mp)
    rho = np.asarray(stream_rho(t.streams), float)
    cfg, _, service, _, loads, _ = gemm_plan(NetParams.of(d, t.crosses), tech, rho, CYCLES)
    cyc = window_cycles(service, PACE_FRAC, CYCLES)
    extra = sum(round_chunk(c) for c in cyc) * loads.size * cfg.n
    assert planned > 0 and cost.router_cycles - planned in (0, extra)


def test_f1_wse2(setup):
    tech, wl, _ = setup
    d = tj.load_system("wse2")
    cache = F1Cache()
    maps = default_mappings(d, wl)
    # F1 at F0's best mapping, through the public evaluator
    res = tj.make_evaluator(
        wl, mappings=maps, tech=tech, fidelity="f1", f1_max_cycles=CYCLES, f1_cache=cache
    )(d)
    assert cache.simulators  # filled by the F1 call, kept by the caller
    best = jax.tree_util.tree_map(lambda a: a[int(res.mapping_index[0])], maps)
    m1 = jax.tree_util.tree_map(lambda a: a[0], res.metrics)
    (cost,) = res.f1_costs
    m0 = tj.evaluate_point(d, wl, best, tech)
    _check(m1, m0, cost)
    assert bool(m1.feasible)
    _check_planned(d, wl, tech, best, cost)
    with pytest.raises(ValueError, match="needs the mapping"):
        evaluate_f1(d, wl, tech, mapping=None)


def test_f1_sampled_design(setup):
    tech, wl, (d, mp, m0) = setup
    m1, cost = evaluate_f1(d, wl, tech, mapping=mp, metrics0=m0, max_cycles=CYCLES)
    _check(m1, m0, cost)
    _check_planned(d, wl, tech, mp, cost)
    # same compute and memory model: the network terms move the step, not its order
    assert float(m1.step_time_s) == pytest.approx(float(m0.step_time_s), rel=0.5)


def _assert_same(a, b, fields, rtol=1e-6):
    """Equal to ``rtol``; breakdown times (differences of larger terms, in float32) to
    ``rtol`` of the step / run time they add up to."""
    main = getattr(b, "step_time_s", None)
    main = np.asarray(main if main is not None else b.total_time_s, np.float64)
    for k in fields:
        x, y = np.asarray(getattr(a, k), np.float64), np.asarray(getattr(b, k), np.float64)
        atol = rtol * main if k.endswith("_s") else 0.0
        assert np.all(np.abs(x - y) <= rtol * np.abs(y) + atol), (k, x, y)


def _f0_factors(d, tech, wl, mp):
    t = wafer_terms(d, tech, wl, mp)
    return analytic_factors(t.streams, t.eta_reticle)


def test_f1_with_f0_factors_is_f0_training(setup):
    """One term definition: F1's pipeline composed with F0's own factors gives F0."""
    tech, wl, (d, mp, _) = setup
    m0 = tj.evaluate_point(d, wl, mp, tech)
    m1, cost = evaluate_f1(d, wl, tech, mapping=mp, factors=_f0_factors(d, tech, wl, mp))
    assert cost.sim_cycles == 0  # composed, not simulated
    _assert_same(m1, m0, METRIC_FIELDS)
    # every mapping of the table: compose(terms, analytic factors) == F0, jitted and vmapped
    maps = default_mappings(d, wl)
    sub = jax.tree_util.tree_map(lambda a: a[::97], maps)
    ref = jax.jit(jax.vmap(lambda m: tj.evaluate_point(d, wl, m, tech)))(sub)
    got = jax.jit(
        jax.vmap(lambda m: compose(wafer_terms(d, tech, wl, m), _f0_factors(d, tech, wl, m)))
    )(sub)
    _assert_same(got, ref, METRIC_FIELDS)


def test_f1_with_f0_factors_is_f0_inference(setup):
    tech = setup[0]
    d = tj.load_system("wse2")
    wl = tj.load_inference_workload("llama-3.1-8b", batch=8, prompt_len=512, output_len=32)
    maps = default_mappings(d, wl)
    sub = jax.tree_util.tree_map(lambda a: a[::7], maps)
    ref = jax.vmap(lambda m: tj.evaluate_point(d, wl, m, tech))(sub)
    got = jax.vmap(lambda m: compose(wafer_terms(d, tech, wl, m), _f0_factors(d, tech, wl, m)))(sub)
    _assert_same(got, ref, INFERENCE_METRIC_FIELDS)


def test_ideal_network_is_a_lower_bound(setup):
    """Ideal factors (full bandwidth, no waiting) never make a step slower than F0's."""
    tech, wl, (d, _, _) = setup
    maps = jax.tree_util.tree_map(lambda a: a[::53], default_mappings(d, wl))

    def both(m):
        t = wafer_terms(d, tech, wl, m)
        ideal = compose(t, ideal_factors(t.streams))
        return ideal.step_time_s, compose(t, analytic_factors(t.streams, t.eta_reticle)).step_time_s

    ideal, f0 = jax.vmap(both)(maps)
    assert np.all(np.asarray(ideal) <= np.asarray(f0) * (1 + 1e-6))
    assert np.any(np.asarray(ideal) < np.asarray(f0) * (1 - 1e-3))  # the network matters


def test_f1_inference_wse2(setup):
    """F1 covers inference: prefill's and decode's GEMM streams simulated (10 streams), the
    pipeline transfers on the reticle window; times and constraints re-composed."""
    tech = setup[0]
    d = tj.load_system("wse2")
    wl = tj.load_inference_workload("llama-3.1-8b", batch=8, prompt_len=512, output_len=32)
    maps = default_mappings(d, wl)
    res0 = tj.make_evaluator(wl, mappings=maps, tech=tech)(d)
    mp = jax.tree_util.tree_map(lambda a: a[int(res0.mapping_index[0])], maps)
    m0 = tj.evaluate_point(d, wl, mp, tech)
    m1, cost = evaluate_f1(d, wl, tech, mapping=mp, max_cycles=CYCLES, metrics0=m0)
    for f in INFERENCE_METRIC_FIELDS:
        assert np.all(np.isfinite(np.asarray(getattr(m1, f), float))), f
    assert len(cost.gemm_factor) == 10 and cost.sim_cycles > 0
    assert all(0 < f <= 1 for f in cost.gemm_factor) and cost.a2a_factor == 1.0
    # the compute and memory terms are F0's: F1 moves only the network's share
    assert float(m1.total_time_s) >= float(m0.total_time_s) * 0.5
    assert float(m1.decode_compute_s) == pytest.approx(float(m0.decode_compute_s), rel=0.2)
    with pytest.raises(ValueError, match="not F0's metrics"):
        bad = jax.tree_util.tree_map(lambda x: x * 2, m0)
        evaluate_f1(d, wl, tech, mapping=mp, max_cycles=CYCLES, metrics0=bad)


def test_factor_is_one_at_low_load_and_below_one_beyond_saturation(setup):
    tech = setup[0]
    # one VC of one flit: the credit loop caps a link well below one flit per cycle
    net = NetParams(1.0, 1.0, 512.0, 1.0, 0.0, 1.0, 1.0)
    ctr = Counter()
    t_bw, hops, cyc = np.full(7, 1e-3), np.zeros(7), 1e-9  # throughput only
    low = np.full(7, 0.05)
    curve, _ = gemm_window(net, tech, low, max_cycles=CYCLES, seed=0, ctr=ctr)
    f_low, w_low = pace(curve, low, t_bw, hops, cyc)
    assert np.allclose(f_low, 1.0, atol=0.02)
    assert np.all(w_low < 1.0)
    assert 0.1 < curve.sat < 0.8
    high = np.full(7, min(1.0, 1.5 * curve.sat))
    curve2, _ = gemm_window(net, tech, high, max_cycles=CYCLES, seed=1, ctr=ctr)
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
    with pytest.raises(ValueError, match="needs the mapping"):
        f1_planned_cost(ds, wl, tech, mapping=None)


def test_compiled_simulator_cache_is_bounded():
    """A long exploration compiles a few simulators per design; the cache keeps only the
    most recent (each XLA executable holds thousands of memory maps, and the kernel's
    per-process limit would otherwise end the run with 'Cannot allocate memory')."""
    from theseus_jax.sim import MeshConfig

    cache = F1Cache(max_simulators=2)
    cfgs = [
        MeshConfig(kx=2, ky=2, n_vcs=1, buf_depth=2, queue_cap=8, link_pipe=p) for p in (1, 2, 3)
    ]
    ctr = Counter(cache)
    for c in (cfgs[0], cfgs[1], cfgs[0], cfgs[2]):
        _chunk_runner(c, 1, ctr)
    # cfgs[0] was used again before cfgs[2] arrived, so cfgs[1] is the one evicted
    assert ctr.n_compiles == 3 and [k[0] for k in cache.simulators] == [cfgs[0], cfgs[2]]
    # the cache is the caller's: another one starts empty, nothing is shared behind it
    assert not F1Cache().simulators
    with pytest.raises(ValueError, match="max_simulators"):
        F1Cache(max_simulators=0)
