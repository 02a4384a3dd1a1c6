#!/usr/bin/env python
"""Export the inference network of a Contextrast (or baseline) config to ONNX and check parity.

    python deploy/export_onnx.py --config-file configs/demo/contextrast.yaml \\
        --weights output/demo/contextrast/model_final.pth --output demo.onnx --dynamic

The network is built with ``MODEL.CONTEXTRAST.ENABLED`` forced False (no projection heads); the
checkpoint's ``contrast_heads.*`` tensors are dropped and reported, any other difference from the
network is an error that lists the keys. The graph takes ``images`` (B, 3, H, W) float32 0-255 in
the config's ``INPUT.FORMAT`` channel order (normalisation and padding are inside) and returns
``logits`` (B, K, H, W) float32 or, with ``--output-kind labels``, ``labels`` (B, H, W) int64.
After ``onnx.checker``, ONNX Runtime (CPU provider) is compared with PyTorch on random images or
on ``--images``; with ``--dynamic`` at two different sizes and batch sizes. Exit status 1 when a
parity check fails. Trailing ``KEY VALUE`` pairs override the config.
"""

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

import torch

from contextrast.checkpoint import CheckpointMismatchError
from contextrast.config import load_config
from contextrast.export import (
    EXPORTERS,
    OPSET,
    OUTPUT_KINDS,
    InferenceWrapper,
    build_inference_model,
    check_parity,
    convert_fp16,
    default_size,
    export_onnx,
    format_parity,
    jitter_weights,
    load_inference_weights,
    metadata_from_config,
    onnx_graph_summary,
    parity_inputs,
    random_images,
    setup_logging,
    write_metadata,
)

logger = logging.getLogger("deploy.export_onnx")

# Default parity tolerance of an fp16 graph, relative to max |logit|: fp16 rounds to 2^-11
# (5e-4) per operation and the errors of ~50 layers add up.
FP16_RTOL = 1e-2


def build_parser() -> argparse.ArgumentParser:
    """The command line of :func:`main`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--weights", metavar="FILE", help="checkpoint (default: random initialisation)"
    )
    parser.add_argument("--output", required=True, metavar="FILE", help="output .onnx file")
    parser.add_argument("--height", type=int, help="export height (default: training crop)")
    parser.add_argument("--width", type=int, help="export width (default: training crop)")
    parser.add_argument("--batch", type=int, default=1, help="export batch size")
    parser.add_argument(
        "--dynamic", action="store_true", help="symbolic batch / height / width (traced at H x W)"
    )
    parser.add_argument("--opset", type=int, default=OPSET)
    parser.add_argument("--output-kind", choices=OUTPUT_KINDS, default="logits")
    parser.add_argument(
        "--exporter",
        choices=EXPORTERS,
        default=EXPORTERS[0],
        help="torch.onnx exporter: dynamo (torch's current one) or torchscript (deprecated)",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "fp16"),
        default="fp32",
        help="fp16: computation in fp16 for GPU providers, inputs / outputs float32",
    )
    parser.add_argument("--images", nargs="+", default=[], metavar="FILE", help="parity images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random parity images")
    parser.add_argument("--atol", type=float, default=1e-4, help="parity: absolute logit tol.")
    parser.add_argument(
        "--rtol",
        type=float,
        help="parity: tolerance relative to max |logit| (default 1e-5; fp16: 1e-2, since fp16 "
        "keeps 11 significant bits)",
    )
    parser.add_argument(
        "--min-agreement", type=float, default=0.999, help="parity: labels agreement"
    )
    parser.add_argument(
        "--parity-device",
        default="cpu",
        help="device of the PyTorch reference (e.g. cuda: checks the GPU path, strict float32)",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the exit status (1 = parity failed)."""
    args = build_parser().parse_args(argv)
    setup_logging()
    cfg = load_config(args.config_file, args.opts, device="cpu")
    crop_h, crop_w = default_size(cfg)
    height, width = args.height or crop_h, args.width or crop_w

    torch.manual_seed(args.seed)
    model = build_inference_model(cfg)
    if args.weights:
        try:
            load_inference_weights(model, args.weights)
        except CheckpointMismatchError as e:
            sys.exit(f"error: {e}")
    else:
        jitter_weights(model, args.seed)
        logger.warning("No --weights: exporting a randomly initialised network")
    wrapper = InferenceWrapper(model, args.output_kind)

    sample = torch.from_numpy(random_images(args.batch, height, width, args.seed))
    try:  # creates the folder of --output when it is missing
        export_onnx(
            wrapper,
            args.output,
            sample,
            dynamic=args.dynamic,
            opset=args.opset,
            exporter=args.exporter,
        )
    except OSError as e:
        sys.exit(f"error: --output {args.output}: {e}")
    # The preprocessing and label contract travels in the file (tools/predict.py --onnx).
    write_metadata(args.output, metadata_from_config(cfg, output_kind=args.output_kind))
    if args.precision == "fp16":
        fp32_path = args.output[: -len(".onnx")] + "_fp32.onnx"
        os.replace(args.output, fp32_path)
        convert_fp16(fp32_path, args.output)
        logger.info("fp16 graph in %s (the fp32 export kept in %s)", args.output, fp32_path)
    summary = onnx_graph_summary(args.output)
    logger.info(
        "Wrote %s (%s exporter, %s, opset %d): inputs %s, outputs %s, %d nodes, %d initializers "
        "(%.2f MB)",
        args.output,
        args.exporter,
        args.precision,
        args.opset,
        summary["inputs"],
        summary["outputs"],
        summary["nodes"],
        summary["initializer_count"],
        summary["initializer_bytes"] / 1e6,
    )

    inputs = parity_inputs(
        input_format=cfg.INPUT.FORMAT,
        image_paths=args.images,
        height=height,
        width=width,
        batch=args.batch,
        dynamic=args.dynamic,
        seed=args.seed,
    )
    rows, ok = check_parity(
        wrapper,
        args.output,
        inputs,
        atol=args.atol,
        rtol=(
            args.rtol if args.rtol is not None else FP16_RTOL if args.precision == "fp16" else 1e-5
        ),
        min_agreement=args.min_agreement,
        device=args.parity_device,
    )
    print(
        f"Parity, ONNX Runtime (CPUExecutionProvider) vs PyTorch ({args.parity_device}), "
        f"{args.output}:"
    )
    print(format_parity(rows))
    if not ok:
        logger.error("Parity check failed (see the table above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
