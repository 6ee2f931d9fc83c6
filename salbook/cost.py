"""The cost of a model (``salbook.cost``): parameters, FLOPs/MACs, size, activation memory, latency.

Conventions (papers mix them, so the table shows both FLOPs and MACs):

* **FLOPs** are what :class:`torch.utils.flop_counter.FlopCounterMode` counts: 2 per
  multiply-accumulate, and only for the operators it knows (convolution and transposed
  convolution, matmul / linear / ``addmm``, ``bmm``, attention...). Element-wise ops, batch norm,
  activations, pooling, up-sampling, biases and soft-max are **not** counted.
  **MACs = FLOPs / 2.** Many papers' "FLOPs" are really these MACs (MobileNetV2's "300M
  multiply-adds" is ``flops(mobilenet_v2, (224, 224)).macs``).
* Sizes in the summary row are in **MB = 10^6 bytes**; the single-value functions return bytes.
* ``input_size`` is ``(C, H, W)``, or ``(H, W)`` meaning ``C = 3``; the batch is separate.
* Timing is wall-clock (``time.perf_counter``) of one forward pass under
  ``torch.inference_mode``, after warm-up runs; on CUDA the device is synchronised before and
  after each run, so the figure includes kernel-launch overhead (what an application sees).

No function here changes the model it is given: measurement on another device uses a copy, and
the train/eval flag is restored.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .utils import progress_enabled, resolve_device

__all__ = [
    "FlopCount",
    "Latency",
    "count_params",
    "flops",
    "state_dict_bytes",
    "peak_activation_memory",
    "latency",
    "operator_profile",
    "throughput",
    "train_step_seconds",
    "peak_training_memory",
    "design_cost_table",
    "cost_summary",
    "cost_table",
]

InputSize = Sequence[int]


# --------------------------------------------------------------------------------------------
# helpers


def _input_shape(input_size: InputSize, batch: int = 1) -> tuple[int, int, int, int]:
    """``(C, H, W)`` or ``(H, W)`` (C = 3) plus ``batch`` -> ``(batch, C, H, W)``."""
    size = tuple(int(s) for s in input_size)
    if len(size) == 2:
        size = (3, *size)
    if len(size) != 3 or any(s < 1 for s in size):
        raise ValueError(
            f"input_size must be (C, H, W) or (H, W) with positive sizes, got {tuple(input_size)!r}; "
            "do not include the batch dimension (pass batch=... instead)"
        )
    if int(batch) < 1:
        raise ValueError(f"batch must be >= 1, got {batch!r}")
    return (int(batch), *size)


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def _prepared(model: nn.Module, device: torch.device | None = None) -> Iterator[nn.Module]:
    """Yield ``model`` in eval mode on ``device`` (a deep copy if it lives elsewhere).

    The caller's model keeps its device and its train/eval flag.
    """
    target = _model_device(model) if device is None else device
    if _model_device(model) != target:
        run = copy.deepcopy(model).to(target)
    else:
        run = model
    was_training = model.training
    run.eval()
    try:
        yield run
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _threads(threads: int | None) -> Iterator[int]:
    """Temporarily set torch's intra-op CPU thread count; yield the count in force."""
    before = torch.get_num_threads()
    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        torch.set_num_threads(int(threads))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------
# parameters, FLOPs, size


def _timed(fn: Callable[[], object], device: torch.device, warmup: int, runs: int) -> list[float]:
    """Wall time (s) of ``runs`` calls of ``fn`` after ``warmup`` untimed ones, the device synchronised
    around each timed call."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(runs):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (a tensor shared by two layers counts once).

    Buffers (batch-norm running statistics) are not parameters and are not counted. With
    ``trainable_only=True`` only parameters with ``requires_grad`` count.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_params expects an nn.Module, got {type(model).__name__}")
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one forward pass, as counted by ``torch.utils.flop_counter.FlopCounterMode``.

    Attributes
    ----------
    flops:
        Total FLOPs (2 per multiply-accumulate; conv / linear / matmul-like ops only).
    input_shape:
        ``(N, C, H, W)`` of the measured input.
    by_module:
        FLOPs per sub-module, keyed by the name ``model.named_modules()`` uses (``""`` = the
        whole model). Nested modules are included in their parents' counts.
    by_operator:
        FLOPs per aten operator (e.g. ``"aten.convolution"``) over the whole model.
    """

    flops: int
    input_shape: tuple[int, int, int, int]
    by_module: dict[str, int] = field(default_factory=dict, repr=False)
    by_operator: dict[str, int] = field(default_factory=dict)

    @property
    def macs(self) -> int:
        """Multiply-accumulates: ``flops // 2`` (FlopCounterMode counts 2 FLOPs per MAC)."""
        return self.flops // 2

    @property
    def gflops(self) -> float:
        """FLOPs / 10^9."""
        return self.flops / 1e9

    @property
    def gmacs(self) -> float:
        """MACs / 10^9."""
        return self.macs / 1e9

    def table(self, depth: int | None = 1) -> "pandas.DataFrame":  # noqa: F821
        """Per-module FLOPs and MACs as a DataFrame, modules nested at most ``depth`` deep.

        ``depth=0`` gives only the whole model, ``depth=None`` every module. Columns: ``module``,
        ``flops``, ``macs``, ``share`` (fraction of the model's FLOPs).
        """
        import pandas as pd

        rows = []
        for name, count in self.by_module.items():
            level = 0 if name == "" else name.count(".") + 1
            if depth is None or level <= depth:
                rows.append(
                    {
                        "module": name or "(model)",
                        "flops": count,
                        "macs": count // 2,
                        "share": count / self.flops if self.flops else math.nan,
                    }
                )
        return pd.DataFrame(rows, columns=["module", "flops", "macs", "share"])


def flops(model: nn.Module, input_size: InputSize, batch: int = 1) -> FlopCount:
    """Count the FLOPs (and MACs = FLOPs / 2) of one forward pass of ``model``.

    Parameters
    ----------
    model:
        Any module taking an ``N×C×H×W`` float tensor. It runs once, in eval mode, on the device
        it already lives on, with a random input.
    input_size:
        ``(C, H, W)``, or ``(H, W)`` meaning ``C = 3``.
    batch:
        ``N``; FLOPs scale linearly with it.

    Only ops ``FlopCounterMode`` knows are counted: convolution, matmul / linear, ``bmm``,
    attention. Element-wise ops, batch norm, activations, pooling, interpolation and biases are
    not.
    """
    from torch.utils.flop_counter import FlopCounterMode

    shape = _input_shape(input_size, batch)
    with _prepared(model) as run:
        x = torch.rand(shape, device=_model_device(run))
        counter = FlopCounterMode(display=False, depth=None)
        with torch.inference_mode(), counter:
            run(x)
    total = int(counter.get_total_flops())
    by_module: dict[str, int] = {}
    by_operator: dict[str, int] = {}
    for key, per_op in counter.get_flop_counts().items():
        count = int(sum(per_op.values()))
        if key == "Global":
            by_module[""] = count
            by_operator = {str(op): int(v) for op, v in per_op.items()}
            continue
        # keys are "<RootClass>.<fully.qualified.name>"; drop the root class name.
        _, _, name = key.partition(".")
        by_module[name] = count
    by_module.setdefault("", total)
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    by_module = dict(sorted(by_module.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    return FlopCount(flops=total, input_shape=shape, by_module=by_module, by_operator=by_operator)


def state_dict_bytes(model: nn.Module) -> int:
    """Size in bytes of ``torch.save(model.state_dict())`` (parameters, buffers, zip overhead).

    This is the file a trained checkpoint of the weights alone would occupy on disk.
    """
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


# --------------------------------------------------------------------------------------------
# activation memory


class _LiveTensorTracker:
    """Track the bytes of tensor storages produced by aten ops that are alive at once.

    Every output of every operator is seen (``TorchDispatchMode``); a storage counts from the
    first output that uses it until the last such output object is garbage collected. Views
    share their base's storage, so they add nothing. Kernel-internal scratch buffers are invisible.
    """

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self._refs: dict[int, list[int]] = {}  # data_ptr -> [live tracked tensors, nbytes]

    def _release(self, ptr: int) -> None:
        entry = self._refs.get(ptr)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.current -= entry[1]
            del self._refs[ptr]

    def track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        ptr, nbytes = storage.data_ptr(), storage.nbytes()
        if ptr == 0 or nbytes == 0:
            return
        entry = self._refs.get(ptr)
        if entry is None:
            self._refs[ptr] = entry = [0, nbytes]
            self.current += nbytes
            self.peak = max(self.peak, self.current)
        entry[0] += 1
        weakref.finalize(tensor, self._release, ptr)


def _peak_live_bytes(run: Callable[[], object], excluded: Sequence[torch.Tensor]) -> int:
    """Peak bytes of tensors alive at once while ``run()`` executes, counting every tensor an aten
    operator produces (from its creation until its last reference is gone), except ``excluded``."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    tracker = _LiveTensorTracker()
    protected = {t.untyped_storage().data_ptr() for t in excluded}

    class _Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
            out = func(*args, **(kwargs or {}))
            for item in tree_flatten(out)[0]:
                if isinstance(item, torch.Tensor) and item.untyped_storage().data_ptr() not in protected:
                    tracker.track(item)
            return out

    with _Mode():
        run()
    return tracker.peak


def _cpu_peak_activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    with torch.inference_mode():
        return _peak_live_bytes(lambda: model(x), (x, *model.parameters(), *model.buffers()))


def peak_activation_memory(
    model: nn.Module, input_size: InputSize, batch: int = 1, device: str | torch.device = "cpu"
) -> int:
    """Peak bytes of activations alive at once during one inference forward pass.

    Weights, buffers and the input are excluded; the output is included. The pass runs under
    ``torch.inference_mode`` (no autograd graph: training keeps far more alive).

    Method
    ------
    * ``device="cpu"``: every tensor produced by an aten operator is recorded through a
      ``TorchDispatchMode``; a storage counts from its creation until its last Python reference
      is collected, and the running total's maximum is returned. Views add nothing; scratch
      buffers inside kernels (im2col, oneDNN workspaces) are not seen, so this is the
      framework-level lower bound, identical on any machine.
    * ``device="cuda"``: ``torch.cuda.max_memory_allocated`` minus the memory allocated before
      the pass (weights + input); includes cuDNN workspaces and the allocator's rounding.
    """
    dev = resolve_device(device)
    shape = _input_shape(input_size, batch)
    with _prepared(model, dev) as run:
        x = torch.rand(shape, device=dev)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            with torch.inference_mode():
                out = run(x)
            torch.cuda.synchronize(dev)
            peak = torch.cuda.max_memory_allocated(dev) - base
            del out
            return int(peak)
        if dev.type != "cpu":
            raise ValueError(f"peak_activation_memory supports 'cpu' and 'cuda', got {dev}")
        return _cpu_peak_activation_bytes(run, x)


# --------------------------------------------------------------------------------------------
# timing


@dataclass(frozen=True)
class Latency:
    """Wall-clock time of one forward pass: quantiles over ``runs`` timed repetitions (ms)."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    iqr_ms: float
    mean_ms: float
    runs: int
    warmup: int
    threads: int
    device: str
    batch: int
    input_shape: tuple[int, int, int, int]

    @property
    def images_per_s(self) -> float:
        """Throughput implied by the median: ``batch / median seconds``."""
        return self.batch / (self.median_ms / 1e3) if self.median_ms > 0 else math.inf


def latency(
    model: nn.Module,
    input_size: InputSize,
    batch: int = 1,
    device: str | torch.device = "cpu",
    warmup: int = 5,
    runs: int = 30,
    threads: int | None = None,
) -> Latency:
    """Time ``runs`` forward passes (after ``warmup`` untimed ones); return quantiles in ms.

    ``threads`` sets torch's intra-op CPU thread count for the measurement (restored afterwards);
    ``None`` keeps the current one. The count in force is reported either way, since CPU
    latency depends on it. On CUDA, the device is synchronised around each run.
    Quantiles use linear interpolation (``numpy.percentile``); ``iqr_ms = q3_ms - q1_ms``.
    """
    if int(runs) < 1 or int(warmup) < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs!r}, warmup={warmup!r}")
    dev = resolve_device(device)
    shape = _input_shape(input_size, batch)
    with _threads(threads) as n_threads, _prepared(model, dev) as run, torch.inference_mode():
        x = torch.rand(shape, device=dev)
        times = [seconds * 1e3 for seconds in _timed(lambda: run(x), dev, int(warmup), int(runs))]
    q1, median, q3 = (float(v) for v in np.percentile(times, [25, 50, 75]))
    return Latency(
        median_ms=median,
        q1_ms=q1,
        q3_ms=q3,
        iqr_ms=q3 - q1,
        mean_ms=float(np.mean(times)),
        runs=int(runs),
        warmup=int(warmup),
        threads=n_threads,
        device=str(dev),
        batch=int(batch),
        input_shape=shape,
    )


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send the process's file descriptor 2 to /dev/null for the block: the profiler's C++ side
    (Kineto) prints start/stop and "no GPU" lines there, which a notebook would show as errors."""
    import os
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (an embedded interpreter): leave it
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def operator_profile(
    model: nn.Module,
    input_size: InputSize,
    batch: int = 1,
    runs: int = 3,
    threads: int | None = 1,
) -> "pd.DataFrame":  # noqa: F821
    """Where a CPU forward pass spends its time, per operator (``torch.profiler``).

    One untimed pass, then ``runs`` profiled passes on a random input, in eval mode under
    ``torch.inference_mode`` with ``threads`` intra-op threads. Returns one row per ATen operator
    with its *self* time (children excluded, so the rows add up to the total): ``operator``,
    ``self_ms`` (per pass), ``calls`` (per pass) and ``share`` (of the summed self time), most
    expensive first.
    """
    import pandas as pd
    from torch.profiler import ProfilerActivity, profile

    if int(runs) < 1:
        raise ValueError(f"runs must be >= 1, got {runs!r}")
    shape = _input_shape(input_size, batch)
    with _threads(threads), _prepared(model, torch.device("cpu")) as run, torch.inference_mode():
        x = torch.rand(shape)
        run(x)
        with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(int(runs)):
                run(x)
    rows = [{"operator": e.key, "self_ms": e.self_cpu_time_total / 1e3 / int(runs), "calls": e.count // int(runs)}
            for e in prof.key_averages()]
    df = pd.DataFrame(rows, columns=["operator", "self_ms", "calls"])
    df = df[df.self_ms > 0].sort_values("self_ms", ascending=False).reset_index(drop=True)
    df["share"] = df.self_ms / df.self_ms.sum()
    return df


def train_step_seconds(
    build_model: "Callable[[], nn.Module]",
    loss_fn: "Callable[[torch.Tensor, dict], torch.Tensor]",
    optimizer: "Callable[[Any], torch.optim.Optimizer]",
    batch: "dict[str, torch.Tensor]",
    device: str | torch.device = "cpu",
    repeats: int = 2,
    threads: int | None = None,
) -> float:
    """Median wall time (s) of one training step — forward, ``loss_fn(output, batch)``, backward
    and the optimiser update — of a freshly built model on ``batch`` (moved to ``device``), after
    one untimed warm-up step. ``optimizer`` is a factory ``params -> Optimizer``."""
    if int(repeats) < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    dev = resolve_device(device)
    model = build_model().to(dev).train()
    opt = optimizer(model.parameters())
    batch = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(batch["image"]), batch).backward()
        opt.step()

    with _threads(threads):
        return float(np.median(_timed(step, dev, warmup=1, runs=int(repeats))))


def throughput(
    model: nn.Module,
    input_size: InputSize,
    batch: int = 16,
    device: str | torch.device = "cpu",
    warmup: int = 2,
    runs: int = 10,
    threads: int | None = None,
) -> float:
    """Images per second at batch size ``batch``: ``batch / median time of one batch``."""
    return latency(model, input_size, batch, device, warmup, runs, threads).images_per_s


# --------------------------------------------------------------------------------------------
# memory of a training step, and a per-size design table


def peak_training_memory(
    model: nn.Module,
    input_size: tuple[int, ...],
    loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch: int = 1,
) -> int:
    """Peak bytes of tensors alive at once during one training step's forward and backward pass (CPU).

    Counts what :func:`peak_activation_memory` counts (every tensor an aten operator
    produces, from its creation until its last reference is gone), but with autograd on: the
    activations kept for the backward pass, the backward pass's temporaries and the parameters'
    gradients. Weights, buffers and the input are excluded, and so is the optimiser's state (Adam
    keeps two more tensors per weight: ``2 × 4`` bytes per parameter). Batch-norm layers run in
    training mode. The model is run on a copy on the CPU; the caller's model is not changed.

    Args:
        model: the network.
        input_size: ``(C, H, W)``, or ``(H, W)`` meaning ``C = 3``.
        loss_fn: maps the output to a scalar (default: its mean).
        batch: images in the step.
    """
    shape = _input_shape(input_size, batch)
    net = copy.deepcopy(model).cpu().train()
    for p in net.parameters():
        p.grad = None
    x = torch.rand(shape)
    reduce = loss_fn or (lambda out: out.float().mean())

    def step() -> None:
        reduce(net(x)).backward()

    return _peak_live_bytes(step, (x, *net.parameters(), *net.buffers()))


def design_cost_table(
    models: Mapping[str, nn.Module],
    sizes: Sequence[tuple[int, int]],
    sizes_for: Mapping[str, Sequence[tuple[int, int]]] | None = None,
    latency_runs: int = 5,
    threads: int | None = 1,
) -> "pandas.DataFrame":  # noqa: F821
    """Size, memory and latency of every model at every input size (the compact-model paper's three
    design aspects).

    One row per (model, input size) with columns: ``params``; ``fp32 MB`` and ``fp16 MB``
    (:func:`state_dict_bytes` of the weights as stored and cast to half precision);
    ``GMACs`` (:func:`flops`); ``inference MB`` (peak activations of one forward
    pass, :func:`peak_activation_memory`, batch 1); ``training MB`` (peak of one
    training step's forward + backward, :func:`peak_training_memory`, batch 1); ``latency ms``
    and ``latency IQR ms`` (CPU, batch 1, ``threads`` intra-op threads, median over
    ``latency_runs`` runs after 1 warm-up). Sizes are MB = 10^6 bytes.

    Args:
        models: ``{name: model}``, each taking ``N × 3 × H × W`` images.
        sizes: ``(H, W)`` input sizes, pixels.
        sizes_for: per-model sizes that replace ``sizes`` (a network with a fixed input, e.g. Pan's 96 × 96).
        latency_runs: timed forward passes per (model, size).
        threads: torch CPU threads while timing (``None``: unchanged).

    Returns:
        A DataFrame indexed by (``model``, ``input``) with ``input`` as ``"H×W"``.
    """
    import pandas as pd


    rows = []
    for name, model in models.items():
        fp32 = state_dict_bytes(model) / 1e6
        fp16 = state_dict_bytes(copy.deepcopy(model).half()) / 1e6
        for size in (sizes_for or {}).get(name, sizes):
            h, w = int(size[0]), int(size[1])
            lat = latency(model, (h, w), batch=1, device="cpu", warmup=1, runs=latency_runs, threads=threads)
            rows.append({
                "model": name, "input": f"{h}×{w}", "params": count_params(model), "fp32 MB": fp32, "fp16 MB": fp16,
                "GMACs": flops(model, (h, w)).gmacs,
                "inference MB": peak_activation_memory(model, (h, w)) / 1e6,
                "training MB": peak_training_memory(model, (h, w)) / 1e6,
                "latency ms": lat.median_ms, "latency IQR ms": lat.iqr_ms, "threads": lat.threads,
            })
    if not rows:
        raise ValueError("design_costs needs at least one model and one size")
    return pd.DataFrame(rows).set_index(["model", "input"])


# --------------------------------------------------------------------------------------------
# summary


def cost_summary(
    model: nn.Module,
    input_size: InputSize,
    name: str | None = None,
    latency_runs: int = 30,
    throughput_batch: int = 16,
    device: str | torch.device = "cpu",
    gpu: bool = True,
    threads: int | None = None,
) -> dict[str, object]:
    """One summary row for ``model`` at ``input_size`` (see the module docstring for conventions).

    Keys: ``name``, ``input`` (``"C×H×W"``), ``params``, ``MParams``, ``GFLOPs``, ``GMACs``,
    ``state_dict_MB``, ``peak_activation_MB`` (CPU method, batch 1), ``cpu_ms_median``,
    ``cpu_ms_iqr`` (batch 1, ``latency_runs`` runs), ``threads``, ``throughput_img_s`` (on
    ``device``, batch ``throughput_batch``), ``throughput_device``, and ``gpu_ms_median`` /
    ``gpu_ms_iqr`` (batch 1; NaN when ``gpu`` is False or no CUDA device is present).
    """
    shape = _input_shape(input_size)
    count = flops(model, shape[1:])
    cpu = latency(model, shape[1:], batch=1, device="cpu", runs=latency_runs, threads=threads)
    tp_device = resolve_device(device)
    with _threads(threads):
        tp = throughput(model, shape[1:], batch=throughput_batch, device=tp_device)
    gpu_lat = None
    if gpu and torch.cuda.is_available():
        gpu_lat = latency(model, shape[1:], batch=1, device="cuda", runs=max(latency_runs, 30))
    params = count_params(model)
    return {
        "name": name if name is not None else type(model).__name__,
        "input": "×".join(str(s) for s in shape[1:]),
        "params": params,
        "MParams": params / 1e6,
        "GFLOPs": count.gflops,
        "GMACs": count.gmacs,
        "state_dict_MB": state_dict_bytes(model) / 1e6,
        "peak_activation_MB": peak_activation_memory(model, shape[1:]) / 1e6,
        "cpu_ms_median": cpu.median_ms,
        "cpu_ms_iqr": cpu.iqr_ms,
        "threads": cpu.threads,
        "throughput_img_s": tp,
        "throughput_device": str(tp_device),
        "gpu_ms_median": gpu_lat.median_ms if gpu_lat else math.nan,
        "gpu_ms_iqr": gpu_lat.iqr_ms if gpu_lat else math.nan,
    }


def cost_table(
    models: Mapping[str, nn.Module], input_size: InputSize, **kwargs: object
) -> "pandas.DataFrame":  # noqa: F821
    """:func:`cost_summary` of every model in ``models`` (name -> module); one row each, indexed by name.

    Extra keyword arguments go to :func:`cost_summary`.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    if not models:
        raise ValueError("cost_table needs at least one {name: model} entry")
    rows = [
        cost_summary(model, input_size, name=name, **kwargs)  # type: ignore[arg-type]
        for name, model in tqdm(models.items(), desc="cost", disable=not progress_enabled())
    ]
    return pd.DataFrame(rows).set_index("name")


# --------------------------------------------------------------------------------------------
# hardware reference: dense matmul peak


def matmul_peak_gflops(
    threads: int | None = 1,
    n: int = 1024,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    warmup: int = 3,
    runs: int = 10,
) -> dict[str, Any]:
    """Measured dense-matmul throughput of this machine: the GFLOP/s ceiling a network can approach.

    Times ``runs`` products of two random ``n × n`` matrices (``2·n³`` FLOPs each, after ``warmup``
    untimed ones) with ``threads`` threads (restored afterwards; ``None`` keeps torch's current
    count). On the CPU the product is timed through two BLAS libraries, PyTorch's ``torch.mm``
    (Intel MKL in the x86 wheels) and NumPy's ``@`` (OpenBLAS in its wheels, threads limited by
    threadpoolctl), and the faster one is the peak: MKL does not take its fastest code paths on
    every vendor's CPU (on this book's AMD EPYC: 137 GFLOP/s for MKL, 183 for OpenBLAS, two threads,
    measured while writing), and a ceiling that a network's convolutions exceed is no ceiling.
    On CUDA only ``torch.mm`` is timed.

    Returns ``{"n", "threads", "library", "median_ms", "gflops_median", "gflops_best", "by_library"}``:
    the GFLOP/s (``2·n³ / time / 10⁹``) at the median and at the fastest run of the faster library,
    its name, and ``{library: GFLOP/s at the median}`` for each library timed.
    """
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    dev = resolve_device(device)
    a = torch.randn(int(n), int(n), dtype=dtype, device=dev)
    b = torch.randn(int(n), int(n), dtype=dtype, device=dev)
    timings: dict[str, list[float]] = {}
    with _threads(threads) as n_threads, torch.inference_mode():
        timings["torch"] = _timed(lambda: torch.mm(a, b), dev, int(warmup), int(runs))
    if dev.type == "cpu":
        from threadpoolctl import threadpool_limits

        a_np, b_np = a.numpy(), b.numpy()
        with threadpool_limits(limits=int(n_threads), user_api="blas"):
            timings["numpy"] = _timed(lambda: a_np @ b_np, dev, int(warmup), int(runs))
    work = 2.0 * float(n) ** 3
    by_library = {lib: work / float(np.median(t)) / 1e9 for lib, t in timings.items()}
    library = max(by_library, key=by_library.get)
    times = timings[library]
    median = float(np.median(times))
    return {"n": int(n), "threads": int(n_threads), "library": library, "median_ms": median * 1e3,
            "gflops_median": work / median / 1e9, "gflops_best": work / min(times) / 1e9, "by_library": by_library}
