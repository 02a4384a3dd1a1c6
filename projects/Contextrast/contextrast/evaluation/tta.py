"""Multi-scale + flip test-time augmentation for semantic segmentation.

The paper's protocol on CamVid, ADE20K, PASCAL-Context and COCO-Stuff: the test image is resized
by 0.75, 1.0, ..., 2.0 and each version is also run horizontally flipped; the softmax
probabilities of the 12 passes are averaged at the original resolution.
"""

import logging
from typing import Dict, List, Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.data.transforms import ResizeShortestEdge
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

__all__ = ["SemSegTTA"]

logger = logging.getLogger(__name__)


class SemSegTTA(nn.Module):
    """Wraps a semantic segmentor; averages its softmax over resized and flipped inputs.

    Same call interface as the wrapped model at inference (detectron2's ``SemanticSegmentor``
    contract): a list of records with ``"image"`` (C, H, W) and optional ``"height"`` /
    ``"width"``, returning ``[{"sem_seg": (K, height, width)}]``, here class probabilities
    rather than logits (``SemSegEvaluator`` takes the argmax of either).

    The wrapped model only ever runs in eval mode, so its training-only parts (Contextrast's
    ``contrast_heads`` and criterion) are never called. The views of one image at one size (plain
    and flipped) go through the model as one batch; different sizes never share a batch, because
    zero padding would change border pixels and the ASPP image-pooling branch.
    """

    @configurable
    def __init__(
        self,
        model: nn.Module,
        *,
        scales: Sequence[float] = (),
        min_sizes: Sequence[int] = (),
        max_size: int = 4000,
        flip: bool = True,
    ):
        """
        Args:
            model: the segmentor (a ``DistributedDataParallel`` wrapper is removed); it must
                return ``{"sem_seg": (K, height, width)}`` logits per record in eval mode.
            scales: resize factors of the input image, e.g. (0.75, 1.0, ..., 2.0). Sizes are
                rounded to the nearest pixel.
            min_sizes: used when ``scales`` is empty: short-edge lengths, with the long edge capped
                at ``max_size`` (detectron2's ``TEST.AUG.MIN_SIZES`` / ``MAX_SIZE``).
            max_size: see ``min_sizes``.
            flip: also run every size horizontally flipped.
        """
        super().__init__()
        if isinstance(model, DistributedDataParallel):
            model = model.module
        if not scales and not min_sizes:
            raise ValueError("SemSegTTA: give resize factors (scales) or short-edge min_sizes")
        if any(s <= 0 for s in scales) or any(m <= 0 for m in min_sizes):
            raise ValueError(f"SemSegTTA: sizes must be positive, got {scales or min_sizes}")
        self.model = model
        self.scales = tuple(float(s) for s in scales)
        self.min_sizes = tuple(int(m) for m in min_sizes)
        self.max_size = int(max_size)
        self.flip = bool(flip)
        self.train(model.training)  # a new module defaults to training mode; follow the model

    @classmethod
    def from_config(cls, cfg, model: nn.Module):
        aug = cfg.TEST.AUG
        scales = tuple(aug.SCALES)
        if scales:
            logger.info("Test-time augmentation: scales %s, flip=%s", scales, aug.FLIP)
        else:
            logger.info(
                "Test-time augmentation: short edges %s (long edge <= %d), flip=%s",
                tuple(aug.MIN_SIZES),
                aug.MAX_SIZE,
                aug.FLIP,
            )
        return {
            "model": model,
            "scales": scales,
            "min_sizes": () if scales else tuple(aug.MIN_SIZES),
            "max_size": aug.MAX_SIZE,
            "flip": aug.FLIP,
        }

    @property
    def num_views(self) -> int:
        """Forward passes per image."""
        return len(self.scales or self.min_sizes) * (2 if self.flip else 1)

    def target_sizes(self, height: int, width: int) -> List[Tuple[int, int]]:
        """The ``(h, w)`` each augmented version of a ``height x width`` input is resized to."""
        if self.scales:
            # Round half up, as mmsegmentation's rescale does.
            return [
                (max(1, int(height * s + 0.5)), max(1, int(width * s + 0.5))) for s in self.scales
            ]
        return [
            ResizeShortestEdge.get_output_shape(height, width, m, self.max_size)
            for m in self.min_sizes
        ]

    def forward(self, batched_inputs: List[Dict]) -> List[Dict[str, Tensor]]:
        """
        Args:
            batched_inputs: records with ``"image"``: (C, H, W) tensor (uint8 or float, 0-255)
                and optional ``"height"`` / ``"width"`` (output size, default H / W).

        Returns:
            One ``{"sem_seg": (K, height, width) float probabilities}`` per record: the mean of
            the softmax over all sizes and flips.
        """
        if self.training:
            raise RuntimeError("SemSegTTA is inference-only: call .eval() first")
        return [{"sem_seg": self._probabilities(x)} for x in batched_inputs]

    def _probabilities(self, record: Dict) -> Tensor:
        image = record["image"].to(self.model.device)
        height, width = image.shape[-2:]
        out_size = {"height": record.get("height", height), "width": record.get("width", width)}
        total = None
        for size in self.target_sizes(height, width):
            if size == (height, width):
                resized = image  # exactly the plain model's input
            else:
                # Bilinear without anti-aliasing, like cv2.INTER_LINEAR in mmsegmentation's TTA.
                resized = F.interpolate(
                    image[None].float(), size=size, mode="bilinear", align_corners=False
                )[0]
            views = [resized, resized.flip(-1)] if self.flip else [resized]
            outputs = self.model([{"image": v, **out_size} for v in views])
            for i, output in enumerate(outputs):
                probs = output["sem_seg"].softmax(dim=0)
                if i == 1:
                    probs = probs.flip(-1)  # back to the original orientation
                total = probs if total is None else total.add_(probs)
        return total / self.num_views
