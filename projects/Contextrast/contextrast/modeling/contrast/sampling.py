"""Sampling of positives and negatives per anchor for the pixel-anchor loss (training only).

Both samplers return fixed-size index matrices plus validity masks, so the loss is a batched
gather with no boolean indexing and no host synchronisation.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ["sample_positives", "sample_negatives"]


def sample_positives(labels: Tensor, num_classes: int, max_per_class: int) -> Tuple[Tensor, Tensor]:
    """Up to ``max_per_class`` random pixels of every class.

    Args:
        labels: (P,) long; values outside ``[0, N)`` are ignored.
        num_classes: N.
        max_per_class: cap on positives per class.

    Returns:
        index: (N, K) long pixel indices, ``K = min(max_per_class, P)``.
        valid: (N, K) bool, False for padding slots of classes with fewer than K pixels.
    """
    p = labels.numel()
    k = min(max_per_class, p)
    valid_px = (labels >= 0) & (labels < num_classes)
    bins = torch.where(valid_px, labels, torch.full_like(labels, num_classes))
    # Sorting by (class + uniform noise) groups every class contiguously in random order.
    noise = torch.rand(p, device=labels.device, dtype=torch.float64)
    order = torch.sort(bins.to(torch.float64) + noise).indices
    # index_add_ rather than bincount: CUDA bincount reads the maximum back to the host.
    counts = torch.zeros(num_classes + 1, dtype=torch.long, device=labels.device)
    counts = counts.index_add_(0, bins, torch.ones_like(bins))[:num_classes]
    starts = counts.cumsum(0) - counts
    slots = torch.arange(k, device=labels.device)
    index = order[(starts[:, None] + slots[None, :]).clamp(max=p - 1)]
    return index, slots[None, :] < counts[:, None]


def sample_negatives(
    labels: Tensor,
    num_classes: int,
    *,
    min_count: int,
    max_count: int,
    bane_negatives: Optional[Tensor] = None,
    bane_anchor: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Negatives of every anchor: BANE pixels first, topped up with random other-class pixels.

    Anchor ``n`` takes all of its BANE negatives (at most ``max_count``, chosen at random when
    there are more); when BANE yields fewer than ``min_count``, random pixels of other classes fill
    the set up to ``min_count``. Without BANE the set is ``max_count`` random other-class pixels.

    Args:
        labels: (P,) long ground truth; values outside ``[0, N)`` are ignored.
        num_classes: N.
        min_count: top-up target when BANE yields fewer negatives.
        max_count: cap on negatives per anchor.
        bane_negatives: (P,) bool BANE selection, or None when BANE is off.
        bane_anchor: (P,) long anchor each BANE pixel is a negative of.

    Returns:
        index: (N, K) long pixel indices, ``K = min(max_count, P)``.
        valid: (N, K) bool.
        num_bane: (N,) long number of BANE negatives available per anchor (before the cap).
    """
    p = labels.numel()
    k = min(max_count, p)
    classes = torch.arange(num_classes, device=labels.device)[:, None]
    valid_px = (labels >= 0) & (labels < num_classes)
    other = valid_px[None, :] & (labels[None, :] != classes)  # (N, P)
    noise = torch.rand(num_classes, p, device=labels.device)
    # Priority: BANE negative of this anchor (2, 3) > other-class pixel (1, 2) > no candidate (0).
    score = torch.where(other, 1.0 + noise, torch.zeros_like(noise))
    if bane_negatives is not None:
        is_bane = bane_negatives[None, :] & (bane_anchor[None, :] == classes)
        score = torch.where(is_bane, 2.0 + noise, score)
        num_bane = is_bane.sum(1)
        quota = num_bane.clamp(min=min_count, max=max_count)
    else:
        num_bane = torch.zeros(num_classes, dtype=torch.long, device=labels.device)
        quota = torch.full_like(num_bane, max_count)
    top, index = score.topk(k, dim=1)
    slots = torch.arange(k, device=labels.device)[None, :]
    return index, (slots < quota[:, None]) & (top >= 1.0), num_bane
