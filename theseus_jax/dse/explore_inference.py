r"""Design-space exploration of wafer-scale chips for LLM serving (F0 screening only).

The problem: an inference workload (``batch`` concurrent requests of ``prompt_len`` input and
``output_len`` output tokens, optionally under a bound on the time per output token) on a
design space; two objectives, total output tokens/s (maximised) and power (W, minimised).
:func:`run_inference_explore` samples ``pool`` legal designs, evaluates every inference
mapping of each at F0 (the analytic cost model, :func:`~theseus_jax.metrics.evaluate`) in
fixed-shape chunks, keeps each design's best feasible mapping (by ``objective``), and
writes the 2-D Pareto front of the feasible designs.

Fidelity: **F0 only**. The F1 evaluator (:mod:`theseus_jax.fidelity`) simulates the
training step's communication phases; decode's mesh reductions and all-reduces are not
simulated yet, so inference results are F0 (analytic) only -- every output says so
(:data:`F1_NOTE`).

The tpot bound is a constraint of the cost model (``max_tpot_s`` of
:func:`~theseus_jax.load_inference_workload`): mappings slower than it carry the
``LATENCY`` violation bit, so a design is feasible when at least one of its mappings meets
the bound and every other constraint. Tightening the bound removes feasible mappings and
never raises a design's best throughput.

Outputs (written atomically: temporary name, then :func:`os.replace`):

* ``designs.csv`` -- every screened design (metrics of its chosen mapping, free design
  parameters in SI, ``map_*`` mapping fields, ``feasible``, ``violated`` names, ``pareto``);
* ``pareto.csv`` -- the feasible Pareto designs, highest throughput first (same columns
  without the last three);
* ``pareto.png`` -- log-log power (kW) vs output tokens/s, front highlighted, with the GPU
  reference point;
* ``summary.json`` -- configuration, counts (infeasible by reason), front, best values,
  hypervolume in decades^2 (the convention of :func:`theseus_jax.dse.explore.hypervolume_trace`),
  the GPU reference and the fidelity statement.

GPU reference: the repository's default GPU cluster (A100 DGX) with the whole nodes whose
peak FLOP/s is closest to the median peak of the feasible screened designs, on the same
serving workload, F0 under its best mapping (:mod:`theseus_jax.dse._gpu_reference`; tokens/s
and W in ``summary.json["gpu_reference"]``, a diamond on ``pareto.png``; None when no
mapping of the workload fits any GPU count near it).

The run is deterministic given the seed.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import numbers
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .._violations import describe
from ..io import load_tech
from ..mapping import enumerate_wafer_inference_mappings
from ..metrics._evaluate import _best, evaluate_mappings
from ..space import load_space
from ..workload import load_inference_workload
from ._gpu_reference import gpu_reference
from ._report import plot_gpu_reference
from .pareto import hypervolume_2d, pareto_mask
from .problem import decades

__all__ = [
    "InferenceExploreConfig",
    "run_inference_explore",
    "F1_NOTE",
    "FIDELITY_LINE",
    "INFERENCE_OBJECTIVES",
]

F1_NOTE = (
    "not applied: the F1 evaluator simulates the training step's communication phases; "
    "decode's mesh reductions and all-reduces are not simulated yet, so inference results "
    "are F0 (analytic) only"
)
FIDELITY_LINE = f"fidelity: F0 only (analytic cost model); F1 {F1_NOTE}"
INFERENCE_OBJECTIVES = ("time", "energy", "perf_per_watt", "latency", "ttft")
_PRECISIONS = ("bf16", "fp16", "fp8")
_METRIC_COLS = (
    "tokens_per_s",
    "power_w",
    "tokens_per_s_per_w",
    "tokens_per_s_per_user",
    "ttft_s",
    "tpot_s",
    "peak_flops",
)
_PLOT_MAP_FIELDS = ("tp", "pp", "micro_batch", "stream")  # the fields inference mappings vary


@dataclass(frozen=True)
class InferenceExploreConfig:
    """Everything that defines an inference exploration (stored in ``summary.json``).

    Attributes:
        space, workload, tech: names (or paths) of the design space, model and technology.
        batch: concurrent requests (sequences).
        prompt_len, output_len: input and output tokens per request.
        max_tpot_ms: bound on the time per output token, milliseconds (0 = no bound).
        precision: GEMM/weight (and KV-cache) precision, ``"bf16"``, ``"fp16"`` or ``"fp8"``.
        pool: legal designs sampled from the space and screened.
        seed: seed of the sample (``jax.random.PRNGKey(seed)``).
        objective: how each design's mapping is chosen among its feasible ones: ``"time"``
            (shortest run of the batch = highest output tokens/s), ``"energy"`` /
            ``"perf_per_watt"`` (least energy per output token), ``"latency"`` (least
            tpot) or ``"ttft"``.
        chunk: designs per compiled call (the last chunk is padded to it).
    """

    space: str = "theseus_2024"
    workload: str = "llama-3-8b"
    tech: str = "n7"
    batch: int = 1
    prompt_len: int = 2048
    output_len: int = 128
    max_tpot_ms: float = 0.0
    precision: str = "bf16"
    pool: int = 4096
    seed: int = 0
    objective: str = "time"
    chunk: int = 256

    def __post_init__(self):
        for f in ("space", "workload", "tech"):
            v = getattr(self, f)
            if not isinstance(v, str | os.PathLike) or not str(v):
                raise ValueError(f"{f} must be a non-empty name or path, got {v!r}")
        for f, lo in (
            ("batch", 1),
            ("prompt_len", 1),
            ("output_len", 1),
            ("pool", 1),
            ("chunk", 1),
            ("seed", 0),
        ):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                raise ValueError(f"{f} must be an integer >= {lo}, got {v!r}")
        t = self.max_tpot_ms
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not (math.isfinite(t)):
            raise ValueError(f"max_tpot_ms must be a finite number of ms (0 = none), got {t!r}")
        if t < 0:
            raise ValueError(f"max_tpot_ms must be >= 0 ms (0 = no bound), got {t!r}")
        if self.precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {self.precision!r}")
        if self.objective not in INFERENCE_OBJECTIVES:
            raise ValueError(
                f"objective must be one of {INFERENCE_OBJECTIVES} (how each design's mapping "
                f"is chosen; 'time' = highest throughput), got {self.objective!r}"
            )

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in asdict(self).items()}

    @staticmethod
    def from_json(d: dict) -> InferenceExploreConfig:
        return InferenceExploreConfig(**d)


# ---------------------------------------------------------------------------------------------
# Screening: one compiled function shared by every run of the same shapes
# ---------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("objective",))
def _screen_chunk(designs, workload, mappings, tech, objective):
    """Best mapping of each design of a chunk (``make_evaluator``'s body, at module level so
    runs that share shapes -- e.g. a sweep of the tpot bound, a leaf of ``workload`` -- share
    one compilation)."""

    valid = jnp.ones(jnp.shape(mappings.tp)[0], bool)

    def one(design):
        return _best(evaluate_mappings(design, workload, mappings, tech), valid, objective)

    best, idx, n_ok = jax.vmap(one)(designs)
    return best, idx, n_ok


def _screen(designs, workload, mappings, tech, objective, chunk):
    """Host loop over fixed-shape chunks (the last one padded by repeating its first design).

    Returns ``(metrics, mapping_index, n_feasible_mappings)`` as numpy, leading axis = design.
    """
    n = int(np.size(designs.clock_hz))
    outs = []
    for s in range(0, n, chunk):
        idx = np.arange(s, min(s + chunk, n))
        pad = np.concatenate([idx, np.full(chunk - idx.size, idx[0])])
        part = jax.tree_util.tree_map(lambda x, pad=pad: x[pad], designs)
        r = _screen_chunk(part, workload, mappings, tech, objective)
        outs.append(jax.tree_util.tree_map(lambda x, k=idx.size: np.asarray(x)[:k], r))
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs), *outs)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary sibling, then rename: readers never see a half file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda p: p.write_text(text))


def _csv_text(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _fmt(v) -> str:
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        return f"{float(v):.7g}"
    return str(v)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def run_inference_explore(
    cfg: InferenceExploreConfig, run_dir, progress: Callable[[str], None] | None = None
) -> dict:
    """Screen ``cfg.pool`` sampled designs for LLM serving at F0 and write the Pareto front.

    Args:
        cfg: the run's :class:`InferenceExploreConfig`.
        run_dir: output folder (created; earlier outputs of an inference run are replaced).
        progress: optional callable receiving one-line messages; the first is
            :data:`FIDELITY_LINE` (F0 only).

    Returns:
        The ``summary.json`` contents (a dict).

    Raises:
        ValueError: no screened design is feasible (the message names the most violated
            constraints and what to change; ``designs.csv`` is still written).
        FileExistsError: ``run_dir`` holds a training exploration (``run.sqlite``).
    """

    if not isinstance(cfg, InferenceExploreConfig):
        raise TypeError(f"cfg must be an InferenceExploreConfig, got {type(cfg).__name__}")
    log = progress or (lambda s: None)
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    if (run_dir / "run.sqlite").exists():
        raise FileExistsError(
            f"{run_dir} holds a training exploration (run.sqlite); give the inference run "
            "its own --out folder"
        )
    log(FIDELITY_LINE)

    tech = load_tech(cfg.tech)
    space = load_space(cfg.space, tech=tech)
    wl = load_inference_workload(
        cfg.workload,
        batch=cfg.batch,
        prompt_len=cfg.prompt_len,
        output_len=cfg.output_len,
        precision=cfg.precision,
        max_tpot_s=cfg.max_tpot_ms / 1e3,
    )
    designs = space.sample(jax.random.PRNGKey(cfg.seed), cfg.pool)
    r_max = int(np.max(np.asarray(designs.reticle_rows * designs.reticle_cols * designs.n_wafers)))
    maps = enumerate_wafer_inference_mappings(wl, max_reticles=r_max)
    chunk = min(cfg.chunk, cfg.pool)
    t0 = time.perf_counter()
    m, midx, n_ok = _screen(designs, wl, maps, tech, cfg.objective, chunk)
    dt = time.perf_counter() - t0
    n = cfg.pool

    feas = np.asarray(m.feasible, bool)
    viol = np.asarray(m.violations).astype(np.int64)
    tput = np.asarray(m.tokens_per_s, np.float64)
    power = np.asarray(m.power_w, np.float64)
    front = pareto_mask(np.where(feas, tput, np.nan), np.where(feas, power, np.nan))
    reasons = Counter(name for i in np.nonzero(~feas)[0] for name in describe(int(viol[i])))
    log(
        f"screened {n} designs x {maps.size()} mappings at F0 in {dt:.1f} s "
        f"({-(-n // chunk)} chunks of {chunk}): {int(feas.sum())} feasible, "
        f"{int(front.sum())} on the Pareto front"
    )

    # ---- tables
    names = [k for k in space.names if k not in ("n_wafers",)]
    map_fields = list(maps.row(0))
    header = [*_METRIC_COLS, "n_wafers", *names, *(f"map_{k}" for k in map_fields)]
    map_rows = {int(j): maps.row(int(j)) for j in np.unique(midx)}

    def values(i: int) -> list:
        row: list = [float(np.asarray(getattr(m, k))[i]) for k in _METRIC_COLS]
        row.append(float(np.asarray(designs.n_wafers)[i]))
        row += [float(np.asarray(getattr(designs, k))[i]) for k in names]
        mr = map_rows[int(midx[i])]
        row += [mr[k] for k in map_fields]
        return row

    all_rows = [
        [_fmt(v) for v in values(i)]
        + [_fmt(bool(feas[i])), ";".join(describe(int(viol[i]))), _fmt(bool(front[i]))]
        for i in range(n)
    ]
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_text(
        run_dir / "designs.csv",
        _csv_text([*header, "feasible", "violated", "pareto"], all_rows),
    )
    if not feas.any():
        for f in ("pareto.csv", "pareto.png", "summary.json"):  # an earlier run's: stale now
            (run_dir / f).unlink(missing_ok=True)
        top = ", ".join(f"{k} ({v} designs)" for k, v in reasons.most_common(4))
        bound = f"{cfg.max_tpot_ms:g} ms" if cfg.max_tpot_ms > 0 else "none"
        hint = ["raise --pool (more sampled designs)"]
        if cfg.max_tpot_ms > 0:
            hint.append("relax --max-tpot-ms")
        hint.append("use a smaller --batch or shorter --prompt-len/--output-len")
        raise ValueError(
            f"no feasible design among the {n} screened for {cfg.workload} (batch {cfg.batch}, "
            f"{cfg.prompt_len} in / {cfg.output_len} out, tpot bound {bound}); most violated: "
            f"{top}. To fix: {'; '.join(hint)}. Every screened design and its violated "
            f"constraints: {run_dir / 'designs.csv'}"
        )

    pidx = np.nonzero(front)[0]
    pidx = pidx[np.lexsort((pidx, power[pidx], -tput[pidx]))]  # highest throughput first
    _write_text(
        run_dir / "pareto.csv",
        _csv_text(header, [[_fmt(v) for v in values(int(i))] for i in pidx]),
    )

    # ---- summary
    ref = (0.5 * float(tput[feas].min()), 1.5 * float(power[feas].max()))
    pts = decades(tput[pidx], power[pidx], ref)
    hv = hypervolume_2d(pts[:, 0], pts[:, 1], 0.0, 0.0)
    g = lambda k, i: float(np.asarray(getattr(m, k))[i])  # noqa: E731
    pareto = [
        dict(
            tokens_per_s=g("tokens_per_s", i),
            power_w=g("power_w", i),
            tpot_s=g("tpot_s", i),
            ttft_s=g("ttft_s", i),
            tokens_per_s_per_w=g("tokens_per_s_per_w", i),
            n_wafers=float(np.asarray(designs.n_wafers)[i]),
            mapping={k: map_rows[int(midx[i])][k] for k in _PLOT_MAP_FIELDS},
        )
        for i in (int(j) for j in pidx)
    ]
    pw = np.asarray(m.tokens_per_s_per_w, np.float64)
    summary = dict(
        config=cfg.to_json(),
        fidelity="F0",
        f1=F1_NOTE,
        model=wl.model.name,
        counts=dict(
            screened=n,
            feasible=int(feas.sum()),
            infeasible=int((~feas).sum()),
            infeasible_by_reason=dict(reasons.most_common()),
        ),
        mappings_per_design=maps.size(),
        n_pareto=int(pidx.size),
        pareto=pareto,
        best_tokens_per_s=float(tput[feas].max()),
        best_tokens_per_s_per_w=float(pw[feas].max()),
        hypervolume=float(hv),
        hypervolume_units="decades^2 (log10 output tokens/s x log10 power, as explore)",
        hv_reference=dict(tokens_per_s=ref[0], power_w=ref[1]),
        gpu_reference=gpu_reference(
            wl, float(np.median(np.asarray(m.peak_flops, np.float64)[feas]))
        ),
        eval_s=dt,
        wall_s=0.0,
    )
    _plot(
        run_dir / "pareto.png",
        tput,
        power,
        feas,
        pidx,
        cfg,
        wl.model.name,
        summary["gpu_reference"],
    )
    summary["wall_s"] = time.perf_counter() - t_start
    _write_text(run_dir / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def _plot(
    path: Path, tput, power, feas, pidx, cfg: InferenceExploreConfig, model: str, gpu=None
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.scatter(power[feas] / 1e3, tput[feas], s=8, c="tab:blue", alpha=0.6, label="feasible")
    order = pidx[np.argsort(power[pidx], kind="stable")]
    ax.step(power[order] / 1e3, tput[order], "-", c="tab:red", where="post", label="Pareto front")
    ax.scatter(power[order] / 1e3, tput[order], s=18, c="tab:red", zorder=3)
    plot_gpu_reference(ax, gpu)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("power (kW)")
    ax.set_ylabel("output tokens/s (system)")
    bound = f"tpot <= {cfg.max_tpot_ms:g} ms" if cfg.max_tpot_ms > 0 else "no tpot bound"
    ax.set_title(
        f"{model} serving on {Path(str(cfg.space)).stem}: batch {cfg.batch}, "
        f"{cfg.prompt_len} in / {cfg.output_len} out\n"
        f"{bound}, {cfg.precision}; {int(feas.sum())}/{feas.size} feasible; F0 only",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    _atomic_write(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)
