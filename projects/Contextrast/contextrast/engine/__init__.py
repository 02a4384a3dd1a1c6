"""Training engine: the trainer and what makes long jobs safe (checkpoints, resume, NaN guard)."""

from .checkpoint import CheckpointMismatchError, ContextrastCheckpointer
from .distributed import shutdown_distributed
from .nonfinite import NonFiniteLossError
from .reproducibility import contextrast_setup
from .trainer import ContextrastTrainer

__all__ = [
    "CheckpointMismatchError",
    "ContextrastCheckpointer",
    "ContextrastTrainer",
    "NonFiniteLossError",
    "contextrast_setup",
    "shutdown_distributed",
]
