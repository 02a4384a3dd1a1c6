"""The backends of the latency benchmark: one timed callable per backend and network.

Each runner is a no-argument callable that runs one synchronised forward pass of a batch:
PyTorch eager on the CPU or the GPU (fp32 / fp16 / bf16 autocast, optionally replayed from a
captured CUDA graph), ONNX Runtime on its CPU / CUDA / TensorRT providers (I/O binding on the
GPU), or a TensorRT engine. A backend that cannot run here (a package or an execution provider
missing, no GPU) raises :class:`Unavailable`; any other error is a real failure and propagates
(:func:`.benchmark.run_benchmark` names the backend and the network in a :class:`BackendError`).

ONNX Runtime sessions are created with their thread pools' spin-waiting off
(:data:`.onnx_io.NO_SPINNING`) unless ``ort_spinning``: two sessions are alive while they are timed
in alternation, and a spinning idle session would take CPU from the one being timed.
"""

import copy
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .model import InferenceWrapper
from .onnx_io import INPUT_NAME, ort_session

__all__ = ["BACKENDS", "Unavailable", "BackendError", "OrtRunner", "make_runner"]

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


class Unavailable(Exception):
    """A backend cannot run here; the message says why."""


class BackendError(RuntimeError):
    """A backend that is available here failed on a network; the message names both."""


class OrtRunner:
    """One timed ONNX Runtime inference: ``runner()`` calls ``run()`` on ``session``."""

    def __init__(self, session, run: Callable[[], object]):
        self.session = session
        self._run = run

    def __call__(self) -> None:
        self._run()


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


def _ort_runner(
    onnx_path: str, images: np.ndarray, *, backend: str, workdir: str, threads: int, spinning: bool
):
    """An :class:`OrtRunner` of one ONNX Runtime inference."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise Unavailable(f"onnxruntime is not installed ({e})") from e

    if backend == "ort-cpu":
        session = ort_session(onnx_path, threads=threads, spinning=spinning)
        feeds = {INPUT_NAME: images}
        return OrtRunner(session, lambda: session.run(None, feeds))

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
    # A provider whose libraries are missing does not raise: onnxruntime falls back to the next
    # provider, checked below. An exception here is a real failure and propagates.
    session = ort_session(onnx_path, providers=providers, threads=threads, spinning=spinning)
    if session.get_providers()[0] != wanted:  # onnxruntime falls back silently
        raise Unavailable(f"{wanted} failed to initialise (missing CUDA / TensorRT libraries?)")
    x = torch.from_numpy(images).cuda()
    binding = session.io_binding()
    binding.bind_input(INPUT_NAME, "cuda", 0, np.float32, tuple(x.shape), x.data_ptr())
    binding.bind_output(session.get_outputs()[0].name, "cuda")

    return OrtRunner(session, lambda: session.run_with_iobinding(binding))


def _trt_runner(onnx_path: str, images: np.ndarray, *, precision: str, workdir: str):
    """A no-argument callable running one TensorRT engine inference (engine built here)."""
    from .tensorrt import TensorRTRunner, build_engine, missing_requirements

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
    ort_spinning: bool = False,
) -> Callable[[], None]:
    """The timed callable of ``backend`` for one network (``onnx_path()`` exports on demand);
    ``ort_spinning`` lets ONNX Runtime's thread pools spin between calls (its default).

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
        path = onnx_path()
        return _ort_runner(
            path, images, backend=backend, workdir=workdir, threads=threads, spinning=ort_spinning
        )
    if backend.startswith("trt-"):
        return _trt_runner(onnx_path(), images, precision=backend.split("-")[1], workdir=workdir)
    raise ValueError(f"unknown backend {backend!r}: expected one of {BACKENDS}")
