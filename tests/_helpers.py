"""Helpers shared by several test files (fixtures live in ``conftest.py``).

Import as ``from _helpers import ...``: pytest puts ``tests/`` on ``sys.path`` (rootdir
conftest, no ``__init__.py``).
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp

from theseus_jax._paths import configs_dir
from theseus_jax.dse.store import DB_NAME
from theseus_jax.io import load_system

#: The repository root (``experiments/``, ``scripts/``, ``configs/`` live here).
REPO = Path(__file__).resolve().parents[1]

#: The validation cases shipped with the package (not ``$THESEUS_CASES`` or ``shared/``).
SHIPPED_CASES = configs_dir() / "validation" / "validation_cases.json"


def with_leaves(module, **kw):
    """Copy of an eqx.Module with some float leaves replaced (same shapes, float32)."""
    names = tuple(kw)
    return eqx.tree_at(
        lambda m: tuple(getattr(m, k) for k in names),
        module,
        tuple(jnp.asarray(kw[k], dtype=jnp.float32) for k in names),
    )


def gpu_system(name: str, n: int):
    """The GPU system config ``name`` with ``n`` GPUs."""
    return eqx.tree_at(lambda x: x.n_gpus, load_system(name), jnp.float32(n))


def read_csv_rows(path) -> list[dict]:
    """The rows of a CSV file with a header, as dicts of strings."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def tiny_noc_space(tmp_path) -> Path:
    """theseus_2024 with the router and core array fixed: every design shares the F1
    simulation windows, so the simulators compile once per process."""
    s = json.loads((REPO / "configs/spaces/theseus_2024.json").read_text())
    s["name"] = "tiny_noc"
    fixed = dict(
        n_vcs=(4, "1"),
        buffer_depth=(4, "flit"),
        link_bits_per_cycle=(512, "bit/cycle"),
        d2d_bw_ratio=(1.0, "1"),
        core_rows=(32, "1"),
        core_cols=(32, "1"),
    )
    for k, (v, u) in fixed.items():
        s["params"][k] = {"kind": "fixed", "value": v, "unit": u}
    path = tmp_path / "tiny_noc.json"
    path.write_text(json.dumps(s))
    return path


def n_evals(run_dir) -> int:
    try:
        # read-only: never create the file the run under test is about to create
        con = sqlite3.connect(f"file:{run_dir / DB_NAME}?mode=ro", uri=True, timeout=1.0)
        n = con.execute("SELECT COUNT(*) FROM evals").fetchone()[0]
        con.close()
        return n
    except sqlite3.Error:
        return 0
