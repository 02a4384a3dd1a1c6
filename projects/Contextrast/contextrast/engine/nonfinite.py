"""What happens when a loss becomes NaN or Inf: a clear error, or (optionally) a skipped update.

detectron2 already reads every loss back to the host once per iteration (``.item()`` in
``SimpleTrainer.write_metrics``) and raises ``FloatingPointError`` on the main process when their
sum is not finite, naming neither the loss nor where to resume. The guard here reads the same
values (one stacked device-to-host copy instead of one per loss, so no extra synchronisation),
checks them on every process *before* the optimizer step, and then either

- ``SOLVER.NONFINITE_LOSS "error"`` (default): raises :class:`NonFiniteLossError` naming the loss,
  the iteration, the process and the checkpoint to resume from; the update is never applied; or
- ``"skip"``: drops the iteration's update (gradients discarded, BatchNorm running statistics
  restored to their values before the forward pass) and goes on, stopping with the same error
  after ``SOLVER.NONFINITE_MAX_SKIPS`` consecutive skipped iterations. In multi-process runs the
  processes agree on skipping with one small all_gather of a flag per iteration (the gradients
  are shared, so one process's NaN reaches them all).
"""

import logging
import math
from typing import Callable, Dict, List, Optional

import torch
from detectron2.engine import AMPTrainer, SimpleTrainer
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage

__all__ = [
    "NONFINITE_MODES",
    "NonFiniteLossError",
    "GuardedSimpleTrainer",
    "GuardedAMPTrainer",
]

logger = logging.getLogger(__name__)

NONFINITE_MODES = ("error", "skip")


class NonFiniteLossError(FloatingPointError):
    """A training loss was NaN or Inf."""


class _NonFiniteLossGuard:
    """Mixin for detectron2's ``SimpleTrainer`` / ``AMPTrainer`` (see the module docstring)."""

    nonfinite_mode: str = "error"
    max_skips: int = 10
    # Returns one sentence saying where to resume from; set by the owning trainer.
    resume_hint: Optional[Callable[[], str]] = None

    def configure_nonfinite(self, mode: str, max_skips: int, resume_hint=None) -> None:
        """
        Args:
            mode: ``SOLVER.NONFINITE_LOSS``, "error" or "skip".
            max_skips: ``SOLVER.NONFINITE_MAX_SKIPS`` (>= 0).
            resume_hint: callable returning where to resume from.
        """
        if mode not in NONFINITE_MODES:
            raise ValueError(f"SOLVER.NONFINITE_LOSS = {mode!r}: expected one of {NONFINITE_MODES}")
        if max_skips < 0:
            raise ValueError(f"SOLVER.NONFINITE_MAX_SKIPS = {max_skips}: expected >= 0")
        self.nonfinite_mode = mode
        self.max_skips = max_skips
        self.resume_hint = resume_hint
        self.consecutive_skips = 0
        self.skipped_iterations = 0

    def run_step(self):
        if self.nonfinite_mode == "skip":
            # Device-side copies (no host sync) so a skipped forward leaves no trace in BN stats.
            self._buffers_before = [b.detach().clone() for b in self.model.buffers()]
        super().run_step()

    def _write_metrics(self, loss_dict, data_time: float, prefix: str = "", iter=None) -> None:
        iteration = self.iter if iter is None else iter
        names = list(loss_dict)
        host = torch.stack([loss_dict[k].detach().float().reshape(()) for k in names]).cpu()
        values = dict(zip(names, host.tolist()))
        bad = [k for k in names if not math.isfinite(values[k])]
        stop = bool(bad)
        if self.nonfinite_mode == "skip" and comm.get_world_size() > 1:
            stop = any(comm.all_gather(bool(bad)))  # all processes skip, or none
        if stop and (self.nonfinite_mode == "error" or self.consecutive_skips >= self.max_skips):
            raise NonFiniteLossError(self._message(iteration, values, bad or ["(other process)"]))
        if stop:
            self._skip(iteration, values, bad)
            return
        self.consecutive_skips = 0
        # CPU scalars: detectron2's per-loss .item() below no longer touches the device.
        super()._write_metrics(dict(zip(names, host.unbind())), data_time, prefix, iter)

    def _skip(self, iteration: int, values: Dict[str, float], bad: List[str]) -> None:
        self.consecutive_skips += 1
        self.skipped_iterations += 1
        with torch.no_grad():
            for buf, saved in zip(self.model.buffers(), self._buffers_before):
                buf.copy_(saved)
        self._discard_gradients()
        logger.warning(
            "Skipping the update of iteration %d: non-finite %s (%d in a row, %d in total)",
            iteration,
            ", ".join(bad) if bad else "loss on another process",
            self.consecutive_skips,
            self.skipped_iterations,
        )
        if comm.is_main_process():
            get_event_storage().put_scalar(
                "nonfinite_skipped_iterations", self.skipped_iterations, smoothing_hint=False
            )

    def _discard_gradients(self) -> None:
        # Parameters without gradients are left alone by the optimizer step: no update, no
        # momentum or weight-decay change.
        self.optimizer.zero_grad(set_to_none=True)

    def _message(self, iteration: int, values: Dict[str, float], bad: List[str]) -> str:
        losses = ", ".join(f"{k}={v:.6g}" for k, v in values.items())
        repeated = ""
        if self.nonfinite_mode == "skip":
            repeated = f" after {self.consecutive_skips} consecutive skipped iterations"
        hint = self.resume_hint() if self.resume_hint is not None else ""
        return (
            f"Non-finite loss {', '.join(bad)} at iteration {iteration} on process "
            f"{comm.get_rank()}{repeated} (losses: {losses}). This iteration's update was not "
            f"applied. {hint} Check the data and the learning rate (SOLVER.BASE_LR, "
            "SOLVER.WARMUP_ITERS); SOLVER.NONFINITE_LOSS skip drops such iterations instead."
        )


class GuardedSimpleTrainer(_NonFiniteLossGuard, SimpleTrainer):
    """detectron2's ``SimpleTrainer`` with the non-finite loss guard."""


class GuardedAMPTrainer(_NonFiniteLossGuard, AMPTrainer):
    """detectron2's ``AMPTrainer`` with the non-finite loss guard."""

    def _discard_gradients(self) -> None:
        # GradScaler.step() needs gradients to inspect; non-finite ones make it skip the step
        # (and back off its scale), which is the skip we want.
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.fill_(float("nan"))
