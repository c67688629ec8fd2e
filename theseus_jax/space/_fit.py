"""Host-side bridges to the cost model: the physical fit rule and core pitch on design columns,
and the iso-peak unit count.

The space works on ``{field: float64 column}`` dicts (numpy); the cost model on
:class:`WaferDesign` batches (JAX). The batched physical checks run jitted on fixed-size
chunks so that one compilation serves every batch size (eager ops would recompile for each
new shape). This is the only module of :mod:`theseus_jax.space` that imports
:mod:`theseus_jax.cost`.
"""

from __future__ import annotations

import jax
import numpy as np

from ..cost.area import core_pitch_m
from ..cost.physical import fit_violations
from ..design._wafer import WaferDesign
from ..tech import Tech
from ._fields import _FIELD_NAMES

__all__ = ["core_pitch", "fit_codes", "iso_peak_count"]

_CHUNK = 8192
_PITCH = jax.jit(jax.vmap(core_pitch_m, in_axes=(0, None)))
_FIT_VIOLATIONS = jax.jit(jax.vmap(fit_violations, in_axes=(0, None)))


def _chunked(fn, cols: dict[str, np.ndarray], tech: Tech) -> np.ndarray:
    """Apply a jitted ``fn(WaferDesign batch, tech)`` over columns in fixed-size chunks."""
    n = next(iter(cols.values())).shape[0]
    outs = []
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        pad = _CHUNK - (stop - start)
        chunk = {f: np.pad(cols[f][start:stop], (0, pad), mode="edge") for f in _FIELD_NAMES}
        outs.append(np.asarray(fn(WaferDesign(**chunk), tech))[: stop - start])
    return np.concatenate(outs) if outs else np.zeros(0)


def core_pitch(cols: dict[str, np.ndarray], tech: Tech) -> np.ndarray:
    """Core pitch (m, float64) of each design (:func:`theseus_jax.cost.area.core_pitch_m`)."""
    return _chunked(_PITCH, cols, tech).astype(np.float64)


def fit_codes(cols: dict[str, np.ndarray], tech: Tech) -> np.ndarray:
    """Violation codes (uint32) of the physical fit rule for each design
    (:func:`theseus_jax.cost.physical.fit_violations`)."""
    return _chunked(_FIT_VIOLATIONS, cols, tech).astype(np.uint32)


def iso_peak_count(per_unit_flops, target_flops, *, lo: float = 1, hi: float = 4096):
    """Whole number of units (wafers, GPUs, ...) ``k`` in ``lo..hi`` whose peak
    ``k * per_unit_flops`` is closest to ``target_flops`` in ratio (``|log|`` distance).

    Args:
        per_unit_flops: peak FLOP/s of one unit (array).
        target_flops: target system peak FLOP/s.
    Returns:
        float64 array of counts, shaped like ``per_unit_flops``.
    """
    ratio = np.asarray(target_flops, np.float64) / np.maximum(
        np.asarray(per_unit_flops, np.float64), 1e-30
    )
    lo_k = np.clip(np.floor(ratio), lo, hi)
    hi_k = np.clip(np.ceil(ratio), lo, hi)
    err_lo = np.abs(np.log(lo_k / ratio))
    err_hi = np.abs(np.log(hi_k / ratio))
    return np.where(err_hi < err_lo, hi_k, lo_k)
