"""Fidelity agreement (BRIEF 6.4): rank correlation and error of F0 vs F1 step times.

Samples legal designs of a design space, keeps those F0 finds feasible (sampling more until
``--n`` remain), evaluates each at F0 (its best mapping for step time) and at F1 (the same
mapping, simulated network: :func:`theseus_jax.fidelity.evaluate_f1`), and prints Kendall's
tau-b between the two step times, the relative error ``|F1 - F0| / F1``, F1's total cost and
the designs F0 misranks most (most discordant pairs).

    python scripts/fidelity_agreement.py [--n 50] [--seed 0] [--json]

Every new (router, window) configuration compiles a simulator (~4 s on a laptop CPU), so
``--n 50`` takes several minutes; ``--xla-cache DIR`` keeps compiled simulators between runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import numpy as np


def kendall_tau(x, y) -> float:
    """Kendall's tau-b of two samples (ties handled as in scipy.stats.kendalltau)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("kendall_tau needs two 1-D samples of the same length")
    i, j = np.triu_indices(x.size, 1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    n0 = i.size
    tx, ty = int(np.sum(dx == 0)), int(np.sum(dy == 0))
    den = np.sqrt(float(n0 - tx) * float(n0 - ty))
    return float(np.sum(dx * dy) / den) if den > 0 else float("nan")


def discordant_counts(x, y) -> np.ndarray:
    """Per sample: how many pairs it is in that ``x`` and ``y`` order differently."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    s = np.sign(x[:, None] - x[None, :]) * np.sign(y[:, None] - y[None, :])
    return np.sum(s < 0, axis=1)


def _ranks(x):
    r = np.empty(len(x), int)
    r[np.argsort(x, kind="stable")] = np.arange(len(x))
    return r


def _sample_feasible(space, wl, tech, n, seed, log):
    from theseus_jax.metrics._evaluate import default_mappings, make_evaluator

    take = lambda t, idx: jax.tree_util.tree_map(lambda a: a[idx], t)  # noqa: E731
    batch = max(2 * n, 64)
    designs, metrics, maps_rows = [], [], []
    key = jax.random.PRNGKey(seed)
    drawn = 0
    for _round in range(20):
        key, sub = jax.random.split(key)
        ds = space.sample(sub, batch)
        maps = default_mappings(ds, wl)
        res = make_evaluator(wl, mappings=maps, tech=tech)(ds)
        drawn += batch
        ok = np.where(np.asarray(res.metrics.feasible))[0]
        for i in ok:
            if len(designs) >= n:
                break
            designs.append(take(ds, int(i)))
            metrics.append(take(res.metrics, int(i)))
            maps_rows.append(take(maps, int(res.mapping_index[i])))
        log(f"sampled {drawn} designs, {len(designs)} F0-feasible kept")
        if len(designs) >= n:
            return designs, metrics, maps_rows, drawn
    raise SystemExit(f"only {len(designs)} F0-feasible designs after {drawn} draws")


def ideal_network_f0(design, wl, tech, mp, m0) -> float:
    """F0's step time with the congestion term it had before the flow-control efficiency
    and packet service time (``noc_flow_terms``) were added: full link bandwidth and an
    M/D/1 wait of one-cycle service -- recomposed from the same pieces, for the
    before/after comparison."""
    import jax.numpy as jnp

    from theseus_jax.cost.collectives import mdl_queue_wait
    from theseus_jax.cost.physical import physical_wsc
    from theseus_jax.fidelity._f1 import _f0_pieces_jit, f0_rho, recompose

    pc = _f0_pieces_jit(design, tech, physical_wsc(design, tech), wl, mp)
    pc = {k: np.asarray(v, float) for k, v in pc.items()}
    wait = np.asarray(mdl_queue_wait(jnp.asarray(f0_rho(pc))), float)
    ones = np.ones_like(pc["t_bw"])
    parts = recompose(pc, m0, gemm_factor=ones, gemm_wait=wait, a2a_factor=1.0, reticle_factor=1.0)
    return float(parts["step_time_s"])


def _describe(d, mp) -> dict:
    f = lambda a: float(np.asarray(a))  # noqa: E731
    return dict(
        macs_per_core=f(d.macs_per_core),
        link_bits=f(d.link_bits_per_cycle),
        n_vcs=f(d.n_vcs),
        buffer_depth=f(d.buffer_depth),
        d2d_bw_ratio=round(f(d.d2d_bw_ratio), 3),
        core_array=f"{int(f(d.core_rows))}x{int(f(d.core_cols))}",
        reticle_array=f"{int(f(d.reticle_rows))}x{int(f(d.reticle_cols))}",
        dram_kind=int(f(d.dram_kind)),
        n_wafers=int(f(d.n_wafers)),
        tp=int(f(mp.tp)),
        pp=int(f(mp.pp)),
        micro_batch=int(f(mp.micro_batch)),
        stream=int(f(mp.stream)),
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="F0-feasible designs (>= 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workload", default="gpt3-175b")
    ap.add_argument("--space", default="theseus_2024")
    ap.add_argument("--tech", default="n7")
    ap.add_argument(
        "--max-cycles", type=int, default=16000, help="most cycles of one simulation run"
    )
    ap.add_argument("--top", type=int, default=5, help="misranked designs to list")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--xla-cache", default=None, help="persistent compilation cache folder")
    args = ap.parse_args(argv)
    if args.n < 2:
        ap.error("--n must be >= 2")
    if args.xla_cache:
        jax.config.update("jax_compilation_cache_dir", args.xla_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

    import theseus_jax as tj
    from theseus_jax.fidelity import evaluate_f1

    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else print
    t_start = time.perf_counter()
    tech = tj.load_tech(args.tech)
    wl = tj.load_training_workload(args.workload)
    space = tj.load_space(args.space)
    t = time.perf_counter()
    designs, m0s, maps, drawn = _sample_feasible(space, wl, tech, args.n, args.seed, log)
    f0_s = time.perf_counter() - t

    f0, f0i, f1, costs, rows = [], [], [], [], []
    for i, (d, m0, mp) in enumerate(zip(designs, m0s, maps, strict=True)):
        m1, c = evaluate_f1(
            d, wl, tech, mapping=mp, metrics0=m0, seed=args.seed + i, max_cycles=args.max_cycles
        )
        f0i.append(ideal_network_f0(d, wl, tech, mp, m0))
        f0.append(float(m0.step_time_s))
        f1.append(float(m1.step_time_s))
        costs.append(c)
        rows.append(
            dict(
                index=i,
                f0_step_s=f0[-1],
                f1_step_s=f1[-1],
                f0_ideal_net_step_s=f0i[-1],
                rel_err=abs(f1[-1] - f0[-1]) / f1[-1],
                f0_comm_s=float(m0.tp_comm_s + m0.pp_comm_s + m0.dp_comm_s),
                f1_comm_s=float(m1.tp_comm_s + m1.pp_comm_s + m1.dp_comm_s),
                min_gemm_factor=float(min(c.gemm_factor)),
                core_sat=c.core_sat,
                a2a_factor=c.a2a_factor,
                reticle_factor=c.reticle_factor,
                f1_wall_s=c.wall_s,
                gemm_rho=[round(x, 4) for x in c.gemm_rho],
                gemm_factor=[round(x, 4) for x in c.gemm_factor],
                gemm_wait_cycles=[round(x, 3) for x in c.gemm_wait_cycles],
                f0_gemm_wait_cycles=[round(x, 3) for x in c.f0_gemm_wait_cycles],
                windows=[list(w) for w in c.windows],
                **_describe(d, mp),
            )
        )
        log(
            f"[{i + 1}/{len(designs)}] F0 {f0[-1]:.4g} s  F1 {f1[-1]:.4g} s  "
            f"(+{100 * (f1[-1] / f0[-1] - 1):.2f}%)  F1 cost {c.wall_s:.1f} s "
            f"({c.n_compiles} compiles, {c.router_cycles / 1e6:.2f} M router-cycles)"
        )
    f0a, f1a = np.asarray(f0), np.asarray(f1)
    rel = np.abs(f1a - f0a) / f1a
    tau = kendall_tau(f0a, f1a)
    f0ia = np.asarray(f0i)
    rel_i = np.abs(f1a - f0ia) / f1a
    tau_i = kendall_tau(f0ia, f1a)
    disc = discordant_counts(f0a, f1a)
    r0, r1 = _ranks(f0a), _ranks(f1a)
    for r, dcount, a, b in zip(rows, disc, r0, r1, strict=True):
        r.update(discordant_pairs=int(dcount), f0_rank=int(a), f1_rank=int(b))
    worst = sorted(rows, key=lambda r: (-r["discordant_pairs"], -r["rel_err"]))[: args.top]
    total = dict(
        wall_s=float(sum(c.wall_s for c in costs)),
        compile_s=float(sum(c.compile_s for c in costs)),
        sim_s=float(sum(c.sim_s for c in costs)),
        sim_cycles=int(sum(c.sim_cycles for c in costs)),
        router_cycles=int(sum(c.router_cycles for c in costs)),
        n_compiles=int(sum(c.n_compiles for c in costs)),
    )
    out = dict(
        workload=args.workload,
        space=args.space,
        n_designs=len(rows),
        designs_drawn=drawn,
        kendall_tau=tau,
        rel_err_median=float(np.median(rel)),
        rel_err_mean=float(np.mean(rel)),
        rel_err_max=float(np.max(rel)),
        f1_slower_frac=float(np.mean(f1a > f0a)),
        ideal_network_f0=dict(
            kendall_tau=tau_i,
            rel_err_median=float(np.median(rel_i)),
            rel_err_mean=float(np.mean(rel_i)),
            rel_err_max=float(np.max(rel_i)),
            discordant_pairs=int(np.sum(discordant_counts(f0ia, f1a)) // 2),
        ),
        discordant_pairs=int(np.sum(disc) // 2),
        pairs=len(rows) * (len(rows) - 1) // 2,
        f0_wall_s=f0_s,
        f1_cost=total,
        runtime_s=time.perf_counter() - t_start,
        most_misranked=worst,
        designs=rows,
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"\nF0 vs F1 step time, {args.workload} training, {len(rows)} F0-feasible designs "
        f"of {args.space} ({drawn} drawn)"
    )
    print(
        f"  Kendall tau-b          {tau:.4f}   ({out['discordant_pairs']} of {out['pairs']} "
        "pairs discordant)"
    )
    print(
        f"  |F1 - F0| / F1         median {out['rel_err_median']:.4f}  mean "
        f"{out['rel_err_mean']:.4f}  max {out['rel_err_max']:.4f}"
    )
    print(f"  F1 slower than F0      {100 * out['f1_slower_frac']:.0f}% of designs")
    ii = out["ideal_network_f0"]
    print(
        f"  before F0's flow-control / packet-service terms (ideal-network F0, same designs "
        f"and mappings): tau {ii['kendall_tau']:.4f} ({ii['discordant_pairs']} discordant), "
        f"|F1 - F0| / F1 median {ii['rel_err_median']:.4f} mean {ii['rel_err_mean']:.4f} "
        f"max {ii['rel_err_max']:.4f}"
    )
    print(f"  F0 cost                {f0_s:.1f} s (all designs, all mappings, one batch)")
    print(
        f"  F1 cost                {total['wall_s']:.1f} s wall ({total['compile_s']:.1f} s "
        f"compiling {total['n_compiles']} simulators, {total['sim_s']:.1f} s simulating "
        f"{total['router_cycles'] / 1e6:.1f} M router-cycles)"
    )
    print(f"  runtime                {out['runtime_s']:.1f} s")
    print("\nmost misranked designs (discordant pairs, F0 rank -> F1 rank):")
    for r in worst:
        print(
            f"  #{r['index']:<3d} {r['discordant_pairs']:3d} pairs  rank {r['f0_rank']:2d} -> "
            f"{r['f1_rank']:2d}  F0 {r['f0_step_s']:.4g} s F1 {r['f1_step_s']:.4g} s  "
            f"comm {r['f0_comm_s']:.3g} -> {r['f1_comm_s']:.3g} s  "
            f"min GEMM factor {r['min_gemm_factor']:.2f} a2a {r['a2a_factor']:.2f} "
            f"reticle {r['reticle_factor']:.2f} | VCs {r['n_vcs']:.0f} buf "
            f"{r['buffer_depth']:.0f} link {r['link_bits']:.0f} b d2d {r['d2d_bw_ratio']} "
            f"tp {r['tp']} pp {r['pp']} mb {r['micro_batch']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
