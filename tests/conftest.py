"""Shared test fixtures."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """One intra-op thread for the test: tiny convs on a shared 2-core machine are much faster
    (and steadier) with one thread than with two competing ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# a tiny trained book for salbook.zoo / `salbook predict` tests (test_zoo.py, test_cli_predict.py)

TINY_COMPACT = dict(stem=(4, 4), blocks=((4, 4), (4, 8)), pools=(0, 1, 2))


@pytest.fixture(scope="session")
def _tiny_book_dirs(tmp_path_factory):
    """Train a tiny compact model once into a temporary cache and write the record file its chapter
    would write (``_build/records/smoke/03_compact_model.json``) under a temporary book root."""
    import json
    import os
    from pathlib import Path

    from salbook.book import config_dict, config_hash
    from salbook.recipes import saliency as R

    base = tmp_path_factory.mktemp("tiny_book")
    root, cache = base / "book", base / "cache"
    (root / "notebooks").mkdir(parents=True)
    (root / "_config.yml").write_text("title: tiny\n")
    before, threads = os.environ.get("SALBOOK_CACHE"), torch.get_num_threads()
    os.environ["SALBOOK_CACHE"] = str(cache)
    torch.set_num_threads(1)
    try:
        data = R.COMPACT_DATA.replace(n_train=8, n_val=4, n_test=4, input_size=(32, 32), eval_size=(32, 32))
        cfg = R.CompactConfig(data=data, epochs=1, batch_size=4, model_kwargs=TINY_COMPACT)
        result = R.train_compact(cfg, seed=0, device="cpu", log=None)
    finally:
        torch.set_num_threads(threads)
        if before is None:
            os.environ.pop("SALBOOK_CACHE", None)
        else:
            os.environ["SALBOOK_CACHE"] = before
    digest = config_hash(cfg)
    rec = {"notebook": "03_compact_model", "profile": "smoke", "seed": 0, "configs": {digest: config_dict(cfg)},
           "metrics": {"compact.compact.test.cc": {"value": 0.25, "tol": 0.1, "rel": 0.0, "config": digest},
                       "compact.compact.test.nss": {"value": 0.8, "tol": 0.1, "rel": 0.0, "config": digest}}}
    records = root / "_build" / "records" / "smoke"
    records.mkdir(parents=True)
    (records / "03_compact_model.json").write_text(json.dumps(rec))
    return {"root": root, "cache": cache, "checkpoint": Path(result.checkpoint_path) / "final.pt", "config": cfg}


@pytest.fixture
def tiny_book(_tiny_book_dirs, monkeypatch):
    """``{"root", "cache", "checkpoint", "config"}`` of a tiny book whose ``compact`` model is trained in
    the ``smoke`` profile; ``SALBOOK_CACHE`` points at its cache for the test, one torch thread."""
    monkeypatch.setenv("SALBOOK_CACHE", str(_tiny_book_dirs["cache"]))
    monkeypatch.setenv("SALBOOK_PROGRESS", "0")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield _tiny_book_dirs
    torch.set_num_threads(before)
