"""Scale-out benchmark: sweep designs/s on 1 vs 4 devices, explore wall time on 1 vs 2 workers.

    python scripts/bench_scale.py [--n 8192] [--workload gpt3-xl] [--json]
                                  [--explore-budget 20] [--explore-q 2] [--only sweep|explore]

Each configuration runs ``theseus sweep`` in its own process (the device count is fixed when
JAX starts: ``XLA_FLAGS=--xla_force_host_platform_device_count=K``) on the same designs and
reports the evaluation rate from the sweep's ``summary.json``, whether the Pareto fronts hold
the same designs, and how far their values differ (the last float32 bit can move with the
per-device batch shape). On a 2-core CPU, 4 host devices share 2 cores: expect at most 2x.
(Parallel F1 evaluations, ``explore --workers``, are not benchmarked yet.)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _sweep(n: int, workload: str, devices: int, out: Path) -> dict:
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    }
    cmd = [
        sys.executable,
        "-m",
        "theseus_jax.cli",
        "sweep",
        "theseus_2024",
        workload,
        "-n",
        str(n),
        "--out",
        str(out),
        "--no-progress",
        "--baseline",
        "none",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(r.stdout[-2000:] + r.stderr[-2000:])
    return json.loads((out / "summary.json").read_text())


def _explore(workload: str, budget: float, q: int, workers: int, out: Path) -> float:
    """Wall seconds of one ``theseus explore`` run (its own process)."""
    cmd = [
        sys.executable,
        "-m",
        "theseus_jax.cli",
        "explore",
        "theseus_2024",
        workload,
        "--method",
        "mfbo",
        "--q",
        str(q),
        "--budget",
        str(budget),
        "--pool",
        "256",
        "--no-refine",
        "--xla-cache",
        "none",
        "--workers",
        str(workers),
        "--out",
        str(out),
        "--quiet",
    ]
    t = time.perf_counter()
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(r.stdout[-2000:] + r.stderr[-2000:])
    return wall


def _stored(run_dir: Path) -> list:
    """What a run stored, in order: (pool index, level, objectives, declared cost)."""
    from theseus_jax.dse.store import RunStore

    with RunStore.open(run_dir) as st:
        return [
            (r.extra["pool_index"], r.extra["level"], r.objectives, r.cost)
            for r in st.evaluations()
        ]


def _bench_explore(a, tmp: Path) -> dict:
    walls, stored = {}, {}
    for k in (1, 2):
        walls[k] = _explore(a.workload, a.explore_budget, a.explore_q, k, tmp / f"e{k}")
        stored[k] = _stored(tmp / f"e{k}")
    return {
        "explore_budget_s": a.explore_budget,
        "explore_q": a.explore_q,
        "explore_evaluations": len(stored[1]),
        "explore_wall_s_1_worker": walls[1],
        "explore_wall_s_2_workers": walls[2],
        "explore_speedup": walls[1] / walls[2],
        "explore_same_result": stored[1] == stored[2],
    }


def _bench_sweep(a, tmp: Path) -> dict:
    res = {}
    for k in (1, 4):
        s = _sweep(a.n, a.workload, k, tmp / f"d{k}")
        res[k] = dict(
            designs_per_s=s["designs_per_s"],
            pareto=_front(tmp / f"d{k}" / "pareto.csv"),
        )
    (i1, v1), (i4, v4) = res[1]["pareto"], res[4]["pareto"]
    same = i1 == i4
    rel = float(np.max(np.abs(v4 - v1) / np.maximum(np.abs(v1), 1e-30))) if same else None
    return {
        "n": a.n,
        "designs_per_s_1_device": res[1]["designs_per_s"],
        "designs_per_s_4_devices": res[4]["designs_per_s"],
        "speedup": res[4]["designs_per_s"] / res[1]["designs_per_s"],
        "same_pareto_front": same,
        "front_max_rel_diff": rel,
    }


def _front(path: Path):
    """(design indices, [tokens/s, power W] array) of a sweep's pareto.csv."""
    with open(path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["design_index"]))
    idx = [int(r["design_index"]) for r in rows]
    vals = np.array([[float(r["tokens_per_s"]), float(r["power_w"])] for r in rows])
    return idx, vals


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--workload", default="gpt3-xl")
    p.add_argument("--json", action="store_true")
    p.add_argument("--explore-budget", type=float, default=20.0, help="declared F1 s")
    p.add_argument("--explore-q", type=int, default=2, help="designs per proposal")
    p.add_argument("--only", choices=["sweep", "explore"], default=None)
    a = p.parse_args(argv)
    out = {"workload": a.workload}
    with tempfile.TemporaryDirectory() as tmp:
        if a.only != "explore":
            out.update(_bench_sweep(a, Path(tmp)))
        if a.only != "sweep":
            out.update(_bench_explore(a, Path(tmp)))
    if a.json:
        print(json.dumps(out, indent=1))
        return 0
    if "n" in out:
        print(
            f"sweep, {a.workload}, {a.n} designs: {out['designs_per_s_1_device']:.0f} designs/s "
            f"on 1 device, {out['designs_per_s_4_devices']:.0f} on 4 forced host devices "
            f"({out['speedup']:.2f}x); same Pareto designs: {out['same_pareto_front']} (values "
            f"within {out['front_max_rel_diff'] or float('nan'):.1e} relative)"
        )
    if "explore_q" in out:
        print(
            f"explore mfbo, {a.workload}, q={a.explore_q}, budget {a.explore_budget:g} s "
            f"({out['explore_evaluations']} evaluations): {out['explore_wall_s_1_worker']:.1f} s "
            f"on 1 worker, {out['explore_wall_s_2_workers']:.1f} s on 2 "
            f"({out['explore_speedup']:.2f}x); same result: {out['explore_same_result']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
