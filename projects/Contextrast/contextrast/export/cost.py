"""Inference cost of configs side by side: parameters, FLOPs, ONNX graph size and structure.

For each config the inference network (``MODEL.CONTEXTRAST.ENABLED`` forced False, random
weights: cost does not depend on them; jittered so that no two tensors are equal, as after
training, see :func:`~contextrast.export.model.jitter_weights`) is measured: parameters, fvcore
FLOPs of one forward pass of ``forward_logits`` (one fused multiply-add = one FLOP), and its static
ONNX export: node count, op histogram, initializer count, elements and bytes. The training-time
parameter count (projection heads included) is reported for information.
"""

import os
from typing import Dict, List, Sequence

import torch

from ..checkpoint import TRAINING_ONLY_PREFIX
from .model import (
    InferenceWrapper,
    build_inference_model,
    build_training_model,
    count_parameters,
    jitter_weights,
)
from .onnx_io import EXPORTERS, export_onnx, onnx_graph_summary, random_images

__all__ = [
    "INFERENCE_METRICS",
    "TRAINING_METRICS",
    "flop_count",
    "measure",
    "compare",
    "format_table",
]

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


def measure(
    cfg,
    *,
    height: int,
    width: int,
    workdir: str,
    name: str,
    seed: int = 0,
    exporter: str = EXPORTERS[0],
) -> Dict:
    """Inference and training cost of one config (the ONNX figures from ``exporter``'s graph).

    Returns:
        dict with :data:`INFERENCE_METRICS`, :data:`TRAINING_METRICS`, ``op_histogram`` and
        ``initializers`` (ONNX ``{name: [dtype, shape]}``).
    """
    torch.manual_seed(seed)
    wrapper = InferenceWrapper(jitter_weights(build_inference_model(cfg), seed))
    images = torch.from_numpy(random_images(1, height, width, seed))
    path = os.path.join(workdir, f"{name}.onnx")
    export_onnx(wrapper, path, images, dynamic=False, exporter=exporter)
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
