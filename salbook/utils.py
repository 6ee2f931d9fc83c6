"""Small shared helpers: device choice, seeding, atomic file writes, the cache folder.

Every other module uses these instead of writing its own, so that "auto" means the same device,
one seed means the same numbers, and no file is ever left half-written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

__all__ = [
    "resolve_device",
    "seed_everything",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_open",
    "atomic_torch_save",
    "cache_dir",
    "stable_hash",
    "progress_enabled",
]


def resolve_device(device: str | None = "auto") -> "torch.device":  # noqa: F821
    """Return a :class:`torch.device`; ``"auto"`` (or ``None``) picks CUDA when present, else CPU."""
    import torch

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was requested but CUDA is not available on this machine; "
            "use device='auto' or device='cpu'."
        )
    return dev


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA).

    With ``deterministic=True`` torch is asked for deterministic algorithms where it has them
    (``warn_only``, so an op without a deterministic version still runs). On CPU one seed then
    gives the same numbers run after run.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[io.IOBase]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    An exception (or a killed process) leaves the old file, or no file, never a truncated one.
    """
    if mode not in ("w", "wb"):
        raise ValueError("atomic_open supports mode 'w' or 'wb'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (through a temporary file and a rename)."""
    import torch

    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def cache_dir(*parts: str) -> Path:
    """The folder for generated data and trained checkpoints (created on demand).

    ``$SALBOOK_CACHE`` if set (the Makefile sets it to ``.cache/`` in the checkout), else
    ``~/.cache/salbook``. Extra ``parts`` name a sub-folder.
    """
    root = Path(os.environ.get("SALBOOK_CACHE") or Path.home() / ".cache" / "salbook")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short hex digest of a JSON-serialisable object, stable across runs and machines."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]


def progress_enabled() -> bool:
    """Whether progress bars should show: off when ``SALBOOK_PROGRESS=0``; else tqdm.auto decides."""
    return os.environ.get("SALBOOK_PROGRESS", "1") not in ("0", "false", "no")
