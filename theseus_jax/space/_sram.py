"""The SRAM-compiler table: which (SRAM size, SRAM port width) pairs exist.

Only listed ``(sram_bytes_per_core, sram_bw_bits_per_cycle)`` pairs are legal
(``Violation.SRAM_BW_PAIR``). A table is kept as ``(sizes, legal, bws)``: the sorted sizes,
a ``[n_size, n_bw]`` bool matrix of legal pairs and the sorted bandwidths (SI), or ``None``
when every combination is legal. :func:`parse_pairs` reads the ``sram_pairs`` block of a
space file.
"""

from __future__ import annotations

import math

import numpy as np

from .._units import to_si
from ._fields import ParamSpec, _num

__all__ = ["PairTable", "pair_table", "pair_legal", "repair_pairs", "parse_pairs"]

PairTable = tuple[np.ndarray, np.ndarray, np.ndarray]


def pair_table(sram_pairs: tuple[tuple[float, float], ...] | None) -> PairTable | None:
    """(sizes, legal-bw matrix [n_size, n_bw] bool, bw values) or None."""
    if sram_pairs is None:
        return None
    sizes = np.asarray(sorted({p[0] for p in sram_pairs}), dtype=np.float64)
    bws = np.asarray(sorted({p[1] for p in sram_pairs}), dtype=np.float64)
    legal = np.zeros((len(sizes), len(bws)), dtype=bool)
    for s, b in sram_pairs:
        legal[np.searchsorted(sizes, s), np.searchsorted(bws, b)] = True
    return sizes, legal, bws


def pair_legal(table: PairTable | None, sram_bytes, sram_bw) -> np.ndarray:
    """Whether each (SRAM size, SRAM bandwidth) pair is in the SRAM-compiler table."""
    sram_bytes = np.atleast_1d(np.asarray(sram_bytes, dtype=np.float64))
    sram_bw = np.atleast_1d(np.asarray(sram_bw, dtype=np.float64))
    if table is None:
        return np.ones(np.broadcast_shapes(sram_bytes.shape, sram_bw.shape), dtype=bool)
    sizes, legal, bws = table
    i = np.searchsorted(sizes, sram_bytes)
    j = np.searchsorted(bws, sram_bw)
    i_c = np.clip(i, 0, len(sizes) - 1)
    j_c = np.clip(j, 0, len(bws) - 1)
    hit = np.isclose(sizes[i_c], sram_bytes, rtol=1e-6) & np.isclose(bws[j_c], sram_bw, rtol=1e-6)
    return hit & legal[i_c, j_c]


def repair_pairs(
    table: PairTable | None,
    bw_spec: ParamSpec,
    cols: dict[str, np.ndarray],
    u_bw: np.ndarray | None = None,
) -> None:
    """Make every (size, bw) pair legal by changing the bandwidth (in place).

    With ``u_bw`` (uniforms) the bandwidth is drawn uniformly among the legal ones for the
    size; otherwise the nearest legal bandwidth (log distance) is taken. Only bandwidths
    ``bw_spec`` allows are used, and a fixed bandwidth is left alone. Sizes absent from the
    table are left alone (and stay illegal).
    """
    if table is None:
        return
    sizes, legal, bws = table
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
        k = np.minimum((np.clip(u_bw, 0, 1) * counts).astype(np.int64), np.maximum(counts - 1, 0))
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


def parse_pairs(raw, path, specs: dict[str, ParamSpec]):
    """Validate the ``sram_pairs`` block of space file ``path``: legal pairs in SI, sorted
    (``None`` when the file has none). Every size ``specs`` allows needs a bandwidth."""
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
