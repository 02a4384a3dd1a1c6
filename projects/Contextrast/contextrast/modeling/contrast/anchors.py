"""CCL class anchors: per-class mean embeddings over the (global) batch, mixed across layers.

Anchors are not detached here: the paper derives the loss gradient with respect to the anchor, so
the gradient reaches every pixel that contributed to a class mean (``MODEL.CONTEXTRAST.
DETACH_ANCHORS`` detaches them in the criterion). Under distributed training the
per-class sums and counts are all-reduced with the autograd-aware collective, which sums the
incoming gradients across processes on the way back.
"""

from typing import List, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from detectron2.utils import comm
from torch import Tensor

__all__ = ["class_sums", "all_reduce_sum", "class_anchors", "mix_anchors"]


def all_reduce_sum(x: Tensor) -> Tensor:
    """Differentiable sum over all processes (identity without distributed training).

    Args:
        x: any tensor.

    Returns:
        Tensor of the same shape holding the sum over processes.
    """
    if comm.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(x, op=dist.ReduceOp.SUM)


def class_sums(emb: Tensor, labels: Tensor, num_classes: int) -> Tuple[Tensor, Tensor]:
    """Per-class sums and counts of the embeddings of one process.

    Ignored pixels (label outside ``[0, num_classes)``) match no class; no boolean indexing (a
    host sync on CUDA).

    Args:
        emb: (P, D) float embeddings.
        labels: (P,) long labels.
        num_classes: N.

    Returns:
        sums: (N, D) float; counts: (N,) float.
    """
    classes = torch.arange(num_classes, device=labels.device)
    # A (N, P) one-hot matrix times the embeddings: one GEMM forward and backward, where
    # index_add_ scatters with atomics on the GPU and gathers row by row in its backward.
    one_hot = (labels[None, :] == classes[:, None]).to(emb.dtype)
    return torch.mm(one_hot, emb), one_hot.sum(1)


def class_anchors(emb: Tensor, labels: Tensor, num_classes: int) -> Tuple[Tensor, Tensor]:
    """Class anchors ``a^n`` = mean embedding of class ``n`` over the batch of all processes.

    Args:
        emb: (P, D) float embeddings of this process.
        labels: (P,) long labels (ignore = any value outside ``[0, N)``).
        num_classes: N.

    Returns:
        anchors: (N, D) class means (zero rows for absent classes).
        present: (N,) bool, class has at least one pixel in the global batch.
    """
    sums, counts = class_sums(emb, labels, num_classes)
    sums = all_reduce_sum(sums)
    counts = all_reduce_sum(counts.detach())
    anchors = sums / counts.clamp(min=1.0)[:, None]
    return anchors, counts > 0


def mix_anchors(
    anchors: List[Tensor],
    present: List[Tensor],
    w_low: float,
    w_high: float,
    normalize_first: bool = False,
) -> List[Tensor]:
    """Contextual anchor update ``A_i <- w_l * A_i + w_h * A_I`` (i < I), then L2 normalisation.

    Only classes present at both layer ``i`` and the deepest layer ``I`` are mixed; elsewhere the
    layer's own anchor stands. Every anchor is L2-normalised so that ``anchor . v`` is a cosine
    similarity, like the embeddings it is compared with.

    A class mean of unit vectors is shorter the more its embeddings disagree, and shallow layers
    disagree more: mixing raw means lets the deepest anchor carry more of the direction than
    ``w_h`` says. ``normalize_first`` mixes unit-norm anchors instead, so ``w_l : w_h`` is the
    ratio of the two directions' weights.

    Args:
        anchors: I tensors (N, D), shallowest layer first, deepest last.
        present: I tensors (N,) bool.
        w_low: weight w_l of the layer's own anchor.
        w_high: weight w_h of the deepest layer's anchor.
        normalize_first: L2-normalise the class means before mixing (False: mix raw means, the
            paper's formula).

    Returns:
        I tensors (N, D) of unit-norm anchors (zero rows stay zero).
    """
    if normalize_first:
        anchors = [F.normalize(a, dim=1) for a in anchors]
    deepest, deepest_present = anchors[-1], present[-1]
    mixed = []
    for a, p in zip(anchors[:-1], present[:-1]):
        both = (p & deepest_present)[:, None]
        mixed.append(torch.where(both, w_low * a + w_high * deepest, a))
    mixed.append(deepest)
    return [F.normalize(a, dim=1) for a in mixed]
