"""The wafer-scale design space: legal values, encodings, sampling and enumeration (host side).

A :class:`DesignSpace` holds one :class:`ParamSpec` per ``WAFER_FIELDS`` entry. A spec is

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
  (:meth:`DesignSpace.iso_peak`). Not a free dimension.

Two constraints define legality beyond the per-parameter values:

* the SRAM-compiler table: only listed (SRAM size, SRAM port width) pairs exist
  (``Violation.SRAM_BW_PAIR``);
* the physical fit rule: the core array must fit the reticle field and the reticle array the
  usable wafer (``Violation.CORE_AREA`` / ``WAFER_AREA`` from
  :func:`theseus_jax.cost.physical.physical_wsc`).

The unit-cube encoding (``to_unit`` / ``from_unit``) covers the free parameters only, in
``WAFER_FIELDS`` order: ordinal ``i / (k - 1)`` for discrete specs, ``(x - lo) / (hi - lo)``
(of ``log x`` for log intervals) for continuous ones. Everything here is numpy on the host;
the returned :class:`WaferDesign` batches are what the JAX cost models consume.

References:
    BRIEF section 2 (the parameter table and constraints) and section 5 (unit-cube encoding).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
from pathlib import Path

import jax
import numpy as np

from .._paths import configs_dir
from .._units import to_si
from .._violations import Violation
from ..tech import Tech
from ._wafer import WAFER_FIELDS, WaferDesign

__all__ = ["ParamSpec", "DesignSpace", "load_space", "list_spaces", "iso_peak_count"]

_KINDS = ("fixed", "choice", "log2int", "interval", "categorical", "maxfit", "isopeak")
_DERIVED = ("maxfit", "isopeak")  # filled from the other fields, not dimensions of the cube
_DISCRETE = ("choice", "log2int", "categorical")
_FIELD_NAMES = tuple(f for f, _, _ in WAFER_FIELDS)
_FIELD_UNIT = {f: u for f, u, _ in WAFER_FIELDS}
_CATEGORICAL_CODES = {"integration": (0, 1), "dram_kind": (0, 1, 2)}
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
        grid_points: points per interval in :meth:`DesignSpace.grid`.
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


# Batched physical checks run jitted on fixed-size chunks so that one compilation serves
# every batch size (eager ops would recompile for each new shape).
_CHUNK = 8192


@functools.cache
def _pitch_fn():
    from ..cost.area import core_pitch_m  # local: cost depends on design

    return jax.jit(jax.vmap(core_pitch_m, in_axes=(0, None)))


@functools.cache
def _violations_fn():
    from ..cost.physical import fit_violations  # local: cost depends on design

    return jax.jit(jax.vmap(fit_violations, in_axes=(0, None)))


def _chunked(fn, cols: dict[str, np.ndarray], tech: Tech) -> np.ndarray:
    """Apply a jitted ``fn(WaferDesign batch, tech)`` over columns in fixed-size chunks."""
    n = next(iter(cols.values())).shape[0]
    outs = []
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        pad = _CHUNK - (stop - start)
        chunk = {f: np.pad(cols[f][start:stop], (0, pad), mode="edge") for f in _FIELD_NAMES}
        outs.append(np.asarray(fn(WaferDesign(**chunk), tech))[: stop - start])
    return np.concatenate(outs) if outs else np.zeros(0)


def iso_peak_count(per_unit_flops, target_flops, *, lo: float = 1, hi: float = 4096):
    """Whole number of units (wafers, GPUs, ...) ``k`` in ``lo..hi`` whose peak
    ``k * per_unit_flops`` is closest to ``target_flops`` in ratio (``|log|`` distance).

    Args:
        per_unit_flops: peak FLOP/s of one unit (array).
        target_flops: target system peak FLOP/s.
    Returns:
        float64 array of counts, shaped like ``per_unit_flops``.
    """
    ratio = np.asarray(target_flops, np.float64) / np.maximum(
        np.asarray(per_unit_flops, np.float64), 1e-30
    )
    lo_k = np.clip(np.floor(ratio), lo, hi)
    hi_k = np.clip(np.ceil(ratio), lo, hi)
    err_lo = np.abs(np.log(lo_k / ratio))
    err_hi = np.abs(np.log(hi_k / ratio))
    return np.where(err_hi < err_lo, hi_k, lo_k)


def _powers_of_two(lo: float, hi: float) -> tuple[float, ...]:
    a, b = math.log2(lo), math.log2(hi)
    return tuple(float(2.0**k) for k in range(int(round(a)), int(round(b)) + 1))


@dataclasses.dataclass(frozen=True, eq=False)
class DesignSpace:
    """A constrained wafer-scale design space (host-side, immutable).

    Attributes:
        name: space name.
        specs: one :class:`ParamSpec` per ``WAFER_FIELDS`` entry, in that order.
        sram_pairs: legal ``(sram_bytes_per_core, sram_bw_bits_per_cycle)`` pairs in SI, or
            ``None`` when every combination is legal.
        tech: technology used by the physical fit rule.
        enforce_fit: whether ``sample``/``grid``/``is_legal`` apply the fit rule.
        description: free text.
    """

    name: str
    specs: tuple[ParamSpec, ...]
    sram_pairs: tuple[tuple[float, float], ...] | None
    tech: Tech
    enforce_fit: bool = True
    description: str = ""

    def __post_init__(self):
        got = tuple(s.name for s in self.specs)
        if got != _FIELD_NAMES:
            raise ValueError(
                f"DesignSpace {self.name!r}: specs must follow WAFER_FIELDS "
                f"{list(_FIELD_NAMES)}, got {list(got)}"
            )

    # ---- metadata -----------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Free parameters, in ``WAFER_FIELDS`` order (the columns of :meth:`to_unit`)."""
        return tuple(s.name for s in self.specs if s.free)

    @property
    def dim(self) -> int:
        """Number of free parameters (dimension of the unit cube)."""
        return len(self.names)

    def spec(self, name: str) -> ParamSpec:
        """The spec of one field."""
        for s in self.specs:
            if s.name == name:
                return s
        close = difflib.get_close_matches(name, _FIELD_NAMES, n=1)
        raise KeyError(
            f"{name!r} is not a design field" + (f"; did you mean {close[0]!r}?" if close else "")
        )

    def fix(self, **values) -> DesignSpace:
        """A copy with some fields fixed (values in SI), e.g. ``space.fix(clock_hz=1e9)``."""
        specs = []
        for s in self.specs:
            if s.name in values:
                if s.name in _MAXFIT_FIELDS and values[s.name] is None:
                    specs.append(s)
                    continue
                specs.append(
                    ParamSpec(name=s.name, kind="fixed", unit=s.unit, value=float(values[s.name]))
                )
            else:
                specs.append(s)
        unknown = sorted(set(values) - set(_FIELD_NAMES))
        if unknown:
            raise ValueError(
                f"fix(): unknown fields {unknown}; design fields are {list(_FIELD_NAMES)}"
            )
        return dataclasses.replace(self, specs=tuple(specs))

    # ---- columns <-> designs ------------------------------------------------------------
    @staticmethod
    def _columns(designs: WaferDesign) -> dict[str, np.ndarray]:
        cols = {
            f: np.atleast_1d(np.asarray(getattr(designs, f), dtype=np.float64))
            for f in _FIELD_NAMES
        }
        n = max(c.shape[0] for c in cols.values())
        return {f: np.broadcast_to(c, (n,)).copy() for f, c in cols.items()}

    def _pair_table(self):
        """(sizes, legal-bw matrix [n_size, n_bw] bool, bw values) or None."""
        if self.sram_pairs is None:
            return None
        sizes = np.asarray(sorted({p[0] for p in self.sram_pairs}), dtype=np.float64)
        bws = np.asarray(sorted({p[1] for p in self.sram_pairs}), dtype=np.float64)
        legal = np.zeros((len(sizes), len(bws)), dtype=bool)
        for s, b in self.sram_pairs:
            legal[np.searchsorted(sizes, s), np.searchsorted(bws, b)] = True
        return sizes, legal, bws

    def pair_legal(self, sram_bytes, sram_bw) -> np.ndarray:
        """Whether each (SRAM size, SRAM bandwidth) pair is in the SRAM-compiler table."""
        sram_bytes = np.atleast_1d(np.asarray(sram_bytes, dtype=np.float64))
        sram_bw = np.atleast_1d(np.asarray(sram_bw, dtype=np.float64))
        table = self._pair_table()
        if table is None:
            return np.ones(np.broadcast_shapes(sram_bytes.shape, sram_bw.shape), dtype=bool)
        sizes, legal, bws = table
        i = np.searchsorted(sizes, sram_bytes)
        j = np.searchsorted(bws, sram_bw)
        i_c = np.clip(i, 0, len(sizes) - 1)
        j_c = np.clip(j, 0, len(bws) - 1)
        hit = np.isclose(sizes[i_c], sram_bytes, rtol=1e-6) & np.isclose(
            bws[j_c], sram_bw, rtol=1e-6
        )
        return hit & legal[i_c, j_c]

    def _repair_pairs(self, cols: dict[str, np.ndarray], u_bw: np.ndarray | None = None) -> None:
        """Make every (size, bw) pair legal by changing the bandwidth (in place).

        With ``u_bw`` (uniforms) the bandwidth is drawn uniformly among the legal ones for the
        size; otherwise the nearest legal bandwidth (log distance) is taken. Sizes absent
        from the table are left alone (and stay illegal).
        """
        table = self._pair_table()
        if table is None:
            return
        sizes, legal, bws = table
        bw_spec = self.spec("sram_bw_bits_per_cycle")
        if bw_spec.kind == "fixed":
            return
        s = cols["sram_bytes_per_core"]
        i = np.clip(np.searchsorted(sizes, s), 0, len(sizes) - 1)
        known = np.isclose(sizes[i], s, rtol=1e-6)
        # restrict to bandwidths the bw spec allows
        allowed_bw = np.isclose(bw_spec.snap(bws), bws, rtol=1e-9)
        rows = legal[i] & allowed_bw[None, :]
        counts = rows.sum(axis=1)
        ok = known & (counts > 0)
        if u_bw is not None:
            k = np.minimum(
                (np.clip(u_bw, 0, 1) * counts).astype(np.int64), np.maximum(counts - 1, 0)
            )
            cums = np.cumsum(rows, axis=1)
            j = np.argmax(cums > k[:, None], axis=1)
        else:
            d = np.abs(
                np.log(np.maximum(cols["sram_bw_bits_per_cycle"], 1e-300))[:, None]
                - np.log(bws)[None, :]
            )
            d = np.where(rows, d, np.inf)
            j = np.argmin(d, axis=1)
        cols["sram_bw_bits_per_cycle"] = np.where(ok, bws[j], cols["sram_bw_bits_per_cycle"])

    def _fill_maxfit(self, cols: dict[str, np.ndarray]) -> None:
        """Set the derived counts in place: ``maxfit`` reticle counts from the core array
        size, then an ``isopeak`` wafer count from the wafer's peak FLOP/s."""
        self._fill_reticles(cols)
        self._fill_isopeak(cols)

    def _fill_isopeak(self, cols: dict[str, np.ndarray]) -> None:
        """``n_wafers = k`` in ``lo..hi`` minimising ``|log(k P_wafer / P_target)|``, with
        ``P_wafer = R C r c (1 - spare) 2 MACs f`` (the cost model's ``peak_flops``)."""
        s = self.spec("n_wafers")
        if s.kind != "isopeak":
            return
        per_wafer = (
            cols["reticle_rows"]
            * cols["reticle_cols"]
            * cols["core_rows"]
            * cols["core_cols"]
            * (1.0 - cols["spare_core_frac"])
            * 2.0
            * cols["macs_per_core"]
            * cols["clock_hz"]
        )
        cols["n_wafers"] = iso_peak_count(per_wafer, s.value, lo=s.lo, hi=s.hi)

    def _peak_ok(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        """``isopeak`` spaces: the system peak is within a factor ``1 + tol`` of the target."""
        s = self.spec("n_wafers")
        n = next(iter(cols.values())).shape[0]
        if s.kind != "isopeak":
            return np.ones(n, bool)
        peak = (
            cols["reticle_rows"]
            * cols["reticle_cols"]
            * cols["core_rows"]
            * cols["core_cols"]
            * (1.0 - cols["spare_core_frac"])
            * 2.0
            * cols["macs_per_core"]
            * cols["clock_hz"]
            * cols["n_wafers"]
        )
        return np.abs(np.log(peak / s.value)) <= np.log1p(s.tol)

    def iso_peak(
        self, peak_flops: float, *, lo: int = 1, hi: int = 4096, tol: float = 0.1
    ) -> DesignSpace:
        """A copy whose ``n_wafers`` is derived: the count whose system peak 16-bit FLOP/s is
        closest in ratio to ``peak_flops`` (FLOP/s), within ``lo..hi`` wafers; designs whose
        peak is then still off by more than a factor ``1 + tol`` are not legal (``sample``
        and ``grid`` skip them, ``is_legal`` is False).

        This is how designs are compared with a GPU cluster at iso-peak FLOP/s: every design
        gets as many wafers as match the cluster's peak; the residual mismatch is the
        rounding to whole wafers (reported by the cost model as ``peak_flops``).
        """
        if not (math.isfinite(peak_flops) and peak_flops > 0):
            raise ValueError(f"iso_peak: peak_flops must be a positive FLOP/s, got {peak_flops}")
        if not 1 <= lo <= hi:
            raise ValueError(f"iso_peak: need 1 <= lo <= hi wafers, got lo={lo}, hi={hi}")
        if not tol > 0:
            raise ValueError(f"iso_peak: tol must be > 0 (e.g. 0.1 for +-10 %), got {tol}")
        spec = ParamSpec(
            tol=float(tol),
            name="n_wafers",
            kind="isopeak",
            unit="FLOP/s",
            lo=float(lo),
            hi=float(hi),
            value=float(peak_flops),
        )
        specs = tuple(spec if s.name == "n_wafers" else s for s in self.specs)
        return dataclasses.replace(self, specs=specs)

    def complete(self, values: dict) -> WaferDesign:
        """Designs from their free parameters (SI; scalars or equal-length sequences, e.g. the
        rows of an exploration's ``pareto.csv``): fixed fields take their value, derived
        counts (``maxfit``, ``isopeak``) are filled in, everything snaps to the legal grid.

        Raises:
            ValueError: a free parameter is missing (names the field) or not a number.
        """
        missing = [n for n in self.names if n not in values]
        if missing:
            raise ValueError(
                f"complete(): missing free parameters {missing} of space {self.name!r} "
                f"(expected {list(self.names)})"
            )
        try:
            free = {n: np.atleast_1d(np.asarray(values[n], np.float64)) for n in self.names}
        except (TypeError, ValueError) as e:
            raise ValueError(f"complete(): a free parameter is not a number: {e}") from e
        n = max((v.shape[0] for v in free.values()), default=1)
        cols = self._decode_cols(np.zeros((n, self.dim)))
        for k, v in free.items():
            cols[k] = np.broadcast_to(v, (n,)).astype(np.float64)
        return self.snap(self._design(cols))

    def _fill_reticles(self, cols: dict[str, np.ndarray]) -> None:
        specs = [self.spec(f) for f in _MAXFIT_FIELDS]
        if not any(s.kind == "maxfit" for s in specs):
            return
        probe = {
            **cols,
            "reticle_rows": np.ones_like(cols["core_rows"]),
            "reticle_cols": np.ones_like(cols["core_rows"]),
        }
        pitch = _chunked(_pitch_fn(), probe, self.tech).astype(np.float64)
        side = float(self.tech.wafer_usable_side_m)
        gap = float(self.tech.reticle_gap_m)
        for s, core_f in zip(specs, ("core_rows", "core_cols"), strict=True):
            if s.kind != "maxfit":
                continue
            extent = cols[core_f] * pitch
            # 1e-6 shrink: a count that fits exactly must survive float32 rounding downstream
            n = np.floor((side + gap) / (extent + gap) * (1.0 - 1e-6))
            cols[s.name] = np.clip(n, s.lo, s.hi)

    def _design(self, cols: dict[str, np.ndarray]) -> WaferDesign:
        return WaferDesign(**{f: cols[f] for f in _FIELD_NAMES})

    # ---- encoding -----------------------------------------------------------------------
    def to_unit(self, designs: WaferDesign) -> np.ndarray:
        """Encode designs to the unit cube: ``(n, dim)`` float64 in [0, 1].

        Discrete specs map to ``index / (k - 1)`` of the nearest legal value (log-spaced
        sizes therefore encode on a log scale); intervals map linearly or logarithmically.
        """
        cols = self._columns(designs)
        n = next(iter(cols.values())).shape[0]
        out = np.zeros((n, self.dim))
        for k, name in enumerate(self.names):
            out[:, k] = self.spec(name).encode(cols[name])
        return out

    def from_unit(self, u) -> WaferDesign:
        """Decode unit-cube points ``(n, dim)`` to a batch of legal-valued designs.

        Each coordinate snaps to the nearest legal value of its spec; fixed fields take their
        value; an illegal SRAM (size, bandwidth) pair moves to the nearest legal bandwidth;
        ``maxfit`` reticle counts are filled in. The physical fit rule is *not* enforced
        (check :meth:`violations` / :meth:`is_legal`).
        """
        u = np.asarray(u, dtype=np.float64)
        if u.ndim == 1:
            u = u[None, :]
        if u.shape[-1] != self.dim:
            raise ValueError(
                f"from_unit: expected points with {self.dim} coordinates "
                f"({list(self.names)}), got shape {u.shape}"
            )
        cols = self._decode_cols(u)
        self._repair_pairs(cols)
        self._fill_maxfit(cols)
        return self._design(cols)

    def _decode_cols(self, u: np.ndarray) -> dict[str, np.ndarray]:
        n = u.shape[0]
        cols: dict[str, np.ndarray] = {}
        k = 0
        for s in self.specs:
            if s.free:
                cols[s.name] = s.decode(u[:, k])
                k += 1
            elif s.kind == "fixed":
                cols[s.name] = np.full(n, s.value)
            elif s.kind in _DISCRETE:
                cols[s.name] = np.full(n, s.values[0])
            elif s.kind == "interval":
                cols[s.name] = np.full(n, s.lo)
            else:  # maxfit / isopeak, filled later
                cols[s.name] = np.ones(n)
        return cols

    def snap(self, designs: WaferDesign) -> WaferDesign:
        """Nearest legal-valued designs (idempotent): per-field snap, SRAM pair repair, maxfit."""
        cols = self._columns(designs)
        for s in self.specs:
            if s.kind not in _DERIVED:
                cols[s.name] = s.snap(cols[s.name])
        self._repair_pairs(cols)
        self._fill_maxfit(cols)
        return self._design(cols)

    # ---- constraints --------------------------------------------------------------------
    def violations(self, designs: WaferDesign) -> np.ndarray:
        """Space-level violation codes (uint32): ``SRAM_BW_PAIR``, ``CORE_AREA``, ``WAFER_AREA``."""
        cols = self._columns(designs)
        code = np.where(
            self.pair_legal(cols["sram_bytes_per_core"], cols["sram_bw_bits_per_cycle"]),
            0,
            int(Violation.SRAM_BW_PAIR),
        ).astype(np.uint32)
        if self.enforce_fit:
            fit_bits = int(Violation.CORE_AREA | Violation.WAFER_AREA)
            code |= _chunked(_violations_fn(), cols, self.tech).astype(np.uint32) & np.uint32(
                fit_bits
            )
        return code

    def is_legal(self, designs: WaferDesign) -> np.ndarray:
        """Mask: values on their legal grids, legal SRAM pair and (if enforced) physical fit."""
        cols = self._columns(designs)
        on_grid = np.ones(next(iter(cols.values())).shape[0], dtype=bool)
        for s in self.specs:
            if s.kind not in _DERIVED:
                on_grid &= np.isclose(s.snap(cols[s.name]), cols[s.name], rtol=1e-6, atol=0.0)
        return on_grid & (self.violations(designs) == 0) & self._peak_ok(cols)

    # ---- generation ---------------------------------------------------------------------
    def sample(self, key, n: int, *, legal: bool = True, max_rounds: int = 64) -> WaferDesign:
        """Draw ``n`` designs uniformly over the legal values of each free parameter.

        With ``legal=True`` the SRAM bandwidth is drawn among the legal ones for the drawn
        size, and designs that break the fit rule are rejected and redrawn until exactly
        ``n`` remain (vectorised; ~1e5 designs in about a second on a CPU).

        Args:
            key: a JAX PRNG key.
            n: number of designs.
            legal: enforce the SRAM-pair and fit constraints.
            max_rounds: rejection rounds before giving up.

        Returns:
            A :class:`WaferDesign` whose leaves have shape ``(n,)``.

        Raises:
            ValueError: if the space is (nearly) infeasible.
        """
        n = int(n)
        if n < 0:
            raise ValueError(f"sample: n must be >= 0, got {n}")
        pieces: list[dict[str, np.ndarray]] = []
        have, drawn, accepted = 0, 0, 0
        batch = max(64, n)
        bw_col = (
            self.names.index("sram_bw_bits_per_cycle")
            if "sram_bw_bits_per_cycle" in self.names
            else None
        )
        # One fixed-shape JAX call turns the key into a numpy generator (variable-shape JAX
        # random calls would recompile per batch size).
        rng = np.random.default_rng(np.asarray(jax.random.bits(key, (4,), dtype=np.uint32)))
        for _ in range(max_rounds):
            if have >= n:
                break
            u = rng.random((batch, self.dim))
            cols = self._decode_cols(u)
            if legal:
                self._repair_pairs(cols, None if bw_col is None else u[:, bw_col])
            self._fill_maxfit(cols)
            if legal:
                ok = (self.violations(self._design(cols)) == 0) & self._peak_ok(cols)
                cols = {f: c[ok] for f, c in cols.items()}
                accepted += int(ok.sum())
            else:
                accepted += batch
            drawn += batch
            take = min(n - have, next(iter(cols.values())).shape[0])
            pieces.append({f: c[:take] for f, c in cols.items()})
            have += take
            rate = max(accepted / drawn, 1e-3)
            batch = int(min(max(64, 1.2 * (n - have) / rate + 64), 4 * n + 100_000))
        if have < n:
            raise ValueError(
                f"sample: found only {have} of {n} legal designs after {drawn} draws "
                f"(acceptance {accepted / max(drawn, 1):.2e}); the fit rule or SRAM table leaves "
                "(almost) nothing legal. Widen the space or fix fewer parameters."
            )
        out = {
            f: np.concatenate([p[f] for p in pieces]) if pieces else np.zeros(0)
            for f in _FIELD_NAMES
        }
        return self._design(out)

    def grid(self, max_points: int | None = None) -> WaferDesign:
        """Enumerate the Cartesian grid of the space and keep the legal points.

        Discrete specs contribute all their values, intervals ``grid_points`` points, fixed
        specs their value; SRAM (size, bandwidth) are enumerated as legal pairs; ``maxfit``
        counts are filled in; points breaking the fit rule are dropped.

        Args:
            max_points: largest grid (before filtering) to enumerate; default 1,000,000.

        Raises:
            ValueError: if the grid is larger than ``max_points`` (fix parameters with
                :meth:`fix`, or use :meth:`sample`).
        """
        limit = 1_000_000 if max_points is None else int(max_points)
        axes: list[tuple[tuple[str, ...], np.ndarray]] = []  # (fields, values[n_points, n_fields])
        pair_fields = ("sram_bytes_per_core", "sram_bw_bits_per_cycle")
        table = self._pair_table()
        for s in self.specs:
            if s.kind in _DERIVED or (table is not None and s.name in pair_fields):
                continue
            axes.append(((s.name,), s.grid_values()[:, None]))
        s_size, s_bw = self.spec(pair_fields[0]), self.spec(pair_fields[1])
        if table is None:
            axes.append(((s_size.name,), s_size.grid_values()[:, None]))
            axes.append(((s_bw.name,), s_bw.grid_values()[:, None]))
        else:
            sz = s_size.grid_values()
            bw = s_bw.grid_values()
            pairs = np.asarray([(a, b) for a in sz for b in bw], dtype=np.float64).reshape(-1, 2)
            keep = self.pair_legal(pairs[:, 0], pairs[:, 1])
            axes.append((pair_fields, pairs[keep]))
        sizes = [len(v) for _, v in axes]
        total = int(np.prod(sizes, dtype=np.float64))
        if total > limit:
            detail = ", ".join(
                f"{'+'.join(f)}: {k}" for (f, _), k in zip(axes, sizes, strict=True) if k > 1
            )
            raise ValueError(
                f"grid: {total:.3g} points exceed max_points={limit} ({detail}). Fix some "
                "fields with space.fix(...), reduce interval grid_points, raise max_points, "
                "or use sample()."
            )
        idx = (
            np.indices(sizes).reshape(len(sizes), -1)
            if total > 0
            else np.zeros((len(sizes), 0), dtype=int)
        )
        cols: dict[str, np.ndarray] = {}
        for a, (fields, vals) in enumerate(axes):
            for j, f in enumerate(fields):
                cols[f] = vals[idx[a], j]
        n = idx.shape[1]
        for f in (*_MAXFIT_FIELDS, "n_wafers"):
            cols.setdefault(f, np.ones(n))
        self._fill_maxfit(cols)
        ok = (
            (self.violations(self._design(cols)) == 0) & self._peak_ok(cols)
            if n
            else np.zeros(0, dtype=bool)
        )
        return self._design({f: c[ok] for f, c in cols.items()})


# ---------------------------------------------------------------------------------------
# loading
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


def list_spaces() -> list[str]:
    """Names of the design-space files in ``configs/spaces/``."""
    d = configs_dir() / "spaces"
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def _num(x, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"{where}: expected a finite number, got {x!r}")
    if x < 0:
        raise ValueError(f"{where}: value {x} is negative; design parameters are >= 0")
    return float(x)


def _parse_spec(name: str, raw, path) -> ParamSpec:
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


def _parse_pairs(raw, path, specs: dict[str, ParamSpec]):
    where = f"{path}: sram_pairs"
    if raw is None:
        return None
    req = {"size_unit", "bw_unit", "table"}
    if not isinstance(raw, dict) or req - set(raw) or set(raw) - req - {"source", "note"}:
        raise ValueError(
            f"{where}: must be an object with keys {sorted(req)} (optional 'source', 'note')"
        )
    table = raw["table"]
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{where}.table: must map SRAM size -> list of legal bandwidths")
    pairs = []
    for size_txt, bws in table.items():
        try:
            size_val = float(size_txt)
        except ValueError as e:
            raise ValueError(
                f"{where}.table: key {size_txt!r} is not a number (in {raw['size_unit']})"
            ) from e
        size = to_si(
            _num(size_val, f"{where}.table[{size_txt}]"),
            raw["size_unit"],
            where=f"{where}.size_unit",
            target="B",
        )
        if not isinstance(bws, list) or not bws:
            raise ValueError(f"{where}.table[{size_txt}]: must be a non-empty list of bandwidths")
        for b in bws:
            bw = to_si(
                _num(b, f"{where}.table[{size_txt}]"),
                raw["bw_unit"],
                where=f"{where}.bw_unit",
                target="bit/cycle",
            )
            pairs.append((size, bw))
    size_spec = specs["sram_bytes_per_core"]
    if size_spec.kind in ("choice", "log2int"):
        listed = {p[0] for p in pairs}
        missing = [
            v for v in size_spec.values if not any(math.isclose(v, s, rel_tol=1e-9) for s in listed)
        ]
        if missing:
            raise ValueError(
                f"{where}.table: SRAM sizes {[f'{v / 1024:g} KiB' for v in missing]} of "
                "param sram_bytes_per_core have no legal bandwidth; add them to the table or "
                "drop them from the param"
            )
    return tuple(sorted(set(pairs)))


def load_space(name_or_path, *, tech: Tech | str | None = None) -> DesignSpace:
    """Load a design space from ``configs/spaces/<name>.json`` (or a path), validated.

    Args:
        name_or_path: space name (file stem) or path to a JSON file.
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
    from ..io import load_tech  # local: io imports design

    s = str(name_or_path)
    if s.endswith(".json") or "/" in s or isinstance(name_or_path, Path):
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(f"design-space file {str(path)!r} does not exist")
    else:
        path = configs_dir() / "spaces" / f"{s}.json"
        if not path.is_file():
            avail = list_spaces()
            close = difflib.get_close_matches(s, avail, n=1, cutoff=0.3)
            raise ValueError(
                f"unknown design space {s!r}."
                + (f" Did you mean {close[0]!r}?" if close else "")
                + f" Available in {configs_dir() / 'spaces'}: {avail}"
            )
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
    specs = {f: _parse_spec(f, params[f], path) for f in _FIELD_NAMES}
    pairs = _parse_pairs(doc.get("sram_pairs"), path, specs)
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
