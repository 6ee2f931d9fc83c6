"""Worker for tests/test_train_ddp.py, run as ``torchrun --nproc_per_node=2 tests/_ddp_worker.py OUT``.

Each rank trains the tiny model with :func:`salbook.train.fit` under DistributedDataParallel
(gloo on CPU), then writes its final weights and a small JSON report to ``OUT/rank<r>.*``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from _train_fixtures import TinySaliency, collate, flip_augment, mse, tiny_model
from salbook.train import fit


def main(out: Path) -> None:
    torch.set_num_threads(1)
    train, val = TinySaliency(32, seed=1), TinySaliency(11, seed=2)  # 11: shards of 6 and 5
    result = fit(
        tiny_model(),
        mse,
        train,
        val,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        epochs=4,
        batch_size=4,
        collate_fn=collate,
        augment=flip_augment,
        device="cpu",
        seed=5,
        checkpoint_path=out / "ckpt",
        progress=False,
    )
    rank = dist.get_rank()
    # the full validation loss of the returned (best) model, computed here without sharding
    full = collate([val[i] for i in range(len(val))])
    with torch.no_grad():
        full_val_loss = float(mse(result.model(full["image"]), full))
    torch.save(result.model.state_dict(), out / f"rank{rank}.pt")
    report = {
        "rank": rank,
        "world": dist.get_world_size(),
        "backend": dist.get_backend(),
        "is_ddp_model": type(result.model).__name__,
        "train_loss": result.history["train_loss"].tolist(),
        "val_loss": result.history["val_loss"].tolist(),
        "best_epoch": result.best_epoch,
        "best_metric": result.best_metric,
        "full_val_loss": full_val_loss,
        "steps": result.history["step"].tolist(),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
