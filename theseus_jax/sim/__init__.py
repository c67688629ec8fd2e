"""F1: the cycle-level NoC simulator."""

from ._config import (
    PATTERNS as PATTERNS,
    MeshConfig as MeshConfig,
    TrafficMatrix as TrafficMatrix,
)
from ._measure import (
    BookSimSpec as BookSimSpec,
    MeasureSpec as MeasureSpec,
    measure as measure,
    measure_batch as measure_batch,
)
from ._mesh import (
    SimState as SimState,
    make_mesh_sim as make_mesh_sim,
    run as run,
)
