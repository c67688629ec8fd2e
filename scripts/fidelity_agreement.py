"""Fidelity agreement (BRIEF 6.4): thin entry point of ``experiments/fidelity_agreement.py``.

Same flags as the experiment (--n, --seed, --workload, --space, --tech, --max-cycles, --top,
--json, --xla-cache, --smoke, --out; see ``python experiments/fidelity_agreement.py --help``);
tables, figures and the manifest go to ``--out`` (default results/fidelity_agreement).

    python scripts/fidelity_agreement.py [--n 50] [--seed 0] [--json]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

from fidelity_agreement import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
