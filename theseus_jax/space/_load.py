"""Load design spaces from ``configs/spaces/<name>.json`` (or a path), validated.

A space file is ``{"name", "kind": "space", "description", "tech", "params": {FIELD: spec},
"sram_pairs"?, "fit_rule"?, "notes"?, "references"?}``: one spec per ``WAFER_FIELDS`` entry
(:func:`theseus_jax.space._fields.parse_spec`) and an optional SRAM-compiler table
(:func:`theseus_jax.space._sram.parse_pairs`). Names resolve like every other config
(:func:`theseus_jax._config.resolve_config`).
"""

from __future__ import annotations

import json

from .._config import config_names, resolve_config
from ..io import load_tech
from ..tech import Tech
from ._fields import _FIELD_NAMES, parse_spec
from ._space import DesignSpace
from ._sram import parse_pairs

__all__ = ["load_space", "list_spaces"]


def list_spaces() -> list[str]:
    """Names of the design-space files in ``configs/spaces/``."""
    return sorted(config_names("spaces"))


def load_space(name_or_path, *, tech: Tech | str | None = None) -> DesignSpace:
    """Load a design space from ``configs/spaces/<name>.json`` (or a path), validated.

    Args:
        name_or_path: space name (file stem or the file's ``name``, case-insensitive) or
            path to a JSON file.
        tech: technology for the fit rule: a :class:`Tech`, a tech name, or ``None`` for the
            one the file names.

    Returns:
        :class:`DesignSpace`.

    Raises:
        ValueError: unknown space (listing the available ones), or an invalid file (naming
            the parameter and the fix).

    Examples:
        >>> space = load_space("theseus_2024")
        >>> "macs_per_core" in space.names and "reticle_rows" not in space.names
        True
    """
    path = resolve_config("spaces", name_or_path, "design space")
    try:
        doc = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    req = {"name", "kind", "description", "tech", "params"}
    opt = {"sram_pairs", "fit_rule", "notes", "references"}
    if not isinstance(doc, dict) or req - set(doc) or set(doc) - req - opt:
        got = set(doc) if isinstance(doc, dict) else set()
        raise ValueError(
            f"{path}: missing keys {sorted(req - got)}, unknown keys {sorted(got - req - opt)}; "
            f"a space file has {sorted(req)} (optional {sorted(opt)})"
        )
    if doc["kind"] != "space":
        raise ValueError(f"{path}: kind is {doc['kind']!r}, expected 'space'")
    params = doc["params"]
    if not isinstance(params, dict):
        raise ValueError(f"{path}: 'params' must map every design field to a spec")
    missing = [f for f in _FIELD_NAMES if f not in params]
    unknown = sorted(set(params) - set(_FIELD_NAMES))
    if missing or unknown:
        raise ValueError(
            f"{path}: params missing {missing}, unknown {unknown}; a space needs one spec "
            f"for each of {list(_FIELD_NAMES)}"
        )
    specs = {f: parse_spec(f, params[f], path) for f in _FIELD_NAMES}
    pairs = parse_pairs(doc.get("sram_pairs"), path, specs)
    fit = doc.get("fit_rule", True)
    if not isinstance(fit, bool):
        raise ValueError(f"{path}: fit_rule must be true or false")
    if tech is None:
        tech = doc["tech"]
    if not isinstance(tech, Tech):
        tech = load_tech(tech)
    return DesignSpace(
        name=str(doc["name"]),
        specs=tuple(specs[f] for f in _FIELD_NAMES),
        sram_pairs=pairs,
        tech=tech,
        enforce_fit=fit,
        description=str(doc["description"]),
    )
