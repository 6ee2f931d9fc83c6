"""Salient-object-detection metrics: PySODMetrics behind salbook's API, plus SalMetric's max-F.

:class:`SODMetrics` accumulates a dataset image by image (``.step(pred, mask)``) and reports
(``.results()``):

========================  ======================================================================
``mae``                   mean |P − G| per image, averaged (PySODMetrics: P min-max normalised)
``max_f``                 max over the 256 thresholds of the **image-averaged F curve**
                          (PySODMetrics convention; F per image and threshold, then averaged)
``mean_f``                mean over thresholds of that same curve
``adaptive_f``            F at threshold min(2·mean(P), 1) per image, averaged
``s_measure``             S-measure (Fan et al. 2017), alpha = 0.5
``max_e``, ``mean_e``     max / mean over thresholds of the image-averaged E-measure curve
                          (Fan et al. 2018)
``adaptive_e``            E-measure at the adaptive threshold, averaged
``max_f_salmetric``       SalMetric (the C++ tool CSNet's numbers come from): per threshold
                          th = 0..255, a pixel is positive if its 8-bit value is **> th**;
                          P = (TP + 1e-4) / (PP + 1e-4), R = (TP + 1e-4) / (GP + 1e-4) per image;
                          P and R are **averaged over images first**, then
                          F = 1.3·P·R / (0.3·P + R); max over thresholds. No min-max step.
``mae_salmetric``         SalMetric's MAE: |round(255·P)/255 − G| without min-max, averaged
========================  ======================================================================

β² = 0.3 throughout. Input conventions:

* ``pred``: H×W in [0, 1] (numpy or torch; apply a sigmoid to logits first). It is quantised to
  8 bits as a saved PNG would be (``round(255·pred)``), then PySODMetrics applies its standard
  normalisation (÷255 and min-max, MATLAB ``mapminmax``) for every metric except the two
  ``*_salmetric`` ones, which read the 8-bit values as they are.
* ``mask``: H×W; a float mask is binarised at > 0.5, a uint8 mask at > 128.
* A prediction of another size than the mask is resized to the mask's size (bilinear,
  ``align_corners=False``, antialiased when shrinking: :func:`salbook.metrics.resize_map`).
* Empty mask (no object): S-measure = 1 − mean(P), recall and hence F are 0. Full mask:
  S-measure = mean(P). These are PySODMetrics' definitions.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from salbook.metrics.fixation import MapLike, as_map, resize_map

__all__ = ["SODMetrics", "SOD_METRICS", "BETA2", "to_uint8_pair"]

BETA2: float = 0.3
SALMETRIC_SMOOTH: float = 1e-4

SOD_METRICS: tuple[str, ...] = (
    "mae",
    "max_f",
    "mean_f",
    "adaptive_f",
    "s_measure",
    "max_e",
    "mean_e",
    "adaptive_e",
    "max_f_salmetric",
    "mae_salmetric",
)
"""The keys of :meth:`SODMetrics.results`."""


def to_uint8_pair(pred: MapLike, mask: MapLike) -> tuple[np.ndarray, np.ndarray]:
    """Check ``pred`` / ``mask`` and return them as 8-bit images (pred quantised, mask 0/255).

    ``pred`` must lie in [0, 1] (a tolerance of 1e-6 is clipped); it is resized to the mask's size
    if they differ. Raises ``ValueError`` naming the fix otherwise.
    """
    mask_is_uint8 = (isinstance(mask, np.ndarray) and mask.dtype == np.uint8) or (
        isinstance(mask, torch.Tensor) and mask.dtype == torch.uint8
    )
    m = as_map(mask, "mask")
    gt = m > (128 if mask_is_uint8 else 0.5)
    p = as_map(pred)
    if p.shape != gt.shape:
        p = resize_map(p, gt.shape)
    if p.min() < -1e-6 or p.max() > 1 + 1e-6:
        raise ValueError(
            f"a salient-object prediction must lie in [0, 1], got [{p.min():.4g}, {p.max():.4g}]; "
            "apply a sigmoid to logits (evaluate_sod(..., postprocess=torch.sigmoid))"
        )
    q = np.round(np.clip(p, 0.0, 1.0) * 255).astype(np.uint8)
    return q, (gt.astype(np.uint8) * 255)


class SODMetrics:
    """Accumulate salient-object metrics over a dataset; see the module docstring for definitions.

    >>> acc = SODMetrics()
    >>> per_image = acc.step(pred, mask)        # doctest: +SKIP
    >>> acc.results()["max_f"]                  # doctest: +SKIP
    """

    def __init__(self) -> None:
        import py_sod_metrics as psm

        self._mae = psm.MAE()
        self._sm = psm.Smeasure(alpha=0.5)
        self._em = psm.Emeasure()
        self._fm = psm.FmeasureV2(
            metric_handlers={"fm": psm.FmeasureHandler(with_dynamic=True, with_adaptive=True, beta=BETA2)}
        )
        self._sal_p: list[np.ndarray] = []
        self._sal_r: list[np.ndarray] = []
        self._mae_raw: list[float] = []

    def __len__(self) -> int:
        return len(self._mae_raw)

    @staticmethod
    def _salmetric_pr(q: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SalMetric's per-image precision and recall at th = 0..255 (positive iff value > th)."""
        fg_hist = np.bincount(q[gt].ravel(), minlength=256)
        all_hist = np.bincount(q.ravel(), minlength=256)
        tp = fg_hist.sum() - np.cumsum(fg_hist)  # #(q > th) inside the object, th = 0..255
        pp = all_hist.sum() - np.cumsum(all_hist)  # #(q > th) anywhere
        gp = int(gt.sum())
        p = (tp + SALMETRIC_SMOOTH) / (pp + SALMETRIC_SMOOTH)
        r = (tp + SALMETRIC_SMOOTH) / (gp + SALMETRIC_SMOOTH)
        return p, r

    def step(self, pred: MapLike, mask: MapLike) -> dict[str, float]:
        """Add one image; returns its own scores (mae, mae_salmetric, adaptive_f, mean_f, max_f,
        s_measure, mean_e, adaptive_e, max_e — the image's own curves, not the dataset's)."""
        q, g = to_uint8_pair(pred, mask)
        gt = g > 128
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            self._mae.step(q, g)
            self._sm.step(q, g)
            self._em.step(q, g)
            self._fm.step(q, g)
        sal_p, sal_r = self._salmetric_pr(q, gt)
        self._sal_p.append(sal_p)
        self._sal_r.append(sal_r)
        self._mae_raw.append(float(np.abs(q / 255.0 - gt).mean()))
        handler = self._fm._metric_handlers["fm"]
        f_curve = np.asarray(handler.dynamic_results[-1], dtype=np.float64)
        e_curve = np.asarray(self._em.changeable_ems[-1], dtype=np.float64)
        return {
            "mae": float(self._mae.maes[-1]),
            "mae_salmetric": self._mae_raw[-1],
            "adaptive_f": float(handler.adaptive_results[-1]),
            "mean_f": float(f_curve.mean()),
            "max_f": float(f_curve.max()),
            "s_measure": float(self._sm.sms[-1]),
            "mean_e": float(e_curve.mean()),
            "max_e": float(e_curve.max()),
            "adaptive_e": float(self._em.adaptive_ems[-1]),
        }

    def curves(self) -> dict[str, np.ndarray]:
        """Dataset curves over the 256 thresholds: ``f`` (image-averaged F), ``e`` (E-measure),
        ``f_salmetric``, ``precision_salmetric`` and ``recall_salmetric`` (averaged P, R)."""
        if not self._mae_raw:
            raise ValueError("SODMetrics has no image yet; call .step(pred, mask) first")
        fm = self._fm.get_results()["fm"]
        em = self._em.get_results()["em"]
        p = np.mean(self._sal_p, axis=0)
        r = np.mean(self._sal_r, axis=0)
        f_sal = (1 + BETA2) * p * r / (BETA2 * p + r)
        return {
            "f": np.asarray(fm["dynamic"], dtype=np.float64),
            "e": np.asarray(em["curve"], dtype=np.float64),
            "f_salmetric": f_sal,
            "precision_salmetric": p,
            "recall_salmetric": r,
        }

    def results(self) -> dict[str, float]:
        """The dataset scores (keys: :data:`SOD_METRICS`), each a Python float."""
        c = self.curves()
        fm = self._fm.get_results()["fm"]
        em = self._em.get_results()["em"]
        out: dict[str, Any] = {
            "mae": self._mae.get_results()["mae"],
            "max_f": c["f"].max(),
            "mean_f": c["f"].mean(),
            "adaptive_f": fm["adaptive"],
            "s_measure": self._sm.get_results()["sm"],
            "max_e": c["e"].max(),
            "mean_e": c["e"].mean(),
            "adaptive_e": em["adp"],
            "max_f_salmetric": c["f_salmetric"].max(),
            "mae_salmetric": float(np.mean(self._mae_raw)),
        }
        return {k: float(out[k]) for k in SOD_METRICS}
