"""Fisher pruning with a FLOP penalty (Theis et al. 2018), and the baselines of its Figure 1.

A prunable network carries :class:`~salbook.pruning.ChannelMask` modules after the layers whose
feature maps may be removed, and says how its weight layers connect to them with a method
``prune_links() -> list[(layer_name, in_mask_name | None, out_mask_name | None)]``: the mask
whose maps a layer reads (its input channels) and the mask that switches its output maps off.
A depthwise convolution reads and writes the same mask. From that, and one forward pass that
measures every layer's output size, :func:`cost_model` builds the paper's cost (eq. 11)::

    C(conv) = H · W · C_out · (2 · C_in · K² + 1)        (the "+1" only when the layer has a bias)

with ``C_in`` / ``C_out`` the maps still alive in the masks the layer reads and writes, so the
cost of removing one more map of mask ``m``, ``ΔC_m = C(alive − 1_m) − C(alive) < 0``, is
**recomputed from the current counts**: it changes as neighbouring layers are pruned.

The pruning signals (:class:`SignalMeter` accumulates them from forward/backward passes):

* ``fisher`` — Δ_k = (1/2N) Σ_n g_nk², g_nk = Σ_ij a_nkij ∂ℓ_n/∂a_nkij (eq. 7-9), ℓ_n the loss
  of example n. The loss of a batch is a mean, so ∂ℓ_n/∂a = B · ∂L/∂a;
* ``taylor`` — Molchanov et al.'s |(1/HW) Σ_ij a ∂ℓ/∂a| averaged over examples; ``taylor_norm``
  divides it by its L2 norm within each layer;
* ``activation`` — the mean activation of the map; ``magnitude`` — the L2 norm of the weights
  that produce the map; ``random``.

How a map is chosen (:func:`select`): Fisher minimises Δ_k + β·ΔC_k (β = 0: unregularised),
``fisher_auto`` minimises β_k = −Δ_k/ΔC_k (the hyper-parameter-free signal; its minimum is the
paper's β*), Molchanov minimises Θ_k − λ·C⁰_k with C⁰ the map's cost computed **once** before
pruning; the baselines take the smallest score. Costs are in units of the unpruned network's
total FLOPs, so β is "loss per whole network".
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import ChannelMask, masks_of

__all__ = [
    "METHODS",
    "LayerCost",
    "CostModel",
    "cost_model",
    "alive_counts",
    "SignalMeter",
    "select",
    "prune_maps",
    "estimate_signals",
    "prune_without_retraining",
    "FisherPruning",
    "MagnitudePruning",
    "sparse_cost",
]

#: Selection rules :func:`select` knows.
METHODS = ("fisher", "fisher_auto", "taylor", "taylor_norm", "activation", "magnitude", "random")


@dataclass(frozen=True)
class LayerCost:
    """One convolution or linear layer's FLOPs as a function of the maps left alive (eq. 11).

    Attributes:
        name: the layer's qualified name in the model.
        in_mask, out_mask: the masks it reads / writes (``None``: fixed width).
        c_in, c_out: its full input / output widths.
        spatial: output positions H·W (1 for a linear layer).
        k2: multiply-adds per output value and input map: K² for a convolution (K_h·K_w), and for a
            linear layer fed by flattened maps, the positions per map (``in_features / c_in``).
        depthwise: a depthwise convolution (one filter per map): ``C = H·W·C·(2·K² + 1)``.
        bias: the layer adds a bias (the "+1" of eq. 11).
    """

    name: str
    in_mask: str | None
    out_mask: str | None
    c_in: int
    c_out: int
    spatial: int
    k2: int
    depthwise: bool = False
    bias: bool = True

    def flops(self, alive: Mapping[str, int]) -> float:
        cin = alive[self.in_mask] if self.in_mask is not None else self.c_in
        cout = alive[self.out_mask] if self.out_mask is not None else self.c_out
        if self.depthwise:
            return float(self.spatial * cout * (2 * self.k2 + int(self.bias)))
        return float(self.spatial * cout * (2 * cin * self.k2 + int(self.bias)))


class CostModel:
    """The network's FLOPs as a function of alive map counts (see the module docstring).

    Attributes:
        layers: the :class:`LayerCost` of every weight layer listed in ``prune_links``.
        sizes: full width of every mask.
        reference: the unpruned total (FLOPs); :meth:`relative` divides by it.
    """

    def __init__(self, layers: Sequence[LayerCost], sizes: Mapping[str, int]) -> None:
        self.layers = list(layers)
        self.sizes = dict(sizes)
        self.reference = self.total(self.sizes)
        if not self.reference > 0:
            raise ValueError("the cost model counts no FLOPs; check prune_links()")

    def total(self, alive: Mapping[str, int]) -> float:
        """FLOPs of the network with ``alive`` maps per mask (eq. 11 summed over the layers)."""
        return sum(layer.flops(alive) for layer in self.layers)

    def relative(self, alive: Mapping[str, int]) -> float:
        """:meth:`total` as a fraction of the unpruned network's."""
        return self.total(alive) / self.reference

    def delta(self, alive: Mapping[str, int]) -> dict[str, float]:
        """ΔC_m, the change of the relative cost when one more map of mask ``m`` goes (≤ 0; 0 when
        one map is left). Only the layers that read or write ``m`` change."""
        if not hasattr(self, "_touching"):
            self._touching = {m: [l for l in self.layers if m in (l.in_mask, l.out_mask)] for m in self.sizes}
        out = {}
        for m, n in alive.items():
            if n <= 1:
                out[m] = 0.0
                continue
            fewer = {**alive, m: n - 1}
            out[m] = sum(l.flops(fewer) - l.flops(alive) for l in self._touching[m]) / self.reference
        return out

    def by_layer(self, alive: Mapping[str, int]) -> pd.DataFrame:
        """FLOPs per layer now and unpruned."""
        return pd.DataFrame({"layer": [l.name for l in self.layers],
                             "flops": [l.flops(alive) for l in self.layers],
                             "flops_unpruned": [l.flops(self.sizes) for l in self.layers]})


def _links(model: nn.Module) -> list[tuple[str, str | None, str | None]]:
    if not hasattr(model, "prune_links"):
        raise TypeError(f"{type(model).__name__} has no prune_links(); a prunable model lists "
                        "(layer, in_mask, out_mask) for each weight layer")
    return [tuple(x) for x in model.prune_links()]  # type: ignore[operator]


def alive_counts(model: nn.Module) -> dict[str, int]:
    """Maps still on, per mask."""
    return {name: len(m.kept) for name, m in masks_of(model).items()}


def cost_model(model: nn.Module, example_input: torch.Tensor) -> CostModel:
    """Measure every linked layer's output size with one forward pass and build the :class:`CostModel`.

    Args:
        model: a network with :class:`ChannelMask` modules and ``prune_links()``.
        example_input: one batch the network accepts (``1 × C × H × W``); only shapes matter.
    """
    links = _links(model)
    masks = masks_of(model)
    modules = dict(model.named_modules())
    spatial: dict[str, int] = {}
    hooks = []
    for name, _i, _o in links:
        if name not in modules:
            raise KeyError(f"prune_links names {name!r}, which is not a module of {type(model).__name__}")
        mod = modules[name]
        hooks.append(mod.register_forward_hook(
            lambda _m, _x, y, name=name: spatial.__setitem__(name, int(np.prod(y.shape[2:])) if y.dim() > 2 else 1)))
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    layers = []
    for name, i, o in links:
        for mname in (i, o):
            if mname is not None and mname not in masks:
                raise KeyError(f"prune_links names mask {mname!r}, not a ChannelMask of the model")
        mod = modules[name]
        if isinstance(mod, nn.Conv2d):
            dw = mod.groups > 1 and mod.groups == mod.in_channels == mod.out_channels
            if mod.groups > 1 and not dw:
                raise ValueError(f"{name}: grouped convolutions other than depthwise are not supported")
            k2 = mod.kernel_size[0] * mod.kernel_size[1]
            c_in, c_out = mod.in_channels, mod.out_channels
        elif isinstance(mod, nn.Linear):
            dw = False
            c_out = mod.out_features
            c_in = len(masks[i].mask) if i is not None else mod.in_features
            if mod.in_features % c_in:
                raise ValueError(f"{name}: {mod.in_features} inputs are not a whole number of positions per map of {i}")
            k2 = mod.in_features // c_in
        else:
            raise TypeError(f"{name} is a {type(mod).__name__}; prune_links lists Conv2d and Linear layers only")
        layers.append(LayerCost(name, i, o, c_in, c_out, spatial[name], k2, dw, mod.bias is not None))
    return CostModel(layers, {n: len(m.mask) for n, m in masks.items()})


def _producers(model: nn.Module) -> dict[str, nn.Module]:
    """The non-depthwise layer that writes each mask (its weights' rows are the maps)."""
    modules = dict(model.named_modules())
    out: dict[str, nn.Module] = {}
    for name, _i, o in _links(model):
        mod = modules[name]
        dw = isinstance(mod, nn.Conv2d) and mod.groups > 1
        if o is not None and not dw:
            out[o] = mod
    return out


class SignalMeter:
    """Accumulate the pruning signals of every :class:`ChannelMask` over forward/backward passes.

    Attach it (:meth:`attach`) to a model; each training forward pass with gradients registers a
    hook on each mask's output, and the backward pass feeds :meth:`_accumulate`. Signals are
    per example (``per_example_scale``: the batch's loss is a mean over its ``B`` examples, so the
    per-example gradient is ``B`` times the batch gradient).

    Attributes:
        fisher, taylor, activation: ``{mask: tensor of sums over examples}``; ``count``: examples.
    """

    def __init__(self, per_example_scale: bool = True) -> None:
        self.per_example_scale = per_example_scale
        self._hooks: list[Any] = []
        self.reset_sizes: dict[str, int] = {}
        self.fisher: dict[str, torch.Tensor] = {}
        self.taylor: dict[str, torch.Tensor] = {}
        self.activation: dict[str, torch.Tensor] = {}
        self.count = 0

    def attach(self, model: nn.Module) -> "SignalMeter":
        self.detach()
        for name, mask in masks_of(model).items():
            self.reset_sizes[name] = len(mask.mask)
            self._hooks.append(mask.register_forward_hook(
                lambda _m, _x, y, name=name: self._on_forward(name, y)))
        if not self.fisher:
            self.reset()
        return self

    def detach(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def reset(self) -> None:
        self.fisher = {n: torch.zeros(c, dtype=torch.float64) for n, c in self.reset_sizes.items()}
        self.taylor = {n: torch.zeros(c, dtype=torch.float64) for n, c in self.reset_sizes.items()}
        self.activation = {n: torch.zeros(c, dtype=torch.float64) for n, c in self.reset_sizes.items()}
        self.count = 0

    def _on_forward(self, name: str, y: torch.Tensor) -> None:
        if not (torch.is_grad_enabled() and y.requires_grad):
            return
        a = y.detach()
        y.register_hook(lambda g, name=name, a=a: self._accumulate(name, a, g))

    def _accumulate(self, name: str, a: torch.Tensor, g: torch.Tensor) -> None:
        b = a.shape[0]
        scale = float(b) if self.per_example_scale else 1.0
        ag = (a * g).double() * scale
        dims = tuple(range(2, a.dim()))
        gnk = ag.sum(dim=dims) if dims else ag  # B × C
        self.fisher[name] += 0.5 * (gnk ** 2).sum(0).cpu()
        per_pos = ag.mean(dim=dims) if dims else ag
        self.taylor[name] += per_pos.abs().sum(0).cpu()
        act = a.double().abs().mean(dim=dims) if dims else a.double().abs()
        self.activation[name] += act.sum(0).cpu()
        # every mask sees the same examples: count them once per backward pass (at the first mask)
        if name == next(iter(self.reset_sizes)):
            self.count += b

    def signals(self) -> dict[str, dict[str, torch.Tensor]]:
        """Per-example means: ``{"fisher": {mask: Δ}, "taylor": ..., "activation": ...}``."""
        n = max(self.count, 1)
        return {"fisher": {k: v / n for k, v in self.fisher.items()},
                "taylor": {k: v / n for k, v in self.taylor.items()},
                "activation": {k: v / n for k, v in self.activation.items()}}

    def state_dict(self) -> dict[str, Any]:
        return {"fisher": dict(self.fisher), "taylor": dict(self.taylor), "activation": dict(self.activation),
                "count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key in ("fisher", "taylor", "activation"):
            getattr(self, key).update({k: v.clone().to(torch.float64) for k, v in state[key].items()})
        self.count = int(state["count"])


def _scores(model: nn.Module, method: str, signals: Mapping[str, Mapping[str, torch.Tensor]],
            generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    masks = masks_of(model)
    if method in ("fisher", "fisher_auto"):
        return {k: v.clone() for k, v in signals["fisher"].items()}
    if method == "taylor":
        return {k: v.clone() for k, v in signals["taylor"].items()}
    if method == "taylor_norm":
        return {k: v / v.norm().clamp_min(1e-30) for k, v in signals["taylor"].items()}
    if method == "activation":
        return {k: v.clone() for k, v in signals["activation"].items()}
    if method == "magnitude":
        prod = _producers(model)
        return {k: prod[k].weight.detach().flatten(1).norm(dim=1).double().cpu() for k in masks}
    if method == "random":
        return {k: torch.rand(len(m.mask), generator=generator, dtype=torch.float64) for k, m in masks.items()}
    raise ValueError(f"unknown pruning method {method!r}; choose one of {METHODS}")


def select(
    model: nn.Module,
    costs: CostModel,
    method: str,
    n: int,
    signals: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    beta: float = 0.0,
    initial_delta: Mapping[str, float] | None = None,
    generator: torch.Generator | None = None,
) -> list[tuple[str, int, float]]:
    """Choose ``n`` maps to prune, greedily one at a time (costs updated after each choice).

    Args:
        model: the masked network (masks are read, not changed).
        costs: its :class:`CostModel`.
        method: one of :data:`METHODS`.
        n: maps to choose.
        signals: :meth:`SignalMeter.signals` (all methods but ``magnitude`` / ``random``).
        beta: the cost weight β (``fisher``) or λ (``taylor`` / ``taylor_norm``, cost estimated once).
        initial_delta: the once-estimated ΔC per mask for Molchanov's λ (default: the unpruned net's).
        generator: for ``random``.

    Returns:
        ``[(mask, channel, beta_k or score), ...]`` in the order chosen. Never empties a mask.
    """
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; choose one of {METHODS}")
    if signals is None and method not in ("magnitude", "random"):
        raise ValueError(f"method {method!r} needs signals= (SignalMeter.signals())")
    scores = _scores(model, method, signals or {}, generator)
    masks = masks_of(model)
    once = dict(initial_delta) if initial_delta is not None else costs.delta(costs.sizes)
    # Within one mask the cost term is the same for every map (it depends on the counts only), and
    # every rule is increasing in the map's own score: the best candidate of a mask is always its
    # alive map of smallest score. Sort each mask once and walk it.
    queue: dict[str, list[int]] = {}
    for k, m in masks.items():
        kept = torch.tensor(m.kept, dtype=torch.long)
        order = torch.argsort(scores[k][kept], stable=True)
        queue[k] = kept[order].tolist()
    pos = {k: 0 for k in masks}
    counts = {k: len(q) for k, q in queue.items()}
    chosen = []
    for _ in range(int(n)):
        d_cost = costs.delta(counts)
        best: tuple[float, str] | None = None
        for k, q in queue.items():
            if counts[k] <= 1:
                continue
            s = float(scores[k][q[pos[k]]])
            if method == "fisher":
                value = s + beta * d_cost[k]
            elif method == "fisher_auto":
                value = s / -d_cost[k] if d_cost[k] < 0 else math.inf
            elif method in ("taylor", "taylor_norm"):
                value = s + beta * once[k]
            else:
                value = s
            if best is None or value < best[0]:
                best = (value, k)
        if best is None:
            break
        value, k = best
        chosen.append((k, queue[k][pos[k]], value))
        pos[k] += 1
        counts[k] -= 1
    return chosen


def prune_maps(model: nn.Module, chosen: Iterable[tuple[str, int, float]]) -> None:
    """Switch the ``chosen`` maps off in the model's masks."""
    masks = masks_of(model)
    for k, c, _v in chosen:
        masks[k].prune(c)


Batch = Any


def estimate_signals(model: nn.Module, batches: Iterable[Batch], loss_fn: Callable[[Any, Batch], torch.Tensor],
                     forward: Callable[[nn.Module, Batch], Any] | None = None) -> tuple[dict, float]:
    """One pass over ``batches`` with gradients and no parameter update: the signals and mean loss.

    The model is put in eval mode (batch norm uses its running statistics, as at test time).
    """
    forward = forward or (lambda m, b: m(b["image"]))
    meter = SignalMeter().attach(model)
    was = model.training
    model.eval()
    total, n = 0.0, 0
    try:
        for batch in batches:
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():
                out = forward(model, batch)
                loss = loss_fn(out, batch)
                loss.backward()
            b = batch["image"].shape[0]
            total += float(loss.detach()) * b
            n += b
    finally:
        meter.detach()
        model.zero_grad(set_to_none=True)
        model.train(was)
    return meter.signals(), total / max(n, 1)


def prune_without_retraining(
    model: nn.Module,
    batches: Sequence[Batch],
    loss_fn: Callable[[Any, Batch], torch.Tensor],
    example_input: torch.Tensor,
    method: str,
    beta: float = 0.0,
    per_round: int = 10,
    rounds: int = 20,
    seed: int = 0,
    forward: Callable[[nn.Module, Batch], Any] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """The paper's Figure 1 protocol on a copy of ``model``: weights fixed, alternate estimating
    the signal on ``batches`` and pruning ``per_round`` maps.

    Returns:
        One row per round (and the start): ``maps_pruned``, ``flops_removed`` (fraction of the
        unpruned FLOPs), ``loss`` (mean over ``batches``), ``method``, ``beta``.
    """
    from tqdm.auto import tqdm

    net = copy.deepcopy(model)
    costs = cost_model(net, example_input)
    gen = torch.Generator().manual_seed(seed)
    initial = costs.delta(costs.sizes)
    rows = []
    pruned = 0
    for r in tqdm(range(rounds + 1), desc=f"prune {method} β={beta:g}", disable=not progress):
        signals, loss = estimate_signals(net, batches, loss_fn, forward)
        alive = alive_counts(net)
        rows.append({"method": method, "beta": beta, "maps_pruned": pruned,
                     "flops_removed": 1.0 - costs.relative(alive), "loss": loss})
        if r == rounds:
            break
        chosen = select(net, costs, method, per_round, signals, beta, initial, gen)
        if not chosen:
            break
        prune_maps(net, chosen)
        pruned += len(chosen)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# pruning while training: callbacks for salbook.train.fit


class _Snapshots:
    """Keep the most-pruned weights whose validation error is within a tolerance (early stopping).

    ``validate(model) -> error`` is called (under ``no_grad``, eval mode) every ``check_every``
    prune decisions; a state within ``threshold`` is kept; pruning stops once the error exceeds
    ``threshold + stop_margin``.
    """

    def _init_snapshots(self, validate, threshold, check_every, stop_margin):
        self.validate = validate
        self.threshold = threshold
        self.check_every = int(check_every)
        self.stop_margin = stop_margin
        self.snapshot: dict[str, torch.Tensor] | None = None
        self.snapshot_info: dict[str, float] = {}
        self.stopped = False

    def _check(self, trainer, cost: float, pruned: int) -> None:
        if self.validate is None:
            return
        model = trainer.model
        was = model.training
        model.eval()
        with torch.no_grad():
            err = float(self.validate(model))
        model.train(was)
        if err <= self.threshold:
            self.snapshot = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            self.snapshot_info = {"val_error": err, "cost": cost, "pruned": float(pruned), "step": float(trainer.step)}
        elif err > self.threshold + self.stop_margin:
            self.stopped = True

    def _restore(self, trainer) -> None:
        if self.snapshot is not None:
            trainer.model.load_state_dict(self.snapshot)

    def _snap_state(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "snapshot_info": dict(self.snapshot_info), "stopped": self.stopped}

    def _load_snap(self, state: Mapping[str, Any]) -> None:
        self.snapshot = state.get("snapshot")
        self.snapshot_info = dict(state.get("snapshot_info") or {})
        self.stopped = bool(state.get("stopped", False))


from ..train.callbacks import Callback  # noqa: E402


class FisherPruning(Callback, _Snapshots):
    """Prune feature maps during training (the paper's §2.4): accumulate the signal over
    ``steps_per_prune`` optimiser steps, then switch off ``maps_per_prune`` maps chosen by
    :func:`select` (``method``, ``beta``), reset the signal, and go on, until ``n_prune`` maps
    are gone or ``max_cost`` (fraction of unpruned FLOPs) is reached.

    Masks are buffers, so the architecture never changes during the run (no ``set_model``); the
    signal, counters and snapshot are in :meth:`state_dict`, so an interrupted run resumes exactly.
    Physical removal comes afterwards (:func:`salbook.pruning.removal.remove_pruned`).

    Args:
        example_input_shape: ``(C, H, W)`` of one input, for :func:`cost_model`.
        method, beta: the selection rule and its cost weight.
        steps_per_prune: optimiser steps between decisions (the paper: 10).
        maps_per_prune: maps removed per decision (the paper: 1), greedily with updated costs.
        n_prune: stop after this many maps; ``min_cost``: stop below this relative cost.
        start_step: steps of plain training before the first decision.
        validate, threshold, check_every, stop_margin: early stopping (see :class:`_Snapshots`);
            with ``validate=None`` the final weights are returned.
    """

    def __init__(self, example_input_shape: Sequence[int], method: str = "fisher", beta: float = 0.0,
                 steps_per_prune: int = 10, maps_per_prune: int = 1, n_prune: int = 10**9,
                 min_cost: float = 0.0, start_step: int = 0, seed: int = 0,
                 validate: Callable[[nn.Module], float] | None = None, threshold: float = math.inf,
                 check_every: int = 1, stop_margin: float = math.inf) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown pruning method {method!r}; choose one of {METHODS}")
        if steps_per_prune < 1 or maps_per_prune < 1:
            raise ValueError("steps_per_prune and maps_per_prune must be >= 1")
        self.shape = tuple(int(s) for s in example_input_shape)
        self.method, self.beta = method, float(beta)
        self.steps_per_prune, self.maps_per_prune = int(steps_per_prune), int(maps_per_prune)
        self.n_prune, self.min_cost, self.start_step = int(n_prune), float(min_cost), int(start_step)
        self.meter = SignalMeter()
        self.gen = torch.Generator().manual_seed(int(seed))
        self.since = 0
        self.pruned = 0
        self.decisions = 0
        self.events: list[dict[str, float]] = []
        self.costs: CostModel | None = None
        self.initial_delta: dict[str, float] | None = None
        self._init_snapshots(validate, threshold, check_every, stop_margin)

    @property
    def active(self) -> bool:
        return not self.stopped and self.pruned < self.n_prune

    def on_fit_start(self, trainer) -> None:
        device = next(trainer.model.parameters()).device
        self.costs = cost_model(trainer.model, torch.zeros(1, *self.shape, device=device))
        self.initial_delta = self.costs.delta(self.costs.sizes)
        self.meter.attach(trainer.model)

    def on_step_end(self, trainer, batch, loss) -> None:
        if not self.active or trainer.step <= self.start_step:
            self.meter.reset()
            return
        self.since += 1
        if self.since < self.steps_per_prune:
            return
        assert self.costs is not None
        if self.costs.relative(alive_counts(trainer.model)) <= self.min_cost:
            self.stopped = True
            return
        n = min(self.maps_per_prune, self.n_prune - self.pruned)
        chosen = select(trainer.model, self.costs, self.method, n, self.meter.signals(), self.beta,
                        self.initial_delta, self.gen)
        prune_maps(trainer.model, chosen)
        self.pruned += len(chosen)
        self.decisions += 1
        cost = self.costs.relative(alive_counts(trainer.model))
        self.events.append({"step": float(trainer.step), "pruned": float(self.pruned), "cost": cost,
                            "score": float(chosen[-1][2]) if chosen else float("nan")})
        self.meter.reset()
        self.since = 0
        if self.decisions % self.check_every == 0:
            self._check(trainer, cost, self.pruned)
        if not chosen:
            self.stopped = True

    def on_epoch_end(self, trainer, row) -> None:
        assert self.costs is not None
        row["maps_pruned"] = self.pruned
        row["relative_flops"] = self.costs.relative(alive_counts(trainer.model))

    def on_fit_end(self, trainer) -> None:
        self.meter.detach()
        self._restore(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"meter": self.meter.state_dict(), "since": self.since, "pruned": self.pruned,
                "decisions": self.decisions, "events": list(self.events), "gen": self.gen.get_state(),
                **self._snap_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.meter.load_state_dict(state["meter"])
        self.since, self.pruned, self.decisions = int(state["since"]), int(state["pruned"]), int(state["decisions"])
        self.events = list(state["events"])
        self.gen.set_state(state["gen"])
        self._load_snap(state)


class MagnitudePruning(Callback, _Snapshots):
    """Han et al.'s weight pruning: per layer, zero the weights of smallest magnitude, keep them at
    zero after every optimiser step, and raise the sparsity along ``levels`` every
    ``steps_per_level`` steps (retraining in between). Layers: those in ``prune_links()``.

    The cost it reaches is counted by :func:`sparse_cost` (FLOPs of the non-zero weights: what a
    sparse kernel would need; dense hardware saves nothing).
    """

    def __init__(self, levels: Sequence[float], steps_per_level: int,
                 validate: Callable[[nn.Module], float] | None = None, threshold: float = math.inf,
                 stop_margin: float = math.inf) -> None:
        if not levels or any(not 0 <= s < 1 for s in levels):
            raise ValueError(f"levels must be sparsities in [0, 1), got {list(levels)}")
        self.levels = [float(s) for s in levels]
        self.steps_per_level = int(steps_per_level)
        self.level = -1
        self.weight_masks: dict[str, torch.Tensor] = {}
        self._init_snapshots(validate, threshold, 1, stop_margin)

    def _layers(self, model: nn.Module) -> dict[str, nn.Module]:
        modules = dict(model.named_modules())
        return {name: modules[name] for name, _i, _o in _links(model)}

    def _apply(self, model: nn.Module) -> None:
        with torch.no_grad():
            for name, mod in self._layers(model).items():
                if name in self.weight_masks:
                    mod.weight.mul_(self.weight_masks[name].to(mod.weight.device))

    def on_step_end(self, trainer, batch, loss) -> None:
        self._apply(trainer.model)  # the optimiser step (momentum, decay) moved pruned weights off zero
        level = min(trainer.step // self.steps_per_level, len(self.levels))
        if level != self.level and not self.stopped:
            if self.level >= 0:
                self._check(trainer, 1.0 - self.levels[self.level], self.level)
            if level < len(self.levels) and not self.stopped:
                sparsity = self.levels[level]
                for name, mod in self._layers(trainer.model).items():
                    w = mod.weight.detach().abs().flatten().cpu()
                    k = int(sparsity * w.numel())
                    thr = w.kthvalue(k).values if k > 0 else torch.tensor(-1.0)
                    self.weight_masks[name] = (mod.weight.detach().abs().cpu() > thr).float()
            self.level = level
        self._apply(trainer.model)

    def on_fit_end(self, trainer) -> None:
        self._apply(trainer.model)
        if 0 <= self.level < len(self.levels) and not self.stopped:
            self._check(trainer, 0.0, self.level)
        self._restore(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"level": self.level, "weight_masks": dict(self.weight_masks), **self._snap_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.level = int(state["level"])
        self.weight_masks = dict(state["weight_masks"])
        self._load_snap(state)


def sparse_cost(model: nn.Module, costs: CostModel) -> float:
    """Relative FLOPs counting only non-zero weights (eq. 11 with ``2·nnz`` per output position)."""
    modules = dict(model.named_modules())
    total = 0.0
    for layer in costs.layers:
        w = modules[layer.name].weight.detach()
        nnz = int((w != 0).sum())
        total += layer.spatial * (2 * nnz + (layer.c_out if layer.bias else 0))
    return total / costs.reference
