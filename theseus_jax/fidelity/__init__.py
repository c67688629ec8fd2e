"""Higher fidelities of the cost model: F1 = F0's compute/memory model + simulated NoC."""

from ._f1 import F1Cost as F1Cost, evaluate_f1 as evaluate_f1, recompose as recompose

__all__ = ["F1Cost", "evaluate_f1", "recompose"]
