"""BANE: class-wise error maps and exact K% nearest-boundary selection."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from contextrast.modeling.contrast import error_maps, select_boundary_negatives

IGNORE = 255


def _reference_selection(pred, gt, num_classes, ratio, reading):
    """Per image and class: scipy EDT of B^n, stable sort by (distance, raster index)."""
    b, h, w = gt.shape
    chosen = np.zeros((b, h, w), dtype=bool)
    for i in range(b):
        p, g = pred[i].numpy(), gt[i].numpy()
        wrong = (g != IGNORE) & (p != g)
        for n in range(num_classes):
            region = wrong & ((p == n) if reading == "fp" else (g == n))
            if not region.any():
                continue
            d = ndimage.distance_transform_edt(region).ravel()
            idx = np.flatnonzero(region.ravel())
            order = idx[np.argsort(d[idx], kind="stable")]
            k = math.ceil(len(idx) * ratio - 1e-9)
            chosen[i].ravel()[order[:k]] = True
    return chosen


def _random_case(seed, b=3, h=21, w=26, n=5):
    g = torch.Generator().manual_seed(seed)
    gt = torch.randint(0, n, (b, h, w), generator=g)
    # Blocky predictions so that error regions have real interiors and boundaries.
    coarse = torch.randint(0, n, (b, 1, (h + 3) // 4, (w + 3) // 4), generator=g).float()
    pred = torch.nn.functional.interpolate(coarse, scale_factor=4, mode="nearest")[:, 0, :h, :w]
    pred = pred.long()
    gt[torch.rand(b, h, w, generator=g) < 0.1] = IGNORE
    return pred, gt, n


@pytest.mark.parametrize("reading", ["fp", "fn"])
@pytest.mark.parametrize("ratio", [0.5, 0.3, 1.0, 0.01])
def test_selection_is_exactly_the_k_nearest(reading, ratio):
    pred, gt, n = _random_case(seed=int(ratio * 100) + (reading == "fn"))
    sel = select_boundary_negatives(
        pred, gt, num_classes=n, ignore_value=IGNORE, top_k_ratio=ratio, reading=reading,
        tie_break="raster",
    )  # fmt: skip
    expected = _reference_selection(pred, gt, n, ratio, reading)
    np.testing.assert_array_equal(sel.negatives.numpy(), expected)
    assert torch.equal(sel.anchor, pred)  # a pixel confused with class m is a negative of m
    assert int(sel.num_errors) == int(((gt != IGNORE) & (pred != gt)).sum())


def _regions(pred, gt, n, reading):
    wrong = (gt != IGNORE) & (pred != gt)
    owner = pred if reading == "fp" else gt
    return [(i, wrong[i] & (owner[i] == c)) for i in range(gt.shape[0]) for c in range(n)]


@pytest.mark.parametrize("reading", ["fp", "fn"])
def test_random_tie_break_keeps_a_k_nearest_set(reading):
    """Random ties: the same count per region, and no kept pixel farther than a dropped one."""
    pred, gt, n = _random_case(seed=11 + (reading == "fn"))
    torch.manual_seed(0)
    sel = select_boundary_negatives(
        pred, gt, num_classes=n, ignore_value=IGNORE, top_k_ratio=0.5, reading=reading
    )
    for i, region in _regions(pred, gt, n, reading):
        if not region.any():
            continue
        d = torch.from_numpy(ndimage.distance_transform_edt(region.numpy()))
        kept, dropped = sel.negatives[i] & region, region & ~sel.negatives[i]
        assert int(kept.sum()) == math.ceil(int(region.sum()) * 0.5 - 1e-9)
        if dropped.any():
            assert d[kept].max() <= d[dropped].min()


def test_random_tie_break_reaches_every_part_of_a_thin_band():
    """A 2-pixel-wide band has distance 1 everywhere: raster order keeps only its first row and
    the left half of the second, random order keeps pixels of both rows on both halves."""
    gt = torch.zeros(1, 8, 40, dtype=torch.long)
    pred = gt.clone()
    pred[0, 3:5, :] = 1
    kw = dict(num_classes=2, ignore_value=IGNORE, top_k_ratio=0.5)
    raster = select_boundary_negatives(pred, gt, tie_break="raster", **kw).negatives[0]
    assert raster[3].all() and not raster[4].any()
    torch.manual_seed(0)
    picks = torch.stack([select_boundary_negatives(pred, gt, **kw).negatives[0] for _ in range(20)])
    assert int(picks[0].sum()) == 40
    assert picks[:, 4].any() and picks[:, 3].float().mean() < 0.75  # both rows drawn
    assert picks[:, 3:5, 20:].any(0).all()  # every pixel of the right half is kept sometimes
    assert not torch.equal(picks[0], picks[1])


def test_invalid_tie_break_is_rejected():
    gt = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="'first'"):
        select_boundary_negatives(
            gt, gt, num_classes=2, ignore_value=IGNORE, top_k_ratio=0.5, tie_break="first"
        )


def test_error_map_readings_select_same_pairs_with_full_ratio():
    pred, gt, n = _random_case(seed=7)
    kw = dict(num_classes=n, ignore_value=IGNORE, top_k_ratio=1.0)
    fp = select_boundary_negatives(pred, gt, reading="fp", **kw)
    fn = select_boundary_negatives(pred, gt, reading="fn", **kw)
    assert torch.equal(fp.negatives, fn.negatives)
    assert torch.equal(fp.negatives, (gt != IGNORE) & (pred != gt))


def test_error_maps_definitions():
    pred = torch.tensor([[[0, 1, 1], [2, 2, 0]]])
    gt = torch.tensor([[[0, 0, 1], [1, IGNORE, 2]]])
    fp, region_fp, wrong = error_maps(pred, gt, 3, IGNORE, "fp")
    fn, region_fn, _ = error_maps(pred, gt, 3, IGNORE, "fn")
    assert wrong.tolist() == [[[False, True, False], [True, False, True]]]
    # fp: B^n = [pred = n, gt != n]
    assert fp[0, 1].tolist() == [[False, True, False], [False, False, False]]
    assert fp[0, 2].tolist() == [[False, False, False], [True, False, False]]
    assert fp[0, 0].tolist() == [[False, False, False], [False, False, True]]
    # fn: B^n = [gt = n, pred != n]
    assert fn[0, 0].tolist() == [[False, True, False], [False, False, False]]
    assert fn[0, 1].tolist() == [[False, False, False], [True, False, False]]
    assert fn[0, 2].tolist() == [[False, False, False], [False, False, True]]


def test_boundary_pixels_come_first_in_a_blob():
    """A 9x9 mispredicted square: with K small only its outer ring is chosen."""
    gt = torch.zeros(1, 15, 15, dtype=torch.long)
    pred = gt.clone()
    pred[0, 3:12, 3:12] = 1
    sel = select_boundary_negatives(pred, gt, num_classes=2, ignore_value=IGNORE, top_k_ratio=0.3)
    ring = torch.zeros_like(pred[0], dtype=torch.bool)
    ring[3:12, 3:12] = True
    ring[4:11, 4:11] = False
    chosen = sel.negatives[0]
    assert int(chosen.sum()) == math.ceil(81 * 0.3)
    assert torch.all(ring[chosen])  # 25 of the 32 ring pixels, no interior pixel


def test_no_mispredictions_and_all_ignore():
    gt = torch.randint(0, 4, (2, 9, 9))
    sel = select_boundary_negatives(
        gt.clone(), gt, num_classes=4, ignore_value=IGNORE, top_k_ratio=0.5
    )
    assert not sel.negatives.any() and int(sel.num_errors) == 0
    ignore = torch.full((2, 9, 9), IGNORE)
    sel = select_boundary_negatives(gt, ignore, num_classes=4, ignore_value=IGNORE, top_k_ratio=0.5)
    assert not sel.negatives.any()


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_invalid_ratio_is_rejected(bad):
    gt = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="top_k_ratio"):
        select_boundary_negatives(gt, gt, num_classes=2, ignore_value=IGNORE, top_k_ratio=bad)


def test_invalid_reading_is_rejected():
    gt = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="'tp'"):
        select_boundary_negatives(
            gt, gt, num_classes=2, ignore_value=IGNORE, top_k_ratio=0.5, reading="tp"
        )
