"""Analyses of data and trained models (not models themselves).

* :mod:`salbook.analysis.realism` — how much the generated scenes behave like eye-tracking data;
* :mod:`salbook.analysis.probes` — closed-form linear readouts of frozen features;
* :mod:`salbook.analysis.activations` — capturing activations, their across-image spread;
* :mod:`salbook.analysis.failure_modes` — centre-dominated maps and spurious peaks per image;
* :mod:`salbook.analysis.redundancy` — PCA of a layer's activations: how many dimensions it uses;
* :mod:`salbook.analysis.decay_balance` — a decay on BN scales under Adam, and the task's gradient
  against the decay's per channel (imported on its own: it needs :mod:`salbook.pruning`).
"""

from .activations import activation_spread, capture_activations
from .failure_modes import failure_modes, summarize_failure_modes
from .probes import RidgeReadout, fit_ridge_readout
from .realism import realism_table, synthetic_realism
from .redundancy import RedundancyResult, compare_pair, recalibrate_batch_norm, redundancy

__all__ = [
    "activation_spread",
    "capture_activations",
    "failure_modes",
    "summarize_failure_modes",
    "RidgeReadout",
    "fit_ridge_readout",
    "realism_table",
    "RedundancyResult",
    "compare_pair",
    "recalibrate_batch_norm",
    "redundancy",
    "synthetic_realism",
]
