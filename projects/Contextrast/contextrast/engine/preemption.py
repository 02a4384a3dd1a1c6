"""Preemption: SIGTERM / SIGUSR1 -> finish the iteration, checkpoint, exit with a distinct status.

Preemptible queues (SLURM ``--signal``, Kubernetes, cloud spot instances) send SIGTERM or SIGUSR1
some time before they kill a job. :class:`PreemptionHook` turns that into a clean stop:

1. the signal handler only records the signal (training goes on to the end of the iteration);
2. after the iteration's update and LR step, the processes agree whether any of them got a signal:
   a MAX all_reduce of one integer on the CPU (detectron2's gloo group), every
   ``SOLVER.PREEMPT_CHECK_PERIOD`` iterations. It touches no GPU memory, so it adds no device
   synchronisation, only a network round trip (the training step already waits for the
   device once per iteration when it reads the losses back). Single-process runs skip it;
3. every process stops after the same iteration; the main process writes
   ``model_<iteration>.pth`` (atomically, :class:`~contextrast.checkpoint.ContextrastCheckpointer`,
   the trainer state included: optimizer, LR scheduler, data seed) unless that iteration's
   periodic checkpoint exists already, and all wait for it;
4. optionally (``SOLVER.PREEMPT_REQUEUE``) the main process runs ``scontrol requeue
   $SLURM_JOB_ID``;
5. every process exits with :data:`PREEMPTED_EXIT_CODE` (75, ``EX_TEMPFAIL``: "try again").

``--resume`` then continues at the next iteration with the same data stream, as after any
checkpoint. A preempted job loses nothing but the time between the signal and the end of the
iteration in flight (plus up to ``PREEMPT_CHECK_PERIOD - 1`` more iterations trained before the
processes notice, which the checkpoint keeps).
"""

import logging
import os
import signal
import subprocess
from typing import Optional

import torch
import torch.distributed as dist
from detectron2.engine import HookBase
from detectron2.utils import comm

__all__ = [
    "PREEMPTED_EXIT_CODE",
    "PREEMPTION_SIGNALS",
    "TrainingPreempted",
    "PreemptionHook",
    "requeue_slurm_job",
]

logger = logging.getLogger(__name__)

# sysexits.h EX_TEMPFAIL: distinct from success (0), Python errors (1), usage errors (2) and a
# death by signal (128 + n in a shell, negative in Python's subprocess).
PREEMPTED_EXIT_CODE = 75
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class TrainingPreempted(SystemExit):
    """Training stopped after a preemption signal, its state checkpointed.

    A ``SystemExit`` (status :data:`PREEMPTED_EXIT_CODE`): detectron2's training loop re-raises
    only ``Exception`` after logging a traceback, so this one passes through it silently while
    its ``finally`` still runs every hook's ``after_train`` (metrics written, writers closed).
    """

    def __init__(self, message: str):
        super().__init__(PREEMPTED_EXIT_CODE)
        self.message = message

    def __str__(self) -> str:
        return self.message


def requeue_slurm_job() -> bool:
    """``scontrol requeue $SLURM_JOB_ID``; False (with a warning) outside SLURM or on failure."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        logger.warning("SOLVER.PREEMPT_REQUEUE: not a SLURM job (no SLURM_JOB_ID); not requeued")
        return False
    try:
        subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or e
        logger.warning("scontrol requeue %s failed: %s", job, detail)
        return False
    logger.info("SLURM job %s requeued", job)
    return True


class PreemptionHook(HookBase):
    """Stops training cleanly after SIGTERM / SIGUSR1 (see the module docstring).

    Place it after the LR scheduler and periodic checkpointer hooks (the checkpoint must hold the
    iteration's scheduler step) and before evaluation (a preempted job should not start one).
    """

    def __init__(self, checkpointer, check_period: int = 1, requeue: bool = False):
        """
        Args:
            checkpointer: the trainer's checkpointer (writes on the main process only).
            check_period: ``SOLVER.PREEMPT_CHECK_PERIOD`` (>= 1).
            requeue: ``SOLVER.PREEMPT_REQUEUE``.
        """
        if check_period < 1:
            raise ValueError(f"SOLVER.PREEMPT_CHECK_PERIOD = {check_period}: expected >= 1")
        self.checkpointer = checkpointer
        self.check_period = check_period
        self.requeue = requeue
        self.received: Optional[int] = None
        self._previous = {}

    def _record(self, signum, frame) -> None:
        # Only a flag: logging or saving from inside a signal handler could deadlock.
        self.received = signum

    def before_train(self):
        self.received = None
        for sig in PREEMPTION_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._record)

    def after_train(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _agreed_signal(self) -> int:
        local = self.received or 0
        if comm.get_world_size() == 1:
            return local
        flag = torch.tensor([local], dtype=torch.int64)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=comm._get_global_gloo_group())
        return int(flag.item())

    def after_step(self):
        iteration = self.trainer.iter
        if (iteration + 1) % self.check_period:
            return
        signum = self._agreed_signal()
        if not signum:
            return
        name = f"model_{iteration:07d}"
        path = os.path.join(self.checkpointer.save_dir, f"{name}.pth")
        if not (
            self.checkpointer.has_checkpoint() and self.checkpointer.get_checkpoint_file() == path
        ):
            self.checkpointer.save(name, iteration=iteration)
        # Requeue before the barrier: once one process exits, `srun --kill-on-bad-exit` may end
        # the others.
        if self.requeue and comm.is_main_process():
            requeue_slurm_job()
        comm.synchronize()  # nobody exits before the checkpoint is on disk
        who = signal.Signals(self.received).name if self.received else "signal to another process"
        message = (
            f"Preempted ({who}) after iteration {iteration}: checkpoint {path} written; exiting "
            f"with status {PREEMPTED_EXIT_CODE}. Continue with --resume and the same OUTPUT_DIR."
        )
        logger.warning(message)
        raise TrainingPreempted(message)
