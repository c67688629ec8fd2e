"""``theseus explore --inference``: F0 screening for LLM serving (dse.explore_inference).

One small problem (Llama-3-8B, batch 4, 128 in / 16 out, 64 designs in chunks of 32) shared
by every test: one compilation, then runs of the same shapes reuse it.
"""

import json

import numpy as np
import pytest
from _helpers import read_csv_rows

from theseus_jax.cli.__main__ import main
from theseus_jax.dse import InferenceExploreConfig, run_inference_explore
from theseus_jax.dse.explore_inference import F1_NOTE, FIDELITY_LINE, _screen_chunk

SPACE, WL = "theseus_2024", "llama-3-8b"
BASE = dict(
    space=SPACE, workload=WL, batch=4, prompt_len=128, output_len=16, pool=64, chunk=32, seed=0
)
CLI = [
    "explore",
    SPACE,
    WL,
    "--inference",
    "--batch",
    "4",
    "--prompt-len",
    "128",
    "--output-len",
    "16",
    "--pool",
    "64",
    "--chunk",
    "32",
    "--xla-cache",
    "none",
]


@pytest.fixture(scope="module")
def free(tmp_path_factory):
    """The run without a tpot bound: (run_dir, summary, progress lines)."""
    d = tmp_path_factory.mktemp("free")
    lines: list[str] = []
    s = run_inference_explore(InferenceExploreConfig(**BASE), d, progress=lines.append)
    return d, s, lines


def _tp(rows) -> np.ndarray:
    """(throughput, power) of CSV rows."""
    return np.array([[float(r["tokens_per_s"]), float(r["power_w"])] for r in rows]).reshape(-1, 2)


def test_summary_files_and_f0_only_statement(free):
    d, s, lines = free
    assert lines[0] == FIDELITY_LINE and "F0 only" in lines[0]
    assert s["fidelity"] == "F0" and s["f1"] == F1_NOTE
    assert "not simulated yet" in s["f1"] and "F0 (analytic) only" in s["f1"]
    for k in (
        "config",
        "counts",
        "n_pareto",
        "pareto",
        "best_tokens_per_s",
        "best_tokens_per_s_per_w",
        "hypervolume",
        "hv_reference",
        "wall_s",
    ):
        assert k in s, k
    c = s["counts"]
    assert c["screened"] == 64 and c["feasible"] + c["infeasible"] == 64
    assert c["feasible"] >= 2 and s["n_pareto"] >= 1 and s["hypervolume"] > 0
    assert sum(c["infeasible_by_reason"].values()) >= c["infeasible"]
    assert json.loads((d / "summary.json").read_text()) == s
    assert s["config"] == InferenceExploreConfig(**BASE).to_json()
    for p in s["pareto"]:
        assert {"tokens_per_s", "power_w", "tpot_s", "ttft_s"} <= set(p)
    assert (d / "pareto.png").stat().st_size > 1000
    assert not list(d.glob(".*.tmp"))  # no temporary left behind
    designs = read_csv_rows(d / "designs.csv")
    assert len(designs) == 64
    assert sum(r["feasible"] == "True" for r in designs) == c["feasible"]
    assert all((r["violated"] == "") == (r["feasible"] == "True") for r in designs)
    head = list(designs[0])
    assert head[:8] == [
        "tokens_per_s",
        "power_w",
        "tokens_per_s_per_w",
        "tokens_per_s_per_user",
        "ttft_s",
        "tpot_s",
        "peak_flops",
        "n_wafers",
    ]
    assert "clock_hz" in head and "map_tp" in head and "map_stream" in head
    assert list(read_csv_rows(d / "pareto.csv")[0]) == head[: head.index("feasible")]


def test_gpu_reference_in_summary_and_plot(free):
    """The summary carries the modelled A100 cluster of comparable peak on the same serving
    workload (F0, best mapping, units given), and the plot is written."""
    d, s, _ = free
    gpu = s["gpu_reference"]
    assert gpu is not None and gpu["label"].startswith("A100 DGX x ")
    assert "(F0, best mapping)" in gpu["label"] and gpu["fidelity"] == "F0"
    assert gpu["n_gpus"] % 8 == 0 and gpu["tokens_per_s"] > 0 and gpu["power_w"] > 0
    assert gpu["units"] == {"tokens_per_s": "tokens/s", "power_w": "W", "peak_flops": "FLOP/s"}
    designs = read_csv_rows(d / "designs.csv")
    peaks = [float(r["peak_flops"]) for r in designs if r["feasible"] == "True"]
    assert gpu["target_peak_flops"] == pytest.approx(float(np.median(peaks)), rel=1e-6)
    assert 0.5 <= gpu["peak_flops"] / gpu["target_peak_flops"] <= 2.0
    assert (d / "pareto.png").stat().st_size > 1000


def test_pareto_front_is_the_nondominated_feasible_set(free):
    d, s, _ = free
    front = _tp(read_csv_rows(d / "pareto.csv"))
    feas = _tp([r for r in read_csv_rows(d / "designs.csv") if r["feasible"] == "True"])
    assert len(front) == s["n_pareto"]
    assert np.all(np.diff(front[:, 0]) <= 0)  # highest throughput first

    def dominates(a, b):
        return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])

    for i, a in enumerate(front):
        assert not any(dominates(b, a) for j, b in enumerate(front) if j != i)
    for x in feas:  # every feasible design is dominated by, or equal to, a front row
        assert any(dominates(f, x) or np.array_equal(f, x) for f in front)


def test_tpot_bound_is_respected_and_monotone(free, tmp_path):
    d0, s0, _ = free
    tpot = np.array([p["tpot_s"] for p in s0["pareto"]])
    loose_ms, tight_ms = 1e3 * np.quantile(tpot, 0.9), 1e3 * np.quantile(tpot, 0.1)
    n_compiled = _screen_chunk._cache_size()
    runs = [(s0, read_csv_rows(d0 / "designs.csv"))]
    for k, ms in enumerate((loose_ms, tight_ms)):
        cfg = InferenceExploreConfig(**BASE, max_tpot_ms=float(ms))
        s = run_inference_explore(cfg, tmp_path / f"b{k}")
        assert all(p["tpot_s"] <= ms * 1e-3 * (1 + 1e-6) for p in s["pareto"])
        runs.append((s, read_csv_rows(tmp_path / f"b{k}" / "designs.csv")))
    assert _screen_chunk._cache_size() == n_compiled  # the bound is data: no recompilation
    best = [s["best_tokens_per_s"] for s, _ in runs]
    feasible = [s["counts"]["feasible"] for s, _ in runs]
    assert best[0] >= best[1] >= best[2]
    assert feasible[0] > feasible[1] > feasible[2] > 0  # the bounds bind
    assert runs[2][0]["counts"]["infeasible_by_reason"]["LATENCY"] > 0
    # design by design (same seed, same designs): a tighter bound never helps
    for (_, loose), (_, tight) in zip(runs[:-1], runs[1:], strict=True):
        for a, b in zip(loose, tight, strict=True):
            if b["feasible"] == "True":
                assert a["feasible"] == "True"
                assert float(b["tokens_per_s"]) <= float(a["tokens_per_s"])


def test_same_seed_same_files(free, tmp_path):
    d, _, _ = free
    run_inference_explore(InferenceExploreConfig(**BASE), tmp_path)
    for f in ("pareto.csv", "designs.csv"):
        assert (tmp_path / f).read_bytes() == (d / f).read_bytes(), f


def test_cli_inference(free, tmp_path, capsys):
    d, s, _ = free
    assert main([*CLI, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == FIDELITY_LINE
    assert any("Pareto designs (F0 only)" in line for line in out)
    assert any("tokens/s" in line and "kW" in line for line in out)
    for f in ("pareto.csv", "designs.csv", "pareto.png", "summary.json"):
        assert (tmp_path / f).exists(), f
    assert (tmp_path / "pareto.csv").read_bytes() == (d / "pareto.csv").read_bytes()


@pytest.mark.parametrize(
    "extra, msg",
    [
        (["--method", "sfbo"], "--inference runs are F0-only screening: --method does not apply"),
        (["--budget", "5", "--surrogate", "ar1"], "--surrogate, --budget do not apply"),
        (["--resume", "x"], "--resume does not apply"),
        (["--global-batch", "8"], "training options"),
    ],
)
def test_cli_refuses_training_flags_with_inference(extra, msg, capsys):
    assert main([*CLI, *extra]) == 2
    assert msg in capsys.readouterr().err


def test_cli_training_refuses_inference_flags(capsys):
    assert main(["explore", SPACE, "gpt3-xl", "--batch", "4", "--xla-cache", "none"]) == 2
    assert "--batch apply to --inference runs only" in capsys.readouterr().err


def test_cli_no_feasible_design(tmp_path, capsys):
    assert main([*CLI, "--max-tpot-ms", "1e-6", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no feasible design among the 64 screened" in err
    assert "LATENCY" in err and "--max-tpot-ms" in err and "--pool" in err
    assert (tmp_path / "designs.csv").exists() and not (tmp_path / "summary.json").exists()


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(batch=0), "batch"),
        (dict(output_len=1.5), "output_len"),
        (dict(max_tpot_ms=-1.0), "max_tpot_ms"),
        (dict(max_tpot_ms=float("nan")), "max_tpot_ms"),
        (dict(precision="int4"), "precision"),
        (dict(objective="fast"), "objective"),
        (dict(pool=0), "pool"),
        (dict(chunk=0), "chunk"),
        (dict(workload=""), "workload"),
    ],
)
def test_config_validation(kw, field):
    with pytest.raises(ValueError, match=field):
        InferenceExploreConfig(**{**BASE, **kw})
