"""JAX transformations of the evaluator: jit, vmap, no recompilation, grad vs finite differences.

STYLE habit 14: ``jit(f) == f``, ``vmap(f)(x)[i] == f(x[i])``, no recompile on the second call,
and ``grad`` against central finite differences.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import with_leaves

from theseus_jax.cost.physical import physical_wsc
from theseus_jax.design._wafer import WAFER_FIELDS
from theseus_jax.io import load_system
from theseus_jax.mapping import MAPPING_FIELDS, Mapping, enumerate_wafer_mappings
from theseus_jax.metrics import METRIC_FIELDS, _evaluate
from theseus_jax.metrics._evaluate import evaluate_mappings, evaluate_point, make_evaluator
from theseus_jax.space import load_space
from theseus_jax.workload import load_training_workload

RTOL = 1e-5  # float32: jit fusion may reorder a few operations


def _take(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def _assert_metrics_close(a, b, rtol=RTOL, what=""):
    for name in METRIC_FIELDS:
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=0, err_msg=f"{what} {name}")
        else:
            np.testing.assert_array_equal(x, y, err_msg=f"{what} {name}")


@pytest.fixture(scope="module")
def designs():
    return load_space("theseus_2024").sample(jax.random.PRNGKey(0), 4)


@pytest.fixture(scope="module")
def small_table(xl):
    maps = enumerate_wafer_mappings(xl, max_reticles=84)
    idx = np.sort(np.random.default_rng(0).choice(maps.size(), size=48, replace=False))
    return Mapping.from_columns({k: np.asarray(getattr(maps, k))[idx] for k in MAPPING_FIELDS})


_point = jax.jit(evaluate_point)

WAFER_MAP = Mapping(tp=4, pp=2, dp=0, micro_batch=2, recompute=1, tp_overlap=1, dp_overlap=1)
GPU_MAP = Mapping(tp=4, pp=2, dp=8, micro_batch=4, recompute=1, seq_par=1)


# ---- jit(f) == f --------------------------------------------------------------------------


def test_jit_equals_eager_wafer(designs, xl, n7):
    d = _take(designs, 0)
    _assert_metrics_close(_point(d, xl, WAFER_MAP, n7), evaluate_point(d, xl, WAFER_MAP, n7))


def test_jit_equals_eager_gpu():
    wl = load_training_workload("megatron-1.7b")
    s = with_leaves(load_system("a100_dgx"), n_gpus=64)
    _assert_metrics_close(_point(s, wl, GPU_MAP, None), evaluate_point(s, wl, GPU_MAP))


# ---- vmap(f)(x)[i] == f(x[i]) ---------------------------------------------------------------


def test_vmap_over_designs_equals_loop(designs, xl, n7):
    batched = jax.jit(jax.vmap(lambda d: evaluate_point(d, xl, WAFER_MAP, n7)))(designs)
    for i in range(4):
        _assert_metrics_close(
            _take(batched, i), _point(_take(designs, i), xl, WAFER_MAP, n7), what=f"design {i}"
        )
    # the designs really differ (the comparison is not vacuous)
    assert np.unique(np.asarray(batched.step_time_s)).size == 4


def test_vmap_over_gpu_systems_equals_loop():
    wl = load_training_workload("megatron-1.7b")
    s = with_leaves(load_system("a100_dgx"), n_gpus=64)
    bws = jnp.asarray([1e12, 2e12, 3e12], jnp.float32)
    batch = eqx.tree_at(
        lambda x: x.hbm_bw_bytes_per_s,
        jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (3,)), s),
        bws,
    )
    batched = jax.vmap(lambda sys: evaluate_point(sys, wl, GPU_MAP))(batch)
    for i in range(3):
        one = _point(with_leaves(s, hbm_bw_bytes_per_s=bws[i]), wl, GPU_MAP, None)
        _assert_metrics_close(_take(batched, i), one, what=f"system {i}")


def test_vmap_over_mappings_equals_loop(designs, xl, n7, small_table):
    d = _take(designs, 1)
    table = jax.jit(evaluate_mappings)(d, xl, small_table, n7)
    for i in range(0, small_table.size(), 7):
        _assert_metrics_close(
            _take(table, i), _point(d, xl, _take(small_table, i), n7), what=f"row {i}"
        )


# ---- no recompilation on a second batch of the same size ------------------------------------


def test_make_evaluator_does_not_recompile(monkeypatch, xl, n7, small_table):
    traces = {"n": 0}
    real = _evaluate.evaluate_mappings

    def counting(*args, **kw):  # runs only while jax traces the evaluator
        traces["n"] += 1
        return real(*args, **kw)

    monkeypatch.setattr(_evaluate, "evaluate_mappings", counting)
    space = load_space("theseus_2024")
    ev = make_evaluator(xl, mappings=small_table, tech=n7)

    first = ev(space.sample(jax.random.PRNGKey(10), 3))
    assert traces["n"] == 1
    second_designs = space.sample(jax.random.PRNGKey(11), 3)
    second = ev(second_designs)
    assert traces["n"] == 1, "second batch of the same size retraced / recompiled"
    # a genuinely new batch, evaluated correctly by the cached executable
    assert not np.allclose(
        np.asarray(first.metrics.step_time_s), np.asarray(second.metrics.step_time_s)
    )
    i = int(np.asarray(second.mapping_index)[2])
    direct = _point(_take(second_designs, 2), xl, _take(small_table, i), n7)
    np.testing.assert_allclose(
        np.asarray(second.metrics.step_time_s)[2], np.asarray(direct.step_time_s), rtol=RTOL
    )
    # the counter does see a retrace: a different batch size compiles again
    ev(space.sample(jax.random.PRNGKey(12), 5))
    assert traces["n"] == 2


# ---- grad vs central finite differences -----------------------------------------------------


def _check_grad_vs_fd(f, x0, names, *, rel_step=1e-3, rtol=0.02, elasticity_floor=2e-3):
    """Compare ``jax.grad(f)(x0)`` with central differences, per coordinate.

    float32: the FD step is ``rel_step * |x_i|`` (exactly representable as the difference of
    the two evaluation points), and the FD noise is about ``eps |f| / step``; the absolute
    tolerance is ``elasticity_floor * |f| / |x_i|``, i.e. an elasticity of 2e-3, which is
    ~15x the float32 noise at this step and small against every elasticity checked here.
    Returns the elasticities ``x_i f_i / f``.
    """
    x0 = jnp.asarray(x0, jnp.float32)
    fj = jax.jit(f)
    g = np.asarray(jax.jit(jax.grad(f))(x0), np.float64)
    f0 = float(fj(x0))
    assert np.isfinite(g).all() and np.isfinite(f0)
    el = []
    for i, name in enumerate(names):
        xi = float(x0[i])
        xp, xm = x0.at[i].multiply(1.0 + rel_step), x0.at[i].multiply(1.0 - rel_step)
        h = float(xp[i]) - float(xm[i])
        fd = (float(fj(xp)) - float(fj(xm))) / h
        atol = elasticity_floor * abs(f0) / abs(xi)
        assert abs(g[i] - fd) <= rtol * abs(fd) + atol, (
            f"d/d{name}: grad {g[i]:.6g} vs central difference {fd:.6g} "
            f"(f = {f0:.6g}, x = {xi:.6g})"
        )
        el.append(g[i] * xi / f0)
    return np.asarray(el)


WAFER_GRAD_FIELDS = (
    "clock_hz",
    "link_bits_per_cycle",
    "dram_bw_density_bytes_per_s_m2",
    "sram_bytes_per_core",
    "d2d_bw_ratio",
    "inter_wafer_bw_bytes_per_s",  # one wafer with stacked DRAM: no effect at all
)


@pytest.fixture(scope="module")
def stacked_design():
    """A feasible one-wafer design with stacked DRAM, slow enough DRAM that weight streaming
    partly stalls (so the DRAM and SRAM-area paths carry gradient), and d2d_bw_ratio < 1."""
    return with_leaves(
        load_system("wse2"),
        macs_per_core=128,
        sram_bytes_per_core=256 * 1024,
        sram_bw_bits_per_cycle=1024,
        link_bits_per_cycle=256,
        core_rows=24,
        core_cols=24,
        reticle_rows=14,
        reticle_cols=14,
        clock_hz=1.0e9,
        dram_kind=2,
        dram_bw_density_bytes_per_s_m2=2.5e15,
        dram_port_capacity_bytes=24e9,
        d2d_bw_ratio=0.5,
        spare_core_frac=0.05,
        n_wafers=1,
    )


STREAM_MAP = Mapping(tp=2, pp=1, dp=0, micro_batch=2, stream=1, tp_overlap=0)


@pytest.mark.parametrize("output", ["tokens_per_s", "power_w"])
def test_wafer_grad_matches_finite_differences(stacked_design, xl, n7, output):
    d = stacked_design
    assert int(physical_wsc(d, n7).violations) == 0
    m = _point(d, xl, STREAM_MAP, n7)
    assert bool(m.feasible)
    assert float(m.memory_s) > 0  # weight streaming stalls: the DRAM path is live

    def f(x):
        dd = eqx.tree_at(lambda t: tuple(getattr(t, k) for k in WAFER_GRAD_FIELDS), d, tuple(x))
        return getattr(evaluate_point(dd, xl, STREAM_MAP, n7), output)

    x0 = [float(getattr(d, k)) for k in WAFER_GRAD_FIELDS]
    el = _check_grad_vs_fd(f, x0, WAFER_GRAD_FIELDS)
    live = el[:-1]
    assert (np.abs(live) > 0.01).all(), dict(zip(WAFER_GRAD_FIELDS, el, strict=True))
    assert el[-1] == 0.0
    if output == "tokens_per_s":  # every resource above speeds training up
        assert (live > 0).all(), dict(zip(WAFER_GRAD_FIELDS, el, strict=True))


GPU_GRAD_FIELDS = ("hbm_bw_bytes_per_s", "nvlink_bw_bytes_per_s", "ib_bw_bytes_per_s")


@pytest.mark.parametrize("output", ["tokens_per_s", "power_w"])
def test_gpu_grad_matches_finite_differences(output):
    wl = load_training_workload("megatron-1.7b")
    s = with_leaves(load_system("a100_dgx"), n_gpus=64)
    m = _point(s, wl, GPU_MAP, None)
    assert bool(m.feasible)
    # TP inside a node (NVLink), PP and DP across nodes (InfiniBand), memory-bound kernels (HBM)
    assert float(m.tp_comm_s) > 0 and float(m.dp_comm_s) > 0 and float(m.memory_s) > 0

    def f(x):
        ss = eqx.tree_at(lambda t: tuple(getattr(t, k) for k in GPU_GRAD_FIELDS), s, tuple(x))
        return getattr(evaluate_point(ss, wl, GPU_MAP), output)

    el = _check_grad_vs_fd(f, [float(getattr(s, k)) for k in GPU_GRAD_FIELDS], GPU_GRAD_FIELDS)
    assert (np.abs(el) > 0.005).all(), dict(zip(GPU_GRAD_FIELDS, el, strict=True))
    if output == "tokens_per_s":
        assert (el > 0).all()


def test_grad_finite_over_a_whole_table(designs, xl, n7, small_table):
    """Gradients w.r.t. every design leaf stay finite on every (design, mapping) pair,
    infeasible ones included (the safe_* double-where numerics)."""

    def loss(ds):
        m = jax.vmap(lambda d: evaluate_mappings(d, xl, small_table, n7))(ds)
        return jnp.sum(jnp.log(m.tokens_per_s)) + jnp.sum(jnp.log(m.power_w))

    g = jax.jit(jax.grad(loss))(designs)
    for f, _, _ in WAFER_FIELDS:
        assert np.isfinite(np.asarray(getattr(g, f))).all(), f
    assert np.abs(np.asarray(g.clock_hz)).max() > 0


def test_make_evaluator_chunks_to_a_memory_budget(monkeypatch, xl, n7, small_table):
    """A batch over the memory budget runs in fixed-size chunks: same results, one trace."""
    traces = {"n": 0}
    real = _evaluate.evaluate_mappings

    def counting(*args, **kw):
        traces["n"] += 1
        return real(*args, **kw)

    space = load_space("theseus_2024")
    designs = space.sample(jax.random.PRNGKey(13), 7)
    whole = make_evaluator(xl, mappings=small_table, tech=n7)(designs)
    monkeypatch.setattr(_evaluate, "evaluate_mappings", counting)
    budget = 2.5 * _evaluate.PAIR_BYTES * small_table.size()  # 2 designs per chunk
    ev = make_evaluator(xl, mappings=small_table, tech=n7, memory_budget_bytes=budget)
    assert ev.chunk_size == 2
    parts = ev(designs)  # 4 chunks, the last one padded
    assert traces["n"] == 1, "chunks of one size must share one compilation"
    for f in ("step_time_s", "power_w", "violations"):
        np.testing.assert_allclose(
            np.asarray(getattr(parts.metrics, f)), np.asarray(getattr(whole.metrics, f)), rtol=RTOL
        )
    np.testing.assert_array_equal(np.asarray(parts.mapping_index), np.asarray(whole.mapping_index))
    with pytest.raises(ValueError, match="memory_budget_bytes"):
        make_evaluator(xl, mappings=small_table, tech=n7, memory_budget_bytes=0)
