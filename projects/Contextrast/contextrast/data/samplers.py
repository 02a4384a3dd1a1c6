"""The sampler of the resumable training stream (see :mod:`contextrast.data.build`).

The order is detectron2's ``TrainingSampler`` order, ``shuffle(range(N)) + shuffle(range(N)) +
...`` drawn from a generator seeded with the data seed; process ``r`` of ``W`` takes positions
``r, r + W, r + 2W, ...``; every sample comes with its global position, from which its
augmentation is seeded, and the stream can start after the iterations already trained.
"""

import itertools
from typing import Iterator, Tuple

import numpy as np
import torch
from detectron2.utils import comm
from torch.utils.data import Sampler

__all__ = [
    "SAMPLE_SEED_TAG",
    "ITERATION_SEED_TAG",
    "ResumableTrainingSampler",
    "derive_seed",
]

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
