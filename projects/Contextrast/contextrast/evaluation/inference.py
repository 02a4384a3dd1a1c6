"""Shared set-up of the evaluation tools: trained models, dataset subsets and test loaders."""

import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, build_detection_test_loader
from detectron2.modeling import build_model

from ..checkpoint import ContextrastCheckpointer
from ..config import load_config
from ..data.mapper import SemSegDatasetMapper
from .tta import SemSegTTA

__all__ = [
    "build_eval_loader",
    "dataset_records",
    "inference_model",
    "load_eval_model",
]

logger = logging.getLogger(__name__)


def load_eval_model(
    config_file: str, weights: Optional[str], opts: Sequence[str] = ()
) -> Tuple[CfgNode, nn.Module]:
    """Build a model from a project config and load its weights, in eval mode.

    Args:
        config_file: YAML config of the project.
        weights: checkpoint path (or detectron2 URL); None or "" = ``MODEL.WEIGHTS`` of the config.
        opts: ``KEY VALUE`` overrides applied after the file.

    Returns:
        (frozen cfg, model in eval mode).
    """
    cfg = load_config(config_file, opts, weights=weights)
    model = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        # Strict by default: evaluating half-loaded weights would give meaningless numbers.
        ContextrastCheckpointer(model, strict=cfg.MODEL.WEIGHTS_STRICT).load(cfg.MODEL.WEIGHTS)
    else:
        logger.warning("%s: no weights given, the model is randomly initialised", config_file)
    return cfg, model.eval()


def inference_model(cfg: CfgNode, model: nn.Module) -> nn.Module:
    """The model as the evaluation runs it: wrapped in :class:`SemSegTTA` when
    ``TEST.AUG.ENABLED``, else unchanged."""
    return SemSegTTA(cfg, model) if cfg.TEST.AUG.ENABLED else model


def dataset_records(
    dataset_name: str,
    max_images: int = 0,
    file_names: Sequence[str] = (),
) -> List[Dict]:
    """Records of a registered dataset: the first ``max_images`` (0 = all), or those whose image
    file matches one of ``file_names`` (full path or base name), in that order.

    Raises:
        KeyError: for a name that matches no record.
    """
    records = DatasetCatalog.get(dataset_name)
    if file_names:
        by_path = {os.path.abspath(r["file_name"]): r for r in records}
        by_base = {os.path.basename(r["file_name"]): r for r in records}
        selected = []
        for name in file_names:
            record = by_path.get(os.path.abspath(name)) or by_base.get(os.path.basename(name))
            if record is None:
                raise KeyError(f"{name}: no image of dataset {dataset_name!r} has this file name")
            selected.append(record)
        records = selected
    return records[:max_images] if max_images > 0 else records


def build_eval_loader(
    cfg: CfgNode, dataset_name: str, records: List[Dict], num_workers: Optional[int] = None
):
    """detectron2 test loader (batch 1) over ``records`` with the project's test mapper
    (``num_workers``: default ``DATALOADER.NUM_WORKERS``)."""
    mapper = SemSegDatasetMapper(cfg, is_train=False, dataset_name=dataset_name)
    if num_workers is None:
        num_workers = cfg.DATALOADER.NUM_WORKERS
    return build_detection_test_loader(records, mapper=mapper, num_workers=num_workers)
