"""Workload-derived traffic: traffic matrices in the simulator and the phases of a step."""

import jax
import numpy as np
import pytest

from theseus_jax.fidelity import workload_traffic
from theseus_jax.io import load_system, load_tech
from theseus_jax.metrics._evaluate import default_mappings, make_evaluator
from theseus_jax.sim import MeasureSpec, MeshConfig, TrafficMatrix, measure_batch, run
from theseus_jax.workload import load_training_workload


def test_matrix_flows_reach_only_their_destinations():
    cfg = MeshConfig(kx=4, ky=4, pattern="matrix", packet_size=2)
    flows = [(0, 15, 0.2), (5, 6, 0.1), (5, 9, 0.1)]
    tm = TrafficMatrix.from_flows(16, flows)
    s = jax.jit(lambda k: run(cfg, tm, 3000, key=k))(jax.random.PRNGKey(0))
    ej = np.asarray(s.ejected_flits)  # by destination
    assert set(np.nonzero(ej)[0]) == {6, 9, 15}
    inj = np.asarray(s.injected_flits)  # by source
    assert set(np.nonzero(inj)[0]) == {0, 5}
    # rates: 0.2 and 0.2 flits/cycle from sources 0 and 5 (binomial, 3000 cycles)
    np.testing.assert_allclose(inj[[0, 5]] / 3000.0, [0.2, 0.2], atol=0.03)
    assert ej[6] > 0.3 * ej[9] and ej[9] > 0.3 * ej[6]  # the 50/50 split of source 5


def test_uniform_matrix_matches_uniform_pattern():
    n = 16
    tm = TrafficMatrix.from_flows(n, [(s, d, 0.2 / n) for s in range(n) for d in range(n)])
    spec = MeasureSpec(500, 2000, 1500)
    a = measure_batch(MeshConfig(kx=4, ky=4, pattern="matrix"), [1.0], traffic=tm, spec=spec)[0]
    b = measure_batch(MeshConfig(kx=4, ky=4, pattern="uniform"), [0.2], spec=spec)[0]
    assert abs(a["accepted_rate"] - b["accepted_rate"]) < 0.02
    assert abs(a["avg_latency"] / b["avg_latency"] - 1.0) < 0.1
    assert abs(a["offered_rate"] - 0.2) < 1e-6


@pytest.mark.parametrize(
    "flows,match",
    [
        ([(0, 16, 0.1)], "outside"),
        ([(0, 1, 0.7), (0, 2, 0.5)], "injection channel"),
        ([(0, 1, -0.1)], "negative"),
    ],
)
def test_bad_flows_rejected(flows, match):
    with pytest.raises(ValueError, match=match):
        TrafficMatrix.from_flows(16, flows)


def test_pattern_and_rate_kind_must_agree():
    cfg = MeshConfig(kx=4, ky=4, pattern="matrix")
    with pytest.raises(TypeError, match="TrafficMatrix"):
        run(cfg, 0.1, 10, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="traffic"):
        measure_batch(cfg, [0.1])


def test_workload_phases_of_wse2():
    tech = load_tech("n7")
    wl = load_training_workload("gpt3-xl")
    d = load_system("wse2")
    maps = default_mappings(d, wl)
    best = int(make_evaluator(wl, mappings=maps, tech=tech)(d).mapping_index[0])
    mp = jax.tree_util.tree_map(lambda a: a[best], maps)  # F0's best mapping
    ph = workload_traffic(d, wl, tech, mapping=mp)
    assert {"tp_multicast", "tp_reduce", "tp_all_to_all"} <= set(ph)
    mc, rd = ph["tp_multicast"], ph["tp_reduce"]
    k = mc.cfg.kx
    for p in (mc, rd):
        rate = np.asarray(p.traffic.rate)
        cdf = np.asarray(p.traffic.cdf)
        assert 0 < rate.max() <= 1.0 and p.cfg.pattern == "matrix"
        for s in np.nonzero(rate)[0]:
            d = int(np.argmax(cdf[s] > 0.5))  # one destination per source
            dx, dy = abs(d % k - s % k), abs(d // k - s // k)
            assert dx + dy == 1, "GEMM streams are neighbour hops"
            if p is mc:
                assert dy == 0 and abs(d % k - k // 2) > abs(s % k - k // 2) - 1
            else:
                assert dx == 0 and abs(d // k - k // 2) < abs(s // k - k // 2)
    a2a = ph["tp_all_to_all"]
    np.testing.assert_allclose(np.asarray(a2a.traffic.rate), 4.0 / k, rtol=1e-6)
