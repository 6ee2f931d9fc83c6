"""Tests for fit's extension points: callbacks, loss terms, regularisers, parameter groups, the
best-reload schedule, architecture changes with exact resume, and the model-cache key."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from _train_fixtures import TinySaliency, collate, mse
from salbook.schedules import LinearSchedule, ParamSchedule
from salbook.train import (
    Callback,
    ParamGroup,
    ReloadBestAndDecay,
    code_version,
    fit,
    is_bias_like,
    load_or_train,
    model_key,
    model_modules,
    param_groups,
    sgd,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN, VAL = TinySaliency(48, seed=1), TinySaliency(12, seed=2)


class TinyNet(nn.Module):
    """conv(3→width) → ReLU → conv(width→1, stride 2): N×3×8×8 → N×1×4×4; ``width`` is prunable."""

    def __init__(self, width: int = 6) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 1, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.conv1(x)))


def tiny_net(width: int = 6) -> TinyNet:
    torch.manual_seed(0)
    return TinyNet(width)


def keep_channels(net: TinyNet, keep: list[int]) -> TinyNet:
    """A physically smaller copy of ``net`` with only the conv1 channels in ``keep``."""
    small = TinyNet(len(keep))
    with torch.no_grad():
        small.conv1.weight.copy_(net.conv1.weight[keep])
        small.conv1.bias.copy_(net.conv1.bias[keep])
        small.conv2.weight.copy_(net.conv2.weight[:, keep])
        small.conv2.bias.copy_(net.conv2.bias)
    return small.to(net.conv1.weight.device)


class PruneOnce(Callback):
    """At a given step, drop the conv1 channels with the smallest accumulated |grad·weight|."""

    def __init__(self, at_step: int, keep: int) -> None:
        self.at_step, self.keep = at_step, keep
        self.score = torch.zeros(6)
        self.done = False

    def after_backward(self, trainer, batch, loss):
        if not self.done:
            w = trainer.model.conv1.weight
            self.score += (w.grad * w).detach().abs().sum(dim=(1, 2, 3)).cpu()

    def on_step_end(self, trainer, batch, loss):
        if not self.done and trainer.step == self.at_step:
            keep = sorted(torch.argsort(self.score, descending=True)[: self.keep].tolist())
            trainer.set_model(keep_channels(trainer.model, keep), {"width": len(keep), "kept": keep})
            self.done = True

    def state_dict(self):
        return {"score": self.score.clone(), "done": self.done}

    def load_state_dict(self, state):
        self.score, self.done = state["score"].clone(), bool(state["done"])


def run(epochs: int = 4, model: nn.Module | None = None, **kw):
    args = dict(optimizer=sgd(0.05, momentum=0.9, nesterov=True), epochs=epochs, batch_size=8, collate_fn=collate,
                device="cpu", seed=3, progress=False)
    args.update(kw)
    return fit(model if model is not None else tiny_net(), mse, TRAIN, VAL, **args)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ------------------------------------------------------------------------------------------


def test_callback_hooks_run_in_order_and_see_the_trainer():
    events: list[tuple[str, int, int]] = []

    class Spy(Callback):
        def __getattribute__(self, name):
            attr = object.__getattribute__(self, name)
            if name.startswith(("on_", "after_")):
                def wrapped(trainer, *args):
                    events.append((name, trainer.epoch, trainer.step))
                return wrapped
            return attr

    run(2, callbacks=[Spy()])
    names = [e[0] for e in events]
    assert names[0] == "on_fit_start" and names[-1] == "on_fit_end"
    per_epoch = names[1:names.index("on_epoch_end") + 1]
    assert per_epoch[:4] == ["on_epoch_start", "on_step_start", "after_backward", "on_step_end"]
    assert per_epoch[-2:] == ["on_validation", "on_epoch_end"]
    assert names.count("after_backward") == 12  # 6 steps per epoch, 2 epochs
    # after_backward sees the step before it is counted, on_step_end after
    first_backward = next(e for e in events if e[0] == "after_backward")
    first_end = next(e for e in events if e[0] == "on_step_end")
    assert first_backward[2] == 0 and first_end[2] == 1


def test_loss_terms_and_regularizers_are_summed_and_logged():
    def two_terms(output, batch):
        return {"mse": mse(output, batch), "mean": output.mean().abs()}

    def l2(model, batch, output):
        return 1e-3 * sum(p.square().sum() for p in model.parameters())

    result = fit(tiny_net(), two_terms, TRAIN, VAL, optimizer=sgd(0.05), epochs=2, batch_size=8,
                 collate_fn=collate, device="cpu", seed=3, progress=False, regularizers={"l2": l2})
    h = result.history
    assert {"loss_mse", "loss_mean", "reg_l2"} <= set(h.columns)
    total = h["loss_mse"] + h["loss_mean"] + h["reg_l2"]
    assert total.to_numpy() == pytest.approx(h["train_loss"].to_numpy(), rel=1e-6)
    assert (h["reg_l2"] > 0).all()
    # the regulariser changes the training; validation loss counts the loss terms only
    plain = fit(tiny_net(), two_terms, TRAIN, VAL, optimizer=sgd(0.05), epochs=2, batch_size=8,
                collate_fn=collate, device="cpu", seed=3, progress=False)
    assert not same_weights(plain.model, result.model)
    assert "reg_l2" not in plain.history.columns


def test_parameter_groups_get_their_lr_multiplier_and_weight_decay_under_a_schedule():
    rules = [ParamGroup("biases", is_bias_like, lr_mult=2.0, weight_decay=0.0),
             ParamGroup("conv1 weights", lambda n, p: n.startswith("conv1"), lr_mult=0.5, weight_decay=5e-4)]
    seen = []

    class Lrs(Callback):
        def on_step_start(self, trainer, batch):
            seen.append({g["name"]: (g["lr"], g["weight_decay"]) for g in trainer.optimizer.param_groups})

    run(1, param_groups=lambda m: param_groups(m, rules), optimizer=sgd(0.1, momentum=0.9, weight_decay=1e-4),
        schedule=ParamSchedule({"lr": LinearSchedule(0.1, 0.05, 6)}, unit="step"), callbacks=[Lrs()])
    assert set(seen[0]) == {"biases", "conv1 weights", "rest"}
    for t, groups in enumerate(seen):
        lr = 0.1 + (0.05 - 0.1) * t / 5
        assert groups["biases"] == pytest.approx((2.0 * lr, 0.0))
        assert groups["conv1 weights"] == pytest.approx((0.5 * lr, 5e-4))
        assert groups["rest"] == pytest.approx((lr, 1e-4))
    # every trainable parameter lands in exactly one group
    groups = param_groups(tiny_net(), rules)
    assert sum(len(g["params"]) for g in groups) == len(list(tiny_net().parameters()))
    with pytest.raises(ValueError, match="unique"):
        param_groups(tiny_net(), [ParamGroup("rest", is_bias_like)])


def test_reload_best_and_decay_puts_the_best_weights_back_and_divides_the_lr():
    snapshots = {}

    class Watch(Callback):
        def on_epoch_start(self, trainer):
            snapshots[trainer.epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    reload = ReloadBestAndDecay(milestones=[2, 3], factor=0.1)
    result = run(4, callbacks=[reload, Watch()], optimizer=sgd(0.05))
    h = result.history
    assert h["lr"].tolist() == pytest.approx([0.05, 0.05, 0.005, 0.0005])
    assert reload.reloaded_at == [2, 3]
    # at the start of epoch index 2 the model holds the best weights of epochs 1–2
    assert h.loc[h.epoch <= 2, "val_metric"].idxmin() in (0, 1)
    with pytest.raises(ValueError, match="milestones"):
        ReloadBestAndDecay([0])


def test_prune_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path):
    rebuild = lambda spec: TinyNet(spec["width"])  # noqa: E731
    straight = run(4, callbacks=[PruneOnce(at_step=9, keep=4)], rebuild_model=rebuild)
    assert straight.architecture["width"] == 4 and straight.model.conv1.out_channels == 4

    class Interrupted(Exception):
        pass

    calls = {"n": 0}

    def counting_forward(model, batch):
        if model.training:
            calls["n"] += 1
            if calls["n"] == 2 * 6 + 3:  # third training batch of epoch 3: after the prune at step 9
                raise Interrupted
        return model(batch["image"])

    with pytest.raises(Interrupted):
        run(4, callbacks=[PruneOnce(at_step=9, keep=4)], rebuild_model=rebuild, checkpoint_path=tmp_path,
            forward=counting_forward)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["epoch"] == 2 and saved["architecture"]["width"] == 4 and saved["callbacks"][0]["done"]

    resumed = run(4, callbacks=[PruneOnce(at_step=9, keep=4)], rebuild_model=rebuild, checkpoint_path=tmp_path)
    assert resumed.resumed_from == 2 and resumed.model.conv1.out_channels == 4
    assert same_weights(straight.model, resumed.model)
    pd.testing.assert_frame_equal(straight.history.drop(columns="seconds"), resumed.history.drop(columns="seconds"))

    with pytest.raises(RuntimeError, match="rebuild_model"):
        run(5, callbacks=[PruneOnce(at_step=9, keep=4)], checkpoint_path=tmp_path)


def test_a_pruned_model_is_cached_and_loaded_with_its_architecture(tmp_path):
    rebuild = lambda spec: TinyNet(spec["width"])  # noqa: E731
    kwargs = lambda: dict(loss_fn=mse, train_data=TRAIN, val_data=VAL, optimizer=sgd(0.05), epochs=2,  # noqa: E731
                          batch_size=8, collate_fn=collate, progress=False, callbacks=[PruneOnce(3, keep=3)])
    first = load_or_train({"m": "tiny"}, tiny_net, kwargs, cache=tmp_path, device="cpu", log=None,
                          rebuild_model=rebuild)
    again = load_or_train({"m": "tiny"}, tiny_net, kwargs, cache=tmp_path, device="cpu", log=None,
                          rebuild_model=rebuild)
    assert again.loaded and again.architecture == first.architecture
    assert same_weights(first.model, again.model)


def test_an_optimizer_instance_cannot_be_rebuilt():
    net = tiny_net()
    with pytest.raises(TypeError, match="factory"):
        fit(net, mse, TRAIN, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), epochs=1, batch_size=8,
            collate_fn=collate, device="cpu", progress=False, callbacks=[PruneOnce(1, keep=3)])


def test_cache_key_depends_on_the_code_the_model_runs_not_on_unrelated_modules(tmp_path, monkeypatch):
    from pathlib import Path

    from salbook.recipes import pan
    from salbook.train import cache

    net = pan.build_model(pan.PanConfig(model_kwargs={"fc_hidden": 8}))
    modules = [*model_modules(net), "salbook.recipes.pan"]
    assert "salbook.models.pan" in modules
    key = model_key({"a": 1}, 0, modules)

    # a new model family (a file added to salbook/models/) leaves the Pan key as it was
    models_dir = Path(cache.__file__).resolve().parent.parent / "models"
    new_family = models_dir / "_test_new_family.py"
    try:
        new_family.write_text("X = 1\n")
        cache._hash_modules.cache_clear()
        assert model_key({"a": 1}, 0, modules) == key
    finally:
        new_family.unlink(missing_ok=True)

    # editing models/pan.py changes it (simulated by hashing an edited copy)
    real_files = cache._module_files
    edited = tmp_path / "pan.py"
    edited.write_text(Path(real_files("salbook.models.pan")[0]).read_text() + "\n# an edit\n")
    monkeypatch.setattr(cache, "_module_files",
                        lambda name: [edited] if name == "salbook.models.pan" else real_files(name))
    cache._hash_modules.cache_clear()
    assert model_key({"a": 1}, 0, modules) != key
    monkeypatch.setattr(cache, "_module_files", real_files)
    cache._hash_modules.cache_clear()
    assert model_key({"a": 1}, 0, modules) == key
    assert code_version() == code_version([]) != code_version(["salbook.models.pan"])
