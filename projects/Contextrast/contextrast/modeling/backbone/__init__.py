"""Backbones (BACKBONE_REGISTRY)."""

from .hrnet import HRNetBackbone, build_hrnet_backbone

__all__ = ["HRNetBackbone", "build_hrnet_backbone"]
