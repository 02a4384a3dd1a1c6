"""Meta-architectures (META_ARCH_REGISTRY)."""

from .contextrast_segmentor import ContextrastSegmentor

__all__ = ["ContextrastSegmentor"]
