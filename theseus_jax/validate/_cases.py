"""Predict published measurements (``validation_cases.json`` schema) from hardware specs.

Each case names its hardware (``hardware.accelerator`` resolved to a system config by alias,
``hardware.count`` GPUs), its model, its parallelism and batch, and one metric. The case is
evaluated under exactly its own mapping (no search) with the one set of constants in the
system config. Cases the model cannot yet predict are returned as ``unsupported`` with the
reason; none is dropped.

How a case is read (metric wording, model names and shapes, hardware aliases, parallelism
fields, batch, software era, inference batch) is :mod:`._interpret`; every assumption made is
returned with the row (``assumptions``, ``rules``) and printed by ``theseus validate
--explain``. Nothing is keyed to a case id or a source.

This module holds the cases file and the entry points (:func:`predict_case`,
:func:`validate_cases`); a training case is set up and predicted by :mod:`._training_case`, an
inference case by :mod:`._inference_case`, and both build their rows with :mod:`._common`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._paths import configs_dir
from ._common import CaseResult, _number_or_none, _unsupported
from ._inference_case import _predict_inference, inference_setup
from ._interpret import CaseError, Notes
from ._metric_kinds import Unsupported
from ._training_case import _predict_training, training_setup

__all__ = [
    "load_cases",
    "predict_case",
    "validate_cases",
    "default_cases_path",
    "CaseResult",
    "training_setup",
    "inference_setup",
]


def default_cases_path() -> Path:
    """The reference file: ``$THESEUS_CASES``, else ``../shared/reference/validation_cases.json``
    beside the repository when present, else ``configs/validation/validation_cases.json`` (an
    identical copy shipped with the package, so a fresh clone works alone)."""
    env = os.environ.get("THESEUS_CASES")
    if env:
        return Path(env)
    shared = configs_dir().parent.parent / "shared" / "reference" / "validation_cases.json"
    if shared.exists():
        return shared
    return configs_dir() / "validation" / "validation_cases.json"


def load_cases(path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Read and check a cases file; errors name the file, the case and the field."""
    p = Path(path) if path is not None else default_cases_path()
    if not p.exists():
        raise ValueError(f"validation cases file not found: {p} (pass --cases FILE)")
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON ({e})") from None
    cases = doc.get("cases") if isinstance(doc, dict) else None
    if not isinstance(cases, list):
        raise ValueError(f"{p}: expected an object with a 'cases' list")
    for i, c in enumerate(cases):
        for key in ("id", "category", "hardware", "model", "metric", "value"):
            if key not in c:
                raise ValueError(f"{p}: case #{i} ({c.get('id', '?')}) lacks field {key!r}")
    return cases


# ---- entry points -------------------------------------------------------------------------


def predict_case(c: dict) -> CaseResult:
    """Predict one case, or say why it is unsupported; never raises for a malformed case."""
    notes = Notes()
    cat = c.get("category")
    value = c.get("value")
    if _number_or_none(value) is None or _number_or_none(value) <= 0:
        why = (
            "is a list (write one case per measurement)"
            if isinstance(value, list)
            else "is missing"
            if value is None
            else "is not one positive number"
        )
        return _unsupported(c, f"malformed: value {value!r} {why}", notes)
    if cat not in ("training", "inference"):
        return _unsupported(c, f"unknown category {cat!r} (expected training or inference)")
    try:
        if cat == "inference":
            return _predict_inference(c, notes)
        return _predict_training(c, notes)
    except Unsupported as e:
        return _unsupported(c, str(e), notes)
    except CaseError as e:
        return _unsupported(c, f"malformed: {e}", notes)
    except (KeyError, TypeError, ValueError) as e:
        msg = str(e)
        if "unknown system" in msg or "system" in msg.lower() and "available" in msg.lower():
            return _unsupported(c, f"hardware not modelled: {msg}", notes)
        return _unsupported(c, f"case setup incomplete: {type(e).__name__}: {msg}", notes)


def validate_cases(path=None) -> dict[str, Any]:
    """Predict every case of a file; returns ``{"rows": [...], "mape_pct": ...,
    "mape_pct_by_category": ..., "mape_pct_by_group": ..., "rules_fired": ...}``."""
    rows = [predict_case(c) for c in load_cases(path)]
    errs = [abs(r["error_pct"]) for r in rows if r["error_pct"] is not None]
    by_cat: dict[str, list[float]] = {}
    by_group: dict[str, list[float]] = {}
    fired: dict[str, int] = {}
    for r in rows:
        if r["error_pct"] is not None:
            by_cat.setdefault(r["category"], []).append(abs(r["error_pct"]))
            by_group.setdefault(r["group"], []).append(abs(r["error_pct"]))
        for rule in r["rules"]:
            fired[rule] = fired.get(rule, 0) + 1
    return {
        "cases_file": str(Path(path) if path else default_cases_path()),
        "rows": [dict(r) for r in rows],
        "n_supported": len(errs),
        "n_unsupported": len(rows) - len(errs),
        "mape_pct": float(np.mean(errs)) if errs else math.nan,
        "mape_pct_by_category": {k: float(np.mean(v)) for k, v in by_cat.items()},
        "mape_pct_by_group": {k: float(np.mean(v)) for k, v in sorted(by_group.items())},
        "rules_fired": dict(sorted(fired.items())),
    }
