"""TensorRT engines from the ONNX exports: build (fp32 / fp16) and run on torch CUDA tensors.

Needs the TensorRT Python package (``pip install -e "projects/Contextrast[tensorrt]"``) and an
NVIDIA GPU with its driver; :func:`missing_requirements` says which is missing. ``tensorrt`` is
imported inside the functions that need it.

Precision. fp32 builds from the float32 export. fp16: TensorRT 8.6 / 10 build the float32 export
with the FP16 builder flag (fp16 kernels where faster; inputs and outputs stay float32 / int64).
TensorRT 11 removed that flag (strongly typed networks only): it needs a graph converted to fp16
beforehand, e.g. by NVIDIA ModelOpt AutoCast; :func:`build_engine` says so when given a float32
graph.
"""

import importlib.util
import logging
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from .onnx_io import INPUT_NAME

__all__ = [
    "PRECISIONS",
    "INSTALL_HINT",
    "missing_requirements",
    "build_engine",
    "onnx_has_float16",
    "TensorRTRunner",
]

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")
# How to get TensorRT for this project (the package's optional dependency group).
INSTALL_HINT = "pip install -e projects/Contextrast[tensorrt]"


def missing_requirements() -> List[str]:
    """What is missing for TensorRT here: [] when the package and a CUDA GPU are both present."""
    missing = []
    if importlib.util.find_spec("tensorrt") is None:
        missing.append(f"the TensorRT Python package 'tensorrt' is not installed ({INSTALL_HINT})")
    if not torch.cuda.is_available():
        missing.append(
            "no CUDA GPU is visible (torch.cuda.is_available() is False): TensorRT needs an "
            "NVIDIA GPU and driver"
        )
    return missing


def build_engine(
    onnx_path: str,
    engine_path: str,
    *,
    precision: str = "fp32",
    shapes: Optional[Tuple[Sequence[int], Sequence[int], Sequence[int]]] = None,
    workspace_gib: float = 4.0,
) -> str:
    """Parse ``onnx_path`` and serialise a TensorRT engine to ``engine_path``.

    Args:
        onnx_path: ONNX file with the ``images`` input.
        engine_path: output file.
        precision: "fp32" or "fp16".
        shapes: (min, opt, max) ``images`` shapes of the optimisation profile; required when the
            graph input has symbolic dimensions, and must then agree with its static ones.
        workspace_gib: builder workspace limit.

    Returns:
        ``engine_path``.
    """
    import tensorrt as trt

    if precision not in PRECISIONS:
        raise ValueError(f"precision = {precision!r}: expected one of {PRECISIONS}")
    half_graph = onnx_has_float16(onnx_path)
    weak_typing = hasattr(trt.BuilderFlag, "FP16")  # TensorRT <= 10; 11 is always strongly typed
    if precision == "fp16" and not weak_typing and not half_graph:
        raise RuntimeError(
            f"TensorRT {trt.__version__} builds strongly typed networks only, so an fp16 engine "
            f"needs an fp16 ONNX graph and {onnx_path} is float32. Convert it with NVIDIA ModelOpt "
            "AutoCast (python -m modelopt.onnx.autocast --onnx_path model.onnx "
            "--low_precision_type fp16 --keep_io_types) and build from that file, or use "
            "TensorRT 10 "
            "(pip install 'tensorrt-cu13<11')."
        )
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # explicit batch is the only mode from 10 on
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if half_graph and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        # The graph states its own precisions: keep them (TensorRT 11 always does).
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}:\n{errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision == "fp16" and weak_typing and not half_graph:
        # TensorRT 8.6 / 10: lets the builder pick fp16 kernels where they are faster.
        config.set_flag(trt.BuilderFlag.FP16)

    graph_input = network.get_input(0)
    if graph_input.name != INPUT_NAME:
        raise RuntimeError(f"{onnx_path}: first input is {graph_input.name!r}, not {INPUT_NAME!r}")
    input_shape = tuple(graph_input.shape)
    if any(d < 0 for d in input_shape):
        if shapes is None:
            raise ValueError(
                f"{onnx_path} has a dynamic input {input_shape}: give --min-shape, --opt-shape "
                "and --max-shape"
            )
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, *[tuple(s) for s in shapes])
        config.add_optimization_profile(profile)
    elif shapes is not None:
        logger.warning(
            "%s has a static input %s: ignoring the profile shapes", onnx_path, input_shape
        )

    logger.info("Building a %s engine from %s (input %s)", precision, onnx_path, input_shape)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    Path(engine_path).write_bytes(bytes(serialized))
    logger.info("Wrote %s (%.1f MB)", engine_path, Path(engine_path).stat().st_size / 1e6)
    return engine_path


def onnx_has_float16(onnx_path: str) -> bool:
    """Whether the graph already computes in fp16 (e.g. converted by ModelOpt AutoCast)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


class TensorRTRunner:
    """Runs a serialised engine on torch CUDA tensors (one input ``images``, one output)."""

    def __init__(self, engine_path: str):
        """
        Args:
            engine_path: file written by :func:`build_engine`.
        """
        import tensorrt as trt

        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        self.engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not load {engine_path}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if INPUT_NAME not in names or len(outputs) != 1:
            raise RuntimeError(f"{engine_path}: expected input {INPUT_NAME!r} and one output")
        self.output_name = outputs[0]
        self.output_dtype = torch.from_numpy(
            np.empty(0, dtype=trt.nptype(self.engine.get_tensor_dtype(self.output_name)))
        ).dtype

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """
        Args:
            images: (B, 3, H, W) float32 CUDA tensor within the engine's profile.

        Returns:
            the output as a CUDA tensor (logits float32 or labels int64), computed on the
            current torch CUDA stream.
        """
        images = images.contiguous()
        self.context.set_input_shape(INPUT_NAME, tuple(images.shape))
        shape = tuple(self.context.get_tensor_shape(self.output_name))
        output = torch.empty(shape, dtype=self.output_dtype, device=images.device)
        self.context.set_tensor_address(INPUT_NAME, images.data_ptr())
        self.context.set_tensor_address(self.output_name, output.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        return output
