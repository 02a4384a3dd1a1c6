"""What every semantic-segmentation head of the project shares: the pixel loss and the
detectron2 head contract built on a ``layers()`` / ``losses()`` split (Contextrast needs the
logits of a training step before the losses are taken)."""

from typing import Dict

import torch.nn as nn
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.projects.deeplab.loss import DeepLabCE
from torch import Tensor

__all__ = ["SemSegCrossEntropy", "SplitSemSegHead", "build_sem_seg_loss", "upsampled_loss"]


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


def build_sem_seg_loss(loss_type: str, ignore_value: int, top_k: float = 0.2) -> nn.Module:
    """Pixel-wise loss of DeepLab's ``MODEL.SEM_SEG_HEAD.LOSS_TYPE``.

    Args:
        loss_type: ``"cross_entropy"`` or ``"hard_pixel_mining"`` (DeepLab's bootstrapped CE).
        ignore_value: label ignored by the loss.
        top_k: ``MODEL.SEM_SEG_HEAD.LOSS_TOP_K``, the fraction of the pixels (highest loss
            first) that ``hard_pixel_mining`` averages, in (0, 1]; unused by ``cross_entropy``.

    Returns:
        nn.Module: ``loss(logits (B, K, H, W), targets (B, H, W)) -> () float``.
    """
    if loss_type == "cross_entropy":
        return SemSegCrossEntropy(ignore_value)
    if loss_type == "hard_pixel_mining":
        if not 0.0 < top_k <= 1.0:
            # DeepLabCE would average an empty top-k selection into NaN.
            raise ValueError(f"MODEL.SEM_SEG_HEAD.LOSS_TOP_K = {top_k}: expected a value in (0, 1]")
        return DeepLabCE(ignore_label=ignore_value, top_k_percent_pixels=top_k)
    raise ValueError(
        f"MODEL.SEM_SEG_HEAD.LOSS_TYPE = {loss_type!r}: expected 'cross_entropy' or "
        "'hard_pixel_mining'"
    )


def upsampled_loss(loss: nn.Module, logits: Tensor, targets: Tensor) -> Tensor:
    """Apply a pixel-wise loss to logits upsampled (bilinear) to the label resolution.

    Args:
        loss: e.g. from :func:`build_sem_seg_loss` (``MODEL.SEM_SEG_HEAD.LOSS_TYPE``).
        logits: ``(B, K, h, w)`` at the head's output stride.
        targets: ``(B, H, W)`` int64 labels.

    Returns:
        Tensor: scalar loss.
    """
    logits = F.interpolate(logits, size=targets.shape[-2:], mode="bilinear", align_corners=False)
    return loss(logits, targets)


class SplitSemSegHead(nn.Module):
    """Base of heads that define ``layers(features)`` (a dict with the ``"sem_seg"`` logits at
    ``common_stride``) and, unless the default suits them, ``losses(outputs, targets)``;
    provides detectron2's ``forward``. The default loss needs ``self.loss`` (a pixel loss) and
    ``self.loss_weight``."""

    common_stride: int

    def layers(self, features: Dict[str, Tensor]) -> Dict[str, Tensor]:
        raise NotImplementedError

    def contrast_feature_shapes(self) -> Dict[str, ShapeSpec]:
        """Intermediate features of :meth:`layers` (keys of its output) that a projection head
        can read (``MODEL.CONTEXTRAST.FEATURE_SOURCE "head"``), in computation order; none by
        default."""
        return {}

    def losses(self, outputs: Dict[str, Tensor], targets: Tensor) -> Dict[str, Tensor]:
        """
        Args:
            outputs: :meth:`layers` outputs.
            targets: ``(B, H, W)`` int64 labels at the input resolution.

        Returns:
            ``{"loss_sem_seg": scalar}``, weighted by ``loss_weight``.
        """
        return {
            "loss_sem_seg": upsampled_loss(self.loss, outputs["sem_seg"], targets)
            * self.loss_weight
        }

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
