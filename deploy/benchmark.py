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
Contextrast first in odd ones) so that machine load hits both alike. Backends, the ones available
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
``--output-md`` save them.
"""

import argparse
import copy
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

if __package__ in (None, ""):  # run as a file: make the `deploy` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.model import (
    InferenceWrapper,
    build_inference_model,
    default_size,
    jitter_weights,
    load_inference_weights,
    setup_cfg,
    setup_logging,
)
from deploy.onnx_io import (
    INPUT_NAME,
    export_onnx,
    ort_session,
    random_images,
)

logger = logging.getLogger("deploy.benchmark")

BACKENDS = (
    "torch-cpu",
    "torch-cuda-fp32",
    "torch-cuda-fp16",
    "torch-cuda-bf16",
    "ort-cpu",
    "ort-cuda",
    "ort-trt-fp16",
    "trt-fp32",
    "trt-fp16",
)
MODELS = ("baseline", "contextrast")


class Unavailable(Exception):
    """A backend cannot run here; the message says why."""


def _torch_runner(wrapper, images: np.ndarray, *, device: str, dtype, cuda_graphs: bool):
    """A no-argument callable running one synchronised PyTorch forward pass."""
    if device == "cuda" and not torch.cuda.is_available():
        raise Unavailable("no CUDA GPU")
    if dtype == torch.bfloat16 and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise Unavailable("this GPU has no bf16")
    if device == "cpu":
        x = torch.from_numpy(images)

        def run():
            with torch.inference_mode():
                wrapper(x)

        return run

    model = copy.deepcopy(wrapper).to(device).eval()
    x = torch.from_numpy(images).to(device)
    autocast = dtype != torch.float32

    def forward():
        # No autocast weight-cast cache: it must not be used while capturing a CUDA graph.
        with torch.inference_mode(), torch.autocast(
            "cuda", dtype=dtype, enabled=autocast, cache_enabled=False
        ):
            return model(x)

    if not cuda_graphs:

        def run():
            forward()
            torch.cuda.synchronize()

        return run

    # Capture on a side stream after a few eager passes (cudnn autotuning, lazy allocations).
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            forward()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        forward()

    def run():
        graph.replay()
        torch.cuda.synchronize()

    return run


def _ort_runner(onnx_path: str, images: np.ndarray, *, backend: str, workdir: str, threads: int):
    """A no-argument callable running one ONNX Runtime inference."""
    import onnxruntime as ort

    if backend == "ort-cpu":
        session = ort_session(onnx_path, threads=threads)
        feeds = {INPUT_NAME: images}
        return lambda: session.run(None, feeds)

    if not torch.cuda.is_available():
        raise Unavailable("no CUDA GPU")
    if backend == "ort-cuda":
        providers = ["CUDAExecutionProvider"]
    else:
        cache = os.path.join(workdir, "ort_trt_cache")
        options = {
            "trt_fp16_enable": True,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": cache,
        }
        providers = [("TensorrtExecutionProvider", options), "CUDAExecutionProvider"]
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if wanted not in ort.get_available_providers():
        raise Unavailable(f"onnxruntime has no {wanted}")
    try:
        session = ort_session(onnx_path, providers=providers, threads=threads)
    except Exception as e:  # onnxruntime raises its own exception types
        raise Unavailable(f"{wanted}: {e}") from e
    if session.get_providers()[0] != wanted:  # onnxruntime falls back silently
        raise Unavailable(f"{wanted} failed to initialise (missing CUDA / TensorRT libraries?)")
    x = torch.from_numpy(images).cuda()
    binding = session.io_binding()
    binding.bind_input(INPUT_NAME, "cuda", 0, np.float32, tuple(x.shape), x.data_ptr())
    binding.bind_output(session.get_outputs()[0].name, "cuda")

    def run():
        session.run_with_iobinding(binding)

    return run


def _trt_runner(onnx_path: str, images: np.ndarray, *, precision: str, workdir: str):
    """A no-argument callable running one TensorRT engine inference (engine built here)."""
    from deploy.build_engine import TensorRTRunner, build_engine, missing_requirements

    missing = missing_requirements()
    if missing:
        raise Unavailable("; ".join(missing))
    engine = os.path.join(workdir, f"{Path(onnx_path).stem}_{precision}.engine")
    if not os.path.isfile(engine):
        try:
            build_engine(onnx_path, engine, precision=precision)
        except RuntimeError as e:  # e.g. fp16 on TensorRT 11 needs an fp16 graph
            raise Unavailable(str(e)) from e
    runner = TensorRTRunner(engine)
    x = torch.from_numpy(images).cuda()

    def run():
        runner(x)
        torch.cuda.synchronize()

    return run


def make_runner(
    backend: str,
    wrapper: InferenceWrapper,
    onnx_path: Callable[[], str],
    images: np.ndarray,
    *,
    workdir: str,
    threads: int,
    cuda_graphs: bool,
) -> Callable[[], None]:
    """The timed callable of ``backend`` for one network (``onnx_path()`` exports on demand).

    Raises:
        Unavailable: the backend cannot run here.
    """
    if backend == "torch-cpu":
        return _torch_runner(wrapper, images, device="cpu", dtype=torch.float32, cuda_graphs=False)
    if backend.startswith("torch-cuda-"):
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
        return _torch_runner(
            wrapper,
            images,
            device="cuda",
            dtype=dtype[backend.rsplit("-", 1)[1]],
            cuda_graphs=cuda_graphs,
        )
    if backend.startswith("ort-"):
        return _ort_runner(onnx_path(), images, backend=backend, workdir=workdir, threads=threads)
    if backend.startswith("trt-"):
        return _trt_runner(onnx_path(), images, precision=backend.split("-")[1], workdir=workdir)
    raise ValueError(f"unknown backend {backend!r}: expected one of {BACKENDS}")


def summarize(times_s: Sequence[float], batch: int) -> Dict[str, float]:
    """Median / p90 / mean latency in ms and throughput in images per second."""
    ms = np.asarray(times_s) * 1e3
    return {
        "median_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "mean_ms": float(ms.mean()),
        "throughput_ips": float(batch * 1e3 / ms.mean()),
        "samples": int(ms.size),
    }


def time_interleaved(
    runners: Dict[str, Callable[[], None]], *, warmup: int, rounds: int, repeats: int
) -> Dict[str, List[List[float]]]:
    """Warm each runner up, then time ``repeats`` calls per runner per round, reversing the order
    of the runners every round.

    Returns:
        ``{runner: [[call seconds] per round]}``.
    """
    for run in runners.values():
        for _ in range(warmup):
            run()
    names = list(runners)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            run = runners[name]
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                samples.append(time.perf_counter() - start)
            times[name].append(samples)
    return times


def paired_ratio(numerator: Sequence[Sequence[float]], denominator: Sequence[Sequence[float]]):
    """Median over rounds of the ratio of the two round medians (robust to load drifting
    between rounds, since both halves of a pair ran back to back)."""
    return float(np.median([np.median(n) / np.median(d) for n, d in zip(numerator, denominator)]))


def run_benchmark(
    wrappers: Dict[str, InferenceWrapper],
    backends: Sequence[str],
    images: np.ndarray,
    *,
    workdir: str,
    warmup: int,
    rounds: int,
    repeats: int,
    threads: int = 0,
    cuda_graphs: bool = False,
) -> Dict[str, object]:
    """Time every backend on both networks (``wrappers``: {"baseline": .., "contextrast": ..}).

    Returns:
        ``{"results": [{"backend", "model", median_ms, p90_ms, mean_ms, throughput_ips, samples}],
        "ratios": [{"backend", "median", "paired_median", "p90", "throughput"}] (Contextrast /
        baseline; see :func:`paired_ratio`),
        "skipped": {backend: reason}}``.
    """
    onnx_paths = {}

    def onnx_path_of(name: str) -> Callable[[], str]:
        def get() -> str:
            if name not in onnx_paths:
                path = os.path.join(workdir, f"{name}.onnx")
                export_onnx(wrappers[name], path, torch.from_numpy(images), dynamic=False)
                onnx_paths[name] = path
            return onnx_paths[name]

        return get

    results, ratios, skipped = [], [], {}
    for backend in backends:
        try:
            runners = {
                name: make_runner(
                    backend,
                    wrapper,
                    onnx_path_of(name),
                    images,
                    workdir=workdir,
                    threads=threads,
                    cuda_graphs=cuda_graphs,
                )
                for name, wrapper in wrappers.items()
            }
        except Unavailable as e:
            skipped[backend] = str(e)
            logger.info("Skipping %s: %s", backend, e)
            continue
        logger.info("Timing %s", backend)
        times = time_interleaved(runners, warmup=warmup, rounds=rounds, repeats=repeats)
        stats = {name: summarize(sum(t, []), images.shape[0]) for name, t in times.items()}
        for name, s in stats.items():
            results.append({"backend": backend, "model": name, **s})
        base, ctx = stats[MODELS[0]], stats[MODELS[1]]
        ratios.append(
            {
                "backend": backend,
                "median": ctx["median_ms"] / base["median_ms"],
                "paired_median": paired_ratio(times[MODELS[1]], times[MODELS[0]]),
                "p90": ctx["p90_ms"] / base["p90_ms"],
                "throughput": ctx["throughput_ips"] / base["throughput_ips"],
            }
        )
    return {"results": results, "ratios": ratios, "skipped": skipped}


def machine_info(threads: int) -> Dict[str, object]:
    """What the numbers were measured on."""
    import onnxruntime

    info = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "ort_threads": threads or "default",
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except ImportError:
        info["tensorrt"] = None
    return info


def format_markdown(report: Dict[str, object]) -> str:
    """Markdown table: per backend, both networks and the Contextrast / baseline ratios."""
    by_key = {(r["backend"], r["model"]): r for r in report["results"]}
    lines = [
        "| backend | baseline median ms | Contextrast median ms | ratio | paired ratio | "
        "baseline p90 ms | Contextrast p90 ms | ratio | baseline img/s | Contextrast img/s | "
        "ratio |",
        "|---|" + "---:|" * 10,
    ]
    for ratio in report["ratios"]:
        b, c = by_key[(ratio["backend"], MODELS[0])], by_key[(ratio["backend"], MODELS[1])]
        lines.append(
            f"| {ratio['backend']} | {b['median_ms']:.2f} | {c['median_ms']:.2f} | "
            f"{ratio['median']:.3f} | {ratio['paired_median']:.3f} | {b['p90_ms']:.2f} | "
            f"{c['p90_ms']:.2f} | {ratio['p90']:.3f} | {b['throughput_ips']:.1f} | "
            f"{c['throughput_ips']:.1f} | {ratio['throughput']:.3f} |"
        )
    if report["skipped"]:
        lines.append("")
        lines += [f"- {backend} skipped: {why}" for backend, why in report["skipped"].items()]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, metavar="FILE", help="baseline config")
    parser.add_argument("--contextrast", required=True, metavar="FILE", help="Contextrast config")
    parser.add_argument("--baseline-weights", metavar="FILE")
    parser.add_argument("--contextrast-weights", metavar="FILE")
    parser.add_argument("--height", type=int, help="default: the baseline's training crop")
    parser.add_argument("--width", type=int, help="default: the baseline's training crop")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per network")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per network and round")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads of PyTorch and ONNX Runtime (0: their defaults; 1 is the least noisy "
        "on a shared machine)",
    )
    parser.add_argument("--cuda-graphs", action="store_true", help="replay CUDA graphs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="ONNX files / engines (default: a temporary folder)")
    parser.add_argument("--output-json", metavar="FILE")
    parser.add_argument("--output-md", metavar="FILE")
    args = parser.parse_args(argv)
    setup_logging()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    configs = {MODELS[0]: args.baseline, MODELS[1]: args.contextrast}
    weights = {MODELS[0]: args.baseline_weights, MODELS[1]: args.contextrast_weights}
    wrappers = {}
    for name in MODELS:
        cfg = setup_cfg(configs[name])
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
        report = run_benchmark(
            wrappers,
            args.backends,
            images,
            workdir=workdir,
            warmup=args.warmup,
            rounds=args.rounds,
            repeats=args.repeats,
            threads=args.threads,
            cuda_graphs=args.cuda_graphs,
        )
    report["settings"] = {
        "configs": configs,
        "weights": weights,
        "input_shape": list(images.shape),
        "warmup": args.warmup,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "cuda_graphs": args.cuda_graphs,
    }
    report["machine"] = machine_info(args.threads)
    table = format_markdown(report)
    print(f"Input {'x'.join(map(str, images.shape))}; ratio = Contextrast / baseline")
    print(table)
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(report, indent=2) + "\n")
    if args.output_md:
        Path(args.output_md).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
