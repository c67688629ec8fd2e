"""Shared by ``train_vs_gpu`` and ``train_vs_wsc``: the Megatron scaling table, GPU baselines,
iso-peak explorations per model, and the uncertainty of the improvements.

Definitions (stated in every manifest):

* **iso-peak**: the WSC system gets the whole number of wafers whose peak 16-bit FLOP/s is
  closest in ratio to the A100 cluster's (the Megatron run's GPU count x 312 TFLOP/s);
  ``DesignSpace.iso_peak`` derives ``n_wafers`` that way, so every explored design is an
  iso-peak system (residual mismatch from whole wafers, reported as ``peak_ratio``).
* **performance improvement** of a set of designs over a baseline: ``max_i T_i / T_b - 1``
  over its F1-feasible Pareto designs (T: training tokens/s);
* **power improvement**: ``1 - min_i P_i / P_b`` over the Pareto designs at least as fast as
  the baseline (``T_i >= T_b``): the power saved without losing throughput; undefined (no
  number) when no design is as fast.
* **uncertainty**: the technology constants with a stated range in ``configs/tech`` are drawn
  (>= 256 draws); each Pareto design (and each wafer baseline) is re-evaluated at F0 under
  every draw with its mapping fixed, times its nominal F1/F0 ratio; GPU baselines do not
  depend on them (their constants are datasheet values and the calibration on measured runs).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import numpy as np

import theseus_jax as tj

# Megatron-LM scaling table (Narayanan et al., SC21, Table 1): model config -> the measured
# run in the validation cases (GPU count, published mapping, achieved TFLOP/s per GPU).
MEGATRON = (
    ("megatron-1.7b", "train-megatron-a100-1.7B"),
    ("megatron-3.6b", "train-megatron-a100-3.6B"),
    ("megatron-7.5b", "train-megatron-a100-7.5B"),
    ("megatron-18b", "train-megatron-a100-18B"),
    ("megatron-39b", "train-megatron-a100-39B"),
    ("megatron-76b", "train-megatron-a100-76B"),
    ("megatron-145b", "train-megatron-a100-145B"),
    ("megatron-310b", "train-megatron-a100-310B"),
    ("megatron-530b", "train-megatron-a100-530B"),
    ("megatron-1t", "train-megatron-a100-1T"),
)


def case_by_id(case_id: str) -> dict:
    from theseus_jax.validate._cases import load_cases

    for c in load_cases():
        if c.get("id") == case_id:
            return c
    raise ValueError(f"validation case {case_id!r} not found in the validation cases file")


def _best_gpu(system, wl) -> dict:
    r = tj.evaluate(system, wl)
    m = r.metrics
    return dict(
        n_gpus=int(np.asarray(system.n_gpus)),
        tokens_per_s=float(m.tokens_per_s[0]),
        power_w=float(m.power_w[0]),
        peak_flops=float(m.peak_flops[0]),
        mfu=float(m.mfu[0]),
        feasible=bool(m.feasible[0]),
    )


def gpu_baselines(model: str, case_id: str) -> dict:
    """A100 cluster of the Megatron run (modelled, best mapping; and the measurement) and the
    H100 cluster of the same peak (whole 8-GPU nodes, modelled, best mapping)."""
    from theseus_jax.design import with_gpus
    from theseus_jax.validate._cases import training_setup

    wl = tj.load_training_workload(model)
    case = case_by_id(case_id)
    n = int(case["hardware"]["count"])
    a100 = with_gpus(tj.load_system("a100_dgx"), n)
    out = {"a100": _best_gpu(a100, wl)}
    # the measurement: achieved TFLOP/s per GPU (with recomputation) -> tokens/s, through the
    # model's FLOP count of the published mapping (hw FLOPs per token)
    sysc, wlc, mp = training_setup(case, a100)
    m = tj.evaluate_point(sysc, wlc, mp)
    hw_flops_per_token = float(m.hw_flops) / float(np.asarray(wlc.tokens_per_step()))
    out["a100_measured"] = dict(
        n_gpus=n,
        tokens_per_s=float(case["value"]) * 1e12 * n / hw_flops_per_token,
        modelled_published_mapping_tokens_per_s=float(m.tokens_per_s),
        source=case.get("source", ""),
    )
    h100 = tj.load_system("h100_dgx")
    per_gpu = float(np.asarray(h100.peak_flops(wl.precision_bits)))
    node = int(np.asarray(h100.gpus_per_node))
    target = out["a100"]["peak_flops"]
    nodes = max(1, int(np.round(target / per_gpu / node)))
    for k in sorted(range(1, 2 * nodes + 2), key=lambda k: (abs(k - nodes), k)):
        try:
            out["h100"] = _best_gpu(with_gpus(h100, k * node), wl)
            break
        except ValueError:  # no legal mapping of the batch on this count
            continue
    return out


def iso_space_file(base: str, peak_flops: float, folder: Path) -> Path:
    """Write the design space ``base`` with an iso-peak wafer count to ``folder``."""
    from theseus_jax._paths import configs_dir

    src = Path(base) if Path(base).suffix == ".json" else configs_dir() / "spaces" / f"{base}.json"
    doc = json.loads(src.read_text())
    doc["name"] = f"{doc['name']}_isopeak_{peak_flops / 1e15:.6g}PF"
    doc["params"]["n_wafers"] = {
        "kind": "isopeak",
        "peak_flops": peak_flops,
        "unit": "FLOP/s",
        "lo": 1,
        "hi": 4096,
        "tol": 0.1,
        "source": "experiment: iso-peak 16-bit FLOP/s with the GPU baseline (BRIEF 2, 6.1)",
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{doc['name']}.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def explore_model(model, peak_flops, runs, *, base_space, budget, pool, seed, n_init, log):
    """Run (or reuse / resume) ``theseus explore`` (MFBO, F1) for one model on the iso-peak
    space; return the F1-feasible Pareto designs with their F0 mapping and values."""
    from theseus_jax.dse.explore import ExploreConfig, make_problem, run_explore
    from theseus_jax.dse.store import RunStore

    space_path = iso_space_file(base_space, peak_flops, Path(runs) / "spaces")
    cfg = ExploreConfig(
        space=str(space_path.resolve()),
        workload=model,
        budget_s=float(budget),
        pool=int(pool),
        seed=int(seed),
        n_init=int(n_init),
        refine=False,
    )
    tag = hashlib.sha1(json.dumps(cfg.to_json(), sort_keys=True).encode()).hexdigest()[:8]
    run_dir = Path(runs) / f"{model}-{tag}"
    summary_path = run_dir / "summary.json"
    prob = make_problem(cfg)  # one F0 screening, shared with run_explore below
    if summary_path.exists():
        log(f"{model}: reusing {run_dir}")
    elif (run_dir / "run.sqlite").exists():
        log(f"{model}: resuming {run_dir}")
        run_explore(None, run_dir, resume=True, problem=prob)
    else:
        run_explore(cfg, run_dir, problem=prob)
    with RunStore.open(run_dir) as store:
        recs = [r for r in store.evaluations() if r.fidelity == 1 and r.feasible]
    pts = np.array([r.objectives for r in recs], float).reshape(-1, 2)
    front = tj.pareto_mask(pts[:, 0], pts[:, 1]) if len(pts) else np.zeros(0, bool)
    idx = np.array([r.extra["pool_index"] for r in recs], int)
    all_f1 = dict(tokens_per_s=pts[:, 0], power_w=pts[:, 1], pool_index=idx)
    sel = idx[front]
    take = lambda t: jax.tree_util.tree_map(lambda a: a[sel], t)  # noqa: E731
    summary = json.loads(summary_path.read_text())
    return dict(
        run_dir=str(run_dir),
        cfg=cfg,
        designs=take(prob.designs),
        mappings=take(prob.mappings),
        f1_tput=pts[front, 0],
        f1_power=pts[front, 1],
        f0_tput=prob.f0_tput[sel],
        f0_power=prob.f0_power[sel],
        all_f1=all_f1,
        pool_f0=dict(tokens_per_s=prob.f0_tput, power_w=prob.f0_power),
        workload=prob.workload,
        tech=prob.tech,
        n_f1=int(summary["n_f1"]),
        f1_cost_s=float(summary["f1_cost_s"]),
        run_wall_s=float(summary["run_wall_s"]),
    )


def improvement(tput, power, feasible, t_base, p_base):
    """Performance and power improvement of a set of designs over a baseline (module doc).

    Args: ``tput``, ``power``, ``feasible`` of shape ``(..., n)``; baselines broadcastable to
    ``(...)``. Returns ``(perf, power)`` of shape ``(...)``; power is NaN where no feasible
    design is as fast as the baseline, perf is NaN where none is feasible.
    """
    tput = np.asarray(tput, float)
    power = np.asarray(power, float)
    ok = np.asarray(feasible, bool)
    tb = np.asarray(t_base, float)[..., None]
    pb = np.asarray(p_base, float)[..., None]
    rel_t = np.where(ok, tput / tb, -np.inf)
    perf = np.max(rel_t, axis=-1) - 1.0
    perf = np.where(np.isfinite(perf), perf, np.nan)
    fast = ok & (tput >= tb)
    rel_p = np.where(fast, power / pb, np.inf)
    pw = 1.0 - np.min(rel_p, axis=-1)
    return perf, np.where(np.isfinite(pw), pw, np.nan)


def tech_draws(tech_name: str, n: int, seed: int):
    """``(techs, table)``: ``n`` draws of the ranged technology constants (batched Tech) and
    ``{constant: (n,) values}``."""
    from theseus_jax.io import load_tech_ranges
    from theseus_jax.tech import draws_table, sample_techs

    ranges = load_tech_ranges(tech_name)
    tech = tj.load_tech(tech_name)
    techs = sample_techs(tech, ranges, jax.random.PRNGKey(seed), n)
    return techs, draws_table(techs, ranges)


def f0_under_draws(designs, mappings, workload, techs, chunk: int = 64):
    """F0 metrics of each design under its fixed mapping for every tech draw.

    Returns ``(tokens_per_s, power_w, feasible)``, each ``(n_draws, n_designs)``."""
    n_draw = int(np.asarray(techs.mac_energy_j).shape[0])

    @jax.jit
    def run(ts):
        def per_tech(t):
            return jax.vmap(lambda d, mp: tj.evaluate_point(d, workload, mp, t))(designs, mappings)

        m = jax.vmap(per_tech)(ts)
        return m.tokens_per_s, m.power_w, m.feasible

    outs = []
    for s in range(0, n_draw, chunk):
        idx = np.arange(s, min(s + chunk, n_draw))
        pad = np.concatenate([idx, np.full(chunk - idx.size, idx[0])])
        sub = jax.tree_util.tree_map(lambda a, pad=pad: a[pad], techs)
        t, p, f = run(sub)
        outs.append(
            (np.asarray(t)[: idx.size], np.asarray(p)[: idx.size], np.asarray(f)[: idx.size])
        )
    return tuple(np.concatenate([o[k] for o in outs]) for k in range(3))


def quantiles(x) -> tuple[float, float, float]:
    """(5 %, 50 %, 95 %) of the finite values (NaN if none)."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (float("nan"),) * 3
    q = np.quantile(x, [0.05, 0.5, 0.95])
    return float(q[0]), float(q[1]), float(q[2])


def design_columns(designs, space_names=None) -> list[dict]:
    from theseus_jax.io import design_to_dict

    d = design_to_dict(designs)
    n = int(np.asarray(designs.clock_hz).shape[0])
    keys = space_names or list(d)
    return [{k: float(np.asarray(d[k])[i]) for k in keys} for i in range(n)]


def wafer_at_peak(name: str, peak_flops: float):
    """A wafer system config (e.g. ``wse2``, ``dojo_tile``) with the whole number of wafers
    whose peak is closest in ratio to ``peak_flops`` (same rule as the iso-peak space)."""
    from theseus_jax.io import design_from_dict, design_to_dict
    from theseus_jax.space import iso_peak_count

    w = tj.load_system(name)
    vals = design_to_dict(w)
    per = float(
        np.asarray(
            w.reticle_rows * w.reticle_cols * w.usable_cores_per_reticle() * w.core_peak_flops()
        )
    )
    vals["n_wafers"] = float(iso_peak_count(np.array([per]), peak_flops)[0])
    return design_from_dict("wafer", vals)


def evaluate_designs(designs, wl, tech, *, chunk: int = 256, objective: str = "time"):
    """F0 with the full mapping search over a design batch, in fixed-shape chunks.

    Returns ``(metrics, mappings)``: numpy metrics (leaves ``(n,)``) and the chosen mapping of
    each design (a batched ``Mapping``)."""
    from theseus_jax.metrics._evaluate import default_mappings, make_evaluator

    maps = default_mappings(designs, wl)
    ev = make_evaluator(wl, mappings=maps, tech=tech, objective=objective)
    n = int(np.asarray(designs.clock_hz).shape[0])
    chunk = max(1, min(chunk, n))
    outs, idxs = [], []
    for s in range(0, n, chunk):
        idx = np.arange(s, min(s + chunk, n))
        pad = np.concatenate([idx, np.full(chunk - idx.size, idx[0])])
        r = ev(jax.tree_util.tree_map(lambda a, pad=pad: np.asarray(a)[pad], designs))
        outs.append(jax.tree_util.tree_map(lambda a, k=idx.size: np.asarray(a)[:k], r.metrics))
        idxs.append(np.asarray(r.mapping_index)[: idx.size])
    metrics = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *outs)
    mi = np.concatenate(idxs)
    return metrics, jax.tree_util.tree_map(lambda a: np.asarray(a)[mi], maps)
