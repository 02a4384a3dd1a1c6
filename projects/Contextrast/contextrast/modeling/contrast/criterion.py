"""ContextrastCriterion: CCL anchors + BANE negatives + pixel-anchor loss over all layers.

A stateless object (no parameters, no buffers), so nothing of it can reach a checkpoint or an
exported graph. The meta-architecture calls it only in training.
"""

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from torch import Tensor

from ...config_checks import check_contextrast_values
from .anchors import class_anchors, mix_anchors
from .bane import BaneSelection, select_boundary_negatives
from .loss import pixel_anchor_loss
from .sampling import sample_negatives, sample_positives

__all__ = ["ContextrastCriterion"]


def _resize_labels(labels: Tensor, size: Tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of (B, H, W) integer maps to ``size``."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


class ContextrastCriterion:
    """Computes ``alpha * sum_i lambda_i * L_i`` from per-layer embeddings.

    Layers are ordered shallowest first; the last one is the deepest layer I whose anchors are
    mixed into the others.
    """

    @configurable
    def __init__(
        self,
        *,
        in_features: Sequence[str],
        num_classes: int,
        ignore_value: int,
        temperature: float,
        layer_weights: Sequence[float],
        loss_weight: float,
        warmup_iters: int,
        detach_anchors: bool = False,
        anchor_weight_low: float,
        anchor_weight_high: float,
        normalize_before_mix: bool = False,
        loss_average: str = "present",
        max_positives: int,
        min_negatives: int,
        max_negatives: int,
        bane_enabled: bool,
        bane_top_k_ratio: float,
        bane_error_map: str,
        bane_tie_break: str = "random",
        sampling_caps: str = "global",
    ):
        """All arguments mirror ``MODEL.CONTEXTRAST.*``; see ``contextrast/config.py``."""
        self.in_features = list(in_features)
        self.num_classes = num_classes
        self.ignore_value = ignore_value
        self.temperature = temperature
        self.layer_weights = list(layer_weights)
        self.loss_weight = loss_weight
        self.warmup_iters = warmup_iters
        self.detach_anchors = detach_anchors
        self.anchor_weight_low = anchor_weight_low
        self.anchor_weight_high = anchor_weight_high
        self.normalize_before_mix = normalize_before_mix
        self.loss_average = loss_average
        self.max_positives = max_positives
        self.min_negatives = min_negatives
        self.max_negatives = max_negatives
        self.bane_enabled = bane_enabled
        self.bane_top_k_ratio = bane_top_k_ratio
        self.bane_error_map = bane_error_map
        self.bane_tie_break = bane_tie_break
        self.sampling_caps = sampling_caps
        self._validate()
        self.layer_weights = [float(w) for w in self.layer_weights]

    def _validate(self) -> None:
        check_contextrast_values(
            {
                "IN_FEATURES": self.in_features,
                "LAYER_WEIGHTS": self.layer_weights,
                "TEMPERATURE": self.temperature,
                "LOSS_WEIGHT": self.loss_weight,
                "WARMUP_ITERS": self.warmup_iters,
                "DETACH_ANCHORS": self.detach_anchors,
                "ANCHOR_WEIGHT_LOW": self.anchor_weight_low,
                "ANCHOR_WEIGHT_HIGH": self.anchor_weight_high,
                "NORMALIZE_BEFORE_MIX": self.normalize_before_mix,
                "LOSS_AVERAGE": self.loss_average,
                "MAX_POSITIVES": self.max_positives,
                "MIN_NEGATIVES": self.min_negatives,
                "MAX_NEGATIVES": self.max_negatives,
                "BANE.ENABLED": self.bane_enabled,
                "BANE.TOP_K_RATIO": self.bane_top_k_ratio,
                "BANE.ERROR_MAP": self.bane_error_map,
                "BANE.TIE_BREAK": self.bane_tie_break,
                "SAMPLING_CAPS": self.sampling_caps,
            }
        )

    @classmethod
    def from_config(cls, cfg):
        c = cfg.MODEL.CONTEXTRAST
        return {
            "in_features": c.IN_FEATURES,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "temperature": c.TEMPERATURE,
            "layer_weights": c.LAYER_WEIGHTS,
            "loss_weight": c.LOSS_WEIGHT,
            "warmup_iters": c.WARMUP_ITERS,
            "detach_anchors": c.DETACH_ANCHORS,
            "anchor_weight_low": c.ANCHOR_WEIGHT_LOW,
            "anchor_weight_high": c.ANCHOR_WEIGHT_HIGH,
            "normalize_before_mix": c.NORMALIZE_BEFORE_MIX,
            "loss_average": c.LOSS_AVERAGE,
            "max_positives": c.MAX_POSITIVES,
            "min_negatives": c.MIN_NEGATIVES,
            "max_negatives": c.MAX_NEGATIVES,
            "bane_enabled": c.BANE.ENABLED,
            "bane_top_k_ratio": c.BANE.TOP_K_RATIO,
            "bane_error_map": c.BANE.ERROR_MAP,
            "bane_tie_break": c.BANE.TIE_BREAK,
            "sampling_caps": c.SAMPLING_CAPS,
        }

    def effective_weight(self, iteration: int) -> float:
        """alpha at a training iteration: ramped linearly from 0 over ``warmup_iters`` iterations
        from iteration 0 (``loss_weight / warmup_iters`` at 0, ``loss_weight`` from
        ``warmup_iters - 1`` on).

        ``MODEL.CONTEXTRAST.START_ITER`` leaves alpha alone: it is the projection heads' own loss
        weight, and they train from iteration 0 (on detached features before START_ITER, see
        :class:`~.balance.ContrastGradientGate`, which ramps what reaches the network instead).
        """
        if self.warmup_iters <= 0:
            return self.loss_weight
        return self.loss_weight * min(1.0, (iteration + 1) / self.warmup_iters)

    def __call__(
        self, embeddings: Dict[str, Tensor], logits: Tensor, targets: Tensor, iteration: int = 0
    ) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        """
        Args:
            embeddings: feature name -> (B, D, H_i, W_i) unit-norm embeddings, for every
                ``in_features`` entry.
            logits: (B, K, H', W') final segmentation logits (any stride); only their argmax is
                used, for BANE.
            targets: (B, H, W) long ground truth at input resolution (``ignore_value`` = ignore).
            iteration: training iteration, for the warm-up of alpha.

        Returns:
            losses: ``{"loss_contrast": alpha * sum_i lambda_i L_i}``.
            stats: detached scalars to log: per-layer ``L_i``, BANE negatives, anchors used.
        """
        # The contrastive math (exp of similarity / tau) stays in float32 under AMP.
        with torch.autocast(device_type=targets.device.type, enabled=False):
            return self._compute(embeddings, logits.detach(), targets, iteration)

    def _compute(self, embeddings, logits, targets, iteration):
        pred = logits.argmax(dim=1)
        flat: List[Tensor] = []
        labels: List[Tensor] = []
        preds: List[Tensor] = []
        anchors, present = [], []
        # Layers of equal resolution (e.g. res3..res5 of a dilated ResNet at output stride 8)
        # share their resized labels / predictions and BANE selection: computed once per size.
        resized: Dict[Tuple[int, int], Tuple[Tensor, Tensor]] = {}
        for name in self.in_features:
            emb = embeddings[name].float()
            size = tuple(emb.shape[-2:])
            if size not in resized:
                resized[size] = (_resize_labels(targets, size), _resize_labels(pred, size))
            gt_l, pred_l = resized[size]
            flat.append(emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1]))
            labels.append(gt_l)
            preds.append(pred_l)
            a, p = class_anchors(flat[-1], gt_l.flatten(), self.num_classes)
            anchors.append(a)
            present.append(p)
        anchors = mix_anchors(
            anchors,
            present,
            self.anchor_weight_low,
            self.anchor_weight_high,
            normalize_first=self.normalize_before_mix,
        )
        if self.detach_anchors:
            # Constants in the loss: only the sampled pixels receive gradient, not every pixel
            # of a class through its mean.
            anchors = [a.detach() for a in anchors]

        total = flat[-1].new_zeros(())
        stats = {}
        global_caps = self.sampling_caps == "global"
        selections: Dict[Tuple[int, int], BaneSelection] = {}
        for name, w, emb, gt_l, pred_l, anchor in zip(
            self.in_features, self.layer_weights, flat, labels, preds, anchors
        ):
            gt_flat = gt_l.flatten()
            bane_neg = bane_anchor = None
            if self.bane_enabled:
                size = tuple(gt_l.shape[-2:])
                if size not in selections:
                    selections[size] = select_boundary_negatives(
                        pred_l, gt_l, num_classes=self.num_classes, ignore_value=self.ignore_value,
                        top_k_ratio=self.bane_top_k_ratio, reading=self.bane_error_map,
                        tie_break=self.bane_tie_break,
                    )  # fmt: skip
                sel = selections[size]
                bane_neg, bane_anchor = sel.negatives.flatten(), sel.anchor.flatten()
            pos_idx, pos_ok = sample_positives(
                gt_flat, self.num_classes, self.max_positives, global_caps=global_caps
            )
            neg_idx, neg_ok, num_bane = sample_negatives(
                gt_flat, self.num_classes, min_count=self.min_negatives,
                max_count=self.max_negatives, bane_negatives=bane_neg, bane_anchor=bane_anchor,
                global_caps=global_caps,
            )  # fmt: skip
            loss, used = pixel_anchor_loss(
                emb, anchor, pos_idx, pos_ok, neg_idx, neg_ok, self.temperature, self.loss_average
            )
            total = total + w * loss
            stats[f"contrast/loss_{name}"] = loss.detach()
            stats[f"contrast/anchors_{name}"] = used.detach().float()
            stats[f"contrast/bane_negatives_{name}"] = num_bane.sum().float()
        losses = {"loss_contrast": self.effective_weight(iteration) * total}
        return losses, stats
