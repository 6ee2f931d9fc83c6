"""Transforms, collate and seeded loaders, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salbook.data import SplitSpec, collate, hflip_batch, load_split, make_loader
from salbook.data.transforms import (
    Compose,
    Normalize,
    RandomHorizontalFlip,
    Resize,
    hflip_sample,
    rescale_fixations,
    resize_sample,
)


def _sample(h=4, w=6):
    img = torch.arange(3 * h * w, dtype=torch.float32).reshape(3, h, w) / (3 * h * w)
    dens = torch.rand(h, w, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(h, w)
    mask[1:3, 0:2] = 1
    return {
        "image": img,
        "fixations": torch.tensor([[0, 0], [3, 5], [1, 2]]),
        "observers": torch.tensor([0, 1, 1]),
        "fixation_map": dens / dens.max(),
        "density": dens / dens.sum(),
        "mask": mask,
        "label": 3,
        "name": "a",
    }


def test_rescale_fixations_hand_values():
    fix = torch.tensor([[0, 0], [3, 3], [1, 2]])
    np.testing.assert_array_equal(rescale_fixations(fix, (4, 4), (2, 2)).numpy(), [[0, 0], [1, 1], [0, 1]])
    # up-scaling 4 -> 8: floor((p + 0.5) * 2) = 2p + 1
    np.testing.assert_array_equal(rescale_fixations(fix, (4, 4), (8, 8)).numpy(), [[1, 1], [7, 7], [3, 5]])
    # non-square, different factors per axis: row 479 of 480 -> 47 of 48; col 0 of 640 -> 0 of 64
    np.testing.assert_array_equal(rescale_fixations(torch.tensor([[479, 0], [240, 639]]), (480, 640), (48, 64)).numpy(), [[47, 0], [24, 63]])
    assert rescale_fixations(np.zeros((0, 2)), (4, 4), (2, 2)).shape == (0, 2)


def test_resize_sample_keeps_conventions():
    s = resize_sample(_sample(), size=(8, 12), target_size=(2, 3))
    assert s["image"].shape == (3, 8, 12)
    assert s["density"].shape == (2, 3) and abs(float(s["density"].sum()) - 1) < 1e-6
    assert abs(float(s["fixation_map"].max()) - 1) < 1e-6
    assert set(torch.unique(s["mask"]).tolist()) <= {0.0, 1.0}
    np.testing.assert_array_equal(s["fixations"].numpy(), [[0, 0], [1, 2], [0, 1]])
    assert torch.equal(s["observers"], torch.tensor([0, 1, 1])) and s["label"] == 3
    # nearest-neighbour mask at an exact factor 2: output pixel i reads source pixel 2i + 1, so
    # rows 1, 3 and cols 1, 3, 5 of the mask (ones at rows 1-2, cols 0-1)
    np.testing.assert_array_equal(s["mask"].numpy(), [[1, 0, 0], [0, 0, 0]])
    # the same size is a no-op for the image
    same = Resize((4, 6))(_sample())
    assert torch.equal(same["image"], _sample()["image"])


def test_hflip_hand_values_and_involution():
    s = _sample()
    f = hflip_sample(s)
    assert torch.equal(f["image"][:, :, 0], s["image"][:, :, -1])
    np.testing.assert_array_equal(f["fixations"].numpy(), [[0, 5], [3, 0], [1, 3]])
    assert torch.equal(f["mask"][:, 4:], s["mask"][:, :2].flip(-1))
    ff = hflip_sample(f)
    for k in ("image", "fixations", "density", "mask", "fixation_map"):
        assert torch.equal(ff[k], s[k])


def test_normalize_hand_values():
    s = {"image": torch.full((3, 2, 2), 0.5)}
    out = Normalize()(s)["image"]
    np.testing.assert_allclose(out[:, 0, 0].numpy(), [(0.5 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0.5 - 0.406) / 0.225], rtol=1e-6)


def test_random_flip_is_seeded():
    s = _sample()
    decisions = []
    for _ in range(2):
        t = Compose([RandomHorizontalFlip(0.5, seed=7)])
        decisions.append([not torch.equal(t(s)["image"], s["image"]) for _ in range(20)])
    assert decisions[0] == decisions[1]
    assert 0 < sum(decisions[0]) < 20
    with pytest.raises(ValueError):
        RandomHorizontalFlip(1.5)


def test_collate_variable_fixations():
    a, b = _sample(), _sample()
    b["fixations"] = torch.tensor([[2, 2]])
    b["observers"] = torch.tensor([4])
    batch = collate([a, b])
    assert batch["image"].shape == (2, 3, 4, 6) and batch["density"].shape == (2, 4, 6)
    assert isinstance(batch["fixations"], list) and [len(f) for f in batch["fixations"]] == [3, 1]
    assert batch["label"].dtype == torch.long and batch["label"].tolist() == [3, 3]
    assert batch["name"] == ["a", "a"]
    del b["mask"]
    with pytest.raises(ValueError, match="different fields"):
        collate([a, b])


class _Tiny(torch.utils.data.Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return {"image": torch.full((1, 2, 2), float(i)), "label": i, "noise": torch.rand(1)}


def test_make_loader_is_reproducible():
    def run(workers):
        loader = make_loader(_Tiny(), batch_size=4, shuffle=True, seed=5, num_workers=workers)
        return [(b["label"].tolist(), b["noise"].flatten().tolist()) for b in loader]

    first, second = run(0), run(0)
    assert [l for l, _ in first] == [l for l, _ in second]  # same shuffled order
    assert sorted(sum((l for l, _ in first), [])) == list(range(12))
    w1, w2 = run(2), run(2)  # worker RNGs seeded from the loader's seed: same random draws too
    assert w1 == w2
    assert [l for l, _ in w1] == [l for l, _ in first]


def test_hflip_batch_mirrors_exactly_half_and_keeps_fixations_consistent():
    n, h, w = 6, 4, 5
    images = torch.rand(n, 3, 8, 10)
    fmap = torch.zeros(n, h, w)
    fixations = []
    for i in range(n):
        fmap[i, 1, i % w] = 1.0
        fixations.append(torch.tensor([[1, i % w]]))
    batch = {"image": images, "fixation_map": fmap, "fixations": fixations}
    out = hflip_batch(batch, torch.Generator().manual_seed(0))
    flipped = [not torch.equal(out["image"][i], images[i]) for i in range(n)]
    assert sum(flipped) == n // 2
    for i in range(n):
        expected = images[i].flip(-1) if flipped[i] else images[i]
        assert torch.equal(out["image"][i], expected)
        r, c = out["fixations"][i][0].tolist()
        assert out["fixation_map"][i, r, c] == 1.0  # the fixation still sits on the map's peak
    again = hflip_batch(batch, torch.Generator().manual_seed(0))
    assert torch.equal(again["image"], out["image"])
    assert torch.equal(batch["image"], images)  # the input batch is not modified


@pytest.mark.parametrize("shape", [(6, 4, 5), (6, 1, 4, 5)])
def test_hflip_batch_mirrors_extra_maps_with_the_same_draw(shape):
    images = torch.rand(6, 3, 4, 5)
    extra = images[:, 0].reshape(shape) * 2  # a map that is a function of its image: its pairing can be checked
    batch = {"image": images, "density": images[:, 1], "teacher_map": extra}
    plain = hflip_batch(batch, torch.Generator().manual_seed(4))
    out = hflip_batch(batch, torch.Generator().manual_seed(4), extra_keys=("teacher_map", "absent"))
    assert torch.equal(out["image"], plain["image"]) and torch.equal(out["density"], plain["density"])
    assert torch.equal(plain["teacher_map"], extra)  # not named: left as it was
    assert torch.equal(out["teacher_map"], out["image"][:, 0].reshape(shape) * 2)
    assert torch.equal(batch["teacher_map"], extra)  # the input batch is not modified
    with pytest.raises(ValueError, match="5 maps for 6 images"):
        hflip_batch({"image": images, "teacher_map": extra[:5]}, torch.Generator(), extra_keys=("teacher_map",))


def test_load_split_holds_validation_out_of_the_training_split(tmp_path, monkeypatch):
    monkeypatch.setenv("SALBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SALBOOK_PROGRESS", "0")
    spec = SplitSpec(n_train=6, n_val=3, val_split="train", input_size=(96, 96), map_size=(48, 48))
    train, val = load_split(spec, "train"), load_split(spec, "val")
    assert len(train) == 6 and len(val) == 3
    names = {train[i]["name"] for i in range(6)} | {val[i]["name"] for i in range(3)}
    assert len(names) == 9  # no image in both
    assert tuple(train[0]["fixation_map"].shape) == (48, 48)
    with pytest.raises(ValueError, match="role"):
        load_split(spec, "unlabelled")


def test_split_spec_normalises_sizes_and_requires_data_root_for_real_data():
    spec = SplitSpec(n_train=7).replace(input_size=[96, 96])
    assert spec.n_train == 7 and spec.input_size == (96, 96) and spec.dataset == "synthetic"
    assert spec == SplitSpec(n_train=7, input_size=(96, 96))  # lists and tuples give equal (hashable) specs
    with pytest.raises(ValueError, match="data_root"):
        SplitSpec(dataset="salicon")


def test_gaussian_blur_matches_scipy_on_any_batch_shape():
    from scipy.ndimage import gaussian_filter

    from salbook.maps import gaussian_blur

    x = torch.rand(2, 3, 16, 20, dtype=torch.float64)
    ref = np.stack([[gaussian_filter(m, 1.5) for m in row] for row in x.numpy()])
    np.testing.assert_allclose(gaussian_blur(x, 1.5).numpy(), ref, atol=1e-12)
    assert gaussian_blur(x, 0.0) is x
    with pytest.raises(ValueError, match="at least"):
        gaussian_blur(torch.rand(4, 4), 3.0)
