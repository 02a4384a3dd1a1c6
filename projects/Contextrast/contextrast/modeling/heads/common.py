"""What every semantic-segmentation head of the project shares: the pixel loss and the
detectron2 head contract built on a ``layers()`` / ``losses()`` split (Contextrast needs the
logits of a training step before the losses are taken)."""

from typing import Dict

import torch.nn as nn
import torch.nn.functional as F
from detectron2.projects.deeplab.loss import DeepLabCE
from torch import Tensor

__all__ = ["SemSegCrossEntropy", "SplitSemSegHead", "build_sem_seg_loss"]


class SemSegCrossEntropy(nn.Module):
    """Cross-entropy averaged over labelled pixels; a graph-connected 0 when there are none.

    ``nn.CrossEntropyLoss(reduction="mean")`` divides by the number of labelled pixels and returns
    NaN for a batch whose pixels are all ignored; dividing by ``max(count, 1)`` avoids that without
    reading the count back to the host.
    """

    def __init__(self, ignore_value: int):
        super().__init__()
        self.ignore_value = ignore_value

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        """
        Args:
            logits: (B, K, H, W) float.
            targets: (B, H, W) long, ``ignore_value`` = ignore.

        Returns:
            () float loss.
        """
        total = F.cross_entropy(logits, targets, ignore_index=self.ignore_value, reduction="sum")
        count = (targets != self.ignore_value).sum().clamp(min=1)
        return total / count


def build_sem_seg_loss(loss_type: str, ignore_value: int) -> nn.Module:
    """Pixel-wise loss of DeepLab's ``MODEL.SEM_SEG_HEAD.LOSS_TYPE``."""
    if loss_type == "cross_entropy":
        return SemSegCrossEntropy(ignore_value)
    if loss_type == "hard_pixel_mining":
        return DeepLabCE(ignore_label=ignore_value, top_k_percent_pixels=0.2)
    raise ValueError(
        f"MODEL.SEM_SEG_HEAD.LOSS_TYPE = {loss_type!r}: expected 'cross_entropy' or "
        "'hard_pixel_mining'"
    )


class SplitSemSegHead(nn.Module):
    """Base of heads that define ``layers(features)`` (a dict with the ``"sem_seg"`` logits at
    ``common_stride``) and ``losses(outputs, targets)``; provides detectron2's ``forward``."""

    common_stride: int

    def layers(self, features: Dict[str, Tensor]) -> Dict[str, Tensor]:
        raise NotImplementedError

    def losses(self, outputs: Dict[str, Tensor], targets: Tensor) -> Dict[str, Tensor]:
        raise NotImplementedError

    def forward(self, features: Dict[str, Tensor], targets: Tensor = None):
        """detectron2's head contract.

        Returns:
            In training ``(None, losses)``; at inference ``(logits, {})``, the ``(B, K, H, W)``
            logits upsampled by ``common_stride``.
        """
        outputs = self.layers(features)
        if self.training:
            return None, self.losses(outputs, targets)
        logits = F.interpolate(
            outputs["sem_seg"],
            scale_factor=self.common_stride,
            mode="bilinear",
            align_corners=False,
        )
        return logits, {}
