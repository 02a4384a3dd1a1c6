"""Every YAML in configs/ merges with the project's config (yacs rejects unknown keys)."""

import glob
import os

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from helpers import CONFIGS_DIR, ROOT, training_batch

from contextrast.config import get_contextrast_cfg, load_config

CONFIGS = sorted(glob.glob(os.path.join(CONFIGS_DIR, "**", "*.yaml"), recursive=True))


def test_configs_exist():
    assert any(p.endswith(os.path.join("demo", "contextrast.yaml")) for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_merges(path):
    cfg = get_contextrast_cfg()
    cfg.merge_from_file(path)
    if not os.path.basename(path).startswith("Base-"):
        assert cfg.MODEL.META_ARCHITECTURE == "ContextrastSegmentor"
    if os.path.basename(path).endswith("baseline.yaml"):
        assert not cfg.MODEL.CONTEXTRAST.ENABLED
    c = cfg.MODEL.CONTEXTRAST
    assert len(c.LAYER_WEIGHTS) == len(c.IN_FEATURES)


# Every CamVid lite0 Contextrast config (the default's head placement and the `_paper` backbone
# placement, the study recipes): the model builds with the heads the config names.
HEAD_PLACEMENT_CONFIGS = [
    p
    for p in CONFIGS
    if os.path.basename(p).startswith(("lite0_deeplabv3plus_contextrast", "lite0_long_head"))
]


@pytest.mark.parametrize("path", HEAD_PLACEMENT_CONFIGS, ids=os.path.basename)
def test_lite0_contextrast_configs_build_their_model(path):
    cfg = load_config(path, ["MODEL.DEVICE", "cpu"])
    model = build_model(cfg)
    c = cfg.MODEL.CONTEXTRAST
    assert list(model.contrast_heads) == list(c.IN_FEATURES)
    shapes = (
        model.sem_seg_head.contrast_feature_shapes()
        if c.FEATURE_SOURCE == "head"
        else model.backbone.output_shape()
    )
    for name, head in model.contrast_heads.items():
        assert head.proj[0].in_channels == shapes[name].channels
    # One training step's losses: the heads read features of the channels they were built for.
    batch = training_batch(num_classes=cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES)
    with EventStorage(0):
        losses = model.train()(batch)
    assert torch.isfinite(losses["loss_contrast"]) and losses["loss_contrast"] > 0


def test_the_lite0_default_reads_the_head_and_the_paper_variant_the_backbone():
    names = {os.path.basename(p): p for p in HEAD_PLACEMENT_CONFIGS if "camvid" in p}
    default = load_config(
        names["lite0_deeplabv3plus_contextrast.yaml"], freeze=False
    ).MODEL.CONTEXTRAST
    paper = load_config(
        names["lite0_deeplabv3plus_contextrast_paper.yaml"], freeze=False
    ).MODEL.CONTEXTRAST
    assert default.FEATURE_SOURCE == "head" and list(default.IN_FEATURES) == ["aspp", "decoder"]
    assert paper.FEATURE_SOURCE == "backbone"
    assert list(paper.IN_FEATURES) == ["res2", "res3", "res4", "res5"]
