"""``theseus eval SYSTEM WORKLOAD``: best mapping, metrics and breakdown of one system."""

from __future__ import annotations

import json

import numpy as np

from ._common import add_workload_args, load_workload, metrics_rows, print_table, with_gpus


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate one system on one training workload (best mapping, metrics, breakdown)",
        description="Search every legal mapping of WORKLOAD on SYSTEM and print the best one "
        "with its metrics and time breakdown.",
    )
    p.add_argument("system", help="system config name or path (e.g. a100_dgx, wse2, dojo_tile)")
    p.add_argument("workload", help="model name or path (e.g. gpt3-175b, llama-3.1-70b)")
    p.add_argument("--n-gpus", type=int, default=None, help="GPU clusters: number of GPUs")
    add_workload_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def evaluate_system(system_name: str, workload, *, n_gpus=None, objective="time"):
    """(design, tech, result, mappings) of the full mapping search on one system."""
    from ..design._gpu import GPUSystem
    from ..io import load_system, load_tech, system_tech_name
    from ..metrics._evaluate import default_mappings, make_evaluator

    design = load_system(system_name)
    tech = None
    if isinstance(design, GPUSystem):
        if n_gpus is not None:
            design = with_gpus(design, n_gpus)
    else:
        if n_gpus is not None:
            raise ValueError("--n-gpus applies to GPU clusters only")
        tech = load_tech(system_tech_name(system_name))
    maps = default_mappings(design, workload)
    res = make_evaluator(workload, mappings=maps, tech=tech, objective=objective)(design)
    return design, tech, res, maps


def run(args) -> int:
    from .._violations import describe

    wl = load_workload(args)
    design, tech, res, maps = evaluate_system(
        args.system, wl, n_gpus=args.n_gpus, objective=args.objective
    )
    m = res.metrics
    i = int(np.asarray(res.mapping_index)[0])
    viol = int(np.asarray(m.violations)[0])
    mapping = maps.row(i)
    if args.json:
        out = {
            "system": args.system,
            "workload": args.workload,
            "mappings_searched": maps.size(),
            "feasible_mappings": int(np.asarray(res.n_feasible)[0]),
            "mapping": mapping,
            "feasible": viol == 0,
            "violations": describe(viol),
            "metrics": {k: float(np.asarray(getattr(m, k))[0]) for k in m.__annotations__},
        }
        print(json.dumps(out, indent=1))
        return 0
    print(
        f"{args.system} x {args.workload}: {maps.size()} mappings searched, "
        f"{int(np.asarray(res.n_feasible)[0])} feasible"
    )
    print("best mapping: " + ", ".join(f"{k}={v}" for k, v in mapping.items()))
    print("feasible" if viol == 0 else "INFEASIBLE: violates " + ", ".join(describe(viol)))
    print_table(metrics_rows(m, 0))
    return 0
