#!/usr/bin/env python
"""Static INT8 (QDQ) quantization of an fp32 ONNX export for CPU deployment.

    python deploy/quantize.py --onnx model.onnx --output model_int8.onnx \\
        --dataset camvid_train --num-images 64

ONNX Runtime's ``quant_pre_process`` then ``quantize_static`` (QDQ format, int8 weights per
channel, uint8 activations), with activation ranges calibrated on ``--num-images`` images drawn
at random from ``--dataset`` (training images: the validation set stays unseen) and preprocessed
by the ONNX file's own contract (its metadata). The INT8 file keeps that metadata, with precision
"int8"; measure it with ``deploy/evaluate.py``.
"""

import argparse
import logging
import sys
import time
from typing import Optional, Sequence

from contextrast.export import (
    CALIBRATION_METHODS,
    calibration_images,
    positive_int,
    quantize_int8,
    read_metadata,
    setup_logging,
)

logger = logging.getLogger("deploy.quantize")


def build_parser() -> argparse.ArgumentParser:
    """The command line of :func:`main`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--onnx", required=True, metavar="FILE", help="fp32 export")
    parser.add_argument("--output", required=True, metavar="FILE", help="INT8 .onnx file")
    parser.add_argument(
        "--dataset", help="calibration images (default: the training split of the ONNX's dataset)"
    )
    parser.add_argument(
        "--num-images", type=positive_int, default=64, help="calibration images (at least 1)"
    )
    parser.add_argument("--method", choices=CALIBRATION_METHODS, default="minmax")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image draw")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        meta = read_metadata(args.onnx)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    dataset = args.dataset
    if dataset is None:
        base = meta.dataset.rsplit("_", 1)[0] if meta.dataset else ""
        dataset = f"{base}_train" if base else ""
        if not dataset:
            sys.exit(f"error: {args.onnx} names no dataset: give --dataset")
    start = time.perf_counter()
    images = calibration_images(dataset, meta, args.num_images, args.seed)
    try:
        quantize_int8(args.onnx, args.output, images, method=args.method)
    except (KeyError, ValueError, OSError) as e:  # OSError: --output's folder, an image file
        sys.exit(f"error: {e}")
    logger.info("INT8 model %s written in %.0f s", args.output, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
