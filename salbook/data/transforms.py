"""Transforms on sample dicts, the collate function and seeded DataLoaders.

A *sample* is the dict every dataset in :mod:`salbook.data` returns (see :func:`salbook.data.load`):
``image`` float32 3×H×W in [0, 1]; ``fixations`` int64 K×2 (row, col) in the *map* grid h×w;
``observers`` int64 K; ``fixation_map`` float32 h×w (max 1); ``density`` float32 h×w (sum 1);
``mask`` float32 h×w in {0, 1}; ``label`` int; ``name`` str.  Any field may be absent.

Documented resizing rule (used by every loader and by :class:`Resize`):

* ``image``: bilinear with antialiasing (``torch.nn.functional.interpolate(..., mode="bilinear",
  antialias=True, align_corners=False)``), i.e. an area-like filter when shrinking; clipped to [0, 1].
* ``fixation_map``: same bilinear filter, then divided by its maximum (so the max stays 1).
* ``density``: same bilinear filter, negatives clipped, then divided by its sum (so it sums to 1).
* ``mask``: nearest neighbour (pixel centres), then thresholded at 0.5 so it stays binary.
* ``fixations``: rescaled *exactly*: the pixel whose centre is at ``p + 0.5`` in an old grid of length
  ``n`` goes to pixel ``floor((p + 0.5) * m / n)`` in a new grid of length ``m`` (the new pixel that
  contains the old pixel's centre).  Applied to rows and columns separately.

Horizontal flip mirrors the image, every map and the mask, and sends column ``c`` of a map of width
``w`` to ``w - 1 - c``.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from ..maps import rescale_fixations, resize_tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "rescale_fixations",
    "resize_sample",
    "hflip_sample",
    "normalize_image",
    "Compose",
    "Resize",
    "Normalize",
    "RandomHorizontalFlip",
    "collate",
    "sample_transforms",
    "finish_sample",
    "seed_worker",
    "make_loader",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

Sample = dict[str, Any]

_MAP_KEYS = ("fixation_map", "density", "mask")


def _as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    h, w = (int(s) for s in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive (H, W), got {tuple(size)}")
    return h, w


def resize_sample(
    sample: Sample, size: Sequence[int] | None = None, target_size: Sequence[int] | None = None
) -> Sample:
    """Return a copy of ``sample`` with the image at ``size`` (H, W) and maps/fixations/mask at
    ``target_size`` (h, w) (default: ``size``), following the module's documented rule."""
    out = dict(sample)
    if size is not None:
        size = _as_hw(size)
        out["image"] = resize_tensor(sample["image"], size, "bilinear").clamp_(0.0, 1.0)
    if target_size is None:
        target_size = size
    if target_size is None:
        return out
    target_size = _as_hw(target_size)
    old_map_size = None
    for key in _MAP_KEYS:
        if key in sample:
            old_map_size = tuple(sample[key].shape[-2:])
            break
    if "fixation_map" in sample:
        fm = resize_tensor(sample["fixation_map"], target_size, "bilinear").clamp_(min=0.0)
        peak = float(fm.max())
        out["fixation_map"] = fm / peak if peak > 0 else fm
    if "density" in sample:
        d = resize_tensor(sample["density"], target_size, "bilinear").clamp_(min=0.0)
        out["density"] = d / d.sum()
    if "mask" in sample:
        out["mask"] = (resize_tensor(sample["mask"], target_size, "nearest") >= 0.5).float()
    if "fixations" in sample:
        if old_map_size is None:
            raise ValueError(
                "resize_sample: the sample has fixations but no map giving their grid size; "
                "fixations are defined on the map grid"
            )
        out["fixations"] = rescale_fixations(sample["fixations"], old_map_size, target_size)
    return out


def _mirror_columns(fixations: torch.Tensor, width: int) -> torch.Tensor:
    """Fixations K×2 (row, col) of a map ``width`` pixels wide, mirrored left-right: ``c -> w-1-c``."""
    fix = fixations.clone()
    fix[:, 1] = width - 1 - fix[:, 1]
    return fix


def hflip_sample(sample: Sample) -> Sample:
    """Mirror a sample left-right: image, maps and mask flipped, fixation columns ``c -> w-1-c``."""
    out = dict(sample)
    if "image" in sample:
        out["image"] = torch.flip(sample["image"], dims=(-1,))
    width = None
    for key in _MAP_KEYS:
        if key in sample:
            out[key] = torch.flip(sample[key], dims=(-1,))
            width = sample[key].shape[-1]
    if "fixations" in sample:
        out["fixations"] = _mirror_columns(sample["fixations"], width or sample["image"].shape[-1])
    return out


def hflip_batch(batch: dict[str, Any], generator: torch.Generator, fraction: float = 0.5,
                extra_keys: Sequence[str] = ()) -> dict[str, Any]:
    """Mirror a random ``fraction`` of a collated batch left-right (an ``augment`` for ``fit``).

    Exactly ``int(N * fraction)`` samples are chosen with ``generator`` (Pan et al.'s training
    script mirrors a random half of every batch). Flips ``image`` (N×C×H×W) and the maps
    (N×h×w) along the width, and the column of each chosen image's ``fixations`` (a list of K×2
    tensors on the map grid). The batch given is not changed.

    Only the dataset's own maps (``fixation_map``, ``density``, ``mask``) are known here. A map that a
    wrapper adds to each sample — a teacher's map (:data:`salbook.distillation.TEACHER_KEYS`) — is a target
    of the same image and must be named in ``extra_keys`` (``N × h × w`` or ``N × 1 × h × w`` tensors;
    absent keys are skipped): else half of every batch pairs a mirrored image with the map of the unmirrored
    one. The extra maps are mirrored with the same draw, so the other keys come out as without them.

    Raises:
        ValueError: an extra key holds a different number of maps than there are images.
    """
    n = int(batch["image"].shape[0])
    for key in extra_keys:
        extra = batch.get(key)
        if isinstance(extra, torch.Tensor) and extra.shape[0] != n:
            raise ValueError(f"batch[{key!r}] holds {extra.shape[0]} maps for {n} images")
    k = int(n * fraction)
    if n < 2 or k == 0:
        return batch
    chosen = torch.zeros(n, dtype=torch.bool, device=generator.device)
    chosen[torch.randperm(n, generator=generator, device=generator.device)[:k]] = True
    out = dict(batch)
    for key in dict.fromkeys(("image", *_MAP_KEYS, *extra_keys)):
        if isinstance(batch.get(key), torch.Tensor):
            x = batch[key]
            sel = chosen.to(x.device).view(-1, *([1] * (x.dim() - 1)))
            out[key] = torch.where(sel, x.flip(-1), x)
    if isinstance(batch.get("fixations"), (list, tuple)):
        width = next((int(batch[key].shape[-1]) for key in _MAP_KEYS if key in batch), int(batch["image"].shape[-1]))
        out["fixations"] = [_mirror_columns(f, width) if bool(chosen[i]) else f
                            for i, f in enumerate(batch["fixations"])]
    return out


def normalize_image(
    image: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """``(image - mean) / std`` per channel; image C×H×W (or N×C×H×W) in [0, 1]."""
    m = torch.tensor(mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    if image.shape[-3] != m.shape[0]:
        raise ValueError(f"normalize: image has {image.shape[-3]} channels but mean/std have {m.shape[0]}")
    return (image - m) / s


class Compose:
    """Apply sample transforms in order."""

    def __init__(self, transforms: Iterable[Callable[[Sample], Sample]]):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class Resize:
    """Resize a sample: image to ``size`` (H, W), maps/fixations/mask to ``target_size`` (h, w)."""

    def __init__(self, size: Sequence[int], target_size: Sequence[int] | None = None):
        self.size = _as_hw(size)
        self.target_size = _as_hw(target_size) if target_size is not None else self.size

    def __call__(self, sample: Sample) -> Sample:
        return resize_sample(sample, self.size, self.target_size)

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, target_size={self.target_size})"


class Normalize:
    """ImageNet (or given) mean/std normalisation of ``sample["image"]``; other fields untouched."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, sample: Sample) -> Sample:
        out = dict(sample)
        out["image"] = normalize_image(sample["image"], self.mean, self.std)
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class RandomHorizontalFlip:
    """Flip a sample left-right with probability ``p``, from a seeded torch generator.

    In the main process the generator starts from ``seed``; in a DataLoader worker it starts from
    ``seed`` plus the worker's torch seed (which :func:`make_loader` derives from its own seed), so a
    seeded loader gives the same flips run after run whatever the number of workers.
    """

    def __init__(self, p: float = 0.5, seed: int = 0):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"flip probability must be in [0, 1], got {p}")
        self.p, self.seed = float(p), int(seed)
        self._gen: torch.Generator | None = None
        self._owner: int | None = None

    def _generator(self) -> torch.Generator:
        info = torch.utils.data.get_worker_info()
        owner = -1 if info is None else info.id
        if self._gen is None or self._owner != owner:
            seed = self.seed if info is None else (self.seed + info.seed) % (2**63)
            self._gen = torch.Generator().manual_seed(seed)
            self._owner = owner
        return self._gen

    def __call__(self, sample: Sample) -> Sample:
        if float(torch.rand((), generator=self._generator())) < self.p:
            return hflip_sample(sample)
        return sample

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p}, seed={self.seed})"


_LIST_KEYS = ("fixations", "observers", "name")


def sample_transforms(flip: bool | Callable | None, transform: Callable | None, seed: int) -> list[Callable]:
    """The per-sample transforms of a dataset, in order: ``flip`` (``True`` = a seeded random
    horizontal flip with p 0.5, or a transform object), then the caller's extra ``transform``."""
    out: list[Callable] = []
    if flip is True:
        out.append(RandomHorizontalFlip(0.5, seed=seed))
    elif callable(flip):
        out.append(flip)
    if transform is not None:
        out.append(transform)
    return out


def finish_sample(sample: Sample, transforms: Iterable[Callable], normalize: bool) -> Sample:
    """Apply a dataset's ``transforms`` to a sample, then ImageNet normalisation if ``normalize``."""
    for t in transforms:
        sample = t(sample)
    if normalize:
        sample["image"] = normalize_image(sample["image"])
    return sample


def collate(samples: Sequence[Sample]) -> dict[str, Any]:
    """Batch sample dicts: tensors are stacked (``image`` N×C×H×W, maps N×h×w), ``label`` becomes an
    int64 tensor N, and the variable-length ``fixations`` / ``observers`` and ``name`` become lists.

    Every sample must have the same fields (a dataset never mixes present and absent fields).
    """
    if len(samples) == 0:
        raise ValueError("collate: empty batch")
    keys = list(samples[0].keys())
    for s in samples[1:]:
        if set(s.keys()) != set(keys):
            raise ValueError(
                f"collate: samples have different fields ({sorted(keys)} vs {sorted(s.keys())}); "
                "batch samples from one dataset"
            )
    batch: dict[str, Any] = {}
    for key in keys:
        values = [s[key] for s in samples]
        if key in _LIST_KEYS:
            batch[key] = list(values)
        elif key == "label":
            batch[key] = torch.as_tensor([int(v) for v in values], dtype=torch.long)
        elif isinstance(values[0], torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) != 1:
                raise ValueError(
                    f"collate: field {key!r} has different shapes in one batch ({sorted(shapes)}); "
                    "load the dataset with a fixed size=(H, W)"
                )
            batch[key] = torch.stack(values)
        else:
            batch[key] = list(values)
    return batch


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed Python's and NumPy's RNGs from the worker's torch seed."""
    seed = torch.initial_seed() % (2**32)
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: torch.utils.data.Dataset,
    batch_size: int = 16,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool | None = None,
    sampler: torch.utils.data.Sampler | None = None,
    collate_fn: Callable[[Sequence[Any]], Any] | None = None,
) -> torch.utils.data.DataLoader:
    """A DataLoader with :func:`collate`, seeded shuffling and seeded workers.

    The one loader builder of the package (:func:`salbook.train.fit` uses it too). The same
    ``seed`` gives the same batch order and the same worker RNG streams on every run.
    ``sampler`` (e.g. a ``DistributedSampler``) replaces ``shuffle``; ``collate_fn`` replaces
    :func:`collate`. ``pin_memory`` defaults to True when CUDA is available.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if sampler is not None and shuffle:
        raise ValueError("give either shuffle=True or a sampler (which decides the order itself), not both")
    gen = torch.Generator().manual_seed(int(seed))
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn or collate,
        worker_init_fn=seed_worker,
        generator=gen,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=False,
    )
