"""FastSal (Hu & McGuinness, ICPR 2020), both decoders, exactly as the official code builds them, and
its SalGAN teacher.

FastSal ("FastSal: a Computationally Efficient Network for Visual Saliency Prediction",
``feiyanhu/FastSal``) reads **all 18** intermediate outputs of a MobileNetV2 and decodes them with a
few hundred thousand parameters. Everything below was read from the official code (``model/
fastSal.py``, ``model/fastsal_generator.py``, ``model/adaptation_layer.py``, ``model/utils.py``);
shapes are for the official 192 × 256 input (H × W; any H, W that are multiples of 32 work).

**Encoder**: torchvision's ``mobilenet_v2().features`` (ImageNet weights in the official code; here
random unless ``weights=PATH`` names a local torchvision state dict). The outputs of
``features[1] … features[18]`` are tapped (``features[0]`` runs but is not tapped) and grouped by
resolution into four **multi-scale blocks**; every concatenation is moved up one octave by a
sub-pixel shuffle ``PS(2)`` (C channels at h × w → C/4 at 2h × 2w):

=====  ==========================================  ===================  =====================
block  features (channels)                         concatenated         block
=====  ==========================================  ===================  =====================
B1     [1] (16, H/2)  ⊕  PS(2)([2] ⊕ [3]: 24+24)   48 @ H/4 → 12 @ H/2  **28 @ H/2** (96×128)
B2     [4, 5, 6] (32 each)                         96 @ H/8             **24 @ H/4** (48×64)
B3     [7 … 13] (4 × 64 + 3 × 96)                  544 @ H/16           **136 @ H/8** (24×32)
B4     [14 … 18] (3 × 160 + 320 + 1280)            2080 @ H/32          **520 @ H/16** (12×16)
=====  ==========================================  ===================  =====================

(B1 is ``[1]`` first, then the shuffled ``[2] ⊕ [3]``; PS(2) takes input channels ``4c … 4c+3``
for output channel ``c``, so the concatenation order matters and is the official one.)

**FastSal (C)**, concatenation decoder (official ``generate_model9``): one **adapter** per block,
conv 1 × 1 (+ bias) → ReLU, to the widths of the SalGAN teacher's decoder (28 → 128, 24 → 256,
136 → 512, 520 → 512); each adapter output is up-sampled bilinearly (``align_corners=True``, after
its ReLU) to H/2 and the four are concatenated (1,408 @ H/2); the **merger** is PS(2) (→ 352 @ H)
and a 3 × 3 convolution 352 → 1 (+ bias), with **no** output activation (the official
``normalize='remove'``): the network returns **logits** at H × W. The adapters' outputs at their
native scales (128 @ H/2, 256 @ H/4, 512 @ H/8, 512 @ H/16) are the **hints** of the official
pretraining (:meth:`FastSalC.hints`), matched by MSE against the SalGAN teacher's activations
:data:`SALGAN_HINT_LAYERS` (:meth:`SalGANGenerator.forward_with_hints`;
:func:`salbook.distillation.hint_loss` sums the four MSEs). The official pretraining and
fine-tuning build *separate* adapters of the same widths: after pretraining only the encoder is
kept and the decoder is created afresh (``generate_model9`` with a ``state_dict``); with one
module here, call :meth:`FastSalC.reset_decoder` between the two stages to do the same.

**FastSal (A)**, addition decoder (official ``generate_model10``, class ``Shared_inverted_block``):
narrower adapters, conv 1 × 1 (+ bias) → ReLU, 28 → 8, 24 → 32, 136 → 128, 520 → 512 (no
up-sampling), then, deep to shallow, one modified inverted-residual block per level
(:class:`SharedInvertedBlock`; each level has its own, the name is the official class name):

=====  ====================================  ========================
level  computation                           output
=====  ====================================  ========================
4      f4 = PS(2)(S512(A4(B4)))              512 @ H/16 → 128 @ H/8
3      f3 = PS(2)(S128(A3(B3) + f4))         128 @ H/8 → 32 @ H/4
2      f2 = PS(2)(S32(A2(B2) + f3))          32 @ H/4 → 8 @ H/2
1      f1 = PS(2)(S8(A1(B1) + f2))           8 @ H/2 → 2 @ H
out    conv 3 × 3, 2 → 1 (+ bias)            logits 1 @ H × W
=====  ====================================  ========================

``S(c)`` wraps torchvision's ``InvertedResidual(c, c, stride=1, expand_ratio=2)`` (conv 1 × 1
c → 2c + BN + ReLU6, depthwise 3 × 3 + BN + ReLU6, conv 1 × 1 2c → c + BN; 4c² + 28c parameters).
That block already adds its identity skip (in = out, stride 1), and the official wrapper adds its
input once more, so with ``x' = x + previous`` the block returns **x' + IR(x') = 2·x' + F(x')**
(F: the convolution stack). We keep this **double skip** because the official code (and so the
published results) has it; the paper's Fig. 3 draws a single skip.

**Initialisation** (``init=``; the encoder keeps torchvision's init or the loaded weights):

* The adapters and the merger / output convolution: the official ``CNN_constructer`` draws every
  weight from N(0, 0.01²) and sets the biases to 0; ``adaptation_layers`` then re-initialises the
  weights whose parameter *name* contains ``"conv"`` with He-normal (std = √(2 / (k·k·C_in))) and
  the others with N(0, 0.01²). In the public code the layers are numbered (``layers.0.0.weight``),
  so the He branch never fires and the effective init is **N(0, 0.01²)** — ``init="official"``
  (default). The authors' checkpoints, however, were saved with names like ``layers.0.conv0.weight``
  (their ``load_weight`` strips the ``conv``), so the training-time modules were probably named
  ``convj`` and got **He-normal** — ``init="he"``. Which one produced the paper's numbers is
  unknown; both zero the biases.
* The blocks ``S(c)`` of model A (no ambiguity): every parameter named ``weight`` — the convolutions
  *and* the batch-norm scales γ — from N(0, 0.01²), every bias (BN β) 0. With γ ≈ 0.01 the
  residual branch F is tiny at init, so each block starts close to ``2·x'``.

**Parameters** (tested): encoder (MobileNetV2 ``features``, the unused ``features[0]`` included)
2,223,872; **FastSal (C) 2,574,049** = encoder + adapters 347,008 + merger 3,169; **FastSal (A)
3,646,715** = encoder + adapters 285,320 + blocks 1,137,504 + output 19. These are the paper's
2.57 M / 3.65 M. The hints of model C come from its own adapters, so they add nothing.

**Cost** at 192 × 256 (:func:`salbook.cost.flops`, convolutions only, measured and tested):
C 616,605,696 MACs (1.233 GFLOPs), A 638,330,880 MACs (1.277 GFLOPs); the encoder alone
293,382,144 MACs. The paper's "1.32 GFLOPs" for both is about 2 × MACs plus element-wise
operations; its counter is unknown. (The SalGAN teacher: 39.95 GMACs; the paper: 91.46 GFLOPs.)

**Input convention**: RGB images in [0, 1], ``N × 3 × H × W``; the models normalise them with the
ImageNet mean and std, as the official student's data loader does (``pytorch_normalze``).

**Post-processing** (:func:`fastsal_postprocess`): the official evaluation (``eval.py``) takes
``sigmoid(logits)``, resizes it to the original image size (``cv2.INTER_AREA``), min-maxes it,
blurs it with ``cv2.GaussianBlur(·, (5, 5), 0)`` and clips it to [0, 1]. With ``σ = 0`` and a 5 × 5
kernel OpenCV uses its fixed binomial kernel ``[1, 4, 6, 4, 1] / 16`` (σ = 1 pixel, not the
1.1 of its σ-from-size formula), with a reflect-101 border; :func:`opencv_blur_5x5` reproduces it
exactly. (For MIT1003 / MIT300 the official predictions feed portrait images at 256 × 192,
``generate_img.py``; the model runs at any size that is a multiple of 32.)

**SalGAN generator** (the teacher, official ``model/salgan_generator.py``): VGG-16 ``features[:30]``
(conv1_1 … relu5_3; pool 5 dropped) and a mirrored decoder — 3 × (conv 3 × 3 512 → 512 + ReLU),
nearest ×2, 3 × (512 → 512 + ReLU), ×2, 512 → 256, 2 × 256 → 256, ×2, 256 → 128, 128 → 128, ×2,
128 → 64, 64 → 64 (each + ReLU), conv 1 × 1 64 → 1, sigmoid — as one flat sequence of 62 modules
whose indices are the official ones (hints at 54, 49, 42, 35; output at 61) and whose state-dict
keys are the official checkpoint's (``"0.weight"`` … ``"60.bias"``). Parameters: VGG-16
convolutions 14,714,688 + decoder 17,072,321 = **31,787,009** (the FastSal paper's Table III says
31.92 M).

Builders (registered in :mod:`salbook.models`): ``fastsal_c``, ``fastsal_a``, ``salgan_generator``, and
``fastsal_c_lite0`` / ``fastsal_a_lite0``: the same decoders on EfficientNet-Lite0 with its packaged ImageNet
weights (:data:`LITE0_TAPS`, grouped by the same rule), the book's stand-in for the ImageNet MobileNetV2
that FastSal starts from and whose weights do not ship offline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.mobilenetv2 import InvertedResidual

from . import register
from .backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneWeightsError,
    FeatureBackbone,
    _load_checked,
    build_backbone,
)

__all__ = [
    "MOBILENET_TAPS",
    "BLOCK_GROUPS",
    "BLOCK_CHANNELS",
    "C_ADAPTER_WIDTHS",
    "A_ADAPTER_WIDTHS",
    "SALGAN_HINT_LAYERS",
    "SALGAN_CODE_LAYER",
    "SALGAN_HINT_CHANNELS",
    "CAFFE_BGR_MEAN",
    "LITE0_TAPS",
    "LITE0_BLOCK_GROUPS",
    "LITE0_BLOCK_CHANNELS",
    "ENCODERS",
    "MultiScaleEncoder",
    "FastSalC",
    "SharedInvertedBlock",
    "FastSalA",
    "SalGANGenerator",
    "opencv_blur_5x5",
    "fastsal_postprocess",
    "fastsal_density_postprocess",
    "fastsal_c",
    "fastsal_a",
    "fastsal_c_lite0",
    "fastsal_a_lite0",
    "salgan_generator",
]

#: The MobileNetV2 modules FastSal taps (official ``forward_hook_index=range(1, 19)``).
MOBILENET_TAPS: tuple[str, ...] = tuple(f"features.{i}" for i in range(1, 19))

#: Which ``features[i]`` form each multi-scale block (B1's ``[2], [3]`` are shuffled first).
BLOCK_GROUPS: tuple[tuple[int, ...], ...] = ((1, 2, 3), (4, 5, 6), tuple(range(7, 14)), tuple(range(14, 19)))

#: Channels of the four multi-scale blocks B1 … B4 (at H/2, H/4, H/8, H/16).
BLOCK_CHANNELS: tuple[int, ...] = (28, 24, 136, 520)

#: The EfficientNet-Lite0 variant's taps (timm ``tf_efficientnet_lite0`` node names), the same rule
#: as MobileNetV2's: every block output after the stem, and the head (conv 1 × 1 → 1,280, BN, ReLU6).
LITE0_TAPS: tuple[str, ...] = (
    "blocks.0.0", "blocks.1.0", "blocks.1.1", "blocks.2.0", "blocks.2.1",
    *(f"blocks.3.{i}" for i in range(3)), *(f"blocks.4.{i}" for i in range(3)),
    *(f"blocks.5.{i}" for i in range(4)), "blocks.6.0", "bn2",
)

#: Lite0's taps grouped by resolution as :data:`BLOCK_GROUPS` groups MobileNetV2's (B1: 16 @ H/2 ⊕
#: PS(2)(24 + 24 @ H/4); B2: PS(2)(40 + 40 @ H/8); B3: PS(2)(3 × 80 + 3 × 112 @ H/16); B4:
#: PS(2)(4 × 192 + 320 + 1,280 @ H/32)).
LITE0_BLOCK_GROUPS: tuple[tuple[int, ...], ...] = ((0, 1, 2), (3, 4), tuple(range(5, 11)), tuple(range(11, 17)))

#: Channels of the Lite0 variant's four blocks (B1 is MobileNetV2's 28; B2 … B4 differ).
LITE0_BLOCK_CHANNELS: tuple[int, ...] = (28, 20, 144, 592)

#: Adapter widths of FastSal (C): the widths of the SalGAN teacher's hint activations.
C_ADAPTER_WIDTHS: tuple[int, ...] = (128, 256, 512, 512)

#: Adapter widths of FastSal (A): each is 4 × the next shallower one, so PS(2) matches them.
A_ADAPTER_WIDTHS: tuple[int, ...] = (8, 32, 128, 512)

#: Indices (in :class:`SalGANGenerator`) of the teacher activations the hints match, shallow to
#: deep: the ReLUs after the 2nd 128-conv (H/2), the 3rd 256-conv (H/4), the 6th and the 3rd
#: 512-decoder conv (H/8, H/16). The official ``d0 … d3`` hooks, reversed as its loss reverses them.
SALGAN_HINT_LAYERS: tuple[int, ...] = (54, 49, 42, 35)

#: Channels of those activations.
SALGAN_HINT_CHANNELS: tuple[int, ...] = (128, 256, 512, 512)

#: Index of relu5_3, the end of the teacher's encoder (the official "code" hook; unused in losses).
SALGAN_CODE_LAYER: int = 29

#: Per-channel means (B, G, R) the Caffe-style teacher input subtracts from 0–255 BGR pixels.
CAFFE_BGR_MEAN: tuple[float, float, float] = (103.939, 116.779, 123.68)

InitName = Literal["official", "he"]
InputFormat = Literal["caffe", "imagenet"]

_OFFICIAL_STD = 0.01  # the N(0, 0.01²) of the official code


def _check_images(x: Tensor, multiple: int, who: str) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{who} expects N×3×H×W RGB images in [0, 1], got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(
            f"{who} needs H and W that are multiples of {multiple} (e.g. the official 192×256), got {h}×{w}"
        )


# --------------------------------------------------------------------------------------------
# Encoder
# --------------------------------------------------------------------------------------------


#: FastSal's encoders: backbone name → (taps, groups of tap indices per block, block channels).
ENCODERS: dict[str, tuple[tuple[str, ...], tuple[tuple[int, ...], ...], tuple[int, ...]]] = {
    "mobilenet_v2": (MOBILENET_TAPS, tuple(tuple(i - 1 for i in g) for g in BLOCK_GROUPS), BLOCK_CHANNELS),
    "efficientnet_lite0": (LITE0_TAPS, LITE0_BLOCK_GROUPS, LITE0_BLOCK_CHANNELS),
}


class MultiScaleEncoder(nn.Module):
    """A backbone's intermediate outputs grouped into FastSal's four multi-scale blocks.

    Args:
        weights: ``None`` (random init), a path to a local state dict of the *full* network
            (torchvision's ``mobilenet_v2``; timm's ``tf_efficientnet_lite0``), loaded strictly
            through :func:`salbook.models.backbones.build_backbone`, or ``"imagenet"`` for Lite0's
            packaged ImageNet weights; nothing is downloaded.
        backbone: ``"mobilenet_v2"`` (FastSal, :data:`MOBILENET_TAPS`) or ``"efficientnet_lite0"``
            (the book's pretrained substitute, :data:`LITE0_TAPS`, grouped by the same rule).

    Attributes:
        backbone: the :class:`~salbook.models.backbones.FeatureBackbone`; its ``normalize`` maps
            [0, 1] RGB to the statistics its weights expect.
        block_channels: channels of the four blocks.
        weights_source: where the weights came from.

    Shape:
        input ``N × 3 × H × W`` *normalised* images, H and W multiples of 32; output a list of four
        maps at H/2, H/4, H/8, H/16 with :attr:`block_channels` channels (MobileNetV2: 28, 24, 136,
        520; Lite0: 28, 20, 144, 592).
    """

    def __init__(self, weights: str | os.PathLike | None = None, backbone: str = "mobilenet_v2") -> None:
        super().__init__()
        if backbone not in ENCODERS:
            raise ValueError(f"unknown FastSal encoder {backbone!r}; choose one of {', '.join(ENCODERS)}")
        self.taps, self.groups, self.block_channels = ENCODERS[backbone]
        self.backbone: FeatureBackbone = build_backbone(backbone, weights=weights, taps=list(self.taps))
        self.shuffle = nn.PixelShuffle(2)

    @property
    def weights_source(self) -> str:
        return self.backbone.weights_source

    def normalize(self, x: Tensor) -> Tensor:
        """[0, 1] RGB to the backbone's input statistics."""
        return self.backbone.normalize(x)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = self.backbone(x)

        def cat(indices: Sequence[int]) -> Tensor:
            return torch.cat([features[self.taps[i]] for i in indices], dim=1)

        first, *shuffled = self.groups[0]
        b1 = torch.cat([cat([first]), self.shuffle(cat(shuffled))], dim=1)
        return [b1, *(self.shuffle(cat(indices)) for indices in self.groups[1:])]


def _adapter(in_channels: int, out_channels: int) -> nn.Sequential:
    """The official adaptation layer: conv 1 × 1 (+ bias) → ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.ReLU(inplace=True))


def _init_adaptation_conv(conv: nn.Conv2d, init: InitName) -> None:
    """Official init of an adapter / merger convolution: N(0, 0.01²) or He-normal (fan-in), bias 0."""
    if init == "official":
        nn.init.normal_(conv.weight, 0.0, _OFFICIAL_STD)
    elif init == "he":
        fan_in = conv.weight.shape[1] * conv.weight.shape[2] * conv.weight.shape[3]
        nn.init.normal_(conv.weight, 0.0, (2.0 / fan_in) ** 0.5)
    else:
        raise ValueError(f"unknown init {init!r}; use 'official' (N(0, 0.01²)) or 'he' (He-normal)")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _normalize_imagenet(x: Tensor) -> Tensor:
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


# --------------------------------------------------------------------------------------------
# FastSal (C)
# --------------------------------------------------------------------------------------------


class FastSalC(nn.Module):
    """FastSal (C): MobileNetV2 multi-scale blocks, four adapters, concatenation at H/2, PS(2), 3 × 3 conv.

    Args:
        weights: local torchvision MobileNetV2 state dict for the encoder, or ``None`` (random);
            with ``backbone="efficientnet_lite0"`` also ``"imagenet"`` (packaged weights).
        init: adapter / merger initialisation, ``"official"`` (N(0, 0.01²), what the public code
            does) or ``"he"`` (He-normal, what its checkpoint key names suggest); biases 0.
        backbone: ``"mobilenet_v2"`` (FastSal) or ``"efficientnet_lite0"`` (see
            :class:`MultiScaleEncoder`; the adapters take that encoder's block widths).

    Attributes:
        encoder: :class:`MultiScaleEncoder`.
        adapters: four ``Sequential(conv 1 × 1, ReLU)``: 28 → 128, 24 → 256, 136 → 512, 520 → 512.
        merger: ``Sequential(PixelShuffle(2), conv 3 × 3 352 → 1)``.
        weights_source: where the encoder's weights came from.

    Shape:
        input ``N × 3 × H × W``, RGB in [0, 1], H and W multiples of 32; output ``N × 1 × H × W``
        logits (apply a sigmoid, or :func:`fastsal_postprocess`, for a map in [0, 1]).
        2,574,049 parameters.
    """

    def __init__(self, weights: str | os.PathLike | None = None, init: InitName = "official",
                 backbone: str = "mobilenet_v2") -> None:
        super().__init__()
        self.encoder = MultiScaleEncoder(weights, backbone)
        self.adapters = nn.ModuleList(_adapter(c, w) for c, w in zip(self.encoder.block_channels, C_ADAPTER_WIDTHS))
        self.merger = nn.Sequential(nn.PixelShuffle(2), nn.Conv2d(sum(C_ADAPTER_WIDTHS) // 4, 1, 3, padding=1))
        self.init = init
        self.reset_decoder(init)

    @property
    def weights_source(self) -> str:
        return self.encoder.weights_source

    def reset_decoder(self, init: InitName | None = None) -> None:
        """Re-initialise the adapters and the merger (``None``: the constructor's ``init``).

        The official recipe does this between hint pretraining and fine-tuning: only the encoder
        carries over. Draws from torch's global generator.
        """
        if init is not None:
            self.init = init
        for module in [*self.adapters, self.merger]:
            for layer in module:
                if isinstance(layer, nn.Conv2d):
                    _init_adaptation_conv(layer, self.init)

    def hints(self, x: Tensor) -> list[Tensor]:
        """The four adapter outputs at their native scales, for the hint loss against the teacher.

        Shape:
            input as :meth:`forward`; output ``[N × 128 × H/2 × W/2, N × 256 × H/4 × W/4,
            N × 512 × H/8 × W/8, N × 512 × H/16 × W/16]`` (non-negative: after the ReLU), matching
            :meth:`SalGANGenerator.forward_with_hints` at the same input size.
        """
        _check_images(x, 32, type(self).__name__)
        blocks = self.encoder(self.encoder.normalize(x))
        return [adapter(block) for adapter, block in zip(self.adapters, blocks)]

    def forward(self, x: Tensor) -> Tensor:
        hints = self.hints(x)
        size = tuple(hints[0].shape[-2:])  # H/2 × W/2
        up = [hints[0]] + [F.interpolate(h, size=size, mode="bilinear", align_corners=True) for h in hints[1:]]
        return self.merger(torch.cat(up, dim=1))


# --------------------------------------------------------------------------------------------
# FastSal (A)
# --------------------------------------------------------------------------------------------


class SharedInvertedBlock(nn.Module):
    """FastSal (A)'s modified inverted residual, with the official **double skip**.

    ``forward(x, previous)`` computes ``x' = x + previous`` (``previous`` optional) and returns
    ``x' + IR(x')``, where ``IR`` is torchvision's ``InvertedResidual(c, c, 1, expand_ratio)``,
    which itself returns ``x' + F(x')``; so the output is **2·x' + F(x')**. This is what the
    official ``Shared_inverted_block`` computes; the paper's Fig. 3 shows one skip.

    Args:
        channels: ``c``, channels in and out.
        expand_ratio: hidden channels ``expand_ratio · c`` (FastSal: 2).

    Attributes:
        inv_block: the torchvision block (the official attribute name, so checkpoint keys match).

    Shape:
        input ``N × c × h × w`` (and ``previous`` of the same shape); output the same shape.
        ``4c² + 28c`` parameters at ``expand_ratio=2``.
    """

    def __init__(self, channels: int, expand_ratio: int = 2) -> None:
        super().__init__()
        self.inv_block = InvertedResidual(int(channels), int(channels), 1, int(expand_ratio))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official init: every ``weight`` (convolutions and BN γ) from N(0, 0.01²), biases (BN β) 0."""
        for name, param in self.named_parameters():
            if name.endswith("weight"):
                nn.init.normal_(param, 0.0, _OFFICIAL_STD)
            elif name.endswith("bias"):
                nn.init.zeros_(param)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()

    def forward(self, x: Tensor, previous: Tensor | None = None) -> Tensor:
        if previous is not None:
            x = x + previous
        return x + self.inv_block(x)  # inv_block adds x itself: 2·x + F(x)


class FastSalA(nn.Module):
    """FastSal (A): MobileNetV2 multi-scale blocks, narrow adapters, an additive top-down path.

    Args:
        weights: as :class:`FastSalC`.
        init: initialisation of the adapters and the output convolution (as :class:`FastSalC`);
            the blocks always get their own (unambiguous) official init.
        backbone: as :class:`FastSalC`.

    Attributes:
        encoder: :class:`MultiScaleEncoder` (same structure as :class:`FastSalC`'s, so a
            hint-pretrained encoder transfers: ``a.encoder.load_state_dict(c.encoder.state_dict())``;
            the official model A is not pretrained on its own).
        adapters: four ``Sequential(conv 1 × 1, ReLU)``: 28 → 8, 24 → 32, 136 → 128, 520 → 512.
        blocks: ``[S8, S32, S128, S512]`` (:class:`SharedInvertedBlock`), shallow to deep (the
            official ``adp1 … adp4``).
        output: conv 3 × 3, 2 → 1 (+ bias), no activation.

    Shape:
        input ``N × 3 × H × W``, RGB in [0, 1], H and W multiples of 32; output ``N × 1 × H × W``
        logits. 3,646,715 parameters.
    """

    def __init__(self, weights: str | os.PathLike | None = None, init: InitName = "official",
                 backbone: str = "mobilenet_v2") -> None:
        super().__init__()
        self.encoder = MultiScaleEncoder(weights, backbone)
        self.adapters = nn.ModuleList(_adapter(c, w) for c, w in zip(self.encoder.block_channels, A_ADAPTER_WIDTHS))
        self.blocks = nn.ModuleList(SharedInvertedBlock(w, expand_ratio=2) for w in A_ADAPTER_WIDTHS)
        self.shuffle = nn.PixelShuffle(2)
        self.output = nn.Conv2d(A_ADAPTER_WIDTHS[0] // 4, 1, 3, padding=1)
        self.init = init
        self.reset_decoder(init)

    @property
    def weights_source(self) -> str:
        return self.encoder.weights_source

    def reset_decoder(self, init: InitName | None = None) -> None:
        """Re-initialise adapters, blocks and output convolution (``None``: the constructor's ``init``)."""
        if init is not None:
            self.init = init
        for adapter in self.adapters:
            _init_adaptation_conv(adapter[0], self.init)
        _init_adaptation_conv(self.output, self.init)
        for block in self.blocks:
            block.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        _check_images(x, 32, type(self).__name__)
        blocks = self.encoder(self.encoder.normalize(x))
        adapted = [adapter(block) for adapter, block in zip(self.adapters, blocks)]
        f = self.shuffle(self.blocks[3](adapted[3]))
        for level in (2, 1, 0):
            f = self.shuffle(self.blocks[level](adapted[level], f))
        return self.output(f)


# --------------------------------------------------------------------------------------------
# SalGAN generator (the teacher)
# --------------------------------------------------------------------------------------------


def _salgan_layers() -> list[nn.Module]:
    """The 62 modules of the official SalGAN generator, in order (VGG-16 ``features[:30]`` + decoder)."""
    from torchvision.models.vgg import cfgs, make_layers

    encoder = list(make_layers(cfgs["D"]).children())[:30]
    for module in encoder:  # torchvision's VGG initialisation
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    decoder: list[nn.Module] = []
    widths = [(512, 512), (512, 512), (512, 512), "U", (512, 512), (512, 512), (512, 512), "U",
              (512, 256), (256, 256), (256, 256), "U", (256, 128), (128, 128), "U", (128, 64), (64, 64)]
    for item in widths:
        if item == "U":
            decoder.append(nn.Upsample(scale_factor=2, mode="nearest"))
        else:
            decoder += [nn.Conv2d(item[0], item[1], 3, padding=1), nn.ReLU()]
    decoder += [nn.Conv2d(64, 1, 1), nn.Sigmoid()]
    return encoder + decoder


class SalGANGenerator(nn.Sequential):
    """SalGAN's generator as FastSal uses it (teacher): one flat sequence of 62 modules.

    Indices and state-dict keys are the official ones (``0.weight`` … ``60.bias``), so an official
    checkpoint's ``state_dict`` loads as is. Encoder: torchvision VGG-16 ``features[:30]``
    (torchvision's init); decoder convolutions: PyTorch's default init (the official code builds
    them fresh and always loads trained weights).

    Args:
        input_format: how [0, 1] RGB inputs are mapped to the network's input. ``"caffe"``
            (official teacher input, for SalGAN weights converted from the original Caffe/Lasagne
            VGG): ×255, RGB → BGR, minus :data:`CAFFE_BGR_MEAN`. ``"imagenet"``: ImageNet mean/std
            (for an encoder initialised from torchvision's VGG-16).

    Shape:
        input ``N × 3 × H × W``, RGB in [0, 1], H and W multiples of 16; output ``N × 1 × H × W``
        saliency in (0, 1) (after the sigmoid). 31,787,009 parameters.
    """

    def __init__(self, input_format: InputFormat = "caffe") -> None:
        super().__init__(*_salgan_layers())
        if input_format not in ("caffe", "imagenet"):
            raise ValueError(f"input_format must be 'caffe' or 'imagenet', got {input_format!r}")
        self.input_format: InputFormat = input_format
        self.weights_source = "random init"

    @property
    def encoder(self) -> nn.Sequential:
        """The VGG-16 part (modules 0–29) as a sequence sharing this model's modules."""
        return nn.Sequential(*list(self)[:30])

    def normalize(self, x: Tensor) -> Tensor:
        """Map RGB ``N × 3 × H × W`` in [0, 1] to this network's input (see ``input_format``)."""
        if self.input_format == "imagenet":
            return _normalize_imagenet(x)
        return x.flip(1) * 255.0 - x.new_tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1)

    def forward_with_hints(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The saliency map and the four hint activations :data:`SALGAN_HINT_LAYERS`.

        Shape:
            output ``(N × 1 × H × W, [N × 128 × H/2 × W/2, N × 256 × H/4 × W/4,
            N × 512 × H/8 × W/8, N × 512 × H/16 × W/16])``.
        """
        _check_images(x, 16, type(self).__name__)
        x = self.normalize(x)
        taken: dict[int, Tensor] = {}
        for index, layer in enumerate(self):
            x = layer(x)
            if index in SALGAN_HINT_LAYERS:
                taken[index] = x
        return x, [taken[i] for i in SALGAN_HINT_LAYERS]

    def forward(self, x: Tensor) -> Tensor:
        _check_images(x, 16, type(self).__name__)
        x = self.normalize(x)
        for layer in self:
            x = layer(x)
        return x


def _read_checkpoint(path: str | os.PathLike) -> dict[str, Tensor]:
    """A state dict from a local file, unwrapping an official ``{"state_dict": …}`` checkpoint."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist (or is not a file)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and runtime errors alike
        raise BackboneWeightsError(
            f"weights file {str(path)!r} is not a PyTorch file torch.load can read with weights_only=True: "
            f"{type(err).__name__}: {err}"
        ) from err
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in loaded.items()
    ):
        raise BackboneWeightsError(
            f"weights file {str(path)!r} holds neither a state dict nor a {{'state_dict': …}} checkpoint"
        )
    return dict(loaded)


# --------------------------------------------------------------------------------------------
# Post-processing
# --------------------------------------------------------------------------------------------


def opencv_blur_5x5(x: Tensor) -> Tensor:
    """``cv2.GaussianBlur(x, (5, 5), 0)`` on maps ``… × h × w`` (h, w ≥ 3).

    OpenCV takes its fixed kernel for a 5-tap blur with σ = 0: the binomial ``[1, 4, 6, 4, 1] / 16``
    (variance 1 pixel²) in each direction, and pads with ``BORDER_REFLECT_101`` (``… 2 1 | 0 1 2 …``,
    PyTorch's ``"reflect"``).
    """
    shape = x.shape
    y = x.reshape(-1, 1, *shape[-2:])
    kernel = y.new_tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    y = F.pad(y, (2, 2, 2, 2), mode="reflect")
    y = F.conv2d(F.conv2d(y, kernel.view(1, 1, 1, 5)), kernel.view(1, 1, 5, 1))
    return y.reshape(shape)


def fastsal_postprocess(logits: Tensor, size: Sequence[int] | None = None) -> Tensor:
    """The official evaluation's post-processing of FastSal logits, per map.

    ``sigmoid`` → (resize to ``size``) → min-max to [0, 1] → :func:`opencv_blur_5x5` → clip to [0, 1].

    Args:
        logits: ``… × h × w`` (e.g. an ``h × w`` map, as :func:`salbook.evaluation.evaluate` passes
            its ``postprocess``, or the model's ``N × 1 × h × w`` output).
        size: ``(H, W)`` of the original image. Given, the map is resized *before* min-max and blur,
            the official order (``eval.py``), with bilinear interpolation (antialiased when
            shrinking, :func:`salbook.maps.resize_tensor`'s rule) instead of ``cv2.INTER_AREA``.
            ``None`` (for the harness): everything happens at the model's resolution.

    Returns:
        float32 maps ``… × H × W`` (or ``… × h × w``) in [0, 1]; a constant map becomes zeros.

    With ``postprocess=fastsal_postprocess`` the evaluation harness resizes *after* the
    post-processing (its documented rule), so two things differ from the official evaluation:
    the 5 × 5 blur acts on the 192 × 256 grid instead of the original image's (relative to the
    image it is ``original / 192`` times wider, 2.5× for SALICON's 480 × 640), and min-max comes
    before the resize. The second does not change AUC, NSS or CC (invariant to affine rescaling);
    the first slightly changes every metric. For the exact official order, call this with
    ``size`` per image and score the results at that size (the harness then resizes nothing).
    """
    return _finish_map(torch.sigmoid(logits.detach().float()), size, "fastsal_postprocess")


def fastsal_density_postprocess(logits: Tensor, size: Sequence[int] | None = None) -> Tensor:
    """:func:`fastsal_postprocess` with ``softmax`` over each map's pixels in place of the sigmoid.

    The pseudo-label loss (:func:`salbook.distillation.pseudo_label_loss`) fits ``softmax(z)`` to the
    teacher's density with its KL and cosine terms (0.7 of its weight) and ``σ(z)`` with its BCE
    term: this reads out the first. Same shapes and output range as :func:`fastsal_postprocess`.
    """
    z = logits.detach().float()
    if z.dim() < 2:
        raise ValueError(f"fastsal_density_postprocess expects maps … × h × w, got shape {tuple(z.shape)}")
    p = torch.softmax(z.flatten(-2), dim=-1).reshape(z.shape)
    return _finish_map(p, size, "fastsal_density_postprocess")


def _finish_map(p: Tensor, size: Sequence[int] | None, who: str) -> Tensor:
    """Resize (optional), min-max and blur maps ``p`` (``… × h × w``, non-negative) as the official evaluation."""
    shape = p.shape
    if p.dim() < 2:
        raise ValueError(f"{who} expects maps … × h × w, got shape {tuple(shape)}")
    p = p.reshape(-1, 1, *shape[-2:])
    if size is not None:
        size = (int(size[0]), int(size[1]))
        if tuple(p.shape[-2:]) != size:
            p = F.interpolate(p, size=size, mode="bilinear", align_corners=False, antialias=True)
    flat = p.flatten(1)
    lo, hi = flat.amin(dim=1).view(-1, 1, 1, 1), flat.amax(dim=1).view(-1, 1, 1, 1)
    span = hi - lo
    p = torch.where(span > 0, (p - lo) / span.clamp_min(torch.finfo(p.dtype).tiny), torch.zeros_like(p))
    p = opencv_blur_5x5(p).clamp(0.0, 1.0)
    return p.reshape(*shape[:-2], *p.shape[-2:])


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's generator for a build (when ``seed`` is given) and restore it afterwards."""
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def _note_seed(model: FastSalC | FastSalA, weights: object, seed: int | None) -> None:
    """Record the build's seed in ``weights_source`` (the backbone itself was built unseeded)."""
    if weights is None and seed is not None:
        model.encoder.backbone.weights_source = f"random init (seed {seed})"


@register("fastsal_c")
def fastsal_c(weights: str | os.PathLike | None = None, init: InitName = "official",
              seed: int | None = None) -> FastSalC:
    """FastSal (C), concatenation decoder: 2,574,049 parameters, logits at the input size.

    ``weights``: a local torchvision MobileNetV2 state dict for the encoder (``None``: random);
    ``init``: ``"official"`` or ``"he"`` for the adapters and merger; ``seed`` seeds the whole build.
    """
    with _seeded(seed):
        model = FastSalC(weights=weights, init=init)
    _note_seed(model, weights, seed)
    return model


@register("fastsal_a")
def fastsal_a(weights: str | os.PathLike | None = None, init: InitName = "official",
              seed: int | None = None) -> FastSalA:
    """FastSal (A), addition decoder with the official double skip: 3,646,715 parameters.

    Arguments as :func:`fastsal_c`.
    """
    with _seeded(seed):
        model = FastSalA(weights=weights, init=init)
    _note_seed(model, weights, seed)
    return model


@register("fastsal_c_lite0")
def fastsal_c_lite0(weights: str | os.PathLike | None = "imagenet", init: InitName = "official",
                    seed: int | None = None) -> FastSalC:
    """FastSal (C)'s decoder on EfficientNet-Lite0 (ImageNet weights by default: the book's pretrained
    substitute for FastSal's ImageNet MobileNetV2, whose weights do not ship offline): 3,761,121 parameters
    (0.706 GMACs at 192 × 256).

    Arguments as :func:`fastsal_c`; ``weights`` is ``"imagenet"``, ``None`` or a local timm state dict.
    """
    with _seeded(seed):
        model = FastSalC(weights=weights, init=init, backbone="efficientnet_lite0")
    _note_seed(model, weights, seed)
    return model


@register("fastsal_a_lite0")
def fastsal_a_lite0(weights: str | os.PathLike | None = "imagenet", init: InitName = "official",
                    seed: int | None = None) -> FastSalA:
    """FastSal (A)'s decoder on EfficientNet-Lite0 (ImageNet weights by default; see
    :func:`fastsal_c_lite0`): 4,831,611 parameters (0.728 GMACs at 192 × 256)."""
    with _seeded(seed):
        model = FastSalA(weights=weights, init=init, backbone="efficientnet_lite0")
    _note_seed(model, weights, seed)
    return model


@register("salgan_generator")
def salgan_generator(vgg16_weights: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
                     input_format: InputFormat = "caffe", seed: int | None = None) -> SalGANGenerator:
    """SalGAN's generator (FastSal's teacher): 31,787,009 parameters, a sigmoid map at the input size.

    Args:
        vgg16_weights: a local torchvision VGG-16 state dict; its 26 ``features.*`` tensors fill
            modules 0–29 (then pass ``input_format="imagenet"``).
        weights: a local state dict of the *whole* generator in the official keys (``0.weight`` …
            ``60.bias``), bare or wrapped as ``{"state_dict": …}`` like the official checkpoint;
            loaded strictly after ``vgg16_weights``.
        input_format: ``"caffe"`` (official teacher input) or ``"imagenet"``; see
            :class:`SalGANGenerator`.
        seed: seeds the random init (restored afterwards).

    Raises:
        FileNotFoundError, salbook.models.backbones.BackboneWeightsError: a weights file is missing,
            unreadable or does not fit (the error lists missing, unexpected and mis-shaped keys).
    """
    from .mlnet import load_vgg16_features

    with _seeded(seed):
        model = SalGANGenerator(input_format=input_format)
    model.weights_source = "random init" if seed is None else f"random init (seed {seed})"
    if vgg16_weights is not None:
        model.weights_source = f"VGG-16 encoder: {load_vgg16_features(model.encoder, vgg16_weights)}"
    if weights is not None:
        _load_checked(model, _read_checkpoint(weights), f"SalGAN generator weights file {str(weights)!r}")
        model.weights_source = f"local file {os.fspath(weights)}"
    return model
