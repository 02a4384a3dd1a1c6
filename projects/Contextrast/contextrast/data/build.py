"""Training loader: a resumable, worker-count-independent stream of training samples.

detectron2's training loader restarts its shuffled stream from the beginning after ``--resume``
and seeds augmentations from the data-loader workers' RNGs, so a resumed run sees other images
and other crops than an uninterrupted one. Here every sample is a pure function of the data seed
and its global position in the stream:

- the order is ``shuffle(range(N)) + shuffle(range(N)) + ...`` drawn from a generator seeded with
  the data seed; process ``r`` of ``W`` takes positions ``r, r + W, r + 2W, ...``;
- the augmentation of the sample at position ``p`` runs under RNGs seeded from ``(seed, p)``;
- data-loader workers take every ``num_workers``-th sample of their process's stream, so the
  loader yields the stream in order whatever the number of workers;
- :meth:`ResumableTrainingSampler.set_start_iter` skips the samples of the iterations already
  trained, so a resumed run continues the stream where the checkpoint left it.
"""

import logging
import random
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.data import get_detection_dataset_dicts
from detectron2.data.build import build_batch_data_loader
from detectron2.data.common import DatasetFromList, ToIterableDataset
from detectron2.utils import comm
from torch.utils.data import Dataset

from .samplers import SAMPLE_SEED_TAG, ResumableTrainingSampler, derive_seed

__all__ = [
    "SeededMapDataset",
    "ResumableLoader",
    "build_resumable_train_loader",
]

logger = logging.getLogger(__name__)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class SeededMapDataset(Dataset):
    """Records mapped at ``(position, index)`` under RNGs seeded from ``(seed, position)``.

    The caller's global RNG states are restored afterwards, so mapping in the main process
    (``DATALOADER.NUM_WORKERS 0``) does not perturb the training step's random numbers.
    """

    def __init__(self, records: Sequence[dict], mapper: Callable[[dict], dict], seed: int):
        """
        Args:
            records: dataset records (serialised once, like detectron2's ``DatasetFromList``).
            mapper: record -> model input; must not return None.
            seed: data seed.
        """
        self._records = DatasetFromList(list(records), copy=False)
        self._mapper = mapper
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, item: Tuple[int, int]) -> dict:
        position, index = item
        record = self._records[index]
        np_state, py_state = np.random.get_state(), random.getstate()
        with torch.random.fork_rng(devices=[]):
            _seed_all(derive_seed(self.seed, SAMPLE_SEED_TAG, position))
            try:
                mapped = self._mapper(record)
            finally:
                np.random.set_state(np_state)
                random.setstate(py_state)
        if mapped is None:
            raise RuntimeError(
                f"the training mapper returned None for {record.get('file_name', record)}; "
                "samples cannot be skipped in a resumable stream"
            )
        return mapped


class ResumableLoader:
    """detectron2's batched training loader plus the sampler that positions it."""

    def __init__(self, loader, sampler: ResumableTrainingSampler):
        self.loader = loader
        self.sampler = sampler

    def __iter__(self) -> Iterator[List[dict]]:
        return iter(self.loader)


def build_resumable_train_loader(cfg, mapper, *, seed: Optional[int] = None) -> ResumableLoader:
    """Training loader over ``cfg.DATASETS.TRAIN`` whose stream can be resumed.

    Args:
        cfg: config (``DATASETS.TRAIN``, ``SOLVER.IMS_PER_BATCH``, ``DATALOADER.*``).
        mapper: record -> model input.
        seed: data seed; default ``cfg.SEED``, or a seed shared by all processes when negative.

    Returns:
        :class:`ResumableLoader` yielding lists of ``IMS_PER_BATCH / world_size`` inputs.
    """
    if cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler":
        raise ValueError(
            f"DATALOADER.SAMPLER_TRAIN = {cfg.DATALOADER.SAMPLER_TRAIN!r}: the Contextrast trainer "
            "supports 'TrainingSampler' only (its stream is the one that resumes exactly)"
        )
    if seed is None:
        seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
    world_size = comm.get_world_size()
    if cfg.SOLVER.IMS_PER_BATCH % world_size:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH = {cfg.SOLVER.IMS_PER_BATCH} is not divisible by the "
            f"{world_size} training processes"
        )
    records = get_detection_dataset_dicts(cfg.DATASETS.TRAIN, filter_empty=False)
    dataset = SeededMapDataset(records, mapper, seed)
    sampler = ResumableTrainingSampler(len(dataset), seed, cfg.SOLVER.IMS_PER_BATCH // world_size)
    # shard_chunk_size=1: worker w of K yields samples w, w + K, ... and the loader interleaves
    # the workers one sample at a time, so it yields the stream in order for any K.
    stream = ToIterableDataset(dataset, sampler, shard_chunk_size=1)
    loader = build_batch_data_loader(
        stream,
        None,
        cfg.SOLVER.IMS_PER_BATCH,
        aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        # The loader's own generator: creating its iterator draws no number from the global RNG.
        seed=seed,
    )
    return ResumableLoader(loader, sampler)
