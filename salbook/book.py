"""The notebook side of the book: profile settings, the seed contract, and the record of headline numbers.

A chapter states numbers; each one it states is also *recorded* with :func:`record`, so that a
regression run can compare it with the committed baseline (``salbook regress``). A number can carry
the configuration that produced it (``record(..., config=cfg)``): the record file stores each
distinct configuration once, under a short stable hash, and the number names that hash, so a reader
goes from a number to its configuration in one hop (in the kernel: :func:`config_of`).

When the runner executes a notebook it sets ``SALBOOK_RECORD_FILE``; :func:`record` then writes the
numbers to that JSON file (atomically)::

    {"metrics": {"pan.plain.test.cc": {"value": 0.61, "tol": 0.02, "rel": 0.0, "config": "3f0c..."}},
     "configs": {"3f0c...": {"model": "pan_shallow", "epochs": 4, ...}},
     "meta": {"device": "cpu"}}

Run interactively, :func:`record` only keeps the number in memory (see :func:`records`) and returns
it, so notebooks work the same in JupyterLab.

The seed contract (:data:`SEED_CONTRACT`, the same text as in the book's introduction) is appended
to this docstring below.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

from .utils import atomic_write_text, stable_hash

__all__ = [
    "glue",
    "PROFILES",
    "DATA_SEED",
    "EVAL_SEED",
    "SEED_CONTRACT",
    "pick",
    "record",
    "records",
    "record_meta",
    "config_of",
    "config_dict",
    "config_hash",
    "RECORD_ENV",
]

PROFILES: tuple[str, ...] = ("smoke", "book", "paper")
"""The three run profiles: ``smoke`` (CI, minutes, every code path), ``book`` (the published run),
``paper`` (real data, paper-scale schedules, GPU)."""

RECORD_ENV = "SALBOOK_RECORD_FILE"

DATA_SEED: int = 0
"""Seed of the generated dataset in every chapter (``data.load("synthetic", ..., seed=DATA_SEED)``,
``PanConfig.data_seed``); it does not follow the notebook parameter ``seed``."""

EVAL_SEED: int = 0
"""Seed of the evaluation draws in every chapter (``salbook.evaluate(..., seed=EVAL_SEED)``,
``baselines.inter_observer(..., seed=EVAL_SEED)``); it does not follow the notebook parameter ``seed``."""

SEED_CONTRACT = """\
Every chapter has a notebook parameter `seed` (default 0), and it means the same in every chapter.

**`seed` changes the training randomness**, and only that:

* model initialisation: a chapter calls `seed_everything(seed)` before it builds a model, and
  `salbook.train.load_or_train` builds the model right after `seed_everything(seed)` (the seed is
  part of the trained model's cache key);
* data order: `fit` shuffles the training set with a `DistributedSampler` seeded with `seed`,
  reshuffled every epoch;
* augmentation draws: `fit` hands `augment` a generator seeded from (`seed`, epoch, rank), e.g. for
  the random half of every batch that Pan's recipe mirrors;
* dropout, and anything else drawn from the global generators while training: they are re-seeded
  from (`seed`, epoch, rank) at the start of every epoch.

**These stay fixed, whatever `seed` is:**

* the data: the generated dataset has its own seed, `data_seed` (default 0,
  `salbook.book.DATA_SEED`); scene *i* of a split is a pure function of (`data_seed`, split, *i*)
  and the generator's settings, so every seed trains and tests on the same images. A real dataset
  is read in its published order (MIT1003's train/val split is drawn once, with seed 0). A
  dataset's own `flip=True` draws from the dataset's seed, not from `seed`, so it belongs to the
  data: augmentation that should vary with `seed` goes through `fit`'s `augment`;
* the evaluation draws: chapters score with `seed=0` (`salbook.book.EVAL_SEED`, also the default of
  `salbook.evaluate` and `baselines.inter_observer`), which fixes the other images whose fixations
  are the shuffled-AUC negatives of image *i* (generator (0, *i*, 1)), the random negatives and
  splits of AUC-Borji and shuffled AUC (`evaluation.image_seed(0, i)`) and the random observer
  halves of the inter-observer baseline (generator (0, *i*, 2)).

So `salbook spread --seeds 1 2`, which re-runs the chapters with `-p seed 1` and `-p seed 2`,
measures the same thing in every chapter: how much a number moves when only the training randomness
changes, on the same data, scored with the same evaluation draws. `salbook regress --update` then
widens each number's tolerance to that range.
"""

if __doc__:  # absent under python -OO
    __doc__ += "\nSeed contract\n-------------\n" + SEED_CONTRACT

_MEMORY: dict[str, dict[str, Any]] = {}
_META: dict[str, Any] = {}
_CONFIGS: dict[str, dict[str, Any]] = {}

_CONFIG_HASH_LENGTH = 12


def pick(profile: str, **settings: Any) -> Any:
    """Return ``settings[profile]``, with a clear error for an unknown or missing profile.

    >>> pick("smoke", smoke=dict(epochs=1), book=dict(epochs=30), paper=dict(epochs=1200))
    {'epochs': 1}
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if profile not in settings:
        raise ValueError(
            f"this chapter defines no settings for profile {profile!r} (it has {sorted(settings)})"
        )
    return settings[profile]


def _as_float(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"record() takes a number, got {type(value).__name__}: {value!r}") from err
    return out


def config_dict(config: Any) -> dict[str, Any]:
    """``config`` as a JSON-friendly dict (what a record file stores).

    ``config`` may be an object with an ``as_dict()`` method (e.g. ``PanConfig``, whose dict also
    names the recipe version), a dataclass instance (:func:`dataclasses.asdict`) or a mapping.
    Tuples become lists and values JSON cannot hold (paths, devices...) their ``str``.
    """
    if callable(getattr(config, "as_dict", None)):
        raw = config.as_dict()
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        raw = dataclasses.asdict(config)
    elif isinstance(config, Mapping):
        raw = dict(config)
    else:
        raise TypeError(
            f"config must be a dataclass instance, an object with as_dict() or a mapping, "
            f"got {type(config).__name__}: {config!r}"
        )
    if not isinstance(raw, Mapping):
        raise TypeError(f"{type(config).__name__}.as_dict() returned {type(raw).__name__}, not a mapping")
    return json.loads(json.dumps(raw, sort_keys=True, default=str))


def config_hash(config: Any) -> str:
    """The short stable hash under which a record file stores ``config`` (see :func:`config_dict`)."""
    return _digest(config_dict(config))


def _digest(as_dict: Mapping[str, Any]) -> str:
    return stable_hash(as_dict, length=_CONFIG_HASH_LENGTH)


def _write() -> None:
    path = os.environ.get(RECORD_ENV)
    if not path:
        return
    used = {m["config"] for m in _MEMORY.values() if "config" in m}
    payload = {"metrics": _MEMORY, "meta": _META, "configs": {h: _CONFIGS[h] for h in sorted(used)}}
    atomic_write_text(Path(path), json.dumps(payload, indent=2, sort_keys=True, allow_nan=True))


def record(key: str, value: Any, tol: float, *, rel: float = 0.0, note: str = "", config: Any = None) -> float:
    """Record headline number ``key`` (e.g. ``"pan.plain.test.cc"``) and return it as a float.

    ``tol`` is the absolute tolerance a regression run allows; ``rel`` an optional relative one (the
    larger of ``tol`` and ``rel * |baseline|`` applies). Choose them from the measured run-to-run
    spread of the number (the chapter should say how). A NaN is recorded as NaN and always fails
    regression, so a broken metric cannot hide.

    ``config``, when given, is the configuration that produced the number (a dataclass such as
    ``PanConfig``, an object with ``as_dict()``, or a mapping; see :func:`config_dict`). The record
    file stores it once under :func:`config_hash` and the number's entry gets ``"config": <hash>``;
    :func:`config_of` returns it.
    """
    if not key or any(c.isspace() for c in key):
        raise ValueError(f"record key must be a non-empty string without spaces, got {key!r}")
    if tol < 0 or rel < 0:
        raise ValueError("tolerances must be non-negative")
    v = _as_float(value)
    entry: dict[str, Any] = {"value": v if math.isfinite(v) else None, "tol": float(tol), "rel": float(rel)}
    if note:
        entry["note"] = note
    if config is not None:
        as_dict = config_dict(config)
        digest = _digest(as_dict)
        _CONFIGS[digest] = as_dict
        entry["config"] = digest
    _MEMORY[key] = entry
    _write()
    return v


def record_meta(**items: Any) -> None:
    """Attach run facts (e.g. ``device="cpu"``, ``n_train=2000``) to this notebook's record file."""
    _META.update({k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v)) for k, v in items.items()})
    _write()


def records() -> dict[str, dict[str, Any]]:
    """The numbers recorded so far in this kernel (a copy)."""
    return {k: dict(v) for k, v in _MEMORY.items()}


def config_of(key: str) -> dict[str, Any] | None:
    """The configuration (as stored, see :func:`config_dict`) of the number recorded as ``key`` in
    this kernel; ``None`` when it was recorded without ``config=``. A copy: editing it changes nothing."""
    if key not in _MEMORY:
        known = ", ".join(sorted(_MEMORY)) or "none yet"
        raise KeyError(f"no number recorded as {key!r} in this kernel (recorded: {known})")
    digest = _MEMORY[key].get("config")
    return None if digest is None else copy.deepcopy(_CONFIGS[digest])


def glue(name: str, value: Any, display: bool = False) -> None:
    """MyST-NB's ``glue`` for a number or text that the prose quotes (``{glue:text}`name:.3f```).

    NumPy and torch scalars are turned into plain Python numbers first: MyST-NB formats the glued
    value from its ``repr``, which for NumPy 2 scalars (``np.float64(0.5)``) it cannot parse.
    """
    from myst_nb import glue as _glue

    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    _glue(name, value, display=display)
