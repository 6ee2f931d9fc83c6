"""Benchmark: `salbook predict` end to end — decode, resize, infer, post-process, resize back, write.

The target (issue 14): 1,000 images of 480 × 640 with FastSal (A) at >= 25 images/s on this CPU.

The images are generated scenes (:mod:`salbook.data.synthetic`) at 480 × 640 saved as JPEG
(quality 90); ``--distinct`` scenes are generated and each is saved under several names, so the
decoder does the same work as for 1,000 different photos. The run is exactly what `salbook predict
FOLDER --model fastsal_a --format png` does after parsing its arguments (:func:`salbook.zoo.list_inputs`,
then :func:`salbook.zoo.predict_files`), with the trained model of ``--profile`` when it is cached,
else the same architecture untrained (identical work; the output says which).

Usage::

    flock /tmp/salbook-heavy.lock .venv/bin/python benchmarks/bench_predict.py [--n 1000] [--model fastsal_a]
        [--profile book] [--format png] [--batch 8] [--threads 2] [--input-size H W] [--repeats 1]

Prints one line per repeat and a final summary; ``--json PATH`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_images(folder: Path, n: int, size: tuple[int, int], distinct: int) -> list[Path]:
    """``n`` JPEGs of ``size`` (H, W) in ``folder``: ``distinct`` generated scenes, each saved under
    ``n / distinct`` names."""
    from salbook.data.synthetic import SyntheticSaliency

    folder.mkdir(parents=True, exist_ok=True)
    scenes = SyntheticSaliency("test", size=size, n=distinct, cache=False)
    paths = []
    for i in range(distinct):
        img = (scenes[i]["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        first = folder / f"img_{i:05d}.jpg"
        Image.fromarray(img).save(first, quality=90)
        paths.append(first)
    for k in range(distinct, n):
        target = folder / f"img_{k:05d}.jpg"
        shutil.copyfile(paths[k % distinct], target)
        paths.append(target)
    return paths[:n]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    p.add_argument("--distinct", type=int, default=50)
    p.add_argument("--model", default="fastsal_a")
    p.add_argument("--profile", default="book")
    p.add_argument("--format", default="png", choices=("png", "npy", "overlay"))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: unchanged)")
    p.add_argument("--input-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="network input size instead of the recipe's (untrained model only)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--channels-last", action="store_true", help="run the network channels-last (NHWC)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    from salbook import zoo

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.input_size:
            raise zoo.ModelNotTrained("--input-size asks for the untrained architecture")
        loaded = zoo.load(args.model, args.profile, "cpu")
        which = f"trained ({args.profile} profile, {loaded.source})"
    except zoo.ModelNotTrained as err:
        loaded = zoo.loaded_untrained(args.model, args.profile, args.input_size)
        which = f"UNTRAINED {args.model} (same architecture and work; {err})"
    loaded = loaded.for_inference(channels_last=args.channels_last)  # as `salbook predict` runs it
    print(f"model: {which}; network input {loaded.input_size[0]}×{loaded.input_size[1]}; BN folded"
          f"{', channels-last' if args.channels_last else ''}; torch threads {torch.get_num_threads()}")

    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        make_images(tmp / "images", args.n, tuple(args.size), min(args.distinct, args.n))
        print(f"generated {args.n} images of {args.size[0]}×{args.size[1]} in {time.perf_counter() - t0:.1f} s")
        rates = []
        for r in range(args.repeats):
            out = tmp / f"out{r}"
            start = time.perf_counter()
            pairs = zoo.list_inputs([tmp / "images"], out, args.format)
            report = zoo.predict_files(loaded, pairs, args.format, args.batch, progress=False)
            seconds = time.perf_counter() - start
            if report.failed:
                raise RuntimeError(f"{len(report.failed)} images failed: {report.failed[:3]}")
            written = len(list(out.rglob("*")))
            rates.append(args.n / seconds)
            print(f"repeat {r + 1}: {args.n} images -> {written} {args.format} maps in {seconds:.2f} s = "
                  f"{rates[-1]:.1f} images/s")
            shutil.rmtree(out)
    result = {"model": args.model, "which": which, "input_size": list(loaded.input_size), "n": args.n,
              "image_size": list(args.size), "format": args.format, "batch": args.batch,
              "threads": torch.get_num_threads(), "images_per_s": rates, "median_images_per_s": float(np.median(rates)),
              "target_images_per_s": 25.0}
    ok = result["median_images_per_s"] >= 25.0
    print(f"median {result['median_images_per_s']:.1f} images/s (target >= 25: {'met' if ok else 'NOT met'})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
