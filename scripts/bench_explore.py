"""DSE efficiency (BRIEF 6.3): thin entry point of ``experiments/dse_efficiency.py``.

The study lives in the experiment; this script keeps the benchmark's command line. Its
``--out`` names the run databases (the experiment's ``--runs``; default runs/bench_explore,
which scripts/gp_heldout.py reads, and runs/bench_explore_smoke with ``--smoke`` so that a
smoke run never replaces full-scale runs); tables, figures and the manifest go to
``--results`` (default results/dse_efficiency). Every other flag passes through (--seeds,
--budget, --pool, --methods, --n-init, --workers, --f0-bias, --json, --smoke, ...; see
``python experiments/dse_efficiency.py --help``).

    python scripts/bench_explore.py [--seeds 5] [--budget 40] [--pool 512] [--workers 1]
                                     [--json] [--smoke]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

from dse_efficiency import main as _experiment  # noqa: E402

_RENAME = {"--out": "--runs", "--results": "--out"}


def main(argv=None) -> int:
    args = []
    for a in sys.argv[1:] if argv is None else argv:
        flag, eq, val = a.partition("=")
        args.append(_RENAME[flag] + eq + val if flag in _RENAME else a)
    if "-h" in args or "--help" in args:
        print(__doc__)  # this script's --out / --results, then the experiment's flags
    if not any(a.split("=")[0] == "--runs" for a in args):
        args += [
            "--runs",
            "runs/bench_explore_smoke" if "--smoke" in args else "runs/bench_explore",
        ]
    if not any(a.split("=")[0] == "--xla-cache" for a in args):
        args += ["--xla-cache", "runs/.xla_cache"]
    return _experiment(args)


if __name__ == "__main__":
    raise SystemExit(main())
