"""Training harness: :func:`fit` (seeded, resumable, distributed) and :func:`load_or_train` (cached).

What :func:`fit` guarantees
---------------------------
* **Device**: ``device="auto"`` picks CUDA when present (``salbook.utils.resolve_device``); under
  ``torchrun`` each process takes ``cuda:LOCAL_RANK``.
* **Determinism**: all randomness is a pure function of ``(seed, epoch, rank)``. At the start of
  every epoch the global torch / NumPy / Python generators are re-seeded from it (dropout),
  shuffling uses a ``DistributedSampler`` whose ``torch.Generator`` is seeded with
  ``seed + epoch``, and ``augment`` gets a ``torch.Generator`` seeded from it. On CPU one seed
  therefore gives the same history and weights, and a run resumed after epoch ``k`` ends with
  *exactly* the weights of an uninterrupted run.
* **Checkpoints** (when ``checkpoint_path`` names a folder), written atomically by rank 0 after
  every epoch: ``last.pt`` (model, optimizer, scheduler state, RNG states, epoch, step, history,
  best so far) and ``best.pt`` (weights of the best validated epoch). Both hold only tensors,
  dicts, lists, strings and numbers, so ``torch.load(path, weights_only=True)`` reads them.
  Calling :func:`fit` again with the same folder resumes from ``last.pt``.
* **Distributed**: when ``torch.distributed`` is initialised, or ``WORLD_SIZE > 1`` in the
  environment (``torchrun``), the process group is set up (gloo on CPU, nccl on CUDA), the model
  is wrapped in ``DistributedDataParallel``, each rank trains on its shard, the losses and the
  validation metric are averaged over all ranks, and only rank 0 writes files and shows progress.

Conventions: ``loss_fn(output, batch) -> scalar tensor`` sees the whole (device-resident) batch;
``forward(model, batch)`` defaults to ``model(batch["image"])`` (``model(batch[0])`` for tuple
batches). Epochs are numbered from 1 in the history; schedules receive 0-based indices.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .schedules import ParamSchedule, Schedule
from .utils import (
    atomic_torch_save,
    atomic_write_text,
    cache_dir,
    progress_enabled,
    resolve_device,
    seed_everything,
    stable_hash,
)

__all__ = ["TrainResult", "fit", "load_or_train", "code_version", "model_key", "CHECKPOINT_FORMAT"]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "salbook.train/1"
LAST_NAME, BEST_NAME, FINAL_NAME = "last.pt", "best.pt", "final.pt"

Batch = Any
LossFn = Callable[[Any, Batch], torch.Tensor]
ForwardFn = Callable[[nn.Module, Batch], Any]
MetricFn = Callable[[nn.Module, Any, torch.device], float]
AugmentFn = Callable[[Batch, torch.Generator], Batch]
OptimizerLike = torch.optim.Optimizer | Callable[[Iterator[nn.Parameter]], torch.optim.Optimizer]
_TorchScheduler = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


@dataclass
class TrainResult:
    """What :func:`fit` and :func:`load_or_train` return.

    Attributes
    ----------
    model:
        The trained module (never the DDP wrapper), on the training device, in eval mode. It
        holds the weights of the **best validated epoch** when there was validation data, else
        those of the last epoch.
    history:
        One row per epoch: ``epoch`` (from 1), ``step`` (optimizer steps so far),
        ``train_loss``, ``val_loss`` and ``val_metric`` (NaN on epochs without validation),
        ``lr`` (param group 0, at the start of the epoch), any other scheduled hyper-parameter
        (e.g. ``momentum``), and ``seconds`` (wall time of the epoch, training + validation).
    best_epoch, best_metric:
        The best validated epoch and its metric (``None`` without validation data).
    checkpoint_path:
        The checkpoint folder (``None`` when checkpoints were off).
    resumed_from:
        Epochs already done (read from ``last.pt``) when the call started; 0 for a fresh run.
    loaded:
        ``True`` when :func:`load_or_train` loaded a finished model instead of training.
    """

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int | None
    best_metric: float | None
    checkpoint_path: Path | None
    resumed_from: int = 0
    loaded: bool = False


# --------------------------------------------------------------------------------------------
# small helpers


def _derive_seed(*parts: object) -> int:
    """A 60-bit seed from any tuple of values, stable across runs and platforms."""
    digest = hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()
    return int(digest[:15], 16)


def _reseed_globals(seed: int) -> None:
    """Seed the global torch (CPU + CUDA), NumPy and Python generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    """The global generators' states, as tensors and numbers only (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`_rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    npy = state["numpy"]
    np.random.set_state(
        ("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss_next"]))


def _to_device(batch: Batch, device: torch.device) -> Batch:
    """Move every tensor in a (nested dict / list / tuple) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: _to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
        return type(batch)(_to_device(value, device) for value in batch)
    return batch


def _batch_len(batch: Batch) -> int:
    """Number of samples in a batch: the leading size of ``image``, else of its first tensor."""
    if isinstance(batch, Mapping) and isinstance(batch.get("image"), torch.Tensor):
        return int(batch["image"].shape[0])
    if isinstance(batch, Mapping):
        items = list(batch.values())
    else:
        items = list(batch) if isinstance(batch, (list, tuple)) else [batch]
    for item in items:
        if isinstance(item, torch.Tensor) and item.dim() > 0:
            return int(item.shape[0])
    raise TypeError("cannot tell the batch size: the batch holds no tensor with a batch dimension")


def default_forward(model: nn.Module, batch: Batch) -> Any:
    """``model(batch["image"])`` for dict batches, ``model(batch[0])`` for tuple/list batches."""
    if isinstance(batch, Mapping):
        if "image" not in batch:
            raise KeyError(
                f"the batch has no 'image' entry (keys: {sorted(batch)}); pass forward=... to fit "
                "to say how to call the model"
            )
        return model(batch["image"])
    if isinstance(batch, (list, tuple)):
        return model(batch[0])
    return model(batch)


def _default_collate() -> Callable[[list[Any]], Any]:
    """``salbook.data.collate`` when that module exists, else torch's ``default_collate``."""
    import importlib

    from torch.utils.data import default_collate

    try:
        data = importlib.import_module(f"{__package__}.data")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.data":
            raise  # salbook.data exists but one of its imports is missing: say so
        return default_collate
    return getattr(data, "collate", default_collate)


class _ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` of ``range(n)``: an unpadded, unshuffled shard."""

    def __init__(self, n: int, rank: int, world: int) -> None:
        self.n, self.rank, self.world = n, rank, world

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


class _DeviceLoader:
    """Iterate a DataLoader, moving each batch to ``device``; keeps ``len``."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.loader, self.device = loader, device

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.loader:
            yield _to_device(batch, self.device)

    def __len__(self) -> int:
        return len(self.loader)


@dataclass
class _Dist:
    """Where this process stands in a (possibly trivial) process group."""

    enabled: bool = False
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sync_buffers(self, module: nn.Module) -> None:
        """Copy rank 0's buffers (batch-norm running statistics) to every rank.

        DDP broadcasts them before each forward pass, but the last pass of an epoch leaves each
        rank with its own update; validating and checkpointing need one model.
        """
        if self.enabled:
            for buffer in module.buffers():
                dist.broadcast(buffer.data, src=0)

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Sum a list of numbers over all ranks (identity when not distributed)."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()


def _setup_distributed(device: str | torch.device | None) -> tuple[_Dist, torch.device]:
    """Join (or create, under torchrun) the process group; choose this process's device."""
    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and not dist.is_initialized() and env_world > 1:
        asked = "auto" if device is None else str(device)
        wants_cuda = torch.cuda.is_available() and (asked == "auto" or asked.startswith("cuda"))
        dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
        logger.info("initialised torch.distributed (%s), world size %d", dist.get_backend(), env_world)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return _Dist(), resolve_device(device)
    state = _Dist(
        enabled=True,
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", state.local_rank)
        torch.cuda.set_device(dev)
    return state, dev


# --------------------------------------------------------------------------------------------
# schedules


@dataclass
class _Schedules:
    params: ParamSchedule | None = None
    torch_sched: Any = None  # LRScheduler | ReduceLROnPlateau | None

    @property
    def keys(self) -> list[str]:
        return [key for key in (self.params.schedules if self.params else {}) if key != "lr"]


def _resolve_schedule(schedule: Any, optimizer: torch.optim.Optimizer) -> _Schedules:
    if schedule is None:
        return _Schedules()
    if isinstance(schedule, ParamSchedule):
        return _Schedules(params=schedule)
    if isinstance(schedule, Schedule):
        return _Schedules(params=ParamSchedule({"lr": schedule}))
    if isinstance(schedule, _TorchScheduler):
        if schedule.optimizer is not optimizer:
            raise ValueError(
                "the torch lr scheduler was built for another optimizer; pass optimizer as a "
                "factory and schedule as a factory too: schedule=lambda opt: StepLR(opt, ...)"
            )
        return _Schedules(torch_sched=schedule)
    if callable(schedule):
        built = schedule(optimizer)
        if isinstance(built, (ParamSchedule, Schedule, *_TorchScheduler)):
            return _resolve_schedule(built, optimizer)
        raise TypeError(
            f"schedule factory returned {type(built).__name__}; it must return a ParamSchedule, "
            "a Schedule or a torch.optim.lr_scheduler object"
        )
    raise TypeError(
        f"schedule must be None, a ParamSchedule, a Schedule (for the lr), a torch lr scheduler or "
        f"a callable(optimizer) returning one; got {type(schedule).__name__}"
    )


# --------------------------------------------------------------------------------------------
# checkpoints


def _checkpoint_dir(checkpoint_path: str | os.PathLike | None) -> Path | None:
    if checkpoint_path is None:
        return None
    path = Path(checkpoint_path)
    if path.suffix in (".pt", ".pth", ".ckpt"):
        raise ValueError(
            f"checkpoint_path={str(path)!r} looks like a file; pass a folder: fit keeps "
            f"{LAST_NAME} and {BEST_NAME} inside it"
        )
    return path


def _load(path: Path) -> dict[str, Any]:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a foreign or corrupt file: say which and what to do
        raise RuntimeError(f"cannot read checkpoint {path} ({exc}); delete it or pass resume=False") from exc
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(
            f"{path} is not a {CHECKPOINT_FORMAT} checkpoint; delete it, use another folder or pass resume=False"
        )
    return blob


def _state_dict_cpu(module: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().to("cpu", copy=True) for key, value in module.state_dict().items()}


def _history_records(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with plain Python numbers only (for ``weights_only`` checkpoints)."""
    return [
        {key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()} for row in history
    ]


@dataclass
class _Done:
    """Training progress read back from ``last.pt`` (all empty for a fresh run)."""

    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = dataclass_field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None


def _resume(
    ckpt_dir: Path | None,
    resume: bool,
    seed: int,
    ddp: _Dist,
    core: nn.Module,
    opt: torch.optim.Optimizer,
    scheds: _Schedules,
    total_epochs: int,
) -> _Done:
    """Load ``ckpt_dir/last.pt`` into model, optimizer, scheduler and RNGs; return the progress.

    Without a checkpoint to resume (or with ``resume=False``) nothing is loaded and a stale
    ``best.pt`` from an older run is removed.
    """
    if ckpt_dir is None:
        return _Done()
    last_path = ckpt_dir / LAST_NAME
    if not (resume and last_path.exists()):
        if ddp.is_main and (ckpt_dir / BEST_NAME).exists():
            (ckpt_dir / BEST_NAME).unlink()
        return _Done()
    blob = _load(last_path)
    if int(blob["seed"]) != int(seed):
        raise ValueError(
            f"{last_path} was written with seed={blob['seed']} but fit was called with seed={seed}; "
            "use the same seed, another checkpoint_path, or resume=False"
        )
    if int(blob.get("world_size", 1)) != ddp.world:
        warnings.warn(
            f"{last_path} was written by {blob.get('world_size')} process(es), now {ddp.world}: "
            "the data order after resuming differs from an uninterrupted run",
            stacklevel=3,
        )
    try:
        core.load_state_dict(blob["model"])
    except RuntimeError as exc:
        raise RuntimeError(
            f"{last_path} holds weights for another architecture ({exc}); use another "
            "checkpoint_path or resume=False"
        ) from exc
    opt.load_state_dict(blob["optimizer"])
    if scheds.torch_sched is not None and blob.get("scheduler") is not None:
        scheds.torch_sched.load_state_dict(blob["scheduler"])
    _set_rng_state(blob["rng"])
    done = _Done(
        epoch=int(blob["epoch"]),
        step=int(blob["step"]),
        history=list(blob["history"]),
        best_metric=blob.get("best_metric"),
        best_epoch=blob.get("best_epoch"),
    )
    best_path = ckpt_dir / BEST_NAME
    if done.best_epoch is not None and best_path.exists():
        done.best_state = torch.load(best_path, map_location="cpu", weights_only=True)["model"]
    logger.info("resuming from %s after epoch %d", last_path, done.epoch)
    if done.epoch > total_epochs:
        warnings.warn(
            f"{last_path} already has {done.epoch} epochs, more than the {total_epochs} asked "
            "for; returning it without training",
            stacklevel=3,
        )
    return done


# --------------------------------------------------------------------------------------------
# fit


def _check_fit_args(
    model: Any, loss_fn: Any, train_data: Any, epochs: Any, steps: Any, batch_size: Any, mode: Any, val_every: Any
) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable(output, batch) -> scalar tensor")
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs=... or steps=... (optimizer steps in total)")
    counts = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "val_every": val_every}
    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' (lower metric is better) or 'max', got {mode!r}")
    try:
        n = len(train_data)
    except TypeError as exc:
        raise TypeError("train_data must be a map-style Dataset with __len__") from exc
    if n == 0:
        raise ValueError("train_data is empty")


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    train_data: Dataset,
    val_data: Dataset | None = None,
    *,
    optimizer: OptimizerLike,
    schedule: Any = None,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 32,
    val_batch_size: int | None = None,
    collate_fn: Callable[[list[Any]], Batch] | None = None,
    num_workers: int = 0,
    drop_last: bool = False,
    device: str | torch.device | None = "auto",
    seed: int = 0,
    checkpoint_path: str | os.PathLike | None = None,
    resume: bool = True,
    val_every: int = 1,
    val_metric: MetricFn | None = None,
    mode: Literal["min", "max"] = "min",
    augment: AugmentFn | None = None,
    forward: ForwardFn | None = None,
    grad_clip: float | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``model``; validate, checkpoint and (if a checkpoint exists) resume.

    Parameters
    ----------
    model:
        The module to train (moved to the device in place).
    loss_fn:
        ``loss_fn(output, batch) -> scalar tensor``; ``batch`` is the collated batch on the device.
    train_data, val_data:
        Map-style datasets. ``val_data=None`` skips validation (the last weights are returned).
    optimizer:
        An optimizer over ``model``'s parameters, or a factory ``callable(params) -> Optimizer``
        (called after the model is on its device; preferred).
    schedule:
        ``None``; a :class:`~salbook.schedules.ParamSchedule` (pure, per epoch or per step); a
        :class:`~salbook.schedules.Schedule` (taken as the lr); a ``torch.optim.lr_scheduler``
        object on ``optimizer`` (stepped once per epoch; ``ReduceLROnPlateau`` gets the
        validation metric, else the train loss; its state goes into the checkpoint); or a
        ``callable(optimizer)`` returning any of those.
    epochs, steps:
        Exactly one: the number of epochs, or of optimizer steps (then the last epoch may be
        partial; validation and checkpoints still happen at epoch ends and at the end).
    batch_size, val_batch_size:
        Samples per batch *per process*; ``val_batch_size`` defaults to ``batch_size``.
    collate_fn:
        Builds a batch from a list of samples; default ``salbook.data.collate`` if available,
        else ``torch.utils.data.default_collate``.
    num_workers, drop_last:
        Passed to the DataLoader (``drop_last`` for training only).
    device:
        ``"auto"`` (CUDA if present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    seed:
        Seeds everything; see the module docstring.
    checkpoint_path:
        A folder for ``last.pt`` / ``best.pt``; ``None`` disables checkpoints.
    resume:
        Continue from ``checkpoint_path/last.pt`` when it exists (``False`` starts afresh and
        overwrites it). The seed must match the checkpoint's.
    val_every:
        Validate every ``val_every`` epochs and always after the last.
    val_metric:
        ``callable(model, val_loader, device) -> float`` averaged over the loader's samples
        (under DDP each rank gets its shard; results are averaged weighted by shard size). The
        loader yields batches already on ``device``; the model is unwrapped and in eval mode,
        under ``torch.no_grad``. Default: the mean validation loss.
    mode:
        ``"min"`` if a lower metric is better, ``"max"`` if higher.
    augment:
        ``callable(batch, generator) -> batch`` applied to each training batch (on the device)
        with a ``torch.Generator`` on the device, re-seeded every epoch from ``(seed, epoch, rank)``.
    forward:
        ``callable(model, batch) -> output``; default :func:`default_forward`.
    grad_clip:
        Clip the gradients' global L2 norm to this value before each step.
    progress:
        Show tqdm bars; default ``salbook.utils.progress_enabled()``. Only rank 0 shows them.
    """
    _check_fit_args(model, loss_fn, train_data, epochs, steps, batch_size, mode, val_every)
    ddp, dev = _setup_distributed(device)
    forward = forward or default_forward
    collate = collate_fn or _default_collate()
    show = (progress_enabled() if progress is None else bool(progress)) and ddp.is_main
    ckpt_dir = _checkpoint_dir(checkpoint_path)

    seed_everything(seed)
    core = model.to(dev)
    if isinstance(optimizer, torch.optim.Optimizer):
        opt = optimizer
    elif callable(optimizer):
        opt = optimizer(core.parameters())
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"the optimizer factory returned {type(opt).__name__}, not a torch Optimizer")
    else:
        raise TypeError("optimizer must be a torch Optimizer or a callable(params) -> Optimizer")
    scheds = _resolve_schedule(schedule, opt)
    if ddp.enabled:
        net: nn.Module = nn.parallel.DistributedDataParallel(
            core, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    else:
        net = core

    sampler = DistributedSampler(
        train_data, num_replicas=ddp.world, rank=ddp.rank, shuffle=True, seed=seed, drop_last=drop_last
    )

    def train_loader(epoch_index: int) -> _DeviceLoader:
        sampler.set_epoch(epoch_index)
        loader = DataLoader(
            train_data,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=num_workers,
            drop_last=drop_last,
            pin_memory=dev.type == "cuda",
            generator=torch.Generator().manual_seed(_derive_seed(seed, epoch_index, ddp.rank, "loader")),
        )
        return _DeviceLoader(loader, dev)

    val_loader = None
    if val_data is not None:
        val_loader = _DeviceLoader(
            DataLoader(
                val_data,
                batch_size=val_batch_size or batch_size,
                sampler=_ShardSampler(len(val_data), ddp.rank, ddp.world),
                collate_fn=collate,
                num_workers=num_workers,
                pin_memory=dev.type == "cuda",
            ),
            dev,
        )

    batches_per_epoch = len(train_loader(0))
    if batches_per_epoch == 0:
        raise ValueError(
            f"no training batch: {len(train_data)} samples over {ddp.world} process(es) with "
            f"batch_size={batch_size} and drop_last=True; lower batch_size or set drop_last=False"
        )
    total_epochs = int(epochs) if epochs is not None else math.ceil(int(steps) / batches_per_epoch)

    done = _resume(ckpt_dir, resume, seed, ddp, core, opt, scheds, total_epochs)
    history, start_epoch, global_step = done.history, done.epoch, done.step
    best_metric, best_epoch, best_state = done.best_metric, done.best_epoch, done.best_state
    resumed_from = start_epoch

    def better(metric: float) -> bool:
        if math.isnan(metric):
            return False
        if best_metric is None:
            return True
        return metric < best_metric if mode == "min" else metric > best_metric

    def save_last(epoch_done: int) -> None:
        if ckpt_dir is None or not ddp.is_main:
            return
        blob = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch_done,
            "step": global_step,
            "seed": int(seed),
            "world_size": ddp.world,
            "model": _state_dict_cpu(core),
            "optimizer": opt.state_dict(),
            "scheduler": scheds.torch_sched.state_dict() if scheds.torch_sched is not None else None,
            "rng": _rng_state(),
            "history": _history_records(history),
            "best_metric": best_metric,
            "best_epoch": best_epoch,
            "mode": mode,
        }
        atomic_torch_save(blob, ckpt_dir / LAST_NAME)

    from tqdm.auto import tqdm

    epoch_bar = tqdm(
        range(start_epoch, total_epochs), initial=start_epoch, total=total_epochs, desc="epochs", disable=not show
    )
    for epoch_index in epoch_bar:
        started = time.perf_counter()
        epoch_seed = _derive_seed(seed, epoch_index, ddp.rank)
        _reseed_globals(epoch_seed)
        aug_gen = torch.Generator(device=dev).manual_seed(_derive_seed(seed, epoch_index, ddp.rank, "augment"))
        scheduled: dict[str, float] = {}
        if scheds.params is not None and scheds.params.unit == "epoch":
            scheduled = scheds.params.apply(opt, epoch_index)

        row: dict[str, Any] = {"epoch": epoch_index + 1, "lr": float(opt.param_groups[0]["lr"])}
        for key in scheds.keys:
            row[key] = scheduled.get(key, opt.param_groups[0].get(key))

        net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        seen = 0
        loader = train_loader(epoch_index)
        for batch in tqdm(loader, desc=f"epoch {epoch_index + 1}", leave=False, disable=not show):
            if steps is not None and global_step >= int(steps):
                break
            if scheds.params is not None and scheds.params.unit == "step":
                scheds.params.apply(opt, global_step)
            if augment is not None:
                batch = augment(batch, aug_gen)
            loss = loss_fn(forward(net, batch), batch)
            if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                raise TypeError(
                    f"loss_fn must return a scalar tensor, got "
                    f"{type(loss).__name__}{'' if not isinstance(loss, torch.Tensor) else tuple(loss.shape)}; "
                    "reduce it with .mean() or .sum()"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(core.parameters(), grad_clip)
            opt.step()
            global_step += 1
            n = _batch_len(batch)
            loss_sum += loss.detach().to(torch.float64) * n
            seen += n
        ddp.sync_buffers(core)
        total_loss, total_seen = ddp.sum([float(loss_sum), float(seen)], dev)
        row["train_loss"] = total_loss / total_seen if total_seen else math.nan
        if not math.isfinite(row["train_loss"]):
            raise FloatingPointError(
                f"training loss is {row['train_loss']} in epoch {epoch_index + 1}; lower the learning "
                "rate or check the loss and the data"
            )
        row["step"] = global_step

        last_epoch = epoch_index + 1 == total_epochs
        val_loss = metric = math.nan
        if val_loader is not None and ((epoch_index + 1) % val_every == 0 or last_epoch):
            val_loss, metric = _validate(core, loss_fn, forward, val_loader, val_metric, dev, ddp)
            if better(metric):
                best_metric, best_epoch = float(metric), epoch_index + 1
                best_state = _state_dict_cpu(core)
                if ckpt_dir is not None and ddp.is_main:
                    atomic_torch_save(
                        {
                            "format": CHECKPOINT_FORMAT,
                            "epoch": best_epoch,
                            "metric": best_metric,
                            "model": best_state,
                        },
                        ckpt_dir / BEST_NAME,
                    )
        row["val_loss"], row["val_metric"] = float(val_loss), float(metric)

        if scheds.torch_sched is not None:
            if isinstance(scheds.torch_sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheds.torch_sched.step(row["train_loss"] if math.isnan(metric) else metric)
            else:
                scheds.torch_sched.step()

        row["seconds"] = time.perf_counter() - started
        history.append(row)
        save_last(epoch_index + 1)
        ddp.barrier()
        epoch_bar.set_postfix(
            train_loss=f"{row['train_loss']:.4g}", **({"val": f"{metric:.4g}"} if not math.isnan(metric) else {})
        )
    epoch_bar.close()

    if best_state is not None:
        core.load_state_dict(best_state)
    core.eval()
    columns = ["epoch", "step", "train_loss", "val_loss", "val_metric", "lr", *scheds.keys, "seconds"]
    frame = pd.DataFrame(history)
    frame = frame.reindex(columns=[*columns, *[c for c in frame.columns if c not in columns]])
    return TrainResult(
        model=core,
        history=frame,
        best_epoch=best_epoch,
        best_metric=best_metric,
        checkpoint_path=ckpt_dir,
        resumed_from=resumed_from,
    )


def _validate(
    core: nn.Module,
    loss_fn: LossFn,
    forward: ForwardFn,
    loader: _DeviceLoader,
    val_metric: MetricFn | None,
    dev: torch.device,
    ddp: _Dist,
) -> tuple[float, float]:
    """Mean validation loss and metric over all ranks' shards (weighted by samples)."""
    core.eval()
    loss_sum, seen = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            n = _batch_len(batch)
            loss_sum += float(loss_fn(forward(core, batch), batch)) * n
            seen += n
        local_metric = 0.0
        if val_metric is not None and seen:
            local_metric = float(val_metric(core, loader, dev))
    total_loss, total_seen, metric_sum = ddp.sum([loss_sum, float(seen), local_metric * seen], dev)
    if total_seen == 0:
        raise ValueError("val_data is empty; pass val_data=None to train without validation")
    val_loss = total_loss / total_seen
    metric = val_loss if val_metric is None else metric_sum / total_seen
    return val_loss, metric


# --------------------------------------------------------------------------------------------
# cached training


@lru_cache(maxsize=1)
def code_version() -> str:
    """A 16-hex-digit hash of the salbook package's source files (paths and contents).

    Any edit to any ``salbook/**/*.py`` changes it, so cached models are never silently reused
    with different code.
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def model_key(config: Mapping[str, Any], seed: int = 0) -> str:
    """The cache key of a trained model: a hash of ``config``, ``seed`` and :func:`code_version`."""
    return stable_hash({"config": dict(config), "seed": int(seed), "code": code_version()})


_RESERVED = ("checkpoint_path", "seed", "device", "resume")


def load_or_train(
    config: Mapping[str, Any],
    build_model: Callable[[], nn.Module],
    train_kwargs: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    *,
    seed: int = 0,
    cache: str | os.PathLike | None = None,
    device: str | torch.device | None = "auto",
    log: Callable[[str], None] | None = print,
    keep_checkpoints: bool = False,
) -> TrainResult:
    """Return the trained model for ``config``: load it from the cache, or train and cache it.

    Parameters
    ----------
    config:
        Everything that determines the trained model (architecture, data, epochs, optimiser
        settings...), JSON-serialisable. The cache key is ``stable_hash`` of it, ``seed`` and
        :func:`code_version`, so changing any of them (or any salbook source file) trains anew.
    build_model:
        ``callable() -> nn.Module``, called after ``seed_everything(seed)``; needed both to load
        weights and to train.
    train_kwargs:
        The keyword arguments of :func:`fit` other than ``model`` (``loss_fn``, ``train_data``,
        ``optimizer``, ``epochs``...), or a zero-argument callable returning them (called only
        when training is needed, so loading never builds datasets). ``checkpoint_path``,
        ``seed``, ``device`` and ``resume`` are set here and must not be in it.
    seed, device:
        Passed to :func:`fit` (``seed`` also seeds ``build_model``).
    cache:
        Root folder of the model cache; default ``salbook.utils.cache_dir("models")``. The model
        lives in ``<cache>/<key>/``: ``final.pt`` when finished, ``last.pt`` / ``best.pt`` while
        training (an interrupted run resumes), ``config.json`` for humans.
    log:
        Called with one line saying whether the model was loaded or trained (``None``: silent).
    keep_checkpoints:
        Keep ``last.pt`` and ``best.pt`` after ``final.pt`` is written. By default they are
        removed then: they exist to resume an interrupted run, and with the optimiser state they
        can be twice the model's size (about 0.5 GB each for Pan et al.'s 64 M-parameter net).

    ``final.pt`` holds ``model`` (state dict), ``history`` (list of row dicts), ``best_epoch``,
    ``best_metric``, ``key``, ``code`` and ``config`` (JSON text); it loads with
    ``torch.load(..., weights_only=True)``.
    """
    key = model_key(config, seed)
    folder = Path(cache) / key if cache is not None else cache_dir("models", key)
    final = folder / FINAL_NAME
    say = log or (lambda _msg: None)

    seed_everything(seed)
    model = build_model()
    if not isinstance(model, nn.Module):
        raise TypeError(f"build_model must return an nn.Module, got {type(model).__name__}")

    if final.exists():
        blob = torch.load(final, map_location="cpu", weights_only=True)
        model.load_state_dict(blob["model"])
        model.to(_setup_distributed(device)[1]).eval()
        say(f"loaded trained model from {final}")
        return TrainResult(
            model=model,
            history=pd.DataFrame(blob["history"]),
            best_epoch=blob.get("best_epoch"),
            best_metric=blob.get("best_metric"),
            checkpoint_path=folder,
            loaded=True,
        )

    kwargs = dict(train_kwargs() if callable(train_kwargs) else train_kwargs)
    clash = [name for name in _RESERVED if name in kwargs]
    if clash:
        raise ValueError(f"train_kwargs must not set {clash}; load_or_train sets them (pass seed/device to it)")
    if (folder / LAST_NAME).exists():
        say(f"resuming interrupted training in {folder}")
    else:
        say(f"training from scratch in {folder} (key {key})")
    result = fit(model, **kwargs, seed=seed, device=device, checkpoint_path=folder, resume=True)

    is_main = not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
    if is_main:
        config_text = json.dumps(dict(config), sort_keys=True, indent=2, default=str)
        atomic_torch_save(
            {
                "format": CHECKPOINT_FORMAT,
                "key": key,
                "code": code_version(),
                "config": config_text,
                "model": _state_dict_cpu(result.model),
                "history": _history_records(result.history.to_dict(orient="records")),
                "best_epoch": result.best_epoch,
                "best_metric": result.best_metric,
            },
            final,
        )
        atomic_write_text(folder / "config.json", config_text + "\n")
        if not keep_checkpoints:
            for name in (LAST_NAME, BEST_NAME):
                (folder / name).unlink(missing_ok=True)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    say(f"saved trained model to {final}")
    return result

