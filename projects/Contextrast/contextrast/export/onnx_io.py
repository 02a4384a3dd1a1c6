"""ONNX export, graph summary, ONNX Runtime sessions and the inputs of parity checks.

onnx and onnxruntime are imported inside the functions that need them.
"""

import importlib.util
import logging
import os
import warnings
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from .model import InferenceWrapper

__all__ = [
    "OPSET",
    "INPUT_NAME",
    "EXPORTERS",
    "NO_SPINNING",
    "OnnxModelError",
    "make_parent_dir",
    "load_onnx",
    "export_onnx",
    "onnx_graph_summary",
    "ort_session",
    "torch_forward",
    "random_images",
    "load_images",
]

logger = logging.getLogger(__name__)

# ONNX opset of every export (the dynamo exporter's native opset; TensorRT 10 parses it).
OPSET = 18
# Graph input: float32 (B, 3, H, W), 0-255, channels in the config's INPUT.FORMAT order.
INPUT_NAME = "images"
# torch.onnx exporters, the default first: "dynamo" (torch.export based, torch's current exporter;
# needs the onnxscript package, pinned in requirements.txt) or "torchscript"
# (torch.onnx.export(dynamo=False), deprecated by torch but still working, kept behind a flag).
EXPORTERS = ("dynamo", "torchscript")
# ONNX Runtime session config that stops its thread pools from spin-waiting for work after a
# call returns. A spinning pool keeps burning CPU after every call (measured on a 2-core VM with
# 2 intra-op threads: 4 to 35 ms of CPU after a 5 ms call of the demo model, depending on the
# load), so on a machine with few cores two sessions timed side by side slow each other down;
# with these entries an idle session uses no CPU. Timed sessions use them (deploy/benchmark.py,
# deploy/evaluate.py).
NO_SPINNING = {"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0"}


class OnnxModelError(ValueError):
    """An ONNX file that onnx or ONNX Runtime cannot load (truncated, not ONNX, invalid graph);
    the message names the file."""


def make_parent_dir(path: str) -> None:
    """Create the folder of the output file ``path`` (with its parents) when it is missing.

    Raises:
        OSError: naming the folder, when it cannot be created (e.g. a parent is a file).
    """
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(folder):
        return
    try:
        os.makedirs(folder)
    except OSError as e:
        raise type(e)(f"cannot create the folder {folder} for {path}: {e.strerror or e}") from e
    logger.info("Created the folder %s", folder)


def load_onnx(path: str, *, load_external_data: bool = True):
    """``onnx.load`` with an error that names the file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        OnnxModelError: the file is not a readable ONNX model.
    """
    import onnx
    from google.protobuf.message import DecodeError

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such ONNX file")
    try:
        return onnx.load(path, load_external_data=load_external_data)
    except DecodeError as e:
        raise OnnxModelError(
            f"{path}: not a readable ONNX model (truncated, or not an ONNX file): {e}"
        ) from e


def _dynamic_axes(output_kind: str) -> Dict[str, Dict[int, str]]:
    spatial = {2: "height", 3: "width"} if output_kind == "logits" else {1: "height", 2: "width"}
    return {
        INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
        output_kind: {0: "batch", **spatial},
    }


def export_onnx(
    wrapper: InferenceWrapper,
    path: str,
    sample: Tensor,
    *,
    dynamic: bool,
    opset: int = OPSET,
    exporter: str = EXPORTERS[0],
) -> str:
    """Export ``wrapper`` to ``path`` and run ``onnx.checker`` on the file.

    Args:
        wrapper: the module to export (its output kind names the graph output).
        path: output ``.onnx`` file (weights inside the file).
        sample: (B, 3, H, W) float32 input used for tracing; its shape is the static shape.
        dynamic: make batch, height and width symbolic ("batch", "height", "width").
        opset: ONNX opset version.
        exporter: "torchscript" or "dynamo" (see :data:`EXPORTERS`).

    Returns:
        ``path``.
    """
    import onnx

    output_name = wrapper.output_kind
    wrapper.eval()
    make_parent_dir(path)
    # What both exporters are given alike: the graph's names, shapes and opset.
    common = dict(
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[output_name],
        dynamic_axes=_dynamic_axes(output_name) if dynamic else None,
    )
    if exporter == "torchscript":
        with warnings.catch_warnings():
            # The TorchScript-based exporter is deprecated but still the one that needs no extra
            # package; tracing Python shape arithmetic is expected (it stays symbolic).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                wrapper, (sample,), path, dynamo=False, do_constant_folding=True, **common
            )
    elif exporter == "dynamo":
        if importlib.util.find_spec("onnxscript") is None:
            raise ModuleNotFoundError(
                "the dynamo exporter needs the onnxscript package (pip install onnxscript); "
                "or use --exporter torchscript"
            )
        with warnings.catch_warnings():
            # dynamic_axes is translated to torch.export dims; it works for these networks
            # (parity at two shapes in the tests) and keeps the graph's dim names.
            warnings.filterwarnings("ignore", message=".*'dynamic_axes' is not recommended")
            torch.onnx.export(
                wrapper, (sample,), path, dynamo=True, external_data=False, verbose=False, **common
            )
    else:
        raise ValueError(f"exporter = {exporter!r}: expected one of {EXPORTERS}")
    with torch.no_grad():
        output_shape = tuple(wrapper(sample).shape)
    _set_static_output_dims(
        path, output_shape, _dynamic_axes(output_name)[output_name] if dynamic else {}
    )
    onnx.checker.check_model(path, full_check=True)
    return path


def _set_static_output_dims(path: str, shape: Sequence[int], dynamic_axes: Dict[int, str]) -> None:
    """Write the static output dims (e.g. K) that the tracer left symbolic (the crop to H x W)."""
    import onnx

    model = onnx.load(path)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    changed = False
    for axis, (dim, size) in enumerate(zip(dims, shape)):
        if axis in dynamic_axes:
            if dim.dim_param != dynamic_axes[axis]:
                dim.dim_param = dynamic_axes[axis]
                changed = True
        elif dim.dim_value != size:
            dim.dim_value = size
            changed = True
    if changed:
        onnx.save(model, path)


def onnx_graph_summary(path: str) -> Dict[str, object]:
    """Structure of an ONNX file: I/O, node count, op histogram and initializers.

    Returns:
        dict with ``inputs`` / ``outputs`` (name -> [dtype, shape with symbolic dims as str]),
        ``nodes`` (count, functions included), ``op_histogram`` ({op_type: count}),
        ``initializers`` ({name: [dtype, shape]}), ``initializer_count``, ``initializer_elements``
        and ``initializer_bytes``.
    """
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    model = onnx.load(path)
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]

    def value_info(values) -> Dict[str, list]:
        out = {}
        for v in values:
            t = v.type.tensor_type
            shape = [d.dim_param or d.dim_value for d in t.shape.dim]
            out[v.name] = [np.dtype(tensor_dtype_to_np_dtype(t.elem_type)).name, shape]
        return out

    initializers, elements, nbytes = {}, 0, 0
    for init in model.graph.initializer:
        dtype = np.dtype(tensor_dtype_to_np_dtype(init.data_type))
        count = int(np.prod(init.dims, dtype=np.int64))
        initializers[init.name] = [dtype.name, list(init.dims)]
        elements += count
        nbytes += count * dtype.itemsize
    return {
        "inputs": value_info(model.graph.input),
        "outputs": value_info(model.graph.output),
        "nodes": len(nodes),
        "op_histogram": dict(sorted(Counter(n.op_type for n in nodes).items())),
        "initializers": initializers,
        "initializer_count": len(initializers),
        "initializer_elements": elements,
        "initializer_bytes": nbytes,
    }


def ort_session(
    path: str,
    providers: Iterable[str] = ("CPUExecutionProvider",),
    threads: int = 0,
    *,
    spinning: bool = True,
):
    """An onnxruntime session on ``providers``.

    Args:
        path: ONNX file.
        providers: execution providers, in order of preference.
        threads: intra-op threads (0: onnxruntime's default, one per physical core).
        spinning: let the thread pools spin-wait between calls (onnxruntime's default, the
            lowest latency for one session alone). False for sessions timed next to other
            work (:data:`NO_SPINNING`).

    Raises:
        OnnxModelError: onnxruntime cannot load the file (the message names it).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    if not spinning:
        for key, value in NO_SPINNING.items():
            options.add_session_config_entry(key, value)
    try:
        return ort.InferenceSession(path, sess_options=options, providers=list(providers))
    except Exception as e:  # onnxruntime's exception types derive from Exception only
        raise OnnxModelError(f"{path}: onnxruntime cannot load it: {e}") from e


@torch.no_grad()
def torch_forward(wrapper: nn.Module, images: np.ndarray, device: str = "cpu") -> np.ndarray:
    """PyTorch reference output of ``wrapper`` for a (B, 3, H, W) float32 array.

    On CUDA the reference is strict float32: TF32 matrix/convolution units are switched off
    for the call (they round operands to 10 mantissa bits, ~1e-3 relative, far above the 1e-4
    parity tolerance), and ``wrapper`` is moved back to where it was.
    """
    x = torch.from_numpy(images)
    if device == "cpu":
        return wrapper(x).numpy()
    before = next(wrapper.parameters()).device
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        return wrapper.to(device)(x.to(device)).cpu().numpy()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
        wrapper.to(before)


def random_images(batch: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(batch, 3, height, width) float32 uniform in [0, 255]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 255.0, size=(batch, 3, height, width)).astype(np.float32)


def load_images(
    paths: Sequence[str], input_format: str, size: Optional[Tuple[int, int]] = None
) -> List[np.ndarray]:
    """Image files as (1, 3, H, W) float32 0-255 arrays in ``input_format`` channel order.

    Args:
        paths: image files.
        input_format: the config's ``INPUT.FORMAT`` ("RGB" or "BGR").
        size: (height, width) to resize to (bilinear), or None to keep each image's size.
    """
    import cv2
    from detectron2.data.detection_utils import read_image

    arrays = []
    for path in paths:
        image = read_image(path, format=input_format)
        if size is not None and image.shape[:2] != tuple(size):
            image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
        arrays.append(np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32))
    return arrays
