"""Tests for the chapter-1 recipe (Pan et al.'s shallow convnet): targets, loss, schedules,
augmentation, post-processing, and one tiny end-to-end train/load/evaluate cycle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from salbook.recipes import pan
from salbook.recipes.pan import PanConfig


def test_config_validates_and_replaces():
    cfg = PanConfig()
    assert (cfg.lr, cfg.lr_end, cfg.momentum, cfg.momentum_end, cfg.batch_size) == (0.05, 1e-4, 0.9, 0.999, 128)
    assert cfg.target_range == (-1.0, 1.0)
    with pytest.raises(ValueError, match="schedule"):
        PanConfig(schedule="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="target_range"):
        PanConfig(target_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="data_root"):
        PanConfig(dataset="salicon")
    assert cfg.replace(input_size=[96, 96]).as_dict() == cfg.as_dict()
    assert cfg.replace(epochs=3).as_dict() != cfg.as_dict()


def test_build_model_uses_the_config_initialisation():
    torch.manual_seed(0)
    net = pan.build_model(PanConfig(init="gaussian", init_bias=0.1, model_kwargs={"fc_hidden": 8}))
    assert torch.all(net.features.conv1.bias == 0.1)
    net = pan.build_model(PanConfig(init="glorot", model_kwargs={"fc_hidden": 8}))
    assert torch.all(net.features.conv1.bias == 0)
    assert net.head.fc1.out_features == 8


def test_target_maps_unit_interval_to_minus_one_one():
    fmap = torch.tensor([[[0.0, 0.5], [1.0, 0.25]]])
    target = pan.make_target(fmap)
    assert target.shape == (1, 1, 2, 2)
    assert torch.allclose(target, torch.tensor([[[[-1.0, 0.0], [1.0, -0.5]]]]))
    assert torch.allclose(pan.make_target(fmap, (0, 1)), fmap[:, None])


def test_mse_loss_is_the_mean_squared_error_to_the_target():
    out = torch.randn(3, 1, 4, 4)
    fmap = torch.rand(3, 4, 4)
    got = pan.mse_loss()(out, {"fixation_map": fmap})
    assert torch.isclose(got, ((out - (2 * fmap[:, None] - 1)) ** 2).mean())
    with pytest.raises(ValueError, match="shape"):
        pan.mse_loss()(torch.zeros(3, 1, 2, 2), {"fixation_map": fmap})


def test_batch_cc_matches_numpy():
    a, b = torch.rand(4, 6, 5), torch.rand(4, 6, 5)
    got = pan.batch_cc(a, b)
    ref = [np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1] for i in range(4)]
    assert np.allclose(got.numpy(), ref)
    assert pan.batch_cc(torch.ones(1, 3, 3), torch.rand(1, 3, 3)).item() == 0.0


def test_official_schedule_is_linear_over_the_run():
    cfg = PanConfig(epochs=5)
    sched = pan.make_schedule(cfg)
    lrs = [sched.values(t)["lr"] for t in range(5)]
    moms = [sched.values(t)["momentum"] for t in range(5)]
    assert np.allclose(lrs, np.linspace(0.05, 1e-4, 5))
    assert np.allclose(moms, np.linspace(0.9, 0.999, 5))


def test_official_schedule_per_step_spans_all_optimiser_steps():
    sched = pan.make_schedule(PanConfig(epochs=2, schedule_unit="step"), steps_per_epoch=3)
    assert sched.unit == "step"
    assert np.allclose([sched.values(t)["lr"] for t in range(6)], np.linspace(0.05, 1e-4, 6))
    with pytest.raises(ValueError, match="steps_per_epoch"):
        pan.make_schedule(PanConfig(schedule_unit="step"))
    with pytest.raises(ValueError, match="schedule_unit"):
        PanConfig(schedule_unit="batch")  # type: ignore[arg-type]


def test_coursework_schedule_steps_and_stops_at_the_floor():
    cfg = PanConfig(schedule="coursework", step_every=2, lr=0.05, lr_end=0.01)
    sched = pan.make_schedule(cfg)
    lrs = [sched.values(t)["lr"] for t in range(8)]
    assert np.allclose(lrs[:4], [0.05, 0.05, 0.0275, 0.0275])
    assert lrs[-1] == 0.01 and min(lrs) == 0.01
    assert {sched.values(t)["momentum"] for t in range(8)} == {0.9}


def test_optimizer_is_nesterov_sgd_with_the_weight_decay():
    opt = pan.make_optimizer(PanConfig(weight_decay=5e-4))([torch.nn.Parameter(torch.zeros(2))])
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.SGD) and group["nesterov"] is True
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.9, 5e-4)


def test_flip_half_mirrors_exactly_half_and_keeps_fixations_consistent():
    n, h, w = 6, 4, 5
    images = torch.rand(n, 3, 8, 10)
    fmap = torch.zeros(n, h, w)
    fixations = []
    for i in range(n):
        fmap[i, 1, i % w] = 1.0
        fixations.append(torch.tensor([[1, i % w]]))
    batch = {"image": images, "fixation_map": fmap, "fixations": fixations}
    out = pan.flip_half(batch, torch.Generator().manual_seed(0))
    flipped = [not torch.equal(out["image"][i], images[i]) for i in range(n)]
    assert sum(flipped) == n // 2
    for i in range(n):
        expected = images[i].flip(-1) if flipped[i] else images[i]
        assert torch.equal(out["image"][i], expected)
        r, c = out["fixations"][i][0].tolist()
        assert out["fixation_map"][i, r, c] == 1.0  # the fixation still sits on the map's peak
    again = pan.flip_half(batch, torch.Generator().manual_seed(0))
    assert torch.equal(again["image"], out["image"])
    assert torch.equal(batch["image"], images)  # the input batch is not modified


def test_official_postprocess_blurs_then_normalises():
    pred = torch.zeros(48, 48)
    pred[10, 30] = 5.0
    pred -= 1.0
    out = official_out = pan.official_postprocess(pred)
    assert out.shape == (48, 48) and out.dtype == torch.float32
    assert math.isclose(float(out.min()), 0.0, abs_tol=1e-7) and math.isclose(float(out.max()), 1.0, rel_tol=1e-6)
    ref = gaussian_filter(pred.double().numpy(), 3.0)
    ref = (ref - ref.min()) / (ref.max() - ref.min())
    assert np.allclose(official_out.numpy(), ref, atol=1e-6)
    assert float((out > 0.5).sum()) > 1  # the single spike was spread out
    plain = pan.plain_postprocess(pred[None])
    assert float((plain > 0.5).sum()) == 1 and plain.shape == (48, 48)
    assert torch.equal(pan.official_postprocess(torch.full((4, 4), 2.0)), torch.zeros(4, 4))


def test_validation_can_be_held_out_of_the_training_split(tmp_path, monkeypatch):
    monkeypatch.setenv("SALBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SALBOOK_PROGRESS", "0")
    cfg = PanConfig(n_train=6, n_val=3, val_split="train")
    train, val = pan.load_split(cfg, "train"), pan.load_split(cfg, "val")
    assert len(train) == 6 and len(val) == 3
    names = {train[i]["name"] for i in range(6)} | {val[i]["name"] for i in range(3)}
    assert len(names) == 9  # no image in both
    assert tuple(train[0]["fixation_map"].shape) == (48, 48)
    with pytest.raises(ValueError, match="role"):
        pan.load_split(cfg, "unlabelled")


def test_evaluate_refuses_an_unknown_postprocess():
    with pytest.raises(ValueError, match="postprocess"):
        pan.evaluate(None, [], postprocess="blur")


def test_tiny_training_run_trains_caches_and_evaluates(tmp_path, monkeypatch):
    monkeypatch.setenv("SALBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SALBOOK_PROGRESS", "0")
    cfg = PanConfig(
        n_train=8, n_val=4, n_test=4, epochs=2, batch_size=4, eval_size=(24, 32),
        model_kwargs={"fc_hidden": 16},
    )
    first = pan.train(cfg, seed=1, device="cpu", cache=str(tmp_path / "models"), log=None)
    hist = first.history
    assert list(hist.epoch) == [1, 2] and not first.loaded
    assert np.allclose(hist.lr, [0.05, 1e-4]) and np.allclose(hist.momentum, [0.9, 0.999])
    assert np.isfinite(hist.train_loss).all() and np.isfinite(hist.val_metric).all()
    again = pan.train(cfg, seed=1, device="cpu", cache=str(tmp_path / "models"), log=None)
    assert again.loaded
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    test = pan.load_split(cfg, "test")
    assert tuple(test[0]["image"].shape) == (3, 96, 96) and tuple(test[0]["fixation_map"].shape) == (24, 32)
    result = pan.evaluate(again.model, test, metrics=("cc", "auc_borji", "kld"), device="cpu", progress=False)
    assert set(result.summary.index) == {"cc", "auc_borji", "kld"}
    assert np.isfinite(result.summary["mean"]).all()


def test_ridge_readout_recovers_a_linear_map_and_picks_lambda_on_val():
    """Features that determine the target linearly: the readout must reproduce it almost exactly,
    prefer the smallest λ, and score through evaluate() like a model."""
    torch.manual_seed(0)
    proj = torch.randn(6, 16)

    class Feats(torch.nn.Module):
        def forward(self, x):
            return x[:, 0, :2, :3].flatten(1)

    def sample(i):
        g = torch.Generator().manual_seed(i)
        img = torch.rand(3, 4, 4, generator=g)
        f = img[0, :2, :3].flatten()
        return {"image": img, "fixation_map": (f @ proj).reshape(4, 4)}

    train = [sample(i) for i in range(40)]
    val = [sample(100 + i) for i in range(10)]
    readout, table = pan.fit_ridge_readout(Feats(), train, val, map_size=(4, 4), lambdas=(1e-6, 10.0, 1e4))
    assert table["val CC"].idxmax() == 1e-6 and table.loc[1e-6, "val CC"] > 0.999
    assert table.loc[1e4, "val CC"] < table.loc[1e-6, "val CC"]
    out = readout(torch.stack([s["image"] for s in val]))
    assert out.shape == (10, 1, 4, 4)
    torch.testing.assert_close(out[:, 0], torch.stack([s["fixation_map"] for s in val]), atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="map_size"):
        pan.fit_ridge_readout(Feats(), train, val, map_size=(2, 8))


def test_activation_spread_sees_a_silenced_layer():
    torch.manual_seed(0)
    feats = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3), torch.nn.ReLU())
    images = torch.rand(8, 3, 12, 12)
    alive = pan.activation_spread(feats, images)
    assert list(alive.index) == ["1", "3"] and (alive["across-image spread"] > 0).all()
    with torch.no_grad():
        feats[0].bias.fill_(-100.0)  # the first layer never fires: every image looks the same after it
    dead = pan.activation_spread(feats, images)
    assert dead.loc["1", "mean activation"] == 0 and dead.loc["1", "channels ever active"] == 0
    assert dead.loc["3", "across-image spread"] == 0
    assert feats[0].bias[0] == -100.0  # measured on a copy, the module itself untouched apart from our edit
