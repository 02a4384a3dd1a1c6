"""Exact squared Euclidean distance of every pixel to the nearest pixel of another label, on the
label map's own device: the distance transform BANE ranks its error pixels by.

BANE's class-wise error maps of an image are disjoint, so they form one label map; the distance of
a pixel of map ``n`` to the boundary of its region is its distance to the nearest pixel that is
not of label ``n``. The reference is :func:`scipy.ndimage.distance_transform_edt` on every binary
map, but calling it per step would move every map to the CPU; this module computes the same exact
distances with batched tensor ops instead.

The transform is separable (Felzenszwalb & Huttenlocher, 2012): first the 1-D distance to the
nearest other-label pixel along each row, then the lower envelope of parabolas along each column,
along the shorter image axis. On CUDA the column pass is one broadcast min per chunk of maps (no
host synchronisation); on the CPU it is a loop over offsets that stops once no larger offset can
lower any value. Speed: ``bench/bane.py`` and bench/README.md.
"""

from typing import Optional

import torch
from torch import Tensor

__all__ = ["squared_distance_to_other_label"]

# Elements per broadcast chunk of the CUDA pass (maps x H x H x W), ~256 MB of float32.
_CHUNK_ELEMENTS = 1 << 26


def _border_distance(h: int, w: int, device) -> Tensor:
    """(H, W) distance to the image border, ``min(y + 1, x + 1, H - y, W - x)``."""
    ys = torch.arange(h, device=device, dtype=torch.float32)[:, None]
    xs = torch.arange(w, device=device, dtype=torch.float32)[None, :]
    return torch.minimum(torch.minimum(ys + 1, h - ys), torch.minimum(xs + 1, w - xs))


def _row_distance_labels(labels: Tensor) -> Tensor:
    """Distance along the last axis to the nearest pixel of another label.

    A pixel's nearest other-label pixel in its row lies just outside its run of equal labels.

    Args:
        labels: (N, H, W) integer labels.

    Returns:
        (N, H, W) float32; ``inf`` where the whole row has one label.
    """
    w = labels.shape[-1]
    pos = torch.arange(w, device=labels.device, dtype=torch.float32).expand(labels.shape)
    change = labels[..., 1:] != labels[..., :-1]  # (N, H, W-1): a run boundary between x and x+1
    edge = torch.ones_like(labels[..., :1], dtype=torch.bool)
    run_start = torch.cat([edge, change], dim=-1)
    run_end = torch.cat([change, edge], dim=-1)
    start = torch.where(run_start, pos, torch.zeros_like(pos)).cummax(dim=-1).values
    end = torch.where(run_end, pos, torch.full_like(pos, w - 1)).flip(-1).cummin(-1).values.flip(-1)
    inf = torch.full_like(pos, float("inf"))
    left = torch.where(start > 0, pos - start + 1, inf)
    right = torch.where(end < w - 1, end + 1 - pos, inf)
    return torch.minimum(left, right)


def _column_envelope_labels(f2: Tensor, labels: Tensor, adaptive: bool) -> Tensor:
    """``out[n, y, x] = min_y' (y - y')^2 + [labels[n, y', x] == labels[n, y, x]] f2[n, y', x]``.

    A pixel ``y'`` of another label is itself at distance 0 from "another label" (cost
    ``(y-y')^2``); one of the same label contributes its row distance, which is the row distance
    to another label (its run in row ``y'`` ends where the label changes).

    Args:
        f2: (N, H, W) float32 squared row distances (``inf`` allowed).
        labels: (N, H, W) integer labels.
        adaptive: loop over offsets and stop once no larger offset can lower any value (reads one
            scalar per offset: CPU); else one broadcast min per chunk of maps (no host sync: CUDA).

    Returns:
        (N, H, W) float32 squared distances.
    """
    n, h, w = f2.shape
    if not adaptive:
        y = torch.arange(h, device=f2.device, dtype=torch.float32)
        dy2 = (y[:, None] - y[None, :]).square()[None, :, :, None]  # (1, H_out, H_in, 1)
        step = max(1, _CHUNK_ELEMENTS // max(h * h * w, 1))
        chunks = []
        for i in range(0, n, step):
            lab, g2 = labels[i : i + step], f2[i : i + step]
            same = lab[:, :, None] == lab[:, None]  # (n, H_out, H_in, W)
            chunks.append((dy2 + torch.where(same, g2[:, None], 0.0)).amin(dim=2))
        return torch.cat(chunks) if chunks else f2.clone()
    out = f2.clone()
    for d in range(1, h):
        if not d * d < float(out.max()):
            break
        # From above (y' = y - d) and from below (y' = y + d).
        same = labels[:, d:] == labels[:, :-d]
        out[:, d:] = torch.minimum(out[:, d:], torch.where(same, f2[:, :-d], 0.0) + d * d)
        out[:, :-d] = torch.minimum(out[:, :-d], torch.where(same, f2[:, d:], 0.0) + d * d)
    return out


def squared_distance_to_other_label(labels: Tensor, ignore_label: Optional[int] = None) -> Tensor:
    """Exact squared Euclidean distance of every pixel to the nearest pixel of another label.

    On the pixels of label ``n`` this equals the squared Euclidean distance transform of the
    binary map ``labels == n`` (``scipy.ndimage.distance_transform_edt(labels == n) ** 2``), for
    every ``n`` at once: one transform of the label map instead of one per label (BANE's
    class-wise error maps are disjoint, so they are one label map). Pixels of ``ignore_label``
    count as "another label" for everyone else, but their own distance is not computed (0): it
    would only slow the CPU path, whose loop stops at the largest distance it must find.

    Args:
        labels: (..., H, W) integer labels. Leading dimensions are independent maps.
        ignore_label: label whose own distances are not needed, or None.

    Returns:
        (..., H, W) float32. In a map holding a single label the distance to the image border is
        returned instead (as if the map were surrounded by pixels of another label).
    """
    shape = labels.shape
    h, w = shape[-2:]
    maps = labels.reshape(-1, h, w)
    if h > w:  # run the quadratic pass along the shorter axis
        maps = maps.transpose(1, 2)
    maps = maps.contiguous()
    f = _row_distance_labels(maps)
    if ignore_label is not None:
        f = f.masked_fill_(maps == ignore_label, 0.0)
    flat = maps.flatten(1)
    single = (flat == flat[:, :1]).all(dim=1)  # one label: no boundary inside the map
    if maps.is_cuda:
        d2 = _column_envelope_labels(f.square(), maps, adaptive=False)
    else:  # single-label maps would keep the adaptive loop running to the end: skip them
        f = f.masked_fill_(single[:, None, None], 0.0)
        d2 = _column_envelope_labels(f.square(), maps, adaptive=True)
    border = _border_distance(maps.shape[1], maps.shape[2], maps.device).square()
    d2 = torch.where(single[:, None, None], border.expand_as(d2), d2)
    if ignore_label is not None:
        d2 = d2.masked_fill(maps == ignore_label, 0.0)
    if h > w:
        d2 = d2.transpose(1, 2)
    return d2.reshape(shape).contiguous()
