"""The heads' pixel loss (``build_sem_seg_loss``): MODEL.SEM_SEG_HEAD.LOSS_TYPE and LOSS_TOP_K."""

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_sem_seg_head
from detectron2.projects.deeplab.loss import DeepLabCE

from contextrast.config import get_contextrast_cfg
from contextrast.modeling.heads import SemSegCrossEntropy, build_sem_seg_loss

BRANCHES = {
    "branch1": ShapeSpec(channels=8, stride=4),
    "branch2": ShapeSpec(channels=16, stride=8),
}
RES = {"res2": ShapeSpec(channels=8, stride=4), "res5": ShapeSpec(channels=16, stride=32)}
# head name -> (IN_FEATURES, backbone shapes, extra KEY VALUE overrides)
HEADS = {
    "ASPPHead": (["res5"], RES, {}),
    "HRNetV2Head": (list(BRANCHES), BRANCHES, {}),
    "OCRHead": (list(BRANCHES), BRANCHES, {"OCR_MID_CHANNELS": 8, "OCR_KEY_CHANNELS": 4}),
    "SplitDeepLabV3PlusHead": (["res2", "res5"], RES, {"COMMON_STRIDE": 4, "CONVS_DIM": 8}),
}


def test_default_top_k_is_deeplabs():
    cfg = get_contextrast_cfg()
    assert cfg.MODEL.SEM_SEG_HEAD.LOSS_TOP_K == 0.2  # DeepLabCE's value in detectron2's heads
    assert build_sem_seg_loss("hard_pixel_mining", 255).top_k_percent_pixels == 0.2


def test_loss_types():
    assert isinstance(build_sem_seg_loss("cross_entropy", 255, 0.5), SemSegCrossEntropy)
    loss = build_sem_seg_loss("hard_pixel_mining", 7, 0.5)
    assert isinstance(loss, DeepLabCE)
    assert loss.top_k_percent_pixels == 0.5 and loss.ignore_label == 7


def test_top_k_averages_the_hardest_pixels():
    logits = torch.randn(1, 3, 4, 5)
    targets = torch.randint(0, 3, (1, 4, 5))
    per_pixel = torch.nn.functional.cross_entropy(logits, targets, reduction="none").flatten()
    expected = per_pixel.topk(10).values.mean()  # half of the 20 pixels
    loss = build_sem_seg_loss("hard_pixel_mining", 255, 0.5)(logits, targets)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("top_k", [0.0, -0.1, 1.5])
def test_top_k_outside_the_unit_interval_is_rejected(top_k):
    with pytest.raises(ValueError, match="LOSS_TOP_K"):
        build_sem_seg_loss("hard_pixel_mining", 255, top_k)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_every_head_reads_the_key(name):
    in_features, shapes, extra = HEADS[name]
    cfg = get_contextrast_cfg()
    head_cfg = cfg.MODEL.SEM_SEG_HEAD
    head_cfg.NAME = name
    head_cfg.IN_FEATURES = in_features
    head_cfg.NUM_CLASSES = 3
    head_cfg.NORM = "BN"
    head_cfg.ASPP_CHANNELS = 8
    head_cfg.LOSS_TYPE = "hard_pixel_mining"
    head_cfg.LOSS_TOP_K = 0.35
    for key, value in extra.items():
        head_cfg[key] = value
    head = build_sem_seg_head(cfg, shapes)
    assert isinstance(head.loss, DeepLabCE) and head.loss.top_k_percent_pixels == 0.35
