"""``theseus sweep SPACE WORKLOAD -n N``: sample designs, evaluate them in chunks streamed to
Parquet (resumable), write the Pareto front, a summary and a Pareto plot
(:func:`theseus_jax.dse.sweep.run_sweep`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ._common import add_workload_args, load_workload


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="evaluate N sampled designs of a design space; write a CSV and a Pareto plot",
        description="Sample N legal designs of SPACE in chunks, search every mapping of "
        "WORKLOAD on each (sharded over every visible device), stream each chunk to "
        "OUT/parts/*.parquet, and write pareto.csv, summary.json, pareto.png (and sweep.csv "
        "up to 100,000 designs). Memory stays bounded for any N; rerunning the same command "
        "continues a killed sweep.",
    )
    p.add_argument("space", help="design-space name or path (e.g. theseus_2024)")
    p.add_argument("workload", help="model name or path (e.g. gpt3-175b)")
    p.add_argument("-n", "--n-designs", type=int, default=1000, help="designs to sample")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tech", default="n7", help="technology config (default n7)")
    p.add_argument("--out", default="runs/sweep", help="output directory")
    p.add_argument(
        "--chunk",
        type=int,
        default=4096,
        help="designs per part file and per evaluator call (memory is bounded by it)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--shard",
        default=None,
        metavar="K/M",
        help="host K of M on a shared --out: evaluate only chunks i with i %% M == K; once "
        "every host is done, run the same command without --shard to combine",
    )
    p.add_argument(
        "--baseline",
        default="a100_dgx",
        help="GPU system plotted for reference at iso-peak FLOPs with the median design "
        "('none' to skip)",
    )
    add_workload_args(p)


def run(args) -> int:
    from ..dse._gpu_reference import gpu_reference
    from ..dse.sweep import run_sweep
    from ..io import load_tech
    from ..space import load_space

    wl = load_workload(args)
    space = load_space(args.space)
    tech = load_tech(args.tech)
    res = run_sweep(
        space,
        wl,
        tech,
        n=args.n_designs,
        out=args.out,
        seed=args.seed,
        chunk=args.chunk,
        objective=args.objective,
        names=dict(space=args.space, workload=args.workload, tech=args.tech),
        progress=not args.no_progress,
        shard=_shard(args.shard),
    )
    if args.shard is not None:
        return 0
    out = Path(args.out)
    pts, front = res.pop("_plot_points"), res.pop("_front")
    baseline = None
    if args.baseline and args.baseline.lower() != "none" and front is not None:
        ref = gpu_reference(wl, float(np.median(front["peak_flops"])), system=args.baseline)
        if ref is not None:
            baseline = {
                "name": args.baseline,
                "label": ref["label"],
                "n_gpus": ref["n_gpus"],
                "tokens_per_s": ref["tokens_per_s"],
                "power_w": ref["power_w"],
                "feasible": ref["feasible"],
            }
    res["baseline"] = baseline
    (out / "summary.json").write_text(json.dumps(res, indent=1))
    _plot(out / "pareto.png", pts, front, wl, args, baseline, res)
    files = ["pareto.csv", "pareto.png", "summary.json", "parts/"]
    if (out / "sweep.csv").exists():
        files.insert(0, "sweep.csv")
    print(f"wrote {', '.join(str(out / f) for f in files)}")
    return 0


def resume_hint(args) -> str:
    """How to continue an interrupted sweep (printed by ``theseus`` on Ctrl-C)."""
    return "finished parts are kept; run the same command again to continue"


def _shard(text: str | None) -> tuple[int, int] | None:
    """``"K/M"`` as ``(K, M)`` (checked by ``run_sweep``)."""
    if text is None:
        return None
    try:
        k, m = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(
            f"--shard must be K/M (e.g. 0/4 on the first of 4 hosts), got {text!r}"
        ) from None
    return k, m


def _plot(path, pts, front, wl, args, baseline, summary) -> None:
    """Throughput vs power: a thinned sample of the designs (every k-th, at most
    ``PLOT_POINTS``), the whole Pareto front and the GPU reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tput, power, feas = pts[:, 0], pts[:, 1], pts[:, 2] > 0
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    every = summary["plot"]["every"]
    thin = f" (every {every}th design)" if every > 1 else ""
    ax.scatter(power[~feas] / 1e3, tput[~feas], s=6, c="0.8", label="infeasible" + thin)
    ax.scatter(power[feas] / 1e3, tput[feas], s=8, c="tab:blue", alpha=0.6, label="feasible" + thin)
    if front is not None:
        order = np.argsort(front["power_w"])
        ax.plot(
            front["power_w"][order] / 1e3,
            front["tokens_per_s"][order],
            "-o",
            c="tab:red",
            ms=4,
            label="Pareto front",
        )
    if baseline is not None:
        ax.scatter(
            [baseline["power_w"] / 1e3],
            [baseline["tokens_per_s"]],
            marker="*",
            s=160,
            c="k",
            label=baseline["label"],
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("power (kW)")
    kind = "inference" if args.inference else "training"
    ax.set_ylabel(f"{kind} throughput ({'output ' if args.inference else ''}tokens/s)")
    ax.set_title(
        f"{args.space}: {wl.model.name} {kind}, "
        f"{summary['n_feasible']}/{summary['n_designs']} feasible"
    )
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
