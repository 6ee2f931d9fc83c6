"""This CPU's dense-matmul peak (GFLOP/s): the ceiling the FastSal speed section compares with.

Usage: ``python benchmarks/bench_matmul_peak.py [--n 1024] [--threads 1 2] [--runs 10]``.
Run it under the heavy-job lock (``flock /tmp/salbook-heavy.lock ...``): a number measured while
other work shares the cores is not this machine's peak. Prints one line per thread count: the
median time of an ``n × n`` float32 product and the GFLOP/s at the median and at the best run, through
the faster of PyTorch's and NumPy's BLAS (each library's median GFLOP/s after it).
"""

from __future__ import annotations

import argparse

from salbook.cost import matmul_peak_gflops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="matrix side")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    for t in args.threads:
        r = matmul_peak_gflops(threads=t, n=args.n, runs=args.runs)
        print(f"threads {r['threads']}: {args.n}×{args.n} float32 matmul {r['median_ms']:.2f} ms median, "
              f"{r['gflops_median']:.1f} GFLOP/s (best run {r['gflops_best']:.1f}) through {r['library']}; "
              + ", ".join(f"{lib} {g:.1f}" for lib, g in r["by_library"].items()))


if __name__ == "__main__":
    main()
