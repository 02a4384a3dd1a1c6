"""HRNetV2 backbone (timm's HighResolutionNet) as a detectron2 :class:`Backbone`.

:paper: Wang et al., "Deep High-Resolution Representation Learning for Visual Recognition", TPAMI
2020. HRNetV2 keeps the four parallel resolution branches of the last stage as its representation;
the segmentation heads (``HRNetV2Head``, ``OCRHead``) concatenate them.

ImageNet initialisation. Nothing is downloaded here. ``MODEL.HRNET.PRETRAINED`` names a local timm
checkpoint of the same variant (``.safetensors``, ``.pth``, ``.pt`` or ``.bin``), e.g. the official
HRNet ImageNet weights as published by timm (``timm/hrnet_w48.ms_in1k`` on the Hugging Face hub)::

    huggingface-cli download timm/hrnet_w48.ms_in1k model.safetensors --local-dir pretrained/
    # or: python -c "import timm, torch; m = timm.create_model('hrnet_w48', pretrained=True);
    #                torch.save(m.state_dict(), 'pretrained/hrnet_w48.pth')"
    tools/train_net.py --config-file configs/cityscapes/hrnet_w48_contextrast.yaml \\
        MODEL.HRNET.PRETRAINED pretrained/model.safetensors

The classification-only layers of the checkpoint (``incre_modules``, ``downsamp_modules``,
``final_layer``, ``classifier``) are dropped; every backbone tensor must be present. A full model
checkpoint given by ``MODEL.WEIGHTS`` is loaded after the model is built and overrides this.
"""

import logging
import os
from typing import Dict, List

import timm
import torch
from detectron2.config import configurable
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from torch import nn

from .timm_features import TimmFeatureBackbone

__all__ = ["HRNetBackbone", "build_hrnet_backbone", "load_timm_hrnet_checkpoint"]

logger = logging.getLogger(__name__)

# Names of the last-stage resolution branches, highest resolution first.
BRANCH_NAMES = ("branch1", "branch2", "branch3", "branch4")
# Checkpoint prefixes of timm's ImageNet classification head, unused by HRNetV2.
_CLASSIFICATION_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")


def load_timm_hrnet_checkpoint(model: nn.Module, path: str) -> None:
    """Load a local timm HRNet ImageNet checkpoint into timm's feature model, in place.

    Args:
        model: timm ``HighResolutionNetFeatures`` built with ``feature_location=""``.
        path: ``.safetensors`` file or a ``torch.save``-d state dict (optionally nested under
            ``"state_dict"`` or ``"model"``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RuntimeError: a backbone tensor is missing from the checkpoint, or has another shape
            (typically a checkpoint of another HRNet width).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MODEL.HRNET.PRETRAINED: no such file: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file  # timm's own dependency

        state_dict = load_file(path, device="cpu")
    else:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        for wrapper in ("state_dict", "model"):
            if isinstance(state_dict.get(wrapper), dict):
                state_dict = state_dict[wrapper]
    state_dict = {
        k[len("module.") :] if k.startswith("module.") else k: v for k, v in state_dict.items()
    }
    kept = {k: v for k, v in state_dict.items() if not k.startswith(_CLASSIFICATION_PREFIXES)}
    # strict=True: a silently half-loaded backbone would only show up as a worse mIoU.
    model.load_state_dict(kept, strict=True)
    logger.info(
        "Loaded HRNet ImageNet weights from %s (%d tensors; %d classification-head ones dropped)",
        path,
        len(kept),
        len(state_dict) - len(kept),
    )


class HRNetBackbone(TimmFeatureBackbone):
    """HRNetV2: the four resolution branches of HRNet's last stage.

    Outputs ``"branch1"`` .. ``"branch4"`` with ``C, 2C, 4C, 8C`` channels at strides 4, 8, 16, 32,
    where ``C`` is the variant's width (48 for ``hrnet_w48``: 48/96/192/384 channels).

    timm's fuse layers upsample by fixed powers of two, so input sides must be multiples of 32
    (``size_divisibility``; detectron2's meta-architectures pad the batch accordingly).
    """

    family = "HRNet"

    @configurable
    def __init__(
        self,
        *,
        model_name: str,
        out_features: List[str],
        in_channels: int = 3,
        norm: str = "BN",
        pretrained: str = "",
    ):
        """
        Args:
            model_name: timm HRNet variant: ``hrnet_w18_small``, ``hrnet_w18_small_v2``,
                ``hrnet_w18``, ``hrnet_w30``, ``hrnet_w32``, ``hrnet_w40``, ``hrnet_w44``,
                ``hrnet_w48`` (paper), ``hrnet_w64``.
            out_features: subset of ``"branch1"`` .. ``"branch4"`` to return.
            in_channels: image channels.
            norm: ``"BN"``, ``"SyncBN"`` (multi-GPU training) or ``"FrozenBN"``.
            pretrained: local timm ImageNet checkpoint of ``model_name``; ``""`` = random init.
        """
        # feature_location="" returns the raw branches; timm's default ("incre") would pass
        # them through the ImageNet head's channel-increase blocks (128/256/512/1024 channels).
        body = timm.create_model(
            model_name,
            pretrained=False,
            features_only=True,
            feature_location="",
            out_indices=(1, 2, 3, 4),
            in_chans=in_channels,
        )
        # Before the norm conversion: the checkpoint holds trainable BatchNorm tensors.
        if pretrained:
            load_timm_hrnet_checkpoint(body, pretrained)
        else:
            logger.info("%s initialised at random (MODEL.HRNET.PRETRAINED is empty)", model_name)
        super().__init__(body, BRANCH_NAMES, out_features, norm)

    @staticmethod
    def freeze_batch_norm(body: nn.Module) -> nn.Module:
        # timm's HRNet has plain BatchNorm2d layers (activations are separate modules), so
        # detectron2's converter loses nothing and gives the FrozenBatchNorm2d of detectron2's
        # own backbones, whose state_dict loading accepts trainable-BN checkpoints.
        return FrozenBatchNorm2d.convert_frozen_batchnorm(body)

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        return {
            "model_name": cfg.MODEL.HRNET.NAME,
            "out_features": cfg.MODEL.HRNET.OUT_FEATURES,
            "in_channels": input_shape.channels,
            "norm": cfg.MODEL.HRNET.NORM,
            "pretrained": cfg.MODEL.HRNET.PRETRAINED,
        }

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            x: normalised images ``(B, C_in, H, W)``, ``H`` and ``W`` multiples of 32.

        Returns:
            dict: ``{"branch<i>": (B, C_i, H / s_i, W / s_i)}`` for the requested branches.
        """
        # A clear message instead of a shape mismatch deep inside a fuse layer; skipped while
        # tracing so that an exported graph carries no baked-in Python check.
        if not torch.jit.is_tracing() and (x.shape[-2] % 32 or x.shape[-1] % 32):
            raise ValueError(f"HRNet input sides must be multiples of 32, got {tuple(x.shape)}")
        return super().forward(x)


@BACKBONE_REGISTRY.register()
def build_hrnet_backbone(cfg, input_shape: ShapeSpec) -> HRNetBackbone:
    """Build the HRNetV2 backbone named by ``MODEL.HRNET.NAME`` (``MODEL.BACKBONE.NAME``:
    ``"build_hrnet_backbone"``)."""
    return HRNetBackbone(cfg, input_shape)
