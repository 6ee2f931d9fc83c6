"""Fixation-prediction metrics, following the MIT Saliency Benchmark definitions.

Every metric scores **one image** and returns a Python ``float``. The definitions are those of the
MIT benchmark code (``code_forMetrics``), restated in ``shared/reference/metrics.md``; where the
MIT code leaves a case undefined (it would produce NaN or Inf), this module makes a documented
choice, listed here once:

Conventions shared by all metrics
---------------------------------
* ``pred``, ``fixation_map`` and ``baseline`` are H×W arrays (``numpy.ndarray`` or
  ``torch.Tensor``; a leading 1×… or 1×1×… is squeezed). They are converted to float64.
* ``fixations`` are K×2 integer (row, col) pixel positions in ``pred``'s grid (row in [0, H),
  col in [0, W)). Duplicates are allowed; the MIT metrics (AUCs, NSS, IG) use the **set** of
  fixated pixels, so a pixel fixated twice counts once. A position outside the grid raises
  ``ValueError`` (rescale with :func:`rescale_fixations` first).
* A NaN or infinite value in any map raises ``ValueError``: a score is never computed from it.
* No fixation (K = 0), or a fixation map with no mass: the score is undefined and is returned as
  ``nan`` (averages in :mod:`salbook.evaluation` skip NaN and report how many images counted).
* Size mismatch: a prediction of another size than the fixation map (CC, KLD, SIM) or a baseline
  of another size than the prediction (IG) is first resized by :func:`resize_map` — bilinear,
  ``align_corners=False``, antialiased when shrinking (identical to plain bilinear when
  enlarging); :func:`salbook.evaluation.evaluate` uses the same rule.
* A constant map (all-zero included) carries no information: the AUCs give 0.5, NSS and CC give
  0.0 (the MIT code would return NaN), SIM and IG treat it as the uniform distribution. KLD keeps
  the MIT rule: a map whose sum is 0 is not normalised, so it scores as a (very) bad density.
* ``eps`` = float64 machine epsilon (2.2204e-16), as MATLAB's ``eps``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from salbook.utils import progress_enabled

__all__ = [
    "EPS",
    "auc_judd",
    "auc_borji",
    "auc_shuffled",
    "nss",
    "cc",
    "kld",
    "sim",
    "info_gain",
    "log_likelihood",
    "FIXATION_METRICS",
    "METRIC_TARGETS",
    "fixation_map_from_points",
    "rescale_fixations",
    "resize_map",
    "as_map",
    "as_fixations",
    "score_image",
    "score_batch",
    "benchmark",
]

EPS: float = float(np.finfo(np.float64).eps)  # 2.220446049250313e-16, MATLAB's eps

# Input checking and the map/fixation conversions are shared with the data loaders (salbook.maps);
# they are re-exported here because every metric takes and gives the same kinds.
from ..maps import (  # noqa: E402
    FixLike,
    MapLike,
    as_fixations,
    as_map,
    fixation_map_from_points,
    minmax,
    rescale_fixations,
    resize_map,
)


# --------------------------------------------------------------------------------------------
# input checking and conversion
# --------------------------------------------------------------------------------------------
def _fixated_pixels(fixations: FixLike, shape: tuple[int, int]) -> np.ndarray:
    """Sorted unique flat indices (row * W + col) of the fixated pixels (duplicates count once)."""
    fix = as_fixations(fixations, shape)
    return np.unique(fix[:, 0] * shape[1] + fix[:, 1])


def _minmax_density(s: np.ndarray) -> np.ndarray:
    """Min-max then divide by the sum (MIT SIM / IG); a constant map becomes uniform."""
    m = minmax(s)
    total = m.sum()
    if total == 0:
        return np.full_like(s, 1.0 / s.size)
    return m / total


def _trapezoid(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Trapezoid area under y(x) along ``axis`` (MATLAB ``trapz(x, y)``)."""
    dx = np.diff(x, axis=axis)
    ym = (np.take(y, range(1, y.shape[axis]), axis=axis) + np.take(y, range(y.shape[axis] - 1), axis=axis)) / 2
    return (dx * ym).sum(axis=axis)


def _check_splits(n_splits: int, step: float) -> None:
    if int(n_splits) < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    if not (0 < step <= 1):
        raise ValueError(f"step must be in (0, 1], got {step}")


def _borji_thresholds(step: float) -> np.ndarray:
    """Thresholds k*step for k = 0..floor(1/step), **descending** (MIT ``fliplr(0:step:max)``).

    Each is rounded to 12 decimals so that, as with MATLAB's colon operator, 6 * 0.1 is exactly
    the double nearest 0.6 (not 0.6000000000000001), and a map value of 0.6 passes ``>= 0.6``.
    MIT stops at the split's max value; the extra thresholds above it give the point (0, 0)
    again, which adds no area, so the fixed list up to 1 (the max after min-max) is equivalent.
    """
    n = int(math.floor(1.0 / step + 1e-9))
    return np.round(np.arange(n + 1, dtype=np.float64) * step, 12)[::-1]


def _auc_vs_negative_splits(pos: np.ndarray, neg: np.ndarray, step: float) -> float:
    """Mean over splits of the MIT Borji-style AUC.

    ``pos``: K values at fixated pixels; ``neg``: n_splits × M negative values (all min-maxed).
    At each threshold t: TPR = #(pos >= t)/K, FPR = #(neg >= t)/M; points (0,0) and (1,1) added.
    """
    thr = _borji_thresholds(step)  # T, descending
    tp = (pos[:, None] >= thr[None, :]).mean(axis=0)  # T
    # FPR per split: compare every negative with every threshold (n_splits × M × T booleans).
    fp = (neg[:, :, None] >= thr[None, None, :]).mean(axis=1)  # n_splits × T
    n_splits = neg.shape[0]
    zeros, ones = np.zeros((n_splits, 1)), np.ones((n_splits, 1))
    tp_all = np.concatenate([zeros, np.broadcast_to(tp, (n_splits, len(thr))), ones], axis=1)
    fp_all = np.concatenate([zeros, fp, ones], axis=1)
    return float(_trapezoid(fp_all, tp_all, axis=1).mean())


# --------------------------------------------------------------------------------------------
# the metrics
# --------------------------------------------------------------------------------------------
def auc_judd(pred: MapLike, fixations: FixLike) -> float:
    """AUC-Judd (MIT): area under the ROC curve of fixated vs non-fixated pixels.

    Positives: ``pred`` at the fixated pixels (each pixel once). Negatives: ``pred`` at **all**
    non-fixated pixels. Thresholds: the distinct positive values; at threshold t,
    TPR = #(positives >= t) / #positives, FPR = #(negatives >= t) / #negatives; the points (0, 0)
    and (1, 1) are added and the area is taken by trapezoids. MIT jitters the map by 1e-7 noise to
    break ties; counting with ``>=`` at the distinct values is the tie-exact form of that curve
    (deterministic, no seed). This is not the Mann-Whitney AUC: only positive values are thresholds.

    Returns a float in [0, 1]. Constant map: 0.5. No fixation: nan. Every pixel fixated (no
    negatives): nan.
    """
    s = as_map(pred)
    idx = _fixated_pixels(fixations, s.shape)
    flat = s.ravel()
    if idx.size == 0 or idx.size == flat.size:
        return float("nan")
    pos = flat[idx]
    neg_mask = np.ones(flat.size, dtype=bool)
    neg_mask[idx] = False
    neg = flat[neg_mask]
    thr = np.unique(pos)  # ascending distinct thresholds
    m = thr.size
    # positives >= thr[j]: K - (number of positives < thr[j])
    pos_sorted = np.sort(pos)
    tp_count = pos.size - np.searchsorted(pos_sorted, thr, side="left")
    # negatives >= thr[j]: bin every negative by how many thresholds are <= it
    k = np.searchsorted(thr, neg, side="right")  # in 0..m
    hist = np.bincount(k, minlength=m + 1)
    # count of k > j  =  sum(hist[j+1:])
    fp_count = neg.size - np.cumsum(hist)[:m]
    # descending thresholds -> increasing rates
    tpr = np.concatenate([[0.0], (tp_count / pos.size)[::-1], [1.0]])
    fpr = np.concatenate([[0.0], (fp_count / neg.size)[::-1], [1.0]])
    return float(_trapezoid(fpr, tpr))


def auc_borji(
    pred: MapLike, fixations: FixLike, n_splits: int = 100, step: float = 0.1, seed: int = 0
) -> float:
    """AUC-Borji (MIT): fixated pixels vs pixels drawn uniformly at random.

    ``pred`` is min-max normalised to [0, 1] (a constant map becomes 0). Positives: the map at the
    fixated pixels (each pixel once, K of them). For each of ``n_splits`` splits, K negatives are
    drawn uniformly **with replacement** from all pixels. Thresholds 0 : ``step`` : 1 (descending,
    each k·step rounded to 12 decimals like MATLAB's colon operator);
    TPR = #(pos >= t)/K, FPR = #(neg >= t)/K; (0, 0) and (1, 1) added; trapezoid area; mean over
    splits. Deterministic given ``seed`` (``numpy.random.default_rng``); all splits are drawn and
    scored at once.

    Constant map: 0.5. No fixation: nan.
    """
    _check_splits(n_splits, step)
    s = minmax(as_map(pred))
    idx = _fixated_pixels(fixations, s.shape)
    if idx.size == 0:
        return float("nan")
    flat = s.ravel()
    pos = flat[idx]
    rng = np.random.default_rng(seed)
    neg = flat[rng.integers(0, flat.size, size=(int(n_splits), idx.size))]
    return _auc_vs_negative_splits(pos, neg, step)


class _SortedKeys:
    """The last shuffle draw, kept sorted once it is asked for twice (see :func:`_smallest_keys`)."""

    key: tuple[int, int, int] | None = None
    order: np.ndarray | None = None


def _smallest_keys(seed: Any, n_splits: int, m: int, k: int) -> np.ndarray:
    """Per split, the positions of the k smallest of m uniform keys drawn with ``seed``
    (``n_splits`` × k ints; the order within a row is unspecified).

    The keys depend only on (seed, n_splits, m), so several calls with those three equal — the
    inter-observer reference scores every held-out observer of an image against the same
    negatives, each with its own k — share one draw: the second such call sorts the keys once and
    every later one slices the sorted order. The chosen *set* is the same as a fresh
    ``argpartition`` (ties between float64 keys aside), and the AUC counts do not depend on order.
    """
    memo_key = (seed, n_splits, m) if isinstance(seed, (int, np.integer)) else None
    if memo_key is not None and _SortedKeys.key == memo_key and _SortedKeys.order is not None:
        return _SortedKeys.order[:, :k]
    keys = np.random.default_rng(seed).random((n_splits, m))
    if memo_key is not None and _SortedKeys.key == memo_key:  # asked again: sort once, reuse
        _SortedKeys.order = np.argsort(keys, axis=1).astype(np.int32 if m < 2**31 else np.int64)
        return _SortedKeys.order[:, :k]
    _SortedKeys.key, _SortedKeys.order = memo_key, None
    return np.argpartition(keys, k - 1, axis=1)[:, :k]


def auc_shuffled(
    pred: MapLike,
    fixations: FixLike,
    other_fixations: FixLike,
    n_splits: int = 100,
    step: float = 0.1,
    seed: int = 0,
) -> float:
    """Shuffled AUC (MIT sAUC): fixated pixels vs fixation locations of *other* images.

    Like :func:`auc_borji`, but the negatives of each split are k = min(K, M) pixels drawn
    **without replacement** from the M distinct pixels in ``other_fixations`` (the union of
    other images' fixated pixels, already rescaled to this map's grid — see
    :func:`rescale_fixations`; duplicates count once), and FPR = #(neg >= t) / k. This discounts
    centre bias: a pure centre prior scores about 0.5. Deterministic given ``seed``.

    Constant map: 0.5. No fixation, or no other fixation: nan.
    """
    _check_splits(n_splits, step)
    s = minmax(as_map(pred))
    idx = _fixated_pixels(fixations, s.shape)
    other = _fixated_pixels(other_fixations, s.shape)
    if idx.size == 0 or other.size == 0:
        return float("nan")
    flat = s.ravel()
    pos = flat[idx]
    k = min(idx.size, other.size)
    if k == other.size:  # every split takes all of them (order is irrelevant)
        choice = np.broadcast_to(other, (int(n_splits), k))
    else:  # k of M without replacement per split: the k smallest of M uniform keys
        choice = other[_smallest_keys(seed, int(n_splits), other.size, k)]
    neg = flat[choice]
    return _auc_vs_negative_splits(pos, neg, step)


def nss(pred: MapLike, fixations: FixLike) -> float:
    """Normalised Scanpath Saliency (MIT): mean z-score of ``pred`` at the fixated pixels.

    The map is standardised with its mean and its standard deviation with N-1 (MATLAB ``std``);
    each fixated pixel counts once. Unit: standard deviations (0 = chance).

    Constant map (all-zero included): 0.0 by choice (its z-scores are taken as 0; MIT would give
    NaN). No fixation: nan.
    """
    s = as_map(pred)
    idx = _fixated_pixels(fixations, s.shape)
    if idx.size == 0:
        return float("nan")
    flat = s.ravel()
    sd = flat.std(ddof=1) if flat.size > 1 else 0.0
    if sd == 0:
        return 0.0
    return float(((flat[idx] - flat.mean()) / sd).mean())


def _prepare_pair(pred: MapLike, fixation_map: MapLike) -> tuple[np.ndarray, np.ndarray]:
    """Check both maps and resize ``pred`` to the fixation map's size (the documented rule)."""
    d = as_map(fixation_map, "fixation_map")
    s = as_map(pred)
    if s.shape != d.shape:
        s = resize_map(s, d.shape)
    return s, d


def cc(pred: MapLike, fixation_map: MapLike) -> float:
    """Pearson linear correlation coefficient (MIT CC) between ``pred`` and the fixation map.

    ``pred`` is resized to the fixation map's size first if they differ (:func:`resize_map`).
    Range [-1, 1]. Constant prediction: 0.0 by choice (MIT: NaN). Constant fixation map
    (e.g. no fixation at all): nan.
    """
    s, d = _prepare_pair(pred, fixation_map)
    a = s - s.mean()
    b = d - d.mean()
    sb = (b * b).sum()
    if sb == 0:
        return float("nan")
    sa = (a * a).sum()
    if sa == 0:
        return 0.0
    return float((a * b).sum() / math.sqrt(sa * sb))


def _check_nonnegative(x: np.ndarray, name: str, metric: str) -> None:
    if x.min() < 0:
        raise ValueError(
            f"{metric} needs a non-negative {name} (a density up to scale), but its minimum is "
            f"{x.min():.4g}. If the model outputs logits pass postprocess=torch.sigmoid (or "
            "torch.exp for a log-density) to evaluate(), or min-max normalise the map"
        )


def kld(pred: MapLike, fixation_map: MapLike) -> float:
    """Kullback-Leibler divergence KL(Q || P) in nats (MIT KLD); lower is better, 0 is perfect.

    P = pred / sum(pred), Q = fixation_map / sum(fixation_map) (no min-max step);
    KLD = sum_x Q(x) ln(eps + Q(x) / (P(x) + eps)). ``pred`` is resized to the fixation map's size
    first if they differ. As in MIT, a prediction summing to 0 is not normalised (it scores as a
    very bad density, about 36 nats). Both maps must be non-negative (``ValueError`` otherwise).
    Fixation map with no mass: nan.
    """
    s, d = _prepare_pair(pred, fixation_map)
    _check_nonnegative(s, "prediction", "KLD")
    _check_nonnegative(d, "fixation map", "KLD")
    dsum = d.sum()
    if dsum == 0:
        return float("nan")
    q = d / dsum
    ssum = s.sum()
    p = s / ssum if ssum > 0 else s
    return float((q * np.log(EPS + q / (p + EPS))).sum())


def sim(pred: MapLike, fixation_map: MapLike) -> float:
    """Similarity / histogram intersection (MIT SIM): sum_x min(P(x), Q(x)).

    Each map is min-max normalised to [0, 1] then divided by its sum; ``pred`` is resized to the
    fixation map's size first if they differ. Range [0, 1], 1 = identical. A constant map
    (all-zero included) is taken as the uniform distribution (MIT: NaN). Fixation map with no
    mass: nan.
    """
    s, d = _prepare_pair(pred, fixation_map)
    if d.max() == 0 and d.min() == 0:
        return float("nan")
    return float(np.minimum(_minmax_density(s), _minmax_density(d)).sum())


def info_gain(pred: MapLike, fixations: FixLike, baseline: MapLike) -> float:
    """Information gain (MIT IG) over a baseline map, in bits per fixated pixel.

    P and Pb = ``pred`` and ``baseline`` each min-max normalised then divided by its sum (a
    constant map becomes uniform); IG = mean over fixated pixels (each once) of
    log2(eps + P) - log2(eps + Pb). ``baseline`` (e.g. a centre bias) is resized to ``pred``'s
    size if they differ. 0 = no better than the baseline. No fixation: nan.
    """
    s = as_map(pred)
    b = as_map(baseline, "baseline")
    if b.shape != s.shape:
        b = resize_map(b, s.shape)
    idx = _fixated_pixels(fixations, s.shape)
    if idx.size == 0:
        return float("nan")
    p = _minmax_density(s).ravel()[idx]
    pb = _minmax_density(b).ravel()[idx]
    return float((np.log2(EPS + p) - np.log2(EPS + pb)).mean())


def _log_softmax_2d(x: np.ndarray) -> np.ndarray:
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


def log_likelihood(
    log_density: MapLike, fixations: FixLike, baseline_log_density: MapLike | None = None
) -> float:
    """Log-likelihood of the fixations under a model that outputs a log-density, in bits/fixation.

    ``log_density`` (natural log, H×W) is renormalised with a log-softmax over all pixels, so an
    unnormalised log-map works too. The score is the mean over **all** fixations (duplicates
    count: a likelihood scores every observation, Kümmerer et al. 2015 — unlike the MIT metrics)
    of log2 p(fixation), minus the same for the reference: the uniform density (log2(1/N)) by
    default, or ``baseline_log_density`` (resized to the prediction's size if needed) — which is
    then the information gain of Kümmerer et al. 0 = as good as the reference. No fixation: nan.
    """
    lp = _log_softmax_2d(as_map(log_density, "log_density"))
    fix = as_fixations(fixations, lp.shape)
    if len(fix) == 0:
        return float("nan")
    ll = lp[fix[:, 0], fix[:, 1]].mean() / math.log(2)
    if baseline_log_density is None:
        ref = -math.log2(lp.size)
    else:
        b = as_map(baseline_log_density, "baseline_log_density")
        if b.shape != lp.shape:
            b = resize_map(b, lp.shape)
        lb = _log_softmax_2d(b)
        ref = lb[fix[:, 0], fix[:, 1]].mean() / math.log(2)
    return float(ll - ref)


# --------------------------------------------------------------------------------------------
# registry and batched helpers
# --------------------------------------------------------------------------------------------
FIXATION_METRICS: dict[str, Callable[..., float]] = {
    "auc_judd": auc_judd,
    "auc_borji": auc_borji,
    "auc_shuffled": auc_shuffled,
    "nss": nss,
    "cc": cc,
    "kld": kld,
    "sim": sim,
    "info_gain": info_gain,
    "log_likelihood": log_likelihood,
}
"""Metric name -> function (one image -> float)."""

METRIC_TARGETS: dict[str, str] = {
    "auc_judd": "fixations",
    "auc_borji": "fixations",
    "auc_shuffled": "fixations+other",
    "nss": "fixations",
    "cc": "fixation_map",
    "kld": "fixation_map",
    "sim": "fixation_map",
    "info_gain": "fixations+baseline",
    "log_likelihood": "fixations",
}
"""Metric name -> the ground truth it compares with (how :func:`score_image` calls it)."""

HIGHER_IS_BETTER: dict[str, bool] = {name: name != "kld" for name in FIXATION_METRICS}


def check_metric_names(metrics: Iterable[str]) -> tuple[str, ...]:
    """Return ``metrics`` as a tuple, raising ``ValueError`` for an unknown name."""
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in names if m not in FIXATION_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(FIXATION_METRICS)}")
    return names


def score_image(
    pred: MapLike,
    sample: Mapping[str, Any],
    metrics: Iterable[str] = ("auc_judd", "auc_borji", "nss", "cc", "kld", "sim"),
    *,
    other_fixations: FixLike | None = None,
    baseline: MapLike | None = None,
    seed: int = 0,
    n_splits: int = 100,
    step: float = 0.1,
) -> dict[str, float]:
    """Score one prediction against one sample dict; returns ``{metric: float}``.

    ``sample`` holds ``fixations`` (K×2 in the map grid) and, for CC / KLD / SIM,
    ``fixation_map`` (h×w). ``pred`` is resized to the fixation map's size when the sample has
    one and the sizes differ (:func:`resize_map`). ``other_fixations`` (in the same grid) is needed
    for ``auc_shuffled``, ``baseline`` for ``info_gain``. ``log_likelihood`` reads ``pred`` as a
    natural-log density. Random metrics use ``seed``.
    """
    names = check_metric_names(metrics)
    s = as_map(pred)
    if "fixation_map" in sample:
        fmap = as_map(sample["fixation_map"], "fixation_map")
        if s.shape != fmap.shape:
            s = resize_map(s, fmap.shape)
    else:
        fmap = None
    fix = sample.get("fixations")
    out: dict[str, float] = {}
    for name in names:
        target = METRIC_TARGETS[name]
        if target.startswith("fixations") and fix is None:
            raise ValueError(f"metric {name!r} needs sample['fixations'], which this sample lacks")
        if name == "auc_judd":
            out[name] = auc_judd(s, fix)
        elif name == "auc_borji":
            out[name] = auc_borji(s, fix, n_splits=n_splits, step=step, seed=seed)
        elif name == "auc_shuffled":
            if other_fixations is None:
                raise ValueError("auc_shuffled needs other_fixations (other images' fixations)")
            out[name] = auc_shuffled(s, fix, other_fixations, n_splits=n_splits, step=step, seed=seed)
        elif name == "nss":
            out[name] = nss(s, fix)
        elif name == "info_gain":
            if baseline is None:
                raise ValueError("info_gain needs a baseline map (e.g. a fitted CenterBias)")
            out[name] = info_gain(s, fix, baseline)
        elif name == "log_likelihood":
            out[name] = log_likelihood(s, fix)
        else:  # cc, kld, sim
            if fmap is None:
                raise ValueError(
                    f"metric {name!r} needs sample['fixation_map'], which this sample lacks; "
                    "make one with fixation_map_from_points(fixations, size, sigma)"
                )
            out[name] = FIXATION_METRICS[name](s, fmap)
    return out


def _unbatch(batch: Mapping[str, Any], i: int) -> dict[str, Any]:
    """The i-th sample of a collated batch (stacked tensors are indexed, lists picked)."""
    return {k: v[i] for k, v in batch.items() if isinstance(v, (torch.Tensor, list, tuple))}


def score_batch(
    preds: torch.Tensor | np.ndarray | Sequence[MapLike],
    batch: Mapping[str, Any],
    metrics: Iterable[str] = ("auc_judd", "auc_borji", "nss", "cc", "kld", "sim"),
    *,
    other_fixations: Sequence[FixLike] | None = None,
    baselines: Sequence[MapLike] | MapLike | None = None,
    seeds: Sequence[int] | int = 0,
    n_splits: int = 100,
    step: float = 0.1,
) -> list[dict[str, float]]:
    """Score N predictions (N×h×w, or a list of maps) against a collated batch of N samples.

    Returns one ``{metric: float}`` dict per image (see :func:`score_image`).
    ``other_fixations``: one K×2 array per image (for ``auc_shuffled``); ``baselines``: one map for
    all images or one per image (for ``info_gain``); ``seeds``: one int for all or one per image.
    """
    n = len(preds)
    out = []
    for i in range(n):
        base = None
        if baselines is not None:
            is_one = isinstance(baselines, (np.ndarray, torch.Tensor)) and np.ndim(baselines) == 2
            base = baselines if is_one else baselines[i]
        seed = seeds if isinstance(seeds, (int, np.integer)) else seeds[i]
        out.append(
            score_image(
                preds[i],
                _unbatch(batch, i),
                metrics,
                other_fixations=None if other_fixations is None else other_fixations[i],
                baseline=base,
                seed=int(seed),
                n_splits=n_splits,
                step=step,
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# speed benchmark
# --------------------------------------------------------------------------------------------
def _random_prediction(rng: np.random.Generator, size: tuple[int, int], n_blobs: int = 4) -> np.ndarray:
    """A smooth random saliency map: a sum of separable Gaussian blobs plus a little noise."""
    h, w = size
    rows = np.arange(h)[:, None]
    cols = np.arange(w)[None, :]
    out = np.zeros(size)
    for _ in range(n_blobs):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        sy, sx = rng.uniform(0.05, 0.25) * h, rng.uniform(0.05, 0.25) * w
        out += rng.uniform(0.3, 1.0) * (
            np.exp(-0.5 * ((rows - cy) / sy) ** 2) * np.exp(-0.5 * ((cols - cx) / sx) ** 2)
        )
    return out + 0.01 * rng.random(size)


def benchmark(
    n: int = 1000,
    size: tuple[int, int] = (192, 256),
    n_fix: int = 20,
    seed: int = 0,
    n_other_images: int = 100,
    metrics: Sequence[str] = (
        "auc_judd", "auc_borji", "auc_shuffled", "nss", "cc", "kld", "sim", "info_gain", "log_likelihood",
    ),
    progress: bool | None = None,
) -> "pandas.DataFrame":  # noqa: F821
    """Time every metric on ``n`` random predictions of ``size`` with about ``n_fix`` fixations.

    Per image: a smooth random prediction, ``n_fix`` ± 5 fixations, their fixation map
    (sigma = size[1]/40 px), a shuffle set made of ``n_other_images`` × ``n_fix`` random
    fixations, and a centre-bias baseline. Only the metric calls are timed
    (``time.perf_counter``), with the default 100 splits. Returns a DataFrame with one row per
    metric (``metric``, ``seconds``, ``ms_per_image``) and a last ``total`` row.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    names = check_metric_names(metrics)
    rng = np.random.default_rng(seed)
    h, w = size
    rows = np.arange(h)[:, None]
    cols = np.arange(w)[None, :]
    baseline = np.exp(-0.5 * (((rows - h / 2) / (0.25 * h)) ** 2 + ((cols - w / 2) / (0.25 * w)) ** 2))
    times = dict.fromkeys(names, 0.0)
    show = progress_enabled() if progress is None else progress
    for i in tqdm(range(n), desc="metric benchmark", disable=not show):
        pred = _random_prediction(rng, size)
        k = int(rng.integers(max(1, n_fix - 5), n_fix + 6))
        fix = np.stack([rng.integers(0, h, k), rng.integers(0, w, k)], axis=1)
        fmap = fixation_map_from_points(fix, size, sigma=w / 40).numpy()
        m = n_other_images * n_fix
        other = np.stack([rng.integers(0, h, m), rng.integers(0, w, m)], axis=1)
        for name in names:
            t0 = time.perf_counter()
            if name in ("auc_borji",):
                auc_borji(pred, fix, seed=i)
            elif name == "auc_shuffled":
                auc_shuffled(pred, fix, other, seed=i)
            elif name == "info_gain":
                info_gain(pred, fix, baseline)
            elif name == "log_likelihood":
                log_likelihood(np.log(pred), fix)
            elif METRIC_TARGETS[name] == "fixation_map":
                FIXATION_METRICS[name](pred, fmap)
            else:
                FIXATION_METRICS[name](pred, fix)
            times[name] += time.perf_counter() - t0
    df = pd.DataFrame({"metric": list(times), "seconds": list(times.values())})
    df.loc[len(df)] = ["total", df["seconds"].sum()]
    df["ms_per_image"] = 1000 * df["seconds"] / n
    return df
