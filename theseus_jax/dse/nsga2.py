r"""NSGA-II over the unit cube as an explicit-state ``(init, ask, tell)`` triple (host side).

The multi-objective evolutionary baseline of the DSE harness (BRIEF section 5). Every
objective is *minimised* (negate throughput). One generation is

1. ``ask(state)``: ``pop_size`` offspring from the parents by binary tournament on the
   crowded-comparison order (rank, then crowding distance), simulated binary crossover
   (SBX) and polynomial mutation, all bounded to :math:`[0, 1]^d`;
2. the caller evaluates the offspring (it may first snap them to a legal grid, e.g. with
   ``space.to_unit(space.from_unit(x))``, and then passes the *evaluated* points to ``tell``);
3. ``tell(state, x, objectives_min, violation=... | feasible=...)``: parents and offspring are
   merged, sorted into fronts by constraint-domination and the next ``pop_size`` parents are
   the best fronts, the last one cut by crowding distance (elitism).

Constraint-domination (Deb 2000; Deb et al. 2002 section VI): :math:`i` dominates :math:`j`
if :math:`i` is feasible and :math:`j` is not; or both are infeasible and :math:`i` has the
smaller total violation; or both are feasible and :math:`i` Pareto-dominates :math:`j`.

The state is a ``NamedTuple`` of numpy arrays plus a JAX PRNG key: ``ask`` is a pure function
of the state (asking twice gives the same offspring), ``tell`` returns a new state with a new
key. The population is small (tens to hundreds), so numpy on the host is the right tool; the
expensive part, evaluating designs, is the caller's vmapped JAX call.

References:
    K. Deb, A. Pratap, S. Agarwal, T. Meyarivan, "A fast and elitist multiobjective genetic
    algorithm: NSGA-II", IEEE TEC 6(2):182-197, 2002 (fast non-dominated sort, crowding
    distance, crowded tournament; :math:`\eta_c = \eta_m = 20`, :math:`p_c = 0.9`,
    :math:`p_m = 1/d`, section V).
    K. Deb, R. B. Agrawal, "Simulated binary crossover for continuous search space",
    Complex Systems 9:115-148, 1995 (SBX); K. Deb, M. Goyal, "A combined genetic adaptive
    search (GeneAS) for engineering design", 1996 (polynomial mutation). The bounded variants
    follow the authors' reference code (nsga2-v1.1.6, ``realcross`` / ``real_mutate_ind``).
    K. Deb, "An efficient constraint handling method for genetic algorithms", CMAME
    186:311-338, 2000 (constraint-domination).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

__all__ = [
    "NSGA2State",
    "NSGA2",
    "nsga2",
    "run_nsga2",
    "constrained_dominance",
    "fast_non_dominated_sort",
    "crowding_distance",
]

_EPS = 1e-14  # parents closer than this in a coordinate are copied (reference code's EPS)


class NSGA2State(NamedTuple):
    """Parents of the current generation (numpy arrays, ``pop_size`` rows once told).

    Attributes:
        x: ``(pop_size, d)`` parents in the unit cube.
        objectives: ``(pop_size, m)`` minimised objectives of the parents.
        violation: ``(pop_size,)`` total constraint violation, 0 when feasible.
        rank: ``(pop_size,)`` front index under constraint-domination (0 = best).
        crowding: ``(pop_size,)`` crowding distance within the front (inf at its ends).
        generation: number of ``tell`` calls so far (0: ``ask`` returns a uniform sample).
        key: JAX PRNG key of the next ``ask``.
    """

    x: np.ndarray
    objectives: np.ndarray
    violation: np.ndarray
    rank: np.ndarray
    crowding: np.ndarray
    generation: int
    key: jax.Array


class NSGA2(NamedTuple):
    """The optimiser as three pure functions (optax / jax-md style)."""

    init: Callable[[jax.Array], NSGA2State]
    ask: Callable[[NSGA2State], np.ndarray]
    tell: Callable[..., NSGA2State]


# ---------------------------------------------------------------------------------------
# sorting
# ---------------------------------------------------------------------------------------


def _clean(objectives_min, violation) -> tuple[np.ndarray, np.ndarray]:
    """float64 copies; rows with a non-finite objective become maximally infeasible."""
    f = np.array(objectives_min, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"objectives must have shape (n, m), got {f.shape}")
    n = f.shape[0]
    cv = np.zeros(n) if violation is None else np.array(violation, dtype=np.float64).reshape(-1)
    if cv.shape != (n,):
        raise ValueError(f"violation must have shape ({n},), got {cv.shape}")
    if np.any(np.isnan(cv)) or np.any(cv < 0):
        raise ValueError("violation must be >= 0 (0 = feasible) and not NaN")
    bad = ~np.all(np.isfinite(f), axis=1)
    if bad.any():
        cv[bad] = np.inf
        finite = f[np.isfinite(f)]
        f[~np.isfinite(f)] = (finite.max() + 1.0) if finite.size else 0.0
    return f, cv


def constrained_dominance(objectives_min, violation=None) -> np.ndarray:
    """Matrix ``D[i, j]``: row ``i`` constraint-dominates row ``j`` (Deb's rules).

    .. math::

        i \\prec j \\iff (v_i = 0 < v_j) \\lor (0 < v_i < v_j) \\lor
        (v_i = v_j = 0 \\land f_i \\le f_j \\land f_i \\ne f_j)

    Args:
        objectives_min: ``(n, m)`` minimised objectives.
        violation: ``(n,)`` total constraint violation (>= 0, 0 feasible); ``None``: all
            feasible.

    Returns:
        ``(n, n)`` boolean matrix.
    """
    f, cv = _clean(objectives_min, violation)
    le = np.all(f[:, None, :] <= f[None, :, :], axis=-1)
    lt = np.any(f[:, None, :] < f[None, :, :], axis=-1)
    feas = cv <= 0.0
    fi, fj = feas[:, None], feas[None, :]
    return (fi & ~fj) | (~fi & ~fj & (cv[:, None] < cv[None, :])) | (fi & fj & le & lt)


def fast_non_dominated_sort(objectives_min, violation=None) -> np.ndarray:
    """Front index of every row under constraint-domination (0 = non-dominated).

    Deb et al. (2002) section III-A: count the rows dominating each row, take the rows with
    count 0 as the first front, remove them and repeat. O(m n^2).

    Args:
        objectives_min: ``(n, m)`` minimised objectives.
        violation: ``(n,)`` constraint violation or ``None``.

    Returns:
        ``(n,)`` int64 ranks.

    Examples:
        >>> fast_non_dominated_sort([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [2.0, 2.0]]).tolist()
        [0, 0, 1, 2]
    """
    dom = constrained_dominance(objectives_min, violation)
    n = dom.shape[0]
    count = dom.sum(axis=0)
    rank = np.full(n, -1, dtype=np.int64)
    left = np.ones(n, dtype=bool)
    r = 0
    while left.any():
        front = left & (count == 0)
        rank[front] = r
        left &= ~front
        count = count - dom[front].sum(axis=0)
        r += 1
    return rank


def crowding_distance(objectives_min, rank) -> np.ndarray:
    """Crowding distance of every row within its front (Deb et al. 2002, section III-B).

    .. math::

        d_i = \\sum_k \\frac{f_k^{(i+1)} - f_k^{(i-1)}}{f_k^{\\max} - f_k^{\\min}}

    over the front sorted by objective ``k``; the two ends of each objective get ``inf``.
    An objective that is constant on the front adds nothing.

    Args:
        objectives_min: ``(n, m)`` objectives.
        rank: ``(n,)`` front index of each row.

    Returns:
        ``(n,)`` float64 distances.
    """
    f, _ = _clean(objectives_min, None)
    rank = np.asarray(rank).reshape(-1)
    d = np.zeros(f.shape[0])
    for r in np.unique(rank):
        idx = np.flatnonzero(rank == r)
        if idx.size <= 2:
            d[idx] = np.inf
            continue
        for k in range(f.shape[1]):
            order = idx[np.argsort(f[idx, k], kind="stable")]
            fk = f[order, k]
            span = fk[-1] - fk[0]
            d[order[0]] = d[order[-1]] = np.inf
            if span > 0:
                d[order[1:-1]] += (fk[2:] - fk[:-2]) / span
    return d


def _select(f, cv, n_keep):
    """Indices of the ``n_keep`` best rows: whole fronts, the last one cut by crowding."""
    rank = fast_non_dominated_sort(f, cv)
    crowd = crowding_distance(f, rank)
    order = np.lexsort((-crowd, rank))  # rank ascending, then crowding descending (stable)
    keep = order[:n_keep]
    # crowding is recomputed on the survivors (the reference code keeps the merged values
    # for the cut front; recomputing is the common variant, e.g. pymoo)
    return keep, rank[keep]


# ---------------------------------------------------------------------------------------
# variation operators (bounded to [0, 1])
# ---------------------------------------------------------------------------------------


def _sbx(p1, p2, rng, eta, prob_cross):
    """Bounded simulated binary crossover of paired parents ``(k, d)`` -> two children."""
    k, d = p1.shape
    do_pair = rng.random(k) <= prob_cross
    do_var = (rng.random((k, d)) <= 0.5) & do_pair[:, None]
    do_var &= np.abs(p1 - p2) > _EPS
    y1, y2 = np.minimum(p1, p2), np.maximum(p1, p2)
    dy = np.where(do_var, y2 - y1, 1.0)
    u = rng.random((k, d))
    e = 1.0 / (eta + 1.0)

    def betaq(beta):
        alpha = 2.0 - beta ** (-(eta + 1.0))
        return np.where(
            u <= 1.0 / alpha,
            (u * alpha) ** e,
            (1.0 / np.maximum(2.0 - u * alpha, 1e-300)) ** e,
        )

    c1 = 0.5 * ((y1 + y2) - betaq(1.0 + 2.0 * y1 / dy) * dy)  # lower bound 0
    c2 = 0.5 * ((y1 + y2) + betaq(1.0 + 2.0 * (1.0 - y2) / dy) * dy)  # upper bound 1
    c1, c2 = np.clip(c1, 0.0, 1.0), np.clip(c2, 0.0, 1.0)
    swap = rng.random((k, d)) <= 0.5
    ch1 = np.where(do_var, np.where(swap, c2, c1), p1)
    ch2 = np.where(do_var, np.where(swap, c1, c2), p2)
    return ch1, ch2


def _poly_mutation(x, rng, eta, prob_mut):
    """Bounded polynomial mutation of ``x`` ``(k, d)`` in the unit cube."""
    mut = rng.random(x.shape) <= prob_mut
    u = rng.random(x.shape)
    p = 1.0 / (eta + 1.0)
    lo_side = u <= 0.5
    d1, d2 = x, 1.0 - x  # distances to the bounds (the range is 1)
    val_lo = 2.0 * u + (1.0 - 2.0 * u) * (1.0 - d1) ** (eta + 1.0)
    val_hi = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * (1.0 - d2) ** (eta + 1.0)
    dq = np.where(lo_side, val_lo**p - 1.0, 1.0 - val_hi**p)
    return np.clip(np.where(mut, x + dq, x), 0.0, 1.0)


def _rng(key) -> np.random.Generator:
    # one fixed-shape JAX call per generation (no recompiles), then numpy
    return np.random.default_rng(np.asarray(jax.random.bits(key, (4,), dtype=np.uint32)))


# ---------------------------------------------------------------------------------------
# the optimiser
# ---------------------------------------------------------------------------------------


def nsga2(
    dim: int,
    n_obj: int,
    *,
    pop_size: int = 40,
    crossover_prob: float = 0.9,
    eta_crossover: float = 20.0,
    eta_mutation: float = 20.0,
    mutation_prob: float | None = None,
) -> NSGA2:
    """Build NSGA-II for ``n_obj`` minimised objectives over ``[0, 1]^dim``.

    Args:
        dim: number of decision variables (e.g. ``space.dim``).
        n_obj: number of objectives (all minimised).
        pop_size: parents and offspring per generation (fixed); even sizes waste nothing.
        crossover_prob: probability that a parent pair is recombined (Deb et al.: 0.9).
        eta_crossover: SBX distribution index (Deb et al.: 20; larger = children closer to
            their parents).
        eta_mutation: polynomial-mutation distribution index (Deb et al.: 20).
        mutation_prob: per-variable mutation probability; default ``1 / dim``.

    Returns:
        :class:`NSGA2` ``(init, ask, tell)``:

        * ``init(key) -> NSGA2State`` (generation 0, no parents yet);
        * ``ask(state) -> x`` ``(pop_size, dim)`` in ``[0, 1]``: a uniform sample at
          generation 0, offspring afterwards; deterministic given ``state.key``;
        * ``tell(state, x, objectives_min, *, violation=None, feasible=None) -> NSGA2State``:
          ``x`` ``(n, dim)`` are the points *as evaluated* (snapped ones if the caller
          snapped), ``objectives_min`` ``(n, n_obj)``; give either ``violation`` ``(n,)``
          (>= 0, 0 feasible, smaller is better) or ``feasible`` ``(n,)`` bool (every
          infeasible point then counts as violation 1), or neither (all feasible). Rows with
          a NaN/inf objective count as infeasible with infinite violation. The first
          ``tell`` needs at least ``pop_size`` points.

    Raises:
        ValueError: for a non-positive size or probability out of range.

    Examples:
        >>> import jax, numpy as np
        >>> opt = nsga2(2, 2, pop_size=8)
        >>> s = opt.init(jax.random.PRNGKey(0))
        >>> x = opt.ask(s)
        >>> s = opt.tell(s, x, np.stack([x[:, 0], 1.0 - x[:, 0] + x[:, 1]], axis=1))
        >>> opt.ask(s).shape, s.generation
        ((8, 2), 1)

    References:
        Deb, Pratap, Agarwal, Meyarivan, IEEE TEC 6(2), 2002.
    """
    dim, n_obj, pop_size = int(dim), int(n_obj), int(pop_size)
    if dim < 1 or n_obj < 1:
        raise ValueError(f"nsga2: need dim >= 1 and n_obj >= 1, got dim={dim}, n_obj={n_obj}")
    if pop_size < 4:
        raise ValueError(
            f"nsga2: pop_size must be >= 4 (tournaments need a choice), got {pop_size}"
        )
    pm = 1.0 / dim if mutation_prob is None else float(mutation_prob)
    for name, v in (("crossover_prob", crossover_prob), ("mutation_prob", pm)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"nsga2: {name} must be in [0, 1], got {v}")
    if eta_crossover < 0 or eta_mutation < 0:
        raise ValueError("nsga2: distribution indices must be >= 0 (typical 15-20)")

    def init(key) -> NSGA2State:
        return NSGA2State(
            x=np.zeros((0, dim)),
            objectives=np.zeros((0, n_obj)),
            violation=np.zeros(0),
            rank=np.zeros(0, dtype=np.int64),
            crowding=np.zeros(0),
            generation=0,
            key=key,
        )

    def ask(state: NSGA2State) -> np.ndarray:
        rng = _rng(state.key)
        if state.generation == 0:
            return rng.random((pop_size, dim))
        n = state.x.shape[0]
        n_pairs = (pop_size + 1) // 2
        # binary tournaments on the crowded-comparison order
        a = rng.integers(0, n, size=(2 * n_pairs,))
        b = rng.integers(0, n, size=(2 * n_pairs,))
        ra, rb = state.rank[a], state.rank[b]
        ca, cb = state.crowding[a], state.crowding[b]
        a_wins = (ra < rb) | ((ra == rb) & (ca > cb))
        tie = (ra == rb) & (ca == cb)
        a_wins = np.where(tie, rng.random(2 * n_pairs) < 0.5, a_wins)
        parents = np.where(a_wins, a, b)
        p1, p2 = state.x[parents[:n_pairs]], state.x[parents[n_pairs:]]
        c1, c2 = _sbx(p1, p2, rng, eta_crossover, crossover_prob)
        kids = np.concatenate([c1, c2], axis=0)[:pop_size]
        return _poly_mutation(kids, rng, eta_mutation, pm)

    def tell(state: NSGA2State, x, objectives_min, *, violation=None, feasible=None):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(f"tell: x must have shape (n, {dim}), got {x.shape}")
        if np.any(np.isnan(x)) or np.any(x < -1e-9) or np.any(x > 1 + 1e-9):
            raise ValueError("tell: x must lie in the unit cube (encode with space.to_unit)")
        x = np.clip(x, 0.0, 1.0)
        f = np.asarray(objectives_min, dtype=np.float64)
        if f.shape != (x.shape[0], n_obj):
            raise ValueError(
                f"tell: objectives must have shape ({x.shape[0]}, {n_obj}), got {f.shape}"
            )
        if violation is not None and feasible is not None:
            raise ValueError("tell: pass either violation= or feasible=, not both")
        if feasible is not None:
            fz = np.asarray(feasible).reshape(-1)
            if fz.dtype != bool:
                raise ValueError(
                    "tell: feasible must be a bool mask; pass a numeric violation as violation="
                )
            violation = np.where(fz, 0.0, 1.0)
        _, cv = _clean(f, violation)
        if state.generation == 0 and x.shape[0] < pop_size:
            raise ValueError(
                f"tell: the first generation needs at least pop_size={pop_size} points, "
                f"got {x.shape[0]}"
            )
        all_x = np.concatenate([state.x, x], axis=0)
        all_f = np.concatenate([state.objectives, f], axis=0)
        all_cv = np.concatenate([state.violation, cv], axis=0)
        keep, _ = _select(all_f, all_cv, pop_size)
        nx, nf, ncv = all_x[keep], all_f[keep], all_cv[keep]
        rank = fast_non_dominated_sort(nf, ncv)
        return NSGA2State(
            x=nx,
            objectives=nf,
            violation=ncv,
            rank=rank,
            crowding=crowding_distance(nf, rank),
            generation=state.generation + 1,
            key=jax.random.split(state.key)[0],
        )

    return NSGA2(init=init, ask=ask, tell=tell)


def run_nsga2(
    fun: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]],
    optimizer: NSGA2,
    key,
    *,
    generations: int,
    snap: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[NSGA2State, dict[str, np.ndarray]]:
    """Host loop: ``generations`` rounds of ask -> (snap) -> evaluate -> tell.

    Args:
        fun: ``fun(x (n, d)) -> (objectives_min (n, m), violation (n,) or None)``.
        optimizer: from :func:`nsga2`.
        key: JAX PRNG key.
        generations: number of evaluated generations (the first one is the uniform sample).
        snap: optional map of unit-cube points to the legal points actually evaluated.

    Returns:
        ``(final_state, archive)`` with every evaluated point: ``archive["x"]`` ``(N, d)``,
        ``"objectives"`` ``(N, m)``, ``"violation"`` ``(N,)``, ``"generation"`` ``(N,)``.
    """
    state = optimizer.init(key)
    xs, fs, vs, gs = [], [], [], []
    for g in range(int(generations)):
        x = optimizer.ask(state)
        if snap is not None:
            x = np.asarray(snap(x), dtype=np.float64)
        f, v = fun(x)
        f = np.asarray(f, dtype=np.float64)
        v = np.zeros(x.shape[0]) if v is None else np.asarray(v, dtype=np.float64)
        state = optimizer.tell(state, x, f, violation=v)
        xs.append(x)
        fs.append(f)
        vs.append(v)
        gs.append(np.full(x.shape[0], g))
    archive = dict(
        x=np.concatenate(xs),
        objectives=np.concatenate(fs),
        violation=np.concatenate(vs),
        generation=np.concatenate(gs),
    )
    return state, archive
