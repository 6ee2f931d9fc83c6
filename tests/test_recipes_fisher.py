"""Chapter 5's recipes (salbook.recipes.fisher) on tiny data."""

from __future__ import annotations

import math

import pytest
import torch

from salbook.recipes import fisher as R

pytestmark = pytest.mark.usefixtures("one_thread")


def test_digits_substitute_splits():
    tr, va, te, desc = R.digits_splits()
    assert len(tr) + len(va) + len(te) == 1797 and "substitute" in desc
    s = tr[0]
    assert s["image"].shape == (1, 28, 28) and 0 <= float(s["image"].min()) and float(s["image"].max()) <= 1


def test_gaze_loss_terms():
    out = torch.log_softmax(torch.randn(2, 1 * 4 * 5), dim=1).view(2, 1, 4, 5)
    fix = [torch.tensor([[0, 0], [3, 4]]), torch.tensor([[1, 2]])]
    nll = -(((out[0, 0, 0, 0] + out[0, 0, 3, 4]) / 2 + out[1, 0, 1, 2]) / 2)
    only = R.gaze_loss(out, {"fixations": fix})
    assert set(only) == {"data"} and torch.allclose(only["data"], nll)
    q = torch.softmax(torch.randn(2, 20), 1).view(2, 4, 5)
    both = R.gaze_loss(out, {"fixations": fix, "teacher_density": q})
    assert torch.allclose(both["data"], 0.1 * nll)
    assert torch.allclose(both["teacher"], 0.9 * -(q.flatten(1) * out.flatten(1)).sum(1).mean())
    with pytest.raises(ValueError, match="N×1×H×W"):
        R.gaze_loss(out[:, 0], {"fixations": fix})


def test_pareto_front():
    assert R.pareto_front([3.0, 1.0, 2.0, 4.0], [0.9, 0.5, 0.7, 0.8]) == [1, 2, 0]


def test_configs_validate_and_name_models():
    with pytest.raises(ValueError, match="unknown method"):
        R.GazePruneConfig(method="nope")
    with pytest.raises(ValueError, match="data_root"):
        R.LeNetConfig(data="mnist")
    names = R.gaze_models("smoke")
    assert names[0] == "unpruned" and "fisher_b0_s1" in names and "fisher_auto_b0_s1" in names


def test_prune_lenet_fisher_and_han_end_to_end(tmp_path):
    from salbook.pruning.fisher import alive_counts, cost_model, sparse_cost

    base = R.LeNetConfig(steps=20)
    fisher = R.prune_lenet(R.LeNetPruneConfig(base=base, beta=1.0, steps_per_prune=1, max_steps=15, tolerance=1.0),
                           cache=str(tmp_path), device="cpu", log=None)
    assert sum(alive_counts(fisher.model).values()) < 570
    han = R.prune_lenet(R.LeNetPruneConfig(base=base, method="han", han_levels=(0.5, 0.8), han_steps=5,
                                           tolerance=1.0), cache=str(tmp_path), device="cpu", log=None)
    cm = cost_model(han.model, torch.zeros(1, 1, 28, 28))
    assert sparse_cost(han.model, cm) < 0.6


def test_train_and_prune_gaze_with_a_stand_in_teacher(tmp_path, monkeypatch):
    """Distillation against the teacher interface (logits N×1×H×W), with a small stand-in module."""
    from salbook.recipes import fastsal

    class StandIn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    monkeypatch.setattr(fastsal, "teacher", lambda profile, **kw: StandIn().eval())
    R._TARGETS.clear()
    data = R.GAZE_DATA.replace(n_train=4, n_val=2, n_test=2, input_size=(32, 64), eval_size=(32, 64))
    base = R.GazeConfig(data=data, epochs=1, batch_size=2, weights=None, teacher_profile="smoke")
    cfg = R.GazePruneConfig(base=base, decisions=2, maps_per_prune=50, steps_per_prune=1, finetune_steps=0)
    res = R.prune_gaze(cfg, cache=str(tmp_path), device="cpu", log=None)
    assert res.history["maps_pruned"].iloc[-1] == 100
    assert "loss_teacher" in res.history
    assert math.isfinite(float(res.history["train_loss"].iloc[-1]))
    R._TARGETS.clear()


def test_gaze_prune_schedule_chains_coarse_then_fine_stages():
    configs = R.gaze_configs("book")
    s10, s11, s13 = configs["fisher_b0_s10"], configs["fisher_b0_s11"], configs["fisher_b0_s13"]
    assert s10.stages_before is None and s10.maps_removed == 8000  # uniform: one spelling, one cache key
    assert (s11.decisions, s11.finetune_steps) == (1, 60) and s10.finetune_steps == 12
    assert s11.maps_removed == 8200 and s13.maps_removed == 8600 and s13.finetune_steps == 200
    assert s13.previous().previous() == s11 and s11.previous() == s10
    assert configs["fisher_b0_s1"].previous() is None
    same = R.GazePruneConfig(stage=3, decisions=2, finetune_steps=5, stages_before=[(2, 5), (2, 5)])
    assert same.stages_before is None
    with pytest.raises(ValueError, match="stages_before must list"):
        R.GazePruneConfig(stage=3, stages_before=((4, 12),))
