"""Gradient-safe numerics (theseus_jax._numerics): finite gradients at singular points,
relaxations that converge to their exact forms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theseus_jax._numerics import (
    ceil_div,
    jitter,
    safe_div,
    safe_log,
    safe_sqrt,
    smooth_max,
    smooth_min,
    soft_ceil,
)

F32 = jnp.float32


def _grads(f, *args, argnums=0):
    return jax.grad(f, argnums=argnums)(*(F32(a) for a in args))


# ---- safe_div / safe_log / safe_sqrt ---------------------------------------------------------


def test_safe_div_values():
    assert float(safe_div(F32(6.0), F32(3.0))) == 2.0
    assert float(safe_div(F32(1.0), F32(0.0))) == 0.0
    assert float(safe_div(F32(1.0), F32(0.0), fill=7.0)) == 7.0
    x = safe_div(jnp.asarray([1.0, 2.0, 3.0], F32), jnp.asarray([0.0, 2.0, 0.0], F32), fill=-1.0)
    np.testing.assert_array_equal(np.asarray(x), [-1.0, 1.0, -1.0])


def test_safe_div_gradient_finite_at_zero_denominator():
    gn, gd = _grads(lambda n, d: safe_div(n, d), 1.0, 0.0, argnums=(0, 1))
    assert float(gn) == 0.0 and float(gd) == 0.0
    gn, gd = _grads(lambda n, d: safe_div(n, d), 0.0, 0.0, argnums=(0, 1))
    assert np.isfinite(float(gn)) and np.isfinite(float(gd))
    # away from the singularity the gradient is the quotient rule
    gn, gd = _grads(lambda n, d: safe_div(n, d), 3.0, 2.0, argnums=(0, 1))
    assert float(gn) == pytest.approx(0.5) and float(gd) == pytest.approx(-0.75)
    # vectorised, under jit, mixed zero / non-zero denominators
    d = jnp.asarray([0.0, 1.0, 0.0, 4.0], F32)
    g = jax.jit(jax.grad(lambda d: jnp.sum(safe_div(F32(2.0), d))))(d)
    np.testing.assert_allclose(np.asarray(g), [0.0, -2.0, 0.0, -0.125])


@pytest.mark.parametrize("x", [0.0, -1.0, -0.0])
def test_safe_log_gradient_finite_off_domain(x):
    g = _grads(safe_log, x)
    assert float(g) == 0.0
    assert float(safe_log(F32(x))) == -np.inf
    assert float(safe_log(F32(x), fill=0.0)) == 0.0


def test_safe_log_values_and_gradient_in_domain():
    assert float(safe_log(F32(np.e))) == pytest.approx(1.0)
    assert float(_grads(safe_log, 4.0)) == pytest.approx(0.25)


@pytest.mark.parametrize("x", [0.0, -2.0])
def test_safe_sqrt_gradient_finite_at_zero(x):
    assert float(_grads(safe_sqrt, x)) == 0.0
    assert float(safe_sqrt(F32(x))) == 0.0


def test_safe_sqrt_values():
    assert float(safe_sqrt(F32(9.0))) == 3.0
    assert float(_grads(safe_sqrt, 4.0)) == pytest.approx(0.25)
    hess = jax.grad(jax.grad(safe_sqrt))(F32(0.0))
    assert np.isfinite(float(hess))


# ---- smooth_max / smooth_min -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"), [(1.0, 2.0), (-3.0, 5.0), (4.0, 4.0), (-1.0, -2.0), (1e-3, 1e3)]
)
def test_smooth_max_converges_to_max(a, b):
    exact = max(a, b)
    assert float(smooth_max(F32(a), F32(b))) == exact  # temperature None: the exact form
    errs = []
    for tau in (1e-1, 1e-2, 1e-3, 1e-4):
        v = float(smooth_max(F32(a), F32(b), tau))
        # log-sum-exp: max <= v <= max + scale log 2, scale = tau (|a| + |b|)
        scale = tau * (abs(a) + abs(b))
        assert exact - 1e-6 * abs(exact) <= v <= exact + scale * np.log(2.0) * (1 + 1e-5) + 1e-6
        errs.append(v - exact)
    assert abs(errs[-1]) <= 1e-4 * (abs(a) + abs(b))
    assert errs[0] >= errs[-1]


def test_smooth_min_converges_to_min():
    for tau in (1e-2, 1e-4):
        v = float(smooth_min(F32(1.0), F32(2.0), tau))
        assert 1.0 - 3.0 * tau * np.log(2.0) - 1e-6 <= v <= 1.0 + 1e-6
    assert float(smooth_min(F32(1.0), F32(2.0))) == 1.0


def test_smooth_max_gradient():
    # the temperature is relative, so smooth_max is positively homogeneous of degree 1 and
    # Euler's identity a f_a + b f_b = f holds; by symmetry f_a = f_b at a = b
    for a, b in ((1.0, 1.0), (2.0, 3.0), (0.5, 4.0)):
        f = float(smooth_max(F32(a), F32(b), 0.05))
        ga, gb = _grads(lambda a, b: smooth_max(a, b, 0.05), a, b, argnums=(0, 1))
        assert a * float(ga) + b * float(gb) == pytest.approx(f, rel=1e-5)
        assert float(ga) > 0 and float(gb) > 0
    ga, gb = _grads(lambda a, b: smooth_max(a, b, 0.05), 1.0, 1.0, argnums=(0, 1))
    assert float(ga) == pytest.approx(float(gb))
    # well separated and cold: the gradient selects the larger argument
    ga, gb = _grads(lambda a, b: smooth_max(a, b, 1e-3), 1.0, 2.0, argnums=(0, 1))
    assert float(ga) == pytest.approx(0.0, abs=1e-3) and float(gb) == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize(("a", "b"), [(0.0, 0.0), (1e-30, 0.0)])
def test_smooth_max_gradient_finite_at_zero(a, b):
    # Regression: no NaN gradient where |a| + |b| underflows (double-where fallback to max).
    ga, gb = _grads(lambda a, b: smooth_max(a, b, 0.1), a, b, argnums=(0, 1))
    assert np.isfinite(float(ga)) and np.isfinite(float(gb)), (float(ga), float(gb))
    assert float(smooth_max(F32(a), F32(b), 0.1)) == pytest.approx(max(a, b), abs=1e-30)


# ---- soft_ceil / ceil_div ----------------------------------------------------------------------


XS = np.asarray([0.1, 0.5, 0.999, 1.0, 1.001, 2.5, 7.0, 123.4, 1e5 + 0.5, -0.5, -2.0], np.float32)


def test_soft_ceil_value_is_ceil_and_gradient_is_one():
    x = jnp.asarray(XS)
    exact = np.ceil(XS)
    np.testing.assert_array_equal(np.asarray(soft_ceil(x)), exact)
    for tau in (0.5, 0.1, 1e-3):
        v = np.asarray(soft_ceil(x, tau))
        tol = 4 * np.finfo(np.float32).eps * np.maximum(np.abs(XS), 1.0)
        assert (np.abs(v - exact) <= tol).all(), (v, exact)
        g = np.asarray(jax.vmap(jax.grad(lambda t, tau=tau: soft_ceil(t, tau)))(x))
        np.testing.assert_array_equal(g, np.ones_like(XS))
    # the exact form has the zero gradient a hard ceil has
    g0 = np.asarray(jax.vmap(jax.grad(soft_ceil))(x))
    np.testing.assert_array_equal(g0, np.zeros_like(XS))


def test_soft_ceil_under_jit():
    f = jax.jit(lambda t: soft_ceil(t, 0.1))
    np.testing.assert_array_equal(np.asarray(f(jnp.asarray([0.2, 3.0], F32))), [1.0, 3.0])


def test_ceil_div():
    assert float(ceil_div(F32(7.0), F32(2.0))) == 4.0
    assert float(ceil_div(F32(8.0), F32(2.0))) == 4.0
    assert float(ceil_div(F32(7.0), F32(0.0))) == 0.0  # safe: no inf, no NaN
    g = jax.grad(lambda a: ceil_div(a, F32(2.0), 0.1))(F32(7.0))
    assert float(g) == pytest.approx(0.5)
    g = jax.grad(lambda b: ceil_div(F32(7.0), b, 0.1))(F32(0.0))
    assert np.isfinite(float(g))


def test_jitter():
    assert jitter(jnp.float32) == pytest.approx(float(np.sqrt(np.finfo(np.float32).eps)))
    assert jitter(jnp.float16) > jitter(jnp.float32)
