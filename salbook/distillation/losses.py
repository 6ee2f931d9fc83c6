"""FastSal's distillation losses (official ``model/student_teacher.py``) and precomputed teacher maps.

Conventions: the student returns **logits** ``N × 1 × H × W``; maps are ``N × H × W`` or
``N × 1 × H × W``; every loss is a scalar tensor (or a dict of named scalar terms, which
:func:`salbook.train.fit` sums and logs one by one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["hint_loss", "gt_and_teacher_bce", "pseudo_label_loss", "teacher_maps", "TeacherTargets",
           "TEACHER_KEYS", "hflip_with_teacher"]


def _as_n1hw(x: Tensor, like: Tensor, name: str) -> Tensor:
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must be N×H×W or N×1×H×W, got shape {tuple(x.shape)}")
    x = x.to(like.device, torch.float32)
    if x.shape[-2:] != like.shape[-2:]:
        raise ValueError(f"{name} is {tuple(x.shape[-2:])} but the student's output is {tuple(like.shape[-2:])}; "
                         "give the data a map_size equal to the input size")
    return x


def hint_loss(student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
    """Summed mean squared error between paired feature maps (FitNets' hints; FastSal's pretraining).

    Each pair must have the same shape (adapters bring the student's maps to the teacher's width
    and resolution). The official pretraining sums ``MSE(mean)`` over its four levels.
    """
    if len(student) != len(teacher) or not student:
        raise ValueError(f"hint_loss needs as many student as teacher maps (≥ 1), got {len(student)} and {len(teacher)}")
    total = student[0].new_zeros(())
    for i, (s, t) in enumerate(zip(student, teacher)):
        if s.shape != t.shape:
            raise ValueError(f"hint {i}: student {tuple(s.shape)} and teacher {tuple(t.shape)} differ; add an adapter")
        total = total + nn.functional.mse_loss(s.float(), t.detach().float())
    return total


def gt_and_teacher_bce(logits: Tensor, batch: Mapping[str, Any], *, use_gt: bool = True, use_teacher: bool = True,
                       gt_key: str = "fixation_map", teacher_key: str = "teacher_map") -> dict[str, Tensor]:
    """FastSal's eq. 2: ``BCE(σ(logits), ground truth) + BCE(σ(logits), teacher map)``, mean over pixels.

    Args:
        logits: the student's ``N × 1 × H × W`` output.
        batch: with ``gt_key`` (the ground-truth saliency map in [0, 1]; the official target is the
            SALICON map ÷ 255, here the generated fixation map, max 1) and ``teacher_key`` (the
            teacher's map in [0, 1], e.g. from :class:`TeacherTargets`).
        use_gt, use_teacher: switch a term off (the rows of the paper's Table V); at least one.

    Returns:
        ``{"gt": …, "teacher": …}`` (the terms that are on), each ``BCEWithLogits`` (the same
        value as ``nn.BCELoss`` on the sigmoid, computed stably).
    """
    if not (use_gt or use_teacher):
        raise ValueError("gt_and_teacher_bce needs use_gt or use_teacher (or both)")
    if logits.dim() != 4 or logits.shape[1] != 1:
        raise ValueError(f"expected N×1×H×W logits, got shape {tuple(logits.shape)}")
    terms: dict[str, Tensor] = {}
    z = logits.float()
    if use_gt:
        terms["gt"] = F.binary_cross_entropy_with_logits(z, _as_n1hw(batch[gt_key], z, gt_key).clamp(0, 1))
    if use_teacher:
        if teacher_key not in batch:
            raise KeyError(f"the batch has no {teacher_key!r}; wrap the dataset in TeacherTargets(dataset, teacher)")
        terms["teacher"] = F.binary_cross_entropy_with_logits(z, _as_n1hw(batch[teacher_key], z, teacher_key).clamp(0, 1))
    return terms


def pseudo_label_loss(logits: Tensor, density: Tensor, weights: tuple[float, float, float] = (0.5, 0.3, 0.2),
                      eps: float = 1e-12) -> dict[str, Tensor]:
    """The official three-loss form on a teacher density: ``0.5·KL + 0.3·BCE + 0.2·(1 − cos)``.

    Per image, with ``p`` the flattened logits and ``g`` the teacher's density (sums to 1):

    * ``KL`` = ``kl_div(log_softmax(p), g, reduction="sum") / N`` (nats per image);
    * ``BCE`` = BCE(σ(p), min-max-normalised ``g``), mean over pixels;
    * ``cos`` = cosine similarity between ``softmax(p)`` and ``g`` (not Pearson's CC: no mean
      subtraction), averaged over the batch.

    Args:
        logits: ``N × 1 × H × W``.
        density: ``N × H × W`` or ``N × 1 × H × W``, non-negative; renormalised to sum 1 per image.
        weights: the weights of KL, BCE and (1 − cos).

    Returns:
        ``{"kl": 0.5·KL, "bce": 0.3·BCE, "cos": 0.2·(1 − cos)}`` (weighted terms; their sum is the loss).
    """
    if logits.dim() != 4 or logits.shape[1] != 1:
        raise ValueError(f"expected N×1×H×W logits, got shape {tuple(logits.shape)}")
    g = _as_n1hw(density, logits, "density").flatten(1).clamp_min(0)
    mass = g.sum(dim=1, keepdim=True)
    if bool((mass <= 0).any()):
        raise ValueError("pseudo_label_loss needs a density with positive mass for every image")
    g = g / mass
    p = logits.float().flatten(1)
    log_q = F.log_softmax(p, dim=1)
    kl = F.kl_div(log_q, g, reduction="sum") / p.shape[0]
    lo, hi = g.amin(dim=1, keepdim=True), g.amax(dim=1, keepdim=True)
    g01 = torch.where(hi > lo, (g - lo) / (hi - lo).clamp_min(eps), torch.zeros_like(g))
    bce = F.binary_cross_entropy_with_logits(p, g01)
    cos = F.cosine_similarity(log_q.exp(), g, dim=1).mean()
    w_kl, w_bce, w_cos = weights
    return {"kl": w_kl * kl, "bce": w_bce * bce, "cos": w_cos * (1 - cos)}


@torch.no_grad()
def teacher_maps(teacher: nn.Module, dataset: Any, *, batch_size: int = 16, device: str | torch.device = "cpu",
                 to_map: Callable[[Tensor], Tensor] = torch.sigmoid, progress: bool | None = None,
                 channels_last: bool = False) -> Tensor:
    """The teacher's output map for every image of ``dataset``: ``len × H × W`` float32 on the CPU.

    ``to_map`` turns the teacher's ``N × 1 × H × W`` output into maps (default: sigmoid of logits,
    a saliency map in (0, 1), eq. 2's target; pass a density function for pseudo-labels).
    ``channels_last`` feeds the batches in channels-last memory format: the same maps to float
    rounding (3·10⁻⁶ in the logits of the book's teacher), about 1.4× faster on this book's CPU.
    """
    from tqdm.auto import tqdm

    from ..utils import progress_enabled

    dev = torch.device(device)
    was_training = teacher.training
    teacher.eval().to(dev)
    out: list[Tensor] = []
    show = progress_enabled() if progress is None else progress
    try:
        for start in tqdm(range(0, len(dataset), batch_size), desc="teacher maps", disable=not show):
            images = torch.stack([dataset[i]["image"] for i in range(start, min(start + batch_size, len(dataset)))])
            images = images.to(dev, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            maps = to_map(teacher(images).float())
            out.append(maps.reshape(maps.shape[0], *maps.shape[-2:]).cpu())
    finally:
        teacher.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


class TeacherTargets(torch.utils.data.Dataset):
    """A dataset whose samples also carry the teacher's map (computed once, kept in memory).

    Args:
        dataset: map-style dataset of sample dicts with ``image``.
        maps: ``len × H × W`` teacher maps (from :func:`teacher_maps`), or a teacher module (then
            :func:`teacher_maps` is called with ``**kwargs``).
        key: the sample key the map goes to (``"teacher_map"``; ``"teacher_density"`` for pseudo-labels).
    """

    def __init__(self, dataset: Any, maps: Tensor | nn.Module, key: str = "teacher_map", **kwargs: Any) -> None:
        self.dataset = dataset
        self.maps = teacher_maps(maps, dataset, **kwargs) if isinstance(maps, nn.Module) else maps
        if len(self.maps) != len(dataset):
            raise ValueError(f"{len(self.maps)} teacher maps for {len(dataset)} samples")
        self.key = key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        sample[self.key] = self.maps[index]
        return sample


#: The sample keys that carry a teacher's map (:class:`TeacherTargets`' default and FastSal's pseudo-labels).
TEACHER_KEYS: tuple[str, ...] = ("teacher_map", "teacher_density")


def hflip_with_teacher(batch: Mapping[str, Any], generator: torch.Generator,
                       keys: Sequence[str] = TEACHER_KEYS) -> dict[str, Any]:
    """:func:`salbook.data.hflip_batch` with the teacher's maps mirrored with their images (an ``augment``
    for :func:`salbook.train.fit`): ``hflip_batch(batch, generator, extra_keys=keys)``.

    A teacher map added by :class:`TeacherTargets` is a target of the same image and must follow it, or
    half of every training batch pairs a mirrored image with the teacher's map of the unmirrored one.

    Args:
        batch: a collated batch with ``image`` (``N × C × H × W``) and, under ``keys``, maps
            ``N × h × w`` or ``N × 1 × h × w``.
        generator: as for ``hflip_batch`` (it draws the same half).
        keys: the batch keys to mirror with their images (absent keys are skipped).

    Returns:
        A new batch; the one given is not changed.
    """
    from ..data import hflip_batch

    return hflip_batch(batch, generator, extra_keys=keys)
