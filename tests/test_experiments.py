"""Experiment scripts (experiments/*.py) at --smoke scale, and `theseus report` over them.

Each script runs as a user runs it (a subprocess); the checks are on what it writes: a
manifest with claims whose numbers are finite where defined, the tables and figures it
lists, and the invariants of each study (improvement definitions, iso-peak, F0-only notes).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import REPO, read_csv_rows

from theseus_jax.cli.__main__ import main


def _run(name: str, out: Path, *extra: str) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, str(REPO / "experiments" / f"{name}.py"), "--smoke", "--out", str(out)]
    r = subprocess.run([*cmd, *extra], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = json.loads((out / "manifest.json").read_text())
    assert m["experiment"] == name and m["scale"] == "smoke"
    assert m["command"].startswith(f"python experiments/{name}.py --smoke")
    for t in m["tables"]:
        assert (out / t["file"]).stat().st_size > 0, t
    for f in m["figures"]:
        assert (out / f["file"]).stat().st_size > 1000 and (out / f["svg"]).exists(), f
    assert m["claims"], "every study states at least one claim"
    return m


def _f(x: str) -> float:
    return float(x) if x not in ("", "nan") else math.nan


def test_training_vs_gpu_and_wsc_share_explorations(tmp_path):
    runs = tmp_path / "runs"
    m = _run("train_vs_gpu", tmp_path / "train_vs_gpu", "--runs", str(runs))
    rows = read_csv_rows(tmp_path / "train_vs_gpu" / "improvements.csv")
    assert {r["baseline"] for r in rows} == {
        "A100 (model, best mapping)",
        "A100 (Megatron measured)",
        "H100 iso-peak (model)",
    }
    for r in rows:
        # iso-peak within the space's 10 % tolerance
        assert 1 / 1.1 - 1e-6 <= _f(r["wsc_peak_ratio_min"]) <= _f(r["wsc_peak_ratio_max"])
        assert _f(r["wsc_peak_ratio_max"]) <= 1.1 + 1e-6
        # the definition: best throughput of the front over the baseline's
        gain = _f(r["wsc_best_tokens_per_s"]) / _f(r["baseline_tokens_per_s"]) - 1
        assert _f(r["perf_gain"]) == pytest.approx(gain, rel=1e-4)
        q = [_f(r[f"perf_gain_q{k}"]) for k in ("05", "50", "95")]
        assert q[0] <= q[1] <= q[2]
    base = read_csv_rows(tmp_path / "train_vs_gpu" / "baselines.csv")[0]
    # the measured Megatron run is slower than the model's best mapping (full recompute)
    assert _f(base["a100_measured_tokens_per_s"]) < _f(base["a100_model_tokens_per_s"])
    assert any("power" in c["claim"] for c in m["claims"])

    _run("train_vs_wsc", tmp_path / "train_vs_wsc", "--runs", str(runs))
    assert len([p for p in runs.iterdir() if p.name.startswith("megatron")]) == 1
    rows = read_csv_rows(tmp_path / "train_vs_wsc" / "improvements.csv")
    assert {r["baseline"] for r in rows} == {"WSE-2-like (stitched)", "Dojo-like (InFO-SoW)"}
    for r in rows:
        assert int(r["baseline_wafers"]) >= 1 and _f(r["baseline_tokens_per_s"]) > 0


def test_inference_vs_baselines_is_f0_only(tmp_path):
    m = _run("inference_vs_baselines", tmp_path / "inf")
    assert any("F0 only" in n for n in m["notes"])
    rows = read_csv_rows(tmp_path / "inf" / "improvements.csv")
    assert {r["baseline"] for r in rows} >= {"H100", "A100 iso-peak"}
    for r in rows:
        if r["baseline"] in ("H100", "A100 iso-peak"):
            assert r["baseline_feasible"] == "True"
            f = _f(r["perf_factor"])
            assert f == pytest.approx(
                _f(r["wsc_best_tokens_per_s"]) / _f(r["baseline_tokens_per_s"]), rel=1e-4
            )
        if r["baseline_feasible"] == "False":
            assert r["baseline_violated"]  # an infeasible baseline names its constraint
    s = json.loads((tmp_path / "explore_runs").glob("infer-*/summary.json").__next__().read_text())
    assert s["fidelity"] == "F0"


def test_case_studies_and_report(tmp_path):
    m = _run("case_studies", tmp_path / "case_studies")
    rows = read_csv_rows(tmp_path / "case_studies" / "levels.csv")
    facs = {r["factor"] for r in rows}
    assert {"core_granularity", "dram", "integration", "reticle_utilisation"} <= facs
    for r in rows:
        if r["factor"] != "reticle_utilisation":
            assert 0 <= int(r["feasible"]) <= int(r["designs"])
            w = _f(r["wins_throughput_under_draws"])
            assert 0.0 <= w <= 1.0
    for fac in facs - {"reticle_utilisation"}:
        wins = sum(_f(r["wins_throughput_under_draws"]) for r in rows if r["factor"] == fac)
        assert wins == pytest.approx(1.0)
    assert {c["claim"] for c in m["claims"]} >= {"best core granularity"}

    assert main(["report", str(tmp_path)]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "python experiments/case_studies.py" in html
    assert (tmp_path / "report.md").exists()


def test_verdict_rule():
    sys.path.insert(0, str(REPO / "experiments"))
    try:
        from _common import verdict
    finally:
        sys.path.remove(str(REPO / "experiments"))
    assert verdict((0.4, 0.5, 0.6), 0.55) == "agrees"
    assert verdict((0.4, 0.5, 0.6), 0.628) == "ours smaller"
    assert verdict((0.7, 0.8, 0.9), 0.628) == "ours larger"
    assert verdict((0.4, 0.5, 0.6), None) == "n/a"
    assert verdict((math.nan,) * 3, 0.5) == "n/a"
