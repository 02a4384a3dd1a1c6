"""ContextrastTrainer: detectron2's DefaultTrainer with the project's data, schedule and evaluators,
made safe for long jobs (see docs/running_long_jobs.md)."""

import contextlib
import functools
import logging
import os
import weakref

import detectron2.engine.defaults as d2_defaults
import torch
from detectron2.data import build_detection_test_loader
from detectron2.engine import DefaultTrainer, hooks
from detectron2.projects.deeplab import build_lr_scheduler
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter

from ..checkpoint import ContextrastCheckpointer
from ..data import SemSegDatasetMapper, build_resumable_train_loader
from ..evaluation import SemSegTTA, build_sem_seg_evaluator
from .hooks import ResumableStreamHook
from .nonfinite import GuardedAMPTrainer, GuardedSimpleTrainer
from .preemption import PreemptionHook

__all__ = ["ContextrastTrainer"]

logger = logging.getLogger(__name__)


def _drop_partial_last_line(path: str) -> None:
    """Cut a JSON-lines file after its last complete line (a killed job may leave half a line)."""
    if not os.path.isfile(path):
        return
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            logger.warning("Dropping an incomplete last line of %s", path)
            f.truncate(end)


@contextlib.contextmanager
def _ddp_without_device_ids_on_cpu(cfg):
    """While :class:`DefaultTrainer` is constructed: wrap a CPU model in DDP without device ids.

    ``DefaultTrainer.__init__`` wraps the model with detectron2's ``create_ddp_model``, which
    passes ``device_ids=[local rank]``; ``DistributedDataParallel`` rejects device ids for a CPU
    module, so ``--num-gpus N`` on a machine without GPUs (gloo) would fail there. For a CPU
    model the function is given ``device_ids=None`` during the construction, then restored.
    """
    if torch.device(cfg.MODEL.DEVICE).type != "cpu":
        yield
        return
    original = d2_defaults.create_ddp_model
    d2_defaults.create_ddp_model = functools.partial(original, device_ids=None)
    try:
        yield
    finally:
        d2_defaults.create_ddp_model = original


class ContextrastTrainer(DefaultTrainer):
    """DefaultTrainer with the sem-seg mapper and evaluator, poly LR and CPU-capable DDP, plus:

    - a resumable data stream and per-iteration reseeding (:class:`ResumableStreamHook`): a run
      resumed from a checkpoint continues with the same data, augmentation and random numbers;
    - atomic checkpoint writes and strict weight loading (:class:`ContextrastCheckpointer`);
    - a guard on NaN/Inf losses (``SOLVER.NONFINITE_LOSS``, :mod:`.nonfinite`);
    - a checkpoint and exit status 75 on SIGTERM / SIGUSR1 (:mod:`.preemption`);
    - metrics written every ``SOLVER.LOG_PERIOD`` iterations.
    """

    def __init__(self, cfg):
        """DefaultTrainer's construction; the one change is DDP for CPU models
        (:func:`_ddp_without_device_ids_on_cpu`)."""
        with _ddp_without_device_ids_on_cpu(cfg):
            super().__init__(cfg)

    def build_hooks(self):
        """DefaultTrainer's hooks, with the project's training loop, checkpointer and writer
        period, and :class:`ResumableStreamHook` first.

        ``DefaultTrainer.__init__`` creates its training loop (``SimpleTrainer`` /
        ``AMPTrainer``) and its ``DetectionCheckpointer`` just before it calls this method and
        has no builder for either, so they are replaced here, before any hook holds them.
        """
        cfg = self.cfg
        loop_cls = GuardedAMPTrainer if cfg.SOLVER.AMP.ENABLED else GuardedSimpleTrainer
        plain = self._trainer
        self._trainer = loop_cls(plain.model, plain.data_loader, plain.optimizer)
        self._trainer.configure_nonfinite(
            cfg.SOLVER.NONFINITE_LOSS, cfg.SOLVER.NONFINITE_MAX_SKIPS, self._resume_hint
        )
        self.checkpointer = ContextrastCheckpointer(
            plain.model,
            cfg.OUTPUT_DIR,
            strict=cfg.MODEL.WEIGHTS_STRICT,
            trainer=weakref.proxy(self),
        )
        ret = super().build_hooks()
        for i, hook in enumerate(ret):
            if isinstance(hook, hooks.PeriodicWriter):  # detectron2 writes every 20 iterations
                ret[i] = hooks.PeriodicWriter(self._writers, period=cfg.SOLVER.LOG_PERIOD)
        # After the LR step and the periodic checkpoint, before evaluation (every process has an
        # EvalHook; only the main process has the checkpointer hook).
        preemption = PreemptionHook(
            self.checkpointer, cfg.SOLVER.PREEMPT_CHECK_PERIOD, cfg.SOLVER.PREEMPT_REQUEUE
        )
        at = next(i for i, hook in enumerate(ret) if isinstance(hook, hooks.EvalHook))
        ret.insert(at, preemption)
        # First, so every other hook's before_step already sees this iteration's seeds.
        ret.insert(0, ResumableStreamHook(self._trainer.data_loader.sampler))
        return ret

    def build_writers(self):
        """detectron2's writers, smoothing over ``SOLVER.LOG_PERIOD`` iterations (kept for
        :meth:`build_hooks`, which gives them to its own ``PeriodicWriter``)."""
        window = self.cfg.SOLVER.LOG_PERIOD
        self._writers = [
            CommonMetricPrinter(self.max_iter, window_size=window),
            JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"), window_size=window),
            TensorboardXWriter(self.cfg.OUTPUT_DIR, window_size=window),
        ]
        return self._writers

    def resume_or_load(self, resume: bool = True):
        """As in DefaultTrainer; the data stream then resumes in ``before_train``."""
        if resume and comm.is_main_process() and self.checkpointer.has_checkpoint():
            _drop_partial_last_line(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"))
        super().resume_or_load(resume=resume)

    def _resume_hint(self) -> str:
        if self.checkpointer.has_checkpoint():
            return (
                f"Resume from its last checkpoint {self.checkpointer.get_checkpoint_file()} with "
                f"--resume and the same OUTPUT_DIR ({self.cfg.OUTPUT_DIR})."
            )
        return (
            f"No checkpoint was saved in {self.cfg.OUTPUT_DIR} yet; restart from MODEL.WEIGHTS "
            f"({self.cfg.MODEL.WEIGHTS or 'random initialisation'})."
        )

    @classmethod
    def build_train_loader(cls, cfg):
        if not cfg.DATASETS.TRAIN:
            raise ValueError("DATASETS.TRAIN is empty: name at least one registered dataset")
        mapper = SemSegDatasetMapper(cfg, is_train=True, dataset_name=cfg.DATASETS.TRAIN[0])
        return build_resumable_train_loader(cfg, mapper)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        mapper = SemSegDatasetMapper(cfg, is_train=False, dataset_name=dataset_name)
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        """The dataset's sem-seg evaluator; a Cityscapes one keeps its label-id PNGs (the test
        server's format) in ``OUTPUT_DIR/inference/<dataset_name>/cityscapes_labelIds``."""
        label_id_dir = os.path.join(
            cfg.OUTPUT_DIR, "inference", dataset_name, "cityscapes_labelIds"
        )
        return build_sem_seg_evaluator(cfg, dataset_name, output_folder, label_id_dir=label_id_dir)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """DefaultTrainer.test; with ``TEST.AUG.ENABLED`` the model runs inside :class:`SemSegTTA`
        (multi-scale + flip), in the periodic evaluation and ``--eval-only`` alike."""
        if cfg.TEST.AUG.ENABLED and not isinstance(model, SemSegTTA):
            model = SemSegTTA(cfg, model)
        return super().test(cfg, model, evaluators)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        # DeepLab's builder adds WarmupPolyLR to detectron2's schedules.
        return build_lr_scheduler(cfg, optimizer)
