"""Scale-out benchmark: streamed-sweep designs/s on 1 vs 4 forced host devices.

    python scripts/bench_scale.py [--n 8192] [--workload gpt3-xl] [--json]

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
    a = p.parse_args(argv)
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in (1, 4):
            s = _sweep(a.n, a.workload, k, Path(tmp) / f"d{k}")
            res[k] = dict(
                devices=len(s["devices"]),
                designs_per_s=s["designs_per_s"],
                eval_seconds=s["eval_seconds"],
                pareto=_front(Path(tmp) / f"d{k}" / "pareto.csv"),
            )
    (i1, v1), (i4, v4) = res[1]["pareto"], res[4]["pareto"]
    same = i1 == i4
    rel = float(np.max(np.abs(v4 - v1) / np.maximum(np.abs(v1), 1e-30))) if same else None
    out = {
        "workload": a.workload,
        "n": a.n,
        "designs_per_s_1_device": res[1]["designs_per_s"],
        "designs_per_s_4_devices": res[4]["designs_per_s"],
        "speedup": res[4]["designs_per_s"] / res[1]["designs_per_s"],
        "same_pareto_front": same,
        "front_max_rel_diff": rel,
    }
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        print(
            f"{a.workload}, {a.n} designs: {out['designs_per_s_1_device']:.0f} designs/s on 1 "
            f"device, {out['designs_per_s_4_devices']:.0f} on 4 forced host devices "
            f"({out['speedup']:.2f}x); same Pareto designs: {same} (values within "
            f"{rel:.1e} relative)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
