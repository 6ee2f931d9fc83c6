"""The trained-model cache: :func:`load_or_train` and the keys it files models under.

A trained model is keyed on its **config** (everything the recipe sets, with the recipe's
version), its **seed**, and a hash of **the code it actually runs**: the training core
(:data:`TRAINING_CORE`), the salbook modules that define the model's layers (found from the
built module), and the modules the caller names (its recipe, its loss). Adding a chapter, a
model family or an analysis module therefore leaves every cached model valid, while editing a
model file, the recipe or the training loop retrains what depends on it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from ..utils import atomic_torch_save, atomic_write_text, cache_dir, seed_everything, stable_hash
from .checkpoint import BEST_NAME, CHECKPOINT_FORMAT, FINAL_NAME, LAST_NAME, plain_records, state_dict_cpu
from .distributed import is_main_process, setup_distributed
from .loop import TrainResult, fit

__all__ = ["TRAINING_CORE", "code_version", "model_modules", "model_key", "load_or_train"]

#: The modules every trained model depends on: the training loop and its schedules, the data
#: that the generated datasets are built from, and the shared helpers (seeding, map blurring).
TRAINING_CORE: tuple[str, ...] = (
    "salbook.train",
    "salbook.schedules",
    "salbook.utils",
    "salbook.maps",
    "salbook.data.synthetic",
    "salbook.data.transforms",
)

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _module_files(name: str) -> list[Path]:
    """The source files of module ``name``: its ``.py`` file, or every ``.py`` file of a package."""
    module = importlib.import_module(name)
    path = Path(module.__file__).resolve()
    if path.name == "__init__.py":
        return sorted(path.parent.rglob("*.py"))
    return [path]


@lru_cache(maxsize=None)
def _hash_modules(names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    files = sorted({f for name in names for f in _module_files(name)})
    for path in files:
        try:
            label = path.relative_to(_PACKAGE_ROOT).as_posix()
        except ValueError:  # a module outside salbook (a caller's own recipe): its name suffices
            label = path.name
        digest.update(label.encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def code_version(modules: Iterable[str] = ()) -> str:
    """A 16-hex-digit hash of the source of :data:`TRAINING_CORE` plus ``modules`` (dotted names).

    A package name covers every file in it. The hash depends on the files' paths and contents,
    not on the order the modules are named in.
    """
    names = tuple(sorted({*TRAINING_CORE, *modules}))
    return _hash_modules(names)


def model_modules(model: nn.Module) -> list[str]:
    """The salbook modules that define ``model``'s layers (its class and every submodule's class)."""
    names = {type(m).__module__ for m in model.modules()}
    return sorted(n for n in names if n == "salbook" or n.startswith("salbook."))


def model_key(config: Mapping[str, Any], seed: int = 0, modules: Iterable[str] = ()) -> str:
    """The cache key of a trained model: a hash of ``config``, ``seed`` and the code it runs
    (:func:`code_version` of ``modules``)."""
    return stable_hash({"config": dict(config), "seed": int(seed), "code": code_version(modules)})


_RESERVED = ("checkpoint_path", "seed", "device", "resume", "rebuild_model")


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
    code: Iterable[str] = (),
    rebuild_model: Callable[[dict[str, Any]], nn.Module] | None = None,
) -> TrainResult:
    """Return the trained model for ``config``: load it from the cache, or train and cache it.

    Parameters
    ----------
    config:
        Everything that determines the trained model (architecture, data, epochs, optimiser
        settings, the recipe's version...), JSON-serialisable.
    build_model:
        ``callable() -> nn.Module``, called after ``seed_everything(seed)``; needed both to load
        weights and to train.
    train_kwargs:
        The keyword arguments of :func:`~salbook.train.fit` other than ``model`` (``loss_fn``,
        ``train_data``, ``optimizer``, ``epochs``...), or a zero-argument callable returning them
        (called only when training is needed, so loading never builds datasets).
        ``checkpoint_path``, ``seed``, ``device``, ``resume`` and ``rebuild_model`` are set here.
    seed, device:
        Passed to :func:`~salbook.train.fit` (``seed`` also seeds ``build_model``).
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
    code:
        Dotted names of the modules the training runs beyond the training core and the model's
        own files (the recipe, a loss module); they enter the key through :func:`code_version`.
    rebuild_model:
        For models whose architecture a callback changes (pruning): rebuilds the module from its
        architecture spec, to resume and to load the finished model.

    The key is :func:`model_key` of ``config``, ``seed`` and the modules (the training core,
    :func:`model_modules` of the built model, ``code``). ``final.pt`` holds ``model`` (state
    dict), ``architecture``, ``history`` (list of row dicts), ``best_epoch``, ``best_metric``,
    ``key``, ``code``, ``modules`` and ``config`` (JSON text); it loads with
    ``torch.load(..., weights_only=True)``.
    """
    say = log or (lambda _msg: None)
    seed_everything(seed)
    model = build_model()
    if not isinstance(model, nn.Module):
        raise TypeError(f"build_model must return an nn.Module, got {type(model).__name__}")
    modules = sorted({*model_modules(model), *code})
    key = model_key(config, seed, modules)
    folder = Path(cache) / key if cache is not None else cache_dir("models", key)
    final = folder / FINAL_NAME

    if final.exists():
        blob = torch.load(final, map_location="cpu", weights_only=True)
        architecture = blob.get("architecture")
        if architecture is not None:
            if rebuild_model is None:
                raise RuntimeError(f"{final} holds a model with a changed architecture; pass rebuild_model=...")
            model = rebuild_model(architecture)
        model.load_state_dict(blob["model"])
        model.to(setup_distributed(device)[1]).eval()
        say(f"loaded trained model from {final}")
        return TrainResult(
            model=model,
            history=pd.DataFrame(blob["history"]),
            best_epoch=blob.get("best_epoch"),
            best_metric=blob.get("best_metric"),
            checkpoint_path=folder,
            loaded=True,
            architecture=architecture,
        )

    kwargs = dict(train_kwargs() if callable(train_kwargs) else train_kwargs)
    clash = [name for name in _RESERVED if name in kwargs]
    if clash:
        raise ValueError(f"train_kwargs must not set {clash}; load_or_train sets them (pass them to it)")
    if (folder / LAST_NAME).exists():
        say(f"resuming interrupted training in {folder}")
    else:
        say(f"training from scratch in {folder} (key {key})")
    result = fit(model, **kwargs, seed=seed, device=device, checkpoint_path=folder, resume=True,
                 rebuild_model=rebuild_model)

    if is_main_process():
        config_text = json.dumps(dict(config), sort_keys=True, indent=2, default=str)
        atomic_torch_save(
            {
                "format": CHECKPOINT_FORMAT,
                "key": key,
                "code": code_version(modules),
                "modules": modules,
                "config": config_text,
                "model": state_dict_cpu(result.model),
                "architecture": result.architecture,
                "history": plain_records(result.history.to_dict(orient="records")),
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
