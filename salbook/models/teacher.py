"""The book's saliency teacher: a SalGAN-shaped decoder on a feature backbone (chapters 4 and 5).

FastSal's teacher is SalGAN's generator (:func:`salbook.models.fastsal.salgan_generator`), and
no SalGAN weights are available offline. The book's teacher is a network trained here that keeps
what the distillation needs from SalGAN — a decoder whose activations at 1/2, 1/4, 1/8 and 1/16
of the input have SalGAN's hint widths 128, 256, 512 and 512, so FastSal (C)'s adapters match
them one to one — on a **pretrained** encoder (EfficientNet-Lite0 with its ImageNet weights,
:mod:`salbook.models.backbones`), which the students cannot have offline.

:class:`SalGANShaped` (``N × 3 × H × W`` RGB in [0, 1], H and W multiples of 32 → logits
``N × 1 × H × W``), deep to shallow, ``up`` = nearest ×2 (as SalGAN), ``c3`` / ``c1`` = 3 × 3 /
1 × 1 convolution + bias + ReLU, ``⊕`` = concatenation with the backbone tap at that scale:

=====  ===============================================  =============================
scale  layers                                           output (hint)
=====  ===============================================  =============================
1/16   up(f32) ⊕ f16 → c3 → 512, c3 512 → 512           512 @ H/16  (``hints[3]``)
1/8    up ⊕ f8 → c3 → 512, c3 512 → 512, c3 512 → 512   512 @ H/8   (``hints[2]``)
1/4    up ⊕ f4 → c1 → 256                               256 @ H/4   (``hints[1]``)
1/2    up ⊕ f2 → c1 → 128                               128 @ H/2   (``hints[0]``)
out    conv 3 × 3 128 → 1 (+ bias), bilinear ×2         logits @ H
=====  ===============================================  =============================

SalGAN puts its decoder's weight at 1/16 and 1/8 (six 512-wide 3 × 3 convolutions) and so does
this one: five there, where dense convolutions run fastest on a CPU, and 1 × 1 convolutions at
the two fine scales (SalGAN's 3 × 3 convolutions at 1/4 … 1/1 would cost 11 GMACs more at
192 × 256 and take the teacher's training out of the book's budget). Unlike SalGAN the decoder
reads the backbone at every scale (U-Net skips, ``f2 … f32``), since the generated scenes put
fixations on small objects that a 1/32 code alone blurs away.

The same decoder on other encoders gives the paper's Table IV analogue (encoder comparison with a
SalGAN-shaped decoder): ``backbone="efficientnet_lite0"`` or ``"mobilenet_v2"``, pretrained or
random (:data:`BACKBONE_TAPS`).

Cost at 192 × 256 (:func:`salbook.cost.flops`, tested): Lite0 teacher 7.70 GMACs (15.4 GFLOPs),
12.5 × FastSal (C)'s 0.617 GMACs.

Builders (registered): ``fastsal_teacher`` (Lite0 with ImageNet weights), ``salgan_shaped``
(any backbone / weights).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import register
from .backbones import build_backbone

__all__ = ["BACKBONE_TAPS", "TEACHER_HINT_CHANNELS", "SalGANShaped", "fastsal_teacher", "salgan_shaped"]

#: Backbone taps at 1/2, 1/4, 1/8, 1/16, 1/32 of the input, per backbone (the last block of each
#: resolution; MobileNetV2's 320-channel ``features.17``, not the 1280-wide ``features.18``, so both
#: encoders hand the decoder 320 channels at 1/32).
BACKBONE_TAPS: dict[str, tuple[str, ...]] = {
    "efficientnet_lite0": ("blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"),
    "mobilenet_v2": ("features.1", "features.3", "features.6", "features.13", "features.17"),
}

#: Widths of the hint activations at 1/2, 1/4, 1/8, 1/16 (SalGAN's, FastSal (C)'s adapters).
TEACHER_HINT_CHANNELS: tuple[int, ...] = (128, 256, 512, 512)


def _relu_conv(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU(inplace=True))


class SalGANShaped(nn.Module):
    """A backbone and a SalGAN-shaped decoder with hint activations (see the module docstring).

    Args:
        backbone: ``"efficientnet_lite0"`` or ``"mobilenet_v2"``.
        weights: backbone weights: ``"imagenet"`` (Lite0 only, packaged), ``None`` (random) or a
            local state-dict path (:func:`salbook.models.backbones.build_backbone`).
        seed: seeds the random parts of the build (decoder, random backbone); restored afterwards.

    Attributes:
        encoder: the :class:`~salbook.models.backbones.FeatureBackbone` (its own input normalisation).
        stages: four ``Sequential`` decoder stages, deep to shallow (1/16, 1/8, 1/4, 1/2).
        head: conv 3 × 3 128 → 1 at 1/2.

    Shape:
        input ``N × 3 × H × W`` RGB in [0, 1] (H, W multiples of 32); output ``N × 1 × H × W`` logits
        (sigmoid → saliency map in (0, 1), the BCE target's scale).
    """

    def __init__(self, backbone: str = "efficientnet_lite0", weights: str | os.PathLike | None = "imagenet",
                 seed: int | None = None) -> None:
        super().__init__()
        if backbone not in BACKBONE_TAPS:
            raise ValueError(f"backbone must be one of {sorted(BACKBONE_TAPS)}, got {backbone!r}")
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.encoder = build_backbone(backbone, weights=weights, taps=list(BACKBONE_TAPS[backbone]))
            c2, c4, c8, c16, c32 = (self.encoder.channels[t] for t in BACKBONE_TAPS[backbone])
            w2, w4, w8, w16 = TEACHER_HINT_CHANNELS
            self.stages = nn.ModuleList([
                nn.Sequential(_relu_conv(c32 + c16, w16, 3), _relu_conv(w16, w16, 3)),
                nn.Sequential(_relu_conv(w16 + c8, w8, 3), _relu_conv(w8, w8, 3), _relu_conv(w8, w8, 3)),
                _relu_conv(w8 + c4, w4, 1),
                _relu_conv(w4 + c2, w2, 1),
            ])
            self.head = nn.Conv2d(w2, 1, 3, padding=1)
        self.backbone_name = backbone

    @property
    def weights_source(self) -> str:
        return self.encoder.weights_source

    def forward_with_hints(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and the four hint activations, shallow to deep.

        Shape:
            ``(N × 1 × H × W, [N × 128 × H/2 × W/2, N × 256 × H/4 × W/4, N × 512 × H/8 × W/8,
            N × 512 × H/16 × W/16])`` — the shapes of :meth:`salbook.models.fastsal.FastSalC.hints`.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{type(self).__name__} expects N×3×H×W RGB images in [0, 1], got {tuple(x.shape)}")
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(f"{type(self).__name__} needs H and W that are multiples of 32 (e.g. 96×128, "
                             f"192×256), got {x.shape[-2]}×{x.shape[-1]}")
        taps = list(self.encoder(self.encoder.normalize(x)).values())  # f2, f4, f8, f16, f32
        y = taps[4]
        hints: list[Tensor] = []
        for stage, skip in zip(self.stages, reversed(taps[:4])):
            y = F.interpolate(y, size=skip.shape[-2:], mode="nearest")
            y = stage(torch.cat([y, skip], dim=1))
            hints.append(y)
        logits = F.interpolate(self.head(y), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits, hints[::-1]

    def hints(self, x: Tensor) -> list[Tensor]:
        """The four hint activations (shallow to deep), as :meth:`forward_with_hints`."""
        return self.forward_with_hints(x)[1]

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_hints(x)[0]


@register("fastsal_teacher")
def fastsal_teacher(weights: str | os.PathLike | None = "imagenet", seed: int | None = None) -> SalGANShaped:
    """The book's teacher: ImageNet EfficientNet-Lite0 + SalGAN-shaped decoder (untrained decoder).

    The trained, cached teacher is :func:`salbook.recipes.fastsal.teacher`.
    """
    return SalGANShaped("efficientnet_lite0", weights=weights, seed=seed)


@register("salgan_shaped")
def salgan_shaped(backbone: str = "efficientnet_lite0", weights: str | os.PathLike | None = None,
                  seed: int | None = None) -> SalGANShaped:
    """A SalGAN-shaped decoder on ``backbone`` (Table IV's encoder comparison); random backbone by default."""
    return SalGANShaped(backbone, weights=weights, seed=seed)
