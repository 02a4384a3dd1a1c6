"""PASCAL-Context with the 59 most frequent classes (background ignored).

Registers ``pascal_context_59_sem_seg_train`` (4,998 images) and ``..._val`` (5,105). Images stay
in the VOC2010 release; the labels are uint8 PNGs of train ids 0..58 (255 = background and the
400 rarer classes) written by ``datasets/prepare_pascal_context_59.py`` from the release's
459-class ``trainval/*.mat`` files. The split is whatever that script wrote, so records are
indexed by label file and each needs its JPEG.
"""

import os
from typing import Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog

from .common import IGNORE_LABEL, load_pairs, voc_colormap

# (name, id in the 459-class labels.txt of the PASCAL-Context release). Train id = list index:
# the alphabetical order used by the Detail-API converters (mmsegmentation, HRNet/OCR code), so
# checkpoints of those code bases keep their class order.
PASCAL_CONTEXT_59 = [
    ("aeroplane", 2),
    ("bag", 9),
    ("bed", 18),
    ("bedclothes", 19),
    ("bench", 22),
    ("bicycle", 23),
    ("bird", 25),
    ("boat", 31),
    ("book", 33),
    ("bottle", 34),
    ("building", 44),
    ("bus", 45),
    ("cabinet", 46),
    ("car", 59),
    ("cat", 65),
    ("ceiling", 68),
    ("chair", 72),
    ("cloth", 80),
    ("computer", 85),
    ("cow", 98),
    ("cup", 104),
    ("curtain", 105),
    ("dog", 113),
    ("door", 115),
    ("fence", 144),
    ("floor", 158),
    ("flower", 159),
    ("food", 162),
    ("grass", 187),
    ("ground", 189),
    ("horse", 207),
    ("keyboard", 220),
    ("light", 232),
    ("motorbike", 258),
    ("mountain", 259),
    ("mouse", 260),
    ("person", 284),
    ("plate", 295),
    ("platform", 296),
    ("pottedplant", 308),
    ("road", 324),
    ("rock", 326),
    ("sheep", 347),
    ("shelves", 349),
    ("sidewalk", 354),
    ("sign", 355),
    ("sky", 360),
    ("snow", 366),
    ("sofa", 368),
    ("table", 397),
    ("track", 415),
    ("train", 416),
    ("tree", 420),
    ("truck", 424),
    ("tvmonitor", 427),
    ("wall", 440),
    ("water", 445),
    ("window", 454),
    ("wood", 458),
]
PASCAL_CONTEXT_59_CLASSES = [name for name, _ in PASCAL_CONTEXT_59]
# VOC palette without its black background entry.
PASCAL_CONTEXT_59_COLORS = voc_colormap(len(PASCAL_CONTEXT_59) + 1)[1:]
# split -> (label folder under VOC2010/annotations_detectron2, official size)
PASCAL_CONTEXT_59_SPLITS = {"train": ("pc59_train", 4998), "val": ("pc59_val", 5105)}
PASCAL_CONTEXT_TREE = """\
  $DETECTRON2_DATASETS/VOCdevkit/VOC2010/
    JPEGImages/<id>.jpg                       VOCtrainval_03-May-2010.tar
    annotations_detectron2/pc59_train/<id>.png  written by datasets/prepare_pascal_context_59.py
    annotations_detectron2/pc59_val/<id>.png    (uint8 train ids 0..58, 255 = ignore)"""


def load_pascal_context_59(root: str, split: str) -> List[Dict]:
    """Load one PASCAL-Context-59 split as detectron2 sem-seg records.

    Args:
        root: the datasets root (the folder holding ``VOCdevkit/``).
        split: ``"train"`` or ``"val"``.

    Returns:
        One record per converted label file, sorted by image id.

    Raises:
        FileNotFoundError: see :func:`contextrast.data.datasets.common.load_pairs`.
    """
    label_folder, count = PASCAL_CONTEXT_59_SPLITS[split]
    voc = os.path.join(root, "VOCdevkit", "VOC2010")
    return load_pairs(
        f"pascal_context_59_sem_seg_{split}",
        root,
        PASCAL_CONTEXT_TREE,
        image_dir=os.path.join(voc, "JPEGImages"),
        label_dir=os.path.join(voc, "annotations_detectron2", label_folder),
        image_ext=".jpg",
        label_ext=".png",
        index_by="label",
        expected_count=count,
    )


def register_all_pascal_context_59(root: str) -> None:
    """Register both PASCAL-Context-59 splits under ``root``; nothing is read until loaded.

    Args:
        root: the datasets root, normally ``$DETECTRON2_DATASETS``.
    """
    voc = os.path.join(root, "VOCdevkit", "VOC2010")
    for split, (label_folder, _) in PASCAL_CONTEXT_59_SPLITS.items():
        name = f"pascal_context_59_sem_seg_{split}"
        DatasetCatalog.register(name, lambda r=root, s=split: load_pascal_context_59(r, s))
        MetadataCatalog.get(name).set(
            stuff_classes=list(PASCAL_CONTEXT_59_CLASSES),
            stuff_colors=[list(c) for c in PASCAL_CONTEXT_59_COLORS],
            ignore_label=IGNORE_LABEL,
            evaluator_type="sem_seg",
            image_root=os.path.join(voc, "JPEGImages"),
            sem_seg_root=os.path.join(voc, "annotations_detectron2", label_folder),
        )
