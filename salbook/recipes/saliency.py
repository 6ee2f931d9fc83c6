"""Dense-map saliency recipes for chapters 2 and 3: the compact model and the ML-Net-style Lite0.

Two typed configurations, each trained (or loaded from the model cache) by its ``train_*``
function through :func:`salbook.train.load_or_train` (key: config, seed, and the code run,
including this module):

* :class:`CompactConfig` — the compact model of the paper's Table 1 (:mod:`salbook.models.compact`)
  and its two ablations, **trained from scratch** (the paper's argument);
* :class:`MLNetStyleConfig` — EfficientNet-Lite0 with its ImageNet weights and ML-Net's head
  (:func:`salbook.models.mlnet.mlnet_lite0`), **fine-tuned** end to end: chapter 2's "saliency
  network" next to the untouched ImageNet "classification network".

Losses (one per family, both documented where defined):

* :func:`kl_loss` for the compact model. The network outputs one logit per output cell; the
  prediction is their softmax over the map, a probability distribution, and the loss is the
  Kullback–Leibler divergence ``KL(p ‖ q)`` from the empirical fixation distribution ``p`` (the
  blurred fixation map, summed into the output cells and normalised to sum 1) to the prediction
  ``q``. Why this loss: a fixation map *is* a distribution over positions, KL is the loss
  the MIT/SALICON benchmarks' KLD metric measures and what most recent saliency models (SAM,
  FastSal, DeepGaze via log-likelihood) train, it is defined for any output size (the target is
  pooled to the output grid exactly), and its softmax output needs no ad-hoc normalisation at
  evaluation time. MSE on a max-normalised map, by contrast, is dominated by the many near-zero
  pixels and rewards a blurred centre bias.
* :func:`mlnet_style_loss` for the ML-Net-style network: ML-Net's own loss
  (:func:`salbook.models.mlnet.mlnet_loss`, max-normalised prediction, squared error weighted by
  ``1 / (1 − y + 0.1)``) plus the learned prior's L2 term, with the target the fixation map
  average-pooled to the output grid and divided by its maximum (the official target is the
  saliency map ÷ 255, max ≈ 1).

Evaluation post-processing: :data:`COMPACT_POSTPROCESS` (softmax over the map) for the compact
model; none for the ML-Net-style network (its ReLU output is already a non-negative map). The
maps are then resized to the ground truth by :func:`salbook.evaluate`.

The chapters measure training-step memory and the paper's three design aspects with
:func:`salbook.cost.peak_training_memory` and :func:`salbook.cost.design_cost_table`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .. import models
from ..data import SplitSpec
from ._config import RecipeConfig, check_training_settings
from ..schedules import CosineSchedule, ParamSchedule, Schedule

__all__ = [
    "RECIPE_VERSION",
    "COMPACT_DATA",
    "MLNET_STYLE_DATA",
    "CompactConfig",
    "MLNetStyleConfig",
    "InverseTimeSchedule",
    "pooled_target",
    "kl_loss",
    "spatial_softmax",
    "COMPACT_POSTPROCESS",
    "mlnet_style_loss",
    "build_compact",
    "build_mlnet_style",
    "train_compact",
    "train_mlnet_style",
]

RECIPE_VERSION = 1

#: Compact model data: generated scenes at 96 × 128 (the CPU budget of the book profile; the
#: network is fully convolutional, so it runs at any size), maps at the input size (the loss
#: pools them to the 12 × 16 output), test ground truth at 192 × 256.
COMPACT_DATA = SplitSpec(n_train=1000, n_val=100, n_test=250, input_size=(96, 128), map_size=None,
                         eval_size=(192, 256))

#: ML-Net-style Lite0 data: generated scenes at 96 × 128, like the compact model (the CPU budget:
#: ML-Net's head reads 1,432 channels at 1/8, which costs more than the Lite0 trunk); Lite0's last
#: layer is then 3 × 4, the head's output 12 × 16. Test ground truth at 192 × 256.
MLNET_STYLE_DATA = SplitSpec(n_train=800, n_val=64, n_test=250, input_size=(96, 128), map_size=None,
                             eval_size=(192, 256))

_COMPACT_MODELS = ("compact", "compact_late_pool", "compact_plain")


@dataclass(frozen=True)
class CompactConfig(RecipeConfig):
    """Every setting that determines a trained compact model (hashed into the model cache key).

    The paper gives no training recipe; this one is ours.

    Attributes:
        model: ``"compact"`` (Table 1), ``"compact_late_pool"`` or ``"compact_plain"`` (ablations).
        data: splits and sizes (:data:`COMPACT_DATA`).
        epochs: passes over the training split.
        batch_size: images per Adam step.
        lr, lr_end: Adam's learning rate, cosine-decayed per step from ``lr`` to ``lr_end``.
        weight_decay: Adam's L2 weight decay (coupled, as ``torch.optim.Adam``).
        flip: mirror a random half of every batch (:func:`salbook.data.hflip_batch`).
        val_every: validate every this many epochs (and after the last); the epoch with the lowest
            validation KL is kept.
        channels_last: train in the channels-last memory format (same arithmetic, about 1.5× faster
            depthwise convolutions on CPU).
        model_kwargs: extra builder arguments (tests use tiny widths); empty for the chapter's models.
    """

    RECIPE = f"saliency.compact/{RECIPE_VERSION}"

    model: str = "compact"
    data: SplitSpec = field(default_factory=lambda: COMPACT_DATA)
    epochs: int = 6
    batch_size: int = 16
    lr: float = 2e-3
    lr_end: float = 2e-5
    weight_decay: float = 0.0
    flip: bool = True
    val_every: int = 1
    channels_last: bool = True
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_training_settings(self, ("epochs", "batch_size", "val_every"))
        if self.model not in _COMPACT_MODELS:
            raise ValueError(f"model must be one of {_COMPACT_MODELS}, got {self.model!r}")



@dataclass(frozen=True)
class MLNetStyleConfig(RecipeConfig):
    """Every setting that determines a trained ML-Net(-style) network (hashed into the cache key).

    Two optimisers:

    * ``"adam"`` (the book's short runs): Adam with the head at ``lr`` and the pretrained
      backbone at ``lr × backbone_lr_mult`` (the usual fine-tuning split), both cosine-decayed per
      step to 1 % of their start. ML-Net's SGD needs far more steps than the book can afford.
    * ``"official"`` (ML-Net's ``main.py``, for the ``paper`` profile): Nesterov SGD, momentum 0.9,
      learning rate ``lr / (1 + decay · t)`` per iteration ``t`` (Keras' ``decay`` = 5e-4), the same
      rate for every layer (set ``lr=1e-3``, ``batch_size=10``, ``epochs=20``, ``backbone_lr_mult=1``).

    Attributes:
        model: ``"mlnet_lite0"`` or ``"mlnet"`` (the exact network; pass ``vgg16_weights`` in
            ``model_kwargs``).
        data: splits and sizes (:data:`MLNET_STYLE_DATA`).
        epochs, batch_size: as usual.
        optimizer: ``"adam"`` or ``"official"``.
        lr: learning rate of the head (and of everything with ``"official"``).
        backbone_lr_mult: the pretrained layers' learning rate relative to the head's.
        decay: Keras' per-iteration learning-rate decay of the ``"official"`` optimiser.
        flip: mirror a random half of every batch.
        val_every: validate every this many epochs; the epoch with the lowest validation loss is kept.
        model_kwargs: extra builder arguments (``weights=None`` in tests, ``vgg16_weights`` for ML-Net).
    """

    RECIPE = f"saliency.mlnet_style/{RECIPE_VERSION}"

    model: str = "mlnet_lite0"
    data: SplitSpec = field(default_factory=lambda: MLNET_STYLE_DATA)
    epochs: int = 2
    batch_size: int = 8
    optimizer: Literal["adam", "official"] = "adam"
    lr: float = 1e-3
    backbone_lr_mult: float = 0.1
    decay: float = 5e-4
    flip: bool = True
    val_every: int = 1
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_training_settings(self, ("epochs", "batch_size", "val_every"))
        if self.optimizer not in ("adam", "official"):
            raise ValueError(f"optimizer must be 'adam' or 'official', got {self.optimizer!r}")
        if not self.backbone_lr_mult >= 0:
            raise ValueError(f"backbone_lr_mult must be >= 0, got {self.backbone_lr_mult}")



@dataclass(frozen=True)
class InverseTimeSchedule(Schedule):
    """Keras 1's learning-rate decay: ``lr / (1 + decay · t)`` at iteration ``t``."""

    lr: float
    decay: float

    def __call__(self, t: int) -> float:
        return float(self.lr / (1.0 + self.decay * self._check_index(t)))


# --------------------------------------------------------------------------------------------
# targets and losses


def pooled_target(fixation_map: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The fixation map averaged over the cells of an ``(h, w)`` output grid.

    Args:
        fixation_map: ``N × H × W`` or ``N × 1 × H × W``, non-negative.
        size: the output grid ``(h, w)``; adaptive average pooling (exact cells when ``h`` divides
            ``H`` and ``w`` divides ``W``).

    Returns:
        ``N × 1 × h × w``.
    """
    if fixation_map.dim() == 3:
        fixation_map = fixation_map.unsqueeze(1)
    if fixation_map.dim() != 4:
        raise ValueError(f"fixation_map must be N×H×W or N×1×H×W, got shape {tuple(fixation_map.shape)}")
    return F.adaptive_avg_pool2d(fixation_map.float(), size)


def kl_loss(output: torch.Tensor, batch: Mapping[str, Any], eps: float = 1e-12) -> torch.Tensor:
    """``KL(p ‖ softmax(output))`` averaged over the batch (nats); see the module docstring.

    Args:
        output: ``N × 1 × h × w`` logits.
        batch: with ``fixation_map`` (``N × H × W``), pooled to ``h × w`` and normalised to sum 1.
        eps: keeps ``p log p`` finite where ``p = 0``.

    Raises:
        ValueError: an image's fixation map is all zero (no target distribution).
    """
    if output.dim() != 4 or output.shape[1] != 1:
        raise ValueError(f"kl_loss expects N×1×h×w logits, got shape {tuple(output.shape)}")
    target = pooled_target(batch["fixation_map"].to(output.device), tuple(output.shape[-2:])).flatten(1)
    mass = target.sum(dim=1, keepdim=True)
    if bool((mass <= 0).any()):
        raise ValueError("kl_loss needs a fixation map with positive mass for every image")
    p = target / mass
    log_q = F.log_softmax(output.flatten(1).float(), dim=1)
    return (p * (torch.log(p + eps) - log_q)).sum(dim=1).mean()


def spatial_softmax(pred: torch.Tensor) -> torch.Tensor:
    """Softmax over all cells of one ``h × w`` logit map (a probability map summing to 1)."""
    flat = pred.detach().float().reshape(-1)
    return torch.softmax(flat, dim=0).reshape(pred.shape[-2:])


#: The compact model's evaluation post-processing: its logits as a distribution over the map.
COMPACT_POSTPROCESS: Callable[[torch.Tensor], torch.Tensor] = spatial_softmax


def mlnet_style_loss(output: torch.Tensor, batch: Mapping[str, Any], eps: float = 1e-7) -> torch.Tensor:
    """ML-Net's data term against the fixation map pooled to the output grid and scaled to max 1.

    Args:
        output: ``N × 1 × h × w`` non-negative maps.
        batch: with ``fixation_map`` ``N × H × W``.

    The prior's L2 term is added by :func:`train_mlnet_style` as a regulariser (logged apart).
    """
    from ..models.mlnet import mlnet_loss

    target = pooled_target(batch["fixation_map"].to(output.device), tuple(output.shape[-2:]))
    target = target / target.flatten(1).amax(dim=1).clamp_min(eps).view(-1, 1, 1, 1)
    return mlnet_loss(output, target, eps=eps)


# --------------------------------------------------------------------------------------------
# models and training


def build_compact(cfg: CompactConfig) -> nn.Module:
    """Build ``cfg.model`` (seed torch first for repeatable weights), channels-last if configured."""
    net = models.get_builder(cfg.model)(**cfg.model_kwargs)
    return net.to(memory_format=torch.channels_last) if cfg.channels_last else net


def build_mlnet_style(cfg: MLNetStyleConfig) -> nn.Module:
    """Build ``cfg.model`` with its prior sized for ``cfg.data.input_size``."""
    return models.get_builder(cfg.model)(**{"input_size": cfg.data.input_size, **cfg.model_kwargs})


def _cosine(lr: float, lr_end: float, steps: int) -> ParamSchedule:
    return ParamSchedule({"lr": CosineSchedule(lr, lr_end, max(1, steps))}, unit="step")


def _datasets(data: SplitSpec, train_data: Any, val_data: Any) -> tuple[Any, Any]:
    from ..data import load_split

    tr = train_data if train_data is not None else load_split(data, "train")
    va = val_data if val_data is not None else load_split(data, "val")
    return tr, va


def train_compact(
    cfg: CompactConfig,
    seed: int = 0,
    device: str | torch.device = "auto",
    cache: str | None = None,
    train_data: Any = None,
    val_data: Any = None,
    log: Callable[[str], None] | None = print,
):
    """Train ``cfg`` with ``seed`` (or load it from the cache): a :class:`salbook.train.TrainResult`.

    Adam (``cfg.lr``, cosine per step to ``cfg.lr_end``), :func:`kl_loss`, random half of each batch
    mirrored, the epoch with the lowest validation KL kept. ``train_data`` / ``val_data`` default to
    :func:`salbook.data.load_split` of ``cfg.data``; pass them to share datasets between runs (they
    must be the config's splits: the cache key is the config).
    """
    from ..data import hflip_batch
    from ..train import adam, load_or_train

    def train_kwargs() -> dict[str, Any]:
        tr, va = _datasets(cfg.data, train_data, val_data)
        steps = cfg.epochs * math.ceil(len(tr) / cfg.batch_size)
        return dict(loss_fn=kl_loss, train_data=tr, val_data=va, optimizer=adam(cfg.lr, weight_decay=cfg.weight_decay),
                    schedule=_cosine(cfg.lr, cfg.lr_end, steps), epochs=cfg.epochs, batch_size=cfg.batch_size,
                    val_every=cfg.val_every, augment=hflip_batch if cfg.flip else None)

    return load_or_train(cfg.as_dict(), lambda: build_compact(cfg), train_kwargs, seed=seed, cache=cache,
                         device=device, log=log, code=[__name__])


def train_mlnet_style(
    cfg: MLNetStyleConfig,
    seed: int = 0,
    device: str | torch.device = "auto",
    cache: str | None = None,
    train_data: Any = None,
    val_data: Any = None,
    log: Callable[[str], None] | None = print,
):
    """Fine-tune ``cfg`` with ``seed`` (or load it from the cache): a :class:`salbook.train.TrainResult`.

    Two parameter groups (the pretrained ``backbone.*`` / ``encoder.*`` at ``lr × backbone_lr_mult``,
    the head at ``lr``), the optimiser and schedule of ``cfg.optimizer`` (see
    :class:`MLNetStyleConfig`), :func:`mlnet_style_loss` plus the prior's L2 term (regulariser
    ``prior``), random half of each batch mirrored, the epoch with the lowest validation loss kept.
    """
    from ..data import hflip_batch
    from ..models.mlnet import prior_penalty
    from ..train import ParamGroup, adam, load_or_train, param_groups, sgd

    pretrained = ParamGroup("pretrained", lambda name, _p: name.startswith(("backbone.", "encoder.")),
                            lr_mult=cfg.backbone_lr_mult)
    head = ParamGroup("head", lambda _n, _p: True)

    def train_kwargs() -> dict[str, Any]:
        tr, va = _datasets(cfg.data, train_data, val_data)
        steps = cfg.epochs * math.ceil(len(tr) / cfg.batch_size)
        if cfg.optimizer == "adam":
            optimizer, schedule = adam(cfg.lr), _cosine(cfg.lr, cfg.lr / 100, steps)
        else:
            optimizer = sgd(cfg.lr, momentum=0.9, nesterov=True)
            schedule = ParamSchedule({"lr": InverseTimeSchedule(cfg.lr, cfg.decay)}, unit="step")
        return dict(loss_fn=mlnet_style_loss, train_data=tr, val_data=va, optimizer=optimizer,
                    param_groups=lambda model: param_groups(model, [pretrained], rest=head),
                    schedule=schedule, epochs=cfg.epochs, batch_size=cfg.batch_size,
                    val_every=cfg.val_every, augment=hflip_batch if cfg.flip else None,
                    regularizers={"prior": lambda model, _batch, _out: prior_penalty(model)})

    return load_or_train(cfg.as_dict(), lambda: build_mlnet_style(cfg), train_kwargs, seed=seed, cache=cache,
                         device=device, log=log, code=[__name__])


