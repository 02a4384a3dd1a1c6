"""EfficientNet-Lite backbone and the DeepLabV3+ head built on it: shapes, norms, loading the
converted ImageNet checkpoint through MODEL.WEIGHTS, the head contract."""

import os
import subprocess
import sys

import pytest
import timm
import torch
from detectron2.modeling import build_backbone, build_model
from helpers import CONFIGS_DIR, FP32_RTOL, assert_close_to_reference, demo_cfg, tool
from timm.layers import BatchNormAct2d, FrozenBatchNormAct2d

from contextrast.checkpoint import ContextrastCheckpointer
from contextrast.modeling.backbone.efficientnet_lite_weights import (
    CLASSIFICATION_KEYS,
    convert_to_timm,
    load_package_state_dict,
    package_weights_path,
)
from contextrast.modeling.heads import SplitDeepLabV3PlusHead

CONFIG = os.path.join(CONFIGS_DIR, "camvid", "lite0_deeplabv3plus_contextrast.yaml")


def lite0_cfg(*opts):
    return demo_cfg("MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", *opts, config=CONFIG)


@pytest.fixture(scope="module")
def converted_checkpoint(tmp_path_factory):
    """tools/convert_pretrained.py run as a user would, on the pinned package."""
    path = tmp_path_factory.mktemp("pretrained") / "efficientnet_lite0.pth"
    cmd = [sys.executable, tool("tools", "convert_pretrained.py"), "--output", path]
    proc = subprocess.run(cmd, cwd=tool(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return str(path)


def test_backbone_features_strides_and_channels():
    backbone = build_backbone(lite0_cfg()).eval()
    shapes = backbone.output_shape()
    assert {k: (v.channels, v.stride) for k, v in shapes.items()} == {
        "res2": (24, 4), "res3": (40, 8), "res4": (112, 16), "res5": (320, 32),
    }  # fmt: skip
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 96, 128))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "res2": (2, 24, 24, 32), "res3": (2, 40, 12, 16), "res4": (2, 112, 6, 8),
        "res5": (2, 320, 3, 4),
    }  # fmt: skip
    sub = build_backbone(lite0_cfg("MODEL.EFFICIENTNET.OUT_FEATURES", "['res2', 'res5']"))
    assert sorted(sub.output_shape()) == ["res2", "res5"]


@pytest.mark.parametrize("norm, cls", [("FrozenBN", FrozenBatchNormAct2d), ("BN", BatchNormAct2d)])
def test_backbone_norm_keeps_the_fused_activation(norm, cls):
    backbone = build_backbone(lite0_cfg("MODEL.EFFICIENTNET.NORM", norm))
    norms = [m for m in backbone.modules() if "BatchNorm" in type(m).__name__]
    assert norms and all(type(m) is cls for m in norms)
    # The stem's BN carries the ReLU6 of the block; a plain FrozenBatchNorm2d would drop it.
    assert isinstance(backbone.body.bn1.act, torch.nn.ReLU6)
    trainable = [n for n, p in backbone.named_parameters() if p.requires_grad and "bn" in n]
    assert bool(trainable) == (norm == "BN")


def test_unknown_norm_is_rejected():
    with pytest.raises(ValueError, match="'GN'"):
        build_backbone(lite0_cfg("MODEL.EFFICIENTNET.NORM", "GN"))


def test_model_weights_loads_the_converted_backbone_and_reproduces_timm(converted_checkpoint):
    """MODEL.WEIGHTS = the converted checkpoint (strict loader): the backbone's features equal
    timm's feature model holding the package's tensors."""
    cfg = lite0_cfg("MODEL.WEIGHTS", converted_checkpoint)
    model = build_model(cfg)
    ContextrastCheckpointer(model, strict=cfg.MODEL.WEIGHTS_STRICT).load(cfg.MODEL.WEIGHTS)
    model.eval()

    timm_state = convert_to_timm(
        load_package_state_dict(package_weights_path()), cfg.MODEL.EFFICIENTNET.NAME
    )
    reference = timm.create_model(
        "efficientnet_lite0", pretrained=False, features_only=True, out_indices=(1, 2, 3, 4)
    )
    body = {k: v for k, v in timm_state.items() if not k.startswith(CLASSIFICATION_KEYS)}
    reference.load_state_dict(body)
    reference.eval()

    torch.manual_seed(0)
    x = torch.rand(2, 3, 128, 160) * 255
    with torch.no_grad():
        ours = model.backbone(model._normalize(x))
        theirs = reference((x - 127.0) / 128.0)
    for name, ref in zip(("res2", "res3", "res4", "res5"), theirs):
        assert_close_to_reference(ours[name], ref, rtol=FP32_RTOL, what=name)


def test_deeplabv3plus_head_contract():
    cfg = lite0_cfg()
    backbone = build_backbone(cfg)
    model = build_model(cfg)
    head = model.sem_seg_head
    assert isinstance(head, SplitDeepLabV3PlusHead) and head.common_stride == 4
    features = backbone(torch.randn(2, 3, 96, 128))
    out = head.layers(features)["sem_seg"]
    assert out.shape == (2, 11, 24, 32)  # stride 4
    targets = torch.randint(0, 11, (2, 96, 128))
    head.train()
    _, losses = head(features, targets)
    assert set(losses) == {"loss_sem_seg"} and torch.isfinite(losses["loss_sem_seg"])
    ignored = head.losses({"sem_seg": out}, torch.full_like(targets, 255))["loss_sem_seg"]
    assert ignored.item() == 0.0 and ignored.requires_grad  # no NaN on an all-ignore batch
    head.eval()
    with torch.no_grad():
        logits, extra = head(features)
    assert logits.shape == (2, 11, 96, 128) and extra == {}


def test_head_pools_globally_so_other_sizes_and_batch_one_work():
    """detectron2's DeepLabV3PlusHead sizes its ASPP pooling from INPUT.CROP.SIZE; this head
    must run at any test size."""
    model = build_model(lite0_cfg("INPUT.CROP.SIZE", "(64, 64)")).eval()
    with torch.no_grad():
        for h, w in ((64, 64), (360, 480), (100, 150)):
            assert model.forward_logits(torch.rand(1, 3, h, w) * 255).shape == (1, 11, h, w)


def test_head_rejects_features_the_backbone_lacks():
    with pytest.raises(ValueError, match="res1"):
        build_model(lite0_cfg("MODEL.SEM_SEG_HEAD.IN_FEATURES", "['res1', 'res5']"))
