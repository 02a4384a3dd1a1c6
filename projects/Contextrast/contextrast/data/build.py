"""A resumable, worker-count-independent stream of training samples.

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

import itertools
import logging
import random
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.data import get_detection_dataset_dicts
from detectron2.data.build import build_batch_data_loader
from detectron2.data.common import DatasetFromList, ToIterableDataset
from detectron2.utils import comm
from torch.utils.data import Dataset, Sampler

__all__ = [
    "ResumableTrainingSampler",
    "SeededMapDataset",
    "ResumableLoader",
    "build_resumable_train_loader",
    "derive_seed",
]

logger = logging.getLogger(__name__)

# Domain tags: seeds derived for different purposes never coincide.
SAMPLE_SEED_TAG = 1
ITERATION_SEED_TAG = 2


def derive_seed(*entropy: int) -> int:
    """A well-mixed 32-bit seed from integers (numpy's ``SeedSequence``; no correlated streams)."""
    return int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1)[0])


class ResumableTrainingSampler(Sampler):
    """Infinite shuffled stream of ``(position, index)`` pairs for this process.

    Same order as detectron2's ``TrainingSampler`` (one ``randperm`` per epoch from a seeded
    generator, processes interleaved), plus the global position of every sample and a start
    offset for resuming.
    """

    def __init__(self, size: int, seed: int, batch_size_per_process: int):
        """
        Args:
            size: number of records in the dataset (> 0).
            seed: data seed, identical on all processes.
            batch_size_per_process: images per process and iteration.
        """
        if size <= 0:
            raise ValueError(f"ResumableTrainingSampler: the training set is empty (size={size})")
        self.size = size
        self.seed = int(seed)
        self.batch_size = batch_size_per_process
        self.start_iter = 0
        self._rank = comm.get_rank()
        self._world_size = comm.get_world_size()

    def set_start_iter(self, iteration: int) -> None:
        """Start the stream after the samples of iterations ``0 .. iteration - 1``."""
        self.start_iter = int(iteration)

    def _global_stream(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed)
        while True:
            yield from torch.randperm(self.size, generator=g).tolist()

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        first = self._rank + self.start_iter * self.batch_size * self._world_size
        positions = itertools.count(first, self._world_size)
        indices = itertools.islice(self._global_stream(), first, None, self._world_size)
        return zip(positions, indices)


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
