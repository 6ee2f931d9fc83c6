"""Tests for CSNet and gOctConv (salbook.models.csnet): exact counts, operators, layout, width
specifications, Table 1 splits, registry and FLOPs in the official convention."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from salbook import models
from salbook.cost import count_params, flops
from salbook.models import csnet as C

pytestmark = pytest.mark.usefixtures("one_thread")


def extractor_params(net: C.CSNet) -> int:
    return sum(count_params(stage) for stage in net.extractor_stages())


# --- exact counts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "builder, total, extractor",
    [
        (C.csnet_x1, 210_985, 179_420),
        (C.csnet_x2, 788_631, 660_440),
        (C.csnet_l_x1, 93_647, 74_260),
        (C.csnet_l_x2, 140_894, 108_289),
    ],
)
def test_parameter_counts_match_the_official_code(builder, total, extractor):
    net = builder()
    assert count_params(net) == total
    assert extractor_params(net) == extractor


def test_table4_initial_widths():
    # Table 4's unpruned ×1.2 / ×1.5 / ×1.8 (298K, 455K, 645K in the paper): base width round(20k)
    counts = [count_params(C.csnet(w)) for w in (1.2, 1.5, 1.8)]
    assert counts == [298_633, 455_631, 645_565]


def test_x1_widths_follow_the_official_layout():
    spec = C.default_width_spec(1.0)
    assert spec["blocks"][:4] == [[10, 10]] * 4
    assert spec["blocks"][4:8] == [[20, 20]] * 3 + [[40]]
    assert spec["blocks"][8:14] == [[40, 40]] * 5 + [[80]]
    assert spec["blocks"][14:] == [[40, 40]] * 3 + [[80]]
    assert spec["csf_fuse"] == [13, 26, 26]
    assert spec["csf_ms"] == [[2, 2, 2, 2, 5], [5, 5, 5, 5, 6], [5, 5, 5, 5, 6]]
    assert spec["csf_out"] == 65
    x2 = C.default_width_spec(2.0)
    assert x2["csf_fuse"] == [26, 53, 53] and x2["csf_out"] == 132
    assert x2["csf_ms"][1] == [10, 10, 10, 10, 13]


def test_resolutions_kernels_and_no_residual():
    net = C.csnet_x1().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        feats = net.forward_features(x)
    sides = [[None if t is None else (t.shape[1], t.shape[-1]) for t in f] for f in feats]
    assert sides == [
        [(10, 32), (10, 16)],  # stem: full resolution and half
        [(10, 32), (10, 16)],  # stage 1 stays at full resolution
        [(40, 16)],            # stage 2 ends single-scale at H/2
        [(80, 8)],             # stage 3 at H/4
        [(80, 4)],             # stage 4 at H/8
    ]
    blocks = [b for stage in net.extractor_stages() for b in stage]
    kernels = [b.conv1x1.conv.kernel_size for b in blocks]
    kernels = [k if isinstance(k, int) else k[0] for k in kernels]
    assert [i for i, k in enumerate(kernels) if k == 3] == [0, 4, 8, 14]  # stem and stride-2 blocks
    assert [b.stride for b in blocks].count(2) == 3
    # no residual: a shape-preserving block is exactly its three units in a row
    block = net.stage1[1]
    with torch.no_grad():
        inp = net.stage1[0](net.stage0[0](x))
        direct = block.conv3x3_2(block.conv3x3_1(block.conv1x1(inp)))
        out = block(inp)
    assert all(torch.equal(a, b) for a, b in zip(out, direct))
    assert not torch.allclose(out[0], direct[0] + inp[0])


# --- output -------------------------------------------------------------------------------------


def test_output_has_the_input_size():
    net = C.csnet_x1().eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 224, 224)).shape == (1, 1, 224, 224)
        assert net(torch.rand(2, 3, 64, 96)).shape == (2, 1, 64, 96)
        assert C.csnet_l_x2().eval()(torch.rand(1, 3, 48, 80)).shape == (1, 1, 48, 80)


def test_untrained_network_needs_batch_statistics():
    # Faithful to the official code: with fresh running statistics (mean 0, variance 1) nothing
    # undoes the ×100 of the depthwise convolutions, activations grow ~10³× per block and float32
    # overflows in stage 3; in training mode batch norm rescales every unit.
    torch.manual_seed(0)
    net = C.csnet_x1()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.isfinite(net.eval()(x)).all()
        assert torch.isfinite(net.train()(x)).all()


def test_sizes_that_do_not_halve_exactly_are_refused():
    net = C.csnet_x1()
    assert net.size_multiple == 16
    with pytest.raises(ValueError, match="divisible by 16"):
        net(torch.rand(1, 3, 40, 64))
    with pytest.raises(ValueError, match="N×3×H×W"):
        net(torch.rand(1, 1, 32, 32))


def test_output_is_the_bilinear_resize_of_the_half_resolution_logits():
    net = C.csnet_l_x1()  # train mode: batch statistics (see test_untrained_network_needs_batch_statistics)
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        feats = net.forward_features(x)
        logits = net.cls_layer(net.oct_fuse([feats[2][0], feats[3][0], feats[4][0]])[0])
        assert logits.shape == (2, 1, 16, 24)
        expected = F.interpolate(logits, size=(32, 48), mode="bilinear", align_corners=False)
        torch.testing.assert_close(net(x), expected)


# --- gOctConv -----------------------------------------------------------------------------------


def reference_goct(xs, weight, ins, outs, stride, padding):
    """Independent statement of the official rules, pair by pair."""
    ys = [None] * len(outs)
    c0 = 0
    for i, (x, ci) in enumerate(zip(xs, ins)):
        r0 = 0
        for j, co in enumerate(outs):
            w = weight[r0:r0 + co, c0:c0 + ci]
            r0 += co
            if x is None or co == 0:
                continue
            xi = F.avg_pool2d(x, kernel_size=2) if stride == 2 else x
            if j > i:
                y = F.conv2d(F.max_pool2d(xi, kernel_size=2 ** (j - i)), w, padding=padding)
            elif j < i:
                y = F.conv2d(xi, w, padding=padding)
                y = F.interpolate(y, size=(y.shape[-2] * 2 ** (i - j), y.shape[-1] * 2 ** (i - j)),
                                  mode="bilinear", align_corners=False)
            else:
                y = F.conv2d(xi, w, padding=padding)
            ys[j] = y if ys[j] is None else ys[j] + y
        c0 += ci
    return ys


def pyramid(widths, side=16, batch=2):
    return [torch.randn(batch, c, side >> i, side >> i) if c else None for i, c in enumerate(widths)]


@pytest.mark.parametrize(
    "ins, outs",
    [([4], [5]), ([4], [3, 2]), ([3, 2], [5]), ([3, 2], [2, 4]), ([2, 3, 4], [3, 2, 2]), ([4], [1, 2, 3]),
     ([2, 3, 4], [6]), ([3, 0], [0, 4])],
)
@pytest.mark.parametrize("kernel, stride", [(1, 1), (3, 1), (3, 2)])
def test_goctconv_matches_the_rules(ins, outs, kernel, stride):
    torch.manual_seed(0)
    conv = C.GOctConv(ins, outs, kernel, stride=stride, padding=kernel // 2)
    assert conv.weight.shape == (sum(outs), sum(ins), kernel, kernel)
    xs = pyramid(ins)
    with torch.no_grad():
        ys = conv(xs)
        expected = reference_goct(xs, conv.weight, ins, outs, stride, kernel // 2)
    assert len(ys) == len(outs)
    for j, (y, e) in enumerate(zip(ys, expected)):
        if outs[j] == 0:
            assert y is None
            continue
        assert y.shape == (2, outs[j], (16 // stride) >> j, (16 // stride) >> j)
        torch.testing.assert_close(y, e)


def test_goctconv_pools_max_down_average_on_stride_and_upsamples_bilinearly():
    conv = C.GOctConv([1, 1], [1, 1], 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)  # every pair passes its input through
    hi = torch.zeros(1, 1, 4, 4)
    hi[0, 0, 0, 0] = 4.0  # one bright pixel per 2×2 window: max 4, mean 1
    lo = torch.zeros(1, 1, 2, 2)
    with torch.no_grad():
        y_hi, y_lo = conv([hi, lo])
    assert y_lo[0, 0, 0, 0] == 4.0  # high → low is a max pool (an average would give 1)
    lo = torch.tensor([[[[0.0, 4.0], [0.0, 4.0]]]])
    with torch.no_grad():
        y_hi, _ = conv([torch.zeros(1, 1, 4, 4), lo])
    assert torch.allclose(y_hi[0, 0, 0], torch.tensor([0.0, 1.0, 3.0, 4.0]))  # bilinear, not nearest
    strided = C.GOctConv([1], [1], 1, stride=2)
    with torch.no_grad():
        strided.weight.fill_(1.0)
        assert strided(hi)[0][0, 0, 0, 0] == 1.0  # stride 2 is a 2×2 average pool first


def test_goctconv_checks_its_inputs():
    conv = C.GOctConv([3, 2], [4], 1)
    with pytest.raises(ValueError, match="2 scales"):
        conv([torch.zeros(1, 3, 4, 4)])
    with pytest.raises(ValueError, match="expects 2 channels"):
        conv([torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 2, 2)])
    with pytest.raises(ValueError, match="stride 1 or 2"):
        C.GOctConv([3], [3], 3, stride=3)


# --- ×100 scaling ---------------------------------------------------------------------------------


def test_conv2dx100_applies_a_hundred_times_its_weight():
    torch.manual_seed(0)
    conv = C.Conv2dX100(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 8, 8)
    plain = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    with torch.no_grad():
        plain.weight.copy_(100 * conv.weight)
    torch.testing.assert_close(conv(x), plain(x))
    torch.testing.assert_close(conv.effective_weight, 100 * conv.weight)
    assert conv.bias is None
    # the gradient on the stored weight is 100 × the gradient on the effective weight
    conv(x).sum().backward()
    plain(x).sum().backward()
    torch.testing.assert_close(conv.weight.grad, 100 * plain.weight.grad)


def test_x100_is_used_where_the_official_code_uses_it():
    net = C.csnet_x1()
    depthwise = [c for m in net.modules() if isinstance(m, C.SimplifiedGOctConvBR) for c in m.convs if c is not None]
    dilated = [c for m in net.modules() if isinstance(m, C.MSBlock) for c in m.msconv if c is not None]
    assert len(depthwise) == 2 * 2 * 18 - 2 * 3  # two units per block, two scales but three single-scale blocks
    assert all(isinstance(c, C.Conv2dX100) and c.groups == c.in_channels for c in depthwise)
    assert len(dilated) == 15 and all(isinstance(c, C.Conv2dX100) for c in dilated)
    assert [c.dilation[0] for c in dilated[:5]] == [1, 2, 4, 8, 16]
    assert [c.padding[0] for c in dilated[:5]] == [1, 2, 4, 8, 16]
    cbrs = [m for m in net.modules() if isinstance(m, C.GOctaveCBR)]
    assert all(isinstance(m.conv, C.GOctConv) for m in cbrs)  # every CBR of CSNet is multi-scale
    assert type(net.cls_layer) is nn.Conv2d and net.cls_layer.bias is not None
    assert isinstance(C.GOctaveCBR([4], [6], 3).conv, C.Conv2dX100)  # single scale → ×100
    assert isinstance(C.GOctaveCBR([4], [3, 3], 3).conv, C.GOctConv)


def test_goctave_cbr_normalises_each_scale():
    cbr = C.GOctaveCBR([4, 4], [3, 5], 1)
    assert [bn.num_features for bn in cbr.bns] == [3, 5]
    assert [p.num_parameters for p in cbr.prelus] == [3, 5]
    assert all(torch.all(p.weight == 0.25) for p in cbr.prelus)


# --- width specifications ---------------------------------------------------------------------


@pytest.mark.parametrize("builder", [C.csnet_x1, C.csnet_l_x2, lambda: C.csnet(1.0, "0/1")])
def test_rebuild_from_width_spec(builder):
    torch.manual_seed(0)
    net = builder()
    spec = json.loads(json.dumps(net.width_spec()))  # JSON-friendly
    assert spec == net.width_spec()
    rebuilt = C.csnet_from_spec(spec)
    a, b = net.state_dict(), rebuilt.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    rebuilt.load_state_dict(a, strict=True)
    x = torch.rand(2, 3, 32, 32)  # train mode on both: batch statistics
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), net(x))
    assert rebuilt.width_spec() == spec


def test_width_spec_is_a_copy_and_is_checked():
    net = C.csnet_l_x1()
    spec = net.width_spec()
    spec["blocks"][0][0] = 99
    assert net.width_spec()["blocks"][0] == [8, 10]
    good = C.released_width_spec("x1")
    with pytest.raises(ValueError, match="18 blocks"):
        C.CSNet(**{**good, "blocks": good["blocks"][:-1]})
    bad = json.loads(json.dumps(good))
    bad["blocks"][7] = [20, 14]
    with pytest.raises(ValueError, match="one scale"):
        C.CSNet(**bad)
    with pytest.raises(ValueError, match="csf_ms"):
        C.CSNet(**{**good, "csf_ms": [[1, 2, 3], [1, 2, 3], [1, 2, 3]]})


def test_released_widths_keep_dropped_dilation_branches_out():
    net = C.csnet_l_x2()
    ms = net.oct_fuse.ms.convs
    assert [m.msconv[0] is None for m in ms] == [False, True, True]
    assert [m.bn.num_features for m in ms] == [8, 24, 18]
    assert net.oct_fuse.fuse1x1.conv.in_channels == [8, 24, 18]
    assert net.cls_layer.in_channels == 79


# --- Table 1 split ratios -----------------------------------------------------------------------


@pytest.mark.parametrize("split, first", [("1/0", [20, 0]), ("3/1", [15, 5]), ("5/5", [10, 10]),
                                          ("1/3", [5, 15]), ("0/1", [0, 20])])
def test_table1_splits_build_and_run(split, first):
    net = C.csnet(1.0, split)
    assert net.width_spec()["blocks"][0] == first
    assert net.width_spec()["blocks"][4] == [2 * c for c in first]
    assert count_params(net) == 210_985 and extractor_params(net) == 179_420  # Table 1: 211K / 180K
    with torch.no_grad():
        feats = net.forward_features(torch.rand(2, 3, 32, 32))
        out = net(torch.rand(2, 3, 32, 32))
    assert [t is None for t in feats[1]] == [c == 0 for c in first]
    assert out.shape == (2, 1, 32, 32) and torch.isfinite(out).all()


def test_split_can_be_given_as_shares():
    assert C.default_width_spec(1.0, (3, 1)) == C.default_width_spec(1.0, "3/1")
    with pytest.raises(ValueError):
        C.default_width_spec(1.0, (0, 0))


# --- registry -------------------------------------------------------------------------------------


def test_registered_builders():
    names = models.list_models(family="csnet")
    assert names == ["csnet", "csnet_l_x1", "csnet_l_x2", "csnet_x1", "csnet_x2"]
    assert count_params(models.create("csnet_l_x1")) == 93_647
    assert count_params(models.create("csnet", width=2.0)) == 788_631
    assert isinstance(models.create("csnet", split="1/3"), C.CSNet)


# --- FLOPs ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def x1_and_l_x1():
    torch.set_num_threads(1)
    return C.csnet_x1(), C.csnet_l_x1()


def test_official_flops_of_the_x1_models(x1_and_l_x1):
    x1, lx1 = x1_and_l_x1
    a, b = C.official_flops(x1, (224, 224)), C.official_flops(lx1, (224, 224))
    assert round(a.gflops, 4) == 0.6106  # the paper's 0.61 G
    assert round(b.gflops, 4) == 0.4355  # the paper's 0.43 G (the official script prints 0.4354)
    assert round(a.macs / 1e9, 3) == 0.433 and round(b.macs / 1e9, 3) == 0.284
    # the parts: one classifier bias per H/2 × W/2 output element, BN 4 / PReLU 3 per element
    assert a.bias == b.bias == 112 * 112
    assert a.bn * 3 == a.prelu * 4
    assert C.official_flops(lx1, (3, 224, 224), batch=2).total == 2 * b.total


def test_official_flops_macs_agree_with_the_flop_counter(x1_and_l_x1):
    for net in x1_and_l_x1:
        assert C.official_flops(net, (64, 96)).macs == flops(net, (64, 96)).macs


@pytest.mark.parametrize("builder, printed", [(C.csnet_x1, 0.6106), (C.csnet_x2, 1.8710),
                                              (C.csnet_l_x1, 0.4354), (C.csnet_l_x2, 0.7167)])
def test_counter_truncation_reproduces_the_official_script(builder, printed):
    # what parm_octconv_v2.py prints ('%.4fG') for the four models at 224 × 224
    assert f"{C.official_flops(builder(), (224, 224), counter_truncation=True).gflops:.4f}" == f"{printed:.4f}"


def test_counter_truncation_moves_channels_only_where_floats_fall_short():
    assert C._counter_widths([10, 10]) == [10, 10]
    assert C._counter_widths([26, 53, 53]) == [26, 52, 53]


# --- BN statistics of a fresh network, fused inference -----------------------------------------


def test_fresh_network_overflows_in_eval_mode_until_bn_statistics_are_set():
    torch.manual_seed(0)
    net = C.csnet_x1().eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.isfinite(net(x)).all()  # the ×100 with untrained running statistics
    C.init_bn_statistics(net, x)
    assert not net.training
    with torch.no_grad():
        assert torch.isfinite(net(x)).all()
    assert all(m.momentum == 0.1 for m in net.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("spec", [C.default_width_spec(1.0), C.released_width_spec("x2"),
                                  C.default_width_spec(0.5, "3/1"), C.default_width_spec(0.5, (1, 1, 1))],
                         ids=["x1", "L-x2", "3/1", "three-scales"])
def test_fuse_for_inference_gives_the_same_outputs(spec):
    torch.manual_seed(0)
    net = C.CSNet(**spec)
    x = torch.rand(2, 3, 64, 64)
    C.init_bn_statistics(net, torch.rand(4, 3, 64, 64))
    with torch.no_grad():
        for m in net.modules():  # non-trivial BN parameters
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        y = net(x)
        fused = C.fuse_for_inference(net)
        z = fused(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert torch.allclose(y, z, atol=1e-3 * float(y.abs().max())), float((y - z).abs().max())
    # fewer convolution calls: one per resolution level in each multi-scale unit
    unit = fused.stage1[0].conv1x1
    assert len(unit.levels) == len(unit.out_channels) and count_params(fused) < count_params(net)
    with pytest.raises(TypeError, match="CSNet"):
        C.fuse_for_inference(nn.Conv2d(1, 1, 1))
