"""The data side of the BO engine: its configuration, state, proposals and initial design.

:class:`MFBOConfig` (static settings, checked by :func:`_validate`), :class:`MFBOState` (the
explicit pytree of padded observations, GP hyperparameters, key and incumbent),
:class:`Proposal` and :class:`MFBO` (the ``init / ask / tell`` triple), the nested Latin
hypercube design, and :func:`_common`: state construction, insertion of told observations
and capacity growth shared by :func:`~theseus_jax.bo._loop.make_mfbo` and
:func:`~theseus_jax.bo._loop.make_random_search` (the surrogate and acquisition are there).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._gp import GPPriors, grow_capacity

_OBJECTIVES = ("single", "parego", "ehvi")


class MFBOConfig(NamedTuple):
    """Static configuration of the engine (hashable; closed over by ``make_mfbo``).

    Attributes:
        dim: design dimensions ``d`` (the unit cube ``[0,1]^d``).
        n_fidelities: number of levels ``F``; level ``F-1`` is the target.
        costs: ``F`` positive costs per evaluation, by level (any unit, e.g. seconds).
        kernel: ``'ar1'``, ``'linear_truncated'`` or ``'single'``.
        objective: ``'single'``, ``'parego'`` or ``'ehvi'`` (``n_objectives == 2``).
        n_objectives: ``m``.
        q: batch size of ``ask``.
        n_features: extra GP input columns supplied with every row/candidate.
        n_init: points per level in the initial design (non-increasing in the level);
            default ``2(d+1)`` for a single level, else ``2(d+1)`` at each lower level and
            ``max(2, (d+1)//2)`` at the target.
        capacity: initial buffer rows (grown by doubling).
        fidelity_values: ``s`` of each level for ``'linear_truncated'``.
        priors: GP hyperpriors.
        inference: ``'map'`` or ``'nuts'``.
        n_starts, fit_steps, fit_lr: multi-start Adam MAP settings.
        nuts_warmup, nuts_samples: NUTS settings.
        min_corr2, min_std: high-fidelity guarantees of the fidelity rule.
        n_polish, polish_steps, polish_lr: gradient polishing of the top candidates.
        n_random_candidates: pool size when ``ask`` gets no candidates.
        ref_point: EHVI reference point in objective units (a LOWER bound of each maximised
            objective); default: observed minimum minus 10% of the observed range.
        parego_rho: augmentation coefficient of the Chebyshev scalarisation.
    """

    dim: int
    n_fidelities: int = 1
    costs: tuple = (1.0,)
    kernel: str = "ar1"
    objective: str = "single"
    n_objectives: int = 1
    q: int = 1
    n_features: int = 0
    n_init: tuple | None = None
    capacity: int = 64
    fidelity_values: tuple | None = None
    priors: GPPriors = GPPriors()
    inference: str = "map"
    n_starts: int = 6
    fit_steps: int = 150
    fit_lr: float = 0.05
    nuts_warmup: int = 100
    nuts_samples: int = 16
    min_corr2: float = 0.5
    min_std: float = 0.01
    n_polish: int = 0
    polish_steps: int = 30
    polish_lr: float = 0.01
    n_random_candidates: int = 1024
    ref_point: tuple | None = None
    parego_rho: float = 0.05


class MFBOState(NamedTuple):
    """Explicit state (a pytree). ``cap`` = capacity, ``m`` = objectives, ``G`` = number of
    GPs (2 for EHVI, else 1), ``S`` = hyperparameter samples (1 for MAP).

    Attributes:
        x: ``(cap, d)`` observed points (unit cube); feat: ``(cap, n_features)``;
        fid: ``(cap,)`` int32 levels; y: ``(cap, m)``; prior_mean: ``(cap, m)``;
        mask: ``(cap,)`` bool observed rows; n: int32 number of observations.
        iteration: int32 number of ``tell`` calls.
        spent_cost: total cost of all told evaluations.
        best_y: ``(m,)`` best value per objective among TARGET-level observations
            (``-inf`` if none); best_x: ``(d,)`` the point of ``best_y[0]``.
        key: PRNG key (advanced by every ``tell``).
        init_x: ``(n_design, d)``; init_fid: ``(n_design,)`` the initial design.
        params: GP hyperparameters, dict of arrays with leading ``(G, S)`` axes.
        weights: ``(m,)`` current ParEGO weights.
        fitted: bool, whether ``params`` were fitted to the current data.
    """

    x: jax.Array
    feat: jax.Array
    fid: jax.Array
    y: jax.Array
    prior_mean: jax.Array
    mask: jax.Array
    n: jax.Array
    iteration: jax.Array
    spent_cost: jax.Array
    best_y: jax.Array
    best_x: jax.Array
    key: jax.Array
    init_x: jax.Array
    init_fid: jax.Array
    params: dict
    weights: jax.Array
    fitted: jax.Array


class Proposal(NamedTuple):
    """Result of ``ask``.

    Attributes:
        x: ``(q, d)`` points in the unit cube (polished points may lie off the candidates).
        fidelity: ``(q,)`` int32 levels to evaluate.
        index: ``(q,)`` int32 index of the candidate each point came from (-1: none given).
        value: ``(q,)`` log acquisition of each point (NaN for initial-design points).
    """

    x: jax.Array
    fidelity: jax.Array
    index: jax.Array
    value: jax.Array


class MFBO(NamedTuple):
    """``init(key) -> state``; ``ask(state, candidates=None, *, prior_mean=None,
    features=None, cost=None) -> Proposal``; ``tell(state, x, fidelity, y, *, prior_mean=None,
    features=None) -> state``; ``config``; ``trace_counts`` (dict: how often each jitted core
    was traced -- a diagnostic for recompilation)."""

    init: Any
    ask: Any
    tell: Any
    config: MFBOConfig
    trace_counts: dict


def latin_hypercube(key, n: int, d: int, dtype=jnp.float32):
    """``n`` points of a random Latin hypercube in ``[0,1]^d`` (McKay et al. 1979)."""
    kp, ku = jax.random.split(key)
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(kp, d)).T
    u = jax.random.uniform(ku, (n, d), dtype)
    return (perms.astype(dtype) + u) / n


def single_fidelity(config: MFBOConfig) -> MFBOConfig:
    """The same engine restricted to the target level (single-fidelity BO baseline).

    Level 0 of the returned config is level ``F-1`` of ``config``; map it back when evaluating.
    """
    return config._replace(
        n_fidelities=1,
        costs=(float(config.costs[-1]),),
        kernel="single",
        n_init=None,
        fidelity_values=None,
    )


def grow_state(state: MFBOState, new_capacity: int) -> MFBOState:
    """Host-side: reallocate the data buffers of ``state`` to ``new_capacity`` rows."""
    buf = (state.x, state.feat, state.fid, state.y, state.prior_mean, state.mask)
    x, feat, fid, y, pm, mask = grow_capacity(buf, new_capacity)
    return state._replace(x=x, feat=feat, fid=fid, y=y, prior_mean=pm, mask=mask)


def _validate(cfg: MFBOConfig) -> tuple[int, ...]:
    if cfg.dim < 1:
        raise ValueError(f"dim must be >= 1, got {cfg.dim}.")
    if cfg.n_fidelities < 1 or len(cfg.costs) != cfg.n_fidelities:
        raise ValueError(
            f"costs must give one positive cost per level: n_fidelities={cfg.n_fidelities}, "
            f"costs={cfg.costs}."
        )
    if any(c <= 0 for c in cfg.costs):
        raise ValueError(f"costs must be positive, got {cfg.costs}.")
    if cfg.objective not in _OBJECTIVES:
        raise ValueError(f"objective {cfg.objective!r} unknown; use one of {_OBJECTIVES}.")
    if cfg.objective == "ehvi" and cfg.n_objectives != 2:
        raise ValueError(
            "objective='ehvi' is the exact 2-D EHVI: set n_objectives=2 "
            "(or use objective='parego' for more objectives)."
        )
    if cfg.objective == "single" and cfg.n_objectives != 1:
        raise ValueError(
            f"objective='single' needs n_objectives=1, got {cfg.n_objectives}; "
            "use 'parego' or 'ehvi' for several objectives."
        )
    if cfg.q < 1:
        raise ValueError(f"q must be >= 1, got {cfg.q}.")
    if cfg.inference not in ("map", "nuts"):
        raise ValueError(f"inference must be 'map' or 'nuts', got {cfg.inference!r}.")
    nf, d = cfg.n_fidelities, cfg.dim
    if cfg.n_init is None:
        n_init = (2 * (d + 1),) if nf == 1 else (2 * (d + 1),) * (nf - 1) + (max(2, (d + 1) // 2),)
    else:
        n_init = tuple(int(v) for v in cfg.n_init)
    if len(n_init) != nf or any(b > a for a, b in zip(n_init, n_init[1:], strict=False)):
        raise ValueError(
            f"n_init must give {nf} non-increasing counts (nested design), got {n_init}."
        )
    if n_init[-1] < 1 or sum(n_init) < 2:
        raise ValueError(f"n_init needs >= 1 target-level point and >= 2 in all, got {n_init}.")
    return n_init


def _common(cfg: MFBOConfig, n_init: tuple[int, ...]):
    """State construction and insertion shared by BO and random search."""
    d, m, e, nf = cfg.dim, cfg.n_objectives, cfg.n_features, cfg.n_fidelities
    dtype = jnp.zeros(()).dtype
    costs = jnp.asarray(cfg.costs, dtype)
    n_design = sum(n_init)

    def design(key):
        pts = latin_hypercube(key, max(n_init), d, dtype)
        xs = jnp.concatenate([pts[:k] for k in n_init], axis=0)
        ts = jnp.concatenate([jnp.full((k,), t, jnp.int32) for t, k in enumerate(n_init)])
        return xs, ts

    def empty(key, params, n_gp):
        cap = max(cfg.capacity, n_design + cfg.q)
        key, kd = jax.random.split(key)
        ix, it = design(kd)
        params = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (n_gp, 1, *a.shape)), params)
        return MFBOState(
            x=jnp.full((cap, d), 0.5, dtype),
            feat=jnp.full((cap, e), 0.5, dtype),
            fid=jnp.zeros((cap,), jnp.int32),
            y=jnp.zeros((cap, m), dtype),
            prior_mean=jnp.zeros((cap, m), dtype),
            mask=jnp.zeros((cap,), bool),
            n=jnp.int32(0),
            iteration=jnp.int32(0),
            spent_cost=jnp.zeros((), dtype),
            best_y=jnp.full((m,), -jnp.inf, dtype),
            best_x=jnp.full((d,), jnp.nan, dtype),
            key=key,
            init_x=ix,
            init_fid=it,
            params=params,
            weights=jnp.full((m,), 1.0 / m, dtype),
            fitted=jnp.bool_(False),
        )

    def insert(state: MFBOState, x, fid, y, pm, feat):
        n = state.n
        q = x.shape[0]
        upd = jax.lax.dynamic_update_slice
        zero = jnp.int32(0)
        new_mask = upd(state.mask, jnp.ones((q,), bool), (n,))
        is_t = fid == nf - 1
        yt = jnp.where(is_t[:, None], y, -jnp.inf)
        j = jnp.argmax(yt[:, 0])
        better = yt[j, 0] > state.best_y[0]
        return state._replace(
            x=upd(state.x, x, (n, zero)),
            feat=upd(state.feat, feat, (n, zero)),
            fid=upd(state.fid, fid, (n,)),
            y=upd(state.y, y, (n, zero)),
            prior_mean=upd(state.prior_mean, pm, (n, zero)),
            mask=new_mask,
            n=n + q,
            iteration=state.iteration + 1,
            spent_cost=state.spent_cost + jnp.sum(costs[fid]),
            best_y=jnp.maximum(state.best_y, jnp.max(yt, axis=0)),
            best_x=jnp.where(better, x[j], state.best_x),
            key=jax.random.split(state.key)[0],
            fitted=jnp.bool_(False),
        )

    def coerce_tell(state, x, fidelity, y, prior_mean, features):
        x = jnp.asarray(x, dtype).reshape(-1, d)
        q = x.shape[0]
        fid = jnp.asarray(fidelity, jnp.int32).reshape(q)
        f_np = np.asarray(fid)
        if np.any(f_np < 0) or np.any(f_np >= nf):
            raise ValueError(f"fidelity levels must lie in 0..{nf - 1}, got {f_np.tolist()}.")
        y = jnp.asarray(y, dtype).reshape(q, m)
        pm = (
            jnp.zeros((q, m), dtype)
            if prior_mean is None
            else jnp.asarray(prior_mean, dtype).reshape(q, m)
        )
        if e > 0 and features is None:
            raise ValueError(f"config.n_features={e}: pass features of shape ({q}, {e}).")
        ft = jnp.zeros((q, 0), dtype) if e == 0 else jnp.asarray(features, dtype).reshape(q, e)
        cap = state.x.shape[0]
        need = int(state.n) + q + cfg.q
        if need > cap:
            new = cap
            while new < need:
                new *= 2
            state = grow_state(state, new)
        return state, x, fid, y, pm, ft

    def design_proposal(state, candidates):
        n = int(state.n)
        stop = min(n + cfg.q, n_design)
        xs = state.init_x[n:stop]
        ts = state.init_fid[n:stop]
        k = stop - n
        if candidates is None:
            idx = jnp.full((k,), -1, jnp.int32)
        else:
            c = np.asarray(candidates, np.float64)
            taken: set[int] = set()
            out = []
            for p in np.asarray(xs, np.float64):
                dist = np.sum((c - p) ** 2, axis=1)
                for i in np.argsort(dist):
                    if int(i) not in taken:
                        break
                taken.add(int(i))
                out.append(int(i))
            idx = jnp.asarray(out, jnp.int32)
            xs = jnp.asarray(c[out], dtype)
        return Proposal(xs, ts, idx, jnp.full((k,), jnp.nan, dtype))

    return dtype, costs, n_design, empty, insert, coerce_tell, design_proposal
