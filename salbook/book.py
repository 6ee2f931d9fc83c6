"""The notebook side of the book: profile settings and the record of headline numbers.

A chapter states numbers; each one it states is also *recorded* with :func:`record`, so that a
regression run can compare it with the committed baseline (``salbook regress``).

When the runner executes a notebook it sets ``SALBOOK_RECORD_FILE``; :func:`record` then appends the
number to that JSON file (atomically). Run interactively, :func:`record` only keeps the number in
memory (see :func:`records`) and returns it, so notebooks work the same in JupyterLab.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .utils import atomic_write_text

__all__ = ["PROFILES", "pick", "record", "records", "record_meta", "RECORD_ENV"]

PROFILES: tuple[str, ...] = ("smoke", "book", "paper")
"""The three run profiles: ``smoke`` (CI, minutes, every code path), ``book`` (the published run),
``paper`` (real data, paper-scale schedules, GPU)."""

RECORD_ENV = "SALBOOK_RECORD_FILE"

_MEMORY: dict[str, dict[str, Any]] = {}
_META: dict[str, Any] = {}


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


def _write() -> None:
    path = os.environ.get(RECORD_ENV)
    if not path:
        return
    payload = {"metrics": _MEMORY, "meta": _META}
    atomic_write_text(Path(path), json.dumps(payload, indent=2, sort_keys=True, allow_nan=True))


def record(key: str, value: Any, tol: float, *, rel: float = 0.0, note: str = "") -> float:
    """Record headline number ``key`` (e.g. ``"pan.plain.test.cc"``) and return it as a float.

    ``tol`` is the absolute tolerance a regression run allows; ``rel`` an optional relative one (the
    larger of ``tol`` and ``rel * |baseline|`` applies). Choose them from the measured run-to-run
    spread of the number (the chapter should say how). A NaN is recorded as NaN and always fails
    regression, so a broken metric cannot hide.
    """
    if not key or any(c.isspace() for c in key):
        raise ValueError(f"record key must be a non-empty string without spaces, got {key!r}")
    if tol < 0 or rel < 0:
        raise ValueError("tolerances must be non-negative")
    v = _as_float(value)
    _MEMORY[key] = {"value": v if math.isfinite(v) else None, "tol": float(tol), "rel": float(rel)}
    if note:
        _MEMORY[key]["note"] = note
    _write()
    return v


def record_meta(**items: Any) -> None:
    """Attach run facts (e.g. ``device="cpu"``, ``n_train=2000``) to this notebook's record file."""
    _META.update({k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v)) for k, v in items.items()})
    _write()


def records() -> dict[str, dict[str, Any]]:
    """The numbers recorded so far in this kernel (a copy)."""
    return {k: dict(v) for k, v in _MEMORY.items()}
