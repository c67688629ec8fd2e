"""Mapping enumeration (theseus_jax.mapping): legality of every row, completeness, padding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from theseus_jax.mapping import (
    MAPPING_FIELDS,
    Mapping,
    divisors,
    enumerate_gpu_mappings,
    enumerate_wafer_mappings,
    pad_mappings,
)
from theseus_jax.workload import load_training_workload


def _cols(maps: Mapping) -> dict[str, np.ndarray]:
    return {k: np.asarray(getattr(maps, k), np.float64).reshape(-1) for k in MAPPING_FIELDS}


def _ints(wl):
    m = wl.model
    g = lambda x: int(round(float(np.asarray(x))))  # noqa: E731
    return dict(
        L=g(m.n_layers), heads=g(m.n_heads), kv=g(m.n_kv_heads), ff=g(m.d_ff), B=g(wl.global_batch)
    )


@pytest.fixture(scope="module")
def gpt3():
    return load_training_workload("gpt3-175b")


@pytest.fixture(scope="module")
def gpt3_table(gpt3):
    """The full (flags on) table of GPT-3 175B on 64 GPUs: ~1.4 M rows, enumerated once."""
    return _cols(enumerate_gpu_mappings(gpt3, 64))


def test_divisors():
    assert divisors(12).tolist() == [1, 2, 3, 4, 6, 12]
    assert divisors(1).tolist() == [1]
    assert divisors(96).tolist() == [d for d in range(1, 97) if 96 % d == 0]


def test_gpu_rows_are_legal(gpt3, gpt3_table):
    c, w, n = gpt3_table, _ints(gpt3), 64
    tp, pp, dp, mb, v = (
        c[k].astype(np.int64) for k in ("tp", "pp", "dp", "micro_batch", "interleave")
    )
    assert tp.size > 100_000
    assert (tp * pp * dp == n).all()
    assert (w["B"] % (dp * mb) == 0).all()
    assert (w["heads"] % tp == 0).all()
    assert (w["ff"] % tp == 0).all()
    assert (w["L"] % (pp * v) == 0).all()
    assert (pp[v > 1] > 1).all()
    assert (v >= 1).all() and (mb >= 1).all()
    # power-of-two TP (Megatron), interleaving needs m % pp == 0 and 1F1B
    assert ((tp & (tp - 1)) == 0).all()
    m = w["B"] // (dp * mb)
    assert ((v == 1) | ((m % pp == 0) & (c["schedule"] == 1))).all()
    # knobs only where they mean something
    assert (c["seq_par"][tp == 1] == 0).all() and (c["tp_overlap"][tp == 1] == 0).all()
    assert (c["dist_opt"][dp == 1] == 0).all() and (c["dp_overlap"][dp == 1] == 0).all()
    assert (c["stream"] == 0).all()
    assert set(np.unique(c["recompute"])) == {0.0, 1.0, 2.0}
    for k in ("schedule", "dist_opt", "seq_par", "tp_overlap", "dp_overlap", "placement"):
        assert set(np.unique(c[k])) <= {0.0, 1.0}, k
    # block recompute: k / (L / pp) layers, k = 1 .. L/pp; 1.0 unless recompute == full
    frac = c["recompute_layers"]
    assert (frac[c["recompute"] != 2] == 1.0).all()
    per_stage = w["L"] / pp
    k = frac * per_stage
    assert np.allclose(k, np.round(k), atol=1e-3) and (frac > 0).all() and (frac <= 1).all()


def test_gpu_rows_are_unique(gpt3_table):
    c = gpt3_table
    arr = np.ascontiguousarray(np.stack([c[k].astype(np.float32) for k in MAPPING_FIELDS], axis=1))
    rows = arr.view(np.dtype((np.void, arr.dtype.itemsize * arr.shape[1]))).reshape(-1)
    assert np.unique(rows).size == rows.size


def test_gpu_table_is_complete(gpt3, gpt3_table):
    """Every legal (tp, pp, dp, micro_batch) combination appears (brute force)."""
    w, n = _ints(gpt3), 64
    want = set()
    for tp, pp in itertools.product([1, 2, 4, 8, 16, 32, 64], range(1, w["L"] + 1)):
        if w["L"] % pp or n % (tp * pp) or w["heads"] % tp or w["ff"] % tp:
            continue
        if w["kv"] % tp and tp % w["kv"]:
            continue
        dp = n // (tp * pp)
        if w["B"] % dp:
            continue
        for mb in range(1, w["B"] // dp + 1):
            if (w["B"] // dp) % mb == 0:
                want.add((tp, pp, dp, mb))
    c = gpt3_table
    got = set(
        zip(
            *(c[k].astype(np.int64).tolist() for k in ("tp", "pp", "dp", "micro_batch")),
            strict=True,
        )
    )
    assert got == want


def test_gpu_flags_off_table(gpt3):
    c = _cols(enumerate_gpu_mappings(gpt3, 128, flags=False))
    for k in ("dist_opt", "seq_par", "tp_overlap", "dp_overlap", "placement", "stream"):
        assert (c[k] == 0).all(), k
    assert (c["schedule"] == 1).all()
    assert (c["recompute_layers"] == 1.0).all()
    assert (c["tp"] * c["pp"] * c["dp"] == 128).all()


def test_gpu_gqa_tp_rule():
    wl = load_training_workload("llama-3.1-70b")  # 64 heads, 8 KV heads
    c = _cols(enumerate_gpu_mappings(wl, 64, flags=False))
    tp = c["tp"].astype(np.int64)
    assert ((8 % tp == 0) | (tp % 8 == 0)).all()
    assert set(np.unique(tp)) == {1, 2, 4, 8, 16, 32, 64}


def test_gpu_max_tp_and_no_interleave():
    wl = load_training_workload("megatron-1.7b")
    c = _cols(enumerate_gpu_mappings(wl, 32, max_tp=4, flags=False, interleave=False))
    assert c["tp"].max() == 4
    assert (c["interleave"] == 1).all()


@pytest.mark.parametrize("n", [0, -8])
def test_gpu_bad_gpu_count_raises(gpt3, n):
    with pytest.raises(ValueError, match="n_gpus"):
        enumerate_gpu_mappings(gpt3, n)


def test_gpu_no_legal_mapping_raises(gpt3):
    # 7 GPUs: tp and pp must be 1, and 7 does not divide the batch of 1536
    with pytest.raises(ValueError, match="no legal mapping"):
        enumerate_gpu_mappings(gpt3, 7)


def test_wafer_rows(gpt3):
    w = _ints(gpt3)
    sizes = (0, 1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
    maps = enumerate_wafer_mappings(gpt3, max_reticles=84)
    c = _cols(maps)
    tp, pp = c["tp"].astype(np.int64), c["pp"].astype(np.int64)
    assert (w["L"] % pp == 0).all()
    assert set(np.unique(tp)) <= set(sizes)
    assert (np.maximum(tp, 1) * pp <= 84).all()
    assert (c["dp"] == 0).all()  # resolved per design
    assert set(np.unique(c["stream"])) == {0.0, 1.0}
    assert set(np.unique(c["recompute"])) == {0.0, 1.0, 2.0}
    assert (c["micro_batch"] <= w["B"]).all()
    arr = np.stack([c[k] for k in MAPPING_FIELDS], axis=1)
    assert np.unique(arr, axis=0).shape[0] == arr.shape[0]
    # every (tp, pp) pair that fits appears
    pairs = {(t, p) for t in sizes for p in divisors(w["L"]).tolist() if max(t, 1) * p <= 84}
    assert set(zip(tp.tolist(), pp.tolist(), strict=True)) == pairs


def test_wafer_bad_input_raises(gpt3):
    with pytest.raises(ValueError):
        enumerate_wafer_mappings(gpt3, max_reticles=0)
    with pytest.raises(ValueError, match="region_sizes"):
        enumerate_wafer_mappings(gpt3, max_reticles=84, region_sizes=(1, -2))


def test_pad_mappings():
    wl = load_training_workload("megatron-1.7b")
    maps = enumerate_gpu_mappings(wl, 16, flags=False)
    n = maps.size()
    padded, mask = pad_mappings(maps, n + 5)
    assert padded.size() == n + 5
    assert mask.dtype == bool and mask.shape == (n + 5,)
    assert mask[:n].all() and not mask[n:].any()
    for k in MAPPING_FIELDS:
        a, b = np.asarray(getattr(maps, k)), np.asarray(getattr(padded, k))
        np.testing.assert_array_equal(b[:n], a)
        np.testing.assert_array_equal(b[n:], np.full(5, a[0]))  # padding repeats a legal row
    same, mask2 = pad_mappings(maps, n)
    assert mask2.all() and same.size() == n
    with pytest.raises(ValueError, match="pad size"):
        pad_mappings(maps, n - 1)


def test_row_readable():
    maps = Mapping.from_columns(
        {k: np.asarray([getattr(Mapping(), k)] * 2, np.float32) for k in MAPPING_FIELDS}
        | dict(
            tp=np.asarray([2, 8]),
            recompute=np.asarray([2, 1]),
            recompute_layers=np.asarray([0.25, 1.0]),
        )
    )
    r = maps.row(0)
    assert r["tp"] == 2 and r["recompute"] == "full" and r["recompute_layers"] == 0.25
    assert r["schedule"] == "1f1b"
    assert maps.row(1)["recompute"] == "selective"


def test_from_columns_fills_missing_columns_to_table_length():
    # Regression: missing columns are broadcast to the table length.
    maps = Mapping.from_columns(dict(tp=[1, 8], pp=[1, 2], dp=[8, 4]))
    assert maps.size() == 2
    for k in MAPPING_FIELDS:
        assert np.shape(getattr(maps, k)) == (2,), k
    padded, _ = pad_mappings(maps, 4)
    assert padded.size() == 4
