"""Latency of a baseline network and its Contextrast counterpart, side by side.

For every backend (:mod:`.runners`) both networks are warmed up, then timed in interleaved rounds
(baseline first in even rounds, Contextrast first in odd ones) so that machine load hits both
alike. One timed call is one forward pass of the batch, synchronised.
"""

import logging
import os
import platform
import time
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch

from .model import InferenceWrapper
from .onnx_io import export_onnx
from .runners import Unavailable, make_runner

__all__ = [
    "MODELS",
    "summarize",
    "time_interleaved",
    "paired_ratio",
    "run_benchmark",
    "machine_info",
    "format_markdown",
]

logger = logging.getLogger(__name__)

MODELS = ("baseline", "contextrast")


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
