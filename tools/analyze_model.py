#!/usr/bin/env python
"""Inference parameter count and FLOPs of a Contextrast network, per top-level module.

    tools/analyze_model.py --config-file configs/cityscapes/hrnet_w48_contextrast.yaml \\
        [--height 1024 --width 2048] [KEY VALUE ...]

The model is built from the config exactly as for training (``MODEL.WEIGHTS`` is not loaded) and
put in eval mode. Only what runs at inference counts: the parameters of the modules called by one
eval forward pass, and fvcore's FLOPs of that pass (one fused multiply-add = one FLOP, convolutions
and matrix products; element-wise ops such as BN, ReLU or interpolation count only where fvcore has
a handle). Training-only parts (``contrast_heads.``) are reported apart. The default input size is
the training crop (``INPUT.CROP.SIZE``).
"""

import argparse
import logging
import sys
from collections import defaultdict
from typing import Dict, Set

import contextrast  # noqa: F401  isort: skip  (first: imports detectron2 quietly)
import torch
from detectron2.modeling import build_model
from detectron2.utils.analysis import FlopCountAnalysis
from torch import nn

from contextrast.config import load_config

logger = logging.getLogger("analyze_model")


def parameter_table(model: nn.Module, called: Set[nn.Module]) -> Dict[str, Dict[str, int]]:
    """Parameter counts per top-level child: ``{"child": {"inference": n, "unused": m}}``.

    A parameter counts at inference when the module that owns it directly was called.
    """
    used = {id(p) for m in called for p in m.parameters(recurse=False)}
    table = defaultdict(lambda: {"inference": 0, "unused": 0})
    for name, param in model.named_parameters():
        kind = "inference" if id(param) in used else "unused"
        table[name.split(".")[0]][kind] += param.numel()
    return table


def analyze(cfg, height: int, width: int) -> None:
    """Log the parameter / FLOP table of ``cfg``'s model on one ``3 x height x width`` image."""
    model = build_model(cfg).eval()
    inputs = [{"image": torch.rand(3, height, width) * 255}]
    flops = FlopCountAnalysis(model, inputs)
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)

    # The FLOP count traces one eval forward pass; record which modules it calls meanwhile.
    called = set()
    hooks = [m.register_forward_pre_hook(lambda m, _: called.add(m)) for m in model.modules()]
    try:
        flops_by_module = flops.by_module()
    finally:
        for hook in hooks:
            hook.remove()
    params = parameter_table(model, called)

    lines = [
        f"{cfg.MODEL.BACKBONE.NAME} + {cfg.MODEL.SEM_SEG_HEAD.NAME}, "
        f"{cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES} classes, input 3x{height}x{width}",
        f"{'module':<20}{'params (M)':>14}{'GFLOPs':>12}{'not run at inference (M)':>28}",
    ]
    for name in sorted(params):
        # detectron2's FlopCountAnalysis wraps the model: its children are under "model.".
        gflops = flops_by_module.get("model." + name, 0) / 1e9
        inference, unused = params[name]["inference"] / 1e6, params[name]["unused"] / 1e6
        lines.append(f"{name:<20}{inference:>14.3f}{gflops:>12.2f}{unused:>28.3f}")
    total = sum(p["inference"] for p in params.values())
    unused = sum(p["unused"] for p in params.values())
    lines.append(
        f"{'total (inference)':<20}{total / 1e6:>14.3f}{flops.total() / 1e9:>12.2f}"
        f"{unused / 1e6:>28.3f}"
    )
    by_op = ", ".join(f"{op} {n / 1e9:.2f}" for op, n in flops.by_operator().most_common())
    lines.append(f"GFLOPs by operator: {by_op}")
    logger.info("\n".join(lines))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--height", type=int, help="input height (default: INPUT.CROP.SIZE)")
    parser.add_argument("--width", type=int, help="input width (default: INPUT.CROP.SIZE)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    # The FLOP count traces the model; TracerWarnings about Python values are expected.
    logging.getLogger("fvcore").setLevel(logging.ERROR)

    cfg = load_config(args.config_file, args.opts, device="cpu")
    height, width = args.height, args.width
    if height is None or width is None:
        if not (cfg.INPUT.CROP.ENABLED and cfg.INPUT.CROP.TYPE == "absolute"):
            parser.error("no absolute INPUT.CROP.SIZE in the config: give --height and --width")
        height, width = height or cfg.INPUT.CROP.SIZE[0], width or cfg.INPUT.CROP.SIZE[1]
    analyze(cfg, int(height), int(width))


if __name__ == "__main__":
    main()
