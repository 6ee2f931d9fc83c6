"""Physical removal of pruned feature maps: a smaller dense network that computes the same function.

:func:`remove_pruned` copies a masked network, replaces every :class:`~salbook.pruning.ChannelMask`
by an identity, and hands the maps each mask switched off to **Torch-Pruning**'s
``DependencyGraph`` (``torch_pruning.DependencyGraph``): pruning the output channels of the layer
that writes a mask removes, through the graph, the matching entries of the batch norms,
activations with per-channel parameters, depthwise convolutions and the input channels of every
consumer (convolutions, and linear layers behind a ``flatten``, which Torch-Pruning maps to the
right blocks of columns). Every model of chapter 5 (LeNet-5, the DeepGaze II readout, FastGaze,
DenseGaze's and Lite0's prunable maps) is handled by Torch-Pruning; no hand-written surgery is
needed. A switched-off map contributes exactly zero downstream, so the removed network's outputs
equal the masked network's (tested).

A known Torch-Pruning (1.6) limitation, pinned by a test: a linear layer behind a ``flatten`` is
mis-sized when a one-parameter ``PReLU`` sits between the pruned convolution and the flatten. No
model here has that pattern (LeNet-5 has no activation there; the readout's PReLUs feed 1 × 1
convolutions).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from . import ChannelMask, masks_of
from .fisher import _links

__all__ = ["remove_pruned", "strip_masks"]


def strip_masks(model: nn.Module) -> dict[str, list[int]]:
    """Replace every :class:`ChannelMask` in ``model`` (in place) by ``nn.Identity``; return the
    switched-off channels of each."""
    off = {}
    for name, mask in list(masks_of(model).items()):
        off[name] = [i for i in range(len(mask.mask)) if float(mask.mask[i]) == 0.0]
        parent_name, _, leaf = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, leaf, nn.Identity())
    return off


def remove_pruned(model: nn.Module, example_input: torch.Tensor) -> nn.Module:
    """A copy of ``model`` without its switched-off maps (and without masks), in eval mode.

    Args:
        model: a masked network with ``prune_links()`` (see :mod:`salbook.pruning.fisher`).
        example_input: one input batch (``1 × C × H × W``) for Torch-Pruning's trace.

    Raises:
        ValueError: a mask has no producing layer in ``prune_links()``.
    """
    import torch_pruning as tp

    net = copy.deepcopy(model).cpu().eval()
    modules = dict(net.named_modules())
    producers: dict[str, nn.Module] = {}
    for name, _i, o in _links(net):
        mod = modules[name]
        if o is not None and not (isinstance(mod, nn.Conv2d) and mod.groups > 1):
            producers[o] = mod
    off = strip_masks(net)
    todo = {m: idx for m, idx in off.items() if idx}
    missing = [m for m in todo if m not in producers]
    if missing:
        raise ValueError(f"masks {missing} have no producing layer in prune_links(); cannot remove their maps")
    if not todo:
        return net
    import warnings

    with warnings.catch_warnings():  # scalar parameters (the finalizer's σ and weight) have no channels
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
        dg = tp.DependencyGraph().build_dependency(net, example_inputs=example_input.detach().cpu())
    for m, idx in todo.items():
        layer = producers[m]
        fn = tp.prune_conv_out_channels if isinstance(layer, nn.Conv2d) else tp.prune_linear_out_channels
        group = dg.get_pruning_group(layer, fn, idxs=list(idx))
        group.prune()
    return net.eval()
