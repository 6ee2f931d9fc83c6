"""CSNet and the generalized OctConv (gOctConv) of Gao et al., "Highly Efficient Salient Object
Detection with 100K Parameters" (ECCV 2020), as the official code builds them.

Every operator, width and quirk follows the authors' code (``ShangHua-Gao/SOD100K``,
``CSNet/model/csnet.py`` and ``model/conv2d.py``; see ``official-code-facts.md`` §2). The module
names (``stage0`` … ``stage4``, ``conv1x1``, ``conv3x3_1``, ``bns``, ``prelus``, ``oct_fuse``,
``cls_layer`` …) are the official ones too, so state-dict keys read the same.

Multi-scale features are **lists of tensors**, one per scale: entry ``i`` holds the channels of
scale ``i`` at ``1/2^i`` of the resolution of entry 0 (scale 0 = the highest resolution). A scale
whose width is 0 (pruned away, or a ``1/0`` split) is ``None``.

Building blocks
---------------
:class:`Conv2dX100`
    An ordinary bias-free convolution whose weight is multiplied by **100** in the forward pass
    (the official "for faster convergence"). Used wherever the official code uses it: a
    single-scale :class:`GOctaveCBR`, every depthwise convolution and every dilated convolution of
    the CSF head. The multi-scale :class:`GOctConv` is *not* scaled.
:class:`GOctConv`
    One ``C_out × C_in × k × k`` weight; the block ``(out scale j, in scale i)`` of it maps scale
    ``i`` to scale ``j``. Stride 2 = a 2 × 2 **average** pool of every input first; ``i == j``: conv;
    ``i < j`` (high → low): 2^(j−i) **max** pool, then conv; ``i > j`` (low → high): conv at the low
    resolution, then **bilinear** up-sampling by 2^(i−j) (``align_corners=False``); the outputs of a
    scale are summed.
:class:`GOctaveCBR`
    gOctConv (or :class:`Conv2dX100` when one scale goes in and one comes out) + per-scale BN +
    per-channel PReLU (init 0.25).
:class:`SimplifiedGOctConvBR`
    The paper's "simplified" gOctConv: per scale, independently, a depthwise 3 × 3
    :class:`Conv2dX100` + BN + PReLU (no exchange between scales).
:class:`ILBlock`
    gOctaveCBR (3 × 3 for the stem and stride-2 blocks, else 1 × 1) → two simplified gOctConvs.
    **No residual connection.**
:class:`CSFHead`
    Cross-stage fusion: a 1 × 1 gOctaveCBR over the last outputs of stages 2, 3, 4 (as scales 0, 1,
    2; about a third of each side's channels), per scale an :class:`MSBlock` (parallel 3 × 3
    :class:`Conv2dX100` with dilations 1, 2, 4, 8, 16, concatenated, BN, PReLU), and a 1 × 1
    gOctaveCBR from the three scales to one at ``H/2``.
:class:`CSNet`
    A stem ILBlock and 3, 4, 6, 4 ILBlocks (stages 1–4; stages 2–4 start with stride 2 and end with
    a single-scale block), the CSF head, a biased 1 × 1 classifier to one channel at ``H/2``, and a
    bilinear resize to the input size. The output are **logits** (the official loss is BCE with
    logits).

Width specifications
--------------------
A CSNet is built from a JSON-friendly *width specification* — the keyword arguments of
:class:`CSNet` — that lists the channels of every scale of every unit (the official
``layer_config``, without its redundant input widths). ``model.width_spec()`` returns it and
``CSNet(**spec)`` (or :func:`csnet_from_spec`, the ``rebuild_model`` of :func:`salbook.train.fit`)
rebuilds the same module, pruned or not::

    {"blocks": [[10, 10], [10, 10], ..., [80]],      # 18 ILBlocks: output channels per scale
     "csf_fuse": [13, 26, 26],                        # CSF fuse: output channels per scale
     "csf_ms": [[2, 2, 2, 2, 5], [5, 5, 5, 5, 6], [5, 5, 5, 5, 6]],   # per scale, per dilation
     "csf_out": 65,                                   # CSF fuse1x1 output channels (one scale)
     "stages": [3, 4, 6, 4], "dilations": [1, 2, 4, 8, 16], "num_classes": 1}

Counts (parameters as the official code builds them; tested). FLOPs at 224 × 224 in the official
convention (:func:`official_flops`; the second figure reproduces the official script's channel
truncation) and convolution MACs alone (``salbook.cost.flops``):

===========  ==========  =========  ===================  =========  ============
model        parameters  extractor  official FLOPs       conv MACs  paper
===========  ==========  =========  ===================  =========  ============
CSNet ×1     210,985     179,420    0.6106 G / 0.6106 G  0.433 G    211K, 0.61 G
CSNet ×2     788,631     660,440    1.8723 G / 1.8710 G  1.516 G    788K, 1.87 G
CSNet-L ×1   93,647      74,260     0.4355 G / 0.4354 G  0.284 G    94K, 0.43 G
CSNet-L ×2   140,894     108,289    0.7184 G / 0.7167 G  0.496 G    140K, 0.72 G
===========  ==========  =========  ===================  =========  ============

The split ratios of the paper's Table 1 (``C_H/C_L`` = 1/0, 3/1, 5/5, 1/3, 0/1; ``split=``) change
where the channels live, not how many there are: every split of ×1 has the same 210,985
parameters. Their official FLOPs at 224 × 224 are 0.918, 0.780, 0.611, 0.467 and 0.350 G (the
paper's CSNet rows: 0.91, 0.78, 0.61, 0.47, 0.35 G).

Builders (registered in :mod:`salbook.models`): ``csnet`` (any ``width``, ``split``),
``csnet_x1``, ``csnet_x2``, ``csnet_l_x1``, ``csnet_l_x2``.

Inference helpers
-----------------
:func:`init_bn_statistics` gives a freshly built network finite eval-mode outputs (its untrained
running statistics cannot undo the ×100 and the logits overflow to inf/NaN otherwise).
:func:`fuse_for_inference` returns a copy with BN and the ×100 folded into the weights and each
gOctConv's branch convolutions merged into one convolution per resolution level
(:class:`FusedCBR`), equal to the source in eval mode up to float rounding (tested).
:class:`PlainConvNet` / :func:`plain_convnet_matching` build a plain 3 × 3 convolution network
with a given number of MACs, the run-time-per-FLOP reference of chapter 6. Training, sparsity
and pruning live in :mod:`salbook.pruning.slimming` and :mod:`salbook.recipes.csnet`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch
import torch.nn.functional as F
from torch import nn

from . import register

__all__ = [
    "BASE_WIDTH",
    "STAGES",
    "DILATIONS",
    "TABLE1_SPLITS",
    "Conv2dX100",
    "GOctConv",
    "GOctaveCBR",
    "SimplifiedGOctConvBR",
    "ILBlock",
    "MSBlock",
    "PallMSBlock",
    "CSFHead",
    "CSNet",
    "default_width_spec",
    "released_width_spec",
    "csnet_from_spec",
    "OfficialFlops",
    "official_flops",
    "csnet",
    "csnet_x1",
    "csnet_x2",
    "csnet_l_x1",
    "csnet_l_x2",
    "init_bn_statistics",
    "fuse_for_inference",
    "FusedCBR",
    "FusedDepthwiseBR",
    "FusedMSBlock",
    "PlainConvNet",
    "plain_convnet_matching",
]

#: Base width of CSNet ×1 (channels of the stem and of stage 1); ×k uses ``round(20 k)``.
BASE_WIDTH = 20
#: ILBlocks per stage (stages 1–4), after the stem block.
STAGES: tuple[int, ...] = (3, 4, 6, 4)
#: Dilations of the parallel convolutions of an :class:`MSBlock`.
DILATIONS: tuple[int, ...] = (1, 2, 4, 8, 16)
#: The high/low split ratios ``C_H/C_L`` of the paper's Table 1 (the default is 5/5).
TABLE1_SPLITS: dict[str, tuple[int, int]] = {"1/0": (1, 0), "3/1": (3, 1), "5/5": (5, 5), "1/3": (1, 3), "0/1": (0, 1)}

#: Multi-scale features: one tensor (``N × C_i × H/2^i × W/2^i``) or ``None`` per scale.
Scales = list[Union[torch.Tensor, None]]


def _as_scales(x: torch.Tensor | Sequence[torch.Tensor | None]) -> Scales:
    return [x] if isinstance(x, torch.Tensor) else list(x)


def _widths(values: Sequence[int], what: str) -> list[int]:
    out = [int(v) for v in values]
    if not out or any(v < 0 or v != float(w) for v, w in zip(out, values)):
        raise ValueError(f"{what} must be a non-empty list of non-negative integers, got {list(values)!r}")
    return out


def _check_input(module: nn.Module, xs: Scales, widths: Sequence[int]) -> None:
    if len(xs) != len(widths):
        raise ValueError(f"{type(module).__name__} expects {len(widths)} scales, got {len(xs)}")
    for i, (x, c) in enumerate(zip(xs, widths)):
        if (x is None) != (c == 0):
            raise ValueError(f"{type(module).__name__}: scale {i} has width {c} but got "
                             f"{'None' if x is None else 'a tensor'}")
        if x is not None and x.shape[1] != c:
            raise ValueError(f"{type(module).__name__}: scale {i} expects {c} channels, got {x.shape[1]}")


# --------------------------------------------------------------------------------------------
# primitive operators


class Conv2dX100(nn.Conv2d):
    """A convolution whose weight is multiplied by :attr:`scale` = 100 in the forward pass.

    The official ``Conv2dX100`` ("for faster convergence"): same parameters and initialisation as
    :class:`~torch.nn.Conv2d` (Kaiming-uniform, ``a = √5``; bias-free by default), but the layer
    computes ``conv(x, 100 · weight)``. The map it can represent is unchanged; what changes is
    training: the gradient on ``weight`` is 100 times larger, so an optimiser step moves the
    *effective* weight ``100 · weight`` 100 (Adam) to 10,000 (SGD) times further, and an L2 weight
    decay on ``weight`` acts on the effective weight with 1/100² of its strength.

    Shape:
        as :class:`~torch.nn.Conv2d`: ``N × C_in × H × W`` → ``N × C_out × H' × W'``.
    """

    scale: float = 100.0

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, groups: int = 1, bias: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)

    @property
    def effective_weight(self) -> torch.Tensor:
        """The weight the convolution applies: ``scale · weight``."""
        return self.scale * self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.effective_weight, self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", scale={self.scale:g}"


class GOctConv(nn.Module):
    """Generalized OctConv: a convolution between any number of input and output scales.

    One weight ``W`` of shape ``sum(out_channels) × sum(in_channels) × k × k`` (no bias, no ×100;
    Kaiming-uniform with ``a = √5`` over the whole tensor, as the official code). Its block
    ``W[rows of out scale j, columns of in scale i]`` carries scale ``i`` to scale ``j``:

    * ``stride == 2``: every input scale is first average-pooled 2 × 2, stride 2;
    * ``i == j``: convolution (stride 1, ``padding``);
    * ``i < j`` (high → low resolution): max pool with kernel = stride = 2^(j−i), then convolution;
    * ``i > j`` (low → high): convolution at the low resolution, then bilinear up-sampling by
      2^(i−j) (``align_corners=False``);
    * output scale ``j`` is the sum over ``i``. Pairs with a zero-width side are skipped; an output
      scale that receives nothing is ``None``.

    Args:
        in_channels: channels per input scale (0 = the scale is absent and its input is ``None``).
        out_channels: channels per output scale.
        kernel_size: square kernel size ``k`` (1 or 3 in CSNet).
        stride: 1 or 2 (2 = average pool first, as above).
        padding: zero padding of every convolution, in pixels.

    Shape:
        input: a list with one entry per input scale, ``N × in_channels[i] × H/2^i × W/2^i`` (or
        ``None`` for width 0); a single tensor is read as a one-scale list. Output: a list with
        ``N × out_channels[j] × H'/2^j × W'/2^j``, ``H' = H/stride``, for ``k = 2·padding + 1``.
        Scale ``i`` must be exactly ``2^i`` times smaller than scale 0 (sides divisible by
        ``2^(number of scales − 1)``), or the summed terms differ in size.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], kernel_size: int = 1,
                 stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"gOctConv supports stride 1 or 2, got {stride!r}")
        self.in_channels = _widths(in_channels, "in_channels")
        self.out_channels = _widths(out_channels, "out_channels")
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.padding = int(padding)
        self.weight = nn.Parameter(torch.empty(sum(self.out_channels), sum(self.in_channels),
                                               self.kernel_size, self.kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform (``a = √5``, PyTorch's default for convolutions), as the official code."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    @staticmethod
    def _offsets(widths: Sequence[int]) -> list[int]:
        out = [0]
        for w in widths:
            out.append(out[-1] + w)
        return out

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor | None]) -> Scales:
        xs = _as_scales(x)
        _check_input(self, xs, self.in_channels)
        cols, rows = self._offsets(self.in_channels), self._offsets(self.out_channels)
        sums: Scales = [None] * len(self.out_channels)
        for i, xi in enumerate(xs):
            if xi is None:
                continue
            if self.stride == 2:
                xi = F.avg_pool2d(xi, 2, stride=2)
            for j, width in enumerate(self.out_channels):
                if width == 0:
                    continue
                w = self.weight[rows[j]:rows[j + 1], cols[i]:cols[i + 1]]
                if i < j:  # high -> low: max pool, then conv
                    f = 2 ** (j - i)
                    y = F.conv2d(F.max_pool2d(xi, f, stride=f), w, None, 1, self.padding)
                elif i > j:  # low -> high: conv, then bilinear up-sampling
                    y = F.conv2d(xi, w, None, 1, self.padding)
                    y = F.interpolate(y, scale_factor=float(2 ** (i - j)), mode="bilinear", align_corners=False)
                else:
                    y = F.conv2d(xi, w, None, 1, self.padding)
                sums[j] = y if sums[j] is None else sums[j] + y
        return sums

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}")


def _bn_prelu(widths: Sequence[int]) -> tuple[nn.ModuleList, nn.ModuleList]:
    """Per-scale BatchNorm2d and per-channel PReLU (``None`` for a zero-width scale)."""
    bns = nn.ModuleList([nn.BatchNorm2d(c) if c else None for c in widths])
    prelus = nn.ModuleList([nn.PReLU(c) if c else None for c in widths])
    return bns, prelus


class GOctaveCBR(nn.Module):
    """gOctConv + BatchNorm + PReLU per output scale (the official ``gOctaveCBR``).

    With one input scale and one output scale the convolution is a :class:`Conv2dX100` (×100);
    otherwise a :class:`GOctConv` (not scaled).

    Args:
        in_channels, out_channels: channels per scale (see :class:`GOctConv`).
        kernel_size: 1 or 3; ``padding = kernel_size // 2``.
        stride: 1 or 2.

    Shape:
        as :class:`GOctConv` (always returns a list).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], kernel_size: int = 1,
                 stride: int = 1) -> None:
        super().__init__()
        self.in_channels = _widths(in_channels, "in_channels")
        self.out_channels = _widths(out_channels, "out_channels")
        padding = int(kernel_size) // 2
        self.std_conv = len(self.in_channels) == 1 and len(self.out_channels) == 1
        if self.std_conv:
            self.conv: nn.Module = Conv2dX100(self.in_channels[0], self.out_channels[0], kernel_size,
                                              stride=stride, padding=padding)
        else:
            self.conv = GOctConv(self.in_channels, self.out_channels, kernel_size, stride=stride, padding=padding)
        self.bns, self.prelus = _bn_prelu(self.out_channels)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor | None]) -> Scales:
        xs = _as_scales(x)
        if self.std_conv:
            _check_input(self, xs, self.in_channels)
            ys: Scales = [self.conv(xs[0])]
        else:
            ys = self.conv(xs)
        return [None if y is None else prelu(bn(y)) for y, bn, prelu in zip(ys, self.bns, self.prelus)]


class SimplifiedGOctConvBR(nn.Module):
    """The simplified gOctConv + BN + PReLU: per scale, a depthwise 3 × 3 :class:`Conv2dX100`
    (padding 1), BatchNorm and PReLU; scales do not exchange information.

    Args:
        channels: channels per scale (0 = absent scale).

    Shape:
        a list of ``N × channels[i] × H_i × W_i`` (``None`` for width 0) → same shapes.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.channels = _widths(channels, "channels")
        self.convs = nn.ModuleList([Conv2dX100(c, c, 3, padding=1, groups=c) if c else None for c in self.channels])
        self.bns, self.prelus = _bn_prelu(self.channels)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor | None]) -> Scales:
        xs = _as_scales(x)
        _check_input(self, xs, self.channels)
        return [None if xi is None else prelu(bn(conv(xi)))
                for xi, conv, bn, prelu in zip(xs, self.convs, self.bns, self.prelus)]


# --------------------------------------------------------------------------------------------
# blocks


class ILBlock(nn.Module):
    """In-layer multi-scale block: gOctaveCBR → simplified gOctConv → simplified gOctConv.

    There is **no residual connection** (as in the official code). ``conv1x1`` is where widths
    change and scales mix; it is a 3 × 3 convolution (padding 1) for the stem block and for
    stride-2 blocks, a 1 × 1 convolution otherwise.

    Args:
        in_channels: channels per input scale.
        out_channels: channels per output scale.
        stride: 1 or 2 (2 halves every scale's resolution).
        first: the stem block (3 × 3 ``conv1x1`` at stride 1).

    Shape:
        a list of ``N × in_channels[i] × H/2^i × W/2^i`` → a list of
        ``N × out_channels[j] × H'/2^j × W'/2^j``, ``H' = H / stride``.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], stride: int = 1,
                 first: bool = False) -> None:
        super().__init__()
        kernel = 3 if first or stride == 2 else 1
        self.stride = int(stride)
        self.conv1x1 = GOctaveCBR(in_channels, out_channels, kernel, stride=stride)
        self.conv3x3_1 = SimplifiedGOctConvBR(out_channels)
        self.conv3x3_2 = SimplifiedGOctConvBR(out_channels)

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor | None]) -> Scales:
        return self.conv3x3_2(self.conv3x3_1(self.conv1x1(x)))


class MSBlock(nn.Module):
    """Parallel dilated 3 × 3 :class:`Conv2dX100` (padding = dilation), concatenated, BN, PReLU.

    Args:
        in_channels: input channels.
        dil_channels: output channels of the convolution of each dilation (0 = that branch is
            absent); the block outputs ``sum(dil_channels)`` channels.
        dilations: one dilation per entry of ``dil_channels`` (official: 1, 2, 4, 8, 16).

    Shape:
        ``N × in_channels × H × W`` → ``N × sum(dil_channels) × H × W``.
    """

    def __init__(self, in_channels: int, dil_channels: Sequence[int], dilations: Sequence[int] = DILATIONS) -> None:
        super().__init__()
        self.dil_channels = _widths(dil_channels, "dil_channels")
        self.dilations = [int(d) for d in dilations]
        if len(self.dilations) != len(self.dil_channels):
            raise ValueError(f"one width per dilation: {self.dil_channels} vs {self.dilations}")
        out = sum(self.dil_channels)
        if out == 0 or in_channels <= 0:
            raise ValueError("an MSBlock needs input channels and at least one output channel")
        self.msconv = nn.ModuleList([Conv2dX100(in_channels, c, 3, padding=d, dilation=d) if c else None
                                     for c, d in zip(self.dil_channels, self.dilations)])
        self.bn = nn.BatchNorm2d(out)
        self.prelu = nn.PReLU(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([conv(x) for conv in self.msconv if conv is not None], dim=1)
        return self.prelu(self.bn(y))


class PallMSBlock(nn.Module):
    """One :class:`MSBlock` per scale (``None`` where a scale has no output channel).

    Args:
        in_channels: channels per input scale.
        dil_channels: per scale, the per-dilation output channels of its MSBlock.
        dilations: the dilations of every MSBlock.

    Shape:
        a list of ``N × in_channels[i] × H_i × W_i`` → a list of ``N × sum(dil_channels[i]) × H_i × W_i``.
    """

    def __init__(self, in_channels: Sequence[int], dil_channels: Sequence[Sequence[int]],
                 dilations: Sequence[int] = DILATIONS) -> None:
        super().__init__()
        self.in_channels = _widths(in_channels, "in_channels")
        if len(dil_channels) != len(self.in_channels):
            raise ValueError(f"one dilation-width list per scale: {len(dil_channels)} vs {len(self.in_channels)}")
        self.out_channels = [sum(_widths(d, "dil_channels")) for d in dil_channels]
        for c_in, c_out in zip(self.in_channels, self.out_channels):
            if c_out and not c_in:
                raise ValueError("an MSBlock with output channels needs input channels")
        self.convs = nn.ModuleList([MSBlock(c_in, d, dilations) if c_out else None
                                    for c_in, c_out, d in zip(self.in_channels, self.out_channels, dil_channels)])

    def forward(self, x: Sequence[torch.Tensor | None]) -> Scales:
        xs = _as_scales(x)
        _check_input(self, xs, self.in_channels)
        return [None if (m is None or xi is None) else m(xi) for xi, m in zip(xs, self.convs)]


class CSFHead(nn.Module):
    """Cross-stage fusion: gOctaveCBR 1 × 1 (three scales in, three out), an MSBlock per scale,
    gOctaveCBR 1 × 1 to a single scale.

    Args:
        in_channels: channels of the three stage outputs (stage 2, 3, 4; scales 0, 1, 2).
        fuse_channels: outputs of the first gOctaveCBR per scale.
        dil_channels: per scale, the per-dilation outputs of its MSBlock.
        out_channels: outputs of the last gOctaveCBR (scale 0).
        dilations: MSBlock dilations.

    Shape:
        ``[N × c2 × H/2 × W/2, N × c3 × H/4 × W/4, N × c4 × H/8 × W/8]`` → ``[N × out_channels × H/2 × W/2]``.
    """

    def __init__(self, in_channels: Sequence[int], fuse_channels: Sequence[int],
                 dil_channels: Sequence[Sequence[int]], out_channels: int, dilations: Sequence[int] = DILATIONS) -> None:
        super().__init__()
        self.fuse = GOctaveCBR(in_channels, fuse_channels, 1)
        self.ms = PallMSBlock(fuse_channels, dil_channels, dilations)
        self.fuse1x1 = GOctaveCBR(self.ms.out_channels, [out_channels], 1)

    def forward(self, x: Sequence[torch.Tensor | None]) -> Scales:
        return self.fuse1x1(self.ms(self.fuse(x)))


# --------------------------------------------------------------------------------------------
# the network


class CSNet(nn.Module):
    """CSNet: a stem ILBlock, four stages of ILBlocks, the CSF head and a 1 × 1 classifier.

    Args (all JSON-friendly; :meth:`width_spec` returns them, ``CSNet(**spec)`` rebuilds):
        blocks: output channels per scale of every ILBlock, stem first (``1 + sum(stages)``
            entries). The stem and stage 1 run at the input resolution, stage ``s ≥ 2`` at
            ``1/2^(s−1)`` of it (its first block has stride 2); the last blocks of stages 2, 3 and
            4 must have one scale (they feed the CSF head).
        csf_fuse: CSF fuse outputs per scale (three scales).
        csf_ms: per CSF scale, the output channels of each dilation of its MSBlock.
        csf_out: CSF output channels (one scale, ``H/2``).
        stages: ILBlocks per stage (official: 3, 4, 6, 4).
        dilations: MSBlock dilations (official: 1, 2, 4, 8, 16).
        num_classes: classifier outputs (1).

    Shape:
        input ``N × 3 × H × W``, H and W multiples of :attr:`size_multiple` (16 for the official
        layouts: every scale must halve exactly); output ``N × num_classes × H × W`` logits.

    A freshly built network gives non-finite logits in eval mode: with untrained running
    statistics (mean 0, variance 1) nothing undoes the ×100 of the depthwise convolutions, the
    activations grow about 10³× per block and float32 overflows in stage 3. In training mode
    (batch statistics), or once the running statistics have seen a few training batches, the
    output is finite. Parameter and FLOP counts are unaffected.
    """

    def __init__(self, blocks: Sequence[Sequence[int]], csf_fuse: Sequence[int], csf_ms: Sequence[Sequence[int]],
                 csf_out: int, stages: Sequence[int] = STAGES, dilations: Sequence[int] = DILATIONS,
                 num_classes: int = 1) -> None:
        super().__init__()
        self._spec = _normalised_spec(blocks, csf_fuse, csf_ms, csf_out, stages, dilations, num_classes)
        spec = self._spec
        stages, blocks = spec["stages"], spec["blocks"]
        self.stages = list(stages)

        widths: list[int] = [3]
        ends: list[int] = []
        index = 0
        multiple = 8  # the CSF head: stage 4 at H/8
        for s, count in enumerate([1, *stages]):  # s = 0 is the stem "stage"
            level = max(0, s - 1)  # resolution of the stage's scale 0: 1/2^level
            layers = nn.ModuleList()
            for b in range(count):
                stride = 2 if (s >= 2 and b == 0) else 1
                out = blocks[index]
                layers.append(ILBlock(widths, out, stride=stride, first=(s == 0)))
                multiple = max(multiple, 2 ** (level + len(out) - 1), 2 ** (level + len(widths) - 1))
                widths = out
                index += 1
            setattr(self, f"stage{s}", layers)
            ends.append(sum(widths))
        self.size_multiple = multiple
        self.oct_fuse = CSFHead(ends[2:], spec["csf_fuse"], spec["csf_ms"], spec["csf_out"], spec["dilations"])
        self.cls_layer = nn.Conv2d(spec["csf_out"], spec["num_classes"], kernel_size=1)

    def width_spec(self) -> dict[str, Any]:
        """The JSON-friendly width specification (a fresh copy): ``CSNet(**spec)`` rebuilds this
        architecture (same state-dict keys and shapes)."""
        return copy.deepcopy(self._spec)

    def extractor_stages(self) -> list[nn.ModuleList]:
        """The feature extractor (Table 1's "Extractor"): the stem and the four stages."""
        return [getattr(self, f"stage{s}") for s in range(len(self.stages) + 1)]

    def forward_features(self, x: torch.Tensor) -> list[Scales]:
        """The outputs of the stem and of stages 1–4 (lists of scales)."""
        outs: list[Scales] = []
        y: torch.Tensor | Scales = x
        for stage in self.extractor_stages():
            for block in stage:
                y = block(y)
            outs.append(y)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``N × 3 × H × W`` → saliency logits ``N × num_classes × H × W``."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"CSNet expects N×3×H×W images, got shape {tuple(x.shape)}")
        m = self.size_multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"CSNet needs height and width divisible by {m} (each scale halves the "
                             f"resolution exactly), got {tuple(x.shape[-2:])}")
        feats = self.forward_features(x)
        fused = self.oct_fuse([feats[2][0], feats[3][0], feats[4][0]])
        out = self.cls_layer(fused[0])
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _normalised_spec(blocks: Sequence[Sequence[int]], csf_fuse: Sequence[int], csf_ms: Sequence[Sequence[int]],
                     csf_out: int, stages: Sequence[int], dilations: Sequence[int],
                     num_classes: int) -> dict[str, Any]:
    """Check a width specification and return it as plain lists of ints."""
    stages_l = _widths(stages, "stages")
    if len(stages_l) != 4 or min(stages_l) < 1:
        raise ValueError(f"CSNet has four stages of at least one block, got {stages_l}")
    blocks_l = [_widths(b, f"blocks[{k}]") for k, b in enumerate(blocks)]
    if len(blocks_l) != 1 + sum(stages_l):
        raise ValueError(f"{1 + sum(stages_l)} blocks (stem + stages {stages_l}) expected, got {len(blocks_l)}")
    for k, b in enumerate(blocks_l):
        if sum(b) == 0:
            raise ValueError(f"block {k} has no channel left")
    end = 1
    for s, count in enumerate(stages_l, start=1):
        end += count
        if s >= 2 and len(blocks_l[end - 1]) != 1:
            raise ValueError(f"the last block of stage {s} (block {end - 1}) feeds the CSF head and must "
                             f"have one scale, got {blocks_l[end - 1]}")
    fuse = _widths(csf_fuse, "csf_fuse")
    if len(fuse) != 3:
        raise ValueError(f"the CSF head fuses three scales, got csf_fuse={fuse}")
    dil = _widths(dilations, "dilations")
    ms = [_widths(d, f"csf_ms[{k}]") for k, d in enumerate(csf_ms)]
    if len(ms) != 3 or any(len(d) != len(dil) for d in ms):
        raise ValueError(f"csf_ms needs 3 lists of {len(dil)} widths (one per dilation), got {ms}")
    if int(csf_out) < 1 or int(num_classes) < 1:
        raise ValueError("csf_out and num_classes must be positive")
    return {"blocks": blocks_l, "csf_fuse": fuse, "csf_ms": ms, "csf_out": int(csf_out),
            "stages": stages_l, "dilations": dil, "num_classes": int(num_classes)}


# --------------------------------------------------------------------------------------------
# width specifications


def _split_ratio(split: str | Sequence[float]) -> list[float]:
    if isinstance(split, str):
        split = TABLE1_SPLITS[split] if split in TABLE1_SPLITS else [float(v) for v in split.split("/")]
    ratio = [float(v) for v in split]
    if not ratio or min(ratio) < 0 or sum(ratio) <= 0:
        raise ValueError(f"a split is a list of non-negative shares, e.g. (5, 5) or '3/1', got {split!r}")
    return [v / sum(ratio) for v in ratio]


def default_width_spec(width: float = 1.0, split: str | Sequence[float] = "5/5") -> dict[str, Any]:
    """The unpruned CSNet ×``width`` (the official ``init_layers``) with scale shares ``split``.

    Base width ``b = round(20 · width)``; stem and stage 1: ``b`` channels, stage 2: ``2b``,
    stages 3 and 4: ``4b``, split over the scales by ``split`` (rounded half to even, as
    ``np.round``); the last blocks of stages 2, 3, 4 are single-scale. CSF: fuse ``2b // 3``,
    ``4b // 3``, ``4b // 3``; each MSBlock gives ``c // 5`` channels to dilations 1–8 and the rest
    to 16; the fuse1x1 outputs the sum of the three.

    Args:
        width: the channel multiplier (×1: 210,985 parameters, ×2: 788,631). The official
            ``build_model`` only expands (a width below 1 gives ×1 there); here it also shrinks.
        split: the high/low shares ``C_H/C_L`` of the multi-scale blocks: a Table 1 name
            (``"1/0"``, ``"3/1"``, ``"5/5"``, ``"1/3"``, ``"0/1"``) or shares such as ``(3, 1)``;
            more than two shares give more scales.
    """
    if width <= 0:
        raise ValueError(f"width must be positive, got {width!r}")
    b = int(round(BASE_WIDTH * width))
    ratio = _split_ratio(split)

    def multi(c: int) -> list[int]:
        return [int(round(c * r)) for r in ratio]

    blocks: list[list[int]] = [multi(b)]                                     # stem
    blocks += [multi(b) for _ in range(STAGES[0])]                            # stage 1
    blocks += [multi(2 * b) for _ in range(STAGES[1] - 1)] + [[2 * b]]        # stage 2
    blocks += [multi(4 * b) for _ in range(STAGES[2] - 1)] + [[4 * b]]        # stage 3
    blocks += [multi(4 * b) for _ in range(STAGES[3] - 1)] + [[4 * b]]        # stage 4
    fuse = [2 * b // 3, 4 * b // 3, 4 * b // 3]
    n = len(DILATIONS)
    ms = [[c // n] * (n - 1) + [c - (c // n) * (n - 1)] for c in fuse]
    return {"blocks": blocks, "csf_fuse": fuse, "csf_ms": ms, "csf_out": sum(fuse), "stages": list(STAGES),
            "dilations": list(DILATIONS), "num_classes": 1}


# The released learned widths (pickled ``layer_config``s of ``CSNet/checkpoints/csnet-L-x{1,2}``):
# output channels per scale of the 18 ILBlocks, then CSF fuse, per-dilation MSBlock widths, output.
_RELEASED: dict[str, dict[str, Any]] = {
    "x1": {
        "blocks": [[8, 10], [9, 10], [10, 10], [10, 10], [19, 13], [19, 17], [20, 12], [34], [24, 21], [26, 27],
                   [22, 18], [19, 18], [23, 18], [38], [18, 29], [25, 24], [26, 20], [50]],
        "csf_fuse": [12, 24, 24],
        "csf_ms": [[1, 2, 2, 2, 4], [1, 4, 4, 4, 5], [2, 2, 4, 5, 4]],
        "csf_out": 60,
    },
    "x2": {
        "blocks": [[13, 10], [13, 12], [18, 11], [18, 12], [28, 21], [34, 22], [31, 29], [51], [23, 26], [27, 26],
                   [25, 20], [17, 21], [19, 25], [38], [18, 31], [31, 27], [26, 44], [64]],
        "csf_fuse": [17, 38, 32],
        "csf_ms": [[2, 1, 2, 2, 1], [0, 6, 6, 7, 5], [0, 1, 3, 7, 7]],
        "csf_out": 79,
    },
}


def released_width_spec(variant: str = "x1") -> dict[str, Any]:
    """The learned widths of the released CSNet-L ×1 (``"x1"``) or ×2 (``"x2"``) checkpoints."""
    if variant not in _RELEASED:
        raise ValueError(f"released CSNet-L variants: {sorted(_RELEASED)}, got {variant!r}")
    return {**copy.deepcopy(_RELEASED[variant]), "stages": list(STAGES), "dilations": list(DILATIONS),
            "num_classes": 1}


def csnet_from_spec(spec: Mapping[str, Any]) -> CSNet:
    """Rebuild a CSNet from :meth:`CSNet.width_spec` (fresh weights; load a state dict next)."""
    return CSNet(**dict(spec))


# --------------------------------------------------------------------------------------------
# FLOPs in the official convention


@dataclass(frozen=True)
class OfficialFlops:
    """Operation counts of one forward pass in the official counter's convention (per image × N).

    Attributes:
        macs: multiply-accumulates of all convolutions (= ``salbook.cost.flops(...).macs``).
        bias: one per output element of a biased convolution (the classifier).
        bn: 4 per BatchNorm input element.
        prelu: 3 per PReLU input element (1 per ReLU element, none in CSNet).
        pool: gOctConv pooling: stride-2 average pools 5 per *input* element; high→low max pools
            ``k²`` per pooled element with ``k`` the *convolution's* kernel size, once per
            (input scale, output scale) pair; pooling modules ``kernel²`` per output element.
        interpolate: 9 per element of a gOctConv bilinear up-sampling output.
    """

    macs: int
    bias: int
    bn: int
    prelu: int
    pool: int
    interpolate: int

    @property
    def total(self) -> int:
        """The official "FLOPs": the sum of all parts."""
        return self.macs + self.bias + self.bn + self.prelu + self.pool + self.interpolate

    @property
    def gflops(self) -> float:
        """:attr:`total` / 10^9."""
        return self.total / 1e9


def _counter_widths(widths: Sequence[int]) -> list[int]:
    """Per-scale widths as the official FLOP script finds them: ``int(C · cumulative share)`` with
    float shares ``w / C`` summed left to right (truncation can move a channel to the next scale)."""
    total = sum(widths)
    bounds, share = [0], 0.0
    for w in widths:
        share += w * 1.0 / total
        bounds.append(int(total * share))
    return [bounds[k + 1] - bounds[k] for k in range(len(widths))]


def official_flops(model: nn.Module, input_size: Sequence[int] = (224, 224), batch: int = 1,
                   counter_truncation: bool = False) -> OfficialFlops:
    """Count a forward pass the way the official CSNet code counts "FLOPs".

    The official counter (``CSNet_training/model/utils/parm_octconv_v2.py``) adds, per element,
    convolution MACs (+1 per biased output), BN × 4, PReLU × 3, pooling and bilinear
    interpolation × 9, through forward hooks. Its conventions are reproduced here: the stride-2
    average pool counts 5 per *input* element; the high→low max pool counts ``k²`` (the
    *convolution's* kernel size) per pooled element, once for every output scale of the pair, even
    one of width 0; the final resize of :class:`CSNet` (a functional call the counter does not
    see) is not counted. The paper's "FLOPs" come from this counter: **0.61 G** for CSNet ×1 and
    **0.43 G** for CSNet-L ×1 at 224 × 224 (Tables 1, 2, 4, 5).

    Measured here at 224 × 224: CSNet ×1 0.6106 G, ×2 1.8723 G, CSNet-L ×1 0.4355 G, ×2 0.7184 G
    (convolution MACs alone: 0.433, 1.516, 0.284, 0.496 G). With ``counter_truncation=True`` the
    totals are those the official script prints, 0.6106, 1.8710, 0.4354 and 0.7167 G: the script
    finds a scale's channel range as ``int(C · cumulative share)`` of float shares, which
    truncates ``k − ε`` to ``k − 1`` and moves a channel from one scale to the next in a few layers
    (e.g. ×2's CSF fuse [26, 53, 53] is counted as [26, 52, 53]) — it counts a slightly different
    network from the one that runs.

    Args:
        model: a CSNet or any module built from this file's operators and torch's Conv2d /
            BatchNorm2d / PReLU / ReLU / pooling modules. Runs once in eval mode under
            ``torch.no_grad`` (its train/eval flag is restored) on its own device.
        input_size: ``(H, W)`` or ``(C, H, W)`` (``C = 3`` when omitted).
        batch: ``N``; every count scales linearly with it.
        counter_truncation: reproduce the official script's channel-boundary truncation in the
            gOctConv counts (default: count the channels each scale really has).
    """
    size = tuple(int(s) for s in input_size)
    if len(size) == 2:
        size = (3, *size)
    if len(size) != 3:
        raise ValueError(f"input_size must be (H, W) or (C, H, W), got {tuple(input_size)!r}")
    counts = dict(macs=0, bias=0, bn=0, prelu=0, pool=0, interpolate=0)

    def goct_hook(mod: GOctConv, inputs: tuple, _out: Any) -> None:
        k2 = mod.kernel_size ** 2
        c_ins = _counter_widths(mod.in_channels) if counter_truncation else mod.in_channels
        c_outs = _counter_widths(mod.out_channels) if counter_truncation else mod.out_channels
        for i, xi in enumerate(_as_scales(inputs[0])):
            if xi is None:
                continue
            n, c_in, h, w = xi.shape[0], c_ins[i], xi.shape[2], xi.shape[3]
            if mod.stride == 2:
                counts["pool"] += 5 * xi.numel()
                h, w = h // 2, w // 2
            for j, c_out in enumerate(c_outs):
                if i > j:  # conv at the low resolution, then up-sample
                    f = 2 ** (i - j)
                    counts["macs"] += n * c_out * c_in * k2 * h * w
                    counts["interpolate"] += 9 * n * c_out * (h * f) * (w * f)
                elif i < j:  # max pool, then conv at the low resolution
                    f = 2 ** (j - i)
                    counts["pool"] += k2 * n * c_in * (h // f) * (w // f)
                    counts["macs"] += n * c_out * c_in * k2 * (h // f) * (w // f)
                else:
                    counts["macs"] += n * c_out * c_in * k2 * h * w

    def conv_hook(mod: nn.Conv2d, _inputs: tuple, out: torch.Tensor) -> None:
        per_output = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        counts["macs"] += out.numel() * per_output
        if mod.bias is not None:
            counts["bias"] += out.numel()

    def bn_hook(_mod: nn.Module, inputs: tuple, _out: Any) -> None:
        counts["bn"] += 4 * inputs[0].numel()

    def prelu_hook(_mod: nn.Module, inputs: tuple, _out: Any) -> None:
        counts["prelu"] += 3 * inputs[0].numel()

    def relu_hook(_mod: nn.Module, inputs: tuple, _out: Any) -> None:
        counts["prelu"] += inputs[0].numel()

    def pool_hook(mod: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
        k = mod.kernel_size
        counts["pool"] += out.numel() * (k * k if isinstance(k, int) else k[0] * k[1])

    hooks = []
    for module in model.modules():
        if isinstance(module, GOctConv):
            hooks.append(module.register_forward_hook(goct_hook))
        elif isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.BatchNorm2d):
            hooks.append(module.register_forward_hook(bn_hook))
        elif isinstance(module, nn.PReLU):
            hooks.append(module.register_forward_hook(prelu_hook))
        elif isinstance(module, nn.ReLU):
            hooks.append(module.register_forward_hook(relu_hook))
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            hooks.append(module.register_forward_hook(pool_hook))
    device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((int(batch), *size), device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return OfficialFlops(**counts)


# --------------------------------------------------------------------------------------------
# builders


@register("csnet")
def csnet(width: float = 1.0, split: str | Sequence[float] = "5/5", **kwargs: Any) -> CSNet:
    """Unpruned CSNet ×``width`` with scale shares ``split`` (see :func:`default_width_spec`).
    Every Table 1 split of ×1 has 210,985 parameters. Keyword arguments override the spec's."""
    return CSNet(**{**default_width_spec(width, split), **kwargs})


@register("csnet_x1")
def csnet_x1(**kwargs: Any) -> CSNet:
    """CSNet ×1, split 5/5: 210,985 parameters (extractor 179,420)."""
    return csnet(1.0, **kwargs)


@register("csnet_x2")
def csnet_x2(**kwargs: Any) -> CSNet:
    """CSNet ×2 (base width 40), split 5/5: 788,631 parameters; pruned to CSNet-L ×2."""
    return csnet(2.0, **kwargs)


@register("csnet_l_x1")
def csnet_l_x1(**kwargs: Any) -> CSNet:
    """CSNet-L ×1, the released learned widths: 93,647 parameters (weights are fresh)."""
    return CSNet(**{**released_width_spec("x1"), **kwargs})


@register("csnet_l_x2")
def csnet_l_x2(**kwargs: Any) -> CSNet:
    """CSNet-L ×2, the released learned widths: 140,894 parameters (weights are fresh)."""
    return CSNet(**{**released_width_spec("x2"), **kwargs})


# --------------------------------------------------------------------------------------------
# BatchNorm statistics of a fresh network, and the fused inference forward


@torch.no_grad()
def init_bn_statistics(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Give a freshly built CSNet finite eval-mode outputs: one train-mode forward of ``x``
    (``N × 3 × H × W``, e.g. random images) sets every BN's running statistics to that batch's
    (cumulative average, momentum ``None``); no parameter changes. Returns ``model`` in eval mode.

    Why: with untrained running statistics (mean 0, variance 1) nothing undoes the ×100 of the
    depthwise convolutions and the logits overflow to inf/NaN in eval mode (see :class:`CSNet`).
    Timing or exporting such a network measures arithmetic on inf/NaN; call this first.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        model(x.to(next(model.parameters()).device))
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.eval()
    return model


def _fold(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BN as ``y = a · x + b`` per channel."""
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return a, bn.bias - bn.running_mean * a


def _prelu_copy(p: nn.PReLU) -> nn.PReLU:
    q = nn.PReLU(p.weight.numel())
    q.weight.data.copy_(p.weight.data)
    return q


class FusedCBR(nn.Module):
    """Inference form of a :class:`GOctaveCBR`: BN (and the ×100) folded into the weights, and
    **one convolution per resolution level** instead of one per (input, output) scale pair.

    At level ``L`` the inputs living there — scale ``L`` itself and the max-pooled higher
    resolution scales ``i < L`` — are concatenated and convolved once, with a block weight whose
    rows are output scale ``L`` (from every such input) and the output scales ``j < L`` (from scale
    ``L`` only; zeros elsewhere). Output ``j`` = its rows at level ``j`` + the bilinear up-sampling
    of its rows at every level ``L > j`` + the folded bias, then PReLU. Equal to the source in eval
    mode up to float rounding (tested). Built by :func:`fuse_for_inference`.
    """

    def __init__(self, src: GOctaveCBR) -> None:
        super().__init__()
        self.out_channels = list(src.out_channels)
        self.in_channels = list(src.in_channels)
        conv = src.conv
        self.std_conv = src.std_conv
        n_out = len(self.out_channels)
        a = torch.zeros(sum(self.out_channels))
        b = torch.zeros(sum(self.out_channels))
        off = 0
        for bn, c in zip(src.bns, self.out_channels):
            if c:
                a[off:off + c], b[off:off + c] = _fold(bn)
            off += c
        w = (conv.effective_weight if isinstance(conv, Conv2dX100) else conv.weight).detach() * a.view(-1, 1, 1, 1)
        self.prelus = nn.ModuleList([_prelu_copy(p) if p is not None else None for p in src.prelus])
        if self.std_conv:
            self.stride, self.padding = conv.stride[0], conv.padding[0]
            self.register_buffer("w0", w.clone())
            self.register_buffer("b0", b.clone())
            self.levels: list[dict[str, Any]] = []
            return
        self.stride, self.padding = conv.stride, conv.padding
        rows, cols = GOctConv._offsets(self.out_channels), GOctConv._offsets(self.in_channels)
        self.levels = []
        n_in = len(self.in_channels)
        for level in range(max(n_in, n_out)):
            ins = [i for i in range(min(level + 1, n_in)) if self.in_channels[i]
                   and (i == level or (level < n_out and self.out_channels[level]))]
            outs = []  # (out scale j, rows in the level conv)
            blocks = []
            for j in range(min(level + 1, n_out)):
                if not self.out_channels[j]:
                    continue
                srcs = ins if j == level else [i for i in ins if i == level]
                if not srcs:
                    continue
                block = torch.zeros(self.out_channels[j], sum(self.in_channels[i] for i in ins), *w.shape[2:])
                c0 = 0
                for i in ins:
                    if i in srcs:
                        block[:, c0:c0 + self.in_channels[i]] = w[rows[j]:rows[j + 1], cols[i]:cols[i + 1]]
                    c0 += self.in_channels[i]
                outs.append(j)
                blocks.append(block)
            if not outs:
                continue
            weight = torch.cat(blocks)
            splits = [self.out_channels[j] for j in outs]
            self.register_buffer(f"w_level{level}", weight)
            self.levels.append({"level": level, "ins": ins, "outs": outs, "splits": splits})
        for j, c in enumerate(self.out_channels):
            self.register_buffer(f"b{j}", b[rows[j]:rows[j + 1]].clone())

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor | None]) -> Scales:
        xs = _as_scales(x)
        if self.std_conv:
            y = F.conv2d(xs[0], self.w0, self.b0, self.stride, self.padding)
            return [self.prelus[0](y)]
        if self.stride == 2:
            xs = [None if xi is None else F.avg_pool2d(xi, 2, stride=2) for xi in xs]
        outs: Scales = [None] * len(self.out_channels)
        parts: dict[int, list[tuple[int, torch.Tensor]]] = {}
        for spec in self.levels:
            level = spec["level"]
            inp = [xs[i] if i == level else F.max_pool2d(xs[i], 2 ** (level - i), stride=2 ** (level - i))
                   for i in spec["ins"]]
            inp_t = inp[0] if len(inp) == 1 else torch.cat(inp, dim=1)
            y = F.conv2d(inp_t, getattr(self, f"w_level{level}"), None, 1, self.padding)
            for j, yj in zip(spec["outs"], torch.split(y, spec["splits"], dim=1)):
                parts.setdefault(j, []).append((level, yj))
        for j, items in parts.items():
            total = None
            for level, yj in sorted(items, key=lambda t: t[0]):
                if level > j:
                    yj = F.interpolate(yj, scale_factor=float(2 ** (level - j)), mode="bilinear", align_corners=False)
                total = yj if total is None else total + yj
            total = total + getattr(self, f"b{j}").view(1, -1, 1, 1)
            outs[j] = self.prelus[j](total)
        return outs


class FusedDepthwiseBR(nn.Module):
    """Inference form of a :class:`SimplifiedGOctConvBR`: per scale one biased depthwise 3 × 3
    convolution (×100 and BN folded) + PReLU."""

    def __init__(self, src: SimplifiedGOctConvBR) -> None:
        super().__init__()
        self.channels = list(src.channels)
        self.convs = nn.ModuleList()
        for conv, bn in zip(src.convs, src.bns):
            if conv is None:
                self.convs.append(None)
                continue
            a, b = _fold(bn)
            c = nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1, groups=conv.groups, bias=True)
            c.weight.data.copy_(conv.effective_weight.detach() * a.view(-1, 1, 1, 1))
            c.bias.data.copy_(b.detach())
            self.convs.append(c)
        self.prelus = nn.ModuleList([_prelu_copy(p) if p is not None else None for p in src.prelus])

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor | None]) -> Scales:
        return [None if xi is None else p(c(xi)) for xi, c, p in zip(_as_scales(x), self.convs, self.prelus)]


class FusedMSBlock(nn.Module):
    """Inference form of an :class:`MSBlock`: the dilated convolutions with the ×100 and their
    slice of the BN folded in (biased), concatenated, PReLU."""

    def __init__(self, src: MSBlock) -> None:
        super().__init__()
        a, b = _fold(src.bn)
        self.convs = nn.ModuleList()
        off = 0
        for conv in src.msconv:
            if conv is None:
                continue
            c_out = conv.out_channels
            c = nn.Conv2d(conv.in_channels, c_out, 3, padding=conv.padding, dilation=conv.dilation, bias=True)
            c.weight.data.copy_(conv.effective_weight.detach() * a[off:off + c_out].view(-1, 1, 1, 1))
            c.bias.data.copy_(b[off:off + c_out].detach())
            self.convs.append(c)
            off += c_out
        self.prelu = _prelu_copy(src.prelu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(torch.cat([c(x) for c in self.convs], dim=1))


@torch.no_grad()
def fuse_for_inference(model: CSNet) -> CSNet:
    """A copy of ``model`` for eval-mode inference with every unit fused (:class:`FusedCBR`,
    :class:`FusedDepthwiseBR`, :class:`FusedMSBlock`): BN and the ×100 folded into the weights,
    the gOctConv branch convolutions merged into one per resolution level. Same outputs as the
    eval-mode source up to float rounding; not trainable (the BN statistics are gone)."""
    if not isinstance(model, CSNet):
        raise TypeError(f"fuse_for_inference expects a CSNet, got {type(model).__name__}")
    was = model.training
    model.eval()
    fused = copy.deepcopy(model).cpu()
    model.train(was)
    for stage in fused.extractor_stages():
        for block in stage:
            block.conv1x1 = FusedCBR(block.conv1x1)
            block.conv3x3_1 = FusedDepthwiseBR(block.conv3x3_1)
            block.conv3x3_2 = FusedDepthwiseBR(block.conv3x3_2)
    head = fused.oct_fuse
    head.fuse = FusedCBR(head.fuse)
    head.ms.convs = nn.ModuleList([None if m is None else FusedMSBlock(m) for m in head.ms.convs])
    head.fuse1x1 = FusedCBR(head.fuse1x1)
    device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
    return fused.to(device).eval()


# --------------------------------------------------------------------------------------------
# a plain-convolution reference of the same FLOPs (run-time per FLOP)


class PlainConvNet(nn.Module):
    """A plain VGG-style fully convolutional network (3 × 3 convolution + BN + ReLU, no depthwise,
    no multi-scale branches) used as the run-time reference of :func:`plain_convnet_matching`:
    stride-2 3 × 3 convolutions to ``width``, ``2 width``, ``4 width``, ``4 width`` channels at
    1/2 … 1/16, ``depth`` more 3 × 3 convolutions per stage, a 1 × 1 classifier, bilinear resize.

    Shape: ``N × 3 × H × W`` → ``N × 1 × H × W`` logits.
    """

    def __init__(self, width: int, depth: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for mult in (1, 2, 4, 4):
            c = max(1, int(width) * mult)
            for k in range(1 + int(depth)):
                layers += [nn.Conv2d(c_in, c, 3, stride=2 if k == 0 else 1, padding=1, bias=False),
                           nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
                c_in = c
        self.features = nn.Sequential(*layers)
        self.cls_layer = nn.Conv2d(c_in, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.cls_layer(self.features(x)), size=x.shape[-2:], mode="bilinear",
                             align_corners=False)


def plain_convnet_matching(macs: int, input_size: Sequence[int] = (224, 224), depth: int = 1) -> PlainConvNet:
    """The :class:`PlainConvNet` whose convolution MACs at ``input_size`` are closest to ``macs``
    (``salbook.cost.flops(...).macs`` of the network to compare with)."""
    from ..cost import flops

    best, best_gap = None, None
    for width in range(4, 257, 2):
        net = PlainConvNet(width, depth)
        gap = abs(flops(net, tuple(input_size)).macs - int(macs))
        if best_gap is not None and gap > best_gap:
            break
        best, best_gap = net, gap
    assert best is not None
    return best
