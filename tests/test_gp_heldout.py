"""Tests of scripts/gp_heldout.py: metrics against oracles, fold splits, and a small synthetic
cross-validation where the right answer is known (F1 = F0 + a constant offset)."""

import importlib.util
import math

import numpy as np
import pytest
from _helpers import REPO

_PATH = REPO / "scripts" / "gp_heldout.py"
_spec = importlib.util.spec_from_file_location("gp_heldout", _PATH)
gph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gph)


def test_rank_correlations_oracles():
    """scipy's statistics, with the closed forms and the undefined case checked here."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 6, 40).astype(float)  # many ties
    b = a + rng.normal(0, 2.0, 40)
    assert gph.spearman(a, -a) == pytest.approx(-1.0)
    assert gph.kendall_tau_b(b, 3 * b + 1) == pytest.approx(1.0)
    # tau-b by hand on a small tied sample: (n_c - n_d) / sqrt((n0 - n1)(n0 - n2))
    x, y = np.array([1.0, 2.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0, 2.0])
    # 6 pairs: 3 concordant, 1 discordant, 1 tied in x only, 1 tied in y only
    assert gph.kendall_tau_b(x, y) == pytest.approx((3 - 1) / np.sqrt(5 * 5))
    assert np.isnan(gph.kendall_tau_b(np.ones(5), b[:5]))  # constant: undefined, no warning
    assert np.isnan(gph.spearman(b[:5], np.ones(5)))


def test_scores_and_lpd_oracle():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    mean = y + np.array([0.1, -0.1, 0.1, -0.1])
    s = gph.scores(y, mean, np.full(4, 0.01))
    assert s["rmse"] == pytest.approx(0.1)
    assert s["mae"] == pytest.approx(0.1)
    # log N(0.1; 0, 0.01) = -0.5 log(2 pi 0.01) - 0.5
    assert s["lpd"] == pytest.approx(-0.5 * math.log(2 * math.pi * 0.01) - 0.5)
    assert s["spearman"] == pytest.approx(1.0)


def test_kfold_partitions_every_index_once():
    splits = gph.kfold(23, 5, np.random.default_rng(1))
    tests = np.concatenate([te for _, te in splits])
    assert np.array_equal(np.sort(tests), np.arange(23))
    for tr, te in splits:
        assert np.intersect1d(tr, te).size == 0
        assert tr.size + te.size == 23
        assert te.size in (4, 5)


def test_missing_runs_dir_says_how_to_fix(tmp_path):
    with pytest.raises(ValueError, match="--runs"):
        gph.load_dataset(tmp_path, n_extra=0, seed=0)


def _synthetic(n=20, d=2, offset=0.05, seed=0):
    """F0 a rough function of x (hard for a GP from 16 points); F1 = F0 + constant."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, d))
    extra = rng.uniform(size=(8, d))

    def f0(z):
        t = 3.0 + np.sin(9.0 * z[:, 0]) * np.cos(7.0 * z[:, 1])
        return np.stack([t, 2.0 + 0.5 * t], -1)

    f0x = f0(x)
    allf = np.concatenate([f0x, f0(extra)])
    return gph.Dataset(
        x_unit=x,
        f0_log=f0x,
        f1_log=f0x + offset,
        extra_x=extra,
        extra_f0_log=f0(extra),
        f0_lo=allf.min(0),
        f0_hi=allf.max(0),
        info={},
    )


def test_cross_validation_on_known_offset():
    offset = 0.05
    ds = _synthetic(offset=offset)
    res = gph.cross_validate(
        ds,
        folds=4,
        repeats=1,
        seed=0,
        n_starts=2,
        steps=60,
        lr=0.05,
        variants=("f0", "gp_f1", "gp_f0mean"),
        n_boot=200,
        log=lambda s: None,
    )
    for obj in gph.OBJECTIVES:
        # F0 alone is off by exactly the offset everywhere, and ranks perfectly
        assert res["f0"][obj]["rmse"]["mean"] == pytest.approx(offset, rel=1e-9)
        assert res["f0"][obj]["spearman"]["mean"] == pytest.approx(1.0)
        # the prior-mean GP learns the constant residual (its standardised mean)
        assert res["gp_f0mean"][obj]["rmse"]["mean"] < 0.2 * offset
        # a GP on F1 alone cannot learn the rough F0 surface from 15 points
        assert res["gp_f1"][obj]["rmse"]["mean"] > res["gp_f0mean"][obj]["rmse"]["mean"]
        b = res["gp_f0mean"][obj]["rmse_minus_f0"]
        assert b["ci95"][1] < 0 and b["p_better"] == 1.0
    summ = gph.summarise(res, ("f0", "gp_f1", "gp_f0mean"))
    assert summ["best"] == "gp_f0mean"
