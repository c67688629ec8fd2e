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
import json
import math
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from .._config import config_names, looks_like_path, resolve_config
from .._paths import configs_dir
from .._units import to_si
from ..design import GPU_FIELDS, WAFER_FIELDS, GPUSystem, WaferDesign
from ..tech import TECH_FIELDS, Tech, TechRanges

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

_TOP_KEYS_REQUIRED = ("name", "kind", "description", "fields")
_TOP_KEYS_OPTIONAL = ("tech", "aliases", "notes", "references", "base")
_FIELD_KEYS_REQUIRED = ("value", "unit", "source")
_FIELD_KEYS_OPTIONAL = ("note", "range", "dist")
_DISTS = ("uniform", "loguniform")
# default dist: log-uniform when lo > 0 and the range spans at least this ratio
_LOG_DEFAULT_RATIO = 3.0

_KIND_FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "tech": TECH_FIELDS,
    "wafer": WAFER_FIELDS,
    "gpu": GPU_FIELDS,
}
_KIND_CLASS = MappingProxyType({"tech": Tech, "wafer": WaferDesign, "gpu": GPUSystem})
_KIND_DIR = MappingProxyType({"tech": "tech", "wafer": "systems", "gpu": "systems"})

# Range rules beyond "finite and >= 0" (static schema, not physics).
_CATEGORICAL: dict[str, tuple[int, ...]] = {
    "integration": (0, 1),
    "dram_kind": (0, 1, 2),
    "yield_model": (0, 1, 2),
}
_FRACTION_CLOSED = {
    "min_wafer_yield",
    "infosow_assembly_yield",
    "gemm_efficiency",
    "gemm_efficiency_8",
    "hbm_efficiency",
}
_FRACTION_OPEN = frozenset({"spare_core_frac"})  # in [0, 1)
_POSITIVE = {
    # tech
    "sram_density_bits_per_m2",
    "nb_alpha",
    "reticle_w_m",
    "reticle_h_m",
    "wafer_usable_side_m",
    "mac_area_m2",
    # wafer
    "macs_per_core",
    "link_bits_per_cycle",
    "n_vcs",
    "buffer_depth",
    "clock_hz",
    "core_rows",
    "core_cols",
    "reticle_rows",
    "reticle_cols",
    "n_wafers",
    # gpu
    "n_gpus",
    "gpus_per_node",
    "peak_flops_16",
}
_INTEGER = {
    "macs_per_core",
    "n_vcs",
    "buffer_depth",
    "core_rows",
    "core_cols",
    "reticle_rows",
    "reticle_cols",
    "n_wafers",
    "n_gpus",
    "gpus_per_node",
    "n_sms",
}


def fields_of_kind(kind: str) -> tuple[tuple[str, str, str], ...]:
    """The ``(field, SI unit, description)`` table of ``"tech"``, ``"wafer"`` or ``"gpu"``."""
    if kind not in _KIND_FIELDS:
        raise ValueError(f"unknown config kind {kind!r}; expected one of {sorted(_KIND_FIELDS)}")
    return _KIND_FIELDS[kind]


# ---------------------------------------------------------------------------------------
# finding files
# ---------------------------------------------------------------------------------------


def list_techs() -> list[str]:
    """Names (file stems) of the technology files in ``configs/tech/``."""
    return config_names("tech")


def list_systems() -> list[str]:
    """Names (file stems) of the system files in ``configs/systems/`` (wafer and GPU)."""
    return config_names("systems")


# A config file by path, file stem, ``name`` or alias (case-insensitive); the name is kept for
# the callers that import it (theseus_jax.validate._cases).
_resolve = resolve_config


def _read(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Parse one config file. A system file may name a ``base`` system (a derived part, e.g.
    H800 = H100 with its reduced NVLink): its ``fields`` then hold only what differs, and the
    rest is taken from the base (resolved like any system name), recursively."""
    try:
        doc = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise ValueError(
            f"{path}: top level must be a JSON object with keys {list(_TOP_KEYS_REQUIRED)}"
        )
    if "base" in doc:
        base = doc["base"]
        if not isinstance(base, str) or not base.strip():
            raise ValueError(f"{path}: 'base' must name a system config, got {base!r}")
        bpath = _resolve("systems", base, "base system")
        if bpath.resolve() in {p.resolve() for p in (*_seen, path)}:
            raise ValueError(f"{path}: 'base' chain loops back to {bpath}; remove the cycle")
        bdoc = _read(bpath, (*_seen, path))
        if not isinstance(doc.get("fields", {}), dict):
            raise ValueError(f"{path}: 'fields' must be an object of the fields that differ")
        merged = dict(bdoc.get("fields", {}))
        merged.update(doc.get("fields", {}))
        doc = {**{k: v for k, v in doc.items() if k != "base"}, "fields": merged}
        doc.setdefault("kind", bdoc.get("kind"))
        if "tech" in bdoc:
            doc.setdefault("tech", bdoc["tech"])
    return doc


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------


def _is_number(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)


def _check_range(
    entry: dict, f: str, si_unit: str, desc: str, where: str
) -> tuple[float, float, bool] | None:
    """Validate a field's optional ``range``/``dist``; return ``(lo_si, hi_si, log)`` or None.

    The checks run on the numbers as written (file unit); the bounds are then converted
    with the field's unit. ``log`` is True for log-uniform sampling.
    """
    has_range, has_dist = "range" in entry, "dist" in entry
    if not has_range:
        if has_dist:
            raise ValueError(f'{where}: "dist" needs a "range": [lo, hi]; add one or remove "dist"')
        return None
    if f in _CATEGORICAL or f in _INTEGER:
        what = "categorical" if f in _CATEGORICAL else "whole-number"
        raise ValueError(
            f'{where}: {f} is a {what} field and cannot have a "range"; remove it '
            "(sample such choices as separate scenarios instead)"
        )
    r = entry["range"]
    if not (isinstance(r, list) and len(r) == 2 and all(_is_number(b) for b in r)):
        raise ValueError(
            f'{where}: "range" must be a list of two finite numbers [lo, hi] in '
            f'{entry["unit"]!r} (the unit of "value"), got {r!r}'
        )
    lo, hi = float(r[0]), float(r[1])
    v = entry["value"]
    if lo < 0:
        raise ValueError(f"{where}: range [{lo}, {hi}] has a negative bound; {f} must be >= 0")
    if not lo < hi:
        raise ValueError(
            f"{where}: range [{lo}, {hi}] needs lo < hi; swap the bounds, or drop the "
            '"range" if the value is certain'
        )
    if not lo <= v <= hi:
        raise ValueError(
            f"{where}: range [{lo}, {hi}] must contain value {v}; widen the range or fix the value"
        )
    lo_si = to_si(lo, entry["unit"], where=where, target=si_unit)
    hi_si = to_si(hi, entry["unit"], where=where, target=si_unit)
    if f in _POSITIVE and not lo_si > 0:
        raise ValueError(f"{where}: range [{lo}, {hi}] must be > 0 ({desc}); raise lo")
    if f in _FRACTION_CLOSED and not (0.0 <= lo_si and hi_si <= 1.0):
        raise ValueError(f"{where}: range [{lo}, {hi}] must lie in [0, 1] ({desc})")
    if f in _FRACTION_OPEN and not (0.0 <= lo_si and hi_si < 1.0):
        raise ValueError(f"{where}: range [{lo}, {hi}] must lie in [0, 1) ({desc})")
    if has_dist:
        dist = entry["dist"]
        if dist not in _DISTS:
            raise ValueError(
                f'{where}: "dist" must be one of {list(_DISTS)}, got {dist!r} '
                "(omit it for the default)"
            )
        if dist == "loguniform" and not lo > 0:
            raise ValueError(
                f'{where}: "dist": "loguniform" needs lo > 0, got range [{lo}, {hi}]; '
                'raise lo or use "uniform"'
            )
        log = dist == "loguniform"
    else:
        log = lo > 0 and hi / lo >= _LOG_DEFAULT_RATIO
    return lo_si, hi_si, log


def _validate(doc: dict, path: Path, expect: tuple[str, ...]) -> tuple[str, dict[str, float]]:
    """Check one parsed config and return ``(kind, {field: SI value})``."""
    kind, values, _ = _validate_full(doc, path, expect)
    return kind, values


def _validate_full(
    doc: dict, path: Path, expect: tuple[str, ...]
) -> tuple[str, dict[str, float], dict[str, tuple[float, float, bool]]]:
    """:func:`_validate`, plus ``{field: (lo_si, hi_si, log)}`` for the ranged fields."""
    missing_top = [k for k in _TOP_KEYS_REQUIRED if k not in doc]
    unknown_top = sorted(set(doc) - set(_TOP_KEYS_REQUIRED) - set(_TOP_KEYS_OPTIONAL))
    if missing_top or unknown_top:
        raise ValueError(
            f"{path}: missing top-level keys {missing_top}, unknown top-level keys {unknown_top}. "
            f"Required: {list(_TOP_KEYS_REQUIRED)}; optional: {list(_TOP_KEYS_OPTIONAL)}"
        )
    kind = doc["kind"]
    if kind not in _KIND_FIELDS:
        raise ValueError(f"{path}: kind {kind!r} is not one of {sorted(_KIND_FIELDS)}")
    if kind not in expect:
        loader = "load_tech" if kind == "tech" else "load_system"
        raise ValueError(
            f"{path}: kind is {kind!r} but a {' or '.join(map(repr, expect))} config was "
            f"expected here; load this file with {loader}()"
        )
    if not isinstance(doc["name"], str) or not doc["name"].strip():
        raise ValueError(f"{path}: 'name' must be a non-empty string")
    aliases = doc.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise ValueError(f"{path}: 'aliases' must be a list of strings, got {aliases!r}")
    if kind == "wafer":
        if not isinstance(doc.get("tech"), str) or not doc["tech"].strip():
            raise ValueError(
                f'{path}: a wafer system must name its technology, e.g. "tech": "n7" '
                f"(available: {list_techs()})"
            )
    elif "tech" in doc:
        raise ValueError(
            f"{path}: only wafer systems name a 'tech'; remove it from this {kind} config"
        )

    table = _KIND_FIELDS[kind]
    names = [f for f, _, _ in table]
    fields = doc["fields"]
    if not isinstance(fields, dict):
        raise ValueError(f"{path}: 'fields' must be an object {{FIELD: {{value, unit, source}}}}")
    missing = [f for f in names if f not in fields]
    unknown = sorted(set(fields) - set(names))
    if missing or unknown:
        sugg = []
        for u in unknown:
            c = difflib.get_close_matches(u, names, n=1)
            if c:
                sugg.append(f"{u!r} -> {c[0]!r}?")
        raise ValueError(
            f"{path}: missing fields {missing}, unknown fields {unknown}"
            + (f" (did you mean: {', '.join(sugg)})" if sugg else "")
            + f". A {kind} config needs exactly these fields: {names}"
        )
    out: dict[str, float] = {}
    ranges: dict[str, tuple[float, float, bool]] = {}
    for f, si_unit, desc in table:
        where = f"{path}: field {f}"
        entry = fields[f]
        if not isinstance(entry, dict):
            raise ValueError(
                f'{where}: must be an object {{"value", "unit", "source"}}, got {entry!r}'
            )
        miss = [k for k in _FIELD_KEYS_REQUIRED if k not in entry]
        extra = sorted(set(entry) - set(_FIELD_KEYS_REQUIRED) - set(_FIELD_KEYS_OPTIONAL))
        if miss or extra:
            raise ValueError(
                f"{where}: missing keys {miss}, unknown keys {extra}; each field needs "
                f"{list(_FIELD_KEYS_REQUIRED)} (optional {list(_FIELD_KEYS_OPTIONAL)})"
            )
        v = entry["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(
                f"{where}: value must be a finite number ({desc}, in {si_unit}), got {v!r}"
            )
        if v < 0:
            raise ValueError(f"{where}: value {v} is negative; {f} ({desc}) must be >= 0")
        if not isinstance(entry["source"], str) or not entry["source"].strip():
            raise ValueError(
                f"{where}: 'source' must name where the number comes from, "
                "with a [V]/[S]/[D]/[U] tag"
            )
        x = to_si(v, entry["unit"], where=where, target=si_unit)
        if f in _CATEGORICAL and x not in _CATEGORICAL[f]:
            raise ValueError(
                f"{where}: value {v} is not a valid code; {desc}: one of {list(_CATEGORICAL[f])}"
            )
        if f in _FRACTION_CLOSED and not (0.0 <= x <= 1.0):
            raise ValueError(f"{where}: value {x} must be a fraction in [0, 1] ({desc})")
        if f in _FRACTION_OPEN and not (0.0 <= x < 1.0):
            raise ValueError(f"{where}: value {x} must be a fraction in [0, 1) ({desc})")
        if f in _POSITIVE and not x > 0:
            raise ValueError(f"{where}: value must be > 0 ({desc})")
        if f in _INTEGER and x != round(x):
            raise ValueError(f"{where}: value {x} must be a whole number ({desc})")
        out[f] = x
        r = _check_range(entry, f, si_unit, desc, where)
        if r is not None:
            ranges[f] = r
    return kind, out, ranges


# ---------------------------------------------------------------------------------------
# public loaders
# ---------------------------------------------------------------------------------------


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
    path = _resolve("tech", name_or_path, "technology")
    _, values = _validate(_read(path), path, ("tech",))
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
    path = _resolve("tech", name_or_path, "technology")
    _, _, ranges = _validate_full(_read(path), path, ("tech",))
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
    path = _resolve("systems", name_or_path, "system")
    doc = _read(path)
    kind, values = _validate(doc, path, ("wafer", "gpu"))
    if kind == "wafer":
        tech = doc["tech"]
        if not looks_like_path(tech) and tech.lower() not in {t.lower() for t in list_techs()}:
            close = difflib.get_close_matches(tech, list_techs(), n=1)
            raise ValueError(
                f"{path}: tech {tech!r} is not in {configs_dir() / 'tech'} "
                f"(available: {list_techs()})" + (f"; did you mean {close[0]!r}?" if close else "")
            )
    return _KIND_CLASS[kind](**values)


def system_kind(name_or_path) -> str:
    """``"wafer"`` or ``"gpu"``: the kind a system file declares (validated)."""
    path = _resolve("systems", name_or_path, "system")
    kind, _ = _validate(_read(path), path, ("wafer", "gpu"))
    return kind


def system_tech_name(name_or_path) -> str:
    """The technology (``configs/tech`` name) a wafer system file is built in.

    Raises:
        ValueError: for a GPU system (GPU files carry their own constants).

    Examples:
        >>> system_tech_name("wse3")
        'n5'
    """
    path = _resolve("systems", name_or_path, "system")
    doc = _read(path)
    kind, _ = _validate(doc, path, ("wafer", "gpu"))
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
    for kind, cls in _KIND_CLASS.items():
        if isinstance(design, cls):
            return kind
    raise TypeError(f"expected a WaferDesign, GPUSystem or Tech, got {type(design).__name__}")


def design_to_dict(design) -> dict[str, Any]:
    """``{field: value}`` in SI units (floats for one design, numpy arrays for a batch).

    The keys follow the kind's ``*_FIELDS`` order, so ``csv.DictWriter`` columns are stable.
    """
    kind = _kind_of(design)
    out: dict[str, Any] = {}
    for f, _, _ in _KIND_FIELDS[kind]:
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
    return _KIND_CLASS[kind](**kw)
