"""Baselines: uniform, centre bias, true density, inter-observer consistency."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from salbook.baselines import CenterBias, TrueDensity, Uniform, inter_observer, mit_sigma
from salbook.metrics import fixation_map_from_points


def sample(fix, observers, size=(8, 10), name="x"):
    fix = torch.tensor(fix, dtype=torch.long).reshape(-1, 2)
    return {
        "image": torch.zeros(3, *size),
        "fixations": fix,
        "observers": torch.tensor(observers, dtype=torch.long),
        "fixation_map": fixation_map_from_points(fix, size, sigma=1.0),
        "name": name,
    }


def test_uniform_forward_and_predict_batch():
    out = Uniform()(torch.rand(2, 3, 4, 5))
    assert out.shape == (2, 4, 5)
    assert torch.allclose(out.sum((1, 2)), torch.ones(2))
    batch = {"image": torch.rand(3, 3, 8, 8), "fixation_map": torch.rand(3, 6, 7)}
    pb = Uniform().predict_batch(batch)
    assert pb.shape == (3, 6, 7) and float(pb[0, 0, 0]) == pytest.approx(1 / 42)


def test_centre_bias_hand_histogram():
    pts = np.array([[0.1, 0.1], [0.1, 0.9], [0.9, 0.9], [0.9, 0.9]])
    cb = CenterBias.fit(pts, grid=(2, 2), sigma=0, uniform_weight=0)
    torch.testing.assert_close(cb.density, torch.tensor([[0.25, 0.25], [0.0, 0.5]]))
    cb = CenterBias.fit(pts, grid=(2, 2), sigma=0, uniform_weight=0.2)  # 0.8·hist + 0.2·(1/4)
    torch.testing.assert_close(cb.density, torch.tensor([[0.25, 0.25], [0.05, 0.45]]))


def test_centre_bias_from_dataset_pixel_positions_and_any_size():
    # 4×4 maps: pixel (0,0) -> normalised (.125, .125) -> bin (0, 0) of a 2×2 grid; (3,3) -> (1, 1)
    data = [sample([[0, 0], [3, 3]], [0, 1], size=(4, 4)), sample([[3, 3]], [0], size=(4, 4))]
    cb = CenterBias.fit(data, grid=(2, 2), sigma=0, uniform_weight=0, progress=False)
    torch.testing.assert_close(cb.density, torch.tensor([[1 / 3, 0.0], [0.0, 2 / 3]]))
    big = cb.density_at((6, 9))
    assert big.shape == (6, 9) and float(big.sum()) == pytest.approx(1.0)
    assert float(big[-1, -1]) > float(big[0, 0]) > float(big[0, -1]) >= 0
    out = cb(torch.rand(2, 3, 6, 9))
    assert out.shape == (2, 6, 9) and torch.equal(out[1], big)
    assert cb.predict_batch({"fixation_map": torch.zeros(5, 4, 4)}).shape == (5, 4, 4)


def test_centre_bias_blur_keeps_mass_and_peaks_at_centre():
    rng = np.random.default_rng(0)
    pts = np.clip(rng.normal(0.5, 0.1, size=(500, 2)), 0, 1)
    cb = CenterBias.fit(pts, grid=(32, 32), sigma=0.05)
    d = cb.density
    assert float(d.sum()) == pytest.approx(1.0, abs=1e-6)
    r, c = np.unravel_index(int(d.argmax()), d.shape)
    assert abs(r - 16) <= 2 and abs(c - 16) <= 2
    assert float(d.min()) >= 0.01 / (32 * 32) * 0.999  # the uniform floor


def test_centre_bias_errors_and_state_dict():
    with pytest.raises(ValueError, match="normalised"):
        CenterBias.fit(np.array([[3.0, 4.0]]))
    with pytest.raises(ValueError, match="no fixation"):
        CenterBias.fit(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="fit"):
        CenterBias(torch.zeros(3, 3))
    cb = CenterBias.fit(np.array([[0.5, 0.5]]), grid=(4, 4))
    clone = CenterBias(torch.ones(4, 4))
    clone.load_state_dict(cb.state_dict())
    torch.testing.assert_close(clone.density, cb.density)


def test_true_density():
    d = torch.rand(2, 5, 6)
    assert torch.equal(TrueDensity().predict_batch({"density": d}), d)
    with pytest.raises(ValueError, match="synthetic"):
        TrueDensity().predict_batch({"fixation_map": d})
    with pytest.raises(TypeError, match="predict_batch"):
        TrueDensity()(torch.rand(1, 3, 5, 6))


def test_inter_observer_identical_observers_are_perfect():
    # two observers with exactly the same fixations: the rest predicts the held-out one perfectly
    fix = [[2, 2], [5, 7], [2, 2], [5, 7]]
    data = [sample(fix, [0, 0, 1, 1], name="a"), sample([[1, 1], [6, 8], [1, 1], [6, 8]], [0, 0, 1, 1], name="b")]
    res = inter_observer(data, metrics=("auc_judd", "cc", "sim", "kld", "auc_shuffled"), sigma=1.0, progress=False)
    assert list(res.per_image["held_out"]) == ["observer 0", "observer 1"] * 2
    assert res.per_image["cc"].tolist() == pytest.approx([1.0] * 4)
    assert res.per_image["sim"].tolist() == pytest.approx([1.0] * 4)
    assert res.per_image["kld"].abs().max() < 1e-9
    assert res.summary.loc["cc", "n"] == 2  # averaged per image first
    assert res.summary.loc["auc_judd", "mean"] > 0.9


def test_inter_observer_modes_skips_and_errors():
    data = [
        sample([[1, 1], [2, 2], [6, 6], [3, 3]], [0, 1, 2, 3], name="four"),
        sample([[4, 4], [4, 5]], [7, 7], name="one observer"),
    ]
    one = inter_observer(data, metrics=("nss",), progress=False)
    assert len(one.per_image) == 4 and one.settings["skipped_images"] == 1
    half = inter_observer(data, metrics=("nss",), mode="half", progress=False)
    assert list(half.per_image["held_out"]) == ["half A", "half B"]
    # the default sigma follows MIT: 24 px per 1024 px of width
    assert mit_sigma(1024) == 24.0 and math.isclose(mit_sigma(10), 0.234375)
    with pytest.raises(ValueError, match="mode"):
        inter_observer(data, metrics=("nss",), mode="thirds", progress=False)
    no_obs = [{k: v for k, v in data[0].items() if k != "observers"}]
    with pytest.raises(ValueError, match="observers"):
        inter_observer(no_obs, metrics=("nss",), progress=False)
    with pytest.raises(ValueError, match="two or more observers"):
        inter_observer(data[1:], metrics=("nss",), progress=False)
