"""Making a trained model fast and portable (``salbook.inference``).

* :func:`prepare_for_inference` — eval mode, batch norm folded into the convolution before it,
  optionally channels-last memory format; the outputs equal the original's (to float rounding).
* :func:`jit_freeze` — a traced and frozen TorchScript module (constants folded).
* :func:`export_onnx` / :class:`OnnxRunner` / :func:`onnx_max_abs_diff` — an ONNX file (checked by
  the ``onnx`` package, written atomically) run in ONNX Runtime, and how far its outputs are from
  PyTorch's.
* :func:`depth_to_space_as_conv_transpose` — the same ONNX graph with every ``DepthToSpace``
  (PyTorch's ``PixelShuffle``) replaced by the equivalent grouped ``ConvTranspose``, which ONNX
  Runtime's CPU provider runs faster (FastSal (A)'s eight shuffles: 1.8 → 0.7 ms).
* :class:`OpenVinoRunner` — an ONNX file compiled by OpenVINO for the CPU (f32).
* :func:`onnxruntime_op_times` — where ONNX Runtime spends a run, per operator type (its profiler).
* :func:`inference_paths` — the latency of each of these ways of running the same network,
  measured with :mod:`salbook.cost`'s timing (median and IQR over repeated runs, threads pinned).
* :func:`speed_table` — :func:`inference_paths` for several named models, with their MACs, the
  time per MAC and the GFLOP/s they sustain (the run-time tables of chapters 4 to 7).

Shapes: every model takes an ``N × C × H × W`` float image batch and returns a tensor (saliency
models: ``N × 1 × h × w`` logits). ``example`` arguments are such a batch; its shape fixes the
traced / exported input size (the ONNX batch dimension can stay dynamic).

No function here changes the model it is given: it is deep-copied first.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = [
    "fold_batchnorm",
    "prepare_for_inference",
    "jit_freeze",
    "eval_copy",
    "export_onnx",
    "OnnxRunner",
    "OpenVinoRunner",
    "depth_to_space_as_conv_transpose",
    "onnxruntime_op_times",
    "onnx_max_abs_diff",
    "inference_paths",
    "interleaved_latency",
    "round_ratios",
    "speed_table",
    "INFERENCE_PATHS",
    "ALL_INFERENCE_PATHS",
    "compile_for_cpu",
    "DEFAULT_OPSET",
]

#: ONNX opset used by :func:`export_onnx` (the dynamo-based exporter needs >= 18).
DEFAULT_OPSET = 18

#: The ways :func:`inference_paths` can run a model by default.
INFERENCE_PATHS = ("eager", "folded", "channels_last", "jit", "onnxruntime")

#: The paths that run an exported ONNX file: ``onnxruntime`` (:class:`OnnxRunner`), ``onnxruntime_convt``
#: (the file rewritten by :func:`depth_to_space_as_conv_transpose`, then :class:`OnnxRunner`) and
#: ``openvino`` (:class:`OpenVinoRunner`).
ONNX_PATHS = ("onnxruntime", "onnxruntime_convt", "openvino")

#: Every path :func:`inference_paths` knows: the defaults, the other two ONNX runtimes and ``compiled``
#: (:func:`compile_for_cpu`), which is asked for by name because compiling takes tens of seconds per model
#: on a small CPU.
ALL_INFERENCE_PATHS = (*INFERENCE_PATHS, "onnxruntime_convt", "openvino", "compiled")

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def eval_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every submodule in eval mode.

    ``copy.deepcopy`` alone does not keep the mode: a ``torch.fx.GraphModule`` — what
    ``create_feature_extractor`` returns, so every backbone of this book — is rebuilt by its
    ``__deepcopy__`` with all its modules back in training mode, whatever the original's mode
    was. Batch norm then normalises with the batch's statistics (tested).
    """
    return copy.deepcopy(model).eval()


# --------------------------------------------------------------------------------------------
# batch-norm folding


def _find_conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """``(conv name, bn name)`` pairs where, in one forward pass on ``example``, the batch norm's
    input is exactly the convolution's output tensor and nothing else reads that tensor.

    Found by running the model once with forward hooks on convolutions and batch norms and a
    :class:`~torch.utils._python_dispatch.TorchDispatchMode` that counts how many aten operators
    read each convolution output. A convolution or batch norm called more than once (shared
    weights), a view / in-place op / residual branch between or beside them, excludes the pair,
    so folding never changes what the network computes.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    names = {m: n for n, m in model.named_modules()}
    calls: dict[str, int] = {}
    conv_out: dict[int, tuple[str, torch.Tensor]] = {}  # id(output) -> (conv name, output kept alive)
    reads: dict[int, int] = {}
    bn_in: dict[str, int] = {}  # bn name -> id of its input, a live convolution output

    def conv_hook(mod: nn.Module, _inp, out) -> None:
        name = names[mod]
        calls[name] = calls.get(name, 0) + 1
        if isinstance(out, torch.Tensor):
            conv_out[id(out)] = (name, out)
            reads[id(out)] = 0

    def bn_pre_hook(mod: nn.Module, inp) -> None:
        name = names[mod]
        calls[name] = calls.get(name, 0) + 1
        # matched now, while the input is alive (a freed tensor's id can be reused later)
        if inp and isinstance(inp[0], torch.Tensor) and id(inp[0]) in conv_out:
            bn_in[name] = id(inp[0])

    class _CountReads(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
            for item in tree_flatten((args, kwargs or {}))[0]:
                if isinstance(item, torch.Tensor) and id(item) in reads:
                    reads[id(item)] += 1
            return func(*args, **(kwargs or {}))

    hooks = []
    for module in model.modules():
        if isinstance(module, _CONVS):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            hooks.append(module.register_forward_pre_hook(bn_pre_hook))
    try:
        with torch.no_grad(), _CountReads():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    pairs = []
    for bn_name, tensor_id in bn_in.items():
        if tensor_id not in conv_out:
            continue
        conv_name = conv_out[tensor_id][0]
        if calls.get(conv_name) == 1 and calls.get(bn_name) == 1 and reads[tensor_id] == 1:
            pairs.append((conv_name, bn_name))
    return pairs


def _fold_into(conv: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold ``bn`` (eval statistics) into ``conv``'s weight and bias, in place."""
    with torch.no_grad():
        var, mean = bn.running_var, bn.running_mean
        scale = torch.rsqrt(var.double() + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.double()
        shift = -mean.double() * scale
        if bn.bias is not None:
            shift = shift + bn.bias.double()
        w = conv.weight
        new_w = w.double() * scale.reshape(-1, *([1] * (w.dim() - 1)))
        old_b = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        new_b = old_b * scale + shift
        conv.weight.copy_(new_w.to(w.dtype))
        if conv.bias is None:
            conv.bias = nn.Parameter(new_b.to(w.dtype), requires_grad=w.requires_grad)
        else:
            conv.bias.copy_(new_b.to(w.dtype))


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _after_bn(bn: nn.Module) -> nn.Module | None:
    """What replaces a folded batch norm: :class:`~torch.nn.Identity` for torch's own, the fused
    dropout + activation for timm's ``BatchNormAct2d`` (attributes ``drop`` and ``act``), and
    ``None`` (do not fold) for any other subclass that overrides ``forward``."""
    if type(bn).forward is nn.modules.batchnorm._BatchNorm.forward:
        return nn.Identity()
    drop, act = getattr(bn, "drop", None), getattr(bn, "act", None)
    if type(bn).__name__ == "BatchNormAct2d" and isinstance(drop, nn.Module) and isinstance(act, nn.Module):
        return nn.Sequential(drop, act)
    return None


def _standard_conv(module: nn.Module) -> bool:
    """Whether ``module``'s forward is torch's own convolution forward (not an override)."""
    return any(type(module).forward is cls.forward for cls in _CONVS)


def fold_batchnorm(model: nn.Module, example: torch.Tensor, *, rtol: float = 1e-4
                   ) -> tuple[nn.Module, list[tuple[str, str]]]:
    """A copy of ``model`` (eval mode) with every foldable batch norm merged into its convolution.

    A batch norm is folded when its input is a convolution's output that nothing else reads (see
    :func:`_find_conv_bn_pairs`); it becomes :class:`torch.nn.Identity` and the convolution gets
    ``W' = W·γ/√(σ²+ε)`` and ``b' = (b − μ)·γ/√(σ²+ε) + β`` (computed in float64). Batch norms
    without running statistics are left alone.

    The result is checked on ``example``: if its output differs from the original's by more than
    ``rtol × max(1, max|output|)`` (a convolution subclass whose forward is not linear in its
    weight, e.g.), folding is retried on torch's own convolution classes only, and if that fails
    too the unfolded copy is returned (with a warning).

    Returns the new model and the ``(conv, bn)`` names folded.
    """
    base = eval_copy(model)
    with torch.no_grad():
        ref = _first(base(example)).float()
    tol = rtol * max(1.0, float(ref.abs().max()))
    pairs = [
        (c, b)
        for c, b in _find_conv_bn_pairs(base, example)
        if base.get_submodule(b).running_mean is not None and base.get_submodule(b).running_var is not None
        and _after_bn(base.get_submodule(b)) is not None
    ]
    for keep in (lambda conv: True, _standard_conv):
        net = eval_copy(base)
        chosen = [(c, b) for c, b in pairs if keep(net.get_submodule(c))]
        for conv_name, bn_name in chosen:
            bn = net.get_submodule(bn_name)
            _fold_into(net.get_submodule(conv_name), bn)
            _replace(net, bn_name, _after_bn(bn))
        net.eval()  # the replacements are new modules, built in training mode
        with torch.no_grad():
            diff = float((_first(net(example)).float() - ref).abs().max())
        if diff <= tol:
            return net, chosen
    warnings.warn(f"folding batch norm changed {type(model).__name__}'s output by {diff:.3g} "
                  f"(> {tol:.3g}); returning it unfolded", RuntimeWarning, stacklevel=2)
    return base, []


class ChannelsLast(nn.Module):
    """Runs ``inner`` (weights in channels-last format) on a channels-last copy of the input and
    returns a contiguous (NCHW) output, so callers pass and receive ordinary tensors."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x.contiguous(memory_format=torch.channels_last))
        return out.contiguous()


#: Input sizes (H, W) tried, in order, when no example is given (Pan's fixed 96 × 96 first).
_PROBE_SIZES = ((96, 96), (64, 64), (192, 256), (224, 224), (240, 320))


def _default_example(model: nn.Module) -> torch.Tensor:
    """A random ``1 × 3 × H × W`` batch the model accepts (the first of :data:`_PROBE_SIZES`)."""
    device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
    net = eval_copy(model)
    for h, w in _PROBE_SIZES:
        x = torch.rand(1, 3, h, w, device=device)
        try:
            with torch.no_grad():
                net(x)
            return x
        except Exception:  # noqa: BLE001 - try the next size
            continue
    raise ValueError(f"{type(model).__name__} accepts none of the input sizes {_PROBE_SIZES}; "
                     "pass example=<a batch it accepts> to prepare_for_inference")


def prepare_for_inference(
    model: nn.Module,
    *,
    fold_bn: bool = True,
    channels_last: bool = False,
    example: torch.Tensor | None = None,
) -> nn.Module:
    """A copy of ``model`` ready for inference: eval mode, no gradients, batch norm folded.

    Args:
        model: any ``N × C × H × W`` image model; not modified.
        fold_bn: merge each batch norm that directly follows a convolution into it
            (:func:`fold_batchnorm`); outputs equal the original's to ~1e-6.
        channels_last: store weights in channels-last (NHWC) memory format and wrap the model in
            :class:`ChannelsLast`, which converts inputs and returns NCHW outputs.
        example: the input used to find which batch norms follow which convolutions
            (default: a random ``1 × 3 × 64 × 64`` batch; pass one the model accepts if it needs
            another size).

    Returns:
        The prepared module (``requires_grad`` off on every parameter).
    """
    if example is None:
        example = _default_example(model)
    if fold_bn:
        net, _ = fold_batchnorm(model, example)
    else:
        net = eval_copy(model)
    for p in net.parameters():
        p.requires_grad_(False)
    if channels_last:
        net = ChannelsLast(net).eval()
    return net


def jit_freeze(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """``torch.jit.freeze(torch.jit.trace(model, example))`` on an eval-mode copy.

    Tracing records the operations run on ``example``: shape-dependent Python branches are fixed
    to what that input took (the tracer's warnings about this are silenced; use an input of the
    size you will run). Freezing inlines the weights as constants and folds what it can
    (including conv + batch norm). TorchScript is deprecated in recent PyTorch, kept here as one
    of the measured paths.
    """
    net = eval_copy(model)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, example, check_trace=False)
        return torch.jit.freeze(traced)


# --------------------------------------------------------------------------------------------
# ONNX


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's progress prints and warnings."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | os.PathLike,
    *,
    dynamic_batch: bool = True,
    opset: int = DEFAULT_OPSET,
    exporter: str = "auto",
) -> Path:
    """Export ``model`` (eval-mode copy, on the CPU) to an ONNX file at ``path``.

    The graph is captured by ``torch.onnx.export`` for inputs shaped like ``example``; with
    ``dynamic_batch`` the batch dimension is symbolic (``"batch"``), ``C × H × W`` stay fixed.
    ``exporter``: ``"torchscript"`` (the tracing exporter, ``dynamo=False``), ``"dynamo"`` (the
    ``torch.export``-based one) or ``"auto"``: TorchScript first, the dynamo exporter if it fails.
    Both give graphs that ONNX Runtime runs to float rounding of PyTorch here; the TorchScript one
    exported FastSal (A) in about 1 s where the dynamo one took about 25 s on this book's 2-core CPU,
    which is what decides the default for a chapter that exports every model.
    The file is checked with ``onnx.checker.check_model`` and written atomically (a temporary
    file beside ``path``, renamed when complete). The input is named ``"image"``, the output
    ``"logits"``. Weights are stored inside the file (models < 2 GB).

    Returns ``path`` as a :class:`~pathlib.Path`.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = eval_copy(model).cpu()
    x = example.detach().cpu()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.onnx", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if exporter not in ("auto", "torchscript", "dynamo"):
            raise ValueError(f"exporter must be 'auto', 'torchscript' or 'dynamo', got {exporter!r}")
        order = {"auto": (False, True), "torchscript": (False,), "dynamo": (True,)}[exporter]
        errors = []
        for dynamo in order:
            try:
                with _quiet(), torch.no_grad():
                    if dynamo:
                        shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
                        # torch.export specialises a batch of 1 (0/1 specialisation): trace with 2
                        xd = torch.cat([x, x]) if dynamic_batch and x.shape[0] == 1 else x
                        torch.onnx.export(net, (xd,), str(tmp), dynamo=True, external_data=False,
                                          opset_version=opset, dynamic_shapes=shapes,
                                          input_names=["image"], output_names=["logits"])
                    else:
                        axes = {"image": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
                        torch.onnx.export(net, (x,), str(tmp), dynamo=False, opset_version=opset,
                                          dynamic_axes=axes, input_names=["image"], output_names=["logits"])
                break
            except Exception as err:  # noqa: BLE001 - try the other exporter, report both
                errors.append(f"{'dynamo' if dynamo else 'torchscript'} exporter: {type(err).__name__}: {err}")
        else:
            raise RuntimeError(f"ONNX export of {type(model).__name__} failed:\n" + "\n".join(errors))
        onnx.checker.check_model(str(tmp), full_check=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _onnx_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or :class:`FileNotFoundError` naming how to make one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX file at {path}; create one with salbook.inference.export_onnx")
    return path


class _OnnxFileRunner(nn.Module):
    """What the ONNX-file runners share: the checked file and thread count, a forward pass that copies
    the input to host memory and returns the outputs as CPU tensors (the first alone when there is one),
    and deep copies that share the compiled session (it cannot be copied). Subclasses implement
    :meth:`_run`."""

    def __init__(self, path: str | os.PathLike, threads: int) -> None:
        super().__init__()
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        self.path = _onnx_file(path)
        self.threads = int(threads)

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        outs = self._run(np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32))
        tensors = tuple(torch.from_numpy(np.asarray(o)) for o in outs)
        return tensors[0] if len(tensors) == 1 else tensors

    def __deepcopy__(self, memo: dict) -> "_OnnxFileRunner":  # compiled sessions cannot be copied; share it
        return self

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}, threads={self.threads}"


class OnnxRunner(_OnnxFileRunner):
    """An ONNX file run by ONNX Runtime, called like the PyTorch model it came from.

    ``runner(x)`` takes an ``N × C × H × W`` float tensor (any device; it is copied to host memory)
    and returns the first output as a CPU float tensor (a tuple if the graph has several outputs).
    It is an :class:`torch.nn.Module` without parameters so :mod:`salbook.cost`'s timing applies
    unchanged.

    Args:
        path: the ``.onnx`` file.
        threads: ONNX Runtime intra-op threads (inter-op: 1, sequential execution).
        providers: execution providers (default: CPU).
        spinning: let the idle intra-op threads spin-wait for the next run (ONNX Runtime's default,
            fastest for one session alone). ``False`` puts them to sleep: several sessions with more
            than one thread timed in turn then do not take the cores from each other.
        profile_prefix: turn ONNX Runtime's profiler on, writing to a JSON file with this path prefix
            (``runner.session.end_profiling()`` ends it and returns the file's name); see
            :func:`onnxruntime_op_times`.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1,
                 providers: Sequence[str] = ("CPUExecutionProvider",), spinning: bool = True,
                 profile_prefix: str | os.PathLike | None = None) -> None:
        super().__init__(path, threads)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if not spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if profile_prefix is not None:
            opts.enable_profiling = True
            opts.profile_file_prefix = str(profile_prefix)
        self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=list(providers))
        self.input_name = self.session.get_inputs()[0].name
        self.input_shape = self.session.get_inputs()[0].shape

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: x})


def depth_to_space_as_conv_transpose(src: str | os.PathLike, dst: str | os.PathLike | None = None) -> Path:
    """Rewrite every ``DepthToSpace`` of an ONNX file as the grouped ``ConvTranspose`` that equals it.

    ``DepthToSpace`` in ``CRD`` mode with block size ``r`` (what ``torch.onnx`` exports for
    ``nn.PixelShuffle(r)``) moves input channel ``r²·k + r·i + j`` at pixel ``(h, w)`` to output
    channel ``k`` at ``(r·h + i, r·w + j)``. A ``ConvTranspose`` with kernel and stride ``r``,
    ``groups = C / r²`` and a fixed one-hot weight ``W[r²·k + r·i + j, 0, i, j] = 1`` computes exactly
    that: each group sums its ``r²`` inputs, each through one non-zero tap (``r²`` multiply-adds per
    output element, all by 1.0 or 0.0, so for finite inputs the output is bit-for-bit the input's values).

    Why: ONNX Runtime's CPU ``DepthToSpace`` is a generic six-dimensional transpose (Eigen's
    ``shuffle``) on one thread. For FastSal (A) at 192 × 256 (eight PixelShuffles, two threads) its
    profiler (:func:`onnxruntime_op_times`) put 1.8 ms of an 11 ms run in ``DepthToSpace``, and 0.7 ms
    in the ``ConvTranspose`` nodes that replace them (measured while writing; chapter 4 measures it
    in its run). OpenVINO runs ``DepthToSpace`` well as it is; keep the original file for it.

    ``DCR``-mode nodes (``DepthToSpace``'s default, which PyTorch does not export) are left as they
    are: their input channels of one output channel are not adjacent, so no grouped convolution
    takes them. The channel count of each rewritten node's input must be known (ONNX shape inference
    on the file; the batch dimension may be symbolic).

    Args:
        src: the ONNX file (not changed).
        dst: where to write the rewritten file (atomically); ``None``: beside ``src`` as
            ``<name>.convt.onnx``.

    Returns:
        ``dst`` as a :class:`~pathlib.Path`.
    """
    import onnx
    from onnx import helper, numpy_helper, shape_inference

    from .utils import atomic_write_bytes

    src = _onnx_file(src)
    dst = src.with_name(src.stem + ".convt.onnx") if dst is None else Path(dst)
    model = shape_inference.infer_shapes(onnx.load(str(src)), data_prop=True)  # sizes computed in the graph too
    graph = model.graph
    channels = {}
    for info in (*graph.value_info, *graph.input):
        dims = info.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            channels[info.name] = dims[1].dim_value
    names = {t.name for t in graph.initializer} | {n for node in graph.node for n in node.output}
    nodes, weights = [], []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        mode = attrs.get("mode", b"DCR")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if node.op_type != "DepthToSpace" or node.domain not in ("", "ai.onnx") or mode != "CRD":
            nodes.append(node)
            continue
        r = int(attrs["blocksize"])
        c_in = channels.get(node.input[0])
        if c_in is None:
            raise ValueError(f"cannot rewrite DepthToSpace node {node.name!r}: its input's channel count is unknown "
                             "to ONNX shape inference; export with fixed C × H × W (export_onnx does)")
        groups = c_in // (r * r)
        weight = np.zeros((c_in, 1, r, r), dtype=np.float32)
        for k in range(groups):
            for i in range(r):
                for j in range(r):
                    weight[r * r * k + r * i + j, 0, i, j] = 1.0
        name = f"{node.name or node.output[0]}_as_convt_weight"
        while name in names:
            name += "_"
        names.add(name)
        weights.append(numpy_helper.from_array(weight, name))
        nodes.append(helper.make_node("ConvTranspose", [node.input[0], name], list(node.output),
                                      name=f"{node.name}_as_convt" if node.name else "", group=groups,
                                      kernel_shape=[r, r], strides=[r, r]))
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(weights)
    del graph.value_info[:]  # inferred above for the rewrite; the runtime infers its own
    onnx.checker.check_model(model)
    atomic_write_bytes(dst, model.SerializeToString())  # weights inline, as export_onnx writes them
    return dst


class OpenVinoRunner(_OnnxFileRunner):
    """An ONNX file compiled by OpenVINO for the CPU, called like the PyTorch model it came from.

    OpenVINO (Intel's inference runtime; its CPU plugin runs on any x86-64 or ARM CPU) keeps
    activations in blocked channel layouts through the whole graph, ``DepthToSpace`` included, where
    ONNX Runtime reorders around it. Compiled for latency (one stream), ``threads`` inference threads
    and **f32** arithmetic: on CPUs with bf16 or AMX units OpenVINO would otherwise pick bf16, and the
    timings would compare different arithmetic.

    ``runner(x)`` takes an ``N × C × H × W`` float tensor (any device; copied to host memory) and
    returns the first output as a CPU float tensor (a tuple if the graph has several outputs).
    Parameterless, so :mod:`salbook.cost`'s timing applies unchanged.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1) -> None:
        super().__init__(path, threads)
        try:
            import openvino as ov
        except ImportError as err:  # a declared dependency; a trimmed environment may lack it
            raise ImportError("the 'openvino' path needs the openvino package: pip install openvino") from err
        config = {"INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = ov.Core().compile_model(str(self.path), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        result = self.request.infer({0: x})
        return [np.array(result[out]) for out in self.compiled.outputs]  # copies: the request reuses its buffers


def onnxruntime_op_times(onnx_file: str | os.PathLike, example: torch.Tensor, threads: int = 1,
                         runs: int = 20, warmup: int = 3) -> "pandas.Series":  # noqa: F821
    """Milliseconds per run that ONNX Runtime spends in each operator type of ``onnx_file``.

    Runs the file ``warmup`` times, then ``runs`` times with ONNX Runtime's profiler on (the same
    session options as :class:`OnnxRunner`, so the operators are the optimised graph's: ``Conv``
    nodes fused with their activations and moved to the blocked ``NCHWc`` layout, and the
    ``ReorderInput`` / ``ReorderOutput`` nodes that move tensors into and out of it), and sums the
    profiler's per-node kernel times by operator type. The profiler adds a little time to every
    node, so the parts are for comparing with each other, not with :func:`salbook.cost.latency`.

    Returns a Series, operator type → ms per run, largest first; the profile file is deleted.
    """
    import json

    import pandas as pd

    if int(runs) < 1 or int(warmup) < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got {runs!r}, {warmup!r}")
    x = np.ascontiguousarray(example.detach().cpu().numpy(), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="salbook-ortprof-") as tmp:
        runner = OnnxRunner(onnx_file, threads=threads, profile_prefix=Path(tmp) / "profile")
        for _ in range(int(warmup) + int(runs)):
            runner.session.run(None, {runner.input_name: x})
        events = json.loads(Path(runner.session.end_profiling()).read_text())
    starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    first_timed = starts[int(warmup)]  # node events of the warm-up runs come before this
    times: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time") \
                and event["ts"] >= first_timed:
            op = event.get("args", {}).get("op_name", "?")
            times[op] = times.get(op, 0.0) + event["dur"] / 1e3 / int(runs)
    return pd.Series(times, name="ms per run", dtype=float).sort_values(ascending=False)


def _onnx_runner(path: str, onnx_file: str | os.PathLike, threads: int, *, spinning: bool = True) -> nn.Module:
    """The runner of ONNX path ``path`` (one of :data:`ONNX_PATHS`) for an exported ``onnx_file``.

    ``onnxruntime_convt`` writes the rewritten file beside ``onnx_file`` (``<name>.convt.onnx``).
    ``spinning`` is :class:`OnnxRunner`'s (ONNX Runtime paths only).
    """
    if path == "onnxruntime":
        return OnnxRunner(onnx_file, threads=threads, spinning=spinning)
    if path == "onnxruntime_convt":
        return OnnxRunner(depth_to_space_as_conv_transpose(onnx_file), threads=threads, spinning=spinning)
    if path == "openvino":
        return OpenVinoRunner(onnx_file, threads=threads)
    raise ValueError(f"{path!r} is not an ONNX path; choose from {', '.join(ONNX_PATHS)}")


def _first(out: object) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    if isinstance(out, dict) and out:
        return next(iter(out.values()))
    raise TypeError(f"cannot compare model output of type {type(out).__name__}")


def onnx_max_abs_diff(model: nn.Module, example: torch.Tensor, path: str | os.PathLike | None = None,
                      *, opset: int = DEFAULT_OPSET, exporter: str = "auto") -> float:
    """Max absolute difference between ``model(example)`` (PyTorch, eval, CPU) and its ONNX
    export run in ONNX Runtime on the same input — on the raw outputs (logits).

    The export goes to ``path`` if given (kept), else to a temporary file (deleted).
    """
    net = eval_copy(model).cpu()
    x = example.detach().cpu()
    with torch.no_grad():
        ref = _first(net(x)).float()
    with contextlib.ExitStack() as stack:
        if path is None:
            path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="salbook-onnx-"))) / "model.onnx"
        export_onnx(net, x, path, opset=opset, exporter=exporter)
        got = _first(OnnxRunner(path)(x)).float()
    if got.shape != ref.shape:
        raise RuntimeError(f"ONNX output shape {tuple(got.shape)} differs from PyTorch's {tuple(ref.shape)}")
    return float((got - ref).abs().max())


# --------------------------------------------------------------------------------------------
# latency of every path


class _Callable(nn.Module):
    """Wraps a callable (a frozen TorchScript module, which has no train/eval flag) so that
    :mod:`salbook.cost`'s timing can treat it as a module; ``eval()`` does not reach it."""

    def __init__(self, fn) -> None:  # noqa: ANN001
        super().__init__()
        self._fn = [fn]  # a list, so the script module is not registered as a sub-module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn[0](x)

    def __deepcopy__(self, memo: dict) -> "_Callable":
        return self


class CompiledForCPU(nn.Module):
    """A model compiled by TorchInductor with *freezing* on (see :func:`compile_for_cpu`).

    Freezing treats the weights as constants, so Inductor folds batch norm, pre-packs the
    convolution weights for oneDNN and fuses the element-wise operations that follow (PReLU, the
    adds and up-samplings of an octave convolution) into generated C++ loops. Every call runs under
    the same Inductor settings, so an input of a new shape is compiled the same way (once more).
    """

    #: Dynamo keeps compiled graphs per Python code object, and every model compiled here runs through
    #: the same ``forward``: past its default limit (8) a further model would silently run eager.
    RECOMPILE_LIMIT = 256

    def __init__(self, inner: nn.Module) -> None:
        from torch._dynamo import config as dynamo_config

        super().__init__()
        self._compiled = [torch.compile(inner, backend="inductor", dynamic=False)]
        self.inner = inner
        self._limits = {k: self.RECOMPILE_LIMIT for k in ("recompile_limit", "accumulated_recompile_limit")
                        if hasattr(dynamo_config, k)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch._dynamo import config as dynamo_config
        from torch._inductor import config as inductor_config

        # One graph per model: inputs made under torch.inference_mode carry other dispatch keys, which
        # would compile a second graph, so they are copied out of it first (~0.1 ms for an image).
        with torch.inference_mode(False), torch.no_grad(), inductor_config.patch(freezing=True), \
                dynamo_config.patch(**self._limits):
            if x.is_inference():
                x = x.clone()
            return self._compiled[0](x)

    def __deepcopy__(self, memo: dict) -> "CompiledForCPU":  # compiled code cannot be copied; share it
        return self


def compile_for_cpu(model: nn.Module, example: torch.Tensor) -> CompiledForCPU:
    """``torch.compile`` (Inductor, freezing on) of the folded, channels-last copy of ``model``,
    compiled now on ``example`` (so the first timed call does not pay for it).

    Needs a C++ compiler (Inductor writes and builds C++ kernels for the CPU); takes tens of seconds
    per network on a 2-core machine, cached by Inductor afterwards. Raises ``RuntimeError`` naming
    the missing compiler when there is none.
    """
    import logging
    import shutil

    if not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise RuntimeError("torch.compile on the CPU needs a C++ compiler (g++ or clang++) on PATH; install "
                           "one (e.g. `apt install g++`) or leave 'compiled' out of the paths")
    net = CompiledForCPU(prepare_for_inference(model, channels_last=True, example=example))
    # Inductor's C++ build looks for CUDA first and logs a warning on a CPU-only machine; not news here.
    ext_log = logging.getLogger("torch.utils.cpp_extension")
    level = ext_log.level
    ext_log.setLevel(logging.ERROR)
    try:
        with torch.no_grad():
            net(example)
    finally:
        ext_log.setLevel(level)
    return net


def _check_paths(paths: Sequence[str]) -> None:
    unknown = [p for p in paths if p not in ALL_INFERENCE_PATHS]
    if unknown:
        raise ValueError(f"unknown inference path(s) {unknown}; choose from {', '.join(ALL_INFERENCE_PATHS)}")


def _build_path(path: str, eager: nn.Module, x: torch.Tensor, threads: int) -> nn.Module:
    """The runnable of one in-process path (not one of :data:`ONNX_PATHS`) for the eval-mode CPU ``eager``."""
    from .cost import _threads

    if path == "eager":
        return eager
    if path == "folded":
        return prepare_for_inference(eager, example=x)
    if path == "channels_last":
        return prepare_for_inference(eager, channels_last=True, example=x)
    if path == "jit":
        return _Callable(jit_freeze(prepare_for_inference(eager, example=x), x))
    if path == "compiled":
        # Dynamo guards on torch's thread count: compile at the count that will be timed, not the ambient one
        with _threads(threads):
            return compile_for_cpu(eager, x)
    raise ValueError(f"no in-process runnable for path {path!r}")


def inference_paths(
    model: nn.Module,
    example: torch.Tensor,
    threads: Sequence[int] = (1, 2),
    paths: Sequence[str] = INFERENCE_PATHS,
    *,
    warmup: int = 3,
    runs: int = 20,
    onnx_path: str | os.PathLike | None = None,
    static_shape: bool = True,
) -> "pandas.DataFrame":  # noqa: F821
    """CPU latency of each way of running ``model`` on inputs shaped like ``example``.

    Paths: ``eager`` (the model in eval mode), ``folded`` (:func:`prepare_for_inference`),
    ``channels_last`` (folded + NHWC), ``jit`` (:func:`jit_freeze` of the folded model),
    ``onnxruntime`` (:func:`export_onnx` + :class:`OnnxRunner` with that many threads) and, only
    when named, ``onnxruntime_convt`` (the export rewritten by :func:`depth_to_space_as_conv_transpose`,
    in ONNX Runtime), ``openvino`` (the export in :class:`OpenVinoRunner`) and ``compiled``
    (:func:`compile_for_cpu`: Inductor with freezing; Dynamo guards on torch's thread count, so each
    thread count listed costs one compile). The ONNX paths share one export (at ``onnx_path`` if
    given, kept; the rewritten file beside it). Each is
    timed by :func:`salbook.cost.latency` (random input of ``example``'s shape, ``warmup`` untimed
    then ``runs`` timed passes, torch threads pinned to the row's count).

    With ``static_shape`` (default) the ONNX graph is exported for ``example``'s exact shape, batch
    included (``export_onnx(..., dynamic_batch=False)``): the latency of a fixed-shape deployment.
    With a symbolic batch, ONNX Runtime cannot fold the shape arithmetic of "same" padding and of
    resizes into constants, and runs it on every call (chapter 5's Lite0 gaze model at 96 × 128, one
    thread, *with ONNX Runtime's profiler on*, which inflates many small nodes: 5.9 → 3.7 ms unpruned,
    4.5 → 1.7 ms pruned; without the profiler the difference was within the timing noise).
    ``static_shape=False`` times the batch-symbolic export.

    Returns a DataFrame with one row per (path, threads): ``path``, ``threads``, ``median_ms``,
    ``q1_ms``, ``q3_ms``, ``iqr_ms``, ``images_per_s``, ``speedup`` (eager median at the same
    thread count / this median) and ``max_abs_diff`` (vs the eager output on ``example``).
    """
    import pandas as pd

    from .cost import _threads, latency

    _check_paths(paths)
    if not threads:
        raise ValueError("threads must list at least one thread count, e.g. (1, 2)")
    x = example.detach().cpu()
    eager = eval_copy(model).cpu()
    with torch.no_grad():
        ref = _first(eager(x)).float()
    built: dict[str, nn.Module] = {}
    with contextlib.ExitStack() as stack:
        if any(p in ONNX_PATHS for p in paths):
            if onnx_path is None:
                tmpdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="salbook-onnx-")))
                onnx_path = tmpdir / "model.onnx"
            export_onnx(eager, x, onnx_path, dynamic_batch=not static_shape)
        for p in paths:
            if p not in ONNX_PATHS:
                built[p] = _build_path(p, eager, x, int(threads[0]))
        rows = []
        shape = tuple(x.shape)
        for t in threads:
            for p in paths:
                net = _onnx_runner(p, onnx_path, int(t)) if p in ONNX_PATHS else built[p]
                with torch.no_grad(), _threads(int(t)):  # at the timed count (a compiled graph is per count)
                    diff = float((_first(net(x)).float() - ref).abs().max())
                lat = latency(net, shape[1:], batch=shape[0], device="cpu", warmup=warmup, runs=runs,
                              threads=int(t))
                rows.append({"path": p, "threads": int(t), "median_ms": lat.median_ms, "q1_ms": lat.q1_ms,
                             "q3_ms": lat.q3_ms, "iqr_ms": lat.iqr_ms, "images_per_s": lat.images_per_s,
                             "max_abs_diff": diff})
    df = pd.DataFrame(rows)
    base = df[df.path == "eager"].set_index("threads")["median_ms"] if "eager" in paths else None
    df["speedup"] = [base.get(t, math.nan) / m if base is not None else math.nan
                     for t, m in zip(df.threads, df.median_ms)]
    return df[["path", "threads", "median_ms", "q1_ms", "q3_ms", "iqr_ms", "images_per_s", "speedup",
               "max_abs_diff"]]


def interleaved_latency(
    nets: Mapping[Hashable, nn.Module],
    example: torch.Tensor,
    paths: Sequence[str] = ("eager", "onnxruntime"),
    *,
    threads: int = 1,
    rounds: int = 5,
    runs: int = 10,
    warmup: int = 3,
    static_shape: bool = True,
    progress: bool | None = None,
) -> "pandas.DataFrame":  # noqa: F821
    """CPU latency of several models and paths, timed **interleaved**: each of ``rounds`` rounds
    times every (model, path) for ``runs`` passes in turn.

    Timing one model after another lets a slow spell of the machine (another process, a frequency
    change, a noisy neighbour on a virtual machine) land on whichever model is being timed, which
    then looks slower than it is; interleaving spreads such spells over all of them, so their
    *ratios* — speed-ups — are what the machine gives when it is steady. The paths are those of
    :func:`inference_paths` (the ONNX paths share one export per model, for ``example``'s exact shape
    when ``static_shape``), ``threads`` intra-op threads for torch, ONNX Runtime and OpenVINO alike.

    The ONNX Runtime sessions are built with their idle threads asleep (:class:`OnnxRunner`'s
    ``spinning=False``): all of them stay alive while each is timed in turn, and with ``threads`` > 1
    the spinning threads of the session just timed would take the cores of the next one (measured
    with FastSal (A) and MobileNetV2's features, 2 threads, on 2 cores: IQR 4–6 ms of a 5–12 ms run
    with spinning, under 1 ms without). With one thread there are no idle threads to spin.

    ``nets`` maps any hashable names (strings, tuples) to models. Returns a DataFrame with one row per
    (model, path): ``model`` (the name), ``path``, ``threads``,
    ``median_ms``, ``q1_ms``, ``q3_ms``, ``iqr_ms`` over all ``rounds × runs`` passes,
    ``round_spread`` (largest / smallest of the per-round medians: how steady the machine was),
    ``round_ms`` (the per-round medians, a list: divide two rows' lists for a speed-up per round, each
    ratio from models timed within moments of each other) and ``max_abs_diff`` (vs the model's eager
    output on ``example``).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .cost import _threads, _timed
    from .utils import progress_enabled

    _check_paths(paths)
    if not nets:
        raise ValueError("nets is empty: pass a mapping of names to models")
    if int(rounds) < 1 or int(runs) < 1 or int(warmup) < 0:
        raise ValueError(f"need rounds >= 1, runs >= 1 and warmup >= 0, got {rounds!r}, {runs!r}, {warmup!r}")
    x = example.detach().cpu()
    cpu = torch.device("cpu")
    show = progress_enabled() if progress is None else bool(progress)
    runners: dict[tuple[str, str], nn.Module] = {}
    diffs: dict[tuple[str, str], float] = {}
    with contextlib.ExitStack() as stack, _threads(int(threads)):
        tmpdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="salbook-onnx-")))
        for i, (name, model) in enumerate(nets.items()):
            eager = eval_copy(model).cpu()
            with torch.no_grad():
                ref = _first(eager(x)).float()
            onnx_file = None
            for p in paths:
                if p in ONNX_PATHS:
                    if onnx_file is None:  # exported outside inference mode, as export_onnx expects
                        onnx_file = export_onnx(eager, x, tmpdir / f"model{i}.onnx", dynamic_batch=not static_shape)
                    runners[(name, p)] = _onnx_runner(p, onnx_file, int(threads), spinning=False)
                else:
                    runners[(name, p)] = _build_path(p, eager, x, int(threads))
                with torch.no_grad():
                    diffs[(name, p)] = float((_first(runners[(name, p)](x)).float() - ref).abs().max())
        times: dict[tuple[str, str], list[list[float]]] = {k: [] for k in runners}
        with torch.inference_mode():
            for key, run in runners.items():
                _timed(lambda: run(x), cpu, int(warmup), 0)
            for _ in tqdm(range(int(rounds)), desc="latency rounds", disable=not show):
                for key, run in runners.items():
                    times[key].append([t * 1e3 for t in _timed(lambda: run(x), cpu, 0, int(runs))])
    rows = []
    for (name, p), per_round in times.items():
        flat = np.concatenate([np.asarray(r) for r in per_round])
        q1, median, q3 = (float(v) for v in np.percentile(flat, [25, 50, 75]))
        medians = [float(np.median(r)) for r in per_round]
        rows.append({"model": name, "path": p, "threads": int(threads), "median_ms": median, "q1_ms": q1,
                     "q3_ms": q3, "iqr_ms": q3 - q1, "round_spread": max(medians) / min(medians),
                     "round_ms": medians, "max_abs_diff": diffs[(name, p)]})
    return pd.DataFrame(rows)


def round_ratios(timing: "pandas.DataFrame", numerator: Hashable, denominator: Hashable,  # noqa: F821
                 scale: float = 1.0) -> np.ndarray:
    """One paired ratio per round of :func:`interleaved_latency`: ``numerator``'s round median over
    ``denominator``'s, times ``scale``.

    The two were timed within moments of each other in every round, so a slow spell of the machine
    lands on both and cancels in the ratio. ``scale`` turns the ratio of times into another one, e.g.
    ``gmacs(denominator) / gmacs(numerator)`` for the ratio of times per MAC.

    Args:
        timing: rows of :func:`interleaved_latency` for one path (filter a multi-path result first).

    Returns:
        ``rounds`` floats, in round order.
    """
    if timing["path"].nunique() != 1:
        raise ValueError(f"round_ratios needs the rows of one path, got paths {sorted(timing['path'].unique())}; "
                         "filter the timing first, e.g. timing[timing.path == 'openvino']")
    by_model = timing.set_index("model")["round_ms"]
    missing = [m for m in (numerator, denominator) if m not in by_model.index]
    if missing:
        raise KeyError(f"no timing for model(s) {missing}; timed: {list(by_model.index)}")
    return float(scale) * np.asarray(by_model[numerator], dtype=float) / np.asarray(by_model[denominator], dtype=float)


_SPEED_COLUMNS = ("model", "path", "threads", "median_ms", "q1_ms", "q3_ms", "iqr_ms", "images_per_s", "speedup",
                  "max_abs_diff", "gmacs", "fps", "ms_per_gmac", "gflops_per_s", "error")


def speed_table(
    nets: Mapping[str, nn.Module],
    input_size: tuple[int, int] = (192, 256),
    threads: Sequence[int] = (1, 2),
    paths: Sequence[str] | None = None,
    *,
    runs: int = 20,
    warmup: int = 3,
    prepare: Callable[[nn.Module], nn.Module | None] | None = None,
) -> "pandas.DataFrame":  # noqa: F821
    """CPU latency (batch 1) of each named model through each inference path, with the work it sustains.

    Every model is timed by :func:`inference_paths` on a random ``1 × 3 × H × W`` input
    (``input_size`` = ``(H, W)``), ``warmup`` untimed then ``runs`` timed passes per thread count.
    The ONNX paths asked for (:data:`ONNX_PATHS`) share one export of each model; if one of them fails,
    each is timed on its own export, so the error is reported on its own row.

    Args:
        nets: name -> model (not changed: every path works on a copy).
        paths: subset of :data:`ALL_INFERENCE_PATHS`; ``None`` = :data:`INFERENCE_PATHS`.
        prepare: optional ``callable(model) -> model | None`` run before the paths, e.g. CSNet's
            :func:`~salbook.models.csnet.fuse_for_inference`. When it returns a model, the paths run
            on that model, an extra row with path ``"as built"`` times the original in eval mode, and
            ``max_abs_diff`` is bounded against the original's output (the prepared model's
            difference plus the path's). When it returns ``None`` the paths run on the model itself.

    Returns:
        One row per (model, path, threads): ``model``, ``path``, ``threads``, ``median_ms``, ``q1_ms``,
        ``q3_ms``, ``iqr_ms``, ``images_per_s``, ``speedup`` (the ``"as built"`` or else ``"eager"``
        median at the same threads / this median), ``max_abs_diff``, ``gmacs`` (convolution and
        matmul MACs / 1e9 at ``input_size``, :func:`salbook.cost.flops`), ``fps`` (1000 / median ms),
        ``ms_per_gmac``, ``gflops_per_s`` (2 × MACs / median time) and ``error``: a path that fails
        (an ONNX export error, say) is reported there with NaN times rather than raised.

    Latency on a shared CPU is only meaningful alone: run it when nothing else is.
    """
    import pandas as pd

    from .cost import flops

    chosen = tuple(INFERENCE_PATHS if paths is None else paths)
    _check_paths(chosen)
    if not nets:
        raise ValueError("speed_table needs at least one {name: model} entry")
    threads = tuple(int(t) for t in threads)
    tables = []
    for name, net in nets.items():
        net = eval_copy(net).cpu()
        x = torch.rand(1, 3, *input_size)
        own = []
        target, offset = net, 0.0
        prepared = prepare(copy.deepcopy(net)) if prepare is not None else None
        if prepared is not None:
            target = prepared.cpu().eval()
            with torch.no_grad():
                offset = float((_first(target(x)).float() - _first(net(x)).float()).abs().max())
            built = inference_paths(net, x, threads=threads, paths=("eager",), warmup=warmup, runs=runs)
            own.append(built.assign(path="as built", error=""))
        onnx_chosen = [p for p in chosen if p in ONNX_PATHS]
        shared = None  # the ONNX paths timed on one export; if any of them fails, each is timed alone below
        if len(onnx_chosen) > 1:
            with contextlib.suppress(Exception):
                shared = inference_paths(target, x, threads=threads, paths=onnx_chosen, warmup=warmup, runs=runs)
        for p in chosen:
            try:
                if shared is not None and p in onnx_chosen:
                    t = shared[shared.path == p]
                else:
                    t = inference_paths(target, x, threads=threads, paths=(p,), warmup=warmup, runs=runs)
                own.append(t.assign(max_abs_diff=t.max_abs_diff + offset, error=""))
            except Exception as err:  # noqa: BLE001 - reported in the table, not hidden
                own.append(pd.DataFrame({"path": p, "threads": threads, "max_abs_diff": math.nan,
                                         "error": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"}))
        tables.append(pd.concat(own, ignore_index=True).assign(model=name, gmacs=flops(net, tuple(input_size)).macs / 1e9))
    out = pd.concat(tables, ignore_index=True)
    reference = out[out.path == "as built"]
    reference = pd.concat([reference, out[(out.path == "eager") & ~out.model.isin(reference.model)]])
    base_ms = reference.set_index(["model", "threads"])["median_ms"]
    out["speedup"] = [base_ms.get((m, t), math.nan) / ms for m, t, ms in zip(out.model, out.threads, out.median_ms)]
    out["fps"] = 1e3 / out["median_ms"]
    out["ms_per_gmac"] = out["median_ms"] / out["gmacs"]
    out["gflops_per_s"] = 2 * out["gmacs"] / (out["median_ms"] / 1e3)
    return out[list(_SPEED_COLUMNS)]
