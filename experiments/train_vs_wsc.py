"""Training: searched wafer-scale designs vs existing WSCs at the same peak FLOP/s (BRIEF 6.1).

The same iso-peak explorations as ``train_vs_gpu`` (reused from ``--runs`` when present),
against a Cerebras-WSE-2-like system (stitched reticles, 48 KiB cores, weights streamed from
off-wafer memory over the system I/O) and a Tesla-Dojo-like system (known-good D1 dies on
InFO-SoW) of the same peak: the whole number of wafers (tiles) whose peak is closest in ratio
to the A100 cluster's. Each baseline runs under the best mapping F0 finds and is evaluated at
F1 like the explored designs. Improvements as defined in ``experiments/_training.py``; the
technology draws move both sides (the baselines are wafers too).

    python experiments/train_vs_wsc.py [--smoke] [--out results/train_vs_wsc]
        [--models ...] [--budget 12] [--pool 512] [--draws 512] [--runs DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _training as T  # noqa: E402
import train_vs_gpu as G  # noqa: E402
from _common import (
    Study,
    interval,
    parse_args,
    saving,
    verdict as judge,  # noqa: E402
)

NAME = "train_vs_wsc"
PAPER_PERF, PAPER_POWER = 0.737, 0.424
BASELINES = (("wse2", "WSE-2-like (stitched)"), ("dojo_tile", "Dojo-like (InFO-SoW)"))


def wafer_baseline(name, peak, wl, tech, techs, cache=None) -> dict:
    """One wafer baseline at iso-peak: F0 best mapping, F1 of it, and per-draw values
    (``cache``: the study's :class:`~theseus_jax.fidelity.F1Cache`)."""
    import theseus_jax as tj
    from theseus_jax.fidelity import evaluate_f1

    w = T.wafer_at_peak(name, peak)
    r = tj.evaluate(w, wl, tech=tech)
    maps = tj.enumerate_wafer_mappings(
        wl, max_reticles=int(np.asarray(w.reticle_rows * w.reticle_cols * w.n_wafers))
    )
    mi = int(r.mapping_index[0])
    mp = jax.tree_util.tree_map(lambda a: a[mi], maps)
    m1, cost = evaluate_f1(w, wl, tech, mapping=mp, cache=cache)
    f0_t, f0_p = float(r.metrics.tokens_per_s[0]), float(r.metrics.power_w[0])
    f1_t, f1_p = float(m1.tokens_per_s), float(m1.power_w)
    batch = jax.tree_util.tree_map(lambda a: jax.numpy.asarray(a)[None], w)
    mps = jax.tree_util.tree_map(lambda a: jax.numpy.asarray(a)[None], mp)
    dt, dp, df = T.f0_under_draws(batch, mps, wl, techs)
    return dict(
        name=name,
        n_wafers=int(np.asarray(w.n_wafers)),
        peak_flops=float(r.metrics.peak_flops[0]),
        feasible=bool(r.metrics.feasible[0]),
        violated=";".join(tj.describe(int(np.asarray(r.metrics.violations)[0]))),
        f0_tokens_per_s=f0_t,
        f0_power_w=f0_p,
        tokens_per_s=f1_t,
        power_w=f1_p,
        f1_router_cycles=int(cost.router_cycles),
        draws_t=dt[:, 0] * f1_t / f0_t,
        draws_p=dp[:, 0] * f1_p / f0_p,
        draws_f=df[:, 0],
    )


def main(argv=None) -> int:
    args = parse_args(NAME, __doc__, argv, extra=G.add_args)
    st = Study(NAME, "Training: searched WSC designs vs WSE-2-like and Dojo-like (iso-peak)", args)
    sc = G.scale(args)
    runs = Path(args.runs) if args.runs else Path(args.out).parent / "explore_runs"
    results, table = G.study_models(st, sc, runs)
    techs, _ = T.tech_draws("n7", sc["draws"], args.seed)  # the same draws (same seed)

    from theseus_jax.fidelity import F1Cache

    cache = F1Cache()  # compiled F1 simulators shared by every baseline of this study
    rows, per_draw, extra_pts, base_rows = [], {lab: {} for _, lab in BASELINES}, {}, []
    for r in results:
        ex = r["ex"]
        peak = r["base"]["a100"]["peak_flops"]
        for name, label in BASELINES:
            st.log(f"{r['model']}: {label} at iso-peak")
            b = wafer_baseline(name, peak, ex["workload"], ex["tech"], techs, cache)
            ok_b = b["draws_f"]
            perf, pw = T.improvement(
                ex["f1_tput"],
                ex["f1_power"],
                np.ones(ex["f1_tput"].size, bool),
                b["tokens_per_s"],
                b["power_w"],
            )
            if not b["feasible"]:  # no comparison with a system that cannot run the job
                perf, pw = np.nan, np.nan
            dperf, dpw = T.improvement(
                r["draws_t"], r["draws_p"], r["draws_f"], b["draws_t"], b["draws_p"]
            )
            # a draw where the baseline itself is infeasible has no comparison
            dperf, dpw = np.where(ok_b, dperf, np.nan), np.where(ok_b, dpw, np.nan)
            per_draw[label][r["model"]] = (dperf, dpw)
            qp, qw = T.quantiles(dperf), T.quantiles(dpw)
            best = float(np.max(ex["f1_tput"]))
            rows.append(
                dict(
                    model=r["model"],
                    baseline=label,
                    baseline_wafers=b["n_wafers"],
                    baseline_peak_ratio=b["peak_flops"] / peak,
                    baseline_feasible=b["feasible"],
                    baseline_violated=b["violated"],
                    baseline_tokens_per_s=b["tokens_per_s"],
                    baseline_power_kw=b["power_w"] / 1e3,
                    wsc_best_tokens_per_s=best,
                    wsc_min_power_kw=float(np.min(ex["f1_power"])) / 1e3,
                    perf_gain=float(perf),
                    perf_gain_q05=qp[0],
                    perf_gain_q50=qp[1],
                    perf_gain_q95=qp[2],
                    perf_gain_per_peak=float(best / b["tokens_per_s"] * b["peak_flops"] / peak - 1),
                    power_saving=float(pw),
                    power_saving_q05=qw[0],
                    power_saving_q50=qw[1],
                    power_saving_q95=qw[2],
                    baseline_feasible_draws=float(np.mean(ok_b)),
                )
            )
            base_rows.append(
                {k: v for k, v in b.items() if not k.startswith("draws_")} | {"model": r["model"]}
            )
            extra_pts.setdefault(r["model"], []).append(
                dict(
                    power_w=b["power_w"],
                    tokens_per_s=b["tokens_per_s"],
                    marker="D" if name == "wse2" else "s",
                    color="C4" if name == "wse2" else "C1",
                    label=f"{label} x{b['n_wafers']}",
                )
            )
    st.table(
        "improvements.csv",
        rows,
        "Per model and WSC baseline (F1, iso-peak whole wafers): gains of the explored "
        "Pareto front, nominal and median / 5-95 % over technology draws; "
        "perf_gain_per_peak corrects the baseline's whole-wafer peak mismatch.",
    )
    st.table("baselines.csv", base_rows, "WSE-2-like and Dojo-like systems per model (F0 / F1)")
    st.figure(
        "fronts",
        G.plot_fronts(st, results, "vs WSE-2-like and Dojo-like", extra_pts),
        "Per model: the explored WSC Pareto front (F1) with the WSE-2-like (diamond) and "
        "Dojo-like (square) systems of the same peak (F1), and the GPU points for scale.",
    )
    st.figure(
        "gains",
        G.plot_gains(
            {lab: [x for x in rows if x["baseline"] == lab] for _, lab in BASELINES},
            "WSC Pareto front vs existing WSCs",
        ),
        "Throughput gain and power saving of the explored front per model and baseline.",
    )
    from theseus_jax.tech import rank_sensitivity

    lines = []
    for _, label in BASELINES:
        for kind, paper, what in ((0, PAPER_PERF, "performance"), (1, PAPER_POWER, "power")):
            col = "perf_gain" if kind == 0 else "power_saving"
            sub = [x for x in rows if x["baseline"] == label]
            nominal = np.array([x[col] for x in sub], float)
            d = G.headline(per_draw[label], kind)
            q = T.quantiles(d)
            sens = rank_sensitivity(table, np.nan_to_num(d, nan=-1.0)) if np.isfinite(q[1]) else []
            if np.any(np.isfinite(nominal)):
                i = int(np.nanargmax(nominal))
                ours = (
                    f"up to {100 * nominal[i]:+.1f} % throughput"
                    if kind == 0
                    else f"up to {saving(nominal[i])}"
                ) + f" ({sub[i]['model']})"
            else:
                ours = "no explored design is as fast as the baseline"
            moved = (
                "moved most by: " + ", ".join(f"{k} (rho {v:+.2f})" for k, v in sens[:3])
                if sens
                else ""
            )
            bad = [x for x in sub if not x["baseline_feasible"]]
            skipped = (
                "baseline infeasible (not compared) for "
                + ", ".join(f"{x['model']} ({x['baseline_violated']})" for x in bad)
                if bad
                else ""
            )
            verdict = judge(q, paper)
            st.claim(
                claim=f"best {what} improvement of the WSC Pareto designs over {label}",
                paper=(
                    f"up to +{100 * paper:.1f} % throughput"
                    if kind == 0
                    else f"up to {100 * paper:.1f} % less power"
                )
                + " (vs existing WSCs)",
                ours=ours,
                interval=(interval(*q) if np.isfinite(q[1]) else "n/a"),
                verdict=verdict,
                why="; ".join(x for x in (moved, skipped) if x),
            )
            lines.append(f"{what} vs {label}: {ours}, interval {interval(*q)}")
    st.notes += [
        "The paper compares with 'existing WSC designs' without one number per baseline; we "
        "report each baseline separately.",
        "The WSE-2-like system streams weights from off-wafer memory over 0.15 TB/s of system "
        "I/O per wafer (configs/systems/wse2.json), which dominates its training time on large "
        "models; the Dojo-like tile has 18 TB/s per direction off-tile.",
        "Whole wafers: a baseline's peak can differ from the target (baseline_peak_ratio); "
        "perf_gain_per_peak divides that out.",
    ]
    st.data.update(scale=sc, summary=lines)
    st.finish(summary="; ".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
