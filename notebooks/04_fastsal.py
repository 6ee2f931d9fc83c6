# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. FastSal: a MobileNetV2 saliency model taught by a bigger one
#
# FastSal {cite}`hu2021fastsal` reads *all* eighteen intermediate outputs of a MobileNetV2
# {cite}`sandler2018mobilenetv2`, groups them into four multi-scale blocks, and decodes them with either a
# concatenation decoder — **FastSal (C)** — or an addition decoder — **FastSal (A)**. It is trained by
# *distillation* from SalGAN {cite}`pan2017salgan`: first its encoder learns to reproduce four of SalGAN's
# decoder activations (a *hint* loss), then the network is fine-tuned on the ground truth and on SalGAN's
# maps, or on DeepGaze II's {cite}`kummerer2017deepgaze2` maps of a large unlabelled image set
# (*pseudo-labels*). This chapter builds both networks exactly as the official code does, trains them with
# the official losses and optimiser on the book's generated data, from a teacher trained here, and sets
# the results beside the paper's Tables III, IV and V and its speed figures.
#
# Every number below is computed when the page is built. The `book` profile trains at 96 × 128 pixels on two
# shared CPU cores, so its schedules are a few epochs where the paper's are a hundred; section 4.8 lists
# every difference.

# %% tags=["parameters"]
profile = "smoke"       # smoke | book | paper
dataset = "synthetic"   # synthetic | salicon
data_root = None        # folder of the real dataset (published layout)
device = "auto"
seed = 0
mobilenet_v2_weights = None  # local torchvision MobileNetV2 state dict: adds Table IV's pretrained MobileNetV2 row

# %%
import time

T_START = time.perf_counter()

from salbook.book import DATA_SEED, EVAL_SEED, glue, pick, record, record_meta
from salbook.utils import resolve_device, seed_everything

S = pick(
    profile,
    # smoke: fewer rows (each code path once), small sizes; book/paper: every row
    smoke=dict(t3_size=(96, 128), t3_vgg=False, t5_rows=3, t4_rows=1, speed_size=(96, 128),
               speed_paths_a=("eager", "channels_last", "jit"), speed_paths=("eager",),
               n_shifted=8, t4_epochs=1, hint_images=8, speed_threads=(1,), speed_runs=2, speed_runs_c=2, pair_rounds=1,
               n_shuffle=4, n_splits=5),
    book=dict(t3_size=(192, 256), t3_vgg=True, t5_rows=None, t4_rows=None, speed_size=(192, 256), speed_paths_a=None,
              speed_paths=("eager", "onnxruntime", "onnxruntime_convt", "openvino"), n_shifted=200,
              t4_epochs=2, hint_images=64, speed_threads=(1, 2), speed_runs=12, speed_runs_c=6, pair_rounds=16,
              n_shuffle=100, n_splits=100),
    paper=dict(t3_size=(192, 256), t3_vgg=True, t5_rows=None, t4_rows=None, speed_size=(192, 256), speed_paths_a=None,
               speed_paths=None, n_shifted=1000,
               t4_epochs=100, hint_images=500, speed_threads=(1, 2), speed_runs=100, speed_runs_c=100, pair_rounds=10,
               n_shuffle=100, n_splits=100),
)
DEVICE = resolve_device(device)
seed_everything(seed)
record_meta(device=str(DEVICE), dataset=dataset, profile=profile, **{k: str(v) for k, v in S.items()})
S

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from salbook import models, plots
from salbook.baselines import CenterBias
from salbook.cost import count_params, flops, matmul_peak_gflops
from salbook.data import load_split
from salbook.distillation import hint_loss
from salbook.evaluation import evaluate, finished_maps, paired_difference
from salbook.inference import (ALL_INFERENCE_PATHS, ONNX_PATHS, depth_to_space_as_conv_transpose, export_onnx,
                               interleaved_latency, onnxruntime_op_times, round_ratios, speed_table)
from salbook.models.fastsal import fastsal_density_postprocess, fastsal_postprocess
from salbook.recipes import fastsal as R

pd.set_option("display.precision", 3)
sns.set_theme(style="white", context="notebook")

# %% [markdown]
# ## 4.1 The two networks, exactly
#
# `salbook.models.fastsal` builds the networks from the official code (its module docstring lists every
# layer). The encoder is torchvision's MobileNetV2 `features`; the outputs of `features[1]` … `features[18]`
# are concatenated by resolution and moved up one octave by a sub-pixel shuffle, giving four blocks of 28,
# 24, 136 and 520 channels at 1/2, 1/4, 1/8 and 1/16 of the input. **FastSal (C)** maps each block with a
# 1 × 1 convolution to SalGAN's decoder widths (128, 256, 512, 512), upsamples them to 1/2, concatenates
# them, shuffles once more and ends with a 3 × 3 convolution; **FastSal (A)** maps them to 8, 32, 128 and
# 512 channels and adds them deep to shallow through inverted-residual blocks. Two facts of the official
# code that the paper does not show:
#
# * **the double skip** of model A: torchvision's `InvertedResidual` already adds its input, and the official
#   wrapper adds it once more, so each block computes 2·x + F(x) where the paper's Fig. 3 draws x + F(x).
#   We keep it: the published numbers come from it;
# * **the initialisation is ambiguous**: the public code draws the adapters' weights from N(0, 0.01²)
#   (its He-normal branch tests for `"conv"` in parameter names that do not contain it), while the key
#   names of the authors' checkpoints suggest the training-time modules did match and got He-normal. The
#   default here is the public code's (`init="official"`); `init="he"` gives the other.

# %%
nets = {"FastSal (C)": models.create("fastsal_c", seed=0), "FastSal (A)": models.create("fastsal_a", seed=0)}
parts = pd.DataFrame({
    name: {"encoder (MobileNetV2 features)": count_params(net.encoder),
           "adapters": count_params(net.adapters),
           "decoder blocks": count_params(net.blocks) if hasattr(net, "blocks") else 0,
           "merger / output conv": count_params(net.merger if hasattr(net, "merger") else net.output),
           "total": count_params(net)}
    for name, net in nets.items()})
record("fastsal.params.c", parts.loc["total", "FastSal (C)"], tol=0, note="exact: the paper's 2.57 M")
record("fastsal.params.a", parts.loc["total", "FastSal (A)"], tol=0, note="exact: the paper's 3.65 M")
glue("params_c", int(parts.loc["total", "FastSal (C)"]))
glue("params_a", int(parts.loc["total", "FastSal (A)"]))
parts

# %% [markdown]
# *Table 4.1: parameters of the two networks by part.* FastSal (C) has {glue:text}`params_c:,` parameters and
# FastSal (A) {glue:text}`params_a:,`: the paper's 2.57 M and 3.65 M exactly.
#
# ## 4.2 Table III: parameters and operations
#
# The paper's Table III lists "GFLOPs" at 192 × 256 without saying what it counts. Below, every model of the
# book so far is measured with `torch.utils.flop_counter` (convolutions and matrix products; one
# multiply-accumulate, MAC, is two FLOPs), at 192 × 256 except Pan et al.'s shallow network, whose fully
# connected head fixes its input to 96 × 96.

# %%
t0 = time.perf_counter()
torch.manual_seed(0)
T3 = tuple(S["t3_size"])  # 192 × 256 (the smoke profile measures at a smaller size)
cost_models = {  # name: (builder, input size, paper GFLOPs, paper params in millions)
    "Pan shallow (ch. 1)": (lambda: models.create("pan_shallow"), (96, 96), None, None),
    "ML-Net (ch. 2)": (lambda: models.create("mlnet", input_size=T3), T3, 39.42, 15.45),
    "SalGAN generator": (lambda: models.create("salgan_generator"), T3, 91.46, 31.92),
    "compact (ch. 3)": (lambda: models.create("compact"), T3, None, None),
    "CSNet ×1": (lambda: models.create("csnet_x1"), T3, None, None),
    "FastSal (C)": (lambda: nets["FastSal (C)"], T3, 1.32, 2.57),
    "FastSal (A)": (lambda: nets["FastSal (A)"], T3, 1.32, 3.65),
    "FastSal (A), Lite0 encoder": (lambda: models.create("fastsal_a_lite0", weights=None), T3, None, None),
    "teacher (Lite0 + SalGAN-shaped)": (lambda: models.create("fastsal_teacher"), T3, None, None),
}
if not S["t3_vgg"]:  # the smoke profile skips the two VGG-16 networks (tens of GMACs each)
    cost_models = {k: v for k, v in cost_models.items() if k not in ("ML-Net (ch. 2)", "SalGAN generator")}
rows = {}
for name, (build, size, paper_gflops, paper_m) in cost_models.items():
    net = build()
    f = flops(net, size)
    rows[name] = {"input": f"{size[0]}×{size[1]}", "params (M)": count_params(net) / 1e6, "GMACs": f.gmacs,
                  "GFLOPs (2 × MACs)": f.gflops, "paper GFLOPs": paper_gflops, "paper params (M)": paper_m}
    key = name.split(" (")[0].split(" ×")[0].lower().replace(" ", "_")
    if "fastsal" in name.lower():
        key = "fastsal_" + name[9].lower() + ("_lite0" if "Lite0" in name else "")
    record(f"fastsal.table3.{key}.gmacs", f.gmacs, tol=0, rel=0.001)
table3 = pd.DataFrame(rows).T
macs_c, macs_a = table3.loc["FastSal (C)", "GMACs"], table3.loc["FastSal (A)", "GMACs"]
macs_teacher = table3.loc["teacher (Lite0 + SalGAN-shaped)", "GMACs"]
for k, v in {"macs_c": macs_c, "macs_a": macs_a, "gflops_c": 2 * macs_c, "gflops_a": 2 * macs_a,
             "macs_teacher": macs_teacher, "teacher_over_c": macs_teacher / macs_c,
             "salgan_gflops": table3["GFLOPs (2 × MACs)"].get("SalGAN generator", float("nan"))}.items():
    glue(k, float(v))
print(f"measured in {time.perf_counter() - t0:.0f} s")
table3

# %% [markdown]
# *Table 4.2 (the paper's Table III): parameters, multiply-accumulates and FLOPs (= 2 × MACs) of one
# forward pass, with the paper's figures where it gives them.*
#
# The arithmetic behind the paper's "1.32 GFLOPs": FastSal (C) performs {glue:text}`macs_c:.3f` GMACs at
# 192 × 256, which is {glue:text}`gflops_c:.3f` GFLOPs at two FLOPs per MAC, and FastSal (A)
# {glue:text}`macs_a:.3f` GMACs = {glue:text}`gflops_a:.3f` GFLOPs. Both are just under 1.32: the paper's
# counter evidently counted FLOPs as 2 × MACs and added some element-wise work (batch norm, activations,
# the additions of model A), which `torch.utils.flop_counter` leaves out. SalGAN's 91.46 GFLOPs against our
# {glue:text}`salgan_gflops:.1f` is the same story. The book's teacher costs {glue:text}`macs_teacher:.2f`
# GMACs, {glue:text}`teacher_over_c:.1f` times FastSal (C).
#
# ## 4.3 The teacher
#
# No SalGAN or DeepGaze II weights are available offline, so the book's teacher is trained here
# (`salbook.recipes.fastsal.teacher`, `salbook.models.teacher`): the EfficientNet-Lite0 encoder *with its
# ImageNet weights* — which FastSal's MobileNetV2 students do not get: no MobileNetV2 ImageNet weights ship
# offline — and a SalGAN-shaped decoder whose activations at 1/2, 1/4, 1/8 and 1/16 of the input have SalGAN's
# hint widths 128, 256, 512 and 512, trained with SalGAN's content loss (binary cross-entropy to the fixation map) on
# the labelled generated training split. It is trained once per profile, with seed 0, and cached; chapter 5
# distils from the same network.

# %%
t0 = time.perf_counter()
teacher = R.teacher(profile, device=DEVICE, dataset=dataset, data_root=data_root)
teacher_cfg = R.teacher_config(profile, dataset=dataset, data_root=data_root)
teacher_seconds = float(teacher.history["seconds"].sum())
glue("teacher_train_min", teacher_seconds / 60)
glue("teacher_n_train", int(teacher_cfg.data.n_train or 0))
print(f"teacher {'loaded' if teacher.loaded else 'trained'} in {time.perf_counter() - t0:.0f} s "
      f"(its training took {teacher_seconds:.0f} s)")
teacher.history

# %% [markdown]
# *Table 4.3: the teacher's training, epoch by epoch (binary cross-entropy to the fixation map).*
#
# ## 4.4 Students, data and recipe
#
# The students see a **small** labelled set — the first images of the same generated training split the
# teacher saw — so that what the teacher adds has room to show; the pseudo-label students see, in addition,
# images of the generated dataset's *unlabelled* pool, scored only by the teacher. Every student is trained
# with the official optimiser: SGD with momentum 0.9 and four parameter groups (encoder weights at half the
# learning rate with weight decay 5·10⁻⁴, encoder biases, decoder weights with decay, decoder biases at twice
# the rate without), and the official "reload the best checkpoint and divide the learning rate by ten". The
# official steps come at epochs 15, 30 and 60 of 100, after thousands of SGD steps; the book's runs have a
# few hundred, so they start at a higher rate (0.05) and decay only after epoch(s) {glue:text}`milestones` of
# {glue:text}`student_epochs`: with the steps at 15, 30 and 60 % of a three-epoch run the rate drops after the
# first epoch and the output stays nearly constant (measured while writing the chapter on FastSal (A) with
# ground truth only: test CC 0.01, against 0.39 with the decays at 60 and 80 %). Hint pretraining keeps the
# official rate, 0.01: at the students' 0.05 its summed MSE fell further (to ≈ 26 from ≈ 125, against ≈ 66), but
# FastSal (A)'s full recipe fine-tuned from those encoders to test CC 0.22–0.39 over three seeds, against
# 0.36–0.42 at 0.01 (measured while writing the chapter; on another CPU the same seed-0 run at 0.05 gave 0.43: so
# fragile a start turns rounding differences into a different Table V). Validation (model selection
# and the reloads) uses the official validation loss, binary cross-entropy to the ground truth. The
# pseudo-label students start lower, at {glue:text}`pseudo_lr`: their KL term is summed over pixels, and at
# 0.05 FastSal (A) diverged in its first epoch (a NaN loss, measured while writing the chapter).

# %%
base_c = R.student_config("fastsal_c", profile)
if dataset != "synthetic":
    raise NotImplementedError("chapter 4 runs on the generated data; real-data students need the paper profile's "
                              "unlabelled pool (COCO), which is not wired here")
DATA = base_c.data
hint_cfg = base_c.pretrain
train_set, val_set, test_set = (load_split(DATA, role) for role in ("train", "val", "test"))
shifted_set = R.shifted_test_set(DATA, n=S["n_shifted"])
pseudo_c = R.student_config("fastsal_c_pseudo", profile)
lite0_cfg = R.student_config("fastsal_a_lite0_pseudo", profile)
steps = base_c.epochs * int(np.ceil(len(train_set) / base_c.batch_size))
glue("n_labelled", len(train_set))
glue("n_unlabelled", pseudo_c.n_unlabelled)
glue("n_unlabelled_lite0", lite0_cfg.n_unlabelled)
glue("pseudo_lr", f"{pseudo_c.lr:g}")
glue("student_epochs", base_c.epochs)
milestones = R.scaled_milestones(base_c.epochs, base_c.decay_at)
glue("milestones", ", ".join(map(str, milestones)) or "none")
pd.DataFrame({"this run": [
    f"generated: {len(train_set)} labelled train / {len(val_set)} val / {len(test_set)} test; "
    f"{pseudo_c.n_unlabelled} unlabelled; {len(shifted_set)} shifted-mix test",
    f"{DATA.input_size[0]} × {DATA.input_size[1]} (ground truth {DATA.eval_size[0]} × {DATA.eval_size[1]})",
    f"{hint_cfg.epochs} epochs over the labelled images (labels unused), SGD lr {hint_cfg.lr:g}",
    f"{base_c.epochs} epochs ({steps} steps), batch {base_c.batch_size}, SGD lr {base_c.lr:g}, momentum 0.9, "
    f"reload-best-and-÷10 after epoch(s) {milestones or 'none'}",
    f"{pseudo_c.epochs} epochs over the unlabelled pool, 0.5·KL + 0.3·BCE + 0.2·(1 − cos), SGD lr {pseudo_c.lr:g}",
    f"FastSal (A) on ImageNet Lite0: {lite0_cfg.epochs} epochs over {lite0_cfg.n_unlabelled} unlabelled images, "
    f"the same three losses, Adam lr {lite0_cfg.lr:g} (encoder × {lite0_cfg.encoder_lr_mult:g}), cosine decay",
    "MobileNetV2 random (no ImageNet weights offline); adapters and output "
    + ("He-normal" if base_c.model_kwargs.get("init") == "he" else "N(0, 0.01²) (public code)"),
]}, index=["data", "input", "hint pretraining", "fine-tuning (eq. 2)", "pseudo-labels", "pretrained student",
           "initialisation"])

# %% [markdown]
# *Table 4.4: the recipe this page runs (profile-dependent sizes).*
#
# ## 4.5 Table V: what each part of the distillation adds
#
# The paper's ablation crosses three switches: hint pretraining (**P**), the teacher's maps as a fine-tuning
# target (**T**) and the ground truth (**G**) — its eq. 2 is BCE(σ(z), G) + BCE(σ(z), T). We run its five rows,
# plus the pseudo-label recipe (hint-pretrained encoder, then the teacher's density on the unlabelled pool as
# the only target), on **FastSal (A)**: with the same encoder and a lighter decoder at high resolution it
# trains several times faster than model C on this CPU (measured below), so six trainings fit in the budget. FastSal (C), the paper's
# model for this table, is trained with the full recipe (P + T + G) (its pseudo-label student,
# `student_config("fastsal_c_pseudo")`, is left out of the budget). One more row, **A·Lite0 pseudo-labels**,
# puts model A's decoder on the teacher's ImageNet-pretrained Lite0 encoder and distils it on a larger
# unlabelled pool (its recipe is discussed below the table). All MobileNetV2 rows share the
# seed, the data and the schedule, and every row is scored on the generated test split and on the held-out split with
# a different scene mix (more faces, text and persons, more of them at high contrast, objects less central).

# %%
t0 = time.perf_counter()
rows_v = [(False, True, False), (True, True, False), (False, False, True), (False, True, True), (True, True, True)]
LITE0 = "A·Lite0 pseudo-labels"  # FastSal (A)'s decoder on the ImageNet Lite0 encoder
base_a = R.student_config("fastsal_a", profile)
configs = {}
for pre, tea, gt in rows_v:
    label = f"A  P{'✓' if pre else '✗'} T{'✓' if tea else '✗'} G{'✓' if gt else '✗'}"
    configs[label] = base_a.replace(pretrain=base_a.pretrain if pre else None, use_teacher=tea, use_gt=gt)
configs["A  P✓ pseudo-labels"] = R.student_config("fastsal_a_pseudo", profile)
configs["C  P✓ T✓ G✓"] = base_c
configs[LITE0] = lite0_cfg
if S["t5_rows"]:  # the smoke profile: the full recipe on A and C and the two pseudo-label students only
    configs = {k: v for k, v in configs.items() if k in ("A  P✓ T✓ G✓", "A  P✓ pseudo-labels", "C  P✓ T✓ G✓", LITE0)}
# Each student is read out as the official code reads it: `predict` applies σ to the logits, except for a
# student trained on probability pseudo-labels (`use_probability_gt`), whose map is softmax(z) over the pixels
READOUT = {label: fastsal_density_postprocess if cfg.mode == "pseudo" else fastsal_postprocess
           for label, cfg in configs.items()}
runs = {}
for label, cfg in configs.items():
    runs[label] = R.train_student(cfg, seed=seed, device=DEVICE, teacher_model=teacher)
    r = runs[label]
    print(f"{label}: {'loaded' if r.loaded else 'trained'} (best epoch {r.best_epoch}, "
          f"{float(r.history['seconds'].sum()):.0f} s of training)")
students_seconds = time.perf_counter() - t0
c_over_a = float(runs["C  P✓ T✓ G✓"].history["seconds"].sum() / runs["A  P✓ T✓ G✓"].history["seconds"].sum())
glue("c_over_a_train", c_over_a)
print(f"students ready in {students_seconds:.0f} s; the full recipe took {c_over_a:.1f}× longer to train on C than on A")

# %%
t0 = time.perf_counter()
METRICS = ("cc", "nss")
EVAL = dict(device=DEVICE, seed=EVAL_SEED, n_shuffle_images=S["n_shuffle"], n_splits=S["n_splits"], progress=False)
center_bias = CenterBias.fit(train_set, progress=False)
ev = {"test": {}, "shifted": {}}
for split, data in (("test", test_set), ("shifted", shifted_set)):
    ev[split]["centre bias"] = evaluate(center_bias, data, METRICS, **EVAL)
    ev[split]["teacher"] = evaluate(teacher, data, METRICS, postprocess=fastsal_postprocess, **EVAL)
    for label, r in runs.items():
        ev[split][label] = evaluate(r.model, data, METRICS, postprocess=READOUT[label], **EVAL)
print(f"scored in {time.perf_counter() - t0:.0f} s")


def row_of(label: str, split: str) -> dict:
    s = ev[split][label].summary
    return {f"{split} {m.upper()}": f"{s.loc[m, 'mean']:.3f} [{s.loc[m, 'ci_low']:.3f}, {s.loc[m, 'ci_high']:.3f}]"
            for m in METRICS}


table5 = pd.DataFrame({label: {**row_of(label, "test"), **row_of(label, "shifted")}
                       for label in ["centre bias", *runs, "teacher"]}).T
TOL = 0.05  # CC; NSS gets 4 × TOL (short CPU schedules: see the tolerance note in 4.8)
KEYS = {"centre bias": "center_bias", "teacher": "teacher", LITE0: "a_lite0_pseudo"}


def key_of(label: str) -> str:
    """The record key of a Table V row: "A  P✓ T✗ G✓" → "ap1t0g1"."""
    return KEYS.get(label) or label.replace(" ", "").replace("✓", "1").replace("✗", "0").replace("-", "_").lower()


for split in ("test", "shifted"):
    for label, e in ev[split].items():
        key = key_of(label)
        for m in METRICS:
            record(f"fastsal.{key}.{split}.{m}", e.mean()[m], tol=TOL * (4 if m == "nss" else 1),
                   config=configs.get(label))
table5

# %% [markdown]
# *Table 4.5 (the paper's Table V): CC and NSS with 95 % Student-t intervals over images on the generated test
# split and on the held-out split with a different scene mix. P: hint-pretrained encoder; T: the teacher's maps
# as a target; G: the ground truth; "pseudo-labels": the teacher's density on the unlabelled pool.*

# %%
vs_cb = {label: paired_difference(ev["test"][label], ev["test"]["centre bias"]) for label in [*runs, "teacher"]}
verdicts = pd.DataFrame({label: {f"Δ{m.upper()} vs centre bias [95 %]":
                                 f"{d.loc[m, 'mean difference']:+.3f} [{d.loc[m, 'ci_low']:+.3f}, {d.loc[m, 'ci_high']:+.3f}]"
                                 for m in METRICS} | {"verdict (CC)": d.loc["cc", "verdict"],
                                                      "verdict (NSS)": d.loc["nss", "verdict"]}
                         for label, d in vs_cb.items()}).T
not_beating = [label for label, d in vs_cb.items() if (d["verdict"] != "beats").any()]
display(verdicts)
display(Markdown(
    "**Every model beats the centre bias on the generated test split**, with both per-image intervals above zero."
    if not not_beating else
    f"**Not every model beats the centre bias on the test split**: {', '.join(not_beating)} "
    "do(es) not have both intervals above zero."))

# %% [markdown]
# *Table 4.6: per-image differences model − centre bias on the test split, with paired 95 % intervals;
# "beats" when the whole interval is above zero.*

# %%
distilled = {label: ev["test"][label].mean()["cc"] for label in runs}
student_macs = {label: flops(r.model, T3).gmacs for label, r in runs.items()}  # at Table 4.2's size, as the teacher's
cc_teacher = ev["test"]["teacher"].mean()["cc"]
small = {label: cc for label, cc in distilled.items() if macs_teacher / student_macs[label] >= 10}
best_label = max(small, key=small.get)  # the best student at a tenth of the teacher's MACs or less
best_mnv2 = max((label for label in distilled if label != LITE0), key=distilled.get)
gap, gap_mnv2 = cc_teacher - distilled[best_label], cc_teacher - distilled[best_mnv2]
ratio = macs_teacher / student_macs[best_label]
ref_label = "A  P✗ T✗ G✓" if "A  P✗ T✗ G✓" in runs else "A  P✓ pseudo-labels"  # the smoke profile lacks the first
d_full = paired_difference(ev["test"]["A  P✓ T✓ G✓"], ev["test"][ref_label])
record("fastsal.teacher_minus_best_student.test.cc", gap, tol=TOL)
record("fastsal.teacher_minus_best_mobilenet_student.test.cc", gap_mnv2, tol=TOL)
record("fastsal.full_minus_gt_only.test.cc", d_full.loc["cc", "mean difference"], tol=TOL)
for k, v in {"best_student": best_label.strip(), "best_student_cc": distilled[best_label], "teacher_cc": cc_teacher,
             "teacher_gap": gap, "teacher_mac_ratio": ratio, "best_mnv2": best_mnv2.strip(),
             "best_mnv2_cc": distilled[best_mnv2], "gap_mnv2": gap_mnv2, "lite0_macs": student_macs[LITE0],
             "full_vs_gt_cc": d_full.loc["cc", "mean difference"], "full_vs_gt_lo": d_full.loc["cc", "ci_low"],
             "full_vs_gt_hi": d_full.loc["cc", "ci_high"], "full_vs_gt_verdict": d_full.loc["cc", "verdict"]}.items():
    glue(k, v)
glue("ref_label", ref_label.strip())
d_lite0 = {split: paired_difference(ev[split][LITE0], ev[split]["teacher"]) for split in ("test", "shifted")}
for split, d in d_lite0.items():
    glue(f"lite0_vs_teacher_{split}", d.loc["cc", "mean difference"])
    glue(f"lite0_vs_teacher_{split}_lo", d.loc["cc", "ci_low"])
    glue(f"lite0_vs_teacher_{split}_hi", d.loc["cc", "ci_high"])
    glue(f"lite0_vs_teacher_{split}_verdict", d.loc["cc", "verdict"])
    record(f"fastsal.a_lite0_pseudo_minus_teacher.{split}.cc", d.loc["cc", "mean difference"], tol=TOL)
display(Markdown(
    f"The best distilled student at a tenth of the teacher's MACs or less, **{best_label.strip()}**, reaches CC "
    f"{distilled[best_label]:.3f} against the teacher's {cc_teacher:.3f} (gap {gap:+.3f}) at 1/{ratio:.1f} of its "
    f"MACs: the target (gap ≤ 0.05 at ≤ 1/10 of the MACs) is **{'met' if gap <= 0.05 else 'missed'}**. The best "
    f"student on FastSal's own random MobileNetV2, **{best_mnv2.strip()}**, reaches {distilled[best_mnv2]:.3f} "
    f"(gap {gap_mnv2:+.3f})."))

# %% [markdown]
# The Lite0 student against its teacher, image by image: CC {glue:text}`lite0_vs_teacher_test:+.3f` on the
# test split (paired 95 % interval {glue:text}`lite0_vs_teacher_test_lo:+.3f` to
# {glue:text}`lite0_vs_teacher_test_hi:+.3f`: it {glue:text}`lite0_vs_teacher_test_verdict` the teacher) and
# {glue:text}`lite0_vs_teacher_shifted:+.3f` on the shifted split ({glue:text}`lite0_vs_teacher_shifted_lo:+.3f`
# to {glue:text}`lite0_vs_teacher_shifted_hi:+.3f`: it {glue:text}`lite0_vs_teacher_shifted_verdict`). A
# student can match or pass its teacher when it learns from more images than the teacher did: the teacher saw
# {glue:text}`teacher_n_train` labelled images, the Lite0 student {glue:text}`n_unlabelled_lite0` others
# through the teacher's soft maps, from the same ImageNet start — self-training's effect
# {cite}`xie2020noisystudent`, and distillation into a network of the teacher's own family can improve on
# the teacher even without new images {cite}`furlanello2018born`.
#
# Two things separate the students from the teacher here, and the table measures both. The first is
# **pretraining**: the teacher reads ImageNet features, FastSal's MobileNetV2 starts from random weights. The
# row A·Lite0 pseudo-labels puts FastSal (A)'s decoder on the teacher's own ImageNet EfficientNet-Lite0
# (`fastsal_a_lite0`, {glue:text}`lite0_macs:.3f` GMACs at 192 × 256, still under a tenth of the teacher's) and
# distils it on {glue:text}`n_unlabelled_lite0` unlabelled images: the paper's students started from ImageNet
# weights too, so this is the closer analogue of its setting. It is trained with the teacher's optimiser
# (Adam, the pretrained encoder at a tenth of the rate): with the official SGD groups at 0.01 it reached test
# CC 0.541 (measured while writing the chapter, same pool, epochs and seed) against
# {glue:text}`lite0_cc:.3f` with Adam in this run. The
# same student started from the *teacher's* encoder — the same Lite0, already fine-tuned for saliency, copied
# tensor for tensor (`student_config("fastsal_a_lite0_teacher_pseudo")`, `encoder_init="teacher"`) — reached
# test CC 0.591 (0.557 through σ) after two epochs on the same pool, the same as from ImageNet: the encoder
# is not what it lacks (measured while writing the chapter; left out of the budget). The second is the
# **read-out**: the pseudo-label loss fits softmax(z) to the teacher's density with 0.7 of its weight (KL and
# cosine) and σ(z) with 0.3 (BCE). The official code reads a student trained on probability pseudo-labels as
# softmax(z) (its `predict` skips the sigmoid for them), and so does every table above; the table below scores
# the two pseudo-label students through σ(z) as well.
#
# **A bug this chapter had, and how it showed.** Until this version of the chapter the Lite0 student stopped
# at test CC 0.518, 0.058 under the teacher, and nothing that should have mattered moved it (each measured,
# same seed unless marked): five epochs instead of three, 0.496; one epoch over 6,000 images, 0.514; the KL
# term alone, 0.525; seeds 1 and 2, 0.511 and 0.510; the teacher's own encoder as its start, 0.518. Its
# training loss gave the cause away: after three epochs it stood at 0.298 and 0.301 (seeds 1 and 2), and five
# epochs took it only to 0.268. The students' augmentation, `salbook.data.hflip_batch`, mirrors a random half of
# each batch — the image and the dataset's own maps — but the teacher's map is a key that `TeacherTargets`
# adds to each sample afterwards, and it was left as it was: half of every batch asked the student for the
# teacher's map *of the mirrored image*, a target no network can fit. Chapter 5's recipe had mirrored its
# teacher densities from the start, with a private copy of the flip; both recipes now share
# `salbook.distillation.hflip_with_teacher`, tested to keep each teacher map with its image, and every student
# that learns from the teacher's maps (the T✓ rows and both pseudo-label students above, Table IV's rows below)
# was retrained with it. The Lite0 student's training loss now ends at {glue:text}`lite0_train_loss:.3f` and its test CC is
# {glue:text}`lite0_cc:.3f` in this run. The students trained on the ground truth alone (T✗) did not change.

# %%
readout = {}
for label in [l for l in runs if configs[l].mode == "pseudo"]:
    sig = evaluate(runs[label].model, test_set, ("cc",), postprocess=fastsal_postprocess, **EVAL)
    readout[label] = {"softmax(z) (official)": ev["test"][label].mean()["cc"], "σ(z)": sig.mean()["cc"]}
    record(f"fastsal.{key_of(label)}.test.cc_sigmoid_readout", sig.mean()["cc"], tol=TOL)
readout = pd.DataFrame(readout).T
readout["teacher − student (softmax)"] = cc_teacher - readout["softmax(z) (official)"]
readout["teacher − student (σ)"] = cc_teacher - readout["σ(z)"]
glue("lite0_gap_sigmoid", float(readout.loc[LITE0, "teacher − student (σ)"]))
glue("lite0_cc", float(readout.loc[LITE0, "softmax(z) (official)"]))
glue("lite0_train_loss", float(runs[LITE0].history.set_index("epoch").loc[runs[LITE0].best_epoch, "train_loss"]))
readout.round(3)

# %% [markdown]
# *Table 4.6b: test CC of the two pseudo-label students read out through softmax(z), the density their KL
# term fits and the official code's read-out for them, and through σ(z), the read-out of the students trained
# on maps; and their gap to the teacher (read out through σ, as it was trained).* Through σ(z) the Lite0
# student's gap to the teacher would be {glue:text}`lite0_gap_sigmoid:+.3f`.

# %% [markdown]
# The full recipe (P + T + G) against {glue:text}`ref_label` (ground truth alone) changes model A's test CC by
# {glue:text}`full_vs_gt_cc:+.3f` (paired 95 % interval {glue:text}`full_vs_gt_lo:+.3f` to
# {glue:text}`full_vs_gt_hi:+.3f`: it {glue:text}`full_vs_gt_verdict` it), with
# {glue:text}`n_labelled` labelled images; the best MobileNetV2 row of this run is {glue:text}`best_mnv2`. The
# paper's Table V finds all three together best, with differences of a few thousandths of CC on SALICON's 10,000
# images.

# %%
show = list(range(4))
grid = [[test_set[i]["image"] for i in show], [test_set[i]["fixation_map"] for i in show],
        finished_maps(teacher, test_set, fastsal_postprocess, DEVICE, indices=show),
        finished_maps(runs[best_label].model, test_set, READOUT[best_label], DEVICE, indices=show),
        finished_maps(runs[ref_label].model, test_set, READOUT[ref_label], DEVICE, indices=show)]
fig = plots.image_map_grid(grid, row_labels=["image", "fixation map", "teacher", best_label.strip(), ref_label.strip()],
                           title="Figure 4.1: test images, the teacher and two students")
plt.show()

# %% [markdown]
# *Figure 4.1: four test images (columns); rows: the image, its blurred fixation map, the teacher's map, the
# best distilled student's and the ground-truth-only student's, each post-processed as the official
# evaluation does (sigmoid, or softmax over the pixels for a pseudo-label student; min-max, 5 × 5 OpenCV blur)
# and resized to the ground truth.*
#
# ## 4.6 Table IV: MobileNetV2 or EfficientNet-Lite0, and what pretraining does
#
# The paper compares MobileNetV2 and EfficientNet-B0 as encoders under a six-layer decoder whose widths match
# SalGAN's, trained with the hint loss, and finds MobileNetV2 better. Its encoders were both
# ImageNet-pretrained; ours cannot all be, so the table separates architecture from pretraining: the
# teacher's own architecture (Lite0 + SalGAN-shaped decoder) with Lite0 pretrained, the same with Lite0
# random, and with a random MobileNetV2 (and a pretrained MobileNetV2 when `mobilenet_v2_weights` names a
# local file). Each is trained with the hint loss added to eq. 2 (P in one stage), with the students'
# schedule shortened to {glue:text}`t4_epochs` epoch(s); the hint loss is then measured on test images against
# the teacher. The hint term is weighted by {glue:text}`t4_hint_weight`: the summed MSE of the four activations
# starts near 140 against about 0.5 for eq. 2's cross-entropy, and at weight 1 the Lite0 row diverged at the
# students' learning rate (a NaN loss in the first epoch) and reached test CC 0.14 after one epoch at 0.02
# (measured while writing the chapter); at 0.01 the two terms start comparable.

# %%
t0 = time.perf_counter()
t4_cfg = {
    "Lite0, ImageNet": dict(backbone="efficientnet_lite0", weights="imagenet"),
    "Lite0, random": dict(backbone="efficientnet_lite0", weights=None),
    "MobileNetV2, random": dict(backbone="mobilenet_v2", weights=None),
}
if S["t4_rows"]:
    t4_cfg = dict(list(t4_cfg.items())[:S["t4_rows"]])
if mobilenet_v2_weights:
    t4_cfg["MobileNetV2, ImageNet (local file)"] = dict(backbone="mobilenet_v2", weights=str(mobilenet_v2_weights))
T4_HINT_WEIGHT = 0.01
glue("t4_epochs", S["t4_epochs"])
glue("t4_hint_weight", f"{T4_HINT_WEIGHT:g}")
t4_configs = {label: base_c.replace(model="salgan_shaped", model_kwargs=kw, pretrain=None, hint_weight=T4_HINT_WEIGHT,
                                     epochs=S["t4_epochs"]) for label, kw in t4_cfg.items()}
t4_runs = {label: R.train_student(cfg, seed=seed, device=DEVICE, teacher_model=teacher)
           for label, cfg in t4_configs.items()}
hint_images = torch.stack([test_set[i]["image"] for i in range(min(S["hint_images"], len(test_set)))]).to(DEVICE)
rows4 = {}
with torch.no_grad():
    teacher_hints = teacher.hints(hint_images)
    for label, r in t4_runs.items():
        e = evaluate(r.model, test_set, METRICS, postprocess=fastsal_postprocess, **EVAL)
        s = e.summary
        h = float(hint_loss(r.model.to(DEVICE).hints(hint_images), teacher_hints))
        rows4[label] = {**{m.upper(): f"{s.loc[m, 'mean']:.3f} [{s.loc[m, 'ci_low']:.3f}, {s.loc[m, 'ci_high']:.3f}]"
                           for m in METRICS}, "hint loss (test)": h, "GMACs (192×256)": flops(r.model, (192, 256)).gmacs}
        key = label.split(" (")[0].replace(", ", "_").replace(" ", "_").lower()
        record(f"fastsal.table4.{key}.test.cc", s.loc["cc", "mean"], tol=TOL, config=t4_configs[label])
        record(f"fastsal.table4.{key}.test.hint_loss", h, tol=0, rel=0.5)
table4 = pd.DataFrame(rows4).T
print(f"Table IV in {time.perf_counter() - t0:.0f} s")
table4

# %% [markdown]
# *Table 4.7 (the paper's Table IV): the SalGAN-shaped decoder on three encoders, trained with the hint loss
# and eq. 2 on the labelled set: test CC and NSS with 95 % intervals, the summed hint MSE against the teacher
# on test images, and the cost.* The paper's two rows (both encoders ImageNet-pretrained): EfficientNet-B0
# NSS 1.762, CC 0.858, hint loss 0.0617; MobileNetV2 NSS 1.816, CC 0.875, hint loss 0.0526.

# %%
cc4 = {label: float(table4.loc[label, "CC"].split()[0]) for label in table4.index}
glue("t4_lite0_pre_cc", cc4.get("Lite0, ImageNet", float("nan")))
glue("t4_lite0_rand_cc", cc4.get("Lite0, random", float("nan")))
glue("t4_mnv2_rand_cc", cc4.get("MobileNetV2, random", float("nan")))

# %% [markdown]
# With the same decoder and schedule, ImageNet pretraining is worth CC {glue:text}`t4_lite0_pre_cc:.3f` against
# {glue:text}`t4_lite0_rand_cc:.3f` for the same Lite0 from random weights; between the two random encoders
# (Lite0 {glue:text}`t4_lite0_rand_cc:.3f`, MobileNetV2 {glue:text}`t4_mnv2_rand_cc:.3f`) the architecture alone
# decides. The paper's comparison mixes both effects only in so far as its two checkpoints were pretrained
# differently well.
#
# ## 4.7 Speed
#
# The paper times FastSal (A) at more than 35 frames per second on a 6-core Intel i7-6850K CPU and about 300 on
# a GTX 1080 Ti, at 192 × 256 and batch 1. Here: this machine's CPU, with one and two threads, batch 1,
# median and inter-quartile range over repeated runs, for FastSal (A), FastSal (C) and MobileNetV2's
# `features` alone measured in the same run (the floor: both models run it whole). Then the same networks
# made faster step by step with `salbook.inference`: eval-mode batch norm folded into the convolutions,
# channels-last memory format, a traced and frozen TorchScript module, and the exported ONNX graph in two
# runtimes: ONNX Runtime, as exported (`onnxruntime`) and with its PixelShuffles rewritten as the equal
# grouped transposed convolutions (`onnxruntime_convt`, `depth_to_space_as_conv_transpose`; why, below), and
# OpenVINO (`openvino`, f32). Weights do not change the timing; the models are the trained ones.

# %%
t0 = time.perf_counter()
A, C, FLOOR = "FastSal (A)", "FastSal (C)", "MobileNetV2 features"
speed_nets = {A: runs["A  P✓ T✓ G✓"].model, C: runs["C  P✓ T✓ G✓"].model, FLOOR: R.mobilenet_v2_features()}
speed_nets = {k: v.to(memory_format=torch.contiguous_format) for k, v in speed_nets.items()}
SPEED_SIZE = tuple(S["speed_size"])  # 192 × 256 (the smoke profile: smaller, and fewer paths)
EVERY_PATH = [p for p in ALL_INFERENCE_PATHS if p != "compiled"]  # compiling costs minutes here; chapter 6 has it
speed = pd.concat([
    speed_table({A: speed_nets[A]}, SPEED_SIZE, threads=S["speed_threads"], paths=S["speed_paths_a"] or EVERY_PATH,
                runs=S["speed_runs"]),
    # FastSal (C) takes 70–330 ms a pass: half the passes still give a steady median
    speed_table({C: speed_nets[C]}, SPEED_SIZE, threads=S["speed_threads"], paths=S["speed_paths"] or EVERY_PATH,
                runs=S["speed_runs_c"]),
    speed_table({FLOOR: speed_nets[FLOOR]}, SPEED_SIZE, threads=S["speed_threads"],
                paths=S["speed_paths"] or EVERY_PATH, runs=S["speed_runs"])], ignore_index=True)
peak = {t: matmul_peak_gflops(threads=t) for t in S["speed_threads"]}
speed["% of matmul peak"] = [100 * g / peak[t]["gflops_median"] for g, t in zip(speed.gflops_per_s, speed.threads)]
print(f"measured in {time.perf_counter() - t0:.0f} s")
speed.drop(columns=["q1_ms", "q3_ms"]).round(3)

# %% [markdown]
# *Table 4.8: CPU latency at 192 × 256, batch 1 (median and IQR in ms), frames per second, speed-up over eager
# PyTorch with the same threads, the largest output difference from eager PyTorch, milliseconds per GMAC, the
# convolution GFLOP/s sustained and their share of this CPU's measured dense-matmul peak (the faster of PyTorch's
# and NumPy's BLAS). FastSal (A) through every path; FastSal (C) and the features eager and through the three ONNX
# runtimes (in the `book` profile: their PyTorch paths took a third of the section's time and decided nothing).
# FastSal (C) is timed over half as many passes: at 70–330 ms a pass, its runs took two thirds of this table's time.*

# %%
a_rows = speed[speed.model == A]
eager_a1 = a_rows[(a_rows.path == "eager") & (a_rows.threads == 1)].iloc[0]
# A and the features alone timed again *interleaved* (timed one after the other, the per-MAC comparison flipped
# between two runs of the chapter) through each of the three ONNX runtimes, the fastest paths of the table, at
# each thread count; the (runtime, threads) whose re-timed A is fastest gives the verdicts (the table's single
# burst of runs once ranked one thread above two on a slow spell of the machine). `interleaved_latency` keeps
# ONNX Runtime's idle threads asleep: with several sessions timed in turn on two cores, the spinning threads of
# one took the cores from the other. The fps verdict reads the fastest round (the median of its runs): this is a
# shared virtual machine whose slow spells, seconds to minutes long, raise every model's time in a round together
# (timeit's argument for the minimum); the median over all passes and the rounds' range are shown beside it.
gmacs_of = speed.groupby("model")["gmacs"].first()
retimed = {}  # (threads, runtime) → the pair's interleaved timing
for threads in S["speed_threads"]:
    pair = interleaved_latency({k: speed_nets[k] for k in (A, FLOOR)}, torch.rand(1, 3, *SPEED_SIZE), ONNX_PATHS,
                               threads=int(threads), rounds=S["pair_rounds"], runs=S["speed_runs"])
    for path, rows in pair.groupby("path", sort=False):
        # each round timed A and the features within moments of each other: one paired per-GMAC ratio per round
        paired = round_ratios(rows, A, FLOOR, scale=gmacs_of[FLOOR] / gmacs_of[A])
        rows = rows.set_index("model")
        a_gmac, f_gmac = rows.loc[A, "median_ms"] / gmacs_of[A], rows.loc[FLOOR, "median_ms"] / gmacs_of[FLOOR]
        retimed[(int(threads), path)] = {
            "rounds ms": list(rows.loc[A, "round_ms"]), "IQR ms": float(rows.loc[A, "iqr_ms"]),
            "fastest round ms": min(rows.loc[A, "round_ms"]), "median ms": float(rows.loc[A, "median_ms"]),
            "features median ms": float(rows.loc[FLOOR, "median_ms"]), "ms / GMAC": a_gmac,
            "features ms / GMAC": f_gmac, "A / features per GMAC (all passes)": a_gmac / f_gmac,
            "paired ratios": list(paired), "A / features per GMAC (paired, median)": float(np.median(paired)),
            "paired q1": float(np.percentile(paired, 25)), "paired q3": float(np.percentile(paired, 75)),
            "rounds A no worse": int((paired <= 1).sum()),
            "max |Δ| vs eager": float(rows.loc[A, "max_abs_diff"])}
best_threads, best_path = min(retimed, key=lambda k: retimed[k]["fastest round ms"])
best = retimed[(best_threads, best_path)]
a_ms, a_ms_all, a_rounds = best["fastest round ms"], best["median ms"], best["rounds ms"]
a_per_gmac, floor_per_gmac = best["ms / GMAC"], best["features ms / GMAC"]
a_fps = 1e3 / a_ms
a_gflops = 2 * gmacs_of[A] / (a_ms / 1e3)
peak_gflops = peak[best_threads]["gflops_median"]
a_peak_share = 100 * a_gflops / peak_gflops
glue("pair_rounds", S["pair_rounds"])
for k, v in {"a_best_fps": a_fps, "a_best_path": best_path, "a_best_threads": best_threads,
             "a_best_ms": a_ms, "a_best_iqr": best["IQR ms"], "a_eager1_fps": eager_a1.fps,
             "a_ms_per_gmac": a_per_gmac, "floor_ms_per_gmac": floor_per_gmac,
             "a_gflops": a_gflops, "peak_gflops": peak_gflops, "a_peak_share": a_peak_share}.items():
    glue(k, v if isinstance(v, str) else float(v))
record("fastsal.speed.a.best_fps", a_fps, tol=0, rel=1.0, note="machine-dependent")
record("fastsal.speed.a.all_passes_fps", 1e3 / a_ms_all, tol=0, rel=1.0, note="machine-dependent")
record("fastsal.speed.a.eager_1thread_fps", eager_a1.fps, tol=0, rel=1.0, note="machine-dependent")
record("fastsal.speed.matmul_peak_gflops", peak_gflops, tol=0, rel=1.0, note="machine-dependent")
per_mac = best["A / features per GMAC (paired, median)"]
per_mac_ok = per_mac <= 1
record("fastsal.speed.a_over_features_ms_per_gmac", per_mac, tol=0, rel=1.0,
       note="machine-dependent")
passes = S["pair_rounds"] * S["speed_runs"]
retimed_table = pd.DataFrame({f"{t} thread(s), {p}": {k: v for k, v in r.items()
                                                        if k not in ("rounds ms", "paired ratios")}
                              for (t, p), r in retimed.items()}).T
display(retimed_table.round(3))


def retimed_value(threads: int, path: str, key: str) -> float:
    """One number of the re-timing (NaN where the profile did not time that thread count)."""
    return retimed[(threads, path)][key] if (threads, path) in retimed else float("nan")


for path in ONNX_PATHS:
    for t in (1, 2):
        glue(f"a_over_features_per_gmac_{path}_{t}", retimed_value(t, path, "A / features per GMAC (paired, median)"))
glue("a_two_thread_scaling", retimed_value(1, best_path, "median ms") / retimed_value(2, best_path, "median ms"))
glue("features_two_thread_scaling",
     retimed_value(1, best_path, "features median ms") / retimed_value(2, best_path, "features median ms"))
for t in (1, 2):
    glue(f"convt_speedup_{t}",
         retimed_value(t, "onnxruntime", "median ms") / retimed_value(t, "onnxruntime_convt", "median ms"))
per_path = ", ".join(f"{p} with {t} thread(s) {r['fastest round ms']:.1f} ms" for (t, p), r in retimed.items())
display(Markdown(
    f"Timed again interleaved with MobileNetV2's features alone through each ONNX runtime at each thread count "
    f"({S['pair_rounds']} rounds of {S['speed_runs']} passes; fastest rounds: {per_path}), FastSal (A) is fastest "
    f"through **{best_path}** with {best_threads} thread(s): **{a_fps:.1f} fps** in its fastest round "
    f"({a_ms:.1f} ms, the median of that round's passes). The round medians ranged {min(a_rounds):.1f}–"
    f"{max(a_rounds):.1f} ms and the median of all {passes} passes is {a_ms_all:.1f} ms ({1e3 / a_ms_all:.1f} fps, "
    f"IQR {best['IQR ms']:.1f} ms): this machine is shared, and its slow spells slow whole rounds. The 60 fps target is "
    f"**{'met' if a_fps >= 60 else 'missed'}**. In that runtime and run its time per GMAC is {a_per_gmac:.1f} ms "
    f"against {floor_per_gmac:.1f} ms for the features (medians of all passes). Each round timed the two within "
    f"moments of each other, so each round gives one paired ratio of their times per GMAC: their median is "
    f"**{per_mac:.3f}×** (quartiles {best['paired q1']:.3f}–{best['paired q3']:.3f}; FastSal (A) no worse per MAC in "
    f"{best['rounds A no worse']} of {S['pair_rounds']} rounds): **{'no worse' if per_mac_ok else 'worse'}**. "
    f"It sustains {a_gflops:.1f} GFLOP/s, {a_peak_share:.0f} % of "
    f"the {peak_gflops:.1f} GFLOP/s this CPU reaches on a dense 1024 × 1024 matrix product with {best_threads} "
    f"thread(s) (the faster BLAS of PyTorch's and NumPy's: "
    + ", ".join(f"{lib} {g:.1f}" for lib, g in peak[best_threads]["by_library"].items()) + " GFLOP/s)."))
# Where ONNX Runtime's time goes in FastSal (A), as exported and with the PixelShuffles rewritten (Table 4.8c)
profile_threads = max(S["speed_threads"])
x_speed = torch.rand(1, 3, *SPEED_SIZE)
with tempfile.TemporaryDirectory(prefix="fastsal-onnx-") as tmp:
    a_onnx = export_onnx(speed_nets[A], x_speed, Path(tmp) / "fastsal_a.onnx", dynamic_batch=False)
    variants = {"as exported": a_onnx, "PixelShuffle as ConvTranspose": depth_to_space_as_conv_transpose(a_onnx)}
    # three profiles of each, alternating; each column is the quietest (smallest total) of its three, so a slow
    # spell of the machine during one profile does not pass for a difference between the graphs
    profiles = {k: [] for k in variants}
    for _ in range(3):
        for k, f in variants.items():
            profiles[k].append(onnxruntime_op_times(f, x_speed, threads=profile_threads, runs=S["speed_runs"]))
    op_times = pd.DataFrame({k: min(v, key=lambda t: t.sum()) for k, v in profiles.items()}).fillna(0.0)
op_times.loc["total"] = op_times.sum()
reorders = [op for op in ("ReorderInput", "ReorderOutput") if op in op_times.index]
for col, key in (("as exported", "exported"), ("PixelShuffle as ConvTranspose", "convt")):
    glue(f"prof_{key}_total", float(op_times.loc["total", col]))
    glue(f"prof_{key}_reorder", float(op_times.loc[reorders, col].sum()))
glue("prof_d2s", float(op_times.loc["DepthToSpace", "as exported"]) if "DepthToSpace" in op_times.index else 0.0)
glue("prof_convt", float(op_times.loc["ConvTranspose", "PixelShuffle as ConvTranspose"])
     if "ConvTranspose" in op_times.index else 0.0)
glue("prof_threads", profile_threads)
display(op_times.round(3))
if torch.cuda.is_available():
    from salbook.cost import latency
    gpu = {name: latency(net, (192, 256), device="cuda", runs=S["speed_runs"]) for name, net in speed_nets.items()}
    display(pd.DataFrame({name: {"median ms": l.median_ms, "IQR ms": l.iqr_ms, "fps": l.images_per_s}
                          for name, l in gpu.items()}).T)

# %% [markdown]
# *Table 4.8b: the interleaved re-timing per thread count and ONNX runtime (ONNX Runtime's idle threads
# asleep): FastSal (A)'s fastest round and median over all passes, the features' median, milliseconds per GMAC for
# both and their ratio from the medians of all passes; the median and quartiles of the per-round paired ratios
# (below 1: FastSal (A) is cheaper per MAC) and in how many rounds A was no worse; and A's largest output
# difference from eager PyTorch. Table 4.8c: ONNX Runtime's profiler on FastSal (A)
# ({glue:text}`prof_threads` threads), milliseconds per run by operator type, as exported and with the
# PixelShuffles rewritten (each the quietest of three alternating profiles).*
#
# As exported, ONNX Runtime runs FastSal (A) at {glue:text}`a_over_features_per_gmac_onnxruntime_1:.2f` times the
# features' time per MAC with one thread and {glue:text}`a_over_features_per_gmac_onnxruntime_2:.2f` times with
# two. Its profile says why: {glue:text}`prof_d2s:.2f` ms of a {glue:text}`prof_exported_total:.1f` ms run go to the
# eight PixelShuffles (`DepthToSpace`, no MACs at all), which ONNX Runtime's CPU provider runs as a generic
# six-dimensional transpose on one thread, and {glue:text}`prof_exported_reorder:.2f` ms to the reorders between
# its blocked `NCHWc` layout and plain NCHW, which `DepthToSpace` needs on both sides. A PixelShuffle with factor
# *r* is exactly a transposed convolution with kernel and stride *r*, one group per output channel and one-hot
# weights (`depth_to_space_as_conv_transpose`; the outputs are bit-for-bit the same, tested). ONNX Runtime runs
# those as small matrix products: {glue:text}`prof_convt:.2f` ms for all eight, and the run takes
# {glue:text}`prof_convt_total:.1f` ms in the profile. Timed (Table 4.8b), the rewrite makes FastSal (A)
# {glue:text}`convt_speedup_1:.2f`× faster with one thread and {glue:text}`convt_speedup_2:.2f`× with two, and its
# time per MAC {glue:text}`a_over_features_per_gmac_onnxruntime_convt_1:.2f` and
# {glue:text}`a_over_features_per_gmac_onnxruntime_convt_2:.2f` times the features'. OpenVINO needs no rewrite
# (with it, FastSal (A) ran *slower* there, measured while writing): its CPU plugin runs `DepthToSpace` as a
# compiled permutation inside the channel-blocked layouts its convolutions use, and there FastSal (A) costs
# {glue:text}`a_over_features_per_gmac_openvino_1:.2f` and {glue:text}`a_over_features_per_gmac_openvino_2:.2f`
# times the features' time per MAC (one and two threads). Once the shuffles are cheap, the decoder's big
# convolutions (the 512-channel block at 12 × 16: two 1 × 1 convolutions of 100 million MACs each) run at a
# better rate per MAC than the encoder's depthwise layers (ONNX Runtime's per-node profile, measured while
# writing), and that is what brings FastSal (A) level with or below the features per MAC. From
# one thread to two, FastSal (A) speeds up {glue:text}`a_two_thread_scaling:.2f`× and the features alone
# {glue:text}`features_two_thread_scaling:.2f`× (in the fastest runtime).
#
# How A compares per MAC depends on the CPU. Runs of this chapter while it was written measured the ratio through
# OpenVINO at 0.87–0.92 on an AMD EPYC and on one Intel Xeon host (from all-pass medians, before the paired rounds),
# and mostly at 0.99–1.03 (once 0.89) on another Intel Xeon host whose matrix peak was half again as high (320–335
# against 170–210 GFLOP/s): there OpenVINO runs MobileNetV2's encoder about as efficiently per MAC as the decoder's
# wide 1 × 1 convolutions, which already run near that peak, and the decoder's eight shuffles, five concatenations
# and small full-resolution layers (about 0.8 ms of a 6.4 ms run in OpenVINO's per-node profile) tip the balance.
# Two exact rewrites of the graph did not help there: each adapter split over the pieces of its block, which
# removes the concatenations (paired ratio 1.05), and the last 3 × 3 convolution moved before the last shuffle
# (1.02, against 1.02 for the graph as exported; measured while writing, 8 interleaved rounds).
#
# Earlier versions of this chapter timed the pair with ONNX Runtime's threads spinning between runs and found
# FastSal (A) *cheaper* per MAC than the features (20.6 against 28.0 ms per GMAC); the features' time then
# carried the other session's spinning threads (IQR 4–6 ms on a 5–9 ms run, measured while writing), so that
# verdict was the measurement's, not the models'. The next version, with the threads asleep, found FastSal (A)
# 1.08–1.13× *worse* per MAC in ONNX Runtime as exported, which Table 4.8c explains.
#
# Depthwise convolutions do little arithmetic per byte they move, so MobileNetV2-based networks reach a small
# share of a CPU's matrix-product peak; the paper says as much ("the depthwise convolutional layer is … not as
# well-optimized as the conventional convolutional layer"). Time per MAC is the fair comparison, and it separates
# the two decoders: FastSal (A)'s additive path does its heavy work at 1/16 resolution, where the convolutions are
# wide, while FastSal (C) concatenates 1,408 channels at half resolution, shuffles them to full resolution and
# convolves 352 channels there, which costs it several times the features' time per MAC in every runtime of
# Table 4.8.
#
# ## 4.8 What differs from the paper

# %%
elapsed = time.perf_counter() - T_START
record_meta(seconds=round(elapsed, 1), teacher_training_seconds=round(teacher_seconds, 1))
glue("chapter_min", elapsed / 60)
pd.DataFrame({
    "paper": ["SALICON 2017 (10,000 labelled), COCO (≈160,000 unlabelled)", "192 × 256",
              "SalGAN (and DeepGaze II) with their published weights", "ImageNet", "100 epochs, lr 0.01, batch 30",
              "≈35 fps (i7-6850K, 6 cores), ≈300 fps (GTX 1080 Ti)"],
    "this run": [f"generated: {len(train_set)} labelled, {pseudo_c.n_unlabelled} unlabelled "
                 f"({lite0_cfg.n_unlabelled} for the Lite0 student)",
                 f"{DATA.input_size[0]} × {DATA.input_size[1]}",
                 f"Lite0 + SalGAN-shaped decoder trained here ({teacher_seconds / 60:.1f} min)",
                 "MobileNetV2 random (no weights offline); one student on ImageNet Lite0 instead",
                 f"{base_c.epochs} epochs, lr {base_c.lr:g}, batch {base_c.batch_size}",
                 f"{a_fps:.1f} fps ({best_path}, {best_threads} thread(s), this CPU)"],
}, index=["data", "training input", "teacher", "encoder initialisation", "schedule", "speed (FastSal A)"])

# %% [markdown]
# *Table 4.9: this run next to the paper.* This page took {glue:text}`chapter_min:.1f` minutes, of which the
# teacher's training (counted once: later runs load it) took {glue:text}`teacher_train_min:.1f`.
#
# * **Encoder initialisation.** The paper's MobileNetV2 is ImageNet-pretrained; ours starts from random weights
#   unless a local file is given (`mobilenet_v2_weights`, Table IV). The pretrained student of Table V,
#   A·Lite0, swaps in the one ImageNet encoder that ships offline (EfficientNet-Lite0, the teacher's), and
#   is trained with the teacher's optimiser (Adam) rather than the official SGD.
# * **Teacher.** SalGAN's generator is built exactly (`salgan_generator`, Table 4.2) and is the teacher of the
#   `paper` profile given its weights; the book's teacher keeps SalGAN's hint widths and decoder shape.
# * **Table V on model A.** The ablation's five rows run on FastSal (A): the same recipe took
#   {glue:text}`c_over_a_train:.1f` times longer to train on (C) here; model C gets the full recipe.
# * **Schedules.** A few epochs at 96 × 128 instead of 100 at 192 × 256; the reload-and-decay steps come late
#   in the run and the learning rate is raised to make the short schedule count (the `paper` profile keeps
#   the official values).
# * **Tolerances.** Accuracy numbers are recorded with ±0.05 CC (±0.2 NSS): with a few hundred SGD steps from
#   random encoders, a change of seed moves them by a few hundredths; `salbook spread` re-measures it.
#   Latencies are recorded with ±100 % (they depend on the machine and its load).
