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
import os
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

if __package__ in (None, ""):  # run as a file: make the `deploy` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.model import (
    TRAINING_ONLY_PREFIX,
    InferenceWrapper,
    build_inference_model,
    build_training_model,
    count_parameters,
    default_size,
    jitter_weights,
    setup_cfg,
    setup_logging,
)
from deploy.onnx_io import (
    export_onnx,
    onnx_graph_summary,
    random_images,
)

logger = logging.getLogger("deploy.cost_report")

# Figures that must be identical for a Contextrast config and its baseline, in table order.
INFERENCE_METRICS = (
    "inference_params",
    "gflops",
    "onnx_nodes",
    "onnx_initializers",
    "onnx_initializer_elements",
    "onnx_initializer_bytes",
)
TRAINING_METRICS = ("training_params", "training_only_params")


def flop_count(wrapper: InferenceWrapper, images: torch.Tensor) -> int:
    """fvcore FLOPs of one ``wrapper(images)`` call (one fused multiply-add = one FLOP)."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(wrapper, (images,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(analysis.total())


def measure(cfg, *, height: int, width: int, workdir: str, name: str, seed: int = 0) -> Dict:
    """Inference and training cost of one config.

    Returns:
        dict with :data:`INFERENCE_METRICS`, :data:`TRAINING_METRICS`, ``op_histogram`` and
        ``initializers`` (ONNX ``{name: [dtype, shape]}``).
    """
    torch.manual_seed(seed)
    wrapper = InferenceWrapper(jitter_weights(build_inference_model(cfg), seed))
    images = torch.from_numpy(random_images(1, height, width, seed))
    path = os.path.join(workdir, f"{name}.onnx")
    export_onnx(wrapper, path, images, dynamic=False)
    graph = onnx_graph_summary(path)
    training = build_training_model(cfg)
    return {
        "inference_params": count_parameters(wrapper.model),
        "gflops": flop_count(wrapper, images) / 1e9,
        "onnx_nodes": graph["nodes"],
        "onnx_initializers": graph["initializer_count"],
        "onnx_initializer_elements": graph["initializer_elements"],
        "onnx_initializer_bytes": graph["initializer_bytes"],
        "training_params": count_parameters(training),
        "training_only_params": count_parameters(training, TRAINING_ONLY_PREFIX),
        "op_histogram": graph["op_histogram"],
        "initializers": graph["initializers"],
    }


def compare(reports: List[Dict]) -> List[Dict]:
    """Per config after the first: ratio of every figure to the first config's (None where the
    first is 0), and whether the op histogram and the initializer set (names, dtypes, shapes)
    are identical to it."""
    first = reports[0]
    out = []
    for report in reports[1:]:
        ratios = {}
        for key in INFERENCE_METRICS + TRAINING_METRICS:
            ratios[key] = report[key] / first[key] if first[key] else None  # None: n/a
        out.append(
            {
                "ratios": ratios,
                "same_op_histogram": report["op_histogram"] == first["op_histogram"],
                "same_initializers": report["initializers"] == first["initializers"],
            }
        )
    return out


def format_table(names: Sequence[str], reports: List[Dict], comparisons: List[Dict]) -> str:
    """Markdown table: one row per figure, one column per config and per ratio."""
    header = ["figure"] + list(names) + [f"ratio {n}" for n in names[1:]]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for key in INFERENCE_METRICS + TRAINING_METRICS:
        values = [f"{r[key]:.4f}" if key == "gflops" else f"{r[key]:,}" for r in reports]
        ratios = [
            "n/a" if c["ratios"][key] is None else f"{c['ratios'][key]:.6g}" for c in comparisons
        ]
        lines.append("| " + " | ".join([key] + values + ratios) + " |")
    for key in ("same_op_histogram", "same_initializers"):
        flags = ["yes" if c[key] else "NO" for c in comparisons]
        lines.append("| " + " | ".join([key] + ["-"] * len(reports) + flags) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the exit status (1 = ``--expect-equal`` violated)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config-file", action="append", required=True, metavar="FILE", help="twice or more"
    )
    parser.add_argument("--height", type=int, help="default: the first config's training crop")
    parser.add_argument("--width", type=int, help="default: the first config's training crop")
    parser.add_argument("--expect-equal", action="store_true", help="fail unless all ratios = 1")
    parser.add_argument("--output-json", metavar="FILE")
    args = parser.parse_args(argv)
    setup_logging()
    if len(args.config_file) < 2:
        parser.error("give --config-file at least twice")

    cfgs = [setup_cfg(path) for path in args.config_file]
    crop_h, crop_w = default_size(cfgs[0])
    height, width = args.height or crop_h, args.width or crop_w
    names = [Path(p).stem for p in args.config_file]
    if len(set(names)) < len(names):
        names = [f"{i}:{n}" for i, n in enumerate(names)]
    with tempfile.TemporaryDirectory() as workdir:
        reports = [
            measure(cfg, height=height, width=width, workdir=workdir, name=f"model{i}")
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
