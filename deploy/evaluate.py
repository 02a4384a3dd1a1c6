#!/usr/bin/env python
"""mIoU of a deployed model (ONNX or TensorRT engine) on a dataset, next to the PyTorch model's.

    python deploy/evaluate.py --model model.onnx --dataset camvid_val \\
        [--config-file C --weights W] [--backend ort-cpu|ort-cuda|ort-trt|trt] [--max-images N]

Every image goes through the evaluation's test mapper, then through the deployed model and, with
``--weights``, the PyTorch model of ``--config-file`` (random weights are never evaluated). Each
model is scored by detectron2's ``SemSegEvaluator``; the table lists mIoU, fwIoU, mACC, pACC and
the median latency of the model call. An ``.onnx`` file needs no config: its metadata gives the
input format, test resize and classes (a config given too must agree). A TensorRT engine
(``--backend trt``) carries no metadata: give ``--config-file``. Trailing ``KEY VALUE`` pairs
override the config.
"""

import argparse
import json
import logging
import os
import sys
from typing import Optional, Sequence

import numpy as np
import torch

from contextrast.config import load_config
from contextrast.export import (
    ORT_BACKENDS,
    Predictor,
    check_metadata_matches_config,
    config_from_metadata,
    evaluate_models,
    read_metadata,
    setup_logging,
)
from contextrast.export.tensorrt import missing_requirements

logger = logging.getLogger("deploy.evaluate")

BACKENDS = (*ORT_BACKENDS, "trt")


def build_parser() -> argparse.ArgumentParser:
    """The command line of :func:`main`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        required=True,
        nargs="+",
        metavar="FILE",
        help=".onnx file(s) (e.g. fp32 and int8, evaluated side by side) or one engine",
    )
    parser.add_argument("--backend", choices=BACKENDS, default="ort-cpu")
    parser.add_argument("--config-file", metavar="FILE", help="config (needed for an engine)")
    parser.add_argument("--weights", metavar="FILE", help="checkpoint of the PyTorch reference")
    parser.add_argument("--dataset", help="registered dataset (default: the config's / ONNX's)")
    parser.add_argument("--max-images", type=int, default=0, help="first N images (0 = all)")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads")
    parser.add_argument("--output-json", metavar="FILE", help="write the results here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    return parser


def _deployed_model(args, path: str):
    """(name, callable) of a deployed model; exits with status 2 when it cannot run here."""
    if args.backend == "trt":
        missing = missing_requirements()
        if missing:
            sys.exit("error: cannot run a TensorRT engine here:\n  - " + "\n  - ".join(missing))
        from contextrast.export import TensorRTRunner

        runner = TensorRTRunner(path)
        return (
            f"trt {os.path.basename(path)}",
            lambda x: runner(torch.from_numpy(x).cuda()).cpu().numpy(),
        )
    try:
        # Timed next to the other models: no spinning thread pool between calls.
        predictor = Predictor(path, backend=args.backend, threads=args.threads, spinning=False)
    except RuntimeError as e:
        sys.exit(f"error: {e}")
    name = f"{args.backend} {predictor.metadata.precision} {os.path.basename(path)}"
    return name, predictor.forward_array


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    setup_logging()
    # SemSegEvaluator logs every per-class metric at INFO; the table below has what matters.
    logging.getLogger("detectron2.evaluation.sem_seg_evaluation").setLevel(logging.WARNING)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    meta, metas = None, {}
    try:
        if args.backend != "trt":
            metas = {path: read_metadata(path) for path in args.model}
            meta = metas[args.model[0]]
        if args.config_file:
            cfg = load_config(args.config_file, args.opts, device="cpu")
            for path in metas:
                check_metadata_matches_config(metas[path], cfg, path)
        elif meta is None:
            sys.exit("error: --backend trt needs --config-file (an engine carries no metadata)")
        dataset = args.dataset or (cfg.DATASETS.TEST[0] if args.config_file else meta.dataset)
        if not dataset:
            sys.exit("error: give --dataset (the ONNX metadata names no dataset)")
        if not args.config_file:
            cfg = config_from_metadata(meta, dataset)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")

    models = dict(_deployed_model(args, path) for path in args.model)
    if len(models) < len(args.model):
        sys.exit("error: give each --model once")
    if args.weights:
        if not args.config_file:
            sys.exit("error: --weights needs --config-file (the PyTorch model's config)")
        models = {"pytorch": Predictor(cfg, args.weights).forward_array, **models}
    results = evaluate_models(cfg, dataset, models, max_images=args.max_images)

    # Paired latency ratio: median over images of (time / first model's time on that image).
    first = np.asarray(next(iter(results.values()))["times_ms"])
    for row in results.values():
        row["paired_ratio"] = float(np.median(np.asarray(row["times_ms"]) / first))
    keys = ("mIoU", "fwIoU", "mACC", "pACC", "median_ms", "mean_ms", "paired_ratio")
    print(f"{dataset}, {len(first)} images (paired_ratio: latency relative to the first row):")
    print("| model | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, row in results.items():
        print(
            f"| {name} | "
            + " | ".join(f"{row[k]:.3g}" if k == "paired_ratio" else f"{row[k]:.2f}" for k in keys)
            + " |"
        )
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump({"dataset": dataset, "model": args.model, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
