r"""Multi-fidelity Bayesian optimisation as an optax-style ``init / ask / tell`` triple.

.. code-block:: python

    opt = make_mfbo(MFBOConfig(dim=2, n_fidelities=2, costs=(1.0, 10.0), kernel="ar1"))
    state = opt.init(jax.random.key(0))
    while float(state.spent_cost) < budget:
        prop = opt.ask(state, candidates)          # Proposal(x (q,d), fidelity (q,), index (q,))
        y = evaluate(prop.x, prop.fidelity)        # caller's black box, shape (q,) or (q, m)
        state = opt.tell(state, prop.x, prop.fidelity, y)

Everything is MAXIMISED. The state (:class:`MFBOState`) is an explicit pytree holding the
fixed-capacity padded data, the fitted GP hyperparameters, the PRNG key, the spent cost and
the incumbent. ``ask`` is a deterministic function of ``(state, candidates, ...)``: its
randomness comes from ``state.key`` and it does not change the state, so replaying the same
``tell`` calls from ``init(key)`` rebuilds a bit-identical state (same device/dtype).
``tell`` appends the observations, advances the key and refits the surrogate (multi-start MAP
warm-started from the previous fit, or NUTS), so ``ask`` itself only factorises and scores.

Workflow of ``ask``:

1. **Initial design** (while ``n < sum(n_init)``): a Latin hypercube drawn at ``init`` from the
   key, nested across levels (the first ``n_init[t]`` LHS points are evaluated at level ``t``;
   ``n_init`` decreases with ``t``), snapped to the nearest caller candidate if candidates are
   given. Up to ``q`` design points per ask.
2. **Point** = argmax over the candidates of the target-level acquisition: LogEI for
   ``objective='single'`` and ``'parego'`` (the GP models the ParEGO scalarisation with the
   weights drawn at the last ``tell``), ``log EHVI`` (exact 2-D, independent GPs) for
   ``'ehvi'``. Optionally polished by projected gradient ascent (``n_polish`` > 0). With
   per-candidate costs (``ask(..., cost=)``, e.g. a simulator's run length known in advance)
   the score is the log acquisition minus ``log cost`` (acquisition per unit cost; costs are
   normalised by their geometric mean, and scale every level alike).
3. **Fidelity** = cost-aware variance-reduction rule with the high-fidelity guarantees of
   :func:`~theseus_jax.bo._acquisition.fidelity_scores`.
4. **Batch** ``q > 1``: kriging believer -- the chosen (x, level) is added as a fantasy
   observation equal to the posterior mean (hyperparameters and standardisation fixed), the
   posterior is refactorised and the next point is chosen; candidates already chosen are
   excluded (Ginsbourger, Le Riche, Carraro 2010, "Kriging is well-suited to parallelize
   optimization").

Prior mean and extra features: ``tell`` and ``ask`` accept ``prior_mean`` (per row / per
candidate, shape ``(q, m)`` / ``(M, m)``, e.g. a cheap analytic model, the same for every
level) and ``features`` (``(q, n_features)`` / ``(M, n_features)``, appended to ``x`` as GP
inputs). Polishing moves only ``x`` and keeps each candidate's prior mean and features fixed
(a local approximation; re-evaluate and snap afterwards).

Capacity: the buffers hold ``capacity`` rows; ``tell`` doubles them on the host when
``n + q_told + q`` would not fit (this is the only time ``ask``/``tell`` recompile), see
:func:`grow_state`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._acquisition import ehvi_2d, fidelity_scores, log_ei, parego_scalarize, sample_simplex
from ._gp import GPData, make_gp
from ._state import (
    MFBO,
    MFBOConfig,
    MFBOState,
    Proposal,
    _common,
    _validate,
    grow_state,
    latin_hypercube,
    single_fidelity,
)

__all__ = [
    "MFBOConfig",
    "MFBOState",
    "Proposal",
    "MFBO",
    "make_mfbo",
    "make_random_search",
    "single_fidelity",
    "grow_state",
    "latin_hypercube",
]


def make_mfbo(config: MFBOConfig) -> MFBO:
    """Build the (multi-fidelity) BO engine for ``config``.

    Args:
        config: :class:`MFBOConfig`.

    Returns:
        :class:`MFBO` with ``init``, ``ask``, ``tell``:

        * ``init(key) -> MFBOState``
        * ``ask(state, candidates=None, *, prior_mean=None, features=None, cost=None)
          -> Proposal``; ``candidates`` ``(M, d)`` in the unit cube (``None``:
          ``n_random_candidates`` uniform points from the state's key), ``prior_mean``
          ``(M, m)``, ``features`` ``(M, n_features)``, ``cost`` ``(M,)`` positive relative
          costs of evaluating each candidate (acquisition per unit cost; the initial design
          ignores it). Keep ``M`` fixed to avoid recompiling.
        * ``tell(state, x, fidelity, y, *, prior_mean=None, features=None) -> MFBOState``
          with ``x`` ``(q, d)``, ``fidelity`` ``(q,)``, ``y`` ``(q,)`` or ``(q, m)``.

    Raises:
        ValueError: for inconsistent configurations (with the fix in the message).
    """
    cfg = config
    n_init = _validate(cfg)
    d, m, e, nf, q = cfg.dim, cfg.n_objectives, cfg.n_features, cfg.n_fidelities, cfg.q
    n_gp = 2 if cfg.objective == "ehvi" else 1
    target = nf - 1
    gp = make_gp(cfg.kernel, d + e, nf, fidelity_values=cfg.fidelity_values, priors=cfg.priors)
    dtype, costs, n_design, empty, insert, coerce_tell, design_proposal = _common(cfg, n_init)
    traces = {"fit": 0, "ask": 0, "insert": 0}

    # ----- data of each GP ------------------------------------------------------------------
    def gp_data(state: MFBOState, weights) -> GPData:
        """Stacked (G, cap, ...) training sets."""
        xin = jnp.concatenate([state.x, state.feat], axis=1)
        if cfg.objective == "parego":
            w = state.mask[:, None]
            lo = jnp.min(jnp.where(w, state.y, jnp.inf), axis=0)
            hi = jnp.max(jnp.where(w, state.y, -jnp.inf), axis=0)
            scal = jax.vmap(parego_scalarize, in_axes=(0, None, None, None, None))
            ys = scal(state.y, weights, lo, hi, cfg.parego_rho)[None]
            pms = scal(state.prior_mean, weights, lo, hi, cfg.parego_rho)[None]
            pms = jnp.where(jnp.any(state.prior_mean != 0), pms, jnp.zeros_like(pms))
        else:
            ys = state.y.T[:n_gp]
            pms = state.prior_mean.T[:n_gp]
        rep = lambda a: jnp.broadcast_to(a, (n_gp, *a.shape))  # noqa: E731
        return GPData(rep(xin), rep(state.fid), ys, pms, rep(state.mask))

    def cand_prior(state, cpm, weights):
        """(M, G) prior means of the candidates for each GP."""
        if cfg.objective == "parego":
            w = state.mask[:, None]
            lo = jnp.min(jnp.where(w, state.y, jnp.inf), axis=0)
            hi = jnp.max(jnp.where(w, state.y, -jnp.inf), axis=0)
            s = jax.vmap(parego_scalarize, in_axes=(0, None, None, None, None))(
                cpm, weights, lo, hi, cfg.parego_rho
            )
            s = jnp.where(jnp.any(state.prior_mean != 0), s, jnp.zeros_like(s))
            return s[:, None]
        return cpm[:, :n_gp]

    # ----- fitting (in tell) ----------------------------------------------------------------
    def fit_core(state: MFBOState) -> MFBOState:
        traces["fit"] += 1
        kfit, kw = jax.random.split(jax.random.fold_in(state.key, 7))
        weights = sample_simplex(kw, m, dtype) if cfg.objective == "parego" else state.weights
        data = gp_data(state, weights)
        out = []
        for g, k in enumerate(jax.random.split(kfit, n_gp)):
            p, _ = gp.fit_map(
                k,
                _take(data, g),
                n_starts=cfg.n_starts,
                steps=cfg.fit_steps,
                lr=cfg.fit_lr,
                warm=_take(state.params, g, 0),
            )
            out.append(p)
        params = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *out)
        return state._replace(params=params, weights=weights, fitted=jnp.bool_(True))

    fit_jit = jax.jit(fit_core)

    def fit_nuts_host(state: MFBOState) -> MFBOState:
        kfit, kw = jax.random.split(jax.random.fold_in(state.key, 7))
        weights = sample_simplex(kw, m, dtype) if cfg.objective == "parego" else state.weights
        data = gp_data(state, weights)
        out = []
        for g, k in enumerate(jax.random.split(kfit, n_gp)):
            dg = jax.tree_util.tree_map(lambda a: a[g], data)  # noqa: B023
            warm = jax.tree_util.tree_map(lambda a: jnp.median(a[g], axis=0), state.params)  # noqa: B023
            out.append(
                gp.fit_nuts(
                    k, dg, num_warmup=cfg.nuts_warmup, num_samples=cfg.nuts_samples, warm=warm
                )
            )
        params = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *out)
        return state._replace(params=params, weights=weights, fitted=jnp.bool_(True))

    # ----- posterior over (G, S) ------------------------------------------------------------
    # Python loops over the (small, static) G and S axes instead of vmap: batched Cholesky /
    # triangular solves are much slower than unbatched ones on CPU in this JAX version.
    def _sizes(params):
        a = params["noise"]
        return a.shape[0], a.shape[1]

    def _take(tree, *idx):
        return jax.tree_util.tree_map(lambda a: a[idx], tree)

    def posteriors(params, data, stats):
        """Nested list [g][s] of Posterior."""
        ng, ns = _sizes(params)
        return [
            [gp.posterior(_take(params, g, s), _take(data, g), _take(stats, g)) for s in range(ns)]
            for g in range(ng)
        ]

    def mix_predict(posts, xq, tq, mq):
        """Mixture mean/var (G,) over the S samples at one query; mq: (G,)."""
        means, vars_ = [], []
        for g, row in enumerate(posts):
            mv = [gp.predict(p, xq, tq, mq[g]) for p in row]
            mu = jnp.stack([a for a, _ in mv])
            var = jnp.stack([b for _, b in mv])
            means.append(jnp.mean(mu))
            vars_.append(jnp.mean(var) + jnp.var(mu))
        return jnp.stack(means), jnp.stack(vars_)

    def level_cov(posts, xq):
        """(G, F, F) mixture covariance over the levels at one point (standardised units)."""
        xs = jnp.broadcast_to(xq, (nf, xq.shape[0]))
        ts = jnp.arange(nf, dtype=jnp.int32)
        z = jnp.zeros((nf,), dtype)
        out = []
        for row in posts:
            mc = [gp.predict_cov(p, xs, ts, z) for p in row]
            mu = jnp.stack([a for a, _ in mc])  # (S, F)
            cov = jnp.stack([b for _, b in mc])  # (S, F, F)
            dmu = mu - jnp.mean(mu, axis=0, keepdims=True)
            c = jnp.mean(cov, axis=0) + jnp.mean(dmu[:, :, None] * dmu[:, None, :], axis=0)
            out.append(c / row[0].stats.sd ** 2)
        return jnp.stack(out)

    # ----- acquisition -----------------------------------------------------------------------
    def make_acq(state_like, posts, data):
        """Return acq(x_full, mq (G,)) -> scalar for the current (possibly fantasy) data."""
        tgt = data.mask[0] & (data.fid[0] == target)
        has_t = jnp.any(tgt)
        rows = jnp.where(has_t, tgt, data.mask[0])
        tt = jnp.full((data.x.shape[1],), target, jnp.int32)
        pm_rows = data.prior_mean.T  # (cap, G)
        mean_rows, _ = jax.vmap(mix_predict, in_axes=(None, 0, 0, 0))(posts, data.x[0], tt, pm_rows)
        if cfg.objective != "ehvi":
            best = jnp.max(jnp.where(rows, mean_rows[:, 0], -jnp.inf))

            def acq(xf, mq):
                mu, var = mix_predict(posts, xf, jnp.int32(target), mq)
                return log_ei(mu[0], var[0], best)

            return acq
        # EHVI: minimise the negated objectives; the front is the target-level data
        ymax = data.y.T  # (cap, 2), maximised objectives (fantasies included)
        lo = jnp.min(jnp.where(rows[:, None], ymax, jnp.inf), axis=0)
        hi = jnp.max(jnp.where(rows[:, None], ymax, -jnp.inf), axis=0)
        if cfg.ref_point is None:
            ref_max = lo - 0.1 * jnp.maximum(hi - lo, 1e-12)
        else:
            ref_max = jnp.asarray(cfg.ref_point, dtype)
        front = -ymax
        ref = -ref_max

        def acq(xf, mq):
            mu, var = mix_predict(posts, xf, jnp.int32(target), mq)
            v = ehvi_2d(-mu, var, front, tgt, ref)
            return jnp.log(v + jnp.finfo(dtype).tiny)

        return acq

    def polish(acq, x0, feat0, mq0):
        """Projected Adam ascent of acq over x in the cube (features/prior mean fixed)."""
        opt = optax.adam(cfg.polish_lr)

        def step(carry, _):
            x, s = carry
            g = jax.grad(lambda xx: acq(jnp.concatenate([xx, feat0]), mq0))(x)
            g = jnp.where(jnp.isfinite(g), g, 0.0)
            u, s = opt.update(-g, s)
            return (jnp.clip(optax.apply_updates(x, u), 0.0, 1.0), s), None

        (x, _), _ = jax.lax.scan(step, (x0, opt.init(x0)), None, length=cfg.polish_steps)
        return x, acq(jnp.concatenate([x, feat0]), mq0)

    def ask_core(state: MFBOState, cx, cfeat, cpm, clc):
        traces["ask"] += 1
        data = gp_data(state, state.weights)
        stats = jax.vmap(gp.standardise)(data)
        cmq = cand_prior(state, cpm, state.weights)  # (M, G)
        cfull = jnp.concatenate([cx, cfeat], axis=1)
        noise = jnp.mean(state.params["noise"], axis=1)  # (G, F)

        def one(carry, i):
            data, taken = carry
            posts = posteriors(state.params, data, stats)
            acq = make_acq(state, posts, data)
            vals = jax.vmap(acq)(cfull, cmq) - clc  # log acquisition per unit cost
            vals = jnp.where(taken | ~jnp.isfinite(vals), -jnp.inf, vals)
            j = jnp.argmax(vals)
            xbest, vbest = cx[j], vals[j]
            if cfg.n_polish > 0:
                top = jax.lax.top_k(vals, cfg.n_polish)[1]
                xp, vp = jax.vmap(polish, in_axes=(None, 0, 0, 0))(
                    acq, cx[top], cfeat[top], cmq[top]
                )
                vp = vp - clc[top]
                vp = jnp.where(jnp.isfinite(vp), vp, -jnp.inf)
                k = jnp.argmax(vp)
                use = vp[k] > vbest
                xbest = jnp.where(use, xp[k], xbest)
                vbest = jnp.where(use, vp[k], vbest)
                j = jnp.where(use, top[k], j)
            xfull = jnp.concatenate([xbest, cfeat[j]])
            if nf > 1:
                cov = level_cov(posts, xfull)  # (G, F, F)
                sc, el = jax.vmap(
                    lambda c, nz: fidelity_scores(
                        c, nz, jnp.ones((nf,), dtype), min_corr2=cfg.min_corr2, min_std=cfg.min_std
                    )
                )(cov, noise)
                rel = sc / jnp.maximum(cov[:, target, target], 1e-12)[:, None]
                score = jnp.sum(rel, axis=0) / costs
                ok = jnp.all(el, axis=0)
                t = jnp.argmax(jnp.where(ok, score, -jnp.inf)).astype(jnp.int32)
            else:
                t = jnp.int32(0)
            # kriging believer: fantasy observation = posterior mean at (x, t)
            mu_f, _ = mix_predict(posts, xfull, t, cmq[j])
            row = state.n + i
            y_f = data.y.at[:, row].set(mu_f)
            data = data._replace(
                x=data.x.at[:, row].set(xfull),
                fid=data.fid.at[:, row].set(t),
                y=y_f,
                prior_mean=data.prior_mean.at[:, row].set(cmq[j]),
                mask=data.mask.at[:, row].set(True),
            )
            if cfg.objective == "ehvi":
                pass  # front uses data.y (fantasies included) directly
            taken = taken.at[j].set(True)
            return (data, taken), (xbest, t, j.astype(jnp.int32), vbest)

        taken0 = jnp.zeros((cx.shape[0],), bool)
        _, (xs, ts, js, vs) = jax.lax.scan(one, (data, taken0), jnp.arange(q))
        return Proposal(xs, ts, js, vs)

    ask_jit = jax.jit(ask_core)

    def insert_core(state, x, fid, y, pm, ft):
        traces["insert"] += 1
        return insert(state, x, fid, y, pm, ft)

    insert_jit = jax.jit(insert_core)

    # ----- public functions -------------------------------------------------------------------
    def init(key) -> MFBOState:
        return empty(key, gp.init_params(dtype), n_gp)

    def ask(
        state: MFBOState, candidates=None, *, prior_mean=None, features=None, cost=None
    ) -> Proposal:
        if int(state.n) < n_design:
            return design_proposal(state, candidates)
        if not bool(state.fitted):
            raise ValueError(
                "the state's surrogate is not fitted: call tell() with the "
                "observations of the initial design before asking again."
            )
        given = candidates is not None
        if not given:
            if e > 0:
                raise ValueError(f"config.n_features={e}: pass candidates and their features.")
            kc = jax.random.fold_in(state.key, 2)
            candidates = jax.random.uniform(kc, (cfg.n_random_candidates, d), dtype)
        cx = jnp.asarray(candidates, dtype)
        if cx.ndim != 2 or cx.shape[1] != d:
            raise ValueError(f"candidates must have shape (M, {d}), got {cx.shape}.")
        mm = cx.shape[0]
        if mm < q:
            raise ValueError(f"need at least q={q} candidates, got {mm}.")
        cpm = (
            jnp.zeros((mm, m), dtype)
            if prior_mean is None
            else jnp.asarray(prior_mean, dtype).reshape(mm, m)
        )
        if e > 0:
            if features is None:
                raise ValueError(f"config.n_features={e}: pass features of shape ({mm}, {e}).")
            cft = jnp.asarray(features, dtype).reshape(mm, e)
        else:
            cft = jnp.zeros((mm, 0), dtype)
        if cost is None:
            clc = jnp.zeros((mm,), dtype)
        else:
            c = np.asarray(cost, np.float64).reshape(-1)
            if c.shape != (mm,) or not np.all(np.isfinite(c) & (c > 0)):
                raise ValueError(
                    f"cost must give one positive finite cost per candidate, shape ({mm},); "
                    f"got shape {c.shape}"
                )
            clc = jnp.asarray(np.log(c / np.exp(np.mean(np.log(c)))), dtype)
        prop = ask_jit(state, cx, cft, cpm, clc)
        if not given:
            prop = prop._replace(index=jnp.full((q,), -1, jnp.int32))
        return prop

    def tell(state: MFBOState, x, fidelity, y, *, prior_mean=None, features=None) -> MFBOState:
        state, x, fid, y, pm, ft = coerce_tell(state, x, fidelity, y, prior_mean, features)
        state = insert_jit(state, x, fid, y, pm, ft)
        if int(state.n) >= n_design:
            state = fit_jit(state) if cfg.inference == "map" else fit_nuts_host(state)
        return state

    return MFBO(init, ask, tell, cfg, traces)


def make_random_search(config: MFBOConfig) -> MFBO:
    """Random search in the same ``init/ask/tell`` form (always at the target level).

    ``ask`` returns ``q`` distinct random candidates (or uniform points if none are given),
    drawn from the state's key, so it is deterministic given the state; ``tell`` only stores.
    The initial design is skipped (every ask is random).
    """
    cfg = config._replace(n_init=None)
    _validate(cfg)
    dtype, costs, n_design, empty, insert, coerce_tell, _ = _common(cfg, (1,) * cfg.n_fidelities)
    nf, d, q = cfg.n_fidelities, cfg.dim, cfg.q
    insert_jit = jax.jit(insert)

    def init(key):
        return empty(key, {}, 1)

    def ask(state, candidates=None, *, prior_mean=None, features=None, cost=None):
        del prior_mean, features, cost
        k = jax.random.fold_in(state.key, 3)
        if candidates is None:
            xs = jax.random.uniform(k, (q, d), dtype)
            idx = jnp.full((q,), -1, jnp.int32)
        else:
            c = jnp.asarray(candidates, dtype)
            idx = jax.random.choice(k, c.shape[0], (q,), replace=False).astype(jnp.int32)
            xs = c[idx]
        return Proposal(xs, jnp.full((q,), nf - 1, jnp.int32), idx, jnp.full((q,), jnp.nan, dtype))

    def tell(state, x, fidelity, y, *, prior_mean=None, features=None):
        state, x, fid, y, pm, ft = coerce_tell(state, x, fidelity, y, prior_mean, features)
        return insert_jit(state, x, fid, y, pm, ft)

    return MFBO(init, ask, tell, cfg, {})
