"""The deployed model's mIoU: ``deploy/evaluate.py`` scores ONNX Runtime and PyTorch on the same
images (equal for fp32, and equal to the training tool's evaluation path); fp16 and INT8 variants
are built, keep the contract and are scored; backends that cannot run here say why."""

import json

import numpy as np
import onnx
import pytest
from detectron2.evaluation import inference_on_dataset
from helpers import DEMO_CONFIG

from contextrast.evaluation import build_sem_seg_evaluator
from contextrast.evaluation.inference import build_eval_loader, dataset_records, load_eval_model
from contextrast.export import (
    ArrayCalibrationReader,
    onnx_graph_summary,
    ort_session,
    quantize_int8,
    random_images,
    read_metadata,
)
from deploy import evaluate, export_onnx, quantize

DATASET = "synth_streets_val"
IMAGES = 4


def run_evaluate(tmp_path, *args) -> dict:
    out = tmp_path / "eval.json"
    argv = ["--dataset", DATASET, "--max-images", str(IMAGES), "--output-json", str(out), *args]
    assert evaluate.main(argv) == 0
    return json.loads(out.read_text())["results"]


def test_onnx_miou_equals_pytorch_miou(demo_checkpoint, contextrast_onnx, tmp_path):
    results = run_evaluate(
        tmp_path, "--model", contextrast_onnx, "--config-file", DEMO_CONFIG,
        "--weights", demo_checkpoint,
    )  # fmt: skip
    onnx_row = results["ort-cpu fp32 contextrast.onnx"]
    assert results["pytorch"]["images"] == onnx_row["images"] == IMAGES
    for key in ("mIoU", "pACC", "mACC"):
        assert abs(onnx_row[key] - results["pytorch"][key]) <= 0.01, key
    # The PyTorch row is the training tool's evaluation (model forward + sem_seg_postprocess).
    cfg, model = load_eval_model(DEMO_CONFIG, demo_checkpoint, ["MODEL.DEVICE", "cpu"])
    loader = build_eval_loader(cfg, DATASET, dataset_records(DATASET, IMAGES))
    reference = inference_on_dataset(model, loader, build_sem_seg_evaluator(cfg, DATASET))
    assert abs(reference["sem_seg"]["mIoU"] - results["pytorch"]["mIoU"]) <= 0.01
    # Without a config, the ONNX metadata drives the same evaluation.
    alone = run_evaluate(tmp_path, "--model", contextrast_onnx)
    assert alone["ort-cpu fp32 contextrast.onnx"]["mIoU"] == pytest.approx(onnx_row["mIoU"])


def test_int8_quantization(contextrast_onnx, tmp_path):
    int8 = str(tmp_path / "int8.onnx")
    argv = ["--onnx", contextrast_onnx, "--output", int8, "--num-images", "8"]
    assert quantize.main(argv) == 0  # calibrated on synth_streets_train (from the metadata)
    ops = onnx_graph_summary(int8)["op_histogram"]
    assert ops.get("QuantizeLinear", 0) > 10 and ops.get("DequantizeLinear", 0) > 10
    assert read_metadata(int8).precision == "int8"
    assert read_metadata(int8).class_names == read_metadata(contextrast_onnx).class_names
    results = run_evaluate(tmp_path, "--model", contextrast_onnx, int8)
    fp32, quantized = results["ort-cpu fp32 contextrast.onnx"], results["ort-cpu int8 int8.onnx"]
    # Reported, not bounded: a 3-iteration demo model is no measure of INT8 accuracy (the
    # README has the CamVid figures); it must be a real score on the same images.
    assert 0.0 < quantized["mIoU"] <= 100.0 and quantized["images"] == fp32["images"]
    print(f"demo model mIoU fp32 {fp32['mIoU']:.2f}, int8 {quantized['mIoU']:.2f}")


def test_fp16_export(demo_checkpoint, tmp_path):
    path = str(tmp_path / "fp16.onnx")
    argv = ["--config-file", DEMO_CONFIG, "--weights", demo_checkpoint, "--output", path]
    # The script's own parity check (ONNX Runtime CPU, 1e-2 of the largest logit) must pass.
    assert export_onnx.main(argv + ["--precision", "fp16", "--height", "96", "--width", "96"]) == 0
    summary = onnx_graph_summary(path)
    assert summary["inputs"]["images"][0] == summary["outputs"]["logits"][0] == "float32"
    dtypes = {dtype for dtype, _ in summary["initializers"].values()}
    assert "float16" in dtypes
    assert read_metadata(path).precision == "fp16"
    output = ort_session(path).run(None, {"images": random_images(1, 96, 96)})[0]
    assert output.dtype == np.float32 and np.isfinite(output).all()


def test_unavailable_backends_say_why(contextrast_onnx, tmp_path):
    with pytest.raises(SystemExit, match="cannot run a TensorRT engine here") as excinfo:
        evaluate.main(["--model", "x.engine", "--backend", "trt", "--config-file", DEMO_CONFIG])
    assert "tensorrt" in str(excinfo.value.code)
    with pytest.raises(SystemExit, match="ort-trt"):
        evaluate.main(["--model", contextrast_onnx, "--backend", "ort-trt", "--dataset", DATASET])
    bare = str(tmp_path / "bare.onnx")
    model = onnx.load(contextrast_onnx)
    del model.metadata_props[:]
    onnx.save(model, bare)
    with pytest.raises(SystemExit, match="bare.onnx: ONNX metadata_props lack"):
        evaluate.main(["--model", bare])
    with pytest.raises(SystemExit, match="INPUT.FORMAT: 'BGR' in .* 'RGB' in the config"):
        evaluate.main(["--model", contextrast_onnx, "--config-file", DEMO_CONFIG,
                       "INPUT.FORMAT", "RGB"])  # fmt: skip


def test_calibration_reader_replays_after_rewind():
    arrays = (random_images(1, 8, 8, seed=i) for i in range(3))
    reader = ArrayCalibrationReader(arrays)
    first = [reader.get_next()["images"] for _ in range(3)]
    assert reader.get_next() is None and reader.count == 3
    reader.rewind()  # calibrators with a second pass get the same images
    again = [reader.get_next()["images"] for _ in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], first[1])


def test_quantize_needs_calibration_images(static_onnx, tmp_path, capsys):
    output = tmp_path / "int8.onnx"
    with pytest.raises(SystemExit) as excinfo:
        quantize.main(["--onnx", static_onnx, "--output", str(output), "--num-images", "0"])
    assert excinfo.value.code == 2
    assert "--num-images: expected a positive integer, got 0" in capsys.readouterr().err
    # The library says so before onnxruntime's own "No data is collected.".
    with pytest.raises(ValueError, match=r"no calibration images for .*static\.onnx"):
        quantize_int8(static_onnx, str(output), [])
    assert not output.exists()
