"""Contextrast: contextual contrastive learning for semantic segmentation (CVPR 2024).

Importing the package registers its datasets, backbones, heads and meta-architecture with
detectron2, and detectron2's DeepLab project (``WarmupPolyLR``, dilated ResNet).
"""

import warnings

# fvcore and detectron2 call torch.jit.script while they are imported, and torch deprecates it
# with a FutureWarning per call that no user can act on. Hidden here, for these imports only, so
# that every entry point is quiet by importing the package before anything that imports
# detectron2; the filters of the importing program are left as they were.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    import detectron2.projects.deeplab  # noqa: F401  (registers build_resnet_deeplab_backbone)

    from . import data, modeling  # noqa: F401  (registration only)
    from .config import add_contextrast_config
    from .modeling import ContextrastSegmentor

__all__ = ["add_contextrast_config", "ContextrastSegmentor"]
