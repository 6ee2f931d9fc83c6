"""salbook.inference: batch-norm folding, channels-last, TorchScript, ONNX export and timing."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
import torch.nn.functional as F

from salbook import models
from salbook.inference import (
    ALL_INFERENCE_PATHS,
    INFERENCE_PATHS,
    ONNX_PATHS,
    OnnxRunner,
    OpenVinoRunner,
    compile_for_cpu,
    depth_to_space_as_conv_transpose,
    eval_copy,
    export_onnx,
    fold_batchnorm,
    inference_paths,
    interleaved_latency,
    jit_freeze,
    onnx_max_abs_diff,
    onnxruntime_op_times,
    prepare_for_inference,
    round_ratios,
    speed_table,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so folding has something to do."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


class _Net(nn.Module):
    """conv+bn in a Sequential, conv+bn called functionally, a residual conv whose output is read
    twice (its bn must not be folded), and a conv with an in-place ReLU before its bn (not folded)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.res_conv = nn.Conv2d(8, 8, 1)
        self.res_bn = nn.BatchNorm2d(8)
        self.relu_conv = nn.Conv2d(8, 8, 1)
        self.relu_bn = nn.BatchNorm2d(8)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = F.relu(self.bn(self.conv(x)))
        r = self.res_conv(x)
        x = self.res_bn(r) + r  # r is read twice: folding res_bn would change the sum
        y = F.relu(self.relu_conv(x), inplace=True)
        x = self.relu_bn(y)
        return self.head(x)


def test_fold_batchnorm_folds_only_safe_pairs_and_keeps_outputs():
    net = _randomise_bn(_Net())
    x = torch.rand(2, 3, 16, 20)
    folded, pairs = fold_batchnorm(net, x)
    assert sorted(pairs) == [("conv", "bn"), ("stem.0", "stem.1")]
    assert isinstance(folded.bn, nn.Identity) and isinstance(folded.stem[1], nn.Identity)
    assert isinstance(folded.res_bn, nn.BatchNorm2d) and isinstance(folded.relu_bn, nn.BatchNorm2d)
    assert folded.conv.bias is not None  # a bias-free conv gains the folded shift
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=0)
    assert isinstance(net.bn, nn.BatchNorm2d)  # the original is untouched


def test_eval_copy_keeps_a_feature_extractor_in_eval_mode():
    from torchvision.models.feature_extraction import create_feature_extractor

    torch.manual_seed(0)
    body = _randomise_bn(create_feature_extractor(
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), {"2": "out"})).eval()
    x = torch.rand(2, 3, 8, 8)
    import copy

    assert copy.deepcopy(body).training  # the fx rebuild this helper exists for
    clone = eval_copy(body)
    assert not any(m.training for m in clone.modules())
    with torch.no_grad():
        torch.testing.assert_close(clone(x)["out"], body(x)["out"])
    folded, pairs = fold_batchnorm(body, x)
    assert pairs and not any(m.training for m in folded.modules())


@pytest.mark.parametrize("name", ["compact", "fastsal_c"])
def test_prepare_for_inference_on_book_models(name):
    torch.manual_seed(0)
    model = _randomise_bn(models.create(name))
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    x = torch.rand(1, 3, 96, 96)
    prepared = prepare_for_inference(model, example=x)
    left = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in prepared.modules())
    assert n_bn > 0 and left == 0, f"{left} of {n_bn} batch norms left in {name}"
    assert not prepared.training and not any(p.requires_grad for p in prepared.parameters())
    with torch.no_grad():
        ref = model(x)
        torch.testing.assert_close(prepared(x), ref, atol=1e-5, rtol=1e-5)
        cl = prepare_for_inference(model, channels_last=True, example=x)
        out = cl(x)
    assert out.is_contiguous()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_prepare_for_inference_without_example_probes_a_size():
    model = _randomise_bn(models.create("pan_shallow_bn"))  # fixed 96 x 96 input
    prepared = prepare_for_inference(model)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in prepared.modules()) == 0


def test_folding_that_would_change_outputs_is_refused():
    class Doubling(nn.Conv2d):  # forward not linear in the weight as torch's is: w**2
        def forward(self, x):
            return self._conv_forward(x, self.weight ** 2, self.bias)

    net = _randomise_bn(nn.Sequential(Doubling(3, 4, 3), nn.BatchNorm2d(4)))
    x = torch.rand(1, 3, 8, 8)
    folded, pairs = fold_batchnorm(net, x)
    assert pairs == []
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x))


def test_jit_freeze_matches_eager():
    net = _randomise_bn(_Net())
    x = torch.rand(1, 3, 16, 16)
    frozen = jit_freeze(net, x)
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), net(x), atol=1e-5, rtol=1e-5)


def test_export_onnx_dynamic_batch_runner_and_diff(tmp_path):
    import onnx

    net = _randomise_bn(_Net())
    x = torch.rand(1, 3, 16, 16)
    diff = onnx_max_abs_diff(net, x, tmp_path / "sub" / "net.onnx")  # exports (export_onnx) and keeps the file
    assert 0 <= diff <= 1e-4
    path = tmp_path / "sub" / "net.onnx"
    assert path.is_file() and sorted(p.name for p in path.parent.iterdir()) == ["net.onnx"]  # no temp files
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 16, 16]
    runner = OnnxRunner(path, threads=1)
    x3 = torch.rand(3, 3, 16, 16)
    out = runner(x3)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 1, 16, 16)
    with torch.no_grad():
        assert float((out - net(x3)).abs().max()) <= 1e-4
    sleeping = OnnxRunner(path, threads=2, spinning=False)  # idle threads sleep: same arithmetic
    assert sleeping.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert torch.equal(sleeping(x3), out)


def test_export_onnx_with_the_dynamo_exporter(tmp_path):
    net = _randomise_bn(_Net())
    x = torch.rand(1, 3, 8, 8)
    path = export_onnx(net, x, tmp_path / "d.onnx", exporter="dynamo")
    with torch.no_grad():
        assert float((OnnxRunner(path)(torch.cat([x, x])) - net(torch.cat([x, x]))).abs().max()) <= 1e-4
    with pytest.raises(ValueError, match="exporter"):
        export_onnx(net, x, tmp_path / "e.onnx", exporter="tflite")


def test_export_onnx_failure_leaves_no_file(tmp_path):
    class Unexportable(nn.Module):
        def forward(self, x):
            if torch.compiler.is_exporting() or torch.jit.is_tracing():  # both exporters fail
                raise NotImplementedError("no graph for you")
            return x

    target = tmp_path / "bad.onnx"
    with pytest.raises(RuntimeError, match="ONNX export"):
        export_onnx(Unexportable(), torch.rand(1, 3, 4, 4), target)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
                    reason="torch.compile on the CPU needs a C++ compiler, and this machine has none")
def test_compiled_path_matches_eager():
    net = _randomise_bn(_Net())
    x = torch.rand(1, 3, 16, 16)
    from torch._dynamo.utils import counters

    ambient = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        before = counters["stats"]["unique_graphs"]
        df = inference_paths(net, x, threads=(1,), paths=("eager", "compiled"), warmup=1, runs=2)
        # compiled, checked and timed at one thread: one graph (Dynamo guards on the thread count)
        assert counters["stats"]["unique_graphs"] == before + 1
    finally:
        torch.set_num_threads(ambient)
    assert list(df.path) == ["eager", "compiled"]
    assert df.max_abs_diff.iloc[1] <= 1e-4 and df.median_ms.iloc[1] > 0

    compiled = compile_for_cpu(net, x)
    graphs = counters["stats"]["unique_graphs"]
    with torch.inference_mode():  # how salbook.cost.latency calls it: no second graph for this mode
        torch.testing.assert_close(compiled(x), net.eval()(x), atol=1e-4, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), net.eval()(x), atol=1e-4, rtol=0)
    assert counters["stats"]["unique_graphs"] == graphs
    with torch.no_grad():
        assert compiled(torch.rand(2, 3, 16, 16)).shape[0] == 2  # a new shape compiles again


def test_onnx_runner_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        OnnxRunner(tmp_path / "none.onnx")


def test_inference_paths_table():
    net = _randomise_bn(_Net())
    x = torch.rand(1, 3, 16, 16)
    df = inference_paths(net, x, threads=(1, 2), warmup=1, runs=3)
    assert list(df.path) == list(INFERENCE_PATHS) * 2 and list(df.threads) == [1] * 5 + [2] * 5
    assert (df.median_ms > 0).all() and (df.iqr_ms >= 0).all()
    assert (df.max_abs_diff <= 1e-4).all()
    assert (df[df.path == "eager"].speedup == 1).all()
    with pytest.raises(ValueError, match="unknown inference path"):
        inference_paths(net, x, paths=("eager", "tensorrt"))


def test_inference_paths_times_a_fixed_shape_onnx_graph_by_default(tmp_path):
    import onnx

    net, x = _randomise_bn(_Net()), torch.rand(1, 3, 16, 16)

    def batch_dim(static: bool):
        path = tmp_path / f"static{static}.onnx"
        inference_paths(net, x, threads=(1,), paths=("onnxruntime",), runs=1, warmup=0, onnx_path=path,
                        static_shape=static)
        return onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]

    assert batch_dim(True).dim_value == 1  # ONNX Runtime can fold the shape arithmetic into constants
    assert batch_dim(False).dim_param == "batch"


_CALLS: list[str] = []


class _Logged(nn.Module):
    """Appends its name to the module-level ``_CALLS`` on every call (survives the deep copy)."""

    def __init__(self, name: str, width: int = 4, depth: int = 1) -> None:
        super().__init__()
        self.name = name
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1),
                                  *[nn.Conv2d(width, width, 3, padding=1) for _ in range(depth - 1)])

    def forward(self, x):
        _CALLS.append(self.name)
        return self.body(x)


def test_interleaved_latency_alternates_models_and_ranks_them():
    _CALLS.clear()
    nets = {"small": _Logged("small"), "large": _Logged("large", width=64, depth=8)}
    x = torch.rand(1, 3, 32, 32)
    df = interleaved_latency(nets, x, paths=("eager",), rounds=3, runs=2, warmup=1, progress=False)
    timed = _CALLS[-12:]  # 3 rounds × 2 models × 2 runs, after one reference call and one warm-up each
    assert timed == ["small", "small", "large", "large"] * 3
    rows = df.set_index("model")
    assert list(df.columns) == ["model", "path", "threads", "median_ms", "q1_ms", "q3_ms", "iqr_ms",
                                "round_spread", "round_ms", "max_abs_diff"]
    assert rows.loc["large", "median_ms"] > 3 * rows.loc["small", "median_ms"]  # ~60× the MACs
    assert all(len(r) == 3 for r in df.round_ms)
    assert all(large > small for large, small in zip(rows.loc["large", "round_ms"], rows.loc["small", "round_ms"]))
    assert (df.round_spread >= 1).all() and (df.max_abs_diff == 0).all()


def test_round_ratios_pairs_the_rounds_and_checks_its_input():
    timing = pd.DataFrame({"model": ["a", "b", "a", "b"], "path": ["eager", "eager", "onnxruntime", "onnxruntime"],
                           "round_ms": [[2.0, 6.0, 3.0], [1.0, 4.0, 3.0], [1.0], [1.0]]})
    eager = timing[timing.path == "eager"]
    np.testing.assert_allclose(round_ratios(eager, "a", "b"), [2.0, 1.5, 1.0])
    np.testing.assert_allclose(round_ratios(eager, "b", "a", scale=2.0), [1.0, 4 / 3, 2.0])
    with pytest.raises(ValueError, match="one path"):
        round_ratios(timing, "a", "b")
    with pytest.raises(KeyError, match="'c'"):
        round_ratios(eager, "a", "c")


def test_interleaved_latency_onnx_matches_eager_and_checks_arguments():
    nets = {"net": _randomise_bn(_Net())}
    x = torch.rand(1, 3, 16, 16)
    df = interleaved_latency(nets, x, rounds=2, runs=2, warmup=0, progress=False)
    assert list(df.path) == ["eager", "onnxruntime"] and (df.median_ms > 0).all()
    assert float(df.max_abs_diff.max()) < 1e-4
    quiet = interleaved_latency(nets, x, ("onnxruntime",), threads=2, rounds=1, runs=2, warmup=0, progress=False)
    assert len(quiet.round_ms[0]) == 1 and float(quiet.max_abs_diff.max()) < 1e-4
    with pytest.raises(ValueError, match="rounds >= 1"):
        interleaved_latency(nets, x, rounds=0)
    with pytest.raises(ValueError, match="nets is empty"):
        interleaved_latency({}, x)
    with pytest.raises(ValueError, match="unknown inference path"):
        interleaved_latency(nets, x, paths=("tensorrt",))


def test_speed_table_prepares_reports_failures_and_derives_rates(monkeypatch):
    import salbook.inference as inference
    from salbook.cost import flops

    def prepare(net: nn.Module) -> nn.Module | None:  # a "prepared" form of _Net with equal outputs
        return nn.Sequential(net, nn.Identity()) if isinstance(net, _Net) else None

    nets = {"net": _randomise_bn(_Net()), "plain": nn.Conv2d(3, 1, 3)}
    df = speed_table(nets, (16, 16), threads=(1,), paths=("eager", "folded"), runs=2, warmup=1, prepare=prepare)
    net_rows = df[df.model == "net"].set_index("path")
    assert list(net_rows.index) == ["as built", "eager", "folded"]  # prepared: the original is timed too
    assert (net_rows.max_abs_diff <= 1e-4).all() and net_rows.loc["as built", "speedup"] == 1
    macs = flops(nets["net"], (16, 16)).macs
    assert net_rows.gmacs.eq(macs / 1e9).all() and (net_rows.error == "").all()
    row = net_rows.loc["folded"]
    assert row.fps == pytest.approx(1e3 / row.median_ms)
    assert row.gflops_per_s == pytest.approx(2 * macs / 1e9 / (row.median_ms / 1e3))
    assert row.speedup == pytest.approx(net_rows.loc["as built", "median_ms"] / row.median_ms)
    plain = df[df.model == "plain"].set_index("path")
    assert list(plain.index) == ["eager", "folded"] and plain.loc["eager", "speedup"] == 1  # no "as built"

    def broken_export(*_a, **_k):
        raise RuntimeError("exporter says no\nsecond line")

    monkeypatch.setattr(inference, "export_onnx", broken_export)
    df = speed_table({"plain": nets["plain"]}, (16, 16), threads=(1, 2), paths=("eager", "onnxruntime"), runs=2,
                     warmup=1)
    failed = df[df.path == "onnxruntime"]
    assert len(failed) == 2 and failed.median_ms.isna().all()
    assert (failed.error == "RuntimeError: exporter says no").all()  # reported in the table, not raised
    assert (df[df.path == "eager"].median_ms > 0).all()
    with pytest.raises(ValueError, match="unknown inference path"):
        speed_table(nets, (16, 16), paths=("tensorrt",))
    with pytest.raises(ValueError, match="at least one"):
        speed_table({}, (16, 16))

def _calibrated(model: nn.Module, x: torch.Tensor, bn_stats: bool) -> nn.Module:
    """A fresh book model made non-trivial: zero-initialised tensors (read-outs) given small random
    values; with ``bn_stats`` the batch-norm statistics are measured on ``x`` (CSNet's ×100
    convolutions overflow with the default ones). Not for pretrained backbones: statistics of two
    random images make them ill-conditioned (float32 itself then moves the output by > 1e-4)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.add_(0.01 * torch.randn_like(p))
        if bn_stats:
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = None  # cumulative average: one pass sets the statistics
            model.train()(x)
    return model.eval()


@pytest.mark.parametrize("name, size", [("compact", (48, 64)), ("fastsal_a", (64, 96)), ("mlnet_lite0", (64, 96)),
                                        ("csnet_x1", (32, 32))])
def test_book_architectures_export_to_onnx_within_1e4(name, size):
    x = torch.rand(16, 3, *size, generator=torch.Generator().manual_seed(0))
    model = _calibrated(models.create(name), x, bn_stats=name.startswith("csnet"))
    with torch.no_grad():
        out = model(x[:1])
    assert torch.isfinite(out).all() and float(out.abs().max()) > 0
    assert onnx_max_abs_diff(model, x[:1]) <= 1e-4


class _Shuffler(nn.Module):
    """Convolutions around PixelShuffle(3) and PixelShuffle(2), the second after a bilinear resize to a
    size read from the input's shape (FastSal (C)'s merger: the channel count then reaches the shuffle
    only through shape arithmetic in the graph)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(3, 36, 3, padding=1), nn.PixelShuffle(3), nn.ReLU(), nn.Conv2d(4, 8, 1))
        self.tail = nn.Sequential(nn.PixelShuffle(2), nn.Conv2d(2, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(x)
        y = F.interpolate(y, size=(x.shape[2] * 6, x.shape[3] * 6), mode="bilinear", align_corners=True)
        return self.tail(y)


def _op_types(path) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_depth_to_space_rewrite_gives_identical_outputs(tmp_path):
    import numpy as np

    net, x = _Shuffler().eval(), torch.rand(2, 3, 8, 12)
    src = export_onnx(net, x, tmp_path / "shuffler.onnx")
    dst = depth_to_space_as_conv_transpose(src)
    assert dst == tmp_path / "shuffler.convt.onnx"
    assert _op_types(src).count("DepthToSpace") == 2
    assert "DepthToSpace" not in _op_types(dst) and _op_types(dst).count("ConvTranspose") == 2
    a, b = OnnxRunner(src)(x), OnnxRunner(dst)(x)
    assert a.shape == (2, 1, 96, 144)
    assert np.array_equal(a.numpy(), b.numpy())  # the one-hot weights move values, they do not round them
    with torch.no_grad():
        assert float((b - net(x)).abs().max()) < 1e-5


def test_depth_to_space_rewrite_leaves_dcr_mode_and_names_unknown_channels(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    def model(mode: str, channels: int | str):
        node = helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode)
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 3, 3])
        graph = helper.make_graph([node], "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        path = tmp_path / f"{mode}{channels}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
        return path

    kept = depth_to_space_as_conv_transpose(model("DCR", 8), tmp_path / "dcr_out.onnx")
    assert _op_types(kept) == ["DepthToSpace"]  # DCR's channels of one output are not adjacent: no group takes them
    with pytest.raises(ValueError, match="channel count is unknown"):
        depth_to_space_as_conv_transpose(model("CRD", "c"))
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        depth_to_space_as_conv_transpose(tmp_path / "missing.onnx")


def test_openvino_runner_matches_pytorch_and_checks_arguments(tmp_path):
    net, x = _randomise_bn(_Net()), torch.rand(2, 3, 16, 16)
    path = export_onnx(net, x, tmp_path / "net.onnx")
    for threads in (1, 2):
        got = OpenVinoRunner(path, threads=threads)(x)
        with torch.no_grad():
            assert got.shape == (2, 1, 16, 16) and float((got - net(x)).abs().max()) < 1e-4
    assert "threads=2" in repr(OpenVinoRunner(path, threads=2))
    with pytest.raises(ValueError, match="threads"):
        OpenVinoRunner(path, threads=0)
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        OpenVinoRunner(tmp_path / "missing.onnx")


def test_onnx_paths_share_one_export_and_match_eager(tmp_path):
    assert set(ONNX_PATHS) <= set(ALL_INFERENCE_PATHS) and not {"onnxruntime_convt", "openvino"} & set(INFERENCE_PATHS)
    net, x = _Shuffler().eval(), torch.rand(1, 3, 8, 8)
    path = tmp_path / "shared.onnx"
    df = inference_paths(net, x, threads=(1,), paths=ONNX_PATHS, runs=2, warmup=0, onnx_path=path)
    assert list(df.path) == list(ONNX_PATHS) and (df.median_ms > 0).all() and (df.max_abs_diff < 1e-5).all()
    assert path.is_file() and (tmp_path / "shared.convt.onnx").is_file()
    timed = interleaved_latency({"s": net}, x, ONNX_PATHS, rounds=1, runs=2, warmup=0, progress=False)
    assert list(timed.path) == list(ONNX_PATHS) and (timed.max_abs_diff < 1e-5).all()


def test_onnxruntime_op_times_splits_a_run_by_operator(tmp_path):
    net, x = _Shuffler().eval(), torch.rand(1, 3, 16, 16)
    src = export_onnx(net, x, tmp_path / "s.onnx")
    before = onnxruntime_op_times(src, x, runs=3, warmup=1)
    after = onnxruntime_op_times(depth_to_space_as_conv_transpose(src), x, runs=3, warmup=1)
    assert {"Conv", "DepthToSpace"} <= set(before.index) and "ConvTranspose" not in before.index
    assert "ConvTranspose" in after.index and "DepthToSpace" not in after.index
    assert (before >= 0).all() and before.iloc[0] == before.max()  # largest first
    with pytest.raises(ValueError, match="runs >= 1"):
        onnxruntime_op_times(src, x, runs=0)
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        onnxruntime_op_times(tmp_path / "missing.onnx", x)


def test_speed_table_times_the_onnx_paths_on_one_export_and_names_a_failing_one(monkeypatch):
    import math

    import salbook.inference as inference

    exports = []
    real_export = inference.export_onnx

    def counted_export(*a, **k):
        exports.append(1)
        return real_export(*a, **k)

    monkeypatch.setattr(inference, "export_onnx", counted_export)
    net = {"s": _Shuffler().eval()}
    df = speed_table(net, (8, 8), threads=(1, 2), paths=("eager", *ONNX_PATHS), runs=2, warmup=0)
    assert len(exports) == 1  # one export serves ONNX Runtime, the rewritten graph and OpenVINO
    assert list(df.path) == ["eager"] * 2 + [p for p in ONNX_PATHS for _ in (1, 2)]
    assert list(df.threads) == [1, 2] * 4 and (df.error == "").all() and (df.max_abs_diff < 1e-5).all()

    def no_openvino(*_a, **_k):
        raise RuntimeError("no CPU plugin here")

    monkeypatch.setattr(inference, "OpenVinoRunner", no_openvino)
    exports.clear()
    df = speed_table(net, (8, 8), threads=(1,), paths=ONNX_PATHS, runs=2, warmup=0).set_index("path")
    assert df.loc["openvino", "error"] == "RuntimeError: no CPU plugin here"
    assert math.isnan(df.loc["openvino", "median_ms"])
    assert df.loc[["onnxruntime", "onnxruntime_convt"], "median_ms"].gt(0).all()
    assert len(exports) == 4  # the shared attempt, then one export per path
