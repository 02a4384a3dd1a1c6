"""Backbones (BACKBONE_REGISTRY)."""

from .efficientnet_lite import EfficientNetLiteBackbone, build_efficientnet_lite_backbone
from .hrnet import HRNetBackbone, build_hrnet_backbone

__all__ = [
    "EfficientNetLiteBackbone",
    "HRNetBackbone",
    "build_efficientnet_lite_backbone",
    "build_hrnet_backbone",
]
