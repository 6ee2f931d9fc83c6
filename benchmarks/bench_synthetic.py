"""Benchmark: how many synthetic scenes per second one CPU core generates.

The specification asks for at least 200 images/s at 192×256 on one core, so that scenes can be
generated on the fly.  Two numbers are reported:

* ``scene``: one full scene (image, mixture density parameters, 15 observers' fixations, mask,
  label), i.e. what the on-disk cache stores;
* ``sample``: a complete sample dict as a Dataset returns it with ``cache=False`` (adds the
  density map, the blurred fixation map and the torch conversion).

Usage::

    python benchmarks/bench_synthetic.py [--n 400] [--size 192 256] [--target 192 256]

It pins numpy/torch to one thread (set before import) and prints the best of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import time  # noqa: E402

import torch  # noqa: E402

from salbook.data.synthetic import SyntheticSaliency  # noqa: E402


def bench(n: int, size: tuple[int, int], target: tuple[int, int], repeats: int) -> dict[str, float]:
    """Return best-of-``repeats`` throughput in images per second for scenes and full samples."""
    torch.set_num_threads(1)
    ds = SyntheticSaliency("train", size=size, target_size=target, n=n, cache=False)
    ds.scene(0)  # warm the noise bank
    best = {"scene": 0.0, "sample": 0.0}
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(n):
            ds.scene(i)
        best["scene"] = max(best["scene"], n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for i in range(n):
            ds[i]
        best["sample"] = max(best["sample"], n / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--size", type=int, nargs=2, default=(192, 256))
    ap.add_argument("--target", type=int, nargs=2, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    size = tuple(args.size)
    target = tuple(args.target) if args.target else size
    res = bench(args.n, size, target, args.repeats)
    print(f"synthetic {size[0]}x{size[1]} (maps {target[0]}x{target[1]}), one core, n={args.n}")
    print(f"  scenes : {res['scene']:7.1f} images/s")
    print(f"  samples: {res['sample']:7.1f} images/s (cache=False, full sample dicts)")
    verdict = "PASS" if res["scene"] >= 200 else "FAIL"
    print(f"  target >= 200 scenes/s: {verdict}")


if __name__ == "__main__":
    main()
