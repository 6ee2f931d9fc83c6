"""The book's teacher for chapters 4 and 5: trained once per profile, cached, shared.

ImageNet EfficientNet-Lite0 with a SalGAN-shaped decoder (:mod:`salbook.models.teacher`), trained
on the labelled generated data with SalGAN's content loss, BCE between ``σ(logits)`` and the
fixation map (max 1); Adam, the pretrained encoder at a tenth of the decoder's learning rate,
cosine decay per step to 1 %, a random half of each batch mirrored, the epoch with the lowest
validation BCE kept. One teacher per profile, trained with seed 0 whatever a chapter's ``seed``
(a shared artefact: chapter 5 distils from the same one).

Public entry points (re-exported by :mod:`salbook.recipes.fastsal`): :func:`teacher`,
:func:`teacher_density`, :class:`TeacherConfig`, :func:`teacher_config`, :func:`train_teacher`.
This module is kept apart from the students' recipe so that the teacher's cache key (config, seed,
and the code it runs: this file, the model files) does not change when the students' recipe does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import models
from ..data import SplitSpec
from ..schedules import CosineSchedule, ParamSchedule
from ._config import RecipeConfig, check_training_settings

__all__ = ["TEACHER_DATA", "TeacherConfig", "teacher_config", "teacher_loss", "train_teacher", "teacher",
           "teacher_density"]

RECIPE_VERSION = 1
_PROFILES = ("smoke", "book", "paper")

#: The teacher's data per profile: generated scenes at 96 × 128 (book; the network runs at any
#: multiple of 32), maps at the input size, test ground truth at 192 × 256.
TEACHER_DATA: dict[str, SplitSpec] = {
    "smoke": SplitSpec(n_train=8, n_val=4, n_test=8, input_size=(32, 64), map_size=None, eval_size=(32, 64)),
    "book": SplitSpec(n_train=600, n_val=64, n_test=250, input_size=(96, 128), map_size=None, eval_size=(192, 256)),
    "paper": SplitSpec(n_train=None, n_val=None, n_test=None, input_size=(192, 256), map_size=None,
                       eval_size=(192, 256)),
}


@dataclass(frozen=True)
class TeacherConfig(RecipeConfig):
    """Every setting of the book's teacher (hashed into the model cache key).

    Attributes:
        data: splits and sizes (:data:`TEACHER_DATA`).
        epochs, batch_size: as usual.
        lr: Adam's learning rate for the decoder, cosine-decayed per step to 1 % of it.
        encoder_lr_mult: the pretrained encoder's learning rate relative to the decoder's.
        flip: mirror a random half of each batch.
        weights: the encoder's weights (``"imagenet"``: the packaged Lite0 weights).
    """

    RECIPE = f"fastsal.teacher/{RECIPE_VERSION}"

    data: SplitSpec = field(default_factory=lambda: TEACHER_DATA["book"])
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-3
    encoder_lr_mult: float = 0.1
    flip: bool = True
    weights: str | None = "imagenet"

    def __post_init__(self) -> None:
        check_training_settings(self, size_multiple=32, who="the teacher")
        if not self.encoder_lr_mult >= 0:
            raise ValueError(f"encoder_lr_mult must be >= 0, got {self.encoder_lr_mult}")


def teacher_config(profile: str = "book", *, dataset: str = "synthetic", data_root: str | None = None) -> TeacherConfig:
    """The teacher's config for ``profile`` (``smoke``, ``book``, ``paper``); a real ``dataset``
    replaces the generated data (its val split validates, its train split's tail is not used)."""
    if profile not in _PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(_PROFILES)}")
    data = TEACHER_DATA[profile]
    if dataset != "synthetic":
        data = data.replace(dataset=dataset, data_root=data_root, val_split="train", test_split="val")
    epochs = {"smoke": 1, "book": 2, "paper": 30}[profile]
    batch = {"smoke": 8, "book": 16, "paper": 32}[profile]
    return TeacherConfig(data=data, epochs=epochs, batch_size=batch)


def teacher_loss(logits: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
    """SalGAN's content loss: BCE between ``σ(logits)`` and the fixation map (max 1), mean over pixels."""
    target = batch["fixation_map"]
    target = (target.unsqueeze(1) if target.dim() == 3 else target).to(logits.device, torch.float32).clamp(0, 1)
    if logits.dim() != 4 or target.shape != logits.shape:
        raise ValueError(f"teacher_loss needs N×1×H×W logits and maps of the same size, got {tuple(logits.shape)} "
                         f"and {tuple(target.shape)}")
    return F.binary_cross_entropy_with_logits(logits.float(), target)


def _cosine(lr: float, steps: int) -> ParamSchedule:
    return ParamSchedule({"lr": CosineSchedule(lr, lr / 100, max(1, steps))}, unit="step")


def train_teacher(cfg: TeacherConfig, seed: int = 0, device: str | torch.device = "auto", cache: str | None = None,
                  log: Callable[[str], None] | None = print):
    """Train the teacher ``cfg`` (or load it from the cache): a :class:`salbook.train.TrainResult`."""
    from ..data import hflip_batch, load_split
    from ..train import ParamGroup, adam, load_or_train, param_groups

    encoder = ParamGroup("encoder", lambda name, _p: name.startswith("encoder."), lr_mult=cfg.encoder_lr_mult)

    def train_kwargs() -> dict[str, Any]:
        tr, va = load_split(cfg.data, "train"), load_split(cfg.data, "val")
        steps = cfg.epochs * math.ceil(len(tr) / cfg.batch_size)
        return dict(loss_fn=teacher_loss, train_data=tr, val_data=va, optimizer=adam(cfg.lr),
                    param_groups=lambda model: param_groups(model, [encoder]), schedule=_cosine(cfg.lr, steps),
                    epochs=cfg.epochs, batch_size=cfg.batch_size, augment=hflip_batch if cfg.flip else None)

    return load_or_train(cfg.as_dict(), lambda: models.create("fastsal_teacher", weights=cfg.weights), train_kwargs,
                         seed=seed, cache=cache, device=device, log=log, code=[__name__])


def teacher(profile: str = "book", *, device: str | torch.device = "auto", log: Callable[[str], None] | None = print,
            dataset: str = "synthetic", data_root: str | None = None, cache: str | None = None) -> nn.Module:
    """The book's trained teacher for ``profile``, from the cache (trained on first use, seed 0).

    Returns:
        :class:`salbook.models.teacher.SalGANShaped` in eval mode, parameters frozen, on ``device``;
        ``forward(images N × 3 × H × W in [0, 1]) -> logits N × 1 × H × W`` (H, W multiples of 32),
        ``forward_with_hints`` for the hint activations. Its training history is ``.history``.
    """
    result = train_teacher(teacher_config(profile, dataset=dataset, data_root=data_root), seed=0, device=device,
                           cache=cache, log=log)
    net = result.model.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    net.history = result.history
    net.loaded = result.loaded
    return net


@torch.no_grad()
def teacher_density(teacher: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The teacher's fixation density for ``images``: ``σ(logits)`` normalised to sum 1 per image.

    Args:
        teacher: a module returning ``N × 1 × H × W`` logits (e.g. :func:`teacher`'s).
        images: ``N × 3 × H × W`` RGB in [0, 1] (moved to the teacher's device).

    Returns:
        ``N × H × W`` float32, non-negative, each image summing to 1, on the teacher's device.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"teacher_density expects N×3×H×W images in [0, 1], got shape {tuple(images.shape)}")
    dev = next(iter(teacher.parameters())).device
    was_training = teacher.training
    teacher.eval()
    try:
        p = torch.sigmoid(teacher(images.to(dev)).float()).flatten(1)
    finally:
        teacher.train(was_training)
    p = p / p.sum(dim=1, keepdim=True)
    return p.reshape(images.shape[0], *images.shape[-2:])


def _density_map(logits: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits.float()).flatten(1)
    return (p / p.sum(dim=1, keepdim=True)).reshape(logits.shape)
