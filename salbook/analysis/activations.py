"""Capturing and summarising a network's intermediate activations.

:func:`capture_activations` runs images through a copy of a model and returns the outputs of the
layers asked for (by module name or by type); :func:`activation_spread` summarises each ReLU
layer by how much it still says about the individual image. Chapter 2's redundancy analysis
(PCA of activations) builds on :func:`capture_activations`.
"""

from __future__ import annotations

import copy
from typing import Sequence

import pandas as pd
import torch
from torch import nn

__all__ = ["capture_activations", "activation_spread"]


@torch.no_grad()
def capture_activations(
    model: nn.Module,
    images: torch.Tensor,
    layers: Sequence[str] | None = None,
    layer_type: type[nn.Module] | tuple[type[nn.Module], ...] | None = None,
    batch_size: int = 64,
) -> dict[str, torch.Tensor]:
    """The outputs of the chosen layers of ``model`` for ``images`` (N×C×H×W), on the CPU.

    Choose layers by qualified module name (``layers``) or by type (``layer_type``, e.g.
    ``nn.ReLU``), in call order. Runs a copy of the model in eval mode (the caller's model is
    neither moved nor changed) in batches of ``batch_size``; each result is N×(layer output).
    """
    if (layers is None) == (layer_type is None):
        raise ValueError("give exactly one of layers=[names] or layer_type=ModuleClass")
    net = copy.deepcopy(model).eval().cpu()
    modules = dict(net.named_modules())
    if layers is not None:
        unknown = [name for name in layers if name not in modules]
        if unknown:
            raise KeyError(f"no module named {unknown} in {type(model).__name__}; e.g. {list(modules)[1:6]}")
        chosen = {name: modules[name] for name in layers}
    else:
        chosen = {name: m for name, m in modules.items() if isinstance(m, layer_type) and name}
        if not chosen:
            raise ValueError(f"{type(model).__name__} has no module of type {layer_type}")
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in chosen}
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: parts[name].append(out.detach().clone()))
             for name, m in chosen.items()]
    try:
        for start in range(0, len(images), batch_size):
            net(images[start:start + batch_size].cpu())
    finally:
        for h in hooks:
            h.remove()
    return {name: torch.cat(chunks) for name, chunks in parts.items() if chunks}


def activation_spread(features: nn.Module, images: torch.Tensor) -> pd.DataFrame:
    """How much each ReLU layer of ``features`` still says about the image.

    Reports, per ReLU output: the mean activation, the share of channels that are non-zero
    somewhere, and the *across-image spread* (the standard deviation over the N images at each
    unit, averaged over units). A layer whose spread collapses answers the same for every image:
    nothing after it can tell images apart.
    """
    acts = capture_activations(features, images, layer_type=nn.ReLU, batch_size=len(images))
    rows = {name: {"mean activation": float(a.mean()),
                   "channels ever active": float((a.amax(dim=(0, 2, 3)) > 0).float().mean()),
                   "across-image spread": float(a.std(dim=0).mean())}
            for name, a in acts.items()}
    return pd.DataFrame(rows).T.rename_axis("layer")
