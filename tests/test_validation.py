"""Validation against published measurements (theseus_jax.validate).

Golden numbers: the ten Megatron-LM A100 rows of Narayanan et al., SC21 (arXiv 2104.04473),
Table 1, as recorded in configs/validation/validation_cases.json.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from _helpers import SHIPPED_CASES

from theseus_jax.cost.gpu import gpu_training_step
from theseus_jax.validate import load_cases, predict_case, training_setup, validate_cases
from theseus_jax.workload import megatron_model_flops_per_step

MEGATRON_MAPE_BOUND_PCT = 10.0  # the acceptance bound


@pytest.fixture(scope="module")
def cases():
    return json.loads(SHIPPED_CASES.read_text())["cases"]


@pytest.fixture(scope="module")
def result():
    return validate_cases(SHIPPED_CASES)


def _megatron_ids(cases):
    return [c["id"] for c in cases if c["id"].startswith("train-megatron-a100-")]


def test_every_case_has_a_row(cases, result):
    assert [r["id"] for r in result["rows"]] == [c["id"] for c in cases]
    assert result["n_supported"] + result["n_unsupported"] == len(cases)
    assert result["cases_file"] == str(SHIPPED_CASES)


def test_megatron_a100_mape_within_bound(cases, result):
    ids = _megatron_ids(cases)
    assert len(ids) == 10
    rows = {r["id"]: r for r in result["rows"]}
    errs = []
    for i in ids:
        r = rows[i]
        assert r["status"] == "ok", (i, r["status"])  # the published runs fit in memory
        assert np.isfinite(r["predicted"]) and r["predicted"] > 0
        assert r["error_pct"] == pytest.approx(
            100 * (r["predicted"] - r["measured"]) / r["measured"]
        )
        errs.append(abs(r["error_pct"]))
    mape = float(np.mean(errs))
    assert mape <= MEGATRON_MAPE_BOUND_PCT, {i: round(e, 1) for i, e in zip(ids, errs, strict=True)}
    # the A100 group is exactly the Megatron rows
    assert result["mape_pct_by_group"]["training A100"] == pytest.approx(mape)


def test_megatron_flop_count_is_narayanan_formula(cases, result):
    """Table 1 reports hardware FLOP/s with Narayanan's count 96 B s l h^2 (1 + s/6h + V/16lh)
    (= megatron_model_flops_per_step(recompute_full=True)); the prediction must use that count.

    Regression: the logits GEMM is counted once per pipeline, not once per stage.
    """
    rows = {r["id"]: r for r in result["rows"]}
    bad = []
    for c in cases:
        if c["id"] not in _megatron_ids(cases):
            continue
        system, wl, mp = training_setup(c)
        m = gpu_training_step(system, wl, mp)
        n = c["hardware"]["count"]
        want = (
            float(megatron_model_flops_per_step(wl, recompute_full=True))
            / float(m.step_time_s)
            / n
            / 1e12
        )
        got = rows[c["id"]]["predicted"]
        if abs(got / want - 1.0) > 1e-3:
            bad.append(
                f"{c['id']} (pp={c['parallelism']['pp']}): predicted/formula = {got / want:.4f}"
            )
    assert not bad, "\n".join(bad)


def test_training_setup_reads_the_case(cases):
    c = next(c for c in cases if c["id"] == "train-megatron-a100-76B")
    system, wl, mp = training_setup(c)
    assert float(system.n_gpus) == 1024
    assert (float(mp.tp), float(mp.pp), float(mp.dp), float(mp.micro_batch)) == (8, 4, 32, 2)
    assert float(mp.recompute) == 2  # "full (uniform)"
    assert float(mp.interleave) == 3  # 60 layers / (4 stages x 5 layers per virtual stage)
    assert float(wl.global_batch) == 1792 and float(wl.seq_len) == 2048
    assert float(wl.main_grad_bytes) == 2.0  # "fp16 mixed"
    assert float(wl.flash_attention) == 0.0  # SC21 predates FlashAttention
    assert float(wl.model.d_model) == 10240 and float(wl.model.n_layers) == 60


def test_inference_cases_are_predicted(cases, result):
    inf = [r for r in result["rows"] if r["category"] == "inference"]
    assert len(inf) == sum(c["category"] == "inference" for c in cases) > 0
    for r in inf:
        assert r["status"] == "ok", (r["id"], r["status"], r["reason"])
        assert np.isfinite(r["predicted"]) and r["predicted"] > 0
        assert np.isfinite(r["measured"])
    all_errs = [abs(r["error_pct"]) for r in result["rows"] if r["error_pct"] is not None]
    assert result["mape_pct"] == pytest.approx(float(np.mean(all_errs)))


@pytest.mark.parametrize("field", ["id", "category", "hardware", "model", "metric", "value"])
def test_missing_field_raises_naming_it(cases, tmp_path, field):
    doc = {"cases": copy.deepcopy(cases[:2])}
    del doc["cases"][1][field]
    p = tmp_path / "cases.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=repr(field)):
        validate_cases(p)
    with pytest.raises(ValueError, match="case #1"):
        load_cases(p)


def test_bad_files_raise(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        validate_cases(tmp_path / "nope.json")
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        validate_cases(p)
    p.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="cases"):
        validate_cases(p)


def test_unknown_accelerator_is_an_unsupported_row(cases, tmp_path):
    c = copy.deepcopy(cases[0])
    c["id"] = "train-imaginary-tpu"
    c["hardware"]["accelerator"] = "TPU-v99"
    r = predict_case(c)
    assert r["status"] == "unsupported"
    assert "TPU-v99" in r["reason"]
    # and through a file: the row is kept, not dropped, and excluded from the MAPE
    p = tmp_path / "cases.json"
    p.write_text(json.dumps({"cases": [c, cases[0]]}))
    res = validate_cases(p)
    assert [r["id"] for r in res["rows"]] == ["train-imaginary-tpu", cases[0]["id"]]
    assert res["n_unsupported"] == 1 and res["n_supported"] == 1
    assert res["mape_pct"] == pytest.approx(abs(res["rows"][1]["error_pct"]))


def test_wafer_training_case_is_unsupported(cases):
    c = copy.deepcopy(cases[0])
    c["hardware"]["accelerator"] = "WSE-2"
    r = predict_case(c)
    assert r["status"] == "unsupported" and "wafer" in r["reason"]
