#!/usr/bin/env python
"""Export the inference network of a Contextrast (or baseline) config to ONNX and check parity.

    python deploy/export_onnx.py --config-file configs/demo/contextrast.yaml \\
        --weights output/demo/contextrast/model_final.pth --output demo.onnx --dynamic

The network is built with ``MODEL.CONTEXTRAST.ENABLED`` forced False (no projection heads); the
checkpoint's ``contrast_heads.*`` tensors are dropped and reported, any other difference from the
network is an error that lists the keys. The graph takes ``images`` (B, 3, H, W) float32 0-255 in
the config's ``INPUT.FORMAT`` channel order (normalisation and padding are inside) and returns
``logits`` (B, K, H, W) float32 or, with ``--output-kind labels``, ``labels`` (B, H, W) int64.
After ``onnx.checker``, ONNX Runtime (CPU provider) is compared with PyTorch on random images or
on ``--images``; with ``--dynamic`` at two different sizes and batch sizes. Exit status 1 when a
parity check fails. Trailing ``KEY VALUE`` pairs override the config.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

if __package__ in (None, ""):  # run as a file: make the `deploy` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.model import (
    OUTPUT_KINDS,
    CheckpointMismatchError,
    InferenceWrapper,
    build_inference_model,
    default_size,
    jitter_weights,
    load_inference_weights,
    setup_cfg,
    setup_logging,
)
from deploy.onnx_io import (
    EXPORTERS,
    INPUT_NAME,
    OPSET,
    compare_outputs,
    export_onnx,
    load_images,
    onnx_graph_summary,
    ort_session,
    random_images,
    torch_forward,
)

logger = logging.getLogger("deploy.export_onnx")


def parity_inputs(
    *,
    input_format: str,
    image_paths: Sequence[str],
    height: int,
    width: int,
    batch: int,
    dynamic: bool,
    seed: int,
) -> List[np.ndarray]:
    """The arrays on which ONNX Runtime is compared with PyTorch.

    Random images: the export shape and, for a dynamic graph, a second odd shape with another
    batch size (exercises the in-graph padding). Image files: each at its own size for a dynamic
    graph, else resized to the export size and grouped into batches of ``batch``.
    """
    if image_paths:
        arrays = load_images(image_paths, input_format, None if dynamic else (height, width))
        if dynamic or batch == 1:
            return arrays
        if len(arrays) < batch:
            raise ValueError(f"--batch {batch} with a static graph needs >= {batch} --images")
        groups = range(0, len(arrays) - batch + 1, batch)
        return [np.concatenate(arrays[i : i + batch]) for i in groups]
    inputs = [random_images(batch, height, width, seed)]
    if dynamic:
        inputs.append(
            random_images(batch + 1, height - height // 4 + 1, width + width // 4 + 3, seed + 1)
        )
    return inputs


def check_parity(
    wrapper: InferenceWrapper,
    onnx_path: str,
    inputs: Sequence[np.ndarray],
    *,
    atol: float,
    rtol: float,
    min_agreement: float,
    device: str = "cpu",
) -> Tuple[List[Dict[str, object]], bool]:
    """ONNX Runtime (CPU provider) vs PyTorch (on ``device``) on each input.

    A logits row passes when ``max_abs_diff <= atol + rtol * max_abs_logit``; a labels row when
    ``label_agreement >= min_agreement``.

    Returns:
        (one dict per input with its shape, the statistics of :func:`compare_outputs` and
        ``ok``; whether every row passed).
    """
    session = ort_session(onnx_path)
    rows = []
    for images in inputs:
        stats = compare_outputs(
            torch_forward(wrapper, images, device), session.run(None, {INPUT_NAME: images})[0]
        )
        if "max_abs_diff" in stats:
            ok = stats["max_abs_diff"] <= atol + rtol * stats["max_abs_logit"]
        else:
            ok = stats["label_agreement"] >= min_agreement
        rows.append({"input_shape": list(images.shape), **stats, "ok": bool(ok)})
    return rows, all(r["ok"] for r in rows)


def format_parity(rows: Sequence[Dict[str, object]]) -> str:
    """Markdown table of :func:`check_parity` rows."""
    keys = [k for k in rows[0] if k not in ("input_shape", "ok")]
    lines = [
        "| input | " + " | ".join(keys) + " | ok |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for row in rows:
        shape = "x".join(str(d) for d in row["input_shape"])
        values = " | ".join(f"{row[k]:.3g}" for k in keys)
        lines.append(f"| {shape} | {values} | {'yes' if row['ok'] else 'NO'} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--weights", metavar="FILE", help="checkpoint (default: random initialisation)"
    )
    parser.add_argument("--output", required=True, metavar="FILE", help="output .onnx file")
    parser.add_argument("--height", type=int, help="export height (default: training crop)")
    parser.add_argument("--width", type=int, help="export width (default: training crop)")
    parser.add_argument("--batch", type=int, default=1, help="export batch size")
    parser.add_argument(
        "--dynamic", action="store_true", help="symbolic batch / height / width (traced at H x W)"
    )
    parser.add_argument("--opset", type=int, default=OPSET)
    parser.add_argument("--output-kind", choices=OUTPUT_KINDS, default="logits")
    parser.add_argument("--exporter", choices=EXPORTERS, default="torchscript")
    parser.add_argument("--images", nargs="+", default=[], metavar="FILE", help="parity images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random parity images")
    parser.add_argument("--atol", type=float, default=1e-4, help="parity: absolute logit tol.")
    parser.add_argument(
        "--rtol", type=float, default=1e-5, help="parity: tolerance relative to max |logit|"
    )
    parser.add_argument(
        "--min-agreement", type=float, default=0.999, help="parity: labels agreement"
    )
    parser.add_argument(
        "--parity-device",
        default="cpu",
        help="device of the PyTorch reference (e.g. cuda: checks the GPU path, strict float32)",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the exit status (1 = parity failed)."""
    args = build_parser().parse_args(argv)
    setup_logging()
    cfg = setup_cfg(args.config_file, args.opts)
    crop_h, crop_w = default_size(cfg)
    height, width = args.height or crop_h, args.width or crop_w

    torch.manual_seed(args.seed)
    model = build_inference_model(cfg)
    if args.weights:
        try:
            load_inference_weights(model, args.weights)
        except CheckpointMismatchError as e:
            sys.exit(f"error: {e}")
    else:
        jitter_weights(model, args.seed)
        logger.warning("No --weights: exporting a randomly initialised network")
    wrapper = InferenceWrapper(model, args.output_kind)

    sample = torch.from_numpy(random_images(args.batch, height, width, args.seed))
    export_onnx(
        wrapper,
        args.output,
        sample,
        dynamic=args.dynamic,
        opset=args.opset,
        exporter=args.exporter,
    )
    summary = onnx_graph_summary(args.output)
    logger.info(
        "Wrote %s (%s exporter, opset %d): inputs %s, outputs %s, %d nodes, %d initializers "
        "(%.2f MB)",
        args.output,
        args.exporter,
        args.opset,
        summary["inputs"],
        summary["outputs"],
        summary["nodes"],
        summary["initializer_count"],
        summary["initializer_bytes"] / 1e6,
    )

    inputs = parity_inputs(
        input_format=cfg.INPUT.FORMAT,
        image_paths=args.images,
        height=height,
        width=width,
        batch=args.batch,
        dynamic=args.dynamic,
        seed=args.seed,
    )
    rows, ok = check_parity(
        wrapper,
        args.output,
        inputs,
        atol=args.atol,
        rtol=args.rtol,
        min_agreement=args.min_agreement,
        device=args.parity_device,
    )
    print(
        f"Parity, ONNX Runtime (CPUExecutionProvider) vs PyTorch ({args.parity_device}), "
        f"{args.output}:"
    )
    print(format_parity(rows))
    if not ok:
        logger.error("Parity check failed (see the table above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
