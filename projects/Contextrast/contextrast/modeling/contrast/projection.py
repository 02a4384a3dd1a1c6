"""Projection heads pi_i that map a backbone layer to L2-normalised embeddings (training only)."""

from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec, get_norm
from detectron2.utils.registry import Registry
from torch import Tensor

from ...config_checks import check_contextrast_values

__all__ = ["CONTRAST_HEADS_REGISTRY", "ConvMLPProjectionHead", "build_contrast_heads"]

CONTRAST_HEADS_REGISTRY = Registry("CONTRAST_HEADS")
CONTRAST_HEADS_REGISTRY.__doc__ = """
Registry for Contextrast projection heads. A registered class is called as
``cls(cfg, input_shape: ShapeSpec)`` (through ``@configurable``) and maps a feature map
``(B, C, H, W)`` to L2-normalised embeddings ``(B, D, H, W)``.
"""


@CONTRAST_HEADS_REGISTRY.register()
class ConvMLPProjectionHead(nn.Module):
    """``Conv1x1(C->C) -> ReLU -> Norm -> Conv1x1(C->D)``, then L2 normalisation over channels."""

    @configurable
    def __init__(self, in_channels: int, *, proj_dim: int, norm: str = "BN"):
        """
        Args:
            in_channels: C, channels of the backbone layer.
            proj_dim: D, embedding dimension.
            norm: detectron2 norm name for the hidden layer ("BN", "SyncBN", "GN", ...).
        """
        super().__init__()
        check_contextrast_values({"PROJ_DIM": proj_dim})
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, kernel_size=1),
            nn.ReLU(inplace=True),
            get_norm(norm, in_channels),
            nn.Conv2d(in_channels, proj_dim, kernel_size=1),
        )

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec):
        norm = cfg.MODEL.SEM_SEG_HEAD.NORM
        return {
            "in_channels": input_shape.channels,
            "proj_dim": cfg.MODEL.CONTEXTRAST.PROJ_DIM,
            # An empty head norm means "no norm" for detectron2 heads; the projection keeps BN.
            "norm": norm if norm else "BN",
        }

    def forward(self, x: Tensor) -> Tensor:
        """
        Args:
            x: (B, C, H, W) features.

        Returns:
            (B, D, H, W) unit-norm embeddings, in channels-last memory format.
        """
        conv1, _, norm, conv2 = self.proj
        # Channels-last: the criterion views the embeddings as a (B*H*W, D) matrix; with this
        # layout that is a view, not a copy of the largest training-only tensor (and of its
        # gradient). The 1x1 convolutions run as matrix products on the (B, H, W, C) view (one
        # GEMM each way; the CPU's 1x1 convolution adds layout passes) and the normalisation
        # as one rsqrt scale: the same arithmetic as Conv2d and F.normalize, fewer passes over
        # the stride-4 maps that a head-attached projection reads (bench/README.md, 1c).
        x = x.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)
        h = F.linear(x, conv1.weight.flatten(1), conv1.bias).relu_()
        h = norm(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        y = F.linear(h, conv2.weight.flatten(1), conv2.bias)
        # F.normalize's x / max(|x|, 1e-12), as one multiplication.
        y = y * y.square().sum(dim=-1, keepdim=True).clamp_min(1e-24).rsqrt()
        return y.permute(0, 3, 1, 2)


def build_contrast_heads(cfg, input_shape: Dict[str, ShapeSpec]) -> nn.ModuleDict:
    """One projection head per ``MODEL.CONTEXTRAST.IN_FEATURES`` entry, keyed by feature name."""
    name = cfg.MODEL.CONTEXTRAST.PROJ_HEAD_NAME
    head_cls = CONTRAST_HEADS_REGISTRY.get(name)
    return nn.ModuleDict(
        {f: head_cls(cfg, input_shape[f]) for f in cfg.MODEL.CONTEXTRAST.IN_FEATURES}
    )
