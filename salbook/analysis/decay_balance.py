"""Why a stronger decay on BatchNorm scales need not put more of them under a pruning threshold.

Two measurements for chapter 6 (CSNet's dynamic weight decay against the standard one):

* :func:`pure_decay_trajectories` — what Adam does with a decay alone. For the loss ``½ c γ²`` Adam's
  step ``lr · m̂ / (√v̂ + ε)`` is the same for every strength ``c`` (both moments scale with ``c``
  and the ratio does not), so a channel that only the decay moves falls along one trajectory
  whatever ``c`` is: a decay ``c`` times stronger is not faster.
* :func:`gamma_gradients` — where the trained network's scales sit: per decision channel, the task
  loss's gradient on ``γ`` and the decay's, averaged over batches in training mode. Where the two
  cancel, ``γ`` is held by the task (the loss pushes ``|γ|`` up as hard as the decay pulls it down);
  a stronger decay then moves the balance point, not the channel past the threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..pruning import slimming

__all__ = ["pure_decay_trajectories", "final_gamma_by_takeover", "gamma_gradients", "balance_summary"]


def pure_decay_trajectories(strengths: Sequence[float], lr: Callable[[int], float], steps: int,
                            betas: tuple[float, float] = (0.9, 0.999), start: float = 1.0,
                            eps: float = 1e-8) -> pd.DataFrame:
    """``γ`` under ``torch.optim.Adam`` with the loss ``½ c γ²`` only, one run per strength ``c``.

    Args:
        strengths: the decay coefficients ``c`` (the gradient on ``γ`` is ``c · γ``), each > 0.
        lr: learning rate per step (e.g. a :class:`~salbook.schedules.CosineSchedule` already
            multiplied by the BN learning-rate multiplier).
        steps: optimiser steps (>= 1).
        betas, eps: Adam's.
        start: ``γ`` at step 0.

    Returns:
        Rows ``strength``, ``step`` (1 … steps), ``gamma`` (after that step), ``abs_gamma``.
    """
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not strengths or any(not float(c) > 0 for c in strengths):
        raise ValueError(f"strengths must be positive numbers, got {list(strengths)!r}")
    rows = []
    for c in strengths:
        gamma = nn.Parameter(torch.full((1,), float(start), dtype=torch.float64))
        opt = torch.optim.Adam([gamma], lr=float(lr(0)), betas=betas, eps=eps)
        for t in range(int(steps)):
            opt.param_groups[0]["lr"] = float(lr(t))
            opt.zero_grad()
            (0.5 * float(c) * gamma.pow(2)).sum().backward()
            opt.step()
            g = float(gamma.detach())
            rows.append({"strength": float(c), "step": t + 1, "gamma": g, "abs_gamma": abs(g)})
    return pd.DataFrame(rows)


def final_gamma_by_takeover(strength: float, lr: Callable[[int], float], steps: int,
                            takeovers: Sequence[int] | None = None, **adam: Any) -> pd.DataFrame:
    """``|γ|`` at the end of a schedule of ``steps`` steps for a channel that only the decay moves
    from step ``s`` on (``γ = 1`` and a fresh Adam state at ``s``; the learning rate ``lr(t)`` of
    the schedule's own steps ``s … steps - 1``).

    Args:
        strength: the decay coefficient (by :func:`pure_decay_trajectories` it does not matter).
        takeovers: the steps ``s`` (default every step ``0 … steps - 1``).
        adam: ``betas``, ``eps`` (see :func:`pure_decay_trajectories`).

    Returns:
        Rows ``takeover`` (``s``), ``final_abs_gamma``.
    """
    takeovers = list(range(int(steps))) if takeovers is None else [int(s) for s in takeovers]
    if any(not 0 <= s < steps for s in takeovers):
        raise ValueError(f"takeover steps must lie in [0, {steps}), got {takeovers!r}")
    rows = []
    for s in takeovers:
        traj = pure_decay_trajectories([strength], lambda t, s=s: lr(t + s), int(steps) - s, **adam)
        rows.append({"takeover": s, "final_abs_gamma": float(traj.abs_gamma.iloc[-1])})
    return pd.DataFrame(rows)


def gamma_gradients(model: nn.Module, batches: Iterable[Mapping[str, Any]],
                    loss_fn: Callable[[torch.Tensor, Mapping[str, Any]], torch.Tensor], decay: str,
                    lam: float = 3.0, weight_decay: float = 0.0) -> pd.DataFrame:
    """Per decision channel of every ILBlock (the ``conv1x1`` BNs, which the decay also hooks): the
    task loss's gradient on ``γ`` and the decay's, each averaged over ``batches``.

    The model runs on a copy in training mode (batch statistics, as during training; the model's
    running statistics are untouched) on the device of its parameters.

    Args:
        batches: dicts with ``image`` (``N × 3 × H × W``) and what ``loss_fn`` needs.
        loss_fn: ``loss_fn(output, batch)``, the training loss without the decay (chapter 6: BCE).
        decay: ``"standard"`` (Adam's coupled L2: gradient ``weight_decay · γ``) or ``"dynamic"``
            (the official term: ``lam · mean_n |GAP_{n,c}| · γ_c``, ``S`` measured on each batch).
        lam, weight_decay: the coefficients of the two decays.

    Returns:
        Rows ``unit``, ``scale``, ``channel``, ``gamma``, ``abs_gamma``, ``loss_grad``, ``decay_grad``
        (batch means), ``grad_rms`` (root mean square over batches of the whole gradient, loss plus
        decay: what Adam's ``√v̂`` estimates) and ``adam_ratio`` = ``|loss_grad + decay_grad| /
        grad_rms`` (what ``|m̂| / √v̂`` estimates: Adam's step is about ``lr × adam_ratio``; 1 when
        the gradient is the same on every batch, near 0 when batch noise swamps its mean).
        ``loss_grad`` with the sign of ``γ`` pushes ``|γ|`` down (with the decay); with the opposite
        sign it pushes ``|γ|`` up (against it).
    """
    import copy

    if decay not in ("standard", "dynamic"):
        raise ValueError(f"decay must be 'standard' or 'dynamic', got {decay!r}")
    net = copy.deepcopy(model).train()
    units = {name: unit for name, unit in slimming.decay_units(net).items() if name.endswith(".conv1x1")}
    bns = {id(bn): (name, k, bn) for name, unit in units.items() for k, bn in enumerate(unit.bns) if bn is not None}
    loss_sum = {key: torch.zeros_like(bn.weight) for key, (_n, _k, bn) in bns.items()}
    decay_sum = {key: torch.zeros_like(bn.weight) for key, (_n, _k, bn) in bns.items()}
    square_sum = {key: torch.zeros_like(bn.weight) for key, (_n, _k, bn) in bns.items()}
    hooks = slimming.DynamicDecay(lam)
    hooks.attach(net)
    device = next(net.parameters()).device
    n_batches = 0
    try:
        for batch in batches:
            hooks.captured = []
            net.zero_grad(set_to_none=True)
            output = net(batch["image"].to(device))
            loss_fn(output, batch).backward()
            captured = {id(bn): s for bn, s in hooks.captured}
            for key, (_name, _k, bn) in bns.items():
                gamma = bn.weight.detach()
                lg = bn.weight.grad.detach() if bn.weight.grad is not None else torch.zeros_like(gamma)
                if decay == "dynamic":
                    dg = float(lam) * captured[key].mean(dim=0).to(gamma) * gamma
                else:
                    dg = float(weight_decay) * gamma
                loss_sum[key] += lg
                decay_sum[key] += dg
                square_sum[key] += (lg + dg) ** 2
            n_batches += 1
    finally:
        hooks.detach()
    if n_batches == 0:
        raise ValueError("gamma_gradients needs at least one batch")
    rows = []
    for key, (name, k, bn) in bns.items():
        gamma = bn.weight.detach().cpu().tolist()
        lg = (loss_sum[key] / n_batches).cpu().tolist()
        dg = (decay_sum[key] / n_batches).cpu().tolist()
        rms = (square_sum[key] / n_batches).sqrt().cpu().tolist()
        for c, (g, lgc, dgc, r) in enumerate(zip(gamma, lg, dg, rms)):
            rows.append({"unit": name, "scale": k, "channel": c, "gamma": g, "abs_gamma": abs(g),
                         "loss_grad": lgc, "decay_grad": dgc, "grad_rms": r,
                         "adam_ratio": abs(lgc + dgc) / r if r > 0 else 0.0})
    return pd.DataFrame(rows)


def balance_summary(grads: pd.DataFrame, edges: Sequence[float]) -> pd.DataFrame:
    """:func:`gamma_gradients` rows grouped by ``|γ|`` band (``edges`` increasing; bands
    ``< edges[0]``, ``[edges[i], edges[i+1])``, ``≥ edges[-1]``).

    Columns per band: ``channels``; ``loss_opposes`` (share whose loss gradient pushes ``|γ|`` up,
    against the decay); ``ratio`` (median ``|loss_grad| / |decay_grad|``; 1 = balanced);
    ``decay_grad`` and ``loss_grad`` (medians of the magnitudes); ``adam_ratio`` (median
    ``|m̂| / √v̂``: Adam's step on ``γ`` in units of the learning rate).
    """
    edges = [float(e) for e in edges]
    if not edges or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"edges must be increasing and non-empty, got {edges!r}")
    labels = [f"< {edges[0]:g}"] + [f"{a:g} – {b:g}" for a, b in zip(edges, edges[1:])] + [f"≥ {edges[-1]:g}"]
    bins = [0.0] + edges + [float("inf")]
    df = grads.assign(band=pd.cut(grads.abs_gamma, bins=bins, labels=labels, right=False))
    sign = df.gamma.apply(lambda g: 1.0 if g >= 0 else -1.0)
    df = df.assign(opposes=(df.loss_grad * sign < 0).astype(float),
                   ratio=df.loss_grad.abs() / df.decay_grad.abs().clip(lower=1e-30),
                   abs_decay=df.decay_grad.abs(), abs_loss=df.loss_grad.abs())
    out = df.groupby("band", observed=False).agg(channels=("gamma", "size"), loss_opposes=("opposes", "mean"),
                                                  ratio=("ratio", "median"), decay_grad=("abs_decay", "median"),
                                                  loss_grad=("abs_loss", "median"),
                                                  adam_ratio=("adam_ratio", "median"))
    return out
