"""LeNet-5 as in Caffe's MNIST example (the network of Theis et al.'s Table 1 and Han et al.).

``conv 20@5×5 → max-pool 2 → conv 50@5×5 → max-pool 2 → FC 500 → ReLU → FC 10`` on a 1 × 28 × 28
input: 431,080 parameters (520 + 25,050 + 400,500 + 5,010). Caffe's example has no nonlinearity
after the convolutions (only after ``ip1``), and initialises the weights with Xavier (uniform,
fan-in) and the biases with 0; we do the same.

Three :class:`~salbook.pruning.ChannelMask` modules mark the prunable maps: the 20 and 50
convolution maps (before pooling) and the 500 hidden units (after the ReLU); ``prune_links``
tells :mod:`salbook.pruning.fisher` which layers read and write them. All masks on, the network is
exactly Caffe's.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..pruning import ChannelMask
from . import register

__all__ = ["LeNet5", "lenet5"]


class LeNet5(nn.Module):
    """Caffe's MNIST LeNet-5 with channel masks.

    Shape:
        input ``N × 1 × 28 × 28`` (pixels in [0, 1], Caffe's ``scale: 0.00390625``); output ``N × 10`` logits.
    """

    def __init__(self, conv1: int = 20, conv2: int = 50, hidden: int = 500, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, conv1, 5)
        self.mask1 = ChannelMask(conv1)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(conv1, conv2, 5)
        self.mask2 = ChannelMask(conv2)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.flatten = nn.Flatten()
        self.ip1 = nn.Linear(conv2 * 16, hidden)
        self.relu = nn.ReLU()
        self.mask3 = ChannelMask(hidden)
        self.ip2 = nn.Linear(hidden, classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                bound = math.sqrt(3.0 / fan_in)  # Caffe's "xavier" filler (uniform, fan-in)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def prune_links(self) -> list[tuple[str, str | None, str | None]]:
        """(layer, mask it reads, mask it writes) for every weight layer."""
        return [("conv1", None, "mask1"), ("conv2", "mask1", "mask2"), ("ip1", "mask2", "mask3"),
                ("ip2", "mask3", None)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1 or tuple(x.shape[-2:]) != (28, 28):
            raise ValueError(f"LeNet5 expects N×1×28×28 images, got {tuple(x.shape)}")
        x = self.pool1(self.mask1(self.conv1(x)))
        x = self.pool2(self.mask2(self.conv2(x)))
        return self.ip2(self.mask3(self.relu(self.ip1(self.flatten(x)))))


@register("lenet5")
def lenet5(**kwargs) -> LeNet5:
    """Caffe's MNIST LeNet-5 (431,080 parameters)."""
    return LeNet5(**kwargs)
