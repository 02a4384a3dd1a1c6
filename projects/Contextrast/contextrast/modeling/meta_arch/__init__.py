"""Meta-architectures (META_ARCH_REGISTRY)."""

from .contextrast_segmentor import ContextrastSegmentor
from .dry_build import dry_build_model

__all__ = ["ContextrastSegmentor", "dry_build_model"]
