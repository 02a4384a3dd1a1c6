"""Checkpoints: atomic saves, strict loading, and the training-only tensors' prefix."""

from .checkpointer import (
    BACKBONE_PREFIX,
    MAX_LISTED_KEYS,
    TRAINING_ONLY_PREFIX,
    CheckpointMismatchError,
    ContextrastCheckpointer,
    LoadReport,
    UnreadableCheckpointError,
    atomic_write,
)

__all__ = [
    "BACKBONE_PREFIX",
    "MAX_LISTED_KEYS",
    "TRAINING_ONLY_PREFIX",
    "CheckpointMismatchError",
    "ContextrastCheckpointer",
    "LoadReport",
    "UnreadableCheckpointError",
    "atomic_write",
]
