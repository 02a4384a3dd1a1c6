"""Deployment: the inference network of a config, its checkpoint without the training-only
tensors, ONNX export and parity, TensorRT engines, and the cost and latency comparisons against
the baseline. The command-line scripts are ``deploy/*.py`` (see ``deploy/README.md``).

onnx, onnxruntime and tensorrt are imported only by the functions that use them.
"""

from .benchmark import (
    MODELS,
    format_markdown,
    machine_info,
    paired_ratio,
    run_benchmark,
    summarize,
    time_interleaved,
)
from .cli import parse_size, setup_logging
from .cost import INFERENCE_METRICS, TRAINING_METRICS, compare, flop_count, format_table, measure
from .model import (
    OUTPUT_KINDS,
    InferenceWrapper,
    build_inference_model,
    build_training_model,
    count_parameters,
    default_size,
    jitter_weights,
    load_inference_weights,
    read_checkpoint,
)
from .onnx_io import (
    EXPORTERS,
    INPUT_NAME,
    OPSET,
    export_onnx,
    load_images,
    onnx_graph_summary,
    ort_session,
    random_images,
    torch_forward,
)
from .parity import check_parity, compare_outputs, format_parity, parity_inputs, within_tolerance
from .runners import BACKENDS, Unavailable, make_runner

__all__ = [k for k in globals() if not k.startswith("_")]
