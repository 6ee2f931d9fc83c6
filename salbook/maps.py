"""Fixations and maps: the conversions data loaders and metrics must agree on, in one place.

* :func:`as_map`, :func:`as_fixations`: input checking (2-D, finite; integer positions inside the map);
  :func:`minmax` to [0, 1].
* :func:`mit_sigma`: the MIT fixation-map blur, about one degree of visual angle — 24 px for a
  1024 px wide map, scaled with the width.
* :func:`rescale_fixations`: (row, col) positions from one grid to another. Exact rule:
  ``new = floor((old + 0.5) * new_len / old_len)``, the new pixel containing the old pixel's centre,
  clipped to the grid.
* :func:`resize_tensor` / :func:`resize_map`: maps and images to another size. Bilinear with
  ``align_corners=False`` (pixel centres), antialiased when shrinking; masks use ``nearest-exact``.
* :func:`fixation_map_from_points`: fixation counts blurred with a Gaussian (zero padding outside
  the map, kernel cut at ``truncate`` sigmas) — the same numbers as
  ``scipy.ndimage.gaussian_filter(counts, sigma, mode="constant")``, computed as one small matrix
  product of separable kernels, fast for the few hundred fixations of an image.
"""

from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "MapLike",
    "FixLike",
    "as_map",
    "as_fixations",
    "mit_sigma",
    "rescale_fixations",
    "resize_tensor",
    "resize_map",
    "gaussian_blur",
    "fixation_map_from_points",
    "minmax",
]

MapLike = np.ndarray | torch.Tensor
FixLike = np.ndarray | torch.Tensor | Sequence[Sequence[int]]
_Fix = TypeVar("_Fix", np.ndarray, torch.Tensor)


def as_map(x: MapLike, name: str = "pred") -> np.ndarray:
    """Return ``x`` as a float64 H×W numpy array, checking it is 2-D and finite.

    Leading singleton dimensions (1×H×W, 1×1×H×W) are squeezed. Raises ``ValueError`` for
    another shape or for NaN / infinite values.
    """
    if isinstance(x, torch.Tensor):
        arr = x.detach().to("cpu", torch.float64).numpy()
    else:
        arr = np.asarray(x, dtype=np.float64)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D H×W map (one image), got shape {tuple(arr.shape)}; "
            "score a batch with score_batch() or index one image first"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        n_bad = int((~np.isfinite(arr)).sum())
        raise ValueError(
            f"{name} contains {n_bad} NaN or infinite value(s); a metric is never computed from "
            "them. Fix the model output (e.g. a 0/0 in a normalisation) or clean it with "
            "np.nan_to_num / torch.nan_to_num before scoring"
        )
    return arr


def as_fixations(fixations: FixLike, shape: Sequence[int], name: str = "fixations") -> np.ndarray:
    """Return ``fixations`` as an int64 K×2 (row, col) array, checked against a map of ``shape``.

    An empty input (``[]``, shape (0,) or (0, 2)) gives a 0×2 array. Non-integer positions and
    positions outside ``shape`` raise ``ValueError``.
    """
    if isinstance(fixations, torch.Tensor):
        arr = fixations.detach().cpu().numpy()
    else:
        arr = np.asarray(fixations)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must be K×2 (row, col) positions, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(
                f"{name} must be integer pixel positions; got non-integer values. "
                "Round or floor them to pixels (e.g. with rescale_fixations) first"
            )
    arr = arr.astype(np.int64)
    h, w = int(shape[0]), int(shape[1])
    bad = (arr[:, 0] < 0) | (arr[:, 0] >= h) | (arr[:, 1] < 0) | (arr[:, 1] >= w)
    if bad.any():
        first = arr[bad][0].tolist()
        raise ValueError(
            f"{int(bad.sum())} of {len(arr)} {name} fall outside the {h}×{w} map (first: {first}); "
            "fixations must be in the map's own (row, col) grid — rescale them with "
            "salbook.maps.rescale_fixations(fixations, old_size, new_size)"
        )
    return arr


def minmax(s: np.ndarray) -> np.ndarray:
    """Min-max a map to [0, 1]; a constant map becomes all zeros (MIT would divide 0 by 0)."""
    lo, hi = s.min(), s.max()
    if hi == lo:
        return np.zeros_like(s)
    return (s - lo) / (hi - lo)


def mit_sigma(width: int) -> float:
    """Gaussian sigma, in pixels, of MIT's fixation-map blur for a map ``width`` pixels wide:
    about one degree of visual angle, ``24 / 1024 * width``."""
    return 24.0 * float(width) / 1024.0


def rescale_fixations(fixations: _Fix, old_size: Sequence[int], new_size: Sequence[int]) -> _Fix:
    """Move (row, col) positions from a grid ``old_size`` (H, W) to a grid ``new_size`` (h, w).

    Rule: ``new = floor((old + 0.5) * new_len / old_len)`` clipped to the grid. Returns int64 K×2
    of the input's kind (a torch tensor for a tensor, else a numpy array); an empty input gives 0×2.
    """
    fix = as_fixations(fixations, old_size)
    (oh, ow), (nh, nw) = (int(old_size[0]), int(old_size[1])), (int(new_size[0]), int(new_size[1]))
    if (oh, ow) != (nh, nw):
        new = np.floor((fix + 0.5) * np.array([nh / oh, nw / ow])).astype(np.int64)
        new[:, 0] = np.clip(new[:, 0], 0, nh - 1)
        new[:, 1] = np.clip(new[:, 1], 0, nw - 1)
        fix = new
    return torch.from_numpy(fix) if isinstance(fixations, torch.Tensor) else fix


def resize_tensor(x: torch.Tensor, size: Sequence[int], mode: str = "bilinear") -> torch.Tensor:
    """Resize an H×W or C×H×W float tensor to ``size`` (h, w).

    ``mode="bilinear"``: ``align_corners=False``, antialiased (which only matters when shrinking);
    ``mode="nearest"``: ``nearest-exact`` (for masks). A tensor already of that size is returned as is.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    squeeze = x.dim() == 2
    y = (x[None, None] if squeeze else x[None]).float()
    if mode == "bilinear":
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False, antialias=True)
    elif mode == "nearest":
        y = F.interpolate(y, size=size, mode="nearest-exact")
    else:
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    return y[0, 0] if squeeze else y[0]


def gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Blur maps ``… × h × w`` (a tensor, any device) with a Gaussian of ``sigma`` pixels.

    Separable, reflecting border (``scipy.ndimage``'s ``"reflect"``), kernel truncated at
    ``truncate`` σ as ``scipy.ndimage.gaussian_filter`` does; ``sigma == 0`` returns ``x``.
    """
    if sigma <= 0:
        return x
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    shape = x.shape
    if radius > min(shape[-2:]):
        raise ValueError(f"a blur of σ {sigma} needs maps of at least {radius} pixels, got {tuple(shape[-2:])}")
    y = x.reshape(-1, 1, *shape[-2:])
    for dim, view in ((-1, (1, 1, 1, -1)), (-2, (1, 1, -1, 1))):
        head, tail = y.narrow(dim, 0, radius).flip(dim), y.narrow(dim, y.shape[dim] - radius, radius).flip(dim)
        y = torch.nn.functional.conv2d(torch.cat([head, y, tail], dim=dim), kernel.view(view))
    return y.reshape(shape)


def resize_map(x: MapLike, size: Sequence[int]) -> np.ndarray:
    """Resize an H×W map to ``size`` (h, w) by :func:`resize_tensor`'s bilinear rule; float64 numpy."""
    arr = as_map(x, "map to resize")
    if arr.shape == (int(size[0]), int(size[1])):
        return arr
    return resize_tensor(torch.from_numpy(arr).double(), size).double().numpy()


def _kernel_rows(positions: np.ndarray, n: int, sigma: float, truncate: float) -> np.ndarray:
    """K×n: the discrete Gaussian (scipy's weights: normalised over the full truncated kernel,
    then cut by the border) centred on each integer position."""
    radius = int(truncate * sigma + 0.5)
    taps = np.arange(-radius, radius + 1)
    norm = np.exp(-0.5 * (taps / sigma) ** 2).sum()
    d = np.arange(n)[None, :] - positions[:, None]
    k = np.exp(-0.5 * (d / sigma) ** 2) / norm
    k[np.abs(d) > radius] = 0.0
    return k


def fixation_map_from_points(
    fixations: FixLike,
    size: Sequence[int],
    sigma: float | None = None,
    normalize: str | None = "max",
    truncate: float = 4.0,
) -> torch.Tensor:
    """Blur fixation positions into a continuous fixation map (float32 h×w tensor).

    Each fixation adds 1 at its (row, col) pixel — duplicates add up, so a pixel fixated by three
    observers weighs three — then the count map is convolved with an isotropic Gaussian of standard
    deviation ``sigma`` **pixels** (default :func:`mit_sigma` of the width; ``0`` means no blur),
    zero padding outside the map, kernel cut at ``truncate`` sigmas.

    ``normalize``: ``"max"`` divides by the maximum (max 1, the sample-dict convention), ``"sum"`` by
    the sum (a density), ``None`` keeps the blurred counts. No fixation gives an all-zero map.
    """
    h, w = int(size[0]), int(size[1])
    sigma = mit_sigma(w) if sigma is None else float(sigma)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 pixels, got {sigma}")
    if normalize not in ("max", "sum", None):
        raise ValueError(f"normalize must be 'max', 'sum' or None, got {normalize!r}")
    fix = as_fixations(fixations, (h, w))
    if len(fix) == 0:
        return torch.zeros((h, w), dtype=torch.float32)
    if sigma == 0:
        fmap = np.bincount(fix[:, 0] * w + fix[:, 1], minlength=h * w).reshape(h, w).astype(np.float64)
    else:
        fmap = _kernel_rows(fix[:, 0], h, sigma, truncate).T @ _kernel_rows(fix[:, 1], w, sigma, truncate)
    if normalize == "max":
        fmap /= fmap.max()
    elif normalize == "sum":
        fmap /= fmap.sum()
    return torch.from_numpy(fmap.astype(np.float32))
