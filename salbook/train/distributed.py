"""Where a training process stands in a (possibly trivial) ``torch.distributed`` process group."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from ..utils import resolve_device

__all__ = ["DistState", "setup_distributed", "ShardSampler", "is_main_process"]

logger = logging.getLogger(__name__)


@dataclass
class DistState:
    """Rank, world size and local rank of this process; ``enabled`` is False for a single process."""

    enabled: bool = False
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sync_buffers(self, module: nn.Module) -> None:
        """Copy rank 0's buffers (batch-norm running statistics) to every rank.

        DDP broadcasts them before each forward pass, but the last pass of an epoch leaves each
        rank with its own update; validating and checkpointing need one model.
        """
        if self.enabled:
            for buffer in module.buffers():
                dist.broadcast(buffer.data, src=0)

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Sum a list of numbers over all ranks (identity when not distributed)."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``DistributedDataParallel(model)`` when distributed, else ``model`` itself."""
        if not self.enabled:
            return model
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def is_main_process() -> bool:
    """True unless this is a distributed run and this process is not rank 0."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def setup_distributed(device: str | torch.device | None) -> tuple[DistState, torch.device]:
    """Join (or create, under torchrun) the process group; choose this process's device.

    The group is created when ``WORLD_SIZE > 1`` in the environment (gloo on CPU, nccl on CUDA);
    under it each process takes ``cuda:LOCAL_RANK``.
    """
    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and not dist.is_initialized() and env_world > 1:
        asked = "auto" if device is None else str(device)
        wants_cuda = torch.cuda.is_available() and (asked == "auto" or asked.startswith("cuda"))
        dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
        logger.info("initialised torch.distributed (%s), world size %d", dist.get_backend(), env_world)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return DistState(), resolve_device(device)
    state = DistState(
        enabled=True,
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", state.local_rank)
        torch.cuda.set_device(dev)
    return state, dev


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` of ``range(n)``: an unpadded, unshuffled shard."""

    def __init__(self, n: int, rank: int, world: int) -> None:
        self.n, self.rank, self.world = n, rank, world

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))
