"""fit() under torchrun with two CPU processes (gloo): same weights on both ranks, loss drops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")
def test_two_cpu_processes_train_the_same_model(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", SALBOOK_PROGRESS="0", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
        str(HERE / "_ddp_worker.py"), str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"

    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    weights = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world"] for r in reports] == [2, 2] and reports[0]["backend"] == "gloo"
    assert reports[0]["is_ddp_model"] == "Sequential"  # the unwrapped module is returned
    # identical weights on both ranks (DDP all-reduces the gradients)
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
    # each rank sees 16 of the 32 samples: 4 steps of batch 4 per epoch
    assert reports[0]["steps"] == [4, 8, 12, 16]
    # losses are averaged over ranks, so both report the same history; and training helps
    assert reports[0]["train_loss"] == reports[1]["train_loss"]
    assert reports[0]["val_loss"] == reports[1]["val_loss"]
    assert reports[0]["train_loss"][-1] < reports[0]["train_loss"][0]
    # the rank-averaged validation loss equals the loss over the whole validation set
    assert reports[0]["full_val_loss"] == pytest.approx(reports[0]["best_metric"], rel=1e-5)
    # only rank 0 wrote the checkpoints, and they are complete
    last = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert last["epoch"] == 4 and last["world_size"] == 2
