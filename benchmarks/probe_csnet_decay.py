"""Chapter 6 diagnostic: does the decay or the loss drive the decayed BN scales, epoch by epoch?

Usage (alone on the machine; about 2 minutes per run in the ``book`` profile)::

    .venv/bin/python benchmarks/probe_csnet_decay.py [--profile book]

Retrains the chapter's standard-decay and dynamic-decay CSNet ×1 (same seed, same data, nothing cached)
with a callback that, after every backward pass, splits each decayed γ's gradient into the decay's part
(standard: ``wd · γ``; dynamic: ``λ · mean|GAP| · γ``) and the loss's part, and prints per epoch the
share of γ under 0.01 and 0.1, the median ratio |decay| / |loss gradient| and the share of γ whose
gradient the decay dominates. Both decays go through Adam, whose per-parameter normalisation makes a
dominated γ move by about the step size whatever the decay's strength.
"""
import argparse

import numpy as np
import torch
from salbook.recipes import csnet as R
from salbook.data import load_split
from salbook.train import fit
from salbook.train.callbacks import Callback
from salbook.utils import seed_everything

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--profile", default="book")
args = parser.parse_args()
CFG = R.configs(args.profile)
DATA = CFG["csnet_x1"].data
tr, va = load_split(DATA, "train"), load_split(DATA, "val")

class Probe(Callback):
    """Gradient split of the decayed γ (see the module docstring)."""

    def __init__(self, cfg, dd):
        self.cfg, self.dd, self.ratios, self.dom = cfg, dd, [], float("nan")
    def after_backward(self, trainer, batch, loss):
        model = trainer.model
        match = R._decayed_gamma(self.cfg)
        grads, decays = [], []
        caps = {id(bn): s for bn, s in self.dd.captured} if self.dd is not None else {}
        for name, p in model.named_parameters():
            if not match(name, p) or p.grad is None:
                continue
            if self.dd is not None:
                bn = model.get_submodule(name.rsplit(".", 1)[0])  # the BN that owns this γ
                s = caps.get(id(bn))
                if s is None: continue
                dec = self.cfg.lam * s.mean(dim=0).to(p.device) * p.detach()
                lossg = p.grad.detach() - dec
            else:
                dec = self.cfg.weight_decay * p.detach()
                lossg = p.grad.detach()
            grads.append(lossg.abs().flatten()); decays.append(dec.abs().flatten())
        if grads:
            g, d = torch.cat(grads), torch.cat(decays)
            self.ratios.append(float((d / (g + 1e-12)).median()))
            self.dom = float((d > g).float().mean())
    def on_epoch_end(self, trainer, row):
        match = R._decayed_gamma(self.cfg)
        gam = torch.cat([p.detach().abs().flatten() for n, p in trainer.model.named_parameters() if match(n, p)])
        print(f"{self.cfg.decay:9s} epoch {trainer.epoch}: under 0.01 {float((gam < 0.01).float().mean()):.3f}, "
              f"under 0.1 {float((gam < 0.1).float().mean()):.3f}, median |decay|/|loss grad| {np.median(self.ratios):.3g}, "
              f"share decay-dominated {self.dom:.2f}, val {row.get('val_loss')}", flush=True)
        self.ratios = []

for key in ("csnet_x1", "csnet_x1_dynamic"):
    cfg = CFG[key]
    seed_everything(0)
    model = R.build_csnet(cfg)
    kw = R._train_kwargs(cfg, cfg.epochs, cfg.lr, cfg.lr_end, cfg.decay, tr, va)
    dd = next((c for c in kw.get("callbacks", []) if hasattr(c, "captured")), None)
    kw["callbacks"] = list(kw.get("callbacks", [])) + [Probe(cfg, dd)]
    kw["progress"] = False
    fit(model, **kw)
