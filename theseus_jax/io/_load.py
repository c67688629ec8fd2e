"""Load technology and system configs: JSON -> validated -> typed, SI-valued Modules.

Every config file has the same shape::

    {
      "name": "wse2",
      "kind": "tech" | "wafer" | "gpu",
      "description": "...",
      "tech": "n7",                     # wafer systems only: the technology they are built in
      "aliases": ["WSE-2", "CS-2"],     # optional, matched case-insensitively
      "notes": "...", "references": [], # optional, free text
      "fields": {FIELD: {"value": number, "unit": "GB/s", "source": "[V] ...",
                         "note": "...",            # optional, free text
                         "range": [lo, hi],        # optional, same unit as "value"
                         "dist": "loguniform"}}    # optional, needs "range"
    }

The files are validated once, here (STYLE.md anti-pattern 3): every field of the kind's
``*_FIELDS`` table must be present exactly once with a finite, non-negative number, a unit of
the right dimension and a non-empty source; categorical codes, fractions and counts are
range-checked. Every error names the file and the field and says how to fix it.

An optional ``"range": [lo, hi]`` states the plausible interval of an uncertain constant, in
the field's own unit, with ``0 <= lo <= value <= hi`` and ``lo < hi``; ``"dist"`` picks how
it is sampled (``"uniform"`` or ``"loguniform"``; by default log-uniform when ``lo > 0`` and
``hi / lo >= 3``, else uniform). Categorical and whole-number fields take no range. Ranges do
not change what :func:`load_tech` returns; :func:`tech_range_table` reads them (used by
:func:`load_tech_ranges`).

Files live in ``configs/tech/`` and ``configs/systems/`` (:func:`theseus_jax._paths.configs_dir`);
a path to a file elsewhere works too. Names resolve through
:func:`theseus_jax._config.resolve_config` (file stem, ``name`` or alias).
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np

from .._config import config_names, looks_like_path, resolve_config
from .._paths import configs_dir
from ..design import GPUSystem, WaferDesign
from ..tech import Tech, TechRanges
from ._schema import (
    KIND_CLASS,
    KIND_FIELDS,
    fields_of_kind,
    read_config,
    validate_config,
    validate_config_full,
)

__all__ = [
    "load_tech",
    "load_system",
    "list_systems",
    "list_techs",
    "system_tech_name",
    "system_kind",
    "design_to_dict",
    "design_from_dict",
    "fields_of_kind",
    "tech_range_table",
    "load_tech_ranges",
]

# ---------------------------------------------------------------------------------------
# finding files
# ---------------------------------------------------------------------------------------


def list_techs() -> list[str]:
    """Names (file stems) of the technology files in ``configs/tech/``."""
    return config_names("tech")


def list_systems() -> list[str]:
    """Names (file stems) of the system files in ``configs/systems/`` (wafer and GPU)."""
    return config_names("systems")


def load_tech(name_or_path) -> Tech:
    """Load a technology file (``configs/tech/<name>.json`` or a path) as a :class:`Tech`.

    Args:
        name_or_path: file stem (``"n7"``), the file's ``name`` or an alias, or a path.

    Returns:
        :class:`~theseus_jax.tech.Tech` with SI float32 scalar leaves.

    Raises:
        ValueError: unknown name (with the available ones and the closest match), or an
            invalid file (naming the file and field).

    Examples:
        >>> t = load_tech("n7")
        >>> round(float(t.reticle_w_m) * 1e3, 3), round(float(t.reticle_h_m) * 1e3, 3)
        (26.0, 33.0)
    """
    path = resolve_config("tech", name_or_path, "technology")
    _, values = validate_config(read_config(path), path, ("tech",))
    return Tech(**values)


def tech_range_table(name_or_path) -> dict[str, tuple[float, float, bool]]:
    """The uncertainty ranges of a technology file, validated and in SI units.

    Args:
        name_or_path: as for :func:`load_tech`.

    Returns:
        ``{field: (lo, hi, log)}`` for every field with a ``"range"``, in ``TECH_FIELDS``
        order; ``lo``/``hi`` in the field's SI unit, ``log`` True for log-uniform sampling.

    Examples:
        >>> lo, hi, log = tech_range_table("n7")["sram_energy_j_per_bit"]
        >>> round(lo * 1e12, 3), round(hi * 1e12, 3), log
        (0.02, 0.05, False)
    """
    path = resolve_config("tech", name_or_path, "technology")
    _, _, ranges = validate_config_full(read_config(path), path, ("tech",))
    return ranges


def load_tech_ranges(name_or_path) -> TechRanges:
    """Read the ``"range"``/``"dist"`` entries of a technology file as ranges.

    Args:
        name_or_path: file stem (``"n7"``), the file's ``name`` or an alias, or a path
            (resolved and validated exactly as by :func:`load_tech`).

    Returns:
        :class:`~theseus_jax.tech.TechRanges` with the ranged fields in :data:`TECH_FIELDS`
        order, SI units.

    Raises:
        ValueError: unknown technology, or an invalid file or range (naming file and field).

    Examples:
        >>> r = load_tech_ranges("n7")
        >>> "router_delay_cycles" in r.names, "sram_energy_j_per_bit" in r.names
        (False, True)
    """
    table = tech_range_table(name_or_path)
    names = tuple(table)
    return TechRanges(
        names,
        [table[n][0] for n in names],
        [table[n][1] for n in names],
        [table[n][2] for n in names],
    )


def load_system(name_or_path) -> WaferDesign | GPUSystem:
    """Load a system file (``configs/systems/<name>.json`` or a path).

    Args:
        name_or_path: file stem (``"wse2"``), the file's ``name`` or an alias
            (case-insensitive, e.g. ``"a100-sxm4-80gb"``), or a path.

    Returns:
        :class:`~theseus_jax.design.WaferDesign` for ``"kind": "wafer"`` files, or
        :class:`~theseus_jax.design.GPUSystem` for ``"kind": "gpu"``. Values are SI.

    Raises:
        ValueError: unknown name (listing the available ones and the closest match), or an
            invalid file (naming the file and field and the fix).

    Examples:
        >>> d = load_system("wse2")
        >>> int(d.reticles_per_wafer()), int(d.cores_per_reticle())
        (84, 10880)
    """
    path = resolve_config("systems", name_or_path, "system")
    doc = read_config(path)
    kind, values = validate_config(doc, path, ("wafer", "gpu"))
    if kind == "wafer":
        tech = doc["tech"]
        if not looks_like_path(tech) and tech.lower() not in {t.lower() for t in list_techs()}:
            close = difflib.get_close_matches(tech, list_techs(), n=1)
            raise ValueError(
                f"{path}: tech {tech!r} is not in {configs_dir() / 'tech'} "
                f"(available: {list_techs()})" + (f"; did you mean {close[0]!r}?" if close else "")
            )
    return KIND_CLASS[kind](**values)


def system_kind(name_or_path) -> str:
    """``"wafer"`` or ``"gpu"``: the kind a system file declares (validated)."""
    path = resolve_config("systems", name_or_path, "system")
    kind, _ = validate_config(read_config(path), path, ("wafer", "gpu"))
    return kind


def system_tech_name(name_or_path) -> str:
    """The technology (``configs/tech`` name) a wafer system file is built in.

    Raises:
        ValueError: for a GPU system (GPU files carry their own constants).

    Examples:
        >>> system_tech_name("wse3")
        'n5'
    """
    path = resolve_config("systems", name_or_path, "system")
    doc = read_config(path)
    kind, _ = validate_config(doc, path, ("wafer", "gpu"))
    if kind != "wafer":
        raise ValueError(
            f"{path}: {doc['name']!r} is a {kind} system; only wafer systems name a technology "
            "(GPU configs carry their own energy and area numbers)"
        )
    return doc["tech"]


# ---------------------------------------------------------------------------------------
# dict / CSV round trips
# ---------------------------------------------------------------------------------------


def _kind_of(design) -> str:
    for kind, cls in KIND_CLASS.items():
        if isinstance(design, cls):
            return kind
    raise TypeError(f"expected a WaferDesign, GPUSystem or Tech, got {type(design).__name__}")


def design_to_dict(design) -> dict[str, Any]:
    """``{field: value}`` in SI units (floats for one design, numpy arrays for a batch).

    The keys follow the kind's ``*_FIELDS`` order, so ``csv.DictWriter`` columns are stable.
    """
    kind = _kind_of(design)
    out: dict[str, Any] = {}
    for f, _, _ in KIND_FIELDS[kind]:
        a = np.asarray(getattr(design, f))
        out[f] = float(a) if a.ndim == 0 else a
    return out


def design_from_dict(kind: str, values: dict[str, Any], *, strict: bool = False):
    """Build a design (or :class:`Tech`) from ``{field: SI value}`` (inverse of design_to_dict).

    Args:
        kind: ``"wafer"``, ``"gpu"`` or ``"tech"``.
        values: SI values per field; scalars or equal-length sequences (a batch). Strings
            (as read by ``csv.DictReader``) are parsed as floats.
        strict: if True, keys that are not fields are an error; otherwise they are ignored
            (a CSV row usually carries metrics as well).

    Returns:
        :class:`WaferDesign`, :class:`GPUSystem` or :class:`Tech`.
    """
    table = fields_of_kind(kind)
    names = [f for f, _, _ in table]
    missing = [f for f in names if f not in values]
    unknown = sorted(set(values) - set(names)) if strict else []
    if missing or unknown:
        raise ValueError(
            f"design_from_dict({kind!r}): missing fields {missing}, unknown fields {unknown}; "
            f"expected {names}"
        )
    kw = {}
    for f in names:
        v = values[f]
        try:
            kw[f] = np.asarray(v, dtype=np.float64) if not isinstance(v, str) else float(v)
        except (TypeError, ValueError) as e:
            raise ValueError(f"design_from_dict({kind!r}): field {f}: not a number: {v!r}") from e
    return KIND_CLASS[kind](**kw)
