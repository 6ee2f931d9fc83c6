"""Pan et al.'s shallow convnet for saliency prediction (CVPR 2016), and two re-implementations.

Three convolution + max-pool stages, one fully connected layer of 4,608 units followed by a maxout
over pairs of units, and a linear fully connected output of 2,304 = 48 × 48 units reshaped to a
map. The input is a 96 × 96 RGB image in [0, 1]; the output is an unbounded 48 × 48 map (the
official recipe trains it against targets scaled to [−1, 1]).

Builders (all registered in :mod:`salbook.models`):

``pan_shallow``
    The network as the authors' public Lasagne code builds it (``imatge-upc/saliency-2016-cvpr``
    with the paper figure's widths and pools): unpadded convolutions, ceil-mode pooling (Lasagne's
    ``ignore_border=False``), so the spatial size runs 96 → 92 → 46 → 44 → 22 → 20 → 10; the first
    fully connected layer is ReLU'd before the maxout (Lasagne's default nonlinearity); Glorot-uniform
    weights and zero biases. 64,392,512 parameters.
``pan_shallow_coursework``
    The Bristol coursework replication: "same" padding (2, 1, 1) and floor-mode pooling, so 96 → 96
    → 48 → 48 → 23 → 23 → 11 and 128 × 11 × 11 = 15,488 features reach the first fully connected
    layer, which has no activation before the maxout; Gaussian weights and biases of 0.1.
``pan_shallow_bn`` / ``pan_shallow_coursework_bn``
    The same two networks with a batch-norm layer after every convolution (before its ReLU), the
    replication's improvement.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal, Sequence

import torch
from torch import nn

from . import register
from .layers import Maxout, conv_output_size, pool_output_size

__all__ = [
    "PanShallow",
    "pan_shallow",
    "pan_shallow_bn",
    "pan_shallow_coursework",
    "pan_shallow_coursework_bn",
]

InitName = Literal["glorot", "gaussian"]


class PanShallow(nn.Module):
    """A three-stage convnet with a maxout fully connected head (Pan et al.'s shallow net).

    Args:
        input_size: ``(H, W)`` of the input image in pixels; fixed, since the head is fully connected.
        output_size: ``(h, w)`` of the predicted map in pixels (2,304 = 48 × 48 units in the paper).
        widths: output channels of the three convolutions.
        kernels: square kernel sizes of the three convolutions (stride 1).
        paddings: zero padding of the three convolutions, in pixels.
        pool_kernels: square max-pool windows after each convolution.
        pool_strides: max-pool strides.
        ceil_mode: keep partial pooling windows (Lasagne ``ignore_border=False``) when ``True``.
        batch_norm: insert :class:`~torch.nn.BatchNorm2d` between each convolution and its ReLU.
        fc_hidden: units of the first fully connected layer, before the maxout.
        maxout_pieces: units per maxout group; ``fc_hidden`` must be divisible by it.
        fc1_relu: apply a ReLU to the first fully connected layer before the maxout.
        head_norm: standardise the head's inputs (a parameter-free ``BatchNorm1d`` between the
            flattened features and the first fully connected layer; not in the paper, see chapter 1).
        init: ``"glorot"`` (Glorot-uniform weights, zero biases: the Lasagne defaults) or
            ``"gaussian"`` (weights ~ N(0, ``init_std``²), biases = ``init_bias``).
        init_std: standard deviation of the Gaussian initialisation.
        init_bias: bias value of the Gaussian initialisation.

    Shape:
        input ``N × 3 × H × W`` (float, RGB in [0, 1]); output ``N × 1 × h × w``.
    """

    def __init__(
        self,
        *,
        input_size: tuple[int, int] = (96, 96),
        output_size: tuple[int, int] = (48, 48),
        widths: Sequence[int] = (32, 64, 128),
        kernels: Sequence[int] = (5, 3, 3),
        paddings: Sequence[int] = (0, 0, 0),
        pool_kernels: Sequence[int] = (2, 3, 3),
        pool_strides: Sequence[int] = (2, 2, 2),
        ceil_mode: bool = True,
        batch_norm: bool = False,
        fc_hidden: int = 4608,
        maxout_pieces: int = 2,
        fc1_relu: bool = True,
        head_norm: bool = False,
        init: InitName = "glorot",
        init_std: float = 0.01,
        init_bias: float = 0.1,
    ) -> None:
        super().__init__()
        stages = [widths, kernels, paddings, pool_kernels, pool_strides]
        if len({len(s) for s in stages}) != 1:
            raise ValueError("widths, kernels, paddings, pool_kernels and pool_strides need equal lengths")
        if fc_hidden % maxout_pieces:
            raise ValueError(f"fc_hidden={fc_hidden} is not divisible by maxout_pieces={maxout_pieces}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self.init_name: InitName = init
        self.init_std = float(init_std)
        self.init_bias = float(init_bias)

        layers: "OrderedDict[str, nn.Module]" = OrderedDict()
        channels, (h, w) = 3, self.input_size
        for i, (width, k, p, pk, ps) in enumerate(zip(*stages), start=1):
            layers[f"conv{i}"] = nn.Conv2d(channels, width, kernel_size=k, padding=p)
            if batch_norm:
                layers[f"bn{i}"] = nn.BatchNorm2d(width)
            layers[f"relu{i}"] = nn.ReLU(inplace=True)
            layers[f"pool{i}"] = nn.MaxPool2d(pk, stride=ps, ceil_mode=ceil_mode)
            h, w = conv_output_size(h, k, 1, p), conv_output_size(w, k, 1, p)
            h, w = pool_output_size(h, pk, ps, 0, ceil_mode), pool_output_size(w, pk, ps, 0, ceil_mode)
            channels = width
        self.features = nn.Sequential(layers)
        self.feature_shape = (channels, h, w)
        n_features = channels * h * w

        head: "OrderedDict[str, nn.Module]" = OrderedDict()
        head["flatten"] = nn.Flatten(1)
        if head_norm:
            head["norm"] = nn.BatchNorm1d(n_features, affine=False)
        head["fc1"] = nn.Linear(n_features, fc_hidden)
        if fc1_relu:
            head["relu_fc1"] = nn.ReLU(inplace=True)
        head["maxout"] = Maxout(maxout_pieces)
        head["fc2"] = nn.Linear(fc_hidden // maxout_pieces, self.output_size[0] * self.output_size[1])
        head["unflatten"] = nn.Unflatten(1, (1, *self.output_size))
        self.head = nn.Sequential(head)
        self.reset_parameters()

    def reset_parameters(
        self, init: InitName | None = None, std: float | None = None, bias: float | None = None
    ) -> None:
        """(Re-)initialise every convolution and linear layer; batch norms get weight 1, bias 0.

        Arguments left ``None`` keep the values given to the constructor. Draws from torch's global
        generator, so seed it (:func:`salbook.utils.seed_everything`) first for repeatable weights.
        """
        if init is not None:
            self.init_name = init
        if std is not None:
            self.init_std = float(std)
        if bias is not None:
            self.init_bias = float(bias)
        if self.init_name not in ("glorot", "gaussian"):
            raise ValueError(f"unknown init {self.init_name!r}; use 'glorot' or 'gaussian'")
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if self.init_name == "glorot":
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
                else:
                    nn.init.normal_(m.weight, 0.0, self.init_std)
                    nn.init.constant_(m.bias, self.init_bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.reset_running_stats()
                if m.affine:
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``N × 3 × H × W`` to unbounded saliency maps ``N × 1 × h × w``."""
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects N×3×{self.input_size[0]}×{self.input_size[1]} input "
                f"(its head is fully connected), got {tuple(x.shape)}"
            )
        return self.head(self.features(x))


def _official(**overrides) -> dict:
    cfg = dict(paddings=(0, 0, 0), pool_kernels=(2, 3, 3), ceil_mode=True, fc1_relu=True, init="glorot")
    cfg.update(overrides)
    return cfg


def _coursework(**overrides) -> dict:
    cfg = dict(paddings=(2, 1, 1), pool_kernels=(2, 3, 3), ceil_mode=False, fc1_relu=False, init="gaussian")
    cfg.update(overrides)
    return cfg


@register("pan_shallow")
def pan_shallow(**kwargs) -> PanShallow:
    """Pan et al.'s shallow net as the official code builds it (64,392,512 parameters).

    Keyword arguments override :class:`PanShallow`'s (e.g. ``init="gaussian"``).
    """
    return PanShallow(**_official(**kwargs))


@register("pan_shallow_bn")
def pan_shallow_bn(**kwargs) -> PanShallow:
    """``pan_shallow`` with batch norm after each convolution (64,392,960 parameters)."""
    return PanShallow(**_official(batch_norm=True, **kwargs))


@register("pan_shallow_coursework")
def pan_shallow_coursework(**kwargs) -> PanShallow:
    """The coursework replication's network: padded convolutions, floor pooling, 11 × 11 before the FC."""
    return PanShallow(**_coursework(**kwargs))


@register("pan_shallow_coursework_bn")
def pan_shallow_coursework_bn(**kwargs) -> PanShallow:
    """``pan_shallow_coursework`` with batch norm after each convolution."""
    return PanShallow(**_coursework(batch_norm=True, **kwargs))
