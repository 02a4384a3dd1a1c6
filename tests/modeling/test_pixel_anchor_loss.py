"""Pixel-anchor InfoNCE loss against a naive loop implementation."""

import pytest
import torch
import torch.nn.functional as F

from contextrast.modeling.contrast.loss import pixel_anchor_loss

IGNORE = 255


def _naive_loss(emb, anchors, pos_index, pos_valid, neg_index, neg_valid, tau, average):
    """The paper's formula (docs/design_decisions.md, CCL) with Python loops over anchors and
    pixels."""
    per_anchor = []
    for n in range(anchors.shape[0]):
        pos = [int(i) for i, ok in zip(pos_index[n], pos_valid[n]) if ok]
        neg = [int(i) for i, ok in zip(neg_index[n], neg_valid[n]) if ok]
        if not pos or (not neg and average == "valid"):
            continue
        # An empty sum of negatives: -log(e / e) = 0 for every positive.
        neg_sum = sum((torch.exp(anchors[n] @ emb[j] / tau) for j in neg), emb.new_zeros(()))
        terms = []
        for i in pos:
            e = torch.exp(anchors[n] @ emb[i] / tau)
            terms.append(-torch.log(e / (e + neg_sum)))
        per_anchor.append(sum(terms) / len(terms))
    return sum(per_anchor) / len(per_anchor)


def _case(seed, p=40, d=8, n=4, kp=6, kn=9):
    g = torch.Generator().manual_seed(seed)
    emb = F.normalize(torch.randn(p, d, generator=g, dtype=torch.float64), dim=1)
    anchors = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    pos_index = torch.randint(0, p, (n, kp), generator=g)
    neg_index = torch.randint(0, p, (n, kn), generator=g)
    pos_valid = torch.rand(n, kp, generator=g) < 0.7
    neg_valid = torch.rand(n, kn, generator=g) < 0.6
    pos_valid[0] = False  # an anchor without positives
    neg_valid[1] = False  # an anchor without negatives
    pos_valid[2:, 0] = True
    neg_valid[2:, 0] = True
    return emb, anchors, pos_index, pos_valid, neg_index, neg_valid


@pytest.mark.parametrize("average, anchors_used", [("present", 3), ("valid", 2)])
@pytest.mark.parametrize("tau", [0.1, 0.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_loop_values_and_gradients(seed, tau, average, anchors_used):
    emb, anchors, pi, pv, ni, nv = _case(seed)
    emb1, anc1 = emb.clone().requires_grad_(), anchors.clone().requires_grad_()
    emb2, anc2 = emb.clone().requires_grad_(), anchors.clone().requires_grad_()
    loss, used = pixel_anchor_loss(emb1, anc1, pi, pv, ni, nv, tau, average)
    ref = _naive_loss(emb2, anc2, pi, pv, ni, nv, tau, average)
    torch.testing.assert_close(loss, ref)
    # "present" averages over the 3 anchors with positives (one has no negatives), the paper's
    # 1/|N_i|; "valid" over the 2 with both.
    assert int(used) == anchors_used
    loss.backward()
    ref.backward()
    torch.testing.assert_close(emb1.grad, emb2.grad)
    torch.testing.assert_close(anc1.grad, anc2.grad)


@pytest.mark.parametrize("average, anchors_used", [("present", 3), ("valid", 0)])
def test_no_negatives_gives_connected_zero(average, anchors_used):
    emb, anchors, pi, pv, ni, nv = _case(3)
    emb = emb.float().requires_grad_()
    no_neg = torch.zeros_like(nv)
    loss, used = pixel_anchor_loss(emb, anchors.float(), pi, pv, ni, no_neg, 0.1, average)
    assert loss.item() == 0.0 and int(used) == anchors_used
    loss.backward()  # still part of the graph
    assert torch.all(torch.isfinite(emb.grad)) and torch.all(emb.grad == 0)
