"""``theseus explore``: multi-fidelity design-space exploration, durable and resumable;
``--inference``: F0 screening of a design space for LLM serving."""

from __future__ import annotations

import json
import sys
from types import MappingProxyType

from ._common import add_workload_args, fmt_si

# Training-search defaults (None in the parser, so that an explicit flag can be told apart
# and refused with --inference).
_TRAINING_DEFAULTS = dict(
    method="mfbo", surrogate="f0mean", budget=40.0, q=1, n_init=5, f1_max_cycles=16000
)
_TRAINING_ONLY = {
    "method": "--method",
    "surrogate": "--surrogate",
    "budget": "--budget",
    "resume": "--resume",
    "q": "--q",
    "n_init": "--n-init",
    "f1_max_cycles": "--f1-max-cycles",
    "workers": "--workers",
    "executor": "--executor",
    "address": "--address",
    "gpus_per_worker": "--gpus-per-worker",
}
# Workload flags of add_workload_args: inference ones (parser default None; their own
# defaults, read from add_workload_args, apply with --inference) and training ones.
_INFERENCE_ONLY = {
    "batch": "--batch",
    "prompt_len": "--prompt-len",
    "output_len": "--output-len",
    "max_tpot_ms": "--max-tpot-ms",
    "objective": "--objective",
    "precision": "--precision",
}
_WORKLOAD_TRAINING = MappingProxyType({"global_batch": "--global-batch", "seq_len": "--seq-len"})
_POOL = MappingProxyType({"training": 1024, "inference": 4096})
_OUT = MappingProxyType({"training": "runs/explore", "inference": "runs/explore_inference"})


def add_parser(sub) -> None:
    p = sub.add_parser(
        "explore",
        help="multi-fidelity Bayesian optimisation (and baselines) over a WSC design space",
        description="Search a wafer-scale design space for the throughput / power Pareto front "
        "of LLM training: candidates are screened by F0 in one batch, proposals are evaluated "
        "at F1 (simulated network). Every evaluation is stored in RUN_DIR/run.sqlite; "
        "--resume RUN_DIR continues a killed run. Writes pareto.csv, pareto.png, "
        "convergence.png and summary.json. With --inference (--batch, --prompt-len, "
        "--output-len, optional --max-tpot-ms): screen --pool designs for LLM serving at F0 "
        "only (output tokens/s vs power; F1 does not simulate decode yet) and write "
        "pareto.csv, designs.csv, pareto.png and summary.json.",
    )
    p.add_argument("space", nargs="?", default=None, help="design space (e.g. theseus_2024)")
    p.add_argument("workload", nargs="?", default=None, help="workload (e.g. gpt3-175b)")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="declared F1 cost to spend, seconds (simulated router-cycles / 4e5; default 40)",
    )
    p.add_argument(
        "--method",
        default=None,
        choices=["mfbo", "sfbo", "random", "nsga2", "f0"],
        help="search method (default mfbo)",
    )
    p.add_argument(
        "--surrogate",
        default=None,
        choices=["f0mean", "ar1"],
        help="mfbo: F0 as the GP prior mean (default), or AR(1) co-kriging with F0 as the low "
        "fidelity",
    )
    p.add_argument(
        "--pool",
        type=int,
        default=None,
        help="designs sampled and F0-screened (default 1024; 4096 with --inference)",
    )
    p.add_argument("--q", type=int, default=None, help="designs per proposal (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="evaluate the --q designs of a proposal concurrently on N workers (default 1: in "
        "this process); the results are those of a serial run",
    )
    p.add_argument(
        "--executor",
        default=None,
        choices=["process", "ray"],
        help="where the workers run: local processes (default) or a Ray cluster",
    )
    p.add_argument(
        "--address",
        default=None,
        help="--executor ray: cluster address ('auto', 'ray://HOST:10001'; default: a new "
        "local Ray instance)",
    )
    p.add_argument(
        "--gpus-per-worker",
        type=float,
        default=None,
        help="--executor ray: GPUs Ray reserves for each worker (default 0: CPU workers)",
    )
    p.add_argument(
        "--n-init",
        type=int,
        default=None,
        help="F1 points of the BO initial design (mfbo: picked by F0; sfbo: Latin hypercube; "
        "default 5)",
    )
    p.add_argument("--tech", default="n7")
    p.add_argument("--f1-max-cycles", type=int, default=None, help="default 16000")
    p.add_argument(
        "--no-refine",
        action="store_true",
        help="skip the gradient refinement of the best BO designs after the budget",
    )
    p.add_argument(
        "--out",
        default=None,
        help="run directory (default runs/explore; runs/explore_inference with --inference)",
    )
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a stored run")
    p.add_argument(
        "--xla-cache",
        default="auto",
        help="persistent compilation cache folder ('auto': RUN_DIR/../.xla_cache; 'none')",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true")
    add_workload_args(p)
    p.add_argument(
        "--chunk", type=int, default=None, help="--inference: designs per compiled call (256)"
    )
    infer_defaults = {k: p.get_default(k) for k in _INFERENCE_ONLY}
    p.set_defaults(**dict.fromkeys(_INFERENCE_ONLY), inference_defaults=infer_defaults)


def _ms(t_s: float) -> str:
    """A duration in ms (us below 0.1 ms)."""
    return f"{t_s * 1e6:.3g} us" if t_s < 1e-4 else f"{t_s * 1e3:.3g} ms"


def _given(args, flags: dict) -> list[str]:
    """The flags of ``{dest: flag}`` the user gave (their parser default is None)."""
    return [f for d, f in flags.items() if getattr(args, d, None) is not None]


def _check_mode(args) -> str:
    """``"inference"`` or ``"training"``; refuse the flags that do not apply to the mode."""
    if args.inference:
        bad = _given(args, _TRAINING_ONLY) + (["--no-refine"] if args.no_refine else [])
        if bad:
            verb = "does" if len(bad) == 1 else "do"
            raise ValueError(
                f"--inference runs are F0-only screening: {', '.join(bad)} {verb} not apply "
                "(they drive the F1 search of training runs); drop them"
            )
        bad = _given(args, _WORKLOAD_TRAINING)
        if bad:
            raise ValueError(
                f"{', '.join(bad)} are training options; use --batch, --prompt-len and "
                "--output-len with --inference"
            )
        return "inference"
    bad = _given(args, {**_INFERENCE_ONLY, **_WORKLOAD_TRAINING, "chunk": "--chunk"})
    if bad:
        raise ValueError(
            f"{', '.join(bad)} apply to --inference runs only; training explore takes the "
            "batch, sequence length and precision from the workload file (add --inference "
            "to explore LLM serving)"
        )
    return "training"


# flags whose explicit value must agree with a resumed run's stored configuration
_RESUME_KEYS = dict(
    space="space",
    workload="workload",
    method="method",
    surrogate="surrogate",
    budget="budget_s",
    q="q",
    n_init="n_init",
    f1_max_cycles="f1_max_cycles",
    pool="pool",
)


def _check_resume_flags(args, run_dir) -> None:
    """Refuse ``--resume`` with a flag that contradicts the stored run (the stored
    configuration always wins, so a silently ignored flag would mislead)."""
    from ..dse.store import RunStore

    with RunStore.open(run_dir) as st:
        stored = st.config()
    diff = []
    for arg, key in _RESUME_KEYS.items():
        given = getattr(args, arg, None)
        if given is not None and key in stored and given != stored[key]:
            diff.append(f"{arg}={given!r} (the run has {stored[key]!r})")
    if getattr(args, "no_refine", False) and stored.get("refine", True):
        diff.append("--no-refine (the run refines)")
    if diff:
        raise ValueError(
            f"--resume {run_dir} continues the stored run as it was configured; you also "
            f"passed {', '.join(diff)}. Drop those flags to resume, or start a new run with "
            "--out DIR"
        )


def run(args) -> int:
    from pathlib import Path

    import jax

    mode = _check_mode(args)
    run_dir = Path(args.resume or args.out or _OUT[mode])
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
    if mode == "inference":
        return _run_inference(args, run_dir, log)

    from ..dse.explore import ExploreConfig, run_explore

    parallel = _parallel(args)
    if args.resume:
        _check_resume_flags(args, run_dir)
        summary = run_explore(None, run_dir, resume=True, progress=log, parallel=parallel)
    else:
        if not args.space or not args.workload:
            raise ValueError("give SPACE and WORKLOAD (e.g. theseus_2024 gpt3-175b), or --resume")
        d = {
            k: (_TRAINING_DEFAULTS[k] if getattr(args, k) is None else getattr(args, k))
            for k in _TRAINING_DEFAULTS
        }
        cfg = ExploreConfig(
            space=args.space,
            workload=args.workload,
            tech=args.tech,
            method=d["method"],
            surrogate=d["surrogate"],
            budget_s=d["budget"],
            seed=args.seed,
            pool=_POOL[mode] if args.pool is None else args.pool,
            q=d["q"],
            f1_max_cycles=d["f1_max_cycles"],
            n_init=d["n_init"],
            refine=not args.no_refine,
        )
        summary = run_explore(cfg, run_dir, progress=log, parallel=parallel)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"Pareto designs (F1): {summary['n_pareto']} (first 10, highest throughput first)")
        for p in summary["pareto"][:10]:
            print(
                f"  {p['tokens_per_s']:10.4g} tokens/s  {p['power_w'] / 1e3:8.3g} kW  "
                f"{p['tokens_per_s'] / p['power_w']:8.3g} tokens/s/W  "
                f"{int(round(p['n_wafers']))} wafer(s), {p['integration_name']}, "
                f"DRAM {p['dram_kind_name']}" + ("  [refined]" if p["refined"] else "")
            )
        _print_gpu_reference(summary.get("gpu_reference"))
        print(f"wrote {run_dir}/pareto.csv, pareto.png, convergence.png, summary.json")
    return 0


def resume_hint(args) -> str:
    """How to continue an interrupted run (printed by ``theseus`` on Ctrl-C)."""
    if args.inference:
        return "rerun the command (the F0 screening of --inference is not resumable)"
    run_dir = args.resume or args.out or _OUT["training"]
    return f"every finished evaluation is stored; continue with: theseus explore --resume {run_dir}"


def _parallel(args):
    """The :class:`~theseus_jax.parallel.Parallel` of the flags (checked there)."""
    import importlib.util

    from ..parallel import Parallel

    backend = args.executor or "process"
    if backend != "ray" and (args.address is not None or args.gpus_per_worker is not None):
        raise ValueError("--address and --gpus-per-worker apply to --executor ray only")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise ValueError('--executor ray needs Ray in this environment: pip install -e ".[ray]"')
    return Parallel(
        workers=1 if args.workers is None else args.workers,
        backend=backend,
        address=args.address,
        gpus_per_worker=args.gpus_per_worker or 0.0,
    )


def _print_gpu_reference(gpu) -> None:
    """One line: the GPU reference point of the run (or why there is none)."""
    if not gpu:
        print("GPU reference: none (no mapping of the workload fits a comparable GPU cluster)")
        return
    print(
        f"GPU reference, {gpu['label']}: {gpu['tokens_per_s']:.4g} tokens/s, "
        f"{fmt_si(gpu['power_w'], 'W')}, {gpu['tokens_per_s'] / gpu['power_w']:.3g} tokens/s/W"
        + ("" if gpu["feasible"] else f" (violates {', '.join(gpu['violated'])})")
    )


def _run_inference(args, run_dir, log) -> int:
    from ..dse.explore_inference import (
        FIDELITY_LINE,
        InferenceExploreConfig,
        run_inference_explore,
    )

    if not args.space or not args.workload:
        raise ValueError("give SPACE and WORKLOAD (e.g. theseus_2024 llama-3-8b) with --inference")
    d = {
        k: (args.inference_defaults[k] if getattr(args, k) is None else getattr(args, k))
        for k in _INFERENCE_ONLY
    }
    cfg = InferenceExploreConfig(
        space=args.space,
        workload=args.workload,
        tech=args.tech,
        batch=d["batch"],
        prompt_len=d["prompt_len"],
        output_len=d["output_len"],
        max_tpot_ms=float(d["max_tpot_ms"]),
        precision=d["precision"] or "bf16",
        pool=_POOL["inference"] if args.pool is None else args.pool,
        seed=args.seed,
        objective=d["objective"],
        chunk=256 if args.chunk is None else args.chunk,
    )
    if log is None and not args.json:
        print(FIDELITY_LINE)  # the first line of every printout, --quiet too
    summary = run_inference_explore(cfg, run_dir, progress=log)
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    c = summary["counts"]
    bound = f"tpot <= {cfg.max_tpot_ms:g} ms" if cfg.max_tpot_ms > 0 else "no tpot bound"
    print(
        f"{summary['model']} serving, batch {cfg.batch}, {cfg.prompt_len} in / "
        f"{cfg.output_len} out, {bound}: {c['feasible']} of {c['screened']} designs feasible"
    )
    if c["infeasible_by_reason"]:
        why = ", ".join(f"{k} {v}" for k, v in list(c["infeasible_by_reason"].items())[:4])
        print(f"  infeasible by reason: {why}")
    print(f"Pareto designs (F0 only): {summary['n_pareto']} (first 10, highest throughput first)")
    for p in summary["pareto"][:10]:
        mp = p["mapping"]
        region = "wafer" if mp["tp"] == 0 else f"{mp['tp']} reticles"
        print(
            f"  {p['tokens_per_s']:9.4g} tokens/s  {fmt_si(p['power_w'], 'W'):>9}  "
            f"{p['tokens_per_s_per_w']:8.3g} tokens/s/W  tpot {_ms(p['tpot_s']):>9}  "
            f"ttft {_ms(p['ttft_s']):>9}  {p['n_wafers']:g} wafer(s)  "
            f"[region {region}, pp {mp['pp']}, micro-batch {mp['micro_batch']}, "
            f"{'streamed' if mp['stream'] else 'resident'} weights]"
        )
    print(
        f"best {summary['best_tokens_per_s']:.4g} output tokens/s, "
        f"best {summary['best_tokens_per_s_per_w']:.4g} tokens/s/W, "
        f"hypervolume {summary['hypervolume']:.4g} decades^2"
    )
    _print_gpu_reference(summary.get("gpu_reference"))
    print(f"wrote {run_dir}/pareto.csv, designs.csv, pareto.png, summary.json")
    return 0
