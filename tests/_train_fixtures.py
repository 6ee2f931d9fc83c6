"""Tiny, deterministic data and models shared by the training tests and the DDP worker.

Nothing here is a test; the datasets are small enough that a few epochs take well under a second.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset


class TinySaliency(Dataset):
    """``n`` random 3×8×8 images whose target "density" is a fixed function of the image (1×4×4)."""

    def __init__(self, n: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, 8, 8, generator=gen)
        pooled = nn.functional.avg_pool2d(self.images, 2)  # n×3×4×4
        self.density = (0.7 * pooled[:, :1] + 0.3 * pooled[:, 1:2] - 0.2 * pooled[:, 2:]).contiguous()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "density": self.density[i], "label": i % 2, "name": f"img{i}"}


def tiny_model(seed: int = 0, dropout: float = 0.2) -> nn.Module:
    """A two-layer convnet N×3×8×8 -> N×1×4×4, with dropout so that RNG state matters."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Conv2d(6, 1, 3, stride=2, padding=1),
    )


def mse(output: torch.Tensor, batch: dict) -> torch.Tensor:
    """Mean squared error between the model output and ``batch["density"]``."""
    return ((output - batch["density"]) ** 2).mean()


def flip_augment(batch: dict, generator: torch.Generator) -> dict:
    """Flip each sample (image and target) left-right with probability 1/2, using ``generator``."""
    flip = torch.rand(batch["image"].shape[0], generator=generator, device=generator.device) < 0.5
    out = dict(batch)
    out["image"] = torch.where(flip[:, None, None, None], batch["image"].flip(-1), batch["image"])
    out["density"] = torch.where(flip[:, None, None, None], batch["density"].flip(-1), batch["density"])
    return out


def collate(samples: list[dict]) -> dict:
    """Stack tensors, gather ints into a tensor and strings into a list."""
    out: dict = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], int):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out
