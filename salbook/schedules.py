"""Hyper-parameter schedules that are pure functions of the epoch (or step) index.

A schedule here holds no state: ``schedule(t)`` is the value at (0-based) index ``t`` and
depends on nothing else. That is what makes a resumed training run exact: after loading a
checkpoint at epoch ``k`` the value for epoch ``k`` is simply recomputed, so no scheduler state
has to be saved (``torch.optim.lr_scheduler`` objects, which *are* stateful, are also accepted by
:func:`salbook.train.fit`; their ``state_dict`` goes into the checkpoint).

Examples
--------
Pan et al. (2016), shallow convnet: Nesterov SGD whose learning rate falls linearly from 0.05 to
1e-4 while the momentum rises linearly from 0.9 to 0.999 over the 1,200 epochs::

    ParamSchedule({"lr": LinearSchedule(0.05, 1e-4, 1200),
                   "momentum": LinearSchedule(0.9, 0.999, 1200)})

The coursework variant multiplies the learning rate by 0.55 every 100 epochs::

    ParamSchedule({"lr": StepSchedule(0.05, 0.55, 100)})
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Schedule",
    "ConstantSchedule",
    "LinearSchedule",
    "StepSchedule",
    "FlooredSchedule",
    "WarmupSchedule",
    "CosineSchedule",
    "ParamSchedule",
]


class Schedule(ABC):
    """A hyper-parameter value as a pure function of a 0-based index ``t`` (epoch or step)."""

    @abstractmethod
    def __call__(self, t: int) -> float:
        """The value at index ``t`` (``t >= 0``)."""

    def values(self, n: int) -> list[float]:
        """The first ``n`` values, ``[self(0), ..., self(n - 1)]`` (handy for plots)."""
        return [self(t) for t in range(n)]

    @staticmethod
    def _check_index(t: int) -> int:
        if isinstance(t, bool) or int(t) != t or t < 0:
            raise ValueError(f"schedule index must be a non-negative integer, got {t!r}")
        return int(t)


@dataclass(frozen=True)
class ConstantSchedule(Schedule):
    """The same ``value`` at every index."""

    value: float

    def __call__(self, t: int) -> float:
        self._check_index(t)
        return float(self.value)


@dataclass(frozen=True)
class LinearSchedule(Schedule):
    """Linear interpolation from ``start`` (at ``t = 0``) to ``stop`` (at ``t = n - 1``).

    The values are those of ``numpy.linspace(start, stop, n)``; indices past ``n - 1`` keep
    ``stop``. This is how Pan et al. ramp the learning rate and the momentum over training.
    """

    start: float
    stop: float
    n: int

    def __post_init__(self) -> None:
        if int(self.n) != self.n or self.n < 1:
            raise ValueError(f"LinearSchedule needs n >= 1 (number of epochs/steps), got {self.n!r}")

    def __call__(self, t: int) -> float:
        t = self._check_index(t)
        if self.n == 1 or t >= self.n - 1:
            return float(self.stop) if self.n > 1 else float(self.start)
        frac = t / (self.n - 1)
        return float(self.start + (self.stop - self.start) * frac)


@dataclass(frozen=True)
class StepSchedule(Schedule):
    """``base * factor ** (t // every)``: multiply by ``factor`` every ``every`` indices."""

    base: float
    factor: float
    every: int

    def __post_init__(self) -> None:
        if int(self.every) != self.every or self.every < 1:
            raise ValueError(f"StepSchedule needs every >= 1, got {self.every!r}")

    def __call__(self, t: int) -> float:
        t = self._check_index(t)
        return float(self.base * self.factor ** (t // self.every))


@dataclass(frozen=True)
class CosineSchedule(Schedule):
    """Half-cosine from ``start`` (``t = 0``) to ``stop`` (``t = n - 1``); ``stop`` afterwards."""

    start: float
    stop: float
    n: int

    def __post_init__(self) -> None:
        if int(self.n) != self.n or self.n < 1:
            raise ValueError(f"CosineSchedule needs n >= 1, got {self.n!r}")

    def __call__(self, t: int) -> float:
        t = self._check_index(t)
        if self.n == 1:
            return float(self.start)
        frac = min(t, self.n - 1) / (self.n - 1)
        return float(self.stop + 0.5 * (self.start - self.stop) * (1.0 + math.cos(math.pi * frac)))


ScheduleLike = Schedule | Callable[[int], float]


@dataclass(frozen=True)
class FlooredSchedule(Schedule):
    """``max(floor, schedule(t))``: e.g. a step decay that stops at a minimum learning rate."""

    schedule: Schedule
    floor: float

    def __call__(self, t: int) -> float:
        return max(self.floor, self.schedule(t))


@dataclass(frozen=True)
class WarmupSchedule(Schedule):
    """``schedule(t) × (t + 1) / steps`` for the first ``steps`` indices, then ``schedule(t)``:
    a linear warm-up from ``schedule(0) / steps`` that joins the schedule at index ``steps``."""

    schedule: Schedule
    steps: int

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"warm-up steps must be >= 0, got {self.steps}")

    def __call__(self, t: int) -> float:
        t = self._check_index(t)
        value = self.schedule(t)
        return value * (t + 1) / self.steps if t < self.steps else value


class ParamSchedule:
    """Bind schedules to optimizer param-group keys (``"lr"``, ``"momentum"``, ``"weight_decay"``...).

    Parameters
    ----------
    schedules:
        Map from a param-group key to a :class:`Schedule` (or any pure ``callable(t) -> float``).
        Every param group of the optimizer gets the same value.
    unit:
        ``"epoch"``: :func:`salbook.train.fit` calls :meth:`apply` with the 0-based epoch index at
        the start of every epoch. ``"step"``: with the 0-based global optimizer-step index before
        every step.
    """

    def __init__(
        self, schedules: Mapping[str, ScheduleLike], unit: Literal["epoch", "step"] = "epoch"
    ) -> None:
        if not schedules:
            raise ValueError("ParamSchedule needs at least one {key: schedule} entry")
        for key, sched in schedules.items():
            if not callable(sched):
                raise TypeError(
                    f"schedule for {key!r} is {type(sched).__name__}, not callable; "
                    "pass e.g. LinearSchedule(0.05, 1e-4, 1200)"
                )
        if unit not in ("epoch", "step"):
            raise ValueError(f"unit must be 'epoch' or 'step', got {unit!r}")
        self.schedules: dict[str, ScheduleLike] = dict(schedules)
        self.unit: Literal["epoch", "step"] = unit

    def values(self, t: int) -> dict[str, float]:
        """The value of every bound key at index ``t``."""
        return {key: float(sched(t)) for key, sched in self.schedules.items()}

    def apply(self, optimizer: Any, t: int, lr_scale: float = 1.0) -> dict[str, float]:
        """Write the values at index ``t`` into every param group of ``optimizer``; return them.

        The learning rate of a group that carries ``lr_mult`` (see
        :func:`salbook.train.optim.param_groups`) is ``lr × lr_mult × lr_scale``; every other key
        gets the scheduled value itself. Raises ``KeyError`` naming the key when a param group has
        no such hyper-parameter (for example ``"momentum"`` on Adam, whose equivalent is ``"betas"``).
        """
        values = self.values(t)
        for i, group in enumerate(optimizer.param_groups):
            for key, value in values.items():
                if key not in group:
                    raise KeyError(
                        f"optimizer {type(optimizer).__name__} param group {i} has no "
                        f"hyper-parameter {key!r} (it has {sorted(k for k in group if k != 'params')}); "
                        "schedule one of those instead"
                    )
                group[key] = value * group.get("lr_mult", 1.0) * lr_scale if key == "lr" else value
        return values

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self.schedules.items())
        return f"ParamSchedule({{{inner}}}, unit={self.unit!r})"
