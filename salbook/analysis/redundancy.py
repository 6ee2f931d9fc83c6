"""How redundant a layer's activations are: PCA of its feature maps (chapter 2's analysis).

The compact-model paper runs PCA on the last-layer activation maps of ML-Net and of its VGG-16
backbone and reads from a 2-D projection that classification activations are "sparse and evenly
distributed" while saliency activations are "densely distributed". The paper does not say what
a sample is, so :func:`redundancy` measures both readings:

* **channels as variables** (``result.by_position``): each sample is one spatial position of one
  image, described by its ``C`` channel values. A few components explaining most of the variance
  means the ``C`` channels vary together: the layer uses a low-dimensional subspace.
* **channels as samples** (``result.by_channel``): each sample is one channel, described by its
  activation map over the sampled (image, position) pairs. Points crowded together in the
  projection are channels that respond alike (redundant feature maps); this is the reading in
  which "activation maps" are the points of the paper's Figure 1.

For each view: the explained-variance ratio of every component, the number of components needed
for 90 / 95 / 99 % of the variance, the **participation ratio** ``(Σλ)² / Σλ²`` of the
eigenvalues ``λ`` (an effective dimension: ``n`` for ``n`` equal eigenvalues, 1 for one), and the
2-D projection on the first two components with the **median-to-RMS radius** of its points (their
distances to the centroid in the plane; about 0.83 for a 2-D Gaussian cloud, small when a dense
core holds most points and a few lie far out). Over the whole layer: the fraction of activations
that are exactly zero, the fraction that are *near* zero (``|a| ≤ near_zero_rel ×`` the 99th
percentile of ``|a|`` in the layer, a scale-free threshold), the fraction of channels that are
zero at every sampled position ("dead"), and the mean absolute correlation between channels.

Memory is bounded by sampling: the layer's output is reduced, batch by batch, to at most
``ceil(max_positions / n_images)`` positions per image (drawn with ``seed``), so a 512 × 60 × 80
VGG map never has to be kept. PCA is scikit-learn's exact solver on the sampled matrix
(``covariance_eigh``, the eigendecomposition of the variables' covariance, unless there are more
than 2,048 variables and more of them than samples: then ``full`` SVD); the channel view uses at
most ``max_variables`` of the sampled positions as its variables. The bootstrap intervals compute
the participation ratio as ``trace(Σ)² / ‖Σ‖²_F``, which equals ``(Σλ)² / Σλ²`` without an
eigendecomposition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "PCAView",
    "RedundancyResult",
    "redundancy",
    "pca_view",
    "participation_ratio",
    "components_for",
    "variance_figure",
    "projection_figure",
    "compare_pair",
    "recalibrate_batch_norm",
]

THRESHOLDS: tuple[float, ...] = (0.90, 0.95, 0.99)


def participation_ratio(eigenvalues: np.ndarray) -> float:
    """``(Σλ)² / Σλ²`` of non-negative eigenvalues: the number of equally strong directions that
    would give the same spread (1 ≤ PR ≤ number of non-zero eigenvalues). NaN when all are 0."""
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    square_sum = float(np.square(lam).sum())
    return float(lam.sum() ** 2 / square_sum) if square_sum > 0 else math.nan


def components_for(explained_variance_ratio: np.ndarray, share: float) -> int:
    """The smallest number of leading components whose explained variance reaches ``share``."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    cumulative = np.cumsum(np.asarray(explained_variance_ratio, dtype=np.float64))
    if cumulative.size == 0:
        return 0
    return int(min(np.searchsorted(cumulative, share * cumulative[-1] - 1e-12) + 1, cumulative.size))


@dataclass
class PCAView:
    """PCA of one data matrix (rows = samples, columns = variables).

    Attributes:
        n_samples, n_variables: the matrix's shape.
        explained_variance_ratio: per component, largest first (sums to 1 over all components).
        components_for: ``{share: components}`` for 90 / 95 / 99 % of the variance.
        participation_ratio: effective dimension of the eigenvalues (see :func:`participation_ratio`).
        projection: ``m × 2`` scores of (up to ``max_points``) samples on the first two components.
        projection_share: variance share of the first two components.
        median_to_rms_radius: median over RMS of the projected points' distances to their centroid.
    """

    n_samples: int
    n_variables: int
    explained_variance_ratio: np.ndarray
    components_for: dict[float, int]
    participation_ratio: float
    projection: np.ndarray
    projection_share: float
    median_to_rms_radius: float


def pca_view(matrix: np.ndarray, max_points: int = 2000, seed: int = 0) -> PCAView:
    """PCA (scikit-learn, centred, exact) of ``matrix`` (samples × variables) as a :class:`PCAView`.

    Raises:
        ValueError: fewer than 2 samples or no variable.
    """
    from sklearn.decomposition import PCA

    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"PCA needs a 2-D matrix of at least 2 samples and 1 variable, got shape {x.shape}")
    n, d = x.shape
    # the eigendecomposition of the d × d covariance is the cheaper exact route unless d is large
    solver = "covariance_eigh" if d <= max(n, 2048) else "full"
    pca = PCA(svd_solver=solver).fit(x)
    lam = np.clip(pca.explained_variance_, 0.0, None)
    total = float(lam.sum())
    ratio = lam / total if total > 0 else np.zeros_like(lam)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n, max_points), replace=False))
    k = min(2, pca.n_components_)
    scores = pca.transform(x[rows])[:, :k]
    if k < 2:
        scores = np.concatenate([scores, np.zeros((len(rows), 2 - k))], axis=1)
    radius = np.linalg.norm(scores - scores.mean(axis=0), axis=1)
    rms = float(np.sqrt(np.mean(radius**2)))
    return PCAView(
        n_samples=n,
        n_variables=d,
        explained_variance_ratio=ratio,
        components_for={t: components_for(ratio, t) if total > 0 else 0 for t in THRESHOLDS},
        participation_ratio=participation_ratio(lam),
        projection=scores.astype(np.float32),
        projection_share=float(ratio[:2].sum()),
        median_to_rms_radius=float(np.median(radius) / rms) if rms > 0 else math.nan,
    )


@dataclass
class RedundancyResult:
    """What :func:`redundancy` measured on one layer (see the module docstring for each quantity).

    Attributes:
        layer: the module name.
        n_images: images run through the model.
        n_channels: channels ``C`` of the layer.
        feature_size: ``(h, w)`` of the layer's maps.
        positions_per_image: sampled positions per image (all of them when the map is smaller).
        zero_fraction, near_zero_fraction: shares of the sampled activations that are exactly 0 /
            at most ``near_zero_threshold`` in absolute value.
        near_zero_threshold: ``near_zero_rel ×`` the 99th percentile of ``|a|``.
        dead_channels: share of channels that are 0 at every sampled position.
        mean_abs_channel_corr: mean ``|r|`` over pairs of live channels (Pearson, over samples).
        by_position: PCA with channels as variables (samples = positions × images).
        by_channel: PCA with channels as samples (variables = sampled positions).
        intervals: 95 % percentile bootstrap intervals over images (``n_bootstrap`` resamples of
            the images, with replacement) of ``"participation ratio"`` (channels as variables),
            ``"zero fraction"`` and ``"near-zero fraction"``; empty without bootstrap.
        settings: the arguments that produced the result.
    """

    layer: str
    n_images: int
    n_channels: int
    feature_size: tuple[int, int]
    positions_per_image: int
    zero_fraction: float
    near_zero_fraction: float
    near_zero_threshold: float
    dead_channels: float
    mean_abs_channel_corr: float
    by_position: PCAView
    by_channel: PCAView
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """The scalar measurements as one flat dict (a row of a comparison table)."""
        row: dict[str, float] = {"channels": self.n_channels}
        for name, view in (("position", self.by_position), ("channel", self.by_channel)):
            for share, k in view.components_for.items():
                row[f"{name}: PCs for {share:.0%}"] = k
            row[f"{name}: participation ratio"] = view.participation_ratio
            row[f"{name}: PR / variables"] = view.participation_ratio / min(view.n_samples - 1, view.n_variables)
            row[f"{name}: PC1+PC2 share"] = view.projection_share
            row[f"{name}: median/RMS radius"] = view.median_to_rms_radius
        row.update({"zero fraction": self.zero_fraction, "near-zero fraction": self.near_zero_fraction,
                    "dead channels": self.dead_channels, "mean |corr| between channels": self.mean_abs_channel_corr})
        return row


def _images(dataset: Any, n_images: int | None) -> torch.Tensor:
    """The first ``n_images`` images of a dataset of sample dicts, or of an N×3×H×W tensor."""
    if isinstance(dataset, torch.Tensor):
        if dataset.dim() != 4:
            raise ValueError(f"images must be N×C×H×W, got shape {tuple(dataset.shape)}")
        return dataset[:n_images] if n_images is not None else dataset
    n = len(dataset) if n_images is None else min(int(n_images), len(dataset))
    if n < 1:
        raise ValueError("the dataset holds no image")
    first = dataset[0]
    if not isinstance(first, dict) or "image" not in first:
        raise TypeError("redundancy needs a dataset of sample dicts with an 'image' entry, or an N×C×H×W tensor")
    return torch.stack([dataset[i]["image"] for i in range(n)])


def _mean_abs_corr(x: np.ndarray) -> float:
    """Mean ``|Pearson r|`` over pairs of columns of ``x`` that are not constant."""
    live = x[:, x.std(axis=0) > 0]
    if live.shape[1] < 2:
        return math.nan
    r = np.corrcoef(live, rowvar=False)
    upper = np.triu_indices_from(r, k=1)
    return float(np.abs(r[upper]).mean())


@torch.no_grad()
def redundancy(
    model: nn.Module,
    dataset: Any,
    layer: str,
    *,
    n_images: int | None = 64,
    max_positions: int = 16384,
    max_variables: int = 2048,
    batch_size: int = 16,
    near_zero_rel: float = 0.01,
    max_points: int = 2000,
    n_bootstrap: int = 0,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> RedundancyResult:
    """PCA of the activations of module ``layer`` of ``model`` on the images of ``dataset``.

    Args:
        model: called as ``model(images)`` on ``N × 3 × H × W`` images (the dataset's, e.g. RGB in
            [0, 1] for the book's models, which normalise inside). Run in eval mode (restored after).
        dataset: a dataset of sample dicts with ``image`` (its first ``n_images``), or an image tensor.
        layer: qualified module name (``dict(model.named_modules())``) whose output, a
            ``N × C × h × w`` tensor, is analysed.
        n_images: how many images (``None``: all).
        max_positions: at most this many (image, position) samples in total (memory bound).
        max_variables: at most this many sampled positions as the variables of the channel view.
        batch_size: images per forward pass.
        near_zero_rel: the near-zero threshold relative to the 99th percentile of ``|a|``.
        max_points: points kept in each 2-D projection.
        n_bootstrap: image resamples for the intervals of :attr:`RedundancyResult.intervals` (0: none).
        seed: seeds the choice of positions, of projected points and the bootstrap.
        device: where to run (default: where the model's parameters are).

    Returns:
        A :class:`RedundancyResult`.

    Raises:
        KeyError: no module named ``layer`` (the message lists a few names).
        ValueError: the layer's output is not a 4-D feature map.
    """
    modules = dict(model.named_modules())
    if layer not in modules:
        examples = [name for name in modules if name][:8]
        raise KeyError(f"{type(model).__name__} has no module named {layer!r}; e.g. {examples}")
    images = _images(dataset, n_images)
    n = len(images)
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    per_image = max(1, math.ceil(max_positions / n))
    gen = torch.Generator().manual_seed(int(seed))
    chunks: list[torch.Tensor] = []
    shape: dict[str, Any] = {}

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ValueError(f"layer {layer!r} must output an N×C×h×w feature map, got {got}")
        b, c, h, w = output.shape
        shape.update(channels=c, size=(h, w))
        flat = output.detach().float().flatten(2).cpu()  # b × c × hw
        k = min(h * w, per_image)
        picks = torch.stack([torch.randperm(h * w, generator=gen)[:k] for _ in range(b)])  # b × k
        sampled = torch.gather(flat, 2, picks[:, None, :].expand(b, c, k))  # b × c × k
        chunks.append(sampled.permute(0, 2, 1).reshape(b * k, c))

    handle = modules[layer].register_forward_hook(hook)
    was_training = model.training
    try:
        model.eval()
        for start in range(0, n, batch_size):
            model(images[start:start + batch_size].to(device))
    finally:
        handle.remove()
        model.train(was_training)
    x = torch.cat(chunks).numpy().astype(np.float64)  # samples × channels

    magnitude = np.abs(x)
    scale = float(np.percentile(magnitude, 99))
    threshold = near_zero_rel * scale
    dead = (magnitude.max(axis=0) == 0).mean()
    rng = np.random.default_rng(seed)
    columns = np.sort(rng.choice(len(x), size=min(len(x), max_variables), replace=False))
    rows_per_image = len(x) // n
    intervals = _bootstrap(x, n, rows_per_image, threshold, n_bootstrap, rng) if n_bootstrap > 0 else {}
    return RedundancyResult(
        layer=layer,
        n_images=n,
        n_channels=int(shape["channels"]),
        feature_size=tuple(shape["size"]),
        positions_per_image=min(per_image, shape["size"][0] * shape["size"][1]),
        zero_fraction=float((x == 0).mean()),
        near_zero_fraction=float((magnitude <= threshold).mean()),
        near_zero_threshold=threshold,
        dead_channels=float(dead),
        mean_abs_channel_corr=_mean_abs_corr(x),
        by_position=pca_view(x, max_points=max_points, seed=seed),
        by_channel=pca_view(x[columns].T, max_points=max_points, seed=seed),
        intervals=intervals,
        settings=dict(n_images=n, max_positions=max_positions, max_variables=max_variables,
                      near_zero_rel=near_zero_rel, n_bootstrap=n_bootstrap, seed=seed,
                      input_shape=tuple(images.shape[1:])),
    )


def _bootstrap(x: np.ndarray, n_images: int, rows_per_image: int, threshold: float, n_resamples: int,
               rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """95 % percentile intervals of the position-view participation ratio and the (near-)zero
    fractions over ``n_resamples`` resamples of the images (rows are grouped by image, in order)."""
    blocks = x.reshape(n_images, rows_per_image, x.shape[1])
    values: dict[str, list[float]] = {"participation ratio": [], "zero fraction": [], "near-zero fraction": []}
    for _ in range(int(n_resamples)):
        sample = blocks[rng.integers(0, n_images, size=n_images)].reshape(-1, x.shape[1])
        centred = sample - sample.mean(axis=0)
        cov = centred.T @ centred  # the scale cancels in the ratio below
        # (Σλ)² / Σλ² = trace(Σ)² / ‖Σ‖_F²: no eigendecomposition needed
        frob = float(np.square(cov).sum())
        values["participation ratio"].append(float(np.trace(cov)) ** 2 / frob if frob > 0 else math.nan)
        values["zero fraction"].append(float((sample == 0).mean()))
        values["near-zero fraction"].append(float((np.abs(sample) <= threshold).mean()))
    return {k: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))) for k, v in values.items()}


def variance_figure(results: "dict[str, RedundancyResult]", title: str | None = None):
    """Cumulative explained variance against the number of components, one line per result, for
    both views (channels as variables; channels as samples), with the 90/95/99 % levels dotted."""
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("variance_figure needs at least one {name: RedundancyResult}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    views = (("by_position", "channels as variables\n(samples: positions × images)"),
             ("by_channel", "channels as samples\n(variables: sampled positions)"))
    for ax, (attr, label) in zip(axes, views):
        for name, res in results.items():
            ratio = getattr(res, attr).explained_variance_ratio
            ax.plot(np.arange(1, len(ratio) + 1), np.cumsum(ratio), label=name)
        for level in THRESHOLDS:
            ax.axhline(level, color="0.6", lw=0.8, ls=":")
        ax.set(xscale="log", xlabel="principal components", ylabel="cumulative explained variance", title=label)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def projection_figure(results: "dict[str, RedundancyResult]", title: str | None = None):
    """The 2-D PCA projections (first two components) of every result, both views, each scaled by
    its RMS radius so that clouds of different networks share one scale (as the paper's Figure 1)."""
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("projection_figure needs at least one {name: RedundancyResult}")
    fig, axes = plt.subplots(2, len(results), figsize=(3.4 * len(results), 6.4), squeeze=False)
    for col, (name, res) in enumerate(results.items()):
        for row, (view, what) in enumerate(((res.by_channel, "channels"), (res.by_position, "positions"))):
            ax = axes[row, col]
            p = view.projection - view.projection.mean(axis=0)
            rms = float(np.sqrt((p**2).sum(axis=1).mean())) or 1.0
            ax.scatter(p[:, 0] / rms, p[:, 1] / rms, s=4 if what == "channels" else 2, alpha=0.5, lw=0)
            ax.set(xlim=(-4, 4), ylim=(-4, 4), aspect="equal")
            ax.set_title(f"{name}\n{view.n_samples} {what}; median/RMS radius {view.median_to_rms_radius:.2f}",
                         fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, 0].set_ylabel("channels as samples\n(PC2 vs PC1)")
        axes[1, 0].set_ylabel("positions as samples\n(PC2 vs PC1)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def compare_pair(classification: RedundancyResult, saliency: RedundancyResult, name: str = "pair") -> "pd.DataFrame":
    """Test the compact-model paper's reading on one (classification, saliency) pair of results.

    The reading — classification activations are sparser and more evenly spread, saliency
    activations denser — becomes four tests, each passed when the classification network has the
    larger value: near-zero fraction; participation ratio with channels as variables; participation
    ratio with channels as samples; median/RMS radius of the channel projection (a dense core gives a
    small value). Where both results carry bootstrap intervals (near-zero fraction and the
    position-view participation ratio), a difference counts only when the intervals do not overlap.

    Returns:
        A DataFrame indexed by (``pair``, ``claim``) with the two values, ``intervals separate``
        (``"yes"``, ``"no"`` or ``"—"`` without intervals) and ``measurement``: ``"supports"``,
        ``"contradicts"`` or ``"no clear difference"``.
    """
    import pandas as pd

    tests = [
        ("classification sparser (near-zero fraction)", classification.near_zero_fraction,
         saliency.near_zero_fraction, "near-zero fraction"),
        ("classification more spread (PR, channels as variables)", classification.by_position.participation_ratio,
         saliency.by_position.participation_ratio, "participation ratio"),
        ("classification more spread (PR, channels as samples)", classification.by_channel.participation_ratio,
         saliency.by_channel.participation_ratio, None),
        ("saliency channels more concentrated (median/RMS radius)", classification.by_channel.median_to_rms_radius,
         saliency.by_channel.median_to_rms_radius, None),
    ]
    rows = []
    for claim, value_c, value_s, key in tests:
        separate = None
        if key is not None and key in classification.intervals and key in saliency.intervals:
            (lo_c, hi_c), (lo_s, hi_s) = classification.intervals[key], saliency.intervals[key]
            separate = hi_s < lo_c or hi_c < lo_s
        if separate is False:
            verdict = "no clear difference"
        else:
            verdict = "supports" if value_c > value_s else "contradicts"
        rows.append({"pair": name, "claim": claim, "classification": value_c, "saliency": value_s,
                     "intervals separate": "—" if separate is None else ("yes" if separate else "no"),
                     "measurement": verdict})
    return pd.DataFrame(rows).set_index(["pair", "claim"])


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, dataset: Any, n_images: int | None = 256, batch_size: int = 32,
                           device: str | torch.device = "cpu") -> nn.Module:
    """A copy of ``model`` whose batch-norm running statistics are re-estimated on ``dataset``'s images.

    Why: fine-tuning on new images changes a network's batch-norm statistics as well as its weights,
    and the statistics alone re-standardise every layer. Comparing a pretrained network with its
    fine-tuned copy on the new images mixes the two effects; the pretrained network with its
    statistics re-estimated on the same images (no gradient step) separates them.

    Every ``BatchNorm`` layer's running mean and variance are reset and re-estimated as the plain
    average over the batches (``momentum=None``) of ``n_images`` images (the first ones), with only
    the batch norms in training mode; weights are not touched. Returns the copy in eval mode.
    """
    import copy

    net = copy.deepcopy(model).to(device).eval()
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError(f"{type(model).__name__} has no batch-norm layer to recalibrate")
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
        m.train()
    images = _images(dataset, n_images)
    for start in range(0, len(images), batch_size):
        net(images[start:start + batch_size].to(device))
    for m in norms:
        m.momentum = 0.1
    return net.eval()
