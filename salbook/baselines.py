"""Reference models that every saliency model should be compared with.

* :class:`Uniform` — the same value everywhere (chance: AUC 0.5, NSS 0, CC 0).
* :class:`CenterBias` — the average fixation distribution of a training set (a strong baseline:
  photographers and viewers both favour the centre).
* :class:`TrueDensity` — the density the fixations were drawn from (generated data only): the
  upper bound a perfect model would reach.
* :func:`inter_observer` — how well the other observers predict one observer (the human
  consistency bound on real data).

The three models share the interface of a trained model for :func:`salbook.evaluate`:
``predict_batch(batch) -> Tensor N×h×w`` at the batch's ground-truth size; ``Uniform`` and
``CenterBias`` also run as ``model(images)`` (N×3×H×W -> N×H×W). Their maps are densities
(each sums to 1 over the map).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torch import nn

from salbook.evaluation import (
    DEFAULT_METRICS,
    EvalResult,
    fixation_records,
    ground_truth_size,
    image_seed,
    shuffle_fixations,
    single_threaded_blas,
    summarize,
)
from salbook.metrics.fixation import (
    as_fixations,
    check_metric_names,
    fixation_map_from_points,
    score_image,
)
from salbook.maps import mit_sigma
from salbook.utils import progress_enabled

__all__ = ["Uniform", "CenterBias", "TrueDensity", "inter_observer", "mit_sigma"]


def _batch_size_and_count(batch: Mapping[str, Any]) -> tuple[int, tuple[int, int]]:
    """(N, (h, w)) of a collated batch: N images, ground truth of size h×w."""
    size = ground_truth_size(batch)
    for key in ("image", "fixation_map", "density", "mask", "name", "fixations"):
        if key in batch:
            return len(batch[key]), size
    raise ValueError("cannot tell the batch size: the batch has none of image / maps / name / fixations")


class Uniform(nn.Module):
    """Uniform density: every pixel 1/(h·w). Chance level for every metric."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """N×3×H×W images -> N×H×W uniform density (float32, on the images' device)."""
        if images.dim() != 4:
            raise ValueError(f"expected N×C×H×W images, got shape {tuple(images.shape)}")
        n, _, h, w = images.shape
        return torch.full((n, h, w), 1.0 / (h * w), device=images.device)

    def predict_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """N×h×w uniform density at the batch's ground-truth size."""
        n, (h, w) = _batch_size_and_count(batch)
        return torch.full((n, h, w), 1.0 / (h * w))


class CenterBias(nn.Module):
    """Centre bias: the blurred histogram of all training fixations, in normalised coordinates.

    Build it with :meth:`fit`. The fitted ``density`` (a buffer, ``grid`` = gh×gw, sums to 1) is
    resized to any output size by bilinear interpolation (``align_corners=False``, antialiased when
    shrinking) and renormalised to sum 1, so one fit serves every resolution and aspect ratio.
    """

    def __init__(self, density: torch.Tensor) -> None:
        super().__init__()
        density = torch.as_tensor(density, dtype=torch.float32)
        if density.dim() != 2 or not torch.isfinite(density).all() or density.min() < 0 or density.sum() <= 0:
            raise ValueError(
                "CenterBias needs a finite, non-negative 2-D density with positive mass; build one "
                "with CenterBias.fit(train_dataset)"
            )
        self.register_buffer("density", density / density.sum())

    @staticmethod
    def _normalised_points(data: Any, progress: bool) -> np.ndarray:
        """Fixations as (row, col) in [0, 1)² from a dataset / list of samples or an N×2 array."""
        if isinstance(data, (np.ndarray, torch.Tensor)):
            pts = np.asarray(data.cpu() if isinstance(data, torch.Tensor) else data, dtype=np.float64)
            if pts.ndim != 2 or pts.shape[1] != 2 or pts.size and (pts.min() < 0 or pts.max() > 1):
                raise ValueError(
                    "an array given to CenterBias.fit must be N×2 normalised (row, col) positions in "
                    "[0, 1]; pass the dataset itself for pixel positions"
                )
            return pts
        records = fixation_records(data, progress)  # the dataset's cheap fixation_record(i) if any
        parts = [(fix + 0.5) / np.array(size) for fix, size in records]  # pixel centres in [0, 1)
        return np.concatenate(parts) if parts else np.zeros((0, 2))

    @classmethod
    def fit(
        cls,
        data: Any,
        grid: tuple[int, int] = (64, 64),
        sigma: float = 0.04,
        uniform_weight: float = 0.01,
        progress: bool | None = None,
    ) -> "CenterBias":
        """Fit the centre bias on training fixations.

        Args:
            data: a dataset (or list) of sample dicts with ``fixations`` (pixel positions in the
                map grid; the map size is taken from ``fixation_map`` / ``density`` / ``mask`` /
                ``image``), or an N×2 array of normalised (row, col) positions in [0, 1].
            grid: (gh, gw) bins of the histogram over the unit square.
            sigma: Gaussian blur, as a fraction of the side of the unit square (the same in
                normalised coordinates on both axes: ``sigma * gh`` bins along rows,
                ``sigma * gw`` along columns). The blur reflects at the border so no mass is lost.
            uniform_weight: regularisation: the result is (1 − u)·blurred histogram + u·uniform,
                so no pixel has zero probability (IG and KLD stay finite).
            progress: tqdm bar while reading a dataset (default: ``progress_enabled()``).

        Each fixation counts once (duplicates included): the histogram is of all fixations.
        """
        if not (0 <= uniform_weight <= 1):
            raise ValueError(f"uniform_weight must be in [0, 1], got {uniform_weight}")
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        show = progress_enabled() if progress is None else bool(progress)
        pts = cls._normalised_points(data, show)
        if len(pts) == 0:
            raise ValueError("CenterBias.fit got no fixation at all")
        gh, gw = int(grid[0]), int(grid[1])
        rows = np.clip(np.floor(pts[:, 0] * gh).astype(np.int64), 0, gh - 1)
        cols = np.clip(np.floor(pts[:, 1] * gw).astype(np.int64), 0, gw - 1)
        hist = np.bincount(rows * gw + cols, minlength=gh * gw).reshape(gh, gw).astype(np.float64)
        if sigma > 0:
            hist = gaussian_filter(hist, sigma=(sigma * gh, sigma * gw), mode="reflect")
        hist /= hist.sum()
        density = (1 - uniform_weight) * hist + uniform_weight / (gh * gw)
        return cls(torch.from_numpy(density))

    def density_at(self, size: tuple[int, int]) -> torch.Tensor:
        """The fitted density at (h, w): float32 h×w, non-negative, summing to 1."""
        d = self.density[None, None]
        size = (int(size[0]), int(size[1]))
        if tuple(d.shape[-2:]) != size:
            d = F.interpolate(d, size=size, mode="bilinear", align_corners=False, antialias=True)
        d = d[0, 0].clamp_min(0)
        return d / d.sum()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """N×3×H×W images -> N×H×W centre-bias density (the same map for every image)."""
        if images.dim() != 4:
            raise ValueError(f"expected N×C×H×W images, got shape {tuple(images.shape)}")
        d = self.density_at(tuple(images.shape[-2:])).to(images.device)
        return d.expand(images.shape[0], -1, -1).clone()

    def predict_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """N×h×w centre-bias density at the batch's ground-truth size."""
        n, size = _batch_size_and_count(batch)
        return self.density_at(size).expand(n, -1, -1).clone()


class TrueDensity(nn.Module):
    """The generating density of a synthetic dataset (``batch["density"]``): the upper bound."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise TypeError(
            "TrueDensity cannot predict from images alone: it returns the data's own density. "
            "Use it through salbook.evaluate(TrueDensity(), dataset) or .predict_batch(batch)"
        )

    def predict_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """``batch["density"]`` as float32 N×h×w."""
        if "density" not in batch:
            raise ValueError(
                "TrueDensity needs batch['density'], which only generated (synthetic) datasets "
                "provide; on real data use CenterBias or inter_observer() as the reference"
            )
        d = batch["density"]
        if isinstance(d, (list, tuple)):
            d = torch.stack([torch.as_tensor(x) for x in d])
        return torch.as_tensor(d, dtype=torch.float32)


def _observer_splits(
    observers: np.ndarray, mode: str, rng: np.random.Generator
) -> list[tuple[str, np.ndarray]]:
    """(label, held-out mask over the fixations) for each split of one image's observers."""
    ids = np.unique(observers)
    if mode == "one_vs_rest":
        return [(f"observer {int(o)}", observers == o) for o in ids]
    perm = rng.permutation(ids)
    half = perm[: len(ids) // 2]
    held = np.isin(observers, half)
    return [("half A", held), ("half B", ~held)]


@single_threaded_blas
def inter_observer(
    dataset: Any,
    metrics: Iterable[str] = DEFAULT_METRICS,
    mode: str = "one_vs_rest",
    sigma: float | None = None,
    n_shuffle_images: int = 100,
    seed: int = 0,
    progress: bool | None = None,
    n_splits: int = 100,
) -> EvalResult:
    """Inter-observer consistency: the other observers' fixations predict the held-out ones.

    For each image and each split (``mode="one_vs_rest"``: every observer in turn is held out;
    ``mode="half"``: the observers are split at random into two halves — seeded by (``seed``,
    image) — and each half predicts the other), the prediction is the blurred map of the
    *remaining* fixations (:func:`salbook.metrics.fixation_map_from_points`, ``sigma`` pixels);
    fixation metrics score the held-out fixations, and CC / KLD / SIM compare with the held-out
    observers' own blurred map (same ``sigma``). sAUC negatives come from other images (as in
    :func:`salbook.evaluate`). Images with fewer than two observers are skipped.

    ``sigma``: pixels; default ``dataset.fixation_sigma`` when the dataset has it (a number, or a
    callable of the map width), else :func:`mit_sigma` of the map width (24 px per 1024 px, the
    rule the synthetic generator also uses).

    Returns an :class:`~salbook.evaluation.EvalResult` whose ``per_image`` has one row per
    (image, split) with a ``held_out`` column; the ``summary`` averages first over the splits of
    an image, then over images (each image weighs the same).
    """
    from tqdm.auto import tqdm

    names = check_metric_names(metrics)
    if "info_gain" in names:
        raise ValueError("inter_observer does not compute info_gain (no baseline map); drop it")
    if mode not in ("one_vs_rest", "half"):
        raise ValueError(f"mode must be 'one_vs_rest' or 'half', got {mode!r}")
    show = progress_enabled() if progress is None else bool(progress)
    records = fixation_records(dataset, show) if "auc_shuffled" in names else None
    sig_attr = getattr(dataset, "fixation_sigma", None)
    rows: list[dict[str, Any]] = []
    image_index: list[int] = []
    skipped = 0
    for i in tqdm(range(len(dataset)), desc=f"inter-observer ({mode})", disable=not show):
        sample = dataset[i]
        if "observers" not in sample:
            raise ValueError(
                "inter_observer needs sample['observers'] (observer id per fixation); this dataset "
                "does not record observers"
            )
        size = ground_truth_size(sample)
        fix = as_fixations(sample["fixations"], size)
        obs = np.asarray(torch.as_tensor(sample["observers"]).cpu().numpy()).reshape(-1)
        if len(obs) != len(fix):
            raise ValueError(f"image {i}: {len(fix)} fixations but {len(obs)} observer ids")
        if len(np.unique(obs)) < 2:
            skipped += 1
            continue
        if sigma is not None:
            s = float(sigma)
        elif callable(sig_attr):  # e.g. a method fixation_sigma(width) -> pixels
            s = float(sig_attr(size[1]))
        elif sig_attr is not None:
            s = float(sig_attr)
        else:
            s = mit_sigma(size[1])
        other = shuffle_fixations(records, i, n_shuffle_images, seed) if records is not None else None
        rng = np.random.default_rng([int(seed), int(i), 2])
        name = str(sample.get("name", i))
        for label, held in _observer_splits(obs, mode, rng):
            pred = fixation_map_from_points(fix[~held], size, s)
            target = {
                "fixations": fix[held],
                "fixation_map": fixation_map_from_points(fix[held], size, s),
            }
            scores = score_image(
                pred, target, names, other_fixations=other, seed=image_seed(seed, i), n_splits=n_splits
            )
            rows.append({"name": name, "held_out": label, **scores})
            image_index.append(i)
    if not rows:
        raise ValueError("no image has two or more observers; inter_observer needs them")
    per_image = pd.DataFrame(rows, columns=["name", "held_out", *names])
    per_img_mean = per_image[list(names)].groupby(np.asarray(image_index), sort=False).mean()
    settings = {
        "model": f"inter-observer ({mode})",
        "metrics": list(names),
        "mode": mode,
        "sigma": sigma if sigma is not None else "dataset.fixation_sigma" if sig_attr is not None else "mit_sigma(width)",
        "n_images": int(per_img_mean.shape[0]),
        "skipped_images": skipped,
        "seed": seed,
        "interval": "Student-t 95% interval over per-image means",
    }
    return EvalResult(per_image, summarize(per_img_mean, names), settings)
