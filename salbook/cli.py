"""The ``salbook`` command: run chapters, build the book, compare recorded numbers.

    salbook run [--profile P] [NOTEBOOK ...] [-p KEY VALUE ...]
    salbook build [--profile P] [--strict]
    salbook regress [--profile P] [--update]
    salbook spread [--profile P] --seeds 1 2

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
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
