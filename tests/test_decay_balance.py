"""Tests for salbook.analysis.decay_balance: Adam's scale invariance for a pure decay, the takeover
sweep, and the per-channel split of the γ gradient into the task's and the decay's parts."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from salbook.analysis import decay_balance as D
from salbook.models import csnet as C
from salbook.pruning import slimming as S
from salbook.schedules import CosineSchedule

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_pure_decay_through_adam_does_not_depend_on_its_strength():
    lr = CosineSchedule(0.05, 5e-4, 40)
    # exactly (to rounding) without Adam's ε; with the default ε = 1e-8 up to ε / (c · γ)
    exact = D.pure_decay_trajectories([1e-3, 0.1, 10.0], lr, 40, eps=0.0)
    per = [exact[exact.strength == c].gamma.to_numpy() for c in (1e-3, 0.1, 10.0)]
    assert len(per[0]) == 40 and per[0][-1] < per[0][0] < 1.0
    assert abs(per[0] - per[1]).max() < 1e-12 and abs(per[1] - per[2]).max() < 1e-12
    traj = D.pure_decay_trajectories([1e-3, 10.0], lr, 40)
    assert abs(traj[traj.strength == 1e-3].gamma.to_numpy() - per[2]).max() < 1e-4
    # plain SGD is not invariant: the check above can fail
    g = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([g], lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        (0.5 * 10.0 * g ** 2).sum().backward()
        opt.step()
    assert abs(float(g.detach()) - per[2][4]) > 0.1


def test_pure_decay_rejects_bad_arguments():
    lr = CosineSchedule(0.05, 5e-4, 10)
    with pytest.raises(ValueError, match="positive"):
        D.pure_decay_trajectories([0.0], lr, 10)
    with pytest.raises(ValueError, match="steps"):
        D.pure_decay_trajectories([1.0], lr, 0)
    with pytest.raises(ValueError, match="takeover"):
        D.final_gamma_by_takeover(1.0, lr, 10, [10])


def test_a_later_takeover_leaves_gamma_larger():
    lr = CosineSchedule(0.05, 5e-4, 60)
    late = D.final_gamma_by_takeover(5e-3, lr, 60, [0, 30, 59])
    assert list(late.takeover) == [0, 30, 59]
    first, middle, last = late.final_abs_gamma
    assert first < 0.1 < middle < last < 1.0
    # the last takeover is one step of the final learning rate
    assert last == pytest.approx(1.0 - lr(59), rel=1e-3)


def _batches(n: int = 2, size: int = 32) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [{"image": torch.rand(4, 3, size, size, generator=gen),
             "mask": (torch.rand(4, size, size, generator=gen) > 0.5).float()} for _ in range(n)]


def _bce(output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(output, batch["mask"].unsqueeze(1))


def test_gamma_gradients_split_the_training_gradient():
    torch.manual_seed(0)
    net = C.csnet(0.5)
    batches = _batches()
    running = [m.running_mean.clone() for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    dyn = D.gamma_gradients(net, batches, _bce, "dynamic", lam=3.0)
    assert all(r.equal(m.running_mean) for r, m in zip(running, (m for m in net.modules()
                                                                 if isinstance(m, torch.nn.BatchNorm2d))))
    conv1x1 = {n: u for n, u in S.decay_units(net).items() if n.endswith(".conv1x1")}
    assert len(dyn) == sum(bn.num_features for u in conv1x1.values() for bn in u.bns if bn is not None)
    assert set(dyn.unit) == set(conv1x1)
    # the task gradient is what autograd gives for the loss alone (training mode, batch statistics)
    ref = C.csnet(0.5)
    ref.load_state_dict(net.state_dict())
    ref.train()
    grads = None
    for b in batches:
        ref.zero_grad()
        _bce(ref(b["image"]), b).backward()
        g = ref.stage1[0].conv1x1.bns[0].weight.grad.clone()
        grads = g if grads is None else grads + g
    row = dyn[(dyn.unit == "stage1.0.conv1x1") & (dyn.scale == 0)].sort_values("channel")
    assert torch.allclose(torch.tensor(row.loss_grad.values, dtype=torch.float32), grads / len(batches),
                          rtol=1e-4, atol=1e-8)
    # the dynamic decay's gradient is λ · mean |GAP| · γ: positive along γ, zero where γ = 0
    assert (dyn.decay_grad * dyn.gamma > 0).all()
    std = D.gamma_gradients(net, batches, _bce, "standard", weight_decay=5e-3)
    assert torch.allclose(torch.tensor(std.decay_grad.values), 5e-3 * torch.tensor(std.gamma.values))
    assert torch.allclose(torch.tensor(std.loss_grad.values), torch.tensor(dyn.loss_grad.values))
    assert ((dyn.adam_ratio >= 0) & (dyn.adam_ratio <= 1 + 1e-6)).all()
    with pytest.raises(ValueError, match="decay"):
        D.gamma_gradients(net, batches, _bce, "l1")
    with pytest.raises(ValueError, match="batch"):
        D.gamma_gradients(net, [], _bce, "standard")


def test_balance_summary_bands():
    grads = pd.DataFrame({"gamma": [0.001, -0.05, 0.05, 0.5], "abs_gamma": [0.001, 0.05, 0.05, 0.5],
                          "loss_grad": [1.0, 1.0, 1.0, -2.0], "decay_grad": [1.0, -0.5, 0.5, 1.0],
                          "adam_ratio": [0.1, 0.9, 0.9, 1.0]})
    table = D.balance_summary(grads, [0.01, 0.1])
    assert list(table.index) == ["< 0.01", "0.01 – 0.1", "≥ 0.1"]
    assert list(table.channels) == [1, 2, 1]
    # γ = -0.05 with loss gradient +1 pushes |γ| up (opposes); γ = 0.05 with +1 pushes it down
    assert table.loc["0.01 – 0.1", "loss_opposes"] == 0.5
    assert table.loc["≥ 0.1", "loss_opposes"] == 1.0
    assert table.loc["0.01 – 0.1", "ratio"] == 2.0
    with pytest.raises(ValueError, match="increasing"):
        D.balance_summary(grads, [0.1, 0.01])
