"""Feature-level metrics of the paper (supplementary 5.2, after Li et al., TSC, CVPR 2022).

For N classes with feature sets V_i (L2-normalised pixel embeddings) and centroids mu_i:

- intra-class alignment (lower = tighter classes)
  ``A = 1/N sum_i 1/|V_i|^2 sum_{v_j, v_k in V_i} ||v_j - v_k||``;
- inter-class uniformity (higher = classes further apart)
  ``U = 1/(N(N-1)) sum_i sum_{j != i} ||mu_i - mu_j||``;
- neighbourhood uniformity (higher = clearer boundaries to the closest classes)
  ``U_l = 1/(N l) sum_i min_{j_1..j_l} sum_{j in j_1..j_l, j != i} ||mu_i - mu_j||``.

N counts the classes present in the evaluated pixels. Centroids use every pixel; A would need
all pixel pairs, so :class:`ClassFeatureStats` keeps a uniform random sample of at most
``max_samples`` pixels per class over the whole dataset, and A_i is estimated from the sample's
distinct pairs times ``(1 - 1/|V_i|)``: an unbiased estimate of the formula above (whose 1/|V_i|^2
counts the zero self-pairs), exact when the class has at most ``max_samples`` pixels.
"""

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ClassFeatureStats",
    "class_alignment",
    "compute_feature_metrics",
    "inter_class_uniformity",
    "neighbourhood_uniformity",
]


def _pairwise_distances(x: Tensor) -> Tensor:
    # float64: the matrix-product form of cdist loses precision for close unit vectors.
    return torch.cdist(x.double(), x.double())


def class_alignment(
    feats: Tensor, labels: Tensor, num_classes: int, counts: Optional[Tensor] = None
) -> Tensor:
    """Per-class alignment A_i.

    Args:
        feats: (S, C) features (a sample or all of them).
        labels: (S,) class ids in [0, num_classes).
        num_classes: N.
        counts: (N,) full number of pixels per class when ``feats`` is a sample; None = the
            features are the whole set.

    Returns:
        (N,) float64: A_i, NaN for classes without features.
    """
    sample_counts = torch.bincount(labels, minlength=num_classes)
    counts = sample_counts if counts is None else counts.to(sample_counts.device)
    result = torch.full((num_classes,), float("nan"), dtype=torch.float64, device=feats.device)
    for c in torch.nonzero(sample_counts).flatten().tolist():
        m, n = int(sample_counts[c]), int(counts[c])
        if m == 1:
            result[c] = 0.0  # a single pixel: only its zero self-pair
            continue
        # Mean over distinct pairs (the diagonal is zero), rescaled to the 1/n^2 of the formula.
        distinct_mean = _pairwise_distances(feats[labels == c]).sum() / (m * (m - 1))
        result[c] = distinct_mean * (1.0 - 1.0 / n)
    return result


def inter_class_uniformity(centroids: Tensor) -> float:
    """U: mean distance over ordered pairs of distinct centroids, (N, C) -> float (NaN if N < 2)."""
    n = centroids.shape[0]
    if n < 2:
        return float("nan")
    return float(_pairwise_distances(centroids).sum() / (n * (n - 1)))


def neighbourhood_uniformity(centroids: Tensor, num_neighbours: int) -> float:
    """U_l: mean over centroids of the mean distance to their l nearest other centroids.

    Args:
        centroids: (N, C).
        num_neighbours: l >= 1; capped at N - 1.

    Returns:
        float, NaN if N < 2.
    """
    n = centroids.shape[0]
    if n < 2:
        return float("nan")
    k = min(num_neighbours, n - 1)
    dist = _pairwise_distances(centroids)
    dist.fill_diagonal_(float("inf"))
    return float(dist.topk(k, dim=1, largest=False).values.mean())


def _keep_smallest_keys(labels: Tensor, keys: Tensor, cap: int) -> Tensor:
    """Indices of the ``cap`` smallest keys of every class (all of a class if fewer)."""
    by_key = torch.argsort(keys)
    order = by_key[torch.argsort(labels[by_key], stable=True)]  # by class, then by key
    sorted_labels = labels[order]
    counts = torch.bincount(sorted_labels)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(order.numel(), device=labels.device) - starts[sorted_labels]
    return order[rank < cap]


class ClassFeatureStats:
    """Running per-class statistics of pixel embeddings over a dataset.

    Holds, per class, the sum and count of the (L2-normalised) embeddings, and a uniform random
    sample without replacement of at most ``max_samples`` of them: every pixel gets a random key
    and the ``max_samples`` smallest keys of each class are kept, so updates and merges of
    partial statistics (e.g. from several processes) give the sample a single pass would.
    """

    def __init__(self, num_classes: int, max_samples: int, seed: int = 0):
        """
        Args:
            num_classes: N.
            max_samples: per-class cap of the sample used for A.
            seed: seed of the sampling keys.
        """
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        self.num_classes = num_classes
        self.max_samples = max_samples
        self.seed = seed
        self._generator = None
        self.sums: Optional[Tensor] = None  # (N, C) float64
        self.counts: Optional[Tensor] = None  # (N,) int64
        self.feats: Optional[Tensor] = None  # (S, C) sample
        self.labels: Optional[Tensor] = None  # (S,)
        self.keys: Optional[Tensor] = None  # (S,) sampling keys in [0, 1)

    def _random_keys(self, n: int, device: torch.device) -> Tensor:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return torch.rand(n, generator=self._generator, device=device)

    def update(self, feats: Tensor, labels: Tensor) -> None:
        """
        Args:
            feats: (P, C) embeddings, L2-normalised by the caller.
            labels: (P,) class ids in [0, N); filter ignored pixels out first.
        """
        if self.sums is None:
            self.sums = feats.new_zeros(self.num_classes, feats.shape[1], dtype=torch.float64)
            self.counts = labels.new_zeros(self.num_classes, dtype=torch.int64)
        self.sums.index_add_(0, labels, feats.double())
        self.counts += torch.bincount(labels, minlength=self.num_classes)
        keys = self._random_keys(labels.numel(), feats.device)
        # Pre-select within the image so only the kept features are copied.
        keep = _keep_smallest_keys(labels, keys, self.max_samples)
        self._merge_sample(feats[keep], labels[keep], keys[keep])

    def _merge_sample(self, feats: Tensor, labels: Tensor, keys: Tensor) -> None:
        if self.feats is not None:
            feats = torch.cat([self.feats, feats.to(self.feats)])
            labels = torch.cat([self.labels, labels.to(self.labels.device)])
            keys = torch.cat([self.keys, keys.to(self.keys.device)])
        keep = _keep_smallest_keys(labels, keys, self.max_samples)
        self.feats, self.labels, self.keys = feats[keep], labels[keep], keys[keep]

    def state(self) -> Dict[str, Tensor]:
        """The statistics as CPU tensors (to gather from other processes)."""
        names = ("sums", "counts", "feats", "labels", "keys")
        return {k: getattr(self, k).cpu() for k in names if getattr(self, k) is not None}

    def to(self, device) -> "ClassFeatureStats":
        """Move the statistics to ``device`` (in place); returns self."""
        for name in ("sums", "counts", "feats", "labels", "keys"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(device))
        return self

    def merge_state(self, state: Dict[str, Tensor]) -> None:
        """Add another instance's :meth:`state` (e.g. from another process)."""
        if not state:
            return
        if self.sums is None:
            self.sums, self.counts = state["sums"].clone(), state["counts"].clone()
        else:
            self.sums += state["sums"].to(self.sums.device)
            self.counts += state["counts"].to(self.counts.device)
        self._merge_sample(state["feats"], state["labels"], state["keys"])


def compute_feature_metrics(
    stats: ClassFeatureStats, num_neighbours: int, normalize_centroids: bool = False
) -> Dict[str, Tensor]:
    """A, U and U_l from accumulated statistics.

    Args:
        stats: filled :class:`ClassFeatureStats`.
        num_neighbours: l of U_l.
        normalize_centroids: project the centroids onto the unit sphere before U / U_l.

    Returns:
        dict with ``"A"``, ``"U"``, ``"U_l"`` (float), ``"present"`` ((N,) bool) and
        ``"per_class_A"`` ((N,) float64, NaN for absent classes).
    """
    if stats.sums is None:
        raise ValueError("no labelled pixels were accumulated")
    present = stats.counts > 0
    centroids = stats.sums[present] / stats.counts[present, None]
    if normalize_centroids:
        centroids = F.normalize(centroids, dim=1)
    per_class = class_alignment(stats.feats, stats.labels, stats.num_classes, stats.counts)
    return {
        "A": float(per_class[present.to(per_class.device)].mean()),
        "U": inter_class_uniformity(centroids),
        "U_l": neighbourhood_uniformity(centroids, num_neighbours),
        "present": present,
        "per_class_A": per_class,
    }
