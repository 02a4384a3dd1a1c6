"""Semantic-segmentation heads (SEM_SEG_HEADS_REGISTRY), all with the layers()/losses() split."""

from .aspp import ASPPHead
from .common import SemSegCrossEntropy, SplitSemSegHead, build_sem_seg_loss
from .hrnet_head import HRNetV2Head
from .ocr_head import OCRHead

__all__ = [
    "ASPPHead",
    "HRNetV2Head",
    "OCRHead",
    "SemSegCrossEntropy",
    "SplitSemSegHead",
    "build_sem_seg_loss",
]
