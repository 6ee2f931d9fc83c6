"""How much the generated scenes behave like real eye-tracking data: the realism table.

:func:`realism_table` scores six predictors on the test scenes' fixations with the book's own
metrics (:mod:`salbook.metrics`), mean over test images (NaN scores, e.g. NSS of a constant map,
are left out of the mean):

* **centre bias** — :class:`salbook.baselines.CenterBias` fitted on the *training* fixations
  (on MIT300 this baseline reaches AUC-Judd 0.78; the generator is tuned to 0.75-0.82);
* **true density** — the generator's density, the ceiling no model can beat on average;
* **inter-observer** — half of the observers predict the other half
  (:func:`salbook.baselines.inter_observer`, ``mode="half"``, both directions averaged; CC there
  is against the held-out half's own map);
* **contrast only** — the density rebuilt from the centre and low-level-contrast parts only
  (``components()["centre"] + ["contrast"]``), what a purely low-level model could know;
* **category only** — centre plus the category (semantic) part only;
* **uniform** — a constant map (AUC 0.5 by construction).

Both "only" predictors scoring clearly below the true density shows that a model has to learn
both low-level pop-out and object categories.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..utils import progress_enabled

__all__ = ["realism_table", "synthetic_realism", "METRIC_COLUMNS"]

#: metric name in salbook.metrics -> column label of the table
METRIC_COLUMNS: dict[str, str] = {"auc_judd": "AUC-Judd", "nss": "NSS", "cc": "CC"}

ROWS = ("centre bias", "true density", "inter-observer", "contrast only", "category only", "uniform")


def realism_table(
    dataset_train: Any,
    dataset_test: Any,
    n_test: int | None = None,
    progress: bool | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Score the realism predictors on ``dataset_test`` (a :class:`SyntheticSaliency` split).

    Args:
        dataset_train: scenes whose fixations fit the centre bias (never the test split).
        dataset_test: scenes to score on; needs ``components(i)`` (synthetic only).
        n_test: score only the first ``n_test`` test scenes (default: all).
        progress: tqdm bar (default :func:`salbook.utils.progress_enabled`).
        seed: seed of the observer halves of the inter-observer row.

    Returns:
        DataFrame indexed by predictor (``ROWS``) with columns ``AUC-Judd``, ``NSS``, ``CC``
        (means over test images) and ``n`` (images scored).
    """
    from tqdm.auto import tqdm

    from .. import metrics as M
    from ..baselines import CenterBias, inter_observer

    if not hasattr(dataset_test, "components"):
        raise TypeError("realism_table needs a synthetic test split (with components(i)); got "
                        f"{type(dataset_test).__name__}")
    show = progress_enabled() if progress is None else bool(progress)
    n = len(dataset_test) if n_test is None else min(int(n_test), len(dataset_test))
    if n < 1:
        raise ValueError("realism_table needs at least one test image")
    centre_model = CenterBias.fit(dataset_train, progress=show)
    scores: dict[str, dict[str, list[float]]] = {r: {m: [] for m in METRIC_COLUMNS} for r in ROWS if r != "inter-observer"}
    for i in tqdm(range(n), desc="realism", disable=not show, leave=False):
        sample = dataset_test[i]
        parts = dataset_test.components(i)
        size = tuple(sample["fixation_map"].shape[-2:])
        fix = sample["fixations"]
        preds = {
            "centre bias": centre_model.density_at(size).numpy().astype(np.float64),
            "true density": parts["density"],
            "contrast only": parts["centre"] + parts["contrast"],
            "category only": parts["centre"] + parts["category"],
            "uniform": np.ones(size),
        }
        for row, pred in preds.items():
            for m in METRIC_COLUMNS:
                fn = getattr(M, m)
                target = sample["fixation_map"] if m == "cc" else fix
                scores[row][m].append(fn(pred, target))
    table = {}
    for row in ROWS:
        if row == "inter-observer":
            continue
        table[row] = {METRIC_COLUMNS[m]: _nanmean(v) for m, v in scores[row].items()}
        table[row]["n"] = n
    io_set = _Subset(dataset_test, n)
    io = inter_observer(io_set, metrics=tuple(METRIC_COLUMNS), mode="half", seed=seed, progress=show)
    io_mean = io.mean()
    table["inter-observer"] = {METRIC_COLUMNS[m]: io_mean[m] for m in METRIC_COLUMNS}
    table["inter-observer"]["n"] = int(io.settings.get("n_images", n))
    df = pd.DataFrame.from_dict(table, orient="index").loc[list(ROWS)]
    df.index.name = "predictor"
    df["n"] = df["n"].astype(int)
    return df


def synthetic_realism(
    size: Sequence[int] = (192, 256),
    target_size: Sequence[int] | None = None,
    n_train: int = 500,
    n_test: int = 200,
    seed: int = 0,
    progress: bool | None = None,
    **options: Any,
) -> pd.DataFrame:
    """The realism table of freshly generated scenes (train split fits the centre bias, test
    split is scored); ``options`` go to :class:`SyntheticSaliency` (e.g. generator parameters)."""
    from ..data.synthetic import SyntheticSaliency

    common = dict(size=size, target_size=target_size, seed=seed, **options)
    train = SyntheticSaliency("train", n=n_train, **common)
    test = SyntheticSaliency("test", n=n_test, **common)
    return realism_table(train, test, progress=progress, seed=seed)


def _nanmean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


class _Subset:
    """The first ``n`` items of a dataset (keeps ``fixation_sigma`` for inter_observer)."""

    def __init__(self, dataset: Any, n: int):
        self.dataset, self.n = dataset, n
        self.fixation_sigma = getattr(dataset, "fixation_sigma", None)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.dataset[i]
