"""Training engine: the trainer and what makes long jobs safe (resume, NaN guard, reproducible
set-up, orderly shutdown). Checkpoints are in :mod:`contextrast.checkpoint`."""

from .distributed import shutdown_distributed
from .nonfinite import NonFiniteLossError
from .reproducibility import contextrast_setup
from .trainer import ContextrastTrainer

__all__ = [
    "ContextrastTrainer",
    "NonFiniteLossError",
    "contextrast_setup",
    "shutdown_distributed",
]
