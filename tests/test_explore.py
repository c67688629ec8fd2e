"""Durable exploration runs: the SQLite store, and a real process kill + resume."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from theseus_jax.dse.store import DB_NAME, RunStore

ROOT = Path(__file__).resolve().parents[1]


def test_store_roundtrip_and_errors(tmp_path):
    with RunStore.create(tmp_path / "r", {"method": "random", "seed": 3}) as st:
        st.append(
            iteration=0,
            method="random",
            fidelity=1,
            x_unit=[0.1, 0.2],
            design={"a": 1.0},
            objectives=(5.0, 7.0),
            feasible=True,
            violations=0,
            cost=1.5,
            wall_s=0.1,
            extra={"pool_index": 4},
        )
        st.append(
            iteration=1,
            method="random",
            fidelity=0,
            x_unit=[0.3, 0.4],
            design={"a": 2.0},
            objectives=(1.0, 2.0),
            feasible=False,
            violations=3,
            cost=0.01,
            wall_s=0.0,
        )
    with pytest.raises(FileExistsError, match="--resume"):
        RunStore.create(tmp_path / "r", {})
    with pytest.raises(FileNotFoundError, match="explore"):
        RunStore.open(tmp_path / "nothing")
    with RunStore.open(tmp_path / "r") as st:
        assert st.config() == {"method": "random", "seed": 3}
        recs = st.evaluations()
    assert [r.seq for r in recs] == [1, 2]
    assert recs[0].x_unit == (0.1, 0.2) and recs[0].extra == {"pool_index": 4}
    assert recs[1].feasible is False and recs[1].violations == 3 and recs[1].fidelity == 0


def _tiny_space(tmp_path) -> Path:
    """theseus_2024 with the router and core array fixed: every design shares the F1
    simulation windows, so the simulators compile once per process."""
    s = json.loads((ROOT / "configs/spaces/theseus_2024.json").read_text())
    s["name"] = "tiny_noc"
    fixed = dict(
        n_vcs=(4, "1"),
        buffer_depth=(4, "flit"),
        link_bits_per_cycle=(512, "bit/cycle"),
        d2d_bw_ratio=(1.0, "1"),
        core_rows=(32, "1"),
        core_cols=(32, "1"),
    )
    for k, (v, u) in fixed.items():
        s["params"][k] = {"kind": "fixed", "value": v, "unit": u}
    path = tmp_path / "tiny_noc.json"
    path.write_text(json.dumps(s))
    return path


def _cmd(space, out, *extra):
    return [
        sys.executable,
        "-m",
        "theseus_jax.cli",
        "explore",
        str(space),
        "gpt3-xl",
        "--method",
        "mfbo",
        "--pool",
        "64",
        "--budget",
        "5",
        "--n-init",
        "2",
        "--f1-max-cycles",
        "1200",
        "--seed",
        "1",
        "--out",
        str(out),
        "--quiet",
        "--no-refine",  # refinement is tested in test_dse.py; keeps this test short
        "--xla-cache",
        str(out.parent / "xla"),
        *extra,
    ]


def _records(run_dir):
    con = sqlite3.connect(str(run_dir / DB_NAME))
    rows = con.execute(
        "SELECT seq, iteration, fidelity, x_unit, objectives, cost FROM evals ORDER BY seq"
    ).fetchall()
    con.close()
    return rows


def _n_evals(run_dir) -> int:
    try:
        con = sqlite3.connect(str(run_dir / DB_NAME), timeout=1.0)
        n = con.execute("SELECT COUNT(*) FROM evals").fetchone()[0]
        con.close()
        return n
    except sqlite3.Error:
        return 0


def test_kill_and_resume_equals_uninterrupted_run(tmp_path):
    space = _tiny_space(tmp_path)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    full = tmp_path / "full"
    subprocess.run(_cmd(space, full), check=True, env=env, timeout=900)
    ref = _records(full)
    assert len(ref) >= 4, "the run should make several evaluations"
    assert max(r[1] for r in ref) >= 3, "proposals beyond the initial design"

    part = tmp_path / "part"
    proc = subprocess.Popen(_cmd(space, part), env=env)
    t0 = time.time()
    while _n_evals(part) < 3 and proc.poll() is None and time.time() - t0 < 900:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed: lower the budget"
    proc.send_signal(signal.SIGKILL)  # a real kill: no cleanup, no flush
    proc.wait()
    n_killed = _n_evals(part)
    assert 3 <= n_killed < len(ref)
    assert _records(part) == ref[:n_killed]  # nothing lost or changed before the kill

    subprocess.run(
        [
            sys.executable,
            "-m",
            "theseus_jax.cli",
            "explore",
            "--resume",
            str(part),
            "--quiet",
            "--xla-cache",
            str(part.parent / "xla"),
        ],
        check=True,
        env=env,
        timeout=900,
    )
    got = _records(part)
    # nothing repeated or lost: the same evaluations, in the same order, with the same values
    assert [r[1:] for r in got] == [r[1:] for r in ref]
    a = json.loads((full / "summary.json").read_text())
    b = json.loads((part / "summary.json").read_text())
    assert a["pareto"] == b["pareto"] and a["hypervolume"] == b["hypervolume"]
    for f in ("pareto.csv", "pareto.png", "convergence.png"):
        assert (part / f).stat().st_size > 0
