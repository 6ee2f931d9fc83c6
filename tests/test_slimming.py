"""Tests for salbook.pruning.slimming: dynamic decay (code and eq. 3), L1 on γ, threshold
pruning with the physical rebuild and weight copy, BN recalibration and the official no-op fine-tune."""

from __future__ import annotations

import pytest
import torch

from salbook.cost import count_params
from salbook.models import csnet as C
from salbook.pruning import slimming as S

pytestmark = pytest.mark.usefixtures("one_thread")


def _net(seed: int = 0) -> C.CSNet:
    torch.manual_seed(seed)
    net = C.csnet(0.5)  # base width 10: small and quick
    C.init_bn_statistics(net, torch.rand(4, 3, 32, 32))
    return net


def test_decision_and_decay_units_cover_the_network():
    net = _net()
    assert len(S.decay_units(net)) == 3 * 18
    bns = S.decision_bns(net)
    assert len(bns) == 18 + 1 + 3 + 1
    table = S.gamma_table(net)
    assert len(table) == sum(bn.num_features for per in bns.values() for bn in per if bn is not None)
    assert set(S.channels_under(net, [2.0]).under) == {len(table)}  # fresh γ = 1 < 2


def test_dynamic_decay_is_the_code_loss_term_and_its_gradient():
    net = _net().train()
    dd = S.DynamicDecay(lam=3.0)
    with pytest.raises(RuntimeError, match="callbacks"):
        dd(net, None, torch.zeros(()))
    dd.attach(net)
    x = torch.rand(2, 3, 32, 32)
    out = net(x)
    value = dd(net, None, out)
    # by hand: 3 · Σ_units Σ_scales 0.5 Σ_{n,c} |GAP(y)| γ² / N
    expect = 0.0
    feats = []
    hooks = [u.register_forward_hook(lambda m, i, o: feats.append((m, o))) for u in S.decay_units(net).values()]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    for unit, ys in feats:
        for y, bn in zip(ys, unit.bns):
            if y is not None:
                expect += 0.5 * (y.mean(dim=(2, 3)).abs() * bn.weight.detach() ** 2).sum().item()
    assert value.item() == pytest.approx(3.0 * expect / 2, rel=1e-4)
    # its gradient on γ is λ · mean_n |GAP| · γ (the features are detached)
    net.zero_grad()
    value.backward()
    unit = net.stage1[0].conv3x3_1
    _, ys = next(f for f in feats if f[0] is unit)
    bn = unit.bns[0]
    want = 3.0 * ys[0].mean(dim=(2, 3)).abs().mean(0) * bn.weight.detach()
    assert torch.allclose(bn.weight.grad, want, rtol=1e-3, atol=1e-7)
    assert net.stage1[0].conv1x1.conv.weight.grad is None or float(net.stage1[0].conv1x1.conv.weight.grad.abs().sum()) == 0
    dd.detach()
    assert not dd._handles


def test_eq3_decays_gamma_directly_after_the_step():
    net = _net().train()
    cb = S.DynamicDecayEq3(lam=2.0)
    cb.attach(net)
    cb.on_step_start(None, None)
    net(torch.rand(2, 3, 32, 32))
    bn = net.stage0[0].conv1x1.bns[0]
    s = next(s for b, s in cb.captured if b is bn).mean(0)
    before = bn.weight.detach().clone()

    class T:  # the trainer attributes the callback reads
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)

    cb.on_step_end(T, None, torch.zeros(()))
    assert torch.allclose(bn.weight.detach(), before * (1 - 0.1 * 2.0 * s), atol=1e-6)
    cb.detach()


def test_l1_gamma_sums_decision_gammas():
    net = _net()
    total = sum(bn.weight.abs().sum().item() for per in S.decision_bns(net).values() for bn in per if bn is not None)
    assert S.l1_gamma(1e-3)(net, None, torch.zeros(())).item() == pytest.approx(1e-3 * total, rel=1e-5)


def _zero_removed(net: C.CSNet, threshold: float) -> None:
    """Make removed channels output exactly zero in the source (γ = β = 0 in every unit, depthwise
    running means 0), so the pruned network must compute the same function."""
    with torch.no_grad():
        for stage in net.extractor_stages():
            for block in stage:
                for k, bn in enumerate(block.conv1x1.bns):
                    if bn is None:
                        continue
                    off = bn.weight.abs() < threshold
                    bn.weight[off] = 0
                    bn.bias[off] = 0
                    for unit in (block.conv3x3_1, block.conv3x3_2):
                        unit.bns[k].weight[off] = 0
                        unit.bns[k].bias[off] = 0
        head = net.oct_fuse
        for bn in [*head.fuse.bns, *[m.bn for m in head.ms.convs if m is not None], *head.fuse1x1.bns]:
            if bn is not None:
                off = bn.weight.abs() < threshold
                bn.weight[off] = 0
                bn.bias[off] = 0


def test_prune_rebuilds_smaller_and_computes_the_same_function():
    net = _net(1)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for per in S.decision_bns(net).values():
            for bn in per:
                if bn is not None:
                    bn.weight.copy_(torch.rand(bn.num_features, generator=g) * 2 - 1)
    _zero_removed(net, 0.4)
    net.eval()
    res = S.prune_csnet(net, 0.4)
    assert count_params(res.model) < count_params(net)
    assert res.model.width_spec() == res.spec
    assert C.csnet_from_spec(res.spec).state_dict().keys() == res.model.state_dict().keys()
    for name, per in res.kept.items():
        assert sum(len(k) for k in per) >= (0 if name.startswith("oct_fuse.ms") else 1)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        y, z = net(x), res.model(x)
    assert torch.allclose(y, z, atol=1e-3 * float(y.abs().max()) + 1e-4)


def test_prune_keeps_one_channel_per_unit_and_fresh_stats_on_request():
    net = _net(2)
    with torch.no_grad():
        for bn in net.stage2[0].conv1x1.bns:
            bn.weight.mul_(1e-6)
        net.stage2[0].conv1x1.bns[1].weight[3] = 5e-6  # the strongest of them survives
    res = S.prune_csnet(net, 1e-3, copy_running_stats=False)
    assert res.spec["blocks"][4] == [0, 1]
    assert res.kept["stage2.0.conv1x1"] == [[], [3]]
    bn = res.model.stage1[0].conv1x1.bns[0]
    assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)
    with pytest.raises(TypeError, match="CSNet"):
        S.prune_csnet(torch.nn.Conv2d(1, 1, 1), 0.1)


def test_official_noop_finetune_moves_only_running_stats():
    net = _net(3)
    res = S.prune_csnet(net, 0.5, copy_running_stats=False)
    params = [p.detach().clone() for p in res.model.parameters()]
    S.official_noop_finetune(res.model, [torch.rand(2, 3, 32, 32) for _ in range(3)])
    assert all(torch.equal(a, b) for a, b in zip(params, res.model.parameters()))
    bn = res.model.stage1[0].conv1x1.bns[0]
    assert not torch.all(bn.running_mean == 0)
    assert not res.model.training
    spread = S.output_spread(res.model, torch.rand(2, 3, 32, 32))
    assert len(spread) > 10 and (spread.spread >= 0).all()


def test_decay_signal_scales_with_gamma_when_the_shift_is_zero():
    torch.manual_seed(0)
    net = C.csnet_x1()
    x = torch.rand(4, 3, 32, 32)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.bias.data.zero_()
    running = [m.running_mean.clone() for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = S.decay_signal(net, x)
    assert all(r.equal(m.running_mean) for r, m in zip(running, (m for m in net.modules()
                                                                 if isinstance(m, torch.nn.BatchNorm2d))))
    units = S.decay_units(net)
    assert len(before) == sum(bn.num_features for u in units.values() for bn in u.bns if bn is not None)
    assert (before.abs_gap > 0).all() and before.grad.eq(before.abs_gap * before.gamma).all()
    name = next(iter(units))
    bn = next(b for b in units[name].bns if b is not None)
    bn.weight.data.mul_(0.1)
    after = S.decay_signal(net, x)
    sel = (before.unit == name) & (before.scale == list(units[name].bns).index(bn))
    # BN in training mode with β = 0 and PReLU are positively homogeneous: |GAP| scales with γ exactly
    assert torch.allclose(torch.tensor(after[sel].abs_gap.values), 0.1 * torch.tensor(before[sel].abs_gap.values),
                          rtol=1e-4, atol=1e-7)
