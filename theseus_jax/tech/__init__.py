from ._tech import TECH_FIELDS as TECH_FIELDS, Tech as Tech
from ._uncertainty import (
    TechRanges as TechRanges,
    draws_table as draws_table,
    rank_sensitivity as rank_sensitivity,
    sample_techs as sample_techs,
)
