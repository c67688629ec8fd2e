"""Design pytrees: :class:`WaferDesign` and :class:`GPUSystem` with their field tables and
enums. The design space (legal values, sampling, loading) is :mod:`theseus_jax.space`."""

from ._gpu import GPU_FIELDS as GPU_FIELDS, GPUSystem as GPUSystem, with_gpus as with_gpus
from ._wafer import (
    WAFER_FIELDS as WAFER_FIELDS,
    DramKind as DramKind,
    Integration as Integration,
    WaferDesign as WaferDesign,
)
