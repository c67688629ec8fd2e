"""Simulated router-cycles per wall second of the JAX NoC simulator.

Uniform random traffic at 0.1 flits/node/cycle, single-flit packets, BookSim's router
parameters (8 VCs x 8 flits), on 16x16, 32x32 and 64x64 meshes. Each size is compiled once,
then timed over several runs (median). With ``--seeds S`` the runs are vmapped over S seeds
in one call (throughput of independent simulations, the way the optimiser uses F1).

BookSim2's own rate, from the reference CSV (16x16 uniform, loads 0.0875-0.125: 1.97e5-2.49e5
router-cycles/s on a 2-core VM shared with other work), is printed for comparison.

Usage:
    python scripts/bench_sim.py [--json] [--cycles 2000] [--repeats 3] [--seeds 1]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from theseus_jax.sim import MeshConfig, run

REF = Path(__file__).resolve().parents[1] / "configs" / "validation" / "booksim_mesh_curves.csv"


def booksim_rate():
    """BookSim2 router-cycles/s near 0.1 flits/node/cycle on the 16x16 uniform series."""
    if not REF.exists():
        return None
    rows = [
        r
        for r in csv.DictReader(open(REF))
        if r["mesh_k"] == "16" and r["traffic"] == "uniform" and r["router_cycles_per_s"]
    ]
    near = [
        float(r["router_cycles_per_s"]) for r in rows if 0.08 <= float(r["injection_rate"]) <= 0.13
    ]
    return float(np.median(near)) if near else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=1, help="independent runs vmapped together")
    ap.add_argument("--sizes", default="16,32,64")
    args = ap.parse_args(argv)
    out = {
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "cycles": args.cycles,
        "seeds": args.seeds,
        "booksim_router_cycles_per_s_16x16": booksim_rate(),
        "meshes": [],
    }
    for k in [int(x) for x in args.sizes.split(",")]:
        cfg = MeshConfig(kx=k, ky=k, packet_size=1, pattern="uniform")
        f = jax.jit(
            jax.vmap(
                lambda key, cfg=cfg: run(cfg, jnp.float32(0.1), args.cycles, key=key).ejected_flits
            )
        )
        keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
        t = time.perf_counter()
        jax.block_until_ready(f(keys))
        first = time.perf_counter() - t
        ts = []
        for r in range(args.repeats):
            keys = jax.random.split(jax.random.PRNGKey(r + 1), args.seeds)
            t = time.perf_counter()
            jax.block_until_ready(f(keys))
            ts.append(time.perf_counter() - t)
        med = statistics.median(ts)
        rc = k * k * args.cycles * args.seeds / med
        out["meshes"].append(
            {"mesh": f"{k}x{k}", "median_s": med, "first_call_s": first, "router_cycles_per_s": rc}
        )
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"backend {out['backend']} ({out['device']}), {args.cycles} cycles, {args.seeds} seed(s)")
    ref = out["booksim_router_cycles_per_s_16x16"]
    for m in out["meshes"]:
        ratio = f" = {m['router_cycles_per_s'] / ref:.1f}x BookSim2 (16x16 rate)" if ref else ""
        print(
            f"{m['mesh']:6s}: {m['router_cycles_per_s']:.3g} router-cycles/s "
            f"(median {m['median_s']:.2f} s, first call {m['first_call_s']:.1f} s){ratio}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
