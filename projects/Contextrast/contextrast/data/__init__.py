"""Datasets, mapper, augmentations and evaluators. Importing registers the datasets."""
from . import datasets  # noqa: F401  (registration only)
