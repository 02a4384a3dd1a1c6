"""Exact Euclidean distance transform of batched binary maps, on the maps' own device.

BANE ranks the pixels of every class-wise error map by their distance to the region boundary. The
reference is :func:`scipy.ndimage.distance_transform_edt`, but calling it per step would move every
map to the CPU; this module computes the same exact distances with batched tensor ops instead.

The transform is separable (Felzenszwalb & Huttenlocher, 2012): first the 1-D distance to the
nearest background pixel along each row (two running max/min scans), then the lower envelope of
parabolas ``min_y' (y - y')^2 + f(y')^2`` along each column. The second pass runs along the shorter
image axis. On CUDA it is one broadcast min per chunk of maps (no host synchronisation, a handful of
kernels); on the CPU it is a loop over offsets bounded by the largest distance that can occur, which
keeps it as fast as scipy for the thin error regions BANE sees.
"""
import torch
from torch import Tensor

__all__ = ["squared_distance_transform", "distance_transform"]

# Elements per broadcast chunk of the CUDA pass (maps x H x H x W), ~256 MB of float32.
_CHUNK_ELEMENTS = 1 << 26


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
    step = max(1, _CHUNK_ELEMENTS // max(h * h * f2.shape[2], 1))
    chunks = [(dy2 + f2[i : i + step, None]).amin(dim=2) for i in range(0, f2.shape[0], step)]
    return torch.cat(chunks) if chunks else f2.clone()


def _column_envelope_loop(f2: Tensor, max_offset: int) -> Tensor:
    """Same as :func:`_column_envelope_broadcast`, restricted to ``|y - y'| <= max_offset``.

    A loop over offsets with in-place minima: memory-light and fast on the CPU when the bound is
    small (thin error regions), which is what BANE produces.
    """
    h = f2.shape[1]
    out = f2.clone()
    for d in range(1, min(max_offset, h - 1) + 1):
        cost = float(d * d)
        torch.minimum(out[:, d:], f2[:, :-d] + cost, out=out[:, d:])
        torch.minimum(out[:, :-d], f2[:, d:] + cost, out=out[:, :-d])
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
    if not maps.is_cuda:
        # Most class-wise error maps are empty; on the CPU skipping them costs no sync.
        active = maps.flatten(1).any(dim=1)
        if not bool(active.all()):
            out = torch.zeros(maps.shape, dtype=torch.float32, device=maps.device)
            out[active] = squared_distance_transform(maps[active])
            return out.reshape(shape)
    transposed = h > w
    if transposed:  # run the quadratic pass along the shorter axis
        maps = maps.transpose(1, 2)
    row = _row_distance(maps)
    if maps.is_cuda:
        d2 = _column_envelope_broadcast(row.square())
    else:
        # Any distance is at most the 1-D distance along a row or a column, so offsets beyond the
        # largest such bound cannot win. Reading it costs nothing on the CPU.
        col = _row_distance(maps.transpose(1, 2).contiguous()).transpose(1, 2)
        bound = torch.minimum(row, col)
        finite = bound[torch.isfinite(bound)]
        max_offset = int(finite.max().item()) if finite.numel() else 0
        d2 = _column_envelope_loop(row.square(), max_offset)

    # Maps with no background: distance to the border, min(y + 1, x + 1, H - y, W - x).
    mh, mw = maps.shape[1:]
    ys = torch.arange(mh, device=mask.device, dtype=torch.float32)[:, None]
    xs = torch.arange(mw, device=mask.device, dtype=torch.float32)[None, :]
    border = torch.minimum(torch.minimum(ys + 1, mh - ys), torch.minimum(xs + 1, mw - xs))
    full = maps.flatten(1).all(dim=1)[:, None, None]
    d2 = torch.where(full, border.square().expand_as(d2), d2)
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
