"""Finding config files: one resolver for ``configs/<sub>/<name>.json`` (or a path).

Every loader (technologies, systems, design spaces, workloads) accepts a path to a JSON file,
a file stem, the file's ``"name"`` or one of its ``"aliases"``. :func:`resolve_config`
implements that once: an unknown name is a ``ValueError`` naming the closest match and
listing what is available. This module depends only on :mod:`theseus_jax._paths` (it sits
below ``io``, ``space`` and ``workload``).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable
from pathlib import Path

from ._paths import configs_dir

__all__ = ["config_files", "config_names", "looks_like_path", "resolve_config"]

_PATH_HINT = "Pass a path to a .json file to load one from elsewhere, or set $THESEUS_CONFIGS."


def config_files(sub: str) -> list[Path]:
    """The ``*.json`` files of ``configs/<sub>/``, sorted (empty if the folder is missing)."""
    d = configs_dir() / sub
    return sorted(d.glob("*.json")) if d.is_dir() else []


def config_names(sub: str) -> list[str]:
    """File stems of :func:`config_files` (the names a config is loaded by)."""
    return [p.stem for p in config_files(sub)]


def looks_like_path(x) -> bool:
    """Whether ``x`` names a file (a path object, ``*.json`` or a string with a separator)
    rather than a config name."""
    if isinstance(x, os.PathLike):
        return True
    s = str(x)
    return s.endswith(".json") or os.sep in s or "/" in s


def _lower(s: str) -> str:
    return s.strip().lower()


def resolve_config(
    sub: str,
    name_or_path,
    what: str,
    *,
    norm: Callable[[str], str] = _lower,
    hint: str = _PATH_HINT,
) -> Path:
    """Find a config file by path, file stem, ``"name"`` or alias.

    Args:
        sub: the folder under ``configs/`` (``"tech"``, ``"systems"``, ``"spaces"``, ...).
        name_or_path: a path to a JSON file, or a name: the file stem (case-insensitive),
            the file's ``"name"`` or one of its ``"aliases"``, compared after ``norm``.
        what: what is being loaded, for messages (``"technology"``, ``"design space"``).
        norm: key normalisation for names (default: stripped, lower case).
        hint: last sentence of the unknown-name message.

    Returns:
        Path of the file.

    Raises:
        ValueError: a path that is not a file, or an unknown name (with the closest match,
            the available names and their aliases).
    """
    files = config_files(sub)
    if looks_like_path(name_or_path):
        p = Path(name_or_path)
        if not p.is_file():
            raise ValueError(
                f"{what} file {str(p)!r} does not exist (no such file). Pass an existing "
                f".json path, or a name from {configs_dir() / sub}: {[f.stem for f in files]}."
            )
        return p
    key = str(name_or_path).strip().lower()
    for p in files:  # fast path: the file stem
        if p.stem.lower() == key:
            return p
    key = norm(str(name_or_path))
    index: dict[str, Path] = {}
    spelled: dict[str, str] = {}  # index key -> the name as the file writes it
    for p in files:
        index.setdefault(norm(p.stem), p)
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            continue  # a broken file is reported when it is loaded by name
        if not isinstance(doc, dict):
            continue
        names = [doc.get("name")] + list(doc.get("aliases") or [])
        for n in names:
            if isinstance(n, str):
                index.setdefault(norm(n), p)
                spelled.setdefault(norm(n), n.strip())
    if key in index:
        return index[key]
    available = sorted({p.stem for p in files})
    stems = {norm(a) for a in available}
    aliases = sorted({spelled[k] for k in index if k not in stems}, key=str.lower)
    close = difflib.get_close_matches(key, list(index), n=1, cutoff=0.3)
    did_you_mean = f" Did you mean {index[close[0]].stem!r}?" if close else ""
    raise ValueError(
        f"unknown {what} {str(name_or_path)!r}.{did_you_mean} Available in "
        f"{configs_dir() / sub}: {available}"
        + (f" (aliases: {aliases})" if aliases else "")
        + (f". {hint}" if hint else ".")
    )
