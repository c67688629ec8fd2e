"""Streamed sweeps: chunks written as Parquet parts, reproducible per chunk, resumed after a
kill with the same result, other configurations refused, only the front kept whole."""

import csv

import jax
import numpy as np
import pytest

import theseus_jax as tj
from theseus_jax.dse.pareto import pareto_mask
from theseus_jax.dse.sweep import _read_part, run_sweep

NAMES = dict(space="theseus_2024", workload="gpt3-xl", tech="n7")


@pytest.fixture(scope="module")
def setup():
    return tj.load_space("theseus_2024"), tj.load_training_workload("gpt3-xl"), tj.load_tech("n7")


def _sweep(setup, out, **kw):
    space, wl, tech = setup
    kw = {"n": 20, "chunk": 8, "seed": 3, **kw}
    return run_sweep(
        space, wl, tech, out=out, names=NAMES, progress=False, log=lambda s: None, **kw
    )


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_parts_front_and_csv(setup, tmp_path):
    res = _sweep(setup, tmp_path)
    parts = sorted((tmp_path / "parts").glob("part-*.parquet"))
    assert [p.name for p in parts] == [f"part-{i:06d}.parquet" for i in range(3)]
    sizes = [len(_read_part(p, ["design_index"])["design_index"]) for p in parts]
    assert sizes == [8, 8, 4]  # the last chunk keeps only the designs asked for
    # every chunk is reproducible on its own: part 1 is the evaluation of its own draw
    space, wl, tech = setup
    d1 = space.sample(jax.random.fold_in(jax.random.PRNGKey(3), 1), 8)
    got = _read_part(parts[1], ["clock_hz", "tokens_per_s"])
    np.testing.assert_array_equal(got["clock_hz"], np.asarray(d1.clock_hz, np.float64))
    r1 = tj.evaluate(d1, wl, tech=tech)
    np.testing.assert_allclose(got["tokens_per_s"], np.asarray(r1.metrics.tokens_per_s), rtol=1e-6)
    # sweep.csv has every design; its pareto column is the front of the feasible rows
    rows = _rows(tmp_path / "sweep.csv")
    assert len(rows) == 20 and [int(r["design_index"]) for r in rows] == list(range(20))
    feas = np.array([float(r["feasible"]) > 0 for r in rows])
    tput = np.array([float(r["tokens_per_s"]) for r in rows])
    power = np.array([float(r["power_w"]) for r in rows])
    front = pareto_mask(np.where(feas, tput, np.nan), np.where(feas, power, np.nan))
    assert [r["pareto"] == "True" for r in rows] == front.tolist()
    pareto = _rows(tmp_path / "pareto.csv")
    assert sorted(int(r["design_index"]) for r in pareto) == np.flatnonzero(front).tolist()
    assert res["n_feasible"] == int(feas.sum()) and res["n_pareto"] == int(front.sum())


def test_resume_after_kill_gives_the_same_result(setup, tmp_path):
    ref = tmp_path / "ref"
    _sweep(setup, ref)
    run = tmp_path / "run"
    _sweep(setup, run)
    # a kill between parts: part 2 never written, a half-written temp file left behind
    (run / "parts" / "part-000002.parquet").unlink()
    (run / "parts" / "part-000002.parquet.tmp").write_bytes(b"garbage")
    (run / "pareto.csv").unlink()
    res = _sweep(setup, run)
    assert res["resumed_designs"] == 16
    assert (run / "pareto.csv").read_text() == (ref / "pareto.csv").read_text()
    assert (run / "sweep.csv").read_text() == (ref / "sweep.csv").read_text()
    assert not (run / "parts" / "part-000002.parquet.tmp").exists()
    # two hosts share the folder: each writes its chunks, a last run combines them
    sh = tmp_path / "shards"
    a = _sweep(setup, sh, shard=(0, 2))
    assert a == dict(shard=[0, 2], parts=3, parts_written=2, parts_on_disk=2)
    assert not (sh / "pareto.csv").exists()
    assert _sweep(setup, sh, shard=(1, 2))["parts_on_disk"] == 3
    assert _sweep(setup, sh)["resumed_designs"] == 20
    assert (sh / "pareto.csv").read_text() == (ref / "pareto.csv").read_text()
    assert (sh / "sweep.csv").read_text() == (ref / "sweep.csv").read_text()


def test_other_configuration_is_refused_and_small_csv_limit(setup, tmp_path):
    _sweep(setup, tmp_path, csv_max_designs=10)
    assert not (tmp_path / "sweep.csv").exists() and (tmp_path / "pareto.csv").exists()
    with pytest.raises(ValueError, match="another configuration.*seed"):
        _sweep(setup, tmp_path, seed=4)
    with pytest.raises(ValueError, match="--shard must be K/M"):
        _sweep(setup, tmp_path, shard=(2, 2))
    with pytest.raises(ValueError, match="-n must be >= 1"):
        _sweep(setup, tmp_path / "x", n=0)
