"""Tests for FastSal (C) and (A) (exact counts, multi-scale blocks, hints, double skip, init, local
weights, post-processing) and its SalGAN teacher."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

from salbook import models
from salbook.cost import count_params, flops
from salbook.models import fastsal as M
from salbook.models.backbones import BackboneWeightsError


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs with one intra-op thread (the machine is shared)."""
    yield


@pytest.fixture(scope="module")
def net_c() -> M.FastSalC:
    return M.fastsal_c(seed=0).eval()


@pytest.fixture(scope="module")
def net_a() -> M.FastSalA:
    return M.fastsal_a(seed=0).eval()


def _max_abs(t: torch.Tensor) -> float:
    return float(t.detach().abs().max())


def _conv_params(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


# --------------------------------------------------------------------------------------------
# exact parameter counts and cost
# --------------------------------------------------------------------------------------------


def test_exact_parameter_counts(net_c, net_a):
    encoder = count_params(torchvision.models.mobilenet_v2(weights=None).features)
    assert encoder == 2_223_872 == count_params(net_c.encoder) == count_params(net_a.encoder)

    # C: adapters 1 × 1 (+bias) and the 3 × 3 merger on 1408 / 4 channels, counted by hand
    adapters_c = sum(_conv_params(c, w, 1) for c, w in [(28, 128), (24, 256), (136, 512), (520, 512)])
    merger = _conv_params(1408 // 4, 1, 3)
    assert (adapters_c, merger) == (347_008, 3_169)
    assert count_params(net_c.adapters) == adapters_c and count_params(net_c.merger) == merger
    assert count_params(net_c) == encoder + adapters_c + merger == 2_574_049

    # A: adapters, four expand-2 inverted residuals (4c² + 28c each), output conv 2 → 1
    adapters_a = sum(_conv_params(c, w, 1) for c, w in [(28, 8), (24, 32), (136, 128), (520, 512)])
    blocks = sum(4 * c * c + 28 * c for c in (8, 32, 128, 512))
    assert (adapters_a, blocks) == (285_320, 1_137_504)
    assert count_params(net_a.adapters) == adapters_a and count_params(net_a.blocks) == blocks
    assert count_params(net_a.output) == _conv_params(2, 1, 3) == 19
    assert count_params(net_a) == encoder + adapters_a + blocks + 19 == 3_646_715


def test_macs_at_192x256(net_c, net_a):
    assert flops(net_c, (192, 256)).macs == 616_605_696  # 0.617 G, 1.233 GFLOPs
    assert flops(net_a, (192, 256)).macs == 638_330_880  # 0.638 G, 1.277 GFLOPs


# --------------------------------------------------------------------------------------------
# shapes, multi-scale blocks, hints
# --------------------------------------------------------------------------------------------


def test_logits_at_the_input_size(net_c, net_a):
    with torch.no_grad():
        for size in [(192, 256), (64, 96)]:
            x = torch.rand(1, 3, *size)
            assert net_c(x).shape == (1, 1, *size)
            assert net_a(x).shape == (1, 1, *size)
        with pytest.raises(ValueError, match="multiples of 32"):
            net_c(torch.rand(1, 3, 200, 256))
        with pytest.raises(ValueError, match="N×3×H×W"):
            net_a(torch.rand(1, 1, 64, 64))


def test_multi_scale_blocks_are_the_official_grouping(net_c):
    """Rebuild the four blocks by hand from an independent MobileNetV2 holding the same weights."""
    mnv2 = torchvision.models.mobilenet_v2(weights=None).features.eval()
    encoder_state = {k.removeprefix("backbone.body.features."): v for k, v in net_c.encoder.state_dict().items()}
    mnv2.load_state_dict(encoder_state)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        outs, y = {}, x
        for i, layer in enumerate(mnv2):
            y = layer(y)
            outs[i] = y
        ps = F.pixel_shuffle
        expected = [
            torch.cat([outs[1], ps(torch.cat([outs[2], outs[3]], 1), 2)], 1),
            ps(torch.cat([outs[i] for i in (4, 5, 6)], 1), 2),
            ps(torch.cat([outs[i] for i in range(7, 14)], 1), 2),
            ps(torch.cat([outs[i] for i in range(14, 19)], 1), 2),
        ]
        blocks = net_c.encoder(x)
    assert [tuple(b.shape[1:]) for b in blocks] == [(28, 32, 48), (24, 16, 24), (136, 8, 12), (520, 4, 6)]
    for got, want in zip(blocks, expected):
        torch.testing.assert_close(got, want)


def test_hints_match_the_teachers_activations_in_shape(net_c):
    teacher = M.salgan_generator(seed=0).eval()
    x = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        hints = net_c.hints(x)
        sal, teacher_hints = teacher.forward_with_hints(x)
    expected = [(1, 128, 16, 32), (1, 256, 8, 16), (1, 512, 4, 8), (1, 512, 2, 4)]
    assert [tuple(h.shape) for h in hints] == expected == [tuple(t.shape) for t in teacher_hints]
    assert [h.shape[1] for h in hints] == list(M.C_ADAPTER_WIDTHS) == list(M.SALGAN_HINT_CHANNELS)
    assert all(bool((h >= 0).all()) for h in hints)  # after the adapters' ReLU
    assert sal.shape == (1, 1, 32, 64) and bool(((sal > 0) & (sal < 1)).all())


def test_forward_of_c_is_the_merged_upsampled_hints(net_c):
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        hints = net_c.hints(x)
        up = [F.interpolate(h, scale_factor=s, mode="bilinear", align_corners=True)
              for h, s in zip(hints[1:], (2, 4, 8))]
        merged = torch.cat([hints[0], *up], 1)
        assert merged.shape[1] == 1408
        expected = F.conv2d(F.pixel_shuffle(merged, 2), net_c.merger[1].weight, net_c.merger[1].bias, padding=1)
        torch.testing.assert_close(net_c(x), expected)


# --------------------------------------------------------------------------------------------
# FastSal (A): the double skip
# --------------------------------------------------------------------------------------------


def test_shared_block_has_the_official_double_skip():
    torch.manual_seed(0)
    block = M.SharedInvertedBlock(8).eval()
    x, prev = torch.randn(2, 8, 5, 7), torch.randn(2, 8, 5, 7)
    residual = block.inv_block.conv  # F: the convolution stack of torchvision's block
    with torch.no_grad():
        torch.testing.assert_close(block(x), 2 * x + residual(x))
        torch.testing.assert_close(block(x, prev), 2 * (x + prev) + residual(x + prev))
        last_bn = residual[-1]
        assert isinstance(last_bn, torch.nn.BatchNorm2d)
        last_bn.weight.zero_()
        last_bn.bias.zero_()  # F ≡ 0
        torch.testing.assert_close(block(x), 2 * x)
        torch.testing.assert_close(block(x, prev), 2 * (x + prev))
    assert count_params(block) == 4 * 8 * 8 + 28 * 8


# --------------------------------------------------------------------------------------------
# initialisation
# --------------------------------------------------------------------------------------------


def test_official_and_he_init_statistics(net_c, net_a):
    def std(t: torch.Tensor) -> float:
        return float(t.detach().std())

    big = net_c.adapters[3][0]  # 520 → 512: 266,240 weights
    assert abs(std(big.weight) - 0.01) < 0.0003 and abs(float(big.weight.detach().mean())) < 0.0003
    assert all(_max_abs(a[0].bias) == 0.0 for a in net_c.adapters)
    assert abs(std(net_c.merger[1].weight) - 0.01) < 0.002 and _max_abs(net_c.merger[1].bias) == 0.0

    he = M.fastsal_c(init="he", seed=0)
    assert abs(std(he.adapters[3][0].weight) - (2 / 520) ** 0.5) < 0.001
    assert abs(std(he.merger[1].weight) - (2 / (9 * 352)) ** 0.5) < 0.004
    assert all(_max_abs(a[0].bias) == 0.0 for a in he.adapters)
    # the init choice leaves the encoder alone
    for (k, v), w in zip(net_c.encoder.state_dict().items(), he.encoder.state_dict().values()):
        assert torch.equal(v, w), k
    with pytest.raises(ValueError, match="unknown init"):
        M.fastsal_a(init="xavier")

    # A's blocks: every weight (convolutions and BN γ) ~ N(0, 0.01²), every bias 0
    s512 = net_a.blocks[3]
    gammas = torch.cat([m.weight for m in s512.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert gammas.numel() == 1024 + 1024 + 512 and abs(std(gammas) - 0.01) < 0.001
    assert abs(float(gammas.detach().mean())) < 0.001  # not BatchNorm's default of 1
    assert all(_max_abs(m.bias) == 0.0 for m in s512.modules() if isinstance(m, torch.nn.BatchNorm2d))
    expand = s512.inv_block.conv[0][0].weight  # 1024 × 512 × 1 × 1
    assert abs(std(expand) - 0.01) < 0.0003
    # so a block starts close to 2·x
    x = torch.randn(1, 512, 4, 4)
    with torch.no_grad():
        assert float((s512(x) - 2 * x).abs().max()) < 1e-2 * _max_abs(x)


def test_seed_reproduces_the_build_and_restores_the_rng():
    state = torch.random.get_rng_state()
    first, second = M.fastsal_a(seed=5), M.fastsal_a(seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (k, v), w in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(v, w), k


# --------------------------------------------------------------------------------------------
# local weights
# --------------------------------------------------------------------------------------------


def test_mobilenet_weights_from_a_local_file(tmp_path, net_c):
    torch.manual_seed(1)
    reference = torchvision.models.mobilenet_v2(weights=None)
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(reference.state_dict(), path)

    net = M.fastsal_c(weights=path)
    assert str(path.resolve()) in net.weights_source
    expected = {k: v for k, v in reference.state_dict().items() if k.startswith("features.")}
    got = {k.removeprefix("backbone.body."): v for k, v in net.encoder.state_dict().items()}
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    # the pretrained encoder of C transfers to A (the official fine-tuning of A)
    a = M.fastsal_a()
    a.encoder.load_state_dict(net.encoder.state_dict())
    last = a.encoder.backbone.body.get_submodule("features.18.0")
    assert torch.equal(last.weight, reference.features[18][0].weight)

    wrong = tmp_path / "not_mobilenet.pth"
    torch.save({"features.0.0.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(BackboneWeightsError, match="missing keys") as err:
        M.fastsal_a(weights=wrong)
    assert "wrong shape" in str(err.value)
    with pytest.raises(FileNotFoundError):
        M.fastsal_c(weights=tmp_path / "absent.pth")


# --------------------------------------------------------------------------------------------
# SalGAN generator
# --------------------------------------------------------------------------------------------


def test_salgan_generator_structure_and_count():
    net = M.salgan_generator(seed=0)
    # independent count: torchvision's VGG-16 features[:30] + the decoder's convolutions by hand
    vgg = count_params(torchvision.models.vgg16(weights=None).features[:30])
    decoder_convs = [(512, 512)] * 6 + [(512, 256), (256, 256), (256, 256), (256, 128), (128, 128),
                                         (128, 64), (64, 64)]
    decoder = sum(_conv_params(i, o, 3) for i, o in decoder_convs) + _conv_params(64, 1, 1)
    assert (vgg, decoder) == (14_714_688, 17_072_321)
    assert count_params(net) == vgg + decoder == 31_787_009

    assert len(net) == 62 and isinstance(net[61], torch.nn.Sigmoid)
    assert all(isinstance(net[i], torch.nn.ReLU) for i in (*M.SALGAN_HINT_LAYERS, M.SALGAN_CODE_LAYER))
    hint_convs = [net[i - 1].out_channels for i in M.SALGAN_HINT_LAYERS]
    assert hint_convs == list(M.SALGAN_HINT_CHANNELS)
    assert sum(isinstance(m, torch.nn.Upsample) for m in net) == 4
    keys = list(net.state_dict())
    assert keys[0] == "0.weight" and keys[-1] == "60.bias"  # the official checkpoint's keys


def test_salgan_input_formats():
    x = torch.rand(1, 3, 4, 4)
    caffe = M.SalGANGenerator("caffe").normalize(x)
    bgr_mean = torch.tensor(M.CAFFE_BGR_MEAN).view(1, 3, 1, 1)
    torch.testing.assert_close(caffe, x[:, [2, 1, 0]] * 255 - bgr_mean)
    imagenet = M.SalGANGenerator("imagenet").normalize(x)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(imagenet, (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    with pytest.raises(ValueError, match="input_format"):
        M.SalGANGenerator("bgr")
    with pytest.raises(ValueError, match="multiples of 16"):
        M.SalGANGenerator()(torch.rand(1, 3, 24, 40))


def test_salgan_weights_from_local_files(tmp_path):
    torch.manual_seed(2)
    features = torchvision.models.vgg16(weights=None).features
    vgg_path = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, vgg_path)
    net = M.salgan_generator(vgg16_weights=vgg_path, input_format="imagenet")
    assert torch.equal(net[28].weight, features[28].weight) and "VGG-16" in net.weights_source

    # a whole generator, wrapped like the official checkpoint ({"state_dict": …})
    ckpt = tmp_path / "salgan.pt"
    torch.save({"state_dict": net.state_dict(), "epoch": torch.tensor(42)}, ckpt)
    loaded = M.salgan_generator(weights=ckpt)
    assert torch.equal(loaded[60].weight, net[60].weight) and str(ckpt) in loaded.weights_source

    wrong = tmp_path / "wrong.pt"
    torch.save({"state_dict": {"0.weight": torch.zeros(1)}}, wrong)
    with pytest.raises(BackboneWeightsError, match="missing keys"):
        M.salgan_generator(weights=wrong)


# --------------------------------------------------------------------------------------------
# post-processing
# --------------------------------------------------------------------------------------------


def test_blur_equals_opencv():
    cv2 = pytest.importorskip("cv2")
    torch.manual_seed(3)
    x = torch.rand(12, 17)
    expected = torch.from_numpy(cv2.GaussianBlur(x.numpy(), (5, 5), 0))
    torch.testing.assert_close(M.opencv_blur_5x5(x), expected, rtol=1e-5, atol=1e-6)


def test_postprocess_follows_the_official_steps():
    torch.manual_seed(4)
    logits = torch.randn(24, 32) * 3
    p = torch.sigmoid(logits)
    p = (p - p.min()) / (p.max() - p.min())
    expected = M.opencv_blur_5x5(p).clamp(0, 1)
    out = M.fastsal_postprocess(logits)
    torch.testing.assert_close(out, expected)
    assert out.shape == (24, 32) and float(out.min()) >= 0 and float(out.max()) <= 1

    batch = M.fastsal_postprocess(torch.stack([logits, torch.zeros(24, 32)])[:, None])
    assert batch.shape == (2, 1, 24, 32)
    torch.testing.assert_close(batch[0, 0], expected)
    assert _max_abs(batch[1]) == 0.0  # a constant map becomes zeros

    resized = M.fastsal_postprocess(logits, size=(48, 64))  # official order: resize first
    assert resized.shape == (48, 64) and abs(float(resized.max()) - 1.0) < 0.1


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


def test_registry():
    for name, builder in [("fastsal_c", M.fastsal_c), ("fastsal_a", M.fastsal_a),
                          ("salgan_generator", M.salgan_generator)]:
        assert models.get_builder(name) is builder
        assert models.family_of(name) == "fastsal"
    assert models.list_models(family="fastsal") == ["fastsal_a", "fastsal_a_lite0", "fastsal_c", "fastsal_c_lite0",
                                                   "salgan_generator"]
    assert isinstance(models.create("fastsal_c", seed=0), M.FastSalC)


# --------------------------------------------------------------------------------------------
# the book's teacher (salbook.models.teacher)
# --------------------------------------------------------------------------------------------


def test_teacher_hints_match_fastsal_c_and_cost_ten_times_more(net_c):
    teacher = models.create("fastsal_teacher", weights=None, seed=0).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        logits, hints = teacher.forward_with_hints(x)
        student = net_c.hints(x)
    assert logits.shape == (1, 1, 64, 96)
    assert [h.shape for h in hints] == [s.shape for s in student]
    assert count_params(teacher) == 14_747_137
    macs = flops(teacher, (192, 256)).macs
    assert macs == 7_632_480_768 and macs >= 10 * flops(net_c, (192, 256)).macs
    with pytest.raises(ValueError, match="multiples of 32"):
        teacher(torch.rand(1, 3, 48, 64))


def test_salgan_shaped_on_mobilenet_v2_has_the_same_hint_widths():
    net = models.create("salgan_shaped", backbone="mobilenet_v2", seed=0).eval()
    with torch.no_grad():
        hints = net.hints(torch.rand(1, 3, 64, 64))
    assert [h.shape[1] for h in hints] == [128, 256, 512, 512]
    with pytest.raises(ValueError, match="backbone must be"):
        models.create("salgan_shaped", backbone="vgg16")


# --------------------------------------------------------------------------------------------
# the EfficientNet-Lite0 variant (the book's pretrained stand-in for ImageNet MobileNetV2)
# --------------------------------------------------------------------------------------------


def test_lite0_variant_counts_blocks_and_pretrained_encoder():
    """Counts by hand; the four blocks rebuilt from timm's Lite0 run block by block; its ImageNet weights."""
    import timm

    from salbook.models.backbones import efficientnet_lite0

    net_c, net_a = M.fastsal_c_lite0(seed=0).eval(), M.fastsal_a_lite0(seed=0).eval()
    lite0 = efficientnet_lite0().eval()  # the packaged ImageNet classifier
    encoder = count_params(lite0) - count_params(lite0.classifier)
    assert count_params(net_c.encoder) == encoder == 3_371_008
    assert net_c.encoder.block_channels == M.LITE0_BLOCK_CHANNELS == (28, 20, 144, 592)
    adapters_c = sum(_conv_params(c, w, 1) for c, w in zip(M.LITE0_BLOCK_CHANNELS, M.C_ADAPTER_WIDTHS))
    assert count_params(net_c) == encoder + adapters_c + _conv_params(1408 // 4, 1, 3) == 3_761_121
    adapters_a = sum(_conv_params(c, w, 1) for c, w in zip(M.LITE0_BLOCK_CHANNELS, M.A_ADAPTER_WIDTHS))
    assert count_params(net_a) == encoder + adapters_a + 1_137_504 + 19 == 4_831_611
    assert "ImageNet" in net_a.weights_source and "random init" in M.fastsal_a_lite0(weights=None, seed=0).weights_source
    assert flops(net_a, (192, 256)).macs == 728_492_544  # a tenth of the teacher's 7.63 G is 0.763 G

    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        y, outs = net_c.encoder.normalize(x), []
        y = lite0.bn1(lite0.conv_stem(y))
        for stage in lite0.blocks:
            for block in stage:
                y = block(y)
                outs.append(y)
        outs.append(lite0.bn2(lite0.conv_head(y)))
        ps = F.pixel_shuffle
        expected = [torch.cat([outs[0], ps(torch.cat(outs[1:3], 1), 2)], 1), ps(torch.cat(outs[3:5], 1), 2),
                    ps(torch.cat(outs[5:11], 1), 2), ps(torch.cat(outs[11:17], 1), 2)]
        blocks = net_c.encoder(net_c.encoder.normalize(x))
        assert net_a(x).shape == (2, 1, 64, 96)
    assert [tuple(b.shape[1:]) for b in blocks] == [(28, 32, 48), (20, 16, 24), (144, 8, 12), (592, 4, 6)]
    for got, want in zip(blocks, expected):
        torch.testing.assert_close(got, want)
    assert isinstance(lite0, timm.models.efficientnet.EfficientNet)
    with pytest.raises(ValueError, match="unknown FastSal encoder"):
        M.MultiScaleEncoder(backbone="resnet50")


def test_density_postprocess_reads_out_the_softmax():
    """Shift-invariant (a softmax), equal to min-max-and-blur of exp(z); the sigmoid read-out is not shift-invariant."""
    z = torch.randn(2, 1, 24, 32) * 3
    d = M.fastsal_density_postprocess(z)
    torch.testing.assert_close(d, M.fastsal_density_postprocess(z + 5.0), atol=1e-5, rtol=0)
    e = torch.exp(z - z.amax(dim=(-2, -1), keepdim=True))
    torch.testing.assert_close(d, M.fastsal_postprocess(torch.logit(e.clamp(1e-7, 1 - 1e-7))), atol=1e-4, rtol=0)
    assert float((M.fastsal_postprocess(z) - M.fastsal_postprocess(z + 5.0)).abs().max()) > 0.05
    assert d.shape == z.shape and float(d.min()) >= 0 and float(d.max()) <= 1
    assert M.fastsal_density_postprocess(z[0, 0], size=(48, 64)).shape == (48, 64)
    with pytest.raises(ValueError, match="… × h × w"):
        M.fastsal_density_postprocess(torch.randn(5))
