"""OCRNet head on HRNetV2: object-contextual representations.

:paper: Yuan, Chen and Wang, "Object-Contextual Representations for Semantic Segmentation", ECCV
2020. Layout of HRNet-OCR (HRNetV2-W48 + OCR: 70.37M parameters with 19 classes):

- the four branches are concatenated as in HRNetV2 (720 channels);
- an auxiliary head (1x1 conv-BN-ReLU, 1x1 classifier) predicts the soft object regions, with its
  own deeply supervised loss (weight 0.4);
- a 3x3 conv-BN-ReLU reduces the pixel representation to 512 channels;
- object region representations: per image, each class's features averaged with the spatial
  softmax of its soft-region logits as weights;
- object-contextual attention: pixels (queries) attend to the K region representations
  (keys / values) in a 256-channel space, the result goes back to 512 channels;
- augmented representation: [context, pixel] (1024 ch) -> 1x1 conv-BN-ReLU (512) -> dropout
  -> 1x1 classifier.
"""

from typing import Dict

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY
from torch import nn

from .common import SplitSemSegHead, build_sem_seg_loss, upsampled_loss
from .hrnet_head import concat_branches

__all__ = ["OCRHead", "ObjectContextBlock", "object_region_representations"]


def _conv_norm_relu(in_channels: int, out_channels: int, norm: str, kernel_size: int = 1) -> Conv2d:
    conv = Conv2d(
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        padding=kernel_size // 2,
        bias=not norm,  # the norm's shift makes a conv bias redundant
        norm=get_norm(norm, out_channels),
        activation=F.relu,
    )
    weight_init.c2_msra_fill(conv)
    return conv


def object_region_representations(feats: torch.Tensor, region_logits: torch.Tensor) -> torch.Tensor:
    """Soft object regions -> one representation per class (OCR's "spatial gather").

    Args:
        feats: pixel representations ``(B, C, H, W)``.
        region_logits: soft object region logits ``(B, K, H, W)``.

    Returns:
        Tensor: ``(B, C, K)``; column ``k`` is the mean of ``feats`` weighted by the softmax of
        ``region_logits[:, k]`` over all ``H * W`` positions.
    """
    weights = F.softmax(region_logits.flatten(2), dim=2)  # (B, K, HW)
    return torch.bmm(feats.flatten(2), weights.transpose(1, 2))  # (B, C, K)


class ObjectContextBlock(nn.Module):
    """Object-contextual attention followed by the fusion of context and pixel representations.

    Query: the pixel representations; keys and values: the object region representations.
    Each of query/key is two 1x1 conv-BN-ReLU layers into ``key_channels``, the value one; the
    attended context is projected back to ``in_channels`` and fused with the pixel
    representation by a 1x1 conv-BN-ReLU (``2 * in_channels -> in_channels``) and dropout.
    """

    def __init__(self, in_channels: int, key_channels: int, norm: str, dropout: float):
        """
        Args:
            in_channels: channels of the pixel and region representations (512 in OCRNet).
            key_channels: attention width (256 in OCRNet).
            norm: normalisation of every conv (see :func:`detectron2.layers.get_norm`).
            dropout: ``Dropout2d`` probability after the fusion conv (0.05 in HRNet-OCR).
        """
        super().__init__()
        self.key_channels = key_channels
        self.query = nn.Sequential(
            _conv_norm_relu(in_channels, key_channels, norm),
            _conv_norm_relu(key_channels, key_channels, norm),
        )
        self.key = nn.Sequential(
            _conv_norm_relu(in_channels, key_channels, norm),
            _conv_norm_relu(key_channels, key_channels, norm),
        )
        self.value = _conv_norm_relu(in_channels, key_channels, norm)
        self.out = _conv_norm_relu(key_channels, in_channels, norm)
        self.fuse = _conv_norm_relu(2 * in_channels, in_channels, norm)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, feats: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        """
        Args:
            feats: pixel representations ``(B, C, H, W)``.
            regions: object region representations ``(B, C, K)``.

        Returns:
            Tensor: augmented representations ``(B, C, H, W)``.
        """
        b, _, h, w = feats.shape
        # Region representations as a (B, C, K, 1) "image" so that the 1x1 convs and norms apply.
        regions = regions.unsqueeze(-1)
        query = self.query(feats).flatten(2).transpose(1, 2)  # (B, HW, Ck)
        key = self.key(regions).flatten(2)  # (B, Ck, K)
        value = self.value(regions).flatten(2).transpose(1, 2)  # (B, K, Ck)
        attention = F.softmax(torch.bmm(query, key) * self.key_channels**-0.5, dim=-1)
        context = torch.bmm(attention, value).transpose(1, 2).reshape(b, self.key_channels, h, w)
        context = self.out(context)
        return self.dropout(self.fuse(torch.cat([context, feats], dim=1)))


@SEM_SEG_HEADS_REGISTRY.register()
class OCRHead(SplitSemSegHead):
    """OCRNet head on the concatenated HRNetV2 branches; output stride 4 (``common_stride``).

    ``layers()`` returns the final logits (``"sem_seg"``) and the soft object region logits
    (``"aux"``); both are supervised by the ``loss_type`` loss, the auxiliary one weighted by
    ``aux_loss_weight``.
    """

    @configurable
    def __init__(
        self,
        input_shape: Dict[str, ShapeSpec],
        *,
        num_classes: int,
        mid_channels: int = 512,
        key_channels: int = 256,
        dropout: float = 0.05,
        ignore_value: int = 255,
        loss_weight: float = 1.0,
        aux_loss_weight: float = 0.4,
        loss_type: str = "cross_entropy",
        loss_top_k: float = 0.2,
        norm: str = "BN",
    ):
        """
        Args:
            input_shape: shapes of the input features (the HRNet branches); all of them are used.
            num_classes: number of classes K.
            mid_channels: width of the pixel / region / augmented representations.
            key_channels: width of the object-contextual attention.
            dropout: dropout before the classifier.
            ignore_value: label ignored by the losses.
            loss_weight: weight of ``loss_sem_seg``.
            aux_loss_weight: weight of ``loss_sem_seg_aux`` (soft object regions).
            loss_type: ``"cross_entropy"`` (paper) or ``"hard_pixel_mining"``, both losses.
            loss_top_k: fraction of the pixels ``hard_pixel_mining`` averages.
            norm: normalisation of every conv-norm-ReLU (see :func:`detectron2.layers.get_norm`).
        """
        super().__init__()
        shapes = sorted(input_shape.items(), key=lambda item: item[1].stride)
        self.in_features = [name for name, _ in shapes]
        self.common_stride = shapes[0][1].stride
        self.ignore_value = ignore_value
        self.loss_weight = loss_weight
        self.aux_loss_weight = aux_loss_weight
        self.loss = build_sem_seg_loss(loss_type, ignore_value, loss_top_k)
        channels = sum(shape.channels for _, shape in shapes)  # 720 for W48

        self.aux_head = nn.Sequential(
            _conv_norm_relu(channels, channels, norm),
            Conv2d(channels, num_classes, kernel_size=1),
        )
        self.pixel_conv = _conv_norm_relu(channels, mid_channels, norm, kernel_size=3)
        self.object_context = ObjectContextBlock(mid_channels, key_channels, norm, dropout)
        self.predictor = Conv2d(mid_channels, num_classes, kernel_size=1)
        self._feature_shapes = {  # pixel representation, then the object-contextual one
            name: ShapeSpec(channels=mid_channels, stride=self.common_stride)
            for name in ("pixels", "context")
        }
        for classifier in (self.aux_head[-1], self.predictor):
            nn.init.normal_(classifier.weight, 0, 0.001)
            nn.init.constant_(classifier.bias, 0)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        head = cfg.MODEL.SEM_SEG_HEAD
        return {
            "input_shape": {k: v for k, v in input_shape.items() if k in head.IN_FEATURES},
            "num_classes": head.NUM_CLASSES,
            "mid_channels": head.OCR_MID_CHANNELS,
            "key_channels": head.OCR_KEY_CHANNELS,
            "dropout": head.OCR_DROPOUT,
            "ignore_value": head.IGNORE_VALUE,
            "loss_weight": head.LOSS_WEIGHT,
            "aux_loss_weight": head.OCR_AUX_LOSS_WEIGHT,
            "loss_type": head.LOSS_TYPE,
            "loss_top_k": head.LOSS_TOP_K,
            "norm": head.NORM,
        }

    def layers(self, features: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """
        Args:
            features: ``{name: (B, C_i, H / s_i, W / s_i)}`` containing ``self.in_features``.

        Returns:
            dict: ``"sem_seg"``: final logits ``(B, K, H / 4, W / 4)``; ``"aux"``: soft object
            region logits, same shape; ``"pixels"`` / ``"context"``: the pixel and the
            object-contextual representations ``(B, OCR_MID_CHANNELS, H / 4, W / 4)``.
        """
        x = concat_branches([features[name] for name in self.in_features])
        aux = self.aux_head(x)
        pixels = self.pixel_conv(x)
        regions = object_region_representations(pixels, aux)
        context = self.object_context(pixels, regions)
        return {
            "sem_seg": self.predictor(context),
            "aux": aux,
            "pixels": pixels,
            "context": context,
        }

    def contrast_feature_shapes(self) -> Dict[str, ShapeSpec]:
        return dict(self._feature_shapes)

    def losses(self, outputs: Dict[str, torch.Tensor], targets: torch.Tensor):
        """
        Args:
            outputs: :meth:`layers` output.
            targets: ``(B, H, W)`` int64 labels at the input resolution.

        Returns:
            dict: ``"loss_sem_seg"`` and ``"loss_sem_seg_aux"``, weights applied.
        """
        loss = upsampled_loss(self.loss, outputs["sem_seg"], targets)
        aux = upsampled_loss(self.loss, outputs["aux"], targets)
        return {
            "loss_sem_seg": loss * self.loss_weight,
            "loss_sem_seg_aux": aux * self.aux_loss_weight,
        }
