"""Training and evaluation recipes that the chapters call (one module per model family).

* :mod:`salbook.recipes.pan` — Pan et al.'s shallow convnet (chapter 1);
* :mod:`salbook.recipes.saliency` — dense-map models trained here: the compact model and the
  ML-Net-style head on EfficientNet-Lite0 (chapters 2 and 3).
"""

from . import pan, saliency

__all__ = ["pan", "saliency"]
