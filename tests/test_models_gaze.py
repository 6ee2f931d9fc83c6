"""Gaze models (salbook.models.gaze): readout, finalizer, FastGaze, DenseGaze, Lite0."""

from __future__ import annotations

import pytest
import torch

from salbook import models
from salbook.cost import count_params
from salbook.models.gaze import Finalizer, Readout
from salbook.pruning import masks_of
from salbook.pruning.fisher import alive_counts, cost_model, prune_maps, select
from salbook.pruning.removal import remove_pruned

pytestmark = pytest.mark.usefixtures("one_thread")


def test_readout_widths_and_params():
    r = Readout(10)
    # 1×1 convs 10→32→16→2→1 with biases, three one-parameter PReLUs
    assert count_params(r) == (10 * 32 + 32) + (32 * 16 + 16) + (16 * 2 + 2) + (2 + 1) + 3
    assert r(torch.rand(2, 10, 3, 4)).shape == (2, 1, 3, 4)


def test_finalizer_outputs_a_log_density_with_learnable_sigma_and_centre_weight():
    f = Finalizer(sigma=0.05)
    centre = torch.zeros(16, 16)
    centre[6:10, 6:10] = 1.0
    f.set_centre_bias(centre)
    out = f(torch.zeros(2, 1, 4, 4), (24, 32))
    assert out.shape == (2, 1, 24, 32)
    assert torch.allclose(out.flatten(1).logsumexp(1), torch.zeros(2), atol=1e-5)
    # a flat readout + centre bias: most mass in the centre
    assert out[0, 0, 12, 16] > out[0, 0, 0, 0]
    out.sum().backward()
    assert f.log_sigma.grad is not None and f.centre_weight.grad is not None
    with pytest.raises(ValueError, match="non-negative"):
        f.set_centre_bias(-centre)


@pytest.mark.parametrize("name,maps,params", [("fastgaze", 2802, 9_237_466), ("densegaze", 5426, 4_300_762)])
def test_paper_models_exact(name, maps, params):
    net = models.create(name)
    assert count_params(net) == params
    assert sum(len(m.mask) for m in masks_of(net).values()) == maps
    cm = cost_model(net, torch.zeros(1, 3, 32, 32))
    assert len(cm.layers) == len(net.prune_links())


def test_fastgaze_trunk_is_vgg11_to_conv5_2():
    net = models.create("fastgaze")
    convs = [m for m in net.layers.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 512, 512, 512, 512]


def test_lite0_gaze_prunes_and_removes_exactly():
    net = models.create("gaze_lite0", weights=None, seed=0).eval()
    x = torch.rand(2, 3, 64, 96)
    assert net(x).shape == (2, 1, 64, 96)
    cm = cost_model(net, x[:1])
    g = torch.Generator().manual_seed(0)
    prune_maps(net, select(net, cm, "random", 5000, generator=g))
    small = remove_pruned(net, x[:1])
    with torch.no_grad():
        assert torch.allclose(small(x), net(x), atol=1e-4)
    assert count_params(small) < count_params(net) / 2
    assert cm.relative(alive_counts(net)) < 0.7
    # widths rounded up to multiples of 8 (for ONNX Runtime): the same function, every pruned width a multiple
    rounded = remove_pruned(net, x[:1], multiple=8)
    with torch.no_grad():
        assert torch.allclose(rounded(x), net(x), atol=1e-4)
    widths = {n: m.out_channels for n, m in rounded.named_modules() if n.endswith("conv_pw")}
    alive = {n.removesuffix(".aa"): k for n, k in alive_counts(net).items() if n.endswith(".aa")}
    original = {n: m.out_channels for n, m in net.named_modules() if n.endswith("conv_pw")}
    for name, w in widths.items():
        block = name.removesuffix(".conv_pw")
        if block in alive:
            assert w % 8 == 0 or w == original[name]
            assert alive[block] <= w < alive[block] + 8 or w == original[name]
    assert count_params(small) < count_params(rounded) < count_params(net)
    with pytest.raises(ValueError, match="multiple must be >= 1"):
        remove_pruned(net, x[:1], multiple=0)
