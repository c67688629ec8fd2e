"""Higher fidelities of the cost model: F1 = F0's cost terms composed with network factors
measured on the cycle-level NoC simulator (training and inference)."""

from ._f1 import (
    F1Cost as F1Cost,
    compose as compose,
    evaluate_f1 as evaluate_f1,
    f1_planned_cost as f1_planned_cost,
    measure_factors as measure_factors,
    wafer_terms as wafer_terms,
)
from ._many import (
    F1Point as F1Point,
    evaluate_f1_many as evaluate_f1_many,
    open_f1_executor as open_f1_executor,
)
from ._traffic import Phase as Phase, workload_traffic as workload_traffic
from ._windows import F1Cache as F1Cache, NetParams as NetParams

__all__ = [
    "F1Cache",
    "F1Cost",
    "F1Point",
    "NetParams",
    "Phase",
    "compose",
    "evaluate_f1",
    "evaluate_f1_many",
    "open_f1_executor",
    "f1_planned_cost",
    "measure_factors",
    "wafer_terms",
    "workload_traffic",
]
