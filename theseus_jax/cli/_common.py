"""Helpers shared by the subcommands: loading, table printing."""

from __future__ import annotations

import numpy as np

from ..cost._records import BREAKDOWN_FIELDS
from ..design._gpu import GPUSystem, with_gpus as design_with_gpus


def add_workload_args(p) -> None:
    g = p.add_argument_group("training workload (default)")
    g.add_argument("--global-batch", type=int, default=None, help="sequences per step")
    g.add_argument("--seq-len", type=int, default=None, help="tokens per sequence")
    p.add_argument("--precision", choices=["bf16", "fp16", "fp8"], default=None)
    i = p.add_argument_group("inference workload")
    i.add_argument("--inference", action="store_true", help="serve instead of train")
    i.add_argument("--batch", type=int, default=1, help="concurrent requests")
    i.add_argument("--prompt-len", type=int, default=2048, help="input tokens per request")
    i.add_argument("--output-len", type=int, default=128, help="output tokens per request")
    i.add_argument(
        "--max-tpot-ms", type=float, default=0.0, help="bound on the time per output token"
    )
    p.add_argument(
        "--objective",
        choices=["time", "energy", "perf_per_watt", "latency", "ttft"],
        default="time",
        help="how the best mapping of each design is chosen (latency, ttft: inference only)",
    )


def load_workload(args):
    from ..workload._load import load_inference_workload, load_training_workload

    if args.inference:
        if args.global_batch is not None or args.seq_len is not None:
            raise ValueError(
                "--global-batch/--seq-len are training options; use --batch, "
                "--prompt-len and --output-len with --inference"
            )
        return load_inference_workload(
            args.workload,
            batch=args.batch,
            prompt_len=args.prompt_len,
            output_len=args.output_len,
            precision=args.precision or "bf16",
            max_tpot_s=args.max_tpot_ms / 1e3,
        )
    if args.objective in ("latency", "ttft"):
        raise ValueError(f"--objective {args.objective} needs --inference")
    return load_training_workload(
        args.workload,
        global_batch=args.global_batch,
        seq_len=args.seq_len,
        precision=args.precision,
    )


def with_gpus(system: GPUSystem, n: int) -> GPUSystem:
    """A copy of a GPU cluster with ``n`` GPUs (the CLI's ``--n-gpus``)."""
    if n < 1:
        raise ValueError(f"--n-gpus must be >= 1, got {n}")
    return design_with_gpus(system, n)


def fmt_si(x: float, unit: str) -> str:
    if not np.isfinite(x):
        return f"{x} {unit}"
    for scale, pre in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {pre}{unit}"
    if 0 < abs(x) < 1e-3:
        for scale, pre in ((1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
            if abs(x) >= scale:
                return f"{x / scale:.3g} {pre}{unit}"
    return f"{x:.3g} {unit}"


def inference_rows(m, i: int = 0) -> list[tuple[str, str]]:
    """(label, value) rows of an :class:`InferenceMetrics` point."""
    from ..cost._records import INFERENCE_BREAKDOWN_FIELDS

    g = lambda k: float(np.asarray(getattr(m, k)).reshape(-1)[i])  # noqa: E731
    rows = [
        ("time to first token", fmt_si(g("ttft_s"), "s")),
        ("time per output token", fmt_si(g("tpot_s"), "s")),
        ("tokens/s per user", f"{g('tokens_per_s_per_user'):.4g}"),
        ("output tokens/s (system)", f"{g('tokens_per_s'):.4g}"),
        ("tokens/s per W", f"{g('tokens_per_s_per_w'):.4g}"),
        ("power", fmt_si(g("power_w"), "W")),
        ("energy per output token", fmt_si(g("energy_per_token_j"), "J")),
        (
            "memory per device",
            f"{fmt_si(g('mem_bytes'), 'B')} of {fmt_si(g('mem_capacity_bytes'), 'B')}",
        ),
        ("peak", fmt_si(g("peak_flops"), "FLOP/s")),
        ("devices used", f"{g('n_devices'):.0f}"),
        ("breakdown (one micro-batch)", ""),
    ]
    for k in INFERENCE_BREAKDOWN_FIELDS:
        rows.append((f"  {k[:-2]}", f"{fmt_si(g(k), 's'):>12}"))
    return rows


def metrics_rows(m, i: int = 0) -> list[tuple[str, str]]:
    """(label, value) rows of the headline metrics and the breakdown of point ``i``."""
    from ..cost._records import InferenceMetrics

    if isinstance(m, InferenceMetrics):
        return inference_rows(m, i)
    g = lambda k: float(np.asarray(getattr(m, k)).reshape(-1)[i])  # noqa: E731
    step = g("step_time_s")
    rows = [
        ("step time", fmt_si(step, "s")),
        ("throughput", fmt_si(g("tokens_per_s"), "tokens/s")),
        ("MFU", f"{100 * g('mfu'):.1f} %"),
        ("HFU (incl. recompute)", f"{100 * g('hfu'):.1f} %"),
        ("power", fmt_si(g("power_w"), "W")),
        ("energy per token", fmt_si(g("energy_per_token_j"), "J")),
        (
            "memory per device",
            f"{fmt_si(g('mem_bytes'), 'B')} of {fmt_si(g('mem_capacity_bytes'), 'B')}",
        ),
        ("peak", fmt_si(g("peak_flops"), "FLOP/s")),
        ("silicon area", f"{g('silicon_area_m2') * 1e6:.4g} mm^2"),
        ("reticle utilisation", f"{100 * g('reticle_utilisation'):.1f} %"),
        ("wafer yield", f"{g('wafer_yield'):.4f}"),
        ("devices used", f"{g('n_devices'):.0f}"),
    ]
    rows.append(("breakdown", ""))
    for k in BREAKDOWN_FIELDS:
        v = g(k)
        rows.append((f"  {k[:-2]}", f"{fmt_si(v, 's'):>12}  {100 * v / step:5.1f} %"))
    return rows


def print_table(rows, file=None) -> None:
    w = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{w}}  {b}", file=file)
