"""The book's trained models, by name (``salbook.zoo``): how to load each one, what it predicts,
how its output becomes a map, and which chapter trains it.

A model is *trained by its chapter*: ``salbook run --profile book notebooks/01_pan_shallow.py``
trains (or loads) it through its recipe's ``load_or_train`` path and records the numbers it
scored, each with the configuration that produced it. The zoo reads that configuration back from
the chapter's record file (``_build/records/<profile>/<chapter>.json``) and asks the recipe for the
model with ``train_data`` that refuses to be read: a cached model loads, an uncached one raises
:class:`ModelNotTrained` naming the command that trains it. Nothing here trains.

>>> from salbook import zoo
>>> zoo.names()                                        # doctest: +SKIP
['pan_recommended', 'pan_faithful', 'compact', 'mlnet_style']
>>> m = zoo.load("compact", profile="book")            # doctest: +SKIP
>>> maps = m.predict_maps(images)                      # N × 3 × H × W in [0, 1] -> N maps  # doctest: +SKIP

One :class:`ZooEntry` per model in :data:`ENTRIES` below: one line per model, added where its
chapter lands.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

__all__ = [
    "ZooEntry",
    "ENTRIES",
    "ModelNotTrained",
    "LoadedModel",
    "names",
    "get",
    "find_book_root",
    "chapter_record",
    "config_for",
    "is_trained",
    "load",
    "load_weights",
    "build_untrained",
    "loaded_untrained",
    "headline_scores",
    "models_table",
    "train_command",
    "config_from_dict",
    "data_of",
]

Task = Literal["fixation", "sod"]


@dataclass(frozen=True)
class ZooEntry:
    """How to find, load and use one of the book's trained models.

    Attributes:
        name: the zoo name (``salbook predict --model NAME``).
        title: a human-readable name for tables.
        task: ``"fixation"`` (a saliency density) or ``"sod"`` (a salient-object mask).
        chapter: the chapter source that trains it (``"notebooks/01_pan_shallow.py"``).
        recipe: the recipe module (``"salbook.recipes.pan"``).
        config_class: the recipe's config class name in ``recipe`` (config dicts are rebuilt as it).
        train_fn: name of the recipe's ``(cfg, seed=, device=, log=)`` function that loads-or-trains it.
        record_key: a number the chapter records *with the model's config* (``record(...,
            config=cfg)``); the zoo reads the config (and the run's seed) from it.
        config_fn: instead of a record, a recipe function ``(*config_args, profile=...) -> config``
            that gives the chapter's config for a profile (chapters whose recipes name their models).
        config_key: when ``config_fn`` returns a ``{name: config}`` dict, the name to take (a
            shell pattern takes the last match in the dict's order, e.g. the last pruning stage).
        finalize: ``"module:attr"`` of ``fn(model, example_input) -> model`` applied after loading
            (pruned gaze models: remove the masked channels physically).
        seed: the training seed when fixed by the recipe (the teacher: 0); else the record's seed
            (0 without one).
        build_fn: name of the recipe's ``cfg -> nn.Module`` builder (for ``--weights``); default
            ``models.create(cfg.model, **cfg.model_kwargs)``, or ``models.create(arch)``.
        arch: registered model name for ``--weights`` when the config names none.
        default_config: name of a zero-argument factory in ``recipe`` giving a config with the
            right architecture when no record exists (``--weights`` without a chapter run).
        postprocess: applied to each ``h × w`` output before it is resized to the image: a name in
            :data:`salbook.evaluation.POSTPROCESSORS`, or ``"module:attr"`` of a callable.
        headline: metrics shown by ``salbook models``; their record keys are ``record_prefix + metric``.
        redundancy_layer: the module whose output chapter 2's redundancy analysis reads (the last
            feature map before the read-out), a name in ``model.named_modules()``.
        paper: the publication's key in ``book/references.bib`` (for reported numbers).
        record_prefix: prefix of the headline keys.
    """

    name: str
    title: str
    task: Task
    chapter: str
    recipe: str
    config_class: str
    train_fn: str
    record_key: str = ""
    config_fn: str = ""
    config_args: tuple[Any, ...] = ()
    config_key: str = ""
    finalize: str = ""
    seed: int | None = None
    build_fn: str = ""
    arch: str = ""
    default_config: str = ""
    postprocess: str = "none"
    record_prefix: str = ""
    headline: tuple[str, ...] = ("cc", "nss", "auc_judd", "auc_shuffled", "kld")
    redundancy_layer: str = ""
    paper: str = ""

    def module(self) -> Any:
        """The recipe module (imported now; :class:`ModuleNotFoundError` if its chapter has not landed)."""
        return importlib.import_module(self.recipe)

    def command(self, profile: str = "book") -> str:
        """The command that trains this model (and records its configuration)."""
        return train_command(self.chapter, profile)


def train_command(chapter: str, profile: str = "book") -> str:
    """``salbook run --profile <profile> <chapter>``."""
    return f"salbook run --profile {profile} {chapter}"


#: The book's trained models, one line each, in chapter order. Chapters 4-6 add theirs here:
#: FastSal C/A, A on the ImageNet Lite0 (the pseudo-label student) and the teacher (chapter 4,
#: salbook.recipes.fastsal), the gaze models pruned and unpruned (chapter 5, salbook.recipes.fisher),
#: CSNet and CSNet-L (chapter 6, task="sod").
_PAN = dict(chapter="notebooks/01_pan_shallow.py", recipe="salbook.recipes.pan", config_class="PanConfig",
            train_fn="train", build_fn="build_model", postprocess="blur_minmax")
_SAL = dict(recipe="salbook.recipes.saliency")
_FASTSAL = dict(chapter="notebooks/04_fastsal.py", recipe="salbook.recipes.fastsal")
_GAZE = dict(chapter="notebooks/05_fisher_pruning.py", recipe="salbook.recipes.fisher", config_fn="gaze_configs",
             postprocess="torch:exp", paper="theis2018fisher")  # the gaze models output log-densities
_SOD_HEADLINE = ("s_measure", "max_f", "mae")
_CSNET = dict(chapter="notebooks/06_csnet.py", recipe="salbook.recipes.csnet", config_fn="configs",
              postprocess="sigmoid", paper="gao2020csnet")

ENTRIES: dict[str, ZooEntry] = {e.name: e for e in [
    ZooEntry("pan_recommended", "Pan shallow (recommended recipe)", "fixation", **_PAN,
             record_key="pan.recommended.test.cc", default_config="recommended", record_prefix="pan.recommended.test.",
             redundancy_layer="features", paper="pan2016shallow"),
    ZooEntry("pan_faithful", "Pan shallow (faithful recipe)", "fixation", **_PAN,
             record_key="pan.faithful.test.cc", default_config="faithful", record_prefix="pan.faithful.test.",
             headline=("cc", "nss", "auc_borji"), redundancy_layer="features", paper="pan2016shallow"),
    ZooEntry("mlnet_style", "ML-Net-style (EfficientNet-Lite0)", "fixation", "notebooks/02_pca_redundancy.py", **_SAL,
             config_class="MLNetStyleConfig", train_fn="train_mlnet_style", build_fn="build_mlnet_style",
             record_key="pca.mlnet_lite0.test.cc", default_config="MLNetStyleConfig",
             record_prefix="pca.mlnet_lite0.test.", redundancy_layer="backbone.body.bn2", paper="cornia2016mlnet"),
    ZooEntry("compact", "Compact model", "fixation", "notebooks/03_compact_model.py", **_SAL,
             config_class="CompactConfig", train_fn="train_compact", build_fn="build_compact",
             record_key="compact.compact.test.cc", default_config="CompactConfig",
             postprocess="salbook.recipes.saliency:COMPACT_POSTPROCESS", record_prefix="compact.compact.test.",
             redundancy_layer="features.block13", paper="compactpca"),
    ZooEntry("fastsal_teacher", "FastSal teacher (Lite0 + SalGAN decoder)", "fixation", **_FASTSAL,
             config_class="TeacherConfig", train_fn="train_teacher", config_fn="teacher_config", seed=0,
             arch="fastsal_teacher", default_config="TeacherConfig", postprocess="sigmoid",
             redundancy_layer="encoder.body.blocks", record_prefix="fastsal.teacher.test.", headline=("cc", "nss")),
    ZooEntry("fastsal_c", "FastSal (C)", "fixation", **_FASTSAL, config_class="StudentConfig",
             train_fn="train_student", config_fn="student_config", config_args=("fastsal_c",),
             postprocess="salbook.models.fastsal:fastsal_postprocess", redundancy_layer="adapters.3",
             record_prefix="fastsal.cp1t1g1.test.", headline=("cc", "nss"), paper="hu2021fastsal"),
    ZooEntry("fastsal_a", "FastSal (A)", "fixation", **_FASTSAL, config_class="StudentConfig",
             train_fn="train_student", config_fn="student_config", config_args=("fastsal_a",),
             postprocess="salbook.models.fastsal:fastsal_postprocess", redundancy_layer="adapters.3",
             record_prefix="fastsal.ap1t1g1.test.", headline=("cc", "nss"), paper="hu2021fastsal"),
    ZooEntry("fastsal_a_lite0", "FastSal (A) on ImageNet Lite0, pseudo-labels", "fixation", **_FASTSAL,
             config_class="StudentConfig", train_fn="train_student", config_fn="student_config",
             config_args=("fastsal_a_lite0_pseudo",), postprocess="salbook.models.fastsal:fastsal_density_postprocess",
             redundancy_layer="adapters.3", record_prefix="fastsal.a_lite0_pseudo.test.", headline=("cc", "nss"),
             paper="hu2021fastsal"),
    ZooEntry("gaze", "Gaze model, unpruned (Fisher chapter)", "fixation", **_GAZE, config_class="GazeConfig",
             train_fn="train_gaze", config_key="unpruned", record_prefix="fisher.gaze.unpruned.",
             headline=("cc", "nss", "auc_judd")),
    ZooEntry("gaze_fisher", "Gaze model, Fisher-pruned (last stage, largest β)", "fixation", **_GAZE,
             config_class="GazePruneConfig", train_fn="prune_gaze", config_key="fisher_b*_s*",
             finalize="salbook.pruning.removal:remove_pruned"),
    ZooEntry("csnet", "CSNet ×1 (standard decay)", "sod", **_CSNET, config_key="csnet_x1", train_fn="train_csnet",
             config_class="CSNetConfig", record_prefix="csnet.standard.test.", headline=_SOD_HEADLINE),
    ZooEntry("csnet_l", "CSNet-L (dynamic decay, pruned, fine-tuned)", "sod", **_CSNET, config_key="csnet_x1_pruned",
             train_fn="train_pruned", config_class="PrunedConfig", record_prefix="csnet.dynamic_real_ft.test.",
             headline=("max_f_salmetric",)),
    ZooEntry("csnet_l_released", "CSNet-L ×1 widths, from scratch", "sod", **_CSNET, config_key="csnet_l_x1",
             train_fn="train_csnet", config_class="CSNetConfig", record_prefix="csnet.l_x1.test.",
             headline=_SOD_HEADLINE),
]}


class ModelNotTrained(FileNotFoundError):
    """The model is not in the cache (or its chapter has not run in this profile); the message
    names the ``salbook run`` command that trains it."""


class _NotCached(Exception):
    """Raised inside :func:`_load_only` when a recipe would start training."""


def _refuse(*_a: Any, **_k: Any) -> Any:
    raise _NotCached


@contextlib.contextmanager
def _load_only() -> Iterator[None]:
    """Within this block a recipe can load cached models but never train one.

    Every recipe reaches the cache through ``salbook.train.load_or_train`` (imported when called);
    it is wrapped so that the ``train_kwargs`` it would build when the model is missing raise
    :class:`_NotCached` instead (before any dataset is built), and ``fit`` itself raises as a
    backstop. Restored on exit. (Not thread-safe: the zoo loads models one at a time.)
    """
    from . import train as train_pkg
    from .train import cache as cache_mod

    original, original_fit = train_pkg.load_or_train, cache_mod.fit

    def load_or_refuse(config: Any, build_model: Any, train_kwargs: Any = None, **kwargs: Any) -> Any:
        return original(config, build_model, _refuse, **kwargs)

    train_pkg.load_or_train, cache_mod.fit = load_or_refuse, _refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        train_pkg.load_or_train, cache_mod.fit = original, original_fit  # type: ignore[assignment]


def names() -> list[str]:
    """The zoo's model names, in chapter order."""
    return list(ENTRIES)


def get(name: str) -> ZooEntry:
    """The entry called ``name``; a :class:`KeyError` lists the known names."""
    try:
        return ENTRIES[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; the book's models: {', '.join(ENTRIES)} "
                       "(see `salbook models`)") from None


def find_book_root(root: str | Path | None = None) -> Path:
    """The book checkout: ``root`` if given, else the folder above the package (a source checkout),
    else the nearest one at or above the working directory."""
    if root is not None:
        return Path(root)
    here = Path(__file__).resolve().parents[1]
    if (here / "notebooks").is_dir() and (here / "_config.yml").is_file():
        return here
    from .runner import find_root

    return find_root(None)


def chapter_record(chapter: str, profile: str = "book", root: str | Path | None = None) -> dict[str, Any] | None:
    """The record file of ``chapter``'s last run in ``profile`` (a dict), or ``None`` if it has not run."""
    path = find_book_root(root) / "_build" / "records" / profile / f"{Path(chapter).stem}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _resolve(ref: str, default_module: str | None = None) -> Any:
    """``"module:attr"`` (or ``attr`` of ``default_module``) -> the object."""
    module, _, attr = ref.rpartition(":") if ":" in ref else (default_module, ":", ref)
    obj: Any = importlib.import_module(module)  # type: ignore[arg-type]
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def config_from_dict(cls: type, stored: Mapping[str, Any]) -> Any:
    """Rebuild a recipe config (a frozen dataclass with ``RECIPE``) from the dict a record file
    stores (:func:`salbook.book.config_dict`); the result's dict must equal ``stored`` exactly."""
    from .book import config_dict
    from .data import SplitSpec

    stored = dict(stored)
    recipe = stored.get("recipe")
    if recipe != getattr(cls, "RECIPE", None):
        raise ValueError(f"the stored config is recipe {recipe!r}, but {cls.__name__} is {cls.RECIPE!r} "
                         "(the recipe's version changed since the chapter ran: re-run it)")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in stored:
            continue
        value = stored[f.name]
        if f.name == "data" and isinstance(value, Mapping):
            value = SplitSpec(**value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    cfg = cls(**kwargs)
    if config_dict(cfg) != config_dict(stored):
        raise ValueError(f"could not rebuild the stored {cls.__name__} exactly (fields changed since the chapter ran)")
    return cfg


def config_for(name: str, profile: str = "book", root: str | Path | None = None) -> tuple[Any, int]:
    """The config and seed with which ``name``'s chapter trained it in ``profile``.

    From the recipe's ``config_fn`` when the entry has one, else from the chapter's record (raises
    :class:`ModelNotTrained` when the chapter has not run in that profile).
    """
    entry = get(name)
    rec = chapter_record(entry.chapter, profile, root) if entry.chapter else None
    record_seed = int(rec.get("seed", 0)) if rec else 0
    seed = entry.seed if entry.seed is not None else record_seed
    if entry.config_fn:
        cfg = getattr(entry.module(), entry.config_fn)(*entry.config_args, profile=profile)
        if entry.config_key:
            import fnmatch

            matches = [k for k in cfg if fnmatch.fnmatchcase(k, entry.config_key)]
            if not matches:
                raise KeyError(f"{name}: {entry.recipe}.{entry.config_fn} has no config {entry.config_key!r} "
                               f"for profile {profile!r}")
            cfg = cfg[matches[-1]]
        return cfg, seed
    if rec is None or entry.record_key not in rec.get("metrics", {}):
        raise ModelNotTrained(f"{name}: no record of {entry.chapter} in the {profile!r} profile; train it with "
                              f"`{entry.command(profile)}`")
    digest = rec["metrics"][entry.record_key].get("config")
    if digest is None:
        raise ValueError(f"{entry.chapter} records {entry.record_key} without its config")
    cls = getattr(entry.module(), entry.config_class)
    return config_from_dict(cls, rec["configs"][digest]), seed


def build_untrained(name: str, cfg: Any) -> nn.Module:
    """``name``'s architecture for config ``cfg``, with untrained weights (see :attr:`ZooEntry.build_fn`)."""
    from . import models

    entry = get(name)
    if entry.build_fn:
        return getattr(entry.module(), entry.build_fn)(cfg)
    if getattr(cfg, "model", None):
        return models.create(cfg.model, **dict(getattr(cfg, "model_kwargs", {}) or {}))
    if entry.arch:
        return models.create(entry.arch)
    raise ValueError(f"{name}: the zoo does not know how to build its architecture (set build_fn or arch)")


@dataclass
class LoadedModel:
    """A trained model ready to make maps.

    Attributes:
        entry: its :class:`ZooEntry`.
        model: the network (eval mode).
        config: the recipe config it was trained with.
        input_size: ``(H, W)`` the images are resized to.
        normalize: whether the images get ImageNet mean/std after resizing.
        postprocess: ``h × w`` tensor -> map, or ``None``.
        source: where the weights came from (a cache folder or a file).
    """

    entry: ZooEntry
    model: nn.Module
    config: Any
    input_size: tuple[int, int]
    normalize: bool
    postprocess: Callable[[torch.Tensor], torch.Tensor] | None
    source: str
    seed: int = 0

    @property
    def device(self) -> torch.device:
        return next((p.device for p in self.model.parameters()), torch.device("cpu"))

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """One ``3 × H × W`` image in [0, 1] -> the network's input ``3 × h × w`` (the recipe's
        resize rule: whole image, bilinear, antialiased; ImageNet normalisation if the recipe uses it)."""
        from .data.transforms import normalize_image
        from .maps import resize_tensor

        x = resize_tensor(image.float(), self.input_size, "bilinear").clamp_(0.0, 1.0)
        return normalize_image(x) if self.normalize else x

    @torch.no_grad()
    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """The network's raw output ``N × h × w`` for a preprocessed ``N × 3 × H × W`` batch."""
        from .evaluation import _as_pred_batch

        return _as_pred_batch(self.model(batch.to(self.device)), self.model)

    def finish(self, logits: torch.Tensor, size: Sequence[int]) -> np.ndarray:
        """One ``h × w`` output -> the post-processed map at ``size`` (H, W), float32, as
        :func:`salbook.evaluate` scores it."""
        from .maps import resize_tensor

        pred = logits
        if self.postprocess is not None:
            pred = self.postprocess(pred)
            if not isinstance(pred, torch.Tensor):
                pred = torch.as_tensor(np.asarray(pred))
            while pred.dim() > 2 and pred.shape[0] == 1:
                pred = pred[0]
        # salbook.evaluate's rule (post-process at the model's resolution, then bilinear, antialiased),
        # in float32 (evaluate resizes in float64; the difference is float rounding)
        return resize_tensor(pred.detach().float().cpu(), (int(size[0]), int(size[1]))).numpy().astype(np.float32)

    def for_inference(self, channels_last: bool = False) -> "LoadedModel":
        """A copy whose network is :func:`salbook.inference.prepare_for_inference`'s: batch norm folded
        into the convolutions (outputs equal to float rounding; a fold that would change them is
        refused there), no gradients, optionally channels-last. What ``salbook predict`` runs."""
        import dataclasses

        from .inference import prepare_for_inference

        example = torch.zeros(1, 3, *self.input_size, device=self.device)
        net = prepare_for_inference(self.model, channels_last=channels_last, example=example)
        return dataclasses.replace(self, model=net)

    def as_module(self) -> nn.Module:
        """An ``nn.Module`` taking images at *any* size (``N × 3 × H × W`` in [0, 1]) that resizes
        them to :attr:`input_size` (bilinear, antialiased), normalises them if the recipe does, and
        returns the network's raw output: what :func:`salbook.evaluate`, the redundancy analysis
        and the cost functions can all be given. The network is its ``net`` sub-module."""
        return _ZooNet(self.model, self.input_size, self.normalize).eval()

    def predict_maps(self, images: torch.Tensor | Sequence[torch.Tensor]) -> list[np.ndarray]:
        """Maps for ``images`` (``3 × H × W`` in [0, 1], any sizes), each at its image's size."""
        imgs = list(images)
        batch = torch.stack([self.preprocess(im) for im in imgs])
        out = self.logits(batch)
        return [self.finish(o, im.shape[-2:]) for o, im in zip(out, imgs)]


class _ZooNet(nn.Module):
    """Resize (and normalise) a batch to the network's input size, then run the network."""

    def __init__(self, net: nn.Module, input_size: tuple[int, int], normalize: bool) -> None:
        super().__init__()
        self.net = net
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.normalize = bool(normalize)

    def train(self, mode: bool = True) -> "_ZooNet":
        """Always eval: a trained model's wrapper never switches batch norm to batch statistics
        (``salbook.evaluate`` restores the mode it found, which for a fresh module would be train)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        from .data.transforms import normalize_image

        if tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False,
                              antialias=bool(x.shape[-2] > self.input_size[0] or x.shape[-1] > self.input_size[1]))
            x = x.clamp(0.0, 1.0)
        return self.net(normalize_image(x) if self.normalize else x)


def _postprocess_of(entry: ZooEntry) -> Callable[[torch.Tensor], torch.Tensor] | None:
    from .evaluation import POSTPROCESSORS

    if entry.postprocess in POSTPROCESSORS:
        return POSTPROCESSORS[entry.postprocess]
    return _resolve(entry.postprocess)


def data_of(cfg: Any) -> Any:
    """The config's SplitSpec (a pruning config keeps it in its ``base``)."""
    data = getattr(cfg, "data", None)
    if data is None and getattr(cfg, "base", None) is not None:
        return data_of(cfg.base)
    return data


def _input_size(cfg: Any) -> tuple[int, int]:
    size = tuple(getattr(data_of(cfg), "input_size", None) or (192, 256))
    return int(size[0]), int(size[1])


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _loaded(entry: ZooEntry, model: nn.Module, cfg: Any, source: str, seed: int) -> LoadedModel:
    return LoadedModel(entry=entry, model=model.eval(), config=cfg, input_size=_input_size(cfg),
                       normalize=bool(getattr(data_of(cfg), "normalize", False)), postprocess=_postprocess_of(entry),
                       source=source, seed=seed)


def loaded_untrained(name: str, profile: str = "book", input_size: Sequence[int] | None = None,
                     root: str | Path | None = None) -> LoadedModel:
    """``name`` as :func:`load` would give it for ``profile`` but with **untrained** weights (same
    architecture, input size, pre- and post-processing): for timing before the model is trained.
    ``input_size`` (H, W) overrides the recipe's."""
    entry = get(name)
    try:
        cfg, seed = config_for(name, profile, root)
    except ModelNotTrained:
        cfg, seed = _resolve(entry.default_config, entry.recipe)(), 0
    loaded = _loaded(entry, build_untrained(name, cfg), cfg, "untrained", seed)
    if input_size is not None:
        loaded.input_size = (int(input_size[0]), int(input_size[1]))
    return loaded


def load(name: str, profile: str = "book", device: str | torch.device = "cpu",
         root: str | Path | None = None) -> LoadedModel:
    """Load the trained ``name`` from the model cache, as its chapter trained it in ``profile``.

    Raises :class:`KeyError` for an unknown name and :class:`ModelNotTrained` (whose message names
    the ``salbook run`` command) when the chapter has not run or its model is not cached.
    """
    from .utils import resolve_device

    entry = get(name)
    cfg, seed = config_for(name, profile, root)
    train = getattr(entry.module(), entry.train_fn)
    try:
        with _load_only():
            result = train(cfg, seed=seed, device=resolve_device(device), log=None)
    except _NotCached:
        raise ModelNotTrained(f"{name}: the trained model is not in the cache (not trained in the {profile!r} "
                              f"profile yet, or trained under other code, or removed); train it with "
                              f"`{entry.command(profile)}`") from None
    model = result.model.eval()
    if entry.finalize:
        model = _resolve(entry.finalize)(model, torch.zeros(1, 3, *_input_size(cfg), device=_device_of(model)))
    return _loaded(entry, model, cfg, str(result.checkpoint_path), seed)


def load_weights(name: str, path: str | Path, profile: str = "book", device: str | torch.device = "cpu",
                 root: str | Path | None = None) -> LoadedModel:
    """``name``'s architecture with the weights in ``path``: a ``final.pt`` of the model cache
    (a dict with ``"model"``) or a plain state dict. The config comes from the chapter's record
    in ``profile`` when there is one, else from the recipe's default."""
    from .utils import resolve_device

    entry = get(name)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--weights {path}: no such file")
    try:
        cfg, seed = config_for(name, profile, root)
    except ModelNotTrained:
        cfg, seed = _resolve(entry.default_config, entry.recipe)(), 0
    model = build_untrained(name, cfg)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - say which file and why
        raise ValueError(f"--weights {path}: not a PyTorch checkpoint ({type(err).__name__}: {err})") from None
    if isinstance(blob, Mapping) and blob.get("architecture") is not None:
        raise ValueError(f"--weights {path}: holds a model with a changed architecture (pruned); "
                         "load it with its chapter's recipe")
    state = blob["model"] if isinstance(blob, Mapping) and "model" in blob else blob
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"--weights {path} does not fit {name}'s architecture: {err}") from None
    return _loaded(entry, model.to(resolve_device(device)), cfg, str(path), seed)


def is_trained(name: str, profile: str = "book", root: str | Path | None = None) -> bool:
    """Whether ``name`` loads from the cache in ``profile`` (without loading the weights twice)."""
    try:
        load(name, profile, "cpu", root)
        return True
    except (ModelNotTrained, ModuleNotFoundError, AttributeError):
        return False


def headline_scores(name: str, profile: str = "book", root: str | Path | None = None) -> dict[str, float]:
    """The chapter's recorded test scores of ``name`` (``{metric: value}``; empty without a record)."""
    entry = get(name)
    rec = chapter_record(entry.chapter, profile, root) or {}
    metrics = rec.get("metrics", {})
    out = {}
    for m in entry.headline:
        item = metrics.get(entry.record_prefix + m)
        if item is not None:
            out[m] = math.nan if item.get("value") is None else float(item["value"])
    return out


def models_table(profile: str = "book", root: str | Path | None = None, cost_size: Sequence[int] | None = (192, 256),
                 check_cache: bool = True) -> "pandas.DataFrame":  # noqa: F821
    """One row per zoo model: name, task, whether it is trained (cached) in ``profile``, its
    chapter's headline test scores, parameters and MACs at ``cost_size`` (H, W; ``None``: skip),
    and the command that trains it."""
    import pandas as pd

    from .cost import count_params, flops

    rows = []
    for name, entry in ENTRIES.items():
        row: dict[str, Any] = {"model": name, "task": entry.task, "title": entry.title}
        status = "trained"
        model = None
        try:
            loaded = load(name, profile, "cpu", root) if check_cache else None
            model = loaded.model if loaded else None
        except ModelNotTrained:
            status = "not trained"
        except (ModuleNotFoundError, AttributeError):
            status = "recipe missing"
        row["status"] = status
        row.update(headline_scores(name, profile, root))
        if model is not None:
            row["params"] = count_params(model)
            if cost_size is not None:
                try:
                    row["GMACs"] = flops(model, tuple(cost_size)).gmacs
                except Exception:  # noqa: BLE001 - fixed-size models (Pan) at their own size
                    row["GMACs"] = flops(model, loaded.input_size).gmacs
        row["trained by"] = entry.command(profile)
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# maps for your own images (`salbook predict`)

#: Output formats of :func:`predict_files`: the map scaled to 0-255 (PNG, grey), the density
#: (``.npy``, float32, non-negative, sums to 1; a SOD model's map is its mask probability instead),
#: or the map coloured and blended over the image (PNG).
FORMATS = ("png", "npy", "overlay")
_SUFFIX = {"png": ".png", "npy": ".npy", "overlay": "_overlay.png"}


@dataclass
class PredictReport:
    """What :func:`predict_files` did: ``written`` output paths and ``failed`` ``(input, reason)``."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return len(self.written) / self.seconds if self.seconds > 0 else math.nan


def list_inputs(inputs: Sequence[str | Path], out_dir: str | Path, fmt: str = "png") -> list[tuple[Path, Path]]:
    """``(image, output)`` pairs for files and folders (a folder: its image files, recursively,
    sorted; the output keeps the path below the folder). Paths only: no image is read here.

    Raises :class:`FileNotFoundError` for a missing input and :class:`ValueError` when two inputs
    would write the same output or nothing is found.
    """
    from .data.real import IMAGE_EXTS

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    pairs: list[tuple[Path, Path]] = []
    seen: dict[Path, Path] = {}
    for item in inputs:
        src = Path(item)
        if src.is_dir():
            found = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
            rels = [(p, p.relative_to(src)) for p in found]
        elif src.is_file():
            rels = [(src, Path(src.name))]
        else:
            raise FileNotFoundError(f"no such image or folder: {src}")
        for path, rel in rels:
            target = out_dir / rel.parent / (rel.stem + _SUFFIX[fmt])
            if target in seen:
                raise ValueError(f"{path} and {seen[target]} would both write {target}; predict them into separate "
                                 "--out folders")
            seen[target] = path
            pairs.append((path, target))
    if not pairs:
        raise ValueError(f"no images found in {', '.join(map(str, inputs))} (extensions: {', '.join(IMAGE_EXTS)})")
    return pairs


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as a ``3 × H × W`` float tensor in [0, 1] (grey-scale replicated, alpha dropped);
    :class:`salbook.data.real.ImageReadError` names the file when it cannot be decoded."""
    from .data.real import _read_pil

    arr = _read_pil(Path(path), "RGB")
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)


def _to_uint8(m: np.ndarray) -> np.ndarray:
    lo, hi = float(m.min()), float(m.max())
    scaled = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    return np.round(scaled * 255.0).astype(np.uint8)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place: a reader (or a
    killed run) sees the old file or the whole new one, never part of it. No ``fsync`` (thousands
    of maps; a power cut may lose the last few, it cannot leave one half-written under its name)."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_map(saliency: np.ndarray, image: torch.Tensor | None, path: str | Path, fmt: str, task: Task = "fixation",
              alpha: float = 0.55) -> Path:
    """Write one ``H × W`` map atomically in ``fmt`` (see :data:`FORMATS`); ``image`` (3 × H × W in
    [0, 1]) is needed for ``overlay``."""
    import io

    from PIL import Image

    path = Path(path)
    buf = io.BytesIO()
    if fmt == "npy":
        m = np.clip(saliency.astype(np.float32), 0, None)
        if task == "fixation":
            total = float(m.sum())
            m = m / total if total > 0 else np.full_like(m, 1.0 / m.size)
        np.save(buf, m.astype(np.float32))
    elif fmt == "png":
        Image.fromarray(_to_uint8(saliency), mode="L").save(buf, format="PNG", compress_level=1)
    elif fmt == "overlay":
        from .plots import overlay

        if image is None:
            raise ValueError("format 'overlay' needs the image")
        blend = np.round(overlay(image, saliency, alpha=alpha) * 255.0).astype(np.uint8)
        Image.fromarray(blend, mode="RGB").save(buf, format="PNG", compress_level=1)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    _atomic_write(path, buf.getvalue())
    return path


def predict_files(
    loaded: LoadedModel,
    pairs: Sequence[tuple[Path, Path]],
    fmt: str = "png",
    batch: int = 8,
    progress: bool = True,
    workers: int = 2,
) -> PredictReport:
    """Write the map of every ``(image, output)`` pair (see :func:`list_inputs`), streaming.

    Images are decoded ``workers`` at a time a little ahead of the network (at most ``2 × batch``
    in memory), run through the network ``batch`` at a time, and each map is post-processed,
    resized to its image's own size and written atomically by a background writer. An image that
    cannot be read is skipped and reported in ``failed``; nothing is half-written.
    """
    import time
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from .data.real import ImageReadError
    from .utils import progress_enabled

    if int(batch) < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    report = PredictReport()
    start = time.perf_counter()
    bar = tqdm(total=len(pairs), desc=f"predict {loaded.entry.name}", unit="img",
               disable=not (progress and progress_enabled()))

    def decode(src: Path) -> tuple[torch.Tensor, torch.Tensor]:
        image = read_image(src)
        return image, loaded.preprocess(image)

    def finish_and_write(logits: torch.Tensor, image: torch.Tensor, target: Path) -> Path:
        return write_map(loaded.finish(logits, image.shape[-2:]), image, target, fmt, loaded.entry.task)

    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as readers, \
            ThreadPoolExecutor(max_workers=max(1, int(workers))) as writer:
        pending_reads: deque = deque()
        pending_writes: deque = deque()
        it = iter(pairs)

        def fill() -> None:
            while len(pending_reads) < 2 * int(batch):
                try:
                    src, target = next(it)
                except StopIteration:
                    return
                pending_reads.append((src, target, readers.submit(decode, src)))

        def drain_writes(limit: int) -> None:
            while len(pending_writes) > limit:
                src, fut = pending_writes.popleft()
                try:
                    report.written.append(fut.result())
                except Exception as err:  # noqa: BLE001 - report the file, keep going
                    report.failed.append((src, f"could not write its map: {type(err).__name__}: {err}"))
                bar.update(1)

        fill()
        while pending_reads:
            items = []
            while pending_reads and len(items) < int(batch):
                src, target, fut = pending_reads.popleft()
                try:
                    image, x = fut.result()
                    items.append((src, target, image, x))
                except ImageReadError as err:
                    report.failed.append((src, str(err)))
                    bar.update(1)
                fill()
            if not items:
                continue
            out = loaded.logits(torch.stack([x for *_, x in items]))
            for (src, target, image, _), logits in zip(items, out):
                pending_writes.append((src, writer.submit(finish_and_write, logits, image, target)))
            drain_writes(2 * int(batch))
        drain_writes(0)
    bar.close()
    report.seconds = time.perf_counter() - start
    return report
