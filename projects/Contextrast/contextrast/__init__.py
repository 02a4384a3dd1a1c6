"""Contextrast: contextual contrastive learning for semantic segmentation (CVPR 2024)."""
