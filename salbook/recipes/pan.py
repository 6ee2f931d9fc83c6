"""Pan et al.'s shallow convnet (chapter 1): the recipe, as a typed configuration.

:class:`PanConfig` holds every setting of a trained shallow net; :func:`train` hands it to
:func:`salbook.train.load_or_train` (a finished model is loaded from the cache, keyed by the
config, the seed and the code it runs). The recipe only *combines* generic pieces:

* data — :func:`salbook.data.load_split` of ``cfg.data`` (a :class:`~salbook.data.SplitSpec`):
  images resized to 96 × 96 (whole image, aspect not kept), training targets the blurred
  fixation map at 48 × 48; the test split keeps its ground truth at ``eval_size``;
* target and loss — :func:`make_target` maps the fixation map (max 1) linearly onto
  ``target_range`` (official [−1, 1], ``map / 127.5 − 1`` on 8-bit maps); :func:`mse_loss` is the
  "Euclidean" loss, the mean over the 48 × 48 outputs and the batch;
* optimiser — :func:`salbook.train.sgd` with Nesterov momentum (and the coursework's L2 decay);
* schedules — :func:`make_schedule`: ``"official"`` (lr linear 0.05 → 1e-4, momentum linear
  0.9 → 0.999, over the run), ``"coursework"`` (lr × 0.55 every ``step_every`` epochs, never below
  ``lr_end``), or ``"constant"``;
* augmentation — :func:`salbook.data.hflip_batch`: a random half of every batch mirrored;
* validation — :func:`salbook.metrics.mean_cc_metric` (CC of the 48 × 48 output after the official
  σ = 3 blur, so that the selected epoch is the best *evaluated* one);
* post-processing — :data:`POSTPROCESS` (``"blur_minmax"``: Gaussian σ = 3 map pixels, then
  min-max, as the official ``prediction.py``), applied by :func:`salbook.evaluate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import models
from ..data import SplitSpec
from ._config import RecipeConfig
from ..maps import gaussian_blur
from ..train.callbacks import Callback
from ..schedules import (
    ConstantSchedule,
    FlooredSchedule,
    LinearSchedule,
    ParamSchedule,
    StepSchedule,
    WarmupSchedule,
)

__all__ = [
    "RECIPE_VERSION",
    "PAPER_RESULTS",
    "POSTPROCESS",
    "DATA",
    "PanConfig",
    "RECOMMENDED_CHANGES",
    "RECOMMENDED_WITH_SGD",
    "STUDY_ROWS",
    "EXTRA_STUDY_ROWS",
    "faithful",
    "recommended",
    "study_configs",
    "mean_target",
    "make_optimizer",
    "OutputBiasAtTargetMean",
    "build_model",
    "make_target",
    "mse_loss",
    "make_schedule",
    "train",
]

RECIPE_VERSION = 1

#: Pan et al.'s official inference: blur the 48 × 48 output (σ = 3 map pixels), then min-max
#: (a name in :data:`salbook.evaluation.POSTPROCESSORS`). Model selection scores the same blur.
POSTPROCESS = "blur_minmax"
OFFICIAL_BLUR_SIGMA = 3.0

#: Published SALICON validation results (CC, shuffled AUC, AUC-Borji): Pan et al. (2016) as
#: quoted by the replication, the replication itself, and the replication with batch norm.
PAPER_RESULTS: dict[str, dict[str, float]] = {
    "Pan et al. 2016 (shallow)": {"cc": 0.58, "auc_shuffled": 0.67, "auc_borji": 0.83},
    "coursework replication": {"cc": 0.65, "auc_shuffled": 0.55, "auc_borji": 0.71},
    "coursework replication + BN": {"cc": 0.69, "auc_shuffled": 0.59, "auc_borji": 0.73},
}

ScheduleName = Literal["official", "coursework", "constant"]

#: The chapter's data: generated scenes, images resized whole to 96 × 96, targets the fixation map
#: at 48 × 48 (the network's output), test ground truth at 192 × 256.
DATA = SplitSpec(input_size=(96, 96), map_size=(48, 48), eval_size=(192, 256))


@dataclass(frozen=True)
class PanConfig(RecipeConfig):
    """Every setting that determines a trained shallow net (hashed into the model cache key).

    Defaults are the official recipe (Pan et al.'s public Lasagne script) except where noted.

    Attributes:
        model: registered model name (``pan_shallow``, ``pan_shallow_bn``, ``pan_shallow_coursework``...).
        data: which images train, validate and test, and at which sizes (a
            :class:`~salbook.data.SplitSpec`; default :data:`DATA`: generated scenes, 96 × 96 inputs,
            48 × 48 targets, test ground truth at 192 × 256). For SALICON give its folder,
            ``val_split="train"`` (nolearn's 20 % hold-out) and ``test_split="val"``.
        target_range: (low, high) the fixation map [0, 1] is mapped to; official (−1, 1).
        epochs: training epochs (the linear schedules run over exactly these).
        batch_size: images per optimiser step (official 128).
        schedule: ``"official"``, ``"coursework"`` or ``"constant"`` (see :func:`make_schedule`).
        lr, lr_end: initial and final learning rate (official 0.05 → 1e-4).
        momentum, momentum_end: initial and final Nesterov momentum (official 0.9 → 0.999).
        weight_decay: L2 weight decay (official 0; coursework 5e-4).
        step_factor, step_every: the coursework's step schedule (× 0.55 every 100 epochs).
        init: ``"gaussian"`` (coursework/paper: N(0, init_std²) weights, biases init_bias) or
            ``"glorot"`` (the Lasagne defaults of the official script).
        init_std, init_bias: the Gaussian initialisation (std is our choice: the text gives none).
        schedule_unit: ``"epoch"`` (official: values change once per epoch) or ``"step"`` (the
            same ramps over the run's optimiser steps, for runs of only a few epochs).
        flip: mirror a random half of every batch.
        val_every: validate every this many epochs (and after the last).
        grad_clip: optional gradient-norm clip (``None``: none, as in the paper).
        optimizer: ``"sgd"`` (official: Nesterov momentum) or ``"adam"`` (then only the lr is
            scheduled; ``momentum`` is unused).
        warmup_steps: linear learning-rate warm-up over the first optimiser steps (per-step
            schedules only; official 0).
        output_bias: ``"init"`` (the initialisation's bias) or ``"target_mean"``: the output layer's
            bias starts at the mean training target, pixel by pixel, so the first steps do not
            spend themselves on the mean map.
        head_norm: standardise the 12,800 head inputs with a parameter-free batch norm (not in
            the paper; the closed-form probe of chapter 1 standardises its inputs the same way).
        freeze_features: keep the convolution layers at their initialisation and train the head only.
        target_blur: extra Gaussian blur of the training target, σ in map pixels (official 0),
            renormalised to a maximum of 1 before the mapping to ``target_range``.
        model_kwargs: extra keyword arguments for the model builder (e.g. a small ``fc_hidden``
            for tests); empty for every model the chapter reports.
    """

    RECIPE = f"pan/{RECIPE_VERSION}"

    model: str = "pan_shallow"
    data: SplitSpec = field(default_factory=lambda: DATA)
    target_range: tuple[float, float] = (-1.0, 1.0)
    epochs: int = 20
    batch_size: int = 128
    schedule: ScheduleName = "official"
    lr: float = 0.05
    lr_end: float = 1e-4
    momentum: float = 0.9
    momentum_end: float = 0.999
    weight_decay: float = 0.0
    step_factor: float = 0.55
    step_every: int = 100
    init: Literal["gaussian", "glorot"] = "gaussian"
    init_std: float = 0.01
    init_bias: float = 0.1
    schedule_unit: Literal["epoch", "step"] = "epoch"
    flip: bool = True
    val_every: int = 1
    grad_clip: float | None = None
    optimizer: Literal["sgd", "adam"] = "sgd"
    warmup_steps: int = 0
    output_bias: Literal["init", "target_mean"] = "init"
    head_norm: bool = False
    freeze_features: bool = False
    target_blur: float = 0.0
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.schedule not in ("official", "coursework", "constant"):
            raise ValueError(f"schedule must be 'official', 'coursework' or 'constant', got {self.schedule!r}")
        if self.schedule_unit not in ("epoch", "step"):
            raise ValueError(f"schedule_unit must be 'epoch' or 'step', got {self.schedule_unit!r}")
        if self.init not in ("gaussian", "glorot"):
            raise ValueError(f"init must be 'gaussian' or 'glorot', got {self.init!r}")
        lo, hi = self.target_range
        if not hi > lo:
            raise ValueError(f"target_range must be (low, high) with high > low, got {self.target_range}")
        for name, allowed in (("optimizer", ("sgd", "adam")), ("output_bias", ("init", "target_mean"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.warmup_steps < 0 or self.target_blur < 0:
            raise ValueError("warmup_steps and target_blur must be >= 0")
        if self.warmup_steps and self.schedule_unit != "step":
            raise ValueError("a warm-up counts optimiser steps: use schedule_unit='step'")
        for name in ("epochs", "batch_size", "val_every", "step_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not isinstance(self.data, SplitSpec):
            raise TypeError(f"data must be a salbook.data.SplitSpec, got {type(self.data).__name__}")
        if self.data.map_size is None:
            raise ValueError("Pan's network predicts a fixed map: give data.map_size (official (48, 48))")
        # a tuple, not a list, so equal configs hash equally however they were written
        object.__setattr__(self, "target_range", tuple(self.target_range))




# --------------------------------------------------------------------------------------------
# named recipes: the official one, the one chapter 1's study recommends, and the study's rows

#: What chapter 1's recipe study recommends, relative to the official recipe, for training the
#: shallow net on a budget of ~128 optimiser steps: keep the convolutions at their random
#: initialisation (training them at this budget silences them), standardise the head's inputs
#: (the head's gradient is otherwise dominated by their shared mean), start the output bias at
#: the mean target (the first steps then learn images, not the mean map) and fit the head with
#: Adam (lr 1e-3, warmed up over 10 steps, decaying linearly to 1e-5). Measured on seeds 0 and 1
#: (1,000 images, 128 steps of batch 32): Adam 1e-3 test CC 0.490 / 0.494, Adam 2e-3 0.489 / 0.493;
#: Nesterov SGD at lr 1.0 (the largest rate stable on every seed without clipping) 0.431, at lr 3-5
#: with the gradient norm clipped at 1 0.472-0.477, and 6 epochs instead of 4 did not help SGD
#: (0.475): the 59 M-weight head needs per-weight step sizes, not a larger global rate.
RECOMMENDED_CHANGES: dict[str, Any] = dict(
    freeze_features=True, head_norm=True, output_bias="target_mean", optimizer="adam", lr=1e-3, lr_end=1e-5,
    warmup_steps=10,
)

#: The recommended recipe with the official optimiser instead of Adam: Nesterov SGD with the
#: momentum ramp, at lr 1.0 (chapter 1's first recommendation; an extra row of the full study).
RECOMMENDED_WITH_SGD: dict[str, Any] = dict(RECOMMENDED_CHANGES, optimizer="sgd", lr=1.0, lr_end=1e-4)


def faithful(data: SplitSpec = DATA, **changes: Any) -> PanConfig:
    """The official recipe (Pan et al.'s public script, with the paper's Gaussian initialisation)."""
    return PanConfig(data=data, **changes)


def recommended(data: SplitSpec = DATA, **changes: Any) -> PanConfig:
    """The official recipe with :data:`RECOMMENDED_CHANGES` (per-step schedules, for the warm-up)."""
    return PanConfig(data=data, **{"schedule_unit": "step", **RECOMMENDED_CHANGES, **changes})


def _without(key: str) -> dict[str, Any]:
    default = getattr(PanConfig(), key)
    return {**RECOMMENDED_CHANGES, key: default}


#: The recipe study's rows: a name and the changes from the official recipe (``epochs_factor``
#: multiplies the run's epochs). The ``STUDY_ROWS`` run in the book profile (the recommended rows
#: are the first seed of the chapter's networks, so they cost nothing extra); ``EXTRA_STUDY_ROWS``
#: join with ``full=True``: the recommended recipe with one change removed at a time, and the
#: practitioner's usual one-change tries of the official recipe.
STUDY_ROWS: dict[str, dict[str, Any]] = {
    "official (Gaussian init, as the paper)": dict(),
    "official (Glorot init, as the official code)": dict(init="glorot"),
    "recommended": dict(RECOMMENDED_CHANGES),
    "recommended, batch norm (pan_shallow_bn)": dict(RECOMMENDED_CHANGES, model="pan_shallow_bn"),
}
EXTRA_STUDY_ROWS: dict[str, dict[str, Any]] = {
    "recommended, convolutions trained too": _without("freeze_features"),
    "recommended without head standardisation": _without("head_norm"),
    "recommended without the output-bias start": _without("output_bias"),
    "recommended with Nesterov SGD, lr 1.0": dict(RECOMMENDED_WITH_SGD),
    "recommended, twice the steps": dict(RECOMMENDED_CHANGES, epochs_factor=2),
    "official, lr 0.005 with a 10-step warm-up": dict(lr=0.005, warmup_steps=10),
    "official with Adam, lr 1e-4": dict(optimizer="adam", lr=1e-4, lr_end=1e-4),
    "official with the output-bias start": dict(output_bias="target_mean"),
    "official, target blurred σ 4": dict(target_blur=4.0),
    "official, batch norm (pan_shallow_bn)": dict(model="pan_shallow_bn"),
}


def study_configs(base: PanConfig, full: bool = False) -> dict[str, PanConfig]:
    """The study's configurations: each row's changes applied to ``base`` (same data, same steps
    unless the row says otherwise); ``full`` adds :data:`EXTRA_STUDY_ROWS`."""
    rows = {**STUDY_ROWS, **(EXTRA_STUDY_ROWS if full else {})}
    out = {}
    for name, changes in rows.items():
        changes = dict(changes)
        factor = changes.pop("epochs_factor", 1)
        if changes.get("warmup_steps"):
            changes["schedule_unit"] = "step"
        out[name] = base.replace(epochs=base.epochs * factor, **changes)
    return out


# --------------------------------------------------------------------------------------------
# model, data, target, loss


def build_model(cfg: PanConfig) -> nn.Module:
    """Build ``cfg.model`` with the config's initialisation (seed torch first for repeatability)."""
    kwargs: dict[str, Any] = {"init": cfg.init, "input_size": cfg.data.input_size, "output_size": cfg.data.map_size}
    if cfg.init == "gaussian":
        kwargs.update(init_std=cfg.init_std, init_bias=cfg.init_bias)
    if cfg.head_norm:
        kwargs["head_norm"] = True
    kwargs.update(cfg.model_kwargs)
    model = models.create(cfg.model, **kwargs)
    if cfg.freeze_features:
        model.features.requires_grad_(False)
    return model


def make_target(fixation_map: torch.Tensor, target_range: Sequence[float] = (-1.0, 1.0),
                blur: float = 0.0) -> torch.Tensor:
    """Map a fixation map in [0, 1] (N × h × w or N × 1 × h × w) linearly onto ``target_range``.

    ``blur`` > 0 first smooths each map with a Gaussian of that σ (map pixels, reflecting border,
    truncated at 4 σ) and rescales it to a maximum of 1. Returns N × 1 × h × w, the shape of the
    network output.
    """
    if fixation_map.dim() == 3:
        fixation_map = fixation_map.unsqueeze(1)
    if blur > 0:
        fixation_map = gaussian_blur(fixation_map, blur)
        fixation_map = fixation_map / fixation_map.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    lo, hi = float(target_range[0]), float(target_range[1])
    return lo + (hi - lo) * fixation_map


def mse_loss(target_range: Sequence[float] = (-1.0, 1.0),
             blur: float = 0.0) -> Callable[[torch.Tensor, Mapping[str, Any]], torch.Tensor]:
    """The "Euclidean" loss: ``loss_fn(output N×1×h×w, batch)`` = mean squared error to the target
    (:func:`make_target` of ``batch["fixation_map"]``).

    The mean runs over the batch and the h × w outputs (Lasagne's ``squared_error`` + mean).
    """
    lo, hi = float(target_range[0]), float(target_range[1])

    def loss_fn(output: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        target = make_target(batch["fixation_map"], (lo, hi), blur)
        if output.shape != target.shape:
            raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape")
        return F.mse_loss(output, target)

    return loss_fn


# --------------------------------------------------------------------------------------------
# optimiser, schedules, augmentation


def make_schedule(cfg: PanConfig, steps_per_epoch: int | None = None) -> ParamSchedule:
    """The hyper-parameter schedule of ``cfg.schedule``, per epoch or per step (``cfg.schedule_unit``).

    ``official``: lr ``numpy.linspace(lr, lr_end, n)[t]``, momentum likewise from ``momentum`` to
    ``momentum_end`` (Pan et al.'s ``AdjustVariable``), with ``n`` the run's epochs (or its
    ``epochs * steps_per_epoch`` optimiser steps). ``coursework``: lr
    ``lr * step_factor ** (epoch // step_every)``, floored at ``lr_end``; momentum constant (always
    per epoch). ``constant``: lr and momentum fixed.
    """
    unit = cfg.schedule_unit if cfg.schedule == "official" else "epoch"
    if cfg.warmup_steps and unit != "step":
        raise ValueError("a warm-up needs the per-step official schedule (schedule_unit='step')")
    if unit == "step" and not steps_per_epoch:
        raise ValueError("a per-step schedule needs steps_per_epoch")
    n = cfg.epochs * (steps_per_epoch if unit == "step" else 1)
    if cfg.schedule == "official":
        lr, momentum = LinearSchedule(cfg.lr, cfg.lr_end, n), LinearSchedule(cfg.momentum, cfg.momentum_end, n)
    elif cfg.schedule == "coursework":
        lr = FlooredSchedule(StepSchedule(cfg.lr, cfg.step_factor, cfg.step_every), cfg.lr_end)
        momentum = ConstantSchedule(cfg.momentum)
    else:
        lr, momentum = ConstantSchedule(cfg.lr), ConstantSchedule(cfg.momentum)
    if cfg.warmup_steps:
        lr = WarmupSchedule(lr, cfg.warmup_steps)
    schedules = {"lr": lr} if cfg.optimizer == "adam" else {"lr": lr, "momentum": momentum}
    return ParamSchedule(schedules, unit=unit)


def make_optimizer(cfg: PanConfig) -> Callable[[Any], torch.optim.Optimizer]:
    """The optimiser factory of ``cfg``: Nesterov SGD (official) or Adam, with its weight decay."""
    from ..train import adam, sgd

    if cfg.optimizer == "adam":
        return adam(cfg.lr, weight_decay=cfg.weight_decay)
    return sgd(cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)


class OutputBiasAtTargetMean(Callback):
    """A training callback that sets the output layer's bias to the mean training
    target (pixel by pixel) before the first step of a fresh run."""

    def __init__(self, mean_target: torch.Tensor) -> None:
        self.mean_target = mean_target.flatten()

    def on_fit_start(self, trainer: Any) -> None:
        if trainer.step == 0:
            with torch.no_grad():
                trainer.model.head.fc2.bias.copy_(self.mean_target.to(trainer.model.head.fc2.bias))


def mean_target(cfg: PanConfig, dataset: Any, batch_size: int = 256) -> torch.Tensor:
    """The mean training target of ``cfg`` over ``dataset``, h × w."""
    from ..data import make_loader

    total, n = None, 0
    for batch in make_loader(dataset, batch_size=batch_size):
        t = make_target(batch["fixation_map"], cfg.target_range, cfg.target_blur).sum(0)[0]
        total = t if total is None else total + t
        n += len(batch["fixation_map"])
    return total / n


# --------------------------------------------------------------------------------------------
# train and evaluate


def train(
    cfg: PanConfig,
    seed: int = 0,
    device: str | torch.device = "auto",
    cache: str | None = None,
    train_data: Any = None,
    val_data: Any = None,
    log: Callable[[str], None] | None = print,
):
    """Train ``cfg`` with ``seed`` (or load it from the model cache): a :class:`salbook.train.TrainResult`.

    ``train_data``/``val_data`` default to :func:`salbook.data.load_split` of ``cfg.data`` (built
    only when training is needed). Pass them to reuse datasets across several runs; they must be
    the config's splits, since the cache key is the config.
    """
    from ..data import hflip_batch, load_split
    from ..metrics import mean_cc_metric
    from ..train import load_or_train

    def train_kwargs() -> dict[str, Any]:
        tr = train_data if train_data is not None else load_split(cfg.data, "train")
        va = val_data if val_data is not None else load_split(cfg.data, "val")
        callbacks = []
        if cfg.output_bias == "target_mean":
            callbacks.append(OutputBiasAtTargetMean(mean_target(cfg, tr)))
        return dict(
            loss_fn=mse_loss(cfg.target_range, cfg.target_blur),
            train_data=tr,
            val_data=va,
            optimizer=make_optimizer(cfg),
            callbacks=callbacks,
            schedule=make_schedule(cfg, math.ceil(len(tr) / cfg.batch_size)),
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            val_every=cfg.val_every,
            val_metric=mean_cc_metric("fixation_map", blur=OFFICIAL_BLUR_SIGMA),
            mode="max",
            augment=hflip_batch if cfg.flip else None,
            grad_clip=cfg.grad_clip,
        )

    return load_or_train(cfg.as_dict(), lambda: build_model(cfg), train_kwargs, seed=seed, cache=cache,
                         device=device, log=log, code=[__name__, "salbook.metrics.batch"])
