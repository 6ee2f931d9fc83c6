# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # 5. Fisher pruning with a FLOP penalty
#
# Theis et al. {cite}`theis2018fisher` make a gaze model fast by removing whole feature maps from it, one at a
# time, choosing each time the map whose removal costs least: an estimate of the **increase in loss** (the
# *Fisher* pruning signal, a diagonal Fisher-information approximation of the second-order change) plus
# β times the **change in computational cost** (FLOPs). There is no official code for the paper and no public
# implementation of its cost term; this chapter is a first one. It
#
# 1. implements the method in `salbook.pruning` and tests it on tiny networks;
# 2. repeats the paper's LeNet-5 experiment (its Table 1);
# 3. builds the paper's gaze models (the DeepGaze II readout on VGG-11, "FastGaze", and DenseNet-121,
#    "DenseGaze") and, for the CPU here, the same readout on ImageNet-pretrained EfficientNet-Lite0, trains
#    it on the book's generated scenes with the paper's distillation objective, prunes it, and measures how
#    much faster it becomes at equal accuracy (analogues of the paper's Figures 1-3).
#
# Every number is computed when this page is built.

# %% tags=["parameters"]
profile = "smoke"       # smoke | book | paper
dataset = "synthetic"   # synthetic (the gaze models' data; real fixation datasets: salicon, mit1003)
data_root = None        # folder of the real fixation dataset
device = "auto"
seed = 0
mnist_root = None       # folder with MNIST's IDX files; None: scikit-learn's digits (a smaller substitute)
gaze_trunk = "gaze_lite0"  # gaze_lite0 (ImageNet weights ship offline) | fastgaze | densegaze (paper profile)
trunk_weights = None    # fastgaze / densegaze: a local torchvision VGG-11 / DenseNet-121 state-dict file

# %%
import time

T_START = time.perf_counter()

from salbook.book import DATA_SEED, EVAL_SEED, glue, pick, record, record_meta
from salbook.utils import resolve_device, seed_everything

S = pick(
    profile,
    smoke=dict(lenet_steps=60, prune_steps=60, steps_per_prune=2, check_every=2, han_steps=10, betas=(0.3,),
               han_levels=(0.5, 0.9),
               fig1_batches=1, fig1_batch=2, fig1_rounds=2, latency_runs=2, latency_rounds=1, eval_size=(64, 96),
               shown_stages=None),
    book=dict(lenet_steps=600, prune_steps=600, steps_per_prune=5, check_every=4, han_steps=60,
              han_levels=(0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97),
              betas=(0.1, 1.0), fig1_batches=2, fig1_batch=8, fig1_rounds=6, latency_runs=8, latency_rounds=12,
              eval_size=(192, 256), shown_stages=(8, 9, 10, 11, 12, 13)),
    paper=dict(lenet_steps=10000, prune_steps=20000, steps_per_prune=10, check_every=10, han_steps=2000,
               han_levels=(0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97),
               betas=(0.01, 0.1, 1.0), fig1_batches=16, fig1_batch=8, fig1_rounds=20, latency_runs=10,
               latency_rounds=10, eval_size=(480, 640), shown_stages=None),
)
DEVICE = resolve_device(device)
import torch

# Training and evaluation use torch's default CPU threads (on the book's two-core machine, two threads train
# the gaze model 1.4x and LeNet-5 1.6x faster than one, measured while writing this chapter); every latency
# below is measured with the thread count it names, set for that measurement alone.
seed_everything(seed)
record_meta(device=str(DEVICE), dataset=dataset, profile=profile, **{k: str(v) for k, v in S.items()})
S

# %%
import copy
import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from salbook import models
from salbook.baselines import CenterBias
from salbook.cost import count_params, flops, operator_profile
from salbook.data import load_split
from salbook.evaluation import paired_difference
from salbook.inference import interleaved_latency
from salbook.pruning import masks_of
from salbook.pruning.fisher import alive_counts, cost_model, prune_maps, prune_without_retraining, select, sparse_cost
from salbook.pruning.removal import remove_pruned
from salbook.recipes import fisher as R

pd.set_option("display.precision", 4)
sns.set_theme(style="whitegrid", context="notebook")

# %% [markdown]
# ## 5.1 The method
#
# A binary mask $m_k$ multiplies feature map $k$ (`salbook.pruning.ChannelMask`). For a loss that is a
# cross-entropy, switching map $k$ off increases the loss by approximately
#
# $$\Delta_k = \frac{1}{2N}\sum_{n=1}^N g_{nk}^2,\qquad g_{nk} = \sum_{ij} a_{nkij}\,\frac{\partial \ell_n}{\partial a_{nkij}},$$
#
# with $a$ the map's activations and $\ell_n$ the loss of example $n$ (the paper's eq. 7-9). The gradient
# with respect to the activations is there anyway during the backward pass, so the signal costs almost
# nothing: `salbook.pruning.fisher.SignalMeter` hooks every mask's output and accumulates $\Delta_k$ while
# training continues. The **cost** of a network is the sum of its convolutions' FLOPs,
# $H\cdot W\cdot C_\text{out}\cdot(2\,C_\text{in}K^2+1)$ (eq. 11), and removing map $k$ changes it by
# $\Delta C_k$ < 0 — through the layer that writes the map (one output channel less) and every layer that
# reads it (one input channel less). Both depend on how many maps the *neighbouring* layers still have, so
# `salbook.pruning.fisher.CostModel` recomputes $\Delta C_k$ from the current counts before every choice.
# A map is chosen to minimise $\Delta_k + \beta\,\Delta C_k$ (β = 0: unregularised); the
# hyper-parameter-free alternative chooses the smallest $\beta_k = -\Delta_k/\Delta C_k$, whose minimum is
# the paper's $\beta^*$. We express costs as a fraction of the unpruned network's FLOPs, so β is in units of
# loss (nats) per whole network.
#
# The network LeNet-5 is Caffe's MNIST example: 20 and 50 convolution maps and 500 hidden units.

# %%
lenet = models.create("lenet5")
n_lenet = count_params(lenet)
record("fisher.lenet.params", n_lenet, tol=0, note="Caffe's LeNet-5: 431,080")
glue("lenet_params", n_lenet)
costs = cost_model(lenet, torch.zeros(1, 1, 28, 28))
layer_costs = costs.by_layer(costs.sizes).set_index("layer")
layer_costs["share"] = layer_costs["flops"] / costs.reference
demo = copy.deepcopy(lenet)
before = costs.delta(alive_counts(demo))
prune_maps(demo, [("mask1", k, 0.0) for k in range(10)])
after = costs.delta(alive_counts(demo))
dC = pd.DataFrame({"ΔC_k, unpruned": before, "ΔC_k after 10 conv1 maps are gone": after})
record("fisher.lenet.mflops", costs.reference / 1e6, tol=0, note="eq. 11 FLOPs of LeNet-5 (28×28)")
record("fisher.lenet.dc_mask2_before", before["mask2"], tol=1e-12)
record("fisher.lenet.dc_mask2_after", after["mask2"], tol=1e-12)
glue("lenet_mflops", costs.reference / 1e6)
display(layer_costs)
dC

# %% [markdown]
# *Tables 5.1 and 5.2: the FLOPs of LeNet-5's layers (eq. 11, one 28 × 28 image) and the change of the
# relative cost when one more map of each mask is removed, before and after ten of conv1's twenty maps have
# gone: a conv2 map becomes cheaper to keep once half its inputs are gone — the cost term is updated as the
# neighbours are pruned.*
#
# LeNet-5 has {glue:text}`lenet_params:,` parameters and costs {glue:text}`lenet_mflops:.2f` MFLOPs; 70 % of
# them are in conv2, so a cost-aware criterion should prefer removing conv2's maps.
#
# **Physical removal.** Masked maps still cost time. `salbook.pruning.removal.remove_pruned` hands each
# mask's switched-off maps to Torch-Pruning's `DependencyGraph`, which removes the producing layer's output
# channels with every coupled batch norm, PReLU, depthwise convolution and consumer input channel (a
# `flatten` into a linear layer included). Every model of this chapter is handled by Torch-Pruning; no
# hand-written surgery was needed. The unit tests check that the removed network's outputs equal the masked
# network's; here for LeNet-5 with half of each layer's maps gone:

# %%
demo = copy.deepcopy(lenet).eval()
g = torch.Generator().manual_seed(seed)
prune_maps(demo, select(demo, costs, "random", 285, generator=g))
small = remove_pruned(demo, torch.zeros(1, 1, 28, 28))
x = torch.rand(16, 1, 28, 28)
with torch.no_grad():
    gap = float((small(x) - demo(x)).abs().max())
record("fisher.lenet.removal_max_abs_diff", gap, tol=1e-4)
print(f"parameters {count_params(demo):,} → {count_params(small):,}; largest output difference {gap:.2e}")

# %% [markdown]
# ## 5.2 LeNet-5 (Table 1)
#
# The paper trains LeNet-5 on 53,000 MNIST images (7,000 for validation and early stopping) and compares
# Han et al.'s weight pruning {cite}`han2015learning` (after L2-regularised training), Fisher pruning with
# β = 0, with a β > 0 chosen on validation, and with the automatic β*. Our protocol, for every row: start from
# the same trained network (Caffe's solver: SGD, momentum 0.9, L2 weight decay 5·10⁻⁴), keep training while
# pruning (one map every few steps for Fisher; for Han, per-layer magnitude thresholds at rising sparsities
# with retraining in between), and **stop early** at the most-pruned state whose validation error is at most
# the unpruned network's plus half a percentage point; that state's test error and cost form the row.
# Han's cost counts only the non-zero weights — what sparse kernels could exploit; a dense CPU saves nothing.

# %%
t0 = time.perf_counter()
base_cfg = R.LeNetConfig(data="mnist" if mnist_root else "digits", data_root=mnist_root, steps=S["lenet_steps"])
train_d, val_d, test_d, digits_desc = R.digits_splits(mnist_root)
display(Markdown(f"**Data:** {digits_desc}."))
base = R.train_lenet(base_cfg, seed=seed, device=DEVICE)
base_err = R.classification_error(base.model, test_d)
base_val = R.classification_error(base.model, val_d)


def prune_row(method: str, beta: float = 0.0):
    cfg = R.LeNetPruneConfig(base=base_cfg, method=method, beta=beta, steps_per_prune=S["steps_per_prune"],
                             max_steps=S["prune_steps"], han_steps=S["han_steps"],
                             han_levels=tuple(S["han_levels"]), check_every=S["check_every"])
    res = R.prune_lenet(cfg, seed=seed, device=DEVICE)
    net = res.model
    cm = cost_model(net, torch.zeros(1, 1, 28, 28, device=next(net.parameters()).device))
    cost = sparse_cost(net, cm) if method == "han" else cm.relative(alive_counts(net))
    return dict(test_error=R.classification_error(net, test_d), val_error=R.classification_error(net, val_d),
                cost=cost, maps=sum(alive_counts(net).values()), cfg=cfg)


rows = {"unpruned (LeCun et al.)": dict(test_error=base_err, val_error=base_val, cost=1.0, maps=570, cfg=base_cfg),
        "Han et al.": prune_row("han"), "Fisher (β = 0)": prune_row("fisher", 0.0)}
beta_rows = {b: prune_row("fisher", b) for b in S["betas"]}
best_beta = min(beta_rows, key=lambda b: (beta_rows[b]["val_error"] > base_val + 0.005, beta_rows[b]["cost"]))
rows[f"Fisher (β > 0: β = {best_beta:g})"] = beta_rows[best_beta]
rows["Fisher (β*)"] = prune_row("fisher_auto")
paper = {"unpruned (LeCun et al.)": (0.80, 100), "Han et al.": (0.77, 16), "Fisher (β = 0)": (0.84, 26),
         "Fisher (β*)": (0.86, 17)}
table1 = pd.DataFrame({
    "test error (%)": {k: 100 * v["test_error"] for k, v in rows.items()},
    "validation error (%)": {k: 100 * v["val_error"] for k, v in rows.items()},
    "cost (% of unpruned)": {k: 100 * v["cost"] for k, v in rows.items()},
    "maps left": {k: v["maps"] for k, v in rows.items()},
    "paper: error (%)": {k: paper.get(k if not k.startswith("Fisher (β >") else "", (0.79, 10))[0] for k in rows},
    "paper: cost (%)": {k: paper.get(k if not k.startswith("Fisher (β >") else "", (0.79, 10))[1] for k in rows},
})
keys = {"unpruned (LeCun et al.)": "unpruned", "Han et al.": "han", "Fisher (β = 0)": "beta0", "Fisher (β*)": "auto"}
for name, v in rows.items():
    key = keys.get(name, "beta_pos")
    record(f"fisher.lenet.{key}.test_error", v["test_error"], tol=0.02, config=v["cfg"])
    record(f"fisher.lenet.{key}.cost", v["cost"], tol=0.15, config=v["cfg"])
beta_grid = pd.DataFrame({b: {"validation error (%)": 100 * r["val_error"], "cost (%)": 100 * r["cost"]}
                          for b, r in beta_rows.items()}).T.rename_axis("β")
print(f"LeNet-5 rows: {time.perf_counter() - t0:.0f} s")
display(beta_grid)
table1

# %% [markdown]
# *Table 5.3: β values tried for the "β > 0" row (validation error and cost of each early-stopped run; the
# cheapest within the validation tolerance is kept). Table 5.4: the paper's Table 1 rows, ours beside the
# paper's. Our data are the digits described above; with a few hundred test images one image is
# 0.28 percentage points of error, so errors within about one point are not distinguishable here.*

# %%
pos = rows[f"Fisher (β > 0: β = {best_beta:g})"]
zero = rows["Fisher (β = 0)"]
cheaper = pos["cost"] < zero["cost"]
same_err = abs(pos["test_error"] - zero["test_error"]) <= 0.01
glue("lenet_cost_b0", 100 * zero["cost"])
glue("lenet_cost_bpos", 100 * pos["cost"])
glue("lenet_cost_auto", 100 * rows["Fisher (β*)"]["cost"])
glue("lenet_cost_han", 100 * rows["Han et al."]["cost"])
glue("lenet_base_err", 100 * base_err)
display(Markdown(
    f"**Target (β > 0 cheaper than β = 0 at equal error): {'met' if cheaper and same_err else 'not met'}.** "
    f"Fisher with β = {best_beta:g} ends at {100 * pos['cost']:.1f} % of the FLOPs with "
    f"{100 * pos['test_error']:.2f} % test error; β = 0 at {100 * zero['cost']:.1f} % with "
    f"{100 * zero['test_error']:.2f} %."
    + ("" if cheaper else " β = 0 removed mostly the cheap hidden units of the first fully connected layer "
       "(numerous and individually unimportant), which saves few FLOPs; see Table 5.4's maps-left column.")
    + ("" if same_err or not cheaper else
       f" β > 0 is cheaper, but its test error differs from β = 0's by "
       f"{100 * (pos['test_error'] - zero['test_error']):+.2f} points, more than the one point we call equal; both "
       "runs stopped at the same validation tolerance, so the difference is the test split's noise or a real "
       "cost of the cheaper network, which this data size cannot separate.")))

# %% [markdown]
# The cost penalty steers the choice toward conv2's expensive maps: at the same validation tolerance β > 0
# reaches {glue:text}`lenet_cost_bpos:.1f` % of the FLOPs against {glue:text}`lenet_cost_b0:.1f` % for
# β = 0 and {glue:text}`lenet_cost_auto:.1f` % for β* (the paper: 10 %, 26 % and 17 %). Han et al.'s
# unstructured pruning reaches {glue:text}`lenet_cost_han:.1f` % counted in non-zero weights, a saving that
# needs sparse kernels; Fisher's savings are whole maps and show up in dense time.
#
# ## 5.3 The gaze models
#
# DeepGaze II {cite}`kummerer2017deepgaze2` reads fixed VGG-19 features with a small network of 1 × 1
# convolutions (the *readout*), blurs the one-channel result with a Gaussian, adds a centre-bias log-density
# and takes a softmax over the pixels: the output is a probability distribution of the next fixation
# (`salbook.models.gaze`). The readout here has PReLU and 32, 16 and 2 hidden maps, the blur's σ and the
# centre-bias weight are learned, and the loss is the log-likelihood of the fixations. The paper's two
# faster trunks are **FastGaze** (VGG-11 up to conv5_2) and **DenseGaze** (DenseNet-121 up to its third dense
# block). Both are built exactly (from random weights here: ImageNet weights for them do not ship offline;
# the `paper` profile takes local weight files). Parameters and FLOPs for the paper's 640 × 480 input:

# %%
class _Body(torch.nn.Module):
    """Trunk + readout (the layers FLOPs are counted for; the finalizer is elementwise)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m.readout(self.m.features(x))


size_paper = (480, 640) if profile != "smoke" else (96, 128)
arch = {}
for name in ("fastgaze", "densegaze", "gaze_lite0"):
    net = models.create(name, weights="imagenet" if name == "gaze_lite0" else None)
    arch[name] = dict(params=count_params(net), gflops=flops(_Body(net).to("meta"), (3, *size_paper)).flops / 1e9,
                      prunable_maps=sum(len(m.mask) for m in masks_of(net).values()))
    record(f"fisher.{name}.params", arch[name]["params"], tol=0)
    record(f"fisher.{name}.gflops_{size_paper[0]}x{size_paper[1]}", arch[name]["gflops"], tol=1e-6)
arch_table = pd.DataFrame(arch).T
arch_table["paper: GFLOP (pruned models, 640 × 480)"] = [10.7, 12.8, np.nan]
arch_table

# %% [markdown]
# *Table 5.5: the gaze models (trunk and readout) at {glue:text}`paper_size`: parameters, GFLOPs of the
# convolutions (`torch.utils.flop_counter`, counted on the meta device) and feature maps carrying a mask.
# The paper reports 240.6 GFLOPs for DeepGaze II and the costs of its **pruned** FastGaze and DenseGaze
# (Table 2); it counts 2,803 maps for FastGaze (our 2,802 prunable ones plus the output map) and 7,219 for
# DenseGaze, whose growth maps we do not prune.*
#
# **The model trained here.** VGG-11 and DenseNet-121 cannot be trained from random weights on two CPU
# cores. The book's gaze model is therefore the same readout and finalizer on the ImageNet-pretrained
# **EfficientNet-Lite0**, read at blocks 4 and 6 (strides 16 and 32), trained on the book's generated scenes
# at 96 × 128 pixels with the paper's objective: 0.1 × the fixations' log-likelihood + 0.9 × the
# cross-entropy to the **book's teacher** (chapter 4's trained network) densities. Adam, the trunk at a tenth
# of the readout's learning rate.

# %%
glue("paper_size", f"{size_paper[1]} × {size_paper[0]}")
t0 = time.perf_counter()
configs = R.gaze_configs(profile, model=gaze_trunk,
                         weights="imagenet" if gaze_trunk == "gaze_lite0" else trunk_weights)
gaze_base = configs["unpruned"]
if dataset != "synthetic":
    gaze_base = gaze_base.replace(data=gaze_base.data.replace(dataset=dataset, data_root=data_root,
                                                              val_split="train", test_split="val"))
    configs = {k: (gaze_base if k == "unpruned" else v.replace(base=gaze_base)) for k, v in configs.items()}
DATA = gaze_base.data.replace(eval_size=S["eval_size"]) if dataset == "synthetic" else gaze_base.data
train_set = load_split(gaze_base.data, "train")
test_set = load_split(DATA, "test")
unpruned = R.train_gaze(gaze_base, seed=seed, device=DEVICE)
print(f"{'loaded' if unpruned.loaded else 'trained'} in {time.perf_counter() - t0:.0f} s")
unpruned.history

# %%
centre = CenterBias.fit(train_set, progress=False)
ev = {"unpruned": R.evaluate_gaze(unpruned.model, test_set, DEVICE, EVAL_SEED, "unpruned")}
from salbook.evaluation import evaluate

ev_cb = evaluate(centre, test_set, ("auc_judd", "nss", "sim", "cc"), device=DEVICE, seed=EVAL_SEED, progress=False)
vs_cb = paired_difference(ev["unpruned"], ev_cb)
for m in R.GAZE_METRICS:
    record(f"fisher.gaze.unpruned.{m}", ev["unpruned"].mean()[m], tol=0.05 if m != "nss" else 0.2, config=gaze_base)
for m in ("auc_judd", "nss", "sim", "cc"):
    record(f"fisher.gaze.center_bias.{m}", ev_cb.mean()[m], tol=0.05 if m != "nss" else 0.2)
display(pd.concat([ev["unpruned"].table("Lite0 gaze model", ci=True), ev_cb.table("centre bias", ci=True)]))
vs_cb

# %% [markdown]
# *Tables 5.6 and 5.7: test scores (95 % intervals over images) of the unpruned Lite0 gaze model and of the
# centre bias, and their paired difference. Log-likelihood is in bits per fixation relative to a uniform
# density (higher is better).*
#
# ## 5.4 Pruning without retraining (Figure 1)
#
# The paper's Figure 1 prunes FastGaze with its weights **fixed**, alternating between estimating the signal
# on the training set and removing ten maps, so retraining cannot hide a bad choice. We do the same on the
# trained Lite0 gaze model with a fixed set of training batches, removing a fixed share of the maps per
# round, and plot the loss on those batches against the FLOPs removed, for: Fisher with β = 0 and β > 0,
# Fisher with β*, Molchanov et al.'s Taylor signal {cite}`molchanov2017pruning` (unnormalised and
# layer-normalised, without and with a fixed cost weight λ on a cost estimated once), the mean activation,
# the weight magnitude, and random choice.

# %%
t0 = time.perf_counter()
from salbook.data import collate

fig1_loss = lambda out, b: sum(R.gaze_loss(out, b, gaze_base.data_weight, gaze_base.teacher_weight).values())  # noqa: E731
train_targets = R._gaze_train_set(gaze_base, DEVICE, print)
n1 = S["fig1_batches"] * S["fig1_batch"]
batches = [{k: (v.to(DEVICE) if torch.is_tensor(v) else v) for k, v in
            collate([train_targets[i] for i in range(j, j + S["fig1_batch"])]).items()}
           for j in range(0, n1, S["fig1_batch"])]
n_maps = sum(len(m.mask) for m in masks_of(unpruned.model).values())
per_round = max(1, int(0.9 * n_maps / S["fig1_rounds"]))
h, w = gaze_base.data.input_size
ex = torch.zeros(1, 3, h, w, device=DEVICE)
runs1 = [("fisher", 0.0, "Fisher, β = 0"), ("fisher", 0.3, "Fisher, β = 0.3"), ("fisher", 3.0, "Fisher, β = 3"),
         ("fisher_auto", 0.0, "Fisher, β*"), ("taylor", 0.0, "Taylor (Molchanov), unnormalised"),
         ("taylor_norm", 0.0, "Taylor, normalised"), ("taylor_norm", 1.0, "Taylor, normalised, λ = 1 (cost once)"),
         ("activation", 0.0, "mean activation"), ("magnitude", 0.0, "weight magnitude"), ("random", 0.0, "random")]
curves = []
for method, beta, label in runs1:
    c = prune_without_retraining(unpruned.model, batches, fig1_loss, ex, method, beta, per_round=per_round,
                                 rounds=S["fig1_rounds"], seed=seed)
    curves.append(c.assign(label=label))
curves = pd.concat(curves, ignore_index=True)
print(f"Figure 1: {time.perf_counter() - t0:.0f} s")
fig, ax = plt.subplots(figsize=(8, 4.5))
for label, c in curves.groupby("label", sort=False):
    ax.plot(100 * c["flops_removed"], c["loss"], marker="o", ms=3, label=label,
            color="grey" if label.startswith("Taylor") else None, ls="--" if label.startswith(("mean", "weight", "random")) else "-")
ax.set(xlabel="FLOPs removed (%)", ylabel="training loss (nats)", title="Figure 5.1: pruning without retraining")
ax.set_yscale("log")
ax.legend(fontsize=7, ncol=2)
plt.show()

# %%
# loss at the round closest to half the FLOPs removed, per method
half = curves.loc[curves.groupby("label", sort=False)["flops_removed"].apply(lambda s: (s - 0.5).abs().idxmin())]
half = half.set_index("label")[["flops_removed", "maps_pruned", "loss"]]
record("fisher.fig1.loss_at_half.fisher_b0", half.loc["Fisher, β = 0", "loss"], tol=0.5, rel=0.5)
record("fisher.fig1.loss_at_half.fisher_b3", half.loc["Fisher, β = 3", "loss"], tol=0.5, rel=0.5)
record("fisher.fig1.loss_at_half.random", half.loc["random", "loss"], tol=0.5, rel=0.5)
half

# %% [markdown]
# *Figure 5.1 and Table 5.8: the loss on the estimation batches (distillation objective, nats) as maps are
# removed without any retraining, against the FLOPs removed; the table lists each method's round nearest to
# half the FLOPs. Grey: Molchanov et al.'s variants.*
#
# ## 5.5 Pruning while training: speed against accuracy (Figure 2)
#
# Now as in the paper's §2.4: pruning continues training, the signal accumulated over a few optimisation
# steps between decisions. One map per ten steps, as in the paper, would take days for Lite0's
# {glue:text}`n_maps:,` maps on this CPU; we remove a block of maps per decision (greedily, with the costs
# updated after each map) every few steps, in stages: each stage continues the previous one and is a model of
# its own. Three runs — β = 0, β = {glue:text}`gaze_beta` and β* — each give several pruning amounts
# ({glue:text}`stage_plan` in this profile, {glue:text}`maps_last:,` maps in all; Table 5.9 shows stages
# {glue:text}`shown_stages`). The stages get finer towards the end: a fixed number of maps is a growing share
# of what is left, and in an earlier version of this chapter one last stage of 800 maps removed 82 % of the
# remaining network and took AUC-Judd from 0.866 to the centre bias's 0.786. The fine stages also train longer
# after their last decision: what a stage loses is mostly training, not capacity — stage 12 of the β = 0 run
# with 12 steps after pruning had AUC-Judd 0.858, and 50 or 150 steps more took the same pruned network to
# 0.869 and 0.871 (β = 0.1: 0.857, then 0.862 and 0.865; measured while writing this chapter). Every model is then
# **physically** reduced (Torch-Pruning) and timed on this machine's CPU at batch 1 and one thread, at the
# resolution the models run at (the test images' input size), in two ways: ONNX Runtime on the exported
# network (a deployment path: batch norm folded, little per-operator overhead) and eager PyTorch.
#
# Two details of the timing decide the speed-ups, so here they are. (1) The ONNX graphs are exported for the
# fixed shape they are timed at, batch 1 included. With a symbolic batch, ONNX Runtime cannot fold the shape
# arithmetic of Lite0's TensorFlow-style "same" padding into constants and runs it at every call, a cost the
# FLOP count does not see. With ONNX Runtime's profiler on it looked large (unpruned 5.9 → 3.7 ms, pruned to
# 28 % of the FLOPs 4.5 → 1.7 ms), but the profiler inflates graphs of many small nodes: timed without it, the
# difference was within the timing noise (measured while writing this chapter). A batch-1 graph is the
# deployment being timed either way. (2) The models are timed **interleaved**: {glue:text}`latency_rounds` rounds
# (eager PyTorch, not the deployment, half as many), each timing every model {glue:text}`latency_runs` times in turn, so that a slow spell of this shared virtual
# machine falls on all of them alike rather than on whichever model was being timed. The medians of one model's
# rounds differed by a factor of {glue:text}`round_spread:.2f` (median over the models) in this run.

# %%
glue("n_maps", n_maps)
t0 = time.perf_counter()
eval_hw = tuple(gaze_base.data.input_size)  # the models run on the test images at their input size
pruned = {}
for name, cfg in configs.items():
    if name == "unpruned":
        continue
    result = R.prune_gaze(cfg, seed=seed, device=DEVICE, log=None)  # each stage trains on its predecessor
    if S["shown_stages"] is None or cfg.stage in S["shown_stages"]:
        pruned[name] = result
stage_cfgs = [c for n, c in configs.items() if n != "unpruned"]
glue("gaze_beta", ", ".join(f"{c.beta:g}" for c in stage_cfgs if c.method == "fisher" and c.beta > 0 and c.stage == 1))
chain = [c for c in stage_cfgs if (c.method, c.beta) == (stage_cfgs[0].method, stage_cfgs[0].beta)]
# ((maps a stage, steps after its last decision), how many consecutive stages are alike)
plan = [(kind, len(list(alike))) for kind, alike in
        itertools.groupby((c.decisions * c.maps_per_prune, c.finetune_steps) for c in chain)]
glue("stage_plan", ", then ".join(f"{n} stage{'s' if n > 1 else ''} of {m:,} maps and {f} training steps after "
                                  "the last decision" for (m, f), n in plan))
glue("n_stages", len(chain))
glue("maps_last", chain[-1].maps_removed)
glue("shown_stages", ", ".join(map(str, S["shown_stages"] or sorted({c.stage for c in stage_cfgs}))))
print(f"pruning runs: {time.perf_counter() - t0:.0f} s")


def run_of(name: str) -> str:
    return {"fisher_b0": "Fisher, β = 0", "fisher_auto_b0": "Fisher, β*"}.get(name.rsplit("_s", 1)[0],
                                                                                "Fisher, β = " + name.split("_b")[1].split("_s")[0])


t0 = time.perf_counter()
masked_models = {"unpruned": unpruned.model, **{name: res.model for name, res in pruned.items()}}
small_models = {name: remove_pruned(m, ex.cpu()).cpu().eval() for name, m in masked_models.items()}
# the same functions with pruned widths rounded up to × 8 (ONNX Runtime's vector width; see Table 5.9b)
small8_models = {name: remove_pruned(m, ex.cpu(), multiple=8).cpu().eval() for name, m in masked_models.items()}
x_time = torch.rand(1, 3, *eval_hw)
# every ONNX Runtime deployment in one interleaved timing (so the two columns compare fairly), eager in another
onnx_timing = interleaved_latency({**{(n, "onnx_ms"): m for n, m in small_models.items()},
                                   **{(n, "onnx8_ms"): m for n, m in small8_models.items()}},
                                  x_time, ("onnxruntime",), threads=1, rounds=S["latency_rounds"],
                                  runs=S["latency_runs"])
eager_timing = interleaved_latency({(n, "eager_ms"): m for n, m in small_models.items()}, x_time, ("eager",),
                                   threads=1, rounds=max(1, S["latency_rounds"] // 2), runs=S["latency_runs"])
timing = pd.concat([onnx_timing, eager_timing])
lat = pd.Series(timing["median_ms"].values, index=pd.MultiIndex.from_tuples(timing["model"])).unstack()
spread = float(onnx_timing["round_spread"].median())
rows2 = []
for name, masked in masked_models.items():
    cm = cost_model(masked, ex)
    if name != "unpruned":
        ev[name] = R.evaluate_gaze(masked, test_set, DEVICE, EVAL_SEED, name)
    s = ev[name].summary
    rows2.append(dict(model=name, run="unpruned" if name == "unpruned" else run_of(name),
                      stage=0 if name == "unpruned" else int(name.rsplit("_s", 1)[1]),
                      relative_flops=cm.relative(alive_counts(masked)), params=count_params(small_models[name]),
                      **lat.loc[name, ["onnx_ms", "onnx8_ms", "eager_ms"]].to_dict(),
                      **{m: s.loc[m, "mean"] for m in R.GAZE_METRICS},
                      auc_low=s.loc["auc_judd", "ci_low"], auc_high=s.loc["auc_judd", "ci_high"]))
fig2 = pd.DataFrame(rows2).set_index("model")
glue("latency_rounds", S["latency_rounds"])
glue("latency_runs", S["latency_runs"])
glue("round_spread", spread)
# Speed-ups per round: each round timed the unpruned model and the pruned one within moments of each other,
# so the ratio of their round medians is a paired measurement; the table gives the median over the rounds
rounds_ms = {key: np.asarray(r) for key, r in zip(timing["model"], timing["round_ms"])}


def paired_speedups(name: str, column: str) -> np.ndarray:
    return rounds_ms[("unpruned", column)] / rounds_ms[(name, column)]


for column, label in (("onnx_ms", "speed-up (ONNX)"), ("onnx8_ms", "speed-up (ONNX, ×8)"),
                      ("eager_ms", "speed-up (eager)")):
    fig2[label] = [float(np.median(paired_speedups(n, column))) for n in fig2.index]
fig2["×8 q1"], fig2["×8 q3"] = np.percentile([paired_speedups(n, "onnx8_ms") for n in fig2.index], [25, 75], axis=1)
print(f"evaluation and timing: {time.perf_counter() - t0:.0f} s")
fig2

# %% [markdown]
# *Table 5.9: every gaze model: pruning run and stage, FLOPs relative to the unpruned model (eq. 11),
# parameters after removal, median CPU latency per image at batch 1 over all the rounds (ONNX Runtime with every pruned map
# removed, *onnx_ms*, and with pruned widths rounded up to multiples of 8, *onnx8_ms*, and eager PyTorch; one
# thread, {glue:text}`eval_hw`), the test scores (the AUC-Judd interval is the 95 % Student-t interval
# over images), and the speed-ups over the unpruned model: in each round the two were timed within moments of
# each other, so each round gives one paired ratio; the columns give their median, and *×8 q1*, *×8 q3* the
# quartiles of the ×8 deployment's.*

# %%
glue("eval_hw", f"{eval_hw[0]} × {eval_hw[1]} pixels")
fig, axes = plt.subplots(1, 4, figsize=(15, 3.8), sharex=True)
palette = dict(zip(["unpruned", *sorted(set(fig2["run"]) - {"unpruned"})], sns.color_palette("deep")))
for ax, m, label in zip(axes, ("auc_judd", "nss", "sim", "log_likelihood"),
                        ("AUC-Judd", "NSS", "SIM", "log-likelihood (bits/fix)")):
    for run, d in fig2.groupby("run"):
        ax.scatter(d["onnx8_ms"], d[m], color=palette[run], label=run, s=30)
        front = R.pareto_front(list(d["onnx8_ms"]), list(d[m]))
        if len(front) > 1:
            ax.plot(d["onnx8_ms"].iloc[front], d[m].iloc[front], color=palette[run], lw=1.2)
    ax.set(xlabel="CPU time per image (ms, ONNX Runtime, widths × 8)", ylabel=label, xscale="log")
axes[0].axhspan(fig2.loc["unpruned", "auc_low"], fig2.loc["unpruned", "auc_high"], color="grey", alpha=0.15)
axes[0].legend(fontsize=7)
fig.suptitle("Figure 5.2: speed and accuracy of the pruned gaze models (lines: Pareto fronts per run)")
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure 5.2: each point is a model of Table 5.9; lines join each run's Pareto-optimal models (faster and
# better than every other model of the run). Grey band: the unpruned model's 95 % AUC-Judd interval.*

# %%
lo = fig2.loc["unpruned", "auc_low"]
ok = fig2[(fig2.index != "unpruned") & (fig2["auc_judd"] >= lo)]
HEAD = "speed-up (ONNX, ×8)"  # the deployment: ONNX Runtime on the removed network, widths rounded up to × 8
best_name = ok[HEAD].idxmax() if len(ok) else None
best_speed = float(ok[HEAD].max()) if len(ok) else 1.0
best_plain = float(ok.loc[best_name, "speed-up (ONNX)"]) if best_name else 1.0
best_eager = float(ok.loc[best_name, "speed-up (eager)"]) if best_name else 1.0
best_q1, best_q3 = (float(ok.loc[best_name, q]) if best_name else 1.0 for q in ("×8 q1", "×8 q3"))
best_rounds_3x = int((paired_speedups(best_name, "onnx8_ms") >= 3).sum()) if best_name else 0
record("fisher.gaze.best_speedup_onnx8", best_speed, tol=2.0, rel=0.5, note="a latency ratio: timing noise dominates at the smoke size")
record("fisher.gaze.best_speedup_onnx", best_plain, tol=2.0, rel=0.5, note="a latency ratio: timing noise dominates at the smoke size")
record("fisher.gaze.best_speedup_eager", best_eager, tol=2.0, rel=0.5, note="a latency ratio: timing noise dominates at the smoke size")
for name, r in fig2.iterrows():
    record(f"fisher.gaze.{name}.relative_flops", r["relative_flops"], tol=0.05)
    record(f"fisher.gaze.{name}.auc_judd", r["auc_judd"], tol=0.05)
glue("best_speed", best_speed)
glue("best_eager", best_eager)
glue("best_name", str(best_name))


def fastest_within(run: str) -> tuple[float, float]:
    d = ok[ok["run"] == run]
    return (float(d[HEAD].max()), float(d["auc_judd"].loc[d[HEAD].idxmax()])) if len(d) else (1.0, np.nan)


reg = max((fastest_within(r) for r in set(fig2["run"]) if r.startswith("Fisher, β = ") and r != "Fisher, β = 0"),
          default=(1.0, np.nan))
unreg = fastest_within("Fisher, β = 0")
record("fisher.gaze.regularised_vs_unregularised_speed", reg[0] / unreg[0], tol=2.0, rel=0.5, note="a latency ratio: timing noise dominates at the smoke size")
verdict = []
verdict.append(
    f"**Target (a pruned model ≥ 3× faster at batch 1 with AUC-Judd within the unpruned model's 95 % interval): "
    f"{'met' if best_speed >= 3 else 'not met'}.** The fastest such model, `{best_name}`, runs "
    f"{best_speed:.2f}× faster than the unpruned one under ONNX Runtime with its pruned widths rounded up to "
    f"multiples of 8 (median over {S['latency_rounds']} rounds of the paired speed-up; interquartile range "
    f"{best_q1:.2f}–{best_q3:.2f}×, {best_rounds_3x} of the {S['latency_rounds']} rounds at 3× or more; "
    f"{best_plain:.2f}× with every pruned map removed, {best_eager:.2f}× in eager PyTorch, "
    "where per-operator overhead dominates small networks at batch 1).")
verdict.append(
    f"**Target (FLOP-regularised at least as fast as unregularised at equal AUC): "
    f"{'met' if reg[0] >= unreg[0] else 'not met'}.** Fastest within the interval: β > 0 {reg[0]:.2f}×, "
    f"β = 0 {unreg[0]:.2f}× (ratio {reg[0] / unreg[0]:.2f}).")
display(Markdown("\n\n".join(verdict)))

# %% [markdown]
# **Widths that ONNX Runtime likes.** Removing every pruned map leaves layers of arbitrary width, and ONNX
# Runtime's CPU convolutions slow down sharply on channel counts that are not multiples of their vector
# block: the column *onnx_ms* of Table 5.9 has pruned models slower than the unpruned one. `remove_pruned(...,
# multiple=8)` keeps just enough switched-off maps to round each pruned layer up to a multiple of 8 and
# silences them by zeroing the weights that read them: the same function (tested), a little more
# arithmetic, and *onnx8_ms*. The table below sets the two side by side.

# %%
widths = fig2[["relative_flops", "onnx_ms", "onnx8_ms"]].copy()
widths["×8 / all removed"] = widths["onnx8_ms"] / widths["onnx_ms"]
glue("x8_gain_median", float(1 / widths.drop(index="unpruned")["×8 / all removed"].median()))
record("fisher.gaze.onnx_x8_gain_median", float(1 / widths.drop(index="unpruned")["×8 / all removed"].median()),
       tol=2.0, rel=0.5, note="a latency ratio: timing noise dominates at the smoke size")
widths.round(3)

# %% [markdown]
# *Table 5.9b: ONNX Runtime latency (ms, one thread, batch 1) of each pruned model with every pruned map removed
# and with its pruned widths rounded up to multiples of 8.* Rounding makes the pruned models
# {glue:text}`x8_gain_median:.2f` times faster (median over the pruned models); it is the deployment the
# verdict above uses.
#
# Where does the time go that pruning does not remove? `salbook.cost.operator_profile` splits one eager
# forward pass (one thread, batch 1) by operator for the unpruned model, the fastest model within the AUC
# interval and the model with the fewest FLOPs.

# %%
fewest = fig2["relative_flops"].idxmin()
profiled = dict.fromkeys(["unpruned", best_name or "unpruned", fewest])
per_op = pd.concat({n: operator_profile(small_models[n], eval_hw, runs=3, threads=1).set_index("operator")["self_ms"]
                    for n in profiled}, axis=1).fillna(0.0)
ops = per_op.loc[per_op["unpruned"].sort_values(ascending=False).index].head(8)
ops.loc["total (all operators)"] = per_op.sum()
glue("prof_fewest", str(fewest))
glue("prof_fewest_flops", 100 * float(fig2.loc[fewest, "relative_flops"]))
glue("prof_total_ratio", float(ops.loc["total (all operators)", fewest] / ops.loc["total (all operators)", "unpruned"]))
kernels = {"matmul": "aten::_slow_conv2d_forward", "onednn": "aten::mkldnn_convolution"}
for label, op in kernels.items():
    glue(f"prof_{label}_kept", 100 * float(ops.loc[op, fewest] / ops.loc[op, "unpruned"]) if op in ops.index else float("nan"))
rest_total = {n: ops.loc["total (all operators)", n] - sum(ops.loc[op, n] for op in kernels.values() if op in ops.index)
              for n in profiled}
glue("prof_rest_kept", 100 * float(rest_total[fewest] / rest_total["unpruned"]))
record("fisher.gaze.profile_time_ratio_fewest", float(ops.loc["total (all operators)", fewest]
                                                      / ops.loc["total (all operators)", "unpruned"]),
       tol=2.0, rel=0.5, note="a latency ratio (eager self time, fewest-FLOPs model over the unpruned one): "
                              "timing noise dominates at the smoke size")
ops.round(2)

# %% [markdown]
# *Table 5.10: self time per forward pass (ms, eager PyTorch, one thread, {glue:text}`eval_hw`) of the
# unpruned model's eight most expensive operators, and the sum over all operators, per model.* The model
# with the fewest FLOPs, {glue:text}`prof_fewest`, keeps {glue:text}`prof_fewest_flops:.0f` % of the FLOPs
# and {glue:text}`prof_total_ratio:.2f` of the time. PyTorch runs the 1 × 1 convolutions (expansions,
# projections, readout: `_slow_conv2d_forward`, a matrix product) and the others (the stem and the depthwise
# 3 × 3 convolutions: `mkldnn_convolution`) through different kernels, so the table shows which work pruning
# removed: the 1 × 1 convolutions keep {glue:text}`prof_matmul_kept:.0f` % of their time, the stem and
# depthwise convolutions (memory-bound at batch 1, and the stem is not prunable here)
# {glue:text}`prof_onednn_kept:.0f` %, and everything else — batch norm, the fills, allocations and copies
# of a batch-1 forward pass — {glue:text}`prof_rest_kept:.0f` %. The parts that shrink least are the
# floor under the time that the FLOP count does not show.

# %% [markdown]
# The paper reports a speed-up of about 10× at equal AUC for DenseGaze over DeepGaze II on a CPU, and up to
# 2× between regularised and unregularised FastGaze models. Ours starts from a much smaller network than
# DeepGaze II — Lite0 is already an efficient architecture of {glue:text}`lite0_gflops:.2f` GFLOPs at
# {glue:text}`paper_size` against VGG-19's hundreds — so less is left to remove, and the parts that are not
# prunable here (the stem, the first block and the residual-coupled block outputs) set a floor.
#
# ## 5.6 What the pruning keeps (Figure 3)

# %%
glue("lite0_gflops", arch["gaze_lite0"]["gflops"])
last_stage = max(int(n.rsplit("_s", 1)[1]) for n in pruned)
show = {"unpruned": unpruned.model, **{run_of(n): pruned[n].model for n in pruned if n.endswith(f"_s{last_stage}")}}
left = pd.DataFrame({k: alive_counts(m) for k, m in show.items()})
left.index = [i.replace("layers.", "L").replace(".aa", "").replace("readout.net.", "readout ") for i in left.index]
fig, ax = plt.subplots(figsize=(12, 3.8))
left.plot.bar(ax=ax, width=0.8)
ax.set(ylabel="feature maps left", yscale="log", title="Figure 5.3: maps left per layer (last stage of each run)")
plt.xticks(rotation=70, fontsize=7)
plt.tight_layout()
plt.show()
left.T

# %% [markdown]
# *Figure 5.3: feature maps left per prunable layer (the expansion maps of each inverted-residual block,
# stage.block, and the readout's hidden maps) in the unpruned model and the most-pruned model of each run.*

# %%
share = 1 - left.div(left["unpruned"], axis=0)
lines = []
for run in [c for c in left.columns if c != "unpruned"]:
    top = share[run].sort_values(ascending=False).head(3)
    lines.append(f"* **{run}** removed most, as a share of the layer's maps, in "
                 + ", ".join(f"{k} ({100 * v:.0f} %)" for k, v in top.items()) + ".")
display(Markdown("\n".join(lines)))

# %% [markdown]
# A map's cost is its layer's resolution times the widths it connects, so with β > 0 the choice moves toward
# layers whose maps are expensive at the current widths; with β = 0 it follows the loss alone.

# %%
T_TOTAL = time.perf_counter() - T_START
print(f"chapter wall time: {T_TOTAL:.0f} s")
