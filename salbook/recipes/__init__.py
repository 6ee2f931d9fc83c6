"""Training and evaluation recipes that the chapters call (one module per model family).

* :mod:`salbook.recipes.pan` — Pan et al.'s shallow convnet (chapter 1).
"""

from . import pan

__all__ = ["pan"]
