"""The book runner: notebook conventions, records, failure reports, regression comparison."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import textwrap
from pathlib import Path

import pytest

import salbook
from salbook import baselines, book, cli, runner
from salbook.data.synthetic import SyntheticSaliency
from salbook.recipes.pan import PanConfig

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


def make_book(tmp_path: Path, body: str, name: str = "00_tiny", extra_params: str = "") -> Path:
    """A book in ``tmp_path`` with one more chapter ``name`` (its parameters cell: :data:`PARAMS`
    plus ``extra_params``); returns the chapter's path."""
    (tmp_path / "notebooks").mkdir(exist_ok=True)
    (tmp_path / "_config.yml").write_text("title: t\n")
    nb = tmp_path / "notebooks" / f"{name}.py"
    nb.write_text(HEADER + "\n" + PARAMS + extra_params + "\n" + textwrap.dedent(body))
    return nb


@pytest.fixture
def fresh_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty record in this process, as in a fresh kernel."""
    monkeypatch.setattr(book, "_MEMORY", {})
    monkeypatch.setattr(book, "_CONFIGS", {})
    monkeypatch.setattr(book, "_META", {})


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


@dataclasses.dataclass(frozen=True)
class _Cfg:
    model: str = "tiny"
    size: tuple[int, int] = (96, 128)
    root: Path | None = None


def test_record_stores_each_config_once_and_config_of_returns_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_records: None) -> None:
    target = tmp_path / "rec.json"
    monkeypatch.setenv(book.RECORD_ENV, str(target))
    cfg = _Cfg(root=Path("/data/x"))
    book.record("t.cc", 0.5, tol=0.01, config=cfg)
    book.record("t.nss", 1.5, tol=0.1, config=cfg)
    book.record("t.other", 2.0, tol=0.1, config={"model": "big", "lr": 0.1})
    book.record("t.bare", 3.0, tol=0.1)
    data = json.loads(target.read_text())
    h = book.config_hash(cfg)
    assert re.fullmatch(r"[0-9a-f]{12}", h)
    assert data["metrics"]["t.cc"]["config"] == data["metrics"]["t.nss"]["config"] == h
    assert "config" not in data["metrics"]["t.bare"]
    assert len(data["configs"]) == 2  # each distinct config once
    # JSON-friendly: tuples become lists, a path its text
    assert data["configs"][h] == {"model": "tiny", "size": [96, 128], "root": "/data/x"}
    assert data["configs"][data["metrics"]["t.other"]["config"]] == {"model": "big", "lr": 0.1}
    assert book.config_of("t.cc") == data["configs"][h]
    assert book.config_of("t.bare") is None
    book.config_of("t.cc")["model"] = "changed"  # a copy
    assert book.config_of("t.nss")["model"] == "tiny"
    with pytest.raises(KeyError, match="no number recorded as 't.missing'.*t.bare"):
        book.config_of("t.missing")
    # re-recording a number with another config drops the config nobody names any more
    book.record("t.other", 2.0, tol=0.1, config=cfg)
    assert list(json.loads(target.read_text())["configs"]) == [h]


def test_config_accepts_as_dict_dataclasses_and_mappings_only(fresh_records: None) -> None:
    pan = PanConfig(epochs=2)
    book.record("p.cc", 0.5, tol=0.01, config=pan)
    assert book.config_of("p.cc")["recipe"].startswith("pan/")  # as_dict() wins over asdict()
    assert book.config_of("p.cc")["epochs"] == 2
    assert book.config_hash(pan) == book.config_hash(pan.as_dict()) != book.config_hash(PanConfig(epochs=3))
    for bad in (_Cfg, [1, 2], "epochs=2"):
        with pytest.raises(TypeError, match="config must be a dataclass instance"):
            book.record("p.bad", 0.5, tol=0.01, config=bad)


# ----------------------------------------------------------------------------- conventions

def test_read_notebook_requires_one_parameters_cell(tmp_path: Path) -> None:
    nb = tmp_path / "00_bad.py"
    nb.write_text(HEADER + "\n# %%\nx = 1\n")
    with pytest.raises(ValueError, match="exactly one cell tagged 'parameters'"):
        runner.read_notebook(nb)
    nb.write_text(HEADER + '\n# %% tags=["parameters"]\nprofile = "smoke"\n')
    with pytest.raises(ValueError, match="must define dataset, data_root, device, seed"):
        runner.read_notebook(nb)


def test_declared_parameters_reads_the_parameters_cell(tmp_path: Path) -> None:
    nb = make_book(tmp_path, "# %%\nx = 1\n", extra_params='epochs: int = 3\nsizes = (2, 3)\nlr = 2 * 0.05\n')
    declared = runner.declared_parameters(nb)
    assert list(declared) == ["profile", "dataset", "data_root", "device", "seed", "epochs", "sizes", "lr"]
    assert declared["data_root"] is None and declared["epochs"] == 3 and declared["sizes"] == (2, 3)
    assert declared["lr"] == "2 * 0.05"  # not a literal: its source text, as papermill reports it


def test_profile_is_set_with_the_profile_option_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_book(tmp_path, "# %%\nx = 1\n")
    root = ["--root", str(tmp_path)]
    assert cli.main([*root, "run", "--profile", "smoke", "-p", "profile", "paper"]) == 2
    err = capsys.readouterr().err
    assert "-p profile paper" in err and "--profile smoke" in err and "--profile only" in err
    assert cli.main([*root, "run", "-p", "profile", "smoke"]) == 2
    assert "use --profile smoke" in capsys.readouterr().err
    assert cli.main([*root, "run", "--profile", "smoke", "-p", "profile", "smoke"]) == 2
    assert "--profile only" in capsys.readouterr().err
    with pytest.raises(ValueError, match="-p profile book and --profile smoke"):
        runner.run_notebook(tmp_path / "notebooks/00_tiny.py", "smoke", tmp_path, {"profile": "book"})
    assert not (tmp_path / "_build").exists()  # nothing ran


def test_undeclared_parameter_stops_the_run_before_any_notebook_executes(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    first = make_book(tmp_path, "# %%\nx = 1\n", name="00_first", extra_params="epochs = 2\n")
    second = make_book(tmp_path, "# %%\nx = 1\n", name="01_second")
    with pytest.raises(ValueError) as err:
        runner.run_all(tmp_path, "smoke", [first, second], {"epochs": 3}, progress=False)
    msg = str(err.value)
    assert "01_second.py does not declare 'epochs'" in msg and "00_first.py" not in msg
    assert "declares dataset, data_root, device, seed" in msg and "nothing was run" in msg
    assert not (tmp_path / "_build").exists()
    assert cli.main(["--root", str(tmp_path), "run", "--profile", "smoke", str(first), "-p", "sed", "1"]) == 2
    out = capsys.readouterr().err
    assert "'sed' (did you mean 'seed'?)" in out and "declares dataset, data_root, device, seed, epochs" in out
    with pytest.raises(ValueError, match="00_first.py does not declare 'sed'"):
        runner.run_notebook(first, "smoke", tmp_path, {"sed": 1})
    assert not (tmp_path / "_build").exists()


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
        from salbook.book import config_of, record, record_meta
        record_meta(device="cpu")
        record("tiny.seed_plus_one", seed + 1, tol=0.0, config={"seed": seed, "size": (2, 3)})
        record("tiny.plain", 1.0, tol=0.0)
        assert config_of("tiny.seed_plus_one") == {"seed": seed, "size": [2, 3]}
        """)
    rec = runner.run_notebook(nb, "smoke", tmp_path, {"seed": 1}, progress=False)
    assert rec["seed"] == 1 and rec["parameters"]["dataset"] == "synthetic"
    assert rec["metrics"]["tiny.seed_plus_one"]["value"] == 2.0
    assert rec["device"] == "cpu" and rec["wall_time_s"] > 0 and "torch" in rec["versions"]
    h = book.config_hash({"seed": 1, "size": [2, 3]})
    assert rec["metrics"]["tiny.seed_plus_one"]["config"] == h and "config" not in rec["metrics"]["tiny.plain"]
    assert rec["configs"] == {h: {"seed": 1, "size": [2, 3]}}
    saved = json.loads((tmp_path / "_build/records/smoke/00_tiny.json").read_text())
    assert saved == rec
    assert (tmp_path / "_build/executed/smoke/00_tiny.ipynb").exists()
    # one hop from a number to its config
    loaded = runner.load_records(tmp_path, "smoke")
    assert runner.load_configs(tmp_path, "smoke")[loaded["tiny.seed_plus_one"]["config"]]["seed"] == 1


@pytest.mark.slow
def test_the_kernel_runs_over_ipc_without_the_tcp_warning(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    nb = make_book(tmp_path, """\
        # %%
        from ipykernel.connect import get_connection_info
        from salbook.book import record_meta
        record_meta(transport=get_connection_info(unpack=True)["transport"])
        print("the cell ran")
        """)
    rec = runner.run_notebook(nb, "smoke", tmp_path, progress=False)
    out, err = capfd.readouterr()  # the kernel's own stdout / stderr are this process's descriptors
    assert rec["meta"]["transport"] == "ipc"
    assert "without encryption" not in out + err and "TCP" not in out + err
    assert [p.name for p in nb.parent.iterdir()] == ["00_tiny.py"]  # no socket files beside the chapter


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


def test_regress_update_keeps_each_numbers_config(tmp_path: Path) -> None:
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_config.yml").write_text("title: t\n")
    records = tmp_path / "_build/records/smoke"
    records.mkdir(parents=True)
    cfg = {"model": "tiny", "epochs": 2}
    h = book.config_hash(cfg)
    (records / "00_x.json").write_text(json.dumps({
        "notebook": "00_x.py", "configs": {h: cfg},
        "metrics": {"x.cc": {**_rec(0.7), "config": h}, "x.bare": _rec(0.1)}}))
    assert runner.load_records(tmp_path, "smoke")["x.cc"]["config"] == h
    baseline = tmp_path / "base.json"
    assert cli.main(["--root", str(tmp_path), "regress", "--profile", "smoke", "--baseline", str(baseline), "--update"]) == 0
    data = json.loads(baseline.read_text())
    assert data["metrics"]["x.cc"]["config"] == h and data["configs"] == {h: cfg}
    assert "config" not in data["metrics"]["x.bare"]
    # a config that changed is not a regression by itself
    now = {"x.cc": {**_rec(0.7), "config": "0" * 12}, "x.bare": _rec(0.1)}
    assert runner.compare(runner.load_baseline(baseline), now).ok
    with pytest.raises(ValueError, match=f"no config for hash.*{h}"):
        runner.write_baseline(tmp_path / "other.json", runner.load_records(tmp_path, "smoke"), "smoke")


# ----------------------------------------------------------------------------- seeds

def _words(text: str) -> str:
    return " ".join(text.split())


def test_one_seed_contract_in_the_package_and_the_intro() -> None:
    contract = _words(book.SEED_CONTRACT)
    intro = (ROOT / "book" / "intro.md").read_text()
    assert "## Seeds and what `salbook spread` measures" in intro
    assert contract in _words(intro), "book/intro.md no longer carries salbook.book.SEED_CONTRACT word for word"
    assert contract in _words(book.__doc__ or contract)
    for varies in ("initialisation", "data order", "augmentation", "dropout"):
        assert varies in contract
    for fixed in ("data_seed", "shuffled-AUC negatives", "inter-observer", "EVAL_SEED", "DATA_SEED"):
        assert fixed in contract


def test_the_fixed_seeds_of_the_contract_are_the_code_defaults() -> None:
    assert book.DATA_SEED == 0 and book.EVAL_SEED == 0  # the contract's text says 0
    assert PanConfig().data.data_seed == book.DATA_SEED
    assert inspect.signature(SyntheticSaliency).parameters["seed"].default == book.DATA_SEED
    assert inspect.signature(salbook.evaluate).parameters["seed"].default == book.EVAL_SEED
    assert inspect.signature(baselines.inter_observer).parameters["seed"].default == book.EVAL_SEED


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


def test_glue_hands_myst_nb_plain_python_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import myst_nb

    seen = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: seen.update({name: (value, display)}))
    book.glue("a", np.float64(0.25))
    book.glue("b", "ties")
    book.glue("c", 3)
    assert seen == {"a": (0.25, False), "b": ("ties", False), "c": (3, False)}
    assert type(seen["a"][0]) is float  # repr "0.25", which MyST-NB can format; np.float64's repr it cannot


def test_spread_of_some_chapters_keeps_the_others(tmp_path, monkeypatch):
    """Re-measuring one chapter's spread replaces its numbers in _spread.json and keeps the rest."""
    from salbook import runner

    spread_file = tmp_path / "_build" / "records" / "smoke" / "_spread.json"
    spread_file.parent.mkdir(parents=True)
    spread_file.write_text(json.dumps({"seeds": [1, 2], "metrics": {
        "a.cc": {"values": [0.1, 0.2], "range": 0.1, "std": 0.07, "runs": 2},
        "b.cc": {"values": [0.5, 0.9], "range": 0.4, "std": 0.28, "runs": 2}}}))
    runs = {None: {"b.cc": {"value": 0.5}, "a.cc": {"value": 0.1}}, "smoke-seed3": {"b.cc": {"value": 0.6}}}
    monkeypatch.setattr(runner, "run_all", lambda *a, **k: None)
    monkeypatch.setattr(runner, "load_records", lambda root, profile, out_name=None: runs[out_name])
    new = runner.measure_spread(tmp_path, "smoke", [3], notebooks=[tmp_path / "02_b.py"], progress=False)
    assert set(new) == {"b.cc"} and new["b.cc"]["range"] == pytest.approx(0.1)
    saved = json.loads(spread_file.read_text())
    assert saved["seeds"] == [1, 2, 3]
    assert saved["metrics"]["a.cc"]["range"] == pytest.approx(0.1)  # kept
    assert saved["metrics"]["b.cc"]["range"] == pytest.approx(0.1)  # replaced (was 0.4)
    runner.measure_spread(tmp_path, "smoke", [3], notebooks=None, progress=False)  # all chapters: rewritten
    assert set(json.loads(spread_file.read_text())["metrics"]) == {"b.cc"}
