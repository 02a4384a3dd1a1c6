"""bench/binary_edt.py, the per-map distance transform that bench/bane.py compares BANE's
label-map transform with, equals scipy.ndimage.distance_transform_edt (bench/bane.py relies on
it being exact)."""

import numpy as np
import pytest
import torch
from helpers import assert_close_to_reference
from scipy import ndimage

from bench import binary_edt as dt_module
from bench.binary_edt import distance_transform, squared_distance_transform

# Distances reach ~20 here: float32 square roots of exact integers are within 6e-8 of them, so
# the tolerance is relative to the largest distance, not absolute.
DISTANCE_RTOL = 1e-6


def _assert_distances(actual: torch.Tensor, expected: np.ndarray) -> None:
    assert_close_to_reference(actual, expected, rtol=DISTANCE_RTOL, what="distances")


def _scipy(maps: torch.Tensor) -> np.ndarray:
    flat = maps.reshape(-1, *maps.shape[-2:]).numpy()
    return np.stack([ndimage.distance_transform_edt(m) for m in flat]).reshape(maps.shape)


@pytest.mark.parametrize("shape", [(4, 17, 23), (3, 31, 8), (2, 1, 13), (2, 11, 1), (5, 64, 96)])
@pytest.mark.parametrize("density", [0.05, 0.5, 0.95])
def test_random_maps_match_scipy(shape, density):
    g = torch.Generator().manual_seed(hash((shape, density)) % 2**31)
    maps = torch.rand(shape, generator=g) < density
    maps[:, 0, 0] = False  # every map keeps a background pixel (full maps are tested below)
    _assert_distances(distance_transform(maps), _scipy(maps))


def test_blobs_with_large_distances_match_scipy():
    maps = torch.zeros(3, 40, 70, dtype=torch.bool)
    maps[0, 5:35, 10:60] = True
    maps[1, :, 20:50] = True  # touches the top and bottom border
    yy, xx = torch.meshgrid(torch.arange(40), torch.arange(70), indexing="ij")
    maps[2] = (yy - 20) ** 2 + (xx - 35) ** 2 < 18**2
    _assert_distances(distance_transform(maps), _scipy(maps))


def test_empty_maps_are_zero():
    maps = torch.zeros(2, 9, 12, dtype=torch.bool)
    out = distance_transform(maps)
    assert out.shape == maps.shape and torch.all(out == 0)
    np.testing.assert_allclose(out.numpy(), _scipy(maps))


def test_full_map_falls_back_to_border_distance():
    """No background pixel: distance to the border, i.e. scipy on the map padded with background."""
    maps = torch.ones(1, 7, 10, dtype=torch.bool)
    padded = np.pad(maps[0].numpy(), 1, constant_values=False)
    expected = ndimage.distance_transform_edt(padded)[1:-1, 1:-1]
    _assert_distances(distance_transform(maps)[0], expected)


def test_mixed_batch_and_leading_dims():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 3, 15, 19, generator=g) < 0.7
    maps[0, 1] = False  # an empty map between non-empty ones
    maps[..., 0, 0] = False
    out = distance_transform(maps)
    assert out.shape == maps.shape
    _assert_distances(out, _scipy(maps))


def test_cuda_broadcast_path_matches_cpu_loop_path():
    """The CUDA code path (broadcast min, no host sync) is exact too: run it on the CPU."""
    g = torch.Generator().manual_seed(1)
    maps = torch.rand(6, 13, 21, generator=g) < 0.8
    maps[:, 0, 0] = False
    f2 = dt_module._row_distance(maps).square()
    broadcast = dt_module._column_envelope_broadcast(f2)
    torch.testing.assert_close(broadcast, dt_module._column_envelope_loop(f2, max_offset=12))
    _assert_distances(broadcast.sqrt(), _scipy(maps))


def test_squared_is_integral():
    maps = torch.rand(2, 20, 30) < 0.9
    maps[:, 0, 0] = False
    d2 = squared_distance_transform(maps)
    assert torch.equal(d2, d2.round())
