"""Train / validation / test splits at the sizes a recipe asks for: :class:`SplitSpec` and :func:`load_split`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["SplitSpec", "load_split", "ROLES"]

ROLES = ("train", "val", "test")


@dataclass(frozen=True)
class SplitSpec:
    """Which images a recipe trains, validates and tests on, and at which sizes.

    Attributes:
        dataset: ``"synthetic"`` (generated, the book's default) or a real dataset name (needs
            ``data_root``).
        data_root: folder of a real dataset in its published layout.
        n_train, n_val, n_test: images per role (``None``: the whole split).
        data_seed: seed of the generated dataset (fixed by the seed contract: it is *not* the
            chapter's training seed); real datasets take their first ``n`` images.
        input_size: (H, W) the images are resized to, pixels.
        map_size: (h, w) of the training and validation targets (maps, fixations), pixels
            (``None``: the input size).
        eval_size: (h, w) of the test ground truth (``None``: the loader's default, for real
            datasets the image size).
        val_split, test_split: dataset splits that validate and test; ``val_split="train"`` holds
            the validation images out of the training split (the split's last ``n_val`` images,
            20 % when ``n_val`` is ``None``). SALICON's public fixations cover only train and
            val, so there ``test_split="val"``.
        normalize: apply the ImageNet mean/std to the images (pretrained backbones).
    """

    dataset: str = "synthetic"
    data_root: str | None = None
    n_train: int | None = 2000
    n_val: int | None = 250
    n_test: int | None = 250
    data_seed: int = 0
    input_size: tuple[int, int] = (192, 256)
    map_size: tuple[int, int] | None = None
    eval_size: tuple[int, int] | None = (192, 256)
    val_split: str = "val"
    test_split: str = "test"
    normalize: bool = False

    def __post_init__(self) -> None:
        if self.dataset != "synthetic" and self.data_root is None:
            raise ValueError(f"dataset={self.dataset!r} needs data_root= (the folder of the published dataset)")
        for name in ("input_size", "map_size", "eval_size"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(int(v) for v in value))

    def replace(self, **changes: Any) -> "SplitSpec":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


def load_split(spec: SplitSpec, role: str) -> Any:
    """The dataset for ``role`` (``"train"``, ``"val"`` or ``"test"``), see :func:`salbook.data.load`.

    ``image`` is ``spec.input_size``; maps and fixations are ``spec.map_size`` for ``train`` and
    ``val`` (the training target) and ``spec.eval_size`` for ``test`` (the evaluation ground truth).
    """
    from torch.utils.data import Subset

    from . import load

    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")

    def read(split: str, n: int | None, target: tuple[int, int] | None) -> Any:
        kwargs: dict[str, Any] = dict(size=spec.input_size)
        if target is not None:
            kwargs["target_size"] = target
        if spec.normalize:
            kwargs["normalize"] = True
        if spec.dataset == "synthetic":
            kwargs["seed"] = spec.data_seed
            if n is not None:
                kwargs["n"] = n
            return load(spec.dataset, split, **kwargs)
        ds = load(spec.dataset, split, root=spec.data_root, **kwargs)
        return ds if n is None or n >= len(ds) else Subset(ds, range(n))

    if role == "test":
        return read(spec.test_split, spec.n_test, spec.eval_size)
    if spec.val_split != "train":
        split = "train" if role == "train" else spec.val_split
        return read(split, spec.n_train if role == "train" else spec.n_val, spec.map_size)
    both = None if spec.n_train is None or spec.n_val is None else spec.n_train + spec.n_val
    full = read("train", both, spec.map_size)
    total = len(full)
    n_val = spec.n_val if spec.n_val is not None else int(round(0.2 * total))
    if not 0 < n_val < total:
        raise ValueError(f"cannot hold out {n_val} of {total} training images for validation")
    if role == "val":
        return Subset(full, range(total - n_val, total))
    n_train = total - n_val if spec.n_train is None else min(spec.n_train, total - n_val)
    return Subset(full, range(n_train))
