"""The two failure modes the Pan replication described, tested on every image.

* **centre-dominated**: the map correlates with the centre-bias map above ``corr_threshold`` (0.9)
  while it scores a lower CC than the centre bias itself — the image barely changed the prediction;
* **spurious peak**: the map's maximum lies off centre (farther than ``off_centre`` × the half
  diagonal, 0.5, i.e. a quarter of the image diagonal, from the centre) where the fixation map is
  below ``gt_fraction`` (10 %) of its maximum — a bright blob where nobody looked.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["failure_modes", "summarize_failure_modes"]


def failure_modes(
    maps: Sequence[np.ndarray],
    dataset: Any,
    cc: Sequence[float],
    cc_centre_bias: Sequence[float],
    centre_bias_map: np.ndarray,
    corr_threshold: float = 0.9,
    off_centre: float = 0.5,
    gt_fraction: float = 0.1,
) -> pd.DataFrame:
    """One row per image: the tests above and the values they use.

    Args:
        maps: the evaluated maps (post-processed, at each image's ground-truth size).
        dataset: the samples (``fixation_map`` h×w is read).
        cc, cc_centre_bias: per-image CC of the model and of the centre bias.
        centre_bias_map: the centre-bias map at the ground-truth size.
    """
    if not len(maps) == len(dataset) == len(cc) == len(cc_centre_bias):
        raise ValueError("maps, dataset, cc and cc_centre_bias must have one entry per image")
    rows = []
    for i, pred in enumerate(maps):
        fix_map = np.asarray(dataset[i]["fixation_map"])
        if pred.shape != fix_map.shape or centre_bias_map.shape != pred.shape:
            raise ValueError(f"image {i}: map {pred.shape}, fixation map {fix_map.shape} and centre bias "
                             f"{centre_bias_map.shape} must have one size")
        r, c = np.unravel_index(np.argmax(pred), pred.shape)
        distance = np.hypot((r + 0.5) / pred.shape[0] - 0.5, (c + 0.5) / pred.shape[1] - 0.5)
        rows.append({
            "cc": float(cc[i]),
            "cc centre bias": float(cc_centre_bias[i]),
            "corr with centre bias": float(np.corrcoef(pred.ravel(), centre_bias_map.ravel())[0, 1]),
            "gt at peak": float(fix_map[r, c] / max(float(fix_map.max()), 1e-12)),
            "peak off centre": bool(distance > off_centre * np.sqrt(0.5)),
        })
    table = pd.DataFrame(rows).rename_axis("index")
    table["centre-dominated"] = (table["corr with centre bias"] > corr_threshold) & (table["cc"] < table["cc centre bias"])
    table["spurious peak"] = table["peak off centre"] & (table["gt at peak"] < gt_fraction)
    return table


def summarize_failure_modes(table: pd.DataFrame) -> pd.Series:
    """Shares of centre-dominated maps and spurious peaks, and the median correlation with the centre bias."""
    return pd.Series({
        "centre-dominated maps": float(table["centre-dominated"].mean()),
        "spurious off-centre peaks": float(table["spurious peak"].mean()),
        "median corr. with centre bias": float(table["corr with centre bias"].median()),
    }, name="share of test images / value")
