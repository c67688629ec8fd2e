"""``theseus explore``: multi-fidelity design-space exploration, durable and resumable."""

from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "explore",
        help="multi-fidelity Bayesian optimisation (and baselines) over a WSC design space",
        description="Search a wafer-scale design space for the throughput / power Pareto front "
        "of LLM training: candidates are screened by F0 in one batch, proposals are evaluated "
        "at F1 (simulated network). Every evaluation is stored in RUN_DIR/run.sqlite; "
        "--resume RUN_DIR continues a killed run. Writes pareto.csv, pareto.png, "
        "convergence.png and summary.json.",
    )
    p.add_argument("space", nargs="?", default=None, help="design space (e.g. theseus_2024)")
    p.add_argument("workload", nargs="?", default=None, help="training workload (e.g. gpt3-175b)")
    p.add_argument(
        "--budget",
        type=float,
        default=40.0,
        help="declared F1 cost to spend, seconds (simulated router-cycles / 4e5; default 40)",
    )
    p.add_argument("--method", default="mfbo", choices=["mfbo", "sfbo", "random", "nsga2", "f0"])
    p.add_argument(
        "--surrogate",
        default="f0mean",
        choices=["f0mean", "ar1"],
        help="mfbo: F0 as the GP prior mean, or AR(1) co-kriging with F0 as the low fidelity",
    )
    p.add_argument("--pool", type=int, default=1024, help="designs sampled and F0-screened")
    p.add_argument("--q", type=int, default=1, help="designs per proposal")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--n-init",
        type=int,
        default=5,
        help="F1 points of the BO initial design (mfbo: picked by F0; sfbo: Latin hypercube)",
    )
    p.add_argument("--tech", default="n7")
    p.add_argument("--f1-max-cycles", type=int, default=16000)
    p.add_argument(
        "--no-refine",
        action="store_true",
        help="skip the gradient refinement of the best BO designs after the budget",
    )
    p.add_argument("--out", default="runs/explore", help="run directory")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a stored run")
    p.add_argument(
        "--xla-cache",
        default="auto",
        help="persistent compilation cache folder ('auto': RUN_DIR/../.xla_cache; 'none')",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true")


def run(args) -> int:
    from pathlib import Path

    import jax

    from ..dse.explore import ExploreConfig, run_explore

    run_dir = Path(args.resume or args.out)
    if args.xla_cache != "none":
        cache = run_dir.parent / ".xla_cache" if args.xla_cache == "auto" else Path(args.xla_cache)
        cache.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(cache))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    log = (
        None
        if args.quiet
        else (lambda s: print(s, file=sys.stderr if args.json else sys.stdout, flush=True))
    )
    if args.resume:
        summary = run_explore(None, run_dir, resume=True, progress=log)
    else:
        if not args.space or not args.workload:
            raise ValueError("give SPACE and WORKLOAD (e.g. theseus_2024 gpt3-175b), or --resume")
        cfg = ExploreConfig(
            space=args.space,
            workload=args.workload,
            tech=args.tech,
            method=args.method,
            surrogate=args.surrogate,
            budget_s=args.budget,
            seed=args.seed,
            pool=args.pool,
            q=args.q,
            f1_max_cycles=args.f1_max_cycles,
            n_init=args.n_init,
            refine=not args.no_refine,
        )
        summary = run_explore(cfg, run_dir, progress=log)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"Pareto designs (F1): {summary['n_pareto']}")
        for p in summary["pareto"][:10]:
            print(f"  {p['tokens_per_s']:.4g} tokens/s  {p['power_w'] / 1e3:.3g} kW")
        print(f"wrote {run_dir}/pareto.csv, pareto.png, convergence.png, summary.json")
    return 0
