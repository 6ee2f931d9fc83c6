"""Tests for ML-Net (exact counts, Theano pooling, prior, loss, VGG-16 weights) and the ML-Net-style head."""

from __future__ import annotations

import pytest
import torch
import torchvision

from salbook import models
from salbook.cost import count_params
from salbook.models import mlnet as M
from salbook.models.backbones import BackboneWeightsError


def test_exact_counts_at_both_sizes():
    assert count_params(M.mlnet(input_size=(480, 640))) == 15_452_145
    assert count_params(M.mlnet(input_size=(192, 256))) == 15_452_103
    net = M.mlnet()
    assert count_params(net.encoder) == 14_714_688
    assert count_params(net.head.encode) == 737_344 and count_params(net.head.readout) == 65
    assert tuple(net.head.prior.weight.shape[-2:]) == (6, 8)
    assert isinstance(models.get_builder("mlnet")(), M.MLNet)


def test_prior_size_rule():
    assert M.prior_size((480, 640)) == (6, 8)
    assert M.prior_size((192, 256)) == (2, 3)
    with pytest.raises(ValueError, match="at least 80"):
        M.prior_size((64, 640))


def test_theano_same_pool_takes_the_pixel_and_the_one_before():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # stride 2: rows (−1, 0) and (1, 2); columns likewise; zeros outside
    assert torch.equal(M.TheanoSameMaxPool2d(2, 2)(x), torch.tensor([[[[0.0, 2.0], [8.0, 10.0]]]]))
    # stride 1 keeps the size; on non-negative input each output is max(x[i-1, j-1..j], x[i, j-1..j])
    y = M.TheanoSameMaxPool2d(2, 1)(x)
    assert y.shape == x.shape and torch.equal(y, x)  # increasing along both axes
    odd = M.TheanoSameMaxPool2d(2, 2)(torch.rand(1, 2, 5, 7))
    assert odd.shape == (1, 2, 3, 4)


def test_output_is_one_eighth_and_non_negative(one_thread):
    net = M.mlnet(input_size=(96, 128)).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 96, 128))
    assert out.shape == (1, 1, 12, 16) and bool((out >= 0).all())
    feats = net.features(torch.rand(1, 3, 96, 128))
    assert [tuple(f.shape[1:]) for f in feats] == [(256, 12, 16), (512, 12, 16), (512, 12, 16)]


def test_prior_is_neutral_at_init_and_resized_to_the_map():
    prior = M.LearnedPrior((2, 3))
    x = torch.rand(2, 1, 24, 32)
    assert torch.allclose(prior(x), x)
    with torch.no_grad():
        prior.weight.fill_(1.0)
    assert torch.allclose(prior(x), 2 * x)
    assert torch.isclose(prior.penalty(), torch.tensor(1.0))  # sum(w²) / cells


def test_official_loss_by_hand():
    pred = torch.tensor([[[[1.0, 2.0], [0.0, 4.0]]]])
    target = torch.tensor([[[[0.0, 0.5], [0.0, 1.0]]]])
    norm = pred / 4.0
    expected = ((norm - target) ** 2 / (1 - target + 0.1)).mean()
    assert torch.isclose(M.mlnet_loss(pred, target), expected)
    assert torch.isfinite(M.mlnet_loss(torch.zeros(1, 1, 2, 2), target))  # all-zero prediction
    with pytest.raises(ValueError, match="shape"):
        M.mlnet_loss(pred, target[..., :1])
    net = M.mlnet(input_size=(192, 256))
    assert float(M.prior_penalty(net).detach()) == 0.0


def test_vgg16_weights_load_from_a_local_file(tmp_path):
    torch.manual_seed(0)
    features = torchvision.models.vgg16(weights=None).features
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # a full classifier file: ignored
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    net = M.mlnet(input_size=(192, 256), vgg16_weights=path)
    assert torch.equal(net.encoder[28].weight, features[28].weight)
    assert str(path) in net.weights_source
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(BackboneWeightsError, match="missing keys"):
        M.mlnet(vgg16_weights=bad)
    with pytest.raises(FileNotFoundError):
        M.mlnet(vgg16_weights=tmp_path / "nope.pth")


def test_mlnet_style_head_on_lite0(one_thread):
    net = M.mlnet_lite0(input_size=(96, 128), weights=None, seed=0).eval()
    assert isinstance(net, M.MLNetStyle)
    assert net.head.encode.in_channels == 40 + 112 + 1280
    assert tuple(net.head.prior.weight.shape[-2:]) == (1, 1)
    with torch.no_grad():
        out = net(torch.rand(2, 3, 96, 128))
    assert out.shape == (2, 1, 12, 16)
    assert "random init" in net.weights_source
    with pytest.raises(ValueError, match="N×3×H×W"):
        net(torch.rand(2, 96, 128))
