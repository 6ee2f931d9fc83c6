"""The training loop: :class:`Trainer` (the state of one run, in small steps) and :func:`fit`.

What :func:`fit` guarantees
---------------------------
* **Device**: ``device="auto"`` picks CUDA when present (``salbook.utils.resolve_device``); under
  ``torchrun`` each process takes ``cuda:LOCAL_RANK``.
* **Determinism**: all randomness is a pure function of ``(seed, epoch, rank)``. At the start of
  every epoch the global torch / NumPy / Python generators are re-seeded from it (dropout),
  shuffling uses a ``DistributedSampler`` whose ``torch.Generator`` is seeded with
  ``seed + epoch``, and ``augment`` gets a ``torch.Generator`` seeded from it. On CPU one seed
  therefore gives the same history and weights, and a run resumed after epoch ``k`` ends with
  *exactly* the weights of an uninterrupted run — also when a callback changed the architecture
  (pruned) before the interruption, provided ``rebuild_model`` can rebuild it from its spec.
* **Checkpoints** (when ``checkpoint_path`` names a folder), written atomically by rank 0 after
  every epoch: ``last.pt`` (model, optimizer, scheduler state, RNG states, epoch, step, history,
  best so far, architecture spec, lr scale, callback states) and ``best.pt`` (weights of the best
  validated epoch). Both load with ``torch.load(path, weights_only=True)``. Calling :func:`fit`
  again with the same folder resumes from ``last.pt``.
* **Distributed**: when ``torch.distributed`` is initialised, or ``WORLD_SIZE > 1`` in the
  environment (``torchrun``), the process group is set up (gloo on CPU, nccl on CUDA), the model
  is wrapped in ``DistributedDataParallel``, each rank trains on its shard, the losses and the
  validation metric are averaged over all ranks, and only rank 0 writes files and shows progress.

Conventions: ``loss_fn(output, batch)`` sees the whole (device-resident) batch and returns a
scalar tensor, or a dict of named scalar terms that are summed (each logged as ``loss_<name>``);
``regularizers`` see ``(model, batch, output)``; ``forward(model, batch)`` defaults to
``model(batch["image"])`` (``model(batch[0])`` for tuple batches). Epochs are numbered from 1 in
the history; schedules and callbacks receive 0-based indices.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from ..schedules import ParamSchedule, Schedule
from ..utils import atomic_torch_save, progress_enabled, seed_everything
from .callbacks import Callback, Regularizer
from .checkpoint import (
    BEST_NAME,
    CHECKPOINT_FORMAT,
    LAST_NAME,
    checkpoint_dir,
    derive_seed,
    load_checkpoint,
    plain_records,
    reseed_globals,
    rng_state,
    set_rng_state,
    state_dict_cpu,
)
from .distributed import DistState, ShardSampler, setup_distributed
from .optim import apply_learning_rates, remember_base_learning_rates

__all__ = ["TrainResult", "Trainer", "fit", "default_forward"]

logger = logging.getLogger(__name__)

Batch = Any
LossFn = Callable[[Any, Batch], "torch.Tensor | Mapping[str, torch.Tensor]"]
ForwardFn = Callable[[nn.Module, Batch], Any]
MetricFn = Callable[[nn.Module, Any, torch.device], float]
AugmentFn = Callable[[Batch, torch.Generator], Batch]
OptimizerLike = torch.optim.Optimizer | Callable[[Any], torch.optim.Optimizer]
_TorchScheduler = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


@dataclass
class TrainResult:
    """What :func:`fit` and :func:`salbook.train.load_or_train` return.

    Attributes
    ----------
    model:
        The trained module (never the DDP wrapper), on the training device, in eval mode. It
        holds the weights of the **best validated epoch** when there was validation data (since
        the last architecture change), else those of the last epoch.
    history:
        One row per epoch: ``epoch`` (from 1), ``step`` (optimizer steps so far),
        ``train_loss`` (the optimised objective: loss + regularisers), ``val_loss`` and
        ``val_metric`` (NaN on epochs without validation), ``lr`` (param group 0, at the start of
        the epoch), any other scheduled hyper-parameter (e.g. ``momentum``), ``loss_<term>`` and
        ``reg_<name>`` epoch means when there are several terms, columns callbacks add, and
        ``seconds`` (wall time of the epoch, training + validation).
    best_epoch, best_metric:
        The best validated epoch and its metric (``None`` without validation data).
    checkpoint_path:
        The checkpoint folder (``None`` when checkpoints were off).
    resumed_from:
        Epochs already done (read from ``last.pt``) when the call started; 0 for a fresh run.
    loaded:
        ``True`` when :func:`~salbook.train.load_or_train` loaded a finished model instead of training.
    architecture:
        The architecture spec of the returned model (``None``: as built; set by a callback that
        changed the architecture, e.g. a pruned width table).
    """

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int | None
    best_metric: float | None
    checkpoint_path: Path | None
    resumed_from: int = 0
    loaded: bool = False
    architecture: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------
# batches


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
    items = list(batch.values()) if isinstance(batch, Mapping) else (
        list(batch) if isinstance(batch, (list, tuple)) else [batch])
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


class _DeviceLoader:
    """Iterate a DataLoader, moving each batch to ``device``; keeps ``len``."""

    def __init__(self, loader: Any, device: torch.device) -> None:
        self.loader, self.device = loader, device

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.loader:
            yield _to_device(batch, self.device)

    def __len__(self) -> int:
        return len(self.loader)


def _loss_terms(value: Any) -> dict[str, torch.Tensor]:
    """A loss value as named scalar terms (a bare tensor is the single term ``"loss"``)."""
    terms = dict(value) if isinstance(value, Mapping) else {"loss": value}
    for name, term in terms.items():
        if not isinstance(term, torch.Tensor) or term.dim() != 0:
            shape = tuple(term.shape) if isinstance(term, torch.Tensor) else ""
            raise TypeError(
                f"loss_fn must return a scalar tensor (or a dict of them), got {type(term).__name__}{shape} "
                f"for {name!r}; reduce it with .mean() or .sum()"
            )
    return terms


# --------------------------------------------------------------------------------------------
# schedules


@dataclass
class _Schedules:
    params: ParamSchedule | None = None
    torch_sched: Any = None  # LRScheduler | ReduceLROnPlateau | None
    factory: Callable[[torch.optim.Optimizer], Any] | None = None

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
            resolved = _resolve_schedule(built, optimizer)
            resolved.factory = schedule
            return resolved
        raise TypeError(
            f"schedule factory returned {type(built).__name__}; it must return a ParamSchedule, "
            "a Schedule or a torch.optim.lr_scheduler object"
        )
    raise TypeError(
        f"schedule must be None, a ParamSchedule, a Schedule (for the lr), a torch lr scheduler or "
        f"a callable(optimizer) returning one; got {type(schedule).__name__}"
    )


# --------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """The state of one :func:`fit` run, in small steps; callbacks receive it.

    Attributes a callback may read: ``model`` (the unwrapped module), ``net`` (the module that
    trains: DDP wrapper or ``model``), ``optimizer``, ``device``, ``seed``, ``epoch`` (0-based
    index of the current epoch), ``step`` (optimizer steps done), ``history`` (rows of finished
    epochs), ``best_metric`` / ``best_epoch`` / ``best_state``, ``architecture``. It may set
    ``lr_scale`` (multiplies every scheduled learning rate from the next application on) and
    ``stop_training`` (ends the run after the current epoch), call :meth:`rebuild_optimizer`,
    and change the architecture with :meth:`set_model`.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        optimizer: OptimizerLike,
        param_groups: Callable[[nn.Module], Any] | None,
        schedule: Any,
        device: torch.device,
        ddp: DistState,
        seed: int,
        mode: Literal["min", "max"],
        callbacks: Sequence[Callback],
        rebuild_model: Callable[[dict[str, Any]], nn.Module] | None,
    ) -> None:
        self.device, self.ddp, self.seed, self.mode = device, ddp, int(seed), mode
        self.callbacks = list(callbacks)
        self.rebuild_model = rebuild_model
        self._optimizer_arg, self._param_groups = optimizer, param_groups
        self._schedule_arg = schedule
        self.epoch = 0
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.architecture: dict[str, Any] | None = None
        self.lr_scale = 1.0
        self.stop_training = False
        self._hparam_index: int | None = None
        self.model = model.to(device)
        self.optimizer = self._build_optimizer()
        self.schedules = _resolve_schedule(schedule, self.optimizer)
        self.net = ddp.wrap(self.model, device)

    # ---------------------------------------------------------------- optimiser and architecture

    def _build_optimizer(self) -> torch.optim.Optimizer:
        params = self._param_groups(self.model) if self._param_groups is not None else self.model.parameters()
        if isinstance(self._optimizer_arg, torch.optim.Optimizer):
            if self._param_groups is not None:
                raise TypeError("param_groups needs optimizer to be a factory callable(params) -> Optimizer")
            opt = self._optimizer_arg
        elif callable(self._optimizer_arg):
            opt = self._optimizer_arg(params)
            if not isinstance(opt, torch.optim.Optimizer):
                raise TypeError(f"the optimizer factory returned {type(opt).__name__}, not a torch Optimizer")
        else:
            raise TypeError("optimizer must be a torch Optimizer or a callable(params) -> Optimizer")
        remember_base_learning_rates(opt)
        return opt

    def rebuild_optimizer(self) -> None:
        """Build a fresh optimizer (and torch scheduler) over the current model's parameters.

        Needs ``optimizer`` (and a torch ``schedule``) given as factories. The scheduled
        hyper-parameters of the current epoch/step are applied again; the optimizer's running
        state (momentum, Adam moments) starts afresh.
        """
        if isinstance(self._optimizer_arg, torch.optim.Optimizer):
            raise TypeError(
                "cannot rebuild the optimizer: fit was given an Optimizer instance; pass a factory "
                "callable(params) -> Optimizer (e.g. salbook.train.sgd(...)) instead"
            )
        old_sched = self.schedules
        self.optimizer = self._build_optimizer()
        if old_sched.torch_sched is not None:
            if old_sched.factory is None:
                raise TypeError("cannot rebuild a torch lr scheduler instance; pass schedule as a factory")
            new = _resolve_schedule(old_sched.factory, self.optimizer)
            new.torch_sched.load_state_dict(old_sched.torch_sched.state_dict())
            self.schedules = new
        if self._hparam_index is not None:
            self.apply_hyperparameters(self._hparam_index)

    def set_model(self, model: nn.Module, architecture: dict[str, Any] | None) -> None:
        """Replace the model by ``model`` (e.g. a pruned copy) described by ``architecture``.

        ``architecture`` is a JSON-friendly spec from which ``rebuild_model`` (an argument of
        :func:`fit`) rebuilds the same module when a run resumes. The optimizer is rebuilt, and
        the best-so-far bookkeeping restarts: weights of another architecture cannot be put back.
        """
        self.model = model.to(self.device)
        self.architecture = None if architecture is None else dict(architecture)
        self.best_metric = self.best_epoch = self.best_state = None
        self.rebuild_optimizer()
        self.net = self.ddp.wrap(self.model, self.device)

    # ---------------------------------------------------------------- hyper-parameters

    def apply_hyperparameters(self, index: int) -> dict[str, float]:
        """Apply the schedule's values at ``index`` (epoch or step) and the lr scale; return them."""
        self._hparam_index = index
        if self.schedules.params is not None:
            values = self.schedules.params.apply(self.optimizer, index, self.lr_scale)
            if "lr" not in values:
                apply_learning_rates(self.optimizer, None, self.lr_scale)
            return values
        if self.schedules.torch_sched is not None:
            if self.lr_scale != 1.0:
                raise ValueError("lr_scale cannot be combined with a torch lr scheduler; use a ParamSchedule")
            return {}
        apply_learning_rates(self.optimizer, None, self.lr_scale)
        return {}

    # ---------------------------------------------------------------- best model

    def better(self, metric: float) -> bool:
        if math.isnan(metric):
            return False
        if self.best_metric is None:
            return True
        return metric < self.best_metric if self.mode == "min" else metric > self.best_metric

    def load_best(self) -> bool:
        """Put the best validated weights back into the model; False when there are none yet."""
        if self.best_state is None:
            return False
        self.model.load_state_dict(self.best_state)
        return True

    # ---------------------------------------------------------------- checkpoints

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly (plain types and tensors only)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "step": self.step,
            "seed": self.seed,
            "world_size": self.ddp.world,
            "model": state_dict_cpu(self.model),
            "architecture": self.architecture,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedules.torch_sched.state_dict() if self.schedules.torch_sched is not None else None,
            "lr_scale": self.lr_scale,
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "rng": rng_state(),
            "history": plain_records(self.history),
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "mode": self.mode,
        }

    def restore(self, blob: Mapping[str, Any], path: Path, best_path: Path) -> None:
        """Load a :meth:`checkpoint` (rebuilding a changed architecture first)."""
        if int(blob["seed"]) != self.seed:
            raise ValueError(
                f"{path} was written with seed={blob['seed']} but fit was called with seed={self.seed}; "
                "use the same seed, another checkpoint_path, or resume=False"
            )
        if int(blob.get("world_size", 1)) != self.ddp.world:
            warnings.warn(
                f"{path} was written by {blob.get('world_size')} process(es), now {self.ddp.world}: "
                "the data order after resuming differs from an uninterrupted run",
                stacklevel=4,
            )
        architecture = blob.get("architecture")
        if architecture is not None and architecture != self.architecture:
            if self.rebuild_model is None:
                raise RuntimeError(
                    f"{path} holds a model whose architecture a callback changed ({architecture}); pass "
                    "rebuild_model=callable(spec) -> nn.Module to fit so the run can resume"
                )
            self.set_model(self.rebuild_model(architecture), architecture)
        try:
            self.model.load_state_dict(blob["model"])
        except RuntimeError as exc:
            raise RuntimeError(
                f"{path} holds weights for another architecture ({exc}); use another "
                "checkpoint_path or resume=False"
            ) from exc
        self.optimizer.load_state_dict(blob["optimizer"])
        if self.schedules.torch_sched is not None and blob.get("scheduler") is not None:
            self.schedules.torch_sched.load_state_dict(blob["scheduler"])
        self.lr_scale = float(blob.get("lr_scale", 1.0))
        states = blob.get("callbacks") or []
        if states and len(states) != len(self.callbacks):
            raise RuntimeError(
                f"{path} holds the state of {len(states)} callback(s) but fit got {len(self.callbacks)}; "
                "resume with the same callbacks or pass resume=False"
            )
        for callback, state in zip(self.callbacks, states):
            callback.load_state_dict(state)
        set_rng_state(blob["rng"])
        self.epoch, self.step = int(blob["epoch"]), int(blob["step"])
        self.history = list(blob["history"])
        self.best_metric, self.best_epoch = blob.get("best_metric"), blob.get("best_epoch")
        if self.best_epoch is not None and best_path.exists():
            self.best_state = torch.load(best_path, map_location="cpu", weights_only=True)["model"]
        logger.info("resuming from %s after epoch %d", path, self.epoch)

    def emit(self, hook: str, *args: Any) -> None:
        """Call ``hook`` on every callback, in order."""
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)


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


def _validate(
    model: nn.Module,
    loss_fn: LossFn,
    forward: ForwardFn,
    loader: _DeviceLoader,
    val_metric: MetricFn | None,
    dev: torch.device,
    ddp: DistState,
) -> tuple[float, float]:
    """Mean validation loss (the loss terms summed, no regularisers) and metric over all ranks."""
    model.eval()
    loss_sum, seen = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            n = _batch_len(batch)
            loss_sum += float(sum(_loss_terms(loss_fn(forward(model, batch), batch)).values())) * n
            seen += n
        local_metric = 0.0
        if val_metric is not None and seen:
            local_metric = float(val_metric(model, loader, dev))
    total_loss, total_seen, metric_sum = ddp.sum([loss_sum, float(seen), local_metric * seen], dev)
    if total_seen == 0:
        raise ValueError("val_data is empty; pass val_data=None to train without validation")
    val_loss = total_loss / total_seen
    metric = val_loss if val_metric is None else metric_sum / total_seen
    return val_loss, metric


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    train_data: Dataset,
    val_data: Dataset | None = None,
    *,
    optimizer: OptimizerLike,
    param_groups: Callable[[nn.Module], Any] | None = None,
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
    regularizers: Mapping[str, Regularizer] | None = None,
    callbacks: Sequence[Callback] = (),
    rebuild_model: Callable[[dict[str, Any]], nn.Module] | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``model``; validate, checkpoint and (if a checkpoint exists) resume.

    Parameters
    ----------
    model:
        The module to train (moved to the device in place).
    loss_fn:
        ``loss_fn(output, batch)`` -> scalar tensor, or a dict of named scalar terms (summed;
        each term's epoch mean is logged as ``loss_<name>``); ``batch`` is the collated batch
        on the device. A loss that needs more (a teacher network) holds it itself.
    train_data, val_data:
        Map-style datasets. ``val_data=None`` skips validation (the last weights are returned).
    optimizer:
        A factory ``callable(params) -> Optimizer`` (preferred: it is called after the model is
        on its device and again whenever the architecture changes; see
        :mod:`salbook.train.optim`), or an optimizer instance over ``model``'s parameters.
    param_groups:
        ``callable(model) -> list of param-group dicts`` handed to the optimizer factory instead
        of ``model.parameters()``; groups may carry ``lr_mult`` and ``weight_decay``
        (:func:`salbook.train.optim.param_groups` builds them from rules).
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
        Builds a batch from a list of samples; default :func:`salbook.data.collate`.
    num_workers, drop_last:
        Passed to the loader (``drop_last`` for training only).
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
    regularizers:
        ``{name: callable(model, batch, output) -> scalar tensor}`` added to the training loss
        (not to the validation loss); epoch means logged as ``reg_<name>``.
    callbacks:
        :class:`~salbook.train.callbacks.Callback` objects (see that module for the hooks).
    rebuild_model:
        ``callable(architecture_spec) -> nn.Module``: rebuilds a model whose architecture a
        callback changed (with :meth:`Trainer.set_model`), so that such a run can resume.
    progress:
        Show tqdm bars; default ``salbook.utils.progress_enabled()``. Only rank 0 shows them.
    """
    from ..data import collate as default_collate, make_loader

    _check_fit_args(model, loss_fn, train_data, epochs, steps, batch_size, mode, val_every)
    ddp, dev = setup_distributed(device)
    forward = forward or default_forward
    collate = collate_fn or default_collate
    show = (progress_enabled() if progress is None else bool(progress)) and ddp.is_main
    ckpt_dir = checkpoint_dir(checkpoint_path)
    regularizers = dict(regularizers or {})

    seed_everything(seed)
    trainer = Trainer(model, optimizer=optimizer, param_groups=param_groups, schedule=schedule, device=dev,
                      ddp=ddp, seed=seed, mode=mode, callbacks=callbacks, rebuild_model=rebuild_model)

    sampler = DistributedSampler(
        train_data, num_replicas=ddp.world, rank=ddp.rank, shuffle=True, seed=seed, drop_last=drop_last
    )

    def train_loader(epoch_index: int) -> _DeviceLoader:
        sampler.set_epoch(epoch_index)
        return _DeviceLoader(make_loader(
            train_data, batch_size=batch_size, sampler=sampler, collate_fn=collate, num_workers=num_workers,
            drop_last=drop_last, pin_memory=dev.type == "cuda", seed=derive_seed(seed, epoch_index, ddp.rank, "loader"),
        ), dev)

    val_loader = None
    if val_data is not None:
        val_loader = _DeviceLoader(make_loader(
            val_data, batch_size=val_batch_size or batch_size, sampler=ShardSampler(len(val_data), ddp.rank, ddp.world),
            collate_fn=collate, num_workers=num_workers, pin_memory=dev.type == "cuda",
        ), dev)

    batches_per_epoch = len(train_loader(0))
    if batches_per_epoch == 0:
        raise ValueError(
            f"no training batch: {len(train_data)} samples over {ddp.world} process(es) with "
            f"batch_size={batch_size} and drop_last=True; lower batch_size or set drop_last=False"
        )
    total_epochs = int(epochs) if epochs is not None else math.ceil(int(steps) / batches_per_epoch)

    if ckpt_dir is not None:
        last_path, best_path = ckpt_dir / LAST_NAME, ckpt_dir / BEST_NAME
        if resume and last_path.exists():
            trainer.restore(load_checkpoint(last_path), last_path, best_path)
            if trainer.epoch > total_epochs:
                warnings.warn(
                    f"{last_path} already has {trainer.epoch} epochs, more than the {total_epochs} asked "
                    "for; returning it without training",
                    stacklevel=2,
                )
        elif ddp.is_main and best_path.exists():
            best_path.unlink()  # a stale best.pt of an older run
    resumed_from = trainer.epoch

    from tqdm.auto import tqdm

    trainer.emit("on_fit_start")
    epoch_bar = tqdm(range(resumed_from, total_epochs), initial=resumed_from, total=total_epochs, desc="epochs",
                     disable=not show)
    for epoch_index in epoch_bar:
        started = time.perf_counter()
        trainer.epoch = epoch_index
        reseed_globals(derive_seed(seed, epoch_index, ddp.rank))
        aug_gen = torch.Generator(device=dev).manual_seed(derive_seed(seed, epoch_index, ddp.rank, "augment"))
        trainer.emit("on_epoch_start")
        per_step = trainer.schedules.params is not None and trainer.schedules.params.unit == "step"
        scheduled = {} if per_step else trainer.apply_hyperparameters(epoch_index)

        row: dict[str, Any] = {"epoch": epoch_index + 1, "lr": float(trainer.optimizer.param_groups[0]["lr"])}
        for key in trainer.schedules.keys:
            row[key] = scheduled.get(key, trainer.optimizer.param_groups[0].get(key))

        sums = _train_epoch(trainer, train_loader(epoch_index), loss_fn, forward, augment, regularizers,
                            grad_clip, steps, aug_gen, per_step, show)
        ddp.sync_buffers(trainer.model)
        names = sorted(sums)
        totals = ddp.sum([sums[name] for name in names], dev)
        means = {name: value for name, value in zip(names, totals)}
        seen = means.pop("_seen")
        row["train_loss"] = means.pop("_total") / seen if seen else math.nan
        if not math.isfinite(row["train_loss"]):
            raise FloatingPointError(
                f"training loss is {row['train_loss']} in epoch {epoch_index + 1}; lower the learning "
                "rate or check the loss and the data"
            )
        if len(means) > 1 or regularizers:
            row.update({name: value / seen for name, value in means.items()})
        row["step"] = trainer.step

        last_epoch = epoch_index + 1 == total_epochs
        val_loss = metric = math.nan
        if val_loader is not None and ((epoch_index + 1) % val_every == 0 or last_epoch):
            val_loss, metric = _validate(trainer.model, loss_fn, forward, val_loader, val_metric, dev, ddp)
            if trainer.better(metric):
                trainer.best_metric, trainer.best_epoch = float(metric), epoch_index + 1
                trainer.best_state = state_dict_cpu(trainer.model)
                if ckpt_dir is not None and ddp.is_main:
                    atomic_torch_save({"format": CHECKPOINT_FORMAT, "epoch": trainer.best_epoch,
                                       "metric": trainer.best_metric, "architecture": trainer.architecture,
                                       "model": trainer.best_state}, ckpt_dir / BEST_NAME)
            trainer.emit("on_validation", float(val_loss), float(metric))
        row["val_loss"], row["val_metric"] = float(val_loss), float(metric)

        if trainer.schedules.torch_sched is not None:
            if isinstance(trainer.schedules.torch_sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                trainer.schedules.torch_sched.step(row["train_loss"] if math.isnan(metric) else metric)
            else:
                trainer.schedules.torch_sched.step()

        trainer.emit("on_epoch_end", row)
        row["seconds"] = time.perf_counter() - started
        trainer.history.append(row)
        trainer.epoch = epoch_index + 1  # epochs done, as the checkpoint counts them
        if ckpt_dir is not None and ddp.is_main:
            atomic_torch_save(trainer.checkpoint(), ckpt_dir / LAST_NAME)
        ddp.barrier()
        epoch_bar.set_postfix(
            train_loss=f"{row['train_loss']:.4g}", **({"val": f"{metric:.4g}"} if not math.isnan(metric) else {})
        )
        if trainer.stop_training:
            break
    epoch_bar.close()
    trainer.emit("on_fit_end")

    trainer.load_best()
    trainer.model.eval()
    columns = ["epoch", "step", "train_loss", "val_loss", "val_metric", "lr", *trainer.schedules.keys, "seconds"]
    frame = pd.DataFrame(trainer.history)
    frame = frame.reindex(columns=[*columns, *[c for c in frame.columns if c not in columns]])
    return TrainResult(
        model=trainer.model,
        history=frame,
        best_epoch=trainer.best_epoch,
        best_metric=trainer.best_metric,
        checkpoint_path=ckpt_dir,
        resumed_from=resumed_from,
        architecture=trainer.architecture,
    )


def _train_epoch(
    trainer: Trainer,
    loader: _DeviceLoader,
    loss_fn: LossFn,
    forward: ForwardFn,
    augment: AugmentFn | None,
    regularizers: Mapping[str, Regularizer],
    grad_clip: float | None,
    steps: int | None,
    aug_gen: torch.Generator,
    per_step: bool,
    show: bool,
) -> dict[str, float]:
    """One pass over the training loader; returns sample-weighted sums of the objective
    (``_total``), of each loss term and regulariser, and the sample count (``_seen``)."""
    from tqdm.auto import tqdm

    dev = trainer.device
    sums: dict[str, torch.Tensor] = {"_total": torch.zeros((), dtype=torch.float64, device=dev)}
    seen = 0
    trainer.net.train()
    for batch in tqdm(loader, desc=f"epoch {trainer.epoch + 1}", leave=False, disable=not show):
        if steps is not None and trainer.step >= int(steps):
            break
        if per_step:
            trainer.apply_hyperparameters(trainer.step)
        if augment is not None:
            batch = augment(batch, aug_gen)
        trainer.emit("on_step_start", batch)
        output = forward(trainer.net, batch)
        terms = {f"loss_{k}" if k != "loss" else "loss": v for k, v in _loss_terms(loss_fn(output, batch)).items()}
        terms.update({f"reg_{name}": _loss_terms(reg(trainer.model, batch, output))["loss"]
                      for name, reg in regularizers.items()})
        loss = sum(terms.values()) if len(terms) > 1 else next(iter(terms.values()))
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.emit("after_backward", batch, loss)
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(trainer.model.parameters(), grad_clip)
        trainer.optimizer.step()
        trainer.step += 1
        n = _batch_len(batch)
        sums["_total"] += loss.detach().to(torch.float64) * n
        for name, term in terms.items():
            sums.setdefault(name, torch.zeros((), dtype=torch.float64, device=dev))
            sums[name] += term.detach().to(torch.float64) * n
        seen += n
        trainer.emit("on_step_end", batch, loss)
    out = {name: float(value) for name, value in sums.items()}
    out["_seen"] = float(seen)
    return out
