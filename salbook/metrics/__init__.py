"""Saliency metrics: fixation prediction (MIT benchmark conventions) and salient-object detection.

Fixation metrics score one image and return a float (see :mod:`salbook.metrics.fixation` for the
conventions): :func:`auc_judd`, :func:`auc_borji`, :func:`auc_shuffled`, :func:`nss`, :func:`cc`,
:func:`kld`, :func:`sim`, :func:`info_gain`, :func:`log_likelihood`. ``FIXATION_METRICS`` maps
their names to the functions. Salient-object metrics (MAE, F-measure in two conventions,
S-measure, E-measure) are accumulated over a dataset by :class:`SODMetrics`. Batched tensor
metrics for training loops (:func:`batch_cc`, :func:`mean_cc_metric`) are in :mod:`salbook.metrics.batch`.
"""

from salbook.metrics.fixation import (
    EPS,
    FIXATION_METRICS,
    HIGHER_IS_BETTER,
    METRIC_TARGETS,
    as_fixations,
    as_map,
    auc_borji,
    auc_judd,
    auc_shuffled,
    benchmark,
    cc,
    check_metric_names,
    fixation_map_from_points,
    info_gain,
    kld,
    log_likelihood,
    nss,
    rescale_fixations,
    resize_map,
    score_batch,
    score_image,
    sim,
)
from salbook.metrics.batch import batch_cc, mean_cc_metric
from salbook.metrics.sod import SOD_METRICS, SODMetrics

__all__ = [
    "EPS",
    "FIXATION_METRICS",
    "HIGHER_IS_BETTER",
    "METRIC_TARGETS",
    "SOD_METRICS",
    "SODMetrics",
    "as_fixations",
    "as_map",
    "auc_borji",
    "auc_judd",
    "auc_shuffled",
    "batch_cc",
    "benchmark",
    "cc",
    "check_metric_names",
    "fixation_map_from_points",
    "info_gain",
    "kld",
    "log_likelihood",
    "mean_cc_metric",
    "nss",
    "rescale_fixations",
    "resize_map",
    "score_batch",
    "score_image",
    "sim",
]
