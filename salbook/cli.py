"""The ``salbook`` command: run chapters, build the book, compare recorded numbers.

    salbook run [--profile P] [NOTEBOOK ...] [-p KEY VALUE ...]
    salbook build [--profile P] [--strict]
    salbook regress [--profile P] [--update]
    salbook spread [--profile P] --seeds 1 2
    salbook models [--profile P]
    salbook predict IMAGE_OR_FOLDER... --model NAME [--weights PATH] [--out DIR] [--format png|npy|overlay]
                    [--device auto] [--batch N] [--profile P]

``run -p KEY VALUE`` sets a parameter the chapter declares in its ``parameters`` cell (anything else
is an error that lists them); the profile is set with ``--profile`` only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import runner
from .book import PROFILES

#: ``salbook run``'s profile when ``--profile`` is not given.
DEFAULT_RUN_PROFILE = "book"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="salbook", description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=None, help="the book's checkout (default: found from cwd)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="execute chapters with papermill")
    # default None, so that `-p profile X` can be told apart from an explicit --profile Y
    r.add_argument("--profile", choices=PROFILES, default=None, help=f"run profile (default: {DEFAULT_RUN_PROFILE})")
    r.add_argument("notebooks", nargs="*", type=Path, help="chapter sources (default: all, in order)")
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="override a parameter the chapter declares in its parameters cell, e.g. -p seed 1 "
                        "-p dataset salicon -p data_root /data/salicon (not profile: use --profile)")
    r.add_argument("--out", default=None, help="name of the records/executed folder (default: the profile)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")

    b = sub.add_parser("build", help="build the HTML book from the executed notebooks")
    b.add_argument("--profile", choices=PROFILES, default="book")
    b.add_argument("--strict", action="store_true", help="warnings are errors (-W -n --keep-going)")
    b.add_argument("--out", default=None, help="executed folder to build from (default: the profile)")

    g = sub.add_parser("regress", help="compare recorded numbers with tests/baselines/<profile>.json")
    g.add_argument("--profile", choices=PROFILES, default="smoke")
    g.add_argument("--baseline", type=Path, default=None)
    g.add_argument("--out", default=None, help="records folder to compare (default: the profile)")
    g.add_argument("--update", action="store_true", help="write the current numbers as the baseline")

    s = sub.add_parser("spread", help="re-run with other seeds (training randomness only: the data and the "
                                      "evaluation draws stay fixed, see salbook.book.SEED_CONTRACT); "
                                      "measure each number's seed-to-seed range")
    s.add_argument("--profile", choices=PROFILES, default="smoke")
    s.add_argument("--seeds", type=int, nargs="+", required=True)
    s.add_argument("notebooks", nargs="*", type=Path)
    s.add_argument("--no-progress", action="store_true")

    m = sub.add_parser("models", help="the book's trained models: cached or not, headline scores, cost, "
                                      "and the command that trains each")
    m.add_argument("--profile", choices=PROFILES, default="book", help="whose trained models (default: book)")

    q = sub.add_parser("predict", help="saliency maps for your own images with one of the book's models")
    q.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE_OR_FOLDER",
                   help="image files and/or folders (searched recursively)")
    q.add_argument("--model", required=True, help="a name from `salbook models`")
    q.add_argument("--weights", type=Path, default=None,
                   help="a checkpoint to use instead of the cached trained model (final.pt or a state dict)")
    q.add_argument("--out", type=Path, default=Path("saliency_maps"), help="output folder (default: saliency_maps)")
    q.add_argument("--format", choices=("png", "npy", "overlay"), default="png",
                   help="png: map scaled to 0-255; npy: density summing to 1; overlay: map over the image")
    q.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    q.add_argument("--batch", type=int, default=8, help="images per forward pass (default 8)")
    q.add_argument("--profile", choices=PROFILES, default="book",
                   help="which profile's trained model (default: book)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _models(args: argparse.Namespace, root: Path) -> int:
    import pandas as pd

    from . import zoo

    table = zoo.models_table(args.profile, root)
    with pd.option_context("display.max_columns", None, "display.width", 200):
        print(table.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.3g}"))
    missing = table[table.status != "trained"]
    if len(missing):
        print(f"\n{len(missing)} of {len(table)} not trained in the {args.profile!r} profile: run the command in "
              "'trained by'.")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from . import zoo
    from .utils import resolve_device

    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}")
    zoo.get(args.model)  # unknown names fail before anything is read
    pairs = zoo.list_inputs(args.inputs, args.out, args.format)
    device = resolve_device(args.device)
    if args.weights is not None:
        loaded = zoo.load_weights(args.model, args.weights, args.profile, device, root=args.root)
    else:
        loaded = zoo.load(args.model, args.profile, device, root=args.root)
    report = zoo.predict_files(loaded.for_inference(), pairs, args.format, args.batch, progress=not args.no_progress)
    print(f"{len(report.written)} maps written to {args.out} ({args.format}, model {args.model} from {loaded.source}) "
          f"in {report.seconds:.1f} s ({report.images_per_s:.1f} images/s)")
    for src, why in report.failed:
        print(f"ERROR: {src}: {why}", file=sys.stderr)
    if report.failed:
        print(f"{len(report.failed)} of {len(pairs)} images failed (listed above)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "predict":
            return _predict(args)
    except KeyError as err:
        print(f"\nERROR: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"\nERROR: {err}", file=sys.stderr)
        return 2
    root = runner.find_root(args.root)
    try:
        if args.command == "run":
            nbs = [n.resolve() for n in args.notebooks] or None
            for n in nbs or []:
                if not n.is_file():
                    raise FileNotFoundError(f"no such notebook: {n}")
            params = runner.parse_parameters(args.parameter)
            runner.check_profile_parameter(params, args.profile)  # before the default profile fills in
            runner.run_all(root, args.profile or DEFAULT_RUN_PROFILE, nbs, params,
                           args.out, progress=not args.no_progress)
        elif args.command == "build":
            index = runner.build_book(root, args.profile, strict=args.strict, out_name=args.out)
            print(f"book built: {index}")
        elif args.command == "regress":
            path = args.baseline or root / "tests" / "baselines" / f"{args.profile}.json"
            now = runner.load_records(root, args.profile, args.out)
            if args.update:
                spread_file = root / "_build" / "records" / (args.out or args.profile) / "_spread.json"
                spread = json.loads(spread_file.read_text())["metrics"] if spread_file.exists() else None
                runner.write_baseline(path, now, args.profile, spread,
                                      runner.load_configs(root, args.profile, args.out))
                how = f"tolerances widened to the seed range in {spread_file}" if spread else "declared tolerances"
                print(f"wrote {len(now)} numbers to {path} ({how})")
                return 0
            report = runner.compare(runner.load_baseline(path), now)
            print(report.table())
            bad = [r for r in report.rows if r.status != "ok"]
            print(f"\n{len(report.rows) - len(bad)} ok, {len(bad)} failed against {path}")
            return 0 if report.ok else 1
        elif args.command == "models":
            return _models(args, root)
        elif args.command == "spread":
            nbs = [n.resolve() for n in args.notebooks] or None
            spread = runner.measure_spread(root, args.profile, args.seeds, nbs, progress=not args.no_progress)
            print(f"{'metric':40s} {'range':>10s} {'std':>10s}  values")
            for key, m in sorted(spread.items()):
                vals = ", ".join(f"{v:.4g}" for v in m["values"])
                print(f"{key:40s} {m['range']:10.4g} {m['std']:10.4g}  {vals}")
    except runner.NotebookFailed as err:
        print(f"\nERROR: {err}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"\nERROR: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
