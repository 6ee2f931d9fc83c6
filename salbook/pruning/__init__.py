"""Structured pruning: removing whole feature maps (channels) from a trained network.

:class:`ChannelMask` is a per-channel binary mask placed after a layer; it is where a pruning
signal is measured (chapter 5's Fisher pruning reads the activations and gradients there) and
what a prune step switches off, before the pruned maps are removed physically. Training-time
pruning plugs into :func:`salbook.train.fit` as a callback that changes the architecture
(:meth:`salbook.train.Trainer.set_model`), so a pruned run still resumes exactly.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChannelMask", "masks_of"]


class ChannelMask(nn.Module):
    """Multiply an N×C×H×W activation by a fixed 0/1 mask over its C channels.

    The mask is a buffer (saved with the state dict, never trained). :meth:`prune` switches
    channels off; ``kept`` lists the ones still on.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.register_buffer("mask", torch.ones(channels))

    @property
    def kept(self) -> list[int]:
        return torch.nonzero(self.mask, as_tuple=False).flatten().tolist()

    def prune(self, channels: int | list[int]) -> None:
        """Switch off ``channels`` (an index or a list); pruning the last one left is refused."""
        idx = [channels] if isinstance(channels, int) else list(channels)
        if any(not 0 <= i < len(self.mask) for i in idx):
            raise IndexError(f"channel index out of range 0..{len(self.mask) - 1}: {idx}")
        if set(self.kept) <= set(idx):
            raise ValueError("cannot prune every channel of a layer")
        self.mask[idx] = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != len(self.mask):
            raise ValueError(f"ChannelMask over {len(self.mask)} channels got input {tuple(x.shape)}")
        return x * self.mask.view(1, -1, *([1] * (x.dim() - 2)))


def masks_of(model: nn.Module) -> dict[str, ChannelMask]:
    """Every :class:`ChannelMask` in ``model``, by qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, ChannelMask)}
