#!/usr/bin/env python
"""Inference latency of a baseline network and its Contextrast counterpart, side by side.

    python deploy/benchmark.py --baseline configs/demo/baseline.yaml \\
        --contextrast configs/demo/contextrast.yaml \\
        [--contextrast-weights output/demo/contextrast/model_final.pth] \\
        [--height 160 --width 240] [--backends torch-cpu ort-cpu] \\
        [--output-json bench.json] [--output-md bench.md]

Both networks are built for inference (``MODEL.CONTEXTRAST.ENABLED`` forced False, checkpoints
stripped of ``contrast_heads.*``); without weights both use the same random initialisation. For
every backend both are warmed up, then timed in interleaved rounds (baseline first in even rounds,
Contextrast first in odd ones) so that machine load hits both alike: ``--rounds`` at least, and
more until each network has ``--min-time`` seconds of timed calls. Backends, the ones available
by default:

- ``torch-cpu``: PyTorch eager, fp32, CPU.
- ``torch-cuda-fp32`` / ``torch-cuda-fp16`` / ``torch-cuda-bf16``: PyTorch eager on the GPU,
  fp16 / bf16 through autocast; with ``--cuda-graphs`` each is replayed from a captured CUDA graph.
- ``ort-cpu`` / ``ort-cuda`` / ``ort-trt-fp16``: ONNX Runtime on its CPU, CUDA and TensorRT
  providers (static ONNX export at the benchmark shape; GPU providers get device-resident
  inputs and outputs through I/O binding).
- ``trt-fp32`` / ``trt-fp16``: TensorRT engines built by deploy/build_engine.py.

One timed call is one forward pass of the batch, synchronised. Prints a markdown table with the
median, p90 and throughput of each and the Contextrast / baseline ratios; ``--output-json`` and
``--output-md`` save them. A backend that fails (rather than being unavailable here) stops the
script with an error naming it and the network.

Self-check of the measurement (the ``--baseline`` network against itself, one ONNX file for both
sides, ``--runs`` times; exit status 1 unless every ratio is within 1 +- ``--tolerance``)::

    python deploy/benchmark.py --self-check --baseline configs/demo/baseline.yaml
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import torch

from contextrast.config import load_config
from contextrast.export import (
    BACKENDS,
    EXPORTERS,
    MODELS,
    BackendError,
    InferenceWrapper,
    build_inference_model,
    default_size,
    format_markdown,
    format_self_check,
    jitter_weights,
    load_inference_weights,
    machine_info,
    positive_int,
    random_images,
    run_benchmark,
    self_check,
    setup_logging,
)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, metavar="FILE", help="baseline config")
    parser.add_argument(
        "--contextrast", metavar="FILE", help="Contextrast config (required unless --self-check)"
    )
    parser.add_argument("--baseline-weights", metavar="FILE")
    parser.add_argument("--contextrast-weights", metavar="FILE")
    parser.add_argument("--height", type=int, help="default: the baseline's training crop")
    parser.add_argument("--width", type=int, help="default: the baseline's training crop")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per network")
    parser.add_argument(
        "--rounds", type=positive_int, default=10, help="interleaved rounds (at least)"
    )
    parser.add_argument(
        "--repeats", type=positive_int, default=5, help="timed calls per network and round"
    )
    parser.add_argument(
        "--min-time",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="more rounds, two at a time, until each network's timed calls per backend sum to "
        "this (0: exactly --rounds)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads of PyTorch and ONNX Runtime (0: their defaults; 1 is the least noisy "
        "on a shared machine)",
    )
    parser.add_argument("--cuda-graphs", action="store_true", help="replay CUDA graphs")
    parser.add_argument(
        "--ort-spinning",
        action="store_true",
        help="let ONNX Runtime's thread pools spin between calls (its default for one session; "
        "off here so that an idle session takes no CPU from the timed one)",
    )
    parser.add_argument(
        "--exporter",
        choices=EXPORTERS,
        default=EXPORTERS[0],
        help="torch.onnx exporter of the ONNX files the ort-* / trt-* backends time",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="ONNX files / engines (default: a temporary folder)")
    parser.add_argument("--output-json", metavar="FILE")
    parser.add_argument("--output-md", metavar="FILE")
    parser.add_argument(
        "--self-check",
        action="store_true",
        help="time the --baseline network against itself --runs times; exit status 1 unless "
        "every ratio is within 1 +- --tolerance",
    )
    parser.add_argument("--runs", type=positive_int, default=10, help="self-check runs")
    parser.add_argument("--tolerance", type=float, default=0.03, help="self-check tolerance")
    args = parser.parse_args(argv)
    if not args.contextrast and not args.self_check:
        parser.error("--contextrast is required (or --self-check)")
    setup_logging()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    configs = {MODELS[0]: args.baseline, MODELS[1]: args.contextrast}
    weights = {MODELS[0]: args.baseline_weights, MODELS[1]: args.contextrast_weights}
    wrappers = {}
    for name in MODELS[:1] if args.self_check else MODELS:
        cfg = load_config(configs[name], device="cpu")
        torch.manual_seed(args.seed)  # same random initialisation for both when no weights
        model = build_inference_model(cfg)
        if weights[name]:
            load_inference_weights(model, weights[name])
        else:
            jitter_weights(model, args.seed)
        wrappers[name] = InferenceWrapper(model)
        if name == MODELS[0]:
            crop_h, crop_w = default_size(cfg)
    height, width = args.height or crop_h, args.width or crop_w
    images = random_images(args.batch, height, width, args.seed)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or tmp
        os.makedirs(workdir, exist_ok=True)
        timing = dict(
            workdir=workdir,
            warmup=args.warmup,
            rounds=args.rounds,
            repeats=args.repeats,
            min_time_s=args.min_time,
            threads=args.threads,
            cuda_graphs=args.cuda_graphs,
            ort_spinning=args.ort_spinning,
            exporter=args.exporter,
        )
        try:
            if args.self_check:
                report = self_check(
                    wrappers[MODELS[0]],
                    args.backends,
                    images,
                    runs=args.runs,
                    tolerance=args.tolerance,
                    **timing,
                )
            else:
                report = run_benchmark(wrappers, args.backends, images, **timing)
        except BackendError as e:
            sys.exit(f"error: {e}")
    report["settings"] = {
        "configs": configs,
        "weights": weights,
        "input_shape": list(images.shape),
        "warmup": args.warmup,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "min_time_s": args.min_time,
        "cuda_graphs": args.cuda_graphs,
        "ort_spinning": args.ort_spinning,
        "exporter": args.exporter,
    }
    report["machine"] = machine_info(args.threads)
    if args.self_check:
        table = format_self_check(report)
        print(f"Input {'x'.join(map(str, images.shape))}; {args.baseline} against itself")
    else:
        table = format_markdown(report)
        print(f"Input {'x'.join(map(str, images.shape))}; ratio = Contextrast / baseline")
    print(table)
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(report, indent=2) + "\n")
    if args.output_md:
        Path(args.output_md).write_text(table + "\n")
    return 0 if report.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
