"""Evaluators for semantic segmentation that read ground truth the way the mapper does.

detectron2's ``SemSegEvaluator`` loads each ground-truth file itself; here it gets a loading
function that applies the dataset's ``label_lut`` and validates the values (see
:func:`contextrast.data.labels.load_sem_seg_label`), so e.g. CamVid's raw void value 11 becomes
the ignore label and is excluded from mIoU exactly as it is excluded from the training loss.
"""

import functools
from typing import Optional

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator, DatasetEvaluators, SemSegEvaluator

from ..data.labels import check_model_matches_dataset, label_spec_from_metadata, load_sem_seg_label
from .cityscapes_evaluation import CityscapesLabelIdEvaluator

__all__ = ["build_sem_seg_evaluator"]

EVALUATOR_TYPES = ("sem_seg", "cityscapes_sem_seg")


def _load_ground_truth(
    file_name: str,
    dtype=int,
    *,
    num_classes: int,
    ignore_label: int,
    label_lut: Optional[np.ndarray],
) -> np.ndarray:
    """``SemSegEvaluator``'s ``sem_seg_loading_fn(file_name, dtype=int)``: (H, W) train ids."""
    label = load_sem_seg_label(
        file_name, num_classes=num_classes, ignore_label=ignore_label, label_lut=label_lut
    )
    # A fresh array of the requested dtype: the evaluator overwrites ignore pixels in place.
    return label.astype(dtype)


def build_sem_seg_evaluator(
    cfg,
    dataset_name: str,
    output_dir: Optional[str] = None,
    *,
    label_id_dir: Optional[str] = None,
) -> DatasetEvaluator:
    """Evaluator for a registered sem-seg dataset, chosen by its metadata's ``evaluator_type``.

    Args:
        cfg: the config; its ``MODEL.SEM_SEG_HEAD.NUM_CLASSES`` / ``IGNORE_VALUE`` must match the
            dataset (a model with other classes cannot be scored against it).
        dataset_name: a dataset registered in ``DatasetCatalog`` with sem-seg metadata.
        output_dir: where ``SemSegEvaluator`` writes its predictions and metrics; None = nowhere
            (the RLE predictions file is large on big datasets).
        label_id_dir: Cityscapes only: the folder that keeps the official evaluator's label-id
            PNGs (the test server's format, see :class:`CityscapesLabelIdEvaluator`); None = a
            temporary folder, deleted after scoring.

    Returns:
        ``SemSegEvaluator`` (mIoU, fwIoU, mACC, pACC, per-class IoU) for ``evaluator_type``
        "sem_seg"; for "cityscapes_sem_seg", ``DatasetEvaluators`` of that and
        :class:`CityscapesLabelIdEvaluator` (cityscapesScripts' IoU and iIoU, under the results
        key "cityscapes_sem_seg"; needs the ``[cityscapes]`` extra).
    """
    meta = MetadataCatalog.get(dataset_name)
    evaluator_type = meta.get("evaluator_type", None)
    if evaluator_type not in EVALUATOR_TYPES:
        raise ValueError(
            f"dataset {dataset_name!r}: metadata evaluator_type={evaluator_type!r}, "
            f"expected one of {EVALUATOR_TYPES}"
        )
    num_classes, ignore_label, label_lut = label_spec_from_metadata(dataset_name)
    check_model_matches_dataset(cfg, dataset_name, num_classes, ignore_label)
    loading_fn = functools.partial(
        _load_ground_truth,
        num_classes=num_classes,
        ignore_label=ignore_label,
        label_lut=label_lut,
    )
    sem_seg = SemSegEvaluator(
        dataset_name, distributed=True, output_dir=output_dir, sem_seg_loading_fn=loading_fn
    )
    if evaluator_type == "cityscapes_sem_seg":
        return DatasetEvaluators([sem_seg, CityscapesLabelIdEvaluator(dataset_name, label_id_dir)])
    return sem_seg
