from ._gpu import GPU_FIELDS as GPU_FIELDS, GPUSystem as GPUSystem
from ._space import (
    DesignSpace as DesignSpace,
    ParamSpec as ParamSpec,
    list_spaces as list_spaces,
    load_space as load_space,
)
from ._wafer import (
    WAFER_FIELDS as WAFER_FIELDS,
    DramKind as DramKind,
    Integration as Integration,
    WaferDesign as WaferDesign,
)
