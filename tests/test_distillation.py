"""Tests for salbook.distillation: hint loss, eq. 2, the three-loss pseudo-label form, teacher maps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from salbook.distillation import (
    TeacherTargets,
    WithTeacher,
    gt_and_teacher_bce,
    hflip_with_teacher,
    hint_loss,
    pseudo_label_loss,
    teacher_maps,
)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def test_hint_loss_sums_mse_and_checks_shapes():
    s = [torch.ones(2, 3, 4, 4), torch.zeros(2, 5, 2, 2)]
    t = [torch.zeros(2, 3, 4, 4), torch.full((2, 5, 2, 2), 2.0)]
    assert float(hint_loss(s, t)) == pytest.approx(1.0 + 4.0)
    with pytest.raises(ValueError, match="adapter"):
        hint_loss([torch.zeros(1, 3, 4, 4)], [torch.zeros(1, 4, 4, 4)])
    with pytest.raises(ValueError, match="as many"):
        hint_loss([], [])


def test_eq2_equals_bce_on_the_sigmoid_and_switches_terms():
    torch.manual_seed(0)
    z = torch.randn(2, 1, 6, 8)
    gt, tm = torch.rand(2, 6, 8), torch.rand(2, 6, 8)
    batch = {"fixation_map": gt, "teacher_map": tm}
    terms = gt_and_teacher_bce(z, batch)
    bce = nn.BCELoss()
    assert float(terms["gt"]) == pytest.approx(float(bce(torch.sigmoid(z), gt.unsqueeze(1))), rel=1e-5)
    assert float(terms["teacher"]) == pytest.approx(float(bce(torch.sigmoid(z), tm.unsqueeze(1))), rel=1e-5)
    assert set(gt_and_teacher_bce(z, batch, use_gt=False)) == {"teacher"}
    assert set(gt_and_teacher_bce(z, {"fixation_map": gt}, use_teacher=False)) == {"gt"}
    with pytest.raises(ValueError, match="use_gt or use_teacher"):
        gt_and_teacher_bce(z, batch, use_gt=False, use_teacher=False)
    with pytest.raises(KeyError, match="TeacherTargets"):
        gt_and_teacher_bce(z, {"fixation_map": gt})
    with pytest.raises(ValueError, match="map_size"):
        gt_and_teacher_bce(z, {"fixation_map": torch.rand(2, 3, 4)}, use_teacher=False)


def test_pseudo_label_loss_matches_the_official_formula():
    torch.manual_seed(1)
    z = torch.randn(3, 1, 5, 7)
    g = torch.rand(3, 5, 7) + 0.01
    terms = pseudo_label_loss(z, g)
    p, gn = z.flatten(1), (g / g.sum((1, 2), keepdim=True)).flatten(1)
    q = torch.softmax(p, 1)
    kl = (gn * (gn.log() - q.log())).sum() / 3
    g01 = (gn - gn.amin(1, keepdim=True)) / (gn.amax(1, keepdim=True) - gn.amin(1, keepdim=True))
    bce = nn.BCELoss()(torch.sigmoid(p), g01)
    cos = F.cosine_similarity(q, gn, dim=1).mean()
    assert float(terms["kl"]) == pytest.approx(0.5 * float(kl), rel=1e-4)
    assert float(terms["bce"]) == pytest.approx(0.3 * float(bce), rel=1e-4)
    assert float(terms["cos"]) == pytest.approx(0.2 * float(1 - cos), rel=1e-4)
    # a prediction equal to the target distribution has KL 0 and cosine 1
    perfect = pseudo_label_loss(gn.log().view(3, 1, 5, 7), g)
    assert float(perfect["kl"]) == pytest.approx(0.0, abs=1e-5) and float(perfect["cos"]) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="positive mass"):
        pseudo_label_loss(z, torch.zeros(3, 5, 7))


class _Half(nn.Module):
    def forward(self, x):
        return x[:, :1] * 0 + 0.0  # logits 0 -> sigmoid 0.5


def test_teacher_maps_and_targets_add_the_teacher_output():
    ds = [{"image": torch.rand(3, 4, 6), "name": str(i)} for i in range(5)]
    maps = teacher_maps(_Half(), ds, batch_size=2, progress=False)
    assert maps.shape == (5, 4, 6) and torch.allclose(maps, torch.full_like(maps, 0.5))
    wrapped = TeacherTargets(ds, maps)
    assert len(wrapped) == 5 and torch.equal(wrapped[3]["teacher_map"], maps[3]) and "teacher_map" not in ds[3]
    with pytest.raises(ValueError, match="teacher maps"):
        TeacherTargets(ds, maps[:2])


def test_with_teacher_freezes_the_teacher():
    teacher = nn.Conv2d(3, 1, 1)
    wrapped = WithTeacher(teacher, lambda s, t, b: (s - t).pow(2).mean())
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    x = torch.rand(2, 3, 4, 4)
    assert float(wrapped(teacher(x), {"image": x})) == pytest.approx(0.0)


@pytest.mark.parametrize("key, shape", [("teacher_density", (4, 5, 6)), ("teacher_map", (4, 1, 5, 6))])
def test_hflip_with_teacher_mirrors_each_teacher_map_with_its_image(key, shape):
    imgs = torch.rand(4, 3, 5, 6)
    target = imgs[:, 0].reshape(shape) / 3  # a map that is a function of its image, so the pairing can be checked
    batch = {"image": imgs, key: target, "fixation_map": imgs[:, 1]}
    out = hflip_with_teacher(batch, torch.Generator().manual_seed(3))
    mirrored = [not torch.equal(out["image"][i], imgs[i]) for i in range(4)]
    assert sum(mirrored) == 2  # hflip_batch's half
    for i in range(4):
        assert torch.equal(out[key][i], out["image"][i, 0].reshape(shape[1:]) / 3)
        assert torch.equal(out["fixation_map"][i], out["image"][i, 1])
    assert torch.equal(batch[key], target)  # the batch given is unchanged


def test_hflip_with_teacher_follows_the_draw_even_for_a_symmetric_image_and_checks_sizes():
    imgs = torch.rand(2, 3, 4, 6)
    imgs = imgs + imgs.flip(-1)  # equal to its mirror: nothing visible tells which image was drawn
    target, density = torch.rand(2, 4, 6), torch.rand(2, 4, 6)
    out = hflip_with_teacher({"image": imgs, "teacher_density": target, "density": density},
                             torch.Generator().manual_seed(0))
    drawn = [not torch.equal(out["density"][i], density[i]) for i in range(2)]
    assert sum(drawn) == 1  # the dataset's own map shows the draw; the teacher's map follows it
    for i in range(2):
        assert torch.equal(out["teacher_density"][i], target[i].flip(-1) if drawn[i] else target[i])
    with pytest.raises(ValueError, match="3 maps for 2 images"):
        hflip_with_teacher({"image": imgs, "teacher_map": torch.rand(3, 4, 6)}, torch.Generator().manual_seed(0))
