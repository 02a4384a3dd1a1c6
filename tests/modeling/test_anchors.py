"""CCL anchors and contextual anchor mixing, against hand-computed values."""

import torch
import torch.nn.functional as F

from contextrast.modeling.contrast.anchors import class_anchors, class_sums, mix_anchors

IGNORE = 255


def test_class_means_by_hand():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 1.0], [5.0, 5.0], [7.0, 7.0]])
    labels = torch.tensor([0, 0, 2, IGNORE, 2])
    anchors, present = class_anchors(emb, labels, num_classes=3)
    torch.testing.assert_close(anchors[0], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(anchors[2], torch.tensor([5.0, 4.0]))
    torch.testing.assert_close(anchors[1], torch.zeros(2))  # absent class: no anchor
    assert present.tolist() == [True, False, True]
    sums, counts = class_sums(emb, labels, 3)
    assert counts.tolist() == [2.0, 0.0, 2.0]  # the ignored pixel is in no class


def test_mixing_by_hand():
    a_low = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    a_high = torch.tensor([[0.0, 1.0], [5.0, 5.0], [0.0, 0.0]])
    present_low = torch.tensor([True, True, True])
    present_high = torch.tensor([True, False, False])
    low, high = mix_anchors([a_low, a_high], [present_low, present_high], w_low=0.25, w_high=0.75)
    # class 0 present in both: normalise(0.25 * [1, 0] + 0.75 * [0, 1])
    torch.testing.assert_close(low[0], F.normalize(torch.tensor([0.25, 0.75]), dim=0))
    # classes 1, 2 absent at the deepest layer: the layer's own anchor stands (normalised)
    torch.testing.assert_close(low[1], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(low[2], torch.tensor([0.6, 0.8]))
    # the deepest layer's anchors are only normalised
    torch.testing.assert_close(high[0], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(high[2], torch.zeros(2))


def test_anchors_are_not_detached():
    emb = torch.randn(6, 4, requires_grad=True)
    labels = torch.tensor([0, 1, 1, 0, 2, IGNORE])
    anchors, _ = class_anchors(emb, labels, 3)
    (low,) = mix_anchors([anchors], [torch.ones(3, dtype=torch.bool)], 0.5, 0.5)
    low[1].sum().backward()
    grad_rows = emb.grad.abs().sum(1) > 0
    assert grad_rows.tolist() == [False, True, True, False, False, False]


def test_normalize_before_mix_weights_directions_not_lengths():
    """Raw means of unequal length: mixing them gives the longer one more than its weight;
    normalising first gives each direction exactly its weight."""
    a_low = torch.tensor([[0.2, 0.0]])  # a short shallow mean (its embeddings disagree)
    a_high = torch.tensor([[0.0, 0.8]])
    present = [torch.tensor([True])] * 2
    raw, _ = mix_anchors([a_low, a_high], present, w_low=0.5, w_high=0.5)
    normed, _ = mix_anchors([a_low, a_high], present, 0.5, 0.5, normalize_first=True)
    torch.testing.assert_close(raw[0], F.normalize(torch.tensor([0.1, 0.4]), dim=0))
    torch.testing.assert_close(normed[0], F.normalize(torch.tensor([0.5, 0.5]), dim=0))
    assert raw[0][1] > 0.95  # the deepest anchor dominates the raw mix


def test_class_sums_match_a_loop_and_skip_every_non_class_label():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(50, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(-1, 5, (50,), generator=g)
    labels[::7] = IGNORE
    sums, counts = class_sums(emb, labels, num_classes=4)  # label 4 and -1 are not classes
    for n in range(4):
        torch.testing.assert_close(sums[n], emb[labels == n].sum(0))
        assert counts[n] == (labels == n).sum()
