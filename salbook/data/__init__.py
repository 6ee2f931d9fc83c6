"""Datasets for the book: generated saliency scenes (the default) and readers for real datasets.

One entry point, :func:`load`, returns a torch ``Dataset`` whose samples are dicts:

* ``image``: float32 3×H×W in [0, 1] (MNIST: 1×28×28 unless ``channels=3``);
* ``fixations``: int64 K×2 (row, col) pixel positions on the h×w map grid;
* ``observers``: int64 K, observer (subject) id of each fixation, where known;
* ``fixation_map``: float32 h×w, fixations blurred with a Gaussian, max 1;
* ``density``: float32 h×w summing to 1 (the generator's true density; synthetic only);
* ``mask``: float32 h×w in {0, 1}, salient-object mask where the dataset has one;
* ``label``: int, where the dataset has one;
* ``name``: str.

Absent fields are absent, never filled with fakes.  (H, W) is ``size``; (h, w) is
``target_size`` (default ``size``).  Batch with :func:`collate` (fixations/observers become
lists) or :func:`make_loader` (seeded shuffling and workers); :func:`load_split` gives a recipe's
train / val / test sets from a :class:`SplitSpec`; :func:`hflip_batch` mirrors part of a batch.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch

from .real import (
    CAT2000,
    CAT2000_CATEGORIES,
    DUTS,
    ECSSD,
    MIT1003,
    MNIST,
    SALICON,
    DatasetLayoutError,
    ImageReadError,
)
from .splits import ROLES, SplitSpec, load_split
from .synthetic import CATEGORIES, GENERATOR_VERSION, PROFILES, SceneParams, SyntheticSaliency
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    Resize,
    collate,
    hflip_batch,
    hflip_sample,
    make_loader,
    resize_sample,
    seed_worker,
)

__all__ = [
    "load",
    "load_split",
    "SplitSpec",
    "ROLES",
    "collate",
    "make_loader",
    "seed_worker",
    "DATASETS",
    "SyntheticSaliency",
    "SceneParams",
    "CATEGORIES",
    "GENERATOR_VERSION",
    "PROFILES",
    "SALICON",
    "MIT1003",
    "CAT2000",
    "CAT2000_CATEGORIES",
    "DUTS",
    "ECSSD",
    "MNIST",
    "DatasetLayoutError",
    "ImageReadError",
    "Compose",
    "Resize",
    "Normalize",
    "RandomHorizontalFlip",
    "resize_sample",
    "hflip_sample",
    "hflip_batch",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

_READERS: dict[str, type] = {
    "synthetic": SyntheticSaliency,
    "salicon": SALICON,
    "mit1003": MIT1003,
    "cat2000": CAT2000,
    "duts": DUTS,
    "ecssd": ECSSD,
    "mnist": MNIST,
}

#: Names accepted by :func:`load`.
DATASETS: tuple[str, ...] = tuple(_READERS)


def load(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    size: Sequence[int] | int | None = None,
    **options: Any,
) -> torch.utils.data.Dataset:
    """Return dataset ``name`` (one of :data:`DATASETS`), split ``split``, as a torch Dataset.

    Args:
        name: ``"synthetic"`` (generated, the default of the book), ``"salicon"``, ``"mit1003"``,
            ``"cat2000"``, ``"duts"``, ``"ecssd"`` or ``"mnist"`` (case-insensitive).
        split: dataset-specific; synthetic: ``train``/``val``/``test``/``unlabelled``.
        root: folder of a real dataset (never downloaded); None means ``$SALBOOK_DATA/<NAME>``.
            Ignored by ``synthetic``.
        size: image (H, W); default 192×256 (saliency sets), 224×224 (DUTS, ECSSD), 28×28 (MNIST).
        **options: ``target_size=(h, w)`` (maps, fixations, mask; default ``size``),
            ``normalize=False`` (ImageNet mean/std on the image), ``flip`` (True = seeded random
            horizontal flip, or a transform object), ``transform`` (extra callable);
            synthetic also ``n``, ``seed``, ``observers``, ``profile``, ``cache`` and any
            :class:`SceneParams` field; real sets ``on_error="raise"|"skip"``; MNIST ``channels``.

    Raises:
        ValueError: unknown dataset or split.
        DatasetLayoutError: ``root`` missing or not in the documented layout (the message shows
            the layout and the first missing path).
    """
    key = str(name).lower()
    if key not in _READERS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    if isinstance(size, int):
        size = (size, size)
    if key == "synthetic":
        kwargs = dict(options)
        if size is not None:
            kwargs["size"] = size
        return SyntheticSaliency(split=split, **kwargs)
    return _READERS[key](root=root, split=split, size=size, **options)
