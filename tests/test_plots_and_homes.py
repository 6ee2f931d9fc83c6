"""Tests for salbook.plots, the distillation and pruning homes, and the model registry's filter."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from salbook import models, plots
from salbook.distillation import WithTeacher, hint_loss
from salbook.pruning import ChannelMask, masks_of


def test_overlay_blends_a_resized_map_over_the_image():
    image = torch.zeros(3, 8, 10)
    sal = np.zeros((4, 5)); sal[0, 0] = 1.0
    out = plots.overlay(image, sal, alpha=0.5)
    assert out.shape == (8, 10, 3) and out.min() >= 0 and out.max() <= 1
    assert out[0, 0].sum() > out[-1, -1].sum()  # the salient corner is brighter


def test_image_map_grid_has_one_panel_per_cell_and_draws_fixations():
    fig = plots.image_map_grid([[torch.rand(3, 6, 6), np.random.rand(6, 6)], [np.random.rand(6, 6)]],
                               col_titles=["image", "map"], row_labels=["a", "b"],
                               fixations={(0, 1): np.array([[1, 2]])}, title="t")
    axes = np.array(fig.axes).reshape(2, 2)
    assert axes[0, 0].get_title() == "image" and axes[1, 0].get_ylabel() == "b"
    assert len(axes[0, 1].collections) == 1 and not axes[1, 1].axison
    with pytest.raises(ValueError, match="at least one"):
        plots.image_map_grid([])


def test_filter_grid_training_curves_and_seed_strips():
    fig = plots.filter_grid(torch.randn(10, 3, 5, 5), columns=4)
    assert len(fig.axes) == 12
    with pytest.raises(ValueError, match="O×3×k×k"):
        plots.filter_grid(torch.randn(4, 5, 3, 3))
    h = pd.DataFrame({"step": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "val_metric": [0.1, 0.2]})
    fig = plots.training_curves({"a": h, "b": h.assign(val_metric=[0.2, 0.3])})
    assert len(fig.axes) == 3 and len(fig.axes[2].lines) == 2
    table = pd.DataFrame({"model": ["x", "x", "y", "y"], "cc": [0.1, 0.2, 0.3, 0.4]})
    fig = plots.seed_strips(table, ["cc"], reference={"cc": 0.25})
    assert any(line.get_linestyle() == "--" for line in fig.axes[0].lines)


def test_with_teacher_runs_a_frozen_teacher_inside_the_loss():
    teacher = nn.Conv2d(3, 1, 1)
    student = nn.Conv2d(3, 1, 1)
    loss = WithTeacher(teacher, lambda s, t, batch: ((s - t) ** 2).mean())
    batch = {"image": torch.rand(2, 3, 4, 4)}
    value = loss(student(batch["image"]), batch)
    value.backward()
    assert student.weight.grad is not None and teacher.weight.grad is None
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training


def test_hint_loss_sums_the_mse_of_each_pair_and_checks_shapes():
    s = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2, 2)]
    t = [torch.ones(1, 2, 4, 4), 2 * torch.ones(1, 3, 2, 2)]
    assert float(hint_loss(s, t)) == pytest.approx(1.0 + 4.0)
    with pytest.raises(ValueError, match="adapter"):
        hint_loss(s, [t[1], t[0]])


def test_channel_mask_switches_channels_off_and_refuses_to_empty_a_layer():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), ChannelMask(4))
    x = torch.rand(2, 3, 5, 5)
    net[1].prune([1, 3])
    out = net(x)
    assert (out[:, [1, 3]] == 0).all() and (out[:, [0, 2]] != 0).any()
    assert net[1].kept == [0, 2] and list(masks_of(net)) == ["1"]
    with pytest.raises(ValueError, match="every channel"):
        net[1].prune([0, 2])
    with pytest.raises(ValueError, match="4 channels"):
        net[1](torch.rand(1, 3, 2, 2))


def test_list_models_filters_by_pattern_and_family():
    assert models.list_models(family="pan") == [n for n in models.list_models() if n.startswith("pan_")]
    assert models.list_models("*_bn") == ["pan_shallow_bn", "pan_shallow_coursework_bn"]
    assert models.family_of("pan_shallow") == "pan"
    families = sorted({models.family_of(n) for n in models.list_models()})
    assert {"compact", "csnet", "fastsal", "gaze", "lenet", "mlnet", "pan", "teacher"} <= set(families)
    with pytest.raises(ValueError, match="families: " + ", ".join(families)):
        models.list_models(family="nope")
