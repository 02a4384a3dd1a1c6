#!/usr/bin/env python
"""Train or evaluate a Contextrast (or baseline) semantic-segmentation model.

Examples:
    python tools/train_net.py --config-file configs/demo/contextrast.yaml
    python tools/train_net.py --config-file configs/demo/contextrast.yaml --eval-only \
        MODEL.WEIGHTS output/demo/contextrast/model_final.pth
    python tools/train_net.py --config-file C --num-gpus 8 --resume
    # two machines, 8 processes each (run on both, --machine-rank 0 and 1):
    python tools/train_net.py --config-file C --num-gpus 8 --num-machines 2 --machine-rank 0 \
        --dist-url tcp://<machine 0 address>:29500
    # torchrun (one process per GPU; no --num-gpus / --num-machines / --dist-url):
    torchrun --nproc_per_node 8 tools/train_net.py --config-file C --resume
    # SLURM, one task per GPU: srun python tools/train_net.py --config-file C --resume

See docs/running_long_jobs.md for resuming, preemption (exit status 75), NaN handling and
reproducibility.
"""

import logging

import contextrast  # noqa: F401  isort: skip  (first: imports detectron2 quietly)
from detectron2.engine import default_argument_parser
from detectron2.evaluation import verify_results

from contextrast.checkpoint import ContextrastCheckpointer
from contextrast.config import load_config
from contextrast.engine import (
    ContextrastTrainer,
    contextrast_setup,
    launch_from_args,
    shutdown_distributed,
)

logger = logging.getLogger("contextrast.train_net")


def setup(args):
    """Config from file + command-line overrides (unknown keys get suggestions), then detectron2's
    output-dir/logging/seeding setup, determinism and env.txt."""
    cfg = load_config(args.config_file, args.opts)
    contextrast_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = ContextrastTrainer.build_model(cfg)
        checkpointer = ContextrastCheckpointer(
            model, save_dir=cfg.OUTPUT_DIR, strict=cfg.MODEL.WEIGHTS_STRICT
        )
        checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        res = ContextrastTrainer.test(cfg, model)
        verify_results(cfg, res)
        return res
    trainer = ContextrastTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def main_and_shutdown(args):
    """`main`, then release the process groups while the interpreter is still alive (detectron2's
    `launch` leaves them to interpreter exit, where gloo's threads can abort a finished process)."""
    try:
        return main(args)
    finally:
        shutdown_distributed()


LAUNCH_FLAGS = ("num_gpus", "num_machines", "machine_rank", "dist_url")


def invoke_main() -> None:
    parser = default_argument_parser()
    args = parser.parse_args()
    # detectron2's launch, or the processes torchrun / srun started (read from the environment).
    launch_from_args(main_and_shutdown, args, {k: parser.get_default(k) for k in LAUNCH_FLAGS})


if __name__ == "__main__":
    invoke_main()  # pragma: no cover
