"""Chapter 5's recipes: Fisher pruning of LeNet-5 (Table 1) and of a gaze model (Figures 1-3).

LeNet-5
    :class:`LeNetConfig` trains Caffe's LeNet-5 (SGD, momentum 0.9, L2 weight decay 5·10⁻⁴, Caffe's
    ``lr = 0.01 · (1 + 10⁻⁴ t)^−0.75``); :class:`LeNetPruneConfig` continues from it while pruning:
    Fisher with a cost weight ``beta`` (``method="fisher"``), the automatic β* (``"fisher_auto"``), or
    Han et al.'s weight-magnitude pruning (``"han"``). Pruning stops early (the paper: "early
    stopping") at the most-pruned state whose validation error is within ``tolerance`` of the
    unpruned network's, which is what Table 1's "equal error" comparison needs.

Gaze model
    :class:`GazeConfig` trains a :mod:`salbook.models.gaze` model on the fixations (log-likelihood)
    and, when ``teacher_profile`` is set, on the book's teacher's densities (cross-entropy), with the
    paper's weights 0.1 and 0.9 (:func:`gaze_loss`). :class:`GazePruneConfig` prunes it during
    training in **stages** (each stage continues the previous stage's model and is cached on its
    own), so one run yields several pruning amounts, each a model of Figure 2.

Models by name for other chapters: :func:`gaze_models` lists them, :func:`gaze_model` returns one
(cached; pruned ones physically smaller).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import models
from ..data import SplitSpec
from ..distillation import TeacherTargets, hflip_with_teacher
from ..pruning.fisher import METHODS
from ..train.callbacks import Callback
from ._config import RecipeConfig

__all__ = [
    "RECIPE_VERSION",
    "digits_splits",
    "LeNetConfig",
    "LeNetPruneConfig",
    "train_lenet",
    "prune_lenet",
    "classification_error",
    "GAZE_DATA",
    "GazeConfig",
    "GazePruneConfig",
    "gaze_loss",
    "train_gaze",
    "prune_gaze",
    "gaze_models",
    "gaze_model",
    "gaze_configs",
    "GAZE_METRICS",
    "evaluate_gaze",
    "pareto_front",
    "teacher_targets",
]

RECIPE_VERSION = 1
_CODE = [__name__, "salbook.pruning.fisher", "salbook.pruning", "salbook.distillation.losses"]


# --------------------------------------------------------------------------------------------
# LeNet-5 data


class _Digits(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, name: str) -> None:
        self.images, self.labels, self.name = images, labels, name

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "label": int(self.labels[i])}


def digits_splits(data_root: str | None = None, n_val: int | None = None, seed: int = 0
                  ) -> tuple[_Digits, _Digits, _Digits, str]:
    """Train / validation / test digits at 1 × 28 × 28 in [0, 1], and a description of the source.

    With ``data_root`` holding MNIST's IDX files: MNIST (the paper: 53,000 train / 7,000 validation
    of the 60,000, and the 10,000 test images). Otherwise scikit-learn's bundled handwritten digits
    (1,797 images of 8 × 8 pixels, upsampled bilinearly to 28 × 28 — a much smaller substitute),
    shuffled with ``seed`` and split 60 / 20 / 20 %.
    """
    if data_root is not None:
        from ..data.real import MNIST

        tr, te = MNIST(data_root, "train"), MNIST(data_root, "test")
        n_val = 7000 if n_val is None else int(n_val)
        x = torch.from_numpy(tr.images.astype(np.float32) / 255.0)[:, None]
        y = torch.from_numpy(tr.labels.astype(np.int64))
        xt = torch.from_numpy(te.images.astype(np.float32) / 255.0)[:, None]
        yt = torch.from_numpy(te.labels.astype(np.int64))
        k = len(y) - n_val
        return (_Digits(x[:k], y[:k], "train"), _Digits(x[k:], y[k:], "val"), _Digits(xt, yt, "test"),
                f"MNIST ({k:,} train / {n_val:,} validation / {len(yt):,} test)")
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 1)
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    n = len(y)
    a, b = int(0.6 * n), int(0.8 * n)
    return (_Digits(x[:a], y[:a], "train"), _Digits(x[a:b], y[a:b], "val"), _Digits(x[b:], y[b:], "test"),
            f"scikit-learn's digits, a substitute for MNIST ({a} train / {b - a} validation / {n - b} test, "
            "8 × 8 upsampled to 28 × 28)")


def classification_error(model: nn.Module, data: Any, batch_size: int = 512) -> float:
    """Fraction of misclassified examples of ``data`` (eval mode, no gradients)."""
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    wrong = 0
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            xs = torch.stack([data[j]["image"] for j in range(i, min(len(data), i + batch_size))]).to(dev)
            ys = torch.tensor([data[j]["label"] for j in range(i, min(len(data), i + batch_size))], device=dev)
            wrong += int((model(xs).argmax(1) != ys).sum())
    model.train(was)
    return wrong / len(data)


def _ce(output: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
    return F.cross_entropy(output, batch["label"])


@dataclass(frozen=True)
class LeNetConfig(RecipeConfig):
    """Caffe's LeNet-5 solver (``lenet_solver.prototxt``) on ``data`` for ``steps`` SGD steps.

    Attributes:
        data: ``"digits"`` (scikit-learn) or ``"mnist"`` (then ``data_root`` is the IDX folder).
        steps, batch_size: Caffe: 10,000 steps of 64.
        lr, momentum, weight_decay: Caffe: 0.01, 0.9, 5·10⁻⁴ (L2); lr decays as ``(1 + 10⁻⁴ t)^−0.75``.
    """

    RECIPE = f"fisher.lenet/{RECIPE_VERSION}"

    data: str = "digits"
    data_root: str | None = None
    steps: int = 2000
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def __post_init__(self) -> None:
        if self.data not in ("digits", "mnist"):
            raise ValueError(f"data must be 'digits' or 'mnist', got {self.data!r}")
        if self.data == "mnist" and self.data_root is None:
            raise ValueError("data='mnist' needs data_root= (the folder of the MNIST IDX files)")
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("steps and batch_size must be >= 1 and lr > 0")


def _caffe_inv(lr: float):
    from ..schedules import ParamSchedule, Schedule

    @dataclass(frozen=True)
    class _Inv(Schedule):
        base: float

        def __call__(self, t: int) -> float:
            return float(self.base * (1.0 + 1e-4 * self._check_index(t)) ** -0.75)

    return ParamSchedule({"lr": _Inv(lr)}, unit="step")


def _lenet_data(cfg: LeNetConfig):
    return digits_splits(cfg.data_root if cfg.data == "mnist" else None)


def train_lenet(cfg: LeNetConfig, seed: int = 0, device: str | torch.device = "auto", cache: str | None = None,
                log: Callable[[str], None] | None = print):
    """Train (or load) the unpruned LeNet-5: a :class:`salbook.train.TrainResult` (last weights)."""
    from ..train import load_or_train, sgd

    def kwargs() -> dict[str, Any]:
        tr, _va, _te, _desc = _lenet_data(cfg)
        return dict(loss_fn=_ce, train_data=tr, val_data=None, steps=cfg.steps, batch_size=cfg.batch_size,
                    optimizer=sgd(cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay),
                    schedule=_caffe_inv(cfg.lr))

    return load_or_train(cfg.as_dict(), lambda: models.create("lenet5"), kwargs, seed=seed, cache=cache,
                         device=device, log=log, code=_CODE)


@dataclass(frozen=True)
class LeNetPruneConfig(RecipeConfig):
    """Prune the trained :class:`LeNetConfig` network while training on (Table 1's rows).

    Attributes:
        base: the unpruned network's config.
        method: ``"fisher"`` (with ``beta``), ``"fisher_auto"`` (β*) or ``"han"`` (weight magnitude).
        beta: the cost weight (relative FLOPs; ``fisher`` only).
        steps_per_prune: training steps between two pruned maps (the paper: 10).
        max_steps: the longest pruning run.
        tolerance: early stopping keeps the most-pruned state whose validation error is at most the
            unpruned network's + ``tolerance`` (absolute, e.g. 0.005 = half a percentage point).
        han_levels, han_steps: Han et al.: the per-layer sparsities tried in turn, and the
            retraining steps at each.
        lr: SGD learning rate while pruning (Caffe's schedule continued at this base).
        check_every: Fisher: validate (for early stopping) every this many pruned maps.
    """

    RECIPE = f"fisher.lenet_prune/{RECIPE_VERSION}"

    base: LeNetConfig = field(default_factory=LeNetConfig)
    method: str = "fisher"
    beta: float = 0.0
    steps_per_prune: int = 10
    max_steps: int = 4000
    tolerance: float = 0.005
    han_levels: tuple[float, ...] = (0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97)
    han_steps: int = 300
    lr: float = 0.005
    check_every: int = 1

    def __post_init__(self) -> None:
        if self.method not in ("fisher", "fisher_auto", "han"):
            raise ValueError(f"method must be 'fisher', 'fisher_auto' or 'han', got {self.method!r}")
        if self.beta < 0 or self.tolerance < 0:
            raise ValueError("beta and tolerance must be >= 0")


def prune_lenet(cfg: LeNetPruneConfig, seed: int = 0, device: str | torch.device = "auto",
                cache: str | None = None, log: Callable[[str], None] | None = print):
    """Prune (or load) one Table 1 row: a :class:`salbook.train.TrainResult` holding the masked
    network (Fisher) or the sparse one (Han) chosen by early stopping."""
    from ..pruning.fisher import FisherPruning, MagnitudePruning
    from ..train import load_or_train, sgd

    base = train_lenet(cfg.base, seed=seed, device=device, cache=cache, log=log)
    base_state = {k: v.detach().cpu().clone() for k, v in base.model.state_dict().items()}

    def build() -> nn.Module:
        net = models.create("lenet5")
        net.load_state_dict(base_state)
        return net

    def kwargs() -> dict[str, Any]:
        tr, va, _te, _desc = _lenet_data(cfg.base)
        threshold = classification_error(base.model, va) + cfg.tolerance
        validate = lambda m: classification_error(m, va)  # noqa: E731
        if cfg.method == "han":
            levels = cfg.han_levels
            cb = MagnitudePruning(levels, cfg.han_steps, validate=validate, threshold=threshold,
                                  stop_margin=0.02)
            steps = cfg.han_steps * (len(levels) + 1)
        else:
            cb = FisherPruning((1, 28, 28), cfg.method, cfg.beta, steps_per_prune=cfg.steps_per_prune,
                               seed=seed, validate=validate, threshold=threshold, check_every=cfg.check_every,
                               stop_margin=0.03)
            steps = cfg.max_steps
        return dict(loss_fn=_ce, train_data=tr, val_data=None, steps=steps, batch_size=cfg.base.batch_size,
                    optimizer=sgd(cfg.lr, momentum=cfg.base.momentum, weight_decay=cfg.base.weight_decay),
                    schedule=_caffe_inv(cfg.lr), callbacks=[cb])

    return load_or_train(cfg.as_dict(), build, kwargs, seed=seed, cache=cache, device=device, log=log, code=_CODE)


# --------------------------------------------------------------------------------------------
# gaze model

#: The book's gaze data: generated scenes at 96 × 128 (the teacher's size), test maps at 192 × 256.
GAZE_DATA = SplitSpec(n_train=600, n_val=64, n_test=200, input_size=(96, 128), map_size=None, eval_size=(192, 256))


def _log_p_at_fixations(output: torch.Tensor, fixations: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over images of the mean log-density (nats) at each image's fixations."""
    lp = output[:, 0]
    vals = []
    for n, fix in enumerate(fixations):
        fix = fix.to(lp.device).long()
        if len(fix) == 0:
            continue
        vals.append(lp[n, fix[:, 0].clamp(0, lp.shape[1] - 1), fix[:, 1].clamp(0, lp.shape[2] - 1)].mean())
    if not vals:
        raise ValueError("gaze_loss: no image in the batch has a fixation")
    return torch.stack(vals).mean()


def gaze_loss(output: torch.Tensor, batch: Mapping[str, Any], data_weight: float = 0.1,
              teacher_weight: float = 0.9) -> dict[str, torch.Tensor]:
    """The paper's objective: ``0.1 ×`` the fixations' negative log-likelihood ``+ 0.9 ×`` the
    cross-entropy ``−Σ q log p`` to the teacher's density ``q`` (``batch["teacher_density"]``).

    Args:
        output: ``N × 1 × H × W`` log-densities (nats) at the fixations' grid.
        batch: ``fixations`` (a list of ``k × 2`` (row, col) pixel positions) and, for distillation,
            ``teacher_density`` (``N × H × W``, each summing to 1). Without a teacher density the
            loss is the data term alone (weight 1).

    Returns:
        ``{"data": ..., "teacher": ...}`` (nats per fixation / per image), already weighted.
    """
    if output.dim() != 4 or output.shape[1] != 1:
        raise ValueError(f"gaze_loss expects N×1×H×W log-densities, got {tuple(output.shape)}")
    nll = -_log_p_at_fixations(output, batch["fixations"])
    q = batch.get("teacher_density")
    if q is None:
        return {"data": nll}
    q = q.to(output.device)
    if tuple(q.shape[-2:]) != tuple(output.shape[-2:]):
        raise ValueError(f"teacher_density {tuple(q.shape)} does not match the output {tuple(output.shape)}")
    ce = -(q.flatten(1) * output.flatten(1)).sum(1).mean()
    return {"data": data_weight * nll, "teacher": teacher_weight * ce}


def teacher_targets(dataset: Any, profile: str, device: str | torch.device = "auto", batch_size: int = 16,
                    log: Callable[[str], None] | None = print) -> torch.Tensor:
    """The book teacher's densities (``N × H × W``, on the CPU) for every image of ``dataset``:
    :func:`salbook.distillation.teacher_maps` of :func:`salbook.recipes.fastsal.teacher` with its density
    (σ of the logits, normalised to sum 1 per image) as the map."""
    from ..distillation import teacher_maps
    from ..utils import resolve_device
    from . import fastsal
    from .fastsal_teacher import _density_map

    teacher = fastsal.teacher(profile, device=device, log=log)
    return teacher_maps(teacher, dataset, batch_size=batch_size, device=resolve_device(device), to_map=_density_map)


@dataclass(frozen=True)
class GazeConfig(RecipeConfig):
    """A trained, unpruned gaze model.

    Attributes:
        model: ``"gaze_lite0"`` (the book), ``"fastgaze"`` or ``"densegaze"`` (paper profile, with
            ``weights`` a local torchvision file).
        data: the splits (:data:`GAZE_DATA`).
        teacher_profile: the book teacher's profile (:func:`salbook.recipes.fastsal.teacher`) whose
            densities are distilled; ``None``: fixations only.
        data_weight, teacher_weight: the paper's 0.1 and 0.9.
        epochs, batch_size, lr: Adam (the paper's optimiser; lr 10⁻³ for the readout, cosine to 1 %).
        backbone_lr_mult: the trunk's lr relative to the readout's (fine-tuning).
        weights: the trunk's weights (``"imagenet"`` for Lite0, a path or ``None`` for the others).
    """

    RECIPE = f"fisher.gaze/{RECIPE_VERSION}"

    model: str = "gaze_lite0"
    data: SplitSpec = field(default_factory=lambda: GAZE_DATA)
    teacher_profile: str | None = "book"
    data_weight: float = 0.1
    teacher_weight: float = 0.9
    epochs: int = 3
    batch_size: int = 8
    lr: float = 1e-3
    backbone_lr_mult: float = 0.1
    weights: str | None = "imagenet"

    def __post_init__(self) -> None:
        if self.model not in ("gaze_lite0", "fastgaze", "densegaze"):
            raise ValueError(f"model must be gaze_lite0, fastgaze or densegaze, got {self.model!r}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")


@dataclass(frozen=True)
class GazePruneConfig(RecipeConfig):
    """One stage of pruning a gaze model while training (stage 1 starts from ``base``).

    Attributes:
        base: the unpruned model's config.
        method, beta: :func:`salbook.pruning.fisher.select`'s rule and cost weight.
        stage: 1, 2, ...; stage k continues stage k − 1's model.
        decisions: prune decisions in this stage; ``maps_per_prune`` maps each (costs updated after
            each map), ``steps_per_prune`` training steps between two decisions.
        finetune_steps: training steps after the stage's last decision.
        stages_before: ``(decisions, finetune_steps)`` of stages 1 … stage − 1, when they differ from
            this stage's (``None``: every earlier stage was like this one). Finer stages at the end of a
            chain, where a fixed number of maps is a growing share of what is left, are written this
            way; a stage's cache key so depends on its own chain and not on stages after it.
        lr: Adam's learning rate (readout; trunk × ``base.backbone_lr_mult``), constant.
    """

    RECIPE = f"fisher.gaze_prune/{RECIPE_VERSION}"

    base: GazeConfig = field(default_factory=GazeConfig)
    method: str = "fisher"
    beta: float = 0.0
    stage: int = 1
    decisions: int = 20
    maps_per_prune: int = 100
    steps_per_prune: int = 5
    finetune_steps: int = 20
    lr: float = 3e-4
    stages_before: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {METHODS}")
        if self.stage < 1 or self.decisions < 1 or self.maps_per_prune < 1 or self.steps_per_prune < 1:
            raise ValueError("stage, decisions, maps_per_prune and steps_per_prune must be >= 1")
        if self.stages_before is not None:
            before = tuple((int(d), int(f)) for d, f in self.stages_before)
            if len(before) != self.stage - 1 or any(d < 1 or f < 0 for d, f in before):
                raise ValueError(f"stages_before must list (decisions >= 1, finetune_steps >= 0) of stages 1 … "
                                 f"{self.stage - 1}, got {self.stages_before!r} for stage {self.stage}")
            # one spelling per chain (the cache key): a uniform schedule is None
            same = all(b == (self.decisions, self.finetune_steps) for b in before)
            object.__setattr__(self, "stages_before", None if same else before)

    def previous(self) -> "GazePruneConfig | None":
        """The config of stage − 1, which this stage continues (``None`` for stage 1)."""
        if self.stage == 1:
            return None
        if self.stages_before is None:
            return self.replace(stage=self.stage - 1)
        decisions, finetune = self.stages_before[-1]
        return self.replace(stage=self.stage - 1, decisions=decisions, finetune_steps=finetune,
                            stages_before=self.stages_before[:-1])

    @property
    def maps_removed(self) -> int:
        """Feature maps pruned by stages 1 … stage together."""
        before = self.stages_before or ((self.decisions, self.finetune_steps),) * (self.stage - 1)
        return (sum(d for d, _ in before) + self.decisions) * self.maps_per_prune


_TARGETS: dict[tuple, Any] = {}


def _gaze_train_set(cfg: GazeConfig, device: Any, log: Any) -> Any:
    from ..data import load_split

    tr = load_split(cfg.data, "train")
    if cfg.teacher_profile is None:
        return tr
    key = (repr(cfg.data), cfg.teacher_profile)
    if key not in _TARGETS:
        _TARGETS[key] = teacher_targets(tr, cfg.teacher_profile, device=device, log=log)
    return TeacherTargets(tr, _TARGETS[key], key="teacher_density")


def _build_gaze(cfg: GazeConfig) -> nn.Module:
    return models.create(cfg.model, weights=cfg.weights)


def _gaze_groups(cfg: GazeConfig):
    from ..train import ParamGroup, param_groups

    trunk = ParamGroup("trunk", lambda name, _p: name.startswith("layers."), lr_mult=cfg.backbone_lr_mult)
    head = ParamGroup("head", lambda _n, _p: True)
    return lambda model: param_groups(model, [trunk], rest=head)


class _CentreBias(Callback):
    """Set the finalizer's centre bias from the training fixations at the start of a fit."""

    def __init__(self, density: torch.Tensor) -> None:
        self.density = density

    def on_fit_start(self, trainer) -> None:
        trainer.model.finalizer.set_centre_bias(self.density)


def _loss_fn(cfg: GazeConfig):
    return lambda out, batch: gaze_loss(out, batch, cfg.data_weight, cfg.teacher_weight)


def train_gaze(cfg: GazeConfig, seed: int = 0, device: str | torch.device = "auto", cache: str | None = None,
               log: Callable[[str], None] | None = print):
    """Train (or load) the unpruned gaze model: a :class:`salbook.train.TrainResult`.

    Adam, two parameter groups (trunk at ``lr × backbone_lr_mult``), cosine decay per step to 1 %,
    :func:`gaze_loss`, the epoch with the lowest validation loss (fixations only) kept. The centre
    bias is :class:`salbook.baselines.CenterBias` fitted on the training fixations.
    """
    from ..baselines import CenterBias
    from ..data import hflip_batch, load_split
    from ..schedules import CosineSchedule, ParamSchedule
    from ..train import adam, load_or_train

    def kwargs() -> dict[str, Any]:
        tr = _gaze_train_set(cfg, device, log)
        va = load_split(cfg.data, "val")
        centre = CenterBias.fit(load_split(cfg.data, "train"), progress=False).density
        steps = cfg.epochs * math.ceil(len(tr) / cfg.batch_size)
        return dict(loss_fn=_loss_fn(cfg), train_data=tr, val_data=va, epochs=cfg.epochs,
                    batch_size=cfg.batch_size, optimizer=adam(cfg.lr), param_groups=_gaze_groups(cfg),
                    schedule=ParamSchedule({"lr": CosineSchedule(cfg.lr, cfg.lr / 100, max(1, steps))}, unit="step"),
                    augment=hflip_with_teacher if cfg.teacher_profile else hflip_batch,
                    callbacks=[_CentreBias(centre)])

    return load_or_train(cfg.as_dict(), lambda: _build_gaze(cfg), kwargs, seed=seed, cache=cache, device=device,
                         log=log, code=_CODE)


def prune_gaze(cfg: GazePruneConfig, seed: int = 0, device: str | torch.device = "auto", cache: str | None = None,
               log: Callable[[str], None] | None = print):
    """Run (or load) one pruning stage: a :class:`salbook.train.TrainResult` with the masked model
    and, in ``history``, ``maps_pruned`` and ``relative_flops``."""
    from ..pruning.fisher import FisherPruning
    from ..train import adam, load_or_train

    built: list[nn.Module] = []

    def build() -> nn.Module:
        built.append(_build_gaze(cfg.base))
        return built[-1]

    def kwargs() -> dict[str, Any]:
        # training only: start from the previous stage (loaded, or trained first). A cached stage loads its
        # own weights, so loading stage k no longer loads stages 1 … k − 1 (quadratic in the stages).
        previous = cfg.previous()
        if previous is None:
            parent = train_gaze(cfg.base, seed=seed, device=device, cache=cache, log=log)
        else:
            parent = prune_gaze(previous, seed=seed, device=device, cache=cache, log=log)
        built[-1].load_state_dict({k: v.detach().cpu() for k, v in parent.model.state_dict().items()})
        tr = _gaze_train_set(cfg.base, device, log)
        h, w = cfg.base.data.input_size
        cb = FisherPruning((3, h, w), cfg.method, cfg.beta, steps_per_prune=cfg.steps_per_prune,
                           maps_per_prune=cfg.maps_per_prune, n_prune=cfg.decisions * cfg.maps_per_prune, seed=seed)
        steps = cfg.decisions * cfg.steps_per_prune + cfg.finetune_steps
        return dict(loss_fn=_loss_fn(cfg.base), train_data=tr, val_data=None, steps=steps,
                    batch_size=cfg.base.batch_size, optimizer=adam(cfg.lr), param_groups=_gaze_groups(cfg.base),
                    augment=hflip_with_teacher if cfg.base.teacher_profile else None, callbacks=[cb])

    return load_or_train(cfg.as_dict(), build, kwargs, seed=seed, cache=cache, device=device, log=log, code=_CODE)


# --------------------------------------------------------------------------------------------
# models by name (chapter 7)


def gaze_configs(profile: str = "book", teacher: bool = True, model: str = "gaze_lite0",
                 weights: str | None = "imagenet") -> dict[str, GazeConfig | GazePruneConfig]:
    """The chapter's gaze models by name: ``"unpruned"`` and ``"<method>_b<beta>_s<stage>"``.

    Each run prunes in coarse stages, then in finer ones that train longer after pruning (``book``: 10
    stages of 800 maps and 12 steps after the last decision, then 3 of 200 maps and 60 steps, the last
    one 200), stage k continuing stage k − 1 (:meth:`GazePruneConfig.previous`).

    ``model`` / ``weights``: the trunk (``"gaze_lite0"`` with ``"imagenet"``; in the ``paper`` profile
    ``"fastgaze"`` or ``"densegaze"`` with a local torchvision weights file).
    """
    if model != "gaze_lite0" and weights == "imagenet":
        raise ValueError(f"{model} has no offline ImageNet weights: pass weights=PATH (a torchvision state dict) or None")
    from ..book import pick

    S = pick(profile,
             smoke=dict(data=GAZE_DATA.replace(n_train=8, n_val=4, n_test=8, input_size=(64, 96), eval_size=(64, 96)),
                        epochs=1, decisions=2, maps=400, steps=1, finetune=0, stages=1, fine_stages=1,
                        fine_decisions=1, fine_finetune=1, betas=(0.0, 1.0)),
             # 800 maps a stage: in stages of 2,400 (12 decisions) the model went from 40 % of the FLOPs at
             # AUC 0.872 straight to 6 % at the centre bias's 0.785; β = 1 cost 0.05 AUC in its first stage.
             # Then stages of 200: after 8,000 of its 8,978 maps, a stage of 800 would remove 82 % of what
             # is left (AUC 0.866 -> 0.786 in one stage). They train longer after pruning: stage 12 of the
             # β = 0 run, with 12 steps, had AUC 0.858; 50 and 150 steps more took it to 0.869 and 0.871
             # (β = 0.1: 0.857 -> 0.862, 0.865; measured while writing chapter 5). The last stage, which no
             # stage continues, trains longest: with 60 steps the β = 0.1 run's stage 13 had AUC 0.8621, just
             # under the unpruned model's interval (0.8622 …), with 120 0.8649; it trains 200
             book=dict(data=GAZE_DATA, epochs=3, decisions=4, maps=200, steps=4, finetune=12, stages=10,
                       fine_stages=3, fine_decisions=1, fine_finetune=60, last_finetune=200, betas=(0.0, 0.1)),
             paper=dict(data=GAZE_DATA.replace(n_train=None, n_val=None, n_test=None, input_size=(192, 256)),
                        epochs=20, decisions=200, maps=10, steps=10, finetune=200, stages=4, fine_stages=3,
                        fine_decisions=20, fine_finetune=400, betas=(0.0, 1e-2, 1e-1)))
    base = GazeConfig(model=model, weights=weights, data=S["data"], epochs=S["epochs"],
                      teacher_profile=(profile if teacher else None))
    out: dict[str, GazeConfig | GazePruneConfig] = {"unpruned": base}
    runs = [("fisher", b) for b in S["betas"]] + [("fisher_auto", 0.0)]
    for method, beta in runs:
        schedule = ([(S["decisions"], S["finetune"])] * S["stages"]
                    + [(S["fine_decisions"], S["fine_finetune"])] * S["fine_stages"])
        if S.get("last_finetune") is not None:
            schedule[-1] = (schedule[-1][0], S["last_finetune"])
        for stage, (decisions, finetune) in enumerate(schedule, start=1):
            out[f"{method}_b{beta:g}_s{stage}"] = GazePruneConfig(
                base=base, method=method, beta=beta, stage=stage, decisions=decisions, finetune_steps=finetune,
                stages_before=tuple(schedule[:stage - 1]), maps_per_prune=S["maps"], steps_per_prune=S["steps"])
    return out


def gaze_models(profile: str = "book") -> list[str]:
    """Names :func:`gaze_model` accepts for ``profile``."""
    return list(gaze_configs(profile))


def gaze_model(name: str, profile: str = "book", *, seed: int = 0, device: str | torch.device = "auto",
               remove: bool = True, log: Callable[[str], None] | None = print) -> nn.Module:
    """One of chapter 5's gaze models, from the cache (trained on first use), in eval mode.

    Args:
        name: from :func:`gaze_models` (``"unpruned"``, ``"fisher_b0_s3"``, ``"fisher_b1_s3"``...).
        remove: return the physically smaller network (masks removed, Torch-Pruning) instead of the
            masked one.

    Returns:
        ``images N × 3 × H × W in [0, 1] -> log-density N × 1 × H × W``.
    """
    from ..pruning.removal import remove_pruned

    configs = gaze_configs(profile)
    if name not in configs:
        raise KeyError(f"unknown gaze model {name!r}; known: {', '.join(configs)}")
    cfg = configs[name]
    result = (train_gaze(cfg, seed=seed, device=device, log=log) if isinstance(cfg, GazeConfig)
              else prune_gaze(cfg, seed=seed, device=device, log=log))
    model = result.model.eval()
    if remove:
        base = cfg if isinstance(cfg, GazeConfig) else cfg.base
        model = remove_pruned(model, torch.zeros(1, 3, *base.data.input_size))
    return model


# --------------------------------------------------------------------------------------------
# evaluation helpers

GAZE_METRICS = ("auc_judd", "nss", "sim", "cc", "log_likelihood")


def evaluate_gaze(model: nn.Module, test_set: Any, device: str | torch.device = "cpu", seed: int = 0,
                  name: str | None = None):
    """Score a gaze model (log-density output) on ``test_set``: AUC-Judd, NSS, SIM and CC of its
    density (``exp``), and the log-likelihood of its log-density in bits per fixation relative to the
    uniform density (chapter 0's metric); one :class:`salbook.evaluation.EvalResult`."""
    from ..evaluation import EvalResult, evaluate, summarize

    common = dict(device=device, seed=seed, progress=False, name=name)
    dens = evaluate(model, test_set, ("auc_judd", "nss", "sim", "cc"), postprocess=torch.exp, **common)
    ll = evaluate(model, test_set, ("log_likelihood",), postprocess=None, **common)
    per = dens.per_image.merge(ll.per_image, on="name", how="left", validate="one_to_one")
    return EvalResult(per, summarize(per, GAZE_METRICS), {**dens.settings, "metrics": list(GAZE_METRICS)})


def pareto_front(x: Sequence[float], y: Sequence[float]) -> list[int]:
    """Indices of the points not dominated when lower ``x`` (time) and higher ``y`` (score) are better,
    sorted by ``x``."""
    order = sorted(range(len(x)), key=lambda i: (x[i], -y[i]))
    front, best = [], -math.inf
    for i in order:
        if y[i] > best:
            front.append(i)
            best = y[i]
    return front
