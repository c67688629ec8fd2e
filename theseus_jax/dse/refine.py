r"""Gradient refinement of wafer-scale designs through F0 (BRIEF section 5, "gradient refinement").

Given a batch of good designs (e.g. the best ones found by a sweep, NSGA-II or MFBO), the
continuous knobs of each design (the free ``"interval"`` parameters of the
:class:`~theseus_jax.space.DesignSpace`: clock, D2D bandwidth ratio, DRAM port bandwidth and
bandwidth density, spare-core fraction) are optimised with optax, the discrete knobs held
fixed, in the space's unit encoding :math:`u \in [0, 1]^k` (so that the step sizes of a GHz
clock and a 0-10 % spare fraction are comparable). Per design the loss is

.. math::

    L(u) = \log J(x(u), \pi_0) + \lambda \sum_c \max(0,\ g_c(x(u)) + \epsilon)^2

with :math:`J` the F0 objective (step time, or energy per token for ``"energy"`` /
``"perf_per_watt"``) under the design's starting best mapping :math:`\pi_0` (fixed during the
descent), and :math:`g_c = \log(\text{need}_c / \text{limit}_c)` smooth log-margins of the
constraints the continuous knobs move (see :func:`constraint_margins`):

* ``power``: wafer power over :func:`~theseus_jax.cost.physical.power_density_limit_w`
  (the wafer envelope or the cooling limit; ``POWER`` / ``POWER_DENSITY``);
* ``d2d_shoreline``: inter-reticle bandwidth over the reticle edge's capacity (``D2D_SHORELINE``);
* ``dram_shoreline``: edge-DRAM bandwidth over the wafer perimeter's capacity (``DRAM_SHORELINE``);
* ``yield``: :math:`\log Y_\min - \log \tilde Y_w`, with the stitched wafer yield relaxed to a
  continuous spare count, :math:`\tilde Y_r = Q(n f_s + \tfrac12, \lambda)` (the exact model
  floors the spare count, :math:`Q(\lfloor n f_s \rfloor + 1, \lambda)`, which has no
  gradient in :math:`f_s`; ``YIELD``).

After each Adam step the point is projected back onto the box (``clip`` to :math:`[0, 1]`).
:func:`make_refiner` returns a :class:`Refiner` ``(init, step, finalize, ...)``: ``init``
evaluates the starting designs (best mapping per design), ``step`` is one jit-compiled,
vmapped descent step, and
``finalize`` decodes, snaps to the legal grid (``space.snap``), re-checks legality
(``space.is_legal``) and F0 feasibility with the mapping *re-selected* by the full evaluator,
and keeps a refined design only if it is legal, feasible and strictly better than its start.
Because the relaxation and the fixed mapping can mislead, ``finalize`` also tries the points
:math:`u_0 + t (u - u_0)` for ``t`` in ``backtrack`` (one batched evaluation per ``t``) and
keeps the best that passes; otherwise the start is returned unchanged. Refinement therefore never
returns a worse or infeasible design (an infeasible start may become feasible).

Memory capacity (moved slightly by the spare-core fraction) has no smooth margin here: F0
does not expose the SRAM need of a mapping, and the exact re-check catches it.

References:
    BRIEF section 5; optax ``adam`` + ``projections.projection_box`` style projected descent
    (Kingma & Ba, "Adam", ICLR 2015); quadratic exterior penalty (Nocedal & Wright,
    *Numerical Optimization*, 2nd ed., section 17.1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import gammaincc

from .._numerics import safe_div, safe_log
from ..cost import area as _area, yield_model as _ym
from ..cost._records import Metrics
from ..cost.physical import physical_wsc, power_density_limit_w
from ..cost.wafer import wafer_training_step
from ..design._wafer import DramKind, Integration, WaferDesign
from ..mapping._plan import Mapping
from ..metrics._evaluate import _objective, make_evaluator
from ..space import DesignSpace
from ..workload._llm import InferenceWorkload

__all__ = [
    "MARGIN_NAMES",
    "constraint_margins",
    "RefineState",
    "RefineResult",
    "Refiner",
    "make_refiner",
    "refine",
    "continuous_fields",
]

MARGIN_NAMES = ("power", "d2d_shoreline", "dram_shoreline", "yield")
_OBJECTIVES = ("time", "energy", "perf_per_watt")
_INACTIVE = -1.0  # log-margin of a constraint that does not apply (well inside)


def continuous_fields(space: DesignSpace) -> tuple[str, ...]:
    """The free ``"interval"`` parameters of ``space`` (what refinement may move)."""
    return tuple(n for n in space.names if space.spec(n).kind == "interval")


def constraint_margins(design: WaferDesign, tech, metrics: Metrics, phys=None) -> jnp.ndarray:
    """Smooth log-margins ``g`` (``<= 0`` feasible) of the constraints continuous knobs move.

    .. math::

        g_\\mathrm{power} = \\log \\frac{P / n_w}{\\min(P_\\mathrm{wafer}, q_\\max A_\\mathrm{Si})},
        \\quad
        g_\\mathrm{d2d} = \\log \\max_e \\frac{2 n_e b_\\mathrm{d2d}}{\\rho_\\mathrm{d2d} \\ell_e},
        \\quad
        g_\\mathrm{dram} = \\log
            \\frac{2 (R + C) b_\\mathrm{port}}{\\rho_\\mathrm{dram}\\, 2 (W_w + H_w)},
        \\quad
        g_\\mathrm{yield} = \\log Y_\\min - R C \\log Q(n f_s + \\tfrac12, \\lambda)

    (for stitched wafers; an InFO-SoW wafer's yield does not depend on spares and its exact
    :math:`\\log Y_\\min - \\log Y_w` is used). A margin that does not apply (no reticle edge,
    no edge DRAM, no yield floor) is ``-1``. The first three match the exact checks of
    :func:`~theseus_jax.cost.physical.physical_wsc` and the power model (same formulas, no
    tolerance); the stitched yield is a relaxation (see the module docstring).

    Args:
        design: one design (scalar leaves).
        tech: technology constants.
        metrics: F0 :class:`~theseus_jax.metrics.Metrics` of ``design`` under some mapping.
        phys: :func:`~theseus_jax.cost.physical.physical_wsc` of ``design`` if already
            computed.

    Returns:
        ``(4,)`` float32 in the order of ``MARGIN_NAMES``.
    """
    phys = physical_wsc(design, tech) if phys is None else phys
    # power (POWER and POWER_DENSITY share one limit)
    p_wafer = safe_div(metrics.power_w, design.n_wafers)
    g_power = safe_log(safe_div(p_wafer, power_density_limit_w(design, tech)), fill=-30.0)

    # D2D shoreline: both directions of every edge core's link share the reticle edge
    h, w = _area.core_array_dims_m(design, tech)
    infosow = design.integration == Integration.INFO_SOW
    dens = jnp.where(
        infosow,
        tech.d2d_bw_density_infosow_bytes_per_s_m,
        tech.d2d_bw_density_stitched_bytes_per_s_m,
    )
    link = design.d2d_link_bw_bytes_per_s()
    r_row = safe_div(2.0 * design.core_cols * link, dens * w)
    r_col = safe_div(2.0 * design.core_rows * link, dens * h)
    r_d2d = jnp.maximum(
        jnp.where(design.reticle_rows > 1, r_row, 0.0),
        jnp.where(design.reticle_cols > 1, r_col, 0.0),
    )
    g_d2d = jnp.where(r_d2d > 0, safe_log(r_d2d, fill=_INACTIVE), _INACTIVE)

    # edge DRAM shoreline
    need = 2.0 * (design.reticle_rows + design.reticle_cols) * design.dram_port_bw_bytes_per_s
    cap = (
        tech.dram_edge_bw_density_bytes_per_s_m * 2.0 * (phys.wafer_w_used_m + phys.wafer_h_used_m)
    )
    edge = design.dram_kind == DramKind.EDGE
    g_dram = jnp.where(edge, safe_log(safe_div(need, cap), fill=_INACTIVE), _INACTIVE)

    # yield, relaxed: continuous spare count (midpoint of the floor staircase)
    n_cores = design.core_rows * design.core_cols
    p_def = _ym.defect_prob(_area.core_area_m2(design, tech), tech)
    lam = jnp.maximum(n_cores * p_def, jnp.finfo(jnp.float32).tiny)
    q = gammaincc(n_cores * jnp.maximum(design.spare_core_frac, 0.0) + 0.5, lam)
    log_yw = jnp.where(
        infosow,
        safe_log(phys.wafer_yield, fill=-1e4),
        design.reticle_rows * design.reticle_cols * safe_log(q, fill=-1e4),
    )
    g_yield = jnp.where(
        tech.min_wafer_yield <= 0,
        _INACTIVE,
        safe_log(jnp.asarray(tech.min_wafer_yield, jnp.float32), fill=-30.0) - log_yw,
    )
    return jnp.stack([g_power, g_d2d, g_dram, g_yield]).astype(jnp.float32)


class RefineState(NamedTuple):
    """State of a batch refinement (leading axis = design).

    Attributes:
        u: ``(n, k)`` current unit coordinates of the continuous fields.
        u0: ``(n, k)`` starting unit coordinates.
        opt_state: optax state.
        base: the starting designs (discrete fields are taken from here).
        mapping: ``(n,)`` rows of the mapping table: each design's starting best mapping.
        mapping_index: ``(n,)`` their indices in the table.
        objective0: ``(n,)`` starting F0 objective (best mapping, raw units).
        feasible0: ``(n,)`` whether the start is F0-feasible.
        metrics0: F0 :class:`Metrics` of the starts (best mapping).
        count: number of steps taken.
    """

    u: jax.Array
    u0: jax.Array
    opt_state: optax.OptState
    base: WaferDesign
    mapping: Mapping
    mapping_index: jax.Array
    objective0: jax.Array
    feasible0: jax.Array
    metrics0: Metrics
    count: jax.Array


class RefineResult(NamedTuple):
    """Outcome per design (numpy/JAX arrays with leading axis ``n``).

    Attributes:
        designs: the returned designs: refined where ``improved``, else the start.
        objective: their F0 objective (best mapping), raw units (s or J/token).
        objective_start: the starting objective.
        improved: the refined design was legal, feasible and strictly better.
        feasible: the returned design is F0-feasible (equals the start's when not improved).
        legal: the returned design passes ``space.is_legal``.
        step_fraction: the accepted ``t`` of ``u0 + t (u - u0)`` (0 = start kept).
        mapping_index: best mapping of the returned design (re-selected).
        metrics: F0 :class:`Metrics` of the returned designs.
        loss: ``(steps, n)`` loss trace of the descent.
    """

    designs: WaferDesign
    objective: np.ndarray
    objective_start: np.ndarray
    improved: np.ndarray
    feasible: np.ndarray
    legal: np.ndarray
    step_fraction: np.ndarray
    mapping_index: np.ndarray
    metrics: Metrics
    loss: np.ndarray


class Refiner(NamedTuple):
    """The refiner's pure functions.

    Attributes:
        init: ``init(designs) -> RefineState`` (host: evaluates the starts, best mappings).
        step: ``step(state) -> (state, loss (n,))``: one projected Adam step of every design.
        finalize: ``finalize(state, loss_trace=None) -> RefineResult`` (host: snap, re-check,
            backtrack, keep or reject).
        loss: ``loss(u (k,), design, mapping) -> scalar`` for one design (differentiable).
        value_and_grad: jitted, vmapped ``(u (n, k), designs, mappings) -> (loss, grad)``
            (what ``step`` uses).
        terms: jitted, vmapped ``(u, designs, mappings) -> (Metrics, margins (n, 4))`` under
            the fixed mappings (margins as :func:`constraint_margins`).
        decode: ``decode(u (k,), design) -> design`` with the continuous fields set.
        evaluate: the full F0 evaluator (best mapping per design) used by ``init`` and
            ``finalize``.
        fields: the refined fields, in the column order of ``u``.
    """

    init: Callable[[WaferDesign], RefineState]
    step: Callable[[RefineState], tuple[RefineState, jax.Array]]
    finalize: Callable[..., RefineResult]
    loss: Callable[[jax.Array, WaferDesign, Mapping], jax.Array]
    value_and_grad: Callable
    terms: Callable
    decode: Callable[[jax.Array, WaferDesign], WaferDesign]
    evaluate: Callable
    fields: tuple[str, ...]


def _rows(tree, idx):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a)[idx], tree)


def make_refiner(
    workload,
    space: DesignSpace,
    tech,
    *,
    mappings: Mapping,
    mask=None,
    objective: str = "time",
    steps: int = 100,
    learning_rate: float = 0.05,
    penalty: float = 100.0,
    margin: float = 0.01,
    fields: Sequence[str] | None = None,
    backtrack: Sequence[float] = (1.0, 0.5, 0.25, 0.125),
    optimizer: optax.GradientTransformation | None = None,
) -> Refiner:
    """Build a batched gradient refiner of the continuous knobs of wafer-scale designs.

    Args:
        workload: a :class:`~theseus_jax.workload.TrainingWorkload`.
        space: the design space (its free ``interval`` specs are the continuous knobs; its
            grid and constraints are used to snap and re-check).
        tech: technology constants.
        mappings: the mapping table searched by F0 (e.g. ``enumerate_wafer_mappings``).
        mask: optional ``(n_mappings,)`` valid-row mask.
        objective: ``"time"`` (log step time), ``"energy"`` or ``"perf_per_watt"`` (log
            energy per token; tokens/s/W is its inverse).
        steps: descent steps (sets the cosine learning-rate decay of the default optimiser).
        learning_rate: peak Adam step in unit coordinates.
        penalty: weight :math:`\\lambda` of the squared-hinge constraint penalty.
        margin: safety margin :math:`\\epsilon` on the log-margins (0.01 = 1 % headroom).
        fields: continuous fields to move (default :func:`continuous_fields`).
        backtrack: fractions ``t`` of the move tried by ``finalize`` (largest first is not
            required; the best legal, feasible, improving one wins).
        optimizer: an optax transformation replacing the default
            ``adam(cosine_decay_schedule(learning_rate, steps))``.

    Returns:
        :class:`Refiner`.

    Raises:
        ValueError: unknown objective, a field that is not a free interval of the space,
            or no continuous field at all.

    Examples:
        >>> import jax, theseus_jax as tj
        >>> wl, tech = tj.load_training_workload("gpt3-xl"), tj.load_tech("n7")
        >>> space = tj.load_space("theseus_2024")
        >>> maps = tj.enumerate_wafer_mappings(wl, max_reticles=64)
        >>> r = make_refiner(wl, space, tech, mappings=maps, steps=20)   # doctest: +SKIP
        >>> s = r.init(space.sample(jax.random.PRNGKey(0), 4))           # doctest: +SKIP
        >>> for _ in range(20): s, loss = r.step(s)                      # doctest: +SKIP
        >>> r.finalize(s).improved                                       # doctest: +SKIP
    """
    if isinstance(workload, InferenceWorkload):
        raise ValueError(
            "refine: only training workloads are supported (load_training_workload); "
            "inference objectives (latency, ttft) are not refined yet"
        )
    if objective not in _OBJECTIVES:
        raise ValueError(
            f"refine: objective must be one of {_OBJECTIVES} (training workloads), "
            f"got {objective!r}"
        )
    avail = continuous_fields(space)
    fields = tuple(avail if fields is None else fields)
    bad = [f for f in fields if f not in avail]
    if bad:
        raise ValueError(
            f"refine: fields {bad} are not free continuous ('interval') parameters of space "
            f"{space.name!r}; the continuous ones are {list(avail)}"
        )
    if not fields:
        raise ValueError(
            f"refine: space {space.name!r} has no free continuous parameter to refine "
            "(all are discrete or fixed); use a sweep instead"
        )
    if int(steps) < 1:
        raise ValueError(f"refine: steps must be >= 1, got {steps}")
    ts = np.asarray(sorted({float(t) for t in backtrack}), dtype=np.float32)
    if ts.size == 0 or np.any(ts <= 0) or np.any(ts > 1):
        raise ValueError(
            f"refine: backtrack fractions must be in (0, 1] (1 = the refined point), "
            f"got {tuple(backtrack)}"
        )
    specs = [space.spec(f) for f in fields]
    is_log = np.array([s.log for s in specs])
    lo = np.array([s.lo for s in specs], dtype=np.float64)
    hi = np.array([s.hi for s in specs], dtype=np.float64)
    # log bounds only where used (lo may be 0 for a linear interval: no log(0) anywhere)
    llo = np.log(np.where(is_log, lo, 1.0))
    lhi = np.log(np.where(is_log, hi, 1.0))
    j_log = jnp.asarray(is_log)
    j_lo, j_hi = jnp.asarray(lo, jnp.float32), jnp.asarray(hi, jnp.float32)
    j_llo, j_lhi = jnp.asarray(llo, jnp.float32), jnp.asarray(lhi, jnp.float32)

    opt = optimizer
    if opt is None:
        opt = optax.adam(optax.cosine_decay_schedule(float(learning_rate), int(steps)))
    evaluator = make_evaluator(
        workload, mappings=mappings, mask=mask, tech=tech, objective=objective
    )

    def decode(u, design: WaferDesign) -> WaferDesign:
        """Put the continuous fields ``x(u)`` into one design (traced, differentiable)."""
        lin = j_lo + u * (j_hi - j_lo)
        lg = jnp.exp(j_llo + u * (j_lhi - j_llo))
        x = jnp.where(j_log, lg, lin)
        return eqx.tree_at(
            lambda d: tuple(getattr(d, f) for f in fields),
            design,
            tuple(x[i] for i in range(len(fields))),
        )

    def encode(designs: WaferDesign) -> np.ndarray:
        cols = [s.encode(np.asarray(getattr(designs, s.name), np.float64)) for s in specs]
        return np.stack(cols, axis=-1).astype(np.float32)

    def _terms(u, design: WaferDesign, mapping: Mapping):
        d = decode(u, design)
        phys = physical_wsc(d, tech)  # once, shared by the cost model and the margins
        met = wafer_training_step(d, tech, phys, workload, mapping)
        return met, constraint_margins(d, tech, met, phys)

    def loss(u, design: WaferDesign, mapping: Mapping):
        """Penalised log objective of one design under one fixed mapping (scalar)."""
        met, g = _terms(u, design, mapping)
        obj = _objective(met, objective)
        pen = jnp.sum(jnp.square(jnp.maximum(g + margin, 0.0)))
        return safe_log(obj, fill=1e4) + penalty * pen

    def init(designs: WaferDesign) -> RefineState:
        if jnp.ndim(designs.clock_hz) == 0:
            designs = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], designs)
        res = evaluator(designs)
        idx = np.asarray(res.mapping_index)
        u0 = jnp.asarray(encode(designs))
        return RefineState(
            u=u0,
            u0=u0,
            opt_state=opt.init(u0),
            base=designs,
            mapping=_rows(mappings, idx),
            mapping_index=jnp.asarray(idx),
            objective0=_objective(res.metrics, objective),
            feasible0=res.metrics.feasible,
            metrics0=res.metrics,
            count=jnp.zeros((), jnp.int32),
        )

    value_and_grad = jax.jit(jax.vmap(jax.value_and_grad(loss)))
    terms = jax.jit(jax.vmap(_terms))

    @jax.jit
    def _update(grad, opt_state, u):
        updates, opt_state = opt.update(grad, opt_state, u)
        return jnp.clip(optax.apply_updates(u, updates), 0.0, 1.0), opt_state  # box projection

    def step(state: RefineState):
        val, grad = value_and_grad(state.u, state.base, state.mapping)
        u, opt_state = _update(grad, state.opt_state, state.u)
        return state._replace(u=u, opt_state=opt_state, count=state.count + 1), val

    decode_batch = jax.jit(jax.vmap(decode))

    def finalize(state: RefineState, loss_trace=None) -> RefineResult:
        n = state.u.shape[0]
        u0, u1 = jnp.asarray(state.u0), jnp.asarray(state.u)
        cands, legal, mets, idxs = [], [], [], []
        for t in ts:  # one batch of n per fraction: the evaluator compiled by init is reused
            c = space.snap(decode_batch(u0 + float(t) * (u1 - u0), state.base))
            r = evaluator(c)
            cands.append(c)
            legal.append(space.is_legal(c))
            mets.append(r.metrics)
            idxs.append(np.asarray(r.mapping_index))
        stack = lambda *xs: jnp.stack([jnp.asarray(x) for x in xs])  # noqa: E731
        cands = jax.tree_util.tree_map(stack, *cands)  # leaves (k, n)
        mets = jax.tree_util.tree_map(stack, *mets)
        legal, idxs = np.stack(legal), np.stack(idxs)
        obj = np.asarray(_objective(mets, objective), np.float64)  # (k, n)
        ok = legal & np.asarray(mets.feasible)
        obj0 = np.asarray(state.objective0, np.float64)
        feas0 = np.asarray(state.feasible0)
        better = ok & (~feas0[None] | (obj < obj0[None]))
        score = np.where(better, obj, np.inf)
        best = np.argmin(score, axis=0)
        cols = np.arange(n)
        improved = np.isfinite(score[best, cols])

        def pick(c, s):
            cond = jnp.reshape(jnp.asarray(improved), (n,) + (1,) * (jnp.ndim(s) - 1))
            return jnp.where(cond, jnp.asarray(c)[best, cols], s)

        designs = jax.tree_util.tree_map(pick, cands, state.base)
        metrics = jax.tree_util.tree_map(pick, mets, state.metrics0)
        return RefineResult(
            designs=designs,
            objective=np.where(improved, obj[best, cols], obj0),
            objective_start=obj0,
            improved=improved,
            feasible=np.asarray(metrics.feasible),
            legal=np.where(improved, legal[best, cols], space.is_legal(state.base)),
            step_fraction=np.where(improved, ts[best], 0.0),
            mapping_index=np.where(improved, idxs[best, cols], np.asarray(state.mapping_index)),
            metrics=metrics,
            loss=np.zeros((0, n)) if loss_trace is None else np.asarray(loss_trace),
        )

    return Refiner(
        init=init,
        step=step,
        finalize=finalize,
        loss=loss,
        value_and_grad=value_and_grad,
        terms=terms,
        decode=decode,
        evaluate=evaluator,
        fields=fields,
    )


def refine(
    designs: WaferDesign,
    workload,
    space: DesignSpace,
    tech,
    *,
    mappings: Mapping,
    steps: int = 100,
    **kwargs,
) -> RefineResult:
    """Refine the continuous knobs of a batch of designs (host loop over :func:`make_refiner`).

    Args:
        designs: a batch of (legal) designs, e.g. the best of a sweep.
        workload, space, tech, mappings: as for :func:`make_refiner`.
        steps: descent steps.
        **kwargs: the other options of :func:`make_refiner` (``objective``,
            ``learning_rate``, ``penalty``, ``margin``, ``fields``, ``backtrack``, ...).

    Returns:
        :class:`RefineResult`: per design the refined design if it is legal, F0-feasible and
        strictly better than the start, else the start.
    """
    r = make_refiner(workload, space, tech, mappings=mappings, steps=steps, **kwargs)
    state = r.init(designs)
    trace = []
    for _ in range(int(steps)):
        state, val = r.step(state)
        trace.append(val)
    return r.finalize(state, jnp.stack(trace))
