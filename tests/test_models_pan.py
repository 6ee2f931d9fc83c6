"""Tests for the model registry, the Maxout layer and Pan et al.'s shallow convnets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from salbook import models
from salbook.models.layers import Maxout, conv_output_size, pool_output_size
from salbook.models.pan import PanShallow


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def official() -> PanShallow:
    torch.manual_seed(0)
    return models.create("pan_shallow")


@pytest.fixture(scope="module")
def coursework() -> PanShallow:
    torch.manual_seed(0)
    return models.create("pan_shallow_coursework")


# --- registry -------------------------------------------------------------------------------


def test_registry_lists_the_pan_models():
    names = models.list_models()
    for name in ("pan_shallow", "pan_shallow_bn", "pan_shallow_coursework", "pan_shallow_coursework_bn"):
        assert name in names
    assert names == sorted(names)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(KeyError, match="pan_shallow"):
        models.create("no_such_model")


def test_register_refuses_a_second_builder_under_the_same_name():
    with pytest.raises(ValueError, match="already registered"):
        models.register("pan_shallow")(lambda: nn.Identity())


def test_create_passes_keyword_arguments_to_the_builder():
    net = models.create("pan_shallow", fc_hidden=8, maxout_pieces=2, init="gaussian", init_bias=0.1)
    assert net.head.fc1.out_features == 8 and net.head.fc2.in_features == 4
    assert torch.all(net.head.fc1.bias == 0.1)


# --- Maxout ---------------------------------------------------------------------------------


def test_maxout_takes_the_max_of_consecutive_units():
    x = torch.tensor([[1.0, 5.0, -2.0, -3.0, 0.5, 0.25]])
    assert torch.equal(Maxout(2)(x), torch.tensor([[5.0, -2.0, 0.5]]))
    assert torch.equal(Maxout(3)(x), torch.tensor([[5.0, 0.5]]))


def test_maxout_on_feature_maps_and_gradient_goes_to_the_winner():
    x = torch.randn(2, 6, 3, 4, requires_grad=True)
    y = Maxout(2)(x)
    assert y.shape == (2, 3, 3, 4)
    y.sum().backward()
    winners = (x.detach().reshape(2, 3, 2, 3, 4).argmax(2, keepdim=True))
    expected = torch.zeros(2, 3, 2, 3, 4).scatter_(2, winners, 1.0).reshape(2, 6, 3, 4)
    assert torch.equal(x.grad, expected)


def test_maxout_rejects_indivisible_widths_and_bad_pieces():
    with pytest.raises(ValueError, match="divisible"):
        Maxout(2)(torch.zeros(1, 5))
    with pytest.raises(ValueError):
        Maxout(0)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_output_size_matches_torch(ceil_mode):
    for size in range(3, 40):
        for kernel, stride in ((2, 2), (3, 2), (3, 3)):
            if kernel > size:
                continue
            got = pool_output_size(size, kernel, stride, 0, ceil_mode)
            ref = nn.MaxPool2d(kernel, stride, ceil_mode=ceil_mode)(torch.zeros(1, 1, size, size)).shape[-1]
            assert got == ref, (size, kernel, stride, ceil_mode)
    assert conv_output_size(96, 5) == 92 and conv_output_size(96, 5, padding=2) == 96


# --- the networks ---------------------------------------------------------------------------


def test_official_network_has_exactly_64_392_512_parameters(official):
    assert n_params(official) == 64_392_512
    per_layer = {n: p.numel() for n, p in official.named_parameters()}
    assert per_layer["features.conv1.weight"] + per_layer["features.conv1.bias"] == 2_432
    assert per_layer["head.fc1.weight"] + per_layer["head.fc1.bias"] == 58_987_008
    assert per_layer["head.fc2.weight"] + per_layer["head.fc2.bias"] == 5_310_720


def test_official_spatial_sizes_follow_the_lasagne_ceil_mode_chain(official):
    table = models.layer_table(official, (3, 96, 96))
    sizes = [int(s.split(" × ")[-1]) for s in table[table.type.isin(["Conv2d", "MaxPool2d"])]["output shape"]]
    assert sizes == [92, 46, 44, 22, 20, 10]
    assert table.params.sum() == 64_392_512
    assert table.iloc[-1]["output shape"] == "1 × 48 × 48"
    assert official.feature_shape == (128, 10, 10)


def test_official_forward_shape_and_fc1_relu(official):
    official.eval()
    with torch.no_grad():
        out = official(torch.rand(2, 3, 96, 96))
    assert out.shape == (2, 1, 48, 48) and torch.isfinite(out).all()
    assert isinstance(official.head.relu_fc1, nn.ReLU)


def test_coursework_network_leaves_11x11_and_has_no_fc1_activation(coursework):
    assert coursework.feature_shape == (128, 11, 11)
    assert coursework.head.fc1.in_features == 15_488
    assert n_params(coursework) == 76_778_816
    assert not any(isinstance(m, nn.ReLU) for m in coursework.head)
    with torch.no_grad():
        assert coursework(torch.rand(1, 3, 96, 96)).shape == (1, 1, 48, 48)


def test_batch_norm_variants_put_bn_between_conv_and_relu():
    net = models.create("pan_shallow_bn")
    names = list(net.features._modules)
    assert names[:4] == ["conv1", "bn1", "relu1", "pool1"]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 3
    assert n_params(net) == 64_392_512 + 2 * (32 + 64 + 128)
    assert n_params(models.create("pan_shallow_coursework_bn")) == 76_778_816 + 448


def test_wrong_input_size_is_refused_clearly(official):
    with pytest.raises(ValueError, match="96"):
        official(torch.rand(1, 3, 128, 128))


def test_initialisations(official, coursework):
    fc1 = official.head.fc1
    bound = (6 / (fc1.in_features + fc1.out_features)) ** 0.5
    assert torch.all(fc1.bias == 0) and fc1.weight.abs().max() <= bound
    assert fc1.weight.abs().max() > 0.9 * bound
    w = coursework.head.fc1.weight
    assert torch.all(coursework.features.conv1.bias == 0.1)
    assert abs(w.std().item() - 0.01) < 1e-3 and abs(w.mean().item()) < 1e-4
    with pytest.raises(ValueError, match="unknown init"):
        PanShallow(fc_hidden=4, init="he")  # type: ignore[arg-type]


def test_same_seed_same_weights():
    def build(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return models.create("pan_shallow", fc_hidden=8).features.conv2.weight.detach().clone()

    assert torch.equal(build(3), build(3))
    assert not torch.equal(build(3), build(4))
