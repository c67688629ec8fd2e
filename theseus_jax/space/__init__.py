"""The wafer-scale design space: legal values, encodings, sampling, enumeration and loading.

Layering: ``space`` sits above :mod:`theseus_jax.cost` and :mod:`theseus_jax.io` (the fit rule
and the tech of a space file come from them); :mod:`theseus_jax.design` holds only the design
pytrees. Modules: ``_fields`` (:class:`ParamSpec`, its kinds and schema), ``_sram`` (the
SRAM-compiler pair table), ``_fit`` (the physical fit rule on host columns,
:func:`iso_peak_count`), ``_space`` (:class:`DesignSpace`), ``_load`` (:func:`load_space`).
"""

from ._fields import ParamSpec as ParamSpec
from ._fit import iso_peak_count as iso_peak_count
from ._load import list_spaces as list_spaces, load_space as load_space
from ._space import DesignSpace as DesignSpace
