"""Shared plumbing of the experiment scripts: arguments, result folder, manifest, figures.

Every experiment is ``python experiments/NAME.py [--smoke] [--out DIR]`` and writes into its
result folder (default ``results/NAME``):

* tables (``*.csv``) and figures (``*.png`` and ``*.svg``);
* ``manifest.json``: what the folder holds and how it was made, the input of
  ``theseus report``::

    {"experiment": NAME, "title": ..., "command": "python experiments/NAME.py ...",
     "scale": "smoke" | "full", "wall_s": ..., "created": ISO time, "machine": ...,
     "summary": markdown paragraph,
     "claims": [{"claim", "paper", "ours", "interval", "verdict", "why"}],
     "tables": [{"file", "caption"}], "figures": [{"file", "svg", "caption"}],
     "notes": [markdown lines]}

The manifest is written last, so a folder without one is an interrupted run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

__all__ = ["parse_args", "Study", "REPO"]

REPO = Path(__file__).resolve().parents[1]


def parse_args(name: str, description: str, argv=None, extra=None) -> argparse.Namespace:
    """Common arguments: ``--smoke``, ``--out``, ``--seed``, ``--xla-cache``; ``extra(p)``
    adds the script's own."""
    p = argparse.ArgumentParser(
        prog=f"experiments/{name}.py",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--smoke", action="store_true", help="reduced scale (CI: under 2 minutes on 2 CPU cores)"
    )
    p.add_argument("--out", default=f"results/{name}", help="result folder (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--xla-cache",
        default="auto",
        help="persistent XLA compilation cache ('auto': OUT/../.xla_cache; 'none')",
    )
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


class Study:
    """The result folder of one experiment run: tables, figures, claims, then the manifest.

    Usage::

        st = Study("train_vs_gpu", "Training vs GPU clusters", args)
        st.table("models.csv", rows, "caption")
        st.figure("pareto", fig, "caption")       # pareto.png + pareto.svg
        st.claim(claim=..., paper=..., ours=..., interval=..., verdict=..., why=...)
        st.finish(summary="...")                  # writes manifest.json
    """

    def __init__(self, name: str, title: str, args: argparse.Namespace):
        self.name, self.title, self.args = name, title, args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        stale = self.out / "manifest.json"
        if stale.exists():
            stale.unlink()  # a folder without a manifest is an unfinished run
        self.t0 = time.perf_counter()
        self.tables: list[dict] = []
        self.figures: list[dict] = []
        self.claims: list[dict] = []
        self.notes: list[str] = []
        self.data: dict = {}
        self._setup_cache()

    def _setup_cache(self) -> None:
        if getattr(self.args, "xla_cache", "none") == "none":
            return
        import jax

        cache = (
            self.out.parent / ".xla_cache"
            if self.args.xla_cache == "auto"
            else Path(self.args.xla_cache)
        )
        cache.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(cache.resolve()))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

    @property
    def smoke(self) -> bool:
        return bool(self.args.smoke)

    def log(self, msg: str) -> None:
        print(f"[{self.name} {time.perf_counter() - self.t0:6.1f}s] {msg}", flush=True)

    def table(self, file: str, rows: list[dict], caption: str) -> Path:
        """Write ``rows`` (dicts with the same keys) as CSV; floats with 6 significant digits."""
        import csv

        path = self.out / file
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            for r in rows:
                w.writerow({k: _fmt(r.get(k, "")) for k in keys})
        self.tables.append({"file": file, "caption": caption})
        return path

    def json(self, file: str, obj) -> Path:
        path = self.out / file
        path.write_text(json.dumps(obj, indent=1, default=_json_default))
        return path

    def figure(self, stem: str, fig, caption: str) -> None:
        """Save a matplotlib figure as ``stem.png`` and ``stem.svg`` and close it."""
        import matplotlib.pyplot as plt

        fig.savefig(self.out / f"{stem}.png", dpi=130)
        fig.savefig(self.out / f"{stem}.svg")
        plt.close(fig)
        self.figures.append({"file": f"{stem}.png", "svg": f"{stem}.svg", "caption": caption})

    def claim(self, **kw) -> None:
        keys = ("claim", "paper", "ours", "interval", "verdict", "why")
        unknown = set(kw) - set(keys)
        if unknown:
            raise ValueError(f"claim(): unknown keys {sorted(unknown)}; use {keys}")
        self.claims.append({k: kw.get(k, "") for k in keys})

    def command(self) -> str:
        script = f"experiments/{self.name}.py"
        return " ".join(["python", script, *map(shlex.quote, self.args.argv)])

    def finish(self, summary: str) -> dict:
        import jax

        manifest = {
            "experiment": self.name,
            "title": self.title,
            "command": self.command(),
            "scale": "smoke" if self.smoke else "full",
            "wall_s": round(time.perf_counter() - self.t0, 1),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
            f"jax {jax.__version__} on {jax.default_backend()}",
            "summary": summary,
            "claims": self.claims,
            "tables": self.tables,
            "figures": self.figures,
            "notes": self.notes,
            "data": self.data,
        }
        (self.out / "manifest.json").write_text(
            json.dumps(manifest, indent=1, default=_json_default)
        )
        self.log(f"done in {manifest['wall_s']} s -> {self.out}")
        return manifest


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def pct(x: float) -> str:
    """``+12.3 %`` style."""
    return f"{100.0 * x:+.1f} %"


def verdict(q: tuple[float, float, float], paper: float | None) -> str:
    """The paper's number against our 5-95 % interval ``q = (q05, q50, q95)``."""
    if paper is None or not q[1] == q[1]:
        return "n/a"
    if q[0] <= paper <= q[2]:
        return "agrees"
    return "ours larger" if q[0] > paper else "ours smaller"


def saving(x: float) -> str:
    """A power saving as words: ``12.3 % less power`` / ``4.5 % more power``."""
    if x != x:
        return "n/a"
    return f"{100 * x:.1f} % less power" if x >= 0 else f"{-100 * x:.1f} % more power"


def interval(q05: float, q50: float, q95: float, *, as_pct: bool = True) -> str:
    if as_pct:
        return f"{100 * q50:+.1f} % [{100 * q05:+.1f}, {100 * q95:+.1f}]"
    return f"{q50:.3g} [{q05:.3g}, {q95:.3g}]"
