"""Durable exploration runs: the SQLite store, and a real process kill + resume."""

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from _helpers import n_evals, tiny_noc_space

from theseus_jax.dse.explore import ExploreConfig, greedy_hv_pick, make_problem
from theseus_jax.dse.pareto import hypervolume_2d, pareto_mask
from theseus_jax.dse.store import DB_NAME, RunStore


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
    # an empty file (what a reader's sqlite3.connect leaves behind) is not a run
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / DB_NAME).touch()
    RunStore.create(tmp_path / "e", {"method": "random"}).close()
    with RunStore.open(tmp_path / "e") as st:
        assert st.config() == {"method": "random"}
    with pytest.raises(FileNotFoundError, match="explore"):
        RunStore.open(tmp_path / "nothing")
    with RunStore.open(tmp_path / "r") as st:
        assert st.config() == {"method": "random", "seed": 3}
        recs = st.evaluations()
    assert [r.seq for r in recs] == [1, 2]
    assert recs[0].x_unit == (0.1, 0.2) and recs[0].extra == {"pool_index": 4}
    assert recs[1].feasible is False and recs[1].violations == 3 and recs[1].fidelity == 0


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


def test_kill_and_resume_equals_uninterrupted_run(tmp_path):
    space = tiny_noc_space(tmp_path)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    full = tmp_path / "full"
    subprocess.run(_cmd(space, full), check=True, env=env, timeout=900)
    ref = _records(full)
    assert len(ref) >= 4, "the run should make several evaluations"
    assert max(r[1] for r in ref) >= 3, "proposals beyond the initial design"

    part = tmp_path / "part"
    proc = subprocess.Popen(_cmd(space, part), env=env)
    t0 = time.time()
    while n_evals(part) < 3 and proc.poll() is None and time.time() - t0 < 900:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed: lower the budget"
    proc.send_signal(signal.SIGKILL)  # a real kill: no cleanup, no flush
    proc.wait()
    n_killed = n_evals(part)
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
    assert a["hypervolume_3d"] == b["hypervolume_3d"] > 0
    for f in ("pareto.csv", "pareto.png", "convergence.png"):
        assert (part / f).stat().st_size > 0
    # the front with units in the column names, names beside codes, wafers, refined marks
    import csv

    with open(part / "pareto.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == b["n_pareto"] > 0
    for col in ("tokens_per_s", "power_w", "tokens_per_s_per_w", "n_wafers", "refined"):
        assert col in rows[0]
    for r, p in zip(rows, b["pareto"], strict=True):
        assert r["integration_name"] in ("stitched", "info_sow")
        assert r["dram_kind_name"] in ("none", "edge", "stacked")
        assert float(r["n_wafers"]) == p["n_wafers"] >= 1
        assert r["refined"] in ("true", "false") and (r["refined"] == "true") == p["refined"]


def _hv(pts):
    pts = np.asarray(pts, float).reshape(-1, 2)
    return hypervolume_2d(pts[:, 0], pts[:, 1], 0.0, 0.0) if len(pts) else 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_hv_pick_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    cand = np.stack([rng.uniform(-0.5, 3, 40), rng.uniform(-3, 0.5, 40)], -1)
    front = np.stack([rng.uniform(0, 3, 4), rng.uniform(-3, 0, 4)], -1)
    taken = rng.random(40) < 0.3
    j, gain = greedy_hv_pick(cand, front, taken)
    gains = [
        -np.inf if taken[i] else _hv(np.vstack([front, cand[i]])) - _hv(front) for i in range(40)
    ]
    assert not taken[j]
    assert gain == pytest.approx(max(gains), abs=1e-12) and gains[j] == pytest.approx(gain)
    # a dominated candidate adds nothing; an empty front gives the candidate's own box
    assert greedy_hv_pick([[0.5, -0.5]], [[1.0, -1.0]]) == (0, 0.0)
    assert greedy_hv_pick([[2.0, -3.0], [1.0, -1.0]], np.zeros((0, 2)))[1] == pytest.approx(6.0)
    assert greedy_hv_pick([[2.0, -3.0]], np.zeros((0, 2)), [True])[1] == -np.inf
    # per unit cost: the best ratio wins, and the gain reported is the raw gain
    cost = rng.uniform(0.5, 5.0, 40)
    j, gain = greedy_hv_pick(cand, front, taken, cost)
    ratio = np.where(taken, -np.inf, np.asarray(gains) / cost)
    assert j == int(np.argmax(ratio)) and gain == pytest.approx(gains[j])


def test_f0_guided_initial_design_and_f0_baseline_order():
    """mfbo (f0mean) spends its initial F1 design on F0's greedy hypervolume picks; the F0
    baseline's order starts with F0's Pareto designs, each adding F0 hypervolume."""
    import jax

    from theseus_jax.dse.explore import METHODS, Evaluation, decades

    cfg = ExploreConfig(workload="gpt3-xl", pool=64, seed=2, n_init=3, budget_s=5.0)
    prob = make_problem(cfg)
    key = jax.random.PRNGKey(cfg.seed)
    pts = decades(prob.f0_tput, prob.f0_power, prob.ref)
    mfbo = METHODS["mfbo"]
    state = mfbo.init(cfg, prob, key)
    ((i0, lvl),), after_ask = mfbo.ask(state)
    assert after_ask is state  # BO's ask does not change the state
    cost = prob.f1_planned_cost_s
    assert np.all(cost > 0)
    assert lvl == "f1" and i0 == greedy_hv_pick(pts, np.zeros((0, 2)), None, cost)[0]
    # after F1 reports a (made-up) result for it, the next pick extends the F1 front
    ev = Evaluation(
        index=i0,
        level="f1",
        tokens_per_s=float(prob.f0_tput[i0]) * 0.9,
        power_w=float(prob.f0_power[i0]),
        feasible=True,
        violations=0,
        cost_s=1.0,
        wall_s=0.0,
    )
    told = mfbo.tell(state, [ev])
    assert state.evaluated == frozenset() and state.f1_pts == ()  # the old state is intact
    assert told.evaluated == {i0} and len(told.f1_pts) == 1
    ((i1, _),), _ = mfbo.ask(told)
    taken = np.zeros(prob.size, bool)
    taken[i0] = True
    f1_pts = decades(ev.tokens_per_s, ev.power_w, prob.ref)
    assert i1 == greedy_hv_pick(pts, f1_pts, taken, cost)[0]
    assert mfbo.ask(state)[0] == ((i0, "f1"),)  # asking the old state again: the same pick

    f0 = METHODS["f0"].init(dataclasses.replace(cfg, method="f0"), prob, key)
    head = f0.order[: f0.n_greedy]
    # every step adds F0 hypervolume; the greedy part covers F0's whole front (a Pareto
    # design always adds some), after which nothing adds any
    hv = [_hv(pts[head[: n + 1]]) for n in range(head.size)]
    assert np.all(np.diff(hv) > 0) and hv[-1] == pytest.approx(_hv(pts))
    front = np.nonzero(pareto_mask(prob.f0_tput, prob.f0_power))[0]
    assert set(front.tolist()) <= set(head.tolist())
    assert sorted(f0.order.tolist()) == list(range(prob.size))
    props, f0_next = METHODS["f0"].ask(f0)
    assert props == ((int(f0.order[0]), "f1"),) and (f0.pos, f0_next.pos) == (0, 1)


def test_methods_problem_and_evaluations_are_immutable(tmp_path):
    """METHODS is read-only, a Problem cannot be changed (fields frozen, arrays read-only;
    dataclasses.replace derives a new one), and an Evaluation survives the store."""
    import jax

    from theseus_jax.dse.explore import METHOD_NAMES, METHODS, Evaluation

    assert tuple(METHODS) == METHOD_NAMES
    with pytest.raises(TypeError):
        METHODS["mine"] = METHODS["random"]  # type: ignore[index]
    cfg = ExploreConfig(workload="gpt3-xl", pool=32, seed=2, method="random", budget_s=1.0)
    prob = make_problem(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prob.f0_power = prob.f0_power * 2  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        prob.f0_power[0] = 1.0
    biased = dataclasses.replace(prob, f0_power=prob.f0_power * 2)
    assert biased is not prob and biased.ref == prob.ref  # the reference is kept
    np.testing.assert_array_equal(biased.f0_power, 2 * prob.f0_power)
    assert biased.sim_cache is not prob.sim_cache  # a derived problem has its own caches
    # random: ask and tell return new states and leave the old ones as they were
    rnd = METHODS["random"]
    s0 = rnd.init(cfg, prob, jax.random.PRNGKey(0))
    (p,), s1 = rnd.ask(s0)
    assert s0.pos == 0 and s1.pos == 1 and rnd.ask(s0)[0] == ((p.index, "f1"),)
    with pytest.raises(ValueError, match="read-only"):
        s0.order[0] = 0
    # Evaluation -> store row -> Evaluation
    ev = prob.f0(3)
    ev = ev._replace(level="f1", metrics={"step_time_s": 1.5, "router_cycles": 7})
    with RunStore.create(tmp_path / "r", cfg.to_json()) as st:
        st.append(**ev.row(iteration=0, method="random"))
        (rec,) = st.evaluations()
    back = Evaluation.from_record(rec)
    assert back == ev and back.fidelity == 1 and not back.refined
    assert rec.extra == {"pool_index": 3, "level": "f1", "result": ev.result()}


def test_summary_and_plot_carry_the_gpu_reference(tmp_path):
    """A run's summary names the modelled GPU cluster of comparable peak (F0, best mapping,
    with units) and draws it on pareto.png."""
    from theseus_jax.dse.explore import run_explore

    cfg = ExploreConfig(
        space=str(tiny_noc_space(tmp_path)),
        workload="gpt3-xl",
        pool=32,
        seed=2,
        method="random",
        budget_s=1.0,
        f1_max_cycles=1200,
        refine=False,
    )
    prob = make_problem(cfg)
    summary = run_explore(cfg, tmp_path / "r", problem=prob)
    gpu = summary["gpu_reference"]
    assert gpu is not None and gpu["label"].startswith("A100 DGX x ")
    assert "(F0, best mapping)" in gpu["label"] and gpu["fidelity"] == "F0"
    assert gpu["n_gpus"] % 8 == 0 and gpu["n_gpus"] >= 8
    assert gpu["tokens_per_s"] > 0 and gpu["power_w"] > 0
    assert gpu["units"] == {"tokens_per_s": "tokens/s", "power_w": "W", "peak_flops": "FLOP/s"}
    # comparable size: the whole nodes nearest the pool's median peak that the workload maps
    # onto (counts without a legal mapping are skipped)
    assert gpu["target_peak_flops"] == pytest.approx(np.median(prob.f0_peak_flops))
    assert 0.5 <= gpu["peak_flops"] / gpu["target_peak_flops"] <= 2.0
    on_disk = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert on_disk["gpu_reference"] == gpu
    assert (tmp_path / "r" / "pareto.png").stat().st_size > 1000
    assert prob.gpu_reference() is prob.gpu_reference()  # memoised by the problem


# ---- rough edges: a broken database, two writers, contradicting --resume flags ----------


def test_truncated_or_foreign_database_is_one_line_error(tmp_path, capsys):
    from theseus_jax.cli.__main__ import main

    bad = tmp_path / "truncated"
    bad.mkdir()
    (bad / DB_NAME).write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)  # cut short
    with pytest.raises(ValueError, match="cannot be read as a run database"):
        RunStore.open(bad)
    assert main(["explore", "--resume", str(bad), "--xla-cache", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot be read" in err  # one line, no traceback

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    con = sqlite3.connect(foreign / DB_NAME)
    con.execute("CREATE TABLE songs (title TEXT)")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match="not a theseus run"):
        RunStore.open(foreign)
    con = sqlite3.connect(foreign / DB_NAME)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    con.close()
    assert tables == {"songs"}  # the foreign file was not modified


def test_run_directory_has_one_writer(tmp_path):
    from theseus_jax.dse.explore import run_explore
    from theseus_jax.dse.store import RunBusy, RunLock

    d = tmp_path / "run"
    with RunLock(d):
        with pytest.raises(RunBusy, match=str(os.getpid())):
            RunLock(d).acquire()
        cfg = ExploreConfig(
            space=str(tiny_noc_space(tmp_path)), workload="gpt3-small", method="random", pool=8
        )
        with pytest.raises(RunBusy, match="another process"):
            run_explore(cfg, d)
        assert not (d / DB_NAME).exists()  # the refused writer wrote nothing
    RunLock(d).acquire().release()  # free again once released
    # a holder that dies (SIGKILL) leaves no stale lock: the kernel drops it
    code = (
        "import sys, time; from theseus_jax.dse.store import RunLock; "
        f"lk = RunLock({str(d)!r}).acquire(); print('locked', flush=True); time.sleep(60)"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunBusy, match=str(proc.pid)):
            RunLock(d).acquire()
        proc.kill()
    RunLock(d).acquire().release()


def test_resume_refuses_contradicting_flags(tmp_path, capsys):
    from theseus_jax.cli.__main__ import main

    cfg = ExploreConfig(space="theseus_2024", workload="gpt3-small", method="mfbo", budget_s=5.0)
    RunStore.create(tmp_path / "r", cfg.to_json()).close()
    args = ["explore", "--resume", str(tmp_path / "r"), "--xla-cache", "none"]
    assert main([*args, "--method", "sfbo", "--budget", "9"]) == 2
    err = capsys.readouterr().err
    assert "method='sfbo'" in err and "budget=9.0" in err and "--out" in err
    assert main(["explore", "theseus_2024", "gpt3-medium", *args[1:]]) == 2
    assert "workload='gpt3-medium'" in capsys.readouterr().err


def test_problems_are_owned_by_the_caller(tmp_path):
    """make_problem builds a new problem every call (no hidden cache); a problem passed to
    run_explore must be the run's own, else nothing is written."""
    from theseus_jax.dse.explore import run_explore

    cfg = ExploreConfig(workload="gpt3-xl", pool=32, seed=2, method="random", budget_s=1.0)
    a, b = make_problem(cfg), make_problem(cfg)
    assert a is not b
    np.testing.assert_array_equal(a.f0_tput, b.f0_tput)  # same problem, built twice
    other = dataclasses.replace(cfg, seed=3)
    with pytest.raises(ValueError, match="seed: 2 .run: 3."):
        run_explore(other, tmp_path / "r", problem=a)
    assert not (tmp_path / "r" / DB_NAME).exists()
