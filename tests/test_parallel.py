"""Parallel F1: executors keep item order and survive dead workers; a parallel exploration
(local processes, and a local Ray instance started here) equals the serial run."""

import dataclasses
import os
import signal
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import ray
from _helpers import n_evals, tiny_noc_space

import theseus_jax as tj
from theseus_jax.dse import ExploreConfig, Parallel, WorkerDied, make_problem, run_explore
from theseus_jax.dse.store import RunStore
from theseus_jax.fidelity import open_f1_executor
from theseus_jax.metrics._evaluate import default_mappings
from theseus_jax.parallel import open_executor, quiet_fork_exec

# --- tasks run in the workers (top-level: pickled by reference) ------------------------------


def _setup(marker_dir: str, offset: int):
    return (Path(marker_dir), offset)


def _slow_first(state, item):
    """Early items take longest, so workers finish out of item order."""
    _, offset = state
    time.sleep(0.05 * (4 - item) if item < 4 else 0.0)
    return item * item + offset


def _die_once(state, item):
    """Item 2 kills its worker process the first time it is tried."""
    marker_dir, offset = state
    marker = marker_dir / f"died-{item}"
    if item == 2 and not marker.exists():
        marker.touch()
        os._exit(1)
    return item * item + offset


def _always_die(state, item):
    os._exit(1)


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance of 2 CPUs for this module; the test modules are pickled by value
    (the workers do not have ``tests/`` on their path)."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with quiet_fork_exec():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_parallel_spec_errors():
    with pytest.raises(ValueError, match="backend"):
        Parallel(backend="threads")
    with pytest.raises(ValueError, match="workers"):
        Parallel(workers=0)
    with pytest.raises(ValueError, match="address"):
        Parallel(workers=2, address="auto")
    with pytest.raises(ValueError, match="gpus_per_worker"):
        Parallel(workers=2, gpus_per_worker=1)
    assert Parallel().in_process and not Parallel(workers=1, backend="ray").in_process


def test_cli_parallel_flags_are_checked(tmp_path, capsys, monkeypatch):
    from theseus_jax.cli.__main__ import main

    base = ["explore", "theseus_2024", "gpt3-xl", "--out", str(tmp_path / "r")]
    assert main([*base, "--workers", "2", "--address", "auto"]) == 2
    assert "--executor ray" in capsys.readouterr().err
    assert main([*base, "--workers", "0"]) == 2
    assert "workers" in capsys.readouterr().err
    assert main([*base, "--inference", "--workers", "2"]) == 2
    assert "--workers" in capsys.readouterr().err
    # an environment without Ray: one line that says how to install it
    import importlib.util

    find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "ray" else find(n, *a)
    )
    assert main([*base, "--executor", "ray", "--workers", "2"]) == 2
    assert ".[ray]" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _check_executor(spec: Parallel, tmp_path):
    want = [i * i + 7 for i in range(6)]
    with open_executor(spec, setup=_setup, setup_args=(str(tmp_path), 7)) as ex:
        assert list(ex.imap(_slow_first, range(6))) == want
        assert list(ex.imap(_die_once, range(6))) == want  # worker died on item 2: retried
        assert (tmp_path / "died-2").exists()
    none = dataclasses.replace(spec, max_retries=0)
    with open_executor(none, setup=_setup, setup_args=(str(tmp_path), 7)) as ex:
        with pytest.raises(WorkerDied, match="max_retries"):
            list(ex.imap(_always_die, range(2)))


def test_process_executor_order_and_retry(tmp_path):
    _check_executor(Parallel(workers=2), tmp_path)


def test_in_process_executor(tmp_path):
    with open_executor(Parallel(), setup=_setup, setup_args=(str(tmp_path), 1)) as ex:
        assert list(ex.imap(_slow_first, range(5))) == [i * i + 1 for i in range(5)]


def test_ray_executor_order_and_retry(tmp_path, ray_local):
    _check_executor(Parallel(workers=2, backend="ray"), tmp_path)


# --- exploration --------------------------------------------------------------------------


def _cfg(tmp_path) -> ExploreConfig:
    return ExploreConfig(
        space=str(tiny_noc_space(tmp_path)),
        workload="gpt3-xl",
        method="random",
        pool=64,
        budget_s=3.0,
        n_init=2,
        f1_max_cycles=1200,
        seed=1,
        q=2,
        refine=False,
    )


def _rows(run_dir):
    """What a run decided and measured, in stored order (not wall times or compile counts,
    which depend on the worker that ran an evaluation)."""
    with RunStore.open(run_dir) as st:
        recs = st.evaluations()
    keep = ("tokens_per_s", "power_w", "feasible", "violations", "cost_s", "step_time_s")
    return [
        (
            r.iteration,
            r.extra["pool_index"],
            r.extra["level"],
            r.objectives,
            r.cost,
            {k: r.extra["result"][k] for k in keep if k in r.extra["result"]},
        )
        for r in recs
    ]


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serial")
    cfg = _cfg(tmp)
    prob = make_problem(cfg)
    summary = run_explore(cfg, tmp / "run", problem=dataclasses.replace(prob))
    return cfg, prob, summary, _rows(tmp / "run")


def _worker_pids(tag: str, children: bool) -> list[int]:
    """Processes whose command line contains ``tag`` (``children``: of this process only)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if tag in cmd and (not children or ppid == os.getpid()):
            out.append(int(p.name))
    return out


def _kill_workers_when(run_dir, tag, children, n_rows, killed, *, every=False, delay_s=0.0):
    """A thread that SIGKILLs one worker (``every``: all of them) once the run has stored
    ``n_rows`` evaluations and the workers have been up ``delay_s`` seconds; it gives up
    after 300 s."""

    def go():
        t_end, seen = time.time() + 300, None
        while time.time() < t_end:
            pids = _worker_pids(tag, children) if n_evals(run_dir) >= n_rows else []
            seen = seen or (time.time() if pids else None)
            if pids and time.time() - seen >= delay_s:
                for pid in pids if every else pids[:1]:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                return
            time.sleep(0.05)

    th = threading.Thread(target=go, daemon=True)
    th.start()
    return th


def test_explore_on_workers_equals_serial(serial_run, tmp_path, ray_local):
    """Local processes with a worker killed, stopped inside a proposal, then resumed on Ray
    workers with an actor killed: the serial run's rows, one per evaluation, in order."""
    cfg, prob, summary, rows = serial_run
    assert len(rows) >= 4 and len({r[0] for r in rows}) >= 2  # two proposals of q=2 at least
    run_dir = tmp_path / "par"
    killed = []
    # the second proposal's evaluations are in flight once the first two rows are stored
    th = _kill_workers_when(run_dir, "multiprocessing.spawn", True, 2, killed)
    run_explore(
        cfg, run_dir, parallel=Parallel(workers=2), stop_after=3, problem=dataclasses.replace(prob)
    )
    th.join(timeout=5)
    assert killed, "no worker was killed: the test did not exercise a dead worker"
    assert _rows(run_dir) == rows[:3]
    # resume the stopped proposal on Ray; every actor is killed (the busy one mid-evaluation)
    n_killed = len(killed)
    th = _kill_workers_when(run_dir, "_RayWorker", False, 0, killed, every=True, delay_s=4.0)
    got = run_explore(
        None,
        run_dir,
        resume=True,
        parallel=Parallel(workers=2, backend="ray"),
        problem=dataclasses.replace(prob),
    )
    th.join(timeout=5)
    assert len(killed) > n_killed, "no Ray worker was killed"
    assert _rows(run_dir) == rows
    assert got["hypervolume"] == summary["hypervolume"] and got["pareto"] == summary["pareto"]


def test_make_evaluator_f1_on_workers_equals_serial(tmp_path):
    """A batch at F1 through two local worker processes: the serial metrics and costs."""
    tech, wl = tj.load_tech("n7"), tj.load_training_workload("gpt3-xl")
    space = tj.load_space(str(tiny_noc_space(tmp_path)), tech=tech)
    designs = space.sample(jax.random.PRNGKey(5), 2)
    maps = default_mappings(designs, wl)
    kw = dict(mappings=maps, tech=tech, fidelity="f1", f1_max_cycles=1200, f1_seed=3)
    serial = tj.make_evaluator(wl, **kw)(designs)
    with open_f1_executor(Parallel(workers=2)) as ex:
        par = tj.make_evaluator(wl, **kw, f1_executor=ex)(designs)
    for a, b in zip(
        jax.tree_util.tree_leaves(serial.metrics),
        jax.tree_util.tree_leaves(par.metrics),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [c.router_cycles for c in serial.f1_costs] == [c.router_cycles for c in par.f1_costs]
    assert [c.gemm_factor for c in serial.f1_costs] == [c.gemm_factor for c in par.f1_costs]
    with pytest.raises(ValueError, match="fidelity='f1'"):
        tj.make_evaluator(wl, mappings=maps, tech=tech, f1_executor=ex)
