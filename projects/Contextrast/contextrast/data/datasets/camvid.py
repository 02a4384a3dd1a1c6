"""CamVid, 11 classes, in the SegNet tutorial's layout (480x360 PNG, void = 11).

Registers ``camvid_train`` (367 images), ``camvid_val`` (101) and, when a ``test/`` folder is
present at registration time, ``camvid_test`` (233). Label files are used as released: the
metadata's ``label_lut`` maps void (11) to the ignore label 255, and the mapper / evaluator apply
it, so the (possibly read-only) data root is never rewritten.

What the release defines (SegNet tutorial, ``CamVid/*annot/*.png``, single-channel 8-bit): values
0..10 are the 11 classes below, 11 is "Unlabelled" (void). No other value occurs; a file holding
one (e.g. the 32-class CamVid labels, values 0..31, or RGB colour labels converted wrongly) stops
with an error naming the file and the values.
"""

import os
from typing import Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog

from .common import IGNORE_LABEL, label_lut, load_pairs

# Class order = the label values 0..10 of the SegNet release; colours from its tutorial scripts.
CAMVID_CLASSES = [
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
]
CAMVID_COLORS = [
    [128, 128, 128],
    [128, 0, 0],
    [192, 192, 128],
    [128, 64, 128],
    [60, 40, 222],
    [128, 128, 0],
    [192, 128, 128],
    [64, 64, 128],
    [64, 0, 128],
    [64, 64, 0],
    [0, 128, 192],
]
CAMVID_VOID = 11  # "Unlabelled" in the SegNet release
# split -> (image folder, label folder, official size)
CAMVID_SPLITS = {
    "train": ("train", "trainannot", 367),
    "val": ("val", "valannot", 101),
    "test": ("test", "testannot", 233),
}
CAMVID_TREE = """\
  $DETECTRON2_DATASETS/camvid/
    train/ trainannot/    367 RGB PNGs and their label PNGs (same file names)
    val/   valannot/      101
    [test/ testannot/]    233 (optional; camvid_test is registered only when test/ exists)
  labels: single-channel PNG, 0..10 = classes, 11 = void"""


def load_camvid(root: str, split: str) -> List[Dict]:
    """Load one CamVid split as detectron2 sem-seg records.

    Args:
        root: the datasets root (the folder holding ``camvid/``).
        split: ``"train"``, ``"val"`` or ``"test"``.

    Returns:
        One record per image of ``camvid/<split>/``, sorted by file name.

    Raises:
        FileNotFoundError: see :func:`contextrast.data.datasets.common.load_pairs`.
    """
    image_folder, label_folder, count = CAMVID_SPLITS[split]
    base = os.path.join(root, "camvid")
    return load_pairs(
        f"camvid_{split}",
        root,
        CAMVID_TREE,
        image_dir=os.path.join(base, image_folder),
        label_dir=os.path.join(base, label_folder),
        image_ext=".png",
        label_ext=".png",
        index_by="image",
        expected_count=count,
    )


def camvid_metadata() -> Dict:
    """Metadata shared by every CamVid split (without the per-split folders)."""
    return {
        "stuff_classes": list(CAMVID_CLASSES),
        "stuff_colors": [list(c) for c in CAMVID_COLORS],
        "ignore_label": IGNORE_LABEL,
        "label_lut": label_lut({i: i for i in range(len(CAMVID_CLASSES))}, void=[CAMVID_VOID]),
        "evaluator_type": "sem_seg",
    }


def register_all_camvid(root: str) -> None:
    """Register the CamVid splits found under ``root``; nothing is read until a split is loaded.

    Args:
        root: the datasets root, normally ``$DETECTRON2_DATASETS``.
    """
    base = os.path.join(root, "camvid")
    splits = ["train", "val"]
    # The test split is held out on purpose in some copies; register it only where it exists so
    # that a config naming camvid_test fails with "not registered" rather than a later I/O error.
    if os.path.isdir(os.path.join(base, CAMVID_SPLITS["test"][0])):
        splits.append("test")
    for split in splits:
        name = f"camvid_{split}"
        image_folder, label_folder, _ = CAMVID_SPLITS[split]
        DatasetCatalog.register(name, lambda r=root, s=split: load_camvid(r, s))
        MetadataCatalog.get(name).set(
            image_root=os.path.join(base, image_folder),
            sem_seg_root=os.path.join(base, label_folder),
            **camvid_metadata(),
        )
