"""What an exploration run leaves behind: the hypervolume trace, ``pareto.csv``,
``summary.json``, ``pareto.png`` and ``convergence.png`` (host side, from the stored
evaluations of a run; :func:`~theseus_jax.dse.run_explore` calls :func:`summarise` at the
end of a run and of every resume).

``pareto.png`` and ``summary.json`` carry a GPU reference point: the repository's default
GPU cluster of comparable peak FLOP/s on the same workload, F0 under its best mapping
(:mod:`theseus_jax.dse._gpu_reference`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .evaluation import Evaluation
from .pareto import hypervolume, hypervolume_2d, pareto_mask

__all__ = ["hypervolume_trace", "summarise"]


def hypervolume_trace(records, ref) -> tuple[np.ndarray, np.ndarray]:
    """Hypervolume of the F1 (throughput, power) points against cumulative cost.

    In decades: each point is ``(log10(tokens/s / ref[0]), log10(W / ref[1]))`` and the
    reference is the origin (the run's reference: half the pool's lowest F0 throughput and
    1.5x its highest F0 power), so designs that span orders of magnitude weigh evenly.
    F1-infeasible designs do not count. Returns ``(cost, hv)`` after each F1 evaluation
    (starting at ``(0, 0)``); ``cost`` includes lower-fidelity evaluations.

    ``records``: :class:`~theseus_jax.dse.evaluation.Evaluation` records or the store's
    :class:`~theseus_jax.dse.store.EvalRecord` rows (anything with ``cost``, ``fidelity``,
    ``feasible`` and ``objectives``).
    """
    cost, hv = [0.0], [0.0]
    pts = []
    c = 0.0
    for r in records:
        c += r.cost
        if r.fidelity != 1:
            continue
        if r.feasible:
            pts.append((np.log10(r.objectives[0] / ref[0]), np.log10(r.objectives[1] / ref[1])))
        if pts:
            a = np.asarray(pts)
            hv.append(hypervolume_2d(a[:, 0], a[:, 1], 0.0, 0.0))
        else:
            hv.append(0.0)
        cost.append(c)
    return np.asarray(cost), np.asarray(hv)


# categorical design fields written with their names beside the codes
_CODE_NAMES = {
    "integration": ("stitched", "info_sow"),
    "dram_kind": ("none", "edge", "stacked"),
}


def _code_name(field: str, value) -> str:
    names = _CODE_NAMES[field]
    if value is None or not math.isfinite(float(value)):
        return ""
    i = int(round(float(value)))
    return names[i] if 0 <= i < len(names) else f"code {i}"


def _wafers(prob, record) -> float:
    """Wafers of an evaluated design (derived, e.g. iso-peak, counts are not stored)."""
    if "n_wafers" in record.design:
        return float(record.design["n_wafers"])
    d = prob.space.complete({n: record.design[n] for n in prob.space.names})
    return float(np.asarray(d.n_wafers).reshape(-1)[0])


def _is_refined(record: Evaluation) -> bool:
    """Whether an evaluation is a gradient-refined design (not a pool design)."""
    return record.refined


def summarise(cfg, prob, store, run_dir: Path, wall_s: float) -> dict:
    """Write ``pareto.csv``, ``summary.json`` and the plots of a run; return the summary."""
    recs = [Evaluation.from_record(r) for r in store.evaluations()]
    gpu = prob.gpu_reference()
    f1 = [r for r in recs if r.fidelity == 1]
    cost, hv = hypervolume_trace(recs, prob.ref)
    pts = np.array([r.objectives for r in f1 if r.feasible], float).reshape(-1, 2)
    front = pareto_mask(pts[:, 0], pts[:, 1]) if len(pts) else np.zeros(0, bool)
    feas_recs = [r for r in f1 if r.feasible]
    rows = [r for r, keep in zip(feas_recs, front, strict=True) if keep]
    rows.sort(key=lambda r: -r.objectives[0])
    names = list(prob.space.names)
    with open(run_dir / "pareto.csv", "w") as fh:
        head = ["tokens_per_s", "power_w", "tokens_per_s_per_w", "n_wafers", "refined"]
        head += [n for n in names if n != "n_wafers"] + [f"{n}_name" for n in _CODE_NAMES]
        fh.write(",".join(head) + "\n")
        for r in rows:
            t, p = r.objectives
            vals = [f"{t:.6g}", f"{p:.6g}", f"{t / p:.6g}"]
            vals += [f"{_wafers(prob, r):.6g}", str(_is_refined(r)).lower()]
            vals += [f"{r.design.get(n, math.nan):.6g}" for n in names if n != "n_wafers"]
            vals += [_code_name(n, r.design.get(n)) for n in _CODE_NAMES]
            fh.write(",".join(vals) + "\n")
    _plot(run_dir, prob, f1, front, cost, hv, cfg, gpu)
    # reporting only: a third objective, the wafers the system needs (its silicon cost)
    n_waf = np.array([_wafers(prob, r) for r in feas_recs], float).reshape(-1)
    ref_w = 1.5 * float(np.max(np.asarray(prob.designs.n_wafers, float)))
    pts3 = np.stack(
        [
            -np.log10(pts[:, 0] / prob.ref[0]),
            np.log10(pts[:, 1] / prob.ref[1]),
            np.log10(np.maximum(n_waf, 1.0) / ref_w),
        ],
        -1,
    ).reshape(-1, 3)
    hv3 = hypervolume(pts3, np.zeros(3)) if len(pts3) else 0.0
    summary = dict(
        config=cfg.to_json(),
        pool_feasible=prob.size,
        pool_screened=prob.screened,
        n_evaluations=len(recs),
        n_f1=len(f1),
        n_f0=len(recs) - len(f1),
        f1_cost_s=float(sum(r.cost for r in f1)),
        total_cost_s=float(sum(r.cost for r in recs) + prob.screen_cost_s),
        f1_wall_s=float(sum(r.wall_s for r in f1)),
        hypervolume=float(hv[-1]) if len(hv) else 0.0,
        hypervolume_units="decades^2 (log10 throughput x log10 power, see hypervolume_trace)",
        hv_reference=dict(tokens_per_s=prob.ref[0], power_w=prob.ref[1], n_wafers=ref_w),
        hypervolume_3d=float(hv3),
        hypervolume_3d_units="decades^3 (as hypervolume, x log10 wafers; reporting only)",
        n_pareto=len(rows),
        pareto=[
            dict(
                tokens_per_s=r.objectives[0],
                power_w=r.objectives[1],
                n_wafers=_wafers(prob, r),
                refined=_is_refined(r),
                **{f"{n}_name": _code_name(n, r.design.get(n)) for n in _CODE_NAMES},
            )
            for r in rows
        ],
        gpu_reference=gpu,
        run_wall_s=wall_s,
    )
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def plot_gpu_reference(ax, gpu: dict | None) -> None:
    """Draw a GPU reference point (``gpu_reference``'s dict, power in kW) on a
    power-vs-throughput axis; nothing when there is none."""
    if not gpu:
        return
    ax.scatter(
        [gpu["power_w"] / 1e3],
        [gpu["tokens_per_s"]],
        s=60,
        marker="D",
        c="k" if gpu["feasible"] else "none",
        edgecolors="k",
        zorder=4,
        label=gpu["label"],
    )


def _plot(run_dir, prob, f1, front, cost, hv, cfg, gpu) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    ax.scatter(prob.f0_power / 1e3, prob.f0_tput, s=4, c="0.8", label="pool (F0)")
    feas = [r for r in f1 if r.feasible]
    if feas:
        p = np.array([r.objectives for r in feas])
        refined = np.array([_is_refined(r) for r in feas])
        ax.scatter(p[~refined, 1] / 1e3, p[~refined, 0], s=14, c="C0", label="evaluated (F1)")
        if refined.any():
            ax.scatter(
                p[refined, 1] / 1e3, p[refined, 0], s=30, marker="*", c="C2", label="refined (F1)"
            )
        if front.any():
            fp = p[front][np.argsort(p[front][:, 1])]
            ax.step(fp[:, 1] / 1e3, fp[:, 0], "C3-", where="post", label="Pareto front (F1)")
            # the wafers each front design needs (its silicon cost)
            for r, (t, pw) in zip(
                [r for r, k in zip(feas, front, strict=True) if k], p[front], strict=True
            ):
                w = int(round(_wafers(prob, r)))
                ax.annotate(
                    f"{w}w", (pw / 1e3, t), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
    plot_gpu_reference(ax, gpu)
    ax.set_xlabel("power (kW)")
    ax.set_ylabel("throughput (tokens/s)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(f"{cfg.method}: {cfg.workload} on {cfg.space} (labels: wafers per design)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(run_dir / "pareto.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    ax.step(cost, hv, where="post")
    ax.set_xlabel("declared F1 cost (s)")
    ax.set_ylabel("hypervolume (decades$^2$)")
    ax.set_title("convergence")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(run_dir / "convergence.png", dpi=120)
    plt.close(fig)
