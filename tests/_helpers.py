"""Helpers shared by several test files (fixtures live in ``conftest.py``).

Import as ``from _helpers import ...``: pytest puts ``tests/`` on ``sys.path`` (rootdir
conftest, no ``__init__.py``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp

from theseus_jax._paths import configs_dir
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
