"""The wafer-scale design space: legal values, encodings, sampling and enumeration (host side).

A :class:`DesignSpace` holds one :class:`~theseus_jax.space.ParamSpec` per ``WAFER_FIELDS``
entry (the spec kinds are described in :mod:`theseus_jax.space._fields`). Two constraints
define legality beyond the per-parameter values:

* the SRAM-compiler table: only listed (SRAM size, SRAM port width) pairs exist
  (``Violation.SRAM_BW_PAIR``; :mod:`theseus_jax.space._sram`);
* the physical fit rule: the core array must fit the reticle field and the reticle array the
  usable wafer (``Violation.CORE_AREA`` / ``WAFER_AREA`` from
  :func:`theseus_jax.cost.physical.physical_wsc`; :mod:`theseus_jax.space._fit`).

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
import math

import jax
import numpy as np

from .._violations import Violation
from ..design._wafer import WaferDesign
from ..tech import Tech
from . import _sram
from ._fields import _DERIVED, _DISCRETE, _FIELD_NAMES, _MAXFIT_FIELDS, ParamSpec
from ._fit import core_pitch, fit_codes, iso_peak_count
from ._sram import PairTable

__all__ = ["DesignSpace"]


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

    def _pair_table(self) -> PairTable | None:
        """(sizes, legal-bw matrix [n_size, n_bw] bool, bw values) or None."""
        return _sram.pair_table(self.sram_pairs)

    def pair_legal(self, sram_bytes, sram_bw) -> np.ndarray:
        """Whether each (SRAM size, SRAM bandwidth) pair is in the SRAM-compiler table."""
        return _sram.pair_legal(self._pair_table(), sram_bytes, sram_bw)

    def _repair_pairs(self, cols: dict[str, np.ndarray], u_bw: np.ndarray | None = None) -> None:
        """Make every (size, bw) pair legal by changing the bandwidth, in place
        (:func:`theseus_jax.space._sram.repair_pairs`)."""
        _sram.repair_pairs(self._pair_table(), self.spec("sram_bw_bits_per_cycle"), cols, u_bw)

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
        pitch = core_pitch(probe, self.tech)
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
            code |= fit_codes(cols, self.tech) & np.uint32(fit_bits)
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
