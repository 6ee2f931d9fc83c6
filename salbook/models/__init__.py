"""Saliency models, created by name through one registry.

>>> from salbook import models
>>> net = models.create("pan_shallow")          # doctest: +SKIP
>>> models.list_models(family="pan")             # doctest: +SKIP
['pan_shallow', 'pan_shallow_bn', ...]

A model file registers its builder functions with :func:`register`; :func:`create` calls the
builder with the keyword arguments it is given. :func:`layer_table` lists a model's layers with
their output shapes and parameter counts. Pretrained feature extractors (offline) are in
:mod:`salbook.models.backbones`.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import torch
from torch import nn

__all__ = ["register", "create", "list_models", "family_of", "get_builder", "layer_table"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_B = TypeVar("_B", bound=Callable[..., nn.Module])


def register(name: str) -> Callable[[_B], _B]:
    """Decorator that registers a builder function under ``name`` (names are unique)."""
    if not isinstance(name, str) or not name:
        raise ValueError("a model name must be a non-empty string")

    def decorator(builder: _B) -> _B:
        if name in _REGISTRY and _REGISTRY[name] is not builder:
            raise ValueError(f"a model named {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorator


def get_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered under ``name``; a :class:`KeyError` lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_models()) or "(none)"
        raise KeyError(f"unknown model {name!r}; registered models: {known}") from None


def create(name: str, **kwargs) -> nn.Module:
    """Build the model registered under ``name``, passing ``kwargs`` to its builder."""
    return get_builder(name)(**kwargs)


def family_of(name: str) -> str:
    """The family of a registered model: the name of the file its builder lives in (``"pan"``)."""
    return get_builder(name).__module__.rsplit(".", 1)[-1]


def list_models(filter: str = "", family: str | None = None) -> list[str]:
    """Registered model names, sorted; optionally only those matching a shell-style ``filter``
    (``"pan_*"``, ``"*_bn"``; as timm's ``list_models``) and/or of one ``family`` (its model file,
    e.g. ``"pan"``). An unknown family is an error that lists the known ones."""
    import fnmatch

    names = sorted(_REGISTRY)
    if family is not None:
        families = sorted({family_of(n) for n in names})
        if family not in families:
            raise ValueError(f"unknown model family {family!r}; families: {', '.join(families)}")
        names = [n for n in names if family_of(n) == family]
    if filter:
        names = [n for n in names if fnmatch.fnmatchcase(n, filter)]
    return names


def layer_table(model: nn.Module, input_shape: tuple[int, ...], device: str | torch.device = "cpu"):
    """One row per leaf module, in call order: name, type, output shape (without N), parameters.

    Runs one forward pass in eval mode on a zero tensor of shape ``(1, *input_shape)`` and restores
    the model's train/eval mode afterwards. Returns a :class:`pandas.DataFrame` with columns
    ``layer``, ``type``, ``output shape``, ``params``.
    """
    import pandas as pd

    rows: list[dict] = []
    hooks = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None or module is model:
            continue

        def hook(mod: nn.Module, _inp, out, name: str = name) -> None:
            shape = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else None
            rows.append(
                dict(
                    layer=name,
                    type=type(mod).__name__,
                    **{"output shape": " × ".join(map(str, shape)) if shape else "—"},
                    params=sum(p.numel() for p in mod.parameters(recurse=False)),
                )
            )

        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return pd.DataFrame(rows, columns=["layer", "type", "output shape", "params"])


# Model files register their builders on import (keep these imports at the bottom).
from . import compact, csnet, fastsal, mlnet, pan  # noqa: E402,F401
from . import gaze, lenet  # noqa: E402,F401  (chapter 5)
from . import teacher  # noqa: E402,F401
