"""HRNetV2 segmentation head: concatenate the upsampled resolution branches, then classify.

:paper: Wang et al., "Deep High-Resolution Representation Learning for Visual Recognition", TPAMI
2020 (HRNetV2-W48: 48 + 96 + 192 + 384 = 720 concatenated channels, 65.86M parameters with 19
classes).
"""

from typing import Dict, List

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from torch import nn

from .common import SplitSemSegHead, build_sem_seg_loss

__all__ = ["HRNetV2Head", "concat_branches"]


def concat_branches(branches: List[torch.Tensor]) -> torch.Tensor:
    """Upsample every branch to the first one's resolution and concatenate them (HRNetV2).

    Args:
        branches: ``[(B, C_1, H, W), (B, C_2, H_2, W_2), ...]``, highest resolution first.

    Returns:
        Tensor: ``(B, sum_i C_i, H, W)``.
    """
    size = branches[0].shape[-2:]
    upsampled = [branches[0]] + [
        F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in branches[1:]
    ]
    return torch.cat(upsampled, dim=1)


@SEM_SEG_HEADS_REGISTRY.register()
class HRNetV2Head(SplitSemSegHead):
    """HRNetV2 head: branches 2..4 upsampled to branch 1, concatenated, 1x1 conv-BN-ReLU at the
    concatenated width, 1x1 classifier. Output stride 4 (``common_stride``)."""

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        num_classes: int,
        ignore_value: int = 255,
        loss_weight: float = 1.0,
        loss_type: str = "cross_entropy",
        loss_top_k: float = 0.2,
        norm: str = "BN",
    ):
        """
        Args:
            input_shape: shapes of the input features (the HRNet branches), highest resolution
                first; all of them are used.
            num_classes: number of classes K.
            ignore_value: label ignored by the loss.
            loss_weight: weight of ``loss_sem_seg``.
            loss_type: ``"cross_entropy"`` (paper) or ``"hard_pixel_mining"``.
            loss_top_k: fraction of the pixels ``hard_pixel_mining`` averages.
            norm: normalisation after the 1x1 fuse conv (``"BN"``, ``"SyncBN"``, ...; see
                :func:`detectron2.layers.get_norm`).
        """
        super().__init__()
        shapes = sorted(input_shape.items(), key=lambda item: item[1].stride)
        self.in_features = [name for name, _ in shapes]
        self.common_stride = shapes[0][1].stride
        self.ignore_value = ignore_value
        self.loss_weight = loss_weight
        self.loss = build_sem_seg_loss(loss_type, ignore_value, loss_top_k)
        channels = sum(shape.channels for _, shape in shapes)  # 720 for W48

        # No bias before the norm layer: the norm's shift makes it redundant.
        self.fuse = Conv2d(
            channels,
            channels,
            kernel_size=1,
            bias=not norm,
            norm=get_norm(norm, channels),
            activation=F.relu,
        )
        weight_init.c2_msra_fill(self.fuse)
        self.predictor = Conv2d(channels, num_classes, kernel_size=1)
        nn.init.normal_(self.predictor.weight, 0, 0.001)
        nn.init.constant_(self.predictor.bias, 0)
        self._fused_shape = ShapeSpec(channels=channels, stride=self.common_stride)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        in_features = cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in in_features},
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "loss_weight": cfg.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT,
            "loss_type": cfg.MODEL.SEM_SEG_HEAD.LOSS_TYPE,
            "loss_top_k": cfg.MODEL.SEM_SEG_HEAD.LOSS_TOP_K,
            "norm": cfg.MODEL.SEM_SEG_HEAD.NORM,
        }

    def layers(self, features: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """
        Args:
            features: ``{name: (B, C_i, H / s_i, W / s_i)}`` containing ``self.in_features``.

        Returns:
            dict: ``"sem_seg"``: (B, K, H / 4, W / 4) logits; ``"fused"``: the (B, C, H / 4,
            W / 4) feature the classifier reads (C = the branches' channels summed).
        """
        fused = self.fuse(concat_branches([features[name] for name in self.in_features]))
        return {"sem_seg": self.predictor(fused), "fused": fused}

    def contrast_feature_shapes(self) -> Dict[str, ShapeSpec]:
        return {"fused": self._fused_shape}
