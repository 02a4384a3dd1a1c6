"""Datasets, label files, mapper, augmentations and the training loader. Importing registers the
datasets."""

from . import datasets  # noqa: F401  (registration only)
from . import synthetic  # noqa: F401  (registers synth_streets_train / synth_streets_val)
from .augmentations import build_sem_seg_test_augmentation, build_sem_seg_train_augmentation
from .build import ResumableLoader, SeededMapDataset, build_resumable_train_loader
from .labels import check_model_matches_dataset, label_spec_from_metadata, load_sem_seg_label
from .mapper import SemSegDatasetMapper, read_image_file
from .samplers import ResumableTrainingSampler, derive_seed

__all__ = [
    "ResumableLoader",
    "ResumableTrainingSampler",
    "SeededMapDataset",
    "SemSegDatasetMapper",
    "build_resumable_train_loader",
    "build_sem_seg_test_augmentation",
    "build_sem_seg_train_augmentation",
    "check_model_matches_dataset",
    "derive_seed",
    "label_spec_from_metadata",
    "load_sem_seg_label",
    "read_image_file",
]
