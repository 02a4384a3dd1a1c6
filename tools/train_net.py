#!/usr/bin/env python
"""Train or evaluate a Contextrast (or baseline) semantic-segmentation model.

Examples:
    python tools/train_net.py --config-file configs/demo/contextrast.yaml
    python tools/train_net.py --config-file configs/demo/contextrast.yaml --eval-only \
        MODEL.WEIGHTS output/demo/contextrast/model_final.pth
    python tools/train_net.py --config-file C --num-gpus 8 --resume
"""
import logging
import warnings

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results

from contextrast.config import get_contextrast_cfg
from contextrast.engine import ContextrastTrainer

# detectron2 scripts a few helpers at import time; torch now warns about that on every import.
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
logger = logging.getLogger("contextrast.train_net")


def setup(args):
    """Config from file + command-line overrides, then detectron2's output-dir/logging setup."""
    cfg = get_contextrast_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = ContextrastTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        res = ContextrastTrainer.test(cfg, model)
        verify_results(cfg, res)
        return res
    trainer = ContextrastTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def invoke_main() -> None:
    args = default_argument_parser().parse_args()
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    invoke_main()  # pragma: no cover
