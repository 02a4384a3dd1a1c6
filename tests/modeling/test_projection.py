"""Projection heads (training only): unit-norm embeddings at the feature resolution, one head
per MODEL.CONTEXTRAST.IN_FEATURES entry from the registry, and config checks."""

import pytest
import torch
from detectron2.layers import ShapeSpec
from helpers import demo_cfg

from contextrast.modeling.contrast import (
    CONTRAST_HEADS_REGISTRY,
    ConvMLPProjectionHead,
    build_contrast_heads,
)


@pytest.mark.parametrize("size", [(5, 7), (1, 3)])
def test_embeddings_are_unit_norm_at_the_feature_resolution(size):
    torch.manual_seed(0)
    head = ConvMLPProjectionHead(6, proj_dim=4).train()
    out = head(torch.randn(3, 6, *size))
    assert out.shape == (3, 4, *size)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3, *size))


def test_gradients_reach_every_layer():
    head = ConvMLPProjectionHead(6, proj_dim=4).train()
    x = torch.randn(2, 6, 3, 3, requires_grad=True)
    (head(x) * torch.randn(2, 4, 3, 3)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in head.named_parameters():
        assert p.grad is not None, name


def test_non_positive_dimension_is_rejected():
    with pytest.raises(ValueError, match="MODEL.CONTEXTRAST.PROJ_DIM"):
        ConvMLPProjectionHead(6, proj_dim=0)


def test_build_contrast_heads_one_per_layer():
    cfg = demo_cfg("MODEL.CONTEXTRAST.PROJ_DIM", "8")
    shapes = {
        f: ShapeSpec(channels=4 * (i + 1), stride=4 * 2**i)
        for i, f in enumerate(cfg.MODEL.CONTEXTRAST.IN_FEATURES)
    }
    heads = build_contrast_heads(cfg, shapes)
    assert list(heads) == list(cfg.MODEL.CONTEXTRAST.IN_FEATURES)
    for name, head in heads.items():
        assert isinstance(head, CONTRAST_HEADS_REGISTRY.get(cfg.MODEL.CONTEXTRAST.PROJ_HEAD_NAME))
        out = head.eval()(torch.randn(1, shapes[name].channels, 2, 3))
        assert out.shape == (1, 8, 2, 3)
