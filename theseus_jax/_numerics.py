"""Gradient-safe numerics, written once.

``jnp.where`` evaluates both branches, so a NaN or inf *gradient* in the branch not taken
still poisons the result. Every function here uses the double-``where`` trick: the unsafe
input is replaced before the singular operation, then the output is selected.

Smooth relaxations (``soft_ceil``, ``smooth_max``) exist for gradient refinement of the
continuous design parameters; reporting always uses the exact forms (``temperature=None``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "safe_div",
    "safe_log",
    "safe_sqrt",
    "soft_ceil",
    "smooth_max",
    "smooth_min",
    "ceil_div",
    "jitter",
]


def safe_div(num, den, fill=0.0):
    """``num / den`` where ``den != 0``, else ``fill``; finite gradients everywhere."""
    ok = den != 0
    safe_den = jnp.where(ok, den, jnp.ones_like(den))
    return jnp.where(ok, num / safe_den, fill)


def safe_log(x, fill=-jnp.inf):
    """``log(x)`` for ``x > 0``, else ``fill`` (gradient 0 there)."""
    ok = x > 0
    return jnp.where(ok, jnp.log(jnp.where(ok, x, jnp.ones_like(x))), fill)


def safe_sqrt(x):
    """``sqrt(max(x, 0))`` with a zero (not inf) gradient at 0."""
    ok = x > 0
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, x, jnp.ones_like(x))), 0.0)


def soft_ceil(x, temperature=None):
    r"""``ceil(x)`` (exact) or a smooth staircase with slope 1 on average.

    With a temperature :math:`\tau`, :math:`\lceil x\rceil \approx x + 1 - \sigma`-smoothed
    fractional part: ``x + (1 - frac(x))`` where the jump at integers is blurred over a width
    ``tau``. The value is always within ``tau`` of the exact ceil away from integers, and the
    gradient is ~1, so refinement sees "more work costs more time" instead of a zero gradient.
    """
    if temperature is None:
        return jnp.ceil(x)
    # The identity-plus-bounded-correction form: d/dx = 1 almost everywhere, value close to ceil.
    exact = jax.lax.stop_gradient(jnp.ceil(x) - x)
    return x + exact


def ceil_div(a, b, temperature=None):
    """``ceil(a / b)`` for positive ``b`` (exact or relaxed, see :func:`soft_ceil`)."""
    return soft_ceil(safe_div(a, b, fill=0.0), temperature)


def smooth_max(a, b, temperature=None):
    r"""``max(a, b)``, or the log-sum-exp relaxation :math:`\tau\log(e^{a/\tau}+e^{b/\tau})`.

    The temperature is relative to the magnitude of the inputs: ``tau * (|a| + |b|)``.
    """
    if temperature is None:
        return jnp.maximum(a, b)
    # double where: near a = b = 0 the scale (and its 1/scale^2 gradient term) underflows,
    # so fall back to the exact max there; elsewhere the relaxation is positively homogeneous
    dtype = jnp.result_type(a, b)
    mag = jnp.abs(a) + jnp.abs(b)
    ok = mag > jnp.sqrt(jnp.finfo(dtype).tiny)
    sa = jnp.where(ok, a, jnp.ones_like(a))
    sb = jnp.where(ok, b, jnp.ones_like(b))
    scale = temperature * (jnp.abs(sa) + jnp.abs(sb))
    return jnp.where(ok, scale * jnp.logaddexp(sa / scale, sb / scale), jnp.maximum(a, b))


def smooth_min(a, b, temperature=None):
    """``min(a, b)`` or its log-sum-exp relaxation (see :func:`smooth_max`)."""
    if temperature is None:
        return jnp.minimum(a, b)
    return -smooth_max(-a, -b, temperature)


def jitter(dtype) -> float:
    """Dtype-aware diagonal jitter, ``sqrt(eps)`` of the dtype."""
    return float(np.sqrt(np.finfo(dtype).eps))  # host numpy: usable inside jit
