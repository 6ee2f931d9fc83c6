"""FastSal (A) and (C) at 192×256, batch 1, on this CPU, through every inference path, and FastSal (A)'s time
per MAC against MobileNetV2's ``features`` alone.

Usage: ``python benchmarks/bench_fastsal_speed.py [--threads 1 2] [--runs 30] [--rounds 16]``
Run it under the heavy-job lock (``flock /tmp/salbook-heavy.lock ...``). Prints, per model (FastSal A,
FastSal C, MobileNetV2 ``features`` alone as the floor) and per path (eager, BN folded, channels-last,
TorchScript frozen, ONNX Runtime, ONNX Runtime with the PixelShuffles as ConvTranspose, OpenVINO) and thread
count: median and IQR latency, frames per second, milliseconds per GMAC and the GFLOP/s sustained; then the
fastest path for FastSal (A) against the 60 fps target and the dense-matmul peak
(``benchmarks/bench_matmul_peak.py``); then, as chapter 4 measures it, FastSal (A) and the features timed
*interleaved* through each ONNX runtime (``--rounds`` rounds, ``--runs`` passes each): per thread count and
runtime, the median and quartiles of the per-round paired ratio of their times per GMAC (below 1: FastSal (A)
is cheaper per MAC). Weights are random (latency does not depend on them).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from salbook import models
from salbook.cost import flops, matmul_peak_gflops
from salbook.inference import ALL_INFERENCE_PATHS, ONNX_PATHS, interleaved_latency, round_ratios, speed_table
from salbook.recipes.fastsal import mobilenet_v2_features


def paired_per_mac(a: torch.nn.Module, floor: torch.nn.Module, size: tuple[int, int], threads: int, rounds: int,
                   runs: int) -> pd.DataFrame:
    """Per ONNX runtime: the median and quartiles of the per-round ratio (A's ms per GMAC) / (floor's)."""
    gmacs = {"a": flops(a, size).gmacs, "floor": flops(floor, size).gmacs}
    timing = interleaved_latency({"a": a, "floor": floor}, torch.rand(1, 3, *size), ONNX_PATHS, threads=threads,
                                 rounds=rounds, runs=runs, progress=False)
    rows = {}
    for path, t in timing.groupby("path", sort=False):
        ratio = round_ratios(t, "a", "floor", scale=gmacs["floor"] / gmacs["a"])
        t = t.set_index("model")
        rows[path] = {"threads": threads, "A median ms": t.loc["a", "median_ms"],
                      "features median ms": t.loc["floor", "median_ms"], "paired ratio": float(np.median(ratio)),
                      "q1": float(np.percentile(ratio, 25)), "q3": float(np.percentile(ratio, 75)),
                      "rounds A no worse": f"{int((ratio <= 1).sum())}/{len(ratio)}"}
    return pd.DataFrame(rows).T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=16, help="rounds of the interleaved per-MAC timing")
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=256)
    args = parser.parse_args()
    size = (args.height, args.width)
    nets = {"fastsal_a": models.create("fastsal_a", seed=0), "fastsal_c": models.create("fastsal_c", seed=0),
            "mobilenet_v2.features": mobilenet_v2_features()}
    paths = [p for p in ALL_INFERENCE_PATHS if p != "compiled"]  # compiling takes minutes on a small CPU
    table = speed_table(nets, size, threads=tuple(args.threads), paths=paths, runs=args.runs)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
    best = table[table.model == "fastsal_a"].sort_values("median_ms").iloc[0]
    peak = max(matmul_peak_gflops(threads=t)["gflops_median"] for t in args.threads)
    print(f"\nFastSal (A) fastest: {best.path} with {best.threads} thread(s), {best.median_ms:.1f} ms = {best.fps:.1f} fps "
          f"({'meets' if best.fps >= 60 else 'misses'} the 60 fps target); {best.gflops_per_s:.1f} GFLOP/s "
          f"= {best.gflops_per_s / peak:.0%} of the measured dense-matmul peak {peak:.1f} GFLOP/s")
    per_mac = pd.concat([paired_per_mac(nets["fastsal_a"], nets["mobilenet_v2.features"], size, t, args.rounds,
                                        args.runs) for t in args.threads])
    print("\nFastSal (A) / MobileNetV2 features, time per GMAC, interleaved (per-round paired ratios):")
    print(per_mac.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
