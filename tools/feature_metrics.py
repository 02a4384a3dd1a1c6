#!/usr/bin/env python
"""Feature-level metrics (A, U, U_l) and mIoU of one or more trained models on a dataset.

The embeddings are the input of each head's final classifier, single-scale (test-time
augmentation does not apply to features). A: intra-class alignment (lower is better); U:
inter-class uniformity and U_l: neighbourhood uniformity (higher is better). See
``contextrast/evaluation/feature_metrics.py`` and the TEST.FEATURE_METRICS config keys.

Examples:
    python tools/feature_metrics.py --config-file configs/camvid/hrnet_w48_contextrast.yaml \
        --weights output/camvid/hrnet_w48_contextrast/model_final.pth
    python tools/feature_metrics.py \
        --config-file configs/demo/baseline.yaml configs/demo/contextrast.yaml \
        --weights output/demo/baseline/model_final.pth output/demo/contextrast/model_final.pth \
        --dataset synth_streets_val --max-images 20 --output metrics.json
"""

import json
import logging

import contextrast  # noqa: F401  isort: skip  (first: imports detectron2 quietly)
from detectron2.evaluation import DatasetEvaluators, inference_on_dataset
from detectron2.utils.logger import setup_logger
from tabulate import tabulate

from contextrast.evaluation import (
    FeatureMetricsEvaluator,
    SegmentorWithEmbeddings,
    build_eval_loader,
    build_sem_seg_evaluator,
    dataset_records,
    load_eval_model,
)
from contextrast.evaluation.cli import model_comparison_parser, parse_model_comparison_args

logger = logging.getLogger("contextrast.feature_metrics")


def parse_args(argv=None):
    parser = model_comparison_parser(
        __doc__.split("\n")[0],
        config_help="one config per model (e.g. baseline and Contextrast)",
        names_help="row names; default: the config file names",
        dataset_help="registered dataset; default DATASETS.TEST[0]",
    )
    parser.add_argument("--max-images", type=int, default=0, help="first N images (0 = all)")
    parser.add_argument("--output", default="", help="also write the results as JSON here")
    return parse_model_comparison_args(parser, argv)


def evaluate_model(config_file, weights, opts, dataset, max_images):
    """mIoU and feature metrics of one model; returns (dataset name, flat dict of results)."""
    cfg, model = load_eval_model(config_file, weights, opts)
    dataset = dataset or cfg.DATASETS.TEST[0]
    records = dataset_records(dataset, max_images)
    logger.info("%s: %d images of %s", config_file, len(records), dataset)
    evaluator = DatasetEvaluators(
        [FeatureMetricsEvaluator(cfg, dataset), build_sem_seg_evaluator(cfg, dataset)]
    )
    results = inference_on_dataset(
        SegmentorWithEmbeddings(model), build_eval_loader(cfg, dataset, records), evaluator
    )
    row = {"mIoU": results["sem_seg"]["mIoU"], **results["feature_metrics"]}
    return dataset, row


def main(args):
    setup_logger(name="contextrast")
    setup_logger(name="detectron2", abbrev_name="d2")
    rows = []
    for name, config_file, w in zip(args.names, args.config_file, args.weights):
        dataset, result = evaluate_model(config_file, w, args.opts, args.dataset, args.max_images)
        rows.append({"model": name, "dataset": dataset, **result})
    datasets = sorted({r["dataset"] for r in rows})
    if len(datasets) > 1:
        logger.warning("the models were evaluated on different datasets: %s", datasets)
    headers = ["model", "mIoU", "A (lower better)", "U (higher better)",
               f"U_l, l={int(rows[0]['l'])} (higher better)", "classes"]  # fmt: skip
    table = [[r["model"], r["mIoU"], r["A"], r["U"], r["U_l"], int(r["num_classes"])] for r in rows]
    logger.info(
        "Feature-level metrics on %s (%s):\n%s",
        ", ".join(datasets),
        f"first {args.max_images} images" if args.max_images > 0 else "all images",
        tabulate(table, headers=headers, floatfmt=".4f", tablefmt="pipe"),
    )
    if args.output:
        with open(args.output, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main(parse_args())  # pragma: no cover
