"""ASPPHead: shapes at odd sizes, the layers()/losses() split, the forward contract, and config
checks (tiny channels, mmsegmentation style)."""

import pytest
import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from helpers import demo_cfg

from contextrast.modeling.heads import ASPPHead

SHAPES = {"res5": ShapeSpec(channels=12, stride=16)}


def _head(**overrides):
    kwargs = dict(
        in_feature="res5",
        num_classes=5,
        aspp_channels=8,
        aspp_dilations=[1, 2, 3],
        aspp_dropout=0.0,
        norm="BN",
    )
    kwargs.update(overrides)
    torch.manual_seed(0)
    return ASPPHead(SHAPES, **kwargs)


@pytest.mark.parametrize("size", [(3, 5), (7, 4), (1, 1)])
def test_layers_keep_the_feature_resolution(size):
    head = _head().eval()
    logits = head.layers({"res5": torch.randn(2, 12, *size)})["sem_seg"]
    assert logits.shape == (2, 5, *size)


def test_global_pooling_does_not_depend_on_a_crop_size():
    """The image-pooling branch pools globally, so any input size works (export at any size)."""
    head = _head().eval()
    for size in [(2, 3), (9, 13)]:
        assert head.layers({"res5": torch.randn(1, 12, *size)})["sem_seg"].shape[-2:] == size


def test_forward_contract_training_and_inference():
    head = _head()
    features = {"res5": torch.randn(2, 12, 4, 6)}
    targets = torch.randint(0, 5, (2, 64, 96))
    targets[0, :8] = 255  # ignored pixels
    head.train()
    none, losses = head(features, targets)
    assert none is None and set(losses) == {"loss_sem_seg"}
    losses["loss_sem_seg"].backward()
    assert head.predictor.weight.grad is not None and head.predictor.weight.grad.abs().sum() > 0
    head.eval()
    logits, empty = head(features)
    assert empty == {} and logits.shape == (2, 5, 64, 96)  # upsampled by common_stride 16


def test_loss_is_cross_entropy_on_upsampled_logits_times_weight():
    head = _head(loss_weight=0.5).eval()
    features = {"res5": torch.randn(1, 12, 3, 5)}
    targets = torch.randint(0, 5, (1, 48, 80))
    outputs = head.layers(features)
    up = F.interpolate(outputs["sem_seg"], size=(48, 80), mode="bilinear", align_corners=False)
    expected = 0.5 * F.cross_entropy(up, targets, ignore_index=255)
    torch.testing.assert_close(head.losses(outputs, targets)["loss_sem_seg"], expected)


def test_from_config_reads_the_demo_head():
    cfg = demo_cfg()
    head = ASPPHead(cfg, {"res5": ShapeSpec(channels=256, stride=16)})
    assert head.in_feature == "res5" and head.common_stride == 16
    assert head.predictor.out_channels == cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    assert head.predictor.in_channels == cfg.MODEL.SEM_SEG_HEAD.ASPP_CHANNELS


def test_more_than_one_in_feature_is_rejected():
    cfg = demo_cfg("MODEL.SEM_SEG_HEAD.IN_FEATURES", "['res4', 'res5']")
    shapes = {"res4": ShapeSpec(channels=8, stride=16), "res5": ShapeSpec(channels=12, stride=16)}
    with pytest.raises(ValueError, match="ASPPHead reads one feature"):
        ASPPHead(cfg, shapes)


def test_unknown_loss_type_is_rejected():
    with pytest.raises(ValueError, match="LOSS_TYPE"):
        _head(loss_type="focal")
