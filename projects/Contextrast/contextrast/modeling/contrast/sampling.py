"""Sampling of positives and negatives per anchor for the pixel-anchor loss (training only).

Both samplers return fixed-size index matrices plus validity masks, so the loss is a batched
gather with no boolean indexing and no host synchronisation.

Caps in multi-process training (``MODEL.CONTEXTRAST.SAMPLING_CAPS``): with ``global_caps`` the caps
count the pixels of the global batch. Each process ranks its candidates by a random key as in the
single-process case, the processes all_gather their best ``cap`` keys per anchor (an (N, cap)
tensor per process, no host sync) and each keeps the candidates among the global best ``quota``
(ties broken by process rank): a uniform sample of the global batch, of exactly the size one
process holding the whole batch would take. Without it every process applies the caps to its own
pixels, so W processes take up to W x the caps.
"""

from typing import Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from detectron2.utils import comm
from torch import Tensor

from ...config_checks import SAMPLING_CAPS

__all__ = ["SAMPLING_CAPS", "sample_positives", "sample_negatives"]


def _all_gather(x: Tensor) -> Tensor:
    """(W, ...) stack of ``x`` from every process (not differentiable; keys and counts only)."""
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.stack(out)


def _keep_global_best(keys: Tensor, quota: Tensor, cap: int) -> Tensor:
    """Which local candidates are among the ``quota`` best of all processes.

    Args:
        keys: (N, k) this process's candidate keys per anchor, sorted descending (larger =
            preferred), ``-inf`` for slots without a candidate; ``k <= cap``.
        quota: (N,) long, identical on all processes, ``<= cap``.
        cap: the configured cap (the width every process pads its keys to).

    Returns:
        (N, k) bool: slot kept. Over all processes exactly ``min(quota, candidates)`` slots per
        anchor are kept: keys above the threshold everywhere, keys equal to it by process rank.
    """
    n, k = keys.shape
    padded = F.pad(keys, (0, cap - k), value=float("-inf")) if k < cap else keys
    gathered = _all_gather(padded)  # (W, N, cap)
    best = gathered.permute(1, 0, 2).reshape(n, -1).topk(cap, dim=1).values  # (N, cap)
    threshold = best.gather(1, (quota - 1).clamp(min=0)[:, None])  # (N, 1)
    above = (gathered > threshold[None]).sum(2)  # (W, N)
    equal = (gathered == threshold[None]).sum(2)
    room = quota[None, :] - above.sum(0, keepdim=True)  # slots left for keys equal to it
    take_equal = (room - (equal.cumsum(0) - equal)).clamp(min=0).minimum(equal)
    rank = dist.get_rank()
    keep = torch.where(quota > 0, above[rank] + take_equal[rank], torch.zeros_like(quota))
    slots = torch.arange(k, device=keys.device)
    return (slots[None, :] < keep[:, None]) & (keys > float("-inf"))


def sample_positives(
    labels: Tensor, num_classes: int, max_per_class: int, global_caps: bool = False
) -> Tuple[Tensor, Tensor]:
    """Up to ``max_per_class`` random pixels of every class.

    Args:
        labels: (P,) long; values outside ``[0, N)`` are ignored.
        num_classes: N.
        max_per_class: cap on positives per class.
        global_caps: the cap counts the pixels of all processes (see the module docstring).

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
    valid = slots[None, :] < counts[:, None]
    if global_caps and comm.get_world_size() > 1:
        # Each class's slots hold its pixels in ascending noise: -noise is sorted descending.
        keys = (-noise[index]).masked_fill(~valid, float("-inf"))
        quota = torch.full_like(counts, max_per_class)
        valid = _keep_global_best(keys, quota, max_per_class)
    return index, valid


def sample_negatives(
    labels: Tensor,
    num_classes: int,
    *,
    min_count: int,
    max_count: int,
    bane_negatives: Optional[Tensor] = None,
    bane_anchor: Optional[Tensor] = None,
    global_caps: bool = False,
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
        global_caps: ``min_count`` / ``max_count`` and the BANE count that sets the quota count
            the pixels of all processes (see the module docstring).

    Returns:
        index: (N, K) long pixel indices, ``K = min(max_count, P)``.
        valid: (N, K) bool.
        num_bane: (N,) long number of BANE negatives of this process per anchor (before the cap).
    """
    global_caps = global_caps and comm.get_world_size() > 1
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
        total_bane = num_bane
        if global_caps:
            total_bane = num_bane.clone()
            dist.all_reduce(total_bane)
        quota = total_bane.clamp(min=min_count, max=max_count)
    else:
        num_bane = torch.zeros(num_classes, dtype=torch.long, device=labels.device)
        quota = torch.full_like(num_bane, max_count)
    top, index = score.topk(k, dim=1)
    if global_caps:
        keys = top.masked_fill(top < 1.0, float("-inf"))
        return index, _keep_global_best(keys, quota, max_count), num_bane
    slots = torch.arange(k, device=labels.device)[None, :]
    return index, (slots < quota[:, None]) & (top >= 1.0), num_bane
