#!/usr/bin/env python
"""Convert PASCAL-Context's 459-class ``.mat`` annotations into 59-class train-id PNGs.

Reads the raw releases under ``--voc-root`` (default ``$DETECTRON2_DATASETS/VOCdevkit/VOC2010``):

- ``ImageSets/Main/{train,val}.txt``: VOC2010's train / val lists (4,998 / 5,105 images), which
  are PASCAL-Context's train / val splits (VOCtrainval_03-May-2010.tar);
- ``trainval/<id>.mat``: PASCAL-Context's ``trainval.tar.gz``; variable ``LabelMap`` holds ids of
  the 459 classes of ``labels.txt`` (1-based) and 0 for unlabeled pixels;
- ``labels.txt`` (optional): the release's ``"<id>: <name>"`` list; when present the script checks
  that the 59 ids it keeps carry the expected names.

Writes ``annotations_detectron2/pc59_{train,val}/<id>.png`` (or under ``--output``): uint8 train
ids 0..58 in the order of ``contextrast.data.datasets.pascal_context.PASCAL_CONTEXT_59``, 255 for
background and the 400 other classes. The ``detail`` API is not needed: the ``.mat`` files hold
the same 459-class maps it serves.

Example::

    python datasets/prepare_pascal_context_59.py --workers 8
"""

import argparse
import logging
import os
import sys
from typing import List, Optional

from contextrast.data.datasets.common import datasets_root
from contextrast.data.datasets.conversion import convert_mat_labels, mat_lut, read_id_list
from contextrast.data.datasets.pascal_context import PASCAL_CONTEXT_59, PASCAL_CONTEXT_59_SPLITS

logger = logging.getLogger("prepare_pascal_context_59")

NUM_RAW_CLASSES = 459


def check_labels_txt(labels_file: str) -> None:
    """Check that ``labels.txt`` names the 59 kept ids as expected.

    Raises:
        ValueError: a kept id is missing or carries another name (a different release or an
            edited file would silently scramble the classes otherwise).
    """
    names = {}
    with open(labels_file) as f:
        for line in f:
            if ":" in line:
                raw_id, name = line.split(":", 1)
                names[int(raw_id)] = name.strip()
    wrong = [
        f"{raw_id}: expected '{name}', found '{names.get(raw_id)}'"
        for name, raw_id in PASCAL_CONTEXT_59
        if names.get(raw_id) != name
    ]
    if wrong:
        raise ValueError(f"'{labels_file}' does not match the 59-class table: {wrong}")


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--voc-root",
        default=os.path.join(datasets_root(), "VOCdevkit", "VOC2010"),
        help="VOC2010 folder holding JPEGImages/, ImageSets/ and trainval/ (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="output folder (default: <voc-root>/annotations_detectron2, where the loader looks)",
    )
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=list(PASCAL_CONTEXT_59_SPLITS),
        default=list(PASCAL_CONTEXT_59_SPLITS),
    )
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Convert the requested splits; see the module docstring."""
    args = parse_args(argv)
    if not os.path.isdir(args.voc_root):
        raise FileNotFoundError(
            f"input folder not found: '{args.voc_root}' (--voc-root, default under "
            "$DETECTRON2_DATASETS); see this script's docstring and datasets/README.md"
        )
    output = args.output or os.path.join(args.voc_root, "annotations_detectron2")
    labels_file = os.path.join(args.voc_root, "labels.txt")
    if os.path.isfile(labels_file):
        check_labels_txt(labels_file)
    else:
        logger.warning("'%s' not found: class names not checked", labels_file)
    lut = mat_lut({raw_id: i for i, (_, raw_id) in enumerate(PASCAL_CONTEXT_59)}, NUM_RAW_CLASSES)
    for split in args.splits:
        folder, expected = PASCAL_CONTEXT_59_SPLITS[split]
        ids = read_id_list(os.path.join(args.voc_root, "ImageSets", "Main", f"{split}.txt"))
        if len(ids) != expected:
            logger.warning(
                "%s: %d ids listed, the official split has %d", split, len(ids), expected
            )
        pairs = [
            (
                os.path.join(args.voc_root, "trainval", f"{image_id}.mat"),
                os.path.join(output, folder, f"{image_id}.png"),
            )
            for image_id in ids
        ]
        done = convert_mat_labels(pairs, "LabelMap", lut, workers=args.workers)
        logger.info("%s: wrote %d label PNGs to '%s'", split, done, os.path.join(output, folder))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    main(sys.argv[1:])
