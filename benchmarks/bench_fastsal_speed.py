"""FastSal (A) and (C) at 192×256, batch 1, on this CPU, through every inference path.

Usage: ``python benchmarks/bench_fastsal_speed.py [--threads 1 2] [--runs 30] [--height 192 --width 256]``.
Run it under the heavy-job lock (``flock /tmp/salbook-heavy.lock ...``). Prints, per model (FastSal A,
FastSal C, MobileNetV2 ``features`` alone as the floor) and per path (eager, BN folded, channels-last,
TorchScript frozen, ONNX Runtime) and thread count: median and IQR latency, frames per second,
milliseconds per GMAC and the GFLOP/s sustained; then the fastest path for FastSal (A) against the
60 fps target and the dense-matmul peak (``benchmarks/bench_matmul_peak.py``). Weights are random
(latency does not depend on them).
"""

from __future__ import annotations

import argparse

import pandas as pd

from salbook import models
from salbook.cost import matmul_peak_gflops
from salbook.inference import speed_table
from salbook.recipes.fastsal import mobilenet_v2_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=256)
    args = parser.parse_args()
    nets = {"fastsal_a": models.create("fastsal_a", seed=0), "fastsal_c": models.create("fastsal_c", seed=0),
            "mobilenet_v2.features": mobilenet_v2_features()}
    table = speed_table(nets, (args.height, args.width), threads=tuple(args.threads), runs=args.runs)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
    best = table[table.model == "fastsal_a"].sort_values("median_ms").iloc[0]
    peak = max(matmul_peak_gflops(threads=t)["gflops_median"] for t in args.threads)
    print(f"\nFastSal (A) fastest: {best.path} with {best.threads} thread(s), {best.median_ms:.1f} ms = {best.fps:.1f} fps "
          f"({'meets' if best.fps >= 60 else 'misses'} the 60 fps target); {best.gflops_per_s:.1f} GFLOP/s "
          f"= {best.gflops_per_s / peak:.0%} of the measured dense-matmul peak {peak:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
