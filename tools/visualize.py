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

import logging
import os

import contextrast  # noqa: F401  isort: skip  (first: imports detectron2 quietly)
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
from contextrast.evaluation.cli import model_comparison_parser, parse_model_comparison_args
from contextrast.evaluation.visualization import colorize, default_palette, make_panel

logger = logging.getLogger("contextrast.visualize")


def parse_args(argv=None):
    parser = model_comparison_parser(
        __doc__.split("\n")[0],
        config_help="one config per model, e.g. baseline then Contextrast",
        names_help="panel titles; default: the config file names",
        dataset_help="registered dataset; default DATASETS.TEST[0] of the first config",
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
    return parse_model_comparison_args(parser, argv)


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
    dataset = args.dataset
    if not dataset:
        dataset = load_config(args.config_file[0], args.opts).DATASETS.TEST[0]
    records = dataset_records(dataset, 0 if args.images else args.num_images, args.images)
    predictions = [
        predict(c, w, args.opts, dataset, records) for c, w in zip(args.config_file, args.weights)
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
        tiles += [
            (n, colorize(p[i], colors, ignore_label)) for n, p in zip(args.names, predictions)
        ]
        stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
        path = os.path.join(args.output, f"{stem}.png")
        Image.fromarray(np.ascontiguousarray(make_panel(tiles))).save(path)
        written.append(path)
    logger.info("wrote %d panels to %s", len(written), args.output)
    return written


if __name__ == "__main__":
    main(parse_args())  # pragma: no cover
