r"""Streamed F0 sweeps of a design space: any number of designs in bounded memory.

The designs are drawn in chunks (chunk ``i`` from ``fold_in(PRNGKey(seed), i)``, so every
chunk is reproducible on its own), each chunk is evaluated with the full mapping search
(:func:`~theseus_jax.make_evaluator`, sharded over every visible device, under its memory
budget) and written at once as one Parquet file ``parts/part-NNNNNN.parquet`` (written to a
temporary name, then renamed: a part is either complete or absent). Only the running Pareto
front (throughput up, power down, feasible designs) and a bounded thinned sample for the plot
stay in memory.

A killed sweep continues when the same command is run again: the parts already on disk are
kept, the running front is rebuilt from their throughput/power columns, and the missing
chunks are evaluated. A folder written by a different configuration is refused.

Several hosts split one sweep on a shared folder: host ``k`` of ``m`` runs it with
``shard=(k, m)`` and writes only the chunks ``i`` with ``i % m == k``; a last run without
``shard`` finds every part on disk and writes the combined outputs (the same files, bit for
bit, as one host would write, since each chunk is drawn on its own).

At the end: ``pareto.csv`` (the front, every column), ``summary.json`` (counts, rate,
configuration), ``pareto.png``; and, up to ``csv_max_designs`` designs, ``sweep.csv`` with
every design and a ``pareto`` column.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from .._violations import describe
from ..io import design_to_dict
from ..mapping import enumerate_wafer_inference_mappings, enumerate_wafer_mappings
from ..metrics._evaluate import make_evaluator
from ..workload import InferenceWorkload
from .pareto import pareto_mask

__all__ = ["run_sweep", "SWEEP_CONFIG", "PLOT_POINTS"]

SWEEP_CONFIG = "sweep.json"
PLOT_POINTS = 20000  # designs drawn in pareto.png at most (every k-th design)
PROBE = 4096  # designs drawn to bound the reticle count of the mapping table


def _max_reticles(space, seed: int) -> int:
    """Most reticles a design of ``space`` has: the maximum over a probe sample (the
    mapping table covers it; a chunk that exceeds it gets its own table)."""
    probe = space.sample(jax.random.fold_in(jax.random.PRNGKey(seed), -1 & 0x7FFFFFFF), PROBE)
    return int(np.max(np.asarray(probe.reticle_rows * probe.reticle_cols * probe.n_wafers)))


def _table(workload, max_reticles: int):
    infer = isinstance(workload, InferenceWorkload)
    enum = enumerate_wafer_inference_mappings if infer else enumerate_wafer_mappings
    return enum(workload, max_reticles=max_reticles)


def _chunk_columns(designs, res, maps, k: int, offset: int) -> dict[str, np.ndarray]:
    """Columns of the first ``k`` rows of one evaluated chunk."""
    cols: dict[str, np.ndarray] = {"design_index": np.arange(offset, offset + k, dtype=np.int64)}
    for f, v in design_to_dict(designs).items():
        cols[f] = np.asarray(v, np.float64).reshape(-1)[:k]
    m = res.metrics
    for f in m.__annotations__:  # every metric as float64 (feasible 1.0 / 0.0)
        cols[f] = np.asarray(getattr(m, f), np.float64).reshape(-1)[:k]
    idx = np.asarray(res.mapping_index).reshape(-1)[:k]
    for f, v in maps.row(0).items():
        col = np.asarray(getattr(maps, f))[idx]
        cols[f"map_{f}"] = (
            col if not isinstance(v, str) else np.array([maps.row(int(i))[f] for i in idx])
        )
    cols["violated"] = np.array(
        [";".join(describe(int(c))) for c in np.asarray(m.violations).reshape(-1)[:k]]
    )
    return cols


def _write_part(path: Path, cols: dict[str, np.ndarray]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(pa.table({k: pa.array(v) for k, v in cols.items()}), tmp)
    os.replace(tmp, path)  # a part is complete or absent


def _read_part(path: Path, columns=None) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=columns)
    return {c: t.column(c).to_numpy(zero_copy_only=False) for c in t.column_names}


class _Front:
    """The running Pareto front of the feasible designs seen so far (rows kept whole)."""

    def __init__(self):
        self.rows: dict[str, np.ndarray] | None = None

    def add(self, cols: dict[str, np.ndarray]) -> None:
        ok = np.asarray(cols["feasible"], float) > 0
        new = {k: np.asarray(v)[ok] for k, v in cols.items()}
        allr = (
            new
            if self.rows is None
            else {k: np.concatenate([self.rows[k], new[k]]) for k in self.rows}
        )
        keep = pareto_mask(
            np.asarray(allr["tokens_per_s"], float), np.asarray(allr["power_w"], float)
        )
        self.rows = {k: v[keep] for k, v in allr.items()}

    def size(self) -> int:
        return 0 if self.rows is None else int(self.rows["design_index"].size)


def _config(space_name, workload_name, tech_name, args: dict) -> dict:
    return dict(space=space_name, workload=workload_name, tech=tech_name, **args)


def run_sweep(
    space,
    workload,
    tech,
    *,
    n: int,
    out,
    seed: int = 0,
    chunk: int = 4096,
    objective: str = "time",
    names: dict | None = None,
    progress: bool = True,
    csv_max_designs: int = 100_000,
    devices=None,
    shard: tuple[int, int] | None = None,
    log=print,
) -> dict:
    """Evaluate ``n`` sampled designs of ``space`` in chunks, streaming to ``out``.

    Args:
        space: :class:`~theseus_jax.DesignSpace`.
        workload: training or inference workload.
        tech: :class:`~theseus_jax.Tech`.
        n: designs in all (any size: memory is bounded by ``chunk``).
        out: output folder (created; a folder of the same configuration is continued).
        seed: sampling seed (chunk ``i`` uses ``fold_in(PRNGKey(seed), i)``).
        chunk: designs per part file and per evaluator call.
        objective: mapping-search objective (as :func:`~theseus_jax.make_evaluator`).
        names: ``{"space", "workload", "tech"}`` as the user named them (for the config).
        progress: show a progress bar (tqdm, on stderr).
        csv_max_designs: also write ``sweep.csv`` (every design) up to this many designs.
        devices: JAX devices to shard each chunk over (default: all visible).
        shard: ``(k, m)``: evaluate only the chunks ``i % m == k`` (host ``k`` of ``m`` on a
            shared ``out``) and write no combined output; run again without ``shard`` once
            every host is done to combine.
        log: where progress lines go.

    Returns:
        The summary (also written to ``summary.json``); with ``shard``, only
        ``{"shard", "parts", "parts_written", "parts_on_disk"}``.

    Raises:
        ValueError: ``n`` or ``chunk`` < 1, a bad ``shard``, or ``out`` holds a sweep of
            another configuration.
    """
    if n < 1:
        raise ValueError(f"-n must be >= 1, got {n}")
    if chunk < 1:
        raise ValueError(f"--chunk must be >= 1, got {chunk}")
    if shard is not None:
        k_sh, m_sh = (int(v) for v in shard)
        if not (m_sh >= 1 and 0 <= k_sh < m_sh):
            raise ValueError(f"--shard must be K/M with 0 <= K < M, got {k_sh}/{m_sh}")
        shard = (k_sh, m_sh)
    chunk = min(chunk, n)
    out = Path(out)
    parts_dir = out / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    names = names or {}
    cfg = _config(
        names.get("space", "?"),
        names.get("workload", "?"),
        names.get("tech", "?"),
        dict(n=int(n), seed=int(seed), chunk=int(chunk), objective=objective),
    )
    cfg_path = out / SWEEP_CONFIG
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old != cfg:
            diff = {k: (old.get(k), v) for k, v in cfg.items() if old.get(k) != v}
            raise ValueError(
                f"{out} holds a sweep of another configuration (was -> now: {diff}); "
                "rerun with the same arguments to continue it, or choose another --out"
            )
    else:  # several hosts may start together: write whole, then rename
        tmp = cfg_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cfg, indent=1))
        os.replace(tmp, cfg_path)
    n_chunks = math.ceil(n / chunk)
    ctx = _chunk_context(space, workload, tech, cfg, chunk, devices)
    if shard is not None:
        return _run_shard(ctx, n, n_chunks, shard, parts_dir, log, progress)
    maps, ev = ctx.maps, ctx.evaluate
    front = _Front()
    thin = max(1, math.ceil(n / PLOT_POINTS))
    plot_pts: list[np.ndarray] = []
    n_feasible, done_before, t_eval = 0, 0, 0.0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="design", desc="sweep", smoothing=0.1)
    t_start = time.perf_counter()
    for i in range(n_chunks):
        path = parts_dir / f"part-{i:06d}.parquet"
        k = min(chunk, n - i * chunk)
        if path.exists():
            cols = _read_part(path)
            done_before += k
        else:
            t = time.perf_counter()
            cols = _evaluate_chunk(ctx, i, k)
            t_eval += time.perf_counter() - t
            _write_part(path, cols)
        n_feasible += int(np.sum(np.asarray(cols["feasible"], float) > 0))
        front.add(cols)
        sel = (np.asarray(cols["design_index"]) % thin) == 0
        plot_pts.append(
            np.stack(
                [
                    np.asarray(cols["tokens_per_s"], float)[sel],
                    np.asarray(cols["power_w"], float)[sel],
                    np.asarray(cols["feasible"], float)[sel],
                ],
                axis=1,
            )
        )
        if bar is not None:
            bar.update(k)
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t_start
    n_new = n - done_before
    summary = dict(
        cfg,
        n_designs=int(n),
        n_feasible=int(n_feasible),
        n_pareto=front.size(),
        mappings_per_design=int(maps.size()),
        parts=n_chunks,
        resumed_designs=int(done_before),
        eval_seconds=t_eval,
        wall_seconds=wall,
        designs_per_s=(n_new / t_eval) if t_eval > 0 else None,
        devices=[str(d) for d in ev.devices],
        best_tokens_per_s=(float(np.max(front.rows["tokens_per_s"])) if front.size() else 0.0),
        units=dict(tokens_per_s="tokens/s", power_w="W", eval_seconds="s"),
    )
    _write_csv(out / "pareto.csv", front.rows)
    if n <= csv_max_designs:
        _write_full_csv(out / "sweep.csv", parts_dir, n_chunks, front)
    pts = np.concatenate(plot_pts) if plot_pts else np.zeros((0, 3))
    summary["plot"] = dict(points=int(pts.shape[0]), every=thin)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(
        f"{n} designs x {maps.size()} mappings ({n_new} evaluated now, {done_before} from an "
        f"earlier run) in {t_eval:.1f} s; {n_feasible} feasible, {front.size()} on the "
        "Pareto front"
    )
    return dict(summary, _plot_points=pts, _front=front.rows)


class _ChunkContext(NamedTuple):
    """What every chunk of one sweep is evaluated with."""

    space: Any
    workload: Any
    tech: Any
    seed: int
    chunk: int
    objective: str
    devices: Any
    r_max: int  # reticles the shared mapping table covers
    maps: Any
    evaluate: Any


def _chunk_context(space, workload, tech, cfg, chunk, devices) -> _ChunkContext:
    seed, objective = cfg["seed"], cfg["objective"]
    r_max = _max_reticles(space, seed)
    maps = _table(workload, r_max)
    ev = make_evaluator(workload, mappings=maps, tech=tech, objective=objective, devices=devices)
    return _ChunkContext(space, workload, tech, seed, chunk, objective, devices, r_max, maps, ev)


def _evaluate_chunk(c: _ChunkContext, i: int, k: int) -> dict[str, np.ndarray]:
    """Columns of chunk ``i`` (its first ``k`` designs), drawn from ``fold_in(seed, i)``."""
    designs = c.space.sample(jax.random.fold_in(jax.random.PRNGKey(c.seed), i), c.chunk)
    rmax_i = int(np.max(np.asarray(designs.reticle_rows * designs.reticle_cols * designs.n_wafers)))
    if rmax_i > c.r_max:  # beyond the probe: this chunk gets its own table
        maps_i = _table(c.workload, rmax_i)
        ev = make_evaluator(
            c.workload, mappings=maps_i, tech=c.tech, objective=c.objective, devices=c.devices
        )
    else:
        maps_i, ev = c.maps, c.evaluate
    res = jax.block_until_ready(ev(designs))
    return _chunk_columns(designs, res, maps_i, k, i * c.chunk)


def _run_shard(c: _ChunkContext, n, n_chunks, shard, parts_dir: Path, log, progress) -> dict:
    """The chunks ``i % m == k`` of a sweep, written as parts (no combined output)."""
    k_sh, m_sh = shard
    mine = range(k_sh, n_chunks, m_sh)
    bar = None
    if progress:
        from tqdm import tqdm

        total = sum(min(c.chunk, n - i * c.chunk) for i in mine)
        bar = tqdm(total=total, unit="design", desc=f"sweep {k_sh}/{m_sh}", smoothing=0.1)
    written = 0
    for i in mine:
        path = parts_dir / f"part-{i:06d}.parquet"
        k = min(c.chunk, n - i * c.chunk)
        if not path.exists():
            _write_part(path, _evaluate_chunk(c, i, k))
            written += 1
        if bar is not None:
            bar.update(k)
    if bar is not None:
        bar.close()
    on_disk = sum((parts_dir / f"part-{i:06d}.parquet").exists() for i in range(n_chunks))
    log(
        f"shard {k_sh}/{m_sh}: wrote {written} parts; {on_disk} of {n_chunks} parts on disk; "
        "run the same command without --shard to combine"
        + ("" if on_disk == n_chunks else " once every shard is done")
    )
    return dict(shard=[k_sh, m_sh], parts=n_chunks, parts_written=written, parts_on_disk=on_disk)


def _write_csv(path: Path, rows: dict[str, np.ndarray] | None) -> None:
    with open(path, "w", newline="") as f:
        if rows is None:
            return
        w = csv.writer(f, lineterminator="\n")
        keys = list(rows)
        w.writerow(keys)
        for j in range(rows[keys[0]].size):
            w.writerow([_cell(rows[k][j]) for k in keys])


def _write_full_csv(path: Path, parts_dir: Path, n_chunks: int, front: _Front) -> None:
    on_front = set() if front.rows is None else set(front.rows["design_index"].tolist())
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        for i in range(n_chunks):
            cols = _read_part(parts_dir / f"part-{i:06d}.parquet")
            keys = list(cols)
            if i == 0:
                w.writerow([*keys, "pareto"])
            for j in range(cols[keys[0]].size):
                row = [_cell(cols[k][j]) for k in keys]
                w.writerow([*row, bool(int(cols["design_index"][j]) in on_front)])


def _cell(v):
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v)
    return v
