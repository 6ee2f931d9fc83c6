"""Training and evaluation recipe for Pan et al.'s shallow convnet (chapter 1).

Everything the chapter trains goes through :func:`train`, which hands a :class:`PanConfig` to
:func:`salbook.train.load_or_train` (so a finished model is loaded from the cache, keyed by the
config, the seed and the code). The pieces are public so the chapter can show them:

* data — :func:`load_split`: images resized to 96 × 96 (whole image, aspect not kept), training
  targets the blurred fixation map at 48 × 48; the test split keeps its ground truth at
  ``eval_size`` (the "image size" the official code resizes predictions to).
* target — :func:`make_target`: the fixation map (max 1) mapped linearly to ``target_range``;
  the official code uses [−1, 1] (``map / 127.5 − 1`` on 8-bit maps).
* loss — :func:`mse_loss`: mean squared error over the 48 × 48 outputs and the batch ("Euclidean").
* optimiser — :func:`make_optimizer`: SGD with Nesterov momentum (and the coursework's L2 weight decay).
* schedules — :func:`make_schedule`: ``"official"`` (lr linear 0.05 → 1e-4, momentum linear
  0.9 → 0.999, over the run's epochs), ``"coursework"`` (lr × 0.55 every ``step_every`` epochs,
  never below ``lr_end``, momentum constant), or ``"constant"``.
* augmentation — :func:`flip_half`: in every batch a random half of the samples is mirrored
  left-right (image and target), as the official training script does.
* post-processing — :func:`official_postprocess`: Gaussian blur σ = 3 pixels on the 48 × 48 map,
  then min-max to [0, 1]; :func:`salbook.evaluation.evaluate` then resizes it (bilinear) to the
  ground truth's size. :func:`plain_postprocess` is the same without the blur.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torch import nn

from .. import models
from ..maps import minmax
from ..schedules import ConstantSchedule, LinearSchedule, ParamSchedule, StepSchedule

__all__ = [
    "RECIPE_VERSION",
    "PAPER_RESULTS",
    "PanConfig",
    "build_model",
    "load_split",
    "make_target",
    "mse_loss",
    "batch_cc",
    "val_cc",
    "make_optimizer",
    "make_schedule",
    "flip_half",
    "official_postprocess",
    "plain_postprocess",
    "predict_maps",
    "train",
    "evaluate",
]

RECIPE_VERSION = 1

#: Published SALICON validation results (CC, shuffled AUC, AUC-Borji): Pan et al. (2016) as
#: quoted by the replication, the replication itself, and the replication with batch norm.
PAPER_RESULTS: dict[str, dict[str, float]] = {
    "Pan et al. 2016 (shallow)": {"cc": 0.58, "auc_shuffled": 0.67, "auc_borji": 0.83},
    "coursework replication": {"cc": 0.65, "auc_shuffled": 0.55, "auc_borji": 0.71},
    "coursework replication + BN": {"cc": 0.69, "auc_shuffled": 0.59, "auc_borji": 0.73},
}

ScheduleName = Literal["official", "coursework", "constant"]


@dataclass(frozen=True)
class PanConfig:
    """Every setting that determines a trained shallow net (hashed into the model cache key).

    Defaults are the official recipe (Pan et al.'s public Lasagne script) except where noted.

    Attributes:
        model: registered model name (``pan_shallow``, ``pan_shallow_bn``, ``pan_shallow_coursework``...).
        dataset: ``"synthetic"`` (generated, default) or ``"salicon"`` (needs ``data_root``).
        data_root: folder of a real dataset in its published layout.
        n_train, n_val, n_test: images per split (``None``: the whole split).
        data_seed: seed of the generated dataset (not of training); real datasets take their
            first ``n`` images.
        input_size: (H, W) the images are resized to, pixels.
        map_size: (h, w) of the network output and of the training targets, pixels.
        eval_size: (h, w) of the test ground truth (``None``: the loader's default, which for
            real datasets is the image size, so give SALICON's (480, 640) explicitly).
        val_split, test_split: dataset splits that validate and test; ``val_split="train"``
            holds the validation images out of the training split (see :func:`load_split`).
            SALICON's public fixations cover only train and val, so there ``test_split="val"``.
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
        model_kwargs: extra keyword arguments for the model builder (e.g. a small ``fc_hidden``
            for tests); empty for every model the chapter reports.
    """

    model: str = "pan_shallow"
    dataset: str = "synthetic"
    data_root: str | None = None
    n_train: int | None = 2000
    n_val: int | None = 250
    n_test: int | None = 250
    data_seed: int = 0
    input_size: tuple[int, int] = (96, 96)
    map_size: tuple[int, int] = (48, 48)
    eval_size: tuple[int, int] | None = (192, 256)
    val_split: str = "val"
    test_split: str = "test"
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
        for name in ("epochs", "batch_size", "val_every", "step_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.dataset != "synthetic" and self.data_root is None:
            raise ValueError(f"dataset={self.dataset!r} needs data_root= (the folder of the published dataset)")
        # tuples, not lists, so equal configs hash equally however they were written
        for name in ("input_size", "map_size", "eval_size", "target_range"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))

    def replace(self, **changes: Any) -> "PanConfig":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The config as a JSON-friendly dict, with the recipe version (the cache key's input)."""
        return {"recipe": f"pan/{RECIPE_VERSION}", **dataclasses.asdict(self)}


# --------------------------------------------------------------------------------------------
# model, data, target, loss


def build_model(cfg: PanConfig) -> nn.Module:
    """Build ``cfg.model`` with the config's initialisation (seed torch first for repeatability)."""
    kwargs: dict[str, Any] = {"init": cfg.init, "input_size": cfg.input_size, "output_size": cfg.map_size}
    if cfg.init == "gaussian":
        kwargs.update(init_std=cfg.init_std, init_bias=cfg.init_bias)
    kwargs.update(cfg.model_kwargs)
    return models.create(cfg.model, **kwargs)


def load_split(cfg: PanConfig, role: str) -> Any:
    """The dataset for ``role`` (``"train"``, ``"val"`` or ``"test"``), see :func:`salbook.data.load`.

    ``image`` is ``cfg.input_size``; maps and fixations are ``cfg.map_size`` for ``train`` and
    ``val`` (the training target) and ``cfg.eval_size`` for ``test`` (the evaluation ground truth).
    The dataset split read is ``"train"``, ``cfg.val_split`` or ``cfg.test_split``. When
    ``cfg.val_split == "train"`` the validation images are held out of the training split, as
    nolearn does in the official script: the split's last ``n_val`` images (20 % when ``n_val``
    is ``None``) validate and the ones before them (at most ``n_train``) train.
    """
    from torch.utils.data import Subset

    from .. import data

    if role not in ("train", "val", "test"):
        raise ValueError(f"role must be 'train', 'val' or 'test', got {role!r}")

    def read(split: str, n: int | None, target: tuple[int, int] | None) -> Any:
        kwargs: dict[str, Any] = dict(size=cfg.input_size)
        if target is not None:
            kwargs["target_size"] = target
        if cfg.dataset == "synthetic":
            kwargs["seed"] = cfg.data_seed
            if n is not None:
                kwargs["n"] = n
            return data.load(cfg.dataset, split, **kwargs)
        ds = data.load(cfg.dataset, split, root=cfg.data_root, **kwargs)
        return ds if n is None or n >= len(ds) else Subset(ds, range(n))

    if role == "test":
        return read(cfg.test_split, cfg.n_test, cfg.eval_size)
    if cfg.val_split != "train":
        split = "train" if role == "train" else cfg.val_split
        return read(split, cfg.n_train if role == "train" else cfg.n_val, cfg.map_size)
    both = None if cfg.n_train is None or cfg.n_val is None else cfg.n_train + cfg.n_val
    full = read("train", both, cfg.map_size)
    total = len(full)
    n_val = cfg.n_val if cfg.n_val is not None else int(round(0.2 * total))
    if not 0 < n_val < total:
        raise ValueError(f"cannot hold out {n_val} of {total} training images for validation")
    if role == "val":
        return Subset(full, range(total - n_val, total))
    n_train = total - n_val if cfg.n_train is None else min(cfg.n_train, total - n_val)
    return Subset(full, range(n_train))


def make_target(fixation_map: torch.Tensor, target_range: Sequence[float] = (-1.0, 1.0)) -> torch.Tensor:
    """Map a fixation map in [0, 1] (N × h × w or N × 1 × h × w) linearly onto ``target_range``.

    Returns N × 1 × h × w, the shape of the network output.
    """
    if fixation_map.dim() == 3:
        fixation_map = fixation_map.unsqueeze(1)
    lo, hi = float(target_range[0]), float(target_range[1])
    return lo + (hi - lo) * fixation_map


def mse_loss(target_range: Sequence[float] = (-1.0, 1.0)) -> Callable[[torch.Tensor, Mapping[str, Any]], torch.Tensor]:
    """The "Euclidean" loss: ``loss_fn(output N×1×h×w, batch)`` = mean squared error to the target.

    The mean runs over the batch and the h × w outputs (Lasagne's ``squared_error`` + mean).
    """
    lo, hi = float(target_range[0]), float(target_range[1])

    def loss_fn(output: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        target = make_target(batch["fixation_map"], (lo, hi))
        if output.shape != target.shape:
            raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape")
        return F.mse_loss(output, target)

    return loss_fn


def batch_cc(output: torch.Tensor, fixation_map: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation between output maps and fixation maps (both N×h×w or N×1×h×w).

    Returns N values; an image whose prediction or target is constant gets 0.
    """
    a = output.reshape(output.shape[0], -1).double()
    b = fixation_map.reshape(fixation_map.shape[0], -1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    den = (a.square().sum(1) * b.square().sum(1)).sqrt()
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-300), torch.zeros_like(den))


def val_cc(model: nn.Module, loader: Any, device: torch.device) -> float:
    """Validation metric for :func:`salbook.train.fit`: mean CC of the raw 48 × 48 outputs with the
    fixation maps, over every image the loader yields."""
    total, count = 0.0, 0
    for batch in loader:
        values = batch_cc(model(batch["image"]), batch["fixation_map"])
        total += float(values.sum())
        count += int(values.numel())
    return total / max(count, 1)


# --------------------------------------------------------------------------------------------
# optimiser, schedules, augmentation


def make_optimizer(cfg: PanConfig) -> Callable[[Any], torch.optim.Optimizer]:
    """A factory ``params -> SGD`` with Nesterov momentum, the start lr/momentum and the weight decay."""

    def factory(params: Any) -> torch.optim.Optimizer:
        params = list(params)
        kwargs = dict(lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
        try:  # the fused kernel is the same update with less memory traffic (64 M parameters)
            return torch.optim.SGD(params, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            return torch.optim.SGD(params, **kwargs)

    return factory


@dataclass(frozen=True)
class _FlooredStep:
    """``max(floor, StepSchedule(...)(t))``: the coursework's step decay that stops at the minimum lr."""

    step: StepSchedule
    floor: float

    def __call__(self, t: int) -> float:
        return max(self.floor, self.step(t))


def make_schedule(cfg: PanConfig, steps_per_epoch: int | None = None) -> ParamSchedule:
    """The hyper-parameter schedule of ``cfg.schedule``, per epoch or per step (``cfg.schedule_unit``).

    ``official``: lr ``numpy.linspace(lr, lr_end, n)[t]``, momentum likewise from ``momentum`` to
    ``momentum_end`` (Pan et al.'s ``AdjustVariable``), with ``n`` the run's epochs (or its
    ``epochs * steps_per_epoch`` optimiser steps). ``coursework``: lr
    ``lr * step_factor ** (epoch // step_every)``, floored at ``lr_end``; momentum constant (always
    per epoch). ``constant``: lr and momentum fixed.
    """
    if cfg.schedule == "official":
        unit = cfg.schedule_unit
        if unit == "step" and not steps_per_epoch:
            raise ValueError("a per-step schedule needs steps_per_epoch")
        n = cfg.epochs * (steps_per_epoch if unit == "step" else 1)
        return ParamSchedule(
            {
                "lr": LinearSchedule(cfg.lr, cfg.lr_end, n),
                "momentum": LinearSchedule(cfg.momentum, cfg.momentum_end, n),
            },
            unit=unit,
        )
    if cfg.schedule == "coursework":
        return ParamSchedule(
            {
                "lr": _FlooredStep(StepSchedule(cfg.lr, cfg.step_factor, cfg.step_every), cfg.lr_end),
                "momentum": ConstantSchedule(cfg.momentum),
            }
        )
    return ParamSchedule({"lr": ConstantSchedule(cfg.lr), "momentum": ConstantSchedule(cfg.momentum)})


_FLIP_KEYS = ("image", "fixation_map", "density", "mask")


def flip_half(batch: dict[str, Any], generator: torch.Generator) -> dict[str, Any]:
    """Mirror a random half (``N // 2``) of the batch left-right, as the official script does.

    Flips ``image`` (N×3×H×W) and any of ``fixation_map``/``density``/``mask`` (N×h×w) along
    the width, and the column of each image's ``fixations`` (a list of K×2 tensors) on the
    ``fixation_map`` grid. The choice of samples comes from ``generator`` only.
    """
    n = int(batch["image"].shape[0])
    if n < 2:
        return batch
    perm = torch.randperm(n, generator=generator, device=generator.device)[: n // 2]
    chosen = torch.zeros(n, dtype=torch.bool, device=generator.device)
    chosen[perm] = True
    out = dict(batch)
    for key in _FLIP_KEYS:
        if key in batch and isinstance(batch[key], torch.Tensor):
            x = batch[key]
            sel = chosen.to(x.device).view(-1, *([1] * (x.dim() - 1)))
            out[key] = torch.where(sel, x.flip(-1), x)
    if isinstance(batch.get("fixations"), (list, tuple)) and "fixation_map" in batch:
        width = int(batch["fixation_map"].shape[-1])
        fixes = []
        for i, fix in enumerate(batch["fixations"]):
            if bool(chosen[i]):
                fix = fix.clone()
                fix[:, 1] = width - 1 - fix[:, 1]
            fixes.append(fix)
        out["fixations"] = fixes
    return out


# --------------------------------------------------------------------------------------------
# post-processing and prediction


def official_postprocess(pred: torch.Tensor, sigma: float = 3.0) -> torch.Tensor:
    """The official inference step: Gaussian blur (σ in map pixels) on the map, then min-max to [0, 1].

    ``pred`` is one h × w map (or 1 × h × w). The blur is ``scipy.ndimage.gaussian_filter`` with
    its defaults (reflecting border, truncated at 4 σ), as in the official ``prediction.py``;
    the min-max matches that script's conversion to an 8-bit image. Resizing to the image is left
    to the evaluation (bilinear, like the script's ``imresize``).
    """
    x = pred.detach().float().cpu().numpy()
    x = x.reshape(x.shape[-2:])
    if sigma > 0:
        x = gaussian_filter(x.astype(np.float64), sigma=sigma)
    return torch.from_numpy(minmax(x).astype(np.float32))


def plain_postprocess(pred: torch.Tensor) -> torch.Tensor:
    """Min-max to [0, 1] only (no blur): the baseline that measures the blur's effect."""
    return official_postprocess(pred, sigma=0.0)


def predict_maps(model: nn.Module, images: torch.Tensor, device: str | torch.device = "auto") -> torch.Tensor:
    """Raw network output for images N×3×H×W: float32 N×h×w on the CPU (eval mode, no grad)."""
    from ..evaluation import predict

    return predict(model, {"image": images}, device)


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

    ``train_data``/``val_data`` default to :func:`load_split` of the config (they are built only
    when training is needed). Pass them to reuse datasets across several runs; they must be
    the config's splits, since the cache key is the config.
    """
    from ..train import load_or_train

    def train_kwargs() -> dict[str, Any]:
        tr = train_data if train_data is not None else load_split(cfg, "train")
        va = val_data if val_data is not None else load_split(cfg, "val")
        return dict(
            loss_fn=mse_loss(cfg.target_range),
            train_data=tr,
            val_data=va,
            optimizer=make_optimizer(cfg),
            schedule=make_schedule(cfg, math.ceil(len(tr) / cfg.batch_size)),
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            val_every=cfg.val_every,
            val_metric=val_cc,
            mode="max",
            augment=flip_half if cfg.flip else None,
            grad_clip=cfg.grad_clip,
        )

    return load_or_train(
        cfg.as_dict(), lambda: build_model(cfg), train_kwargs, seed=seed, cache=cache, device=device, log=log
    )


DEFAULT_METRICS: tuple[str, ...] = ("cc", "auc_shuffled", "auc_borji", "auc_judd", "nss", "kld", "sim")


def evaluate(
    model: Any,
    dataset: Any,
    postprocess: Literal["official", "plain", "none"] | Callable[[torch.Tensor], torch.Tensor] = "official",
    metrics: Sequence[str] = DEFAULT_METRICS,
    device: str | torch.device = "auto",
    seed: int = 0,
    name: str | None = None,
    **kwargs: Any,
):
    """:func:`salbook.evaluation.evaluate` with the chapter's metrics and a named post-processing.

    ``"official"``: :func:`official_postprocess` (blur σ 3 + min-max); ``"plain"``: min-max only;
    ``"none"``: the map as it is (for baselines, which are densities already). The prediction is
    then resized to the ground truth (bilinear). Returns an :class:`~salbook.evaluation.EvalResult`.
    """
    from ..evaluation import evaluate as _evaluate

    table = {"official": official_postprocess, "plain": plain_postprocess, "none": None}
    if isinstance(postprocess, str):
        if postprocess not in table:
            raise ValueError(f"postprocess must be one of {sorted(table)} or a callable, got {postprocess!r}")
        post = table[postprocess]
    else:
        post = postprocess
    return _evaluate(model, dataset, metrics=metrics, postprocess=post, device=device, seed=seed, name=name, **kwargs)


# --------------------------------------------------------------------------------------------
# diagnostic: how much do the convolutional features know? (a closed-form linear readout)


class RidgeReadout(nn.Module):
    """Frozen convolutional ``features`` followed by a linear map fitted in closed form.

    A diagnostic, not a model of the paper: it answers whether the features already carry the
    image-specific information that the SGD-trained fully connected head failed to extract.
    Input N×3×H×W images; output N×1×h×w maps (``map_size``).
    """

    def __init__(self, features: nn.Module, mean: torch.Tensor, std: torch.Tensor,
                 weight: torch.Tensor, bias: torch.Tensor, map_size: Sequence[int]):
        super().__init__()
        self.features = features
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())
        self.register_buffer("weight", weight.float())
        self.register_buffer("bias", bias.float())
        self.map_size = (int(map_size[0]), int(map_size[1]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        z = (self.features(images).flatten(1) - self.mean) / self.std
        return (z @ self.weight + self.bias).reshape(-1, 1, *self.map_size)


def _stack_field(dataset: Any, key: str) -> torch.Tensor:
    return torch.stack([torch.as_tensor(dataset[i][key]) for i in range(len(dataset))])


@torch.no_grad()
def fit_ridge_readout(
    features: nn.Module,
    train_data: Any,
    val_data: Any,
    map_size: Sequence[int] = (48, 48),
    lambdas: Sequence[float] = (1e2, 1e3, 1e4, 1e5, 1e6),
    batch_size: int = 200,
) -> tuple[RidgeReadout, pd.DataFrame]:
    """Fit a ridge regression from frozen ``features`` to the training fixation maps.

    The features (``features(image).flatten(1)``, D values per image) are standardised with the
    training mean and std; the readout predicts the ``map_size`` fixation map (P = h·w values)
    and is solved in its dual form, ``W = Aᵀ (A Aᵀ + λ I)⁻¹ (Y − ȳ)``, which costs an N×N solve for
    N training images however large D is. ``λ`` is chosen on ``val_data`` by mean CC (the test
    split is never used). Returns the readout (a module :func:`evaluate` can score) and a table
    of validation CC per λ.
    """
    from ..metrics import cc

    features = copy.deepcopy(features).eval().cpu()  # never move or alter the caller's model

    def feats(ds: Any) -> torch.Tensor:
        images = _stack_field(ds, "image")
        return torch.cat([features(images[i:i + batch_size]).flatten(1) for i in range(0, len(images), batch_size)]).double()

    a, b = feats(train_data), feats(val_data)
    y = _stack_field(train_data, "fixation_map").flatten(1).double()
    y_val = _stack_field(val_data, "fixation_map")
    if tuple(y_val.shape[-2:]) != tuple(map_size) or y.shape[1] != map_size[0] * map_size[1]:
        raise ValueError(f"train and val fixation maps must be {tuple(map_size)} (the readout's map_size)")
    mean, std = a.mean(0), a.std(0) + 1e-8
    a, b = (a - mean) / std, (b - mean) / std
    y_mean = y.mean(0)
    gram = a @ a.T
    rows, best = [], None
    for lam in lambdas:
        alpha = torch.linalg.solve(gram + lam * torch.eye(len(gram), dtype=gram.dtype), y - y_mean)
        weight = a.T @ alpha
        pred = (b @ weight + y_mean).reshape(-1, *map_size)
        score = float(np.mean([cc(pred[i], y_val[i]) for i in range(len(pred))]))
        rows.append({"lambda": lam, "val CC": score})
        if best is None or score > best[0]:
            best = (score, weight)
    readout = RidgeReadout(features, mean, std, best[1], y_mean, map_size).eval()
    return readout, pd.DataFrame(rows).set_index("lambda")


@torch.no_grad()
def activation_spread(features: nn.Module, images: torch.Tensor) -> pd.DataFrame:
    """How much each ReLU layer of ``features`` still says about the image.

    Runs ``images`` (N×3×H×W) through a copy of ``features`` and reports, per ReLU output: the mean
    activation, the share of channels that are non-zero somewhere, and the *across-image spread*
    (the standard deviation over the N images at each unit, averaged over units). A layer whose
    spread collapses answers the same for every image: nothing after it can tell images apart.
    """
    net = copy.deepcopy(features).eval().cpu()
    acts: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: acts.__setitem__(name, out))
             for name, m in net.named_modules() if isinstance(m, nn.ReLU)]
    try:
        net(images.cpu())
    finally:
        for h in hooks:
            h.remove()
    if not acts:
        raise ValueError("features has no nn.ReLU module to measure")
    rows = {name: {"mean activation": float(a.mean()),
                   "channels ever active": float((a.amax(dim=(0, 2, 3)) > 0).float().mean()),
                   "across-image spread": float(a.std(dim=0).mean())}
            for name, a in acts.items()}
    return pd.DataFrame(rows).T.rename_axis("layer")
