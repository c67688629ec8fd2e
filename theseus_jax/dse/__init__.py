"""Design-space exploration: Pareto utilities, NSGA-II, gradient refinement, durable runs."""

from ..parallel import Parallel as Parallel, WorkerDied as WorkerDied
from ._gpu_reference import gpu_reference as gpu_reference
from .evaluation import Evaluation as Evaluation
from .explore import (
    ExploreConfig as ExploreConfig,
    hypervolume_trace as hypervolume_trace,
    make_problem as make_problem,
    run_explore as run_explore,
)
from .explore_inference import (
    InferenceExploreConfig as InferenceExploreConfig,
    run_inference_explore as run_inference_explore,
)
from .methods import METHODS as METHODS, Method as Method
from .nsga2 import NSGA2 as NSGA2, NSGA2State as NSGA2State, nsga2 as nsga2, run_nsga2 as run_nsga2
from .pareto import (
    hypervolume as hypervolume,
    hypervolume_2d as hypervolume_2d,
    hypervolume_3d as hypervolume_3d,
    nondominated_mask as nondominated_mask,
    pareto_mask as pareto_mask,
)
from .problem import Problem as Problem
from .refine import (
    RefineResult as RefineResult,
    constraint_margins as constraint_margins,
    make_refiner as make_refiner,
    refine as refine,
)
from .store import RunStore as RunStore
