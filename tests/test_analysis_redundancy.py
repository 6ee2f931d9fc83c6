"""Tests for chapter 2's redundancy analysis (PCA of a layer's activations)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from salbook.analysis.redundancy import components_for, participation_ratio, pca_view, redundancy


class Mixer(nn.Module):
    """images (N × k × H × W) → a C-channel 'layer' that is a fixed linear mix of the k inputs, then ReLU."""

    def __init__(self, k: int, c: int, relu: bool = True) -> None:
        super().__init__()
        self.mix = nn.Conv2d(k, c, 1, bias=False)
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.mix(x))


def test_participation_ratio_and_components():
    assert participation_ratio(np.ones(7)) == pytest.approx(7.0)
    assert participation_ratio(np.array([5.0, 0, 0])) == pytest.approx(1.0)
    assert math.isnan(participation_ratio(np.zeros(3)))
    ratio = np.array([0.5, 0.3, 0.15, 0.05])
    assert components_for(ratio, 0.5) == 1
    assert components_for(ratio, 0.9) == 3
    assert components_for(ratio, 0.99) == 4
    with pytest.raises(ValueError):
        components_for(ratio, 0.0)


def test_pca_view_of_a_rank_two_cloud():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 2)) @ rng.normal(size=(2, 10))
    view = pca_view(x, max_points=100)
    assert view.components_for[0.99] == 2
    assert view.projection.shape == (100, 2)
    assert view.projection_share == pytest.approx(1.0)
    assert 1.0 <= view.participation_ratio <= 2.0
    with pytest.raises(ValueError, match="2 samples"):
        pca_view(np.zeros((1, 3)))


def test_redundancy_finds_the_true_dimension_and_the_zeros():
    torch.manual_seed(0)
    model = Mixer(k=3, c=16, relu=False)
    images = torch.randn(12, 3, 8, 8)
    res = redundancy(model, images, "mix", n_images=None, max_positions=400, seed=1)
    assert res.n_channels == 16 and res.feature_size == (8, 8) and res.n_images == 12
    assert res.positions_per_image == math.ceil(400 / 12)
    assert res.by_position.n_samples == 12 * res.positions_per_image
    assert res.by_position.components_for[0.99] <= 3  # a linear mix of 3 inputs
    assert res.by_channel.n_samples == 16
    assert res.zero_fraction == 0.0 and res.dead_channels == 0.0
    assert 0 < res.mean_abs_channel_corr <= 1

    with torch.no_grad():
        model.mix.weight.abs_()
        model.mix.weight[:4] = -1.0  # four channels = −(sum of the inputs), the others positive
    model.act = nn.ReLU()
    pos = torch.rand(12, 3, 8, 8)  # positive inputs: those four channels are always ≤ 0 → dead after ReLU
    res = redundancy(model, pos, "act", n_images=None, max_positions=200)
    assert res.dead_channels == pytest.approx(4 / 16)
    assert res.zero_fraction >= 4 / 16
    assert res.near_zero_fraction >= res.zero_fraction
    summary = res.summary()
    assert summary["channels"] == 16 and "channel: participation ratio" in summary


def test_redundancy_reads_datasets_and_restores_the_mode():
    model = Mixer(3, 4).train()
    data = [{"image": torch.rand(3, 8, 8)} for _ in range(5)]
    res = redundancy(model, data, "act", n_images=3, max_positions=30)
    assert res.n_images == 3 and model.training
    with pytest.raises(KeyError, match="no module named"):
        redundancy(model, data, "nope")
    with pytest.raises(TypeError, match="sample dicts"):
        redundancy(model, [torch.rand(3, 8, 8)], "act")
    flat = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    with pytest.raises(ValueError, match="feature map"):
        redundancy(flat, torch.rand(2, 3, 8, 8), "1")


def test_bootstrap_intervals_bracket_the_estimate_and_figures_draw():
    import matplotlib

    matplotlib.use("Agg")
    from salbook.analysis.redundancy import projection_figure, variance_figure

    torch.manual_seed(0)
    model = Mixer(3, 8)
    res = redundancy(model, torch.randn(10, 3, 6, 6), "act", n_images=None, n_bootstrap=20, seed=0)
    lo, hi = res.intervals["participation ratio"]
    assert lo <= res.by_position.participation_ratio * 1.05 and hi >= res.by_position.participation_ratio * 0.95
    lo, hi = res.intervals["zero fraction"]
    assert lo <= res.zero_fraction <= hi
    assert redundancy(model, torch.randn(4, 3, 6, 6), "act").intervals == {}
    both = {"a": res, "b": res}
    assert len(variance_figure(both, title="t").axes) == 2
    assert len(projection_figure(both).axes) == 4
    with pytest.raises(ValueError):
        variance_figure({})


def test_compare_pair_reads_the_papers_claim():
    from salbook.analysis.redundancy import compare_pair

    torch.manual_seed(0)
    wide = redundancy(Mixer(8, 16), torch.randn(10, 8, 6, 6), "act", n_images=None, n_bootstrap=10)
    narrow = redundancy(Mixer(1, 16, relu=False), torch.randn(10, 1, 6, 6), "mix", n_images=None, n_bootstrap=10)
    table = compare_pair(wide, narrow, "toy")
    assert list(table.index.get_level_values("pair").unique()) == ["toy"]
    row = table.loc[("toy", "classification more spread (PR, channels as variables)")]
    assert row["measurement"] == "supports" and row["intervals separate"] == "yes"
    assert table.loc[("toy", "classification sparser (near-zero fraction)"), "measurement"] == "supports"
    same = compare_pair(wide, wide)
    assert (same.loc[same["intervals separate"] == "no", "measurement"] == "no clear difference").all()


def test_recalibrate_batch_norm_matches_the_new_images():
    from salbook.analysis.redundancy import recalibrate_batch_norm

    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU())
    images = torch.randn(40, 3, 5, 5) * 3 + 2
    fresh = recalibrate_batch_norm(net, images, n_images=None, batch_size=40)
    with torch.no_grad():
        pre = net[0](images)
    assert torch.allclose(fresh[1].running_mean, pre.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.equal(net[1].running_mean, torch.zeros(4))  # the original is untouched
    assert not fresh.training and torch.equal(fresh[0].weight, net[0].weight)
    with pytest.raises(ValueError, match="batch-norm"):
        recalibrate_batch_norm(nn.Conv2d(3, 4, 1), images)
