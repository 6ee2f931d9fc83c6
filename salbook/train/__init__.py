"""Training: :func:`fit` (seeded, resumable, distributed, extensible) and :func:`load_or_train` (cached).

* :mod:`salbook.train.loop` — :func:`fit` and the :class:`Trainer` it hands to callbacks;
* :mod:`salbook.train.callbacks` — the hooks (:class:`Callback`), regularisers, and
  :class:`ReloadBestAndDecay` (reload the best weights and divide the lr at milestones);
* :mod:`salbook.train.optim` — optimiser factories (:func:`sgd`, :func:`adam`) and parameter
  groups with their own lr multiplier and weight decay (:func:`param_groups`);
* :mod:`salbook.train.checkpoint` — checkpoint format, RNG states;
* :mod:`salbook.train.cache` — the trained-model cache, keyed on config, seed and the code run;
* :mod:`salbook.train.distributed` — process-group setup for ``torchrun``.
"""

from __future__ import annotations

from .cache import TRAINING_CORE, code_version, load_or_train, model_key, model_modules
from .callbacks import Callback, Regularizer, ReloadBestAndDecay
from .checkpoint import CHECKPOINT_FORMAT
from .loop import Trainer, TrainResult, default_forward, fit
from .optim import ParamGroup, adam, is_bias_like, param_groups, sgd

__all__ = [
    "fit",
    "load_or_train",
    "Trainer",
    "TrainResult",
    "Callback",
    "Regularizer",
    "ReloadBestAndDecay",
    "ParamGroup",
    "param_groups",
    "is_bias_like",
    "sgd",
    "adam",
    "default_forward",
    "code_version",
    "model_key",
    "model_modules",
    "TRAINING_CORE",
    "CHECKPOINT_FORMAT",
]
