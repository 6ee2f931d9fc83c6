"""Real-dataset readers: small fixtures written in each documented layout, read back through
:func:`salbook.data.load`, plus the bad inputs (missing root, wrong layout, unreadable image,
image without fixations, image/map size mismatch)."""

from __future__ import annotations

import gzip
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from salbook.data import CAT2000_CATEGORIES, DatasetLayoutError, ImageReadError, collate, load

H, W = 24, 32


def _img(path: Path, seed: int = 0, size=(H, W), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return arr


def _gray(path: Path, arr: np.ndarray, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path, **kw)


def _salicon_mat(path: Path, subjects: list[list[tuple[int, int]]], resolution=(H, W)):
    """gaze(s).fixations = [col row] 1-based, as in the SALICON release."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gaze = np.zeros((len(subjects),), dtype=[("location", "O"), ("timestamp", "O"), ("fixations", "O")])
    for i, fx in enumerate(subjects):
        arr = np.array(fx, dtype=np.float64).reshape(-1, 2)
        gaze[i]["fixations"] = arr
        gaze[i]["location"] = arr
        gaze[i]["timestamp"] = np.arange(len(arr), dtype=np.float64)
    scipy.io.savemat(str(path), {"image": path.stem, "resolution": np.array(resolution), "gaze": gaze})


@pytest.fixture
def salicon(tmp_path):
    root = tmp_path / "SALICON"
    names = ["COCO_train2014_000000000009", "COCO_train2014_000000000025"]
    for i, n in enumerate(names):
        _img(root / "images" / "train" / f"{n}.jpg", i)
        fmap = np.zeros((H, W))
        fmap[5, 7] = 255
        _gray(root / "maps" / "train" / f"{n}.png", fmap)
    # subject 0 fixates (row 4, col 9) and (row 0, col 0); subject 1 fixates (row 23, col 31)
    _salicon_mat(root / "fixations" / "train" / f"{names[0]}.mat", [[(10, 5), (1, 1)], [(32, 24)]])
    _salicon_mat(root / "fixations" / "train" / f"{names[1]}.mat", [[], []])  # no fixation at all
    _img(root / "images" / "test" / "COCO_test2014_000000000001.jpg", 5)
    return root


def test_salicon_round_trip(salicon):
    ds = load("salicon", "train", root=salicon, size=(H, W))
    assert len(ds) == 2
    s = ds[0]
    assert s["name"] == "COCO_train2014_000000000009"
    assert s["image"].shape == (3, H, W)
    np.testing.assert_array_equal(s["fixations"].numpy(), [[4, 9], [0, 0], [23, 31]])
    np.testing.assert_array_equal(s["observers"].numpy(), [0, 0, 1])
    assert s["fixation_map"].shape == (H, W) and float(s["fixation_map"][5, 7]) == 1.0
    assert "density" not in s and "mask" not in s and "label" not in s
    # image without fixations: an empty K×2 and the file's map
    e = ds[1]
    assert e["fixations"].shape == (0, 2) and e["observers"].shape == (0,)
    batch = collate([ds[0], ds[1]])
    assert [len(f) for f in batch["fixations"]] == [3, 0]


def test_salicon_resizing_rule(salicon):
    ds = load("salicon", "train", root=salicon, size=(48, 64), target_size=(12, 16))
    s = ds[0]
    assert s["image"].shape == (3, 48, 64) and s["fixation_map"].shape == (12, 16)
    # floor((p + 0.5) / 2): (4, 9) -> (2, 4); (0, 0) -> (0, 0); (23, 31) -> (11, 15)
    np.testing.assert_array_equal(s["fixations"].numpy(), [[2, 4], [0, 0], [11, 15]])
    assert abs(float(s["fixation_map"].max()) - 1.0) < 1e-6


def test_salicon_size_mismatch_uses_each_files_own_grid(salicon):
    # fixations recorded on a 48×64 grid and a 12×16 map for a 24×32 image: each is rescaled from its own size
    n = "COCO_train2014_000000000009"
    _salicon_mat(salicon / "fixations" / "train" / f"{n}.mat", [[(64, 48), (1, 1)]], resolution=(48, 64))
    _gray(salicon / "maps" / "train" / f"{n}.png", np.full((12, 16), 200))
    s = load("salicon", "train", root=salicon, size=(H, W))[0]
    np.testing.assert_array_equal(s["fixations"].numpy(), [[23, 31], [0, 0]])
    assert s["fixation_map"].shape == (H, W) and torch.allclose(s["fixation_map"], torch.ones(H, W))


def test_salicon_test_split_has_images_only(salicon):
    s = load("salicon", "test", root=salicon, size=(H, W))[0]
    assert set(s) == {"image", "name"}


def test_mit1003_round_trip(tmp_path):
    root = tmp_path / "MIT1003"
    names = [f"i{k:03d}" for k in range(10)]
    for k, n in enumerate(names):
        _img(root / "ALLSTIMULI" / f"{n}.jpeg", k, fmt="JPEG")
        pts = np.zeros((H, W))
        if k != 9:  # the last image has no fixation
            pts[3, 4] = pts[20, 30] = 255
        _gray(root / "ALLFIXATIONMAPS" / f"{n}_fixPts.jpg", pts, quality=100)
        _gray(root / "ALLFIXATIONMAPS" / f"{n}_fixMap.jpg", np.linspace(0, 255, H * W).reshape(H, W), quality=95)
    ds = load("mit1003", "all", root=root, size=(H, W))
    assert len(ds) == 10
    s = ds[0]
    np.testing.assert_array_equal(s["fixations"].numpy(), [[3, 4], [20, 30]])
    assert "observers" not in s
    assert s["fixation_map"].shape == (H, W) and float(s["fixation_map"].max()) == pytest.approx(1.0)
    assert ds[9]["fixations"].shape == (0, 2)
    train, val = load("mit1003", "train", root=root), load("mit1003", "val", root=root)
    assert len(train) == 9 and len(val) == 1
    assert {r.name for r in train.records}.isdisjoint({r.name for r in val.records})


def test_cat2000_round_trip(tmp_path):
    root = tmp_path / "CAT2000"
    for cat in ("Action", "Social"):
        for k in (1, 2):
            _img(root / "trainSet" / "Stimuli" / cat / f"{k:03d}.jpg", k)
            _gray(root / "trainSet" / "FIXATIONMAPS" / cat / f"{k:03d}.jpg", np.full((H, W), 128))
            locs = np.zeros((H, W), dtype=np.uint8)
            locs[2, 3] = locs[10, 11] = 1
            (root / "trainSet" / "FIXATIONLOCS" / cat).mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(str(root / "trainSet" / "FIXATIONLOCS" / cat / f"{k:03d}.mat"), {"fixLocs": locs})
        _img(root / "testSet" / "Stimuli" / cat / "001.jpg", 9)
    ds = load("cat2000", "train", root=root, size=(H, W))
    assert len(ds) == 4
    s = ds[3]
    assert s["name"] == "Social/002" and s["label"] == CAT2000_CATEGORIES.index("Social") == 19
    np.testing.assert_array_equal(s["fixations"].numpy(), [[2, 3], [10, 11]])
    assert ds[0]["label"] == 0
    t = load("cat2000", "test", root=root, size=(H, W))[1]
    assert set(t) == {"image", "label", "name"} and t["label"] == 19


def test_duts_and_ecssd_round_trip(tmp_path):
    mask = np.zeros((H, W))
    mask[4:12, 6:20] = 255
    for split, tag in (("train", "DUTS-TR"), ("test", "DUTS-TE")):
        _img(tmp_path / "DUTS" / tag / f"{tag}-Image" / "sun_a.jpg", 1)
        _gray(tmp_path / "DUTS" / tag / f"{tag}-Mask" / "sun_a.png", mask)
        s = load("duts", split, root=tmp_path / "DUTS", size=(H, W))[0]
        assert set(s) == {"image", "mask", "name"}
        np.testing.assert_array_equal(s["mask"].numpy(), mask / 255)
    _img(tmp_path / "ECSSD" / "images" / "0001.jpg", 2)
    _gray(tmp_path / "ECSSD" / "ground_truth_mask" / "0001.png", mask)
    e = load("ecssd", "test", root=tmp_path / "ECSSD", size=(H, W), target_size=(12, 16))[0]
    assert e["mask"].shape == (12, 16) and float(e["mask"].sum()) == mask[1::2, 1::2].astype(bool).sum()
    assert load("duts", "train", root=tmp_path / "DUTS")[0]["image"].shape == (3, 224, 224)


def _idx(path: Path, arr: np.ndarray, gz: bool):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_round_trip(tmp_path, gz):
    imgs = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([7, 2, 1, 0, 4], dtype=np.uint8)
    _idx(tmp_path / "t10k-images-idx3-ubyte", imgs, gz)
    _idx(tmp_path / "t10k-labels-idx1-ubyte", labels, gz)
    ds = load("mnist", "test", root=tmp_path)
    assert len(ds) == 5
    s = ds[2]
    assert s["image"].shape == (1, 28, 28) and s["label"] == 1
    np.testing.assert_allclose(s["image"][0].numpy(), imgs[2] / 255.0, atol=1e-7)
    assert load("mnist", "test", root=tmp_path, channels=3)[0]["image"].shape == (3, 28, 28)
    with pytest.raises(DatasetLayoutError, match="train-images-idx3-ubyte"):
        load("mnist", "train", root=tmp_path)


# ------------------------------------------------------------------------------- bad input


def test_missing_root_names_layout_and_path(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetLayoutError) as exc:
        load("salicon", "train", root=missing)
    msg = str(exc.value)
    assert "images/train" in msg and "fixations/train" in msg and f"first missing path: {missing}" in msg
    monkeypatch.delenv("SALBOOK_DATA", raising=False)
    with pytest.raises(DatasetLayoutError, match="root="):
        load("mit1003", "all")
    monkeypatch.setenv("SALBOOK_DATA", str(tmp_path))
    with pytest.raises(DatasetLayoutError, match="ALLSTIMULI"):
        load("mit1003", "all")


def test_wrong_layout_names_first_missing_path(salicon):
    import shutil

    missing = salicon / "fixations" / "train" / "COCO_train2014_000000000025.mat"
    missing.unlink()
    with pytest.raises(DatasetLayoutError) as exc:
        load("salicon", "train", root=salicon)
    assert f"first missing path: {missing}" in str(exc.value) and "1 file(s)" in str(exc.value)
    shutil.rmtree(salicon / "maps")
    with pytest.raises(DatasetLayoutError) as exc:
        load("salicon", "train", root=salicon)
    assert f"first missing path: {salicon / 'maps' / 'train'}" in str(exc.value)
    with pytest.raises(DatasetLayoutError) as exc:  # a SALICON folder given to the CAT2000 reader
        load("cat2000", "train", root=salicon)
    assert "trainSet/Stimuli/<Category>" in str(exc.value) and str(salicon / "trainSet") in str(exc.value)


def test_unreadable_image_raise_or_skip(tmp_path):
    root = tmp_path / "ECSSD"
    mask = np.zeros((H, W))
    for n in ("0001", "0002", "0003"):
        _img(root / "images" / f"{n}.jpg", 1)
        _gray(root / "ground_truth_mask" / f"{n}.png", mask)
    (root / "images" / "0002.jpg").write_bytes(b"this is not a jpeg")
    ds = load("ecssd", "test", root=root, size=(H, W))
    with pytest.raises(ImageReadError, match="0002.jpg"):
        ds[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok = load("ecssd", "test", root=root, size=(H, W), on_error="skip")
    assert len(ok) == 2 and [p.name for p in ok.skipped] == ["0002.jpg"]
    assert any("skipped 1 unreadable" in str(w.message) for w in caught)
    assert [ok[i]["name"] for i in range(2)] == ["0001", "0003"]
