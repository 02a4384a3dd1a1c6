"""MODEL.CONTEXTRAST.SAMPLING_CAPS with two real processes (gloo): what the caps count.

"global" (default): two processes holding half a batch each take, per class and anchor, exactly
as many positives and negatives as one process holding the whole batch, BANE negatives first.
"per_process": each process applies the caps to its own pixels, so two take up to twice as many.
"""

import pytest
import torch
from helpers.spawn import run_in_process_group

from contextrast.modeling.contrast.sampling import sample_negatives, sample_positives

WORLD = 2
N = 5  # classes; class 4 is absent from the second half
P = 2 * 900  # pixels of the global batch
MAX_POS, MIN_NEG, MAX_NEG = 60, 40, 120
TIMEOUT_S = 120


def _batch():
    """Labels (-1 = ignore), BANE selection and BANE anchors of the global batch."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(-1, N - 1, (P,), generator=g)
    labels[: P // 4][torch.rand(P // 4, generator=g) < 0.2] = N - 1  # rare class, first half only
    bane = torch.rand(P, generator=g) < 0.2
    # Anchor 0 has many BANE negatives (above MAX_NEG), the others a few (below MIN_NEG).
    anchor = torch.where(
        torch.rand(P, generator=g) < 0.7, 0, torch.randint(1, N, (P,), generator=g)
    )
    # As BANE selects them: labelled pixels of another class than their anchor.
    bane &= (labels >= 0) & (anchor != labels)
    return labels, bane, anchor


def _counts(labels, bane, anchor, global_caps: bool):
    """Per class: positives taken; per anchor: negatives taken and BANE negatives among them."""
    pos_idx, pos_ok = sample_positives(labels, N, MAX_POS, global_caps=global_caps)
    neg_idx, neg_ok, _ = sample_negatives(
        labels, N, min_count=MIN_NEG, max_count=MAX_NEG, bane_negatives=bane, bane_anchor=anchor,
        global_caps=global_caps,
    )  # fmt: skip
    classes = torch.arange(N)[:, None]
    assert bool(((labels[pos_idx] == classes) | ~pos_ok).all())  # positives of their own class
    assert bool(((labels[neg_idx] != classes) & (labels[neg_idx] >= 0) | ~neg_ok).all())
    is_bane = bane[neg_idx] & (anchor[neg_idx] == classes)
    return torch.stack([pos_ok.sum(1), neg_ok.sum(1), (is_bane & neg_ok).sum(1)])  # (3, N)


def _half_batch_counts(rank: int):
    """Counts on process ``rank``'s half of the batch, per caps mode, for three random draws."""
    half = slice(rank * P // 2, (rank + 1) * P // 2)
    labels, bane, anchor = (x[half] for x in _batch())
    results = {}
    for mode in ("global", "per_process"):
        runs = []
        for seed in range(3):  # other random draws, same counts
            torch.manual_seed(100 * rank + seed)
            runs.append(_counts(labels, bane, anchor, mode == "global"))
        results[mode] = runs
    return results


@pytest.fixture(scope="module")
def per_rank(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sampling_caps"))
    return run_in_process_group(
        _half_batch_counts, out, world=WORLD, timeout_s=TIMEOUT_S, what="sampling"
    )


def test_global_caps_take_what_one_process_takes(per_rank):
    torch.manual_seed(0)
    single = _counts(*_batch(), global_caps=True)  # one process: no collective
    labels, bane, anchor = _batch()
    # The batch is built so that every cap matters somewhere.
    class_pixels = torch.stack([(labels == n).sum() for n in range(N)])
    assert (class_pixels > MAX_POS).sum() >= 3 and single[0, N - 1] == min(
        MAX_POS, class_pixels[-1]
    )
    bane_per_anchor = torch.stack([(bane & (anchor == n)).sum() for n in range(N)])
    assert bane_per_anchor[0] > MAX_NEG and (bane_per_anchor[1:] < MIN_NEG).all()
    for run in range(3):
        total = per_rank[0]["global"][run] + per_rank[1]["global"][run]
        assert torch.equal(total, single), (total, single)
    # Anchors with fewer BANE negatives than MIN_NEGATIVES keep all of them, over both processes.
    assert torch.equal(single[2, 1:], bane_per_anchor[1:])
    assert single[1, 0] == single[2, 0] == MAX_NEG  # anchor 0: only BANE negatives, capped


def test_per_process_caps_grow_with_the_processes(per_rank):
    halves = [slice(0, P // 2), slice(P // 2, P)]
    labels, bane, anchor = _batch()
    expected = torch.stack(
        [_counts(labels[h], bane[h], anchor[h], global_caps=False) for h in halves]
    ).sum(0)
    total = per_rank[0]["per_process"][0] + per_rank[1]["per_process"][0]
    assert torch.equal(total, expected)
    single = _counts(labels, bane, anchor, global_caps=False)
    assert (total[0] > single[0]).any() and total[1, 0] > single[1, 0] == MAX_NEG
