"""Where the package finds its data files (``configs/``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["configs_dir"]


def configs_dir() -> Path:
    """The ``configs/`` directory: ``$THESEUS_CONFIGS`` if set, else the repository's ``configs/``.

    Returns:
        Path of the directory that holds ``workloads/``, ``tech/``, ``systems/``, ``spaces/``.
    """
    env = os.environ.get("THESEUS_CONFIGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "configs"
