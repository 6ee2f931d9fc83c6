"""The evaluation harness: resizing, shuffle fixations, seeding, summary statistics, SOD."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from salbook.baselines import CenterBias, Uniform
from salbook.evaluation import (
    POSTPROCESSORS,
    EvalResult,
    evaluate,
    evaluate_sod,
    finished_maps,
    paired_difference,
    image_seed,
    predict,
    shuffle_fixations,
    summarize,
)
from salbook.metrics import auc_shuffled, fixation_map_from_points, resize_map, score_image

H, W = 12, 16


def make_dataset(n: int = 5, seed: int = 0, h: int = H, w: int = W) -> list[dict]:
    """Tiny synthetic fixation samples: fixations around a random centre, 2 observers."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        cy, cx = rng.uniform(3, h - 3), rng.uniform(3, w - 3)
        k = 6
        fix = np.stack(
            [np.clip(np.round(rng.normal(cy, 1.5, k)), 0, h - 1), np.clip(np.round(rng.normal(cx, 1.5, k)), 0, w - 1)],
            axis=1,
        ).astype(np.int64)
        rows, cols = np.mgrid[0:h, 0:w]
        dens = np.exp(-0.5 * (((rows - cy) / 1.5) ** 2 + ((cols - cx) / 1.5) ** 2))
        out.append(
            {
                "image": torch.rand(3, h, w, generator=torch.Generator().manual_seed(i)),
                "fixations": torch.from_numpy(fix),
                "observers": torch.tensor([0, 1] * (k // 2)),
                "fixation_map": fixation_map_from_points(fix, (h, w), sigma=1.0),
                "density": torch.from_numpy(dens / dens.sum()).float(),
                "name": f"img{i}",
            }
        )
    return out


class HalfResModel(nn.Module):
    """Returns N×1×(H/2)×(W/2): the mean image brightness, average-pooled; checks eval/no_grad."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert not self.training, "evaluate must put the model in eval() mode"
        assert not torch.is_grad_enabled(), "evaluate must run under torch.no_grad()"
        self.calls += 1
        return self.drop(nn.functional.avg_pool2d(x.mean(1, keepdim=True), 2))


def test_evaluate_resizes_to_ground_truth_and_matches_direct_scores():
    data = make_dataset(4)
    model = HalfResModel().train()
    res = evaluate(model, data, metrics=("auc_judd", "nss", "cc", "kld", "sim"), batch_size=3, progress=False)
    assert model.training, "the model's previous mode is restored"
    assert list(res.per_image.columns) == ["name", "auc_judd", "nss", "cc", "kld", "sim"]
    assert list(res.per_image["name"]) == ["img0", "img1", "img2", "img3"]
    s = data[2]
    small = nn.functional.avg_pool2d(s["image"].mean(0, keepdim=True)[None], 2)[0, 0]
    expect = score_image(resize_map(small, (H, W)), s, ["nss", "cc"])
    row = res.per_image.iloc[2]
    assert row["nss"] == pytest.approx(expect["nss"]) and row["cc"] == pytest.approx(expect["cc"])


def test_postprocess_runs_before_resizing():
    seen = []

    def post(p: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(p.shape))
        return torch.sigmoid(p)

    evaluate(HalfResModel(), make_dataset(2), metrics=("nss",), postprocess=post, progress=False)
    assert seen == [(H // 2, W // 2)] * 2


def test_uniform_is_chance_and_true_density_is_better():
    from salbook.baselines import TrueDensity

    data = make_dataset(5)
    u = evaluate(Uniform(), data, metrics=("auc_judd", "nss", "cc"), progress=False).mean()
    assert u == {"auc_judd": 0.5, "nss": 0.0, "cc": 0.0}
    t = evaluate(TrueDensity(), data, metrics=("auc_judd", "auc_shuffled", "nss"), progress=False).mean()
    assert t["auc_judd"] > 0.85 and t["nss"] > 1.0 and t["auc_shuffled"] > 0.6


def test_results_do_not_depend_on_batch_size():
    data = make_dataset(5)
    metrics = ("auc_borji", "auc_shuffled")
    a = evaluate(CenterBias.fit(data, progress=False), data, metrics=metrics, batch_size=1, progress=False, seed=3)
    b = evaluate(CenterBias.fit(data, progress=False), data, metrics=metrics, batch_size=4, progress=False, seed=3)
    pd.testing.assert_frame_equal(a.per_image, b.per_image)
    c = evaluate(CenterBias.fit(data, progress=False), data, metrics=metrics, progress=False, seed=4)
    assert not np.allclose(a.per_image["auc_borji"], c.per_image["auc_borji"])


def test_shuffle_fixations_excludes_self_and_rescales():
    records = [
        (np.array([[0, 0]]), (4, 4)),
        (np.array([[1, 1], [1, 1]]), (2, 2)),  # (1,1) in 2×2 -> (3,3) in 4×4
        (np.array([[2, 3]]), (4, 4)),
    ]
    got = shuffle_fixations(records, 0, n_images=10, seed=0)  # all others: images 1 and 2
    assert sorted(map(tuple, got.tolist())) == [(2, 3), (3, 3)]
    one = shuffle_fixations(records, 2, n_images=1, seed=0)
    assert len(one) == 1 and tuple(one[0]) in {(0, 0), (3, 3)}
    np.testing.assert_array_equal(one, shuffle_fixations(records, 2, n_images=1, seed=0))
    assert shuffle_fixations(records[:1], 0, 5, 0).shape == (0, 2)


def test_shuffled_auc_in_evaluate_uses_other_images():
    data = make_dataset(3)
    res = evaluate(Uniform(), data, metrics=("auc_shuffled",), n_shuffle_images=2, progress=False, seed=1)
    assert res.per_image["auc_shuffled"].tolist() == [0.5, 0.5, 0.5]
    # a model predicting image 0's own map: score equals a direct call with the others' fixations
    fix = [d["fixations"].numpy() for d in data]
    other = np.unique(np.concatenate([fix[1], fix[2]]), axis=0)
    pred = data[0]["fixation_map"]

    class Own(nn.Module):
        def predict_batch(self, batch):
            return batch["fixation_map"]

    got = evaluate(Own(), data[:3], metrics=("auc_shuffled",), n_shuffle_images=2, progress=False, seed=1)
    direct = auc_shuffled(pred, fix[0], other, seed=image_seed(1, 0))
    assert got.per_image["auc_shuffled"][0] == pytest.approx(direct)


def test_summary_mean_std_and_t_interval_by_hand():
    df = pd.DataFrame({"name": list("abcd"), "m": [1.0, 2.0, 3.0, np.nan]})
    s = summarize(df, ["m"]).loc["m"]
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) from the table: 4.3027
    assert (s["mean"], s["std"], s["n"]) == (2.0, 1.0, 3)
    assert s["ci_low"] == pytest.approx(2 - half) and s["ci_high"] == pytest.approx(2 + half)


def test_table_and_nan_images_are_counted_out():
    data = make_dataset(3)
    data[1] = {**data[1], "fixations": torch.zeros(0, 2, dtype=torch.long)}
    res = evaluate(Uniform(), data, metrics=("auc_judd", "cc"), progress=False, name="uniform")
    assert math.isnan(res.per_image["auc_judd"][1])
    assert res.summary.loc["auc_judd", "n"] == 2 and res.summary.loc["cc", "n"] == 3
    t = res.table()
    assert list(t.index) == ["uniform"] and t.loc["uniform", "auc_judd"] == 0.5
    assert res.table(ci=True).loc["uniform", "auc_judd"].startswith("0.500 [")
    assert isinstance(res, EvalResult)


def test_clear_errors():
    data = make_dataset(2)

    class Logits(nn.Module):
        def forward(self, x):
            return x.mean(1) - 0.5  # negative values: not a density

    with pytest.raises(ValueError, match="postprocess=torch.sigmoid"):
        evaluate(Logits(), data, metrics=("kld",), progress=False)
    assert evaluate(Logits(), data, metrics=("kld",), progress=False, postprocess=torch.sigmoid).mean()["kld"] > 0
    with pytest.raises(ValueError, match="info_gain_baseline"):
        evaluate(Uniform(), data, metrics=("info_gain",), progress=False)

    class NaNModel(nn.Module):
        def forward(self, x):
            return torch.full(x.shape[-2:], float("nan")).expand(x.shape[0], -1, -1)

    with pytest.raises(ValueError, match="NaN"):
        evaluate(NaNModel(), data, metrics=("nss",), progress=False)


def test_info_gain_against_centre_bias():
    data = make_dataset(4)
    cb = CenterBias.fit(data, progress=False)
    res = evaluate(cb, data, metrics=("info_gain",), info_gain_baseline=cb, progress=False)
    assert res.per_image["info_gain"].abs().max() < 1e-12  # a model vs itself gains nothing
    res = evaluate(Uniform(), data, metrics=("info_gain",), info_gain_baseline=cb, progress=False)
    assert res.mean()["info_gain"] < 0  # the uniform map is worse than the centre bias


def test_predict_shapes():
    batch = {"image": torch.rand(2, 3, 8, 8)}
    assert predict(HalfResModel(), batch, "cpu").shape == (2, 4, 4)
    with pytest.raises(ValueError, match="N×h×w"):
        predict(lambda x: x, batch, "cpu")  # N×3×H×W is not a saliency map


def test_evaluate_sod_perfect_and_sigmoid():
    rng = np.random.default_rng(0)
    data = []
    for i in range(3):
        mask = np.zeros((10, 12), dtype=np.float32)
        r, c = rng.integers(1, 5), rng.integers(1, 6)
        mask[r : r + 4, c : c + 5] = 1
        data.append({"image": torch.rand(3, 10, 12), "mask": torch.from_numpy(mask), "name": f"s{i}"})

    class Oracle(nn.Module):
        def predict_batch(self, batch):
            return batch["mask"]

    res = evaluate_sod(Oracle(), data, progress=False)
    assert res.summary.loc["mae", "mean"] == 0.0
    assert res.summary.loc["s_measure", "mean"] == pytest.approx(1.0, abs=1e-6)
    assert res.summary.loc["max_f", "mean"] == pytest.approx(1.0)
    assert res.summary.loc["max_f_salmetric", "mean"] == pytest.approx(1.0, abs=1e-6)
    assert len(res.per_image) == 3

    class Logit(nn.Module):
        def forward(self, x):
            return x[:, :1] * 8 - 4

    with pytest.raises(ValueError, match="sigmoid"):
        evaluate_sod(Logit(), data, progress=False)
    ok = evaluate_sod(Logit(), data, progress=False, postprocess=torch.sigmoid)
    assert 0 < ok.summary.loc["mae", "mean"] < 1


def test_blur_minmax_postprocess_blurs_then_normalises():
    pred = torch.zeros(48, 48)
    pred[10, 30] = 5.0
    pred -= 1.0
    out = official_out = POSTPROCESSORS["blur_minmax"](pred)
    assert out.shape == (48, 48) and out.dtype == torch.float32
    assert math.isclose(float(out.min()), 0.0, abs_tol=1e-7) and math.isclose(float(out.max()), 1.0, rel_tol=1e-6)
    ref = gaussian_filter(pred.double().numpy(), 3.0)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    assert np.allclose(official_out.numpy(), ref, atol=1e-6)
    assert float((out > 0.5).sum()) > 1  # the single spike was spread out
    plain = POSTPROCESSORS["minmax"](pred[None])
    assert float((plain > 0.5).sum()) == 1 and plain.shape == (48, 48)
    assert torch.equal(POSTPROCESSORS["blur_minmax"](torch.full((4, 4), 2.0)), torch.zeros(4, 4))


def test_evaluate_refuses_an_unknown_postprocess():
    with pytest.raises(ValueError, match="postprocess"):
        evaluate(None, [{"image": torch.zeros(3, 4, 4)}], postprocess="blur")


def _result(values: dict[str, list[float]]) -> EvalResult:
    per_image = pd.DataFrame({"name": [f"i{k}" for k in range(len(next(iter(values.values()))))], **values})
    return EvalResult(per_image, summarize(per_image, list(values)))


def test_paired_difference_gives_the_paired_t_interval_and_a_verdict_in_the_metric_direction():
    from scipy import stats

    rng = np.random.default_rng(0)
    base = rng.normal(0.3, 0.1, 50)
    a = _result({"cc": base + 0.05 + rng.normal(0, 0.01, 50), "kld": base + 0.2, "nss": base + rng.normal(0, 0.1, 50)})
    b = _result({"cc": base, "kld": base, "nss": base})
    table = paired_difference(a, b)
    d = a.per_image["cc"] - b.per_image["cc"]
    half = stats.t.ppf(0.975, 49) * d.std(ddof=1) / np.sqrt(50)
    assert table.loc["cc", "mean difference"] == pytest.approx(d.mean())
    assert table.loc["cc", "ci_low"] == pytest.approx(d.mean() - half)
    assert table.loc["cc", "verdict"] == "beats" and table.loc["cc", "share a better"] == 1.0
    assert table.loc["kld", "verdict"] == "loses"  # a higher KLD is worse
    assert table.loc["nss", "verdict"] == "ties"
    with pytest.raises(ValueError, match="same images"):
        paired_difference(a, _result({"cc": base[:10]}))


def test_finished_maps_are_what_evaluate_scores():
    torch.manual_seed(0)
    dataset = [{"image": torch.rand(3, 8, 8), "fixation_map": torch.rand(12, 16), "fixations": torch.tensor([[1, 2]]),
                "name": f"s{i}"} for i in range(3)]

    class Net(nn.Module):
        def forward(self, x):
            return x[:, :1, :4, :4] * 2 - 1

    maps = finished_maps(Net(), dataset, "blur_minmax", device="cpu", batch_size=2)
    assert len(maps) == 3 and all(m.shape == (12, 16) for m in maps)
    assert all(math.isclose(float(m.max()), 1.0, rel_tol=1e-5) for m in maps)
    single = finished_maps(Net(), dataset, POSTPROCESSORS["blur_minmax"], device="cpu", indices=[2])
    np.testing.assert_allclose(single[0], maps[2])
