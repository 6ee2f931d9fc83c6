"""`salbook predict` and `salbook models` end to end, on images the test generates."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from salbook import cli


@pytest.fixture
def images(tmp_path):
    """A folder with an RGB JPEG, a grey-scale PNG and an RGBA PNG (in a sub-folder), and a corrupt file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / "rgb.jpg")
    Image.fromarray(rng.integers(0, 256, (37, 29), dtype=np.uint8), mode="L").save(folder / "sub" / "grey.png")
    Image.fromarray(rng.integers(0, 256, (20, 52, 4), dtype=np.uint8), mode="RGBA").save(folder / "sub" / "rgba.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a PNG")
    return folder


SIZES = {"rgb": (48, 64), "sub/grey": (37, 29), "sub/rgba": (20, 52)}


def _predict(tiny_book, *args):
    return cli.main(["--root", str(tiny_book["root"]), "predict", *map(str, args), "--model", "compact",
                     "--profile", "smoke", "--device", "cpu", "--no-progress"])


@pytest.mark.parametrize("fmt", ["png", "npy", "overlay"])
def test_predict_folder_writes_maps_at_each_image_size(tiny_book, images, tmp_path, capsys, fmt):
    out = tmp_path / "out"
    rc = _predict(tiny_book, images, "--out", out, "--format", fmt, "--batch", "2")
    err = capsys.readouterr().err
    assert rc == 1  # the corrupt file fails the run, after the others are written
    assert "broken.png" in err and "cannot read image file" in err and "1 of 4 images failed" in err
    suffix = {"png": ".png", "npy": ".npy", "overlay": "_overlay.png"}[fmt]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted(f"{k}{suffix}" for k in SIZES)  # nothing else: no temporary or partial files
    for stem, size in SIZES.items():
        path = out / f"{stem}{suffix}"
        if fmt == "npy":
            d = np.load(path)
            assert d.shape == size and d.dtype == np.float32 and (d >= 0).all() and abs(float(d.sum()) - 1) < 1e-5
        else:
            arr = np.array(Image.open(path))
            assert arr.shape[:2] == size and arr.dtype == np.uint8
            if fmt == "png":
                assert arr.ndim == 2 and arr.max() == 255 and arr.min() == 0
            else:
                assert arr.ndim == 3 and arr.shape[2] == 3


def test_predict_single_files_and_weights(tiny_book, images, tmp_path, capsys):
    out = tmp_path / "out"
    rc = _predict(tiny_book, images / "rgb.jpg", images / "sub" / "rgba.png", "--out", out, "--format", "npy",
                  "--weights", tiny_book["checkpoint"])
    assert rc == 0, capsys.readouterr().err
    a = np.load(out / "rgb.npy")
    assert sorted(p.name for p in out.iterdir()) == ["rgb.npy", "rgba.npy"]
    assert "2 maps written" in capsys.readouterr().out
    # the cached model and the same checkpoint given by --weights agree
    rc = _predict(tiny_book, images / "rgb.jpg", "--out", tmp_path / "cached", "--format", "npy")
    assert rc == 0 and np.allclose(np.load(tmp_path / "cached" / "rgb.npy"), a, atol=1e-7)


def test_predict_errors(tiny_book, images, tmp_path, capsys, monkeypatch):
    root = ["--root", str(tiny_book["root"])]
    assert cli.main([*root, "predict", str(images), "--model", "nonesuch"]) == 2
    assert "unknown model 'nonesuch'" in capsys.readouterr().err
    assert _predict(tiny_book, tmp_path / "nope.jpg") == 2
    assert "no such image or folder" in capsys.readouterr().err
    assert cli.main([*root, "predict", str(images), "--model", "compact", "--profile", "book", "--no-progress"]) == 2
    assert "salbook run --profile book notebooks/03_compact_model.py" in capsys.readouterr().err
    monkeypatch.setenv("SALBOOK_CACHE", str(tmp_path / "empty-cache"))
    assert _predict(tiny_book, images, "--out", tmp_path / "o") == 2
    assert "not in the cache" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert _predict(tiny_book, images, "--batch", "0") == 2
    assert "--batch must be >= 1" in capsys.readouterr().err


def test_models_lists_status_scores_and_commands(tiny_book, capsys):
    assert cli.main(["--root", str(tiny_book["root"]), "models", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "trained" in lines["compact"] and "not trained" not in lines["compact"]
    assert "0.25" in lines["compact"] and "salbook run --profile smoke notebooks/03_compact_model.py" in lines["compact"]
    assert "not trained" in lines["pan_recommended"]
