"""How much of the contrastive gradient reaches the segmentation network (training only).

The projection heads read features that the segmentation network also uses (backbone stages, or
the head's own features). :class:`ContrastGradientGate` sits between such a feature and its
projection head: an identity in the forward pass that shapes the gradient the head sends back:

- before ``start_iter`` the head reads a detached feature (it learns; the network does not);
- the gradient is multiplied by ``grad_scale`` (1 = the paper, 0 = detached); with ``start_iter``
  > 0 that factor ramps from 0 to ``grad_scale`` over ``warmup_iters`` iterations from
  ``start_iter``, so that the network's contrastive push starts gently (alpha, the heads' own
  loss weight, is not reset there: see ``ContextrastCriterion.effective_weight``);
- with ``ratio_cap > 0`` its norm is capped at ``ratio_cap`` times the norm of the gradient the
  rest of the network sends to the same feature in the same backward pass.

The cap needs both gradients at the same time, and autograd does not order the two consumers of a
feature. So the contrastive branch hands its gradient to a holder and sends nothing; a hook on the
feature, which runs once every consumer has sent its part, adds the held gradient back, scaled.
Everything stays on the device (no host sync) and nothing is stored between steps, so a resumed
run is exact and no state reaches a checkpoint. Under distributed training each process caps its
own gradients before DDP averages them.
"""

from typing import Dict, List, Optional

import torch
from detectron2.config import configurable
from torch import Tensor

from ...config_checks import check_contextrast_values

__all__ = ["ContrastGradientGate", "scale_gradient"]


class _Holder:
    """The contrastive gradient of one feature in one backward pass, until the feature's hook."""

    __slots__ = ("grad",)

    def __init__(self):
        self.grad: Optional[Tensor] = None


class _GateGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``scale`` and, with a holder, hands
    it over instead of sending it (the feature's hook adds it back)."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float, holder: Optional[_Holder]) -> Tensor:
        ctx.scale, ctx.holder = scale, holder
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad * ctx.scale if ctx.scale != 1.0 else grad
        holder = ctx.holder
        if holder is None:
            return grad, None, None
        holder.grad = grad if holder.grad is None else holder.grad + grad
        return None, None, None


def scale_gradient(x: Tensor, scale: float) -> Tensor:
    """``x`` in the forward pass; its gradient multiplied by ``scale`` in the backward pass.

    Args:
        x: any tensor.
        scale: finite, >= 0; 1 returns ``x`` itself, 0 returns ``x.detach()``.
    """
    if scale == 1.0:
        return x
    if scale == 0.0:
        return x.detach()
    return _GateGrad.apply(x, scale, None)


class ContrastGradientGate:
    """Applies ``MODEL.CONTEXTRAST.{START_ITER, FEATURE_GRAD_SCALE, GRAD_RATIO_CAP}`` (and
    ``WARMUP_ITERS`` from ``START_ITER``) to the features the projection heads read. Stateless
    between steps (no parameters or buffers)."""

    @configurable
    def __init__(
        self,
        *,
        start_iter: int = 0,
        grad_scale: float = 1.0,
        ratio_cap: float = 0.0,
        warmup_iters: int = 0,
    ):
        """
        Args:
            start_iter: first iteration at which gradient reaches the network.
            grad_scale: multiplier of the gradient the heads send into the features (>= 0).
            ratio_cap: cap of its norm relative to the rest of the feature's gradient (> 0), or
                0 for no cap.
            warmup_iters: with ``start_iter`` > 0, iterations over which the multiplier ramps
                linearly from 0 to ``grad_scale``, from ``start_iter`` (0 = no ramp).
        """
        check_contextrast_values(
            {
                "START_ITER": start_iter,
                "FEATURE_GRAD_SCALE": grad_scale,
                "GRAD_RATIO_CAP": ratio_cap,
                "WARMUP_ITERS": warmup_iters,
            }
        )
        self.start_iter = start_iter
        self.grad_scale = float(grad_scale)
        self.ratio_cap = float(ratio_cap)
        self.warmup_iters = warmup_iters
        # Per feature, the scale the cap applied in the latest backward pass (device scalars).
        self.last_cap_scales: Dict[str, Tensor] = {}

    @classmethod
    def from_config(cls, cfg):
        c = cfg.MODEL.CONTEXTRAST
        return {
            "start_iter": c.START_ITER,
            "grad_scale": c.FEATURE_GRAD_SCALE,
            "ratio_cap": c.GRAD_RATIO_CAP,
            "warmup_iters": c.WARMUP_ITERS,
        }

    def scale_at(self, iteration: int) -> float:
        """The multiplier of the heads' gradient into the network at a training iteration: 0
        before ``start_iter``, then ``grad_scale`` (ramped from ``start_iter`` when both
        ``start_iter`` and ``warmup_iters`` are > 0; with ``start_iter`` 0 the ramp of alpha
        already starts the network's contrastive gradient from 0)."""
        if iteration < self.start_iter:
            return 0.0
        if self.start_iter == 0 or self.warmup_iters <= 0:
            return self.grad_scale
        ramp = min(1.0, (iteration - self.start_iter + 1) / self.warmup_iters)
        return self.grad_scale * ramp

    @property
    def is_identity(self) -> bool:
        """True when the gate never changes a gradient (the paper's setting)."""
        return self.start_iter == 0 and self.grad_scale == 1.0 and self.ratio_cap == 0.0

    def __call__(self, name: str, x: Tensor, iteration: int) -> Tensor:
        """
        Args:
            name: feature name (for :attr:`last_cap_scales`).
            x: (B, C, H, W) feature the segmentation network also reads.
            iteration: training iteration.

        Returns:
            ``x`` (same values) for the projection head, with the gated gradient.
        """
        scale = self.scale_at(iteration)
        if scale == 0.0 or not x.requires_grad:
            return x.detach()
        if self.ratio_cap == 0.0:
            return scale_gradient(x, scale)
        holder = _Holder()
        x.register_hook(self._cap_hook(name, holder))
        # The holder receives the scaled gradient; the hook caps what it received.
        return _GateGrad.apply(x, scale, holder)

    def _cap_hook(self, name: str, holder: _Holder):
        cap = self.ratio_cap

        def hook(grad: Tensor) -> Optional[Tensor]:
            contrast = holder.grad
            if contrast is None:  # a backward pass without the contrastive loss
                return None
            holder.grad = None
            other = torch.linalg.vector_norm(grad.float())
            own = torch.linalg.vector_norm(contrast.float())
            scale = (cap * other / own.clamp(min=1e-12)).clamp(max=1.0)
            self.last_cap_scales[name] = scale.detach()
            return grad + contrast * scale.to(contrast.dtype)

        return hook

    def stats(self, names: List[str]) -> Dict[str, Tensor]:
        """Scales applied by the cap in the latest backward pass, to log (empty without it)."""
        return {
            f"contrast/grad_cap_scale_{n}": self.last_cap_scales[n]
            for n in names
            if n in self.last_cap_scales
        }
