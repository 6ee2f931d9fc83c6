"""Gaze models of Theis et al. (2018): the DeepGaze II readout and finalizer on three trunks.

A :class:`GazeModel` maps RGB images in [0, 1] (``N × 3 × H × W``) to a **log-density** over the
pixels (``N × 1 × H × W``; ``logsumexp`` over each map is 0), eq. (1) of the paper::

    log Q(x, y | I) = R(F(I)) ↑ * G_σ + w · log Q_c(x, y)  − log Z

* ``F`` — a trunk's feature maps at its taps, resized (bilinear) to the first tap's grid and
  concatenated;
* ``R`` — the DeepGaze II readout: 1 × 1 convolutions with PReLU and 32, 16 and 2 hidden maps, then
  one output map (:class:`Readout`). As in the paper, the readout runs at the features' resolution
  and its one-channel output is upsampled bilinearly to the input size;
* ``G_σ`` — a separable Gaussian blur with a **learnable** σ (in output pixels, as a fraction of the
  width; replicate padding, truncated at 3σ), ``w`` — a learnable weight of the centre-bias
  log-density ``log Q_c`` (a buffer: the training fixations' density, :meth:`Finalizer.set_centre_bias`),
  and a softmax over all pixels (:class:`Finalizer`).

Trunks (each with :class:`~salbook.pruning.ChannelMask` modules on its prunable maps and
``prune_links()`` for :mod:`salbook.pruning.fisher`):

``fastgaze``
    VGG-11's features up to conv5_2 (and its ReLU) — eight convolutions, every one of its 2,752 maps
    prunable — the paper's FastGaze. With the readout's 32 + 16 + 2 hidden maps and its output that
    is the paper's 2,803 maps.
``densegaze``
    DenseNet-121 up to dense block 3 (stride 16, 1,024 channels) — DenseGaze. The prunable maps are
    the 128-map bottlenecks of the 42 dense layers (5,376) and the readout's hidden maps. The paper's
    7,219 also counts the growth maps concatenated into later layers, which we do not prune.
``gaze_lite0``
    EfficientNet-Lite0 with its ImageNet weights up to its last block, read at blocks 4 (112 maps,
    stride 16) and 6 (320, stride 32): the book's CPU-sized gaze model. The prunable maps are the
    expansion maps of its 15 inverted residual blocks (the 1 × 1 expansion, the depthwise 3 × 3 and
    the projection's inputs: residual-coupled block outputs stay) and the readout's hidden maps.

VGG-11 and DenseNet-121 start from random weights unless ``weights=PATH`` names a local torchvision
state dict (nothing is downloaded; :mod:`salbook.models.backbones`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..pruning import ChannelMask
from . import register
from .backbones import IMAGENET_MEAN, IMAGENET_STD, TF_LITE_MEAN, TF_LITE_STD, WeightsArg, _build_model

__all__ = ["Readout", "Finalizer", "GazeModel", "fastgaze", "densegaze", "gaze_lite0", "READOUT_HIDDEN"]

#: The paper's readout widths (hidden maps of the 1 × 1 convolutions).
READOUT_HIDDEN = (32, 16, 2)


class Readout(nn.Module):
    """DeepGaze II readout: 1 × 1 convs ``C → 32 → 16 → 2 → 1`` with PReLU after each hidden layer,
    a channel mask after each PReLU (prefix ``readout.``)."""

    def __init__(self, in_channels: int, hidden: Sequence[int] = READOUT_HIDDEN) -> None:
        super().__init__()
        widths = [int(in_channels), *map(int, hidden)]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers += [nn.Conv2d(a, b, 1), nn.PReLU(), ChannelMask(b)]
        layers.append(nn.Conv2d(widths[-1], 1, 1))
        self.net = nn.Sequential(*layers)
        self.hidden = tuple(widths[1:])

    def links(self, prefix: str, in_mask: str | None = None) -> list[tuple[str, str | None, str | None]]:
        out, prev = [], in_mask
        for i in range(len(self.hidden)):
            mask = f"{prefix}net.{3 * i + 2}"
            out.append((f"{prefix}net.{3 * i}", prev, mask))
            prev = mask
        out.append((f"{prefix}net.{3 * len(self.hidden)}", prev, None))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Finalizer(nn.Module):
    """Blur (learnable σ), add ``w · log`` centre bias (learnable ``w``), log-softmax over pixels.

    Args:
        sigma: initial σ as a fraction of the output width (DeepGaze II: 8 px on a ~512-px-wide
            half-resolution map ≈ 0.016; we start at 0.02).
        centre_grid: side of the stored centre-bias log-density (a uniform one until set).
    """

    def __init__(self, sigma: float = 0.02, centre_grid: int = 64) -> None:
        super().__init__()
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))
        self.centre_weight = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("log_centre", torch.zeros(centre_grid, centre_grid))

    def set_centre_bias(self, density: torch.Tensor) -> None:
        """Store a centre-bias density (``h × w``, non-negative, any size; e.g.
        :class:`salbook.baselines.CenterBias`'s ``density``) as the log-density the model adds."""
        d = torch.as_tensor(density, dtype=torch.float32)
        if d.dim() != 2 or (d < 0).any() or d.sum() <= 0:
            raise ValueError("set_centre_bias needs a non-negative h × w density with positive mass")
        d = F.interpolate(d[None, None], size=self.log_centre.shape, mode="bilinear", align_corners=False)[0, 0]
        d = d.clamp_min(1e-12)
        self.log_centre.copy_(torch.log(d / d.sum()))

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        sigma = torch.exp(self.log_sigma) * x.shape[-1]
        radius = max(1, int(math.ceil(3.0 * float(sigma.detach()))))
        radius = min(radius, max(1, min(x.shape[-2:]) - 1))
        t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        k = k / k.sum()
        x = F.pad(x, (radius, radius, 0, 0), mode="replicate")
        x = F.conv2d(x, k.view(1, 1, 1, -1))
        x = F.pad(x, (0, 0, radius, radius), mode="replicate")
        return F.conv2d(x, k.view(1, 1, -1, 1))

    def forward(self, readout: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = F.interpolate(readout, size=size, mode="bilinear", align_corners=False)
        x = self.blur(x)
        c = F.interpolate(self.log_centre[None, None], size=size, mode="bilinear", align_corners=False)
        x = x + self.centre_weight * c
        n = x.shape[0]
        return (x.view(n, -1) - torch.logsumexp(x.view(n, -1), dim=1, keepdim=True)).view_as(x)


class GazeModel(nn.Module):
    """Trunk (``layers`` run in order, ``taps`` their indices) + :class:`Readout` + :class:`Finalizer`.

    Shape:
        input ``N × 3 × H × W`` RGB in [0, 1]; output ``N × 1 × H × W`` log-density (nats).
    """

    def __init__(self, layers: Sequence[nn.Module], taps: Sequence[int], tap_channels: Sequence[int],
                 trunk_links: list[tuple[str, str | None, str | None]], mean: Sequence[float],
                 std: Sequence[float], name: str, weights_source: str = "",
                 hidden: Sequence[int] = READOUT_HIDDEN, sigma: float = 0.02,
                 readout_in: str | None = None) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.taps = [int(t) for t in taps]
        self.readout = Readout(sum(tap_channels), hidden)
        self.finalizer = Finalizer(sigma)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self._trunk_links = list(trunk_links)
        self.readout_in = readout_in
        self.name = name
        self.weights_source = weights_source

    def prune_links(self) -> list[tuple[str, str | None, str | None]]:
        """(layer, mask read, mask written) for every weight layer (trunk, then readout)."""
        return self._trunk_links + self.readout.links("readout.", self.readout_in)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.mean) / self.std
        feats = []
        last = max(self.taps)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.taps:
                feats.append(x)
            if i == last:
                break
        size = feats[0].shape[-2:]
        feats = [f if f.shape[-2:] == size else F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                 for f in feats]
        return torch.cat(feats, dim=1) if len(feats) > 1 else feats[0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.name} expects N×3×H×W RGB images in [0, 1], got {tuple(images.shape)}")
        return self.finalizer(self.readout(self.features(images)), tuple(images.shape[-2:]))


def _vgg11_layers(weights: WeightsArg, seed: int | None):
    vgg, source = _build_model("vgg11", weights, seed)
    feats = list(vgg.features.children())[:20]  # conv1_1 ... conv5_2 + ReLU (features.19)
    layers: list[nn.Module] = []
    links = []
    prev = None
    for m in feats:
        if isinstance(m, nn.ReLU):
            conv = layers[-1]
            mask = ChannelMask(conv.out_channels)
            idx = len(layers) - 1
            layers[-1] = nn.Sequential(conv, nn.ReLU(inplace=False), mask)
            name = f"layers.{idx}"
            links.append((f"{name}.0", prev, f"{name}.2"))
            prev = f"{name}.2"
        else:
            layers.append(m)
    return layers, links, prev, source


@register("fastgaze")
def fastgaze(weights: WeightsArg = None, seed: int | None = None, **kwargs) -> GazeModel:
    """FastGaze: VGG-11 to conv5_2 (512 maps, stride 16) + DeepGaze II readout and finalizer.

    ``weights``: ``None`` (random init) or a local torchvision VGG-11 state-dict file.
    """
    layers, links, last_mask, source = _vgg11_layers(weights, seed)
    # the readout reads conv5_2's (masked) maps
    return GazeModel(layers, [len(layers) - 1], [512], links, IMAGENET_MEAN, IMAGENET_STD, "fastgaze", source,
                     readout_in=last_mask, **kwargs)


@register("densegaze")
def densegaze(weights: WeightsArg = None, seed: int | None = None, **kwargs) -> GazeModel:
    """DenseGaze: DenseNet-121 to dense block 3 (1,024 maps, stride 16) + readout and finalizer.

    ``weights``: ``None`` (random init) or a local torchvision DenseNet-121 state-dict file.
    """
    net, source = _build_model("densenet121", weights, seed)
    f = net.features
    layers = [nn.Sequential(f.conv0, f.norm0, f.relu0, f.pool0), f.denseblock1, f.transition1, f.denseblock2,
              f.transition2, f.denseblock3]
    links: list[tuple[str, str | None, str | None]] = [("layers.0.0", None, None)]
    for li, block in ((1, f.denseblock1), (3, f.denseblock2), (5, f.denseblock3)):
        for lname, layer in block.named_children():
            layer.relu2 = nn.Sequential(nn.ReLU(inplace=False), ChannelMask(layer.conv1.out_channels))
            p = f"layers.{li}.{lname}"
            links += [(f"{p}.conv1", None, f"{p}.relu2.1"), (f"{p}.conv2", f"{p}.relu2.1", None)]
        if li < 5:
            links.append((f"layers.{li + 1}.conv", None, None))
    return GazeModel(layers, [5], [1024], links, IMAGENET_MEAN, IMAGENET_STD, "densegaze", source, **kwargs)


@register("gaze_lite0")
def gaze_lite0(weights: WeightsArg = "imagenet", seed: int | None = None, **kwargs) -> GazeModel:
    """EfficientNet-Lite0 (ImageNet weights, offline) read at blocks 4 and 6 + readout and finalizer."""
    net, source = _build_model("efficientnet_lite0", weights, seed)
    layers = [nn.Sequential(net.conv_stem, net.bn1)] + [net.blocks[i] for i in range(7)]
    links: list[tuple[str, str | None, str | None]] = [("layers.0.0", None, None)]
    for si in range(7):
        stage = net.blocks[si]
        for bi, block in enumerate(stage):
            p = f"layers.{si + 1}.{bi}"
            if hasattr(block, "conv_pwl"):
                block.aa = ChannelMask(block.conv_pw.out_channels)
                links += [(f"{p}.conv_pw", None, f"{p}.aa"), (f"{p}.conv_dw", f"{p}.aa", f"{p}.aa"),
                          (f"{p}.conv_pwl", f"{p}.aa", None)]
            else:  # the depthwise-separable first block (no expansion)
                links += [(f"{p}.conv_dw", None, None), (f"{p}.conv_pw", None, None)]
    return GazeModel(layers, [5, 7], [112, 320], links, TF_LITE_MEAN, TF_LITE_STD, "gaze_lite0", source, **kwargs)
