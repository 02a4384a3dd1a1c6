"""ContextrastTrainer: detectron2's DefaultTrainer with the project's data, schedule and evaluators."""
import logging
import weakref

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, create_ddp_model
from detectron2.projects.deeplab import build_lr_scheduler
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..data.evaluation import build_sem_seg_evaluator
from ..data.mapper import SemSegDatasetMapper

__all__ = ["ContextrastTrainer"]


class ContextrastTrainer(DefaultTrainer):
    """DefaultTrainer with the sem-seg mapper and evaluator, poly LR, and CPU-capable DDP."""

    def __init__(self, cfg):
        """Same construction order as :class:`DefaultTrainer`, but DDP also wraps CPU models
        (``--num-gpus N`` on a machine without GPUs trains with gloo)."""
        super(DefaultTrainer, self).__init__()
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
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
        trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self._trainer = trainer_cls(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DetectionCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @classmethod
    def build_train_loader(cls, cfg):
        mapper = SemSegDatasetMapper(cfg, is_train=True, dataset_name=cfg.DATASETS.TRAIN[0])
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        mapper = SemSegDatasetMapper(cfg, is_train=False, dataset_name=dataset_name)
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return build_sem_seg_evaluator(cfg, dataset_name, output_folder)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        # DeepLab's builder adds WarmupPolyLR to detectron2's schedules.
        return build_lr_scheduler(cfg, optimizer)
