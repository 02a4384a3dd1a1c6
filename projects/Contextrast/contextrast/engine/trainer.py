"""ContextrastTrainer: detectron2's DefaultTrainer with the project's data, schedule and evaluators,
made safe for long jobs (see docs/running_long_jobs.md)."""

import logging
import os
import weakref

import torch
from detectron2.data import build_detection_test_loader
from detectron2.engine import DefaultTrainer, create_ddp_model, hooks
from detectron2.projects.deeplab import build_lr_scheduler
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter
from detectron2.utils.logger import setup_logger

from ..data.evaluation import build_sem_seg_evaluator
from ..data.mapper import SemSegDatasetMapper
from ..evaluation.tta import SemSegTTA
from .checkpoint import ContextrastCheckpointer
from .data_stream import ResumableLoader, build_resumable_train_loader
from .hooks import ResumableStreamHook
from .nonfinite import GuardedAMPTrainer, GuardedSimpleTrainer

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


class ContextrastTrainer(DefaultTrainer):
    """DefaultTrainer with the sem-seg mapper and evaluator, poly LR and CPU-capable DDP, plus:

    - a resumable data stream and per-iteration reseeding (:class:`ResumableStreamHook`): a run
      resumed from a checkpoint continues with the same data, augmentation and random numbers;
    - atomic checkpoint writes and strict weight loading (:class:`ContextrastCheckpointer`);
    - a guard on NaN/Inf losses (``SOLVER.NONFINITE_LOSS``, :mod:`.nonfinite`);
    - metrics written every ``SOLVER.LOG_PERIOD`` iterations.
    """

    def __init__(self, cfg):
        """Same construction order as :class:`DefaultTrainer`, but DDP also wraps CPU models
        (``--num-gpus N`` on a machine without GPUs trains with gloo)."""
        super(DefaultTrainer, self).__init__()
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        if not logging.getLogger("contextrast").isEnabledFor(logging.INFO):
            setup_logger(name="contextrast")
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        on_cuda = torch.device(cfg.MODEL.DEVICE).type == "cuda"
        model = create_ddp_model(
            model,
            broadcast_buffers=False,
            device_ids=[comm.get_local_rank()] if on_cuda else None,
        )
        trainer_cls = GuardedAMPTrainer if cfg.SOLVER.AMP.ENABLED else GuardedSimpleTrainer
        self._trainer = trainer_cls(model, data_loader, optimizer)
        self._trainer.configure_nonfinite(
            cfg.SOLVER.NONFINITE_LOSS, cfg.SOLVER.NONFINITE_MAX_SKIPS, self._resume_hint
        )
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = ContextrastCheckpointer(
            model, cfg.OUTPUT_DIR, strict=cfg.MODEL.WEIGHTS_STRICT, trainer=weakref.proxy(self)
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        ret = super().build_hooks()
        for hook in ret:
            if isinstance(hook, hooks.PeriodicWriter):
                hook._period = self.cfg.SOLVER.LOG_PERIOD  # detectron2 fixes it to 20
        # First, so every other hook's before_step already sees this iteration's seeds.
        ret.insert(0, ResumableStreamHook(self._trainer.data_loader.sampler))
        return ret

    def build_writers(self):
        window = self.cfg.SOLVER.LOG_PERIOD
        return [
            CommonMetricPrinter(self.max_iter, window_size=window),
            JSONWriter(os.path.join(self.cfg.OUTPUT_DIR, "metrics.json"), window_size=window),
            TensorboardXWriter(self.cfg.OUTPUT_DIR, window_size=window),
        ]

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
    def build_train_loader(cls, cfg) -> ResumableLoader:
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
        return build_sem_seg_evaluator(cfg, dataset_name, output_folder)

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
