#!/usr/bin/env python
"""PNG panels: image | ground truth | the prediction of every model (e.g. baseline | Contextrast).

Colours are the dataset's ``stuff_colors``; ignored pixels are black. Each model predicts as its
evaluation does (multi-scale + flip when its config sets TEST.AUG.ENABLED).

Examples:
    python tools/visualize.py --config-file \
        configs/camvid/hrnet_w48_baseline.yaml configs/camvid/hrnet_w48_contextrast.yaml \
        --weights base/model_final.pth ctx/model_final.pth --names baseline Contextrast \
        --num-images 8 --output output/panels
    python tools/visualize.py --config-file C1 C2 --weights W1 W2 \
        --images 0001TP_008550.png Seq05VD_f02370.png --output output/panels
"""

import argparse
import logging
import os
import warnings

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.utils.logger import setup_logger
from PIL import Image

from contextrast.config import load_config
from contextrast.data import label_spec_from_metadata, load_sem_seg_label, read_image_file
from contextrast.evaluation import (
    build_eval_loader,
    dataset_records,
    inference_model,
    load_eval_model,
)
from contextrast.evaluation.visualization import colorize, default_palette, make_panel

# detectron2 scripts a few helpers at import time; torch now warns about that on every import.
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
logger = logging.getLogger("contextrast.visualize")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config-file",
        nargs="+",
        action="extend",
        required=True,
        help="one config per model, e.g. baseline then Contextrast",
    )
    parser.add_argument(
        "--weights",
        nargs="+",
        action="extend",
        default=[],
        help="one checkpoint per config; default: each config's MODEL.WEIGHTS",
    )
    parser.add_argument(
        "--names",
        nargs="+",
        action="extend",
        default=[],
        help="panel titles; default: the config file names",
    )
    parser.add_argument(
        "--dataset",
        default="",
        help="registered dataset; default DATASETS.TEST[0] of the first config",
    )
    parser.add_argument(
        "--images",
        nargs="+",
        default=[],
        help="image files of the dataset (path or base name); default: the first "
        "--num-images of the split",
    )
    parser.add_argument("--num-images", type=int, default=4, help="first N images of the split")
    parser.add_argument("--output", required=True, help="folder for the PNG panels")
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        default=[],
        help="KEY VALUE config overrides applied to every config",
    )
    args = parser.parse_args(argv)  # fmt: skip
    n = len(args.config_file)
    for key in ("weights", "names"):
        if getattr(args, key) and len(getattr(args, key)) != n:
            parser.error(f"--{key}: give one per config ({n}), got {len(getattr(args, key))}")
    return args


@torch.no_grad()
def predict(config_file, weights, opts, dataset, records):
    """(H, W) int64 label maps of one model for ``records``, at their original size."""
    cfg, model = load_eval_model(config_file, weights, opts)
    model = inference_model(cfg, model)
    predictions = []
    for batch in build_eval_loader(cfg, dataset, records):
        for output in model(batch):
            predictions.append(output["sem_seg"].argmax(dim=0).cpu().numpy())
    return predictions


def main(args):
    setup_logger(name="contextrast")
    names = args.names or [os.path.splitext(os.path.basename(c))[0] for c in args.config_file]
    weights = args.weights or [None] * len(args.config_file)
    dataset = args.dataset
    if not dataset:
        dataset = load_config(args.config_file[0], args.opts).DATASETS.TEST[0]
    records = dataset_records(dataset, 0 if args.images else args.num_images, args.images)
    predictions = [
        predict(c, w, args.opts, dataset, records) for c, w in zip(args.config_file, weights)
    ]

    meta = MetadataCatalog.get(dataset)
    num_classes, ignore_label, label_lut = label_spec_from_metadata(dataset)
    colors = meta.get("stuff_colors", None) or default_palette(num_classes)
    os.makedirs(args.output, exist_ok=True)
    written = []
    for i, record in enumerate(records):
        tiles = [("image", read_image_file(record["file_name"], "RGB"))]
        if record.get("sem_seg_file_name"):
            gt = load_sem_seg_label(
                record["sem_seg_file_name"],
                num_classes=num_classes,
                ignore_label=ignore_label,
                label_lut=label_lut,
            )
            tiles.append(("ground truth", colorize(gt, colors, ignore_label)))
        tiles += [(n, colorize(p[i], colors, ignore_label)) for n, p in zip(names, predictions)]
        stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
        path = os.path.join(args.output, f"{stem}.png")
        Image.fromarray(np.ascontiguousarray(make_panel(tiles))).save(path)
        written.append(path)
    logger.info("wrote %d panels to %s", len(written), args.output)
    return written


if __name__ == "__main__":
    main(parse_args())  # pragma: no cover
