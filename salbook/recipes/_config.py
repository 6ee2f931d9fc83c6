"""What every recipe configuration shares: a frozen dataclass that copies itself and says what it is."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

__all__ = ["RecipeConfig", "check_training_settings"]

_C = TypeVar("_C", bound="RecipeConfig")


class RecipeConfig:
    """Base of a recipe's frozen dataclass config.

    A subclass sets the plain class attribute ``RECIPE`` (``"name/version"``, not a dataclass
    field); :meth:`as_dict` puts it first, so the model cache key changes with the recipe version.
    """

    RECIPE = ""

    def replace(self: _C, **changes: Any) -> _C:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def as_dict(self) -> dict[str, Any]:
        """The config as a JSON-friendly dict, with the recipe and its version (the cache key's input)."""
        return {"recipe": self.RECIPE, **dataclasses.asdict(self)}  # type: ignore[call-overload]


def check_training_settings(cfg: Any, counts: Sequence[str] = ("epochs", "batch_size"), *,
                            size_multiple: int | None = None, who: str = "this model") -> None:
    """The checks every training recipe's ``__post_init__`` shares.

    ``counts`` name integer fields that must be at least 1; ``cfg.lr`` must be positive;
    ``cfg.data`` must be a :class:`salbook.data.SplitSpec`, and with ``size_multiple`` both sides of
    its ``input_size`` must be multiples of it (``who`` names the network in that error).

    Raises:
        ValueError / TypeError naming the field and the value to use instead.
    """
    from ..data import SplitSpec

    for name in counts:
        if int(getattr(cfg, name)) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if not cfg.lr > 0:
        raise ValueError(f"lr must be positive, got {cfg.lr}")
    if not isinstance(cfg.data, SplitSpec):
        raise TypeError(f"data must be a salbook.data.SplitSpec, got {type(cfg.data).__name__}")
    size = tuple(cfg.data.input_size)
    if size_multiple and any(side % size_multiple for side in size):
        fixed = tuple(-(-side // size_multiple) * size_multiple for side in size)  # the next multiples up
        raise ValueError(f"{who} needs input sides that are multiples of {size_multiple}, got data.input_size={size}; "
                         f"use e.g. {fixed}")
