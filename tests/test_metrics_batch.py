"""Tests for salbook.metrics.batch (tensor metrics for training loops) and the optimiser factories."""

from __future__ import annotations

import numpy as np
import torch

from salbook.metrics import batch_cc, mean_cc_metric
from salbook.train import sgd


def test_batch_cc_matches_numpy():
    a, b = torch.rand(4, 6, 5), torch.rand(4, 6, 5)
    got = batch_cc(a, b)
    ref = [np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1] for i in range(4)]
    assert np.allclose(got.numpy(), ref)
    assert batch_cc(torch.ones(1, 3, 3), torch.rand(1, 3, 3)).item() == 0.0


def test_mean_cc_metric_averages_over_every_image_of_the_loader():
    maps = torch.rand(5, 4, 4)
    loader = [{"image": maps[:3], "fixation_map": maps[:3]}, {"image": maps[3:], "fixation_map": -maps[3:]}]
    metric = mean_cc_metric("fixation_map")
    assert np.isclose(metric(lambda x: x, loader, torch.device("cpu")), (3 - 2) / 5)


def test_sgd_factory_is_nesterov_sgd_with_the_weight_decay():
    opt = sgd(0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)([torch.nn.Parameter(torch.zeros(2))])
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.SGD) and group["nesterov"] is True
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.9, 5e-4)


def test_mean_cc_metric_can_score_the_blurred_output():
    torch.manual_seed(0)
    target = torch.zeros(2, 16, 16)
    target[:, 8, 8] = 1.0
    from salbook.maps import gaussian_blur

    smooth = gaussian_blur(target, 2.0)
    noisy = smooth + 0.05 * torch.randn(2, 16, 16)  # noise the blur removes
    loader = [{"image": noisy, "fixation_map": smooth}]
    raw = mean_cc_metric("fixation_map")(lambda x: x, loader, torch.device("cpu"))
    blurred = mean_cc_metric("fixation_map", blur=1.0)(lambda x: x, loader, torch.device("cpu"))
    assert blurred > raw
