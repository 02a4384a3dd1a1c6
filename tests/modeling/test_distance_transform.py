"""BANE's distance transform (one label map per image) equals scipy.ndimage.distance_transform_edt
of every label's own map."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from contextrast.modeling.contrast import edt as dt_module


def _per_label_reference(labels: torch.Tensor, ignore_label=None) -> np.ndarray:
    """scipy EDT^2 of every label's own map, read on that label's pixels (border convention)."""
    out = np.zeros(labels.shape, dtype=np.float64)
    flat_labels, flat_out = labels.reshape(-1, *labels.shape[-2:]).numpy(), out.reshape(
        -1, *labels.shape[-2:]
    )
    for lab, res in zip(flat_labels, flat_out):
        for n in np.unique(lab):
            if n == ignore_label:
                continue
            m = lab == n
            d = ndimage.distance_transform_edt(np.pad(m, 1) if m.all() else m)
            res[m] = (d[1:-1, 1:-1] if m.all() else d)[m] ** 2
    return np.round(out)


@pytest.mark.parametrize("shape", [(3, 17, 23), (2, 31, 8), (2, 1, 13), (2, 11, 1), (2, 48, 64)])
@pytest.mark.parametrize("num_labels", [1, 2, 5])
@pytest.mark.parametrize("ignore_label", [None, 0])
def test_label_map_transform_equals_per_label_scipy(shape, num_labels, ignore_label):
    g = torch.Generator().manual_seed(hash((shape, num_labels)) % 2**31)
    coarse = torch.randint(0, num_labels, (shape[0], 1, 4, 4), generator=g).float()
    labels = F.interpolate(coarse, size=shape[1:], mode="nearest")[:, 0].long()
    labels[torch.rand(shape, generator=g) < 0.1] = num_labels - 1  # speckle: thin regions
    got = dt_module.squared_distance_to_other_label(labels, ignore_label=ignore_label)
    np.testing.assert_array_equal(got.numpy(), _per_label_reference(labels, ignore_label))


def test_label_map_broadcast_path_matches_loop_path():
    """The CUDA column pass (broadcast, no host sync) is exact too: run it on the CPU."""
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 3, (4, 13, 21), generator=g)
    f2 = dt_module._row_distance_labels(labels).square()
    broadcast = dt_module._column_envelope_labels(f2, labels, adaptive=False)
    torch.testing.assert_close(broadcast, dt_module._column_envelope_labels(f2, labels, True))
    np.testing.assert_array_equal(broadcast.numpy(), _per_label_reference(labels))
