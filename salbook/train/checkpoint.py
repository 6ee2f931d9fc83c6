"""Checkpoint files of :func:`salbook.train.fit`: format, random-generator states, safe loading.

Every checkpoint holds only tensors, dicts, lists, strings and numbers, so
``torch.load(path, weights_only=True)`` reads it.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

__all__ = [
    "CHECKPOINT_FORMAT",
    "LAST_NAME",
    "BEST_NAME",
    "FINAL_NAME",
    "derive_seed",
    "reseed_globals",
    "rng_state",
    "set_rng_state",
    "checkpoint_dir",
    "load_checkpoint",
    "state_dict_cpu",
    "plain_records",
]

CHECKPOINT_FORMAT = "salbook.train/2"
#: Formats :func:`load_checkpoint` still reads (version 1 had no architecture spec or callback states).
READABLE_FORMATS = ("salbook.train/1", CHECKPOINT_FORMAT)
LAST_NAME, BEST_NAME, FINAL_NAME = "last.pt", "best.pt", "final.pt"


def derive_seed(*parts: object) -> int:
    """A 60-bit seed from any tuple of values, stable across runs and platforms."""
    digest = hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()
    return int(digest[:15], 16)


def reseed_globals(seed: int) -> None:
    """Seed the global torch (CPU + CUDA), NumPy and Python generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
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


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    npy = state["numpy"]
    np.random.set_state(
        ("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss_next"]))


def checkpoint_dir(checkpoint_path: str | os.PathLike | None) -> Path | None:
    """The checkpoint folder (``None`` turns checkpoints off); a file name is refused."""
    if checkpoint_path is None:
        return None
    path = Path(checkpoint_path)
    if path.suffix in (".pt", ".pth", ".ckpt"):
        raise ValueError(
            f"checkpoint_path={str(path)!r} looks like a file; pass a folder: fit keeps "
            f"{LAST_NAME} and {BEST_NAME} inside it"
        )
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a salbook checkpoint with ``weights_only=True``; a foreign or corrupt file gets a clear error."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a foreign or corrupt file: say which and what to do
        raise RuntimeError(f"cannot read checkpoint {path} ({exc}); delete it or pass resume=False") from exc
    if not isinstance(blob, dict) or blob.get("format") not in READABLE_FORMATS:
        raise RuntimeError(
            f"{path} is not a {CHECKPOINT_FORMAT} checkpoint; delete it, use another folder or pass resume=False"
        )
    return blob


def state_dict_cpu(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``module.state_dict()``."""
    return {key: value.detach().to("cpu", copy=True) for key, value in module.state_dict().items()}


def plain_records(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History rows with plain Python numbers only (for ``weights_only`` checkpoints)."""
    return [
        {key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()} for row in history
    ]
