"""Generic multi-fidelity Bayesian optimisation on the unit cube (problem-agnostic).

Public API:

* Engine: :class:`MFBOConfig`, :class:`MFBOState`, :class:`Proposal`, :class:`MFBO`,
  :func:`make_mfbo`, :func:`make_random_search`, :func:`single_fidelity`, :func:`grow_state`,
  :func:`latin_hypercube`.
* Surrogate: :func:`make_gp`, :class:`GP`, :class:`GPData`, :class:`GPPriors`, :class:`Stats`,
  :class:`Posterior`, :func:`empty_data`, :func:`grow_capacity`; kernels :class:`Matern52`,
  :class:`SingleFidelityKernel`, :class:`AR1Kernel`, :class:`LinearTruncatedKernel`.
* Acquisition (pure, one point): :func:`log_ei`, :func:`log_h`, :func:`log1mexp`,
  :func:`ehvi_2d`, :func:`parego_scalarize`, :func:`sample_simplex`, :func:`fidelity_scores`.
* Test problems: :mod:`theseus_jax.bo.testfns`.
"""

from ._acquisition import (
    ehvi_2d as ehvi_2d,
    fidelity_scores as fidelity_scores,
    log1mexp as log1mexp,
    log_ei as log_ei,
    log_h as log_h,
    parego_scalarize as parego_scalarize,
    sample_simplex as sample_simplex,
)
from ._gp import (
    GP as GP,
    KERNEL_KINDS as KERNEL_KINDS,
    GPData as GPData,
    GPPriors as GPPriors,
    Posterior as Posterior,
    Stats as Stats,
    empty_data as empty_data,
    grow_capacity as grow_capacity,
    make_gp as make_gp,
)
from ._kernels import (
    AbstractFidelityKernel as AbstractFidelityKernel,
    AR1Kernel as AR1Kernel,
    LinearTruncatedKernel as LinearTruncatedKernel,
    Matern52 as Matern52,
    SingleFidelityKernel as SingleFidelityKernel,
    matern52 as matern52,
)
from ._loop import (
    MFBO as MFBO,
    MFBOConfig as MFBOConfig,
    MFBOState as MFBOState,
    Proposal as Proposal,
    grow_state as grow_state,
    latin_hypercube as latin_hypercube,
    make_mfbo as make_mfbo,
    make_random_search as make_random_search,
    single_fidelity as single_fidelity,
)
