"""HRNetV2 backbone (timm) and HRNetV2Head: shapes, strides, head contract, weights, size."""

import os
import re
import subprocess
import sys

import pytest
import timm
import torch
import torch.nn.functional as F
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling import build_backbone, build_model, build_sem_seg_head
from safetensors.torch import save_file

from contextrast.config import get_contextrast_cfg
from contextrast.modeling.backbone.hrnet import HRNetBackbone  # noqa: F401  (registration)
from contextrast.modeling.heads.hrnet_head import HRNetV2Head, concat_branches

BRANCHES = ["branch1", "branch2", "branch3", "branch4"]
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def hrnet_cfg(name="hrnet_w18_small", head="HRNetV2Head", num_classes=5):
    cfg = get_contextrast_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_hrnet_backbone"
    cfg.MODEL.HRNET.NAME = name
    cfg.MODEL.SEM_SEG_HEAD.NAME = head
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = BRANCHES
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_classes
    cfg.MODEL.SEM_SEG_HEAD.NORM = "BN"
    cfg.MODEL.SEM_SEG_HEAD.LOSS_TYPE = "cross_entropy"
    return cfg


def num_params(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


@pytest.fixture(scope="module")
def small_backbone():
    torch.manual_seed(43)
    return build_backbone(hrnet_cfg())


def test_backbone_output_shape_and_features(small_backbone):
    shapes = small_backbone.output_shape()
    assert list(shapes) == BRANCHES
    # hrnet_w18_small: width 16, doubled per branch.
    assert [s.channels for s in shapes.values()] == [16, 32, 64, 128]
    assert [s.stride for s in shapes.values()] == [4, 8, 16, 32]
    assert small_backbone.size_divisibility == 32

    small_backbone.eval()
    with torch.no_grad():
        features = small_backbone(torch.randn(2, 3, 96, 160))
    assert list(features) == BRANCHES
    for name, shape in shapes.items():
        assert features[name].shape == (2, shape.channels, 96 // shape.stride, 160 // shape.stride)


def test_backbone_rejects_sizes_not_divisible_by_32(small_backbone):
    with pytest.raises(ValueError, match="multiples of 32"):
        small_backbone(torch.randn(1, 3, 100, 96))


def test_backbone_out_features_subset():
    cfg = hrnet_cfg()
    cfg.MODEL.HRNET.OUT_FEATURES = ["branch1", "branch3"]
    backbone = build_backbone(cfg).eval()
    assert list(backbone.output_shape()) == ["branch1", "branch3"]
    with torch.no_grad():
        assert list(backbone(torch.randn(1, 3, 64, 64))) == ["branch1", "branch3"]
    cfg.MODEL.HRNET.OUT_FEATURES = ["res5"]
    with pytest.raises(ValueError):
        build_backbone(cfg)


@pytest.mark.parametrize(
    "norm,cls", [("SyncBN", torch.nn.SyncBatchNorm), ("FrozenBN", FrozenBatchNorm2d)]
)
def test_backbone_norm(norm, cls):
    cfg = hrnet_cfg()
    cfg.MODEL.HRNET.NORM = norm
    backbone = build_backbone(cfg)
    norms = [m for m in backbone.modules() if isinstance(m, (torch.nn.BatchNorm2d, cls))]
    assert norms and all(isinstance(m, cls) for m in norms)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_backbone_loads_local_timm_checkpoint(tmp_path, suffix):
    # A full timm classification model stands in for the ImageNet checkpoint: same key layout,
    # including the classification head that the backbone must drop.
    torch.manual_seed(0)
    classifier = timm.create_model("hrnet_w18_small", pretrained=False)
    state_dict = classifier.state_dict()
    assert any(k.startswith("incre_modules.") for k in state_dict)
    path = str(tmp_path / f"hrnet_w18_small{suffix}")
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state_dict.items()}, path)
    else:
        torch.save({"state_dict": state_dict}, path)

    cfg = hrnet_cfg()
    cfg.MODEL.HRNET.PRETRAINED = path
    loaded = build_backbone(cfg).body.state_dict()
    assert loaded.keys() <= state_dict.keys()
    for key, value in loaded.items():
        assert torch.equal(value, state_dict[key]), key


def test_backbone_rejects_checkpoint_of_another_width(tmp_path):
    path = str(tmp_path / "hrnet_w18_small.pth")
    torch.save(timm.create_model("hrnet_w18_small", pretrained=False).state_dict(), path)
    cfg = hrnet_cfg(name="hrnet_w18_small_v2")
    cfg.MODEL.HRNET.PRETRAINED = path
    with pytest.raises(RuntimeError):
        build_backbone(cfg)
    cfg.MODEL.HRNET.PRETRAINED = str(tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError):
        build_backbone(cfg)


def test_concat_branches():
    branches = [torch.randn(2, c, 32 // s, 48 // s) for c, s in [(3, 1), (4, 2), (5, 4)]]
    out = concat_branches(branches)
    assert out.shape == (2, 12, 32, 48)
    assert torch.equal(out[:, :3], branches[0])
    # A constant branch stays constant under bilinear upsampling.
    branches[2] = torch.full((2, 5, 8, 12), 7.0)
    assert torch.allclose(concat_branches(branches)[:, 7:], torch.tensor(7.0))


def test_head_contract(small_backbone):
    torch.manual_seed(43)
    cfg = hrnet_cfg()
    head = build_sem_seg_head(cfg, small_backbone.output_shape())
    assert isinstance(head, HRNetV2Head) and head.common_stride == 4
    images = torch.randn(2, 3, 64, 96)
    targets = torch.randint(0, 5, (2, 64, 96))
    targets[:, :10] = 255

    small_backbone.train()
    head.train()
    outputs = head.layers(small_backbone(images))
    assert list(outputs) == ["sem_seg", "fused"]
    assert outputs["sem_seg"].shape == (2, 5, 16, 24)
    losses = head.losses(outputs, targets)
    assert list(losses) == ["loss_sem_seg"]
    # Mean cross-entropy over the labelled pixels only, at the label resolution.
    logits = F.interpolate(outputs["sem_seg"], size=(64, 96), mode="bilinear")
    valid = targets != 255
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], targets[valid])
    assert torch.allclose(losses["loss_sem_seg"], expected)

    small_backbone.zero_grad()
    none, losses = head(small_backbone(images), targets)
    assert none is None and list(losses) == ["loss_sem_seg"]
    loss = losses["loss_sem_seg"]
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    for module in (small_backbone.body.conv1, head.fuse, head.predictor):
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0

    small_backbone.eval()
    head.eval()
    with torch.no_grad():
        features = small_backbone(images)
        logits, losses = head(features)
        stride4 = head.layers(features)["sem_seg"]
    assert losses == {}
    assert logits.shape == (2, 5, 64, 96)
    # Inference output = the stride-4 logits upsampled by common_stride.
    expected = F.interpolate(stride4, scale_factor=4, mode="bilinear")
    assert torch.allclose(logits, expected)


@pytest.mark.parametrize("head_name", ["HRNetV2Head", "OCRHead"])
def test_heads_expose_the_features_a_projection_head_can_read(small_backbone, head_name):
    head = build_sem_seg_head(hrnet_cfg(head=head_name), small_backbone.output_shape())
    shapes = head.contrast_feature_shapes()
    assert list(shapes) == (["fused"] if head_name == "HRNetV2Head" else ["pixels", "context"])
    with torch.no_grad():
        outputs = head.layers(small_backbone(torch.randn(1, 3, 64, 96)))
    for name, shape in shapes.items():
        assert outputs[name].shape == (1, shape.channels, 64 // shape.stride, 96 // shape.stride)


def test_hrnetv2_w48_parameter_count():
    # HRNetV2-W48 with 19 classes: 65.86M parameters (paper, Cityscapes).
    cfg = hrnet_cfg(name="hrnet_w48", num_classes=19)
    backbone = build_backbone(cfg)
    head = build_sem_seg_head(cfg, backbone.output_shape())
    assert [s.channels for s in backbone.output_shape().values()] == [48, 96, 192, 384]
    assert num_params(backbone, head) == pytest.approx(65.86e6, rel=0.01)


def test_analyze_model_counts_only_inference_parameters():
    config = os.path.join(REPO, "configs", "cityscapes", "hrnet_w48_contextrast.yaml")
    opts = ["MODEL.HRNET.NAME", "hrnet_w18_small", "MODEL.HRNET.NORM", "BN"]
    command = [sys.executable, os.path.join(REPO, "tools", "analyze_model.py")]
    command += ["--config-file", config, "--height", "64", "--width", "96"] + opts
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    total = re.search(r"total \(inference\)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out)
    assert total, out
    params, gflops, unused = (float(v) for v in total.groups())

    cfg = get_contextrast_cfg()
    cfg.merge_from_file(config)
    cfg.merge_from_list(opts + ["MODEL.DEVICE", "cpu"])
    model = build_model(cfg)
    inference = sum(
        p.numel() for n, p in model.named_parameters() if not n.startswith("contrast_heads.")
    )
    assert unused > 0  # the projection heads exist in the model but do not run at inference
    assert params == pytest.approx(inference / 1e6, abs=1e-3)
    assert params + unused == pytest.approx(num_params(model) / 1e6, abs=2e-3)
    assert gflops > 0
