"""The DSE-efficiency and fidelity-agreement experiments at --smoke scale, run as a user runs them.

Each script runs in a subprocess (CPU, a cold compilation cache of its own in ``tmp_path``:
the script reuses it within the run, e.g. the second seed's simulators); the checks are on
what it writes: the manifest and its claim, the tables and figures it lists, and the study's
invariants (normalised hypervolume in [0, 1] and non-decreasing in cost; tau in [-1, 1]).
Each smoke run must stay within the 2-minute CI budget on 2 CPU cores; the timeout here is
looser, since a shared machine can be slower.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _helpers import REPO, read_csv_rows


def _run(name: str, out: Path, *extra: str) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    script = REPO / "experiments" / f"{name}.py"
    cmd = [sys.executable, str(script), "--smoke", "--out", str(out), *extra]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    wall = time.perf_counter() - t
    print(f"{name} --smoke: {wall:.1f} s wall")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["experiment"] == name and m["scale"] == "smoke"
    assert m["command"].startswith(f"python experiments/{name}.py --smoke")
    assert m["claims"] and all(c["claim"] and c["ours"] and c["verdict"] for c in m["claims"])
    for t in m["tables"]:
        assert (out / t["file"]).stat().st_size > 0, t
    for f in m["figures"]:
        assert (out / f["file"]).stat().st_size > 1000, f
        assert (out / f["svg"]).stat().st_size > 1000, f
    return m


def _finite(rows: list[dict], cols) -> None:
    for r in rows:
        for c in cols:
            assert math.isfinite(float(r[c])), (c, r)


def test_dse_efficiency_smoke(tmp_path):
    out = tmp_path / "dse_efficiency"
    m = _run("dse_efficiency", out)
    assert {t["file"] for t in m["tables"]} >= {"hv_vs_cost.csv", "per_seed.csv"}
    assert "hv_vs_cost.png" in {f["file"] for f in m["figures"]}
    claim = m["claims"][0]
    assert claim["claim"].startswith("MFBO reaches single-fidelity BO's final hypervolume")
    assert claim["paper"] == "MFBO finds better fronts at lower cost (no number given)"

    methods = ["mfbo", "sfbo", "random", "nsga2", "f0"]
    hv_cols = ["hv_median", "hv_q25", "hv_q75", "hv_min", "hv_max"]
    rows = read_csv_rows(out / "hv_vs_cost.csv")
    assert set(rows[0]) == {"cost_s", "method", *hv_cols, "n_seeds"}
    _finite(rows, ["cost_s", *hv_cols])
    assert {r["method"] for r in rows} == set(methods)
    for meth in methods:
        mine = sorted((r for r in rows if r["method"] == meth), key=lambda r: float(r["cost_s"]))
        assert float(mine[0]["cost_s"]) == 0.0 and float(mine[-1]["cost_s"]) > 0.0
        for c in hv_cols:
            v = [float(r[c]) for r in mine]
            assert all(0.0 <= x <= 1.0 + 1e-9 for x in v), (meth, c)
            assert all(b >= a - 1e-12 for a, b in zip(v, v[1:], strict=False)), (meth, c)
    # quantiles are ordered at every cost
    for r in rows:
        q = [float(r[c]) for c in ("hv_min", "hv_q25", "hv_median", "hv_q75", "hv_max")]
        assert q == sorted(q), r
    # the best method of each seed defines 1
    per_seed = read_csv_rows(out / "per_seed.csv")
    assert {(r["seed"], r["method"]) for r in per_seed} == {
        (s, mt) for s in ("0", "1") for mt in methods
    }
    _finite(per_seed, ["n_f1", "f1_cost_s", "hv_decades2", "hv_normalised"])
    for s in ("0", "1"):
        assert max(float(r["hv_normalised"]) for r in per_seed if r["seed"] == s) == 1.0
    for r in per_seed:
        assert int(r["n_f1"]) > 0 and float(r["f1_cost_s"]) > 0
    assert m["data"]["seeds"] == [0, 1]


def test_fidelity_agreement_smoke(tmp_path):
    out = tmp_path / "fidelity_agreement"
    n = 4
    m = _run("fidelity_agreement", out, "--n", str(n))
    assert {t["file"] for t in m["tables"]} == {"designs.csv", "inference_designs.csv"}
    assert {f["file"] for f in m["figures"]} == {
        "f0_vs_f1.png",
        "error_hist.png",
        "inference_f0_vs_f1.png",
    }
    assert m["claims"][1]["claim"] == "F0 ranks designs as F1 does (inference)"
    inf = read_csv_rows(out / "inference_designs.csv")
    assert len(inf) == n
    _finite(inf, ["f0_time_s", "f1_time_s", "f0_tpot_s", "f1_tpot_s", "rel_err"])
    for r in inf:
        f0, f1 = float(r["f0_time_s"]), float(r["f1_time_s"])
        assert float(r["rel_err"]) == pytest.approx(abs(f1 - f0) / f1, rel=1e-4, abs=2e-5)
        assert 0 < float(r["min_gemm_factor"]) <= 1
    claim = m["claims"][0]
    assert claim["claim"] == "F0 ranks designs as F1 does"
    assert claim["ours"].startswith("Kendall tau ") and "mean |err|" in claim["ours"]

    rows = read_csv_rows(out / "designs.csv")
    assert len(rows) == n
    cols = [
        "f0_step_s",
        "f1_step_s",
        "f0_tokens_per_s",
        "f1_tokens_per_s",
        "f0_power_w",
        "f1_power_w",
        "rel_err",
        "discordant_pairs",
    ]
    assert set(cols) <= set(rows[0]) and {"macs_per_core", "core_array", "tp", "pp"} <= set(rows[0])
    _finite(rows, cols)
    for r in rows:
        f0, f1 = float(r["f0_step_s"]), float(r["f1_step_s"])
        assert f0 > 0 and f1 > 0
        assert float(r["rel_err"]) == pytest.approx(abs(f1 - f0) / f1, rel=1e-4, abs=2e-5)
        assert 0 <= int(r["discordant_pairs"]) <= n - 1

    s = json.loads((out / "summary.json").read_text())
    assert s["n_designs"] == n == m["data"]["n_designs"]
    tau = s["kendall_tau"]
    eps = 1e-12
    assert -1.0 - eps <= tau <= 1.0 + eps
    b = s["kendall_tau_bootstrap"]
    assert -1.0 - eps <= b["q05"] <= b["q50"] <= b["q95"] <= 1.0 + eps
    # tau-b from the discordant-pair count (no ties in continuous step times)
    pairs = n * (n - 1) // 2
    assert tau == pytest.approx(1 - 2 * s["discordant_pairs"] / pairs, abs=1e-9)
