#!/usr/bin/env python
"""Inference cost of configs side by side: parameters, FLOPs, ONNX graph size and structure.

    python deploy/cost_report.py --config-file configs/demo/baseline.yaml \\
        --config-file configs/demo/contextrast.yaml [--height 160 --width 240] [--expect-equal]

For each config the inference network (``MODEL.CONTEXTRAST.ENABLED`` forced False, random
weights: cost does not depend on them; jittered so that no two tensors are equal, as after
training, see ``jitter_weights``) is measured: parameters, fvcore FLOPs of one forward pass
of ``forward_logits`` on a 1 x 3 x H x W input (one fused multiply-add = one FLOP), and its static
ONNX export: node count, op histogram, initializer count, elements and bytes. The training-time
parameter count (projection heads included when the config enables Contextrast) is reported for
information. Ratios are against the first config; a Contextrast config against its baseline gives
exactly 1.0 for every inference figure, and ``--expect-equal`` makes any other outcome (including a
different op histogram or initializer set) exit with status 1.
"""

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from contextrast.config import load_config
from contextrast.export import (
    EXPORTERS,
    INFERENCE_METRICS,
    compare,
    default_size,
    format_table,
    measure,
    setup_logging,
)

logger = logging.getLogger("deploy.cost_report")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the exit status (1 = ``--expect-equal`` violated)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config-file", action="append", required=True, metavar="FILE", help="twice or more"
    )
    parser.add_argument("--height", type=int, help="default: the first config's training crop")
    parser.add_argument("--width", type=int, help="default: the first config's training crop")
    parser.add_argument(
        "--exporter", choices=EXPORTERS, default=EXPORTERS[0], help="exporter of the ONNX figures"
    )
    parser.add_argument("--expect-equal", action="store_true", help="fail unless all ratios = 1")
    parser.add_argument("--output-json", metavar="FILE")
    args = parser.parse_args(argv)
    setup_logging()
    if len(args.config_file) < 2:
        parser.error("give --config-file at least twice")

    cfgs = [load_config(path, device="cpu") for path in args.config_file]
    crop_h, crop_w = default_size(cfgs[0])
    height, width = args.height or crop_h, args.width or crop_w
    names = [Path(p).stem for p in args.config_file]
    if len(set(names)) < len(names):
        names = [f"{i}:{n}" for i, n in enumerate(names)]
    with tempfile.TemporaryDirectory() as workdir:
        reports = [
            measure(
                cfg,
                height=height,
                width=width,
                workdir=workdir,
                name=f"model{i}",
                exporter=args.exporter,
            )
            for i, cfg in enumerate(cfgs)
        ]
    comparisons = compare(reports)

    print(f"Input 1x3x{height}x{width}; ratios against {args.config_file[0]}")
    print(format_table(names, reports, comparisons))
    if args.output_json:
        data = {
            "input_shape": [1, 3, height, width],
            "configs": args.config_file,
            "reports": [{k: v for k, v in r.items() if k != "initializers"} for r in reports],
            "comparisons": comparisons,
        }
        Path(args.output_json).write_text(json.dumps(data, indent=2) + "\n")
    if args.expect_equal:
        bad = [
            f"{names[i + 1]}: {key}"
            for i, c in enumerate(comparisons)
            for key in INFERENCE_METRICS
            if c["ratios"][key] != 1.0
        ] + [
            f"{names[i + 1]}: {key}"
            for i, c in enumerate(comparisons)
            for key in ("same_op_histogram", "same_initializers")
            if not c[key]
        ]
        if bad:
            logger.error("Inference cost differs from %s: %s", names[0], ", ".join(bad))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
