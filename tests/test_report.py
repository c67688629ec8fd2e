"""``theseus report``: one self-contained HTML page and a Markdown file from result folders."""

from __future__ import annotations

import base64
import csv
import json

import pytest

from theseus_jax.cli.__main__ import main
from theseus_jax.cli._report import build_report

CLAIM = "throughput < 2x & power > 1 kW"


def _experiment(folder, name, n_rows=50):
    """A complete result folder as ``experiments/_common.Study`` writes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True)
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    fig.savefig(folder / "pareto.png", dpi=20)
    fig.savefig(folder / "pareto.svg")
    plt.close(fig)
    with open(folder / "rows.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["design", "tokens_per_s"])
        w.writerows([f"d{i}", i * 1.5] for i in range(n_rows))
    manifest = {
        "experiment": name,
        "title": "Training vs GPU clusters",
        "command": f"python experiments/{name}.py --smoke --out results/{name}",
        "scale": "smoke",
        "wall_s": 12.34,
        "created": "2024-01-01T00:00:00+00:00",
        "machine": "x86_64, 2 CPUs, jax 0.4 on cpu",
        "summary": "The wafer wins on `tokens/s`.",
        "claims": [
            {
                "claim": CLAIM,
                "paper": "1.8x",
                "ours": "1.7x",
                "interval": "[1.5, 1.9]",
                "verdict": "supported",
                "why": "a | b",
            }
        ],
        "tables": [{"file": "rows.csv", "caption": "per-design rows"}],
        "figures": [{"file": "pareto.png", "svg": "pareto.svg", "caption": "Pareto front"}],
        "notes": ["smoke scale: <small> budget"],
        "data": {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    _experiment(root / "train_vs_gpu", "train_vs_gpu")
    (root / "case_studies").mkdir()  # interrupted run: no manifest, a table already written
    (root / "case_studies" / "levels.csv").write_text("a,b\n1,2\n")
    (root / "explore_runs").mkdir()  # data shared between experiments: not a section
    (root / "explore_runs" / "run.sqlite").write_bytes(b"")
    (root / "case_studies" / "partial.csv").write_text("a\n1\n")
    return root


def test_html_is_self_contained(results):
    page, _ = build_report(results)
    png = base64.b64encode((results / "train_vs_gpu" / "pareto.png").read_bytes()).decode()
    assert f'src="data:image/png;base64,{png}"' in page
    assert "python experiments/train_vs_gpu.py --smoke --out results/train_vs_gpu" in page
    assert "throughput &lt; 2x &amp; power &gt; 1 kW" in page
    assert CLAIM not in page  # never unescaped
    assert "&lt;small&gt; budget" in page
    assert "10 more rows in rows.csv" in page
    assert "<td>d39</td>" in page and "<td>d40</td>" not in page
    assert "unfinished (no manifest.json)" in page and "explore_runs" not in page
    assert 'src="http' not in page and "<script" not in page
    # canonical order: train_vs_gpu before case_studies; overview claims table before both
    assert page.index("All claims") < page.index('id="exp-train_vs_gpu"')
    assert page.index('id="exp-train_vs_gpu"') < page.index('id="exp-case_studies"')


def test_markdown_links_relative(results, tmp_path):
    _, md = build_report(results)
    assert "](train_vs_gpu/pareto.png)" in md
    assert "| design | tokens_per_s |" in md
    assert "| claim | paper | ours | interval | verdict | why |" in md
    assert "a \\| b" in md  # pipes escaped inside table cells
    assert "10 more rows in rows.csv" in md
    assert "unfinished (no manifest.json)" in md
    _, md = build_report(results, md_dir=tmp_path / "elsewhere")
    assert "](../results/train_vs_gpu/pareto.png)" in md


def test_single_folder_and_missing_files(results):
    folder = results / "train_vs_gpu"
    (folder / "rows.csv").unlink()
    (folder / "pareto.png").unlink()
    (folder / "pareto.svg").unlink()
    page, md = build_report(folder)
    assert "missing: rows.csv" in page and "missing: pareto.png" in page
    assert "missing: rows.csv" in md and "missing: pareto.png" in md
    assert "unfinished" not in page  # only the folder itself is reported


def test_cli_writes_both(results, capsys):
    assert main(["report", str(results)]) == 0
    out = capsys.readouterr().out
    html_path, md_path = results / "report.html", results / "report.md"
    assert str(html_path) in out and str(md_path) in out
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    assert "## All claims" in md_path.read_text()


def test_cli_out_elsewhere(results, tmp_path, capsys):
    out = tmp_path / "site" / "index.html"
    assert main(["report", str(results), "--out", str(out)]) == 0
    assert out.exists() and (tmp_path / "site" / "index.md").exists()
    assert "](../results/train_vs_gpu/pareto.png)" in (tmp_path / "site" / "index.md").read_text()


def test_empty_dir_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "theseus report: error: no manifest.json" in err
    assert "python experiments/NAME.py --smoke --out" in err
    assert len(err.strip().splitlines()) == 1


def test_corrupt_manifest_does_not_sink_the_report(results):
    bad = results / "dse_efficiency"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    nokeys = results / "zz_other"
    nokeys.mkdir()
    (nokeys / "manifest.json").write_text(json.dumps({"experiment": "zz_other"}))
    page, md = build_report(results)
    assert "cannot read manifest.json" in page and "cannot read manifest.json" in md
    assert "missing required keys [&#x27;title&#x27;, &#x27;command&#x27;]" in page
    assert "throughput &lt; 2x" in page  # the good experiment still renders
    assert "data:image/png;base64," in page
    order = ["exp-train_vs_gpu", "exp-case_studies", "exp-dse_efficiency", "exp-zz_other"]
    pos = [page.index(f'id="{a}"') for a in order]
    assert pos == sorted(pos)
