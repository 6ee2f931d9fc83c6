"""Caffe's LeNet-5 (salbook.models.lenet)."""

from __future__ import annotations

import pytest
import torch

from salbook import models
from salbook.cost import count_params
from salbook.pruning import masks_of
from salbook.pruning.fisher import cost_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_lenet5_is_caffes_network():
    net = models.create("lenet5")
    assert count_params(net) == 431_080
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert {k: len(m.mask) for k, m in masks_of(net).items()} == {"mask1": 20, "mask2": 50, "mask3": 500}
    assert float(net.conv1.bias.detach().abs().sum()) == 0.0  # Caffe's constant-0 bias filler


def test_lenet5_cost_model_by_hand():
    cm = cost_model(models.create("lenet5"), torch.zeros(1, 1, 28, 28))
    assert cm.reference == 24 * 24 * 20 * 51 + 8 * 8 * 50 * (2 * 20 * 25 + 1) + 500 * (2 * 800 + 1) + 10 * 1001


def test_lenet5_rejects_other_sizes():
    with pytest.raises(ValueError, match="28×28"):
        models.create("lenet5")(torch.rand(1, 1, 32, 32))
