"""The pixel-anchor InfoNCE loss of CCL (training only).

For anchor ``a^n`` with positives ``V+`` and negatives ``V-``::

    L^n = -(1/|V+|) sum_{v+} log( exp(a.v+/tau) / (exp(a.v+/tau) + sum_{v-} exp(a.v-/tau)) )

and the layer loss is the mean of ``L^n`` over the anchors ``N_i``: by default
(``average="present"``, the paper's ``1/|N_i|``) every anchor with positives, where
an anchor without negatives contributes ``L^n = 0`` (``-log 1``); ``average="valid"`` averages
over anchors that have both positives and negatives.
Everything is computed in float32 (autocast is disabled by the caller). Under distributed training
the negative sums, the per-anchor sums of positive terms and their counts are reduced over all
processes, so every process computes the loss of the global batch.
"""

from typing import Tuple

import torch
from detectron2.utils import comm
from torch import Tensor

from ...config_checks import LOSS_AVERAGES
from .anchors import all_reduce_sum

__all__ = ["LOSS_AVERAGES", "pixel_anchor_loss", "all_logsumexp"]


# Finite stand-in for log(0): exp() of it is exactly 0 in float32, and unlike -inf its gradient
# through logsumexp stays finite.
_LOG_ZERO = -1.0e4


def all_logsumexp(x: Tensor) -> Tensor:
    """Differentiable ``log(sum over processes of exp(x))`` (identity without distributed training).

    Args:
        x: (N,) float.

    Returns:
        (N,) float.
    """
    if comm.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.logsumexp(torch.stack(all_gather(x)), dim=0)


def pixel_anchor_loss(
    emb: Tensor,
    anchors: Tensor,
    pos_index: Tensor,
    pos_valid: Tensor,
    neg_index: Tensor,
    neg_valid: Tensor,
    temperature: float,
    average: str = "present",
) -> Tuple[Tensor, Tensor]:
    """Pixel-anchor InfoNCE loss of one layer.

    Args:
        emb: (P, D) float32 L2-normalised embeddings of this process.
        anchors: (N, D) float32 unit-norm anchors (zero rows for absent classes).
        pos_index: (N, Kp) long indices into ``emb`` of each anchor's positives.
        pos_valid: (N, Kp) bool.
        neg_index: (N, Kn) long indices of each anchor's negatives.
        neg_valid: (N, Kn) bool.
        temperature: tau > 0.
        average: ``"present"`` (mean over anchors with positives) or ``"valid"`` (mean over
            anchors with positives and negatives).

    Returns:
        loss: () float32; a graph-connected zero when no anchor takes part.
        num_anchors: () number of anchors averaged over (global over processes).
    """
    # One (N, P) similarity matrix and two gathers: a GEMM instead of gathering (N, K, D)
    # embedding copies for positives and negatives (and scattering their gradients back).
    sim = torch.mm(anchors, emb.t()) / temperature  # (N, P)
    s_pos = sim.gather(1, pos_index)  # (N, Kp)
    s_neg = sim.gather(1, neg_index)  # (N, Kn)
    log_neg = torch.logsumexp(s_neg.masked_fill(~neg_valid, _LOG_ZERO), dim=1)  # (N,)
    log_neg = all_logsumexp(log_neg)
    # -log(e^s / (e^s + e^lneg)) = logaddexp(s, lneg) - s
    terms = torch.logaddexp(s_pos, log_neg[:, None]) - s_pos
    pos_sum = all_reduce_sum((terms * pos_valid).sum(1))
    pos_count = all_reduce_sum(pos_valid.sum(1).to(terms.dtype))
    used = pos_count > 0
    if average == "valid":
        used = used & (all_reduce_sum(neg_valid.sum(1).to(terms.dtype)) > 0)
    per_anchor = pos_sum / pos_count.clamp(min=1.0)
    num_anchors = used.sum()
    loss = (per_anchor * used).sum() / num_anchors.clamp(min=1).to(terms.dtype)
    return loss, num_anchors
