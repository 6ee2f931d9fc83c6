"""CSNet run-time at 224 × 224, batch 1, on one and two CPU threads (the paper's Table 5).

Usage (under the heavy-job lock, so nothing else competes for the cores)::

    flock /tmp/salbook-heavy.lock .venv/bin/python benchmarks/bench_csnet_speed.py [--runs 30] [--threads 1 2]

Times CSNet ×1, CSNet-L ×1 (the released learned widths), CSNet ×1 with split 1/0 (no low
scale: the same convolutions without octave exchange) and a plain 3 × 3 convolution network of
the same convolution MACs, each as built and in its fast forms (BN and ×100 folded, branch
convolutions fused per resolution level, channels-last, TorchScript, ONNX Runtime, TorchInductor
with freezing), and prints
milliseconds and milliseconds per GMAC. Weights are random with BN statistics set from one batch
of random images (a fresh CSNet would otherwise compute with inf/NaN in eval mode); latency does
not depend on the weights' values. Target: CSNet ×1 ≤ 50 ms on one thread.
"""

from __future__ import annotations

import argparse
import platform

import torch

from salbook.cost import flops
from salbook.models import csnet as C
from salbook.inference import speed_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--paths", nargs="+", default=["eager", "channels_last", "jit", "onnxruntime", "compiled"],
                        help="salbook.inference paths run on the fused network ('compiled' needs a C++ compiler)")
    args = parser.parse_args()
    torch.manual_seed(0)
    size = (args.size, args.size)
    x1 = C.csnet_x1()
    nets = {"CSNet x1": x1, "CSNet-L x1": C.csnet_l_x1(), "CSNet x1 split 1/0": C.csnet(1.0, "1/0"),
            "plain conv, same MACs": C.plain_convnet_matching(flops(x1, size).macs, size)}
    calib = torch.rand(4, 3, *size)
    for net in nets.values():
        C.init_bn_statistics(net, calib)
    table = speed_table(nets, size, threads=tuple(args.threads), paths=tuple(args.paths),
                        runs=args.runs, warmup=args.warmup,
                        prepare=lambda net: C.fuse_for_inference(net) if isinstance(net, C.CSNet) else None)
    print(f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.runs} timed runs after {args.warmup} warm-up, batch 1, {size[0]}×{size[1]}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    one = table[(table.model == "CSNet x1") & (table.threads == 1)].dropna(subset=["median_ms"])
    best = one.loc[one.median_ms.idxmin()]
    print(f"\nCSNet x1, one thread: as built {float(one[one.path == 'as built'].median_ms.iloc[0]):.1f} ms, "
          f"fastest {best.path} (of the fused net) {best.median_ms:.1f} ms -> target 50 ms "
          f"{'met' if best.median_ms <= 50 else 'MISSED'}")


if __name__ == "__main__":
    main()
