"""Deployment: the inference network of a config, its checkpoint without the training-only
tensors, ONNX export and parity, the deployment contract in the ONNX metadata, fp16 / INT8
variants, the ``Predictor`` (PyTorch or ONNX Runtime) with its overlays, the evaluation of
deployed models, TensorRT engines, and the cost and latency comparisons against the baseline.
The command-line scripts are ``deploy/*.py`` and ``tools/predict.py`` (see ``deploy/README.md``).

onnx, onnxruntime, onnxconverter-common and tensorrt are imported only by the functions that use
them.
"""

from .benchmark import (
    MODELS,
    format_markdown,
    format_self_check,
    machine_info,
    paired_ratio,
    run_benchmark,
    self_check,
    summarize,
    time_interleaved,
    wait_for_idle_threads,
)
from .cli import parse_size, positive_int, setup_logging
from .cost import INFERENCE_METRICS, TRAINING_METRICS, compare, flop_count, format_table, measure
from .evaluate import check_metadata_matches_config, config_from_metadata, evaluate_models
from .metadata import DeployMetadata, metadata_from_config, read_metadata, write_metadata
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
    NO_SPINNING,
    OPSET,
    OnnxModelError,
    export_onnx,
    load_images,
    load_onnx,
    make_parent_dir,
    onnx_graph_summary,
    ort_session,
    random_images,
    torch_forward,
)
from .overlay import draw_legend, draw_overlay
from .parity import check_parity, compare_outputs, format_parity, parity_inputs, within_tolerance
from .precision import (
    CALIBRATION_METHODS,
    ArrayCalibrationReader,
    calibration_images,
    convert_fp16,
    quantize_int8,
)
from .predictor import (
    ORT_BACKENDS,
    Predictor,
    UnreadableImageError,
    ort_providers,
    preprocess,
    read_bgr,
    resize_logits,
)
from .runners import BACKENDS, BackendError, OrtRunner, Unavailable, make_runner
from .tensorrt import TensorRTRunner

__all__ = [k for k in globals() if not k.startswith("_")]
