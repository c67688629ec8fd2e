"""Die-yield models and core-level redundancy (BRIEF section 2, "yield").

With :math:`x = A D_0` (critical area times defect density):

.. math::

    Y_\\mathrm{Poisson} = e^{-x}, \\qquad
    Y_\\mathrm{Murphy} = \\left(\\frac{1 - e^{-x}}{x}\\right)^2, \\qquad
    Y_\\mathrm{NB} = (1 + x/\\alpha)^{-\\alpha}.

A wafer-scale design applies the model to one *core* (tiny ``x``), then asks whether each
reticle has no more defective cores than spares. Defective cores in a reticle of ``n`` cores
are counted as Poisson with mean :math:`\\lambda = n (1 - Y_\\mathrm{core})` (the binomial
limit for small per-core defect probability), so

.. math:: P(\\#\\mathrm{bad} \\le s) = Q(\\lfloor s \\rfloor + 1, \\lambda)

with :math:`Q` the regularised upper incomplete gamma function (``gammaincc``). A stitched
wafer needs every reticle to pass (:math:`Y_w = Y_r^{R C}`); an InFO-SoW wafer assembles
known-good dies, so only the bonding yield counts (:math:`Y_w = y_a^{R C}`).

Defect probabilities :math:`1 - Y` are computed directly (``expm1``/``log1p`` and a series
for Murphy) because in float32 ``1 - Y`` of a 0.04 mm^2 core would be lost to rounding.

References:
    hardware.md section 1.6 (formulas, D0 = 0.09-0.1 /cm^2 at N7/N5, Cerebras spares);
    Murphy, Proc. IEEE 52 (1964); Stapper, IBM J. Res. Dev. 1983 (negative binomial).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaincc

from .._numerics import safe_div

__all__ = [
    "POISSON",
    "MURPHY",
    "NEG_BINOMIAL",
    "poisson_defect_prob",
    "murphy_defect_prob",
    "neg_binomial_defect_prob",
    "defect_prob",
    "die_yield",
    "redundancy_yield",
]

#: Codes of ``Tech.yield_model``.
MURPHY, NEG_BINOMIAL, POISSON = 0, 1, 2

_SERIES_X = 0.1  # below this, Murphy's 1 - f uses its Taylor series (cancellation otherwise)


def poisson_defect_prob(x):
    """:math:`1 - e^{-x}` for :math:`x = A D_0 \\ge 0`."""
    return -jnp.expm1(-x)


def murphy_defect_prob(x):
    """:math:`1 - ((1 - e^{-x})/x)^2`, accurate for tiny ``x`` and finite gradient at 0.

    With :math:`f = (1 - e^{-x})/x`, :math:`1 - f^2 = (1 - f)(1 + f)` and
    :math:`1 - f = \\sum_{k \\ge 1} (-1)^{k+1} x^k / (k + 1)!` for small ``x``.

    Examples:
        >>> round(float(1.0 - murphy_defect_prob(1.0)), 4)   # ((1 - 1/e) / 1)^2
        0.3996
    """
    big = x >= _SERIES_X
    xs = jnp.where(big, x, jnp.ones_like(x))
    f_big = -jnp.expm1(-xs) / xs
    one_minus_f_big = (xs + jnp.expm1(-xs)) / xs
    xt = jnp.where(big, jnp.zeros_like(x), x)
    # 1 - f = x/2 - x^2/6 + x^3/24 - x^4/120 + x^5/720 - x^6/5040
    one_minus_f_small = xt * (
        1.0 / 2 - xt * (1.0 / 6 - xt * (1.0 / 24 - xt * (1.0 / 120 - xt * (1.0 / 720 - xt / 5040))))
    )
    one_minus_f = jnp.where(big, one_minus_f_big, one_minus_f_small)
    f = jnp.where(big, f_big, 1.0 - one_minus_f_small)
    return one_minus_f * (1.0 + f)


def neg_binomial_defect_prob(x, alpha):
    """:math:`1 - (1 + x/\\alpha)^{-\\alpha}` (``alpha`` > 0; large ``alpha`` -> Poisson)."""
    return -jnp.expm1(-alpha * jnp.log1p(safe_div(x, alpha)))


def defect_prob(area_m2, tech):
    """Probability that a block of ``area_m2`` has a killer defect, :math:`1 - Y`.

    The model is selected by ``tech.yield_model`` (0 Murphy, 1 negative binomial, 2 Poisson)
    with ``jnp.where``, so a batch can mix technologies.

    Args:
        area_m2: critical area in m^2.
        tech: uses ``d0_per_m2``, ``nb_alpha``, ``yield_model``.

    Returns:
        :math:`1 - Y` in [0, 1].
    """
    x = area_m2 * tech.d0_per_m2
    m = tech.yield_model
    return jnp.where(
        m == MURPHY,
        murphy_defect_prob(x),
        jnp.where(
            m == NEG_BINOMIAL, neg_binomial_defect_prob(x, tech.nb_alpha), poisson_defect_prob(x)
        ),
    )


def die_yield(area_m2, tech):
    """Yield of a block of ``area_m2`` under ``tech.yield_model``, :math:`Y = 1 - P_\\mathrm{def}`.

    Examples:
        >>> import equinox as eqx
        >>> import jax.numpy as jnp
        >>> from theseus_jax.io import load_tech
        >>> t = eqx.tree_at(lambda t: (t.yield_model, t.d0_per_m2), load_tech("n7"),
        ...                 (jnp.float32(POISSON), jnp.float32(1000.0)))   # 0.1 /cm^2
        >>> round(float(die_yield(jnp.float32(8.14e-4), t)), 3)   # H100-sized die
        0.443
    """
    return 1.0 - defect_prob(area_m2, tech)


def redundancy_yield(n_units, n_spares, p_defect):
    """Probability that at most ``floor(n_spares)`` of ``n_units`` units are defective.

    .. math:: P = Q(\\lfloor s \\rfloor + 1,\\ n p)

    (Poisson approximation to the binomial; ``Q`` = ``jax.scipy.special.gammaincc``). The
    floored spare count carries no gradient; the gradient flows through :math:`n p`.

    Args:
        n_units: units (cores) per reticle.
        n_spares: spare units per reticle (real; floored).
        p_defect: per-unit defect probability.

    Returns:
        Probability in [0, 1].
    """
    s = jax.lax.stop_gradient(jnp.floor(jnp.maximum(n_spares, 0.0)))
    lam = n_units * p_defect
    tiny = jnp.finfo(jnp.float32).tiny
    lam_safe = jnp.where(lam > tiny, lam, tiny)
    return jnp.clip(gammaincc(s + 1.0, lam_safe), 0.0, 1.0)
