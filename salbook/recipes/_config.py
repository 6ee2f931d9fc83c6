"""What every recipe configuration shares: a frozen dataclass that copies itself and says what it is."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["RecipeConfig"]

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
