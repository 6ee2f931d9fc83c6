"""Optimiser factories and parameter groups with their own learning-rate multiplier and weight decay.

:func:`salbook.train.fit` takes ``optimizer=`` as a factory ``callable(params) -> Optimizer`` so
that it can build the optimiser on the device and *re*-build it when a callback changes the
architecture (pruning). ``params`` is what ``param_groups(model)`` returns (default: all the
model's parameters, one group).

A group may carry ``lr_mult``: the harness sets that group's learning rate to
``scheduled lr × lr_mult × trainer.lr_scale`` (see :func:`apply_learning_rates`).

>>> rules = [ParamGroup("encoder weights", lambda n, p: n.startswith("encoder") and p.ndim > 1,
...                     lr_mult=0.5, weight_decay=5e-4)]
>>> groups = lambda model: param_groups(model, rules)          # doctest: +SKIP
>>> fit(model, ..., optimizer=sgd(0.01, momentum=0.9), param_groups=groups)   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

__all__ = [
    "ParamGroup",
    "param_groups",
    "is_bias_like",
    "sgd",
    "adam",
    "apply_learning_rates",
    "OptimizerFactory",
]

OptimizerFactory = Callable[[Any], torch.optim.Optimizer]


@dataclass(frozen=True)
class ParamGroup:
    """A rule that sends parameters to one optimiser group.

    Attributes:
        name: the group's name (kept in the optimiser's param group as ``"name"``).
        match: ``callable(qualified_name, parameter) -> bool``; the first matching rule wins.
        lr_mult: the group's learning rate is the scheduled one times this.
        weight_decay: the group's L2 weight decay (``None``: the optimiser's default).
    """

    name: str
    match: Callable[[str, nn.Parameter], bool]
    lr_mult: float = 1.0
    weight_decay: float | None = None


def is_bias_like(name: str, param: nn.Parameter) -> bool:
    """Biases and other 1-D parameters (batch-norm β, and γ too: one value per channel)."""
    return param.ndim <= 1


def param_groups(model: nn.Module, rules: Sequence[ParamGroup], rest: ParamGroup | None = None) -> list[dict[str, Any]]:
    """Split ``model``'s trainable parameters into optimiser groups by ``rules`` (first match wins).

    Parameters no rule matches go to ``rest`` (default: a group named ``"rest"`` with multiplier 1
    and the optimiser's weight decay). Empty groups are left out. Each group dict holds
    ``params``, ``name``, ``lr_mult`` and, when the rule sets one, ``weight_decay``.
    """
    rest = rest or ParamGroup("rest", lambda _n, _p: True)
    names = [rule.name for rule in (*rules, rest)]
    if len(set(names)) != len(names):
        raise ValueError(f"parameter group names must be unique, got {names}")
    buckets: dict[str, list[nn.Parameter]] = {name: [] for name in names}
    for qualified, param in model.named_parameters():
        if not param.requires_grad:
            continue
        rule = next((r for r in rules if r.match(qualified, param)), rest)
        buckets[rule.name].append(param)
    groups = []
    for rule in (*rules, rest):
        if not buckets[rule.name]:
            continue
        group: dict[str, Any] = {"params": buckets[rule.name], "name": rule.name, "lr_mult": float(rule.lr_mult)}
        if rule.weight_decay is not None:
            group["weight_decay"] = float(rule.weight_decay)
        groups.append(group)
    return groups


def _with_fused(cls: type[torch.optim.Optimizer], params: Iterable[Any], **kwargs: Any) -> torch.optim.Optimizer:
    """``cls(params, fused=True, ...)`` where the build supports it (the same update, less memory
    traffic), else the plain implementation."""
    params = list(params)
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return cls(params, **kwargs)


def sgd(lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> OptimizerFactory:
    """A factory ``params -> torch.optim.SGD`` (fused kernel where available)."""

    def factory(params: Any) -> torch.optim.Optimizer:
        return _with_fused(torch.optim.SGD, params, lr=lr, momentum=momentum, nesterov=nesterov,
                           weight_decay=weight_decay)

    return factory


def adam(lr: float, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0) -> OptimizerFactory:
    """A factory ``params -> torch.optim.Adam`` (fused kernel where available)."""

    def factory(params: Any) -> torch.optim.Optimizer:
        return _with_fused(torch.optim.Adam, params, lr=lr, betas=betas, weight_decay=weight_decay)

    return factory


def apply_learning_rates(optimizer: torch.optim.Optimizer, lr: float | None, lr_scale: float) -> None:
    """Set every group's lr to ``lr × lr_mult × lr_scale``.

    ``lr=None`` means "no lr schedule": each group's own ``base_lr`` (its lr when the optimiser
    was built, times its multiplier) is used instead.
    """
    for group in optimizer.param_groups:
        base = group["base_lr"] if lr is None else lr * group.get("lr_mult", 1.0)
        group["lr"] = base * lr_scale


def remember_base_learning_rates(optimizer: torch.optim.Optimizer) -> None:
    """Store each group's starting lr (times its ``lr_mult``) as ``base_lr``, once."""
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"] * group.get("lr_mult", 1.0))
