"""BANE: boundary-aware negative sampling from class-wise error maps (training only).

A mispredicted pixel with ground truth ``n`` and prediction ``m`` was confused with class ``m``, so
it is a hard negative of anchor ``m``. Each such pixel lies in exactly one class-wise error map:
``B^m = [pred = m, gt != m]`` under the ``fp`` reading (default) or ``B^n = [gt = n, pred != n]``
under the ``fn`` reading (the map as printed in the paper). The reading only decides which region's
boundary ranks the pixel. Within every (image, map) pair the ``ceil(K * |B|)`` pixels nearest the
region boundary (smallest Euclidean distance transform) are kept. Pixels at equal distance (in a
thin error band every pixel is at distance 1) are ranked at random by default (``tie_break``), so
that K < 1 does not always keep the top rows and left columns of a band.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from ...config_checks import ERROR_MAP_READINGS, TIE_BREAKS
from .edt import squared_distance_to_other_label

__all__ = [
    "BaneSelection",
    "ERROR_MAP_READINGS",
    "TIE_BREAKS",
    "error_maps",
    "error_regions",
    "select_boundary_negatives",
]


@dataclass
class BaneSelection:
    """BANE output for one layer.

    Attributes:
        negatives: (B, H, W) bool, the selected hard negatives.
        anchor: (B, H, W) long, the class whose anchor each selected pixel is a negative of (the
            predicted class); meaningful where ``negatives`` is True.
        num_errors: () long, number of mispredicted (non-ignored) pixels in the batch.
    """

    negatives: Tensor
    anchor: Tensor
    num_errors: Tensor


def error_regions(pred: Tensor, gt: Tensor, ignore_value: int, reading: str):
    """The error map each mispredicted pixel belongs to.

    Args:
        pred: (B, H, W) long predicted classes.
        gt: (B, H, W) long ground truth, ``ignore_value`` marks ignored pixels.
        ignore_value: ignore label of ``gt``.
        reading: ``"fp"`` -> ``B^n = [pred = n, gt != n]``;
            ``"fn"`` -> ``B^n = [gt = n, pred != n]``.

    Returns:
        region: (B, H, W) long, index of the map of each mispredicted pixel (0 elsewhere).
        wrong: (B, H, W) bool, mispredicted non-ignored pixels.
    """
    if reading not in ERROR_MAP_READINGS:
        raise ValueError(
            f"BANE error-map reading must be one of {ERROR_MAP_READINGS}, got {reading!r}"
        )
    wrong = (gt != ignore_value) & (pred != gt)
    region = pred if reading == "fp" else gt
    return torch.where(wrong, region, torch.zeros_like(region)), wrong


def error_maps(pred: Tensor, gt: Tensor, num_classes: int, ignore_value: int, reading: str):
    """Class-wise binary error maps (the paper's definition, see docs/design_decisions.md; BANE
    itself never materialises them).

    Args:
        pred, gt, ignore_value, reading: see :func:`error_regions`.
        num_classes: N.

    Returns:
        maps: (B, N, H, W) bool.
        region: (B, H, W) long, index of the map each mispredicted pixel belongs to.
        wrong: (B, H, W) bool, mispredicted non-ignored pixels.
    """
    region, wrong = error_regions(pred, gt, ignore_value, reading)
    classes = torch.arange(num_classes, device=pred.device)[None, :, None, None]
    maps = wrong[:, None] & (region[:, None] == classes)
    return maps, region, wrong


def select_boundary_negatives(
    pred: Tensor,
    gt: Tensor,
    *,
    num_classes: int,
    ignore_value: int,
    top_k_ratio: float,
    reading: str = "fp",
    tie_break: str = "random",
) -> BaneSelection:
    """Select, per image and error map, the K% of error pixels nearest the region boundary.

    Exactly ``ceil(K * |B|)`` pixels are kept from every non-empty map; pixels at equal distance
    are ordered by ``tie_break``. No host synchronisation on CUDA.

    Args:
        pred: (B, H, W) long predicted classes (final prediction resized to this layer).
        gt: (B, H, W) long ground truth at this layer.
        num_classes: N.
        ignore_value: ignore label.
        top_k_ratio: K in (0, 1].
        reading: ``"fp"`` or ``"fn"`` (see module docstring).
        tie_break: ``"random"`` (a uniform random order among equal distances, drawn from
            torch's generator) or ``"raster"`` (row-major order: top rows and left columns
            first).

    Returns:
        :class:`BaneSelection`.
    """
    if not 0.0 < top_k_ratio <= 1.0:
        raise ValueError(f"BANE top_k_ratio must be in (0, 1], got {top_k_ratio}")
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"BANE tie_break must be one of {TIE_BREAKS}, got {tie_break!r}")
    b, h, w = gt.shape
    region, wrong = error_regions(pred, gt, ignore_value, reading)
    # The N error maps of an image are disjoint: one label map (label N = no error) holds them
    # all, and the distance of a pixel of map n to the boundary of map n is its distance to the
    # nearest pixel of another label. One transform per image instead of one per (image, class).
    label = torch.where(wrong, region, torch.full_like(region, num_classes))
    dist2 = squared_distance_to_other_label(label, ignore_label=num_classes).flatten(1)

    # Sort every image's error pixels by (map, distance, tie-break); pixels outside any map last.
    # Squared distances are integers bounded by H^2 + W^2, so the integer key is exact; a random
    # tie-break adds uniform noise in [0, 1), which reorders equal keys only (float64 holds these
    # integers exactly), and a stable sort of the integer key is the raster order.
    span = h * h + w * w + 1
    key = region.flatten(1) * span + dist2.long()
    key = torch.where(wrong.flatten(1), key, torch.full_like(key, num_classes * span))
    if tie_break == "random":
        key = key.to(torch.float64) + torch.rand(key.shape, device=key.device, dtype=torch.float64)
    order = torch.sort(key, dim=1, stable=True).indices  # (B, H*W)

    # Rank of each pixel within its map = sorted position - number of pixels in earlier maps.
    counts = torch.zeros(b, num_classes + 1, dtype=torch.long, device=gt.device)
    counts = counts.scatter_add_(1, label.flatten(1), torch.ones_like(label.flatten(1)))[
        :, :num_classes
    ]
    starts = counts.cumsum(1) - counts
    sorted_region = region.flatten(1).gather(1, order)
    positions = torch.arange(h * w, device=gt.device).expand(b, -1)
    sorted_rank = positions - starts.gather(1, sorted_region)
    rank = torch.empty_like(sorted_rank).scatter_(1, order, sorted_rank)

    # The epsilon keeps e.g. 10 * 0.3 = 3.0000000000000004 from rounding up to 4.
    keep = torch.ceil(counts.to(torch.float64) * top_k_ratio - 1e-9).long()  # (B, N)
    quota = keep.gather(1, region.flatten(1))
    negatives = wrong & (rank < quota).view(b, h, w)
    return BaneSelection(negatives=negatives, anchor=pred, num_errors=wrong.sum())
