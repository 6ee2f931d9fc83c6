"""Linear probes: how much a frozen feature extractor already knows about where people look.

:func:`fit_ridge_readout` fits a linear map from frozen features to fixation maps in closed form
(ridge regression in its dual form) and returns it as a module the evaluation harness can score.
A diagnostic, not a model of any paper: when a trained network ties with the centre bias, a
readout of its features tells whether the features or the training of its head are to blame.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

__all__ = ["RidgeReadout", "fit_ridge_readout", "stack_field"]


class RidgeReadout(nn.Module):
    """Frozen ``features`` followed by a linear map fitted in closed form.

    Input N×3×H×W images; output N×1×h×w maps (``map_size``).
    """

    def __init__(self, features: nn.Module, mean: torch.Tensor, std: torch.Tensor,
                 weight: torch.Tensor, bias: torch.Tensor, map_size: Sequence[int]):
        super().__init__()
        self.features = features
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float())
        self.register_buffer("weight", weight.float())
        self.register_buffer("bias", bias.float())
        self.map_size = (int(map_size[0]), int(map_size[1]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        z = (self.features(images).flatten(1) - self.mean) / self.std
        return (z @ self.weight + self.bias).reshape(-1, 1, *self.map_size)


def stack_field(dataset: Any, key: str) -> torch.Tensor:
    """``torch.stack`` of field ``key`` of every sample of ``dataset``."""
    return torch.stack([torch.as_tensor(dataset[i][key]) for i in range(len(dataset))])


@torch.no_grad()
def fit_ridge_readout(
    features: nn.Module,
    train_data: Any,
    val_data: Any,
    map_size: Sequence[int] = (48, 48),
    lambdas: Sequence[float] = (1e2, 1e3, 1e4, 1e5, 1e6),
    batch_size: int = 200,
) -> tuple[RidgeReadout, pd.DataFrame]:
    """Fit a ridge regression from frozen ``features`` to the training fixation maps.

    The features (``features(image).flatten(1)``, D values per image) are standardised with the
    training mean and std; the readout predicts the ``map_size`` fixation map (P = h·w values)
    and is solved in its dual form, ``W = Aᵀ (A Aᵀ + λ I)⁻¹ (Y − ȳ)``, which costs an N×N solve for
    N training images however large D is. ``λ`` is chosen on ``val_data`` by mean CC (the test
    split is never used). Returns the readout (a module :func:`salbook.evaluate` can score) and a
    table of validation CC per λ.
    """
    from ..metrics import cc

    features = copy.deepcopy(features).eval().cpu()  # never move or alter the caller's model

    def feats(ds: Any) -> torch.Tensor:
        images = stack_field(ds, "image")
        return torch.cat([features(images[i:i + batch_size]).flatten(1)
                          for i in range(0, len(images), batch_size)]).double()

    a, b = feats(train_data), feats(val_data)
    y = stack_field(train_data, "fixation_map").flatten(1).double()
    y_val = stack_field(val_data, "fixation_map")
    if tuple(y_val.shape[-2:]) != tuple(map_size) or y.shape[1] != map_size[0] * map_size[1]:
        raise ValueError(f"train and val fixation maps must be {tuple(map_size)} (the readout's map_size)")
    mean, std = a.mean(0), a.std(0) + 1e-8
    a, b = (a - mean) / std, (b - mean) / std
    y_mean = y.mean(0)
    gram = a @ a.T
    rows, best = [], None
    for lam in lambdas:
        alpha = torch.linalg.solve(gram + lam * torch.eye(len(gram), dtype=gram.dtype), y - y_mean)
        weight = a.T @ alpha
        pred = (b @ weight + y_mean).reshape(-1, *map_size)
        score = float(np.mean([cc(pred[i], y_val[i]) for i in range(len(pred))]))
        rows.append({"lambda": lam, "val CC": score})
        if best is None or score > best[0]:
            best = (score, weight)
    readout = RidgeReadout(features, mean, std, best[1], y_mean, map_size).eval()
    return readout, pd.DataFrame(rows).set_index("lambda")
