"""Higher fidelities of the cost model: F1 = F0's compute/memory model + simulated NoC."""

from ._f1 import (
    F1Cache as F1Cache,
    F1Cost as F1Cost,
    evaluate_f1 as evaluate_f1,
    f1_planned_cost as f1_planned_cost,
    recompose as recompose,
)
from ._traffic import Phase as Phase, workload_traffic as workload_traffic

__all__ = [
    "F1Cache",
    "F1Cost",
    "Phase",
    "evaluate_f1",
    "f1_planned_cost",
    "recompose",
    "workload_traffic",
]
