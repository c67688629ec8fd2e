r"""Gaussian-process surrogate over (x in [0,1]^D, fidelity level), NumPyro priors, fixed capacity.

The GP models the *standardised residual* of each observation,

.. math::
    y_i = m_i + \mu + s\,\big(g(x_i, t_i) + \varepsilon_i\big),\qquad
    g \sim GP(0, k),\quad \varepsilon_i \sim N(0, \sigma^2_{t_i}),

where ``m_i`` is an optional caller-supplied prior mean value (e.g. a cheap analytic model,
the same function of ``x`` for every fidelity; zero if not given), and ``mu``, ``s`` are the
mean and standard deviation of ``y - m`` over the *observed* (masked) rows. Extra input
features (e.g. a cheap model's outputs) are just more columns of ``x``: build the GP with
``dim = d + n_features`` and append them to both training and query points.

Training data live in a fixed-capacity buffer :class:`GPData` with a boolean ``mask``. Padded
rows get zero cross-covariance, unit prior variance and target 0, so the posterior and the
marginal likelihood (up to an additive constant that is not counted) are exactly those of the
unpadded data, and adding a point within capacity never changes any array shape (no
recompilation). :func:`grow_capacity` reallocates on the host (doubling).

Hyperparameters (see :class:`GPPriors`): LogNormal priors on lengthscales, variances and
noise variances; Normal prior on the AR(1) factors ``rho``; LogNormal on the linear-truncated
power. ``fit_map`` maximises the log posterior (NumPyro ``potential_energy``, i.e. in the
unconstrained space, Jacobian included) by multi-start Adam (vmapped over starts; best
start wins); ``fit_nuts`` draws a few NUTS samples instead. Parameter pytrees carry a leading
sample axis ``S`` (``S = 1`` for MAP); :func:`predict` averages the Gaussian mixture over it.

References:
    C. E. Rasmussen and C. K. I. Williams (2006). GPML, Alg. 2.1 (Cholesky prediction).
    M. C. Kennedy and A. O'Hagan (2000). Biometrika 87(1):1-13 (AR(1) co-kriging).
    J. Wu et al. (2019). Practical multi-fidelity BO for hyperparameter tuning. UAI.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.infer.util import potential_energy

from ._kernels import AR1Kernel, LinearTruncatedKernel, SingleFidelityKernel

__all__ = [
    "KERNEL_KINDS",
    "GPPriors",
    "GPData",
    "Stats",
    "Posterior",
    "GP",
    "make_gp",
    "empty_data",
    "grow_capacity",
]

KERNEL_KINDS = ("single", "ar1", "linear_truncated")
_LOG_2PI = math.log(2.0 * math.pi)


def _jitter(dtype) -> float:
    """Dtype-aware diagonal jitter ``sqrt(eps)`` computed with NumPy, so it stays a Python
    float under ``jit`` (``theseus_jax._numerics.jitter`` calls ``jnp.sqrt``, which is traced
    inside a jitted function and then fails in ``float()``)."""
    return float(np.sqrt(np.finfo(dtype).eps))


class GPPriors(NamedTuple):
    """Hyperprior parameters; each is ``(loc, scale)`` in log space unless noted.

    Outputs are standardised and inputs live in the unit cube, so these are unit-free.

    Attributes:
        lengthscale: LogNormal of every ARD lengthscale (median 0.3 of the cube side).
        variance: LogNormal of the main (target) signal variance.
        bias_variance: LogNormal of the AR(1) increments ``delta_t, t>0`` / the
            linear-truncated bias term (median 0.1: low fidelities are usually informative).
        noise: LogNormal of the per-fidelity noise variance (standardised units).
        rho: ``(mean, sd)`` of a Normal prior on each AR(1) factor.
        power: LogNormal of the linear-truncated polynomial order ``p``.
    """

    lengthscale: tuple[float, float] = (math.log(0.3), 1.0)
    variance: tuple[float, float] = (0.0, 1.0)
    bias_variance: tuple[float, float] = (math.log(0.1), 1.5)
    noise: tuple[float, float] = (math.log(1e-3), 2.0)
    rho: tuple[float, float] = (1.0, 0.5)
    power: tuple[float, float] = (0.0, 0.5)


_DEFAULT_PRIORS = GPPriors()


class GPData(NamedTuple):
    """Fixed-capacity training set of ONE output.

    Attributes:
        x: ``(cap, D)`` inputs in the unit cube (plus extra feature columns).
        fid: ``(cap,)`` int32 fidelity levels.
        y: ``(cap,)`` observations (original units).
        prior_mean: ``(cap,)`` prior-mean values ``m_i`` (0 if unused).
        mask: ``(cap,)`` bool, True for observed rows.
    """

    x: jax.Array
    fid: jax.Array
    y: jax.Array
    prior_mean: jax.Array
    mask: jax.Array


class Stats(NamedTuple):
    """Standardisation of ``y - m`` over the observed rows: ``mu`` and ``sd`` (scalars)."""

    mu: jax.Array
    sd: jax.Array


class Posterior(NamedTuple):
    """Cholesky factorisation for one hyperparameter set (see :func:`GP.posterior`)."""

    chol: jax.Array  # (cap, cap) lower
    alpha: jax.Array  # (cap,)  K^-1 y_std
    data: GPData
    stats: Stats
    params: dict


class GP(NamedTuple):
    """Pure functions of one GP family (returned by :func:`make_gp`).

    Attributes:
        model: NumPyro model ``model(data, stats)``.
        kernel: ``kernel(params) -> AbstractFidelityKernel`` for one (constrained) param set.
        standardise: ``standardise(data) -> Stats``.
        log_marginal: ``log_marginal(params, data, stats) -> scalar``.
        init_params: ``init_params() -> params`` (prior medians, constrained, no sample axis).
        fit_map: ``fit_map(key, data, *, n_starts, steps, lr, warm=None) -> (params, logp)``;
            ``params`` has a leading sample axis of size 1.
        fit_nuts: ``fit_nuts(key, data, *, num_warmup, num_samples, warm=None,
            max_tree_depth=6) -> params``
            with leading axis ``num_samples`` (host function; runs NumPyro MCMC).
        posterior: ``posterior(params, data, stats) -> Posterior`` for ONE param set.
        predict: ``predict(post, xq, tq, mq) -> (mean, var)`` for ONE query point (original
            units, latent ``f`` without observation noise); vmap it.
        predict_cov: ``predict_cov(post, xq, tq, mq) -> (mean (Q,), cov (Q, Q))``.
        noise: ``noise(params, t) -> standardised noise variance of level t``.
    """

    model: Any
    kernel: Any
    standardise: Any
    log_marginal: Any
    init_params: Any
    fit_map: Any
    fit_nuts: Any
    posterior: Any
    predict: Any
    predict_cov: Any
    noise: Any


@jax.custom_vjp
def gaussian_log_likelihood(k, y):
    r"""``-y^T K^{-1} y / 2 - log|K| / 2`` via Cholesky, with a hand-written gradient.

    .. math::
        \frac{\partial}{\partial K} = \tfrac12\left(\alpha\alpha^T - K^{-1}\right),\qquad
        \frac{\partial}{\partial y} = -\alpha,\qquad \alpha = K^{-1}y

    (GPML Eq. 5.9). Differentiating through ``jnp.linalg.cholesky`` instead costs ~25 ms for a
    64x64 matrix on CPU in this JAX version (vs ~0.1 ms here), which dominated MAP fitting.
    """
    return _gll_fwd(k, y)[0]


def _gll_fwd(k, y):
    chol = jnp.linalg.cholesky(k)
    a = jax.scipy.linalg.solve_triangular(chol, y, lower=True)
    val = -0.5 * jnp.sum(a * a) - jnp.sum(jnp.log(jnp.diagonal(chol)))
    return val, (chol, y)


def _gll_bwd(res, g):
    chol, y = res
    alpha = jax.scipy.linalg.cho_solve((chol, True), y)
    eye = jnp.eye(chol.shape[0], dtype=chol.dtype)
    kinv = jax.scipy.linalg.cho_solve((chol, True), eye)
    dk = 0.5 * (alpha[:, None] * alpha[None, :] - kinv)
    return g * dk, -g * alpha


gaussian_log_likelihood.defvjp(_gll_fwd, _gll_bwd)


def empty_data(capacity: int, dim: int, dtype=jnp.float32) -> GPData:
    """An all-padding :class:`GPData` of the given capacity."""
    return GPData(
        x=jnp.full((capacity, dim), 0.5, dtype),
        fid=jnp.zeros((capacity,), jnp.int32),
        y=jnp.zeros((capacity,), dtype),
        prior_mean=jnp.zeros((capacity,), dtype),
        mask=jnp.zeros((capacity,), bool),
    )


def grow_capacity(data, new_capacity: int):
    """Host-side reallocation of any pytree of ``(cap, ...)`` buffers to ``new_capacity``.

    Rows beyond the old capacity are copies of the last row (for ``x``, irrelevant) and are
    masked out because boolean leaves are padded with False. Works on :class:`GPData` and on
    the loop state's buffers alike. Raises ``ValueError`` if shrinking.
    """

    def pad(a):
        a = jnp.asarray(a)
        cap = a.shape[0]
        if new_capacity < cap:
            raise ValueError(
                f"grow_capacity cannot shrink a buffer from {cap} to {new_capacity} rows; "
                "pass a capacity at least as large as the current one."
            )
        extra = new_capacity - cap
        if extra == 0:
            return a
        if a.dtype == jnp.bool_:
            fill = jnp.zeros((extra,) + a.shape[1:], bool)
        elif a.ndim >= 2 and jnp.issubdtype(a.dtype, jnp.floating):
            fill = jnp.full((extra,) + a.shape[1:], 0.5, a.dtype)
        else:
            fill = jnp.zeros((extra,) + a.shape[1:], a.dtype)
        return jnp.concatenate([a, fill], axis=0)

    return jax.tree_util.tree_map(pad, data)


def _site_table(kind: str, dim: int, n_fidelities: int, priors: GPPriors):
    """(name, shape, family, loc, scale) of every hyperparameter site, in model order."""
    nc = {"single": 1, "ar1": n_fidelities, "linear_truncated": 2}[kind]
    nb = nc - 1
    sites = [
        ("lengthscale", (nc, dim), "lognormal", *priors.lengthscale),
        ("variance", (1,), "lognormal", *priors.variance),
    ]
    if nb > 0:
        sites.append(("bias_variance", (nb,), "lognormal", *priors.bias_variance))
    if kind == "ar1" and n_fidelities > 1:
        sites.append(("rho", (n_fidelities - 1,), "normal", *priors.rho))
    if kind == "linear_truncated":
        sites.append(("power", (), "lognormal", *priors.power))
    sites.append(("noise", (n_fidelities,), "lognormal", *priors.noise))
    return sites


def make_gp(
    kind: str,
    dim: int,
    n_fidelities: int = 1,
    *,
    fidelity_values=None,
    priors: GPPriors = _DEFAULT_PRIORS,
) -> GP:
    """Build the pure functions of a (multi-fidelity) GP.

    Args:
        kind: ``'single'`` (no fidelity structure), ``'ar1'`` (Kennedy-O'Hagan) or
            ``'linear_truncated'`` (BoTorch/Wu et al. 2019).
        dim: number of input columns ``D`` (design dims + extra features).
        n_fidelities: number of levels ``F``; level ``F-1`` is the target.
        fidelity_values: ``(F,)`` continuous fidelity ``s`` of each level for
            ``'linear_truncated'`` (default ``linspace(0, 1, F)``; the last must be 1).
        priors: :class:`GPPriors`.

    Returns:
        A :class:`GP` of pure, jittable functions (except ``fit_nuts``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> gp = make_gp("ar1", dim=2, n_fidelities=2)
        >>> d = empty_data(8, 2)._replace(
        ...     x=jax.random.uniform(jax.random.key(0), (8, 2)),
        ...     y=jnp.arange(8.0), mask=jnp.arange(8) < 5)
        >>> post = gp.posterior(gp.init_params(), d, gp.standardise(d))
        >>> m, v = gp.predict(post, d.x[0], jnp.int32(1), jnp.float32(0.0))
        >>> bool(v >= 0)
        True
    """
    if kind not in KERNEL_KINDS:
        raise ValueError(f"unknown kernel kind {kind!r}; use one of {KERNEL_KINDS}.")
    if n_fidelities < 1 or dim < 1:
        raise ValueError(f"need dim >= 1 and n_fidelities >= 1, got {dim=}, {n_fidelities=}.")
    if fidelity_values is None:
        fv = np.linspace(0.0, 1.0, n_fidelities) if n_fidelities > 1 else np.ones(1)
    else:
        fv = np.asarray(fidelity_values, np.float64).reshape(-1)
        if fv.shape != (n_fidelities,) or not np.isclose(fv[-1], 1.0) or np.any(np.diff(fv) <= 0):
            raise ValueError(
                f"fidelity_values must be {n_fidelities} increasing values ending at 1 "
                f"(the target), got {fv.tolist()}."
            )
    fv_tuple = tuple(float(v) for v in fv)
    sites = _site_table(kind, dim, n_fidelities, priors)

    def kernel(params):
        dtype = params["lengthscale"].dtype
        var = params["variance"]
        if "bias_variance" in params:
            var = jnp.concatenate([var, params["bias_variance"]])
        if kind == "single":
            return SingleFidelityKernel(params["lengthscale"], var)
        if kind == "ar1":
            rho = params.get("rho", jnp.zeros((0,), dtype))
            return AR1Kernel(params["lengthscale"], var, rho)
        return LinearTruncatedKernel(
            params["lengthscale"], var, params["power"], jnp.asarray(fv_tuple, dtype)
        )

    def noise(params, t):
        return params["noise"][t]

    def standardise(data: GPData) -> Stats:
        r = data.y - data.prior_mean
        w = data.mask.astype(r.dtype)
        n = jnp.maximum(jnp.sum(w), 1.0)
        mu = jnp.sum(w * r) / n
        var = jnp.sum(w * (r - mu) ** 2) / n
        sd = jnp.sqrt(var)
        tiny = 1e-6 * jnp.maximum(1.0, jnp.abs(mu))
        sd = jnp.where(sd > tiny, sd, jnp.ones_like(sd))
        return Stats(mu, sd)

    def _gram(params, data: GPData):
        kern = kernel(params)
        k = kern.matrix(data.x, data.fid, data.x, data.fid)
        dtype = k.dtype
        both = data.mask[:, None] & data.mask[None, :]
        diag = params["noise"][data.fid] + _jitter(dtype)
        eye = jnp.eye(k.shape[0], dtype=dtype)
        return jnp.where(both, k + eye * diag[:, None], eye)

    def _targets(data: GPData, stats: Stats):
        ys = (data.y - data.prior_mean - stats.mu) / stats.sd
        return jnp.where(data.mask, ys, jnp.zeros_like(ys))

    def log_marginal(params, data: GPData, stats: Stats):
        ys = _targets(data, stats)
        n = jnp.sum(data.mask.astype(ys.dtype))
        return gaussian_log_likelihood(_gram(params, data), ys) - 0.5 * n * _LOG_2PI

    def model(data: GPData, stats: Stats):
        params = {}
        for name, shape, fam, loc, scale in sites:
            if fam == "lognormal":
                d = dist.LogNormal(loc, scale)
            else:
                d = dist.Normal(loc, scale)
            if shape:
                d = d.expand(shape).to_event(len(shape))
            params[name] = numpyro.sample(name, d)
        numpyro.factor("marginal_likelihood", log_marginal(params, data, stats))

    def init_params(dtype=jnp.float32):
        out = {}
        for name, shape, fam, loc, _ in sites:
            v = math.exp(loc) if fam == "lognormal" else loc
            out[name] = jnp.full(shape, v, dtype)
        return out

    def _unconstrain(params):
        fam = {s[0]: s[2] for s in sites}
        return {k: (jnp.log(v) if fam[k] == "lognormal" else v) for k, v in params.items()}

    def _constrain(z):
        fam = {s[0]: s[2] for s in sites}
        return {k: (jnp.exp(v) if fam[k] == "lognormal" else v) for k, v in z.items()}

    def fit_map(
        key, data: GPData, *, n_starts: int = 8, steps: int = 200, lr: float = 0.05, warm=None
    ):
        """Multi-start MAP. ``warm``: a constrained param set (no sample axis) used as start 0
        (default: the prior medians). Returns ``(params with leading axis 1, log posterior)``."""
        stats = standardise(data)
        dtype = data.y.dtype
        keys = jax.random.split(key, len(sites))
        z0 = {}
        for k, (name, shape, _, loc, scale) in zip(keys, sites, strict=True):
            z0[name] = loc + scale * jax.random.normal(k, (n_starts, *shape), dtype)
        first = _unconstrain(init_params(dtype) if warm is None else warm)
        z0 = {k: v.at[0].set(first[k].astype(dtype)) for k, v in z0.items()}

        def pe(z):
            return potential_energy(model, (data, stats), {}, z)

        opt = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(lr))

        def run(z):
            def step(carry, _):
                z, s = carry
                v, g = jax.value_and_grad(pe)(z)
                g = jax.tree_util.tree_map(lambda a: jnp.where(jnp.isfinite(a), a, 0.0), g)
                u, s = opt.update(g, s, z)
                return (optax.apply_updates(z, u), s), v

            (z, _), _ = jax.lax.scan(step, (z, opt.init(z)), None, length=steps)
            return z, pe(z)

        zs, vals = jax.lax.map(run, z0)
        vals = jnp.where(jnp.isfinite(vals), vals, jnp.inf)
        best = jnp.argmin(vals)
        zb = jax.tree_util.tree_map(lambda a: a[best], zs)
        # if every start diverged, fall back to start 0's initial point
        ok = jnp.isfinite(vals[best])
        zb = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b[0]), zb, z0)
        params = jax.tree_util.tree_map(lambda a: a[None], _constrain(zb))
        return params, -vals[best]

    mcmc_cache: dict = {}

    def fit_nuts(
        key,
        data: GPData,
        *,
        num_warmup: int = 100,
        num_samples: int = 16,
        warm=None,
        max_tree_depth: int = 6,
    ):
        """NUTS posterior samples (host function). Returns params with leading ``S`` axis.

        ``max_tree_depth`` is capped at 6 (63 leapfrog steps) to keep a refit to seconds."""
        from numpyro.infer import MCMC, NUTS, init_to_median

        stats = standardise(data)
        cache_key = (num_warmup, num_samples, max_tree_depth)
        if cache_key not in mcmc_cache:
            # one MCMC object per setting, with the data as traced arguments: later calls
            # with the same shapes reuse the compiled sampler
            mcmc_cache[cache_key] = MCMC(
                NUTS(model, init_strategy=init_to_median, max_tree_depth=max_tree_depth),
                num_warmup=num_warmup,
                num_samples=num_samples,
                progress_bar=False,
                jit_model_args=True,
            )
        mcmc = mcmc_cache[cache_key]
        init = None if warm is None else _unconstrain(warm)
        mcmc.run(key, data, stats, init_params=init)
        samples = mcmc.get_samples()
        return {k: samples[k] for k, *_ in sites}

    def posterior(params, data: GPData, stats: Stats) -> Posterior:
        chol = jnp.linalg.cholesky(_gram(params, data))
        alpha = jax.scipy.linalg.cho_solve((chol, True), _targets(data, stats))
        return Posterior(chol, alpha, data, stats, params)

    def _cross(post: Posterior, xq, tq):
        kern = kernel(post.params)
        kq = jax.vmap(kern.evaluate, in_axes=(None, None, 0, 0))(xq, tq, post.data.x, post.data.fid)
        return jnp.where(post.data.mask, kq, jnp.zeros_like(kq))

    def predict(post: Posterior, xq, tq, mq):
        kq = _cross(post, xq, tq)
        mean_s = jnp.dot(kq, post.alpha)
        v = jax.scipy.linalg.solve_triangular(post.chol, kq, lower=True)
        kss = kernel(post.params).evaluate(xq, tq, xq, tq)
        var_s = jnp.maximum(kss - jnp.sum(v * v), 1e-12)
        mean = mq + post.stats.mu + post.stats.sd * mean_s
        return mean, var_s * post.stats.sd**2

    def predict_cov(post: Posterior, xq, tq, mq):
        kq = jax.vmap(_cross, in_axes=(None, 0, 0))(post, xq, tq)  # (Q, cap)
        mean_s = kq @ post.alpha
        v = jax.scipy.linalg.solve_triangular(post.chol, kq.T, lower=True)  # (cap, Q)
        kss = kernel(post.params).matrix(xq, tq, xq, tq)
        cov_s = kss - v.T @ v
        mean = mq + post.stats.mu + post.stats.sd * mean_s
        return mean, cov_s * post.stats.sd**2

    return GP(
        model=model,
        kernel=kernel,
        standardise=standardise,
        log_marginal=log_marginal,
        init_params=init_params,
        fit_map=fit_map,
        fit_nuts=fit_nuts,
        posterior=posterior,
        predict=predict,
        predict_cov=predict_cov,
        noise=noise,
    )
