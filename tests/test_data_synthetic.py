"""Generated scenes: determinism, fields, the density/fixation relation, caching, realism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salbook.data import CATEGORIES, DATASETS, SyntheticSaliency, load
from salbook.maps import fixation_map_from_points, mit_sigma

SMALL = (48, 64)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SALBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SALBOOK_PROGRESS", "0")


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        if isinstance(a[k], torch.Tensor):
            if not torch.equal(a[k], b[k]):
                return False
        elif a[k] != b[k]:
            return False
    return True


def test_registry_and_default_size():
    assert {"synthetic", "salicon", "mit1003", "cat2000", "duts", "ecssd", "mnist"} <= set(DATASETS)
    ds = load("synthetic", "val", n=2, cache=False)
    assert ds[0]["image"].shape == (3, 192, 256)
    assert len(CATEGORIES) >= 10 and {"face", "text"} <= set(CATEGORIES)


def test_sample_fields_and_invariants():
    ds = load("synthetic", "train", size=SMALL, n=6, cache=False)
    for i in range(len(ds)):
        s = ds[i]
        assert set(s) == {"image", "fixations", "observers", "fixation_map", "density", "mask", "label", "name"}
        assert s["image"].dtype == torch.float32 and s["image"].shape == (3, *SMALL)
        assert 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.0
        assert s["fixations"].dtype == torch.int64 and s["fixations"].shape[1] == 2
        assert s["observers"].dtype == torch.int64 and len(s["observers"]) == len(s["fixations"])
        # 15 observers, each with at least 2 fixations
        assert set(s["observers"].tolist()) == set(range(15))
        assert len(s["fixations"]) >= 30
        f = s["fixations"]
        assert int(f[:, 0].min()) >= 0 and int(f[:, 0].max()) < SMALL[0]
        assert int(f[:, 1].min()) >= 0 and int(f[:, 1].max()) < SMALL[1]
        assert abs(float(s["density"].sum()) - 1.0) < 1e-4 and float(s["density"].min()) >= 0
        assert abs(float(s["fixation_map"].max()) - 1.0) < 1e-6
        assert set(torch.unique(s["mask"]).tolist()) <= {0.0, 1.0} and float(s["mask"].sum()) > 0
        assert 0 <= s["label"] < len(CATEGORIES)


def test_target_size_pan_layout():
    ds = load("synthetic", "train", size=(96, 96), target_size=(48, 48), n=2, cache=False)
    s = ds[1]
    assert s["image"].shape == (3, 96, 96)
    for k in ("fixation_map", "density", "mask"):
        assert s[k].shape == (48, 48)
    assert int(s["fixations"].max()) < 48


def test_deterministic_in_seed_and_index_and_cache_matches():
    a = SyntheticSaliency("train", size=SMALL, n=5, seed=3, cache=False)
    b = SyntheticSaliency("train", size=SMALL, n=5, seed=3, cache=True)  # built into the cache
    c = SyntheticSaliency("train", size=SMALL, n=5, seed=3, cache=True)  # read from the cache
    for i in range(5):
        assert _same(a[i], b[i]) and _same(b[i], c[i])
    other = SyntheticSaliency("train", size=SMALL, n=5, seed=4, cache=False)
    assert not torch.equal(a[0]["image"], other[0]["image"])
    # index i of a bigger split is the same scene (depends on (seed, split, index) only)
    big = SyntheticSaliency("train", size=SMALL, n=9, seed=3, cache=False)
    assert _same(a[4], big[4])


def test_cache_file_is_keyed_by_parameters(tmp_path):
    a = SyntheticSaliency("val", size=SMALL, n=3, cache=True)
    assert a.cache_path.exists() and a.cache_path.suffix == ".npz"
    b = SyntheticSaliency("val", size=SMALL, n=3, cache=True, background_weight=0.5)
    assert b.cache_path != a.cache_path and b.cache_path.exists()
    assert not list(a.cache_path.parent.glob("*.tmp"))  # atomic write left no temporary file


def test_splits_never_share_a_scene():
    imgs = {}
    for split in ("train", "val", "test", "unlabelled"):
        ds = SyntheticSaliency(split, size=SMALL, n=4, cache=False)
        imgs[split] = [ds[i]["image"] for i in range(4)]
    splits = list(imgs)
    for i, s1 in enumerate(splits):
        for s2 in splits[i + 1 :]:
            for x in imgs[s1]:
                for y in imgs[s2]:
                    assert not torch.equal(x, y)


def test_unlabelled_pool_is_images_only():
    s = load("synthetic", "unlabelled", size=SMALL, n=2, cache=False)[0]
    assert set(s) == {"image", "name"}
    with pytest.raises(ValueError):
        SyntheticSaliency("unlabelled", size=SMALL, n=2, cache=False).components(0)


def test_components_sum_to_density():
    ds = SyntheticSaliency("test", size=SMALL, n=3, cache=False)
    for i in range(3):
        parts = ds.components(i)
        total = parts["centre"] + parts["contrast"] + parts["category"]
        np.testing.assert_allclose(total, parts["density"], atol=1e-12)
        np.testing.assert_allclose(parts["density"], ds[i]["density"].numpy(), atol=1e-6)
        assert parts["centre"].sum() > 0 and parts["contrast"].min() >= 0


def test_fixation_map_is_mit_blur_of_fixations():
    from scipy.ndimage import gaussian_filter

    ds = SyntheticSaliency("train", size=SMALL, n=1, cache=False)
    s = ds[0]
    counts = np.zeros(SMALL)
    np.add.at(counts, (s["fixations"][:, 0].numpy(), s["fixations"][:, 1].numpy()), 1)
    ref = gaussian_filter(counts, sigma=24 / 1024 * SMALL[1], mode="constant")
    np.testing.assert_allclose(s["fixation_map"].numpy(), ref / ref.max(), atol=1e-5)
    assert mit_sigma(1024) == 24.0
    assert np.all(fixation_map_from_points(np.zeros((0, 2)), (4, 5)).numpy() == 0)


def test_fixations_follow_the_true_density():
    """With many observers the fixation histogram converges to the density (coarse 4×4 cells)."""
    ds = SyntheticSaliency("train", size=(32, 32), n=1, observers=3000, cache=False)
    s = ds[0]
    d = s["density"].numpy().reshape(4, 8, 4, 8).sum(axis=(1, 3))
    f = s["fixations"].numpy()
    hist = np.zeros((4, 4))
    np.add.at(hist, (f[:, 0] // 8, f[:, 1] // 8), 1)
    hist /= hist.sum()
    # ~12,000 fixations: binomial sd per cell <= 0.005; mixing over observers adds a little more
    assert np.abs(hist - d).max() < 0.03


def test_labels_cover_the_categories():
    ds = SyntheticSaliency("train", size=(32, 32), n=300, cache=False)
    labels = np.array([ds.scene(i).label for i in range(300)])
    counts = np.bincount(labels, minlength=len(CATEGORIES))
    assert (counts > 0).sum() >= 10
    assert counts.max() < 0.4 * len(labels)  # no category dominates


def test_flip_and_normalize_options():
    plain = SyntheticSaliency("train", size=SMALL, n=8, cache=False)
    flipped = SyntheticSaliency("train", size=SMALL, n=8, cache=False, flip=True)
    n_flipped = 0
    for i in range(8):
        a, b = plain[i], flipped[i]
        if torch.equal(a["image"], b["image"]):
            continue
        n_flipped += 1
        assert torch.equal(b["image"], torch.flip(a["image"], dims=(-1,)))
        assert torch.equal(b["mask"], torch.flip(a["mask"], dims=(-1,)))
        assert torch.equal(b["fixations"][:, 1], SMALL[1] - 1 - a["fixations"][:, 1])
    assert 0 < n_flipped < 8
    norm = SyntheticSaliency("train", size=SMALL, n=1, cache=False, normalize=True)[0]["image"]
    raw = plain[0]["image"]
    np.testing.assert_allclose(norm[0].numpy(), ((raw[0] - 0.485) / 0.229).numpy(), atol=1e-6)


def test_bad_options():
    with pytest.raises(ValueError, match="split"):
        load("synthetic", "training")
    with pytest.raises(TypeError, match="generator parameters"):
        load("synthetic", "train", n=1, cache=False, no_such_option=1)
    with pytest.raises(ValueError, match="unknown dataset"):
        load("imagenet", "train")


@pytest.mark.parametrize("size,target", [((48, 64), (48, 64)), ((96, 96), (48, 48))])
def test_realism_targets(size, target):
    """The realism measurements of the specification on 100 test scenes (train fits the centre)."""
    from salbook.analysis import realism_table

    train = SyntheticSaliency("train", size=size, target_size=target, n=150, cache=False)
    test = SyntheticSaliency("test", size=size, target_size=target, n=100, cache=False)
    t = realism_table(train, test, progress=False)
    auc = t["AUC-Judd"]
    assert 0.75 <= auc["centre bias"] <= 0.82
    assert auc["true density"] >= 0.90
    assert auc["contrast only"] <= auc["true density"] - 0.03
    assert auc["category only"] <= auc["true density"] - 0.03
    assert auc["centre bias"] < auc["inter-observer"] < auc["true density"]
    assert abs(auc["uniform"] - 0.5) < 1e-9
    assert t.loc["true density", "NSS"] > t.loc["centre bias", "NSS"] > 0


def test_fixation_record_is_the_samples_fixations_without_building_it():
    ds = SyntheticSaliency("train", n=3, size=(48, 64), target_size=(24, 32), cache=False)
    for i in range(3):
        fix, size = ds.fixation_record(i)
        assert size == (24, 32)
        np.testing.assert_array_equal(fix, ds[i]["fixations"].numpy())
    # with a random flip the record goes through the transform: original or mirrored, both seen
    plain = SyntheticSaliency("train", n=2, size=(48, 64), cache=False).fixation_record(1)[0]
    mirrored = plain * np.array([1, -1]) + np.array([0, 63])
    flipped = SyntheticSaliency("train", n=2, size=(48, 64), flip=True, cache=False)
    seen = set()
    for _ in range(12):
        fix = flipped.fixation_record(1)[0]
        assert np.array_equal(fix, plain) or np.array_equal(fix, mirrored)
        seen.add(np.array_equal(fix, plain))
    assert seen == {True, False}
