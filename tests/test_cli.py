"""The ``theseus`` command line (theseus_jax.cli): eval, sweep, validate, --help."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from theseus_jax._paths import configs_dir
from theseus_jax.cli.__main__ import main
from theseus_jax.dse.pareto import pareto_mask

# the checked-in developer set (the shared file grows with cases the model does not read yet)
_CASES = str(configs_dir() / "validation" / "validation_cases.json")


def test_validate_json(capsys):
    assert main(["validate", "--json", "--cases", _CASES]) == 0
    out = json.loads(capsys.readouterr().out)
    assert math.isfinite(out["mape_pct"]) and 0 <= out["mape_pct"] <= 10.0
    assert out["n_supported"] >= 10
    assert len(out["rows"]) == out["n_supported"] + out["n_unsupported"]
    assert "training" in out["mape_pct_by_category"]


def test_validate_table(capsys):
    assert main(["validate", "--cases", _CASES]) == 0
    out = capsys.readouterr().out
    assert "MAPE all supported" in out and "unsupported:" in out
    assert "train-megatron-a100-1.7B" in out


def test_validate_reports_malformed_cases(tmp_path, capsys):
    cases = json.loads(Path(_CASES).read_text())
    good = cases["cases"][0]
    bad = []
    for i, (field, value) in enumerate(
        (("value", [47, 42]), ("value", None), ("value", 0), ("hardware", {"count": "96 -> 4608"}))
    ):
        c = json.loads(json.dumps(good))
        c["id"] = f"bad-{i}"
        if field == "hardware":
            c["hardware"].update(value)
        else:
            c[field] = value
        bad.append(c)
    cases["cases"] = [good, *bad]
    p = tmp_path / "cases.json"
    p.write_text(json.dumps(cases))
    assert main(["validate", "--json", "--cases", str(p)]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows[good["id"]]["predicted"] is not None
    for i in range(4):
        assert rows[f"bad-{i}"]["predicted"] is None and rows[f"bad-{i}"]["reason"]
    assert main(["validate", "--cases", str(p)]) == 0  # the table prints them too
    assert "malformed" in capsys.readouterr().out


def test_eval_gpu(capsys):
    assert main(["eval", "a100_dgx", "megatron-1.7b", "--n-gpus", "32"]) == 0
    out = capsys.readouterr().out
    assert "step time" in out
    assert "best mapping: tp=" in out
    assert "mappings searched" in out
    for part in ("compute", "tp_comm", "dp_comm", "bubble"):
        assert part in out


def test_eval_json_wafer(capsys):
    assert main(["eval", "wse2", "gpt3-small", "--global-batch", "64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["system"] == "wse2" and out["mappings_searched"] > 0
    assert set(out["mapping"]) >= {"tp", "pp", "dp", "micro_batch", "stream"}
    assert out["feasible"] == (out["violations"] == [])
    assert all(math.isfinite(v) for v in out["metrics"].values())
    assert out["metrics"]["step_time_s"] > 0


@pytest.mark.parametrize(
    ("name", "suggestion"), [("no-such-model", "Did you mean"), ("gpt3-175", "'gpt3-175b'")]
)
def test_eval_unknown_model(capsys, name, suggestion):
    assert main(["eval", "a100_dgx", name]) == 2
    err = capsys.readouterr().err
    assert err.startswith("theseus eval: error:")
    assert f"unknown model {name!r}" in err
    assert suggestion in err
    assert "Traceback" not in err


def test_eval_bad_arguments(capsys):
    assert main(["eval", "wse2", "gpt3-small", "--n-gpus", "8"]) == 2
    assert "GPU clusters only" in capsys.readouterr().err
    assert main(["eval", "a100_dgx", "gpt3-small", "--n-gpus", "0"]) == 2
    assert "--n-gpus" in capsys.readouterr().err
    assert main(["eval", "no_such_system", "gpt3-small"]) == 2
    assert "no_such_system" in capsys.readouterr().err


def test_sweep_writes_csv_and_plot(tmp_path, capsys):
    args = ["sweep", "theseus_2024", "gpt3-xl", "-n", "16", "--out", str(tmp_path)]
    assert main(args + ["--chunk", "16", "--baseline", "none"]) == 0
    assert "16 designs" in capsys.readouterr().out
    with open(tmp_path / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16
    assert {
        "clock_hz",
        "step_time_s",
        "tokens_per_s",
        "power_w",
        "feasible",
        "pareto",
        "map_tp",
    } <= set(rows[0])
    png = (tmp_path / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["n_designs"] == 16 and summary["baseline"] is None
    # the pareto column is the front of the feasible rows
    feas = np.array([float(r["feasible"]) > 0 for r in rows])  # metrics are written as floats
    tput = np.array([float(r["tokens_per_s"]) for r in rows])
    power = np.array([float(r["power_w"]) for r in rows])
    front = pareto_mask(np.where(feas, tput, np.nan), np.where(feas, power, np.nan))
    assert [r["pareto"] == "True" for r in rows] == front.tolist()
    assert summary["n_feasible"] == int(feas.sum()) and summary["n_pareto"] == int(front.sum())
    assert [r["violated"] == "" for r in rows] == feas.tolist()
    assert feas.any()


def test_sweep_rejects_zero_designs(tmp_path, capsys):
    assert main(["sweep", "theseus_2024", "gpt3-xl", "-n", "0", "--out", str(tmp_path)]) == 2
    assert "-n" in capsys.readouterr().err


def test_help_subprocess():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    r = subprocess.run(
        [sys.executable, "-m", "theseus_jax.cli.__main__", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    for sub in ("eval", "sweep", "validate"):
        assert sub in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "theseus_jax.cli", "eval", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0 and "--n-gpus" in r.stdout


def test_missing_subcommand_exits_with_usage():
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2


def test_interrupt_says_how_to_continue(tmp_path, capsys, monkeypatch):
    """Ctrl-C in a long command: exit code 130 and the command that continues the run."""
    import theseus_jax.dse.explore as explore

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(explore, "run_explore", interrupted)
    out = tmp_path / "r"
    args = ["explore", "theseus_2024", "gpt3-xl", "--out", str(out), "--xla-cache", "none"]
    assert main(args) == 130
    assert f"theseus explore --resume {out}" in capsys.readouterr().err
