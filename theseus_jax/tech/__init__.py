from ._tech import TECH_FIELDS as TECH_FIELDS, Tech as Tech
