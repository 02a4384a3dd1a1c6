"""What the timm-based backbones share: a timm ``features_only`` model as a detectron2 Backbone.

A subclass builds the timm model (and loads its ImageNet weights, if any), names its four
outputs and says how its BatchNorm layers are frozen (:meth:`TimmFeatureBackbone.freeze_batch_norm`,
the one thing that differs between timm's model families); this base checks the requested
outputs, applies ``MODEL.<BACKBONE>.NORM`` and returns the named features. The timm model is the
``body`` attribute, so every checkpoint key starts with ``body.``.
"""

from typing import Dict, List, Sequence

import torch
from detectron2.modeling import Backbone
from torch import nn

__all__ = ["NORMS", "TimmFeatureBackbone"]

NORMS = ("FrozenBN", "BN", "SyncBN")


class TimmFeatureBackbone(Backbone):
    """detectron2 Backbone over a timm ``features_only`` model with four outputs.

    Attributes:
        body: the timm model; returns the four feature maps, highest resolution first.
        feature_names: the names of those four outputs, e.g. ``("res2", ..., "res5")``.
    """

    #: Model family in error messages ("EfficientNet", "HRNet").
    family: str = "timm"

    def __init__(
        self, body: nn.Module, feature_names: Sequence[str], out_features: List[str], norm: str
    ):
        """
        Args:
            body: timm model built with ``features_only=True`` and four ``out_indices``, holding
                its ImageNet weights already (its norm layers are converted here).
            feature_names: names of the four outputs, highest resolution first.
            out_features: the subset of ``feature_names`` that :meth:`forward` returns.
            norm: ``"FrozenBN"`` (:meth:`freeze_batch_norm`), ``"BN"`` (trainable, as timm built
                it) or ``"SyncBN"`` (multi-GPU training).
        """
        super().__init__()
        self.feature_names = tuple(feature_names)
        unknown = set(out_features) - set(self.feature_names)
        if not out_features or unknown:
            raise ValueError(f"out_features must be a non-empty subset of {self.feature_names}")
        if norm not in NORMS:
            raise ValueError(f"Unknown {self.family} norm {norm!r}: use one of {NORMS}")
        if norm == "FrozenBN":
            body = self.freeze_batch_norm(body)
        elif norm == "SyncBN":
            body = nn.SyncBatchNorm.convert_sync_batchnorm(body)
        self.body = body
        self._out_features = list(out_features)
        info = self.body.feature_info
        self._out_feature_channels = dict(zip(self.feature_names, info.channels()))
        self._out_feature_strides = dict(zip(self.feature_names, info.reduction()))

    @staticmethod
    def freeze_batch_norm(body: nn.Module) -> nn.Module:
        """Return ``body`` with every BatchNorm frozen (statistics and affine kept fixed).

        Subclasses choose the converter that suits their model family's norm layers.
        """
        raise NotImplementedError

    @property
    def size_divisibility(self) -> int:
        return 32

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            x: normalised images ``(B, C_in, H, W)``.

        Returns:
            dict: ``{name: (B, C_k, ceil(H / s_k), ceil(W / s_k))}`` for the requested names,
            strides ``s_k`` = 4, 8, 16, 32.
        """
        return {
            name: feature
            for name, feature in zip(self.feature_names, self.body(x))
            if name in self._out_features
        }
