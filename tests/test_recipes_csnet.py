"""Tests for salbook.recipes.csnet: configs, loss, the official augmentation, training with each
decay, pruning + real fine-tune, the official no-op fine-tune, and the named-model entry points."""

from __future__ import annotations

import pytest
import torch

from salbook.cost import count_params
from salbook.data import SplitSpec
from salbook.recipes import csnet as R

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = SplitSpec(n_train=8, n_val=4, n_test=4, input_size=(32, 32), eval_size=(32, 32))


def test_config_validation_names_the_fix():
    with pytest.raises(ValueError, match="decay must be one of"):
        R.CSNetConfig(decay="strong")
    with pytest.raises(ValueError, match=r"multiples of 16.*use e.g. \(48, 48\)"):
        R.CSNetConfig(data=TINY.replace(input_size=(40, 40)))
    with pytest.raises(ValueError, match="non-negative"):
        R.CSNetConfig(lam=-1.0)
    with pytest.raises(ValueError, match="widths"):
        R.CSNetConfig(widths="x3")
    assert R.CSNetConfig().as_dict()["recipe"] == f"csnet/{R.RECIPE_VERSION}"


def test_bce_loss_and_errors():
    out = torch.zeros(2, 1, 8, 8)
    assert R.bce_loss(out, {"mask": torch.ones(2, 8, 8)}).item() == pytest.approx(0.6931, abs=1e-4)
    assert R.bce_loss(out, {"mask": torch.ones(2, 16, 16)}).item() == pytest.approx(0.6931, abs=1e-4)
    with pytest.raises(ValueError, match="mask"):
        R.bce_loss(out, {"image": out})


def test_official_augment_is_seeded_and_keeps_shapes():
    img = torch.rand(4, 3, 32, 32)
    mask = (torch.rand(4, 32, 32) > 0.5).float()
    a = R.official_augment({"image": img, "mask": mask}, torch.Generator().manual_seed(1))
    b = R.official_augment({"image": img, "mask": mask}, torch.Generator().manual_seed(1))
    assert a["image"].shape == img.shape and a["mask"].shape == mask.shape
    assert torch.equal(a["image"], b["image"]) and not torch.equal(a["image"], img)
    assert 0 <= float(a["mask"].min()) and float(a["mask"].max()) <= 1


def test_param_groups_follow_the_official_filter():
    net = R.build_csnet(R.CSNetConfig(width=0.5))
    match = R._decayed_gamma(R.CSNetConfig())
    names = [n for n, p in net.named_parameters() if match(n, p)]
    assert any("conv3x3_1.bns" in n for n in names) and not any("conv3x3_2" in n for n in names)
    assert len(names) == 2 * sum(len([c for c in b if c]) for b in net.width_spec()["blocks"])
    strict = R._decayed_gamma(R.CSNetConfig(official_typo=False))
    assert any("conv3x3_2.bns" in n for n, p in net.named_parameters() if strict(n, p))


@pytest.mark.parametrize("decay", ["dynamic", "dynamic_eq3", "l1"])
def test_train_prune_and_finetune_tiny(tmp_path, decay):
    cfg = R.CSNetConfig(width=0.5, data=TINY, epochs=1, batch_size=4, decay=decay)
    res = R.train_csnet(cfg, cache=str(tmp_path), device="cpu", log=None)
    assert len(res.history) == 1 and torch.isfinite(torch.tensor(res.history.train_loss.values)).all()
    if decay == "dynamic":
        assert "reg_dynamic_decay" in res.history and res.history.reg_dynamic_decay.iloc[0] > 0
        assert not any(m._forward_hooks for m in res.model.modules())  # hooks removed after fit
    again = R.train_csnet(cfg, cache=str(tmp_path), device="cpu", log=None)
    assert again.loaded
    from salbook.pruning.slimming import gamma_table

    median = float(gamma_table(res.model)["abs_gamma"].median())  # prune about half the channels
    pcfg = R.PrunedConfig(base=cfg, threshold=median, ft_epochs=1)
    pruned = R.train_pruned(pcfg, cache=str(tmp_path), device="cpu", log=None)
    assert count_params(pruned.model) < count_params(res.model)
    with torch.no_grad():
        assert torch.isfinite(pruned.model(torch.rand(1, 3, 32, 32))).all()
    noop = R.official_finetune(pcfg, cache=str(tmp_path), device="cpu", log=None)
    assert noop.width_spec() == pruned.model.width_spec()


def test_named_models_of_a_profile():
    table = R.configs("smoke")
    assert set(R.MODEL_NAMES) <= set(table)
    assert table["csnet_l_x1"].widths == "released_x1"
    assert table["csnet_x1_pruned"].base == table["csnet_x1_dynamic"]
    paper = R.configs("paper", dataset="duts", data_root="/data/duts")
    assert paper["csnet_x1"].data.input_size == (224, 224) and paper["csnet_x1"].lr == 1e-4
    assert paper["csnet_x1"].epochs == 300 and paper["csnet_x1"].batch_size == 24
    with pytest.raises(ValueError, match="profile"):
        R.configs("fast")
    with pytest.raises(ValueError, match="available"):
        R.trained("resnet", profile="smoke")
