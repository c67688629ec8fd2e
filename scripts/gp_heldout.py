r"""Which surrogate predicts F1 best on held-out designs? F0 alone, or a GP that uses F0 how.

Issue 5: F0 costs microseconds, so it may serve as the GP's prior mean or as an input feature
for F1. This script compares, by repeated K-fold cross-validation on every F1 evaluation
stored in exploration run databases (:mod:`theseus_jax.dse.store`, written by
:func:`theseus_jax.dse.explore.run_explore`), five predictors of the F1 objectives in log
space, :math:`y = (\log_{10}\,\mathrm{tokens/s},\ \log_{10}\,\mathrm{W})`, from the design's
unit-cube coordinates :math:`x`:

(a) ``f0``        -- F0 alone: :math:`\hat y = y_{F0}(x)`, no GP; its predictive variance
    (for the log-likelihood only) is the mean squared F1 - F0 residual of the training fold;
(b) ``gp_f1``     -- GP on F1 only (Matérn-5/2 ARD, single fidelity);
(c) ``gp_f0mean`` -- the same GP with F0 as prior mean (it models :math:`y_{F1} - y_{F0}`);
(d) ``gp_f0feat`` -- the same GP with F0 (the matching log objective, min-max scaled to
    [0, 1] over the pools) as one extra input column;
(e) ``ar1``       -- AR(1) co-kriging (Kennedy & O'Hagan 2000) with F0 as level 0, observed
    at every design whose F1 is used or predicted (F0 is known there, as in (c) and (d))
    and at ``--extra`` more random pool designs (F0 is free), and F1 as level 1 at the
    training designs.

Every GP is the project's engine (:func:`theseus_jax.bo.make_gp`, MAP by multi-start Adam,
the engine's default priors, fit-steps and starts), one GP per objective, float32 as in the
exploration loop, with fixed-capacity masked training buffers (one compile per variant).

Metrics, on out-of-fold predictions (every design is predicted exactly once per repeat; a
repeat reshuffles the folds), averaged over repeats (``sd`` = spread over repeats):
RMSE and MAE in decades, Spearman and Kendall (tau-b) rank correlation between predicted and
true F1 over all designs, and the mean Gaussian log predictive density (LPD, in nats; the
predictive variance includes the fitted observation noise). The best variant minimises RMSE
averaged over the two objectives.

Designs are deduplicated by (problem, pool index), where the problem is the run's (space,
workload, tech, seed, pool, f1_max_cycles): methods of one seed share one F0-screened pool
and F1 is deterministic per design. Only runs of the most common (space, workload, tech,
f1_max_cycles) are pooled. F0 of each design comes from rebuilding the run's problem
(:func:`theseus_jax.dse.explore.make_problem`, which F0-screens the pool: ~10-60 s per
distinct seed/pool).

    python scripts/gp_heldout.py [--runs runs/bench_explore] [--folds 5] [--repeats 2]
                                 [--extra 100] [--json] [--smoke]

References:
    M. C. Kennedy and A. O'Hagan (2000). Predicting the output from a complex computer code
    when fast approximations are available. Biometrika 87(1):1-13.
    T. Gneiting and A. E. Raftery (2007). Strictly proper scoring rules, prediction, and
    estimation. JASA 102(477):359-378 (log score).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.stats import kendalltau, spearmanr

VARIANTS = ("f0", "gp_f1", "gp_f0mean", "gp_f0feat", "ar1")
OBJECTIVES = ("log10_tokens_per_s", "log10_power_w")
MIN_DESIGNS = 15
_LOG_2PI = math.log(2.0 * math.pi)
# (metric, +1 if lower is better else -1)
_DIRECTION = (("rmse", 1), ("mae", 1), ("spearman", -1), ("kendall", -1), ("lpd", -1))


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


class Dataset(NamedTuple):
    """Pooled F1 designs and the F0 values that go with them.

    Attributes:
        x_unit: ``(n, d)`` unit-cube coordinates of the F1 designs.
        f0_log: ``(n, 2)`` F0 ``(log10 tokens/s, log10 W)`` of those designs.
        f1_log: ``(n, 2)`` F1 ``(log10 tokens/s, log10 W)``.
        extra_x: ``(m, d)`` further pool designs (no F1), for the co-kriging F0 level.
        extra_f0_log: ``(m, 2)`` their F0 values.
        f0_lo, f0_hi: ``(2,)`` min / max of F0 log objectives over the pools (feature scaling).
        info: dict describing what was read (runs, records, problems, skipped groups).
    """

    x_unit: np.ndarray
    f0_log: np.ndarray
    f1_log: np.ndarray
    extra_x: np.ndarray
    extra_f0_log: np.ndarray
    f0_lo: np.ndarray
    f0_hi: np.ndarray
    info: dict


def _log10_obj(tput, power) -> np.ndarray:
    return np.stack([np.log10(tput), np.log10(power)], -1)


def load_dataset(runs_dir, *, n_extra: int, seed: int, log=print) -> Dataset:
    """Read every ``run.sqlite`` under ``runs_dir``, dedupe F1 designs, attach F0.

    Args:
        runs_dir: directory searched recursively for ``run.sqlite``.
        n_extra: random pool designs without F1 to add (F0 only; for the co-kriging variant).
        seed: seed of that choice.
        log: progress printer.

    Returns:
        A :class:`Dataset` (possibly with ``n < MIN_DESIGNS``; the caller decides).

    Raises:
        ValueError: if ``runs_dir`` holds no run database.
    """
    from theseus_jax.dse.explore import ExploreConfig, make_problem
    from theseus_jax.dse.store import DB_NAME, RunStore

    paths = sorted(Path(runs_dir).rglob(DB_NAME))
    if not paths:
        raise ValueError(
            f"no {DB_NAME} under {runs_dir}: pass --runs DIR holding exploration runs "
            "(e.g. written by scripts/bench_explore.py or `theseus explore --out DIR`)"
        )
    by_design: dict = {}  # (problem key, pool index) -> (x_unit, f1 objectives, cfg)
    n_records = n_f1 = n_bad = 0
    for p in paths:
        with RunStore.open(p.parent) as store:
            cfg = store.config()
            recs = store.evaluations()
        n_records += len(recs)
        pkey = tuple(
            cfg.get(k) for k in ("space", "workload", "tech", "seed", "pool", "f1_max_cycles")
        )
        for r in recs:
            if r.fidelity != 1 or "pool_index" not in r.extra:
                continue
            n_f1 += 1
            t, w = (float(v) for v in r.objectives[:2])
            if not (np.isfinite(t) and np.isfinite(w) and t > 0 and w > 0):
                n_bad += 1
                continue
            by_design.setdefault((pkey, int(r.extra["pool_index"])), (r.x_unit, (t, w), cfg))
    groups = Counter((k[0][0], k[0][1], k[0][2], k[0][5]) for k in by_design)
    info = dict(
        runs_dir=str(runs_dir),
        n_run_dbs=len(paths),
        n_records=n_records,
        n_f1_records=n_f1,
        n_f1_nonpositive=n_bad,
        n_unique_designs_all_groups=len(by_design),
    )
    if not by_design:
        info.update(n_problems=0, group=None, skipped_groups={})
        e = np.zeros((0, 0))
        return Dataset(e, e, e, e, e, np.zeros(2), np.ones(2), info)
    group, _ = groups.most_common(1)[0]
    keys = sorted(k for k in by_design if (k[0][0], k[0][1], k[0][2], k[0][5]) == group)
    info["group"] = dict(zip(("space", "workload", "tech", "f1_max_cycles"), group, strict=True))
    info["skipped_groups"] = {str(g): c for g, c in groups.items() if g != group}

    xs, f0s, f1s = [], [], []
    pools: dict = {}  # problem key -> (problem, set of pool indices with F1)
    max_dx = 0.0
    for pkey, i in keys:
        x_rec, obj, cfg = by_design[(pkey, i)]
        if pkey not in pools:
            t = time.perf_counter()
            prob = make_problem(ExploreConfig.from_json(cfg))
            log(f"  built problem seed={pkey[3]} pool={pkey[4]}: {time.perf_counter() - t:.1f} s")
            pools[pkey] = (prob, set())
        prob, used = pools[pkey]
        used.add(i)
        x = np.asarray(x_rec, float)
        max_dx = max(max_dx, float(np.max(np.abs(x - prob.unit[i]))))
        xs.append(prob.unit[i])
        f0s.append(_log10_obj(prob.f0_tput[i], prob.f0_power[i]))
        f1s.append(_log10_obj(*obj))
    if max_dx > 1e-4:
        raise ValueError(
            f"stored x_unit and the rebuilt pool disagree by {max_dx:.3g}: the runs were "
            "written by another version of the design space or pool sampler; rerun them"
        )

    # F0-only pool designs for co-kriging, and the feature scaling range
    cand_x, cand_f0, all_f0 = [], [], []
    for prob, used in pools.values():
        f0 = _log10_obj(prob.f0_tput, prob.f0_power)
        all_f0.append(f0)
        free = np.array([j for j in range(prob.size) if j not in used], int)
        cand_x.append(prob.unit[free])
        cand_f0.append(f0[free])
    cand_x, cand_f0 = np.concatenate(cand_x), np.concatenate(cand_f0)
    pick = np.random.default_rng(seed).permutation(cand_x.shape[0])[:n_extra]
    all_f0 = np.concatenate(all_f0)
    info.update(
        n_problems=len(pools),
        n_designs=len(keys),
        n_extra_f0=int(pick.size),
        max_x_unit_mismatch=max_dx,
    )
    return Dataset(
        x_unit=np.asarray(xs, float),
        f0_log=np.asarray(f0s, float),
        f1_log=np.asarray(f1s, float),
        extra_x=cand_x[pick],
        extra_f0_log=cand_f0[pick],
        f0_lo=all_f0.min(0),
        f0_hi=all_f0.max(0),
        info=info,
    )


# ---------------------------------------------------------------------------------------------
# Metrics (NumPy, host side)
# ---------------------------------------------------------------------------------------------


def _untied(a, b) -> bool:
    """Both samples have at least two distinct values (else a rank correlation is undefined)."""
    return a.size >= 2 and np.ptp(a) > 0 and np.ptp(b) > 0


def spearman(a, b) -> float:
    """Spearman rank correlation (:func:`scipy.stats.spearmanr`); nan when undefined."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(spearmanr(a, b).statistic) if _untied(a, b) else float("nan")


def kendall_tau_b(a, b) -> float:
    """Kendall's tau-b (:func:`scipy.stats.kendalltau`); nan when undefined."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(kendalltau(a, b).statistic) if _untied(a, b) else float("nan")


def gaussian_lpd(y, mean, var) -> float:
    """Mean log N(y; mean, var) in nats."""
    var = np.maximum(np.asarray(var, float), 1e-30)
    return float(np.mean(-0.5 * (_LOG_2PI + np.log(var) + (y - mean) ** 2 / var)))


def scores(y, mean, var) -> dict:
    """RMSE, MAE (decades), Spearman, Kendall and LPD of one set of predictions."""
    err = mean - y
    return dict(
        rmse=float(np.sqrt(np.mean(err * err))),
        mae=float(np.mean(np.abs(err))),
        spearman=spearman(mean, y),
        kendall=kendall_tau_b(mean, y),
        lpd=gaussian_lpd(y, mean, var),
    )


def kfold(n: int, k: int, rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, test) index splits of a random permutation of ``range(n)``."""
    folds = np.array_split(rng.permutation(n), k)
    return [(np.concatenate(folds[:j] + folds[j + 1 :]), folds[j]) for j in range(k)]


# ---------------------------------------------------------------------------------------------
# GP fit + predict (the project's engine), one jitted function per variant
# ---------------------------------------------------------------------------------------------


def make_fit_predict(gp, *, target_level: int, n_starts: int, steps: int, lr: float):
    """``fit_predict(key, data, xq, mq) -> (mean, var_y)`` for ``Q`` queries at the target.

    MAP-fits ``gp`` to ``data`` and returns the posterior mean and the predictive variance of
    an observation (latent variance + fitted noise of ``target_level``), original units.
    """
    import jax
    import jax.numpy as jnp

    def fit_predict(key, data, xq, mq):
        params, _ = gp.fit_map(key, data, n_starts=n_starts, steps=steps, lr=lr)
        p = jax.tree_util.tree_map(lambda a: a[0], params)
        stats = gp.standardise(data)
        post = gp.posterior(p, data, stats)
        tq = jnp.full((xq.shape[0],), target_level, jnp.int32)
        mean, var = jax.vmap(gp.predict, in_axes=(None, 0, 0, 0))(post, xq, tq, mq)
        return mean, var + gp.noise(p, target_level) * stats.sd**2

    return jax.jit(fit_predict)


PRIORS = ("engine", "dim")


def gp_priors(kind: str, dim: int):
    r"""Hyperpriors of the GPs: the engine's defaults, or with a dimension-scaled lengthscale.

    ``'engine'``: :class:`~theseus_jax.bo.GPPriors` as the exploration loop uses them
    (lengthscale median 0.3 of the cube side, whatever ``dim``). ``'dim'``: the same but
    :math:`\log \ell \sim N(\sqrt2 + \tfrac12 \log D,\ \sqrt3)` (Hvarfner et al. 2024),
    whose median grows with :math:`\sqrt D`, so that in many dimensions the prior does not
    make every pair of points nearly uncorrelated.

    References:
        C. Hvarfner, E. O. Hellsten, L. Nardi (2024). Vanilla Bayesian optimization performs
        great in high dimensions. ICML 2024, Sec. 4.
    """
    from theseus_jax.bo import GPPriors

    if kind == "engine":
        return GPPriors()
    if kind == "dim":
        return GPPriors(lengthscale=(math.sqrt(2.0) + 0.5 * math.log(dim), math.sqrt(3.0)))
    raise ValueError(f"unknown prior {kind!r}; choose from {PRIORS}")


def _buffer(cap: int, x, fid, y, pm):
    """A :class:`~theseus_jax.bo.GPData` of capacity ``cap`` holding the given rows."""
    import jax.numpy as jnp

    from theseus_jax.bo import empty_data

    n, dim = x.shape
    if n > cap:
        raise ValueError(f"{n} rows exceed the buffer capacity {cap}")
    d = empty_data(cap, dim, jnp.float32)
    return d._replace(
        x=d.x.at[:n].set(jnp.asarray(x, jnp.float32)),
        fid=d.fid.at[:n].set(jnp.asarray(fid, jnp.int32)),
        y=d.y.at[:n].set(jnp.asarray(y, jnp.float32)),
        prior_mean=d.prior_mean.at[:n].set(jnp.asarray(pm, jnp.float32)),
        mask=d.mask.at[:n].set(True),
    )


def _pad_rows(a, q: int):
    a = np.asarray(a, float)
    if a.shape[0] == q:
        return a
    fill = np.repeat(a[-1:], q - a.shape[0], axis=0)
    return np.concatenate([a, fill], axis=0)


def cross_validate(
    ds: Dataset,
    *,
    folds: int,
    repeats: int,
    seed: int,
    n_starts: int,
    steps: int,
    lr: float,
    variants=VARIANTS,
    prior: str = "engine",
    n_boot: int = 2000,
    log=print,
) -> dict:
    """Out-of-fold predictions of every variant and objective, scored per repeat.

    ``prior`` selects the lengthscale prior (:func:`gp_priors`). With ``"f0"`` among the
    variants, each gets ``rmse_minus_f0``: the RMSE difference to F0 alone on out-of-fold
    squared errors averaged over repeats, with a 95% design-bootstrap interval (``n_boot``
    resamples of the designs) and the bootstrap fraction in which the variant is better.

    Returns:
        ``{variant: {objective: {metric: {"mean", "sd", "per_repeat"}}}}`` plus
        ``"_fit_s"`` (seconds spent per variant).
    """
    import jax

    from theseus_jax.bo import make_gp

    n, d = ds.x_unit.shape
    if folds < 2 or folds > n:
        raise ValueError(f"--folds must be in [2, n_designs={n}], got {folds}")
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise ValueError(f"unknown variants {bad}; choose from {VARIANTS}")
    n_train_max = n - n // folds
    q_max = -(-n // folds)
    m = ds.extra_x.shape[0]
    span = np.maximum(ds.f0_hi - ds.f0_lo, 1e-12)
    f0_feat = (ds.f0_log - ds.f0_lo) / span  # (n, 2) in [0, 1]

    fp = {}
    kw = dict(n_starts=n_starts, steps=steps, lr=lr)
    if "gp_f1" in variants or "gp_f0mean" in variants:
        fp["single"] = make_fit_predict(
            make_gp("single", d, priors=gp_priors(prior, d)), target_level=0, **kw
        )
    if "gp_f0feat" in variants:
        fp["feat"] = make_fit_predict(
            make_gp("single", d + 1, priors=gp_priors(prior, d + 1)), target_level=0, **kw
        )
    if "ar1" in variants:
        fp["ar1"] = make_fit_predict(
            make_gp("ar1", d, 2, priors=gp_priors(prior, d)), target_level=1, **kw
        )

    # (n_repeats, n) out-of-fold mean / var per variant and objective
    shape = (repeats, n)
    oof = {
        v: {j: (np.full(shape, np.nan), np.full(shape, np.nan)) for j in range(2)} for v in variants
    }
    fit_s = dict.fromkeys(variants, 0.0)
    key = jax.random.PRNGKey(seed)
    rng = np.random.default_rng(seed)
    for r in range(repeats):
        for f, (tr, te) in enumerate(kfold(n, folds, rng)):
            xq = _pad_rows(ds.x_unit[te], q_max)
            for j in range(2):
                y_tr = ds.f1_log[tr, j]
                f0_tr, f0_te = ds.f0_log[tr, j], ds.f0_log[te, j]
                for v in variants:
                    key, k = jax.random.split(key)
                    t = time.perf_counter()
                    if v == "f0":
                        mean = f0_te
                        var = np.full(te.size, np.mean((y_tr - f0_tr) ** 2))
                    elif v in ("gp_f1", "gp_f0mean"):
                        pm_tr = f0_tr if v == "gp_f0mean" else np.zeros_like(f0_tr)
                        pm_te = f0_te if v == "gp_f0mean" else np.zeros_like(f0_te)
                        data = _buffer(n_train_max, ds.x_unit[tr], np.zeros(tr.size), y_tr, pm_tr)
                        mean, var = fp["single"](k, data, xq, _pad_rows(pm_te, q_max))
                    elif v == "gp_f0feat":
                        x_tr = np.concatenate([ds.x_unit[tr], f0_feat[tr, j : j + 1]], 1)
                        x_te = np.concatenate([ds.x_unit[te], f0_feat[te, j : j + 1]], 1)
                        data = _buffer(
                            n_train_max, x_tr, np.zeros(tr.size), y_tr, np.zeros(tr.size)
                        )
                        mean, var = fp["feat"](k, data, _pad_rows(x_te, q_max), np.zeros(q_max))
                    else:  # ar1: F1 at train designs (level 1); F0 at all n + extra (level 0)
                        x_all = np.concatenate([ds.x_unit[tr], ds.x_unit, ds.extra_x])
                        fid = np.concatenate([np.ones(tr.size), np.zeros(n + m)])
                        y_all = np.concatenate([y_tr, ds.f0_log[:, j], ds.extra_f0_log[:, j]])
                        data = _buffer(n_train_max + n + m, x_all, fid, y_all, np.zeros(fid.size))
                        mean, var = fp["ar1"](k, data, xq, np.zeros(q_max))
                    mean = np.asarray(mean, float)[: te.size]
                    var = np.asarray(var, float)[: te.size]
                    fit_s[v] += time.perf_counter() - t
                    oof[v][j][0][r, te] = mean
                    oof[v][j][1][r, te] = var
            log(f"  repeat {r + 1}/{repeats} fold {f + 1}/{folds} done")
    out: dict = {}
    for v in variants:
        out[v] = {}
        for j, name in enumerate(OBJECTIVES):
            mean, var = oof[v][j]
            per = [scores(ds.f1_log[:, j], mean[r], var[r]) for r in range(repeats)]
            out[v][name] = {
                k: dict(
                    mean=float(np.mean([s[k] for s in per])),
                    sd=float(np.std([s[k] for s in per])),
                    per_repeat=[s[k] for s in per],
                )
                for k in per[0]
            }
    if "f0" in variants:
        # design-level bootstrap of RMSE(variant) - RMSE(f0), on squared errors averaged over
        # repeats (the repeats share designs, so their spread alone understates uncertainty)
        boot = np.random.default_rng(seed + 1).integers(0, n, size=(n_boot, n))
        for j, name in enumerate(OBJECTIVES):
            y = ds.f1_log[:, j]
            se0 = np.mean((oof["f0"][j][0] - y) ** 2, axis=0)
            r0 = np.sqrt(np.mean(se0[boot], axis=1))
            for v in variants:
                se = np.mean((oof[v][j][0] - y) ** 2, axis=0)
                diff = np.sqrt(np.mean(se[boot], axis=1)) - r0
                out[v][name]["rmse_minus_f0"] = dict(
                    point=float(np.sqrt(se.mean()) - np.sqrt(se0.mean())),
                    ci95=[float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))],
                    p_better=float(np.mean(diff < 0)),
                )
    out["_fit_s"] = fit_s
    return out


def summarise(res: dict, variants) -> dict:
    """Best variant per objective and metric, and overall (lowest RMSE averaged over both)."""
    best: dict = {}
    for name in OBJECTIVES:
        best[name] = {}
        for metric, sign in _DIRECTION:
            best[name][metric] = min(variants, key=lambda v: sign * res[v][name][metric]["mean"])
    avg_rmse = {
        v: float(np.mean([res[v][o]["rmse"]["mean"] for o in OBJECTIVES])) for v in variants
    }
    overall = min(avg_rmse, key=avg_rmse.get)
    gps = [v for v in variants if v != "f0"]
    best_gp = min(gps, key=avg_rmse.get) if gps else None
    return dict(per_objective=best, mean_rmse=avg_rmse, best=overall, best_gp=best_gp)


def _vs_f0(s: dict) -> str:
    if "rmse_minus_f0" not in s:
        return ""
    b = s["rmse_minus_f0"]
    lo, hi = b["ci95"]
    return f"  {b['point']:+.5f} [{lo:+.5f}, {hi:+.5f}] {b['p_better']:>5.2f}"


def _table(res: dict, variants) -> str:
    lines = []
    for name in OBJECTIVES:
        lines.append(f"\n{name} (out-of-fold; mean +- sd over repeats)")
        lines.append(
            f"  {'variant':<10} {'RMSE [dec]':>17} {'MAE [dec]':>17} {'Spearman':>8} "
            f"{'Kendall':>8} {'LPD [nats]':>11} {'fit s/obj':>9}  RMSE - f0 [95% CI]  P(better)"
        )
        for v in variants:
            s = res[v][name]
            lines.append(
                f"  {v:<10} {s['rmse']['mean']:>9.5f}+-{s['rmse']['sd']:<7.5f}"
                f"{s['mae']['mean']:>9.5f}+-{s['mae']['sd']:<7.5f}"
                f"{s['spearman']['mean']:>8.4f} {s['kendall']['mean']:>8.4f} "
                f"{s['lpd']['mean']:>11.3f} {res['_fit_s'][v] / 2:>9.1f}" + _vs_f0(s)
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/bench_explore", help="searched for run.sqlite")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2, help="reshuffles of the K folds")
    ap.add_argument("--extra", type=int, default=100, help="F0-only pool designs for ar1")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--n-starts", type=int, default=6, help="MAP starts (engine default)")
    ap.add_argument("--fit-steps", type=int, default=150, help="Adam steps (engine default)")
    ap.add_argument("--fit-lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--prior",
        default="engine",
        choices=PRIORS,
        help="lengthscale prior: the engine's default, or scaled with sqrt(dim)",
    )
    ap.add_argument("--xla-cache", default="runs/.xla_cache")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--smoke", action="store_true", help="3 folds, 1 repeat, 40 extra designs")
    args = ap.parse_args(argv)
    if args.smoke:
        args.folds, args.repeats, args.extra = 3, 1, min(args.extra, 40)
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else print

    import jax

    if args.xla_cache:
        Path(args.xla_cache).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", args.xla_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

    t0 = time.perf_counter()
    log(f"reading runs under {args.runs}")
    ds = load_dataset(args.runs, n_extra=args.extra, seed=args.seed, log=log)
    n = ds.x_unit.shape[0]
    info = dict(ds.info)
    need = max(MIN_DESIGNS, args.folds)
    if n < need:
        msg = (
            f"only {n} distinct F1 designs under {args.runs} (need >= {need}"
            f" for {args.folds}-fold cross-validation): run more explorations first, e.g. "
            "`python scripts/bench_explore.py`, or point --runs at a larger set"
        )
        if args.json:
            print(json.dumps(dict(status="too_few_designs", message=msg, data=info)))
        else:
            print(msg)
        return 0
    log(
        f"{n} distinct F1 designs from {info['n_problems']} pools ({info['n_f1_records']} F1 "
        f"records in {info['n_run_dbs']} run databases); group {info['group']}; "
        f"{info['n_extra_f0']} extra F0-only designs for ar1"
    )
    res = cross_validate(
        ds,
        folds=args.folds,
        repeats=args.repeats,
        seed=args.seed,
        n_starts=args.n_starts,
        steps=args.fit_steps,
        lr=args.fit_lr,
        variants=variants,
        prior=args.prior,
        log=log,
    )
    summ = summarise(res, variants)
    resid = ds.f1_log - ds.f0_log
    out = dict(
        status="ok",
        data=info,
        cv=dict(folds=args.folds, repeats=args.repeats, seed=args.seed),
        fit=dict(
            prior=args.prior,
            n_starts=args.n_starts,
            steps=args.fit_steps,
            lr=args.fit_lr,
            dtype="float32",
        ),
        f1_minus_f0=dict(
            {
                o: dict(
                    mean=float(resid[:, j].mean()),
                    sd=float(resid[:, j].std()),
                    f1_sd=float(ds.f1_log[:, j].std()),
                )
                for j, o in enumerate(OBJECTIVES)
            }
        ),
        results={v: res[v] for v in variants},
        fit_seconds=res["_fit_s"],
        summary=summ,
        wall_s=time.perf_counter() - t0,
    )
    if args.json:
        print(json.dumps(out))
        return 0
    print(
        f"\n{n} designs, {args.folds}-fold CV x {args.repeats} repeats, {args.prior} priors; "
        f"F1-F0 in decades: "
        + ", ".join(
            f"{o}: mean {out['f1_minus_f0'][o]['mean']:+.4f} sd {out['f1_minus_f0'][o]['sd']:.4f}"
            f" (F1 sd {out['f1_minus_f0'][o]['f1_sd']:.3f})"
            for o in OBJECTIVES
        )
    )
    print(_table(res, variants))
    print(
        "\nmean RMSE over both objectives: "
        + ", ".join(f"{v} {summ['mean_rmse'][v]:.5f}" for v in variants)
    )
    print(f"best: {summ['best']}; best GP variant: {summ['best_gp']}")
    for o in OBJECTIVES:
        print(f"  {o}: " + ", ".join(f"{k}->{v}" for k, v in summ["per_objective"][o].items()))
    print(f"wall {out['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
