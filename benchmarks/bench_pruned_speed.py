"""CPU latency of chapter 5's gaze models, unpruned and pruned, at batch 1 (the paper's Figure 2 x-axis).

Usage (under the heavy-job lock, so nothing else competes for the cores)::

    flock /tmp/salbook-heavy.lock .venv/bin/python benchmarks/bench_pruned_speed.py [--profile book] [--runs 30]

Loads every model of :func:`salbook.recipes.fisher.gaze_models` from the cache (training those that are
missing), removes the pruned maps physically (Torch-Pruning) and prints, per model, the relative FLOPs
(eq. 11), the parameters, and the median latency at ``--size`` with one thread in eager PyTorch and in
ONNX Runtime, with the speed-up over the unpruned model. Target: a pruned model ≥ 3× faster.
"""

from __future__ import annotations

import argparse
import platform

import pandas as pd
import torch

from salbook.cost import count_params
from salbook.inference import inference_paths
from salbook.pruning.fisher import alive_counts, cost_model
from salbook.recipes import fisher as R


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="book")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in R.gaze_models(args.profile):
        masked = R.gaze_model(name, args.profile, device="cpu", remove=False, log=None)
        net = R.gaze_model(name, args.profile, device="cpu", log=None)
        cm = cost_model(masked, torch.zeros(1, 3, *args.size))
        timing = inference_paths(net, torch.rand(1, 3, *args.size), threads=(1,), paths=("eager", "onnxruntime"),
                                 runs=args.runs).set_index("path")["median_ms"]
        rows.append(dict(model=name, relative_flops=cm.relative(alive_counts(masked)), params=count_params(net),
                         eager_ms=float(timing["eager"]), onnx_ms=float(timing["onnxruntime"])))
    table = pd.DataFrame(rows).set_index("model")
    for col in ("eager_ms", "onnx_ms"):
        table[f"speed-up ({col[:-3]})"] = table.loc["unpruned", col] / table[col]
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, batch 1, {args.size}")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
