"""Shared pieces of the deploy scripts: inference model, checkpoint stripping, ONNX export and runs.

The inference network of a Contextrast config is the config's network with
``MODEL.CONTEXTRAST.ENABLED`` forced to False: no projection heads are built. A checkpoint trained
with Contextrast holds the projection heads under ``contrast_heads.``;
:func:`load_inference_weights` drops exactly those tensors and reports them, and rejects any other
difference.

onnx and onnxruntime are imported inside the functions that need them.
"""

import importlib.util
import logging
import sys
import warnings
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.modeling import build_model
from torch import Tensor, nn

import contextrast  # noqa: F401  (registers backbones, heads, meta-architectures, datasets)
from contextrast.config import get_contextrast_cfg, merge_config

__all__ = [
    "OPSET",
    "INPUT_NAME",
    "OUTPUT_KINDS",
    "EXPORTERS",
    "TRAINING_ONLY_PREFIX",
    "CheckpointMismatchError",
    "InferenceWrapper",
    "setup_logging",
    "setup_cfg",
    "default_size",
    "build_inference_model",
    "build_training_model",
    "jitter_weights",
    "count_parameters",
    "read_checkpoint",
    "split_training_only",
    "check_state_dict",
    "load_inference_weights",
    "export_onnx",
    "onnx_graph_summary",
    "ort_session",
    "torch_forward",
    "compare_outputs",
    "random_images",
    "load_images",
    "parse_size",
]

logger = logging.getLogger(__name__)

# ONNX opset of every export (the dynamo exporter's native opset; TensorRT 10 parses it).
OPSET = 18
# Graph input: float32 (B, 3, H, W), 0-255, channels in the config's INPUT.FORMAT order.
INPUT_NAME = "images"
# Graph output, also its name: "logits" float32 (B, K, H, W) or "labels" int64 (B, H, W).
OUTPUT_KINDS = ("logits", "labels")
# torch.onnx exporters: "torchscript" (torch.onnx.export(dynamo=False), needs nothing more) or
# "dynamo" (torch.export based, needs the onnxscript package).
EXPORTERS = ("torchscript", "dynamo")
# Module prefix of everything training-only in ContextrastSegmentor (docs/architecture.md).
TRAINING_ONLY_PREFIX = "contrast_heads."
# Keys listed per category in a checkpoint mismatch error before "... and N more".
_MAX_LISTED_KEYS = 20


class CheckpointMismatchError(RuntimeError):
    """The checkpoint does not fit the inference network (other architecture or class count)."""


class InferenceWrapper(nn.Module):
    """Tensor-in / tensor-out module around :meth:`ContextrastSegmentor.forward_logits`.

    Normalisation and padding happen inside, so an exported graph takes raw 0-255 images.
    """

    def __init__(self, model: nn.Module, output_kind: str = "logits"):
        """
        Args:
            model: a ContextrastSegmentor (eval mode is set here).
            output_kind: "logits" or "labels" (per-pixel argmax).
        """
        super().__init__()
        if output_kind not in OUTPUT_KINDS:
            raise ValueError(f"output_kind = {output_kind!r}: expected one of {OUTPUT_KINDS}")
        self.model = model
        self.output_kind = output_kind
        # A fresh module is in training mode, and exporters restore the mode they found.
        self.eval()

    def forward(self, images: Tensor) -> Tensor:
        """
        Args:
            images: (B, 3, H, W) float32, 0-255, channels in ``INPUT.FORMAT`` order.

        Returns:
            (B, K, H, W) float32 logits, or (B, H, W) int64 labels.
        """
        logits = self.model.forward_logits(images)
        if self.output_kind == "labels":
            return logits.argmax(dim=1)
        return logits


def setup_logging() -> None:
    """INFO logging to stdout for the CLI scripts, without the exporters' per-pass chatter."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stdout)
    for name in ("onnxscript", "onnx_ir", "fvcore", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.WARNING)


def setup_cfg(config_file: str, opts: Sequence[str] = (), device: str = "cpu"):
    """Project config from a file plus ``KEY VALUE`` overrides, on ``device``, frozen.

    Unknown keys raise ``UnknownConfigKeyError`` with the closest existing keys.
    """
    cfg = get_contextrast_cfg()
    merge_config(cfg, config_file, list(opts))
    cfg.MODEL.DEVICE = device
    cfg.freeze()
    return cfg


def default_size(cfg) -> Tuple[int, int]:
    """(height, width) to export / measure at: the absolute training crop, else 512 x 512."""
    if cfg.INPUT.CROP.ENABLED and cfg.INPUT.CROP.TYPE == "absolute":
        return int(cfg.INPUT.CROP.SIZE[0]), int(cfg.INPUT.CROP.SIZE[1])
    return 512, 512


def build_inference_model(cfg) -> nn.Module:
    """The deployable network of ``cfg``: ``MODEL.CONTEXTRAST.ENABLED`` forced False, eval mode.

    Weights come only from :func:`load_inference_weights`: ``MODEL.WEIGHTS`` and
    ``MODEL.HRNET.PRETRAINED`` are ignored, so the build never reads files.
    """
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.CONTEXTRAST.ENABLED = False
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.HRNET.PRETRAINED = ""
    cfg.freeze()
    model = build_model(cfg)
    leaked = [k for k in model.state_dict() if k.startswith(TRAINING_ONLY_PREFIX)]
    if leaked:  # would mean the meta-architecture ignores MODEL.CONTEXTRAST.ENABLED
        raise RuntimeError(f"inference model still holds training-only tensors: {leaked[:5]}")
    return model.eval()


def build_training_model(cfg) -> nn.Module:
    """The network as ``cfg`` trains it (projection heads when ``MODEL.CONTEXTRAST.ENABLED``)."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.HRNET.PRETRAINED = ""
    cfg.freeze()
    return build_model(cfg)


@torch.no_grad()
def jitter_weights(model: nn.Module, seed: int = 0, scale: float = 0.01) -> nn.Module:
    """Add N(0, scale^2) noise to every floating-point parameter and buffer, in place.

    For measurements on randomly initialised networks: the ONNX exporters merge initializers of
    equal value, and fresh BatchNorm layers all hold the same constants, so an untrained export
    would have fewer initializers than the same network trained. BN variances stay positive.
    """
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            tensor.add_(torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype) * scale)
            if name.endswith("running_var"):
                tensor.abs_()
    return model


def count_parameters(model: nn.Module, prefix: str = "") -> int:
    """Number of parameter elements, optionally only those whose name starts with ``prefix``."""
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))


def read_checkpoint(path: str) -> Dict[str, Tensor]:
    """The model state dict of a checkpoint written by ``tools/train_net.py`` (or a bare one).

    Args:
        path: local path or detectron2 ``PathManager`` URL of a ``torch.save``-d file holding
            ``{"model": state_dict, ...}`` (detectron2's checkpointer) or a state dict.

    Returns:
        ``{name: tensor}``, with a DistributedDataParallel ``module.`` prefix removed.
    """
    from detectron2.utils.file_io import PathManager

    with PathManager.open(path, "rb") as f:
        data = torch.load(f, map_location="cpu", weights_only=True)
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not all(isinstance(v, Tensor) for v in data.values()):
        raise CheckpointMismatchError(
            f"{path}: not a model checkpoint (expected a state dict or {{'model': state dict}})"
        )
    if data and all(k.startswith("module.") for k in data):
        data = {k[len("module.") :]: v for k, v in data.items()}
    return data


def split_training_only(state_dict: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], List[str]]:
    """Split off the training-only tensors (``contrast_heads.*``).

    Returns:
        (the state dict without them, the sorted names that were dropped).
    """
    dropped = sorted(k for k in state_dict if k.startswith(TRAINING_ONLY_PREFIX))
    kept = {k: v for k, v in state_dict.items() if not k.startswith(TRAINING_ONLY_PREFIX)}
    return kept, dropped


def _format_keys(title: str, keys: Sequence[str]) -> str:
    lines = [f"  {title} ({len(keys)}):"] + [f"    {k}" for k in keys[:_MAX_LISTED_KEYS]]
    if len(keys) > _MAX_LISTED_KEYS:
        lines.append(f"    ... and {len(keys) - _MAX_LISTED_KEYS} more")
    return "\n".join(lines)


def check_state_dict(model: nn.Module, state_dict: Dict[str, Tensor], source: str = "") -> None:
    """Require ``state_dict`` to hold exactly the model's tensors, with the same shapes.

    Raises:
        CheckpointMismatchError: listing the missing keys, the unexpected keys and the shape
            mismatches (typically a checkpoint of another architecture or class count).
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if state_dict[k].shape != expected[k].shape
    )
    if not (missing or unexpected or mismatched):
        return
    name = f"checkpoint {source}" if source else "checkpoint"
    parts = [f"{name} does not match the inference network:"]
    if missing:
        parts.append(_format_keys("missing in the checkpoint", missing))
    if unexpected:
        parts.append(_format_keys("unexpected in the checkpoint", unexpected))
    if mismatched:
        parts.append(_format_keys("shape mismatch", mismatched))
    parts.append("  (another architecture or class count? check --config-file and its options)")
    raise CheckpointMismatchError("\n".join(parts))


def load_inference_weights(model: nn.Module, path: str) -> Dict[str, object]:
    """Load a (Contextrast or baseline) checkpoint into the inference network, strictly.

    The ``contrast_heads.*`` tensors are dropped and logged; everything else must match.

    Returns:
        ``{"loaded": number of tensors loaded, "dropped": names dropped, "dropped_elements":
        number of tensor elements dropped}``.
    """
    full = read_checkpoint(path)
    state_dict, dropped = split_training_only(full)
    dropped_elements = sum(full[k].numel() for k in dropped)
    logger.info(
        "Dropped %d training-only tensors (%s*, %d elements) from %s",
        len(dropped),
        TRAINING_ONLY_PREFIX,
        dropped_elements,
        path,
    )
    check_state_dict(model, state_dict, source=path)
    model.load_state_dict(state_dict, strict=True)
    logger.info("Loaded %d tensors into the inference network", len(state_dict))
    return {"loaded": len(state_dict), "dropped": dropped, "dropped_elements": dropped_elements}


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
    exporter: str = "torchscript",
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
    if exporter == "torchscript":
        with warnings.catch_warnings():
            # The TorchScript-based exporter is deprecated but still the one that needs no extra
            # package; tracing Python shape arithmetic is expected (it stays symbolic).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                wrapper,
                (sample,),
                path,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[output_name],
                dynamic_axes=_dynamic_axes(output_name) if dynamic else None,
                do_constant_folding=True,
            )
    elif exporter == "dynamo":
        if importlib.util.find_spec("onnxscript") is None:
            raise ModuleNotFoundError(
                "the dynamo exporter needs the onnxscript package (pip install onnxscript); "
                "or use --exporter torchscript"
            )
        torch.onnx.export(
            wrapper,
            (sample,),
            path,
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[output_name],
            dynamic_axes=_dynamic_axes(output_name) if dynamic else None,
            external_data=False,
            verbose=False,
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


def ort_session(path: str, providers: Iterable[str] = ("CPUExecutionProvider",), threads: int = 0):
    """An onnxruntime session on ``providers`` (``threads`` > 0 sets the intra-op threads)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(path, sess_options=options, providers=list(providers))


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


def compare_outputs(reference: np.ndarray, output: np.ndarray) -> Dict[str, float]:
    """Parity of one runtime against the PyTorch reference.

    Args:
        reference, output: both (B, K, H, W) logits or both (B, H, W) labels.

    Returns:
        For logits: ``max_abs_diff``, ``max_abs_logit`` (of the reference) and
        ``argmax_agreement`` (fraction of pixels with the same argmax); for labels:
        ``label_agreement``.
    """
    if reference.shape != output.shape:
        raise ValueError(f"shape mismatch: reference {reference.shape} vs {output.shape}")
    if reference.ndim == 3:
        return {"label_agreement": float(np.mean(reference == output))}
    diff = np.abs(reference.astype(np.float64) - output.astype(np.float64))
    return {
        "max_abs_diff": float(diff.max()),
        "max_abs_logit": float(np.abs(reference).max()),
        "argmax_agreement": float(np.mean(reference.argmax(1) == output.argmax(1))),
    }


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


def parse_size(text: str) -> Tuple[int, ...]:
    """``"512x1024"`` -> (512, 1024); ``"1x3x512x1024"`` -> (1, 3, 512, 1024)."""
    try:
        dims = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"bad size {text!r}: expected integers joined by 'x'") from None
    if not dims or min(dims) <= 0:
        raise ValueError(f"bad size {text!r}: every dimension must be positive")
    return dims
