"""Config I/O: validated loaders for technology and system files, and dict/CSV helpers."""

from ._load import (
    design_from_dict as design_from_dict,
    design_to_dict as design_to_dict,
    fields_of_kind as fields_of_kind,
    list_systems as list_systems,
    list_techs as list_techs,
    load_system as load_system,
    load_tech as load_tech,
    load_tech_ranges as load_tech_ranges,
    system_kind as system_kind,
    system_tech_name as system_tech_name,
)
