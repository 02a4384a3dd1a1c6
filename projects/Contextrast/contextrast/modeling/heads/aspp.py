"""ASPPHead: the DeepLabV3 head (:paper:`DeepLabV3`) with the layers()/losses() split."""

from typing import Dict

import torch.nn as nn
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ASPP, Conv2d, ShapeSpec
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from torch import Tensor

from .common import SplitSemSegHead, build_sem_seg_loss

__all__ = ["ASPPHead"]


@SEM_SEG_HEADS_REGISTRY.register()
class ASPPHead(SplitSemSegHead):
    """DeepLabV3 head: ASPP on one backbone feature, then a 1x1 classifier.

    Unlike detectron2's ``DeepLabV3Head``, the image-pooling branch always pools globally, so the
    network does not depend on the training crop size and exports at any resolution; and the
    head exposes :meth:`layers` (logits) separately from :meth:`losses`, as Contextrast needs the
    training logits for BANE.
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        in_feature: str,
        num_classes: int,
        aspp_channels: int,
        aspp_dilations,
        aspp_dropout: float,
        norm: str,
        ignore_value: int = 255,
        loss_weight: float = 1.0,
        loss_type: str = "cross_entropy",
        loss_top_k: float = 0.2,
    ):
        """
        Args:
            input_shape: backbone output shapes.
            in_feature: backbone feature the ASPP reads (e.g. "res5").
            num_classes: K.
            aspp_channels: channels of every ASPP branch and of the projection.
            aspp_dilations: three dilation rates.
            aspp_dropout: dropout after the ASPP projection.
            norm: detectron2 norm name.
            ignore_value: label ignored by the loss.
            loss_weight: weight of ``loss_sem_seg``.
            loss_type: ``cross_entropy`` or ``hard_pixel_mining``.
            loss_top_k: fraction of the pixels ``hard_pixel_mining`` averages.
        """
        super().__init__()
        self.in_feature = in_feature
        self.common_stride = input_shape[in_feature].stride
        self.ignore_value = ignore_value
        self.loss_weight = loss_weight
        self.aspp = ASPP(
            input_shape[in_feature].channels,
            aspp_channels,
            aspp_dilations,
            norm=norm,
            activation=F.relu,
            pool_kernel_size=None,
            dropout=aspp_dropout,
        )
        self._aspp_shape = ShapeSpec(channels=aspp_channels, stride=self.common_stride)
        self.predictor = Conv2d(aspp_channels, num_classes, kernel_size=1)
        nn.init.normal_(self.predictor.weight, 0, 0.001)
        nn.init.constant_(self.predictor.bias, 0)
        self.loss = build_sem_seg_loss(loss_type, ignore_value, loss_top_k)

    @classmethod
    def from_config(cls, cfg, input_shape):
        head = cfg.MODEL.SEM_SEG_HEAD
        if len(head.IN_FEATURES) != 1:
            raise ValueError(
                f"MODEL.SEM_SEG_HEAD.IN_FEATURES = {head.IN_FEATURES}: ASPPHead reads one feature"
            )
        return {
            "input_shape": input_shape,
            "in_feature": head.IN_FEATURES[0],
            "num_classes": head.NUM_CLASSES,
            "aspp_channels": head.ASPP_CHANNELS,
            "aspp_dilations": head.ASPP_DILATIONS,
            "aspp_dropout": head.ASPP_DROPOUT,
            "norm": head.NORM,
            "ignore_value": head.IGNORE_VALUE,
            "loss_weight": head.LOSS_WEIGHT,
            "loss_type": head.LOSS_TYPE,
            "loss_top_k": head.LOSS_TOP_K,
        }

    def layers(self, features: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """
        Args:
            features: backbone outputs; ``features[in_feature]`` is (B, C, H/s, W/s).

        Returns:
            ``"sem_seg"``: (B, K, H/s, W/s) logits; ``"aspp"``: (B, ASPP_CHANNELS, H/s, W/s),
            the feature the classifier reads.
        """
        aspp = self.aspp(features[self.in_feature])
        return {"sem_seg": self.predictor(aspp), "aspp": aspp}

    def contrast_feature_shapes(self) -> Dict[str, ShapeSpec]:
        return {"aspp": self._aspp_shape}
