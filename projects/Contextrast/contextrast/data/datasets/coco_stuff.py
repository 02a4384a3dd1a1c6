"""COCO-Stuff-10k, 171 classes (80 things + 91 stuff), 9k train / 1k test.

Registers ``coco_stuff_10k_sem_seg_train`` and ``coco_stuff_10k_sem_seg_test``. Images stay in
the release's flat ``images/`` folder; the labels are uint8 PNGs of contiguous train ids 0..170
(255 = unlabeled) written by ``datasets/prepare_coco_stuff_10k.py`` from the release's ``.mat``
annotations, whose values are 0 (unlabeled) or a COCO-Stuff id 1..182 (11 thing ids unused).
"""

import os
from typing import Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES

from .common import IGNORE_LABEL, load_pairs, voc_colormap

# COCO-Stuff ids 92..182, in id order (the stuff half of the release's labels.txt).
_STUFF_NAMES = """
banner blanket branch bridge building-other bush cabinet cage cardboard carpet ceiling-other
ceiling-tile cloth clothes clouds counter cupboard curtain desk-stuff dirt door-stuff fence
floor-marble floor-other floor-stone floor-tile floor-wood flower fog food-other fruit
furniture-other grass gravel ground-other hill house leaves light mat metal mirror-stuff moss
mountain mud napkin net paper pavement pillow plant-other plastic platform playingfield railing
railroad river road rock roof rug salad sand sea shelf sky-other skyscraper snow solid-other
stairs stone straw structural-other table tent textile-other towel tree vegetable wall-brick
wall-concrete wall-other wall-panel wall-stone wall-tile wall-wood water-other waterdrops
window-blind window-other wood
""".split()
_FIRST_STUFF_ID = 92

# The 80 thing classes (COCO ids 1..90 with gaps) keep detectron2's names and colours; the stuff
# classes take VOC palette entries after the first 80 so that no two stuff classes share one.
_THINGS = [c for c in COCO_CATEGORIES if c["isthing"] == 1]
_STUFF_COLORS = voc_colormap(len(_THINGS) + len(_STUFF_NAMES) + 1)[len(_THINGS) + 1 :]

# (COCO-Stuff id, name, colour) in train-id order: ascending id, as in the 171-class benchmark.
COCO_STUFF_171 = [(c["id"], c["name"], list(c["color"])) for c in _THINGS] + [
    (_FIRST_STUFF_ID + i, name, _STUFF_COLORS[i]) for i, name in enumerate(_STUFF_NAMES)
]
COCO_STUFF_171_IDS = [cid for cid, _, _ in COCO_STUFF_171]
COCO_STUFF_171_CLASSES = [name for _, name, _ in COCO_STUFF_171]
COCO_STUFF_171_COLORS = [color for _, _, color in COCO_STUFF_171]
# split -> (list file in imageLists/, label folder in annotations_detectron2/, official size)
COCO_STUFF_10K_SPLITS = {"train": ("train.txt", "train", 9000), "test": ("test.txt", "test", 1000)}
COCO_STUFF_10K_TREE = """\
  $DETECTRON2_DATASETS/coco_stuff_10k/         cocostuff-10k-v1.1.zip, extracted
    images/<name>.jpg                          10,000 COCO images
    annotations/<name>.mat                     raw labels (read only by the prepare script)
    imageLists/{train,test}.txt                9,000 / 1,000 names
    annotations_detectron2/{train,test}/<name>.png
                                               written by datasets/prepare_coco_stuff_10k.py
                                               (uint8 train ids 0..170, 255 = unlabeled)"""


def load_coco_stuff_10k(root: str, split: str) -> List[Dict]:
    """Load one COCO-Stuff-10k split as detectron2 sem-seg records.

    Args:
        root: the datasets root (the folder holding ``coco_stuff_10k/``).
        split: ``"train"`` or ``"test"``.

    Returns:
        One record per converted label file, sorted by image name.

    Raises:
        FileNotFoundError: see :func:`contextrast.data.datasets.common.load_pairs`.
    """
    _, label_folder, count = COCO_STUFF_10K_SPLITS[split]
    base = os.path.join(root, "coco_stuff_10k")
    return load_pairs(
        f"coco_stuff_10k_sem_seg_{split}",
        root,
        COCO_STUFF_10K_TREE,
        image_dir=os.path.join(base, "images"),
        label_dir=os.path.join(base, "annotations_detectron2", label_folder),
        image_ext=".jpg",
        label_ext=".png",
        index_by="label",
        expected_count=count,
    )


def register_all_coco_stuff_10k(root: str) -> None:
    """Register both COCO-Stuff-10k splits under ``root``; nothing is read until loaded.

    Args:
        root: the datasets root, normally ``$DETECTRON2_DATASETS``.
    """
    base = os.path.join(root, "coco_stuff_10k")
    for split, (_, label_folder, _) in COCO_STUFF_10K_SPLITS.items():
        name = f"coco_stuff_10k_sem_seg_{split}"
        DatasetCatalog.register(name, lambda r=root, s=split: load_coco_stuff_10k(r, s))
        MetadataCatalog.get(name).set(
            stuff_classes=list(COCO_STUFF_171_CLASSES),
            stuff_colors=[list(c) for c in COCO_STUFF_171_COLORS],
            # COCO-Stuff id -> train id (detectron2's key), to write predictions as release ids.
            stuff_dataset_id_to_contiguous_id={cid: i for i, cid in enumerate(COCO_STUFF_171_IDS)},
            ignore_label=IGNORE_LABEL,
            evaluator_type="sem_seg",
            image_root=os.path.join(base, "images"),
            sem_seg_root=os.path.join(base, "annotations_detectron2", label_folder),
        )
