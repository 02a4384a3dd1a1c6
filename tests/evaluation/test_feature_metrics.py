"""Feature-level metrics A, U, U_l: hand-computed values, a naive loop, sampling, the evaluator."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import FP32_RTOL, SMALL_HEADS_OPTS, assert_close_to_reference, demo_cfg

from contextrast.evaluation import (
    ClassFeatureStats,
    FeatureMetricsEvaluator,
    class_alignment,
    compute_feature_metrics,
    inter_class_uniformity,
    neighbourhood_uniformity,
)


def naive_metrics(feats, labels, num_classes, k):
    """The paper's formulas with Python loops over every pair (no sampling)."""
    rows = [[float(v) for v in f] for f in feats]
    groups = {c: [r for r, y in zip(rows, labels.tolist()) if y == c] for c in range(num_classes)}
    groups = {c: g for c, g in groups.items() if g}
    per_class = {}
    for c, g in groups.items():
        total = sum(math.dist(a, b) for a in g for b in g)  # ordered pairs, self-pairs included
        per_class[c] = total / len(g) ** 2
    centroids = [[sum(col) / len(g) for col in zip(*g)] for g in groups.values()]
    n = len(centroids)
    u = sum(math.dist(a, b) for a, b in itertools.permutations(centroids, 2)) / (n * (n - 1))
    u_l = 0.0
    for i, a in enumerate(centroids):
        others = sorted(math.dist(a, b) for j, b in enumerate(centroids) if j != i)
        u_l += sum(others[: min(k, n - 1)]) / min(k, n - 1)
    return sum(per_class.values()) / len(per_class), u, u_l / n, per_class


def run_stats(feats, labels, num_classes, cap, k=3, chunks=1):
    stats = ClassFeatureStats(num_classes, cap)
    for f, y in zip(feats.chunk(chunks), labels.chunk(chunks)):
        stats.update(f, y)
    return stats, compute_feature_metrics(stats, k)


def test_hand_computed_2d_example():
    # class 0: (1,0), (0,1); class 1: (-1,0); class 2: (0,-1) twice; class 3 absent.
    feats = torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1], [0, -1]])
    labels = torch.tensor([0, 0, 1, 2, 2])
    _, m = run_stats(feats, labels, num_classes=4, cap=10, k=1)
    # A_0 = (2 ordered pairs at sqrt(2)) / 2^2; A_1 = A_2 = 0.
    assert m["A"] == pytest.approx(math.sqrt(2) / 2 / 3)
    assert m["per_class_A"][0] == pytest.approx(math.sqrt(2) / 2)
    assert math.isnan(m["per_class_A"][3]) and m["present"].tolist() == [True, True, True, False]
    # Centroids (0.5, 0.5), (-1, 0), (0, -1): distances sqrt(2.5), sqrt(2.5), sqrt(2).
    assert m["U"] == pytest.approx((2 * math.sqrt(2.5) + math.sqrt(2)) / 3)
    assert m["U_l"] == pytest.approx((math.sqrt(2.5) + 2 * math.sqrt(2)) / 3)  # l = 1
    centroids = torch.tensor([[0.5, 0.5], [-1.0, 0], [0, -1]])
    assert neighbourhood_uniformity(centroids, 2) == pytest.approx(m["U"])  # l = N - 1 -> U
    assert neighbourhood_uniformity(centroids, 5) == pytest.approx(m["U"])  # l capped at N - 1
    assert math.isnan(inter_class_uniformity(centroids[:1]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_equals_naive_loop(seed):
    g = torch.Generator().manual_seed(seed)
    num_classes, dim = 5, 6
    labels = torch.randint(0, num_classes - 1, (60,), generator=g)  # the last class is absent
    labels[:2] = torch.tensor([0, 1])
    feats = F.normalize(torch.randn(60, dim, generator=g) + labels[:, None] * 0.3, dim=1)
    a, u, u_l, per_class = naive_metrics(feats, labels, num_classes, k=2)
    # Cap above every class size (exact), in one pass and in three updates.
    for chunks in (1, 3):
        _, m = run_stats(feats, labels, num_classes, cap=1000, k=2, chunks=chunks)
        assert m["A"] == pytest.approx(a, rel=1e-9)
        assert m["U"] == pytest.approx(u, rel=1e-9)
        assert m["U_l"] == pytest.approx(u_l, rel=1e-9)
        for c, value in per_class.items():
            assert m["per_class_A"][c] == pytest.approx(value, rel=1e-9)


def test_capped_sample_is_per_class_uniform_and_unbiased():
    g = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.zeros(3000, dtype=torch.long), torch.ones(50, dtype=torch.long)])
    feats = F.normalize(torch.randn(3050, 8, generator=g), dim=1)
    stats, m = run_stats(feats, labels, 2, cap=400, chunks=7)
    assert torch.bincount(stats.labels).tolist() == [400, 50]  # capped / whole class
    assert stats.counts.tolist() == [3000, 50]
    # Every kept row is a feature of its class.
    member = (stats.feats[:, None] == feats[None]).all(-1)
    assert (member & (labels[None] == stats.labels[:, None])).any(1).all()
    exact = class_alignment(feats, labels, 2)
    assert m["per_class_A"][1] == pytest.approx(float(exact[1]), rel=1e-9)  # not subsampled
    assert m["per_class_A"][0] == pytest.approx(float(exact[0]), rel=0.02)  # estimate
    # Centroids use every pixel, not the sample.
    # Sums of 3000 unit vectors (up to ~30): float32 sum vs the float64 accumulator, relative.
    assert_close_to_reference(stats.sums[0], feats[:3000].sum(0), rtol=FP32_RTOL)


def test_merging_partial_statistics_keeps_the_smallest_keys():
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 3, (500,), generator=g)
    feats = F.normalize(torch.randn(500, 4, generator=g), dim=1)
    first, second = ClassFeatureStats(3, 50, seed=1), ClassFeatureStats(3, 50, seed=2)
    first.update(feats[:250], labels[:250])
    second.update(feats[250:], labels[250:])
    union_keys = torch.cat([first.keys, second.keys])
    union_labels = torch.cat([first.labels, second.labels])
    merged = ClassFeatureStats(3, 50)
    merged.merge_state(first.state())
    merged.merge_state(second.state())
    assert merged.counts.tolist() == torch.bincount(labels, minlength=3).tolist()
    for c in range(3):
        expected = union_keys[union_labels == c].sort().values[:50]
        torch.testing.assert_close(merged.keys[merged.labels == c].sort().values, expected)


def test_evaluator_downsamples_labels_and_drops_ignore():
    g = torch.Generator().manual_seed(5)
    evaluator = FeatureMetricsEvaluator(
        num_classes=3, num_neighbours=1, class_names=["a", "b", "c"], max_samples_per_class=10**4
    )
    evaluator.reset()
    all_feats, all_labels = [], []
    for h, w in [(6, 8), (5, 7)]:
        emb = torch.randn(4, h, w, generator=g)
        labels = torch.randint(0, 3, (2 * h, 2 * w), generator=g)
        labels[:4] = 255
        evaluator.process([{"sem_seg": labels}], [{"embeddings": emb}])
        small = labels[::2, ::2].flatten()  # nearest neighbour at stride 2
        keep = small != 255
        all_feats.append(F.normalize(emb.flatten(1).t()[keep], dim=1))
        all_labels.append(small[keep])
    res = evaluator.evaluate()["feature_metrics"]
    a, u, u_l, per_class = naive_metrics(torch.cat(all_feats), torch.cat(all_labels), 3, k=1)
    assert res["A"] == pytest.approx(a, rel=1e-6)
    assert res["U"] == pytest.approx(u, rel=1e-6)
    assert res["U_l"] == pytest.approx(u_l, rel=1e-6)
    assert res["A-b"] == pytest.approx(per_class[1], rel=1e-6)
    assert res["l"] == 1 and res["num_classes"] == 3
    with pytest.raises(ValueError, match="sem_seg"):
        evaluator.process([{"file_name": "x.png"}], [{"embeddings": torch.zeros(4, 2, 2)}])


def test_evaluator_from_config(subset):
    name = subset("synth_streets_val", 1)
    cfg = demo_cfg(*SMALL_HEADS_OPTS, "TEST.FEATURE_METRICS.NUM_NEIGHBOURS", "2")
    evaluator = FeatureMetricsEvaluator(cfg, name)
    assert evaluator.num_neighbours == 2 and evaluator.max_samples_per_class == 2048
    assert evaluator.num_classes == 8 and evaluator.class_names[0] == "road"
