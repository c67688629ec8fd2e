"""Uncertainty of the technology constants: ranges, sampling, and rank sensitivity.

Many constants in ``configs/tech/*.json`` are secondary ([S]) or unverified ([U]) numbers.
Their files give each such field a ``"range": [lo, hi]`` (and optionally a ``"dist"``);
this module turns the ranges into a batch of :class:`~theseus_jax.tech.Tech` draws, so a
headline number can be reported as a median with a 5-95 % interval,

.. math::

    y_i = f(\\text{design}, \\text{tech}_i), \\quad i = 1..n, \\qquad
    \\text{report } \\operatorname{median}(y), \\; [q_{0.05}(y),\\, q_{0.95}(y)],

and its spread attributed to the constants by Spearman rank correlation.

Examples:
    >>> import jax
    >>> from theseus_jax.io import load_tech
    >>> tech, ranges = load_tech("n7"), load_tech_ranges("n7")
    >>> techs = sample_techs(tech, ranges, jax.random.key(0), 256)
    >>> techs.mac_energy_j.shape
    (256,)
    >>> e = jax.vmap(lambda t: t.mac_energy_j * 2.0)(techs)   # one design, 256 technologies
    >>> bool((e >= 2 * ranges.lo[ranges.names.index("mac_energy_j")]).all())
    True
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._tech import TECH_FIELDS, Tech

__all__ = [
    "TechRanges",
    "sample_techs",
    "draws_table",
    "rank_sensitivity",
]

_TECH_NAMES = tuple(f for f, _, _ in TECH_FIELDS)


class TechRanges(eqx.Module):
    """Plausible intervals of the uncertain technology constants, in SI units.

    Field ``names[j]`` is drawn from ``[lo[j], hi[j]]``: uniformly if ``log[j]`` is False,
    log-uniformly otherwise,

    .. math::

        x = lo + u\\,(hi - lo) \\quad\\text{or}\\quad
        x = \\exp\\big(\\ln lo + u\\,(\\ln hi - \\ln lo)\\big), \\qquad u \\sim U(0, 1),

    so a log-uniform draw has median :math:`\\sqrt{lo \\cdot hi}` (the geometric mean).
    Fields not named keep their nominal value.

    Attributes:
        names: the ranged :data:`TECH_FIELDS` names, in table order (static), length k.
        lo: lower bounds, shape ``(k,)``, float32, each in its field's SI unit.
        hi: upper bounds, shape ``(k,)``, float32, ``hi > lo``.
        log: per field, True for log-uniform sampling (static), length k.

    References:
        ``configs/tech/*.json`` (``"range"``, ``"note"``); ``shared/reference/hardware.md``.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    lo: jnp.ndarray
    hi: jnp.ndarray
    log: tuple[bool, ...] = eqx.field(static=True)

    def __init__(self, names, lo, hi, log):
        names, log = tuple(str(n) for n in names), tuple(bool(b) for b in log)
        lo_np = np.asarray(lo, dtype=np.float64).reshape(-1)
        hi_np = np.asarray(hi, dtype=np.float64).reshape(-1)
        k = len(names)
        if not (lo_np.shape == hi_np.shape == (k,) and len(log) == k):
            raise ValueError(
                f"TechRanges: names ({k}), lo {lo_np.shape}, hi {hi_np.shape} and log "
                f"({len(log)}) must all have length k = {k}"
            )
        unknown = [n for n in names if n not in _TECH_NAMES]
        if unknown or len(set(names)) != k:
            raise ValueError(
                f"TechRanges: names must be distinct Tech fields; unknown {unknown}, "
                f"duplicates {sorted({n for n in names if names.count(n) > 1})}"
            )
        for j, n in enumerate(names):
            a, b = lo_np[j], hi_np[j]
            if not (math.isfinite(a) and math.isfinite(b) and 0 <= a < b):
                raise ValueError(f"TechRanges: {n}: need finite 0 <= lo < hi, got [{a}, {b}]")
            if log[j] and not a > 0:
                raise ValueError(f"TechRanges: {n}: log-uniform needs lo > 0, got {a}")
        self.names = names
        self.lo = jnp.asarray(lo_np, dtype=jnp.float32)
        self.hi = jnp.asarray(hi_np, dtype=jnp.float32)
        self.log = log


def sample_techs(tech: Tech, ranges: TechRanges, key: jax.Array, n: int) -> Tech:
    """Draw ``n`` technologies: ranged fields independently, the others at nominal.

    For ranged field j, :math:`x_{ij} = F_j^{-1}(u_{ij})` with :math:`u_{ij} \\sim U(0, 1)`
    i.i.d. (uniform or log-uniform between ``lo[j]`` and ``hi[j]``, see
    :class:`TechRanges`); the draw is clipped to ``[lo, hi]`` against float32 rounding.
    Ranged fields ignore their nominal value in ``tech``; every other field is broadcast.

    Pure and jit-friendly for a static ``n`` (e.g. ``jax.jit(sample_techs,
    static_argnums=3)``); the same ``key`` gives the same draws.

    Args:
        tech: nominal technology, scalar leaves (one technology, not a batch).
        ranges: which fields to draw, and from where (:func:`load_tech_ranges`).
        key: a ``jax.random`` key.
        n: number of draws (static).

    Returns:
        :class:`Tech` whose every leaf has shape ``(n,)``, float32, SI; pass it to
        ``jax.vmap(f)(techs)`` to evaluate ``f`` once per draw.

    Raises:
        ValueError: ``n < 1`` or ``tech`` already batched.

    Examples:
        >>> import jax
        >>> from theseus_jax.io import load_tech
        >>> t = sample_techs(load_tech("n7"), load_tech_ranges("n7"), jax.random.key(1), 4)
        >>> t.d0_per_m2.shape, t.reticle_w_m.shape
        ((4,), (4,))
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"sample_techs: n must be a positive int (static), got {n!r}")
    shapes = {f: jnp.shape(getattr(tech, f)) for f in _TECH_NAMES}
    batched = sorted(f for f, s in shapes.items() if s != ())
    if batched:
        raise ValueError(
            f"sample_techs: tech must be one technology with scalar leaves; fields {batched} "
            "have a batch axis. Pass the nominal Tech (e.g. load_tech('n7'))."
        )
    k = len(ranges.names)
    u = jax.random.uniform(key, (n, k), dtype=jnp.float32)
    values = {
        f: jnp.broadcast_to(jnp.asarray(getattr(tech, f), jnp.float32), (n,)) for f in _TECH_NAMES
    }
    for j, name in enumerate(ranges.names):
        lo, hi = ranges.lo[j], ranges.hi[j]
        if ranges.log[j]:  # static branch: lo > 0 guaranteed by TechRanges
            x = jnp.exp(jnp.log(lo) + u[:, j] * (jnp.log(hi) - jnp.log(lo)))
        else:
            x = lo + u[:, j] * (hi - lo)
        values[name] = jnp.clip(x, lo, hi)
    return Tech(**values)


def draws_table(techs: Tech, ranges: TechRanges) -> dict[str, np.ndarray]:
    """The drawn constants as ``{field: np.ndarray (n,)}`` (SI), for reports and CSV columns.

    Args:
        techs: output of :func:`sample_techs`, leaves of shape ``(n,)``.
        ranges: the :class:`TechRanges` it was drawn with; only its fields are returned.

    Returns:
        ``{name: float64 array (n,)}`` in ``ranges.names`` order; the input to
        :func:`rank_sensitivity`.
    """
    return {n: np.asarray(getattr(techs, n), dtype=np.float64) for n in ranges.names}


def rank_sensitivity(draws: dict[str, np.ndarray], y) -> list[tuple[str, float]]:
    """Spearman rank correlation of ``y`` with each drawn constant, largest ``|rho|`` first.

    .. math::

        \\rho_j = \\operatorname{corr}\\big(\\operatorname{rank}(x_j), \\operatorname{rank}(y)\\big)

    With independent draws (as :func:`sample_techs` makes), :math:`\\rho_j^2` approximates
    the share of the rank variance of ``y`` that constant j explains (a first-order,
    monotone sensitivity index); the shares sum to about 1 when ``y`` is additive in
    monotone transforms of the constants, and to less when they interact.

    NaN-safe: draws where ``y`` (or ``x_j``) is not finite are ignored; a constant ``y`` or
    ``x_j``, or fewer than 3 usable draws, gives ``rho = 0``.

    Args:
        draws: ``{name: array (n,)}``, e.g. :func:`draws_table`.
        y: metric per draw, shape ``(n,)``.

    Returns:
        ``[(name, rho), ...]`` sorted by ``|rho|`` descending (ties keep ``draws`` order).

    Raises:
        ValueError: a draw whose shape is not ``(n,)``.

    Examples:
        >>> import numpy as np
        >>> x = np.arange(10.0)
        >>> rho = rank_sensitivity({"a": np.ones(10), "b": x}, 2 * x + 1)
        >>> [(name, round(r, 6)) for name, r in rho]
        [('b', 1.0), ('a', 0.0)]

    References:
        Saltelli et al., *Global Sensitivity Analysis: The Primer* (2008), ch. 1 (rank
        correlation as a screening measure for monotone models).
    """
    from scipy.stats import spearmanr  # lazy: keeps ``import theseus_jax`` light

    yv = np.asarray(y, dtype=np.float64).reshape(-1)
    n = yv.shape[0]
    out: list[tuple[str, float]] = []
    for name, x in draws.items():
        xv = np.asarray(x, dtype=np.float64)
        if xv.shape != (n,):
            raise ValueError(
                f"rank_sensitivity: draws[{name!r}] has shape {xv.shape}, y has ({n},); "
                "pass one value per draw"
            )
        ok = np.isfinite(yv) & np.isfinite(xv)
        xs, ys = xv[ok], yv[ok]
        rho = 0.0
        if xs.size >= 3 and np.ptp(xs) > 0 and np.ptp(ys) > 0:
            r = float(spearmanr(xs, ys)[0])
            rho = r if math.isfinite(r) else 0.0
        out.append((name, rho))
    return sorted(out, key=lambda t: -abs(t[1]))
