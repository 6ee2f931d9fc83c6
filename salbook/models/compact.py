"""The compact saliency model of the "compact model and PCA" paper (its Table 1), and two ablations.

The paper builds a small fully convolutional network to show that saliency needs little of a
classification network's capacity: two plain 3 × 3 convolutions, thirteen MobileNetV2
bottlenecks with expansion 4, three 2 × 2 max-pools placed early, and a 1 × 1 convolution to one
channel. The output has 1/8 of the input's height and width; the evaluation resizes it to the
ground truth.

Table 1, row by row (``k`` kernel, ``s`` stride, ``p`` padding; every bottleneck k 3, s 1, p 1):

======================  ====  =====
operator                in    out
======================  ====  =====
conv2d 3 × 3            3     32
conv2d 3 × 3            32    32
max-pool 2 × 2, s 2
bottleneck × 2          32    16, 16
max-pool 2 × 2, s 2
bottleneck × 3          16    24, 24, 24
max-pool 2 × 2, s 2
bottleneck × 8          24    32, 32, 32, 32, 64, 64, 128, 128
conv2d 1 × 1            128   1
======================  ====  =====

What the table leaves open, and what we chose (each choice is a constructor argument):

* **Plain convolutions**: biased, each followed by batch norm and ReLU6 (MobileNetV2's
  activation). The bias before batch norm is redundant, but the count below includes it.
* **Bottleneck** (MobileNetV2's inverted residual, Sandler et al. 2018): 1 × 1 expansion to
  ``4 × in`` channels + BN + ReLU6, depthwise 3 × 3 (stride 1, padding 1) + BN + ReLU6, linear
  1 × 1 projection to ``out`` + BN; bias-free convolutions; an identity shortcut when
  ``in == out`` (MobileNetV2 adds one whenever the shapes allow). The paper sets the expansion to 4
  for *every* bottleneck, the first included (MobileNetV2 uses 1 there).
* **Output**: a biased 1 × 1 convolution 128 → 1 with no activation: the network returns one
  logit per output cell. The recipe (:mod:`salbook.recipes.saliency`) reads the map as a
  probability distribution (softmax over the cells).
* **Pools**: floor-mode 2 × 2 max-pools, so inputs whose sides are multiples of 8 give exactly
  ``H/8 × W/8``.

With these choices the network has **313,873** parameters (our count; the paper gives none), for
any input size.

Builders (registered in :mod:`salbook.models`):

``compact``
    The network of Table 1 (313,873 parameters).
``compact_late_pool``
    Ablation of the *early pooling* claim: the same layers, with each max-pool moved one block
    later (after bottlenecks 1, 3 and 6 instead of after conv 2 and bottlenecks 2 and 5), so the
    first bottleneck — whose expansion holds 128 channels — runs at full resolution and
    bottlenecks 3 and 6 at twice the resolution. Same parameters, same 1/8 output.
``compact_plain``
    Ablation of the *depthwise bottleneck* claim: each bottleneck replaced by a plain 3 × 3
    convolution ``in → out`` (bias-free) + BN + ReLU6, same widths and pools (343,409 parameters).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from . import register

__all__ = [
    "TABLE1_BOTTLENECKS",
    "EARLY_POOLS",
    "LATE_POOLS",
    "Bottleneck",
    "CompactSaliency",
    "compact",
    "compact_late_pool",
    "compact_plain",
]

#: (in, out) channels of the 13 bottlenecks of Table 1, in order.
TABLE1_BOTTLENECKS: tuple[tuple[int, int], ...] = (
    (32, 16), (16, 16),
    (16, 24), (24, 24), (24, 24),
    (24, 32), (32, 32), (32, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128),
)

#: Where Table 1 puts the max-pools: after how many bottlenecks (0 = right after the two plain
#: convolutions). Pool after the stem, after bottleneck 2, after bottleneck 5.
EARLY_POOLS: tuple[int, ...] = (0, 2, 5)

#: The "pool later" ablation: every pool one block later (after bottlenecks 1, 3 and 6).
LATE_POOLS: tuple[int, ...] = (1, 3, 6)

BlockKind = Literal["bottleneck", "plain"]


class Bottleneck(nn.Module):
    """MobileNetV2's inverted residual with stride 1: expand (1 × 1), depthwise 3 × 3, project (1 × 1).

    Args:
        in_channels, out_channels: channels in and out.
        expansion: hidden channels = ``expansion × in_channels`` (the paper: 4).
        residual: add the input to the output; only possible when ``in == out`` (default: then).

    Shape:
        input ``N × in × H × W``; output ``N × out × H × W``.
    """

    def __init__(self, in_channels: int, out_channels: int, expansion: int = 4, residual: bool | None = None) -> None:
        super().__init__()
        if int(expansion) < 1:
            raise ValueError(f"expansion must be a positive integer, got {expansion!r}")
        hidden = int(in_channels) * int(expansion)
        self.use_residual = (in_channels == out_channels) if residual is None else bool(residual)
        if self.use_residual and in_channels != out_channels:
            raise ValueError(f"a residual needs in == out channels, got {in_channels} → {out_channels}")
        self.expand = nn.Sequential(nn.Conv2d(in_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                                    nn.ReLU6(inplace=True))
        self.depthwise = nn.Sequential(nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False),
                                       nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.use_residual else y


def _plain_block(in_channels: int, out_channels: int, bias: bool) -> nn.Sequential:
    """3 × 3 convolution (stride 1, padding 1) + BN + ReLU6."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(inplace=True),
    )


class CompactSaliency(nn.Module):
    """The compact network of Table 1, with the block type and pool positions as options.

    Args:
        stem: output channels of the two plain 3 × 3 convolutions (Table 1: 32, 32).
        blocks: (in, out) channels of the bottlenecks (Table 1: :data:`TABLE1_BOTTLENECKS`).
        pools: after how many blocks each 2 × 2 max-pool comes (0: right after the stem);
            Table 1: :data:`EARLY_POOLS`.
        block: ``"bottleneck"`` (inverted residuals) or ``"plain"`` (3 × 3 conv + BN + ReLU6).
        expansion: bottleneck expansion ratio (the paper: 4).
        stem_bias: biases in the two plain convolutions (our count assumes them).
        output_bias: a bias in the final 1 × 1 convolution.

    Shape:
        input ``N × 3 × H × W`` (RGB in [0, 1]; no normalisation, the network is trained from
        scratch and its first batch norm absorbs the scale); output ``N × 1 × H/2^p × W/2^p``
        logits, ``p = len(pools)`` (floor division at every pool; 1/8 for Table 1).
    """

    def __init__(
        self,
        *,
        stem: Sequence[int] = (32, 32),
        blocks: Sequence[tuple[int, int]] = TABLE1_BOTTLENECKS,
        pools: Sequence[int] = EARLY_POOLS,
        block: BlockKind = "bottleneck",
        expansion: int = 4,
        stem_bias: bool = True,
        output_bias: bool = True,
    ) -> None:
        super().__init__()
        if block not in ("bottleneck", "plain"):
            raise ValueError(f"block must be 'bottleneck' or 'plain', got {block!r}")
        if not stem:
            raise ValueError("the stem needs at least one convolution")
        blocks = [(int(i), int(o)) for i, o in blocks]
        if any(not 0 <= int(p) <= len(blocks) for p in pools):
            raise ValueError(f"pool positions must lie in 0..{len(blocks)} (blocks done before the pool), got {list(pools)}")
        channels = [int(stem[-1]), *(o for _, o in blocks)]
        for k, (i, o) in enumerate(blocks):
            if i != channels[k]:
                raise ValueError(f"block {k + 1} takes {i} channels but receives {channels[k]}")
        self.pools = tuple(sorted(int(p) for p in pools))
        self.block_kind: BlockKind = block
        self.reduction = 2 ** len(self.pools)

        layers: "OrderedDict[str, nn.Module]" = OrderedDict()
        c_in = 3
        for k, width in enumerate(stem, start=1):
            layers[f"conv{k}"] = _plain_block(c_in, int(width), bias=stem_bias)
            c_in = int(width)
        n_pool = 0
        for done in range(len(blocks) + 1):
            for _ in range(self.pools.count(done)):
                n_pool += 1
                layers[f"pool{n_pool}"] = nn.MaxPool2d(2, stride=2)
            if done < len(blocks):
                i, o = blocks[done]
                layers[f"block{done + 1}"] = (Bottleneck(i, o, expansion) if block == "bottleneck"
                                              else _plain_block(i, o, bias=False))
        self.features = nn.Sequential(layers)
        self.readout = nn.Conv2d(channels[-1], 1, 1, bias=output_bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal (fan-out) convolution weights, zero biases, BN weight 1 / bias 0 (torchvision's
        MobileNetV2 initialisation), and a **zero** output convolution: the untrained network
        predicts a uniform map (equal logits), instead of logits of several units that the first
        training steps would spend shrinking (the residual sums of the bottlenecks grow the
        features' scale). Draws from torch's global generator: seed it first."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.readout.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``N × 3 × H × W`` to logit maps ``N × 1 × H/8 × W/8`` (for Table 1's pools)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{type(self).__name__} expects N×3×H×W images, got shape {tuple(x.shape)}")
        if x.shape[-2] < self.reduction or x.shape[-1] < self.reduction:
            raise ValueError(f"{type(self).__name__} needs inputs of at least {self.reduction}×{self.reduction} "
                             f"pixels (it pools {len(self.pools)} times), got {tuple(x.shape[-2:])}")
        return self.readout(self.features(x))


@register("compact")
def compact(**kwargs) -> CompactSaliency:
    """The compact model of Table 1 (313,873 parameters). Keyword arguments override
    :class:`CompactSaliency`'s."""
    return CompactSaliency(**kwargs)


@register("compact_late_pool")
def compact_late_pool(**kwargs) -> CompactSaliency:
    """Table 1 with every max-pool one stage later (:data:`LATE_POOLS`); 313,873 parameters."""
    return CompactSaliency(**{"pools": LATE_POOLS, **kwargs})


@register("compact_plain")
def compact_plain(**kwargs) -> CompactSaliency:
    """Table 1 with plain 3 × 3 convolutions (+ BN + ReLU6) instead of bottlenecks; 343,409 parameters."""
    return CompactSaliency(**{"block": "plain", **kwargs})
