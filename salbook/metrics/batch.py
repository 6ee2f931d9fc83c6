"""Batched metrics on tensors, for training loops (validation metrics, losses).

The per-image metrics of the MIT conventions live in :mod:`salbook.metrics.fixation` (NumPy,
one image at a time, used by the evaluation harness); these work on whole batches on any device.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

__all__ = ["batch_cc", "mean_cc_metric"]


def batch_cc(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation between maps (both N×h×w or N×1×h×w); float64 N values.

    An image whose prediction or target is constant gets 0.
    """
    a = output.reshape(output.shape[0], -1).double()
    b = target.reshape(target.shape[0], -1).double()
    if a.shape != b.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} hold different map sizes")
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    den = (a.square().sum(1) * b.square().sum(1)).sqrt()
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-300), torch.zeros_like(den))


def mean_cc_metric(target_key: str = "fixation_map", blur: float = 0.0) -> Callable[[nn.Module, Any, torch.device], float]:
    """A validation metric for :func:`salbook.train.fit`: mean CC of the model output with
    ``batch[target_key]`` over every image the loader yields (use with ``mode="max"``).

    ``blur`` > 0 smooths the output first with a Gaussian of that σ (output pixels), so that the
    metric scores the map the evaluation will see when its post-processing blurs (CC is
    invariant to the min-max that follows).
    """
    from ..maps import gaussian_blur

    def mean_cc(model: nn.Module, loader: Any, device: torch.device) -> float:
        total, count = 0.0, 0
        for batch in loader:
            values = batch_cc(gaussian_blur(model(batch["image"]), blur), batch[target_key])
            total += float(values.sum())
            count += int(values.numel())
        return total / max(count, 1)

    mean_cc.__name__ = f"mean_cc_{target_key}" + (f"_blur{blur:g}" if blur > 0 else "")
    return mean_cc
