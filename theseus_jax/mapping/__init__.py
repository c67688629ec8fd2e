from ._enumerate import (
    divisors as divisors,
    enumerate_gpu_inference_mappings as enumerate_gpu_inference_mappings,
    enumerate_gpu_mappings as enumerate_gpu_mappings,
    enumerate_wafer_inference_mappings as enumerate_wafer_inference_mappings,
    enumerate_wafer_mappings as enumerate_wafer_mappings,
    pad_mappings as pad_mappings,
)
from ._plan import (
    MAPPING_FIELDS as MAPPING_FIELDS,
    Mapping as Mapping,
    Recompute as Recompute,
    Schedule as Schedule,
)
