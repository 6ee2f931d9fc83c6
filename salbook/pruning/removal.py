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

**Widths rounded to a multiple** (``multiple=8``): ONNX Runtime's CPU convolutions run much slower on
channel counts that are not multiples of its vector block (measured in chapter 5 on the Lite0 gaze
model: removing one map per layer took ONNX Runtime from 4.6 to 8.3 ms; half the maps, 1.8 ms at
multiples of 8 against 4.8 ms at one map fewer). With ``multiple > 1`` each pruned layer keeps just enough
of its switched-off maps to reach the next multiple, and those maps are silenced by zeroing the weights
that read them (the input columns of every non-depthwise consumer), so the function is still the masked
network's exactly (tested).

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


def remove_pruned(model: nn.Module, example_input: torch.Tensor, multiple: int = 1) -> nn.Module:
    """A copy of ``model`` without its switched-off maps (and without masks), in eval mode.

    Args:
        model: a masked network with ``prune_links()`` (see :mod:`salbook.pruning.fisher`).
        example_input: one input batch (``1 × C × H × W``) for Torch-Pruning's trace.
        multiple: round every pruned layer's width up to a multiple of this (at most its original
            width) by keeping some switched-off maps as silent channels (see the module docstring);
            1 removes every switched-off map.

    Raises:
        ValueError: a mask has no producing layer in ``prune_links()``; ``multiple < 1``; or a map to
            keep silent is read by a layer that is not a convolution.
    """
    import torch_pruning as tp

    if int(multiple) < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple!r}")
    net = copy.deepcopy(model).cpu().eval()
    modules = dict(net.named_modules())
    links = _links(net)
    producers: dict[str, nn.Module] = {}
    for name, _i, o in links:
        mod = modules[name]
        if o is not None and not (isinstance(mod, nn.Conv2d) and mod.groups > 1):
            producers[o] = mod
    widths = {name: len(mask.mask) for name, mask in masks_of(net).items()}
    off = strip_masks(net)
    todo = {m: idx for m, idx in off.items() if idx}
    missing = [m for m in todo if m not in producers]
    if missing:
        raise ValueError(f"masks {missing} have no producing layer in prune_links(); cannot remove their maps")
    if int(multiple) > 1:
        todo = {m: _silence_extra(net, links, m, idx, widths[m], int(multiple)) for m, idx in todo.items()}
        todo = {m: idx for m, idx in todo.items() if idx}
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


@torch.no_grad()
def _silence_extra(net: nn.Module, links: list[tuple[str, str | None, str | None]], mask: str, off: list[int],
                   width: int, multiple: int) -> list[int]:
    """Keep enough of mask ``mask``'s switched-off maps ``off`` to round its width up to ``multiple``;
    zero what reads them; return the maps still to remove."""
    kept = width - len(off)
    target = min(width, -(-max(kept, 1) // multiple) * multiple)
    silent, remove = off[: target - kept], off[target - kept:]
    if not silent:
        return remove
    for name, in_mask, _o in links:
        layer = net.get_submodule(name)
        if in_mask != mask or (isinstance(layer, nn.Conv2d) and layer.groups > 1):
            continue  # depthwise layers are per map: what they pass on is zeroed downstream
        if not isinstance(layer, nn.Conv2d):
            raise ValueError(f"{name} ({type(layer).__name__}) reads mask {mask}; only convolutions can silence "
                             "kept maps (use multiple=1)")
        layer.weight[:, silent] = 0.0
    return remove
