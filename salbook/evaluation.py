"""The evaluation harness: run a model over a dataset and score every image.

:func:`evaluate` returns an :class:`EvalResult`: a tidy ``per_image`` table (one row per image,
``name`` + one column per metric) and a ``summary`` (per metric: mean, std, 95 % interval, n).

Documented rules
----------------
* **Prediction**: :func:`predict` puts the model in ``eval()`` mode under ``torch.no_grad()``;
  a model with a ``predict_batch(batch)`` method (the baselines) is asked for its maps directly,
  any other is called as ``model(images)`` and must return N×h×w or N×1×h×w.
* **postprocess** (a name from :data:`POSTPROCESSORS` — ``"minmax"``, ``"blur_minmax"`` (Gaussian
  σ = 3 map pixels, then min-max: Pan et al.'s official inference), ``"sigmoid"`` — or any
  callable) is applied to each prediction as an h×w tensor, before resizing.
* **Resizing**: each prediction is resized to its ground truth's size (the fixation map's, else
  the density's / mask's, else the image's) with bilinear interpolation, ``align_corners=False``,
  antialiased when shrinking (:func:`salbook.metrics.resize_map`; plain bilinear when enlarging).
* **Shuffled AUC**: for image i, the negatives come from the fixations of ``n_shuffle_images``
  other images of the same dataset (chosen with ``seed``, never i itself; all others when there
  are fewer), each moved to image i's map grid by the exact pixel-centre rule
  (:func:`salbook.metrics.rescale_fixations`); duplicates count once.
* **Random metrics** (Borji, shuffled) of image i use a seed derived from (``seed``, i), so a
  score does not depend on batch size or order.
* **Summary**: NaN scores (undefined cases, e.g. an image without fixations) are left out and
  ``n`` counts the images that entered. The 95 % interval is the Student-t interval of the mean,
  mean ± t(0.975, n − 1) · std / sqrt(n) with the sample std (ddof = 1); NaN when n < 2.
* **Threads**: while scoring, NumPy's BLAS runs on one thread (:func:`single_threaded_blas`). The
  per-image matrix products are small, and OpenBLAS's idle workers spin on the cores that PyTorch
  and the metrics need: on this book's 2-core machine the inter-observer reference of 40 images
  took 8.7 s with two BLAS threads and 3.4 s with one, with identical scores.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from salbook.metrics.fixation import (
    as_fixations,
    check_metric_names,
    rescale_fixations,
    resize_map,
    score_image,
)
from salbook.utils import progress_enabled, resolve_device

__all__ = [
    "EvalResult",
    "DEFAULT_METRICS",
    "predict",
    "evaluate",
    "evaluate_sod",
    "summarize",
    "ground_truth_size",
    "shuffle_fixations",
    "fixation_records",
    "image_seed",
    "POSTPROCESSORS",
    "blur_minmax",
    "resolve_postprocess",
    "finished_maps",
    "paired_difference",
    "single_threaded_blas",
]

DEFAULT_METRICS: tuple[str, ...] = ("auc_judd", "auc_borji", "auc_shuffled", "nss", "cc", "kld", "sim")


_F = Callable[..., Any]


def single_threaded_blas(func: _F) -> _F:
    """Run ``func`` with NumPy's BLAS limited to one thread (``threadpoolctl``), then restore it.

    For loops of many small NumPy products beside PyTorch work: idle OpenBLAS workers busy-wait,
    and on a machine with few cores they take the cycles the main thread needs. Results do not
    change (each small product is computed the same way on one thread).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------------------------
# result container and summary
# --------------------------------------------------------------------------------------------
def summarize(per_image: pd.DataFrame, metrics: Sequence[str], confidence: float = 0.95) -> pd.DataFrame:
    """Per metric: ``mean``, ``std`` (ddof=1), ``ci_low``, ``ci_high`` (Student-t interval of the
    mean at ``confidence``) and ``n`` (non-NaN values). Index: the metric names."""
    from scipy import stats

    rows = {}
    for m in metrics:
        v = per_image[m].to_numpy(dtype=np.float64)
        v = v[~np.isnan(v)]
        n = int(v.size)
        mean = float(v.mean()) if n else float("nan")
        std = float(v.std(ddof=1)) if n > 1 else float("nan")
        if n > 1:
            half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
            lo, hi = mean - half, mean + half
        else:
            lo = hi = float("nan")
        rows[m] = {"mean": mean, "std": std, "ci_low": lo, "ci_high": hi, "n": n}
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "std", "ci_low", "ci_high", "n"])
    out.index.name = "metric"
    return out


@dataclass
class EvalResult:
    """What :func:`evaluate` returns.

    ``per_image``: one row per image (``name``, then one float column per metric; the
    inter-observer baseline adds a ``held_out`` column). ``summary``: indexed by metric, columns
    ``mean``, ``std``, ``ci_low``, ``ci_high``, ``n``. ``settings``: how the numbers were made.
    """

    per_image: pd.DataFrame
    summary: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        """The metric names, in order."""
        return list(self.summary.index)

    def mean(self) -> dict[str, float]:
        """``{metric: mean}``."""
        return {k: float(v) for k, v in self.summary["mean"].items()}

    def table(self, name: str | None = None, ci: bool = False, digits: int = 3) -> pd.DataFrame:
        """A one-row summary for a results table: columns = metrics, index = ``name``.

        With ``ci=False`` the cells are the float means; with ``ci=True`` they are strings
        ``"mean [ci_low, ci_high]"`` rounded to ``digits``.
        """
        label = name if name is not None else self.settings.get("model", "model")
        if not ci:
            return pd.DataFrame([self.summary["mean"].to_dict()], index=[label])
        cells = {
            m: f"{r['mean']:.{digits}f} [{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}]"
            for m, r in self.summary.iterrows()
        }
        return pd.DataFrame([cells], index=[label])


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def image_seed(seed: int, index: int) -> int:
    """The seed the random metrics of image ``index`` use: independent of batching and order."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def ground_truth_size(sample: Mapping[str, Any]) -> tuple[int, int]:
    """(h, w) of a sample's ground truth: ``fixation_map``, else ``density``, else ``mask``, else
    the image. Works on one sample (maps h×w) and on a collated batch (maps N×h×w)."""
    for key in ("fixation_map", "density", "mask"):
        if key in sample:
            v = sample[key]
            v = v[0] if isinstance(v, (list, tuple)) else v
            return int(v.shape[-2]), int(v.shape[-1])
    if "image" in sample:
        v = sample["image"]
        v = v[0] if isinstance(v, (list, tuple)) else v
        return int(v.shape[-2]), int(v.shape[-1])
    raise ValueError("the sample has no fixation_map, density, mask or image to take a size from")


def _collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """salbook.data.collate when present; else stack equal-shape tensors and list the rest."""
    try:
        from salbook.data import collate  # type: ignore[attr-defined]
    except ImportError:
        collate = None
    if collate is not None:
        return collate(samples)
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key not in ("fixations", "observers") and isinstance(values[0], torch.Tensor) and len(
            {tuple(v.shape) for v in values}
        ) == 1:
            batch[key] = torch.stack(values)
        else:
            batch[key] = list(values)
    return batch


def _batches(dataset: Any, batch_size: int) -> Iterator[tuple[list[int], dict[str, Any]]]:
    """Yield (indices, collated batch) in dataset order."""
    n = len(dataset)
    for start in range(0, n, batch_size):
        idx = list(range(start, min(start + batch_size, n)))
        yield idx, _collate([dataset[i] for i in idx])


def _item(batch: Mapping[str, Any], i: int) -> dict[str, Any]:
    return {k: v[i] for k, v in batch.items() if isinstance(v, (torch.Tensor, list, tuple))}


def _as_pred_batch(out: Any, model: Any) -> torch.Tensor:
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"{type(model).__name__} returned {type(out).__name__}; a saliency model must return "
            "a tensor N×h×w or N×1×h×w"
        )
    if out.dim() == 4 and out.shape[1] == 1:
        out = out[:, 0]
    if out.dim() != 3:
        raise ValueError(
            f"{type(model).__name__} returned shape {tuple(out.shape)}; expected N×h×w or N×1×h×w"
        )
    return out.detach().float().cpu()


def predict(model: Any, batch: Mapping[str, Any], device: str | torch.device = "auto") -> torch.Tensor:
    """One batch of saliency maps, float32 N×h×w on the CPU, at the model's output size.

    A model with ``predict_batch(batch)`` (the baselines) is asked directly; any other callable is
    given ``batch["image"]`` (N×3×H×W) on ``device``, an ``nn.Module`` moved there first. Runs under
    ``torch.no_grad()`` and, for an ``nn.Module``, in ``eval()`` mode (its previous mode is restored).
    """
    dev = resolve_device(device) if isinstance(device, str) or device is None else device
    was_training = isinstance(model, nn.Module) and model.training
    if isinstance(model, nn.Module):
        model.to(dev).eval()
    try:
        with torch.no_grad():
            if hasattr(model, "predict_batch"):
                out = model.predict_batch(batch)
            else:
                images = batch["image"]
                if isinstance(images, (list, tuple)):
                    images = torch.stack(list(images))
                out = model(images.to(dev))
    finally:
        if was_training:
            model.train()
    return _as_pred_batch(out, model)


def _finish_prediction(
    pred: torch.Tensor, size: tuple[int, int], postprocess: Callable[[torch.Tensor], torch.Tensor] | None
) -> np.ndarray:
    """Postprocess one h×w prediction, then resize it to ``size`` (the documented rule)."""
    if postprocess is not None:
        pred = postprocess(pred)
        if not isinstance(pred, torch.Tensor):
            pred = torch.as_tensor(np.asarray(pred))
        while pred.dim() > 2 and pred.shape[0] == 1:
            pred = pred[0]
    return resize_map(pred, size)


def fixation_records(dataset: Any, progress: bool) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """(fixations K×2, map size) of every image, read once (sAUC's shuffle map, the centre-bias fit).

    A dataset may offer a cheap ``fixation_record(i) -> (fixations, (h, w))`` method (no image
    decoding); otherwise every sample is loaded once with ``dataset[i]``.
    """
    from tqdm.auto import tqdm

    getter = getattr(dataset, "fixation_record", None)
    records = []
    for i in tqdm(range(len(dataset)), desc="shuffle fixations", disable=not progress, leave=False):
        if callable(getter):
            fix, size = getter(i)
        else:
            s = dataset[i]
            if "fixations" not in s:
                raise ValueError("this needs samples with 'fixations' (sAUC's shuffle map, the centre-bias "
                                 "fit); the dataset has none")
            fix, size = s["fixations"], ground_truth_size(s)
        size = (int(size[0]), int(size[1]))
        records.append((as_fixations(fix, size), size))
    return records


def shuffle_fixations(
    records: Sequence[tuple[np.ndarray, tuple[int, int]]], index: int, n_images: int, seed: int
) -> np.ndarray:
    """The sAUC negatives of image ``index``: unique fixated pixels of ``n_images`` other images.

    ``records[j]`` = (fixations K×2, map size) of image j. The other images are drawn without
    replacement from all j != index with a generator seeded by (``seed``, ``index``, 1); their
    fixations are rescaled to image ``index``'s grid (pixel-centre rule) and deduplicated.
    Returns int64 M×2.
    """
    n = len(records)
    size = records[index][1]
    if n < 2 or n_images < 1:
        return np.zeros((0, 2), dtype=np.int64)
    rng = np.random.default_rng([int(seed), int(index), 1])
    k = min(int(n_images), n - 1)
    pick = rng.choice(n - 1, size=k, replace=False)
    pick = pick + (pick >= index)  # skip the image itself
    parts = [rescale_fixations(records[j][0], records[j][1], size) for j in pick]
    allfix = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)
    flat = np.unique(allfix[:, 0] * size[1] + allfix[:, 1])
    return np.stack([flat // size[1], flat % size[1]], axis=1)


def _baseline_maps(baseline: Any, batch: Mapping[str, Any], device: Any) -> list[Any] | None:
    """Per-image baseline maps for info_gain: a model (asked like :func:`predict`) or one map."""
    if baseline is None:
        return None
    if isinstance(baseline, nn.Module) or hasattr(baseline, "predict_batch"):
        maps = predict(baseline, batch, device)
        return [maps[i] for i in range(len(maps))]
    n = len(batch["name"]) if "name" in batch else len(batch["fixations"])
    return [baseline] * n


# --------------------------------------------------------------------------------------------
# named post-processing
# --------------------------------------------------------------------------------------------
def blur_minmax(sigma: float = 3.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Gaussian blur of σ map pixels (``scipy.ndimage.gaussian_filter`` defaults: reflecting
    border, truncated at 4 σ), then min-max to [0, 1]; σ = 0 is the min-max alone.

    Pan et al.'s official inference (``prediction.py``) does this on the 48 × 48 output before
    resizing it to the image.
    """
    from scipy.ndimage import gaussian_filter

    from .maps import minmax

    def post(pred: torch.Tensor) -> torch.Tensor:
        x = pred.detach().float().cpu().numpy()
        x = x.reshape(x.shape[-2:])
        if sigma > 0:
            x = gaussian_filter(x.astype(np.float64), sigma=sigma)
        return torch.from_numpy(minmax(x).astype(np.float32))

    post.__name__ = f"blur{sigma:g}_minmax" if sigma > 0 else "minmax"
    return post


#: Post-processing by name: applied to each h×w prediction before it is resized.
POSTPROCESSORS: dict[str, Callable[[torch.Tensor], torch.Tensor] | None] = {
    "none": None,
    "minmax": blur_minmax(0.0),
    "blur_minmax": blur_minmax(3.0),
    "sigmoid": torch.sigmoid,
}


def resolve_postprocess(postprocess: str | Callable[[torch.Tensor], torch.Tensor] | None):
    """A post-processing callable (or ``None``) from a name in :data:`POSTPROCESSORS` or a callable."""
    if postprocess is None or callable(postprocess):
        return postprocess
    if postprocess not in POSTPROCESSORS:
        raise ValueError(f"unknown postprocess {postprocess!r}; choose one of {sorted(POSTPROCESSORS)} or pass a callable")
    return POSTPROCESSORS[postprocess]


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------
@single_threaded_blas
def evaluate(
    model: Any,
    dataset: Any,
    metrics: Iterable[str] = DEFAULT_METRICS,
    batch_size: int = 16,
    device: str | torch.device = "auto",
    postprocess: str | Callable[[torch.Tensor], torch.Tensor] | None = None,
    n_shuffle_images: int = 100,
    seed: int = 0,
    progress: bool | None = None,
    info_gain_baseline: Any = None,
    n_splits: int = 100,
    name: str | None = None,
) -> EvalResult:
    """Score ``model`` on every image of a fixation ``dataset``.

    Args:
        model: an ``nn.Module`` (or callable) mapping N×3×H×W images to N×h×w / N×1×h×w maps, or
            an object with ``predict_batch(batch)`` (the baselines in :mod:`salbook.baselines`).
        dataset: a sequence of sample dicts (``len`` + indexing), e.g. ``salbook.data.load(...)``.
        metrics: names from :data:`salbook.metrics.FIXATION_METRICS`.
        batch_size: images per forward pass.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
        postprocess: applied to each h×w prediction before resizing: a name from
            :data:`POSTPROCESSORS` or a callable (e.g. ``"sigmoid"`` for logits, which KLD needs:
            it rejects negative maps).
        n_shuffle_images: other images whose fixations make the sAUC negatives (SALICON
            practice: 100; MIT: 10).
        seed: seeds the random metrics and the choice of shuffle images.
        progress: show a tqdm bar (default: :func:`salbook.utils.progress_enabled`).
        info_gain_baseline: for ``info_gain``: a model (e.g. a fitted ``CenterBias``) or one map.
        n_splits: splits of the Borji / shuffled AUCs.
        name: a label for :meth:`EvalResult.table` (default: the model's class name).

    Returns:
        :class:`EvalResult` (see the module docstring for every rule).
    """
    from tqdm.auto import tqdm

    names = check_metric_names(metrics)
    postprocess = resolve_postprocess(postprocess)
    if "info_gain" in names and info_gain_baseline is None:
        raise ValueError("metric 'info_gain' needs info_gain_baseline= (e.g. CenterBias.fit(train_set))")
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    show = progress_enabled() if progress is None else bool(progress)
    dev = resolve_device(device)
    if isinstance(model, nn.Module):
        model.to(dev)
    if isinstance(info_gain_baseline, nn.Module):
        info_gain_baseline.to(dev)
    records = fixation_records(dataset, show) if "auc_shuffled" in names else None

    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(dataset), desc=f"evaluate {type(model).__name__}", disable=not show)
    for idx, batch in _batches(dataset, int(batch_size)):
        preds = predict(model, batch, dev)
        bases = _baseline_maps(info_gain_baseline, batch, dev) if "info_gain" in names else None
        for j, i in enumerate(idx):
            sample = _item(batch, j)
            size = ground_truth_size(sample)
            pred = _finish_prediction(preds[j], size, postprocess)
            other = (
                shuffle_fixations(records, i, n_shuffle_images, seed) if records is not None else None
            )
            scores = score_image(
                pred,
                sample,
                names,
                other_fixations=other,
                baseline=None if bases is None else bases[j],
                seed=image_seed(seed, i),
                n_splits=n_splits,
            )
            rows.append({"name": str(sample.get("name", i)), **scores})
        bar.update(len(idx))
    bar.close()
    per_image = pd.DataFrame(rows, columns=["name", *names])
    settings = {
        "model": name or type(model).__name__,
        "metrics": list(names),
        "n_images": len(per_image),
        "n_shuffle_images": n_shuffle_images,
        "n_splits": n_splits,
        "seed": seed,
        "resize": "bilinear, align_corners=False, antialias when shrinking, to the ground truth size",
        "interval": "Student-t 95% interval of the mean",
    }
    return EvalResult(per_image, summarize(per_image, names), settings)


@single_threaded_blas
def evaluate_sod(
    model: Any,
    dataset: Any,
    batch_size: int = 16,
    device: str | torch.device = "auto",
    postprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool | None = None,
    name: str | None = None,
) -> EvalResult:
    """Score a salient-object model on a dataset whose samples have a ``mask``.

    Predictions must lie in [0, 1] (pass ``postprocess=torch.sigmoid`` for logits); each is
    resized to its mask's size by the same rule as :func:`evaluate`. ``per_image`` holds the
    per-image scores of :meth:`salbook.metrics.SODMetrics.step`; ``summary`` holds every key of
    :meth:`SODMetrics.results`: for the dataset-level ones (``max_f``, ``max_e``,
    ``max_f_salmetric``, ``mean_f``, ``mean_e``) ``mean`` is the dataset value and the interval is
    NaN; per-image ones (mae, adaptive F/E, S-measure) get the Student-t interval.
    """
    from tqdm.auto import tqdm

    from salbook.metrics.sod import SOD_METRICS, SODMetrics

    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    show = progress_enabled() if progress is None else bool(progress)
    dev = resolve_device(device)
    if isinstance(model, nn.Module):
        model.to(dev)
    acc = SODMetrics()
    rows = []
    bar = tqdm(total=len(dataset), desc=f"evaluate_sod {type(model).__name__}", disable=not show)
    for idx, batch in _batches(dataset, int(batch_size)):
        if "mask" not in batch:
            raise ValueError("evaluate_sod needs samples with a 'mask' (a salient-object dataset)")
        preds = predict(model, batch, dev)
        for j, i in enumerate(idx):
            sample = _item(batch, j)
            pred = _finish_prediction(preds[j], ground_truth_size({"mask": sample["mask"]}), postprocess)
            rows.append({"name": str(sample.get("name", i)), **acc.step(pred, sample["mask"])})
        bar.update(len(idx))
    bar.close()
    per_image = pd.DataFrame(rows)
    per_image_metrics = ["mae", "mae_salmetric", "adaptive_f", "s_measure", "adaptive_e"]
    summary = summarize(per_image, per_image_metrics)
    dataset_level = acc.results()
    for key in SOD_METRICS:
        if key not in summary.index:
            summary.loc[key] = [dataset_level[key], np.nan, np.nan, np.nan, len(per_image)]
        else:
            summary.loc[key, "mean"] = dataset_level[key]
    summary = summary.loc[list(SOD_METRICS)]
    summary["n"] = summary["n"].astype(int)
    settings = {
        "model": name or type(model).__name__,
        "n_images": len(per_image),
        "f_conventions": "max_f: image-averaged F curve (PySODMetrics); max_f_salmetric: P, R "
        "averaged over images first (SalMetric, CSNet)",
    }
    return EvalResult(per_image, summary, settings)


# --------------------------------------------------------------------------------------------
# maps as evaluated, and paired comparisons
# --------------------------------------------------------------------------------------------
def finished_maps(
    model: Any,
    dataset: Any,
    postprocess: str | Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device = "auto",
    batch_size: int = 16,
    indices: Sequence[int] | None = None,
) -> list[np.ndarray]:
    """The maps :func:`evaluate` scores: each prediction post-processed and resized to its
    ground truth's size (float32 h×w arrays, one per image of ``indices``, default all)."""
    post = resolve_postprocess(postprocess)
    chosen = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    dev = resolve_device(device) if isinstance(device, str) else device
    out: list[np.ndarray] = []
    for start in range(0, len(chosen), batch_size):
        samples = [dataset[i] for i in chosen[start:start + batch_size]]
        preds = predict(model, _collate(samples), dev)
        out.extend(np.asarray(_finish_prediction(p, ground_truth_size(s), post), dtype=np.float32)
                   for p, s in zip(preds, samples))
    return out


def paired_difference(
    a: EvalResult, b: EvalResult, metrics: Sequence[str] | None = None, confidence: float = 0.95
) -> pd.DataFrame:
    """Per-image differences ``a − b`` of two evaluations on the same images.

    One row per metric: ``mean difference``, its Student-t interval (``ci_low``, ``ci_high``;
    the paired t-interval over images), ``share a better`` (images where a scores better, in the
    metric's own direction), ``n``, and ``verdict``: ``"beats"`` when the interval lies entirely
    on a's better side of zero, ``"loses"`` when entirely on the worse side, else ``"ties"``.
    Images whose score is NaN in either are left out.
    """
    from scipy import stats

    from .metrics import HIGHER_IS_BETTER

    names_a, names_b = list(a.per_image["name"]), list(b.per_image["name"])
    if names_a != names_b:
        raise ValueError("the two evaluations must score the same images in the same order")
    metrics = list(metrics) if metrics is not None else [m for m in a.metrics if m in b.metrics]
    rows = {}
    for m in metrics:
        d = (a.per_image[m] - b.per_image[m]).dropna().to_numpy(dtype=np.float64)
        n = len(d)
        mean = float(d.mean()) if n else math.nan
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * d.std(ddof=1) / np.sqrt(n)) if n > 1 else math.nan
        sign = 1.0 if HIGHER_IS_BETTER.get(m, True) else -1.0
        low, high = mean - half, mean + half
        if sign * low > 0 and sign * high > 0:
            verdict = "beats"
        elif sign * low < 0 and sign * high < 0:
            verdict = "loses"
        else:
            verdict = "ties"
        rows[m] = {"mean difference": mean, "ci_low": low, "ci_high": high,
                   "share a better": float((sign * d > 0).mean()) if n else math.nan, "n": n, "verdict": verdict}
    return pd.DataFrame(rows).T.astype({"mean difference": float, "ci_low": float, "ci_high": float,
                                         "share a better": float, "n": int})
