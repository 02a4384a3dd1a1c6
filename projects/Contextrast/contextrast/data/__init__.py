"""Datasets, mapper, augmentations and evaluators. Importing registers the datasets."""

from . import datasets  # noqa: F401  (registration only)
from . import synthetic  # noqa: F401  (registers synth_streets_train / synth_streets_val)
from .augmentations import build_sem_seg_test_augmentation, build_sem_seg_train_augmentation
from .evaluation import build_sem_seg_evaluator
from .mapper import SemSegDatasetMapper, load_sem_seg_label

__all__ = [
    "SemSegDatasetMapper",
    "build_sem_seg_evaluator",
    "build_sem_seg_test_augmentation",
    "build_sem_seg_train_augmentation",
    "load_sem_seg_label",
]
