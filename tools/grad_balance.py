#!/usr/bin/env python
"""Gradient balance of a Contextrast config: per backbone stage and for the head, the norm of the
CE and of the contrastive gradient, their ratio and cosine, averaged over training batches.

    python tools/grad_balance.py --config-file \\
        configs/camvid/lite0_deeplabv3plus_contextrast.yaml \\
        [--weights output/ce/model_0000199.pth] [--num-batches 4] [--iteration 200] \\
        [--json out.json] [KEY VALUE ...]

The model is built and its weights loaded as for training (``MODEL.WEIGHTS``, or ``--weights``:
a checkpoint without projection heads, e.g. of a CE-only run, loads and the heads start from
their initialisation), then put in training mode on ``--num-batches`` batches of the config's
training loader (seeded by ``SEED``, default 0). The contrastive gradient is what
``L_CE + L_contrast`` adds to ``L_CE``'s, at ``--iteration`` (alpha's warm-up and
``MODEL.CONTEXTRAST.START_ITER``; default: the checkpoint's iteration, else 0). Ratios are
``||g_contrast|| / ||g_CE||``; the ``shared`` row is all the parameters both losses reach.
"""

import argparse
import dataclasses
import json
import logging
import sys

import contextrast  # noqa: F401  isort: skip  (first: imports detectron2 quietly)

from contextrast.checkpoint import CheckpointMismatchError
from contextrast.config import load_config
from contextrast.engine.grad_balance import format_table, measure_config

logger = logging.getLogger("grad_balance")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--weights", help="checkpoint to load (default: MODEL.WEIGHTS)")
    parser.add_argument("--num-batches", type=int, default=4, help="training batches averaged")
    parser.add_argument("--iteration", type=int, help="training iteration of the losses")
    parser.add_argument("--device", default="cpu", help="MODEL.DEVICE (default: cpu)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows (and per batch) here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    cfg = load_config(args.config_file, args.opts, weights=args.weights, device=args.device)
    try:
        rows, iteration, alpha = measure_config(cfg, args.num_batches, args.iteration)
    except (ValueError, CheckpointMismatchError) as e:  # no contrastive term, wrong checkpoint
        parser.exit(2, f"grad_balance: {args.config_file}: {e}\n")
    logger.info(
        "%s, weights %s, iteration %d (alpha %g), %d batches of %d images\n%s",
        args.config_file,
        cfg.MODEL.WEIGHTS or "(initialisation)",
        iteration,
        alpha,
        args.num_batches,
        cfg.SOLVER.IMS_PER_BATCH,
        format_table(rows),
    )
    if args.json:
        record = {
            "config_file": args.config_file,
            "opts": args.opts,
            "weights": cfg.MODEL.WEIGHTS,
            "iteration": iteration,
            "alpha": alpha,
            "num_batches": args.num_batches,
            "rows": [dataclasses.asdict(r) for r in rows],
        }
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
