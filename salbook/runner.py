"""Execute the chapters with papermill, build the book from the executed copies, compare numbers.

Layout of the build folder (never committed)::

    _build/executed/<profile>/<stem>.ipynb   executed notebooks, with outputs
    _build/records/<profile>/<stem>.json     numbers each notebook recorded, their configs, run facts
    _build/records/<profile>/_run.json       wall time of each notebook in the last run
    _build/site/                             the book's sources with the executed notebooks
    _build/html/                             the built book

Papermill is the only executor; Jupyter Book's own execution is off (``_config.yml``). The kernel
talks to papermill over IPC (Unix sockets in Jupyter's runtime folder) rather than TCP on localhost,
so nothing listens on a port and ipykernel has no unencrypted-TCP warning to print.

Parameters: ``profile`` is set by the ``profile`` argument (``--profile``) only, and every other
parameter passed must be declared in the chapter's ``parameters`` cell; both are checked for all the
requested chapters before any of them runs (:func:`check_parameters`).
"""

from __future__ import annotations

import ast
import difflib
import functools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .book import PROFILES, RECORD_ENV
from .utils import atomic_write_text

__all__ = [
    "find_root",
    "discover_notebooks",
    "read_notebook",
    "declared_parameters",
    "check_parameters",
    "check_profile_parameter",
    "kernel_manager_class",
    "NotebookFailed",
    "run_notebook",
    "run_all",
    "build_book",
    "compare",
    "load_records",
    "load_configs",
    "load_baseline",
    "write_baseline",
    "measure_spread",
]

NOTEBOOK_GLOB = "[0-9][0-9]_*.py"
REQUIRED_PARAMETERS = ("profile", "dataset", "data_root", "device", "seed")
#: Wall-time budgets of a whole-book run on the reference machine (2 CPU cores), seconds. Recorded
#: and reported by the runner, never asserted by a timed test.
BUDGET_S = {"smoke": 600, "book": 5400}
VERSIONED_PACKAGES = ("salbook", "torch", "torchvision", "numpy", "scipy", "scikit-learn", "pysodmetrics", "papermill")


class NotebookFailed(RuntimeError):
    """A notebook cell raised; the message names the notebook, the cell and the error."""


def find_root(start: str | os.PathLike | None = None) -> Path:
    """The book's root: the nearest folder at or above ``start`` (default: cwd) with ``_config.yml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    raise FileNotFoundError(
        f"no book found at or above {here}: expected a folder with _config.yml and notebooks/. "
        "Run salbook from the checkout of the book (or pass --root)."
    )


def discover_notebooks(root: Path) -> list[Path]:
    """The chapter sources ``notebooks/NN_*.py``, in order."""
    return sorted((root / "notebooks").glob(NOTEBOOK_GLOB))


def _parse_parameters_cell(source: str, name: str) -> dict[str, Any]:
    """The names a ``parameters`` cell assigns at its top level → their defaults.

    A default that is a Python literal is returned as its value (``0``, ``None``, ``"smoke"``), any
    other as its source text (``2 * 3``), as papermill reports it.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ValueError(f"{name}: the parameters cell is not valid Python ({err.msg}, line {err.lineno})") from None
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        try:
            default: Any = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            default = ast.get_source_segment(source, value)
        out.update({t.id: default for t in targets if isinstance(t, ast.Name)})
    return out


def _read_checked(path: Path) -> tuple["nbformat.NotebookNode", dict[str, Any]]:  # noqa: F821
    """:func:`read_notebook` and :func:`declared_parameters` in one read."""
    import jupytext

    nb = jupytext.read(path)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{path.name}: expected exactly one cell tagged 'parameters', found {len(tagged)}")
    declared = _parse_parameters_cell(nb.cells[tagged[0]].source, path.name)
    missing = [p for p in REQUIRED_PARAMETERS if p not in declared]
    if missing:
        raise ValueError(f"{path.name}: the parameters cell must define {', '.join(missing)}")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb, declared


def read_notebook(path: Path) -> "nbformat.NotebookNode":  # noqa: F821
    """Read a jupytext source and check the book's conventions (exactly one ``parameters`` cell
    holding at least :data:`REQUIRED_PARAMETERS`)."""
    return _read_checked(path)[0]


def declared_parameters(path: Path) -> dict[str, Any]:
    """The parameters a chapter declares in its ``parameters`` cell → their defaults (see
    :func:`read_notebook` for the conventions checked on the way)."""
    return _read_checked(path)[1]


def check_profile_parameter(parameters: Mapping[str, Any], profile: str | None) -> None:
    """The profile is set with ``--profile`` (the ``profile`` argument) only, never with ``-p profile``.

    ``profile`` is ``None`` when the caller's profile was left at its default.
    """
    if "profile" not in parameters:
        return
    given = parameters["profile"]
    if profile is None:
        raise ValueError(f"-p profile {given}: the profile is not set with -p; use --profile {given} instead")
    if given != profile:
        raise ValueError(
            f"two profiles given: -p profile {given} and --profile {profile}; "
            f"set the profile with --profile only (drop -p profile {given})"
        )
    raise ValueError(f"-p profile {given} repeats --profile {profile}; set the profile with --profile only "
                     f"(drop -p profile {given})")


def _undeclared(name: str, declared: Mapping[str, Any], parameters: Mapping[str, Any]) -> str | None:
    """Why ``parameters`` do not fit notebook ``name`` (names it does not declare), or ``None``."""
    unknown = [k for k in parameters if k not in declared]
    if not unknown:
        return None
    choices = [k for k in declared if k != "profile"]

    def hint(key: str) -> str:
        close = difflib.get_close_matches(key, choices, n=1)
        return f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key)

    return (f"{name} does not declare {', '.join(hint(k) for k in unknown)}; its parameters cell declares "
            f"{', '.join(choices)} (and profile, set with --profile)")


def check_parameters(notebooks: Sequence[Path], parameters: Mapping[str, Any] | None,
                     profile: str | None = None) -> None:
    """Check ``parameters`` (``-p KEY VALUE``) against every notebook before any of them runs.

    Raises :class:`ValueError` when ``parameters`` hold ``profile`` (it is set with ``--profile``
    only; ``profile`` is the one given there, ``None`` when left at its default) or a name that
    some notebook does not declare in its ``parameters`` cell (the message lists, per notebook,
    what it does declare). A typo such as ``-p sed 1`` therefore stops the run instead of being
    silently ignored.
    """
    params = dict(parameters or {})
    check_profile_parameter(params, profile)
    problems = [msg for path in notebooks
                if (msg := _undeclared(path.name, declared_parameters(path), params)) is not None]
    if problems:
        raise _unknown_parameters(problems)


def _unknown_parameters(problems: Sequence[str]) -> ValueError:
    """The error for parameters that notebooks do not declare (one line per notebook)."""
    return ValueError("unknown parameter, nothing was run:\n  " + "\n  ".join(problems)
                      + "\nfix the -p name, or declare the parameter in the chapter's parameters cell")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _ipc_connection_file() -> Path:
    """A fresh connection file for one kernel; its IPC sockets are ``<stem>-ipc-<port>`` beside it.

    It lives in Jupyter's runtime folder (private to the user) unless that path is too long for a
    Unix socket address (about 100 bytes), then in the temporary folder.
    """
    from jupyter_core.paths import jupyter_runtime_dir

    name = f"kernel-salbook-{uuid.uuid4().hex[:12]}.json"
    folder = Path(jupyter_runtime_dir())
    if len(str(folder / name)) + len("-ipc-65535") > 100:
        folder = Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / name


@functools.lru_cache(maxsize=None)
def kernel_manager_class() -> type | None:
    """The kernel manager papermill starts the kernel with: IPC transport on POSIX systems.

    Over the default TCP transport ipykernel warns that it is "running over TCP without
    encryption" into the run's output. Over IPC (Unix domain sockets, in a private folder) there is
    no port and no warning. ``None`` (nbclient's default, TCP) where IPC is not available.
    """
    if os.name != "posix":
        return None
    from jupyter_client import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        """nbclient's default kernel manager, with the kernel's sockets on IPC instead of TCP."""

        def __init__(self, **kwargs: Any) -> None:
            if not kwargs.get("connection_file"):
                connection_file = _ipc_connection_file()
                kwargs["connection_file"] = str(connection_file)
                kwargs.setdefault("ip", str(connection_file.with_suffix("")) + "-ipc")
            kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)

    return IPCKernelManager


def _describe_failure(err: Exception, nb_path: Path, executed: Path) -> str:
    """Name the notebook and the failing cell (its number among code cells and first line)."""
    try:
        import nbformat

        nb = nbformat.read(executed, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    number = cell.get("execution_count")
                    first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
                    return (
                        f"{nb_path.name}: cell [{number}] failed ({first.strip()[:80]!r}): "
                        f"{out.get('ename')}: {out.get('evalue')}\nexecuted copy with the traceback: {executed}"
                    )
    except Exception:  # pragma: no cover - fall back to papermill's own message
        pass
    return f"{nb_path.name}: execution failed: {err}"


def run_notebook(
    nb_path: Path,
    profile: str,
    root: Path,
    parameters: dict[str, Any] | None = None,
    out_name: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Execute one chapter with papermill; return its record (numbers + run facts).

    ``parameters`` override the notebook's parameters cell; each must be declared there, and
    ``profile`` is set by the ``profile`` argument only (see :func:`check_parameters`; checked before
    the kernel starts). The record holds the numbers the notebook recorded (each with the hash of
    its config when it gave one) and ``configs``: hash → config.
    Raises :class:`NotebookFailed` naming the notebook and the cell when a cell raises.
    """
    import nbformat
    import papermill

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    tag = out_name or profile
    build = root / "_build"
    src_ipynb = build / "sources" / f"{nb_path.stem}.ipynb"
    executed = build / "executed" / tag / f"{nb_path.stem}.ipynb"
    record_file = build / "records" / tag / f"{nb_path.stem}.json"
    nb, declared = _read_checked(nb_path)
    check_profile_parameter(parameters or {}, profile)
    problem = _undeclared(nb_path.name, declared, parameters or {})
    if problem:
        raise _unknown_parameters([problem])
    for p in (src_ipynb, executed, record_file):
        p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(src_ipynb, nbformat.writes(nb))
    params = {"profile": profile, **(parameters or {})}
    manager = kernel_manager_class()
    partial = record_file.with_suffix(".partial.json")
    partial.unlink(missing_ok=True)
    env_before = os.environ.get(RECORD_ENV)
    os.environ[RECORD_ENV] = str(partial)
    # Inside the kernel, progress bars would end up in the book's pages: off unless asked for.
    os.environ.setdefault("SALBOOK_PROGRESS", "0")
    # Figures must land in the executed notebook: a non-inline MPLBACKEND (Agg, set for headless
    # scripts) inherited by the kernel would make plt.show() draw nothing.
    backend_before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(src_ipynb),
            str(executed),
            parameters=params,
            kernel_name="python3",
            cwd=str(nb_path.parent),
            progress_bar=progress and sys.stderr.isatty(),
            log_output=False,
            **({"kernel_manager_class": manager} if manager is not None else {}),
        )
    except Exception as err:
        raise NotebookFailed(_describe_failure(err, nb_path, executed)) from None
    finally:
        for key, before in ((RECORD_ENV, env_before), ("MPLBACKEND", backend_before)):
            if before is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = before
    wall = time.perf_counter() - start
    _check_figures(nb_path, executed)
    recorded = json.loads(partial.read_text()) if partial.exists() else {}
    partial.unlink(missing_ok=True)
    resolved = {**declared, **params}
    rec = {
        "notebook": nb_path.name,
        "profile": profile,
        "parameters": resolved,
        "seed": resolved.get("seed"),
        "device": recorded.get("meta", {}).get("device", resolved.get("device")),
        "meta": recorded.get("meta", {}),
        "versions": _versions(),
        "wall_time_s": round(wall, 2),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "metrics": recorded.get("metrics", {}),
        "configs": recorded.get("configs", {}),
    }
    atomic_write_text(record_file, json.dumps(rec, indent=2, sort_keys=True))
    return rec


def _check_figures(nb_path: Path, executed: Path) -> None:
    """A cell that calls ``plt.show()`` must leave an image in the executed notebook."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or "plt.show()" not in cell.source:
            continue
        images = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})]
        if not images:
            first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
            raise NotebookFailed(
                f"{nb_path.name}: cell [{cell.get('execution_count')}] ({first.strip()[:60]!r}) calls plt.show() "
                "but no figure was rendered into the notebook; is matplotlib's backend inline in the kernel?"
            )


def run_all(
    root: Path,
    profile: str,
    notebooks: Sequence[Path] | None = None,
    parameters: dict[str, Any] | None = None,
    out_name: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Execute ``notebooks`` (default: every chapter) in order; write ``_run.json`` with wall times.

    ``parameters`` are checked against every notebook first (:func:`check_parameters`): a bad one
    stops the run before anything executes.
    """
    paths = list(notebooks) if notebooks else discover_notebooks(root)
    if not paths:
        raise FileNotFoundError(f"no notebooks matching {NOTEBOOK_GLOB} in {root / 'notebooks'}")
    check_parameters(paths, parameters, profile)
    results = []
    total = time.perf_counter()
    for i, path in enumerate(paths, 1):
        print(f"[{i}/{len(paths)}] {path.name} (profile {profile}) ...", flush=True)
        rec = run_notebook(path, profile, root, parameters, out_name, progress)
        print(f"[{i}/{len(paths)}] {path.name} done in {rec['wall_time_s']:.1f} s, "
              f"{len(rec['metrics'])} numbers recorded", flush=True)
        results.append(rec)
    summary = {
        "profile": profile,
        "notebooks": {r["notebook"]: r["wall_time_s"] for r in results},
        "total_s": round(time.perf_counter() - total, 2),
        "budget_s": BUDGET_S.get(profile),
        "cpu_count": os.cpu_count(),
    }
    print(f"executed {len(results)} notebook(s) in {summary['total_s']:.1f} s", flush=True)
    if not notebooks:  # only a full run states the book's total
        budget = BUDGET_S.get(profile)
        if budget:
            summary["within_budget"] = summary["total_s"] <= budget
            verdict = "within" if summary["within_budget"] else "OVER"
            print(f"the whole book, profile {profile}: {summary['total_s'] / 60:.1f} min, {verdict} its "
                  f"budget of {budget / 60:.0f} min (on {os.cpu_count()} CPU cores)", flush=True)
        run_file = root / "_build" / "records" / (out_name or profile) / "_run.json"
        atomic_write_text(run_file, json.dumps(summary, indent=2))
    return results


# ----------------------------------------------------------------------------- the book

def _toc_files(root: Path) -> list[str]:
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = [toc["root"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk({k: v for k, v in toc.items() if k != "root"})
    return files


def build_book(root: Path, profile: str, strict: bool = False, out_name: str | None = None) -> Path:
    """Stage the book's sources with the executed notebooks of ``profile`` and run Jupyter Book.

    Returns the path of ``_build/html/index.html``. ``strict`` turns warnings into errors
    (``-W -n --keep-going``). Every notebook listed in ``_toc.yml`` must have been executed.
    """
    build = root / "_build"
    site = build / "site"
    executed = build / "executed" / (out_name or profile)
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, site / name)
    shutil.copytree(root / "book", site / "book")
    missing = []
    for entry in _toc_files(root):
        if not entry.startswith("notebooks/"):
            continue
        stem = Path(entry).name
        src = executed / f"{stem}.ipynb"
        if not src.exists():
            missing.append(stem)
            continue
        (site / "notebooks").mkdir(exist_ok=True)
        shutil.copy2(src, site / "notebooks" / f"{stem}.ipynb")
    if missing:
        raise FileNotFoundError(
            f"no executed notebook for {', '.join(missing)} under {executed}; "
            f"run `salbook run --profile {profile}` first"
        )
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(site), "--path-output", str(root)]
    if strict:
        cmd += ["--warningiserror", "--nitpick", "--keep-going"]
    print("building the book:", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}); see the log above")
    index = build / "html" / "index.html"
    if not index.exists():
        raise RuntimeError(f"jupyter-book finished but {index} is missing")
    return index


# ----------------------------------------------------------------------------- regression

@dataclass
class Comparison:
    """One row of a regression table."""

    metric: str
    baseline: float | None
    now: float | None
    tol: float
    status: str

    def as_row(self) -> list[str]:
        fmt = lambda v: "—" if v is None else f"{v:.4g}"  # noqa: E731
        return [self.metric, fmt(self.baseline), fmt(self.now), f"{self.tol:.3g}", self.status]


@dataclass
class RegressionReport:
    rows: list[Comparison] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status == "ok" for r in self.rows) and bool(self.rows)

    def table(self) -> str:
        header = ["metric", "baseline", "now", "tolerance", "status"]
        body = [r.as_row() for r in self.rows]
        widths = [max(len(x) for x in col) for col in zip(header, *body)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
        return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


def _record_files(root: Path, profile: str, out_name: str | None) -> list[dict[str, Any]]:
    """The per-notebook record files of the last run of ``profile``, parsed."""
    folder = root / "_build" / "records" / (out_name or profile)
    files = sorted(p for p in folder.glob("*.json") if not p.name.startswith("_") and ".partial" not in p.name)
    if not files:
        raise FileNotFoundError(f"no records in {folder}; run `salbook run --profile {profile}` first")
    return [json.loads(f.read_text()) for f in files]


def load_records(root: Path, profile: str, out_name: str | None = None) -> dict[str, dict[str, Any]]:
    """All numbers recorded by the last run of ``profile`` (key → {value, tol, rel, notebook}, and
    ``config``: the hash of the number's config in :func:`load_configs`, when it was recorded with one)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in _record_files(root, profile, out_name):
        for key, m in rec["metrics"].items():
            out[key] = {**m, "notebook": rec["notebook"]}
    return out


def load_configs(root: Path, profile: str, out_name: str | None = None) -> dict[str, dict[str, Any]]:
    """The configs of the last run of ``profile``: hash → config (the ``config`` of a number in
    :func:`load_records` is a key here)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in _record_files(root, profile, out_name):
        out.update(rec.get("configs", {}))
    return out


def load_baseline(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"no baseline at {path}; create it with `salbook regress --update`")
    return json.loads(path.read_text())["metrics"]


def compare(baseline: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]]) -> RegressionReport:
    """Compare recorded numbers with the baseline.

    A number fails when it moved by more than ``max(tol, rel * |baseline|)`` (both taken from the
    baseline), is missing from the run, has no baseline, or is NaN.
    """
    report = RegressionReport()
    for key in sorted(set(baseline) | set(now)):
        b, n = baseline.get(key), now.get(key)
        bv = None if b is None else b.get("value")
        nv = None if n is None else n.get("value")
        spec = b or n or {}
        tol = max(float(spec.get("tol", 0.0)), float(spec.get("rel", 0.0)) * abs(bv or 0.0))
        if b is None:
            status = "NO BASELINE"
        elif n is None:
            status = "MISSING"
        elif nv is None or bv is None or (isinstance(nv, float) and math.isnan(nv)):
            status = "NAN"
        elif abs(nv - bv) > tol + 1e-12:
            status = "DRIFT"
        else:
            status = "ok"
        report.rows.append(Comparison(key, bv, nv, tol, status))
    return report


def measure_spread(root: Path, profile: str, seeds: Sequence[int], notebooks: Sequence[Path] | None = None,
                   progress: bool = True) -> dict[str, dict[str, Any]]:
    """Re-run the chapters of ``profile`` with other ``seeds`` and measure each number's spread.

    The runs go to ``_build/records/<profile>-seed<k>/``; together with the main run (its own seed)
    they give, per number, the values, their range (max - min) and standard deviation. The result is
    saved to ``_build/records/<profile>/_spread.json``, where ``regress --update`` reads it. When
    only some ``notebooks`` are re-run, their numbers replace those already in that file and the other
    chapters' measured spreads are kept.
    """
    import statistics

    main = load_records(root, profile)
    runs = {"main": main}
    for seed in seeds:
        name = f"{profile}-seed{seed}"
        run_all(root, profile, notebooks, {"seed": seed}, out_name=name, progress=progress)
        runs[name] = load_records(root, profile, name)
    spread: dict[str, dict[str, Any]] = {}
    for key in main:
        values = [r[key]["value"] for r in runs.values() if key in r and r[key].get("value") is not None]
        if len(values) < 2:
            continue
        spread[key] = {
            "values": values,
            "range": max(values) - min(values),
            "std": statistics.stdev(values),
            "runs": len(values),
        }
    spread_file = root / "_build" / "records" / profile / "_spread.json"
    merged, all_seeds = spread, sorted({int(s) for s in seeds})
    if notebooks is not None and spread_file.exists():
        earlier = json.loads(spread_file.read_text())
        merged = {**earlier.get("metrics", {}), **spread}
        all_seeds = sorted({*all_seeds, *(int(s) for s in earlier.get("seeds", []))})
    atomic_write_text(spread_file, json.dumps({"seeds": all_seeds, "metrics": merged}, indent=2, sort_keys=True))
    return spread


def write_baseline(path: Path, now: dict[str, dict[str, Any]], profile: str,
                   spread: dict[str, dict[str, Any]] | None = None,
                   configs: Mapping[str, dict[str, Any]] | None = None) -> None:
    """Write the current numbers as the baseline of ``profile``.

    Each number's tolerance is the larger of the tolerance the chapter declared and, when a spread
    measurement is given (:func:`measure_spread`), the range of the number across seeds: a change
    smaller than what re-seeding alone does is not called a drift. The baseline keeps both, so the
    origin of every tolerance can be read off the file. A number's ``config`` hash is kept too, and
    the configs it names (from ``configs``, see :func:`load_configs`) go to the file's ``configs``
    section; :func:`compare` ignores them.
    """
    metrics: dict[str, dict[str, Any]] = {}
    for key, v in now.items():
        entry = {kk: vv for kk, vv in v.items() if kk in ("value", "tol", "rel", "notebook", "config")}
        entry["declared_tol"] = entry["tol"]
        if spread and key in spread:
            entry["seed_range"] = round(spread[key]["range"], 6)
            entry["tol"] = max(entry["tol"], entry["seed_range"])
        metrics[key] = entry
    used = sorted({m["config"] for m in metrics.values() if "config" in m})
    missing = [h for h in used if h not in (configs or {})]
    if missing:
        raise ValueError(f"no config for hash(es) {', '.join(missing)} named by the numbers; pass configs= "
                         "(runner.load_configs of the same run)")
    payload = {"profile": profile, "written": time.strftime("%Y-%m-%d"), "versions": _versions(),
               "tolerance_rule": "tol = max(declared tol, range across seeds measured by `salbook spread`)",
               "metrics": metrics}
    if used:
        payload["configs"] = {h: configs[h] for h in used}
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def parse_parameters(pairs: Iterable[Sequence[str]]) -> dict[str, Any]:
    """``-p KEY VALUE`` pairs → values, read as YAML scalars like papermill does (``1`` → int)."""
    import yaml

    return {k: yaml.safe_load(v) for k, v in pairs}
