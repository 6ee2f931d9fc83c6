"""Tests for the dense-map recipes of chapters 2 and 3 (compact model, ML-Net-style Lite0):
configs, targets, losses, post-processing, training-step memory, and tiny train/load cycles."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from salbook.cost import design_cost_table, peak_activation_memory, peak_training_memory
from salbook.data import load_split
from salbook.evaluation import evaluate
from salbook.recipes import saliency as R

TINY = dict(stem=(4, 4), blocks=((4, 4), (4, 8)), pools=(0, 1, 2))


def test_configs_validate_and_hash_by_value():
    cfg = R.CompactConfig()
    assert cfg.as_dict()["recipe"].startswith("saliency.compact/")
    assert cfg.replace(epochs=3).as_dict() != cfg.as_dict()
    assert cfg.replace(data=cfg.data.replace(input_size=[96, 128])).as_dict() == cfg.as_dict()
    with pytest.raises(ValueError, match="model"):
        R.CompactConfig(model="pan_shallow")
    with pytest.raises(ValueError, match="epochs"):
        R.CompactConfig(epochs=0)
    with pytest.raises(TypeError, match="SplitSpec"):
        R.CompactConfig(data={"n_train": 3})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backbone_lr_mult"):
        R.MLNetStyleConfig(backbone_lr_mult=-1)
    assert R.MLNetStyleConfig().as_dict()["recipe"].startswith("saliency.mlnet_style/")


def test_pooled_target_averages_cells():
    fmap = torch.arange(16.0).view(1, 4, 4)
    pooled = R.pooled_target(fmap, (2, 2))
    assert pooled.shape == (1, 1, 2, 2)
    assert torch.allclose(pooled[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    with pytest.raises(ValueError, match="N×H×W"):
        R.pooled_target(torch.zeros(4, 4), (2, 2))


def test_kl_loss_is_zero_at_the_target_and_positive_elsewhere():
    fmap = torch.rand(3, 8, 8) + 0.01
    p = R.pooled_target(fmap, (4, 4)).flatten(1)
    p = p / p.sum(1, keepdim=True)
    perfect = torch.log(p).view(3, 1, 4, 4) + 7.0  # softmax is shift-invariant
    assert float(R.kl_loss(perfect, {"fixation_map": fmap})) == pytest.approx(0.0, abs=1e-6)
    flat = torch.zeros(3, 1, 4, 4)
    expected = (p * (torch.log(p) - math.log(1 / 16))).sum(1).mean()
    assert torch.isclose(R.kl_loss(flat, {"fixation_map": fmap}), expected, atol=1e-6)
    with pytest.raises(ValueError, match="positive mass"):
        R.kl_loss(flat, {"fixation_map": torch.zeros(3, 8, 8)})
    with pytest.raises(ValueError, match="logits"):
        R.kl_loss(torch.zeros(3, 4, 4), {"fixation_map": fmap})


def test_spatial_softmax_is_a_distribution():
    out = R.COMPACT_POSTPROCESS(torch.randn(1, 6, 8))
    assert out.shape == (6, 8) and torch.isclose(out.sum(), torch.tensor(1.0)) and bool((out > 0).all())


def test_mlnet_style_loss_scales_the_target_to_max_one():
    fmap = torch.rand(2, 8, 8)
    out = torch.rand(2, 1, 4, 4)
    target = R.pooled_target(fmap, (4, 4))
    target = target / target.flatten(1).amax(1).view(2, 1, 1, 1)
    from salbook.models.mlnet import mlnet_loss

    assert torch.isclose(R.mlnet_style_loss(out, {"fixation_map": fmap}), mlnet_loss(out, target))


def test_training_memory_exceeds_inference_memory(one_thread):
    torch.manual_seed(0)
    net = R.build_compact(R.CompactConfig(model_kwargs=TINY))
    train_bytes = peak_training_memory(net, (32, 32))
    infer_bytes = peak_activation_memory(net, (32, 32))
    assert train_bytes > infer_bytes > 0
    assert net.training  # the caller's model is untouched
    assert all(p.grad is None for p in net.parameters())
    assert peak_training_memory(net, (3, 32, 32), batch=2) > train_bytes


def test_tiny_compact_trains_caches_and_evaluates(tmp_path, one_thread, monkeypatch):
    monkeypatch.setenv("SALBOOK_CACHE", str(tmp_path / "cache"))
    data = R.COMPACT_DATA.replace(n_train=8, n_val=4, n_test=4, input_size=(32, 32), eval_size=(32, 32))
    cfg = R.CompactConfig(data=data, epochs=1, batch_size=4, model_kwargs=TINY)
    first = R.train_compact(cfg, seed=0, device="cpu", cache=str(tmp_path / "models"), log=None)
    assert not first.loaded and len(first.history) == 1
    again = R.train_compact(cfg, seed=0, device="cpu", cache=str(tmp_path / "models"), log=None)
    assert again.loaded
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    result = evaluate(again.model, load_split(data, "test"), ("cc", "kld"), postprocess=R.COMPACT_POSTPROCESS,
                      device="cpu", progress=False)
    assert result.summary["n"].min() == 4


def test_tiny_mlnet_style_fine_tune_runs(tmp_path, one_thread, monkeypatch):
    monkeypatch.setenv("SALBOOK_CACHE", str(tmp_path / "cache"))
    data = R.MLNET_STYLE_DATA.replace(n_train=4, n_val=2, n_test=2, input_size=(80, 80), eval_size=(80, 80))
    cfg = R.MLNetStyleConfig(data=data, epochs=1, batch_size=2, model_kwargs={"weights": None, "seed": 0})
    result = R.train_mlnet_style(cfg, seed=0, device="cpu", cache=str(tmp_path / "models"), log=None)
    assert {"loss_loss", "reg_prior"} <= set(result.history.columns) or "reg_prior" in result.history.columns
    assert isinstance(result.model, nn.Module)
    with torch.no_grad():
        assert result.model(torch.rand(1, 3, 80, 80)).shape == (1, 1, 10, 10)


def test_design_cost_table(one_thread):
    torch.manual_seed(0)
    nets = {"tiny": R.build_compact(R.CompactConfig(model_kwargs=TINY)),
            "fixed": R.build_compact(R.CompactConfig(model_kwargs=TINY))}
    table = design_cost_table(nets, [(32, 32), (48, 64)], sizes_for={"fixed": [(16, 16)]}, latency_runs=2)
    assert list(table.index) == [("tiny", "32×32"), ("tiny", "48×64"), ("fixed", "16×16")]
    row = table.loc[("tiny", "32×32")]
    assert row["fp16 MB"] < row["fp32 MB"] and row["training MB"] > row["inference MB"] > 0
    assert table.loc[("tiny", "48×64"), "GMACs"] > row["GMACs"] and row["threads"] == 1
