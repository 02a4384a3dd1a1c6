#!/usr/bin/env python
"""Build a TensorRT engine from an ONNX file written by deploy/export_onnx.py.

    python deploy/build_engine.py --onnx model.onnx --output model.engine --precision fp16
    python deploy/build_engine.py --onnx dynamic.onnx --output model.engine --precision fp16 \\
        --min-shape 1x3x256x256 --opt-shape 1x3x512x1024 --max-shape 1x3x1024x2048

Needs the TensorRT Python package (``pip install -e projects/Contextrast[tensorrt]``) and an
NVIDIA GPU with its driver; without either the script exits with status 2 and says which is
missing. A graph with symbolic batch / height / width (``--dynamic`` export) needs the three
shapes of one optimisation profile. Precisions: see ``contextrast.export.tensorrt``.
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from contextrast.export.cli import parse_size, setup_logging
from contextrast.export.tensorrt import PRECISIONS, build_engine, missing_requirements


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the exit status (2 = TensorRT or a CUDA GPU is missing)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--onnx", required=True, metavar="FILE")
    parser.add_argument("--output", required=True, metavar="FILE", help="engine file")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--min-shape", metavar="BxCxHxW", help="dynamic graphs: smallest input")
    parser.add_argument("--opt-shape", metavar="BxCxHxW", help="dynamic graphs: tuned input")
    parser.add_argument("--max-shape", metavar="BxCxHxW", help="dynamic graphs: largest input")
    parser.add_argument("--workspace-gib", type=float, default=4.0)
    args = parser.parse_args(argv)
    setup_logging()

    given = [args.min_shape, args.opt_shape, args.max_shape]
    if any(given) and not all(given):
        parser.error("give all three of --min-shape, --opt-shape and --max-shape, or none")
    shapes = tuple(parse_size(s) for s in given) if all(given) else None
    if shapes and any(len(s) != 4 for s in shapes):
        parser.error("shapes are BxCxHxW, e.g. 1x3x512x1024")
    if not Path(args.onnx).is_file():
        parser.error(f"no such file: {args.onnx}")

    missing = missing_requirements()
    if missing:
        print("error: cannot build a TensorRT engine here:", file=sys.stderr)
        for item in missing:
            print(f"  - {item}", file=sys.stderr)
        return 2
    build_engine(
        args.onnx,
        args.output,
        precision=args.precision,
        shapes=shapes,
        workspace_gib=args.workspace_gib,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
