"""Training engine: the trainer and what makes long jobs safe (resume, NaN guard, reproducible
set-up, preemption, orderly shutdown), and how its processes start (launch, torchrun, srun).
Checkpoints are in :mod:`contextrast.checkpoint`."""

from .distributed import shutdown_distributed
from .launch import detect_distributed_env, launch_from_args
from .nonfinite import NonFiniteLossError
from .preemption import PREEMPTED_EXIT_CODE, TrainingPreempted
from .reproducibility import contextrast_setup
from .trainer import ContextrastTrainer

__all__ = [
    "ContextrastTrainer",
    "NonFiniteLossError",
    "PREEMPTED_EXIT_CODE",
    "TrainingPreempted",
    "contextrast_setup",
    "detect_distributed_env",
    "launch_from_args",
    "shutdown_distributed",
]
