#!/usr/bin/env python
"""Screen balance options with the gradient diagnostic before training them: for each variant
(config overrides) and each checkpoint, the ratio and cosine of the contrastive to the CE gradient
per part of the network (``contextrast.engine.grad_balance``). Seconds per cell, not a training
run; it ranks options and explains results, it does not predict mIoU.

    python bench/grad_balance_screen.py --config-file C --num-batches 4 \\
        --weights init=output/pretrained/efficientnet_lite0.pth it200=RUN/model_0000199.pth \\
        --variant paper --variant cap01 MODEL.CONTEXTRAST.GRAD_RATIO_CAP 0.1 \\
        --output docs/results/screen.md [KEY VALUE ...]      # overrides for every cell

Every cell draws the same training batches (``SEED``) at the iteration training would run next
from the checkpoint (its ``iteration`` + 1; 0 for a backbone-only checkpoint), so rows differ
only by the variant.
"""

import argparse
import json
import logging
import os
import sys
from typing import Dict, List

import contextrast  # noqa: F401  isort: skip  (first: imports detectron2 quietly)

from contextrast.config import load_config
from contextrast.engine.grad_balance import measure_config

logger = logging.getLogger("grad_balance_screen")
# Rows of the diagnostic shown in the table (the full rows go to the JSON file).
SUMMARY_GROUPS = ("shared", "backbone", "sem_seg_head")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--weights", nargs="+", required=True, metavar="NAME=PATH", help="checkpoints, named"
    )
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        required=True,
        metavar="NAME [KEY VALUE ...]",
        help="a variant: its name, then its config overrides (repeat the flag per variant)",
    )
    parser.add_argument("--num-batches", type=int, default=4)
    parser.add_argument("--output", help="Markdown table (and a .json beside it)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="overrides for every cell")
    args = parser.parse_args(argv)
    for spec in args.weights:
        if "=" not in spec:
            parser.error(f"--weights {spec}: expected NAME=PATH")
    for name, *opts in args.variant:
        if len(opts) % 2:
            parser.error(f"--variant {name}: overrides must be KEY VALUE pairs, got {opts}")
    return args


def _stage_extremes(rows) -> str:
    """Lowest and highest ratio over the backbone's stages."""
    stages = [r for r in rows if r["group"].startswith("backbone.")]
    ratios = sorted(r["ratio"] for r in stages)
    return f"{ratios[0]:.3g}-{ratios[-1]:.3g}" if ratios else "-"


def format_screen(cells: List[Dict]) -> str:
    """Markdown table: one line per (variant, checkpoint)."""
    header = ["variant", "checkpoint", "alpha"]
    for g in SUMMARY_GROUPS:
        header += [f"{g} ratio", f"{g} cos"]
    header.append("backbone stages ratio")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in cells:
        rows = {r["group"]: r for r in cell["rows"]}
        values = [cell["variant"], cell["weights_name"], f"{cell['alpha']:g}"]
        for g in SUMMARY_GROUPS:
            values += [f"{rows[g]['ratio']:.3g}", f"{rows[g]['cosine']:+.3f}"]
        values.append(_stage_extremes(cell["rows"]))
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[screen] %(message)s", stream=sys.stdout)
    for noisy in ("detectron2", "fvcore", "contextrast"):  # model / loader set-up, per cell
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cells = []
    for spec in args.weights:
        weights_name, path = spec.split("=", 1)
        for name, *opts in args.variant:
            cfg = load_config(args.config_file, list(args.opts) + opts, weights=path, device="cpu")
            rows, setting = measure_config(cfg, args.num_batches)
            cells.append(
                {
                    "variant": name,
                    "overrides": opts,
                    "weights_name": weights_name,
                    "weights": path,
                    "iteration": setting.iteration,
                    "alpha": setting.alpha,
                    "grad_scale": setting.grad_scale,
                    "rows": [vars(r) for r in rows],
                }
            )
            logger.info("%s @ %s: shared ratio %.3g", name, weights_name, rows[-1].ratio)
    table = format_screen(cells)
    print(table)
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(table + "\n")
        record = {"config_file": args.config_file, "opts": args.opts, "cells": cells}
        with open(os.path.splitext(args.output)[0] + ".json", "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
