"""OCRHead (OCRNet on HRNetV2): object regions, attention block, head contract, size."""

import pytest
import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone, build_sem_seg_head

from contextrast.config import get_contextrast_cfg
from contextrast.modeling.backbone.hrnet import HRNetBackbone  # noqa: F401  (registration)
from contextrast.modeling.heads.ocr_head import (
    ObjectContextBlock,
    OCRHead,
    object_region_representations,
)

SMALL_SHAPES = {
    "branch1": ShapeSpec(channels=8, stride=4),
    "branch2": ShapeSpec(channels=16, stride=8),
    "branch3": ShapeSpec(channels=32, stride=16),
    "branch4": ShapeSpec(channels=64, stride=32),
}


def ocr_cfg(name="hrnet_w18_small", num_classes=5):
    cfg = get_contextrast_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_hrnet_backbone"
    cfg.MODEL.HRNET.NAME = name
    cfg.MODEL.SEM_SEG_HEAD.NAME = "OCRHead"
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = list(SMALL_SHAPES)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_classes
    cfg.MODEL.SEM_SEG_HEAD.NORM = "BN"
    cfg.MODEL.SEM_SEG_HEAD.LOSS_TYPE = "cross_entropy"
    return cfg


def small_features(batch=2, height=64, width=96):
    return {
        name: torch.randn(batch, s.channels, height // s.stride, width // s.stride)
        for name, s in SMALL_SHAPES.items()
    }


def small_head(**kwargs):
    args = dict(num_classes=5, mid_channels=24, key_channels=12, norm="BN")
    args.update(kwargs)
    return OCRHead(SMALL_SHAPES, **args)


def test_object_region_representations():
    feats = torch.randn(2, 6, 4, 5)
    logits = torch.randn(2, 3, 4, 5)
    regions = object_region_representations(feats, logits)
    assert regions.shape == (2, 6, 3)
    weights = logits.flatten(2).softmax(dim=2)
    expected = torch.einsum("bcp,bkp->bck", feats.flatten(2), weights)
    assert torch.allclose(regions, expected, atol=1e-6)
    # A region peaked on one pixel picks that pixel's feature.
    peaked = torch.full((2, 3, 4, 5), -1e4)
    peaked[:, 1, 2, 3] = 1e4
    assert torch.allclose(object_region_representations(feats, peaked)[:, :, 1], feats[:, :, 2, 3])


def test_object_context_block_shapes_and_dependence():
    torch.manual_seed(43)
    block = ObjectContextBlock(16, 8, norm="BN", dropout=0.0).eval()
    feats = torch.randn(2, 16, 6, 7)
    regions = torch.randn(2, 16, 5)
    out = block(feats, regions)
    assert out.shape == (2, 16, 6, 7)
    # The output depends on the object regions (the attention path is used).
    assert not torch.allclose(out, block(feats, regions + torch.randn_like(regions)))


def test_ocr_head_from_config():
    cfg = ocr_cfg(num_classes=7)
    cfg.MODEL.SEM_SEG_HEAD.OCR_MID_CHANNELS = 24
    cfg.MODEL.SEM_SEG_HEAD.OCR_KEY_CHANNELS = 12
    cfg.MODEL.SEM_SEG_HEAD.OCR_AUX_LOSS_WEIGHT = 0.3
    head = build_sem_seg_head(cfg, SMALL_SHAPES)
    assert isinstance(head, OCRHead)
    assert head.in_features == list(SMALL_SHAPES) and head.common_stride == 4
    assert head.aux_loss_weight == 0.3
    assert head.pixel_conv.out_channels == 24 and head.object_context.key_channels == 12
    assert head.predictor.out_channels == 7 and head.aux_head[-1].out_channels == 7


def test_ocr_head_train_contract():
    torch.manual_seed(43)
    head = small_head().train()
    features = small_features()
    targets = torch.randint(0, 5, (2, 64, 96))
    targets[0, :, :20] = 255

    outputs = head.layers(features)
    assert set(outputs) == {"sem_seg", "aux", "pixels", "context"}
    assert outputs["sem_seg"].shape == outputs["aux"].shape == (2, 5, 16, 24)
    losses = head.losses(outputs, targets)
    assert set(losses) == {"loss_sem_seg", "loss_sem_seg_aux"}
    # Weights applied inside: the auxiliary loss is 0.4 x the cross-entropy of the soft regions.
    aux_logits = F.interpolate(outputs["aux"], size=(64, 96), mode="bilinear")
    aux_ce = F.cross_entropy(aux_logits, targets, ignore_index=255)
    assert torch.allclose(losses["loss_sem_seg_aux"], 0.4 * aux_ce)

    none, losses = head(features, targets)
    assert none is None
    total = sum(losses.values())
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    total.backward()
    for module in (
        head.aux_head[0],
        head.pixel_conv,
        head.object_context.query[0],
        head.object_context.key[0],
        head.object_context.value,
        head.predictor,
    ):
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0


def test_ocr_head_eval_contract():
    torch.manual_seed(43)
    head = small_head(dropout=0.5).eval()
    features = small_features()
    with torch.no_grad():
        logits, losses = head(features)
        again, _ = head(features)
        stride4 = head.layers(features)["sem_seg"]
    assert losses == {}
    assert logits.shape == (2, 5, 64, 96)
    assert torch.equal(logits, again)  # no dropout at inference
    assert torch.allclose(logits, F.interpolate(stride4, scale_factor=4, mode="bilinear"))


def test_ocr_on_small_hrnet():
    torch.manual_seed(43)
    cfg = ocr_cfg()
    backbone = build_backbone(cfg).train()
    head = build_sem_seg_head(cfg, backbone.output_shape()).train()
    _, losses = head(backbone(torch.randn(2, 3, 64, 64)), torch.randint(0, 5, (2, 64, 64)))
    sum(losses.values()).backward()
    assert backbone.body.conv1.weight.grad.abs().sum() > 0


def test_ocrnet_hrnetv2_w48_parameter_count():
    # OCRNet (HRNetV2-W48) with 19 classes: 70.37M parameters (OCR paper).
    cfg = ocr_cfg(name="hrnet_w48", num_classes=19)
    backbone = build_backbone(cfg)
    head = build_sem_seg_head(cfg, backbone.output_shape())
    num_params = sum(p.numel() for m in (backbone, head) for p in m.parameters())
    assert num_params == pytest.approx(70.37e6, rel=0.01)
