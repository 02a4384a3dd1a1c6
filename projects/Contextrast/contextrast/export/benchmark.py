"""Latency of a baseline network and its Contextrast counterpart, side by side.

For every backend (:mod:`.runners`) both networks are warmed up, then timed in interleaved rounds
(baseline first in even rounds, Contextrast first in odd ones) so that machine load hits both
alike. One timed call is one forward pass of the batch, synchronised.

Two runtimes alive in one process can slow each other down: a thread pool spin-waits for work
after a call returns (ONNX Runtime's pools, unless their spinning is off; libgomp's, behind
PyTorch's CPU ops, about 8 ms of CPU after each forward on a 2-core VM), so on a machine with few
cores the call timed next shares the CPU with it. ONNX Runtime sessions timed here do not spin
(:data:`.onnx_io.NO_SPINNING`), and every block of timed calls starts once the process's other
threads are idle (:func:`wait_for_idle_threads`). :func:`self_check` times one network against
itself, where any ratio away from 1 is an error of the measurement.
"""

import logging
import os
import platform
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from .model import InferenceWrapper
from .onnx_io import EXPORTERS, export_onnx
from .runners import BackendError, Unavailable, make_runner

__all__ = [
    "MODELS",
    "summarize",
    "wait_for_idle_threads",
    "time_interleaved",
    "paired_ratio",
    "run_benchmark",
    "self_check",
    "machine_info",
    "format_markdown",
    "format_self_check",
]

logger = logging.getLogger(__name__)

MODELS = ("baseline", "contextrast")
# wait_for_idle_threads: the process counts as idle when its threads used less than this fraction
# of one core during one step (a sleeping process uses ~0.02%, a spinning pool 100% or more).
IDLE_STEP_S = 0.002
IDLE_CPU_FRACTION = 0.1
IDLE_TIMEOUT_S = 0.25


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


def wait_for_idle_threads(step_s: float = IDLE_STEP_S, timeout_s: float = IDLE_TIMEOUT_S) -> bool:
    """Sleep until the threads of this process stop using the CPU (at most ``timeout_s``).

    A thread pool keeps spinning for a while after a call returns; what is timed next would
    share the CPU with it. This waits, ``step_s`` at a time, until the process's CPU time grows
    by less than :data:`IDLE_CPU_FRACTION` of a step.

    Returns:
        True when the process went idle, False at the timeout (a thread kept working).
    """
    deadline = time.perf_counter() + timeout_s
    while True:
        cpu = time.process_time()
        time.sleep(step_s)
        if time.process_time() - cpu < IDLE_CPU_FRACTION * step_s:
            return True
        if time.perf_counter() >= deadline:
            return False


def time_interleaved(
    runners: Dict[str, Callable[[], None]],
    *,
    warmup: int,
    rounds: int,
    repeats: int,
    min_time_s: float = 0.0,
) -> Dict[str, List[List[float]]]:
    """Warm each runner up, then time ``repeats`` calls per runner per round, reversing the order
    of the runners every round. Each runner's block of calls starts once the process is idle
    (:func:`wait_for_idle_threads`), so that no thread pool of the previous runner still spins.

    Args:
        runners: name -> one synchronised call.
        warmup: untimed calls per runner.
        rounds: timed rounds (at least).
        repeats: timed calls per runner and round.
        min_time_s: after ``rounds``, add rounds two at a time (so that each order is timed
            equally often) until every runner's timed calls sum to this. A fast network needs
            hundreds of calls before a burst of load on a small machine stops moving its median.

    Returns:
        ``{runner: [[call seconds] per round]}``.
    """
    for run in runners.values():
        for _ in range(warmup):
            run()
    names = list(runners)
    times = {name: [] for name in names}
    busy = 0

    def one_round(index: int) -> None:
        nonlocal busy
        for name in names if index % 2 == 0 else names[::-1]:
            busy += not wait_for_idle_threads()
            run = runners[name]
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                samples.append(time.perf_counter() - start)
            times[name].append(samples)

    for r in range(rounds):
        one_round(r)
    r = rounds
    while min(sum(map(sum, t)) for t in times.values()) < min_time_s:
        one_round(r)
        one_round(r + 1)
        r += 2
    if busy:
        logger.warning(
            "%d of %d timed blocks started while another thread of this process kept the CPU "
            "busy for %.2f s: those timings include its load",
            busy,
            r * len(names),
            IDLE_TIMEOUT_S,
        )
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
    min_time_s: float = 0.0,
    threads: int = 0,
    cuda_graphs: bool = False,
    ort_spinning: bool = False,
    exporter: str = EXPORTERS[0],
    onnx_files: Optional[Dict[str, str]] = None,
) -> Dict[str, object]:
    """Time every backend on both networks (``wrappers``: {"baseline": .., "contextrast": ..}).

    Args:
        wrappers: the two networks; the same object twice times a network against itself.
        backends: names of :data:`.runners.BACKENDS`, timed in this order.
        images: (B, 3, H, W) float32 input of every call.
        workdir: folder of the ONNX exports and engines.
        warmup / rounds / repeats / min_time_s: see :func:`time_interleaved`.
        threads: ONNX Runtime intra-op threads (0: its default).
        cuda_graphs: replay the PyTorch CUDA backends from captured graphs.
        ort_spinning: let ONNX Runtime's thread pools spin between calls (off by default: see
            the module's docstring; each block still starts once the other session is idle).
        exporter: torch.onnx exporter of the ONNX Runtime / TensorRT backends' files (the graphs
            differ, and so can their latency).
        onnx_files: ONNX files by network name, reused if given; filled with the static exports
            made here (one file per distinct wrapper object).

    Returns:
        ``{"results": [{"backend", "model", median_ms, p90_ms, mean_ms, throughput_ips, samples}],
        "ratios": [{"backend", "median", "paired_median", "p90", "throughput"}] (Contextrast /
        baseline; see :func:`paired_ratio`), "skipped": {backend: reason},
        "onnx_files": {network: path}}``.

    Raises:
        BackendError: a backend available here failed on a network (names both).
    """
    onnx_files = {} if onnx_files is None else onnx_files

    def onnx_path_of(name: str) -> Callable[[], str]:
        def get() -> str:
            if name not in onnx_files:
                same = [n for n in onnx_files if wrappers.get(n) is wrappers[name]]
                if same:  # one network timed against itself: one file for both sides
                    onnx_files[name] = onnx_files[same[0]]
                else:
                    path = os.path.join(workdir, f"{name}.onnx")
                    export_onnx(
                        wrappers[name],
                        path,
                        torch.from_numpy(images),
                        dynamic=False,
                        exporter=exporter,
                    )
                    onnx_files[name] = path
            return onnx_files[name]

        return get

    def runner_of(backend: str, name: str) -> Callable[[], None]:
        try:
            run = make_runner(
                backend,
                wrappers[name],
                onnx_path_of(name),
                images,
                workdir=workdir,
                threads=threads,
                cuda_graphs=cuda_graphs,
                ort_spinning=ort_spinning,
            )
            run()  # one untimed call, so that a network failing here is named
            return run
        except Unavailable:
            raise
        except Exception as e:
            uses_onnx = backend.startswith(("ort-", "trt-")) and name in onnx_files
            where = f" ({onnx_files[name]})" if uses_onnx else ""
            raise BackendError(
                f"{backend} failed on the {name} network{where}: {type(e).__name__}: {e}"
            ) from e

    results, ratios, skipped = [], [], {}
    for backend in backends:
        try:
            runners = {name: runner_of(backend, name) for name in wrappers}
        except Unavailable as e:
            skipped[backend] = str(e)
            logger.info("Skipping %s: %s", backend, e)
            continue
        logger.info("Timing %s", backend)
        times = time_interleaved(
            runners, warmup=warmup, rounds=rounds, repeats=repeats, min_time_s=min_time_s
        )
        del runners  # free this backend's sessions / engines before the next one starts
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
    return {"results": results, "ratios": ratios, "skipped": skipped, "onnx_files": onnx_files}


def self_check(
    wrapper: InferenceWrapper,
    backends: Sequence[str],
    images: np.ndarray,
    *,
    runs: int,
    tolerance: float,
    **kwargs,
) -> Dict[str, object]:
    """Time ``wrapper`` against itself ``runs`` times with :func:`run_benchmark`: the same object
    (for the ONNX backends, the same ONNX file) on both sides, so every ratio should be 1.

    Args:
        wrapper: the network.
        backends / images: as in :func:`run_benchmark`.
        runs: independent benchmarks (new sessions, warm-up and rounds each).
        tolerance: a run passes when its median and paired ratios are within 1 +- tolerance.
        kwargs: the other arguments of :func:`run_benchmark` (workdir, warmup, rounds, ...).

    Returns:
        ``{"runs": [{"run", "backend", "median", "paired_median", "ok"}], "ok": every row passed
        (and at least one backend was timed), "tolerance", "skipped", "onnx_files"}``.
    """
    wrappers = {name: wrapper for name in MODELS}
    onnx_files: Dict[str, str] = {}
    rows, skipped = [], {}
    for run in range(1, runs + 1):
        report = run_benchmark(wrappers, backends, images, onnx_files=onnx_files, **kwargs)
        skipped.update(report["skipped"])
        for ratio in report["ratios"]:
            ok = all(abs(ratio[k] - 1.0) <= tolerance for k in ("median", "paired_median"))
            rows.append(
                {
                    "run": run,
                    "backend": ratio["backend"],
                    "ok": ok,
                    "median": ratio["median"],
                    "paired_median": ratio["paired_median"],
                }
            )
            logger.info(
                "Self-check run %d/%d, %s: ratio %.3f, paired %.3f (%s)",
                run,
                runs,
                ratio["backend"],
                ratio["median"],
                ratio["paired_median"],
                "ok" if ok else f"outside 1 +- {tolerance:g}",
            )
    return {
        "runs": rows,
        "ok": bool(rows) and all(r["ok"] for r in rows),
        "tolerance": tolerance,
        "skipped": skipped,
        "onnx_files": onnx_files,
    }


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


def format_self_check(check: Dict[str, object]) -> str:
    """Markdown table of :func:`self_check`: one row per run and backend, then the verdict."""
    lines = ["| run | backend | ratio | paired ratio | within |", "|---:|---|---:|---:|---|"]
    for row in check["runs"]:
        lines.append(
            f"| {row['run']} | {row['backend']} | {row['median']:.3f} | "
            f"{row['paired_median']:.3f} | {'yes' if row['ok'] else 'NO'} |"
        )
    lines += [f"- {backend} skipped: {why}" for backend, why in check["skipped"].items()]
    failed = sum(not row["ok"] for row in check["runs"])
    verdict = "all" if check["ok"] else f"{failed} of {len(check['runs'])} NOT"
    lines.append(f"Self-check: {verdict} within 1.00 +- {check['tolerance']:.2f}")
    return "\n".join(lines)
