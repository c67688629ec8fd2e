"""What the training and inference case readers share: the system a case names and the
result row (:class:`CaseResult`) of a predicted or unsupported case."""

from __future__ import annotations

import math
import re

import numpy as np

from .._config import resolve_config
from ..design._gpu import GPUSystem
from ..io._schema import read_config
from ._interpret import CaseError, Notes, read_count


class CaseResult(dict):
    """One row: id, category, group, metric, unit, measured, predicted, error_pct, status,
    reason, assumptions (``[{rule, text}]``) and rules (the rule names that fired)."""


def _first_loadable(loader, name: str, *, dashes: bool):
    """``loader`` of the first spelling of ``name`` it accepts: as given, without a
    parenthetical, the parenthetical alone (and, with ``dashes``, each with spaces as
    dashes: "Cerebras WSE-2 (CS-2)" -> "Cerebras-WSE-2"); else the first spelling's error."""
    cands = [name, name.split(" (")[0]]
    inner = re.search(r"\(([^)]*)\)", name)
    if inner:
        cands.append(inner.group(1))
    if dashes:
        cands += [c.replace(" ", "-") for c in list(cands)]
    err = None
    for cand in cands:
        try:
            return loader(cand.strip())
        except ValueError as e:
            err = err or e
    raise err


def _resolve_system(name: str):
    """A system config for an accelerator name: as given, without a parenthetical, the
    parenthetical alone, or with spaces as dashes ("Cerebras WSE-2 (CS-2)" -> wse2)."""
    from ..io import load_system

    return _first_loadable(load_system, name, dashes=True)


def _system_for(c: dict, count: int | None = None, notes: Notes | None = None):
    """(system with the case's GPU count, the config as loaded); GPU systems only get the
    count (a wafer is returned as loaded, twice)."""
    hw = c.get("hardware") or {}
    acc = hw.get("accelerator") if isinstance(hw, dict) else None
    if not isinstance(acc, str) or not acc.strip():
        raise CaseError("hardware.accelerator must name the accelerator (e.g. 'H100-SXM5-80GB')")
    system = _resolve_system(acc)
    if notes is not None:
        notes.add("hardware-alias", f"accelerator {acc!r} -> system config {_system_name(acc)!r}")
    if not isinstance(system, GPUSystem):
        return None, system
    if count is None:
        count = read_count(hw, None, notes or Notes())
    kw = {f: getattr(system, f) for f in system.__annotations__}
    kw["n_gpus"] = float(count)
    return GPUSystem(**kw), system


def _system_name(acc: str) -> str:
    for cand in (acc, acc.split(" (")[0], acc.replace(" ", "-")):
        try:
            return str(
                read_config(resolve_config("systems", cand.strip(), "system")).get("name", cand)
            )
        except ValueError:
            continue
    return acc


def _number_or_none(v):
    """The case's value as a float, or None when it is not one number (a list, a range
    written as text, null)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _group(c: dict) -> str:
    hw = c.get("hardware") if isinstance(c.get("hardware"), dict) else {}
    acc = str(hw.get("accelerator", "?"))
    return f"{c.get('category', '?')} {re.split(r'[- (]', acc.strip())[0] or acc}"


def _row(c, notes: Notes | None, **kw) -> CaseResult:
    notes = notes or Notes()
    base = dict(
        id=c.get("id", "?"),
        category=c.get("category"),
        group=_group(c),
        metric=c.get("metric"),
        unit=c.get("unit"),
        measured=_number_or_none(c.get("value")),
        predicted=None,
        error_pct=None,
        status="unsupported",
        reason="",
        assumptions=notes.as_list(),
        rules=notes.rules(),
    )
    base.update(kw)
    return CaseResult(**base)


def _unsupported(c, reason, notes: Notes | None = None) -> CaseResult:
    return _row(c, notes, reason=reason)


def _predicted(c, pred, metrics, notes: Notes | None = None) -> CaseResult:
    """The row of a predicted case."""
    from .._violations import describe

    meas = float(c["value"])
    viol = int(np.asarray(metrics.violations))
    return _row(
        c,
        notes,
        measured=meas,
        predicted=float(pred),
        error_pct=100.0 * (float(pred) - meas) / meas,
        status="ok" if viol == 0 else "ok (infeasible: " + ", ".join(describe(viol)) + ")",
    )


def _f32(x):
    import jax.numpy as jnp

    return jnp.asarray(x, jnp.float32)
