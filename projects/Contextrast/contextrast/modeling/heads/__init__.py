"""Semantic-segmentation heads (SEM_SEG_HEADS_REGISTRY), all with the layers()/losses() split."""

from .aspp import ASPPHead
from .common import SemSegCrossEntropy, SplitSemSegHead, build_sem_seg_loss
from .deeplabv3plus import SplitDeepLabV3PlusHead
from .hrnet_head import HRNetV2Head
from .ocr_head import OCRHead

__all__ = [
    "ASPPHead",
    "HRNetV2Head",
    "OCRHead",
    "SemSegCrossEntropy",
    "SplitDeepLabV3PlusHead",
    "SplitSemSegHead",
    "build_sem_seg_loss",
]
