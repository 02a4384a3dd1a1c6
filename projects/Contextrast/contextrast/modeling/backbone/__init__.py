"""Backbones (BACKBONE_REGISTRY)."""
