from ._cases import (
    default_cases_path as default_cases_path,
    inference_setup as inference_setup,
    load_cases as load_cases,
    predict_case as predict_case,
    training_setup as training_setup,
    validate_cases as validate_cases,
)
