#!/usr/bin/env python
"""Gradient balance of a Contextrast config: per backbone stage and for the head, the norm of the
CE and of the contrastive gradient, their ratio and cosine, averaged over training batches.

    python tools/grad_balance.py --config-file \\
        configs/camvid/lite0_deeplabv3plus_contextrast.yaml \\
        [--weights output/ce/model_0000999.pth] [--num-batches 4] [--iteration 1000] \\
        [--json out.json] [KEY VALUE ...]

The model is built and its weights loaded as for training (MODEL.WEIGHTS, or --weights: a
checkpoint without projection heads, e.g. of a CE-only run, loads and the heads start from their
initialisation), then put in training mode on --num-batches batches of the config's training
loader (seeded by SEED, default 0). The contrastive gradient is what L_CE + L_contrast adds to
L_CE's, at training iteration --iteration: alpha's warm-up (WARMUP_ITERS) and START_ITER apply as
training applies them there. The default is the iteration training runs next from the
checkpoint: its "iteration" (the last one it finished) + 1, e.g. 1000 for model_0000999.pth; 0
without a checkpoint. The header gives that iteration, alpha and the multiplier of the heads'
gradient into the network (0 before START_ITER: every contrastive norm is then 0). Ratios are
||g_contrast|| / ||g_CE||; the "shared" row is all the parameters both losses reach.
"""

import argparse
import dataclasses
import json
import logging
import sys

import contextrast  # noqa: F401  isort: skip  (first: imports detectron2 quietly)

from contextrast.checkpoint import UnreadableCheckpointError
from contextrast.config import load_config
from contextrast.engine.grad_balance import format_table, measure_config

logger = logging.getLogger("grad_balance")


def _iteration(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: expected a training iteration >= 0")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--weights", help="checkpoint to load (default: MODEL.WEIGHTS)")
    parser.add_argument("--num-batches", type=int, default=4, help="training batches averaged")
    parser.add_argument(
        "--iteration",
        type=_iteration,
        help="training iteration of the losses (default: the checkpoint's iteration + 1, the "
        "one training runs next; 0 without a checkpoint)",
    )
    parser.add_argument("--device", default="cpu", help="MODEL.DEVICE (default: cpu)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows (and per batch) here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    try:
        cfg = load_config(args.config_file, args.opts, weights=args.weights, device=args.device)
        rows, setting = measure_config(cfg, args.num_batches, args.iteration)
    except (ValueError, FileNotFoundError, UnreadableCheckpointError) as e:
        # A bad value, no contrastive term, a missing / unreadable / mismatched checkpoint
        # (CheckpointMismatchError is a ValueError).
        parser.exit(2, f"grad_balance: {args.config_file}: {e}\n")
    logger.info(
        "%s, weights %s, %s, %d batches of %d images\n%s",
        args.config_file,
        cfg.MODEL.WEIGHTS or "(initialisation)",
        setting.describe(),
        args.num_batches,
        cfg.SOLVER.IMS_PER_BATCH,
        format_table(rows),
    )
    if args.json:
        record = {
            "config_file": args.config_file,
            "opts": args.opts,
            "weights": cfg.MODEL.WEIGHTS,
            "iteration": setting.iteration,
            "alpha": setting.alpha,
            "grad_scale": setting.grad_scale,
            "num_batches": args.num_batches,
            "rows": [dataclasses.asdict(r) for r in rows],
        }
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
