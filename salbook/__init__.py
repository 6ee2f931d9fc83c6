"""salbook: the package behind the executable book on efficient saliency models.

Modules (imported on first use, so ``import salbook`` stays fast):

- :mod:`salbook.data`        generated saliency scenes and loaders for the real datasets
- :mod:`salbook.metrics`     fixation metrics (MIT conventions) and salient-object metrics
- :mod:`salbook.baselines`   uniform, centre bias, true density, inter-observer
- :mod:`salbook.evaluation`  :func:`evaluate`: a tidy table of per-image scores and a summary
- :mod:`salbook.models`      the models of the chapters, created by name
- :mod:`salbook.train`       training with resume, checkpoints and a trained-model cache
- :mod:`salbook.cost`        parameters, FLOPs, memory, latency
- :mod:`salbook.book`        profile settings and recorded headline numbers
- :mod:`salbook.runner`      papermill execution, book build, regression (the ``salbook`` command)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "data", "metrics", "baselines", "evaluation", "models", "train", "schedules", "cost",
    "book", "runner", "utils", "recipes",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name == "evaluate":
        return importlib.import_module(".evaluation", __name__).evaluate
    raise AttributeError(f"module 'salbook' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES, "evaluate"])
