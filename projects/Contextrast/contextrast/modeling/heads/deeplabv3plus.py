"""DeepLabV3+ head (:paper:`DeepLabV3+`): detectron2's ``DeepLabV3PlusHead`` with the
layers()/losses() split and a crop-size-independent ASPP."""

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from detectron2.projects.deeplab import DeepLabV3PlusHead

from .common import SplitSemSegHead, build_sem_seg_loss

__all__ = ["SplitDeepLabV3PlusHead"]


@SEM_SEG_HEADS_REGISTRY.register()
class SplitDeepLabV3PlusHead(SplitSemSegHead, DeepLabV3PlusHead):
    """ASPP on the coarsest feature, then a decoder that fuses projected low-level features.

    The layers are detectron2's ``DeepLabV3PlusHead`` (``MODEL.SEM_SEG_HEAD.IN_FEATURES``, e.g.
    ``["res2", "res5"]``: the last one feeds the ASPP, the others are projected to
    ``PROJECT_CHANNELS`` and fused at ``CONVS_DIM`` channels; logits at ``COMMON_STRIDE``). Two
    differences: the ASPP image-pooling branch pools globally (detectron2 sizes it from
    ``INPUT.CROP.SIZE``, which ties the network to the training crop and breaks other test sizes
    and ONNX export), and the head exposes :meth:`layers` / :meth:`losses` with the project's
    loss, which returns 0 rather than NaN for a batch without labelled pixels.
    """

    @configurable
    def __init__(self, input_shape, *, loss_top_k: float = 0.2, **kwargs):
        """Arguments of detectron2's ``DeepLabV3PlusHead`` (``num_classes`` is required), and
        ``loss_top_k``: fraction of the pixels ``hard_pixel_mining`` averages (detectron2's head
        fixes it at 0.2)."""
        if kwargs.get("num_classes") is None:
            raise ValueError("SplitDeepLabV3PlusHead needs MODEL.SEM_SEG_HEAD.NUM_CLASSES")
        super().__init__(input_shape, **kwargs)
        self.loss = build_sem_seg_loss(self.loss_type, self.ignore_value, loss_top_k)
        # Intermediate features a projection head can read (MODEL.CONTEXTRAST.FEATURE_SOURCE
        # "head"), in computation order: the ASPP output, then the fused decoder feature.
        # detectron2 gives the ASPP decoder_channels[-1] channels, the fused features [0].
        channels = kwargs["decoder_channels"]
        aspp_in, low_in = self.in_features[-1], self.in_features[0]
        self._feature_shapes = {
            "aspp": ShapeSpec(channels=channels[-1], stride=input_shape[aspp_in].stride),
            "decoder": ShapeSpec(channels=channels[0], stride=input_shape[low_in].stride),
        }

    @classmethod
    def from_config(cls, cfg, input_shape):
        kwargs = DeepLabV3PlusHead.from_config(cfg, input_shape)
        kwargs["train_size"] = None  # global image pooling
        kwargs["loss_top_k"] = cfg.MODEL.SEM_SEG_HEAD.LOSS_TOP_K
        missing = [f for f in cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES if f not in input_shape]
        if missing:
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.IN_FEATURES = {list(cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES)}: "
                f"{missing} not produced by the backbone (it produces {sorted(input_shape)})"
            )
        return kwargs

    def layers(self, features):
        """
        Args:
            features: backbone outputs, including every ``IN_FEATURES`` entry.

        Returns:
            ``"sem_seg"``: (B, K, H/s, W/s) logits, ``s`` = ``COMMON_STRIDE``; ``"aspp"``: the
            ASPP output, (B, ASPP_CHANNELS, H/s', W/s') at the stride s' of the last
            ``IN_FEATURES`` entry; ``"decoder"``: the fused feature the classifier reads,
            (B, CONVS_DIM, H/s, W/s).
        """
        # detectron2's DeepLabV3PlusHead.layers, keeping the two intermediate features.
        outputs = {}
        y = None
        for f in self.in_features[::-1]:  # coarsest (ASPP) first, then the low-level features
            x = self.decoder[f]["project_conv"](features[f])
            if self.decoder[f]["fuse_conv"] is None:
                y = outputs["aspp"] = x
            else:
                y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
                y = self.decoder[f]["fuse_conv"](torch.cat([x, y], dim=1))
        outputs["decoder"] = y
        outputs["sem_seg"] = self.predictor(y)
        return outputs

    def contrast_feature_shapes(self):
        return dict(self._feature_shapes)
