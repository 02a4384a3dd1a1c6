"""Side-by-side timing: the ONNX Runtime sessions it times do not spin, the self-check times one
network against itself (one ONNX file for both sides), and a backend that fails is an error
naming it and the network, not a skipped row. Real exports and real onnxruntime; no timing is
asserted (the ratios themselves are checked by ``deploy/benchmark.py --self-check``)."""

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from helpers import BASELINE_CONFIG

from contextrast.config import load_config
from contextrast.export import (
    MODELS,
    NO_SPINNING,
    BackendError,
    InferenceWrapper,
    OrtRunner,
    Predictor,
    build_inference_model,
    make_runner,
    random_images,
    run_benchmark,
    time_interleaved,
)
from deploy import benchmark, evaluate


def spinning_entries(session) -> dict:
    """The spinning entries of an onnxruntime session's config (None: not set, i.e. spinning)."""
    options = session.get_session_options()
    entries = {}
    for key in NO_SPINNING:
        try:
            entries[key] = options.get_session_config_entry(key)
        except RuntimeError:  # onnxruntime raises for a key that was never set
            entries[key] = None
    return entries


@pytest.fixture(scope="module")
def wrapper():
    return InferenceWrapper(build_inference_model(load_config(BASELINE_CONFIG, device="cpu")))


def test_timed_onnxruntime_sessions_do_not_spin(static_onnx, tmp_path):
    images = random_images(1, 64, 96)
    runner = make_runner("ort-cpu", None, lambda: static_onnx, images, workdir=str(tmp_path),
                         threads=2, cuda_graphs=False)  # fmt: skip
    assert isinstance(runner, OrtRunner)
    assert spinning_entries(runner.session) == NO_SPINNING
    # deploy/benchmark.py --ort-spinning: onnxruntime's default, to compare the two.
    spinning = make_runner("ort-cpu", None, lambda: static_onnx, images, workdir=str(tmp_path),
                           threads=2, cuda_graphs=False, ort_spinning=True)  # fmt: skip
    assert set(spinning_entries(spinning.session).values()) == {None}
    # deploy/evaluate.py times its models side by side: no spinning there either.
    args = argparse.Namespace(backend="ort-cpu", threads=0)
    _, forward = evaluate._deployed_model(args, static_onnx)
    assert spinning_entries(forward.__self__.session) == NO_SPINNING
    # One model alone (tools/predict.py) keeps onnxruntime's default, which spins.
    assert set(spinning_entries(Predictor(static_onnx).session).values()) == {None}


def test_self_check_times_one_network_against_itself(tmp_path):
    out, workdir = tmp_path / "self_check.json", tmp_path / "work"
    argv = [
        "--self-check", "--baseline", BASELINE_CONFIG,
        "--backends", "torch-cpu", "ort-cpu",
        "--height", "32", "--width", "48",
        "--warmup", "1", "--rounds", "2", "--repeats", "1", "--min-time", "0", "--runs", "2",
        "--workdir", str(workdir), "--output-json", str(out),
    ]  # fmt: skip
    # Timing is not asserted: any ratio is within this tolerance, so the exit status is 0.
    assert benchmark.main(argv + ["--tolerance", "1e9"]) == 0
    report = json.loads(out.read_text())
    assert [(r["run"], r["backend"]) for r in report["runs"]] == [
        (run, backend) for run in (1, 2) for backend in ("torch-cpu", "ort-cpu")
    ]
    assert all(r["ok"] and r["median"] > 0 and r["paired_median"] > 0 for r in report["runs"])
    # Both sides time the same file, exported once.
    files = report["onnx_files"]
    assert files[MODELS[0]] == files[MODELS[1]] == str(workdir / f"{MODELS[0]}.onnx")
    assert [f for f in os.listdir(workdir) if f.endswith(".onnx")] == [f"{MODELS[0]}.onnx"]
    assert report["settings"]["configs"][MODELS[1]] is None
    # A ratio outside the tolerance (here: any) makes the exit status 1.
    failing = argv[:4] + ["torch-cpu"] + argv[6:-4] + ["--runs", "1", "--tolerance", "-1"]
    assert benchmark.main(failing) == 1


def test_rounds_are_added_in_pairs_until_each_network_has_min_time():
    def sleeper():
        return lambda: time.sleep(0.001)

    runners = {name: sleeper() for name in MODELS}
    exact = time_interleaved(runners, warmup=0, rounds=3, repeats=2)
    assert [len(rounds) for rounds in exact.values()] == [3, 3]
    # 3 rounds of 2 calls of >= 1 ms is about 6 ms per network: rounds are added until 20 ms.
    grown = time_interleaved(runners, warmup=0, rounds=3, repeats=2, min_time_s=0.02)
    counts = {len(rounds) for rounds in grown.values()}
    assert len(counts) == 1 and counts.pop() - 3 in range(2, 20, 2)
    assert all(sum(map(sum, rounds)) >= 0.02 for rounds in grown.values())
    assert all(len(block) == 2 for rounds in grown.values() for block in rounds)


def test_benchmark_times_the_chosen_exporters_graph(tmp_path):
    import onnx

    out, workdir = tmp_path / "bench.json", tmp_path / "work"
    argv = [
        "--baseline", BASELINE_CONFIG, "--contextrast", BASELINE_CONFIG,
        "--backends", "ort-cpu", "--height", "32", "--width", "48", "--exporter", "torchscript",
        "--warmup", "0", "--rounds", "1", "--repeats", "1", "--min-time", "0",
        "--workdir", str(workdir), "--output-json", str(out),
    ]  # fmt: skip
    assert benchmark.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["settings"]["exporter"] == "torchscript"
    # The dynamo exporter names its nodes "node_<op>..."; the TorchScript one does not.
    for path in report["onnx_files"].values():
        assert not any(n.name.startswith("node_") for n in onnx.load(path).graph.node)


def test_self_check_needs_no_contextrast_config_but_the_benchmark_does(capsys):
    with pytest.raises(SystemExit) as excinfo:
        benchmark.main(["--baseline", BASELINE_CONFIG])
    assert excinfo.value.code == 2 and "--contextrast is required" in capsys.readouterr().err


def test_a_failing_backend_is_an_error_naming_it_and_the_network(wrapper, static_onnx, tmp_path):
    truncated = tmp_path / "truncated.onnx"
    data = Path(static_onnx).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    wrappers = {name: wrapper for name in MODELS}
    timing = dict(workdir=str(tmp_path), warmup=0, rounds=1, repeats=1)
    backends = ["ort-cpu"] + ([] if torch.cuda.is_available() else ["ort-cuda"])
    files = {MODELS[0]: static_onnx, MODELS[1]: str(truncated)}
    with pytest.raises(BackendError, match=r"ort-cpu failed on the contextrast network \(.*"
                       r"truncated\.onnx\): OnnxModelError"):  # fmt: skip
        run_benchmark(wrappers, backends, random_images(1, 64, 96), onnx_files=files, **timing)
    # A file that loads but cannot run these inputs (its static shape is 64x96).
    with pytest.raises(BackendError, match=r"ort-cpu failed on the baseline network \(.*"
                       r"static\.onnx\): InvalidArgument"):  # fmt: skip
        run_benchmark(wrappers, backends, random_images(1, 32, 48), onnx_files=dict(files),
                      **timing)  # fmt: skip
    # Only a missing GPU / provider / package means "unavailable": a skipped row with the reason.
    copy = str(tmp_path / "copy.onnx")
    shutil.copy(static_onnx, copy)
    files = {MODELS[0]: static_onnx, MODELS[1]: copy}
    report = run_benchmark(wrappers, backends, random_images(1, 64, 96), onnx_files=files, **timing)
    assert [r["backend"] for r in report["ratios"]] == ["ort-cpu"]
    if not torch.cuda.is_available():
        assert report["skipped"] == {"ort-cuda": "no CUDA GPU"}
