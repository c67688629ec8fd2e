"""``theseus sim``: run a traffic pattern on a mesh, sweep offered loads, table + plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sim",
        help="cycle-level NoC simulation: latency and throughput against offered load",
        description="Simulate a 2-D mesh (BookSim-like routers) under a synthetic pattern, "
        "sweep the offered load, print latency/throughput and plot latency vs load (PNG).",
    )
    p.add_argument("--mesh", default="8x8", help="routers, KXxKY (default 8x8)")
    p.add_argument(
        "--pattern",
        default="uniform",
        choices=["uniform", "transpose", "bitcomp", "tornado", "hotspot", "neighbor"],
    )
    p.add_argument("--packet-size", type=int, default=1, help="flits per packet")
    p.add_argument("--vcs", type=int, default=8, help="virtual channels per port")
    p.add_argument("--buf", type=int, default=8, help="flits per VC buffer")
    p.add_argument("--rates", default=None, help="comma-separated offered loads (flits/node/cycle)")
    p.add_argument("--points", type=int, default=10, help="loads of the automatic sweep")
    p.add_argument(
        "--method",
        default="booksim",
        choices=["booksim", "fixed"],
        help="booksim: BookSim2's procedure (warm-up, sample periods until converged, drain of "
        "every measured packet); fixed: --warmup/--window/--drain cycles",
    )
    p.add_argument("--warmup", type=int, default=3000, help="cycles (--method fixed)")
    p.add_argument("--window", type=int, default=3000, help="cycles (--method fixed)")
    p.add_argument("--drain", type=int, default=8000, help="cycles (--method fixed)")
    p.add_argument("--queue-cap", type=int, default=4096, help="packets per source queue")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/sim", help="output directory (sim.csv, latency.png)")
    p.add_argument("--json", action="store_true")


def _parse_mesh(s: str):
    try:
        kx, ky = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise ValueError(f"--mesh must look like 8x8, got {s!r}") from None
    return kx, ky


def run(args) -> int:
    from ..sim import BookSimSpec, MeasureSpec, MeshConfig, measure_batch
    from ..sim._bounds import channel_load_bound

    kx, ky = _parse_mesh(args.mesh)
    cfg = MeshConfig(
        kx=kx,
        ky=ky,
        n_vcs=args.vcs,
        buf_depth=args.buf,
        packet_size=args.packet_size,
        pattern=args.pattern,
        queue_cap=args.queue_cap,
    )
    bound = channel_load_bound(cfg)
    if args.rates:
        rates = [float(r) for r in args.rates.split(",")]
        if any(not (0.0 < r <= 1.0) for r in rates):
            raise ValueError("--rates must be in (0, 1] flits/node/cycle")
    else:
        rates = list(np.round(bound * np.linspace(0.1, 1.0, args.points), 5))
    if args.method == "booksim":
        spec = BookSimSpec()
    else:
        spec = MeasureSpec(args.warmup, args.window, args.drain)
    outs = measure_batch(cfg, rates, seed=args.seed, spec=spec)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = ["rate", "avg_latency", "accepted_rate", "stable", "packets_measured", "wall_s"]
    with open(out_dir / "sim.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(keys)
        w.writerows([str(o[k]) for k in keys] for o in outs)
    stable = [o["rate"] for o in outs if o["stable"]]
    sat = max(stable) if stable else float("nan")
    _plot(out_dir / "latency.png", outs, cfg, bound)
    if args.json:
        print(
            json.dumps(
                {
                    "mesh": args.mesh,
                    "pattern": args.pattern,
                    "bound": bound,
                    "saturation": sat,
                    "points": outs,
                },
                indent=1,
            )
        )
        return 0
    print(
        f"{args.mesh} mesh, {args.pattern}, {args.packet_size}-flit packets, "
        f"{args.vcs} VCs x {args.buf} flits; XY channel-load bound {bound:.4f}"
    )
    print(f"{'offered':>8s} {'accepted':>9s} {'latency':>9s}  status")
    for o in outs:
        lat = f"{o['avg_latency']:.1f}" if np.isfinite(o["avg_latency"]) else "-"
        acc = f"{o['accepted_rate']:.4f}" if np.isfinite(o["accepted_rate"]) else "-"
        print(f"{o['rate']:8.4f} {acc:>9s} {lat:>9s}  {'ok' if o['stable'] else 'saturated'}")
    print(f"saturation throughput (highest stable load): {sat:.4f} flits/node/cycle")
    print(f"wrote {out_dir / 'sim.csv'}, {out_dir / 'latency.png'}")
    return 0


def _plot(path, outs, cfg, bound) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [o for o in outs if o["stable"] and np.isfinite(o["avg_latency"])]
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    ax.plot([o["rate"] for o in ok], [o["avg_latency"] for o in ok], "-o", ms=4, label="stable")
    bad = [o for o in outs if not o["stable"]]
    if bad:
        ax.scatter(
            [o["rate"] for o in bad],
            [
                500.0 if not np.isfinite(o["avg_latency"]) else min(o["avg_latency"], 500.0)
                for o in bad
            ],
            c="r",
            marker="x",
            label="saturated",
        )
    ax.axvline(bound, ls="--", c="0.5", label="XY channel-load bound")
    ax.set_xlabel("offered load (flits/node/cycle)")
    ax.set_ylabel("average packet latency (cycles)")
    ax.set_title(f"{cfg.kx}x{cfg.ky} mesh, {cfg.pattern}, {cfg.packet_size}-flit packets")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
