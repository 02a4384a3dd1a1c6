"""Cost report, benchmark and TensorRT engine build on the demo configs (real exports, real
onnxruntime); TensorRT tests run only where tensorrt and a CUDA GPU are present."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import BASELINE_CONFIG, DEMO_CONFIG, ROOT, TF32_RTOL, assert_close_to_reference

from contextrast.config import load_config
from contextrast.export import (
    INFERENCE_METRICS,
    MODELS,
    InferenceWrapper,
    build_inference_model,
    load_inference_weights,
    random_images,
    time_interleaved,
    torch_forward,
)
from contextrast.export.tensorrt import TensorRTRunner, missing_requirements
from deploy import benchmark, build_engine, cost_report

TRT_MISSING = missing_requirements()


def test_cost_report_ratios_are_exactly_one(tmp_path):
    out = tmp_path / "cost.json"
    argv = [
        "--config-file",
        BASELINE_CONFIG,
        "--config-file",
        DEMO_CONFIG,
        "--height",
        "96",
        "--width",
        "128",
    ]
    assert cost_report.main(argv + ["--expect-equal", "--output-json", str(out)]) == 0
    data = json.loads(out.read_text())
    ratios = data["comparisons"][0]["ratios"]
    for key in INFERENCE_METRICS:
        assert ratios[key] == 1.0, key
    assert data["comparisons"][0]["same_op_histogram"]
    assert data["comparisons"][0]["same_initializers"]
    baseline, contextrast = data["reports"]
    assert baseline["training_only_params"] == 0
    assert contextrast["training_only_params"] > 0
    assert contextrast["training_params"] == (
        contextrast["inference_params"] + contextrast["training_only_params"]
    )
    assert baseline["gflops"] > 0 and baseline["onnx_nodes"] > 0


def test_cost_report_detects_a_different_network(tmp_path):
    other = tmp_path / "five_classes.yaml"
    other.write_text(f'_BASE_: "{DEMO_CONFIG}"\nMODEL:\n  SEM_SEG_HEAD:\n    NUM_CLASSES: 5\n')
    argv = ["--config-file", BASELINE_CONFIG, "--config-file", str(other), "--height", "64"]
    # The TorchScript exporter here: the check compares reports, whichever exporter made the
    # graphs (test_cost_report_ratios_are_exactly_one runs the default), and it is 10x faster.
    argv += ["--exporter", "torchscript"]
    assert cost_report.main(argv + ["--width", "64", "--expect-equal"]) == 1


def test_benchmark_side_by_side(demo_checkpoint, tmp_path):
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    argv = [
        "--baseline", BASELINE_CONFIG,
        "--contextrast", DEMO_CONFIG,
        "--contextrast-weights", demo_checkpoint,
        "--height", "64", "--width", "96",
        "--backends", "torch-cpu", "ort-cpu", "trt-fp16",
        "--warmup", "1", "--rounds", "2", "--repeats", "2", "--min-time", "0",
        "--output-json", str(out_json), "--output-md", str(out_md),
    ]  # fmt: skip
    assert benchmark.main(argv) == 0
    report = json.loads(out_json.read_text())
    timed = {(r["backend"], r["model"]) for r in report["results"]}
    backends = ["torch-cpu", "ort-cpu"] + ([] if TRT_MISSING else ["trt-fp16"])
    assert timed == {(b, m) for b in backends for m in MODELS}
    for r in report["results"]:
        assert r["samples"] == 4 and 0 < r["median_ms"] <= r["p90_ms"]
    assert [r["backend"] for r in report["ratios"]] == backends
    assert all(r["median"] > 0 and r["paired_median"] > 0 for r in report["ratios"])
    if TRT_MISSING:
        assert "tensorrt" in report["skipped"]["trt-fp16"].lower()
    assert report["settings"]["input_shape"] == [1, 3, 64, 96]
    assert "| torch-cpu |" in out_md.read_text()


def test_interleaving_alternates_the_order():
    calls = []
    runners = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = time_interleaved(runners, warmup=1, rounds=3, repeats=2)
    assert calls == ["a", "b"] + ["a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b"]
    assert [len(r) for r in times["a"]] == [2, 2, 2]


@pytest.mark.skipif(not TRT_MISSING, reason="tensorrt and a CUDA GPU are present")
def test_build_engine_says_what_is_missing(contextrast_onnx, tmp_path):
    engine = tmp_path / "m.engine"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "deploy", "build_engine.py")]
        + ["--onnx", contextrast_onnx, "--output", str(engine)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    for item in TRT_MISSING:
        assert item in proc.stderr
    if "tensorrt" in " ".join(TRT_MISSING):
        assert "pip install -e projects/Contextrast[tensorrt]" in proc.stderr
    assert not engine.exists()


@pytest.mark.skipif(bool(TRT_MISSING), reason="; ".join(TRT_MISSING) or "TensorRT present")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_matches_pytorch(demo_checkpoint, contextrast_onnx, tmp_path, precision):
    import tensorrt as trt
    import torch

    if precision == "fp16" and not hasattr(trt.BuilderFlag, "FP16"):
        pytest.skip(f"TensorRT {trt.__version__} builds fp16 engines from fp16 graphs only")
    engine = str(tmp_path / f"{precision}.engine")
    argv = ["--onnx", contextrast_onnx, "--output", engine, "--precision", precision]
    shapes = [
        "--min-shape",
        "1x3x64x64",
        "--opt-shape",
        "2x3x128x128",
        "--max-shape",
        "2x3x256x256",
    ]
    assert build_engine.main(argv + shapes) == 0
    runner = TensorRTRunner(engine)
    model = build_inference_model(load_config(DEMO_CONFIG, device="cpu"))
    load_inference_weights(model, demo_checkpoint)
    wrapper = InferenceWrapper(model)
    for shape in [(1, 3, 128, 128), (2, 3, 97, 161)]:
        images = random_images(shape[0], shape[2], shape[3], seed=11)
        reference = torch_forward(wrapper, images)
        output = runner(torch.from_numpy(images).cuda())
        torch.cuda.synchronize()
        output = output.cpu().numpy()
        assert output.shape == reference.shape
        agreement = np.mean(output.argmax(1) == reference.argmax(1))
        if precision == "fp32":  # TF32 may be on: relative, not float32-exact, tolerance
            assert_close_to_reference(output, reference, rtol=TF32_RTOL, what="logits")
            assert agreement >= 0.995
        else:
            assert agreement >= 0.98
