"""Tests for salbook.analysis: linear probes, activation capture and spread, failure modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salbook.analysis import (
    activation_spread,
    capture_activations,
    failure_modes,
    fit_ridge_readout,
    summarize_failure_modes,
)


def test_ridge_readout_recovers_a_linear_map_and_picks_lambda_on_val():
    """Features that determine the target linearly: the readout must reproduce it almost exactly,
    prefer the smallest λ, and score through evaluate() like a model."""
    torch.manual_seed(0)
    proj = torch.randn(6, 16)

    class Feats(torch.nn.Module):
        def forward(self, x):
            return x[:, 0, :2, :3].flatten(1)

    def sample(i):
        g = torch.Generator().manual_seed(i)
        img = torch.rand(3, 4, 4, generator=g)
        f = img[0, :2, :3].flatten()
        return {"image": img, "fixation_map": (f @ proj).reshape(4, 4)}

    train = [sample(i) for i in range(40)]
    val = [sample(100 + i) for i in range(10)]
    readout, table = fit_ridge_readout(Feats(), train, val, map_size=(4, 4), lambdas=(1e-6, 10.0, 1e4))
    assert table["val CC"].idxmax() == 1e-6 and table.loc[1e-6, "val CC"] > 0.999
    assert table.loc[1e4, "val CC"] < table.loc[1e-6, "val CC"]
    out = readout(torch.stack([s["image"] for s in val]))
    assert out.shape == (10, 1, 4, 4)
    torch.testing.assert_close(out[:, 0], torch.stack([s["fixation_map"] for s in val]), atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="map_size"):
        fit_ridge_readout(Feats(), train, val, map_size=(2, 8))


def test_activation_spread_sees_a_silenced_layer():
    torch.manual_seed(0)
    feats = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3), torch.nn.ReLU())
    images = torch.rand(8, 3, 12, 12)
    alive = activation_spread(feats, images)
    assert list(alive.index) == ["1", "3"] and (alive["across-image spread"] > 0).all()
    with torch.no_grad():
        feats[0].bias.fill_(-100.0)  # the first layer never fires: every image looks the same after it
    dead = activation_spread(feats, images)
    assert dead.loc["1", "mean activation"] == 0 and dead.loc["1", "channels ever active"] == 0
    assert dead.loc["3", "across-image spread"] == 0
    assert feats[0].bias[0] == -100.0  # measured on a copy, the module itself untouched apart from our edit


def test_capture_activations_by_name_and_by_type_leaves_the_model_alone():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3))
    images = torch.rand(5, 3, 10, 10)
    by_name = capture_activations(net, images, layers=["0", "2"], batch_size=2)
    assert by_name["0"].shape == (5, 4, 8, 8) and by_name["2"].shape == (5, 2, 6, 6)
    torch.testing.assert_close(by_name["2"], net(images).detach())
    by_type = capture_activations(net, images, layer_type=torch.nn.ReLU)
    assert list(by_type) == ["1"] and (by_type["1"] >= 0).all()
    with pytest.raises(KeyError, match="no module named"):
        capture_activations(net, images, layers=["conv9"])
    with pytest.raises(ValueError, match="exactly one"):
        capture_activations(net, images)


def test_failure_modes_flags_centre_copies_and_off_centre_peaks():
    h, w = 20, 20
    yy, xx = np.mgrid[:h, :w]
    centre = np.exp(-((yy - 9.5) ** 2 + (xx - 9.5) ** 2) / 20.0)
    fix_map = np.zeros((h, w)); fix_map[10, 10] = 1.0
    dataset = [{"fixation_map": fix_map}] * 2
    blob = np.zeros((h, w)); blob[1, 1] = 1.0  # a peak in the corner, where nobody looked
    table = failure_modes([centre.copy(), blob], dataset, cc=[0.2, 0.1], cc_centre_bias=[0.3, 0.3],
                          centre_bias_map=centre)
    assert table["centre-dominated"].tolist() == [True, False]
    assert table["spurious peak"].tolist() == [False, True]
    summary = summarize_failure_modes(table)
    assert summary["centre-dominated maps"] == 0.5 and summary["spurious off-centre peaks"] == 0.5
    with pytest.raises(ValueError, match="one entry per image"):
        failure_modes([centre], dataset, [0.1], [0.1], centre)
