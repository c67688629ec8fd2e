"""Evaluate designs: F0 (and F1) metrics of design batches under mapping tables.

The metric records themselves are defined next to the cost terms that fill them
(:mod:`theseus_jax.cost._records`) and re-exported here.
"""

from ..cost._records import (
    BREAKDOWN_FIELDS as BREAKDOWN_FIELDS,
    INFERENCE_BREAKDOWN_FIELDS as INFERENCE_BREAKDOWN_FIELDS,
    INFERENCE_METRIC_FIELDS as INFERENCE_METRIC_FIELDS,
    METRIC_FIELDS as METRIC_FIELDS,
    InferenceMetrics as InferenceMetrics,
    Metrics as Metrics,
)
