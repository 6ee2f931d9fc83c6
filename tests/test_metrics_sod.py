"""Salient-object metrics: a 2-image hand example where the two F conventions differ, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from salbook.metrics import SOD_METRICS, SODMetrics

E = 1e-4  # SalMetric's smoothing


def f_beta(p: float, r: float) -> float:
    return 1.3 * p * r / (0.3 * p + r)


def two_images() -> SODMetrics:
    acc = SODMetrics()
    # A: object = pixel 0; prediction covers pixels 0 and 1 -> P = 1/2, R = 1
    acc.step(np.array([[1.0, 1.0, 0.0, 0.0]]), np.array([[1.0, 0.0, 0.0, 0.0]]))
    # B: object = pixels 0..2; prediction covers pixel 0 -> P = 1, R = 1/3
    acc.step(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]]))
    return acc


def test_two_f_conventions_by_hand():
    res = two_images().results()
    assert set(res) == set(SOD_METRICS)
    f_a, f_b = f_beta(0.5, 1.0), f_beta(1.0, 1 / 3)  # 0.565217, 0.684211
    # PySODMetrics: thresholds ">= t" on 8-bit values; t = 1..255 keep the predictions above, t = 0
    # marks every pixel positive (A: P = 1/4, R = 1; B: P = 3/4, R = 1)
    f_t0 = (f_beta(0.25, 1.0) + f_beta(0.75, 1.0)) / 2
    assert res["max_f"] == pytest.approx((f_a + f_b) / 2)  # 0.624714
    assert res["mean_f"] == pytest.approx((255 * (f_a + f_b) / 2 + f_t0) / 256)
    assert res["adaptive_f"] == pytest.approx((f_a + f_b) / 2)  # thresholds 1 and 0.5
    # SalMetric: P, R averaged over images first (positive iff value > th, th = 0..254 here)
    p_mean = ((1 + E) / (2 + E) + 1.0) / 2
    r_mean = (1.0 + (1 + E) / (3 + E)) / 2
    assert res["max_f_salmetric"] == pytest.approx(f_beta(p_mean, r_mean), rel=1e-9)  # ≈ 0.72897
    assert res["max_f_salmetric"] - res["max_f"] > 0.1  # the conventions really differ
    assert res["mae"] == pytest.approx((1 / 4 + 2 / 4) / 2)
    assert res["mae_salmetric"] == pytest.approx(0.375)


def test_salmetric_curves_are_averaged_p_and_r():
    c = two_images().curves()
    assert c["precision_salmetric"].shape == (256,)
    assert c["precision_salmetric"][0] == pytest.approx(((1 + E) / (2 + E) + 1) / 2)
    # th = 255: nothing is > 255, so P = E/E = 1 and R ~ 1e-4 for both images
    assert c["precision_salmetric"][255] == pytest.approx(1.0)
    assert c["recall_salmetric"][255] < 1e-3


def test_perfect_prediction():
    mask = np.zeros((8, 8))
    mask[2:6, 3:7] = 1
    acc = SODMetrics()
    per = acc.step(mask.copy(), mask)
    res = acc.results()
    assert res["mae"] == 0.0 and per["mae"] == 0.0
    assert res["s_measure"] == pytest.approx(1.0, abs=1e-6)
    assert res["max_f"] == pytest.approx(1.0)
    assert res["max_f_salmetric"] == pytest.approx(1.0, abs=1e-6)
    assert res["max_e"] == pytest.approx(1.0, abs=0.02)


def test_empty_and_full_mask():
    pred = np.full((4, 4), 0.25)
    pred[0, 0] = 1.0  # min-max: 0.25 -> 0 and 1 stays 1, so mean(P) = 1/16
    acc = SODMetrics()
    empty = acc.step(pred, np.zeros((4, 4)))
    assert empty["s_measure"] == pytest.approx(1 - 1 / 16)  # no object: 1 - mean(P)
    assert empty["max_f"] == 0.0  # recall is 0
    full = SODMetrics().step(pred, np.ones((4, 4)))
    assert full["s_measure"] == pytest.approx(1 / 16)  # all object: mean(P)


def test_uint8_mask_is_binarised_at_128_and_size_mismatch_resizes():
    mask8 = np.array([[200, 129], [128, 0]], dtype=np.uint8)  # object = the first row
    per = SODMetrics().step(np.array([[1.0, 1.0], [0.0, 0.0]]), mask8)
    assert per["mae"] == 0.0
    big_mask = np.kron(np.array([[1.0, 1.0], [0.0, 0.0]]), np.ones((4, 4)))  # 8×8
    per = SODMetrics().step(np.array([[1.0, 1.0], [0.0, 0.0]]), big_mask)  # 2×2 resized to 8×8
    assert 0 < per["mae"] < 0.2  # the bilinear edge rows are in between


def test_bad_inputs_raise():
    acc = SODMetrics()
    with pytest.raises(ValueError, match="sigmoid"):
        acc.step(np.array([[-2.0, 3.0]]), np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="NaN"):
        acc.step(np.array([[np.nan, 1.0]]), np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="no image"):
        acc.results()
