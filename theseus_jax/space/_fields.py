"""The legal values of one design field: :class:`ParamSpec`, its kinds and its JSON schema.

A spec is

* ``"fixed"``: not varied (``value``);
* ``"choice"``: an explicit list of legal values, encoded by ordinal position;
* ``"log2int"``: the powers of two between ``lo`` and ``hi`` (ordinal = log2 scale);
* ``"interval"``: continuous ``lo..hi``, linear or (``log``) logarithmic;
* ``"categorical"``: named options mapped to integer codes (ordinal encoding);
* ``"maxfit"``: ``reticle_rows`` / ``reticle_cols`` only: as many reticles as fit the usable
  wafer square for the sampled core array (``floor((S + g) / (h + g))``, clipped to
  ``lo..hi``). Not a free dimension.
* ``"isopeak"``: ``n_wafers`` only: as many wafers as bring the system's peak 16-bit FLOP/s
  closest (in ratio) to a target ``peak_flops`` -- the iso-peak comparison with a GPU cluster
  (:meth:`~theseus_jax.space.DesignSpace.iso_peak`). Not a free dimension.

The unit-interval encoding of a free spec (:meth:`ParamSpec.encode` / :meth:`ParamSpec.decode`)
is the ordinal ``i / (k - 1)`` for discrete specs and ``(x - lo) / (hi - lo)`` (of ``log x``
for log intervals) for continuous ones. :func:`parse_spec` validates one ``params`` entry of
a space file and converts it to SI.

References:
    BRIEF section 2 (the parameter table) and section 5 (unit-cube encoding).
"""

from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType

import numpy as np

from .._units import to_si
from ..design._wafer import WAFER_FIELDS

__all__ = ["ParamSpec", "parse_spec"]

_KINDS = ("fixed", "choice", "log2int", "interval", "categorical", "maxfit", "isopeak")
_DERIVED = ("maxfit", "isopeak")  # filled from the other fields, not dimensions of the cube
_DISCRETE = ("choice", "log2int", "categorical")
_FIELD_NAMES = tuple(f for f, _, _ in WAFER_FIELDS)
_FIELD_UNIT = MappingProxyType({f: u for f, u, _ in WAFER_FIELDS})
_CATEGORICAL_CODES = MappingProxyType({"integration": (0, 1), "dram_kind": (0, 1, 2)})
_MAXFIT_FIELDS = ("reticle_rows", "reticle_cols")


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """Legal values of one design field (values in SI, as stored in :class:`WaferDesign`).

    Attributes:
        name: the ``WAFER_FIELDS`` name.
        kind: one of ``fixed, choice, log2int, interval, categorical, maxfit, isopeak``.
        unit: the unit the config file used (for display); values here are SI.
        values: sorted legal values (discrete kinds; categorical codes).
        labels: option names of a categorical spec, aligned with ``values``.
        lo, hi: bounds (interval, maxfit; log2int's bounds are ``values[0]``, ``values[-1]``).
        log: interval on a log scale; discrete specs snap in log space when all values > 0.
        grid_points: points per interval in :meth:`~theseus_jax.space.DesignSpace.grid`.
        value: the fixed value; for ``isopeak`` the target system peak FLOP/s.
        tol: ``isopeak`` only: legal designs have a system peak within a factor ``1 + tol``
            of the target (whole wafers cannot always match it).
    """

    name: str
    kind: str
    unit: str = "1"
    values: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    lo: float = math.nan
    hi: float = math.nan
    log: bool = False
    grid_points: int = 3
    value: float = math.nan
    tol: float = math.nan

    # ---- properties ---------------------------------------------------------------------
    @property
    def free(self) -> bool:
        """True if the spec is a dimension of the unit cube."""
        if self.kind in _DISCRETE:
            return len(self.values) > 1
        if self.kind == "interval":
            return self.hi > self.lo
        return False

    def _log_snap(self) -> bool:
        return self.kind in ("choice", "log2int") and all(v > 0 for v in self.values)

    # ---- elementwise maps (numpy, float64) ----------------------------------------------
    def nearest_index(self, x) -> np.ndarray:
        """Index of the nearest legal value (discrete kinds)."""
        vals = np.asarray(self.values, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        if self._log_snap():
            d = np.abs(np.log(np.maximum(x, 1e-300))[..., None] - np.log(vals))
        else:
            d = np.abs(x[..., None] - vals)
        return np.argmin(d, axis=-1)

    def snap(self, x) -> np.ndarray:
        """Nearest legal value of ``x`` (SI); ``maxfit`` is left to the space."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "fixed":
            return np.full_like(x, self.value)
        if self.kind in _DISCRETE:
            return np.asarray(self.values, dtype=np.float64)[self.nearest_index(x)]
        if self.kind == "interval":
            return np.clip(x, self.lo, self.hi)
        return x

    def encode(self, x) -> np.ndarray:
        """SI value -> unit interval (free specs only)."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind in _DISCRETE:
            return self.nearest_index(x) / (len(self.values) - 1)
        if self.log:
            lo, hi = math.log(self.lo), math.log(self.hi)
            return np.clip((np.log(np.maximum(x, self.lo)) - lo) / (hi - lo), 0.0, 1.0)
        return np.clip((x - self.lo) / (self.hi - self.lo), 0.0, 1.0)

    def decode(self, u) -> np.ndarray:
        """Unit interval -> legal SI value (snapped)."""
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        if self.kind in _DISCRETE:
            k = len(self.values)
            idx = np.clip(np.rint(u * (k - 1)).astype(np.int64), 0, k - 1)
            return np.asarray(self.values, dtype=np.float64)[idx]
        if self.log:
            lo, hi = math.log(self.lo), math.log(self.hi)
            return np.clip(np.exp(lo + u * (hi - lo)), self.lo, self.hi)
        return self.lo + u * (self.hi - self.lo)

    def grid_values(self) -> np.ndarray:
        """Points of this spec in a grid enumeration."""
        if self.kind == "fixed":
            return np.asarray([self.value])
        if self.kind in _DISCRETE:
            return np.asarray(self.values, dtype=np.float64)
        if self.kind == "interval":
            if not self.free:
                return np.asarray([self.lo])
            return self.decode(np.linspace(0.0, 1.0, max(self.grid_points, 2)))
        raise ValueError(f"{self.name}: a {self.kind} spec has no grid of its own")


def _powers_of_two(lo: float, hi: float) -> tuple[float, ...]:
    a, b = math.log2(lo), math.log2(hi)
    return tuple(float(2.0**k) for k in range(int(round(a)), int(round(b)) + 1))


# ---------------------------------------------------------------------------------------
# parsing (one "params" entry of a space file)
# ---------------------------------------------------------------------------------------

_SPEC_KEYS = {
    "fixed": ({"kind", "value", "unit"}, {"source", "note"}),
    "choice": ({"kind", "values", "unit"}, {"source", "note"}),
    "log2int": ({"kind", "lo", "hi", "unit"}, {"source", "note"}),
    "interval": ({"kind", "lo", "hi", "unit"}, {"log", "grid_points", "source", "note"}),
    "categorical": ({"kind", "options"}, {"unit", "source", "note"}),
    "maxfit": ({"kind", "lo", "hi"}, {"unit", "source", "note"}),
    "isopeak": ({"kind", "peak_flops", "lo", "hi"}, {"tol", "unit", "source", "note"}),
}


def _num(x, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"{where}: expected a finite number, got {x!r}")
    if x < 0:
        raise ValueError(f"{where}: value {x} is negative; design parameters are >= 0")
    return float(x)


def parse_spec(name: str, raw, path) -> ParamSpec:
    """Validate the spec of field ``name`` in space file ``path`` and convert it to SI."""
    where = f"{path}: param {name}"
    if not isinstance(raw, dict) or "kind" not in raw:
        raise ValueError(f"{where}: must be an object with a 'kind' in {list(_KINDS)}")
    kind = raw["kind"]
    if kind not in _SPEC_KEYS:
        raise ValueError(f"{where}: unknown kind {kind!r}; expected one of {list(_KINDS)}")
    req, opt = _SPEC_KEYS[kind]
    missing = sorted(req - set(raw))
    unknown = sorted(set(raw) - req - opt)
    if missing or unknown:
        raise ValueError(
            f"{where}: missing keys {missing}, unknown keys {unknown}; a {kind} spec takes "
            f"{sorted(req)} (optional {sorted(opt)})"
        )
    unit = raw.get("unit", _FIELD_UNIT[name])
    target = _FIELD_UNIT[name]

    def si(x, what):
        return to_si(_num(x, f"{where}.{what}"), unit, where=f"{where}.{what}", target=target)

    if kind == "maxfit":
        if name not in _MAXFIT_FIELDS:
            raise ValueError(f"{where}: kind 'maxfit' is only for {list(_MAXFIT_FIELDS)}")
        lo, hi = si(raw["lo"], "lo"), si(raw["hi"], "hi")
        if not 1 <= lo <= hi:
            raise ValueError(f"{where}: need 1 <= lo <= hi, got lo={lo}, hi={hi}")
        return ParamSpec(name=name, kind=kind, unit=unit, lo=lo, hi=hi)
    if kind == "isopeak":
        if name != "n_wafers":
            raise ValueError(f"{where}: kind 'isopeak' is only for 'n_wafers'")
        lo, hi = _num(raw["lo"], f"{where}.lo"), _num(raw["hi"], f"{where}.hi")
        if not (1 <= lo <= hi and lo == round(lo) and hi == round(hi)):
            raise ValueError(f"{where}: need whole numbers 1 <= lo <= hi, got lo={lo}, hi={hi}")
        pk = to_si(
            _num(raw["peak_flops"], f"{where}.peak_flops"),
            raw.get("unit", "FLOP/s"),
            where=f"{where}.peak_flops",
            target="FLOP/s",
        )
        if not pk > 0:
            raise ValueError(f"{where}.peak_flops: must be > 0 (the target system peak)")
        tol = _num(raw.get("tol", 0.1), f"{where}.tol")
        if not tol > 0:
            raise ValueError(f"{where}.tol: must be > 0 (e.g. 0.1 for +-10 %), got {tol}")
        return ParamSpec(name=name, kind=kind, unit="FLOP/s", lo=lo, hi=hi, value=pk, tol=tol)
    if kind == "fixed":
        return ParamSpec(name=name, kind=kind, unit=unit, value=si(raw["value"], "value"))
    if kind == "categorical":
        opts = raw["options"]
        if not isinstance(opts, dict) or not opts:
            raise ValueError(f"{where}.options: must be a non-empty object {{label: code}}")
        allowed = _CATEGORICAL_CODES.get(name)
        items = sorted(
            ((float(_num(c, f"{where}.options.{lab}")), str(lab)) for lab, c in opts.items())
        )
        for c, lab in items:
            if allowed is not None and c not in allowed:
                raise ValueError(
                    f"{where}.options.{lab}: code {c:g} is not valid for {name}; "
                    f"valid codes {list(allowed)}"
                )
        codes = tuple(c for c, _ in items)
        if len(set(codes)) != len(codes):
            raise ValueError(f"{where}.options: duplicate codes {codes}")
        return ParamSpec(
            name=name, kind=kind, unit=unit, values=codes, labels=tuple(lab for _, lab in items)
        )
    if kind == "choice":
        vals = raw["values"]
        if not isinstance(vals, list) or not vals:
            raise ValueError(f"{where}.values: must be a non-empty list of numbers")
        si_vals = tuple(sorted({si(v, "values") for v in vals}))
        return ParamSpec(name=name, kind=kind, unit=unit, values=si_vals)
    lo, hi = si(raw["lo"], "lo"), si(raw["hi"], "hi")
    if lo > hi:
        raise ValueError(f"{where}: lo ({raw['lo']}) > hi ({raw['hi']})")
    if kind == "log2int":
        for v, what in ((lo, "lo"), (hi, "hi")):
            if v <= 0 or abs(math.log2(v) - round(math.log2(v))) > 1e-9:
                raise ValueError(
                    f"{where}.{what}: {v:g} {target} is not a power of two; log2int needs "
                    "powers of two (or use 'choice')"
                )
        return ParamSpec(
            name=name, kind=kind, unit=unit, values=_powers_of_two(lo, hi), lo=lo, hi=hi
        )
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"{where}.log: must be true or false")
    if log and lo <= 0:
        raise ValueError(f"{where}: a log interval needs lo > 0, got {lo}")
    gp = raw.get("grid_points", 3)
    if isinstance(gp, bool) or not isinstance(gp, int) or gp < 1:
        raise ValueError(f"{where}.grid_points: must be a positive integer, got {gp!r}")
    return ParamSpec(name=name, kind=kind, unit=unit, lo=lo, hi=hi, log=log, grid_points=gp)
