#!/usr/bin/env python
"""Convert COCO-Stuff-10k's ``.mat`` annotations into 171-class train-id PNGs.

Reads the extracted ``cocostuff-10k-v1.1.zip`` under ``--root`` (default
``$DETECTRON2_DATASETS/coco_stuff_10k``):

- ``imageLists/{train,test}.txt``: the 9,000 / 1,000 image names of the benchmark split;
- ``annotations/<name>.mat``: variable ``S`` holds per-pixel COCO-Stuff ids, 0 = unlabeled and
  1..182 = the classes of the release's ``labels.txt`` (11 thing ids are unused).

Writes ``annotations_detectron2/{train,test}/<name>.png`` (or under ``--output``): uint8 train
ids 0..170 (the 171 used ids in ascending order, as
``contextrast.data.datasets.coco_stuff.COCO_STUFF_171``), 255 for unlabeled. Images are not
copied: the loader reads them from ``images/``.

Example::

    python datasets/prepare_coco_stuff_10k.py --workers 8
"""

import argparse
import logging
import os
import sys
from typing import List, Optional

from contextrast.data.datasets.coco_stuff import COCO_STUFF_10K_SPLITS, COCO_STUFF_171_IDS
from contextrast.data.datasets.common import datasets_root
from contextrast.data.datasets.conversion import convert_mat_labels, mat_lut, read_id_list

logger = logging.getLogger("prepare_coco_stuff_10k")

MAX_RAW_ID = 182


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root",
        default=os.path.join(datasets_root(), "coco_stuff_10k"),
        help="extracted cocostuff-10k-v1.1 folder (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="output folder (default: <root>/annotations_detectron2, where the loader looks)",
    )
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=list(COCO_STUFF_10K_SPLITS),
        default=list(COCO_STUFF_10K_SPLITS),
    )
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Convert the requested splits; see the module docstring."""
    args = parse_args(argv)
    if not os.path.isdir(args.root):
        raise FileNotFoundError(
            f"input folder not found: '{args.root}' (--root, default under "
            "$DETECTRON2_DATASETS); see this script's docstring and datasets/README.md"
        )
    output = args.output or os.path.join(args.root, "annotations_detectron2")
    # Unlabeled (0) and the unused thing ids are absent from the mapping, hence 255.
    lut = mat_lut({raw_id: i for i, raw_id in enumerate(COCO_STUFF_171_IDS)}, MAX_RAW_ID)
    for split in args.splits:
        list_name, folder, expected = COCO_STUFF_10K_SPLITS[split]
        names = read_id_list(os.path.join(args.root, "imageLists", list_name))
        if len(names) != expected:
            logger.warning(
                "%s: %d names listed, the official split has %d", split, len(names), expected
            )
        pairs = [
            (
                os.path.join(args.root, "annotations", f"{name}.mat"),
                os.path.join(output, folder, f"{name}.png"),
            )
            for name in names
        ]
        done = convert_mat_labels(pairs, "S", lut, workers=args.workers)
        logger.info("%s: wrote %d label PNGs to '%s'", split, done, os.path.join(output, folder))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    main(sys.argv[1:])
