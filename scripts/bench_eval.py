"""Benchmark the F0 evaluator: throughput of (design, mapping) evaluations.

Prints
  (a) (design, mapping) evaluations per second and designs per second with the full mapping
      search, for GPT-3 175B training over a batch of random legal WSC designs;
  (b) the time of the complete parallelism search for GPT-3 175B on 1024 A100 (every legal
      TP x PP x DP x micro-batch x recompute x interleaving x flag combination);
  (c) XLA's FLOPs per evaluation (compiled cost analysis) and the fraction of this machine's
      peak reached (peak measured here with a large float32 matmul);
  (d) inference (design, mapping) evaluations per second: Llama-3.1-70B serving (batch 64,
      2048 in / 256 out) over the same WSC designs, and every inference mapping on 64 H100.
Medians of several runs after one warm-up (compilation is reported separately).

Usage:
    python scripts/bench_eval.py [--json] [--designs 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from theseus_jax.io import load_system, load_tech
from theseus_jax.mapping import (
    enumerate_gpu_inference_mappings,
    enumerate_gpu_mappings,
    enumerate_wafer_inference_mappings,
    enumerate_wafer_mappings,
)
from theseus_jax.metrics._evaluate import make_evaluator
from theseus_jax.space import load_space
from theseus_jax.workload import load_inference_workload, load_training_workload


def _median_time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), ts


def _machine_peak(repeats):
    """Measured float32 matmul rate of this machine (FLOP/s), a practical 'peak'."""
    n = 2048
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    t, _ = _median_time(lambda: f(a), repeats)
    return 2.0 * n**3 / t


def _xla_flops(jitted, *args):
    try:
        ca = jitted.lower(*args).compile().cost_analysis()
        if isinstance(ca, (list, tuple)):
            ca = ca[0]
        return float(ca.get("flops", float("nan")))
    except Exception:  # cost analysis is best-effort on some backends
        return float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--designs", type=int, default=256, help="WSC designs per batch")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    wl = load_training_workload("gpt3-175b")
    out = {
        "machine": f"{platform.machine()} {jax.devices()[0].device_kind}, "
        f"{jax.device_count()} device(s), backend {jax.default_backend()}",
        "jax": jax.__version__,
    }

    # (a) WSC designs x full wafer mapping table
    space = load_space("theseus_2024")
    tech = load_tech("n7")
    designs = space.sample(jax.random.PRNGKey(args.seed), args.designs)
    r_max = int(np.max(np.asarray(designs.reticle_rows * designs.reticle_cols * designs.n_wafers)))
    wmaps = enumerate_wafer_mappings(wl, max_reticles=r_max)
    ev = make_evaluator(wl, mappings=wmaps, tech=tech)
    t = time.perf_counter()
    jax.block_until_ready(ev(designs))
    compile_a = time.perf_counter() - t
    ta, _ = _median_time(lambda: ev(designs), args.repeats)
    n_pairs = args.designs * wmaps.size()
    res = ev(designs)
    out["wsc"] = {
        "designs": args.designs,
        "mappings_per_design": wmaps.size(),
        "feasible_designs": int(np.sum(np.asarray(res.metrics.feasible))),
        "first_call_s": compile_a,
        "median_s": ta,
        "design_mapping_evals_per_s": n_pairs / ta,
        "designs_per_s": args.designs / ta,
    }

    # (b) complete parallelism search, GPT-3 175B on 1024 A100
    a100 = load_system("a100_dgx")
    t = time.perf_counter()
    gmaps = enumerate_gpu_mappings(wl, 1024, gpus_per_node=8)
    enum_s = time.perf_counter() - t
    gev = make_evaluator(wl, mappings=gmaps)
    t = time.perf_counter()
    jax.block_until_ready(gev(a100))
    compile_b = time.perf_counter() - t

    def full_search():
        m = enumerate_gpu_mappings(wl, 1024, gpus_per_node=8)
        return gev(a100), m

    tb, _ = _median_time(lambda: full_search()[0], args.repeats)
    r, m = full_search()
    out["a100_search"] = {
        "configurations": gmaps.size(),
        "feasible": int(np.asarray(r.n_feasible)[0]),
        "enumeration_s": enum_s,
        "first_call_s (compile + run)": compile_b,
        "median_search_s (enumerate + evaluate)": tb,
        "evals_per_s": gmaps.size() / tb,
        "best_mapping": m.row(int(np.asarray(r.mapping_index)[0])),
        "best_mfu": float(np.asarray(r.metrics.mfu)[0]),
    }

    # (c) XLA FLOPs per evaluation and fraction of machine peak
    from theseus_jax.metrics._evaluate import evaluate_mappings

    f_w = jax.jit(jax.vmap(lambda d: evaluate_mappings(d, wl, wmaps, tech)))
    flops_w = _xla_flops(f_w, designs)
    peak = _machine_peak(args.repeats)
    per_eval = flops_w / n_pairs
    out["xla"] = {
        "flops_per_wsc_eval": per_eval,
        "achieved_flop_per_s": per_eval * out["wsc"]["design_mapping_evals_per_s"],
        "machine_peak_flop_per_s (measured f32 matmul)": peak,
        "fraction_of_peak": per_eval * out["wsc"]["design_mapping_evals_per_s"] / peak,
    }
    # (d) inference
    iwl = load_inference_workload("llama-3.1-70b", batch=64, prompt_len=2048, output_len=256)
    imaps = enumerate_wafer_inference_mappings(iwl, max_reticles=r_max)
    iev = make_evaluator(iwl, mappings=imaps, tech=tech, objective="latency")
    jax.block_until_ready(iev(designs))
    ti, _ = _median_time(lambda: iev(designs), args.repeats)
    import equinox as eqx

    h100 = eqx.tree_at(lambda s: s.n_gpus, load_system("h100_dgx"), jnp.float32(64))
    gimaps = enumerate_gpu_inference_mappings(iwl, 64)
    giev = make_evaluator(iwl, mappings=gimaps)
    jax.block_until_ready(giev(h100))
    tg, _ = _median_time(lambda: giev(h100), args.repeats)
    out["inference"] = {
        "wsc_mappings_per_design": imaps.size(),
        "wsc_design_mapping_evals_per_s": args.designs * imaps.size() / ti,
        "wsc_designs_per_s": args.designs / ti,
        "h100x64_mappings": gimaps.size(),
        "h100x64_search_s": tg,
    }
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"machine: {out['machine']}, jax {out['jax']}")
        w = out["wsc"]
        print(
            f"(a) WSC, GPT-3 175B: {w['designs']} designs x {w['mappings_per_design']} mappings: "
            f"{w['design_mapping_evals_per_s']:.3g} (design, mapping) evals/s, "
            f"{w['designs_per_s']:.3g} designs/s with the full mapping search "
            f"(median {w['median_s']:.3f} s; first call {w['first_call_s']:.1f} s)"
        )
        s = out["a100_search"]
        print(
            f"(b) 1024 x A100, GPT-3 175B: {s['configurations']} legal configurations "
            f"({s['feasible']} fit in memory) searched in "
            f"{s['median_search_s (enumerate + evaluate)']:.3f} s median "
            f"(first call incl. compile {s['first_call_s (compile + run)']:.1f} s); "
            f"best MFU {100 * s['best_mfu']:.1f}% with {s['best_mapping']}"
        )
        x = out["xla"]
        print(
            f"(c) XLA: {x['flops_per_wsc_eval']:.0f} FLOPs per evaluation, "
            f"{x['achieved_flop_per_s']:.3g} FLOP/s achieved = "
            f"{100 * x['fraction_of_peak']:.1f}% of this machine's measured f32 matmul peak "
            f"({x['machine_peak_flop_per_s (measured f32 matmul)']:.3g} FLOP/s)"
        )
        i = out["inference"]
        print(
            f"(d) inference, Llama-3.1-70B (64 x 2048/256): "
            f"{i['wsc_design_mapping_evals_per_s']:.3g} (design, mapping) evals/s over "
            f"{i['wsc_mappings_per_design']} wafer mappings "
            f"({i['wsc_designs_per_s']:.3g} designs/s); 64 x H100: {i['h100x64_mappings']} "
            f"mappings in {1e3 * i['h100x64_search_s']:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
