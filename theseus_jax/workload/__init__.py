from ._flops import (
    activation_bytes_per_layer as activation_bytes_per_layer,
    megatron_model_flops_per_step as megatron_model_flops_per_step,
    model_flops_per_token as model_flops_per_token,
    optimizer_bytes_per_param as optimizer_bytes_per_param,
)
from ._llm import (
    InferenceWorkload as InferenceWorkload,
    LLMConfig as LLMConfig,
    TrainingWorkload as TrainingWorkload,
)
from ._load import (
    from_hf_config as from_hf_config,
    list_models as list_models,
    load_inference_workload as load_inference_workload,
    load_model as load_model,
    load_training_workload as load_training_workload,
    workload_defaults as workload_defaults,
)
from ._schema import PRECISION_BITS as PRECISION_BITS
