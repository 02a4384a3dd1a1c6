"""Models of the Contextrast project. Importing registers backbones, heads and meta-archs."""

from . import backbone, heads  # noqa: F401  (registration only)
from .contrast import ContextrastCriterion, build_contrast_heads
from .meta_arch import ContextrastSegmentor, dry_build_model

__all__ = [
    "ContextrastCriterion",
    "ContextrastSegmentor",
    "build_contrast_heads",
    "dry_build_model",
]
