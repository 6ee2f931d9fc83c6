"""The book runner: notebook conventions, records, failure reports, regression comparison."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from salbook import book, cli, runner

ROOT = Path(__file__).resolve().parents[1]

HEADER = """\
# ---
# jupyter:
#   jupytext:
#     text_representation: {extension: .py, format_name: percent}
#   kernelspec: {display_name: Python 3, language: python, name: python3}
# ---
"""

PARAMS = """\
# %% tags=["parameters"]
profile = "smoke"
dataset = "synthetic"
data_root = None
device = "auto"
seed = 0
"""


def make_book(tmp_path: Path, body: str, name: str = "00_tiny") -> Path:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_config.yml").write_text("title: t\n")
    nb = tmp_path / "notebooks" / f"{name}.py"
    nb.write_text(HEADER + "\n" + PARAMS + "\n" + textwrap.dedent(body))
    return nb


# ----------------------------------------------------------------------------- notebook side

def test_pick_returns_profile_settings_and_rejects_unknown() -> None:
    assert book.pick("book", smoke=1, book=2, paper=3) == 2
    with pytest.raises(ValueError, match="unknown profile"):
        book.pick("fast", smoke=1)
    with pytest.raises(ValueError, match="no settings for profile 'paper'"):
        book.pick("paper", smoke=1, book=2)


def test_record_writes_json_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "rec.json"
    monkeypatch.setenv(book.RECORD_ENV, str(target))
    assert book.record("a.b", 0.5, tol=0.01) == 0.5
    book.record("a.nan", float("nan"), tol=0.01)
    data = json.loads(target.read_text())
    assert data["metrics"]["a.b"] == {"value": 0.5, "tol": 0.01, "rel": 0.0}
    assert data["metrics"]["a.nan"]["value"] is None
    with pytest.raises(ValueError):
        book.record("has space", 1.0, tol=0.1)
    with pytest.raises(TypeError):
        book.record("x", "high", tol=0.1)


# ----------------------------------------------------------------------------- conventions

def test_read_notebook_requires_one_parameters_cell(tmp_path: Path) -> None:
    nb = tmp_path / "00_bad.py"
    nb.write_text(HEADER + "\n# %%\nx = 1\n")
    with pytest.raises(ValueError, match="exactly one cell tagged 'parameters'"):
        runner.read_notebook(nb)
    nb.write_text(HEADER + '\n# %% tags=["parameters"]\nprofile = "smoke"\n')
    with pytest.raises(ValueError, match="must define dataset, data_root, device, seed"):
        runner.read_notebook(nb)


def test_every_chapter_follows_the_conventions_and_is_in_the_toc() -> None:
    toc = (ROOT / "_toc.yml").read_text()
    chapters = runner.discover_notebooks(ROOT)
    assert chapters, "no chapters found"
    for path in chapters:
        runner.read_notebook(path)
        assert f"notebooks/{path.stem}" in toc, f"{path.name} is not listed in _toc.yml"


# ----------------------------------------------------------------------------- execution

@pytest.mark.slow
def test_run_records_parameters_seed_and_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(book.RECORD_ENV, raising=False)
    nb = make_book(tmp_path, """\
        # %%
        from salbook.book import record, record_meta
        record_meta(device="cpu")
        record("tiny.seed_plus_one", seed + 1, tol=0.0)
        """)
    rec = runner.run_notebook(nb, "smoke", tmp_path, {"seed": 1}, progress=False)
    assert rec["seed"] == 1 and rec["parameters"]["dataset"] == "synthetic"
    assert rec["metrics"]["tiny.seed_plus_one"]["value"] == 2.0
    assert rec["device"] == "cpu" and rec["wall_time_s"] > 0 and "torch" in rec["versions"]
    saved = json.loads((tmp_path / "_build/records/smoke/00_tiny.json").read_text())
    assert saved == rec
    assert (tmp_path / "_build/executed/smoke/00_tiny.ipynb").exists()


@pytest.mark.slow
def test_failing_cell_names_notebook_and_cell(tmp_path: Path) -> None:
    nb = make_book(tmp_path, """\
        # %%
        x = 1

        # %%
        raise ValueError("the data went missing")
        """, name="03_broken")
    with pytest.raises(runner.NotebookFailed) as err:
        runner.run_notebook(nb, "smoke", tmp_path, progress=False)
    msg = str(err.value)
    assert "03_broken.py" in msg and "cell [" in msg
    assert "raise ValueError" in msg and "the data went missing" in msg


# ----------------------------------------------------------------------------- regression

def _rec(value: float | None, tol: float = 0.01, rel: float = 0.0) -> dict:
    return {"value": value, "tol": tol, "rel": rel}


def test_compare_statuses() -> None:
    base = {"a": _rec(0.5), "b": _rec(0.5), "c": _rec(0.5), "d": _rec(10.0, tol=0.0, rel=0.1)}
    now = {"a": _rec(0.505), "b": _rec(0.6), "e": _rec(1.0), "d": _rec(10.9)}
    report = runner.compare(base, now)
    status = {r.metric: r.status for r in report.rows}
    assert status == {"a": "ok", "b": "DRIFT", "c": "MISSING", "d": "ok", "e": "NO BASELINE"}
    assert not report.ok
    assert "DRIFT" in report.table() and "baseline" in report.table()
    assert runner.compare({"n": _rec(0.5)}, {"n": _rec(None)}).rows[0].status == "NAN"
    assert runner.compare({"a": _rec(0.5)}, {"a": _rec(0.5)}).ok


def test_cli_regress_fails_on_drift_and_shows_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_config.yml").write_text("title: t\n")
    records = tmp_path / "_build/records/smoke"
    records.mkdir(parents=True)
    (records / "00_x.json").write_text(json.dumps({"notebook": "00_x.py", "metrics": {"x.cc": _rec(0.70)}}))
    baseline = tmp_path / "base.json"
    assert cli.main(["--root", str(tmp_path), "regress", "--profile", "smoke", "--baseline", str(baseline), "--update"]) == 0
    assert cli.main(["--root", str(tmp_path), "regress", "--profile", "smoke", "--baseline", str(baseline)]) == 0
    (records / "00_x.json").write_text(json.dumps({"notebook": "00_x.py", "metrics": {"x.cc": _rec(0.60)}}))
    assert cli.main(["--root", str(tmp_path), "regress", "--profile", "smoke", "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "x.cc" in out and "DRIFT" in out and "0.7" in out and "0.6" in out


def test_parse_parameters_reads_yaml_scalars() -> None:
    assert runner.parse_parameters([["seed", "1"], ["data_root", "/data/x"], ["lr", "0.1"], ["x", "null"]]) == {
        "seed": 1, "data_root": "/data/x", "lr": 0.1, "x": None}


def test_baseline_tolerance_is_widened_to_the_seed_range(tmp_path: Path) -> None:
    now = {"a": {**_rec(0.5, tol=0.01), "notebook": "00_x.py"}, "b": {**_rec(0.2, tol=0.05), "notebook": "00_x.py"}}
    spread = {"a": {"range": 0.04, "std": 0.02, "values": [0.5, 0.54], "runs": 2},
              "b": {"range": 0.01, "std": 0.005, "values": [0.2, 0.21], "runs": 2}}
    path = tmp_path / "smoke.json"
    runner.write_baseline(path, now, "smoke", spread)
    data = json.loads(path.read_text())["metrics"]
    assert data["a"]["tol"] == 0.04 and data["a"]["declared_tol"] == 0.01 and data["a"]["seed_range"] == 0.04
    assert data["b"]["tol"] == 0.05
    assert runner.compare(data, {"a": _rec(0.535)}).rows[0].status == "ok"


@pytest.mark.slow
def test_figures_reach_the_executed_notebook_even_with_a_headless_backend(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")  # what a headless shell often sets
    nb = make_book(tmp_path, """\
        # %%
        import matplotlib.pyplot as plt
        plt.plot([0, 1]); plt.show()
        """)
    runner.run_notebook(nb, "smoke", tmp_path, progress=False)
    cells = json.loads((tmp_path / "_build/executed/smoke/00_tiny.ipynb").read_text())["cells"]
    assert any("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))
    assert os.environ["MPLBACKEND"] == "Agg"  # the caller's environment is restored


@pytest.mark.slow
def test_a_plot_that_renders_nothing_fails_the_run(tmp_path: Path) -> None:
    nb = make_book(tmp_path, """\
        # %%
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        plt.plot([0, 1]); plt.show()
        """, name="02_blank")
    with pytest.raises(runner.NotebookFailed, match="02_blank.py: cell .* no figure was rendered"):
        runner.run_notebook(nb, "smoke", tmp_path, progress=False)
