"""Tests for the compact model of Table 1 and its two ablations (exact counts, shapes, layout)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from salbook import models
from salbook.cost import count_params
from salbook.models import compact as C


def test_table1_count_is_exact():
    net = C.compact()
    assert count_params(net) == 313_873
    # the choices the count rests on: biased plain convs, biased output, 13 bottlenecks of expansion 4
    assert net.features.conv1[0].bias is not None and net.readout.bias is not None
    blocks = [m for m in net.modules() if isinstance(m, C.Bottleneck)]
    assert len(blocks) == 13
    assert [b.expand[0].out_channels // b.expand[0].in_channels for b in blocks] == [4] * 13
    assert [(b.expand[0].in_channels, b.project[0].out_channels) for b in blocks] == list(C.TABLE1_BOTTLENECKS)


def test_ablation_counts():
    assert count_params(C.compact_late_pool()) == 313_873  # pools have no weights
    assert count_params(C.compact_plain()) == 343_409
    assert count_params(C.compact(stem_bias=False, output_bias=False)) == 313_873 - 65


def test_registered_by_name():
    for name in ("compact", "compact_late_pool", "compact_plain"):
        assert isinstance(models.get_builder(name)(), C.CompactSaliency)


@pytest.mark.parametrize("builder", [C.compact, C.compact_late_pool, C.compact_plain])
def test_output_is_one_eighth_of_the_input(builder, one_thread):
    net = builder(stem=(8, 8), blocks=((8, 8), (8, 8), (8, 16), (16, 16), (16, 16), (16, 16), (16, 16), (16, 16),
                                       (16, 16), (16, 16)))
    net.eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 48, 64)).shape == (2, 1, 6, 8)


def test_pool_positions_follow_table1_and_the_late_variant():
    def resolution_of_blocks(net: C.CompactSaliency) -> list[int]:
        pools, out = 0, []
        for name, layer in net.features.named_children():
            if isinstance(layer, nn.MaxPool2d):
                pools += 1
            elif name.startswith("block"):
                out.append(2**pools)
        return out

    assert resolution_of_blocks(C.compact()) == [2, 2, 4, 4, 4] + [8] * 8
    assert resolution_of_blocks(C.compact_late_pool()) == [1, 2, 2, 4, 4, 4] + [8] * 7


def test_residual_only_where_shapes_allow():
    blocks = [m for m in C.compact().modules() if isinstance(m, C.Bottleneck)]
    assert [b.use_residual for b in blocks] == [i == o for i, o in C.TABLE1_BOTTLENECKS]
    with pytest.raises(ValueError, match="residual"):
        C.Bottleneck(8, 16, residual=True)


def test_bad_configurations_and_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="block"):
        C.CompactSaliency(block="dense")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="receives"):
        C.CompactSaliency(blocks=((32, 16), (32, 16)), pools=(0,))
    with pytest.raises(ValueError, match="pool positions"):
        C.CompactSaliency(pools=(0, 99))
    net = C.compact()
    with pytest.raises(ValueError, match="N×3×H×W"):
        net(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="at least 8×8"):
        net(torch.rand(1, 3, 4, 16))


def test_untrained_network_predicts_a_uniform_map():
    torch.manual_seed(0)
    net = C.compact().eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 32, 32))
    assert torch.all(out == out.flatten()[0])
