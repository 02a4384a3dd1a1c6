"""ContextrastSegmentor: a semantic segmentor trained with CCL + BANE, a baseline at inference."""

from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
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

from ...config_checks import FEATURE_SOURCES, check_contextrast_values
from ..contrast import ContextrastCriterion, ContrastGradientGate, build_contrast_heads

__all__ = ["ContextrastSegmentor", "FEATURE_SOURCES"]


def _stage_order(backbone: Backbone) -> List[str]:
    """The backbone's output features, shallowest stage first.

    ``output_shape()`` lists them in the order of ``OUT_FEATURES`` as written in the config, and
    strides cannot order them either (a dilated ResNet's res3..res5 all have stride 8); the
    backbone built its stages shallowest first, and detectron2's ResNet and the timm backbones
    record each stage's stride in that order (``_out_feature_strides``).
    """
    outputs = list(backbone.output_shape())
    built = [f for f in getattr(backbone, "_out_feature_strides", {}) if f in outputs]
    return built if sorted(built) == sorted(outputs) else outputs


def _check_contrast_features(names, shapes: Dict[str, ShapeSpec], order, producer: str) -> None:
    """``MODEL.CONTEXTRAST.IN_FEATURES`` must name features of ``shapes``, listed in ``order``
    (shallowest first): the last entry is the deepest layer I whose anchors are mixed into the
    others."""
    names = list(names)
    missing = [f for f in names if f not in shapes]
    if missing:
        raise ValueError(
            f"MODEL.CONTEXTRAST.IN_FEATURES = {names}: {missing} not produced by {producer} "
            f"(it produces {list(shapes)})"
        )
    depth = [order.index(f) for f in names]
    if depth != sorted(depth):
        raise ValueError(
            f"MODEL.CONTEXTRAST.IN_FEATURES = {names}: list them shallowest first, deepest last, "
            f"in the order {producer} computes them: {[f for f in order if f in names]}"
        )


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
        feature_source: str = "backbone",
        gradient_gate: Optional[ContrastGradientGate] = None,
        log_period: int = 20,
        channels_last: bool = False,
    ):
        """
        Args:
            backbone: detectron2 backbone.
            sem_seg_head: head with ``layers()`` / ``losses()`` (see docs/architecture.md).
            pixel_mean, pixel_std: per-channel normalisation of the 0-255 input.
            contrast_heads: training-only projection heads keyed by feature name, or None for
                the baseline.
            criterion: the contrastive criterion (required with ``contrast_heads``).
            feature_source: where the projection heads read: "backbone" (its outputs) or "head"
                (intermediate outputs of ``sem_seg_head.layers``).
            gradient_gate: shapes the gradient the projection heads send into the features
                they read (None: untouched, the paper).
            log_period: iterations between two writes of the contrastive statistics to the
                event storage (``SOLVER.LOG_PERIOD``, the writers' period); they are read back
                from the device only then.
            channels_last: keep weights and activations in channels-last memory format
                (``MODEL.CHANNELS_LAST``).
        """
        super().__init__()
        if (contrast_heads is None) != (criterion is None):
            raise ValueError("contrast_heads and criterion must be given together")
        self.backbone = backbone
        self.sem_seg_head = sem_seg_head
        check_contextrast_values({"FEATURE_SOURCE": feature_source})
        self.contrast_heads = contrast_heads
        self.criterion = criterion
        self.feature_source = feature_source
        self.gradient_gate = gradient_gate
        self.log_period = log_period
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        # Pad to the coarsest feature stride so every feature map is exactly input / stride.
        strides = [s.stride for s in backbone.output_shape().values()]
        self.size_divisibility = max([backbone.size_divisibility] + strides)
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        sem_seg_head = build_sem_seg_head(cfg, shapes)
        kwargs = {
            "backbone": backbone,
            "sem_seg_head": sem_seg_head,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "log_period": cfg.SOLVER.LOG_PERIOD,
            "channels_last": cfg.MODEL.CHANNELS_LAST,
        }
        c = cfg.MODEL.CONTEXTRAST
        if c.ENABLED:
            source = c.FEATURE_SOURCE
            if source == "head":
                # A head's features deepen in the order it computes (and lists) them.
                shapes = sem_seg_head.contrast_feature_shapes()
                order, producer = list(shapes), f"head {cfg.MODEL.SEM_SEG_HEAD.NAME}"
            else:
                order, producer = _stage_order(backbone), f"backbone {cfg.MODEL.BACKBONE.NAME}"
            _check_contrast_features(c.IN_FEATURES, shapes, order, producer)
            kwargs["feature_source"] = source
            kwargs["criterion"] = ContextrastCriterion(cfg)
            kwargs["contrast_heads"] = build_contrast_heads(cfg, shapes)
            gate = ContrastGradientGate(cfg)
            kwargs["gradient_gate"] = None if gate.is_identity else gate
        return kwargs

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def _layout(self, images: Tensor) -> Tensor:
        """The network's memory format (a copy only in channels-last mode)."""
        return (
            images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
        )

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
        features = self.backbone(self._layout(images.tensor))
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
            source = outputs if self.feature_source == "head" else features
            losses.update(self._contrastive_losses(source, outputs["sem_seg"], targets))
        return losses

    def _contrastive_losses(self, features, logits: Tensor, targets: Tensor) -> Dict[str, Tensor]:
        """Training only: projection heads -> CCL + BANE loss; logs statistics periodically.

        Args:
            features: name -> (B, C, H, W), the backbone's or the head's outputs
                (``feature_source``).
        """
        storage = get_event_storage()
        gate = self.gradient_gate
        embeddings = {
            name: head(features[name] if gate is None else gate(name, features[name], storage.iter))
            for name, head in self.contrast_heads.items()
        }
        losses, stats = self.criterion(embeddings, logits, targets, iteration=storage.iter)
        if storage.iter % self.log_period == 0:
            if gate is not None:  # the cap's scales of the previous step's backward pass
                stats.update(gate.stats(list(self.contrast_heads)))
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
        x = self._layout(F.pad(x, (0, pad_w, 0, pad_h)))
        logits = self.sem_seg_head.layers(self.backbone(x))["sem_seg"]
        return self._upsample(logits, x.shape[-2:])[..., :h, :w]
