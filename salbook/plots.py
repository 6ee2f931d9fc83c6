"""The book's figures: image/map grids, overlays, filter grids, training curves, seed strip plots.

Every function returns a :class:`matplotlib.figure.Figure` (and draws nothing else), so a
chapter's plotting cell is one call and ``plt.show()``. Maps are shown with the ``magma``
colormap; images as RGB in [0, 1] (C×H×W tensors or H×W×C arrays are both accepted).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["as_display", "overlay", "image_map_grid", "filter_grid", "training_curves", "seed_strips"]

MAP_CMAP = "magma"


def as_display(x: Any) -> np.ndarray:
    """An image (C×H×W or H×W×C, tensor or array) as H×W×3 float in [0, 1], or a map as H×W float."""
    arr = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3:
        arr = np.clip(arr, 0.0, 1.0)
    return arr


def overlay(image: Any, saliency: Any, alpha: float = 0.55, cmap: str = MAP_CMAP) -> np.ndarray:
    """The map (any range; min-max scaled, resized to the image if needed) blended over the image:
    H×W×3 float in [0, 1]."""
    import matplotlib

    from .maps import minmax, resize_map

    img = as_display(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    sal = as_display(saliency)
    if sal.shape != img.shape[:2]:
        sal = np.asarray(resize_map(sal, img.shape[:2]))
    colour = matplotlib.colormaps[cmap](minmax(sal))[..., :3]
    return np.clip((1 - alpha) * img + alpha * colour, 0.0, 1.0)


def image_map_grid(
    rows: Sequence[Sequence[Any]],
    col_titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    fixations: Mapping[tuple[int, int], Any] | None = None,
    title: str | None = None,
    cell_size: tuple[float, float] = (2.6, 2.2),
    vmin: float | None = None,
    vmax: float | None = None,
):
    """A grid of panels: each row a sequence of images (shown in colour) and maps (``magma``).

    ``fixations`` maps (row, column) to a K×2 (row, col) array drawn as dots on that panel.
    ``vmin``/``vmax`` fix the map colour range (default: each map its own).
    """
    import matplotlib.pyplot as plt

    n_rows = len(rows)
    n_cols = max(len(r) for r in rows) if rows else 0
    if n_rows == 0 or n_cols == 0:
        raise ValueError("image_map_grid needs at least one row with one panel")
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_size[0] * n_cols, cell_size[1] * n_rows), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(row) or row[c] is None:
                ax.axis("off")
                continue
            panel = as_display(row[c])
            ax.imshow(panel, cmap=None if panel.ndim == 3 else MAP_CMAP,
                      vmin=None if panel.ndim == 3 else vmin, vmax=None if panel.ndim == 3 else vmax)
            if fixations and (r, c) in fixations:
                pts = np.asarray(fixations[(r, c)])
                if len(pts):
                    ax.scatter(pts[:, 1], pts[:, 0], s=3, c="c")
            if r == 0 and col_titles is not None and c < len(col_titles):
                ax.set_title(col_titles[c], fontsize=9)
        if row_labels is not None and r < len(row_labels):
            axes[r, 0].set_ylabel(row_labels[r], fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def filter_grid(weight: Any, columns: int = 8, title: str | None = None):
    """First-layer filters (O×3×k×k) as small RGB tiles, each min-max scaled on its own."""
    import matplotlib.pyplot as plt

    w = weight.detach().cpu().numpy() if hasattr(weight, "detach") else np.asarray(weight)
    if w.ndim != 4 or w.shape[1] not in (1, 3):
        raise ValueError(f"filter_grid needs O×3×k×k (or O×1×k×k) weights, got {w.shape}")
    lo = w.min(axis=(1, 2, 3), keepdims=True)
    hi = w.max(axis=(1, 2, 3), keepdims=True)
    w = (w - lo) / np.where(hi > lo, hi - lo, 1.0)
    rows = int(np.ceil(len(w) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns, 1.1 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k < len(w):
            ax.imshow(as_display(w[k]), interpolation="nearest", cmap="gray" if w.shape[1] == 1 else None)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig


def training_curves(
    histories: Mapping[str, pd.DataFrame],
    columns: Sequence[str] = ("train_loss", "val_loss", "val_metric"),
    x: str = "step",
    labels: Mapping[str, str] | None = None,
    log_columns: Sequence[str] = ("train_loss", "val_loss"),
    title: str | None = None,
):
    """One panel per history column, one line per run (``{run name: fit history}``)."""
    import matplotlib.pyplot as plt

    if not histories:
        raise ValueError("training_curves needs at least one {name: history}")
    fig, axes = plt.subplots(1, len(columns), figsize=(4.4 * len(columns), 3.4), squeeze=False)
    for ax, col in zip(axes[0], columns):
        for name, h in histories.items():
            if col in h.columns and h[col].notna().any():
                ax.plot(h[x], h[col], marker="o", ms=3, label=name)
        ax.set(xlabel=x, ylabel=(labels or {}).get(col, col), title=(labels or {}).get(col, col))
        if col in log_columns:
            ax.set_yscale("log")
    axes[0][-1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def seed_strips(
    table: pd.DataFrame,
    metrics: Sequence[str],
    group: str = "model",
    reference: Mapping[str, float] | None = None,
    reference_label: str = "centre bias",
    title: str | None = None,
):
    """One strip plot per metric: a dot per run (seed), grouped by ``group``; an optional dashed
    reference line per metric (e.g. the centre bias)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        sns.stripplot(data=table, x=group, y=m, hue=group, ax=ax, size=8, legend=False)
        if reference is not None and m in reference:
            ax.axhline(reference[m], color="k", ls="--", lw=1, label=reference_label)
        ax.set_title(m)
        ax.set_xlabel("")
        ax.tick_params(axis="x", labelrotation=15)
    if reference is not None:
        axes[0][0].legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
