"""The schema of technology and system config files, and their validation (see
:mod:`theseus_jax.io._load` for the file format). Every error names the file and the field
and says how to fix it."""

from __future__ import annotations

import difflib
import json
import math
from pathlib import Path
from types import MappingProxyType

from .._config import config_names, resolve_config
from .._units import to_si
from ..design import GPU_FIELDS, WAFER_FIELDS, GPUSystem, WaferDesign
from ..tech import TECH_FIELDS, Tech

__all__ = [
    "fields_of_kind",
    "read_config",
    "validate_config",
    "validate_config_full",
    "KIND_CLASS",
    "KIND_FIELDS",
]

_TOP_KEYS_REQUIRED = ("name", "kind", "description", "fields")
_TOP_KEYS_OPTIONAL = ("tech", "aliases", "notes", "references", "base")
_FIELD_KEYS_REQUIRED = ("value", "unit", "source")
_FIELD_KEYS_OPTIONAL = ("note", "range", "dist")
_DISTS = ("uniform", "loguniform")
# default dist: log-uniform when lo > 0 and the range spans at least this ratio
_LOG_DEFAULT_RATIO = 3.0

KIND_FIELDS = MappingProxyType({"tech": TECH_FIELDS, "wafer": WAFER_FIELDS, "gpu": GPU_FIELDS})
KIND_CLASS = MappingProxyType({"tech": Tech, "wafer": WaferDesign, "gpu": GPUSystem})
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
    if kind not in KIND_FIELDS:
        raise ValueError(f"unknown config kind {kind!r}; expected one of {sorted(KIND_FIELDS)}")
    return KIND_FIELDS[kind]


def read_config(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
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
        bpath = resolve_config("systems", base, "base system")
        if bpath.resolve() in {p.resolve() for p in (*_seen, path)}:
            raise ValueError(f"{path}: 'base' chain loops back to {bpath}; remove the cycle")
        bdoc = read_config(bpath, (*_seen, path))
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


def validate_config(doc: dict, path: Path, expect: tuple[str, ...]) -> tuple[str, dict[str, float]]:
    """Check one parsed config and return ``(kind, {field: SI value})``."""
    kind, values, _ = validate_config_full(doc, path, expect)
    return kind, values


def validate_config_full(
    doc: dict, path: Path, expect: tuple[str, ...]
) -> tuple[str, dict[str, float], dict[str, tuple[float, float, bool]]]:
    """:func:`validate_config`, plus ``{field: (lo_si, hi_si, log)}`` for the ranged fields."""
    missing_top = [k for k in _TOP_KEYS_REQUIRED if k not in doc]
    unknown_top = sorted(set(doc) - set(_TOP_KEYS_REQUIRED) - set(_TOP_KEYS_OPTIONAL))
    if missing_top or unknown_top:
        raise ValueError(
            f"{path}: missing top-level keys {missing_top}, unknown top-level keys {unknown_top}. "
            f"Required: {list(_TOP_KEYS_REQUIRED)}; optional: {list(_TOP_KEYS_OPTIONAL)}"
        )
    kind = doc["kind"]
    if kind not in KIND_FIELDS:
        raise ValueError(f"{path}: kind {kind!r} is not one of {sorted(KIND_FIELDS)}")
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
                f"(available: {config_names('tech')})"
            )
    elif "tech" in doc:
        raise ValueError(
            f"{path}: only wafer systems name a 'tech'; remove it from this {kind} config"
        )

    table = KIND_FIELDS[kind]
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
