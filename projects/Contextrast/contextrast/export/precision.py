"""Reduced-precision variants of an fp32 ONNX export: fp16 (GPU providers) and static INT8 (CPU).

fp16: onnxconverter-common's ``convert_float_to_float16`` with ``keep_io_types=True``, so the
graph still takes float32 ``images`` and returns float32 logits; the computation is fp16, which
GPU execution providers run natively (ONNX Runtime's x86 CPU provider has few fp16 kernels).

INT8: ONNX Runtime's static quantization in QDQ format (``quantize_static``), weights int8 per
output channel, activations uint8 with ranges calibrated on real images, after ONNX Runtime's
``quant_pre_process`` (shape inference and graph optimisation). U8 activations with S8 weights
are the combination ONNX Runtime's x86 kernels (VNNI / AVX2) are fastest for.

Both copy the deployment contract (:mod:`.metadata`) into the new file, with its precision.
"""

import dataclasses
import logging
import os
import tempfile
from typing import Iterable, Iterator, List, Optional

import numpy as np

from .metadata import DeployMetadata, read_metadata, write_metadata
from .onnx_io import INPUT_NAME, make_parent_dir
from .predictor import preprocess, read_bgr

__all__ = [
    "CALIBRATION_METHODS",
    "ArrayCalibrationReader",
    "calibration_images",
    "convert_fp16",
    "quantize_int8",
]

logger = logging.getLogger(__name__)

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def convert_fp16(src: str, dst: str) -> str:
    """Write the fp16 version of the fp32 graph ``src`` to ``dst`` (I/O stays float32).

    Returns:
        ``dst``.
    """
    import onnx
    from onnxconverter_common import float16

    meta = read_metadata(src)
    model = float16.convert_float_to_float16(onnx.load(src), keep_io_types=True)
    _float32_outputs(model)
    write_metadata(dst, dataclasses.replace(meta, precision="fp16"), model=model)
    onnx.checker.check_model(dst, full_check=True)
    return dst


def _float32_outputs(model) -> None:
    """Make float16 graph outputs float32 again, in place.

    ``keep_io_types`` misses an output made by an op the converter keeps in fp32 (Resize, on
    its default block list: the final upsampling of the logits): it casts that op's fp32 result
    to fp16 for the output. Such a cast is turned into a cast to fp32.
    """
    import onnx

    producers = {out: node for node in model.graph.node for out in node.output}
    for output in model.graph.output:
        tensor_type = output.type.tensor_type
        if tensor_type.elem_type != onnx.TensorProto.FLOAT16:
            continue
        node = producers.get(output.name)
        if node is None or node.op_type != "Cast":
            raise ValueError(f"fp16 conversion left output {output.name!r} in float16")
        for attribute in node.attribute:
            if attribute.name == "to":
                attribute.i = onnx.TensorProto.FLOAT
        tensor_type.elem_type = onnx.TensorProto.FLOAT


class ArrayCalibrationReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over (1, 3, H, W) float32 arrays.

    The arrays are drawn lazily and kept, so that a calibrator that needs a second pass
    (``rewind``) gets the same images again.
    """

    def __init__(self, arrays: Iterable[np.ndarray]):
        self._source: Iterator[np.ndarray] = iter(arrays)
        self._seen: List[np.ndarray] = []
        self._position = 0

    @property
    def count(self) -> int:
        """Number of distinct images drawn so far."""
        return len(self._seen)

    def get_next(self) -> Optional[dict]:
        if self._position == len(self._seen):
            array = next(self._source, None)
            if array is None:
                return None
            self._seen.append(np.ascontiguousarray(array, dtype=np.float32))
        self._position += 1
        return {INPUT_NAME: self._seen[self._position - 1]}

    def rewind(self) -> None:
        self._position = 0


def calibration_images(
    dataset: str, meta: DeployMetadata, count: int, seed: int = 0
) -> Iterator[np.ndarray]:
    """``count`` images drawn at random (``seed``) from a registered dataset, as model inputs.

    Yields:
        (1, 3, h, w) float32 arrays, preprocessed by the ONNX file's contract (:func:`preprocess`).
    """
    from detectron2.data import DatasetCatalog

    records = DatasetCatalog.get(dataset)
    if not records:
        raise ValueError(f"dataset {dataset!r} has no images")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(records), size=min(count, len(records)), replace=False)
    for index in sorted(picks):
        yield preprocess(read_bgr(records[index]["file_name"]), meta)


def quantize_int8(
    src: str,
    dst: str,
    calibration: Iterable[np.ndarray],
    *,
    method: str = "minmax",
    per_channel: bool = True,
) -> str:
    """Static INT8 (QDQ) quantization of the fp32 graph ``src``, calibrated on ``calibration``.

    Args:
        src: fp32 ONNX file written by ``deploy/export_onnx.py`` (carries the metadata).
        dst: output ONNX file.
        calibration: (1, 3, H, W) float32 0-255 images in the graph's input format and test
            size (e.g. :func:`calibration_images` of the training set).
        method: activation range calibration, one of :data:`CALIBRATION_METHODS`.
        per_channel: one weight scale per output channel (more accurate, as fast).

    Returns:
        ``dst``.

    Raises:
        ValueError: ``calibration`` is empty, ``src`` is not an fp32 export, or ``method`` is
            unknown.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if method not in methods:
        raise ValueError(f"calibration method {method!r}: expected one of {CALIBRATION_METHODS}")
    meta = read_metadata(src)
    if meta.precision != "fp32":
        raise ValueError(f"{src}: precision is {meta.precision!r}; quantize the fp32 export")
    reader = ArrayCalibrationReader(calibration)
    # onnxruntime says only "No data is collected." after its pre-processing pass.
    if reader.get_next() is None:
        raise ValueError(f"quantize_int8: no calibration images for {src}")
    reader.rewind()
    make_parent_dir(dst)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(src, prepared, skip_symbolic_shape=False, auto_merge=True)
        quantize_static(
            prepared,
            dst,
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            extra_options={"CalibTensorRangeSymmetric": False},
        )
    logger.info("Quantized %s -> %s, calibrated on %d images (%s)", src, dst, reader.count, method)
    write_metadata(dst, dataclasses.replace(meta, precision="int8"))
    return dst
