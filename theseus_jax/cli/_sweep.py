"""``theseus sweep SPACE WORKLOAD -n N``: sample designs, evaluate, write CSV + Pareto plot."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from ._common import add_workload_args, load_workload


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="evaluate N sampled designs of a design space; write a CSV and a Pareto plot",
        description="Sample N legal designs of SPACE, search every mapping of WORKLOAD on "
        "each in one batched call, and write sweep.csv and pareto.png (throughput vs power).",
    )
    p.add_argument("space", help="design-space name or path (e.g. theseus_2024)")
    p.add_argument("workload", help="model name or path (e.g. gpt3-175b)")
    p.add_argument("-n", "--n-designs", type=int, default=1000, help="designs to sample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tech", default="n7", help="technology config (default n7)")
    p.add_argument("--out", default="runs/sweep", help="output directory")
    p.add_argument("--chunk", type=int, default=256, help="designs per compiled call")
    p.add_argument(
        "--baseline",
        default="a100_dgx",
        help="GPU system plotted for reference at iso-peak FLOPs with the median design "
        "('none' to skip)",
    )
    add_workload_args(p)


def _evaluate_in_batches(designs, wl, maps, tech, objective, batch):
    import jax

    from ..metrics._evaluate import make_evaluator

    ev = make_evaluator(wl, mappings=maps, tech=tech, objective=objective)
    n = int(np.size(designs.clock_hz))
    outs = []
    for s in range(0, n, batch):
        idx = np.arange(s, min(s + batch, n))
        pad = np.concatenate([idx, np.full(batch - idx.size, idx[0])])  # same shape: no recompile
        sub = jax.tree_util.tree_map(lambda x, pad=pad: x[pad], designs)
        r = ev(sub)
        outs.append(jax.tree_util.tree_map(lambda x, k=idx.size: np.asarray(x)[:k], r))
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *outs)


def run(args) -> int:
    import jax

    from .._violations import describe
    from ..dse.pareto import pareto_mask
    from ..io import design_to_dict, load_tech
    from ..mapping import enumerate_wafer_inference_mappings, enumerate_wafer_mappings
    from ..space import load_space
    from ..workload._llm import InferenceWorkload

    if args.n_designs < 1:
        raise ValueError("-n must be >= 1")
    wl = load_workload(args)
    space = load_space(args.space)
    tech = load_tech(args.tech)
    designs = space.sample(jax.random.PRNGKey(args.seed), args.n_designs)
    r_max = int(np.max(np.asarray(designs.reticle_rows * designs.reticle_cols * designs.n_wafers)))
    infer = isinstance(wl, InferenceWorkload)
    enum = enumerate_wafer_inference_mappings if infer else enumerate_wafer_mappings
    maps = enum(wl, max_reticles=r_max)
    t0 = time.perf_counter()
    res = _evaluate_in_batches(
        designs, wl, maps, tech, args.objective, min(args.chunk, args.n_designs)
    )
    dt = time.perf_counter() - t0
    m = res.metrics
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    feas = np.asarray(m.feasible)
    tput = np.asarray(m.tokens_per_s, np.float64)
    power = np.asarray(m.power_w, np.float64)
    front = pareto_mask(np.where(feas, tput, np.nan), np.where(feas, power, np.nan))

    rows = []
    dd = design_to_dict(designs)
    for i in range(args.n_designs):
        row = {k: float(np.asarray(v).reshape(-1)[i]) for k, v in dd.items()}
        row.update({k: float(np.asarray(getattr(m, k))[i]) for k in m.__annotations__})
        row.update({f"map_{k}": v for k, v in maps.row(int(res.mapping_index[i])).items()})
        row["violated"] = ";".join(describe(int(np.asarray(m.violations)[i])))
        row["pareto"] = bool(front[i])
        rows.append(row)
    with open(out / "sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    baseline = None
    if args.baseline and args.baseline.lower() != "none" and feas.any():
        baseline = _baseline_point(
            args.baseline, wl, float(np.median(np.asarray(m.peak_flops)[feas]))
        )
    _plot(out / "pareto.png", tput, power, feas, front, wl, args, baseline)
    summary = {
        "space": args.space,
        "workload": args.workload,
        "n_designs": args.n_designs,
        "n_feasible": int(feas.sum()),
        "n_pareto": int(front.sum()),
        "mappings_per_design": maps.size(),
        "eval_seconds": dt,
        "best_tokens_per_s": float(np.max(np.where(feas, tput, 0.0))),
        "baseline": baseline,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(
        f"{args.n_designs} designs x {maps.size()} mappings in {dt:.1f} s; "
        f"{int(feas.sum())} feasible, {int(front.sum())} on the Pareto front"
    )
    print(f"wrote {out / 'sweep.csv'}, {out / 'pareto.png'}, {out / 'summary.json'}")
    return 0


def _baseline_point(name, wl, peak_flops):
    """The GPU cluster with the same peak FLOP/s (rounded to whole nodes), best mapping."""
    from ..io import load_system
    from ..metrics._evaluate import default_mappings, make_evaluator
    from ._common import with_gpus

    sys0 = load_system(name)
    per_gpu = float(np.asarray(sys0.peak_flops(wl.precision_bits)))
    node = int(np.asarray(sys0.gpus_per_node))
    target = max(1, int(round(peak_flops / per_gpu / node)))
    # the closest whole-node count that admits a legal mapping of the batch
    for nodes in sorted(range(1, 2 * target + 2), key=lambda k: (abs(k - target), k)):
        sysn = with_gpus(sys0, nodes * node)
        try:
            maps = default_mappings(sysn, wl)
            break
        except ValueError:
            continue
    else:
        return None
    n = nodes * node
    r = make_evaluator(wl, mappings=maps)(sysn)
    return {
        "name": name,
        "n_gpus": n,
        "tokens_per_s": float(r.metrics.tokens_per_s[0]),
        "power_w": float(r.metrics.power_w[0]),
        "feasible": bool(r.metrics.feasible[0]),
    }


def _plot(path, tput, power, feas, front, wl, args, baseline) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.scatter(power[~feas] / 1e3, tput[~feas], s=6, c="0.8", label="infeasible")
    ax.scatter(power[feas] / 1e3, tput[feas], s=8, c="tab:blue", alpha=0.6, label="feasible")
    order = np.argsort(power[front])
    ax.plot(
        power[front][order] / 1e3, tput[front][order], "-o", c="tab:red", ms=4, label="Pareto front"
    )
    if baseline is not None:
        ax.scatter(
            [baseline["power_w"] / 1e3],
            [baseline["tokens_per_s"]],
            marker="*",
            s=160,
            c="k",
            label=f"{baseline['name']} x{baseline['n_gpus']} (iso-peak)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("power (kW)")
    kind = "inference" if args.inference else "training"
    ax.set_ylabel(f"{kind} throughput ({'output ' if args.inference else ''}tokens/s)")
    ax.set_title(f"{args.space}: {wl.model.name} {kind}, {int(feas.sum())}/{feas.size} feasible")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
