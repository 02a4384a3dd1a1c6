"""Positive and negative pixel samplers of the contrastive loss (caps, classes, BANE first)."""

import math

import torch

from contextrast.modeling.contrast.sampling import sample_negatives, sample_positives

IGNORE = 255


def test_positive_sampler_caps_and_covers_classes():
    labels = torch.tensor([0] * 10 + [1] * 3 + [IGNORE] * 5 + [3] * 7)
    index, valid = sample_positives(labels, num_classes=4, max_per_class=5)
    assert index.shape == (4, 5)
    assert valid.sum(1).tolist() == [5, 3, 0, 5]
    for n in range(4):
        picked = index[n][valid[n]]
        assert torch.all(labels[picked] == n)
        assert picked.unique().numel() == picked.numel()  # without replacement


def test_negative_sampler_prefers_bane_and_tops_up():
    labels = torch.tensor([0] * 6 + [1] * 6 + [2] * 6 + [IGNORE] * 2)
    bane = torch.zeros(20, dtype=torch.bool)
    bane_anchor = torch.zeros(20, dtype=torch.long)
    bane[[6, 7, 12]] = True  # class-1 and class-2 pixels predicted as class 0
    index, valid, num_bane = sample_negatives(
        labels, 3, min_count=5, max_count=8, bane_negatives=bane, bane_anchor=bane_anchor
    )
    assert num_bane.tolist() == [3, 0, 0]
    assert valid.sum(1).tolist() == [5, 5, 5]  # topped up to MIN_NEGATIVES
    chosen0 = set(index[0][valid[0]].tolist())
    assert {6, 7, 12} <= chosen0  # every BANE negative first
    for n in range(3):
        assert torch.all(labels[index[n][valid[n]]] != n)
        assert not torch.any(labels[index[n][valid[n]]] == IGNORE)


def test_negative_sampler_caps_bane_and_random_without_bane():
    labels = torch.tensor([0] * 4 + [1] * 30)
    bane = torch.ones(34, dtype=torch.bool)
    bane[:4] = False
    index, valid, num_bane = sample_negatives(
        labels, 2, min_count=2, max_count=10, bane_negatives=bane,
        bane_anchor=torch.zeros(34, dtype=torch.long),
    )  # fmt: skip
    assert num_bane.tolist() == [30, 0] and valid.sum(1).tolist() == [10, 2]
    index, valid, _ = sample_negatives(labels, 2, min_count=2, max_count=10)
    assert valid.sum(1).tolist() == [10, 4]  # without BANE: MAX_NEGATIVES random others
    assert math.isclose(float(labels[index[0][valid[0]]].float().mean()), 1.0)
