# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # Notation, metrics and efficiency
#
# This page fixes the notation of the book, defines every metric exactly as the papers computed it,
# checks the definitions on a case small enough to do by hand, and measures two things the rest of the
# book relies on: how fast the metrics are, and how we count the cost of a model.
#
# ## Notation
#
# | symbol | meaning |
# |---|---|
# | $I$ | an RGB image, $3 \times H \times W$, values in $[0, 1]$ |
# | $S$ | a predicted saliency map, $H \times W$ (any non-negative scale unless stated) |
# | $F = \{(r_k, c_k)\}$ | the fixations on the image: (row, column) pixel positions, duplicates allowed |
# | $\mathcal{F}$ | the *fixated pixels*: the set of pixels with at least one fixation (duplicates count once) |
# | $D$ | the continuous fixation map: fixation counts blurred with a Gaussian, max 1 |
# | $P$, $Q$ | maps normalised to sum 1 (probability distributions over pixels) |
# | $N = HW$ | the number of pixels |
# | $\epsilon$ | $2.2204 \times 10^{-16}$, float64 machine epsilon (MIT's `eps`) |
# | MAC | one multiply–accumulate; **FLOPs = 2 × MACs** in this book (see below) |
#
# ## Fixation-prediction metrics
#
# The papers computed their numbers with the MIT saliency benchmark code {cite}`judd2012benchmark`
# (analysed in {cite}`bylinskii2019metrics`); `salbook.metrics` follows those definitions to the letter,
# one function per metric and image, and a score over a dataset is the mean over images.
#
# **AUC-Judd.** Positives are $S$ at the fixated pixels $\mathcal{F}$, negatives $S$ at every other pixel.
# The thresholds are the distinct values of $S$ at fixated pixels; at threshold $t$,
# $\mathrm{TPR} = \#\{\text{positives} \ge t\} / |\mathcal{F}|$ and
# $\mathrm{FPR} = \#\{\text{negatives} \ge t\} / (N - |\mathcal{F}|)$. With the end points $(0,0)$ and
# $(1,1)$ the area under this curve is taken by the trapezoid rule. It is *not* the Mann–Whitney AUC
# over all thresholds. A constant map scores 0.5.
#
# **AUC-Borji.** $S$ is min–max normalised; the negatives are $S$ at $|\mathcal{F}|$ pixels drawn
# uniformly *with replacement*, thresholds run over $0{:}0.1{:}\max$, and the AUC is averaged over 100
# random splits.
#
# **Shuffled AUC (sAUC).** Like AUC-Borji, but the negatives are $S$ at the fixated pixels of *other*
# images (rescaled to this image's size), $k = \min(|\mathcal{F}|, \#\text{other})$ drawn without
# replacement per split. Centre bias is present in positives and negatives alike, so it no longer pays.
#
# **NSS.** $\frac{1}{|\mathcal{F}|}\sum_{x \in \mathcal{F}} (S(x) - \mu_S)/\sigma_S$ with the sample
# standard deviation ($N-1$).
#
# **CC.** Pearson's correlation between $S$ and $D$.
#
# **KLD.** $\sum_x Q(x) \ln\left(\epsilon + \frac{Q(x)}{P(x) + \epsilon}\right)$ with $P = S/\sum S$ and
# $Q = D / \sum D$: the divergence of the prediction from the fixation map, in nats (lower is better).
#
# **SIM.** Both maps min–max normalised, then divided by their sums; $\sum_x \min(P_1(x), P_2(x))$.
#
# **IG.** $\frac{1}{|\mathcal{F}|}\sum_{x\in\mathcal{F}} \log_2(\epsilon + P(x)) - \log_2(\epsilon + P_b(x))$:
# the information gained over a baseline $P_b$ (the centre bias), in bits per fixation
# {cite}`kummerer2015information`.
#
# A prediction of another size than the ground truth is resized to it bilinearly before scoring.
# A NaN anywhere in a prediction is an error, never a number.

# %% tags=["parameters"]
profile = "smoke"       # smoke | book | paper
dataset = "synthetic"   # unused here: this page needs no dataset
data_root = None
device = "auto"
seed = 0               # trains nothing: under the seed contract (intro) the data and evaluation seeds stay fixed

# %%
from salbook.book import EVAL_SEED, pick, record, record_meta
from salbook.utils import resolve_device, seed_everything

S = pick(profile,
         smoke=dict(bench_images=100, latency_runs=5, throughput_batch=4),
         book=dict(bench_images=1000, latency_runs=30, throughput_batch=16),
         paper=dict(bench_images=1000, latency_runs=100, throughput_batch=32))
seed_everything(seed)
record_meta(device=str(resolve_device(device)), **S)
S

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from salbook import metrics

pd.set_option("display.precision", 4)

# %% [markdown]
# ## A case to check by hand
#
# A $4 \times 5$ map with three fixations, one of them on a pixel fixated twice. Its values are
# chosen so that each metric can be worked out on paper: the fixated pixels hold 0.9, 0.6 and 0.2.

# %%
S_small = np.array([[0.1, 0.2, 0.3, 0.1, 0.0],
                    [0.2, 0.9, 0.4, 0.2, 0.1],
                    [0.1, 0.6, 0.5, 0.3, 0.1],
                    [0.0, 0.1, 0.2, 0.1, 0.0]])
fix_small = np.array([[1, 1], [2, 1], [3, 2], [1, 1]])  # (row, col); (1, 1) twice
D_small = metrics.fixation_map_from_points(fix_small, S_small.shape, sigma=1.0)
baseline_small = np.ones_like(S_small)

hand = pd.DataFrame({
    "AUC-Judd": [metrics.auc_judd(S_small, fix_small)],
    "AUC-Borji": [metrics.auc_borji(S_small, fix_small, seed=EVAL_SEED)],
    "sAUC": [metrics.auc_shuffled(S_small, fix_small, np.array([[0, 0], [0, 4], [3, 4], [3, 0]]), seed=EVAL_SEED)],
    "NSS": [metrics.nss(S_small, fix_small)],
    "CC": [metrics.cc(S_small, D_small)],
    "KLD": [metrics.kld(S_small, D_small)],
    "SIM": [metrics.sim(S_small, D_small)],
    "IG vs uniform": [metrics.info_gain(S_small, fix_small, baseline_small)],
}, index=["4×5 example"])
hand

# %% [markdown]
# AUC-Judd by hand: the thresholds are the fixated values 0.9, 0.6 and 0.2. Of the 17 non-fixated pixels
# none reaches 0.9 or 0.6 and 7 reach 0.2, so the curve runs through $(0,0)$, $(0,\tfrac13)$,
# $(0,\tfrac23)$, $(\tfrac{7}{17}, 1)$ and $(1,1)$, and its area is
# $\tfrac{7}{17}\cdot\tfrac{1}{2}(\tfrac23 + 1) + \tfrac{10}{17} = \tfrac{95}{102} \approx 0.9314$.
# NSS by hand: the map's mean is $4.5/20 = 0.225$; the fixated pixels (the doubly fixated one counted
# once) average $(0.9 + 0.6 + 0.2)/3$. The next cell checks both against the functions; the unit tests in
# `tests/test_metrics_fixation.py` do the same for every metric.

# %%
assert abs(hand.loc["4×5 example", "AUC-Judd"] - 95 / 102) < 1e-12
nss_hand = ((0.9 + 0.6 + 0.2) / 3 - S_small.mean()) / S_small.std(ddof=1)
assert abs(hand.loc["4×5 example", "NSS"] - nss_hand) < 1e-12
print(f"AUC-Judd = {95 / 102:.4f} and NSS = {nss_hand:.4f}, as computed by hand")

# %% [markdown]
# ## Salient-object metrics
#
# For salient object detection (the CSNet chapter) the ground truth is a binary mask $G$ and the
# prediction $P \in [0,1]$. `salbook.metrics.sod` wraps PySODMetrics: MAE, the F-measure with
# $\beta^2 = 0.3$ — maximum over 256 thresholds, mean, and adaptive (threshold $\min(2\bar P, 1)$) —,
# the S-measure {cite}`fan2017smeasure` and the E-measure {cite}`fan2018emeasure`.
#
# Two conventions for the max-F exist and papers rarely say which they used. PySODMetrics forms the
# F curve of each image and averages the curves; SalMetric, the C++ tool CSNet {cite}`gao2020csnet` used,
# averages precision and recall over images first and forms F from the averages. On two images the
# two conventions already give different numbers, because the images reach their best F at different
# thresholds:

# %%
from salbook.metrics.sod import SODMetrics

rng = np.random.default_rng(EVAL_SEED)
masks = [np.zeros((64, 64)), np.zeros((64, 64))]
masks[0][8:56, 8:56] = 1                      # a large object, predicted confidently
masks[1][4:14, 4:14] = 1                      # a small object, predicted weakly, and a bright distractor
preds = [np.clip(0.85 * masks[0] + 0.1 + rng.normal(0, 0.05, (64, 64)), 0, 1),
         np.clip(0.4 * masks[1] + rng.uniform(0, 0.2, (64, 64)), 0, 1)]
preds[1][40:60, 40:60] = 0.9
acc = SODMetrics()
for p, m in zip(preds, masks):
    acc.step(p, m)
sod = pd.Series(acc.results(), name="two images")
print(f"max-F, F curves averaged over images (PySODMetrics): {sod['max_f']:.3f}; "
      f"P and R averaged first (SalMetric, CSNet): {sod['max_f_salmetric']:.3f}")
sod.to_frame().T

# %% [markdown]
# ## How fast are the metrics?
#
# Every chapter scores thousands of maps, so the metrics are vectorised. The benchmark below times each
# metric on generated predictions of $192 \times 256$ with about 20 fixations each (the target is all
# metrics on 1000 images in at most 30 s on a 2-core CPU).

# %%
bench = metrics.benchmark(n=S["bench_images"], size=(192, 256), n_fix=20, seed=EVAL_SEED)
bench

# %%
total_s = float(bench.set_index("metric").loc["total", "seconds"])
per_1000 = total_s * 1000 / S["bench_images"]
print(f"all metrics on {S['bench_images']} images: {total_s:.1f} s  "
      f"(≈ {per_1000:.1f} s per 1000 images; target ≤ 30 s)")

# %% [markdown]
# ## Counting the cost of a model
#
# `salbook.cost` measures every model of the book the same way:
#
# * **parameters**, all of them, trainable or not;
# * **FLOPs and MACs** with `torch.utils.flop_counter`, which counts 2 FLOPs per multiply–accumulate of
#   convolutions and matrix products, and nothing for element-wise operations, batch norm, activations
#   or pooling. Many papers' "FLOPs" are really MACs (MobileNetV2's "300 M multiply-adds"
#   {cite}`sandler2018mobilenetv2` is our 0.30 GMACs), so tables show both;
# * **size on disk** of the state dict and **peak activation memory** of one forward pass;
# * **CPU latency** at batch 1: warm-up runs, then the median and interquartile range over the timed runs,
#   with the thread count stated; **throughput** at a larger batch; and GPU latency when a GPU is present.
#
# Two torchvision classification backbones at FastSal's input size, $192 \times 256$, show the scale of
# the problem: VGG-16 is the backbone of SalGAN and ML-Net, MobileNetV2 that of FastSal.

# %%
import torchvision

backbones = {
    "VGG-16 features": torchvision.models.vgg16(weights=None).features,
    "MobileNetV2 features": torchvision.models.mobilenet_v2(weights=None).features,
}
from salbook.cost import cost_table

cost = cost_table(backbones, (3, 192, 256), latency_runs=S["latency_runs"],
                     throughput_batch=S["throughput_batch"], device=device)
cost[["params", "GFLOPs", "GMACs", "state_dict_MB", "peak_activation_MB",
      "cpu_ms_median", "cpu_ms_iqr", "threads", "throughput_img_s"]]

# %%
for name, key in [("VGG-16 features", "vgg16_features"), ("MobileNetV2 features", "mobilenetv2_features")]:
    record(f"profile.{key}.params", cost.loc[name, "params"], tol=0)
    record(f"profile.{key}.gmacs_192x256", cost.loc[name, "GMACs"], tol=1e-6)

fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(cost.index, cost["cpu_ms_median"], xerr=cost["cpu_ms_iqr"] / 2, color=["#888", "#2a7"])
ax.set_xlabel(f"CPU latency at batch 1, ms (median, {int(cost['threads'].iloc[0])} threads)")
ax.set_title("Figure 0.1: the cost of a backbone at 192×256")
plt.tight_layout()
plt.show()

# %% [markdown]
# *Figure 0.1: CPU latency of the two backbones' convolutional parts at 192×256, batch 1 (median; the
# bar is the interquartile range).*

# %%
from IPython.display import Markdown, display

mac_ratio = cost.loc["VGG-16 features", "GMACs"] / cost.loc["MobileNetV2 features", "GMACs"]
latency_ratio = cost.loc["VGG-16 features", "cpu_ms_median"] / cost.loc["MobileNetV2 features", "cpu_ms_median"]
text = (f"VGG-16's convolutional part needs {mac_ratio:.0f} times the multiply–accumulates of MobileNetV2's, "
        f"but on this CPU it is {latency_ratio:.1f} times slower. ")
if latency_ratio < mac_ratio / 2:
    text += ("Depthwise and 1 × 1 convolutions do little arithmetic per byte they move, so MobileNetV2 runs far "
             "below the machine's arithmetic peak: FLOPs alone overstate its advantage, which is why every "
             "table in this book shows latency beside FLOPs.")
else:
    text += "Here latency follows the arithmetic closely."
display(Markdown(text))
