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

See docs/running_long_jobs.md for resuming, NaN handling and reproducibility.
"""

import logging
import warnings

from detectron2.engine import default_argument_parser, launch
from detectron2.evaluation import verify_results

from contextrast.checkpoint import ContextrastCheckpointer
from contextrast.config import load_config
from contextrast.engine import ContextrastTrainer, contextrast_setup, shutdown_distributed

# detectron2 scripts a few helpers at import time; torch now warns about that on every import.
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
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


def invoke_main() -> None:
    args = default_argument_parser().parse_args()
    launch(
        main_and_shutdown,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    invoke_main()  # pragma: no cover
