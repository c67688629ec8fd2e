"""theseus_jax: batched, differentiable design-space exploration of wafer-scale chips for LLMs.

Public API (everything else is private and may change):

* workloads: :class:`LLMConfig`, :class:`TrainingWorkload`, :class:`InferenceWorkload`,
  :func:`load_model`, :func:`from_hf_config`, :func:`load_training_workload`,
  :func:`load_inference_workload`, :func:`list_models`;
* designs: :class:`WaferDesign`, :class:`GPUSystem`, :class:`DesignSpace`, :func:`load_space`,
  :func:`load_system`, :func:`list_systems`, :class:`Tech`, :func:`load_tech`;
* mappings: :class:`Mapping`, :func:`enumerate_gpu_mappings`, :func:`enumerate_wafer_mappings`;
* evaluation: :func:`evaluate`, :func:`make_evaluator`, :func:`evaluate_point`,
  :func:`evaluate_mappings`, :class:`Metrics`, :class:`InferenceMetrics`, :class:`EvalResult`,
  :func:`physical_wsc`;
* feasibility: :class:`Violation`, :func:`describe`;
* DSE: :func:`pareto_mask`, :func:`hypervolume_2d`, :func:`hypervolume` (exact 2-D / 3-D),
  :func:`nsga2`, :func:`refine`, :func:`make_refiner`, :class:`ExploreConfig`,
  :func:`run_explore` (multi-fidelity BO and baselines; the BO engine is
  :mod:`theseus_jax.bo`).
"""

from ._version import __version__ as __version__  # noqa: E402
from ._violations import Violation as Violation, describe as describe
from .cost._records import InferenceMetrics as InferenceMetrics, Metrics as Metrics
from .cost.physical import Physical as Physical, physical_wsc as physical_wsc
from .design import GPUSystem as GPUSystem, WaferDesign as WaferDesign
from .dse import (
    ExploreConfig as ExploreConfig,
    hypervolume as hypervolume,
    make_refiner as make_refiner,
    nsga2 as nsga2,
    refine as refine,
    run_explore as run_explore,
)
from .dse.pareto import hypervolume_2d as hypervolume_2d, pareto_mask as pareto_mask
from .io import list_systems as list_systems, load_system as load_system, load_tech as load_tech
from .mapping import (
    Mapping as Mapping,
    enumerate_gpu_inference_mappings as enumerate_gpu_inference_mappings,
    enumerate_gpu_mappings as enumerate_gpu_mappings,
    enumerate_wafer_inference_mappings as enumerate_wafer_inference_mappings,
    enumerate_wafer_mappings as enumerate_wafer_mappings,
)
from .metrics._evaluate import (
    EvalResult as EvalResult,
    evaluate as evaluate,
    evaluate_mappings as evaluate_mappings,
    evaluate_point as evaluate_point,
    explain as explain,
    make_evaluator as make_evaluator,
)
from .space import DesignSpace as DesignSpace, load_space as load_space
from .tech import Tech as Tech
from .workload import (
    InferenceWorkload as InferenceWorkload,
    LLMConfig as LLMConfig,
    TrainingWorkload as TrainingWorkload,
    from_hf_config as from_hf_config,
    list_models as list_models,
    load_inference_workload as load_inference_workload,
    load_model as load_model,
    load_training_workload as load_training_workload,
)
