"""Tests for the chapter-1 recipe (Pan et al.'s shallow convnet): targets, loss, schedules,
augmentation, post-processing, and one tiny end-to-end train/load/evaluate cycle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from salbook.data import load_split
from salbook.evaluation import evaluate
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
        PanConfig(data=pan.DATA.replace(dataset="salicon"))
    assert cfg.replace(data=cfg.data.replace(input_size=[96, 96])).as_dict() == cfg.as_dict()
    with pytest.raises(ValueError, match="map_size"):
        PanConfig(data=pan.DATA.replace(map_size=None))
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


def test_tiny_training_run_trains_caches_and_evaluates(tmp_path, monkeypatch):
    monkeypatch.setenv("SALBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SALBOOK_PROGRESS", "0")
    cfg = PanConfig(data=pan.DATA.replace(n_train=8, n_val=4, n_test=4, eval_size=(24, 32)), epochs=2, batch_size=4,
                    model_kwargs={"fc_hidden": 16})
    first = pan.train(cfg, seed=1, device="cpu", cache=str(tmp_path / "models"), log=None)
    hist = first.history
    assert list(hist.epoch) == [1, 2] and not first.loaded
    assert np.allclose(hist.lr, [0.05, 1e-4]) and np.allclose(hist.momentum, [0.9, 0.999])
    assert np.isfinite(hist.train_loss).all() and np.isfinite(hist.val_metric).all()
    again = pan.train(cfg, seed=1, device="cpu", cache=str(tmp_path / "models"), log=None)
    assert again.loaded
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    test = load_split(cfg.data, "test")
    assert tuple(test[0]["image"].shape) == (3, 96, 96) and tuple(test[0]["fixation_map"].shape) == (24, 32)
    result = evaluate(again.model, test, metrics=("cc", "auc_borji", "kld"), postprocess=pan.POSTPROCESS,
                      device="cpu", progress=False)
    assert set(result.summary.index) == {"cc", "auc_borji", "kld"}
    assert np.isfinite(result.summary["mean"]).all()




def test_recipe_knobs_build_what_they_say():
    from salbook.cost import count_params
    from salbook.schedules import WarmupSchedule

    small = {"fc_hidden": 8}
    plain = pan.build_model(PanConfig(model_kwargs=small))
    normed = pan.build_model(PanConfig(head_norm=True, model_kwargs=small))
    assert isinstance(normed.head.norm, torch.nn.BatchNorm1d) and not normed.head.norm.affine
    assert count_params(normed) == count_params(plain)  # the standardisation has no parameters
    frozen = pan.build_model(PanConfig(freeze_features=True, model_kwargs=small))
    assert not any(p.requires_grad for p in frozen.features.parameters())
    assert all(p.requires_grad for p in frozen.head.parameters())

    adam = pan.make_schedule(PanConfig(optimizer="adam", epochs=2, schedule_unit="step", warmup_steps=4), 5)
    assert set(adam.schedules) == {"lr"} and isinstance(adam.schedules["lr"], WarmupSchedule)
    lrs = [adam.values(t)["lr"] for t in range(10)]
    assert lrs[0] == pytest.approx(0.05 / 4) and lrs[3] == pytest.approx(np.linspace(0.05, 1e-4, 10)[3])
    assert lrs[4:] == pytest.approx(np.linspace(0.05, 1e-4, 10)[4:].tolist())
    with pytest.raises(ValueError, match="warm-up"):
        PanConfig(warmup_steps=3)  # per-epoch schedule
    with pytest.raises(ValueError, match="optimizer"):
        PanConfig(optimizer="lbfgs")  # type: ignore[arg-type]


def test_target_blur_spreads_the_target_and_keeps_its_range():
    fix = torch.zeros(2, 20, 20)
    fix[:, 10, 10] = 1.0
    sharp = pan.make_target(fix, (-1.0, 1.0))
    blurred = pan.make_target(fix, (-1.0, 1.0), blur=2.0)
    assert blurred.shape == sharp.shape == (2, 1, 20, 20)
    assert float(blurred.max()) == pytest.approx(1.0) and float(blurred.min()) >= -1.0
    assert int((blurred > 0).sum()) > int((sharp > 0).sum())


def test_output_bias_starts_at_the_mean_target(tmp_path, monkeypatch):
    monkeypatch.setenv("SALBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SALBOOK_PROGRESS", "0")
    cfg = PanConfig(data=pan.DATA.replace(n_train=8, n_val=4, n_test=4), epochs=1, batch_size=4, lr=0.0, lr_end=0.0,
                    output_bias="target_mean", model_kwargs={"fc_hidden": 16})
    result = pan.train(cfg, seed=1, device="cpu", cache=str(tmp_path / "models"), log=None)
    expected = pan.mean_target(cfg, load_split(cfg.data, "train"))
    torch.testing.assert_close(result.model.head.fc2.bias.detach().reshape(48, 48), expected)


def test_named_recipes_and_the_study_rows():
    official, rec = pan.faithful(), pan.recommended()
    assert official == PanConfig()
    assert rec == PanConfig(schedule_unit="step", **pan.RECOMMENDED_CHANGES)
    assert rec.freeze_features and rec.head_norm and rec.output_bias == "target_mean"
    assert rec.optimizer == "adam" and rec.lr == 1e-3 and rec.warmup_steps == 10
    sgd_row = pan.study_configs(pan.faithful(), full=True)["recommended with Nesterov SGD, lr 1.0"]
    assert sgd_row.optimizer == "sgd" and sgd_row.lr == 1.0 and sgd_row.freeze_features
    base = pan.faithful(epochs=4, batch_size=32, schedule_unit="step")
    core = pan.study_configs(base)
    assert list(core) == list(pan.STUDY_ROWS)
    assert core["official (Gaussian init, as the paper)"] == base  # the faithful run is a row of the study
    assert core["recommended"] == pan.recommended(epochs=4, batch_size=32)  # shared with the chapter's seeds
    full = pan.study_configs(base, full=True)
    assert set(core) < set(full) and full["recommended, twice the steps"].epochs == 8
    assert not full["recommended, convolutions trained too"].freeze_features
    assert full["official with Adam, lr 1e-4"].optimizer == "adam"
