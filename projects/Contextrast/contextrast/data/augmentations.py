"""Training and test augmentations for semantic segmentation, built from detectron2 transforms.

Training recipe (the paper's: colour jitter, horizontal flip, random scale 0.5-2.0 and crop), in
order:

1. random scale: ``ResizeShortestEdge`` with ``INPUT.MIN_SIZE_TRAIN`` sampled per
   ``INPUT.MIN_SIZE_TRAIN_SAMPLING`` (configs list short sides from 0.5x to 2.0x the base one),
   capped by ``INPUT.MAX_SIZE_TRAIN``;
2. crop: ``RandomCrop_CategoryAreaConstraint`` (``INPUT.CROP.*``), retrying crops where one class
   covers more than ``INPUT.CROP.SINGLE_CATEGORY_MAX_AREA``, the ignore value not counted. As in
   detectron2, a crop larger than the scaled image is clipped to it; the model pads the batch;
3. colour jitter (``INPUT.COLOR_JITTER``): brightness, contrast and saturation, after the crop so
   it costs only crop-sized work; photometric ops leave the labels alone;
4. flip: ``INPUT.RANDOM_FLIP`` ("none" | "horizontal" | "vertical").

Labels are resized with nearest neighbour by detectron2's transforms, so train ids stay exact.
"""

from typing import List

import numpy as np
from detectron2.data import transforms as T

__all__ = ["build_sem_seg_train_augmentation", "build_sem_seg_test_augmentation"]

# Colour jitter ranges (factors; 1 = unchanged), moderate as in common sem-seg recipes.
BRIGHTNESS_RANGE = (0.75, 1.25)
CONTRAST_RANGE = (0.75, 1.25)
SATURATION_RANGE = (0.75, 1.25)
# ITU-R 601 luma weights, in the channel order of the image.
_LUMA = {"RGB": (0.299, 0.587, 0.114), "BGR": (0.114, 0.587, 0.299)}


class RandomSaturation(T.Augmentation):
    """Saturation jitter that knows the channel order.

    detectron2's ``RandomSaturation`` assumes RGB; on BGR input (detectron2's default
    ``INPUT.FORMAT``) it would compute grey from swapped weights.
    """

    def __init__(self, intensity_min: float, intensity_max: float, image_format: str = "RGB"):
        """
        Args:
            intensity_min, intensity_max: range of the saturation factor (1 = unchanged).
            image_format: "RGB" or "BGR", the channel order of the images it receives.
        """
        super().__init__()
        if image_format not in _LUMA:
            raise ValueError(
                f"RandomSaturation: image_format {image_format!r} not supported; "
                f"expected one of {sorted(_LUMA)}"
            )
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> T.Transform:
        """image: (H, W, 3) uint8 or float in ``image_format`` order."""
        w = np.random.uniform(self.intensity_min, self.intensity_max)
        grey = image.dot(np.asarray(_LUMA[self.image_format]))[:, :, np.newaxis]
        return T.BlendTransform(src_image=grey, src_weight=1 - w, dst_weight=w)


def build_sem_seg_train_augmentation(cfg) -> List[T.Augmentation]:
    """Training augmentations (see the module docstring for the order and keys).

    Args:
        cfg: detectron2 config with the DeepLab (``INPUT.CROP.SINGLE_CATEGORY_MAX_AREA``) and
            Contextrast (``INPUT.COLOR_JITTER``) keys.

    Returns:
        list[Augmentation] to wrap in ``T.AugmentationList``; they expect ``AugInput(image,
        sem_seg=label)`` since the crop reads the label.
    """
    augs: List[T.Augmentation] = [
        T.ResizeShortestEdge(
            cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
        )
    ]
    if cfg.INPUT.CROP.ENABLED:
        augs.append(
            T.RandomCrop_CategoryAreaConstraint(
                cfg.INPUT.CROP.TYPE,
                cfg.INPUT.CROP.SIZE,
                cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA,
                cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            )
        )
    if cfg.INPUT.COLOR_JITTER:
        if cfg.INPUT.FORMAT not in _LUMA:
            raise ValueError(
                f"INPUT.COLOR_JITTER needs INPUT.FORMAT in {sorted(_LUMA)}, "
                f"got {cfg.INPUT.FORMAT!r}"
            )
        augs += [
            T.RandomBrightness(*BRIGHTNESS_RANGE),
            T.RandomContrast(*CONTRAST_RANGE),
            RandomSaturation(*SATURATION_RANGE, image_format=cfg.INPUT.FORMAT),
        ]
    flip = cfg.INPUT.RANDOM_FLIP
    if flip not in ("none", "horizontal", "vertical"):
        raise ValueError(
            f"INPUT.RANDOM_FLIP must be 'none', 'horizontal' or 'vertical', got {flip!r}"
        )
    if flip != "none":
        augs.append(T.RandomFlip(horizontal=flip == "horizontal", vertical=flip == "vertical"))
    return augs


def build_sem_seg_test_augmentation(cfg) -> List[T.Augmentation]:
    """Test-time resize: ``ResizeShortestEdge(INPUT.MIN_SIZE_TEST, INPUT.MAX_SIZE_TEST)``.

    ``INPUT.MIN_SIZE_TEST == 0`` means full resolution (no augmentation at all). Multi-scale and
    flip testing are the model's TTA wrapper's business, not the mapper's.
    """
    if cfg.INPUT.MIN_SIZE_TEST == 0:
        return []
    return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")]
