"""Tests for salbook.train (fit, checkpoints, exact resume, caching) and salbook.schedules."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from _train_fixtures import TinySaliency, collate, flip_augment, mse, tiny_model
from salbook.schedules import (
    ConstantSchedule,
    CosineSchedule,
    LinearSchedule,
    ParamSchedule,
    StepSchedule,
)
from salbook.train import CHECKPOINT_FORMAT, code_version, fit, load_or_train, model_key


pytestmark = pytest.mark.usefixtures("one_thread")


TRAIN, VAL = TinySaliency(48, seed=1), TinySaliency(12, seed=2)


def sgd(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True)


def pan_schedule(n: int) -> ParamSchedule:
    return ParamSchedule({"lr": LinearSchedule(0.1, 0.01, n), "momentum": LinearSchedule(0.9, 0.99, n)})


def run(epochs: int, **kw):
    """fit() a fresh tiny model with dropout, augmentation, momentum and a schedule."""
    args = dict(
        optimizer=sgd,
        schedule=pan_schedule(4),
        epochs=epochs,
        batch_size=8,
        collate_fn=collate,
        augment=flip_augment,
        device="cpu",
        seed=3,
        progress=False,
    )
    args.update(kw)
    return fit(tiny_model(), mse, TRAIN, VAL, **args)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def deterministic_columns(history: pd.DataFrame) -> pd.DataFrame:
    return history.drop(columns=["seconds"])


def only_plain_types(obj) -> bool:
    """True when ``obj`` is built only of tensors, dicts, lists, tuples, strings, numbers, None."""
    if isinstance(obj, dict):
        return all(isinstance(k, (str, int)) and only_plain_types(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return all(only_plain_types(v) for v in obj)
    return obj is None or isinstance(obj, (torch.Tensor, str, int, float, bool))


# ------------------------------------------------------------------------------------------
# schedules


def test_linear_schedule_matches_linspace_and_clamps():
    sched = LinearSchedule(0.05, 1e-4, 1200)
    expected = np.linspace(0.05, 1e-4, 1200)
    for t in (0, 1, 599, 1198, 1199):
        assert sched(t) == pytest.approx(expected[t], rel=1e-12, abs=1e-15)
    assert sched(5000) == pytest.approx(1e-4)
    assert LinearSchedule(0.9, 0.999, 1200)(1199) == pytest.approx(0.999)
    with pytest.raises(ValueError, match="non-negative"):
        sched(-1)
    with pytest.raises(ValueError, match="n >= 1"):
        LinearSchedule(1.0, 0.0, 0)


def test_step_and_cosine_schedules():
    step = StepSchedule(0.05, 0.55, 100)
    assert step(0) == step(99) == pytest.approx(0.05)
    assert step(100) == pytest.approx(0.05 * 0.55)
    assert step(250) == pytest.approx(0.05 * 0.55**2)
    cos = CosineSchedule(1.0, 0.0, 11)
    assert cos(0) == pytest.approx(1.0) and cos(5) == pytest.approx(0.5) and cos(10) == pytest.approx(0.0)
    assert ConstantSchedule(0.3).values(3) == [0.3, 0.3, 0.3]


def test_param_schedule_writes_every_group_and_names_missing_keys():
    w1, w2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [w1]}, {"params": [w2], "lr": 1.0}], lr=0.5, momentum=0.5)
    values = pan_schedule(3).apply(opt, 1)
    assert values == {"lr": pytest.approx(0.055), "momentum": pytest.approx(0.945)}
    assert all(g["lr"] == pytest.approx(0.055) and g["momentum"] == pytest.approx(0.945) for g in opt.param_groups)
    adam = torch.optim.Adam([w1])
    with pytest.raises(KeyError, match="momentum"):
        ParamSchedule({"momentum": ConstantSchedule(0.9)}).apply(adam, 0)
    with pytest.raises(TypeError, match="not callable"):
        ParamSchedule({"lr": 0.1})


# ------------------------------------------------------------------------------------------
# fit


def test_fit_learns_and_reports_history():
    result = run(4)
    h = result.history
    assert list(h["epoch"]) == [1, 2, 3, 4]
    assert list(h["step"]) == [6, 12, 18, 24]  # 48 samples / batch 8 = 6 steps per epoch
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert h["val_loss"].notna().all()
    assert np.allclose(h["lr"], np.linspace(0.1, 0.01, 4))
    assert np.allclose(h["momentum"], np.linspace(0.9, 0.99, 4))
    # best epoch = the epoch with the lowest validation loss, and the returned model has its weights
    assert result.best_epoch == int(h.loc[h["val_metric"].idxmin(), "epoch"])
    assert result.best_metric == pytest.approx(h["val_metric"].min())
    val = collate([VAL[i] for i in range(len(VAL))])
    with torch.no_grad():
        assert float(mse(result.model(val["image"]), val)) == pytest.approx(result.best_metric, rel=1e-5)
    assert not result.model.training


def test_same_seed_same_run_and_other_seed_differs():
    a, b, c = run(2), run(2), run(2, seed=4)
    assert same_weights(a.model, b.model)
    pd.testing.assert_frame_equal(deterministic_columns(a.history), deterministic_columns(b.history))
    assert not same_weights(a.model, c.model)


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    straight = run(4)

    class Interrupted(Exception):
        pass

    calls = {"n": 0}

    def counting_forward(model, batch):
        if model.training:  # validation batches also call forward: count training ones only
            calls["n"] += 1
            if calls["n"] == 2 * 6 + 3:  # third training batch of epoch 3 (6 batches per epoch)
                raise Interrupted
        return model(batch["image"])

    with pytest.raises(Interrupted):
        run(4, checkpoint_path=tmp_path, forward=counting_forward)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["epoch"] == 2 and saved["step"] == 12

    resumed = run(4, checkpoint_path=tmp_path)
    assert resumed.resumed_from == 2
    assert same_weights(straight.model, resumed.model)
    pd.testing.assert_frame_equal(deterministic_columns(straight.history), deterministic_columns(resumed.history))
    # and the last (not only the best) weights agree too
    last = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    straight_dir = tmp_path / "straight"
    run(4, checkpoint_path=straight_dir)
    reference = torch.load(straight_dir / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(last[k], reference[k]) for k in reference)


def test_resume_with_torch_lr_scheduler_by_extending_epochs(tmp_path):
    step_lr = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)  # noqa: E731
    kwargs = dict(optimizer=sgd, schedule=step_lr, batch_size=8, collate_fn=collate, device="cpu", seed=3,
                  progress=False)
    straight = fit(tiny_model(), mse, TRAIN, epochs=3, **kwargs)
    kwargs["checkpoint_path"] = tmp_path
    first = fit(tiny_model(), mse, TRAIN, epochs=1, **kwargs)
    assert first.best_epoch is None and not (tmp_path / "best.pt").exists()  # no validation data
    second = fit(tiny_model(), mse, TRAIN, epochs=3, **kwargs)
    assert second.resumed_from == 1
    assert np.allclose(second.history["lr"], [0.05, 0.025, 0.0125])
    assert same_weights(straight.model, second.model)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["scheduler"]["last_epoch"] == 3


def test_checkpoints_load_with_weights_only(tmp_path):
    result = run(2, checkpoint_path=tmp_path)
    assert result.checkpoint_path == tmp_path
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert only_plain_types(last) and only_plain_types(best)
    assert last["format"] == best["format"] == CHECKPOINT_FORMAT
    assert {"model", "optimizer", "rng", "epoch", "history", "scheduler"} <= set(last)
    assert isinstance(last["rng"]["torch"], torch.Tensor)
    assert best["epoch"] == result.best_epoch
    assert all(torch.equal(best["model"][k], v) for k, v in result.model.state_dict().items())
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporary files
    # a fresh run (resume=False) without validation must not keep the older run's best.pt
    fit(tiny_model(), mse, TRAIN, optimizer=sgd, epochs=1, batch_size=8, collate_fn=collate, device="cpu",
        progress=False, checkpoint_path=tmp_path, resume=False, seed=3)
    assert not (tmp_path / "best.pt").exists()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1


def test_val_metric_mode_max_and_steps():
    def negative_mae(model, loader, device):
        total, n = 0.0, 0
        for batch in loader:
            assert batch["image"].device.type == device.type
            total += float((model(batch["image"]) - batch["density"]).abs().sum())
            n += batch["image"].numel() // 3 // 4  # output pixels = input pixels / 4
        return -total / n

    result = run(3, val_metric=negative_mae, mode="max", schedule=None)
    h = result.history
    assert (h["val_metric"] < 0).all()
    assert result.best_epoch == int(h.loc[h["val_metric"].idxmax(), "epoch"])

    partial = run(None, steps=8, schedule=None)  # 6 steps per epoch: 2 epochs, the last partial
    assert list(partial.history["step"]) == [6, 8]


def test_step_unit_schedule_changes_lr_within_an_epoch():
    seen = []

    def spy_forward(model, batch):
        return model(batch["image"])

    opt_holder = {}

    def make_opt(params):
        opt_holder["opt"] = torch.optim.SGD(params, lr=1.0)
        return opt_holder["opt"]

    def recording_loss(output, batch):
        seen.append(opt_holder["opt"].param_groups[0]["lr"])
        return mse(output, batch)

    fit(tiny_model(), recording_loss, TRAIN, optimizer=make_opt, epochs=1, batch_size=8, collate_fn=collate,
        schedule=ParamSchedule({"lr": LinearSchedule(0.06, 0.01, 6)}, unit="step"), forward=spy_forward,
        device="cpu", progress=False)
    assert np.allclose(seen, np.linspace(0.06, 0.01, 6))


def test_bad_arguments_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="exactly one of epochs"):
        run(2, steps=3)
    with pytest.raises(ValueError, match="looks like a file"):
        run(1, checkpoint_path=tmp_path / "model.pt")
    with pytest.raises(TypeError, match="scalar tensor"):
        fit(tiny_model(), lambda o, b: (o - b["density"]) ** 2, TRAIN, optimizer=sgd, epochs=1, batch_size=8,
            collate_fn=collate, device="cpu", progress=False)
    with pytest.raises(ValueError, match="mode"):
        run(1, mode="best")
    run(1, checkpoint_path=tmp_path / "c")
    with pytest.raises(ValueError, match="seed=3.*seed=9"):
        run(2, checkpoint_path=tmp_path / "c", seed=9)


# ------------------------------------------------------------------------------------------
# load_or_train


def test_load_or_train_trains_once_then_loads(tmp_path):
    messages = []
    config = {"model": "tiny", "epochs": 2, "lr": 0.05}
    kwargs = lambda: dict(loss_fn=mse, train_data=TRAIN, val_data=VAL, optimizer=sgd, epochs=2,  # noqa: E731
                          batch_size=8, collate_fn=collate, progress=False)
    first = load_or_train(config, tiny_model, kwargs, cache=tmp_path, device="cpu", log=messages.append)
    assert not first.loaded and any("training from scratch" in m for m in messages)
    key = model_key(config)
    final = tmp_path / key / "final.pt"
    blob = torch.load(final, weights_only=True)
    assert only_plain_types(blob) and blob["code"] == code_version()
    # the resume checkpoints go once the final weights are saved, unless asked to keep them
    assert not (tmp_path / key / "last.pt").exists() and not (tmp_path / key / "best.pt").exists()
    kept = load_or_train({**config, "kept": 1}, tiny_model, kwargs, cache=tmp_path, device="cpu",
                         log=None, keep_checkpoints=True)
    assert (kept.checkpoint_path / "last.pt").exists() and (kept.checkpoint_path / "best.pt").exists()

    def must_not_build_data():
        raise AssertionError("train_kwargs must not be evaluated when the model is cached")

    second = load_or_train(
        config, tiny_model, must_not_build_data, cache=tmp_path, device="cpu", log=messages.append
    )
    assert second.loaded and "loaded trained model from" in messages[-1]
    assert same_weights(first.model, second.model)
    pd.testing.assert_frame_equal(first.history, second.history, check_dtype=False)
    assert second.best_epoch == first.best_epoch

    assert model_key({**config, "lr": 0.01}) != key and model_key(config, seed=1) != key
    assert re.fullmatch(r"[0-9a-f]{16}", code_version())
    with pytest.raises(ValueError, match="must not set"):
        load_or_train({"x": 1}, tiny_model, {"seed": 1}, cache=tmp_path, log=None)


def test_history_has_no_nan_losses_and_finite_seconds():
    h = run(1).history
    assert all(math.isfinite(v) for v in h["train_loss"]) and (h["seconds"] > 0).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_picks_cuda_and_resumes_there(tmp_path):
    first = run(2, device="auto", checkpoint_path=tmp_path)
    assert next(first.model.parameters()).device.type == "cuda"
    again = run(3, device="auto", checkpoint_path=tmp_path)
    assert again.resumed_from == 2 and list(again.history["epoch"]) == [1, 2, 3]
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert all(t.device.type == "cpu" for t in saved["model"].values())
