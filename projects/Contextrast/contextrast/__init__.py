"""Contextrast: contextual contrastive learning for semantic segmentation (CVPR 2024).

Importing the package registers its datasets, backbones, heads and meta-architecture with
detectron2, and detectron2's DeepLab project (``WarmupPolyLR``, dilated ResNet).
"""

import detectron2.projects.deeplab  # noqa: F401  (registers build_resnet_deeplab_backbone)

from . import data, modeling  # noqa: F401  (registration only)
from .config import add_contextrast_config
from .modeling import ContextrastSegmentor

__all__ = ["add_contextrast_config", "ContextrastSegmentor"]
