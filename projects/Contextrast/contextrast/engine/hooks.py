"""Training hooks that make a resumed run continue exactly where its checkpoint left it."""

import logging
import random

import numpy as np
import torch
from detectron2.engine import HookBase
from detectron2.utils import comm

from ..data.samplers import ITERATION_SEED_TAG, ResumableTrainingSampler, derive_seed

__all__ = ["ResumableStreamHook"]

logger = logging.getLogger(__name__)


class ResumableStreamHook(HookBase):
    """Keeps the data stream and the training step's random numbers a function of the iteration.

    - Before every iteration the global RNGs (``random``, numpy, torch on all devices) are
      reseeded from ``(data seed, rank, iteration)``: the random numbers an iteration draws
      (pixel sampling of the contrastive loss, dropout) do not depend on what ran before it
      (evaluation, PreciseBN, a restart).
    - Before training the sampler skips the samples of the iterations already done.
    - The data seed is saved in checkpoints (``trainer.hooks`` state) and restored on resume, so a
      run with ``SEED < 0`` (random seed) resumes its own stream.

    Seeding is host-side bookkeeping: it reads nothing back from the device.
    """

    def __init__(self, sampler: ResumableTrainingSampler):
        """
        Args:
            sampler: the training loader's sampler.
        """
        self.sampler = sampler

    def state_dict(self) -> dict:
        return {"data_seed": self.sampler.seed}

    def load_state_dict(self, state_dict: dict) -> None:
        seed = int(state_dict["data_seed"])
        if seed != self.sampler.seed:
            logger.info(
                "Resuming the data stream of the checkpoint (data seed %d instead of %d)",
                seed,
                self.sampler.seed,
            )
        self.sampler.seed = seed

    def before_train(self):
        self.sampler.set_start_iter(self.trainer.iter)
        if self.trainer.iter > 0:
            logger.info(
                "Data stream resumes at iteration %d (sample %d of each process)",
                self.trainer.iter,
                self.trainer.iter * self.sampler.batch_size,
            )

    def before_step(self):
        seed = derive_seed(
            self.sampler.seed, ITERATION_SEED_TAG, comm.get_rank(), self.trainer.iter
        )
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
