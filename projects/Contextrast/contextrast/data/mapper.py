"""Dataset mapper for semantic segmentation, with label look-up tables and input validation.

The label of each record is read with :func:`~contextrast.data.labels.load_sem_seg_label` (label
look-up table, value checks), as the evaluator reads the ground truth.
"""

import copy
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .augmentations import build_sem_seg_test_augmentation, build_sem_seg_train_augmentation
from .labels import (
    DECODE_ERRORS,
    as_label_lut,
    check_model_matches_dataset,
    label_spec_from_metadata,
    load_sem_seg_label,
)

__all__ = ["SemSegDatasetMapper", "read_image_file"]


def read_image_file(file_name: str, image_format: str) -> np.ndarray:
    """detectron2's ``read_image`` with errors that name the file.

    Returns:
        (H, W, C) uint8 array in ``image_format`` (e.g. "BGR", "RGB").
    """
    try:
        return utils.read_image(file_name, format=image_format)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"image file not found: {file_name}") from e
    except DECODE_ERRORS as e:
        raise ValueError(
            f"cannot decode image file {file_name} (corrupt or truncated?): {e}"
        ) from e


class SemSegDatasetMapper(DatasetMapper):
    """detectron2's ``DatasetMapper`` for semantic segmentation records.

    It keeps the parent's augmentation handling and output format and replaces only the reading:
    the label goes through ``label_lut`` and is validated, and unreadable files, mismatched sizes
    and invalid label values raise errors naming the files. Instance annotations are dropped.

    The label conventions (classes, ignore label, LUT) come from the metadata of one dataset,
    fixed at construction: ``from_config(cfg, is_train, dataset_name)`` uses ``dataset_name``, or
    else every dataset of ``cfg.DATASETS.TRAIN`` (training) / ``cfg.DATASETS.TEST`` (inference),
    which must then agree. Records need no extra field.

    Output per record: the record's fields plus ``"image"`` ((C, H, W) uint8 tensor in
    ``image_format``) and, when the record has ``sem_seg_file_name``, ``"sem_seg"`` ((H, W) long
    tensor of train ids and ``ignore_label``).
    """

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        augmentations: List[Union[T.Augmentation, T.Transform]],
        image_format: str,
        num_classes: int,
        ignore_label: int = 255,
        label_lut: Optional[Sequence[int]] = None,
    ):
        """
        Args:
            is_train: training (True) or inference mapping.
            augmentations: applied to ``AugInput(image, sem_seg=label)``.
            image_format: ``INPUT.FORMAT``, e.g. "BGR" or "RGB".
            num_classes: number of train ids.
            ignore_label: label value excluded from losses and metrics (at most 255).
            label_lut: optional 256 ints, raw label value -> train id (255 = ignore).
        """
        super().__init__(is_train, augmentations=augmentations, image_format=image_format)
        if not 0 < num_classes <= 255 or not 0 <= ignore_label <= 255:
            raise ValueError(
                f"SemSegDatasetMapper: need 0 < num_classes <= 255 and 0 <= ignore_label <= 255 "
                f"(labels are uint8), got num_classes={num_classes}, ignore_label={ignore_label}"
            )
        label_lut = as_label_lut(label_lut, "SemSegDatasetMapper: label_lut")
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.label_lut = label_lut

    @classmethod
    def from_config(cls, cfg, is_train: bool = True, dataset_name: Optional[str] = None):
        if dataset_name is not None:
            names = [dataset_name]
        else:
            names = list(cfg.DATASETS.TRAIN if is_train else cfg.DATASETS.TEST)
            if not names:
                key = "DATASETS.TRAIN" if is_train else "DATASETS.TEST"
                raise ValueError(f"SemSegDatasetMapper: {key} is empty and no dataset_name given")
        specs = [label_spec_from_metadata(name) for name in names]
        num_classes, ignore_label, lut = specs[0]
        for name, (n, ignore, other_lut) in zip(names[1:], specs[1:]):
            same_lut = (lut is None and other_lut is None) or (
                lut is not None and other_lut is not None and np.array_equal(lut, other_lut)
            )
            if (n, ignore) != (num_classes, ignore_label) or not same_lut:
                raise ValueError(
                    f"SemSegDatasetMapper: datasets {names[0]!r} and {name!r} differ in classes, "
                    "ignore_label or label_lut; build one mapper per dataset (dataset_name=...)"
                )
        check_model_matches_dataset(cfg, names[0], num_classes, ignore_label)
        if is_train:
            augs = build_sem_seg_train_augmentation(cfg)
        else:
            augs = build_sem_seg_test_augmentation(cfg)
        return {
            "is_train": is_train,
            "augmentations": augs,
            "image_format": cfg.INPUT.FORMAT,
            "num_classes": num_classes,
            "ignore_label": ignore_label,
            "label_lut": lut,
        }

    def __call__(self, dataset_dict: dict) -> dict:
        """
        Args:
            dataset_dict: one record (``file_name``, optional ``sem_seg_file_name``, ``height``,
                ``width``, ...); not modified.

        Returns:
            dict: a copy with ``"image"`` (C, H, W) uint8 and ``"sem_seg"`` (H, W) int64 tensors,
            after augmentation; ``sem_seg_file_name`` and ``annotations`` removed.
        """
        dataset_dict = copy.deepcopy(dataset_dict)
        image_file = dataset_dict["file_name"]
        image = read_image_file(image_file, self.image_format)
        utils.check_image_size(dataset_dict, image)  # record height/width vs the file

        label_file = dataset_dict.pop("sem_seg_file_name", None)
        sem_seg = None
        if label_file is not None:
            sem_seg = load_sem_seg_label(
                label_file,
                num_classes=self.num_classes,
                ignore_label=self.ignore_label,
                label_lut=self.label_lut,
            )
            if sem_seg.shape != image.shape[:2]:
                raise ValueError(
                    f"label file {label_file} is {sem_seg.shape[1]}x{sem_seg.shape[0]} (WxH) "
                    f"but image file {image_file} is {image.shape[1]}x{image.shape[0]}"
                )

        aug_input = T.AugInput(image, sem_seg=sem_seg)
        self.augmentations(aug_input)
        image, sem_seg = aug_input.image, aug_input.sem_seg
        # Tensors travel through the data loader's shared memory; numpy arrays would be pickled.
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg.astype(np.int64))
        dataset_dict.pop("annotations", None)  # sem-seg only
        return dataset_dict
