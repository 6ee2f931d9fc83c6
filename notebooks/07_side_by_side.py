# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---

# %% [markdown]
# # 7. Side by side: which efficient saliency model, and what does it cost?
#
# The earlier chapters each trained one family of models under its own paper's rules. This chapter puts
# every model the book trained on **one harness**: the same generated test images, the same metrics with
# the same intervals, the same cost measurements on the same CPU, and the same export path to ONNX
# {cite}`pan2016shallow,compactpca,hu2021fastsal`. It ends with the tool a reader takes away:
# `salbook predict` runs any of these models on your own images.
#
# Nothing here trains. The models are the ones the earlier chapters cached in the same profile
# (`salbook.zoo` reads each chapter's record of the configuration it trained and loads that model from the
# cache); a model whose chapter has not run, or has not landed, is simply absent, and the first table
# says which.

# %% tags=["parameters"]
profile = "smoke"       # smoke | book | paper
dataset = "synthetic"   # synthetic | salicon (the fixation models' test split)
data_root = None        # folder of the real dataset (published layout)
device = "auto"
seed = 0

# %%
import time

T_START = time.perf_counter()

from salbook.book import EVAL_SEED, glue, pick, record, record_meta
from salbook.utils import resolve_device, seed_everything

synthetic = dataset == "synthetic"
S = pick(
    profile,
    smoke=dict(n_train=24, n_test=12, eval_size=(96, 128), cost_size=(96, 128), latency_runs=2, tp_batch=4, tp_runs=2,
               threads=(1,), n_shuffle=10, n_splits=10, red_images=4, red_positions=1024, n_show=2, onnx_models=("compact",),
               onnx_images=2, models=("pan_recommended", "compact", "fastsal_a", "csnet")),
    book=dict(n_train=400, n_test=200, eval_size=(192, 256), cost_size=(192, 256), latency_runs=8, tp_batch=16,
              tp_runs=2, threads=(1, 2), n_shuffle=100, n_splits=100, red_images=48, red_positions=16384, n_show=4,
              onnx_models=None, onnx_images=4, models=None),
    paper=dict(n_train=None, n_test=None, eval_size=(192, 256) if synthetic else (480, 640), cost_size=(192, 256),
               latency_runs=30, tp_batch=16, tp_runs=10, threads=(1, 2), n_shuffle=100, n_splits=100, red_images=250,
               red_positions=16384, n_show=4, onnx_models=None, onnx_images=16, models=None),
)
DEVICE = resolve_device(device)
seed_everything(seed)
record_meta(device=str(DEVICE), dataset=dataset, profile=profile, **{k: str(v) for k, v in S.items()})
S

# %%
import os
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display

from salbook import plots, zoo
from salbook.analysis.redundancy import redundancy
from salbook.baselines import CenterBias, TrueDensity, inter_observer
from salbook.cost import count_params, flops, latency, peak_activation_memory, state_dict_bytes, throughput
from salbook.data import SplitSpec, load_split
from salbook.evaluation import evaluate, finished_maps
from salbook.data.transforms import normalize_image
from salbook.inference import OnnxRunner, eval_copy, inference_paths

pd.set_option("display.precision", 3)
sns.set_theme(style="white", context="notebook")

# %% [markdown]
# ## 7.1 The models the book trained
#
# `salbook.zoo` lists the book's models, one line each: how to load the cached model of a profile, its task
# (fixation density or salient-object mask), how its raw output becomes a map, and which chapter trains it.
# The same registry backs `salbook models` and `salbook predict`.

# %%
loaded, absent, zoo_rows = {}, [], []
for name in zoo.names():
    entry = zoo.get(name)
    if S["models"] is not None and name not in S["models"]:  # smoke: four models cover every code path
        absent.append(name)
        zoo_rows.append({"model": name, "title": entry.title, "task": entry.task, "chapter": entry.chapter,
                         "status": f"skipped in the {profile!r} profile"})
        continue
    try:
        loaded[name] = zoo.load(name, profile, DEVICE)
        status = "loaded from the cache"
    except zoo.ModelNotTrained:
        status = f"not trained in this profile: `{entry.command(profile)}`"
    except (ModuleNotFoundError, AttributeError) as err:
        status = f"its chapter has not landed ({type(err).__name__})"
    if name not in loaded:
        absent.append(name)
    zoo_rows.append({"model": name, "title": entry.title, "task": entry.task, "chapter": entry.chapter,
                     "status": status})
zoo_table = pd.DataFrame(zoo_rows).set_index("model")
if not loaded:
    raise RuntimeError(f"no trained model is cached in the {profile!r} profile: run the earlier chapters first "
                       f"(`salbook run --profile {profile}`)")
glue("n_models", len(loaded))
glue("n_listed", len(zoo_table))
glue("absent_models", ", ".join(absent) if absent else "none")
record("side.n_models", len(loaded), tol=0)
zoo_table

# %% [markdown]
# *Table 7.1: every model in the zoo and whether this run found it.* {glue:text}`n_models` of the
# {glue:text}`n_listed` models listed were loaded; absent: {glue:text}`absent_models`. An absent model is
# one whose chapter has not run in this profile (the status names the command) or whose recipe module is
# not in this checkout yet (the smoke profile also skips all but four models, to stay within its budget).

# %% [markdown]
# ## 7.2 Accuracy on one test split
#
# Every fixation model scores the same generated test images (the test split of the seed contract's data,
# ground truth at {glue:text}`eval_size`). Each model gets the images resized to the input size its recipe
# trained at, its own post-processing, and the map resized to the ground truth — exactly what
# `salbook.evaluate` does in its own chapter. The metrics are the MIT benchmark's {cite}`bylinskii2019metrics`
# plus information gain over the centre bias {cite}`kummerer2015information`, each a mean over images with a
# 95 % Student-t interval. The reference rows: the **centre bias** (fitted on training fixations; its
# information gain over itself is 0 by definition), the **inter-observer** consistency (each simulated
# observer predicted by the others) and, on generated data, the **true density** the observers sampled
# from.

# %%
spec = SplitSpec(dataset=dataset, data_root=data_root, n_train=S["n_train"], n_val=8, n_test=S["n_test"],
                 input_size=S["eval_size"], eval_size=S["eval_size"],
                 **({} if synthetic else dict(val_split="train", test_split="val")))
train_set, test_set = load_split(spec, "train"), load_split(spec, "test")
glue("eval_size", "{} × {}".format(*S["eval_size"]))
glue("n_test", len(test_set))
METRICS = ("cc", "nss", "auc_judd", "auc_shuffled", "kld", "info_gain")
EVAL = dict(device=DEVICE, seed=EVAL_SEED, n_shuffle_images=S["n_shuffle"], n_splits=S["n_splits"], progress=False)
center_bias = CenterBias.fit(train_set, progress=False)
fixation_models = {n: m for n, m in loaded.items() if m.entry.task == "fixation"}
sod_models = {n: m for n, m in loaded.items() if m.entry.task == "sod"}
ev = {}
t0 = time.perf_counter()
for name, m in fixation_models.items():
    ev[name] = evaluate(m.as_module(), test_set, METRICS, postprocess=m.postprocess, info_gain_baseline=center_bias,
                        name=name, **EVAL)
ref = {"centre bias": evaluate(center_bias, test_set, METRICS, info_gain_baseline=center_bias, **EVAL),
       "inter-observer": inter_observer(test_set, METRICS[:-1], seed=EVAL_SEED, n_shuffle_images=S["n_shuffle"],
                                        n_splits=S["n_splits"], progress=False)}
if synthetic:
    ref["true density (ceiling)"] = evaluate(TrueDensity(), test_set, METRICS, info_gain_baseline=center_bias, **EVAL)
eval_seconds = time.perf_counter() - t0
accuracy = pd.concat([e.table(name, ci=True) for name, e in {**ev, **ref}.items()]).fillna("—")
accuracy

# %% [markdown]
# *Table 7.2: test scores of every model on the same {glue:text}`n_test` images, mean [95 % interval]
# (higher is better except KLD; `info_gain` in bits per fixation over the centre bias). The last rows are
# references, not models.*
#
# The same numbers are not comparable with the papers' tables: those score real photographs (SALICON,
# MIT300) after days of GPU training. The papers' own reported numbers are listed below for orientation,
# **as reported**, never re-measured here.

# %%
# Reported by the papers (their datasets, their input sizes); quoted, not measured here.
REPORTED = pd.DataFrame([
    dict(model="Pan shallow", source="Pan et al. 2016, quoted by the replication", data="SALICON val",
         cc=0.58, auc_shuffled=0.67, GFLOPs=np.nan, MParams=64.4),
    dict(model="ML-Net", source="FastSal paper, Tables I and III", data="MIT300", cc=0.6633, nss=1.9748,
         auc_judd=0.8386, auc_shuffled=0.7399, kld=0.8006, GFLOPs=39.42, MParams=15.45),
    dict(model="FastSal (C)", source="FastSal paper, Tables II and III", data="SALICON 2017 test", cc=0.874,
         nss=1.845, auc_judd=0.863, auc_shuffled=0.732, kld=0.288, info_gain=0.770, GFLOPs=1.32, MParams=2.57),
    dict(model="FastSal (A)", source="FastSal paper, Tables II and III", data="SALICON 2017 test", cc=0.870,
         nss=1.828, auc_judd=0.862, auc_shuffled=0.731, kld=0.291, info_gain=0.760, GFLOPs=1.32, MParams=3.65),
]).set_index("model")
REPORTED.insert(0, "kind", "reported by the paper")
REPORTED

# %% [markdown]
# *Table 7.3: the papers' reported numbers (their data; GFLOPs at 192 × 256 as the FastSal paper counts
# them). Marked "reported by the paper": nothing in this table was computed by this book.*

# %%
# Tolerances: the models are loaded, not retrained, and the evaluation is seeded (EVAL_SEED), so a re-run
# reproduces these numbers up to float rounding; they move only when an earlier chapter's model changes,
# and then by that chapter's own seed-to-seed spread (~0.01-0.03 CC in chapters 1-4): tol 0.03, 4× for NSS,
# KLD and information gain.
for name, e in {**ev, **ref}.items():
    key = name.split(" (")[0].replace(" ", "_").replace("-", "_")
    for m in e.metrics:
        record(f"side.{key}.test.{m}", e.mean()[m], tol=0.03 * (4 if m in ("nss", "kld", "info_gain") else 1),
               config=loaded[name].config if name in loaded else None)
best = max(ev, key=lambda n: ev[n].mean()["cc"]) if ev else None
if best:
    glue("best_cc_model", best)
    glue("best_cc", ev[best].mean()["cc"])

# %% [markdown]
# The most accurate model on this split by CC is {glue:text}`best_cc_model` (CC {glue:text}`best_cc:.3f`).

# %% [markdown]
# ### Salient-object models
#
# CSNet and CSNet-L predict masks, not fixation densities; they are scored with the salient-object metrics on
# their own generated masks when their chapter has run (below: none when it has not).

# %%
if sod_models:
    from salbook.evaluation import evaluate_sod

    sod_spec = zoo.data_of(next(iter(sod_models.values())).config).replace(n_test=S["n_test"])
    sod_test = load_split(sod_spec, "test")
    sod_ev = {n: evaluate_sod(m.as_module(), sod_test, postprocess=m.postprocess, device=DEVICE, progress=False)
              for n, m in sod_models.items()}
    for n, e in sod_ev.items():
        for metric, value in e.mean().items():
            record(f"side.{n}.sod.{metric}", value, tol=0.03, config=sod_models[n].config)
    display(pd.concat([e.table(n, ci=True) for n, e in sod_ev.items()]))
else:
    print("no salient-object model is cached in this profile")

# %% [markdown]
# ## 7.3 What each model costs
#
# All cost numbers are `salbook.cost`'s, measured in this run on this machine: parameters, MACs and FLOPs at
# one common input size ({glue:text}`cost_size`; Pan et al.'s network only takes its fixed 96 × 96 input, so
# it is measured there), the state dict's size, the peak activation memory of one forward pass, CPU latency
# at batch 1 with 1 and 2 threads (median and IQR of repeated runs) and throughput at batch
# {glue:text}`tp_batch`; GPU latency when a GPU is present. Timings are taken one model at a time.

# %%
glue("cost_size", "{} × {}".format(*S["cost_size"]))
glue("tp_batch", S["tp_batch"])


def cost_input(m: "zoo.LoadedModel") -> tuple[int, int]:
    """The common size if the network takes it, else its own input size (Pan's fixed 96 × 96)."""
    try:
        with torch.no_grad():
            m.model(torch.rand(1, 3, *S["cost_size"], device=m.device))
        return tuple(S["cost_size"])
    except (RuntimeError, ValueError):
        return m.input_size


# Latency is measured once per model and path by salbook.inference.inference_paths: "eager" (the network
# as trained) is this table's CPU latency; the models exported in §7.4 are also timed with batch norm
# folded and in ONNX Runtime, in the same loop, so every path of a model is timed under the same conditions.
ONNX_DIR = Path(tempfile.mkdtemp(prefix="salbook-ch7-"))
onnx_names = [n for n in loaded if S["onnx_models"] is None or n in S["onnx_models"]]
paths_rows = []
for name, m in loaded.items():
    chosen = ("eager", "folded", "onnxruntime") if name in onnx_names else ("eager",)
    df = inference_paths(m.model, torch.rand(1, 3, *cost_input(m)), threads=S["threads"], paths=chosen,
                         runs=S["latency_runs"], warmup=2, onnx_path=ONNX_DIR / f"{name}.onnx")
    df.insert(0, "model", name)
    paths_rows.append(df)
paths = pd.concat(paths_rows, ignore_index=True)


def cost_row(name: str, m: "zoo.LoadedModel") -> dict:
    """One row of Table 7.4: salbook.cost's measurements of ``m``'s network at its cost input size
    (CPU latency: the eager rows of ``paths``)."""
    size = cost_input(m)
    count = flops(m.model, size)
    row = {"name": name, "input": "{}×{}".format(*size), "params": count_params(m.model),
           "GFLOPs": count.gflops, "GMACs": count.gmacs, "state_dict_MB": state_dict_bytes(m.model) / 1e6,
           "peak_activation_MB": peak_activation_memory(m.model, size) / 1e6}
    eager = paths[(paths.model == name) & (paths.path == "eager")].set_index("threads")
    for t in S["threads"]:
        row[f"cpu_ms_median_{t}t"], row[f"cpu_ms_iqr_{t}t"] = eager.loc[t, "median_ms"], eager.loc[t, "iqr_ms"]
    row["throughput_img_s"] = throughput(m.model, size, batch=S["tp_batch"], device="cpu", warmup=1,
                                         runs=S["tp_runs"], threads=S["threads"][-1])
    if torch.cuda.is_available():
        gpu = latency(m.model, size, batch=1, device="cuda", runs=max(S["latency_runs"], 30))
        row["gpu_ms_median"], row["gpu_ms_iqr"] = gpu.median_ms, gpu.iqr_ms
    return row


cost = pd.DataFrame([cost_row(name, m) for name, m in loaded.items()]).set_index("name")
cost

# %% [markdown]
# *Table 7.4: cost of every model (MB = 10⁶ bytes; FLOPs = 2 × MACs, convolutions and matrix products only;
# latency in ms at batch 1 with the thread count in the column name; throughput in images/s at batch
# {glue:text}`tp_batch` with the most threads).*

# %%
# Tolerances: counts are exact (params, MACs: tol 0); sizes move with the PyTorch version (2 %); latency on a
# shared 2-core CPU moves run to run by tens of per cent (rel 1.0: recorded to show, not to gate).
for name, r in cost.iterrows():
    record(f"side.{name}.params", r["params"], tol=0)
    record(f"side.{name}.gmacs", r["GMACs"], tol=0, rel=0.01)
    record(f"side.{name}.state_dict_mb", r["state_dict_MB"], tol=0, rel=0.02)
    record(f"side.{name}.peak_activation_mb", r["peak_activation_MB"], tol=0, rel=0.05)
    for t in S["threads"]:
        record(f"side.{name}.cpu_ms_{t}t", r[f"cpu_ms_median_{t}t"], tol=0, rel=1.0)
    record(f"side.{name}.throughput_img_s", r["throughput_img_s"], tol=0, rel=1.0)
    if name in zoo_table.index:
        assert r["params"] == sum(p.numel() for p in loaded[name].model.parameters())  # the count is the model's

# %% [markdown]
# ## 7.4 Export: ONNX, checked in ONNX Runtime
#
# Every model is exported to ONNX (`salbook.inference.export_onnx`: the tracing exporter, the file checked by
# the `onnx` package, written atomically, a dynamic batch dimension) and run in ONNX Runtime on the same
# inputs as PyTorch: the largest absolute difference of the raw outputs (logits) must stay within 10⁻⁴.
# The inputs are the first {glue:text}`onnx_images` test images of the model's task, as the network sees them
# (resized, normalised where its recipe normalises); a uniform-noise image is checked too, as a stress test
# that reaches activations no real image reaches, with the same network run in float64 as the exact
# reference. The timings of §7.3 (`salbook.inference.inference_paths`) include, for these models, PyTorch
# with batch norm folded into the convolutions ("folded") and ONNX Runtime, at batch 1 with 1 and 2
# threads. In the smoke profile only the compact model is exported (every code path still runs).

# %%
glue("onnx_images", S["onnx_images"])


def check_inputs(m: "zoo.LoadedModel") -> torch.Tensor:
    """The first test images of the model's own task (fixation or mask test split) as its network sees
    them: resized to its cost input size and normalised if its recipe normalises."""
    split = sod_test if m.entry.task == "sod" else test_set
    images = torch.stack([split[i]["image"] for i in range(min(S["onnx_images"], len(split)))])
    images = torch.nn.functional.interpolate(images, size=cost_input(m), mode="bilinear", align_corners=False)
    return normalize_image(images) if m.normalize else images


float_check = {}
for name in onnx_names:
    m = loaded[name]
    runner = OnnxRunner(ONNX_DIR / f"{name}.onnx")
    net, net64 = eval_copy(m.model), eval_copy(m.model).double()
    row = {}
    for label, x in (("test images", check_inputs(m)), ("noise", torch.rand(1, 3, *cost_input(m)))):
        with torch.no_grad():
            f32 = torch.cat([net(xi[None]).float() for xi in x]).double()
            f64 = torch.cat([net64(xi[None].double()) for xi in x])  # the same network in float64: exact enough
            ort_out = torch.cat([runner(xi[None]) for xi in x]).double()
        row[f"max |Δ| ORT vs PyTorch ({label})"] = float((ort_out - f32).abs().max())
        row[f"max |output| ({label})"] = float(f32.abs().max())
        row[f"PyTorch f32 vs f64 ({label})"] = float((f32 - f64).abs().max())
        row[f"ORT vs f64 ({label})"] = float((ort_out - f64).abs().max())
    float_check[name] = row
shutil.rmtree(ONNX_DIR, ignore_errors=True)
onnx_check = pd.DataFrame(float_check).T
for label in ("test images", "noise"):
    # An export that computes the same function is as close to the exact (float64) result as PyTorch's own
    # float32 is; a broken one is not. The chapter stops on a difference that float32 rounding cannot explain.
    explained = onnx_check[f"ORT vs f64 ({label})"] <= 4 * onnx_check[f"PyTorch f32 vs f64 ({label})"].clip(lower=1e-6)
    unexplained = onnx_check.index[(onnx_check[f"max |Δ| ORT vs PyTorch ({label})"] > 1e-4) & ~explained]
    assert unexplained.empty, f"ONNX differs from PyTorch beyond float32 rounding on {label}: {list(unexplained)}"
diff = onnx_check["max |Δ| ORT vs PyTorch (test images)"]
onnx_check["relative (test images)"] = diff / onnx_check["max |output| (test images)"].clip(lower=1.0)
onnx_check["verdict"] = np.where(diff <= 1e-4, "within 1e-4",
                                 "over 1e-4: float32 rounding of outputs up to "
                                 + onnx_check["max |output| (test images)"].map("{:.0f}".format))
with pd.option_context("display.float_format", "{:.3g}".format):
    display(onnx_check)
missed = onnx_check[diff > 1e-4]
noise_missed = onnx_check[onnx_check["max |Δ| ORT vs PyTorch (noise)"] > 1e-4]
glue("n_onnx", len(onnx_check))
glue("onnx_missed", ", ".join(
    f"{n} (|Δ| {r['max |Δ| ORT vs PyTorch (test images)']:.2g} on outputs up to {r['max |output| (test images)']:.0f}, "
    f"relative {r['relative (test images)']:.1g}; PyTorch's own float32 error {r['PyTorch f32 vs f64 (test images)']:.2g})"
    for n, r in missed.iterrows()) if len(missed) else "none")
glue("onnx_worst_relative", float(onnx_check["relative (test images)"].max()))
glue("onnx_worst_images", float(onnx_check["max |Δ| ORT vs PyTorch (test images)"].max()))
glue("onnx_noise_missed", ", ".join(
    f"{n} (|Δ| {r['max |Δ| ORT vs PyTorch (noise)']:.2g}; PyTorch's own float32 error "
    f"{r['PyTorch f32 vs f64 (noise)']:.2g})" for n, r in noise_missed.iterrows()) if len(noise_missed) else "none")
paths.pivot_table(index=["model", "threads"], columns="path", values="median_ms")

# %% [markdown]
# *Tables 7.5 and 7.6: the ONNX check, one row per model (largest absolute difference between ONNX
# Runtime's and PyTorch's raw outputs on the test images and on one uniform-noise image; the largest output;
# how far PyTorch float32 and ONNX Runtime each are from the same network run in float64; the difference
# relative to the largest output), and the median latency (ms, batch 1) of each inference path per thread
# count.*
#
# On the test images the largest absolute difference of the {glue:text}`n_onnx` exported models is
# {glue:text}`onnx_worst_images:.2g` and the largest relative one {glue:text}`onnx_worst_relative:.1g`; models
# over 10⁻⁴ there: {glue:text}`onnx_missed`. On uniform noise, over 10⁻⁴: {glue:text}`onnx_noise_missed`.
# The float64 columns say why a model can miss: float32 keeps about 7 significant digits, so a network whose
# raw output is not a logit but a map that grows to tens (ML-Net's ReLU output, which its metrics use up to
# scale), or whose activations grow large on an input unlike its training images (CSNet's ×100
# convolutions, after pruning and fine-tuning), is that far from the exact result *in PyTorch too*; ONNX
# Runtime, summing in another order, lands a similar distance away, and the two float32 results differ by up
# to the sum of their errors. A difference more than 4 × PyTorch's own float32 error would not be rounding:
# the cell above stops the chapter on one.

# %%
for name, r in onnx_check.iterrows():
    record(f"side.{name}.onnx_max_abs_diff", r["max |Δ| ORT vs PyTorch (test images)"], tol=1e-4)
    record(f"side.{name}.onnx_max_abs_diff_noise", r["max |Δ| ORT vs PyTorch (noise)"],
           tol=max(1e-4, 4 * r["PyTorch f32 vs f64 (noise)"]))
for _, r in paths.iterrows():
    record(f"side.{r['model']}.{r['path']}_ms_{r['threads']}t", r["median_ms"], tol=0, rel=1.0)
ort1 = paths[(paths.path == "onnxruntime") & (paths.threads == S["threads"][0])].set_index("model")
eager1 = paths[(paths.path == "eager") & (paths.threads == S["threads"][0])].set_index("model")
speedups = (eager1["median_ms"] / ort1["median_ms"]).dropna().rename("ORT speed-up")
glue("ort_speedup_range", f"{speedups.min():.1f}× to {speedups.max():.1f}×" if len(speedups) > 1
     else f"{speedups.iloc[0]:.1f}×")

# %% [markdown]
# At one thread ONNX Runtime ran these networks {glue:text}`ort_speedup_range` as fast as eager PyTorch on
# this CPU (measured above; a ratio below 1 would mean it is slower).

# %% [markdown]
# ## 7.5 Accuracy against cost: the Pareto front
#
# A model is on the **Pareto front** when no other model is both at least as accurate and at least as cheap.
# The left panel puts accuracy (CC) against the latency *measured* here (1 thread, batch 1, log scale); the
# right panel against the MACs *counted* at the same input size. Papers usually draw the right panel. The
# gap between the two is the point of this chapter: a MAC of a depthwise convolution, of a 1 × 1
# convolution and of a fully connected layer do not cost the same time, so the order by MACs is not the
# order by latency.


# %%
def pareto_front(cost_values: pd.Series, accuracy_values: pd.Series) -> list[str]:
    """Names on the front: sorted by cost, each more accurate than every cheaper one."""
    front, best_acc = [], -np.inf
    for name in cost_values.sort_values().index:
        if accuracy_values[name] > best_acc:
            front.append(name)
            best_acc = accuracy_values[name]
    return front


acc = pd.Series({n: e.mean()["cc"] for n, e in ev.items()}, name="cc")
ms_col = f"cpu_ms_median_{S['threads'][0]}t"
points = cost.loc[acc.index, [ms_col, "GMACs"]].join(acc)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
fronts = {}
for ax, col, label in ((axes[0], ms_col, "CPU latency, ms (1 thread, batch 1, log)"),
                       (axes[1], "GMACs", "GMACs at the common input size (log)")):
    front = pareto_front(points[col], points["cc"])
    fronts[col] = front
    ax.scatter(points[col], points["cc"], s=40, color="C0")
    for name, r in points.iterrows():
        ax.annotate(name, (r[col], r["cc"]), fontsize=8, xytext=(4, 3), textcoords="offset points")
    fp = points.loc[front].sort_values(col)
    ax.step(fp[col], fp["cc"], where="post", color="C3", lw=1.5, label="Pareto front")
    ax.axhline(ref["centre bias"].mean()["cc"], color="grey", ls=":", label="centre bias")
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("test CC")
    ax.legend(fontsize=8, loc="lower right")
fig.suptitle("Figure 7.1: accuracy against measured latency (left) and against counted MACs (right)")
fig.tight_layout()
plt.show()
order_ms = list(points[ms_col].sort_values().index)
order_macs = list(points["GMACs"].sort_values().index)
glue("front_latency", ", ".join(fronts[ms_col]))
glue("front_macs", ", ".join(fronts["GMACs"]))
glue("order_agrees", "the same" if order_ms == order_macs else "not the same")
glue("order_ms", " < ".join(order_ms))
glue("order_macs", " < ".join(order_macs))

# %% [markdown]
# *Figure 7.1: each dot is one model of this run (test CC against its cost); the red steps join the Pareto
# front; the dotted line is the centre bias.*
#
# On latency the front is {glue:text}`front_latency`; on MACs it is {glue:text}`front_macs`. Ordered by
# measured latency the models run {glue:text}`order_ms`; ordered by MACs, {glue:text}`order_macs` — the two
# orders are {glue:text}`order_agrees`.

# %% [markdown]
# ## 7.6 Redundancy, model by model
#
# Chapter 2's tool (`salbook.analysis.redundancy`) reads one layer — the last feature map before each model's
# read-out — on the same test images and measures how many dimensions its activations really use: the
# participation ratio over channels (positions as samples) and over positions (channels as samples), the
# share of near-zero activations and of channels that never fire.

# %%
red_rows = []
for name, m in loaded.items():
    layer = m.entry.redundancy_layer
    if not layer:
        continue
    try:
        r = redundancy(m.as_module(), test_set, f"net.{layer}", n_images=S["red_images"],
                       max_positions=S["red_positions"], max_variables=min(2048, S["red_positions"]), seed=seed)
    except (KeyError, ValueError, RuntimeError) as err:  # not one 4-D map in this architecture: say so
        red_rows.append({"model": name, "layer": layer, "note": str(err)[:80]})
        continue
    red_rows.append({"model": name, "layer": layer, "channels": r.n_channels,
                     "map": "{}×{}".format(*r.feature_size),
                     "PR (channels)": r.by_position.participation_ratio,
                     "PR / channels": r.by_position.participation_ratio / r.n_channels,
                     "PCs for 90 %": r.by_position.components_for[0.9],
                     "near-zero share": r.near_zero_fraction, "dead channels": r.dead_channels,
                     "mean |corr|": r.mean_abs_channel_corr})
    record(f"side.{name}.redundancy.channel_pr", r.by_position.participation_ratio, tol=0, rel=0.25)
red_table = pd.DataFrame(red_rows).set_index("model")
red_table

# %% [markdown]
# *Table 7.7: redundancy of each model's last feature map on {glue:text}`n_red` test images (PR: the
# participation ratio, an effective number of dimensions; "PR / channels" near 0 means the channels move
# together).*

# %%
glue("n_red", min(S["red_images"], len(test_set)))

# %% [markdown]
# ## 7.7 Explore the maps
#
# In JupyterLab the cell below is an explorer: choose two models and an image and see both maps, their
# overlays and the image's scores. In the static book the same cell draws a fixed grid: the first
# {glue:text}`n_show` test images and every model's map.

# %%
glue("n_show", S["n_show"])
show_idx = list(range(min(S["n_show"], len(test_set))))
maps = {name: finished_maps(fixation_models[name].as_module(), test_set, postprocess=fixation_models[name].postprocess,
                            device=DEVICE, indices=show_idx) for name in ev}
images = [test_set[i]["image"] for i in show_idx]
truth = [test_set[i]["fixation_map"] for i in show_idx]
static = os.environ.get("SALBOOK_RECORD_FILE") is not None  # executed by `salbook run`: no kernel behind the page
fig = plots.image_map_grid([[img, gt, *(maps[n][k] for n in ev)] for k, (img, gt) in enumerate(zip(images, truth))],
                           col_titles=["image", "fixation map", *ev], title="Figure 7.2: every model on the same images")
plt.show()
if not static:
    import ipywidgets as widgets

    names = list(ev)
    pick_a = widgets.Dropdown(options=names, value=names[0], description="model A")
    pick_b = widgets.Dropdown(options=names, value=names[-1], description="model B")
    pick_i = widgets.IntSlider(min=0, max=len(test_set) - 1, value=0, description="image")
    out = widgets.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            i, a, b = pick_i.value, pick_a.value, pick_b.value
            sample = test_set[i]
            ma, mb = (finished_maps(fixation_models[n].as_module(), test_set, postprocess=fixation_models[n].postprocess,
                                    device=DEVICE, indices=[i])[0] for n in (a, b))
            plots.image_map_grid([[sample["image"], ma, plots.overlay(sample["image"], ma), mb,
                                   plots.overlay(sample["image"], mb)]],
                                 col_titles=["image", f"{a}", "overlay", f"{b}", "overlay"])
            plt.show()
            display(pd.DataFrame({n: ev[n].per_image.iloc[i][list(METRICS)] for n in (a, b)}).T)

    for w in (pick_a, pick_b, pick_i):
        w.observe(redraw, names="value")
    redraw()
    display(widgets.VBox([widgets.HBox([pick_a, pick_b, pick_i]), out]))

# %% [markdown]
# *Figure 7.2: the first test images, their fixation maps and every model's map as `salbook.evaluate` scores it.*
#
# ## 7.8 Your own images
#
# The same models, post-processing and resizing are one command away. `salbook models` lists what is cached
# with its scores and cost; `salbook predict` writes maps for a file or a whole folder, streamed (images are
# read a few at a time, so thousands are fine), each at its image's own size and written atomically:
#
# ```
# salbook models --profile book
# salbook predict photos/ --model fastsal_a --out maps/ --format png       # or npy (densities), overlay
# ```
#
# A model that is not cached yet gets an error naming the `salbook run` command that trains it;
# `--weights PATH` uses any checkpoint of the same architecture instead. `benchmarks/bench_predict.py`
# measures the whole path (decode, resize, network, post-processing, write) on 1,000 images of 480 × 640.

# %%
elapsed = time.perf_counter() - T_START
record_meta(seconds=round(elapsed, 1), eval_seconds=round(eval_seconds, 1), models=",".join(loaded),
            absent=",".join(absent))
print(f"chapter ran in {elapsed:.0f} s ({len(loaded)} models)")
