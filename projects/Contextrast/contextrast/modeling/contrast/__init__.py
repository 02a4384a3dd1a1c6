"""Training-only parts of Contextrast: projection heads, CCL anchors, BANE and the loss."""

from .balance import ContrastGradientGate, scale_gradient
from .bane import BaneSelection, error_maps, select_boundary_negatives
from .criterion import ContextrastCriterion
from .edt import squared_distance_to_other_label
from .projection import CONTRAST_HEADS_REGISTRY, ConvMLPProjectionHead, build_contrast_heads

__all__ = [k for k in globals().keys() if not k.startswith("_")]
