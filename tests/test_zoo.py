"""salbook.zoo: the registry of the book's trained models, loading from records + cache, map writing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from salbook import zoo
from salbook.book import config_dict
from salbook.cost import count_params


def test_entries_are_complete_and_recipes_resolve():
    assert zoo.names()[:4] == ["pan_recommended", "pan_faithful", "mlnet_style", "compact"]
    for name in zoo.names():
        entry = zoo.get(name)
        assert entry.task in ("fixation", "sod")
        assert entry.chapter.startswith("notebooks/") and entry.chapter.endswith(".py")
        assert entry.command("book") == f"salbook run --profile book {entry.chapter}"
        assert bool(entry.record_key) != bool(entry.config_fn), f"{name}: a record key or a config function"
        module = entry.module()
        for attr in (entry.config_class, entry.train_fn, entry.build_fn, entry.config_fn):
            assert not attr or callable(getattr(module, attr)), f"{name}: {entry.recipe}.{attr}"
        assert zoo._postprocess_of(entry) is None or callable(zoo._postprocess_of(entry))
        if entry.config_fn:  # the config function gives the recipe's config class for every profile
            for profile in ("smoke", "book", "paper"):
                cfg, _ = zoo.config_for(name, profile)
                assert type(cfg).__name__ == entry.config_class


@pytest.mark.parametrize("name", ["pan_recommended", "pan_faithful", "mlnet_style", "compact"])
def test_config_round_trips_through_a_record(name):
    entry = zoo.get(name)
    cfg = zoo._resolve(entry.default_config, entry.recipe)()
    stored = json.loads(json.dumps(config_dict(cfg)))  # as a record file holds it
    again = zoo.config_from_dict(type(cfg), stored)
    assert again == cfg
    with pytest.raises(ValueError, match="recipe"):
        zoo.config_from_dict(type(cfg), {**stored, "recipe": "other/9"})


def test_unknown_model_lists_the_names():
    with pytest.raises(KeyError, match="pan_recommended.*compact"):
        zoo.get("fastsal_z")


def test_load_from_records_and_cache_and_predict_at_image_size(tiny_book):
    loaded = zoo.load("compact", "smoke", root=tiny_book["root"])
    assert config_dict(loaded.config) == config_dict(tiny_book["config"]) and loaded.input_size == (32, 32) and not loaded.normalize
    assert not loaded.model.training
    images = [torch.rand(3, 40, 70), torch.rand(3, 33, 21)]
    maps = loaded.predict_maps(images)
    assert [m.shape for m in maps] == [(40, 70), (33, 21)]
    assert all(m.dtype == np.float32 and np.isfinite(m).all() for m in maps)
    assert zoo.is_trained("compact", "smoke", root=tiny_book["root"])
    assert zoo.headline_scores("compact", "smoke", root=tiny_book["root"]) == {"cc": 0.25, "nss": 0.8}


def test_as_module_keeps_the_model_in_eval_mode(tiny_book):
    from salbook.evaluation import evaluate
    from salbook.data import load_split

    loaded = zoo.load("compact", "smoke", root=tiny_book["root"])
    net = loaded.as_module()
    assert not net.training and not net.train().training and not loaded.model.training
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    test = load_split(loaded.config.data, "test")
    evaluate(net, test, ("cc",), postprocess=loaded.postprocess, device="cpu", progress=False)
    with torch.no_grad():
        net(torch.rand(2, 3, 50, 60))
    assert not loaded.model.training  # evaluate() restores the mode it found: eval
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, before[k]), k  # no batch-norm statistic moved


def test_missing_record_or_checkpoint_names_the_command(tiny_book, tmp_path, monkeypatch):
    with pytest.raises(zoo.ModelNotTrained, match="salbook run --profile book notebooks/03_compact_model.py"):
        zoo.load("compact", "book", root=tiny_book["root"])  # no book record
    monkeypatch.setenv("SALBOOK_CACHE", str(tmp_path / "empty"))  # record, but nothing cached
    with pytest.raises(zoo.ModelNotTrained, match="not in the cache.*salbook run --profile smoke"):
        zoo.load("compact", "smoke", root=tiny_book["root"])
    assert not (tmp_path / "empty" / "models").exists() or not any((tmp_path / "empty" / "models").rglob("*.pt"))


def test_load_weights_from_a_checkpoint(tiny_book, tmp_path):
    loaded = zoo.load_weights("compact", tiny_book["checkpoint"], "smoke", root=tiny_book["root"])
    ref = zoo.load("compact", "smoke", root=tiny_book["root"])
    for a, b in zip(loaded.model.state_dict().values(), ref.model.state_dict().values()):
        assert torch.equal(a, b)
    plain = tmp_path / "plain.pt"
    torch.save(ref.model.state_dict(), plain)
    assert zoo.load_weights("compact", plain, "smoke", root=tiny_book["root"]).source == str(plain)
    with pytest.raises(ValueError, match="does not fit"):
        zoo.load_weights("compact", plain, "book", root=tiny_book["root"])  # default (full-size) architecture
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        zoo.load_weights("compact", bad, "smoke", root=tiny_book["root"])


def test_models_table(tiny_book):
    table = zoo.models_table("smoke", root=tiny_book["root"], cost_size=(32, 32)).set_index("model")
    assert list(table.index) == zoo.names()
    assert table.loc["compact", "status"] == "trained"
    assert table.loc["compact", "params"] == count_params(zoo.load("compact", "smoke", root=tiny_book["root"]).model)
    assert table.loc["compact", "GMACs"] > 0
    assert (table.drop(index="compact").status == "not trained").all()  # an empty cache: nothing trains
    assert table.loc["pan_recommended", "trained by"] == "salbook run --profile smoke notebooks/01_pan_shallow.py"


def test_loaded_untrained_has_the_recipe_input_and_postprocessing():
    fa = zoo.loaded_untrained("fastsal_a", "smoke")
    assert fa.source == "untrained" and fa.input_size == tuple(fa.config.data.input_size)
    maps = fa.predict_maps([torch.rand(3, 30, 40)])
    assert maps[0].shape == (30, 40) and 0 <= maps[0].min() and maps[0].max() <= 1  # sigmoid, min-max, blur
    assert zoo.loaded_untrained("fastsal_a", "smoke", input_size=(64, 64)).input_size == (64, 64)


def test_the_lite0_student_is_chapter_4s_pseudo_label_student_read_as_a_density():
    from salbook.models.fastsal import fastsal_density_postprocess
    from salbook.recipes.fastsal import student_config

    entry = zoo.get("fastsal_a_lite0")
    assert entry.chapter == "notebooks/04_fastsal.py" and entry.record_prefix == "fastsal.a_lite0_pseudo.test."
    lite0 = zoo.loaded_untrained("fastsal_a_lite0", "smoke")
    assert lite0.config == student_config("fastsal_a_lite0_pseudo", "smoke") and lite0.config.mode == "pseudo"
    assert type(lite0.model).__name__ == "FastSalA" and lite0.model.encoder.weights_source != "random"
    assert lite0.postprocess is fastsal_density_postprocess  # the softmax read-out of chapter 4's pseudo-label students
    maps = lite0.predict_maps([torch.rand(3, 30, 40)])
    assert maps[0].shape == (30, 40) and 0 <= maps[0].min() and maps[0].max() <= 1


def test_list_inputs(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for rel in ("a/x.jpg", "a/deep/y.PNG", "a/notes.txt", "z.png"):
        (tmp_path / rel).write_bytes(b"")
    pairs = zoo.list_inputs([tmp_path / "a", tmp_path / "z.png"], tmp_path / "out", "npy")
    assert [(s.relative_to(tmp_path).as_posix(), t.relative_to(tmp_path).as_posix()) for s, t in pairs] == [
        ("a/deep/y.PNG", "out/deep/y.npy"), ("a/x.jpg", "out/x.npy"), ("z.png", "out/z.npy")]
    with pytest.raises(ValueError, match="both write"):
        zoo.list_inputs([tmp_path / "z.png", tmp_path / "z.png"], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no such image"):
        zoo.list_inputs([tmp_path / "missing.jpg"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images found"):
        zoo.list_inputs([tmp_path / "empty"], tmp_path / "out")


def test_write_map_formats(tmp_path):
    from PIL import Image

    m = np.zeros((6, 8), np.float32)
    m[2, 3] = 3.0
    m[4, 5] = 1.0
    img = torch.rand(3, 6, 8)
    d = np.load(zoo.write_map(m, img, tmp_path / "m.npy", "npy"))
    assert d.dtype == np.float32 and d.shape == (6, 8) and abs(float(d.sum()) - 1) < 1e-6 and d[2, 3] == 0.75
    png = np.array(Image.open(zoo.write_map(m, img, tmp_path / "m.png", "png")))
    assert png.dtype == np.uint8 and png.shape == (6, 8) and png.max() == 255 and png.min() == 0 and png[4, 5] == 85
    over = np.array(Image.open(zoo.write_map(m, img, tmp_path / "o.png", "overlay")))
    assert over.shape == (6, 8, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npy", "m.png", "o.png"]  # no temporary files
    with pytest.raises(ValueError, match="unknown format"):
        zoo.write_map(m, img, tmp_path / "m.jpg", "jpg")


def test_for_inference_folds_batch_norm_and_keeps_the_maps():
    torch.manual_seed(0)
    loaded = zoo.loaded_untrained("fastsal_a", "smoke", input_size=(64, 96))
    for m in loaded.model.modules():  # non-trivial statistics, so folding has work to do
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    fast = loaded.for_inference(channels_last=True)
    assert fast.model is not loaded.model and fast.input_size == loaded.input_size
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in loaded.model.modules()) > 0
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in fast.model.modules()) == 0
    images = [torch.rand(3, 120, 160), torch.rand(3, 90, 70)]
    for a, b in zip(loaded.predict_maps(images), fast.predict_maps(images)):
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-4
