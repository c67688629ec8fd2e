"""Reading measurements as people write them (theseus_jax.validate._interpret and the case
rules of theseus_jax.validate._cases): one test per rule, malformed cases, and the model terms
the rules expose (FP8 on linear GEMMs, causal FlashAttention, CP, EP, DP overlap)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from _helpers import SHIPPED_CASES, gpu_system

from theseus_jax.cli.__main__ import main
from theseus_jax.cost.gpu import gpu_training_step
from theseus_jax.io import load_system
from theseus_jax.mapping import Mapping, enumerate_gpu_mappings
from theseus_jax.validate import predict_case, training_setup, validate_cases
from theseus_jax.validate._interpret import (
    CaseError,
    Notes,
    read_count,
    read_era,
    read_model,
    read_parallelism,
)
from theseus_jax.validate._metric_kinds import (
    Unsupported,
    read_inference_metric,
    read_training_metric,
)
from theseus_jax.workload import TrainingWorkload, load_model

# a modern H100 training case written the way a reader would write it (no id/source rules)
H100_CASE = {
    "id": "t-h100",
    "category": "training",
    "hardware": {"accelerator": "H100-SXM5-80GB", "count": 64},
    "model": {"name": "GPT 5B", "n_layers": 24, "d_model": 4096, "n_heads": 32},
    "parallelism": {"tp": 2, "pp": 1},
    "batch": {"global_batch_seqs": 256},
    "seq_len": 4096,
    "precision": "bf16",
    "metric": "training step time",
    "value": 1.0,
    "unit": "s",
    "source": "Megatron-Core r0.9 benchmark (2024-10-01)",
}


def _case(**over):
    c = copy.deepcopy(H100_CASE)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(c.get(k), dict):
            c[k].update(v)
        else:
            c[k] = v
    return c


def _rules(row):
    return set(row["rules"])


# ---- metric kinds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metric,unit,kind,per_gpu,scale",
    [
        ("training step time", "s", "step_time", False, 1.0),
        ("iteration time", "ms", "step_time", False, 1e3),
        ("per-GPU model TFLOP/s", "TFLOP/s", "model_flops", True, 1e-12),
        (
            "achieved TFLOP/s per GPU (FLOP count includes recomputation)",
            "TFLOP/s",
            "hw_flops",
            True,
            1e-12,
        ),
        ("aggregate model PFLOP/s", "PFLOP/s", "model_flops", False, 1e-15),
        ("MFU", "%", "mfu", False, 100.0),
        ("tokens/s per GPU", "tokens/s/GPU", "tokens_per_s", True, 1.0),
        ("throughput", "tokens/s", "tokens_per_s", False, 1.0),
    ],
)
def test_training_metric_kinds(metric, unit, kind, per_gpu, scale):
    spec = read_training_metric(metric, unit, {}, Notes())
    assert (spec.kind, spec.per_gpu) == (kind, per_gpu)
    assert spec.scale == pytest.approx(scale)


def test_gpu_hours_and_time_to_train():
    spec = read_training_metric("GPU-hours per 1T tokens", "GPU-hours", {}, Notes())
    assert spec.kind == "gpu_hours" and spec.tokens == 1e12
    with pytest.raises(Unsupported, match="tokens trained"):
        read_training_metric("time to train", "min", {"batch": {}}, Notes())
    spec = read_training_metric("time to train", "min", {"batch": {"total_tokens": 1e9}}, Notes())
    assert spec.kind == "time_to_train" and spec.scale == pytest.approx(1 / 60)
    with pytest.raises(Unsupported, match="baseline"):
        read_training_metric("speedup vs A100", "x", {}, Notes())


@pytest.mark.parametrize(
    "metric,unit,kind,extra",
    [
        ("first-token latency", "ms", "ttft", {}),
        ("time per output token (TPOT)", "ms", "tpot", {}),
        ("decode tokens/s per user", "tokens/s", "tokens_per_s_per_user", {}),
        ("output tokens/s per GPU", "tokens/s/GPU", "tokens_per_s", {"per_gpu": True}),
        (
            "total output tokens/s (all GPUs in the TP group)",
            "tokens/s",
            "tokens_per_s",
            {"per_replica": True},
        ),
        ("total tokens/s (input + output)", "tokens/s", "tokens_per_s", {"include_prompt": True}),
    ],
)
def test_inference_metric_kinds(metric, unit, kind, extra):
    spec = read_inference_metric(metric, unit, Notes())
    assert spec.kind == kind
    for k, v in extra.items():
        assert getattr(spec, k) == v


def test_metric_unit_conversion_is_consistent():
    """The same run asked as step time in s and ms, and per-GPU vs aggregate FLOP/s."""
    s = predict_case(_case(metric="training step time", unit="s"))["predicted"]
    ms = predict_case(_case(metric="training step time", unit="ms", value=1000.0))["predicted"]
    assert ms == pytest.approx(1e3 * s, rel=1e-5)
    per = predict_case(_case(metric="per-GPU model TFLOP/s", unit="TFLOP/s"))["predicted"]
    agg = predict_case(_case(metric="aggregate model PFLOP/s", unit="PFLOP/s"))["predicted"]
    assert agg == pytest.approx(per * 64 / 1e3, rel=1e-5)
    mfu = predict_case(_case(metric="MFU", unit="%"))["predicted"]
    assert mfu == pytest.approx(100 * per / 989.4, rel=1e-3)


def test_case_model_flops_are_used_for_mfu():
    """A case that states its model FLOPs per sequence is scored with that count."""
    base = predict_case(_case(metric="MFU", unit="%"))
    c = _case(metric="MFU", unit="%")
    c["model"]["model_flops_per_seq"] = 1.0e14
    row = predict_case(c)
    step = predict_case(_case())["predicted"]
    assert row["predicted"] == pytest.approx(1e14 * 256 / (step * 64 * 989.4e12) * 100, rel=1e-3)
    assert row["predicted"] != pytest.approx(base["predicted"], rel=1e-3)


# ---- models --------------------------------------------------------------------------------


def test_model_alias_same_architecture():
    n = Notes()
    m = read_model({"name": "Llama-3.3-70B"}, "x", n)
    ref = load_model("llama-3.1-70b")
    assert float(m.params_total()) == float(ref.params_total())
    assert "model-name" in n.rules() or "model-alias" in n.rules()
    # suffixes and parentheticals are dropped
    m2 = read_model({"name": "Llama-3.1-70B-Instruct (FP8 checkpoint)"}, "x", Notes())
    assert float(m2.params_total()) == float(ref.params_total())


def test_model_from_shape_with_stated_defaults():
    n = Notes()
    m = read_model({"name": "Mystery 1B", "n_layers": 16, "d_model": 2048, "n_heads": 16}, "x", n)
    assert float(m.d_ff) == 4 * 2048 and float(m.n_kv_heads) == 16
    assert float(m.vocab_size) == 51200
    text = " ".join(a.text for a in n.items)
    assert "FFN 4h" in text and "vocab 51200" in text
    m = read_model(
        {
            "layers": 32,
            "hidden_size": 4096,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "ffn": "swiglu 14336",
            "vocab": 128256,
        },
        "x",
        Notes(),
    )
    assert float(m.ffn_gated) == 1.0 and float(m.d_ff) == 14336 and float(m.n_kv_heads) == 8


def test_shape_fields_override_a_known_model():
    n = Notes()
    m = read_model({"name": "GPT-3 175B", "vocab": 131072}, "x", n)
    assert float(m.vocab_size) == 131072 and float(m.n_layers) == 96
    assert "model-shape" in n.rules()


def test_unknown_model_without_shape_is_unsupported():
    with pytest.raises(CaseError, match="n_layers"):
        read_model({"name": "NoSuchModel-9000B"}, "x", Notes())
    c = _case()
    c["model"] = {"name": "NoSuchModel-9000B"}
    row = predict_case(c)
    assert row["predicted"] is None and "n_layers" in row["reason"]


# ---- hardware ------------------------------------------------------------------------------


def test_derived_part_h800_is_h100_with_less_nvlink():
    h800, h100 = load_system("H800"), load_system("H100")
    assert float(h800.nvlink_bw_bytes_per_s) < float(h100.nvlink_bw_bytes_per_s)
    for f in ("peak_flops_16", "peak_flops_8", "hbm_bw_bytes_per_s", "hbm_bytes", "tdp_w"):
        assert float(getattr(h800, f)) == float(getattr(h100, f))
    # a TP-8 case is slower on H800 (TP all-reduces over NVLink), never faster
    c = _case(parallelism={"tp": 8})
    t100 = predict_case(c)["predicted"]
    c["hardware"]["accelerator"] = "H800-SXM5-80GB"
    assert predict_case(c)["predicted"] > t100


def test_fp4_peak_on_parts_that_have_one():
    b200, h100 = load_system("B200"), load_system("H100")
    assert float(b200.peak_flops(4)) == pytest.approx(2 * float(b200.peak_flops(8)))
    assert float(h100.peak_flops(4)) == float(h100.peak_flops(8))  # falls back to FP8


# ---- counts, parallelism, batch ------------------------------------------------------------


@pytest.mark.parametrize("count", ["96 -> 4608", [96, 4608], 0, -8, "lots", 1.5])
def test_malformed_counts(count):
    with pytest.raises(CaseError, match="hardware.count"):
        read_count({"count": count}, None, Notes())
    row = predict_case(_case(hardware={"count": count}))
    assert row["predicted"] is None and row["reason"].startswith("malformed")


def test_count_spellings_and_missing_count():
    assert read_count({"count": "64"}, None, Notes()) == 64
    assert read_count({"count": "8x8"}, None, Notes()) == 64
    n = Notes()
    assert read_count({}, 32, n) == 32 and "count" in n.rules()
    with pytest.raises(CaseError, match="missing"):
        read_count({"count": None}, None, Notes())


def test_parallelism_spellings():
    p = read_parallelism(
        {
            "tensor_model_parallel_size": "4",
            "Pipeline-Parallel": 2,
            "context_parallel_size": 2,
            "EP": 1,
            "virtual_pipeline_model_parallel_size": 3,
            "MBS": 2,
            "sequence_parallel": True,
            "ZeRO": "stage 1",
            "comm_overlap": "DP grad-reduce/param-gather overlapped",
            "activation_recompute": "selective",
        }
    )
    assert (p.tp, p.pp, p.cp, p.ep, p.micro_batch) == (4, 2, 2, 1, 2)
    assert p.vp_raw == 3 and p.seq_par and p.dist_opt and p.dp_overlap and not p.tp_overlap
    assert p.recompute == "selective"


def test_mismatched_mapping_is_an_error_for_that_case():
    row = predict_case(_case(parallelism={"tp": 2, "pp": 2, "dp": 8}))  # 32 != 64
    assert row["predicted"] is None and "mapping mismatch" in row["reason"]
    row = predict_case(_case(parallelism={"tp": 3}))  # 3 does not divide 64
    assert row["predicted"] is None and "mapping mismatch" in row["reason"]


def test_dp_is_derived_and_cp_counts_in_the_product():
    system, wl, mp = training_setup(_case(parallelism={"tp": 2, "cp": 2, "pp": 2}))
    assert float(mp.dp) == 8 and float(mp.cp) == 2


def test_batch_rules():
    _, wl, _ = training_setup(_case(batch={"global_batch_seqs": None, "tokens_per_batch": 1048576}))
    assert float(wl.global_batch) == 256
    c = _case()
    c["batch"] = {"per_dp_batch": 8}
    _, wl, mp = training_setup(c)
    assert float(wl.global_batch) == 8 * float(mp.dp)
    c["batch"] = {}
    row = predict_case(c)
    assert row["predicted"] is None and "batch" in row["reason"]


# ---- software era --------------------------------------------------------------------------


def test_era_rules():
    assert read_era({"source": "Megatron-Core r0.8.0 (2024-07-15)"}, Notes()) == "modern"
    assert read_era({"source": "NeMo 24.09 benchmark"}, Notes()) == "modern"
    assert read_era({"source": "TensorRT-LLM v0.9.0 perf overview"}, Notes()) == "modern"
    assert read_era({"source": "TensorRT-LLM v0.5.0 perf"}, Notes()) == "legacy"
    assert read_era({"source": "Narayanan et al., SC21"}, Notes()) == "legacy"
    assert read_era({"source": "a blog"}, Notes()) == "unknown"


def test_modern_stack_implies_flash_sp_distopt_unless_stated():
    _, wl, mp = training_setup(_case())
    assert float(wl.flash_attention) == 1 and float(mp.seq_par) == 1
    assert float(mp.dist_opt) == 1 and float(mp.dp_overlap) == 1
    _, wl, mp = training_setup(
        _case(parallelism={"sequence_parallel": False, "distributed_optimizer": "no"})
    )
    assert float(mp.seq_par) == 0 and float(mp.dist_opt) == 0
    _, wl, mp = training_setup(_case(source="Narayanan et al. (arXiv 2104.04473)"))
    assert float(wl.flash_attention) == 0 and float(mp.seq_par) == 0 and float(mp.dist_opt) == 0


def test_recompute_fallback_only_when_it_does_not_fit():
    row = predict_case(_case())
    assert "recompute" not in _rules(row)
    # a 70B model on 8 GPUs without recomputation cannot fit: the rule must fire
    big = _case(hardware={"count": 8}, parallelism={"tp": 8}, seq_len=8192)
    big["model"] = {"name": "llama-3.1-70b"}
    big["batch"] = {"global_batch_seqs": 8}
    row = predict_case(big)
    assert row["predicted"] is not None and "recompute" in _rules(row)


# ---- inference -----------------------------------------------------------------------------


def _infer_case(**over):
    c = {
        "id": "i",
        "category": "inference",
        "hardware": {"accelerator": "H100-SXM5-80GB", "count": 1},
        "model": {"name": "Llama-3.1-8B"},
        "parallelism": {"tp": 1},
        "batch": {"mode": "inflight batching, max throughput"},
        "seq_len": {"input": 128, "output": 128},
        "precision": "fp8",
        "metric": "output tokens/s",
        "value": 1000.0,
        "unit": "tokens/s",
    }
    c.update(over)
    return c


def test_max_throughput_searches_the_batch():
    searched = predict_case(_infer_case())
    assert "inference-batch" in _rules(searched)
    one = predict_case(_infer_case(batch={"batch_size": 1}))
    big = predict_case(_infer_case(batch={"batch_size": 64}))
    assert searched["predicted"] >= big["predicted"] > one["predicted"]
    assert searched["status"] == "ok"


def test_per_user_metric_means_batch_one():
    row = predict_case(_infer_case(metric="tokens/s per user", batch={}))
    one = predict_case(_infer_case(metric="tokens/s per user", batch={"batch_size": 1}))
    assert row["predicted"] == pytest.approx(one["predicted"])
    assert any("batch 1" in a["text"] for a in row["assumptions"])


def test_per_replica_and_per_gpu_throughput():
    c = _infer_case(
        hardware={"accelerator": "H100", "count": 8},
        model={"name": "llama-3.1-70b"},
        parallelism={"tp": 4},
        batch={"batch_size": 64},
        metric="output tokens/s",
    )
    total = predict_case(c)["predicted"]
    per_gpu = predict_case({**c, "metric": "output tokens/s per GPU"})["predicted"]
    per_rep = predict_case({**c, "metric": "output tokens/s (all GPUs in the TP group)"})[
        "predicted"
    ]
    assert per_gpu == pytest.approx(total / 8, rel=1e-5)
    assert per_rep == pytest.approx(total / 2, rel=1e-5)


# ---- malformed cases through the file and the CLI ------------------------------------------


def test_malformed_cases_never_stop_a_run(tmp_path, capsys):
    good = _case()
    bad = [
        _case(id="list", value=[47, 42]),
        _case(id="null", value=None),
        _case(id="zero", value=0),
        _case(id="range", hardware={"count": "96 -> 4608"}),
        _case(id="mismatch", parallelism={"tp": 4, "pp": 4, "dp": 8}),
        _case(id="nocount", hardware={"count": None}, parallelism={"tp": 2}),
        _case(id="badseq", seq_len={"input": 1}),
    ]
    p = tmp_path / "cases.json"
    p.write_text(json.dumps({"cases": [good, *bad]}))
    res = validate_cases(p)
    rows = {r["id"]: r for r in res["rows"]}
    assert rows["t-h100"]["predicted"] is not None
    for c in bad:
        r = rows[c["id"]]
        assert r["predicted"] is None and r["reason"], c["id"]
        assert r["reason"].startswith("malformed"), (c["id"], r["reason"])
    assert main(["validate", "--cases", str(p), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "[era]" in out and "rules fired" in out
    assert main(["validate", "--cases", str(tmp_path / "missing.json")]) == 2


def test_json_carries_assumptions(capsys):
    assert main(["validate", "--json", "--cases", str(SHIPPED_CASES)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rules_fired"] and out["mape_pct_by_group"]
    for r in out["rows"]:
        assert isinstance(r["assumptions"], list) and isinstance(r["rules"], list)
        if r["predicted"] is None:
            assert r["reason"]


def test_every_developer_case_is_predicted_or_has_a_reason():
    res = validate_cases(SHIPPED_CASES)
    for r in res["rows"]:
        assert (r["predicted"] is not None and np.isfinite(r["predicted"])) or r["reason"]
    by_id = {r["id"]: r for r in res["rows"]}
    mega = [r for i, r in by_id.items() if i.startswith("train-megatron-a100-")]
    assert np.mean([abs(r["error_pct"]) for r in mega]) <= 10.0
    inf = [r for r in res["rows"] if r["category"] == "inference"]
    assert all(r["predicted"] is not None for r in inf)


# ---- model terms exposed by the rules ------------------------------------------------------


def _wl(bits=16.0, flash=1.0, seq=4096, model="llama-3-8b", batch=64):
    return TrainingWorkload(
        load_model(model),
        global_batch=batch,
        seq_len=seq,
        precision_bits=bits,
        flash_attention=flash,
    )


def test_fp8_speeds_linear_gemms_only():
    sys_ = gpu_system("h100_dgx", 8)
    mp = Mapping(tp=1, pp=1, dp=8, micro_batch=1)
    m16 = gpu_training_step(sys_, _wl(16.0), mp)
    m8 = gpu_training_step(sys_, _wl(8.0), mp)
    ratio = float(m16.compute_s) / float(m8.compute_s)
    # faster, but less than the 2x peak ratio: attention core and logits stay 16-bit and the
    # FP8 GEMM efficiency is its own
    assert 1.2 < ratio < 2.0
    # the model FLOP count does not depend on the precision
    assert float(m8.model_flops) == pytest.approx(float(m16.model_flops))


def test_causal_flash_attention_halves_attention_time_not_flops():
    sys_ = gpu_system("h100_dgx", 8)
    mp = Mapping(tp=1, pp=1, dp=8, micro_batch=1)
    flash = gpu_training_step(sys_, _wl(flash=1.0, seq=8192), mp)
    unfused = gpu_training_step(sys_, _wl(flash=0.0, seq=8192), mp)
    assert float(flash.step_time_s) < float(unfused.step_time_s)
    assert float(flash.model_flops) == pytest.approx(float(unfused.model_flops))
    assert float(flash.mem_bytes) < float(unfused.mem_bytes)  # no s x s stash


def test_context_parallelism_splits_activations_and_flops():
    sys_ = gpu_system("h100_dgx", 16)
    wl = _wl(seq=16384, batch=16)
    m1 = gpu_training_step(sys_, wl, Mapping(tp=2, pp=1, dp=8, micro_batch=1, cp=1))
    m2 = gpu_training_step(sys_, wl, Mapping(tp=2, pp=1, dp=4, micro_batch=1, cp=2))
    assert float(m2.n_devices) == float(m1.n_devices) == 16
    assert float(m2.model_flops) == pytest.approx(float(m1.model_flops), rel=1e-4)
    assert float(m2.mem_bytes) < float(m1.mem_bytes)
    # cp must divide the sequence
    bad = gpu_training_step(sys_, _wl(seq=4095, batch=16), Mapping(tp=2, dp=4, cp=2))
    assert not bool(bad.feasible)


def test_expert_parallelism_shards_expert_weights():
    sys_ = gpu_system("h100_dgx", 8)
    wl = TrainingWorkload(load_model("mixtral-8x7b"), global_batch=64, seq_len=4096)
    m1 = gpu_training_step(sys_, wl, Mapping(tp=1, pp=1, dp=8, micro_batch=1, ep=1, dist_opt=1))
    m8 = gpu_training_step(sys_, wl, Mapping(tp=1, pp=1, dp=8, micro_batch=1, ep=8, dist_opt=1))
    assert float(m8.mem_bytes) < 0.5 * float(m1.mem_bytes)
    assert float(m8.model_flops) == pytest.approx(float(m1.model_flops), rel=1e-4)
    dense = gpu_training_step(sys_, _wl(batch=64), Mapping(tp=1, dp=8, ep=2))
    assert not bool(dense.feasible)  # EP on a dense model is not a legal mapping


def test_mapping_search_enumerates_cp_and_ep():
    wl = _wl(seq=16384, batch=16)
    maps = enumerate_gpu_mappings(wl, 16)
    assert set(np.unique(np.asarray(maps.cp)).tolist()) >= {1.0, 2.0}
    wl_moe = TrainingWorkload(load_model("mixtral-8x7b"), global_batch=16, seq_len=2048)
    maps = enumerate_gpu_mappings(wl_moe, 8, flags=False)
    assert set(np.unique(np.asarray(maps.ep)).tolist()) >= {1.0, 2.0, 8.0}
    assert np.all(np.asarray(maps.cp) == 1)  # short sequences: no CP
    # tp * cp * pp * dp is the GPU count on every row
    maps = enumerate_gpu_mappings(wl, 16, flags=False)
    prod = np.asarray(maps.tp) * np.asarray(maps.cp) * np.asarray(maps.pp) * np.asarray(maps.dp)
    assert np.all(prod == 16)


def test_dp_overlap_never_slower_and_hides_behind_both_passes():
    sys_ = gpu_system("h100_dgx", 64)
    wl = _wl(batch=64)
    base = dict(tp=1, pp=1, dp=64, micro_batch=1, dist_opt=1)
    raw = gpu_training_step(sys_, wl, Mapping(**base, dp_overlap=0))
    hid = gpu_training_step(sys_, wl, Mapping(**base, dp_overlap=1))
    assert float(hid.step_time_s) <= float(raw.step_time_s)
    assert float(hid.dp_comm_s) < float(raw.dp_comm_s)


def test_point_release_aliases_are_the_same_shape():
    for alias, slug in (("Qwen2.5-72B", "qwen2-72b"), ("DeepSeek-R1", "deepseek-v3")):
        m = read_model({"name": alias}, "x", Notes())
        assert float(m.params_total()) == float(load_model(slug).params_total())


def test_degrees_in_free_text_and_numbers_in_words():
    p = read_parallelism({"config": "TP=4, PP=8, CP 2"})
    assert (p.tp, p.pp, p.cp) == (4, 8, 2)
    _, wl, _ = training_setup(_case(seq_len="4k", batch={"global_batch_seqs": "256 sequences"}))
    assert float(wl.seq_len) == 4096 and float(wl.global_batch) == 256


def test_fp4_serving_keeps_an_fp8_kv_cache():
    from theseus_jax.validate._cases import inference_setup

    c = _infer_case(hardware={"accelerator": "B200", "count": 1}, precision="nvfp4")
    _, _, wl, _ = inference_setup(c)
    assert float(wl.precision_bits) == 4 and float(wl.kv_bits) == 8
    assert predict_case(c)["predicted"] > predict_case({**c, "precision": "fp8"})["predicted"]


def test_absurd_shape_is_malformed_not_a_hang():
    c = _case()
    c["model"]["n_layers"] = 1e30
    row = predict_case(c)
    assert row["predicted"] is None and "largest accepted" in row["reason"]
