"""Tests for salbook.cost: parameter counts, FLOPs/MACs, sizes, activation memory, latency."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from salbook.cost import (
    count_params,
    flops,
    latency,
    matmul_peak_gflops,
    peak_activation_memory,
    cost_summary,
    cost_table,
    state_dict_bytes,
    throughput,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def conv_relu_conv(inplace: bool = False) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=inplace), nn.Conv2d(8, 4, 3, padding=1))


def test_count_params_by_hand():
    model = conv_relu_conv()
    assert count_params(model) == (3 * 8 * 9 + 8) + (8 * 4 * 9 + 4)  # 224 + 292
    shared = nn.Linear(5, 5)
    tied = nn.Sequential(shared, nn.ReLU(), shared)  # the same weights used twice count once
    assert count_params(tied) == 30
    bn = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4))
    assert count_params(bn) == 12 + 8  # running mean/var are buffers, not parameters
    bn[0].weight.requires_grad_(False)
    assert count_params(bn, trainable_only=True) == 8
    with pytest.raises(TypeError, match="nn.Module"):
        count_params(torch.zeros(3))


def test_flops_of_a_conv_and_a_linear_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    count = flops(conv, (3, 16, 16), batch=2)
    macs = 2 * 8 * 16 * 16 * (3 * 3 * 3)  # batch × outputs × (C_in × k × k); the bias is not counted
    assert count.macs == macs and count.flops == 2 * macs
    assert count.input_shape == (2, 3, 16, 16)
    assert flops(conv, (16, 16)).macs == macs // 2  # (H, W) means C = 3, batch 1

    depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    assert flops(depthwise, (4, 8, 8)).macs == 4 * 8 * 8 * 9  # each output sees one input channel

    mlp = nn.Sequential(nn.Flatten(), nn.Linear(48, 5), nn.ReLU(), nn.Linear(5, 2))
    count = flops(mlp, (3, 4, 4))
    assert count.macs == 48 * 5 + 5 * 2  # ReLU, flatten and biases are free
    assert count.by_module == {"": 2 * 250, "1": 2 * 240, "3": 2 * 10}
    assert count.gflops == pytest.approx(500e-9) and count.gmacs == pytest.approx(250e-9)


def test_mobilenet_v2_params_and_macs():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.mobilenet_v2(weights=None)
    assert count_params(model) == 3_504_872  # torchvision's documented number

    count = flops(model, (224, 224))
    # Independent count: MACs of every Conv2d / Linear from forward hooks.
    hand = []

    def conv_hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1]
        hand.append(output.numel() * module.in_channels // module.groups * k)

    def linear_hook(module, inputs, output):
        hand.append(output.numel() * module.in_features)

    handles = [
        m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    with torch.inference_mode():
        model.eval()(torch.zeros(1, 3, 224, 224))
    for h in handles:
        h.remove()
    assert count.macs == sum(hand) == 300_774_272
    assert count.flops == 2 * count.macs
    # MobileNetV2 paper (Sandler et al. 2018, Table 4): "300M" multiply-adds. The paper rounds to
    # 3 significant figures (±0.17%) and some counts leave out the 1.28M-MAC classifier
    # (0.43%), so 1% tolerance separates "same convention" from "FLOPs vs MACs" (a factor of 2).
    assert count.gmacs == pytest.approx(0.300, rel=0.01)
    # The classifier and the feature extractor partition the total.
    assert count.by_module["features"] + count.by_module["classifier"] == count.flops
    table = count.table(depth=1)
    assert list(table["module"]) == ["(model)", "features", "classifier"]
    assert table["share"].iloc[1:].sum() == pytest.approx(1.0)


def test_state_dict_bytes_is_close_to_four_bytes_per_value():
    model = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64))
    values = sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
    size = state_dict_bytes(model)
    assert 4 * values < size < 4 * values + 10_000  # float32 payload + zip/pickle overhead


def test_peak_activation_memory_counts_live_tensors():
    # 3×32×32 input; conv1 -> 8×32×32 (32 KiB), ReLU -> another 32 KiB while conv1's output is
    # still referenced; conv2 -> 4×32×32 (16 KiB). Peak: both 8-channel maps alive at once.
    plane = 32 * 32 * 4  # bytes of one float32 channel
    assert peak_activation_memory(conv_relu_conv(), (32, 32)) == 16 * plane
    # With an in-place ReLU only one 8-channel map exists: peak = 8 + 4 channels.
    assert peak_activation_memory(conv_relu_conv(inplace=True), (32, 32)) == 12 * plane
    # Linear in the batch size.
    assert peak_activation_memory(conv_relu_conv(), (32, 32), batch=3) == 3 * 16 * plane


def test_latency_quantiles_and_threads():
    model = conv_relu_conv().train()
    before = torch.get_num_threads()
    lat = latency(model, (32, 32), runs=30, warmup=2, threads=1)
    assert lat.runs == 30 and lat.threads == 1 and lat.device == "cpu" and lat.batch == 1
    assert 0 < lat.q1_ms <= lat.median_ms <= lat.q3_ms
    assert lat.iqr_ms == pytest.approx(lat.q3_ms - lat.q1_ms)
    assert torch.get_num_threads() == before  # restored
    assert model.training  # the caller's train/eval flag is restored
    assert throughput(model, (32, 32), batch=4, runs=3) > 0
    with pytest.raises(ValueError, match="runs >= 1"):
        latency(model, (32, 32), runs=0)
    with pytest.raises(ValueError, match="batch dimension"):
        latency(model, (1, 3, 32, 32))


def test_cost_table_rows():
    models = {"small": conv_relu_conv(), "inplace": conv_relu_conv(inplace=True)}
    table = cost_table(models, (3, 32, 32), latency_runs=30, throughput_batch=4)
    assert list(table.index) == ["small", "inplace"]
    row = table.loc["small"]
    assert row["params"] == 516 and row["MParams"] == pytest.approx(516e-6)
    assert row["GFLOPs"] == pytest.approx(2 * row["GMACs"])
    assert row["GMACs"] == pytest.approx(32 * 32 * (8 * 27 + 4 * 72) / 1e9)
    assert row["peak_activation_MB"] == pytest.approx(16 * 32 * 32 * 4 / 1e6)
    assert row["cpu_ms_median"] > 0 and row["cpu_ms_iqr"] >= 0 and row["throughput_img_s"] > 0
    assert row["input"] == "3×32×32" and row["threads"] >= 1
    if not torch.cuda.is_available():
        assert math.isnan(row["gpu_ms_median"])
    single = cost_summary(conv_relu_conv(), (32, 32), latency_runs=30, gpu=False)
    assert single["name"] == "Sequential" and math.isnan(single["gpu_ms_median"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_latency_and_memory_leave_the_model_on_cpu():
    model = conv_relu_conv()
    lat = latency(model, (32, 32), device="cuda", runs=30)
    assert lat.device.startswith("cuda") and 0 < lat.q1_ms <= lat.median_ms <= lat.q3_ms
    # the CUDA caching allocator rounds blocks up and cuDNN may add a workspace: never less
    cpu_peak = peak_activation_memory(model, (32, 32))
    assert peak_activation_memory(model, (32, 32), device="cuda") >= cpu_peak
    row = cost_summary(model, (32, 32), latency_runs=30, throughput_batch=4)
    assert row["gpu_ms_median"] > 0
    assert next(model.parameters()).device.type == "cpu"


def test_train_step_seconds_times_a_full_step_and_updates_the_model():
    from salbook.cost import train_step_seconds

    built = []

    def build():
        torch.manual_seed(0)
        built.append(conv_relu_conv())
        return built[-1]

    batch = {"image": torch.rand(2, 3, 16, 16)}
    before = [p.detach().clone() for p in build().parameters()]
    seconds = train_step_seconds(build, lambda out, b: out.square().mean(), lambda ps: torch.optim.SGD(ps, lr=0.1),
                                 batch, repeats=2, threads=1)
    assert seconds > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, built[-1].parameters()))  # the steps really trained
    with pytest.raises(ValueError, match="repeats"):
        train_step_seconds(build, lambda o, b: o.sum(), lambda ps: torch.optim.SGD(ps, lr=0.1), batch, repeats=0)


def test_operator_profile_lists_the_convolution_and_adds_up():
    from salbook.cost import operator_profile

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.PReLU(8), nn.Conv2d(8, 1, 1))
    df = operator_profile(net, (16, 16), runs=2)
    assert list(df.columns) == ["operator", "self_ms", "calls", "share"]
    assert df.share.sum() == pytest.approx(1.0)
    assert df.self_ms.is_monotonic_decreasing and (df.self_ms > 0).all()
    assert df.operator.str.contains("conv").any() and df.operator.str.contains("prelu").any()
    assert net.training  # the caller's model keeps its mode
    with pytest.raises(ValueError, match="runs"):
        operator_profile(net, (16, 16), runs=0)


def test_matmul_peak_takes_the_faster_blas_and_restores_threads():
    before = torch.get_num_threads()
    r = matmul_peak_gflops(threads=1, n=128, warmup=1, runs=3)
    assert torch.get_num_threads() == before
    assert set(r["by_library"]) == {"torch", "numpy"} and r["library"] in r["by_library"]
    assert r["gflops_median"] == pytest.approx(max(r["by_library"].values()))
    assert r["gflops_best"] >= r["gflops_median"] > 0 and r["threads"] == 1 and r["n"] == 128
    assert r["median_ms"] == pytest.approx(2 * 128**3 / r["gflops_median"] / 1e6)
    with pytest.raises(ValueError, match="n must be"):
        matmul_peak_gflops(n=0)
