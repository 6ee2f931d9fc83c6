"""Sparsity on BatchNorm scales and channel pruning of CSNet ("learnable channels").

CSNet (Gao et al., ECCV 2020) learns how many channels each scale of each gOctConv keeps: during
training a decay pushes the BatchNorm scales ``γ`` of unimportant channels to zero, then every
channel whose ``|γ|`` is under a threshold is removed and the network is rebuilt with its new
per-scale widths (network slimming, Liu et al. 2017, with the paper's *dynamic* weight decay).

Sparsity terms (each plugs into :func:`salbook.train.fit`; all act on BN ``γ`` only):

* :class:`DynamicDecay` — **as the official code implements it** (``model/csnet.py`` hooks +
  ``train.py``): an extra loss term
  ``λ · (1/N) · Σ_units Σ_scales 0.5 · Σ_{n,c} |GAP(y)_{n,c}| · γ_c²`` where ``y`` is the unit's
  output *after* BN and PReLU, **detached**, and the units are the three of every ILBlock
  (``conv1x1``, ``conv3x3_1``, ``conv3x3_2``), not the CSF head. Its gradient on ``γ_c`` is
  ``λ · mean_n |GAP_{n,c}| · γ_c`` — an input-dependent L2 decay — and it goes **through the
  optimiser** (Adam rescales it like any gradient). Official ``λ = 3``.
* :class:`DynamicDecayEq3` — the paper's eq. 3, ``w ← w − ∇f(w) − λ_d S(x) w``: a decay applied
  to the weight **directly**, outside the optimiser's gradient normalisation, after each step
  (``γ ← γ · (1 − lr · λ_d · S)``, ``S`` = the batch mean of the GAP of the same detached feature;
  eq. 4's GAP is signed, the code's is absolute: ``absolute=True`` by default, as the code).
  The two differ exactly where Adam differs from SGD: with SGD and absolute GAP they are the same
  update; with Adam the code's version is normalised per parameter (a channel whose task gradient
  is small is decayed at the full step size ``lr``), eq. 3's is not.
* :func:`l1_gamma` — network slimming's L1 penalty ``λ₁ Σ |γ|`` on the decision BNs.
* standard weight decay is the optimiser's own (``weight_decay`` of Adam, coupled L2).

Pruning (the official ``finetune.py`` / ``finetune_model``): :func:`decision_bns` lists the BNs
whose ``γ`` decide — every gOctaveCBR (ILBlock ``conv1x1``, CSF ``fuse``, CSF ``fuse1x1``) per
scale and the BN of every CSF MSBlock; an ILBlock's decision also removes the channels of its two
depthwise units and the next unit's input columns. :func:`prune_csnet` builds the smaller
:class:`~salbook.models.csnet.CSNet` from the new widths and copies the kept weights. The official
code does not copy BN running statistics (``copy_running_stats=False``) and its fine-tune is a
no-op — the optimiser holds the *unpruned* model's parameters — so only the running statistics
adapt: :func:`official_noop_finetune` reproduces that; a real fine-tune is an ordinary
:func:`salbook.train.fit` of the pruned model (:mod:`salbook.recipes.csnet`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..models.csnet import CSNet, GOctaveCBR, ILBlock, SimplifiedGOctConvBR, csnet_from_spec
from ..train.callbacks import Callback

__all__ = [
    "decision_bns",
    "decay_units",
    "gamma_table",
    "channels_under",
    "DynamicDecay",
    "DynamicDecayEq3",
    "l1_gamma",
    "PruneResult",
    "prune_csnet",
    "recalibrate_bn",
    "official_noop_finetune",
    "output_spread",
    "decay_signal",
]


# --------------------------------------------------------------------------------------------
# which BNs


def _check_csnet(model: nn.Module) -> CSNet:
    if not isinstance(model, CSNet):
        raise TypeError(f"expected a salbook.models.csnet.CSNet, got {type(model).__name__}")
    return model


def _blocks(model: CSNet) -> list[tuple[str, ILBlock]]:
    return [(f"stage{s}.{b}", block) for s, stage in enumerate(model.extractor_stages()) for b, block in enumerate(stage)]


def decision_bns(model: nn.Module) -> dict[str, list[nn.BatchNorm2d | None]]:
    """The BNs whose ``|γ|`` decide which channels stay, per unit, one entry per scale.

    Keys: ``stage<s>.<b>.conv1x1`` (18 ILBlocks), ``oct_fuse.fuse``, ``oct_fuse.ms.<scale>``
    (one BN over the concatenated dilations), ``oct_fuse.fuse1x1``. ``None`` = a scale of width 0.
    """
    net = _check_csnet(model)
    out: dict[str, list[nn.BatchNorm2d | None]] = {f"{name}.conv1x1": list(block.conv1x1.bns)
                                                   for name, block in _blocks(net)}
    head = net.oct_fuse
    out["oct_fuse.fuse"] = list(head.fuse.bns)
    for s, ms in enumerate(head.ms.convs):
        out[f"oct_fuse.ms.{s}"] = [None if ms is None else ms.bn]
    out["oct_fuse.fuse1x1"] = list(head.fuse1x1.bns)
    return out


def decay_units(model: nn.Module) -> dict[str, GOctaveCBR | SimplifiedGOctConvBR]:
    """The units the official dynamic decay hooks: ``conv1x1``, ``conv3x3_1``, ``conv3x3_2`` of
    every ILBlock (54 for the official layout), by qualified name."""
    net = _check_csnet(model)
    return {f"{name}.{unit}": getattr(block, unit) for name, block in _blocks(net)
            for unit in ("conv1x1", "conv3x3_1", "conv3x3_2")}


def gamma_table(model: nn.Module, units: str = "decision") -> pd.DataFrame:
    """One row per channel: ``unit``, ``scale``, ``channel``, ``gamma`` (signed) and ``abs_gamma``.

    Args:
        units: ``"decision"`` (:func:`decision_bns`) or ``"decay"`` (the BNs of :func:`decay_units`).
    """
    if units == "decision":
        bns = decision_bns(model)
    elif units == "decay":
        bns = {name: list(u.bns) for name, u in decay_units(model).items()}
    else:
        raise ValueError(f"units must be 'decision' or 'decay', got {units!r}")
    rows = []
    for name, per_scale in bns.items():
        for k, bn in enumerate(per_scale):
            if bn is None:
                continue
            for c, g in enumerate(bn.weight.detach().cpu().tolist()):
                rows.append({"unit": name, "scale": k, "channel": c, "gamma": g, "abs_gamma": abs(g)})
    return pd.DataFrame(rows)


def channels_under(model: nn.Module, thresholds: Iterable[float]) -> pd.DataFrame:
    """Share and count of decision channels with ``|γ|`` under each threshold."""
    g = gamma_table(model)["abs_gamma"]
    return pd.DataFrame([{"threshold": float(t), "under": int((g < t).sum()), "share": float((g < t).mean()),
                          "channels": len(g)} for t in thresholds])


# --------------------------------------------------------------------------------------------
# sparsity terms


class _FeatureHooks(Callback):
    """Forward hooks on the decay units that keep ``(bn, |GAP(y)| or GAP(y))`` per scale, detached.

    Attached at ``on_fit_start`` to the trainer's model, cleared at every step start, removed at
    ``on_fit_end`` (so the trained model carries no hook). :meth:`attach` does it by hand.
    """

    def __init__(self, absolute: bool = True) -> None:
        self.absolute = bool(absolute)
        self._handles: list[Any] = []
        self.captured: list[tuple[nn.BatchNorm2d, torch.Tensor]] = []

    def attach(self, model: nn.Module) -> None:
        self.detach()
        for unit in decay_units(model).values():
            self._handles.append(unit.register_forward_hook(self._hook))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles, self.captured = [], []

    def _hook(self, module: nn.Module, _inputs: Any, outputs: Sequence[torch.Tensor | None]) -> None:
        if not module.training:
            return
        for y, bn in zip(outputs, module.bns):
            if y is None or bn is None:
                continue
            gap = y.detach().float().mean(dim=(2, 3))  # N × C
            self.captured.append((bn, gap.abs() if self.absolute else gap))

    def on_fit_start(self, trainer: Any) -> None:
        self.attach(trainer.model)

    def on_step_start(self, trainer: Any, batch: Any) -> None:
        self.captured = []

    def on_fit_end(self, trainer: Any) -> None:
        self.detach()


class DynamicDecay(_FeatureHooks):
    """The official dynamic weight decay: a loss term, passed to ``fit`` twice — as a callback
    (it hooks the model) and as a regulariser (``regularizers={"dynamic_decay": dd}``).

    ``dd(model, batch, output) = λ · Σ_hooked 0.5 · Σ_{n,c} |GAP(y)_{n,c}| · γ_c² / N``.

    Args:
        lam: ``λ`` (official ``AUTO.FLOPS.WEIGHT`` = 3).
    """

    def __init__(self, lam: float = 3.0) -> None:
        super().__init__(absolute=True)
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.lam = float(lam)

    def __call__(self, model: nn.Module, batch: Any, output: torch.Tensor) -> torch.Tensor:
        if not self._handles:
            raise RuntimeError("DynamicDecay is not attached: pass it in callbacks=[...] as well as in "
                               "regularizers={...} (or call .attach(model) first)")
        if not self.captured:
            return output.new_zeros(())
        n = self.captured[0][1].shape[0]
        total = sum(0.5 * (s * bn.weight.unsqueeze(0) ** 2).sum() for bn, s in self.captured)
        return self.lam * total / n


class DynamicDecayEq3(_FeatureHooks):
    """The paper's eq. 3 as written: after each optimiser step, ``γ ← γ · (1 − lr · λ_d · S)`` with
    ``S`` the batch mean of the (absolute, by default) GAP of the unit's output. A callback only.

    Args:
        lam: ``λ_d`` (paper: 3).
        absolute: use ``|GAP|`` as the code (``False``: eq. 4's signed GAP).
    """

    def __init__(self, lam: float = 3.0, absolute: bool = True) -> None:
        super().__init__(absolute=absolute)
        self.lam = float(lam)

    def on_step_end(self, trainer: Any, batch: Any, loss: torch.Tensor) -> None:
        lr = float(trainer.optimizer.param_groups[0]["lr"])
        with torch.no_grad():
            for bn, s in self.captured:
                bn.weight.mul_(1.0 - lr * self.lam * s.mean(dim=0).to(bn.weight.device))
        self.captured = []


def l1_gamma(lam: float) -> Any:
    """Network slimming's regulariser ``λ₁ Σ |γ|`` over :func:`decision_bns` (``fit``'s ``regularizers``)."""

    def reg(model: nn.Module, _batch: Any, output: torch.Tensor) -> torch.Tensor:
        terms = [bn.weight.abs().sum() for per in decision_bns(model).values() for bn in per if bn is not None]
        return lam * torch.stack(terms).sum() if terms else output.new_zeros(())

    return reg


# --------------------------------------------------------------------------------------------
# pruning and the physical rebuild


@dataclass
class PruneResult:
    """A pruned CSNet and what was removed.

    Attributes:
        model: the rebuilt network (eval mode, on the source model's device).
        spec: its width specification (``CSNet(**spec)``).
        kept: per decision unit, per scale, the kept channel indices of the source.
        threshold: the ``|γ|`` threshold.
    """

    model: CSNet
    spec: dict[str, Any]
    kept: dict[str, list[list[int]]]
    threshold: float


def _kept(bns: Sequence[nn.BatchNorm2d | None], threshold: float, at_least_one: bool = True) -> list[list[int]]:
    kept = [[] if bn is None else torch.nonzero(bn.weight.detach().abs() >= threshold).flatten().tolist()
            for bn in bns]
    if at_least_one and not any(kept):
        best = max(((float(bn.weight.detach().abs().max()), k) for k, bn in enumerate(bns) if bn is not None),
                   default=None)
        if best is None:
            raise ValueError("a unit has no channel at all")
        k = best[1]
        kept[k] = [int(bns[k].weight.detach().abs().argmax())]
    return kept


def _flat(kept: Sequence[Sequence[int]], widths: Sequence[int]) -> torch.Tensor:
    out, off = [], 0
    for idx, w in zip(kept, widths):
        out.extend(off + i for i in idx)
        off += w
    return torch.tensor(out, dtype=torch.long)


def prune_csnet(model: nn.Module, threshold: float, copy_running_stats: bool = True) -> PruneResult:
    """Remove every channel whose decision ``|γ|`` is under ``threshold``; rebuild and copy weights.

    A unit keeps at least its largest-``|γ|`` channel (the network must stay connected). A CSF
    scale whose fuse channels are all removed loses its MSBlock too.

    Args:
        model: a trained :class:`~salbook.models.csnet.CSNet`.
        threshold: channels with ``|γ| < threshold`` go (official: 1e-20 after 300 epochs).
        copy_running_stats: copy the BN running means/variances of the kept channels (``False``:
            fresh statistics, as the official code).

    Returns:
        :class:`PruneResult`. The pruned model computes what the source computes when the removed
        channels output zero; a removed channel with ``γ ≈ 0`` still outputs ``PReLU(β)`` (and its
        depthwise units their own BN shift) in the source, which network slimming ignores too.
    """
    net = _check_csnet(model)
    old = net.width_spec()
    bns = decision_bns(net)
    kept: dict[str, list[list[int]]] = {}
    for name, block in _blocks(net):
        kept[f"{name}.conv1x1"] = _kept(bns[f"{name}.conv1x1"], threshold)
    fuse = _kept(bns["oct_fuse.fuse"], threshold)
    kept["oct_fuse.fuse"] = fuse
    ms_bn_kept = []
    for s in range(len(fuse)):
        per = bns[f"oct_fuse.ms.{s}"]
        if not fuse[s] or per[0] is None:
            ms_bn_kept.append([])
        else:
            ms_bn_kept.append(_kept(per, threshold, at_least_one=False)[0])
    if not any(ms_bn_kept):  # keep the strongest MSBlock channel among scales that still have input
        cands = [(float(bns[f"oct_fuse.ms.{s}"][0].weight.detach().abs().max()), s) for s in range(len(fuse))
                 if fuse[s] and bns[f"oct_fuse.ms.{s}"][0] is not None]
        s = max(cands)[1]
        ms_bn_kept[s] = [int(bns[f"oct_fuse.ms.{s}"][0].weight.detach().abs().argmax())]
    for s, idx in enumerate(ms_bn_kept):
        kept[f"oct_fuse.ms.{s}"] = [idx]
    kept["oct_fuse.fuse1x1"] = _kept(bns["oct_fuse.fuse1x1"], threshold)

    # new spec
    new_blocks = [[len(k) for k in kept[f"{name}.conv1x1"]] for name, _ in _blocks(net)]
    new_ms = []
    for s, dil in enumerate(old["csf_ms"]):
        bounds = [0]
        for c in dil:
            bounds.append(bounds[-1] + c)
        idx = set(ms_bn_kept[s])
        new_ms.append([sum(1 for i in range(bounds[d], bounds[d + 1]) if i in idx) for d in range(len(dil))])
    spec = {**old, "blocks": new_blocks, "csf_fuse": [len(k) for k in fuse], "csf_ms": new_ms,
            "csf_out": len(kept["oct_fuse.fuse1x1"][0])}
    new = csnet_from_spec(spec)

    # index maps: module prefix -> (dim-0 index, dim-1 index)
    index: dict[str, tuple[torch.Tensor | None, torch.Tensor | None]] = {}

    def per_scale(prefix: str, kept_s: Sequence[Sequence[int]]) -> None:
        for k, idx in enumerate(kept_s):
            t = torch.tensor(idx, dtype=torch.long)
            for part in ("bns", "prelus"):
                index[f"{prefix}.{part}.{k}"] = (t, None)

    prev_kept, prev_w = [[0, 1, 2]], [3]
    for (name, block), w_old in zip(_blocks(net), old["blocks"]):
        k = kept[f"{name}.conv1x1"]
        index[f"{name}.conv1x1.conv"] = (_flat(k, w_old), _flat(prev_kept, prev_w))
        per_scale(f"{name}.conv1x1", k)
        for unit in ("conv3x3_1", "conv3x3_2"):
            per_scale(f"{name}.{unit}", k)
            for s, idx in enumerate(k):
                index[f"{name}.{unit}.convs.{s}"] = (torch.tensor(idx, dtype=torch.long), None)
        prev_kept, prev_w = k, w_old
    ends, end_w, pos = [], [], 0
    for s_count in [1, *old["stages"]]:
        pos += s_count
        ends.append(pos - 1)
    stage_ends = ends[2:]
    names = [n for n, _ in _blocks(net)]
    in_kept = [kept[f"{names[e]}.conv1x1"][0] for e in stage_ends]
    in_w = [old["blocks"][e][0] for e in stage_ends]
    index["oct_fuse.fuse.conv"] = (_flat(fuse, old["csf_fuse"]), _flat(in_kept, in_w))
    per_scale("oct_fuse.fuse", fuse)
    ms_out_w = [sum(d) for d in old["csf_ms"]]
    for s, dil in enumerate(old["csf_ms"]):
        t = torch.tensor(ms_bn_kept[s], dtype=torch.long)
        index[f"oct_fuse.ms.convs.{s}.bn"] = (t, None)
        index[f"oct_fuse.ms.convs.{s}.prelu"] = (t, None)
        off = 0
        for d, c in enumerate(dil):
            rows = [i - off for i in ms_bn_kept[s] if off <= i < off + c]
            index[f"oct_fuse.ms.convs.{s}.msconv.{d}"] = (torch.tensor(rows, dtype=torch.long),
                                                         torch.tensor(fuse[s], dtype=torch.long))
            off += c
    out_k = kept["oct_fuse.fuse1x1"]
    index["oct_fuse.fuse1x1.conv"] = (_flat(out_k, [old["csf_out"]]), _flat(ms_bn_kept, ms_out_w))
    per_scale("oct_fuse.fuse1x1", out_k)
    index["cls_layer"] = (None, torch.tensor(out_k[0], dtype=torch.long))

    src = net.state_dict()
    state = {}
    for key, target in new.state_dict().items():
        prefix, leaf = key.rsplit(".", 1)
        value = src[key]
        if leaf == "num_batches_tracked":
            state[key] = value.clone() if copy_running_stats else target
            continue
        if leaf in ("running_mean", "running_var") and not copy_running_stats:
            state[key] = target
            continue
        if prefix not in index:
            raise KeyError(f"prune_csnet has no index map for {key}")
        rows, cols = index[prefix]
        if rows is not None:
            value = value.index_select(0, rows.to(value.device))
        if cols is not None and value.dim() > 1:
            value = value.index_select(1, cols.to(value.device))
        if value.shape != target.shape:
            raise RuntimeError(f"{key}: copied {tuple(value.shape)}, the rebuilt model expects {tuple(target.shape)}")
        state[key] = value.clone()
    new.load_state_dict(state)
    device = next(net.parameters()).device
    new.to(device).eval()
    return PruneResult(new, spec, kept, float(threshold))


# --------------------------------------------------------------------------------------------
# BatchNorm statistics and the official fine-tune


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Mapping[str, Any] | torch.Tensor], reset: bool = True,
                   momentum: float | None = None, max_batches: int | None = None) -> nn.Module:
    """Re-estimate every BN's running statistics from ``batches`` (train-mode forwards, no update
    of any parameter); the model is left in eval mode.

    Args:
        batches: image tensors ``N × 3 × H × W`` or dicts with ``"image"``.
        reset: start from fresh statistics.
        momentum: BN momentum during the pass (``None``: the cumulative average of all batches;
            0.1 is PyTorch's and the official default).
        max_batches: stop after this many batches.
    """
    device = next(model.parameters()).device
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        if reset:
            m.reset_running_stats()
        m.momentum = momentum
    model.train()
    try:
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            x = batch["image"] if isinstance(batch, Mapping) else batch
            model(x.to(device))
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.eval()
    return model


def official_noop_finetune(model: nn.Module, batches: Iterable[Mapping[str, Any] | torch.Tensor]) -> nn.Module:
    """What the official ``finetune.py`` does to a pruned model: its optimiser holds the unpruned
    model's parameters, so no weight moves; the train-mode forwards only update the (fresh) BN
    running statistics with momentum 0.1. ``batches`` = the fine-tune's training batches."""
    return recalibrate_bn(model, batches, reset=False, momentum=0.1)


@torch.no_grad()
def output_spread(model: nn.Module, images: torch.Tensor) -> pd.DataFrame:
    """The paper's Fig. 4a: per decision BN, the standard deviation over channels of the
    per-channel mean |output| of the BN (eval mode), averaged over images. Rows: ``unit``,
    ``scale``, ``spread``."""
    rows: list[dict[str, Any]] = []
    handles = []
    for name, per in decision_bns(model).items():
        for k, bn in enumerate(per):
            if bn is None or bn.num_features < 2:
                continue

            def hook(_m: nn.Module, _i: Any, y: torch.Tensor, name: str = name, k: int = k) -> None:
                rows.append({"unit": name, "scale": k, "spread": float(y.abs().mean(dim=(2, 3)).std(dim=1).mean())})

            handles.append(bn.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        model(images.to(next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return pd.DataFrame(rows)


def decay_signal(model: nn.Module, images: torch.Tensor) -> pd.DataFrame:
    """What the code's dynamic decay sees, per decayed channel: ``γ`` and the mean ``|GAP(y)|`` of
    the unit's output after BN and PReLU (the detached ``S`` of :class:`DynamicDecay`), measured in
    training mode (batch statistics, as during training) on ``images`` (``N × 3 × H × W``), on a copy
    of the model (running statistics untouched).

    The term's gradient on ``γ_c`` is ``λ · S_c · γ_c``. When ``S_c`` is itself proportional to
    ``|γ_c|`` (a BN output scaled by ``γ``, small shift ``β``), that gradient falls as ``γ²`` near
    zero: the slope of ``log S`` against ``log |γ|`` over channels measures it.

    Rows: ``unit``, ``scale``, ``channel``, ``gamma``, ``abs_gamma``, ``abs_gap``, ``grad`` (the
    term's gradient per unit λ, ``abs_gap · gamma``).
    """
    import copy

    net = copy.deepcopy(_check_csnet(model)).train()
    hooks = _FeatureHooks(absolute=True)
    hooks.attach(net)
    names = {id(bn): (name, k) for name, unit in decay_units(net).items() for k, bn in enumerate(unit.bns)
             if bn is not None}
    try:
        with torch.no_grad():
            net(images.to(next(net.parameters()).device))
        rows = []
        for bn, gap in hooks.captured:
            name, k = names[id(bn)]
            for c, (g, s) in enumerate(zip(bn.weight.detach().cpu().tolist(), gap.mean(dim=0).cpu().tolist())):
                rows.append({"unit": name, "scale": k, "channel": c, "gamma": g, "abs_gamma": abs(g),
                             "abs_gap": s, "grad": s * g})
    finally:
        hooks.detach()
    return pd.DataFrame(rows)
