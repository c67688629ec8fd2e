"""Unit strings -> SI factors, used only at the I/O boundary (config files, CLI, tables).

Inside the model every quantity is SI (m, m^2, s, J, W, B, bit, Hz); the unit a field is
stored in is the unit named in its ``*_FIELDS`` table (e.g. ``"B/s"``, ``"bit/m^2"``,
``"J/bit"``). A config file may give any unit of the same *dimension*; :func:`to_si`
converts it and raises a ``ValueError`` that names the offending file and field and lists
the units it accepts.

Conventions:

* Data sizes: ``KB/MB/GB/TB`` are decimal (1e3...), ``KiB/MiB/GiB/TiB`` binary (2^10...).
  ``b`` is a bit and ``B`` a byte (1 B = 8 bit); unit strings are case sensitive
  (``Gb/s`` != ``GB/s``).
* ``TB/s/100mm^2`` is the customary way of quoting stacked-DRAM bandwidth density
  (BRIEF section 2: 0.25-4 TB/s per 100 mm^2).
* ``cycle``, ``flit``, ``MAC``, ``FLOP`` are counted units with their own dimension, so that
  a bandwidth per cycle cannot be confused with a bandwidth per second.

Examples:
    >>> to_si(48, "KiB", where="wse2.json: sram_bytes_per_core", target="B")
    49152.0
    >>> to_si(1.0, "Tb/s/mm", where="n7.json: dram_edge_bw_density_bytes_per_s_m")
    125000000000000.0
"""

from __future__ import annotations

import difflib
from types import MappingProxyType

__all__ = ["UNITS", "to_si", "dimension_of", "units_of_dimension", "si_unit_of"]

_KI, _MI, _GI, _TI = 2.0**10, 2.0**20, 2.0**30, 2.0**40
_BYTE = 1.0  # data sizes are in bytes (B) ...
_BIT_B = 1.0 / 8.0  # ... and one bit is 1/8 B when a size is given in bits

# unit -> (dimension, factor to the dimension's SI unit). The SI unit of each dimension is
# listed in _SI_UNIT below and always has factor 1.
UNITS: dict[str, tuple[str, float]] = {
    # dimensionless, categorical, counted
    "1": ("dimensionless", 1.0),
    "%": ("dimensionless", 1e-2),
    "cat": ("categorical", 1.0),
    "cycle": ("cycles", 1.0),
    "flit": ("flits", 1.0),
    # length
    "m": ("length", 1.0),
    "cm": ("length", 1e-2),
    "mm": ("length", 1e-3),
    "um": ("length", 1e-6),
    "nm": ("length", 1e-9),
    # area
    "m^2": ("area", 1.0),
    "cm^2": ("area", 1e-4),
    "mm^2": ("area", 1e-6),
    "um^2": ("area", 1e-12),
    # energy
    "J": ("energy", 1.0),
    "mJ": ("energy", 1e-3),
    "nJ": ("energy", 1e-9),
    "pJ": ("energy", 1e-12),
    "fJ": ("energy", 1e-15),
    # energy per bit, per bit and length, per FLOP
    "J/bit": ("energy/bit", 1.0),
    "nJ/bit": ("energy/bit", 1e-9),
    "pJ/bit": ("energy/bit", 1e-12),
    "fJ/bit": ("energy/bit", 1e-15),
    "J/bit/m": ("energy/bit/length", 1.0),
    "pJ/bit/mm": ("energy/bit/length", 1e-12 / 1e-3),
    "fJ/bit/mm": ("energy/bit/length", 1e-15 / 1e-3),
    "J/FLOP": ("energy/FLOP", 1.0),
    "pJ/FLOP": ("energy/FLOP", 1e-12),
    "fJ/FLOP": ("energy/FLOP", 1e-15),
    # power and power density
    "W": ("power", 1.0),
    "mW": ("power", 1e-3),
    "kW": ("power", 1e3),
    "W/m^2": ("power/area", 1.0),
    "W/cm^2": ("power/area", 1e4),
    "W/mm^2": ("power/area", 1e6),
    # per area (defect density)
    "1/m^2": ("1/area", 1.0),
    "1/cm^2": ("1/area", 1e4),
    "1/mm^2": ("1/area", 1e6),
    # data size
    "B": ("data", _BYTE),
    "KB": ("data", 1e3),
    "MB": ("data", 1e6),
    "GB": ("data", 1e9),
    "TB": ("data", 1e12),
    "KiB": ("data", _KI),
    "MiB": ("data", _MI),
    "GiB": ("data", _GI),
    "TiB": ("data", _TI),
    "bit": ("data", _BIT_B),
    "Kb": ("data", 1e3 * _BIT_B),
    "Mb": ("data", 1e6 * _BIT_B),
    "Gb": ("data", 1e9 * _BIT_B),
    # data per cycle, MACs per cycle
    "bit/cycle": ("data/cycle", 1.0),
    "B/cycle": ("data/cycle", 8.0),
    "MAC/cycle": ("MAC/cycle", 1.0),
    # bandwidth (bytes per second)
    "B/s": ("bandwidth", 1.0),
    "KB/s": ("bandwidth", 1e3),
    "MB/s": ("bandwidth", 1e6),
    "GB/s": ("bandwidth", 1e9),
    "TB/s": ("bandwidth", 1e12),
    "bit/s": ("bandwidth", _BIT_B),
    "Gb/s": ("bandwidth", 1e9 * _BIT_B),
    "Tb/s": ("bandwidth", 1e12 * _BIT_B),
    # bandwidth per length of shoreline
    "B/s/m": ("bandwidth/length", 1.0),
    "GB/s/mm": ("bandwidth/length", 1e9 / 1e-3),
    "TB/s/mm": ("bandwidth/length", 1e12 / 1e-3),
    "Gb/s/mm": ("bandwidth/length", 1e9 * _BIT_B / 1e-3),
    "Tb/s/mm": ("bandwidth/length", 1e12 * _BIT_B / 1e-3),
    # bandwidth per area (stacked DRAM)
    "B/s/m^2": ("bandwidth/area", 1.0),
    "GB/s/mm^2": ("bandwidth/area", 1e9 / 1e-6),
    "TB/s/mm^2": ("bandwidth/area", 1e12 / 1e-6),
    "TB/s/cm^2": ("bandwidth/area", 1e12 / 1e-4),
    "TB/s/100mm^2": ("bandwidth/area", 1e12 / 100e-6),
    # bit density (SRAM)
    "bit/m^2": ("bits/area", 1.0),
    "bit/um^2": ("bits/area", 1e12),
    "Mb/mm^2": ("bits/area", 1e6 / 1e-6),
    "Mib/mm^2": ("bits/area", _MI / 1e-6),
    # frequency and time
    "Hz": ("frequency", 1.0),
    "kHz": ("frequency", 1e3),
    "MHz": ("frequency", 1e6),
    "GHz": ("frequency", 1e9),
    "s": ("time", 1.0),
    "ms": ("time", 1e-3),
    "us": ("time", 1e-6),
    "ns": ("time", 1e-9),
    "ps": ("time", 1e-12),
    # compute rate
    "FLOP/s": ("compute", 1.0),
    "GFLOP/s": ("compute", 1e9),
    "TFLOP/s": ("compute", 1e12),
    "PFLOP/s": ("compute", 1e15),
    # area per bit, per bit^2 (crossbar), per bit/cycle of port width
    "m^2/bit": ("area/bit", 1.0),
    "um^2/bit": ("area/bit", 1e-12),
    "m^2/bit^2": ("area/bit^2", 1.0),
    "um^2/bit^2": ("area/bit^2", 1e-12),
    "m^2/(bit/cycle)": ("area/(bit/cycle)", 1.0),
    "um^2/(bit/cycle)": ("area/(bit/cycle)", 1e-12),
}


def _si_units() -> MappingProxyType:
    """Dimension -> its SI unit string (the first factor-1 unit of the table)."""
    out: dict[str, str] = {}
    for u, (d, fac) in UNITS.items():
        if fac == 1.0 and d not in out:
            out[d] = u
    return MappingProxyType(out)


_SI_UNIT = _si_units()  # read-only view: derived once from UNITS, never mutated


def dimension_of(unit: str) -> str | None:
    """The dimension name of ``unit`` (e.g. ``"bandwidth"``), or ``None`` if unknown."""
    entry = UNITS.get(unit)
    return entry[0] if entry else None


def si_unit_of(dimension: str) -> str:
    """The SI unit string of a dimension (factor 1), e.g. ``"B/s"`` for ``"bandwidth"``."""
    return _SI_UNIT[dimension]


def units_of_dimension(dimension: str) -> list[str]:
    """All accepted unit strings of one dimension, in table order."""
    return [u for u, (d, _) in UNITS.items() if d == dimension]


def to_si(value: float, unit: str, *, where: str, target: str | None = None) -> float:
    """Convert ``value`` given in ``unit`` to SI (or to the unit ``target``).

    .. math:: x_\\mathrm{target} = x \\cdot f_\\mathrm{unit} / f_\\mathrm{target}

    where :math:`f` is the factor of a unit to the SI unit of its dimension.

    Args:
        value: the number as written in the config.
        unit: its unit string, one of :data:`UNITS`.
        where: a human-readable location used in error messages, e.g.
            ``"configs/tech/n7.json: field mac_area_m2"``.
        target: the unit the caller stores the value in (the field's unit). When given, the
            dimensions must agree. ``None`` converts to the SI unit of ``unit``'s dimension.

    Returns:
        The value as a Python float in ``target`` (or SI) units.

    Raises:
        ValueError: unknown unit, or a unit whose dimension differs from ``target``'s; the
            message names ``where`` and lists the accepted units.
    """
    if target is not None and target not in UNITS:
        raise ValueError(
            f"{where}: internal error, target unit {target!r} is not in the unit table"
        )
    want_dim = UNITS[target][0] if target is not None else None
    if not isinstance(unit, str) or unit not in UNITS:
        if want_dim is not None:
            accepted = units_of_dimension(want_dim)
        else:
            accepted = sorted(UNITS)
        close = difflib.get_close_matches(str(unit), list(UNITS), n=1, cutoff=0.5)
        ci = [u for u in UNITS if isinstance(unit, str) and u.lower() == unit.lower()]
        hint = ""
        if ci:
            hint = f" Unit strings are case sensitive: did you mean {' or '.join(map(repr, ci))}?"
        elif close:
            hint = f" Closest known unit: {close[0]!r}."
        dim_txt = f" for {want_dim} (stored as {target!r})" if want_dim else ""
        raise ValueError(
            f"{where}: unknown unit {unit!r}.{hint} Accepted units{dim_txt}: {accepted}"
        )
    dim, fac = UNITS[unit]
    if want_dim is not None and dim != want_dim:
        raise ValueError(
            f"{where}: unit {unit!r} measures {dim}, but this field measures {want_dim} "
            f"(stored as {target!r}). Accepted units: {units_of_dimension(want_dim)}"
        )
    tfac = UNITS[target][1] if target is not None else 1.0
    return float(value) * fac / tfac
