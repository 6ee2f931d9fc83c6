"""CSNet recipes (chapter 6): training from scratch with a sparsity scheme, pruning, fine-tuning.

* :class:`CSNetConfig` — one trained CSNet: widths (``width`` × the official layout with
  ``split``, or the released CSNet-L widths), data, Adam, and the decay on BN scales
  (``"standard"``, ``"dynamic"`` — the official loss term, ``"dynamic_eq3"`` — the paper's eq. 3,
  ``"l1"`` — network slimming). :func:`train_csnet` trains it or loads it from the model cache.
* :class:`PrunedConfig` — a trained :class:`CSNetConfig` pruned at a ``|γ|`` threshold, rebuilt
  and fine-tuned for real (:func:`train_pruned`, cached); :func:`official_finetune` reproduces the
  official no-op fine-tune (only BN running statistics adapt).
* :func:`configs` — the named models of a profile (the chapter's and chapter 7's single source);
  :func:`trained` returns one of them, trained or loaded, by name (``"csnet_x1"``,
  ``"csnet_l_x1"``, ``"csnet_x1_pruned"`` ...): what ``salbook predict`` and the side-by-side
  table of chapter 7 call.

Recipe (official, ``train.py``/``configs``; changes for the CPU budget marked *): BCE with logits on
the full-resolution output against the salient-object mask; Adam; coupled L2 weight decay 5e-3
on every parameter; with ``"dynamic"`` the BN ``γ`` of ``conv1x1`` and ``conv3x3_1`` of every
ILBlock get no L2 (the code's filter names ``conv3x3_1`` twice, so ``conv3x3_2`` keeps it:
``official_typo=True``) and the dynamic term (λ = 3) is added; the official augmentation (random
crop of 0–14/224 of each side, then with p = 0.5 a left-right or up-down flip, resized back;
the mask is resized bilinearly and kept continuous). *Learning rate 2e-3 (official 1e-4 for 300
epochs) decayed along a cosine per step, BN parameters at ``bn_lr_mult`` × that (so the decay can
move ``γ`` to zero within a few hundred steps), 64 × 64 generated scenes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import SplitSpec
from ..models import csnet as csnet_models
from ._config import RecipeConfig, check_training_settings

__all__ = [
    "RECIPE_VERSION",
    "CSNET_DATA",
    "DECAYS",
    "CSNetConfig",
    "PrunedConfig",
    "bce_loss",
    "official_augment",
    "build_csnet",
    "train_csnet",
    "prune_trained",
    "train_pruned",
    "official_finetune",
    "configs",
    "trained",
    "MODEL_NAMES",
]

RECIPE_VERSION = 1

#: Generated scenes with their salient-object masks at 64 × 64 (CSNet needs sides divisible by 16),
#: test masks at 128 × 128.
CSNET_DATA = SplitSpec(n_train=480, n_val=64, n_test=200, input_size=(64, 64), map_size=None, eval_size=(128, 128))

DECAYS = ("none", "standard", "dynamic", "dynamic_eq3", "l1")


@dataclass(frozen=True)
class CSNetConfig(RecipeConfig):
    """Everything that determines one trained CSNet (hashed into the model cache key).

    Attributes:
        width: channel multiplier of the official layout (×1: 210,985 parameters).
        split: high/low shares ``"1/0"``, ``"3/1"``, ``"5/5"``, ``"1/3"``, ``"0/1"``.
        widths: ``"default"`` (``width``/``split``) or ``"released_x1"`` / ``"released_x2"`` (the
            released CSNet-L learned widths, trained from scratch).
        data: splits and sizes (:data:`CSNET_DATA`).
        epochs, batch_size: as usual (official 300 epochs of batch 24).
        lr, lr_end: Adam's learning rate, cosine per step from ``lr`` to ``lr_end``.
        bn_lr_mult: learning-rate multiplier of BN ``γ``/``β`` (1 = official).
        weight_decay: coupled L2 on every parameter (official 5e-3); with ``"dynamic"`` and
            ``"dynamic_eq3"`` not on the decayed BN ``γ``.
        decay: ``"standard"`` (L2 also on ``γ``), ``"dynamic"`` (official loss term),
            ``"dynamic_eq3"`` (paper eq. 3), ``"l1"`` (L2 + ``l1_lam`` Σ|γ|), ``"none"`` (no decay at all).
        lam: λ of the dynamic decay (official 3).
        l1_lam: λ₁ of network slimming's L1 term.
        official_typo: reproduce the code's parameter filter (``conv3x3_2`` BN γ keep L2 too).
        augment: the official crop + flip.
        val_every: validate every this many epochs; the epoch with the lowest validation BCE is kept.
    """

    RECIPE = f"csnet/{RECIPE_VERSION}"

    width: float = 1.0
    split: str = "5/5"
    widths: str = "default"
    data: SplitSpec = field(default_factory=lambda: CSNET_DATA)
    epochs: int = 4
    batch_size: int = 16
    lr: float = 2e-3
    lr_end: float = 2e-5
    bn_lr_mult: float = 25.0
    weight_decay: float = 5e-3
    decay: str = "standard"
    lam: float = 3.0
    l1_lam: float = 1e-4
    official_typo: bool = True
    augment: bool = True
    val_every: int = 1

    def __post_init__(self) -> None:
        if self.decay not in DECAYS:
            raise ValueError(f"decay must be one of {DECAYS}, got {self.decay!r}")
        if self.widths not in ("default", "released_x1", "released_x2"):
            raise ValueError(f"widths must be 'default', 'released_x1' or 'released_x2', got {self.widths!r}")
        check_training_settings(self, ("epochs", "batch_size", "val_every"), size_multiple=16, who="CSNet")
        if self.weight_decay < 0 or self.lam < 0 or self.l1_lam < 0:
            raise ValueError(f"weight_decay, lam and l1_lam must be non-negative, got {self.weight_decay}, "
                             f"{self.lam}, {self.l1_lam}")


@dataclass(frozen=True)
class PrunedConfig(RecipeConfig):
    """A trained CSNet pruned at ``threshold`` and fine-tuned (``ft_epochs`` of Adam at ``ft_lr``,
    cosine to ``ft_lr / 100``, weight decay ``base.weight_decay``, no sparsity term).

    Attributes:
        base: the trained model's config.
        threshold: channels with decision ``|γ| < threshold`` are removed (official 1e-20).
        ft_epochs, ft_lr: the fine-tune (official: 20 epochs at 1e-7, a no-op).
        copy_running_stats: copy the kept channels' BN running statistics (official: no).
    """

    RECIPE = f"csnet.pruned/{RECIPE_VERSION}"

    base: CSNetConfig = field(default_factory=CSNetConfig)
    threshold: float = 1e-2
    ft_epochs: int = 2
    ft_lr: float = 5e-4
    copy_running_stats: bool = True

    def __post_init__(self) -> None:
        if not self.threshold > 0 or int(self.ft_epochs) < 1 or not self.ft_lr > 0:
            raise ValueError("threshold and ft_lr must be positive, ft_epochs >= 1")


# --------------------------------------------------------------------------------------------
# loss and augmentation


def bce_loss(output: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
    """BCE with logits between ``output`` (``N × 1 × H × W``) and ``batch["mask"]`` (``N × H × W``
    in [0, 1], resized bilinearly to the output if needed), mean over pixels."""
    if output.dim() != 4 or output.shape[1] != 1:
        raise ValueError(f"bce_loss expects N×1×H×W logits, got {tuple(output.shape)}")
    if "mask" not in batch:
        raise ValueError("bce_loss needs a 'mask' in the batch (a salient-object dataset)")
    target = batch["mask"].to(output.device).float()
    target = target.unsqueeze(1) if target.dim() == 3 else target
    if target.shape[-2:] != output.shape[-2:]:
        target = F.interpolate(target, size=output.shape[-2:], mode="bilinear", align_corners=False)
    return F.binary_cross_entropy_with_logits(output, target)


def official_augment(batch: dict[str, Any], generator: torch.Generator, max_crop: float = 14 / 224) -> dict[str, Any]:
    """The official training augmentation, per sample: remove ``0 … max_crop·side`` pixels from
    each of the four sides, with p = 0.5 flip (left-right or up-down, equally likely), resize back
    (bilinear; the mask stays continuous). An ``augment`` for :func:`salbook.train.fit`."""
    img, mask = batch["image"], batch["mask"]
    n, _, h, w = img.shape
    mh, mw = mask.shape[-2:]
    c_h, c_w = int(round(max_crop * h)), int(round(max_crop * w))
    draws = torch.randint(0, 10_000, (n, 6), generator=generator, device=generator.device).cpu().tolist()
    imgs, masks = [], []
    for i, (t, b, l, r, flip, axis) in enumerate(draws):
        t, b, l, r = t % (c_h + 1), b % (c_h + 1), l % (c_w + 1), r % (c_w + 1)
        x = img[i:i + 1, :, t:h - b, l:w - r]
        y = mask[i:i + 1].unsqueeze(1).float()
        sy, sx = mh / h, mw / w
        y = y[:, :, int(round(t * sy)):mh - int(round(b * sy)), int(round(l * sx)):mw - int(round(r * sx))]
        if flip % 2:
            dim = -1 if axis % 2 else -2
            x, y = x.flip(dim), y.flip(dim)
        imgs.append(F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False))
        masks.append(F.interpolate(y, size=(mh, mw), mode="bilinear", align_corners=False))
    out = dict(batch)
    out["image"] = torch.cat(imgs)
    out["mask"] = torch.cat(masks).squeeze(1)
    return out


# --------------------------------------------------------------------------------------------
# training


def build_csnet(cfg: CSNetConfig) -> csnet_models.CSNet:
    """The untrained network of ``cfg`` (seed torch first for repeatable weights)."""
    if cfg.widths == "default":
        return csnet_models.csnet(cfg.width, cfg.split)
    return csnet_models.CSNet(**csnet_models.released_width_spec(cfg.widths.split("_")[1]))


def _is_bn(name: str, param: nn.Parameter) -> bool:
    return param.ndim == 1 and (".bns." in name or ".bn." in name)


def _decayed_gamma(cfg: CSNetConfig) -> Callable[[str, nn.Parameter], bool]:
    units = ("conv1x1.bns.", "conv3x3_1.bns.") if cfg.official_typo else ("conv1x1.bns.", "conv3x3_1.bns.", "conv3x3_2.bns.")

    def match(name: str, _p: nn.Parameter) -> bool:
        return name.startswith("stage") and name.endswith(".weight") and any(u in name for u in units)

    return match


def _train_kwargs(cfg: CSNetConfig, epochs: int, lr: float, lr_end: float, decay: str, train_data: Any,
                  val_data: Any) -> dict[str, Any]:
    from ..data import load_split
    from ..pruning import slimming
    from ..schedules import CosineSchedule, ParamSchedule
    from ..train import ParamGroup, adam, param_groups

    tr = train_data if train_data is not None else load_split(cfg.data, "train")
    va = val_data if val_data is not None else load_split(cfg.data, "val")
    steps = epochs * math.ceil(len(tr) / cfg.batch_size)
    wd = 0.0 if decay == "none" else cfg.weight_decay
    rules = []
    if decay in ("dynamic", "dynamic_eq3"):
        rules.append(ParamGroup("decayed_gamma", _decayed_gamma(cfg), lr_mult=cfg.bn_lr_mult, weight_decay=0.0))
    rules.append(ParamGroup("bn", _is_bn, lr_mult=cfg.bn_lr_mult))
    kwargs: dict[str, Any] = dict(
        loss_fn=bce_loss, train_data=tr, val_data=va, optimizer=adam(lr, weight_decay=wd),
        param_groups=lambda model: param_groups(model, rules),
        schedule=ParamSchedule({"lr": CosineSchedule(lr, lr_end, max(1, steps))}, unit="step"),
        epochs=epochs, batch_size=cfg.batch_size, val_every=cfg.val_every,
        augment=official_augment if cfg.augment else None, drop_last=len(tr) > cfg.batch_size)
    if decay == "dynamic":
        dd = slimming.DynamicDecay(cfg.lam)
        kwargs.update(callbacks=[dd], regularizers={"dynamic_decay": dd})
    elif decay == "dynamic_eq3":
        kwargs.update(callbacks=[slimming.DynamicDecayEq3(cfg.lam)])
    elif decay == "l1":
        kwargs.update(regularizers={"l1_gamma": slimming.l1_gamma(cfg.l1_lam)})
    return kwargs


_CODE = [__name__, "salbook.pruning.slimming"]


def train_csnet(cfg: CSNetConfig, seed: int = 0, device: str | torch.device = "auto", cache: str | None = None,
                train_data: Any = None, val_data: Any = None, log: Callable[[str], None] | None = print):
    """Train ``cfg`` with ``seed`` (or load it from the cache): a :class:`salbook.train.TrainResult`.
    ``train_data`` / ``val_data`` default to ``cfg.data``'s splits (pass them to share datasets)."""
    from ..train import load_or_train

    return load_or_train(
        cfg.as_dict(), lambda: build_csnet(cfg),
        lambda: _train_kwargs(cfg, cfg.epochs, cfg.lr, cfg.lr_end, cfg.decay, train_data, val_data),
        seed=seed, cache=cache, device=device, log=log, code=_CODE)


def prune_trained(cfg: PrunedConfig, seed: int = 0, device: str | torch.device = "auto", cache: str | None = None,
                  copy_running_stats: bool | None = None, log: Callable[[str], None] | None = print):
    """The trained ``cfg.base`` pruned at ``cfg.threshold`` (no fine-tune): a
    :class:`salbook.pruning.slimming.PruneResult`."""
    from ..pruning.slimming import prune_csnet

    base = train_csnet(cfg.base, seed=seed, device=device, cache=cache, log=log).model
    keep = cfg.copy_running_stats if copy_running_stats is None else copy_running_stats
    return prune_csnet(base, cfg.threshold, copy_running_stats=keep)


def train_pruned(cfg: PrunedConfig, seed: int = 0, device: str | torch.device = "auto", cache: str | None = None,
                 train_data: Any = None, val_data: Any = None, log: Callable[[str], None] | None = print):
    """Prune the trained ``cfg.base`` and fine-tune the rebuilt network for real (cached)."""
    from ..train import load_or_train

    base = cfg.base
    return load_or_train(
        cfg.as_dict(), lambda: prune_trained(cfg, seed, device, cache, log=None).model.cpu().train(),
        lambda: _train_kwargs(base, cfg.ft_epochs, cfg.ft_lr, cfg.ft_lr / 100, "standard", train_data, val_data),
        seed=seed, cache=cache, device=device, log=log, code=_CODE)


def official_finetune(cfg: PrunedConfig, seed: int = 0, device: str | torch.device = "auto",
                      cache: str | None = None, train_data: Any = None, log: Callable[[str], None] | None = print):
    """The official fine-tune of the pruned network: fresh BN statistics (not copied) and
    ``ft_epochs`` passes of training batches in train mode that move no weight (its optimiser
    holds the unpruned model's parameters), so only the running statistics adapt (momentum 0.1)."""
    from ..data import load_split, make_loader
    from ..pruning.slimming import official_noop_finetune

    pruned = prune_trained(cfg, seed, device, cache, copy_running_stats=False, log=log).model
    tr = train_data if train_data is not None else load_split(cfg.base.data, "train")
    gen = torch.Generator().manual_seed(seed)

    def batches():
        for _ in range(cfg.ft_epochs):
            order = torch.randperm(len(tr), generator=gen).tolist()
            loader = make_loader(torch.utils.data.Subset(tr, order), batch_size=cfg.base.batch_size, shuffle=False)
            yield from loader

    return official_noop_finetune(pruned, batches())


# --------------------------------------------------------------------------------------------
# the named models of a profile (chapter 6 and chapter 7)

_PROFILE: dict[str, dict[str, Any]] = {
    "smoke": dict(data=dict(n_train=16, n_val=8, n_test=8, input_size=(32, 32), eval_size=(64, 64)),
                  epochs=1, ft_epochs=1, batch_size=8),
    "book": dict(data=dict(n_train=480, n_val=64, n_test=200, input_size=(64, 64), eval_size=(128, 128)),
                 epochs=4, ft_epochs=2, batch_size=16),
    "paper": dict(data=dict(n_train=None, n_val=500, n_test=None, input_size=(224, 224), eval_size=None,
                            val_split="train"), epochs=300, ft_epochs=20, batch_size=24),
}

#: The names :func:`configs` returns (the sweep adds ``csnet_x1_{decay}_lam{λ}`` entries).
MODEL_NAMES = ("csnet_x1", "csnet_x1_dynamic", "csnet_x1_l1", "csnet_l_x1", "csnet_x1_pruned", "csnet_x2_dynamic")


def configs(profile: str = "book", dataset: str = "synthetic", data_root: str | None = None,
            threshold: float = 1e-2) -> dict[str, CSNetConfig | PrunedConfig]:
    """The chapter's named models for ``profile`` (``smoke``, ``book``, ``paper``).

    ``csnet_x1`` (standard decay), ``csnet_x1_dynamic`` (official dynamic decay, λ = 3),
    ``csnet_x1_l1`` (L1 on γ), ``csnet_l_x1`` (the released CSNet-L ×1 widths from scratch,
    standard decay), ``csnet_x1_pruned`` (``csnet_x1_dynamic`` pruned at ``threshold`` and
    fine-tuned), ``csnet_x2_dynamic`` (Table 4). ``paper``: DUTS-TR at 224 × 224, 300 epochs,
    batch 24, official lr 1e-4 with BN multiplier 1 (give ``dataset="duts"`` and ``data_root``).
    """
    if profile not in _PROFILE:
        raise ValueError(f"profile must be one of {sorted(_PROFILE)}, got {profile!r}")
    p = _PROFILE[profile]
    d = dict(p["data"])
    if dataset != "synthetic":
        d.setdefault("val_split", "train")
        d.update(dataset=dataset, data_root=data_root)
    elif profile == "paper":
        d.pop("val_split", None)
        d.update(n_train=10_000, n_test=500, eval_size=(224, 224))
    data = CSNET_DATA.replace(**d)
    extra = dict(lr=1e-4, lr_end=1e-6, bn_lr_mult=1.0) if profile == "paper" else {}
    base = CSNetConfig(data=data, epochs=p["epochs"], batch_size=p["batch_size"], **extra)
    dyn = base.replace(decay="dynamic")
    out: dict[str, Any] = {
        "csnet_x1": base,
        "csnet_x1_dynamic": dyn,
        "csnet_x1_l1": base.replace(decay="l1"),
        "csnet_l_x1": base.replace(widths="released_x1"),
        "csnet_x1_pruned": PrunedConfig(base=dyn, threshold=threshold, ft_epochs=p["ft_epochs"],
                                        **({"ft_lr": 1e-4} if profile == "paper" else {})),
        "csnet_x2_dynamic": dyn.replace(width=2.0),
    }
    return out


def trained(name: str, profile: str = "book", seed: int = 0, device: str | torch.device = "auto",
            dataset: str = "synthetic", data_root: str | None = None, cache: str | None = None,
            log: Callable[[str], None] | None = print) -> nn.Module:
    """The trained model ``name`` of :func:`configs` (loaded from the cache, else trained), in eval mode.

    Example (chapter 7)::

        from salbook.recipes import csnet
        net = csnet.trained("csnet_x1", profile="book")        # 210,985 parameters, logits out
        net_l = csnet.trained("csnet_x1_pruned", profile="book")

    The output is logits at the input size: apply ``torch.sigmoid`` for a saliency map.
    """
    table = configs(profile, dataset, data_root)
    if name not in table:
        raise ValueError(f"unknown CSNet model {name!r}; available: {sorted(table)}")
    cfg = table[name]
    if isinstance(cfg, PrunedConfig):
        return train_pruned(cfg, seed=seed, device=device, cache=cache, log=log).model.eval()
    return train_csnet(cfg, seed=seed, device=device, cache=cache, log=log).model.eval()
