"""Exact Euclidean distance transform of batched *binary* maps: a benchmark reference.

BANE (``contextrast.modeling.contrast.bane``) transforms the disjoint class-wise error maps of an
image at once, as one label map (:func:`contextrast.modeling.contrast.edt.
squared_distance_to_other_label`). Before that it transformed every (image, class) map on its
own, with this module's :func:`squared_distance_transform`; ``bench/bane.py`` times it next to
the label-map transform and scipy, and ``tests/bench/test_binary_edt.py`` keeps it exact.

The transform is separable (Felzenszwalb & Huttenlocher, 2012): first the 1-D distance to the
nearest background pixel along each row, then the lower envelope of parabolas
``min_y' (y - y')^2 + f(y')^2`` along each column, along the shorter image axis. On CUDA the
column pass is one broadcast min per chunk of maps (no host synchronisation). On the CPU, where
large temporaries cost more than arithmetic (every fresh tensor is page-faulted in), both passes
run in place in preallocated buffers: the row pass as two doubling min-plus scans, the column pass
as a loop over offsets that stops once no larger offset can lower any value, and only maps
holding both foreground and background are transformed (measurements in bench/README.md).
"""

from typing import Optional

import torch
from torch import Tensor

__all__ = ["squared_distance_transform", "distance_transform"]

# Elements per broadcast chunk of the CUDA pass (maps x H x H x W), ~256 MB of float32.
CHUNK_ELEMENTS = 1 << 26
# Rows shorter than this use 16-bit integers in the CPU row pass (see _row_distance_scan).
_INT16_ROW_LIMIT = 1 << 13


def border_distance(h: int, w: int, device) -> Tensor:
    """(H, W) distance to the image border, ``min(y + 1, x + 1, H - y, W - x)``."""
    ys = torch.arange(h, device=device, dtype=torch.float32)[:, None]
    xs = torch.arange(w, device=device, dtype=torch.float32)[None, :]
    return torch.minimum(torch.minimum(ys + 1, h - ys), torch.minimum(xs + 1, w - xs))


def _row_distance(mask: Tensor) -> Tensor:
    """Distance along the last axis to the nearest background (False) pixel.

    Args:
        mask: (N, H, W) bool, True = foreground.

    Returns:
        (N, H, W) float32; 0 on background, ``inf`` where the row has no background pixel.
    """
    w = mask.shape[-1]
    pos = torch.arange(w, device=mask.device, dtype=torch.float32).expand_as(mask)
    inf = torch.full_like(pos, float("inf"))
    # Position of the last background pixel at or before x, and of the first one at or after x.
    left = torch.where(mask, -inf, pos).cummax(dim=-1).values
    right = torch.where(mask, inf, pos).flip(-1).cummin(dim=-1).values.flip(-1)
    return torch.minimum(pos - left, right - pos)


def _column_envelope_broadcast(f2: Tensor) -> Tensor:
    """``out[n, y, x] = min_y' (y - y')^2 + f2[n, y', x]`` as one broadcast min per chunk of maps.

    No data-dependent bound, hence no host synchronisation: the CUDA path.

    Args:
        f2: (N, H, W) float32 squared row distances (``inf`` allowed).

    Returns:
        (N, H, W) float32 squared distances.
    """
    h = f2.shape[1]
    y = torch.arange(h, device=f2.device, dtype=torch.float32)
    dy2 = (y[:, None] - y[None, :]).square()[None, :, :, None]  # (1, H_out, H_in, 1)
    step = max(1, CHUNK_ELEMENTS // max(h * h * f2.shape[2], 1))
    chunks = [(dy2 + f2[i : i + step, None]).amin(dim=2) for i in range(0, f2.shape[0], step)]
    return torch.cat(chunks) if chunks else f2.clone()


def _column_envelope_loop(f2: Tensor, max_offset: Optional[int] = None) -> Tensor:
    """Same as :func:`_column_envelope_broadcast`, restricted to ``|y - y'| <= max_offset``.

    A loop over offsets with in-place minima into preallocated buffers: memory-light and fast on
    the CPU when the distances are small (thin error regions), which is what BANE produces.

    Args:
        f2: (N, H, W) float32 squared row distances (``inf`` allowed).
        max_offset: largest offset to visit; None = stop as soon as no larger offset can lower any
            value (offset ``d`` costs at least ``d^2``, so once ``d^2 >= max(out)`` nothing can
            improve). The adaptive bound reads one scalar per offset: CPU only.

    Returns:
        (N, H, W) float32 squared distances.
    """
    h = f2.shape[1]
    out = f2.clone()
    buf = torch.empty_like(f2)  # one scratch tensor: no allocation inside the loop
    last = h - 1 if max_offset is None else min(max_offset, h - 1)
    for d in range(1, last + 1):
        cost = float(d * d)
        if max_offset is None and not cost < float(out.max()):
            break
        torch.add(f2, cost, out=buf)  # candidates at offset d, read from both sides
        torch.minimum(out[:, d:], buf[:, :-d], out=out[:, d:])
        torch.minimum(out[:, :-d], buf[:, d:], out=out[:, :-d])
    return out


def _row_distance_scan(mask: Tensor) -> Tensor:
    """:func:`_row_distance` by two min-plus scans: the CPU path.

    ``dist(x) = min_x' g(x') + |x - x'|`` with ``g = 0`` on background and ``inf`` elsewhere. A
    left-to-right scan (``min`` over ``x' <= x``) followed by a right-to-left one over its result
    gives the two-sided minimum. Each scan is Hillis-Steele doubling (offsets 1, 2, 4, ...), i.e.
    ``2 * ceil(log2 W)`` in-place passes into one scratch tensor, in 16-bit integers: on the CPU
    this beats the cummax/cummin formulation, whose flips and int64 index outputs allocate several
    full-size tensors per call (allocation, i.e. page faulting, dominates at BANE's sizes).

    Args:
        mask: (N, H, W) bool, True = foreground.

    Returns:
        (N, H, W) float32, same values as :func:`_row_distance`.
    """
    n, h, w = mask.shape
    # 16-bit integers halve the memory traffic of float32; "no background" is a cap that the
    # additions below can never overflow (cap + offset < 2^15), and that maps back to inf.
    dtype = torch.int16 if w < _INT16_ROW_LIMIT else torch.int32
    cap = 2 * _INT16_ROW_LIMIT if dtype == torch.int16 else 2**30
    # Scan along the outermost axis: (W, N*H) layout, so that every shifted slice is one
    # contiguous block (slicing the last axis costs ~10x more per element on small maps).
    dist = mask.permute(2, 0, 1).reshape(w, n * h).to(dtype).mul_(cap)
    buf = torch.empty_like(dist)
    for left_to_right in (True, False):
        s = 1
        while s < w:
            shifted = buf[: w - s]
            # Copy the old values before writing: source and target slices overlap.
            if left_to_right:
                torch.add(dist[:-s], s, out=shifted)
                torch.minimum(dist[s:], shifted, out=dist[s:])
            else:
                torch.add(dist[s:], s, out=shifted)
                torch.minimum(dist[:-s], shifted, out=dist[:-s])
            s *= 2
    out = torch.empty(mask.shape, dtype=torch.float32, device=mask.device)
    out.copy_(dist.view(w, n, h).permute(1, 2, 0))
    return out.masked_fill_(out >= cap, float("inf"))


def _squared_distance_transform_cpu(maps: Tensor) -> Tensor:
    """CPU path of :func:`squared_distance_transform` for (N, H, W) maps with ``H <= W``.

    Only maps with both foreground and background pixels are transformed (scalars are read: there
    is no device to keep busy); empty maps are zero and full maps get the border distance.
    """
    n, h, w = maps.shape
    flat = maps.flatten(1)
    has_fg, all_fg = flat.any(dim=1), flat.all(dim=1)
    mixed = has_fg & ~all_fg
    num_mixed = int(mixed.sum())
    if num_mixed == n:
        return _column_envelope_loop(_row_distance_scan(maps).square_())
    out = torch.zeros(maps.shape, dtype=torch.float32, device=maps.device)
    if num_mixed:
        out[mixed] = _column_envelope_loop(_row_distance_scan(maps[mixed]).square_())
    if bool(all_fg.any()):
        out[all_fg] = border_distance(h, w, maps.device).square()
    return out


def squared_distance_transform(mask: Tensor) -> Tensor:
    """Exact squared Euclidean distance of every foreground pixel to the nearest background pixel.

    Matches ``scipy.ndimage.distance_transform_edt(mask) ** 2`` map by map. A map without any
    background pixel has no boundary; there the distance to the image border is returned instead
    (as if the map were surrounded by background), so rankings inside it stay meaningful.

    Args:
        mask: (..., H, W) bool, True = foreground. Leading dimensions are independent maps.

    Returns:
        (..., H, W) float32, 0 on background pixels.
    """
    shape = mask.shape
    h, w = shape[-2:]
    maps = mask.reshape(-1, h, w)
    transposed = h > w
    if transposed:  # run the quadratic pass along the shorter axis
        maps = maps.transpose(1, 2)
    if maps.is_cuda:
        d2 = _column_envelope_broadcast(_row_distance(maps).square())
        # Maps with no background: distance to the border (as if surrounded by background).
        full = maps.flatten(1).all(dim=1)[:, None, None]
        border = border_distance(maps.shape[1], maps.shape[2], maps.device).square()
        d2 = torch.where(full, border.expand_as(d2), d2)
    else:
        d2 = _squared_distance_transform_cpu(maps.contiguous())
    if transposed:
        d2 = d2.transpose(1, 2)
    return d2.reshape(shape).contiguous()


def distance_transform(mask: Tensor) -> Tensor:
    """Exact Euclidean distance transform; see :func:`squared_distance_transform`.

    Args:
        mask: (..., H, W) bool, True = foreground.

    Returns:
        (..., H, W) float32 distances.
    """
    return squared_distance_transform(mask).sqrt()
