# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # 2. How much of a classification network does saliency use?
#
# Most deep saliency models start from a network trained to classify ImageNet and fine-tune it to predict
# fixations. The compact-model paper {cite}`compactpca` questions the bargain: it runs a principal component
# analysis (PCA) on the last-layer activation maps of ML-Net {cite}`cornia2016mlnet` — a VGG-16 fine-tuned for
# saliency — and of the VGG-16 it started from, plots the two 2-D projections (its Figure 1), and reads that
# "classification task activation maps are more sparse and evenly distributed, while saliency activation
# maps are relatively densely distributed": a saliency model would not need most of the capacity of the
# classifier it inherits. Chapter 3 builds the small model that follows from that argument.
#
# This chapter rebuilds ML-Net exactly, then repeats the measurement on what can run here — EfficientNet-Lite0
# with its real ImageNet weights as the classification network, and the same network fine-tuned for saliency
# with ML-Net's head as the saliency network — and states precisely what is measured, since the paper does
# not. In the `paper` profile, with a VGG-16 weights file and real data, it also runs the paper's own pair.

# %% tags=["parameters"]
profile = "smoke"       # smoke | book | paper
dataset = "synthetic"   # synthetic | salicon
data_root = None        # folder of the real dataset (published layout)
device = "auto"
seed = 0
vgg16_weights = None    # path of a torchvision VGG-16 state dict: the paper's own pair (VGG-16 vs ML-Net)

# %%
import time

T_START = time.perf_counter()

from salbook.book import DATA_SEED, EVAL_SEED, pick, record, record_meta, glue
from salbook.utils import resolve_device, seed_everything

synthetic = dataset == "synthetic"
S = pick(
    profile,
    smoke=dict(n_train=16, n_val=4, n_test=12, input_size=(80, 96), eval_size=(80, 96), epochs=1, batch_size=4,
               pca_images=12, n_bootstrap=5, bn_images=8, n_shuffle=10, n_splits=10, mlnet_size=(96, 128), mlnet_epochs=1,
               mlnet_batch=4),
    book=dict(n_train=800, n_val=64, n_test=250, input_size=(96, 128), eval_size=(192, 256), epochs=2, batch_size=8,
              pca_images=250, n_bootstrap=20, bn_images=256, n_shuffle=100, n_splits=100, mlnet_size=(480, 640), mlnet_epochs=20,
              mlnet_batch=10),
    paper=dict(n_train=None, n_val=None, n_test=None, input_size=(240, 320), eval_size=(480, 640), epochs=10,
               batch_size=10, pca_images=500, n_bootstrap=100, bn_images=1000, n_shuffle=100, n_splits=100, mlnet_size=(480, 640),
               mlnet_epochs=20, mlnet_batch=10),
)
DEVICE = resolve_device(device)
seed_everything(seed)
record_meta(device=str(DEVICE), dataset=dataset, profile=profile, vgg16_weights=str(vgg16_weights),
            **{k: str(v) for k, v in S.items()})
S

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from salbook import plots
from salbook.analysis.redundancy import (compare_pair, projection_figure, recalibrate_batch_norm, redundancy,
                                         variance_figure)
from salbook.baselines import CenterBias
from salbook.cost import count_params
from salbook.data import SplitSpec, load_split
from salbook.evaluation import evaluate, finished_maps, paired_difference
from salbook.models import mlnet as mlnet_models
from salbook.recipes import saliency

pd.set_option("display.precision", 3)
sns.set_theme(style="white", context="notebook")

# %% [markdown]
# ## 2.1 ML-Net, exactly
#
# ML-Net reads three levels of a VGG-16: the output of pool 3, of pool 4 — whose stride ML-Net sets to 1, so
# that conv 5 runs at 1/8 of the input like pool 3 — and of conv 5_3, concatenated into 1,280 channels at
# 60 × 80 for its 480 × 640 input. A dropout, a 3 × 3 convolution to 64 channels and a 1 × 1 convolution to one
# channel (both with ReLU) encode them into a map, which is multiplied by a learned **prior**: a 6 × 8 grid of
# weights (initialised to 0, used as 1 + w) up-sampled bilinearly by a factor of 10. `salbook.models.mlnet`
# builds it as the official Keras code does, including a detail of that code's pooling: Keras 1 on Theano
# pads a "same" 2 × 2 max-pool by one pixel on every side and keeps the first outputs, so each window covers
# a pixel and the one before it, one pixel off PyTorch's pooling. The prior's grid has
# ⌈H/8⌉ // 10 × ⌈W/8⌉ // 10 cells, so the parameter count depends (a little) on the input size.

# %%
counts = {}
for size in ((480, 640), (192, 256)):
    net = mlnet_models.mlnet(input_size=size)
    counts[f"{size[0]}×{size[1]}"] = {"VGG-16 convolutions": count_params(net.encoder),
                                      "encoding 3 × 3": count_params(net.head.encode),
                                      "encoding 1 × 1": count_params(net.head.readout),
                                      "prior": count_params(net.head.prior), "total": count_params(net),
                                      "output": f"{-(-size[0] // 8)}×{-(-size[1] // 8)}"}
counts = pd.DataFrame(counts)
record("mlnet.params.480x640", counts.loc["total", "480×640"], tol=0, note="exact: 15,452,145")
record("mlnet.params.192x256", counts.loc["total", "192×256"], tol=0, note="exact: 15,452,103")
glue("mlnet_params_480", int(counts.loc["total", "480×640"]), display=False)
glue("mlnet_params_192", int(counts.loc["total", "192×256"]), display=False)
counts

# %% [markdown]
# *Table 2.1: ML-Net's parameters by part at the official 480 × 640 input and at the book's 192 × 256, and its
# output size (1/8 of the input).*
#
# ML-Net has {glue:text}`mlnet_params_480:,` parameters at 480 × 640 and {glue:text}`mlnet_params_192:,` at
# 192 × 256 (a 2 × 3 prior). Its loss, `mlnet_loss`, is the official one: each predicted map is divided by
# its maximum, and the squared error to the ground truth y ∈ [0, 1] is weighted by 1 / (1 − y + 0.1), so
# errors on fixated pixels count up to ten times more; the prior's L2 penalty (weight 1/48) is added. The
# `paper` profile trains it (section 2.6); in the `book` profile it is counted here and profiled in
# chapter 3, not trained — a few CPU minutes would not fine-tune 15 M parameters.
#
# ## 2.2 The pair we can run here
#
# No VGG-16 ImageNet weights ship with the book's offline dependencies, but EfficientNet-Lite0's do. So the
# **classification network** is EfficientNet-Lite0 with its ImageNet-1k weights, and the **saliency network**
# is the same network fine-tuned for saliency with ML-Net's head (`mlnet_lite0`): Lite0's stride-8 and
# stride-16 feature maps and its last convolutional layer (the 1,280-channel `conv_head`, batch norm and
# ReLU6 — the layer that feeds ImageNet's classifier, as conv 5_3 feeds VGG-16's) brought to the stride-8 grid
# and concatenated, then ML-Net's encoding, prior and loss. Two references complete the comparison: the
# same architecture at **random initialisation** (what the statistics look like before any training), and
# the ImageNet network with its **batch-norm statistics re-estimated** on the training images, without a
# single gradient step. Lite0 normalises every layer with running means and variances collected on
# ImageNet; fine-tuning on other images re-estimates them along with the weights, and the new statistics
# alone re-standardise every layer. The re-estimated network separates that effect from what training for
# saliency does to the weights.
#
# The fine-tuning recipe (`salbook.recipes.saliency.MLNetStyleConfig`) is ML-Net's loss with Adam — the head
# at a learning rate of 10⁻³, the pretrained layers at 10⁻⁴, both decayed along a half cosine — since
# ML-Net's SGD needs far more steps than the book can afford; a random half of each batch is mirrored.

# %%
DATA = SplitSpec(dataset=dataset, data_root=data_root, n_train=S["n_train"], n_val=S["n_val"], n_test=S["n_test"],
                 data_seed=DATA_SEED, input_size=S["input_size"], map_size=None, eval_size=S["eval_size"],
                 **({} if synthetic else dict(val_split="train", test_split="val")))
cfg = saliency.MLNetStyleConfig(data=DATA, epochs=S["epochs"], batch_size=S["batch_size"])
train_set, val_set, test_set = (load_split(DATA, role) for role in ("train", "val", "test"))
t0 = time.perf_counter()
tuned = saliency.train_mlnet_style(cfg, seed=seed, device=DEVICE, train_data=train_set, val_data=val_set)
print(f"{'loaded' if tuned.loaded else 'trained'} in {time.perf_counter() - t0:.0f} s; best epoch {tuned.best_epoch}")
tuned.history

# %% [markdown]
# *Table 2.2: the fine-tuning run: per epoch the training loss (ML-Net's loss plus the prior's penalty,
# `reg_prior`), the validation loss and the learning rate of the head.*
#
# Is it a saliency network? Scored on the test split against the centre bias:

# %%
METRICS = ("cc", "nss", "auc_judd", "auc_shuffled", "kld")
EVAL = dict(device=DEVICE, seed=EVAL_SEED, n_shuffle_images=S["n_shuffle"], n_splits=S["n_splits"], progress=False)
center_bias = CenterBias.fit(train_set, progress=False)
ev = {"mlnet_lite0 (fine-tuned)": evaluate(tuned.model, test_set, METRICS, **EVAL),
      "centre bias": evaluate(center_bias, test_set, METRICS, **EVAL)}
vs_cb = paired_difference(ev["mlnet_lite0 (fine-tuned)"], ev["centre bias"])
for m in METRICS:
    tol = 0.03 * (4 if m in ("nss", "kld") else 1)
    record(f"pca.mlnet_lite0.test.{m}", ev["mlnet_lite0 (fine-tuned)"].mean()[m], tol=tol, config=cfg)
    record(f"pca.center_bias.test.{m}", ev["centre bias"].mean()[m], tol=tol)
    glue(f"lite_{m}", ev["mlnet_lite0 (fine-tuned)"].mean()[m], display=False)
    glue(f"cb_{m}", ev["centre bias"].mean()[m], display=False)
display(pd.concat([e.table(k, ci=True) for k, e in ev.items()]))
vs_cb

# %% [markdown]
# *Tables 2.3 and 2.4: test scores with 95 % intervals over images, and the per-image difference fine-tuned −
# centre bias with its paired interval and verdict.*
#
# The fine-tuned network reaches CC {glue:text}`lite_cc:.3f` (centre bias {glue:text}`cb_cc:.3f`) and
# shuffled AUC {glue:text}`lite_auc_shuffled:.3f` (centre bias {glue:text}`cb_auc_shuffled:.3f`): it has
# learned image-specific saliency. Its KLD is another matter ({glue:text}`lite_kld:.2f` against
# {glue:text}`cb_kld:.2f`): ML-Net's output ends in a ReLU and is exactly zero over much of the image,
# and KLD charges a large penalty for every fixation that lands where the predicted probability is
# (nearly) zero. ML-Net's loss never penalises that.

# %%
with torch.no_grad():
    imagenet = mlnet_models.mlnet_lite0(input_size=DATA.input_size)
    moved = {}
    for name, part in (("whole trunk", ""), ("last layer (conv_head)", "body.conv_head")):
        before = [p for n, p in imagenet.backbone.named_parameters() if n.startswith(part)]
        after = [p for n, p in tuned.model.backbone.named_parameters() if n.startswith(part)]
        moved[name] = float(torch.sqrt(sum(((a.cpu() - b) ** 2).sum() for a, b in zip(after, before)))
                            / torch.sqrt(sum((b**2).sum() for b in before)))
record("pca.lite0.weight_change.conv_head", moved["last layer (conv_head)"], tol=0, rel=0.3)
glue("moved_head", moved["last layer (conv_head)"], display=False)
glue("moved_trunk", moved["whole trunk"], display=False)
pd.Series(moved, name="‖w_tuned − w_ImageNet‖ / ‖w_ImageNet‖")

# %% [markdown]
# *Table 2.5: how far fine-tuning moved the weights, relative to their ImageNet values.* Fine-tuning changed
# the last layer's weights by {glue:text}`moved_head:.1%` of their norm (the whole trunk by
# {glue:text}`moved_trunk:.1%`): a short fine-tune, so whatever differs below between the two networks is
# what a little saliency training does to a classifier's last layer.
#
# ## 2.3 What is measured
#
# The paper does not say what a "sample" of its PCA is. `salbook.analysis.redundancy` measures both readings
# on one layer's activations `A` (N images × C channels × h × w positions), on the **same test images** for
# every network, at the size the saliency network was trained at:
#
# * **channels as variables**: each sample is one spatial position of one image, described by its C channel
#   values (N · h · w samples, at most 16,384, drawn uniformly per image). Few components for most of the
#   variance mean the channels vary together — the layer uses a low-dimensional subspace;
# * **channels as samples**: each sample is one channel, described by its activation over the sampled
#   (image, position) pairs (C samples). Points crowded together in the projection are channels that respond
#   alike: redundant feature maps. If the paper's points are "activation maps", this is its Figure 1.
#
# For each view: the explained-variance curve, the components needed for 90 / 95 / 99 % of the variance, the
# **participation ratio** (Σλ)² / Σλ² of the eigenvalues λ — an effective dimension, C for C equally strong
# directions and 1 for one —, and the 2-D projection with the ratio of the median to the RMS distance of its
# points from their centre (about 0.83 for a Gaussian cloud; small for a dense core with a few far-out
# points). For the layer: the fraction of activations that are exactly zero and that are *near* zero
# (|a| ≤ 1 % of the layer's 99th percentile of |a|), the share of channels that are never active, and the mean
# absolute correlation between channels. Participation ratio and zero fractions get 95 % bootstrap intervals
# over images.

# %%
t0 = time.perf_counter()
LAYER = "backbone.body.bn2"
test_at_train_size = load_split(DATA.replace(eval_size=DATA.input_size), "test")
networks = {
    "classification (ImageNet)": imagenet,
    "classification, BN re-estimated": recalibrate_batch_norm(imagenet, train_set, n_images=S["bn_images"]),
    "saliency (fine-tuned)": tuned.model,
    "random init": mlnet_models.mlnet_lite0(input_size=DATA.input_size, weights=None, seed=seed),
}
red = {name: redundancy(net, test_at_train_size, LAYER, n_images=S["pca_images"], n_bootstrap=S["n_bootstrap"],
                        seed=seed, device="cpu")
       for name, net in networks.items()}
summary = pd.DataFrame({name: r.summary() for name, r in red.items()})
for name, key in (("classification (ImageNet)", "imagenet"), ("classification, BN re-estimated", "imagenet_bn"),
                  ("saliency (fine-tuned)", "saliency"), ("random init", "random")):
    r = red[name]
    record(f"pca.lite0.{key}.position_pr", r.by_position.participation_ratio, tol=0, rel=0.25)
    record(f"pca.lite0.{key}.channel_pr", r.by_channel.participation_ratio, tol=0, rel=0.25)
    record(f"pca.lite0.{key}.position_pcs90", r.by_position.components_for[0.9], tol=0, rel=0.25)
    record(f"pca.lite0.{key}.near_zero", r.near_zero_fraction, tol=0.03)
print(f"{len(red)} networks measured in {time.perf_counter() - t0:.0f} s; layer {LAYER}: "
      f"{red['saliency (fine-tuned)'].n_channels} channels × {red['saliency (fine-tuned)'].feature_size} positions, "
      f"{red['saliency (fine-tuned)'].n_images} images")
summary

# %% [markdown]
# *Table 2.6: the redundancy measures of Lite0's last layer for the three networks (see section 2.3): per
# view, components for 90/95/99 % of the variance, participation ratio (also divided by the number of
# variables), the variance share of the first two components and the projection's median/RMS radius; then
# the (near-)zero fractions, the share of dead channels and the mean absolute correlation between channels.*

# %%
fig = variance_figure(red, title="Figure 2.1: explained variance of Lite0's last layer")
plt.show()

# %% [markdown]
# *Figure 2.1: cumulative explained variance against the number of principal components (log scale), with
# channels as variables (left) and as samples (right), for the ImageNet, fine-tuned and randomly initialised
# networks; dotted lines at 90, 95 and 99 %.*

# %%
fig = projection_figure(red, title="Figure 2.2: 2-D PCA projections of Lite0's last layer (cf. the paper's Figure 1)")
plt.show()

# %% [markdown]
# *Figure 2.2: the first two principal components of each network's last layer: top, one point per channel
# (channels as samples); bottom, one point per sampled position (channels as variables, 2,000 points shown).
# Each cloud is centred and divided by its RMS radius so that the three share one scale.*
#
# ## 2.4 The verdict
#
# The paper's reading has two parts: classification activations are **sparser** and **more evenly spread**
# than saliency activations, which are **denser**. We translate "sparser" into a larger near-zero fraction,
# "more evenly spread" into a larger effective dimension (participation ratio, in both views) and a less
# concentrated projection (a larger median/RMS radius), and call a difference only when the two bootstrap
# intervals do not overlap (for the channel view, which has no interval, we report the direction).

# %%
verdict_table = pd.concat([
    compare_pair(red["classification, BN re-estimated"], red["saliency (fine-tuned)"], "Lite0: ImageNet (BN re-estimated) vs fine-tuned"),
    compare_pair(red["classification (ImageNet)"], red["saliency (fine-tuned)"], "Lite0: ImageNet (as shipped) vs fine-tuned"),
])
verdict_table

# %% [markdown]
# *Table 2.7: each part of the paper's reading, tested on the Lite0 pair — first with the classification
# network's batch-norm statistics re-estimated on the training images (the fair comparison), then as
# shipped; "supports" when the classification network has the larger value (with non-overlapping 95 %
# bootstrap intervals where there are intervals).*

# %%
def say(table: pd.DataFrame) -> str:
    counts_ = table["measurement"].value_counts()
    n_sup, n_con = int(counts_.get("supports", 0)), int(counts_.get("contradicts", 0))
    if n_sup == len(table):
        return "**The measurement supports the paper's reading** on every test."
    if n_con == len(table):
        return ("**The measurement does not support the paper's reading; it contradicts it on every test**: here the "
                "saliency network's last layer is the sparser one *and* the one with the higher effective dimension.")
    return (f"**The measurement does not clearly support the paper's reading**: {n_sup} of {len(table)} tests agree with it, "
            f"{n_con} contradict it, the rest show no clear difference.")


fair = verdict_table.xs("Lite0: ImageNet (BN re-estimated) vs fine-tuned")
shipped = verdict_table.xs("Lite0: ImageNet (as shipped) vs fine-tuned")
cls_r, sal_r, raw_r = red["classification, BN re-estimated"], red["saliency (fine-tuned)"], red["classification (ImageNet)"]
glue("raw_pr", raw_r.by_position.participation_ratio, display=False)
glue("raw_nz", raw_r.near_zero_fraction, display=False)
gap = sal_r.by_position.participation_ratio - raw_r.by_position.participation_ratio
bn_share = (cls_r.by_position.participation_ratio - raw_r.by_position.participation_ratio) / gap if gap else float("nan")
record("pca.lite0.bn_share_of_pr_gap", bn_share, tol=0.15)
glue("bn_share", bn_share, display=False)
glue("cls_pr", cls_r.by_position.participation_ratio, display=False)
glue("sal_pr", sal_r.by_position.participation_ratio, display=False)
glue("cls_pc90", cls_r.by_position.components_for[0.9], display=False)
glue("sal_pc90", sal_r.by_position.components_for[0.9], display=False)
glue("cls_nz", cls_r.near_zero_fraction, display=False)
glue("sal_nz", sal_r.near_zero_fraction, display=False)
glue("cls_cpr", cls_r.by_channel.participation_ratio, display=False)
glue("sal_cpr", sal_r.by_channel.participation_ratio, display=False)
display(Markdown("With the batch-norm statistics re-estimated: " + say(fair)))
display(Markdown("Against the network as shipped: " + say(shipped)))

# %% [markdown]
# In numbers: with channels as variables, the ImageNet network's last layer (batch norm re-estimated) has
# an effective dimension of {glue:text}`cls_pr:.1f` and needs {glue:text}`cls_pc90` components for 90 % of
# its variance; the fine-tuned network's, {glue:text}`sal_pr:.1f` and {glue:text}`sal_pc90`. With channels
# as samples the participation ratios are {glue:text}`cls_cpr:.1f` and {glue:text}`sal_cpr:.1f`. The
# near-zero fractions are {glue:text}`cls_nz:.1%` and {glue:text}`sal_nz:.1%`. The network as shipped, with
# ImageNet's statistics, has an effective dimension of {glue:text}`raw_pr:.1f` (near-zero fraction
# {glue:text}`raw_nz:.1%`) on these images; re-estimating the statistics alone, without any training, closes
# {glue:text}`bn_share:.0%` of the gap in effective dimension between it and the fine-tuned network.
#
# Two cautions before reading more into this. First, the pair is not the paper's: Lite0 instead of VGG-16,
# generated scenes at 96 × 128 instead of SALICON at 480 × 640 (Lite0's last layer then has only 3 × 4
# positions), and a fine-tune of a few hundred steps instead of 20 epochs of SALICON — the weights moved by
# the amount in Table 2.5. Second, the effective dimension of a layer depends on its input: the
# classification network sees generated scenes, far from ImageNet, and the random network (third column)
# shows how much of each statistic is there before any training. The `paper` profile below runs the paper's
# own pair on real data.
#
# ## 2.5 Example maps

# %%
rows = [[test_set[i]["image"] for i in range(4)], [test_set[i]["fixation_map"] for i in range(4)],
        finished_maps(tuned.model, test_set, None, DEVICE, indices=range(4))]
fig = plots.image_map_grid(rows, row_labels=["image", "fixation map", "mlnet_lite0"],
                           title="Figure 2.3: the fine-tuned ML-Net-style network on test images")
plt.show()

# %% [markdown]
# *Figure 2.3: four test images, their fixation maps and the fine-tuned network's maps (as evaluated:
# resized to the ground truth).*
#
# ## 2.6 The paper's own pair: VGG-16 and ML-Net
#
# With `vgg16_weights` (a torchvision VGG-16 state dict) and real data, the `paper` profile trains ML-Net with
# its official recipe — Nesterov SGD, learning rate 10⁻³ decayed as 1 / (1 + 5·10⁻⁴ t), momentum 0.9,
# batch 10, 20 epochs — and measures conv 5_3 (after its ReLU) of VGG-16 and of the trained ML-Net on the same
# images. The VGG-16 side is ML-Net's encoder with the ImageNet weights, i.e. VGG-16 with pool 4 at stride 1,
# so that the two networks differ only by ML-Net's training (the paper does not say which geometry it used). The smoke profile runs this path with *random* VGG weights written to a temporary
# file, to check the plumbing; its numbers mean nothing and are not recorded. The `book` profile skips it.

# %%
RUN_VGG = profile == "smoke" or (profile == "paper" and vgg16_weights is not None)
if profile == "paper" and vgg16_weights is None:
    display(Markdown("**Skipped**: the `paper` profile needs `vgg16_weights` (a torchvision VGG-16 state dict) "
                     "for the paper's own pair."))
vgg_red = {}
if RUN_VGG:
    weights_file = vgg16_weights
    if weights_file is None:  # smoke: random weights, plumbing only
        torch.manual_seed(seed)
        weights_file = Path(tempfile.mkdtemp()) / "random_vgg16_features.pth"
        encoder = mlnet_models.mlnet(input_size=S["mlnet_size"]).encoder
        torch.save({f"features.{k}": v for k, v in encoder.state_dict().items()}, weights_file)
    ml_data = DATA.replace(input_size=S["mlnet_size"])
    ml_cfg = saliency.MLNetStyleConfig(model="mlnet", data=ml_data, optimizer="official", lr=1e-3,
                                       backbone_lr_mult=1.0, epochs=S["mlnet_epochs"], batch_size=S["mlnet_batch"],
                                       model_kwargs={"vgg16_weights": str(weights_file)})
    ml_train, ml_val, ml_test = (load_split(ml_data, r) for r in ("train", "val", "test"))
    trained_mlnet = saliency.train_mlnet_style(ml_cfg, seed=seed, device=DEVICE, train_data=ml_train, val_data=ml_val)
    # the classification network: ML-Net's geometry (pool 4 with stride 1) with the VGG-16 weights and an
    # untrained head, so that the two differ only by ML-Net's training
    vgg = mlnet_models.mlnet(input_size=ml_data.input_size, vgg16_weights=weights_file)
    ml_images = torch.stack([load_split(ml_data.replace(eval_size=ml_data.input_size), "test")[i]["image"]
                             for i in range(min(S["pca_images"], len(ml_test)))])
    vgg_red = {name: redundancy(net, ml_images, "encoder.29", n_images=None, n_bootstrap=S["n_bootstrap"], seed=seed,
                                device="cpu")
               for name, net in (("classification (VGG-16)", vgg), ("saliency (ML-Net)", trained_mlnet.model))}
    vgg_table = compare_pair(vgg_red["classification (VGG-16)"], vgg_red["saliency (ML-Net)"], "VGG-16 vs ML-Net")
    if profile == "paper":
        for key, r in zip(("vgg16", "mlnet"), vgg_red.values()):
            record(f"pca.vgg.{key}.position_pr", r.by_position.participation_ratio, tol=0, rel=0.25)
            record(f"pca.vgg.{key}.near_zero", r.near_zero_fraction, tol=0.03)
    display(pd.DataFrame({k: r.summary() for k, r in vgg_red.items()}))
    display(vgg_table)
    display(Markdown(("*Smoke run, random VGG weights: the numbers above only test the code.* " if vgg16_weights is None else "")
                     + say(vgg_table)))
    fig = projection_figure(vgg_red, title="Figure 2.4: conv 5_3 of VGG-16 and of ML-Net (2-D PCA projections)")
    display(fig)  # drawn only when the pair ran
    plt.close(fig)

# %% [markdown]
# *Figure 2.4 (only when the paper's pair ran): the same projections as Figure 2.2 for conv 5_3 of VGG-16
# and of the trained ML-Net.*
#
# ## 2.7 A tool for every chapter
#
# `salbook.analysis.redundancy.redundancy(model, dataset, layer)` takes any model of the book, a dataset (or
# an image tensor) and a module name; chapter 3 applies it to the compact model, and the side-by-side chapter
# to every model (Pan's network, the compact model, FastSal, CSNet).

# %%
elapsed = time.perf_counter() - T_START
record_meta(seconds=round(elapsed, 1))
print(f"this page took {elapsed / 60:.1f} min on {DEVICE}")
