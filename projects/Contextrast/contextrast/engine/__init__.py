"""Training engine: the trainer and its safety hooks."""
from .trainer import ContextrastTrainer

__all__ = ["ContextrastTrainer"]
