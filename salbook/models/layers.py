"""Small reusable layers shared by the model files.

Every layer here is a plain :class:`torch.nn.Module` with no learnable state unless stated, so it
shows up as its own row in architecture tables and parameter counts.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["Maxout", "conv_output_size", "pool_output_size"]


class Maxout(nn.Module):
    """Maxout over groups of ``pieces`` consecutive units (Goodfellow et al., 2013).

    Units ``(pieces*k, ..., pieces*k + pieces - 1)`` of dimension ``dim`` form group ``k`` and the
    output keeps each group's maximum, so that dimension shrinks from ``C`` to ``C / pieces``.
    Grouping *consecutive* units is what Lasagne's ``FeaturePoolLayer`` does; Pan et al.'s figure
    draws the same operation as a max over two "slices" (halves), which is equal up to a fixed
    permutation of the preceding layer's units.

    Args:
        pieces: number of units per group (``>= 1``); Pan et al. use 2.
        dim: the dimension to pool over (default 1, the feature/channel dimension).

    Shape:
        input ``N × C × *`` with ``C`` divisible by ``pieces``; output ``N × C/pieces × *``.
    """

    def __init__(self, pieces: int = 2, dim: int = 1) -> None:
        super().__init__()
        if int(pieces) != pieces or pieces < 1:
            raise ValueError(f"Maxout needs a positive integer number of pieces, got {pieces!r}")
        self.pieces = int(pieces)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = self.dim % x.dim()
        channels = x.shape[dim]
        if channels % self.pieces:
            raise ValueError(
                f"Maxout over {self.pieces} pieces needs dimension {dim} divisible by {self.pieces}, "
                f"got size {channels}"
            )
        shape = x.shape[:dim] + (channels // self.pieces, self.pieces) + x.shape[dim + 1 :]
        return x.reshape(shape).amax(dim=dim + 1)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}, dim={self.dim}"


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Spatial output length (pixels) of a convolution along one axis (PyTorch arithmetic)."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"a {kernel}-wide convolution does not fit an input of {size} pixels")
    return out


def pool_output_size(size: int, kernel: int, stride: int, padding: int = 0, ceil_mode: bool = False) -> int:
    """Spatial output length (pixels) of a max-pool along one axis, floor or ceil mode.

    Ceil mode keeps a final partial window (what Lasagne's ``ignore_border=False`` does for
    ``stride <= kernel``), as long as that window starts inside the input, as in PyTorch.
    """
    span = size + 2 * padding - kernel
    if span < 0:
        raise ValueError(f"a {kernel}-wide pool does not fit an input of {size} pixels")
    if ceil_mode:
        out = math.ceil(span / stride) + 1
        if (out - 1) * stride >= size + padding:
            out -= 1
        return out
    return span // stride + 1
