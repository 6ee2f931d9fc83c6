"""Time every fixation metric on 1000 random 192×256 predictions with ~20 fixations each.

Usage: ``python benchmarks/bench_metrics.py [--n 1000] [--height 192] [--width 256] [--fix 20]``.
Prints a per-metric table (seconds in total, milliseconds per image) and the total; the target
is a total of at most 30 s for 1000 images. The book's metrics page calls
:func:`salbook.metrics.benchmark` directly.
"""

from __future__ import annotations

import argparse

from salbook.metrics import benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of predictions")
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--fix", type=int, default=20, help="mean fixations per image")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    table = benchmark(n=args.n, size=(args.height, args.width), n_fix=args.fix, seed=args.seed)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    total = float(table.loc[table["metric"] == "total", "seconds"].iloc[0])
    print(f"\n{args.n} images of {args.height}×{args.width}: {total:.2f} s for all metrics "
          f"({'within' if total <= 30 else 'OVER'} the 30 s budget)")


if __name__ == "__main__":
    main()
