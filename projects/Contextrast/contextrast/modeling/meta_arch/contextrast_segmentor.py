"""ContextrastSegmentor: a semantic segmentor trained with CCL + BANE, a baseline at inference."""

from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import (
    META_ARCH_REGISTRY,
    Backbone,
    build_backbone,
    build_sem_seg_head,
)
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import ImageList
from detectron2.utils.events import get_event_storage
from torch import Tensor

from ..contrast import ContextrastCriterion, build_contrast_heads

__all__ = ["ContextrastSegmentor"]


@META_ARCH_REGISTRY.register()
class ContextrastSegmentor(nn.Module):
    """Backbone -> semantic-segmentation head, plus the training-only Contextrast parts.

    Training adds, under the ``contrast_heads.`` prefix, one projection head per layer of
    ``MODEL.CONTEXTRAST.IN_FEATURES`` and the stateless :class:`ContextrastCriterion`. In eval mode
    the forward pass is exactly detectron2's ``SemanticSegmentor`` path and never calls them, and
    :meth:`forward_logits` is the tensor-in / tensor-out export entry point.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        sem_seg_head: nn.Module,
        pixel_mean,
        pixel_std,
        contrast_heads: Optional[nn.ModuleDict] = None,
        criterion: Optional[ContextrastCriterion] = None,
        log_period: int = 20,
    ):
        """
        Args:
            backbone: detectron2 backbone.
            sem_seg_head: head with ``layers()`` / ``losses()`` (see docs/architecture.md).
            pixel_mean, pixel_std: per-channel normalisation of the 0-255 input.
            contrast_heads: training-only projection heads keyed by feature name, or None for
                the baseline.
            criterion: the contrastive criterion (required with ``contrast_heads``).
            log_period: iterations between two writes of the contrastive statistics to the
                event storage (``SOLVER.LOG_PERIOD``, the writers' period); they are read back
                from the device only then.
        """
        super().__init__()
        if (contrast_heads is None) != (criterion is None):
            raise ValueError("contrast_heads and criterion must be given together")
        self.backbone = backbone
        self.sem_seg_head = sem_seg_head
        self.contrast_heads = contrast_heads
        self.criterion = criterion
        self.log_period = log_period
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        # Pad to the coarsest feature stride so every feature map is exactly input / stride.
        strides = [s.stride for s in backbone.output_shape().values()]
        self.size_divisibility = max([backbone.size_divisibility] + strides)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        kwargs = {
            "backbone": backbone,
            "sem_seg_head": build_sem_seg_head(cfg, shapes),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "log_period": cfg.SOLVER.LOG_PERIOD,
        }
        if cfg.MODEL.CONTEXTRAST.ENABLED:
            missing = [f for f in cfg.MODEL.CONTEXTRAST.IN_FEATURES if f not in shapes]
            if missing:
                raise ValueError(
                    f"MODEL.CONTEXTRAST.IN_FEATURES = {list(cfg.MODEL.CONTEXTRAST.IN_FEATURES)}: "
                    f"{missing} not produced by backbone {cfg.MODEL.BACKBONE.NAME} "
                    f"(it produces {sorted(shapes)})"
                )
            strides = [shapes[f].stride for f in cfg.MODEL.CONTEXTRAST.IN_FEATURES]
            if strides != sorted(strides):
                # The last entry is taken as the deepest layer I whose anchors are mixed in.
                raise ValueError(
                    f"MODEL.CONTEXTRAST.IN_FEATURES = {list(cfg.MODEL.CONTEXTRAST.IN_FEATURES)}: "
                    f"strides {strides} must not decrease (shallowest layer first, deepest last)"
                )
            kwargs["criterion"] = ContextrastCriterion(cfg)
            kwargs["contrast_heads"] = build_contrast_heads(cfg, shapes)
        return kwargs

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def _normalize(self, images: Tensor) -> Tensor:
        return (images - self.pixel_mean) / self.pixel_std

    def forward(self, batched_inputs: List[Dict]):
        """
        Args:
            batched_inputs: detectron2 records with "image" (C, H, W) and, in training,
                "sem_seg" (H, W) long labels; optional "height"/"width" of the output.

        Returns:
            In training, a dict of losses: ``loss_sem_seg`` (+ head extras) and, with
            Contextrast, ``loss_contrast``. At inference, one ``{"sem_seg": (K, H, W) logits}``
            per image, resized to its "height"/"width".
        """
        images = [self._normalize(x["image"].to(self.device)) for x in batched_inputs]
        images = ImageList.from_tensors(images, self.size_divisibility)
        features = self.backbone(images.tensor)
        outputs = self.sem_seg_head.layers(features)

        if not self.training:
            logits = self._upsample(outputs["sem_seg"], images.tensor.shape[-2:])
            results = []
            for logit, x, size in zip(logits, batched_inputs, images.image_sizes):
                h, w = x.get("height", size[0]), x.get("width", size[1])
                results.append({"sem_seg": sem_seg_postprocess(logit, size, h, w)})
            return results

        if "sem_seg" not in batched_inputs[0]:
            raise ValueError("training inputs need a 'sem_seg' label map")
        targets = [x["sem_seg"].to(self.device) for x in batched_inputs]
        targets = ImageList.from_tensors(
            targets, self.size_divisibility, self.sem_seg_head.ignore_value
        ).tensor
        losses = self.sem_seg_head.losses(outputs, targets)
        if self.criterion is not None:
            losses.update(self._contrastive_losses(features, outputs["sem_seg"], targets))
        return losses

    def _contrastive_losses(self, features, logits: Tensor, targets: Tensor) -> Dict[str, Tensor]:
        """Training only: projection heads -> CCL + BANE loss; logs statistics periodically."""
        embeddings = {name: head(features[name]) for name, head in self.contrast_heads.items()}
        storage = get_event_storage()
        losses, stats = self.criterion(embeddings, logits, targets, iteration=storage.iter)
        if storage.iter % self.log_period == 0:
            names = list(stats)
            values = torch.stack([stats[k] for k in names]).tolist()  # one device read
            storage.put_scalars(**dict(zip(names, values)), smoothing_hint=False)
        return losses

    @staticmethod
    def _upsample(logits: Tensor, size) -> Tensor:
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def forward_logits(self, images: Tensor) -> Tensor:
        """Export entry point: the inference network only.

        Args:
            images: (B, 3, H, W) float, 0-255, channels in ``INPUT.FORMAT`` order. Sizes that are
                not multiples of :attr:`size_divisibility` are zero-padded after normalisation
                (as in :meth:`forward`) and cropped back.

        Returns:
            (B, K, H, W) float logits.
        """
        h, w = images.shape[-2:]
        d = self.size_divisibility
        x = self._normalize(images)
        pad_h, pad_w = (d - h % d) % d, (d - w % d) % d
        x = F.pad(x, (0, pad_w, 0, pad_h))
        logits = self.sem_seg_head.layers(self.backbone(x))["sem_seg"]
        return self._upsample(logits, x.shape[-2:])[..., :h, :w]
