"""F0 training cost models (theseus_jax.cost.{gpu,wafer}): oracles, monotonicity, infeasibility.

STYLE habit 14: closed-form identities (Megatron / Narayanan FLOP counts), monotonicity (more
bandwidth is never slower), and constraint violations returned as data (never NaN, never raised).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import with_leaves

from theseus_jax._violations import Violation, describe
from theseus_jax.cost.gpu import gpu_training_step
from theseus_jax.cost.physical import physical_wsc
from theseus_jax.mapping import (
    MAPPING_FIELDS,
    Mapping,
    enumerate_gpu_mappings,
    enumerate_wafer_mappings,
)
from theseus_jax.metrics import METRIC_FIELDS
from theseus_jax.metrics._evaluate import evaluate_mappings, evaluate_point, explain, make_evaluator
from theseus_jax.space import load_space
from theseus_jax.workload import load_training_workload, megatron_model_flops_per_step

FLOPS_RTOL = 1e-3  # float32 leaves; FLOP counts reach 1e24
MONO_RTOL = 1e-5  # float32 rounding when a bandwidth term drops out of a max()

# GPT (GELU, MHA), GPT-3 175B, GQA + SwiGLU, and a top-2 MoE.
FLOP_WORKLOADS = ("megatron-1.7b", "gpt3-175b", "llama-3.1-70b", "mixtral-8x7b")

# Mappings with dp * micro_batch dividing 512 (every global batch above is a multiple of 512),
# TP dividing every head count and no pipeline parallelism.
PP1_MAPPINGS = (
    dict(tp=1, pp=1, dp=8, micro_batch=1),
    dict(tp=8, pp=1, dp=4, micro_batch=2, seq_par=1, tp_overlap=1),
    dict(tp=2, pp=1, dp=16, micro_batch=4, dist_opt=1, dp_overlap=1),
    dict(tp=4, pp=1, dp=64, micro_batch=8, schedule=0),
)
# Pipeline-parallel mappings (layers % (pp * interleave) == 0 for 24, 96, 80 and 32 layers).
PP_MAPPINGS = (
    dict(tp=8, pp=4, dp=4, micro_batch=2),
    dict(tp=2, pp=2, dp=2, micro_batch=4, interleave=2),
    dict(tp=1, pp=8, dp=1, micro_batch=1),
)


def _scale(module, name, factor):
    return eqx.tree_at(lambda m: getattr(m, name), module, getattr(module, name) * factor)


def _rows(maps: Mapping, idx) -> Mapping:
    return Mapping.from_columns({k: np.asarray(getattr(maps, k))[idx] for k in MAPPING_FIELDS})


def _rel(a, b):
    return abs(float(a) / float(b) - 1.0)


def _assert_all_finite(metrics, what):
    for name in METRIC_FIELDS:
        x = np.asarray(getattr(metrics, name))
        if np.issubdtype(x.dtype, np.floating):
            bad = ~np.isfinite(x)
            assert not bad.any(), f"{what}: {name} is not finite in {int(bad.sum())} rows"


# ---- shared, compiled once per module ------------------------------------------------------

_gpu_step = jax.jit(gpu_training_step)
_gpu_table = jax.jit(evaluate_mappings)  # (system, workload, mappings, None)
_wafer_point = jax.jit(evaluate_point)  # (design, workload, mapping, tech)
# designs (leading axis) x mappings (leading axis); tech is an argument so tweaks do not recompile
_wafer_table = jax.jit(jax.vmap(evaluate_mappings, in_axes=(0, None, None, None)))


# =============================================================================================
# 1. Closed-form FLOPs: Megatron / Narayanan et al. SC21 appendix
# =============================================================================================


@pytest.mark.parametrize("name", FLOP_WORKLOADS)
def test_gpu_flops_match_megatron_formula_without_pipeline(a100, name):
    wl = load_training_workload(name)
    oracle = megatron_model_flops_per_step(wl)
    oracle_full = megatron_model_flops_per_step(wl, recompute_full=True)
    mdl = wl.model
    # selective recompute re-runs the forward of the score and AV GEMMs: 2 s (a d_qk + a d_v)
    # FLOPs per token per layer (non-causal, as the oracle counts them)
    sel_extra = wl.tokens_per_step() * mdl.n_layers * 2.0 * wl.seq_len * (mdl.q_dim() + mdl.v_dim())
    for kw in PP1_MAPPINGS:
        m0 = _gpu_step(a100, wl, Mapping(**kw))
        assert _rel(m0.model_flops, oracle) < FLOPS_RTOL, (name, kw)
        assert _rel(m0.hw_flops, m0.model_flops) < 1e-6, (name, kw)  # no recompute
        full = _gpu_step(a100, wl, Mapping(**kw, recompute=2, recompute_layers=1.0))
        assert _rel(full.model_flops, oracle) < FLOPS_RTOL, (name, kw)
        assert _rel(full.hw_flops, oracle_full) < FLOPS_RTOL, (name, kw)
        # Megatron block recompute of a fraction k of the layers: oracle + k (full - oracle)
        half = _gpu_step(a100, wl, Mapping(**kw, recompute=2, recompute_layers=0.5))
        assert _rel(half.hw_flops, oracle + 0.5 * (oracle_full - oracle)) < FLOPS_RTOL, (name, kw)
        sel = _gpu_step(a100, wl, Mapping(**kw, recompute=1))
        assert _rel(sel.hw_flops, oracle + sel_extra) < FLOPS_RTOL, (name, kw)


@pytest.mark.parametrize("name", FLOP_WORKLOADS)
def test_wafer_flops_match_megatron_formula_without_pipeline(wse2, n7, name):
    wl = load_training_workload(name)
    oracle = megatron_model_flops_per_step(wl)
    oracle_full = megatron_model_flops_per_step(wl, recompute_full=True)
    for kw in (dict(tp=4, pp=1, dp=8, micro_batch=1), dict(tp=1, pp=1, dp=16, micro_batch=2)):
        m0 = _wafer_point(wse2, wl, Mapping(**kw), n7)
        assert _rel(m0.model_flops, oracle) < FLOPS_RTOL, (name, kw)
        full = _wafer_point(wse2, wl, Mapping(**kw, recompute=2), n7)
        assert _rel(full.model_flops, oracle) < FLOPS_RTOL, (name, kw)
        assert _rel(full.hw_flops, oracle_full) < FLOPS_RTOL, (name, kw)


def test_flops_match_megatron_formula_with_pipeline(a100, wse2, n7):
    # Regression: the logits GEMM runs on the last pipeline stage only (was counted per stage).
    bad = []
    for name in FLOP_WORKLOADS:
        wl = load_training_workload(name)
        oracle = megatron_model_flops_per_step(wl)
        oracle_full = megatron_model_flops_per_step(wl, recompute_full=True)
        for kw in PP_MAPPINGS:
            m = _gpu_step(a100, wl, Mapping(**kw, recompute=2))
            if (
                _rel(m.model_flops, oracle) > FLOPS_RTOL
                or _rel(m.hw_flops, oracle_full) > FLOPS_RTOL
            ):
                bad.append(
                    f"gpu {name} {kw}: model/oracle={float(m.model_flops) / float(oracle):.4f}, "
                    f"hw/oracle_full={float(m.hw_flops) / float(oracle_full):.4f}"
                )
        m = _wafer_point(wse2, wl, Mapping(tp=4, pp=2, dp=8, micro_batch=1), n7)
        if _rel(m.model_flops, oracle) > FLOPS_RTOL:
            bad.append(
                f"wafer {name} pp=2: model/oracle={float(m.model_flops) / float(oracle):.4f}"
            )
    assert not bad, "FLOPs differ from the closed form with pipeline parallelism:\n" + "\n".join(
        bad
    )


def test_gpu_model_flops_independent_of_mapping(a100):
    # Model FLOPs are a property of the workload. Every row of the table divides the batch
    # (no padded micro-batches), so every row must report the same number.
    # Regression: model FLOPs must not depend on the mapping (logits once, not per stage).
    wl = load_training_workload("gpt3-175b")
    sys64 = with_leaves(a100, n_gpus=64)
    maps = enumerate_gpu_mappings(wl, 64, flags=False)
    mf = np.asarray(_gpu_table(sys64, wl, maps, None).model_flops, np.float64)
    oracle = float(megatron_model_flops_per_step(wl))
    rel = np.abs(mf / oracle - 1.0)
    pp = np.asarray(maps.pp)
    assert rel[pp == 1].max() < FLOPS_RTOL
    worst = int(np.argmax(rel))
    assert rel.max() < FLOPS_RTOL, (
        f"{int((rel > FLOPS_RTOL).sum())} of {rel.size} mappings disagree; worst "
        f"{maps.row(worst)}: model_flops/oracle = {mf[worst] / oracle:.4f}"
    )


# =============================================================================================
# 2. Monotonicity: more bandwidth / compute is never slower
# =============================================================================================


def _gpu_grid(wl, n_gpus, n_rows, seed, *, stress=0):
    """A deterministic sample of legal (tp, pp, dp, micro_batch, interleave) rows with the
    boolean knobs, the schedule, the placement and block recompute drawn at random (legally).

    ``stress`` more rows are drawn from the regime where overlap windows matter: TP across
    nodes (tp > 8, on InfiniBand), dp > 1, TP and DP overlap both on.
    """
    base = enumerate_gpu_mappings(wl, n_gpus, flags=False)
    rng = np.random.default_rng(seed)
    idx = rng.choice(base.size(), size=n_rows, replace=False)
    tp_all, dp_all = np.asarray(base.tp), np.asarray(base.dp)
    hard = np.flatnonzero((tp_all > 8) & (dp_all > 1))
    if stress:
        idx = np.concatenate([idx, rng.choice(hard, size=stress, replace=hard.size < stress)])
    cols = {k: np.asarray(getattr(base, k))[idx].astype(np.float64) for k in MAPPING_FIELDS}
    n = idx.size
    tp_gt1, dp_gt1 = cols["tp"] > 1, cols["dp"] > 1
    coin = lambda: rng.integers(0, 2, n).astype(np.float64)  # noqa: E731
    cols["seq_par"] = coin() * tp_gt1
    cols["tp_overlap"] = coin() * tp_gt1
    cols["dist_opt"] = coin() * dp_gt1
    cols["dp_overlap"] = coin() * dp_gt1
    cols["placement"] = coin() * (cols["pp"] > 1) * dp_gt1
    cols["recompute"] = rng.integers(0, 3, n).astype(np.float64)
    per_stage = float(np.asarray(wl.model.n_layers)) / cols["pp"]
    k = np.ceil(rng.uniform(0, 1, n) * per_stage)
    cols["recompute_layers"] = np.where(cols["recompute"] == 2, k / per_stage, 1.0)
    cols["schedule"] = np.where(cols["interleave"] > 1, 1.0, coin())
    if stress:
        cols["tp_overlap"][n_rows:] = 1.0
        cols["dp_overlap"][n_rows:] = 1.0
    return Mapping.from_columns(cols)


@pytest.fixture(scope="module")
def gpu_mono(a100):
    """(name, system, workload, mapping grid, base step times) for two workloads."""
    cases = []
    # both tables have 700 rows, so one compiled evaluator serves both
    for name, n, rows, stress in (("gpt3-175b", 64, 300, 400), ("megatron-1.7b", 32, 700, 0)):
        wl = load_training_workload(name)
        sysn = with_leaves(a100, n_gpus=n)
        maps = _gpu_grid(wl, n, rows, 0, stress=stress)
        base = np.asarray(_gpu_table(sysn, wl, maps, None).step_time_s)
        cases.append((name, sysn, wl, maps, base))
    return cases


@pytest.mark.parametrize(
    "field", ["hbm_bw_bytes_per_s", "nvlink_bw_bytes_per_s", "ib_bw_bytes_per_s", "peak_flops_16"]
)
def test_gpu_more_bandwidth_or_flops_is_never_slower(gpu_mono, field):
    # Regression: the DP-overlap window is the backward share of the whole stage time, so
    # faster GEMMs can never expose more DP time than they save.
    for name, sysn, wl, maps, base in gpu_mono:
        assert np.isfinite(base).all()
        new = np.asarray(_gpu_table(_scale(sysn, field, 2.0), wl, maps, None).step_time_s)
        ratio = new / base
        worst = int(np.argmax(ratio))
        assert ratio.max() <= 1.0 + MONO_RTOL, (
            f"{name}: doubling {field} slows {int((ratio > 1 + MONO_RTOL).sum())} of "
            f"{ratio.size} mappings; worst x{ratio[worst]:.5f} at {maps.row(worst)}"
        )
        # and the knob matters somewhere (the test can see a change)
        assert ratio.min() < 1.0 - 1e-3, f"{name}: {field} never matters"


@pytest.fixture(scope="module")
def wafer_mono(wse2, n7, xl):
    """wse2 plus 7 designs of theseus_2024, a fixed 600-row mapping table, base metrics."""
    sampled = load_space("theseus_2024").sample(jax.random.PRNGKey(1), 7)
    designs = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), wse2, sampled)
    maps = enumerate_wafer_mappings(xl, max_reticles=84)
    idx = np.random.default_rng(0).choice(maps.size(), size=600, replace=False)
    maps = _rows(maps, np.sort(idx))
    base = _wafer_table(designs, xl, maps, n7)
    return designs, maps, base


def test_wafer_metrics_finite_for_every_pair(wafer_mono):
    designs, maps, base = wafer_mono
    _assert_all_finite(base, "wafer table")
    feas = np.asarray(base.feasible)
    assert feas.any() and (~feas).any()  # the table exercises both kinds of rows


@pytest.mark.parametrize(
    "field",
    [
        "link_bits_per_cycle",
        "d2d_bw_ratio",
        "sram_bw_bits_per_cycle",
        "clock_hz",
        "inter_wafer_bw_bytes_per_s",
        "dram_port_bw_bytes_per_s",
        "dram_bw_density_bytes_per_s_m2",
    ],
)
def test_wafer_more_bandwidth_or_clock_is_never_slower(wafer_mono, n7, xl, field):
    # Regressions: (a) the DP-overlap window is the backward share of the stage time; (b) the
    # mesh queueing term uses paced injection, so faster compute never lengthens a GEMM.
    designs, maps, base = wafer_mono
    st0 = np.asarray(base.step_time_s)
    st1 = np.asarray(_wafer_table(_scale(designs, field, 2.0), xl, maps, n7).step_time_s)
    ratio = st1 / st0
    d, r = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    assert ratio.max() <= 1.0 + MONO_RTOL, (
        f"doubling {field} slows {int((ratio > 1 + MONO_RTOL).sum())} of {ratio.size} "
        f"(design, mapping) pairs; worst x{ratio[d, r]:.4f}: design {d}, mapping {maps.row(r)}"
    )
    assert ratio.min() < 1.0 - 1e-3, f"{field} never matters"


def _relaxed(tech):
    """Power, power-density and yield limits lifted: only memory capacity and geometry bind."""
    return with_leaves(
        tech, max_wafer_power_w=1e12, max_power_density_w_per_m2=1e12, min_wafer_yield=0.0
    )


def test_wafer_more_sram_never_makes_the_best_mapping_slower(n7, xl, wafer_mono):
    tech = _relaxed(n7)
    space = load_space("theseus_2024")
    # Sample at the larger SRAM so the reticle counts ("as many as fit") hold for both sizes.
    parts = [
        space.fix(sram_bytes_per_core=kib * 1024, sram_bw_bits_per_cycle=256).sample(
            jax.random.PRNGKey(kib), 2
        )
        for kib in (96, 256, 1024)
    ]
    big = jax.tree_util.tree_map(lambda *x: jnp.concatenate(x), *parts)
    small = _scale(big, "sram_bytes_per_core", 0.5)
    for dd in (small, big):  # geometry unchanged: same reticle counts, both fit
        pv = np.asarray(jax.vmap(lambda x: physical_wsc(x, tech).violations)(dd))
        assert not (pv & int(Violation.CORE_AREA | Violation.WAFER_AREA)).any()

    _, maps, _ = wafer_mono
    ev = make_evaluator(xl, mappings=maps, tech=tech)
    r_small, r_big = ev(small), ev(big)
    nf_s, nf_b = np.asarray(r_small.n_feasible), np.asarray(r_big.n_feasible)
    assert (nf_b >= nf_s).all(), (nf_s, nf_b)
    assert (nf_b > nf_s).any()  # the test can see the memory constraint move
    t_s, t_b = np.asarray(r_small.metrics.step_time_s), np.asarray(r_big.metrics.step_time_s)
    ok = np.asarray(r_small.metrics.feasible)
    assert ok.any()
    assert (np.asarray(r_big.metrics.feasible)[ok]).all()
    assert (t_b[ok] <= t_s[ok] * (1.0 + MONO_RTOL)).all(), (t_s, t_b)
    # pairwise: the feasible set only grows
    f_s = np.asarray(_wafer_table(small, xl, maps, tech).feasible)
    f_b = np.asarray(_wafer_table(big, xl, maps, tech).feasible)
    assert not (f_s & ~f_b).any()


def test_wafer_higher_static_power_never_lowers_power(wafer_mono, n7, xl):
    designs, maps, base = wafer_mono
    hot = _scale(n7, "static_power_w_per_m2", 2.0)
    m = _wafer_table(designs, xl, maps, hot)
    p0, p1 = np.asarray(base.power_w), np.asarray(m.power_w)
    assert (p1 >= p0 * (1.0 - MONO_RTOL)).all()
    assert (p1 > p0).all()  # every design has powered silicon
    np.testing.assert_allclose(np.asarray(m.step_time_s), np.asarray(base.step_time_s), rtol=1e-6)


def test_gpu_higher_idle_power_never_lowers_power(gpu_mono):
    for _, sysn, wl, maps, _ in gpu_mono:
        p0 = np.asarray(_gpu_table(sysn, wl, maps, None).power_w)
        p1 = np.asarray(_gpu_table(_scale(sysn, "idle_w", 2.0), wl, maps, None).power_w)
        assert (p1 >= p0 * (1.0 - MONO_RTOL)).all()


# =============================================================================================
# 3. Infeasibility is data: flagged, finite, explained
# =============================================================================================


def test_gpu_model_too_big_for_hbm_is_flagged(a100):
    wl = load_training_workload("gpt3-175b")
    m = _gpu_step(with_leaves(a100, n_gpus=8), wl, Mapping(tp=1, pp=1, dp=8, micro_batch=1))
    assert not bool(m.feasible)
    assert "MEMORY_CAPACITY" in describe(int(m.violations))
    assert float(m.mem_bytes) > float(m.mem_capacity_bytes)
    _assert_all_finite(m, "gpt3-175b on 8 GPUs")
    assert "MEMORY_CAPACITY" in explain(m)
    # the same model sharded over 64 GPUs fits
    ok = _gpu_step(
        with_leaves(a100, n_gpus=64), wl, Mapping(tp=8, pp=8, dp=1, micro_batch=1, recompute=2)
    )
    assert bool(ok.feasible), describe(int(ok.violations))
    assert explain(ok) == "feasible"


def test_gpu_metrics_finite_for_every_row_incl_infeasible(a100):
    wl = load_training_workload("gpt3-175b")
    maps = enumerate_gpu_mappings(wl, 64, flags=False)
    m = _gpu_table(with_leaves(a100, n_gpus=64), wl, maps, None)
    _assert_all_finite(m, "gpt3-175b x 64 GPUs")
    feas = np.asarray(m.feasible)
    assert feas.any() and (~feas).any()
    viol = np.asarray(m.violations)
    assert ((viol == 0) == feas).all()
    bad = int(np.argmax(~feas))
    assert "MEMORY_CAPACITY" in describe(int(viol[bad]))


def test_wafer_core_too_big_for_reticle_is_flagged(wse2, n7, xl):
    huge = with_leaves(wse2, sram_bytes_per_core=2 * 2**20, core_rows=128, core_cols=128)
    m = _wafer_point(huge, xl, Mapping(tp=4, pp=1, dp=0, micro_batch=1), n7)
    names = describe(int(m.violations))
    assert "CORE_AREA" in names
    assert not bool(m.feasible)
    _assert_all_finite(m, "oversized core")
    text = explain(m)
    assert text.startswith("infeasible") and "CORE_AREA" in text
    # the shipped WSE-2 is physically fine
    assert describe(int(physical_wsc(wse2, n7).violations)) == []


def test_explain_on_a_table_names_each_row(a100):
    wl = load_training_workload("gpt3-175b")
    cols = {k: np.asarray([getattr(Mapping(), k)] * 2) for k in MAPPING_FIELDS}
    cols.update(tp=[1, 8], pp=[1, 8], dp=[8, 1], micro_batch=[1, 1], recompute=[0, 2])
    maps = Mapping.from_columns(cols)
    m = _gpu_table(with_leaves(a100, n_gpus=64), wl, maps, None)
    assert explain(m, 0) == "infeasible: MEMORY_CAPACITY"
    assert explain(m, 1) == "feasible"


def test_noc_flow_terms_closed_form(n7):
    """Credit round trip t_crt = 2 hop + 1 cycles (Dally & Towles sec. 13.3): a VC of B flits
    keeps min(1, B P / t_crt) of a link of period P; a 512-bit packet holds a w-bit link for
    min(8, max(1, 512 / w)) flits x P cycles (fractional in F0)."""
    from theseus_jax.cost.noc import noc_flow_terms

    base = load_space("theseus_2024").sample(jax.random.PRNGKey(3), 1)
    base = jax.tree_util.tree_map(lambda a: a[0], base)
    hop = max(1.0, round(float(n7.router_delay_cycles + n7.link_delay_cycles)))
    t_crt = 2 * hop + 1
    for b in (1, 2, 3, 4):
        for w, flits in ((32, 8), (64, 8), (96, 512 / 96), (128, 4), (512, 1), (4096, 1)):
            for ratio, cross in ((1.0, 0.0), (0.5, 1.0), (0.25, 1.0), (0.5, 0.0)):
                d = with_leaves(base, buffer_depth=b, link_bits_per_cycle=w, d2d_bw_ratio=ratio)
                eta, s = noc_flow_terms(d, n7, cross)
                period = 1.0 / ratio if cross else 1.0
                np.testing.assert_allclose(float(eta), min(1.0, b * period / t_crt), rtol=1e-6)
                np.testing.assert_allclose(float(s), flits * period, rtol=1e-6)


def test_wafer_deeper_buffers_never_slower(wafer_mono, n7, xl):
    designs, maps, base = wafer_mono
    st = [np.asarray(base.step_time_s)]
    for b in (1.0, 2.0, 3.0, 4.0):
        d = eqx.tree_at(lambda m: m.buffer_depth, designs, jnp.full_like(designs.buffer_depth, b))
        st.append(np.asarray(_wafer_table(d, xl, maps, n7).step_time_s))
    for lo, hi in zip(st[1:-1], st[2:], strict=True):
        assert np.all(hi <= lo * (1 + MONO_RTOL))
    assert np.any(st[4] < st[1] * (1 - 1e-3)), "buffer depth never matters"
