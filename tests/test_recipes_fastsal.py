"""Tests for salbook.recipes.fastsal: optimiser groups, scaled milestones, configs, teacher density,
a tiny end-to-end distillation (hint pretraining, eq. 2, pseudo-labels) with a cache in tmp_path."""

from __future__ import annotations

import pytest
import torch

from salbook import models
from salbook.cost import count_params
from salbook.data import SplitSpec
from salbook.recipes import fastsal as R


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def test_scaled_milestones():
    assert R.scaled_milestones(100) == [15, 30, 60]
    assert R.scaled_milestones(4) == [1, 2]
    assert R.scaled_milestones(1) == []


def test_official_param_groups():
    net = models.create("fastsal_a", seed=0)
    groups = {g["name"]: g for g in R.official_param_groups(net)}
    assert list(groups) == ["encoder weights", "encoder biases", "decoder weights", "decoder biases"]
    assert [(g["lr_mult"], g["weight_decay"]) for g in groups.values()] == [(0.5, 5e-4), (1.0, 0.0), (1.0, 5e-4),
                                                                            (2.0, 0.0)]
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == count_params(net)
    # BN γ of the encoder counts as a weight (official), β as a bias
    named = dict(net.named_parameters())
    gamma, beta = named["encoder.backbone.body.features.1.conv.0.1.weight"], named["encoder.backbone.body.features.1.conv.0.1.bias"]
    assert gamma.ndim == 1 and any(p is gamma for p in groups["encoder weights"]["params"])
    assert any(p is beta for p in groups["encoder biases"]["params"])
    assert any(p is named["blocks.0.inv_block.conv.3.bias"] for p in groups["decoder biases"]["params"])


def test_student_config_validation():
    with pytest.raises(ValueError, match="use_gt or use_teacher"):
        R.StudentConfig(use_gt=False, use_teacher=False)
    with pytest.raises(ValueError, match="n_unlabelled"):
        R.StudentConfig(mode="pseudo")
    with pytest.raises(ValueError, match="hint_weight"):
        R.StudentConfig(hint_weight=1.0)
    with pytest.raises(ValueError, match="multiples of 32"):
        R.StudentConfig(data=SplitSpec(input_size=(100, 128)))
    with pytest.raises(KeyError, match="named students"):
        R.student_config("fastsal_b")
    cfg = R.student_config("fastsal_a_pseudo", "book")
    assert cfg.mode == "pseudo" and cfg.pretrain is not None and cfg.as_dict()["recipe"].startswith("fastsal.student/")
    lite0 = R.student_config("fastsal_a_lite0_pseudo", "book")
    assert (lite0.model, lite0.optimizer, lite0.pretrain, lite0.encoder_lr_mult) == ("fastsal_a_lite0", "adam", None, 0.1)
    with pytest.raises(ValueError, match="starts from the encoder of fastsal_c_lite0"):
        lite0.replace(pretrain=cfg.pretrain)  # a MobileNetV2 hint encoder cannot seed a Lite0 student
    assert lite0.replace(pretrain=cfg.pretrain.replace(model="fastsal_c_lite0")).pretrain.model == "fastsal_c_lite0"
    with pytest.raises(ValueError, match="optimizer must be"):
        R.StudentConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="hint pretraining trains"):
        R.HintConfig(model="fastsal_a")


def test_student_inherits_the_teachers_encoder():
    cfg = R.student_config("fastsal_a_lite0_teacher_pseudo", "book")
    assert cfg.encoder_init == "teacher" and cfg.model == "fastsal_a_lite0"
    with pytest.raises(ValueError, match="encoder_init='teacher' needs"):
        R.StudentConfig(model="fastsal_a", encoder_init="teacher")
    with pytest.raises(ValueError, match="encoder_init must be"):
        R.StudentConfig(encoder_init="imagenet")
    teacher = models.create("salgan_shaped", backbone="efficientnet_lite0", weights=None, seed=1)
    with torch.no_grad():
        for p in teacher.encoder.parameters():
            p.add_(0.5)  # unlike any init
    student = models.create("fastsal_a_lite0", weights=None, seed=0)
    head_before = {k: v.clone() for k, v in student.encoder.backbone.state_dict().items()
                   if k not in teacher.encoder.state_dict()}
    n = R.inherit_encoder(student, teacher)
    mine = student.encoder.backbone.state_dict()
    assert n == len(teacher.encoder.state_dict()) and head_before  # the student's head is not the teacher's
    assert all(torch.equal(mine[k], v) for k, v in teacher.encoder.state_dict().items())
    assert all(torch.equal(mine[k], v) for k, v in head_before.items())
    with pytest.raises(ValueError, match="not the teacher's"):
        R.inherit_encoder(models.create("fastsal_a", seed=0), teacher)


def test_teacher_density_sums_to_one():
    t = models.create("fastsal_teacher", weights=None, seed=0)
    d = R.teacher_density(t, torch.rand(2, 3, 64, 96))
    assert d.shape == (2, 64, 96) and torch.allclose(d.sum((1, 2)), torch.ones(2)) and bool((d >= 0).all())
    with pytest.raises(ValueError, match="N×3×H×W"):
        R.teacher_density(t, torch.rand(3, 64, 96))


def test_shifted_split_is_a_different_mix():
    data = SplitSpec(n_test=6, input_size=(32, 64), eval_size=(32, 64))
    shifted = R.shifted_test_set(data)
    assert len(shifted) == 6 and shifted.params.background_weight == R.SHIFTED_SCENES["background_weight"]
    assert shifted[0]["image"].shape == (3, 32, 64)


def test_tiny_distillation_end_to_end(tmp_path):
    data = SplitSpec(n_train=4, n_val=2, n_test=2, input_size=(64, 64), eval_size=(64, 64))
    teacher = models.create("fastsal_teacher", weights=None, seed=0).eval()
    hint = R.HintConfig(data=data, epochs=1, batch_size=4)
    common = dict(data=data, epochs=1, batch_size=4, pretrain=hint)
    kw = dict(device="cpu", cache=str(tmp_path), log=None, teacher_model=teacher)
    full = R.train_student(R.StudentConfig(model="fastsal_a", **common), **kw)
    assert {"loss_gt", "loss_teacher"} <= set(full.history.columns)
    pre = R.train_hints(hint, device="cpu", cache=str(tmp_path), log=None, teacher_model=teacher)
    assert pre.loaded  # built once as the student's pretraining, loaded now
    enc = full.model.encoder.state_dict()
    # the decoder is fresh but the encoder is the hint-pretrained one (up to the fine-tuning step)
    assert set(enc) == set(pre.model.encoder.state_dict())
    pseudo = R.train_student(R.StudentConfig(model="fastsal_a", mode="pseudo", n_unlabelled=4, **common), **kw)
    assert {"loss_kl", "loss_bce", "loss_cos"} <= set(pseudo.history.columns)
    out = pseudo.model(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 1, 64, 64) and torch.isfinite(out).all()
    # the Lite0 student with the teacher's optimiser: Adam, encoder at 0.1 × the rate, cosine decay per step
    adam = R.train_student(R.StudentConfig(model="fastsal_a_lite0", mode="pseudo", n_unlabelled=4, data=data, epochs=2,
                                           batch_size=4, optimizer="adam", lr=1e-3, encoder_lr_mult=0.1), **kw)
    lr = list(adam.history["lr"])
    assert "ImageNet" in adam.model.weights_source and lr[0] <= 1e-3 and lr[1] < lr[0]  # cosine decay per step


def test_recipes_share_one_set_of_training_checks():
    from salbook.recipes._config import check_training_settings
    from salbook.recipes.saliency import CompactConfig

    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        R.StudentConfig(epochs=0)
    with pytest.raises(ValueError, match="val_every must be >= 1"):
        CompactConfig(val_every=0)
    with pytest.raises(ValueError, match="lr must be positive"):
        CompactConfig(lr=0.0)
    with pytest.raises(TypeError, match="SplitSpec"):
        CompactConfig(data=(96, 128))
    cfg = CompactConfig()
    with pytest.raises(ValueError, match=r"the net needs input sides that are multiples of 7.*use e.g."):
        check_training_settings(cfg, size_multiple=7, who="the net")
    check_training_settings(cfg, ("epochs", "batch_size", "val_every"))  # a valid config passes


def test_students_mirror_the_teacher_maps_with_their_images():
    from salbook.distillation import hflip_with_teacher

    for name in ("fastsal_a", "fastsal_a_pseudo", "fastsal_a_lite0_pseudo"):  # teacher maps / teacher densities
        cfg = R.student_config(name, "smoke")
        assert R._common(cfg, 8)["augment"] is hflip_with_teacher, name
    assert R._common(cfg.replace(flip=False), 8)["augment"] is None
