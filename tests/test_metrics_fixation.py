"""Fixation metrics: hand-computed cases, the MIT loops re-written literally, and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from salbook.metrics import (
    FIXATION_METRICS,
    auc_borji,
    auc_judd,
    auc_shuffled,
    cc,
    fixation_map_from_points,
    info_gain,
    kld,
    log_likelihood,
    nss,
    rescale_fixations,
    resize_map,
    score_batch,
    score_image,
    sim,
)
from salbook.metrics.fixation import _auc_vs_negative_splits

P23 = np.array([[0.9, 0.1, 0.5], [0.3, 0.7, 0.2]])


# ---------------------------------------------------------------- literal MIT loops (reference)
def mit_auc_judd_loop(s: np.ndarray, fixmap: np.ndarray) -> float:
    """AUC_Judd.m, line by line (no jitter: use a map without ties)."""
    s = s.ravel()
    f = fixmap.ravel() > 0
    sth = s[f]
    nfix, npix = len(sth), len(s)
    thresholds = np.sort(sth)[::-1]
    tp = np.zeros(nfix + 2)
    fp = np.zeros(nfix + 2)
    tp[-1] = fp[-1] = 1
    for i, t in enumerate(thresholds, start=1):
        above = (s >= t).sum()
        tp[i] = i / nfix
        fp[i] = (above - i) / (npix - nfix)
    return float(np.sum(np.diff(fp) * (tp[1:] + tp[:-1]) / 2))


def mit_auc_borji_loop(s: np.ndarray, fixmap: np.ndarray, randidx: np.ndarray, step: float) -> float:
    """AUC_Borji.m with the random pixel draws given (n_splits × Nfix flat indices)."""
    s = (s - s.min()) / (s.max() - s.min())
    flat = s.ravel()
    sth = flat[fixmap.ravel() > 0]
    aucs = []
    for split in randidx:
        cur = flat[split]
        top = max(sth.max(), cur.max())
        thr = [round(k * step, 12) for k in range(int(math.floor(top / step + 1e-9)) + 1)][::-1]
        tp = [0.0] + [(sth >= t).mean() for t in thr] + [1.0]
        fp = [0.0] + [(cur >= t).mean() for t in thr] + [1.0]
        aucs.append(np.trapezoid(tp, fp))
    return float(np.mean(aucs))


# ---------------------------------------------------------------- AUC-Judd
def test_auc_judd_hand_case_and_duplicates_count_once():
    # positives {0.9, 0.5}; negatives {0.1, 0.3, 0.7, 0.2}
    # t=0.9: (FPR 0, TPR .5); t=0.5: (FPR .25, TPR 1) -> area .25*.75 + .75 = 0.9375
    fix = [[0, 0], [0, 2]]
    assert auc_judd(P23, fix) == pytest.approx(0.9375, abs=1e-12)
    # counting (0,0) twice would give TPR 2/3 at t=.9 and 0.9583; MIT counts the pixel once
    assert auc_judd(P23, fix + [[0, 0]]) == pytest.approx(0.9375, abs=1e-12)


def test_auc_judd_ties_are_counted_with_ge():
    # fixated pixel ties with one negative: t=1 -> TPR 1, FPR 1/5 -> area .2*.5 + .8 = 0.9
    s = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert auc_judd(s, [[0, 0]]) == pytest.approx(0.9)


def test_auc_judd_single_fixation_and_all_on_one_pixel():
    s = np.arange(6.0).reshape(2, 3)  # fixate the value 4: FPR = 1/5 (only 5 is above)
    assert auc_judd(s, [[1, 1]]) == pytest.approx(0.9)
    assert auc_judd(s, [[1, 1]] * 7) == pytest.approx(0.9)


def test_auc_judd_matches_literal_mit_loop():
    rng = np.random.default_rng(3)
    s = rng.random((9, 11))
    fix = np.stack([rng.integers(0, 9, 15), rng.integers(0, 11, 15)], axis=1)
    fixmap = np.zeros_like(s)
    fixmap[fix[:, 0], fix[:, 1]] = 1
    assert auc_judd(s, fix) == pytest.approx(mit_auc_judd_loop(s, fixmap), abs=1e-12)


# ---------------------------------------------------------------- AUC-Borji / shuffled
def test_borji_split_curve_hand_case():
    # pos {.55, 1}, neg {0, .55}: t in 1..0.6 -> (0, .5); t in .5..0.1 -> (.5, 1); t=0 -> (1, 1)
    pos = np.array([0.55, 1.0])
    neg = np.array([[0.0, 0.55]])
    assert _auc_vs_negative_splits(pos, neg, 0.1) == pytest.approx(0.875)


def test_borji_expected_value_two_pixel_map():
    # map [0, 1], fixation on the 1: a negative drawn at 0 gives AUC 1, at 1 gives 0.5 -> 0.75
    score = auc_borji(np.array([[0.0, 1.0]]), [[0, 1]], n_splits=20000, seed=1)
    assert score == pytest.approx(0.75, abs=0.01)


def test_borji_matches_literal_mit_loop_with_same_draws():
    rng = np.random.default_rng(5)
    s = rng.random((8, 10))
    fix = np.array([[1, 1], [2, 7], [5, 3], [7, 9], [2, 7]])
    fixmap = np.zeros_like(s)
    fixmap[fix[:, 0], fix[:, 1]] = 1
    draws = np.random.default_rng(11).integers(0, s.size, size=(30, 4))  # 4 distinct fixated pixels
    ours = auc_borji(s, fix, n_splits=30, seed=11)
    assert ours == pytest.approx(mit_auc_borji_loop(s, fixmap, draws, 0.1), abs=1e-12)


def test_borji_and_shuffled_are_deterministic_given_seed():
    rng = np.random.default_rng(0)
    s = rng.random((12, 16))
    fix = np.array([[1, 2], [5, 5], [10, 3]])
    other = np.stack([rng.integers(0, 12, 40), rng.integers(0, 16, 40)], axis=1)
    assert auc_borji(s, fix, seed=4) == auc_borji(s, fix, seed=4)
    assert auc_shuffled(s, fix, other, seed=4) == auc_shuffled(s, fix, other, seed=4)
    assert auc_borji(s, fix, seed=4) != auc_borji(s, fix, seed=5)


def test_shuffled_reuses_one_draw_without_changing_scores():
    # Repeated calls with the same (seed, n_splits, #other pixels) share a sorted draw; each score
    # must equal the one computed from scratch (argpartition of a fresh draw).
    from salbook.metrics import fixation as fx

    rng = np.random.default_rng(3)
    s = rng.random((30, 40))
    other = np.stack([rng.integers(0, 30, 300), rng.integers(0, 40, 300)], axis=1)
    held = [np.stack([rng.integers(0, 30, n), rng.integers(0, 40, n)], axis=1) for n in (5, 12, 3, 12, 40)]

    def fresh(fix):
        fx._SortedKeys.key = fx._SortedKeys.order = None
        return auc_shuffled(s, fix, other, seed=11)

    expected = [fresh(f) for f in held]
    fx._SortedKeys.key = fx._SortedKeys.order = None
    repeated = [auc_shuffled(s, f, other, seed=11) for f in held]  # 2nd call on sorts, then slices
    assert fx._SortedKeys.order is not None
    assert repeated == expected
    assert auc_shuffled(s, held[0], other, seed=12) != expected[0]  # another seed: another draw


def test_shuffled_hand_case_all_others_used():
    # values [0, .2, .6, 1]; fixated {1, .2}; other pixels {0, .6}: k = min(2, 2) = 2 (all used)
    # t=1..0.7 -> (0, .5); t=.6..0.3 -> (.5, .5); t=.2,.1 -> (.5, 1); t=0 -> (1, 1): area 0.75
    s = np.array([[0.0, 0.2, 0.6, 1.0]])
    assert auc_shuffled(s, [[0, 3], [0, 1]], [[0, 0], [0, 2], [0, 2]], seed=9) == pytest.approx(0.75)


def test_shuffled_centre_prior_is_near_chance():
    rng = np.random.default_rng(2)
    h, w = 40, 50
    rows, cols = np.mgrid[0:h, 0:w]
    centre = np.exp(-(((rows - h / 2) / 8) ** 2 + ((cols - w / 2) / 10) ** 2))

    def draw(n):
        r = np.clip(np.round(rng.normal(h / 2, 6, n)), 0, h - 1)
        c = np.clip(np.round(rng.normal(w / 2, 8, n)), 0, w - 1)
        return np.stack([r, c], axis=1).astype(int)

    fix, other = draw(60), draw(600)
    assert auc_borji(centre, fix) > 0.8  # the centre prior looks good to Borji...
    assert abs(auc_shuffled(centre, fix, other) - 0.5) < 0.08  # ...but not to sAUC


# ---------------------------------------------------------------- NSS, CC, KLD, SIM, IG, LL
def test_nss_hand_case():
    s = np.array([[1.0, 2.0, 3.0, 4.0]])  # mean 2.5, std (N-1) = sqrt(5/3)
    z4 = 1.5 / math.sqrt(5 / 3)
    assert nss(s, [[0, 3]]) == pytest.approx(z4)
    assert nss(s, [[0, 3], [0, 0]]) == pytest.approx(0.0, abs=1e-12)
    assert nss(s, [[0, 3], [0, 3], [0, 0]]) == pytest.approx(0.0, abs=1e-12)  # duplicate once


def test_cc_hand_case():
    # a = [-1.5,-.5,.5,1.5], b = [-.5,-.5,.5,.5]: sum ab = 2, |a|^2 = 5, |b|^2 = 1
    assert cc(np.array([[1.0, 2, 3, 4]]), np.array([[0.0, 0, 1, 1]])) == pytest.approx(2 / math.sqrt(5))
    assert cc(np.array([[4.0, 3, 2, 1]]), np.array([[0.0, 0, 1, 1]])) == pytest.approx(-2 / math.sqrt(5))


def test_kld_hand_case():
    # P = [.25, .25, .5], Q = [0, .5, .5]: .5 ln 2 + .5 ln 1
    assert kld(np.array([[1.0, 1, 2]]), np.array([[0.0, 1, 1]])) == pytest.approx(0.5 * math.log(2))
    assert kld(np.array([[0.0, 1, 1]]), np.array([[0.0, 3, 3]])) == pytest.approx(0.0, abs=1e-12)


def test_sim_hand_case():
    # pred [1,2,3] -> [0,.5,1]/1.5 = [0,1/3,2/3]; map [0,1,1] -> [0,.5,.5]; sum of min = 5/6
    assert sim(np.array([[1.0, 2, 3]]), np.array([[0.0, 1, 1]])) == pytest.approx(5 / 6)


def test_info_gain_hand_case():
    s = np.array([[1.0, 2, 3]])  # P = [0, 1/3, 2/3]; constant baseline -> uniform 1/3
    base = np.ones((1, 3))
    assert info_gain(s, [[0, 2]], base) == pytest.approx(1.0)  # log2(2/3) - log2(1/3)
    assert info_gain(s, [[0, 2], [0, 1]], base) == pytest.approx(0.5)
    assert info_gain(s, [[0, 2]], s) == pytest.approx(0.0)


def test_log_likelihood_hand_case_counts_every_fixation():
    logd = np.log(np.array([[1.0, 1.0, 2.0]])) + 7.0  # unnormalised: p = [.25, .25, .5]
    fix = [[0, 2], [0, 2], [0, 0]]
    expected = (-1 - 1 - 2) / 3 - math.log2(1 / 3)
    assert log_likelihood(logd, fix) == pytest.approx(expected)
    assert log_likelihood(logd, fix, baseline_log_density=np.zeros((1, 3))) == pytest.approx(expected)


# ---------------------------------------------------------------- edge cases
FIX_ONLY = ["auc_judd", "auc_borji", "nss"]


def test_empty_fixations_give_nan():
    s = np.random.default_rng(0).random((4, 5))
    for empty in ([], np.zeros((0, 2), dtype=np.int64), torch.zeros(0, 2, dtype=torch.long)):
        assert math.isnan(auc_judd(s, empty))
        assert math.isnan(auc_borji(s, empty))
        assert math.isnan(auc_shuffled(s, empty, [[0, 0]]))
        assert math.isnan(nss(s, empty))
        assert math.isnan(info_gain(s, empty, s))
        assert math.isnan(log_likelihood(s, empty))
    assert math.isnan(auc_shuffled(s, [[1, 1]], []))
    zero = np.zeros((4, 5))
    assert math.isnan(cc(s, zero)) and math.isnan(kld(s, zero)) and math.isnan(sim(s, zero))


@pytest.mark.parametrize("value", [0.0, 3.5])
def test_constant_and_all_zero_prediction(value):
    s = np.full((6, 7), value)
    fix = [[1, 1], [4, 5]]
    fmap = fixation_map_from_points(fix, (6, 7), sigma=1.0)
    assert auc_judd(s, fix) == 0.5
    assert auc_borji(s, fix) == pytest.approx(0.5)
    assert auc_shuffled(s, fix, [[0, 0], [5, 6]]) == pytest.approx(0.5)
    assert nss(s, fix) == 0.0
    assert cc(s, fmap) == 0.0
    assert sim(s, fmap) == pytest.approx(sim(np.ones((6, 7)), fmap))  # uniform
    assert info_gain(s, fix, np.ones((6, 7))) == pytest.approx(0.0, abs=1e-12)
    if value == 0.0:  # MIT: a zero map is not normalised -> a very bad density (~36 nats)
        assert kld(s, fmap) > 30
    else:
        assert kld(s, fmap) == pytest.approx(kld(np.ones((6, 7)), fmap))


@pytest.mark.parametrize("name", sorted(FIXATION_METRICS))
def test_nan_input_raises(name):
    s = np.random.default_rng(0).random((4, 5))
    s[2, 2] = np.nan
    fn = FIXATION_METRICS[name]
    with pytest.raises(ValueError, match="NaN"):
        if name == "auc_shuffled":
            fn(s, [[0, 0]], [[1, 1]])
        elif name == "info_gain":
            fn(s, [[0, 0]], np.ones((4, 5)))
        elif name in ("cc", "kld", "sim"):
            fn(s, np.ones((4, 5)))
        else:
            fn(s, [[0, 0]])
    with pytest.raises(ValueError, match="NaN"):  # a NaN in the ground truth too
        cc(np.ones((4, 5)), s)


def test_fixations_outside_the_map_raise():
    with pytest.raises(ValueError, match="outside the 4×5 map"):
        auc_judd(np.ones((4, 5)), [[4, 0]])
    with pytest.raises(ValueError, match="integer"):
        nss(np.ones((4, 5)), [[1.5, 0]])
    with pytest.raises(ValueError, match="K×2"):
        nss(np.ones((4, 5)), [1, 2, 3])


def test_size_mismatch_resizes_prediction_bilinear():
    # [[0, 1]] to 1×4, bilinear align_corners=False: sample x = -.25, .25, .75, 1.25 -> 0, .25, .75, 1
    np.testing.assert_allclose(resize_map(np.array([[0.0, 1.0]]), (1, 4)), [[0, 0.25, 0.75, 1]])
    rng = np.random.default_rng(1)
    small = rng.random((6, 8))
    fmap = fixation_map_from_points([[3, 4], [9, 12]], (12, 16), sigma=2.0)
    big = resize_map(small, (12, 16))
    for fn in (cc, kld, sim):
        assert fn(small, fmap) == pytest.approx(fn(big, fmap))
    assert info_gain(big, [[3, 4]], small) == pytest.approx(info_gain(big, [[3, 4]], big))


def test_torch_input_and_leading_singleton_dims():
    s = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])  # 1×1×4
    assert nss(s, torch.tensor([[0, 3]])) == pytest.approx(1.5 / math.sqrt(5 / 3))
    with pytest.raises(ValueError, match="2-D"):
        nss(torch.ones(2, 3, 4), [[0, 0]])


# ---------------------------------------------------------------- helpers
def test_fixation_map_from_points():
    m = fixation_map_from_points([[0, 0], [0, 0], [1, 2]], (2, 3), sigma=0)
    torch.testing.assert_close(m, torch.tensor([[1.0, 0, 0], [0, 0, 0.5]]))
    s = fixation_map_from_points([[0, 0], [0, 0], [1, 2]], (2, 3), sigma=0, normalize="sum")
    assert float(s.sum()) == pytest.approx(1.0) and float(s[0, 0]) == pytest.approx(2 / 3)
    g = fixation_map_from_points([[10, 10]], (21, 21), sigma=2.0)
    assert float(g[10, 10]) == 1.0
    assert float(g[10, 11]) == pytest.approx(math.exp(-1 / 8), rel=1e-3)  # exp(-d²/2σ²)
    assert float(g[12, 10]) == pytest.approx(math.exp(-4 / 8), rel=1e-3)
    assert float(fixation_map_from_points([], (3, 3), sigma=1).sum()) == 0.0


def test_rescale_fixations_pixel_centre_rule():
    np.testing.assert_array_equal(rescale_fixations([[0, 0], [1, 1]], (2, 2), (4, 4)), [[1, 1], [3, 3]])
    np.testing.assert_array_equal(rescale_fixations([[3, 0], [2, 1]], (4, 4), (2, 2)), [[1, 0], [1, 0]])


def test_score_image_and_batch_agree_with_direct_calls():
    rng = np.random.default_rng(7)
    preds = torch.tensor(rng.random((2, 6, 8)), dtype=torch.float32)
    fixes = [torch.tensor([[1, 1], [4, 6]]), torch.tensor([[0, 7]])]
    maps = torch.stack([fixation_map_from_points(f, (6, 8), sigma=1.0) for f in fixes])
    batch = {"fixations": fixes, "fixation_map": maps, "name": ["a", "b"]}
    out = score_batch(preds, batch, ["auc_judd", "nss", "cc", "auc_borji"], seeds=[3, 4])
    assert out[1]["auc_judd"] == auc_judd(preds[1], fixes[1])
    assert out[0]["cc"] == pytest.approx(cc(preds[0], maps[0]))
    assert out[1]["auc_borji"] == auc_borji(preds[1], fixes[1], seed=4)
    # a prediction at half the size is resized to the fixation map first
    small = preds[0, ::2, ::2]
    one = score_image(small, {"fixations": fixes[0], "fixation_map": maps[0]}, ["nss"])
    assert one["nss"] == pytest.approx(nss(resize_map(small, (6, 8)), fixes[0]))
    with pytest.raises(ValueError, match="unknown metric"):
        score_image(preds[0], batch, ["auc"])
