r"""Acquisition functions (pure, for ONE point; vmap them) -- MAXIMISATION of the objective.

Conventions: the BO engine maximises every objective. :func:`log_ei` is improvement over an
incumbent ``best`` for maximisation. :func:`ehvi_2d` follows the hypervolume literature and
is written for MINIMISATION (pass negated means of maximised objectives and a negated
reference point; :mod:`._loop` does this). :func:`parego_scalarize` returns a value to be
maximised.

References:
    S. Ament, S. Daulton, D. Eriksson, M. Balandat, E. Bakshy (2023). Unexpected improvements
    to expected improvement for Bayesian optimization. NeurIPS 2023, Eq. (9) (``log_h``).
    D. R. Jones, M. Schonlau, W. J. Welch (1998). Efficient global optimization of expensive
    black-box functions. J. Global Optim. 13:455-492 (EI).
    J. Knowles (2006). ParEGO: a hybrid algorithm with on-line landscape approximation for
    expensive multiobjective optimization problems. IEEE TEVC 10(1):50-66, Eq. (2).
    M. Emmerich, K. Yang, A. Deutz, H. Wang, C. Fonseca (2016). A multicriteria generalization
    of Bayesian global optimization. In: Advances in Stochastic and Deterministic Global
    Optimization, Springer; K. Yang, M. Emmerich, A. Deutz, T. Bäck (2019). Efficient
    computation of expected hypervolume improvement using box decomposition algorithms.
    J. Global Optim. 75:3-34 (2-D EHVI over the strips of the non-dominated region).
    D. Huang, T. T. Allen, W. I. Notz, R. A. Miller (2006). Sequential kriging optimization
    using multiple-fidelity evaluations. Struct. Multidisc. Optim. 32:369-382 (augmented EI:
    correlation x noise x cost-ratio factors).
    K. Kandasamy, G. Dasarathy, J. Oliva, J. Schneider, B. Poczos (2016). Gaussian process
    bandit optimisation with multi-fidelity evaluations (MF-GP-UCB). NeurIPS 2016 (query a
    lower fidelity only while its posterior std at x exceeds a threshold gamma).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = [
    "log1mexp",
    "log_h",
    "log_ei",
    "ehvi_2d",
    "sample_simplex",
    "parego_scalarize",
    "fidelity_scores",
]

_C1 = 0.5 * math.log(2.0 * math.pi)
_C2 = 0.5 * math.log(math.pi / 2.0)
_TAIL = 8.0  # |z| beyond which the asymptotic series of erfcx is used (see log_h)


def log1mexp(x):
    r"""``log(1 - exp(x))`` for ``x < 0``, stable at both ends (Mächler 2012).

    Uses ``log(-expm1(x))`` for ``x > -log 2`` and ``log1p(-exp(x))`` otherwise.
    """
    near = x > -math.log(2.0)
    xn = jnp.where(near, x, -1.0)
    xf = jnp.where(near, -1.0, x)
    return jnp.where(near, jnp.log(-jnp.expm1(xn)), jnp.log1p(-jnp.exp(xf)))


def log_h(z):
    r"""``log(phi(z) + z Phi(z))``, the log of EI for a unit-variance Gaussian.

    .. math::
        \log h(z) = \begin{cases}
        \log(\varphi(z) + z\Phi(z)) & z > -1 \\
        -z^2/2 - c_1 + \mathrm{log1mexp}\big(\log(\mathrm{erfcx}(-z/\sqrt2)|z|) + c_2\big)
            & -8 < z \le -1 \\
        -z^2/2 - c_1 + \log\!\big(z^{-2}\sum_{k=0}^{5}(-1)^k (2k+1)!!\, z^{-2k}\big)
            & z \le -8
        \end{cases}

    with :math:`c_1 = \log(2\pi)/2`, :math:`c_2 = \log(\pi/2)/2`. The first two branches are
    Ament et al. (2023) Eq. (9). In the far tail ``1 - |z|Phi/phi`` cancels catastrophically
    in float32 (it is ``~ z^-2``), so we use the asymptotic series of ``erfcx`` directly for
    ``1 - |z| sqrt(pi/2) erfcx(-z/sqrt2)`` (truncation error < 3e-6 relative for
    ``z <= -8``); this also replaces Ament's ``-2 log|z|`` branch and stays finite down to
    ``z ~ -1e19``.
    All branches are selected with the double-``where`` so gradients stay finite.
    """
    mid = (z > -_TAIL) & (z <= -1.0)
    far = z <= -_TAIL
    # z > -1: direct
    zd = jnp.where(z > -1.0, z, 0.0)
    direct = jnp.log(
        jnp.exp(-0.5 * zd * zd) / math.sqrt(2 * math.pi) + zd * jax.scipy.special.ndtr(zd)
    )
    # -8 < z <= -1: erfcx + log1mexp
    zm = jnp.where(mid, z, -2.0)
    arg = jnp.log(jax.scipy.special.erfcx(-zm / math.sqrt(2.0)) * jnp.abs(zm)) + _C2
    middle = -0.5 * zm * zm - _C1 + log1mexp(jnp.minimum(arg, -1e-30))
    # z <= -8: series
    zf = jnp.where(far, z, -2.0 * _TAIL)
    u = 1.0 / (zf * zf)
    series = 1.0 - 9.0 * u * (1.0 - 11.0 * u)
    series = u * (1.0 - 3.0 * u * (1.0 - 5.0 * u * (1.0 - 7.0 * u * series)))
    tail = -0.5 * zf * zf - _C1 + jnp.log(series)
    return jnp.where(far, tail, jnp.where(mid, middle, direct))


def log_ei(mean, var, best):
    r"""Log expected improvement for MAXIMISATION, numerically stable (LogEI).

    .. math::
        \mathrm{EI} = E[\max(f - f^*, 0)] = \sigma\,h\!\left(\frac{\mu - f^*}{\sigma}\right),
        \qquad \log\mathrm{EI} = \log h(z) + \log\sigma.

    Args:
        mean: posterior mean ``mu`` (scalar, any units).
        var: posterior variance ``sigma^2`` (same units squared), floored at ``1e-30``.
        best: incumbent ``f*``.

    Returns:
        ``log EI`` (finite even when EI underflows to 0).

    Examples:
        >>> import jax.numpy as jnp
        >>> float(jnp.round(jnp.exp(log_ei(0.0, 1.0, 0.0)), 4))  # phi(0) = 0.3989
        0.3989
    """
    sigma = jnp.sqrt(jnp.maximum(var, 1e-30))
    return log_h((mean - best) / sigma) + jnp.log(sigma)


def _psi(b, mean, sigma):
    """``E[(b - Y)_+]`` for ``Y ~ N(mean, sigma^2)``."""
    z = (b - mean) / sigma
    return (b - mean) * jax.scipy.special.ndtr(z) + sigma * jnp.exp(-0.5 * z * z) / math.sqrt(
        2 * math.pi
    )


def ehvi_2d(mean, var, front, front_mask, ref):
    r"""Exact expected hypervolume improvement of one 2-D Gaussian point (MINIMISATION).

    The non-dominated region below the reference point ``r`` is cut into vertical strips by
    the sorted Pareto front :math:`p^{(1)}_1 < \dots < p^{(k)}_1` (so
    :math:`p^{(1)}_2 > \dots > p^{(k)}_2`): strip ``i`` spans :math:`y_1\in[l_i, u_i)` with
    :math:`l_0=-\infty, l_i = p^{(i)}_1, u_i = l_{i+1}, u_k = r_1` and :math:`y_2 < c_i`,
    :math:`c_0 = r_2, c_i = p^{(i)}_2`. For independent :math:`Y_1, Y_2` the improvement
    factorises per strip, giving

    .. math::
        \mathrm{EHVI} = \sum_{i=0}^{k}\big[\psi_1(u_i) - \psi_1(l_i)\big]\,\psi_2(c_i),
        \qquad \psi_j(b) = E[(b - Y_j)_+] = (b-\mu_j)\Phi(\tfrac{b-\mu_j}{\sigma_j})
        + \sigma_j\varphi(\tfrac{b-\mu_j}{\sigma_j}),

    (``psi_1(l_0) = 0``), the 2-D case of the box decomposition of Yang et al. (2019).

    Args:
        mean: ``(2,)`` predictive means (minimised objectives).
        var: ``(2,)`` predictive variances (independent objectives).
        front: ``(K, 2)`` observed points (any order; dominated or padded rows allowed).
        front_mask: ``(K,)`` bool, rows that are real observations.
        ref: ``(2,)`` reference point (worse than every point of interest).

    Returns:
        Scalar EHVI >= 0.
    """
    sigma = jnp.sqrt(jnp.maximum(var, 1e-30))
    k = front.shape[0]
    inside = front_mask & jnp.all(front < ref[None, :], axis=1)
    # non-dominated among `inside` rows
    le = jnp.all(front[:, None, :] <= front[None, :, :], axis=2)  # le[j, i]: j weakly dom i
    lt = jnp.any(front[:, None, :] < front[None, :, :], axis=2)
    dominated = jnp.any(inside[:, None] & le & lt, axis=0)
    # exact duplicates: keep the first one only
    same = jnp.all(front[:, None, :] == front[None, :, :], axis=2)
    earlier = jnp.arange(k)[:, None] < jnp.arange(k)[None, :]
    dup = jnp.any(inside[:, None] & same & earlier, axis=0)
    keep = inside & ~dominated & ~dup
    p1 = jnp.where(keep, front[:, 0], ref[0])
    p2 = jnp.where(keep, front[:, 1], ref[1])
    order = jnp.argsort(p1)
    p1, p2 = p1[order], p2[order]
    lower = jnp.concatenate([p1[:1], p1])  # l_0 placeholder (its psi is forced to 0)
    upper = jnp.concatenate([p1, ref[:1]])
    cap = jnp.concatenate([ref[1:], p2])
    psi1_u = _psi(upper, mean[0], sigma[0])
    psi1_l = _psi(lower, mean[0], sigma[0]).at[0].set(0.0)
    psi2 = _psi(cap, mean[1], sigma[1])
    return jnp.maximum(jnp.sum((psi1_u - psi1_l) * psi2), 0.0)


def sample_simplex(key, m: int, dtype=jnp.float32):
    """Uniform random weights on the probability simplex (Dirichlet(1,...,1)), shape ``(m,)``."""
    e = jax.random.exponential(key, (m,), dtype)
    return e / jnp.sum(e)


def parego_scalarize(y, weights, lo, hi, rho: float = 0.05):
    r"""Negated augmented Chebyshev scalarisation (ParEGO), for MAXIMISED objectives.

    Objectives are normalised to losses :math:`\ell_j = (hi_j - y_j)/(hi_j - lo_j)` in
    ``[0, 1]`` over the observed range, and

    .. math::
        g(y) = \max_j w_j \ell_j + \rho \sum_j w_j \ell_j

    (Knowles 2006, Eq. 2, with ``rho = 0.05``); the function returns ``-g`` so that larger is
    better and the single-objective maximising engine applies unchanged.

    Args:
        y: ``(m,)`` objective values; weights: ``(m,)`` on the simplex;
        lo, hi: ``(m,)`` observed min/max of each objective.
    """
    span = jnp.where(hi > lo, hi - lo, jnp.ones_like(hi))
    loss = (hi - y) / span
    return -(jnp.max(weights * loss) + rho * jnp.sum(weights * loss))


def fidelity_scores(cov, noise, costs, *, min_corr2: float = 0.5, min_std: float = 0.01):
    r"""Cost-aware fidelity choice at a point ``x`` chosen by the target-fidelity acquisition.

    For the joint posterior covariance ``C`` of :math:`(f_0(x), \dots, f_{T}(x))`
    (standardised units) and noise variances :math:`\sigma^2_t`, one observation at level
    ``t`` reduces the variance of the target value :math:`f_T(x)` by

    .. math::
        \Delta_t = \frac{C_{tT}^2}{C_{tt} + \sigma_t^2},\qquad
        \text{score}_t = \Delta_t / \text{cost}_t,

    and the level with the largest score wins ("variance reduction per unit cost"; the
    Gaussian analogue of entropy-per-cost rules, cf. the correlation, noise and cost-ratio
    factors of Huang et al. 2006's augmented EI). To guarantee target-level evaluations, a
    lower level ``t < T`` is eligible only if (i) its posterior correlation with the target,
    :math:`C_{tT}^2/(C_{tt}C_{TT})`, is at least ``min_corr2`` (a small ``rho^2`` makes the
    cheap level useless) and (ii) its posterior std exceeds
    ``max(2 sigma_t, min_std)`` -- once the cheap level is already known at ``x`` the target
    is queried (the threshold rule of MF-GP-UCB, Kandasamy et al. 2016). The target level is
    always eligible.

    Args:
        cov: ``(F, F)`` posterior covariance over the levels at one ``x``.
        noise: ``(F,)`` noise variances (same units as ``cov``).
        costs: ``(F,)`` positive costs per evaluation.
        min_corr2: correlation threshold (i).
        min_std: absolute std threshold (ii), in standardised units.

    Returns:
        ``(scores (F,), eligible (F,) bool)``; pick ``argmax(where(eligible, scores, -inf))``.
    """
    nf = cov.shape[0]
    var = jnp.maximum(jnp.diagonal(cov), 1e-12)
    c_t = cov[:, nf - 1]
    reduction = c_t**2 / (var + noise)
    scores = reduction / costs
    corr2 = c_t**2 / (var * var[nf - 1])
    std_ok = jnp.sqrt(var) > jnp.maximum(2.0 * jnp.sqrt(noise), min_std)
    eligible = (corr2 >= min_corr2) & std_ok
    eligible = eligible | (jnp.arange(nf) == nf - 1)
    return scores, eligible
